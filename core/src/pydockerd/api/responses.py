"""Response helpers with moby's exact headers.

The Go client decodes an error body only when ``Content-Type`` is exactly
``application/json`` (aiohttp's ``json_response`` appends ``; charset=utf-8``, which makes the
CLI print the raw JSON), so every JSON response goes through :func:`json_response`.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

__all__ = ["error_response", "json_response"]


def json_response(data: Any, status: int = 200) -> web.Response:
    """``data`` as JSON, with ``Content-Type: application/json`` and nothing appended."""
    return web.Response(
        body=json.dumps(data).encode(), status=status, headers={"Content-Type": "application/json"}
    )


def error_response(status: int, message: str) -> web.Response:
    """Docker's error shape: ``{"message": "..."}`` with the status set to match."""
    return json_response({"message": message}, status=status)
