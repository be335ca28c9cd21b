"""Response helpers with moby's exact headers.

The Go client decodes an error body only when ``Content-Type`` is exactly
``application/json`` (aiohttp's ``json_response`` appends ``; charset=utf-8``, which makes the
CLI print the raw JSON), so every JSON response goes through :func:`json_response`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from pydockerd.errors import PydockerdError

__all__ = [
    "error_response",
    "json_response",
    "json_stream",
    "progress_stream",
    "send_json_line",
]


def json_response(data: Any, status: int = 200) -> web.Response:
    """``data`` as JSON, with ``Content-Type: application/json`` and nothing appended."""
    return web.Response(
        body=json.dumps(data).encode(), status=status, headers={"Content-Type": "application/json"}
    )


def error_response(status: int, message: str) -> web.Response:
    """Docker's error shape: ``{"message": "..."}`` with the status set to match."""
    return json_response({"message": message}, status=status)


async def json_stream(request: web.Request) -> web.StreamResponse:
    """A prepared chunked response for a stream of JSON messages, one a line."""
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    await response.prepare(request)
    return response


async def send_json_line(response: web.StreamResponse, message: dict[str, Any]) -> None:
    await response.write(json.dumps(message).encode() + b"\n")


def _error_message(error: BaseException) -> dict[str, Any]:
    if isinstance(error, PydockerdError):
        text = error.message
    else:
        text = f"{type(error).__name__}: {error}"
    detail: dict[str, Any] = {"message": text}
    code = getattr(error, "code", None)
    if isinstance(code, int):  # a failed build step's exit status: the CLI exits with it
        detail = {"code": code, "message": text}
    return {"errorDetail": detail, "error": text}


_CLIENT_CHECK = 0.5
"""Seconds between checks that the client is still there, while an operation is silent."""


async def _next_message(
    request: web.Request, queue: asyncio.Queue[dict[str, Any] | None]
) -> dict[str, Any] | None:
    """The next message; :class:`ConnectionResetError` when the client's connection closes
    while none comes (a write would notice only at the next message, and an operation may be
    silent for long: a registry that does not answer, a layer being unpacked)."""
    while True:
        try:
            return await asyncio.wait_for(queue.get(), _CLIENT_CHECK)
        except TimeoutError:
            transport = request.transport
            if transport is None or transport.is_closing():
                raise ConnectionResetError("the client went away") from None


async def progress_stream(
    request: web.Request,
    operation: Callable[[Callable[[dict[str, Any]], None]], Awaitable[object]],
) -> web.StreamResponse:
    """Run ``operation(report)`` and stream what it reports, as pull, push and build do.

    Until the first message the response is not started, so an error before it is a plain
    HTTP error (``docker pull`` of an unknown image prints a 404's message); after it, an
    error ends the stream with ``errorDetail`` (clients look for that key, not ``error``).
    A client that goes away cancels the operation, also while it reports nothing.
    """
    queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()

    async def run() -> None:
        try:
            await operation(queue.put_nowait)
        finally:
            queue.put_nowait(None)

    task = asyncio.ensure_future(run())
    response: web.StreamResponse | None = None
    try:
        message = await _next_message(request, queue)
        if message is None:  # over without a word: an error is a plain HTTP error
            await task  # (and success an empty stream)
        response = await json_stream(request)
        while message is not None:
            await send_json_line(response, message)
            message = await _next_message(request, queue)
        await task
    except Exception as e:
        if response is None or isinstance(e, ConnectionError):
            raise
        await send_json_line(response, _error_message(e))
    finally:
        if not task.done():  # the client went away, or writing failed
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
    await response.write_eof()
    return response
