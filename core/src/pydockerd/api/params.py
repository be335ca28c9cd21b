"""Parsing of Engine API query parameters as moby parses them: booleans, filters, times."""

from __future__ import annotations

import asyncio
import json
import re
import tempfile
import time
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp import web

from pydockerd.durations import parse_duration_ns
from pydockerd.errors import InvalidParameter

__all__ = [
    "Filters",
    "json_body",
    "labels_match",
    "parse_bool",
    "parse_filters",
    "parse_timestamp_ns",
    "spool_body",
]

_DURATION = re.compile(r"(?:[0-9.]+[a-zµμ]+)+")

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_FALSE = frozenset({"", "0", "no", "false", "none"})


async def json_body(request: web.Request) -> dict[str, Any]:
    """A request's JSON object (``{}`` for no body).

    :raises InvalidParameter: not JSON, or not an object.
    """
    if not request.can_read_body:
        return {}
    try:
        body = await request.json(loads=json.loads)
    except ValueError as e:
        raise InvalidParameter(f"invalid JSON: {e}") from None
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise InvalidParameter("invalid JSON: expected an object")
    return body


def parse_bool(value: str | None) -> bool:
    """moby's rule: ``""``, ``0``, ``no``, ``false``, ``none`` (any case) are false, the rest true.

    docker-py sends ``False``/``True``, the CLI ``1``/``0``.
    """
    return value is not None and value.strip().lower() not in _FALSE


Filters = dict[str, set[str]]
"""Filter key → accepted values."""


def labels_match(labels: Mapping[str, str], wanted: Iterable[str]) -> bool:
    """The ``label`` filter: every ``key`` present and every ``key=value`` equal."""
    for item in wanted:
        key, has_value, value = item.partition("=")
        if key not in labels or (has_value and labels[key] != value):
            return False
    return True


def parse_filters(raw: str | None, allowed: Iterable[str]) -> Filters:
    """Decode ``filters=`` in either form the clients send.

    The docker CLI sends the map form ``{"status":{"running":true}}``; docker-py (and old
    CLIs) the list form ``{"status":["running"]}``.

    :raises InvalidParameter: not JSON, a value of the wrong shape, or a key not in ``allowed``
        (moby's ``invalid filter 'x'``).
    """
    if not raw:
        return {}
    try:
        decoded = json.loads(raw)
    except json.JSONDecodeError as e:
        raise InvalidParameter(f"invalid filter: {e}") from None
    if not isinstance(decoded, Mapping):
        raise InvalidParameter("invalid filter: expected a JSON object")
    allowed_keys = set(allowed)
    filters: Filters = {}
    for key, value in decoded.items():
        if key not in allowed_keys:
            raise InvalidParameter(f"invalid filter '{key}'")
        if isinstance(value, Mapping):
            filters[key] = {str(v) for v, on in value.items() if on}
        elif isinstance(value, list):
            filters[key] = {str(v) for v in value}
        else:
            raise InvalidParameter(f"invalid filter '{key}': expected a list or an object")
    return filters


def parse_timestamp_ns(raw: str | None, name: str) -> int | None:
    """A ``since``/``until`` value: unix seconds (``1700000000`` or ``1700000000.5``), an
    RFC 3339 time, or a Go duration meaning that long ago (``24h``), as Docker's
    ``GetTimestamp``; ``None`` when absent or empty.

    :raises InvalidParameter: anything else.
    """
    if raw is None or raw == "":
        return None
    seconds, _, fraction = raw.partition(".")
    if seconds.removeprefix("-").isdigit() and (not fraction or fraction.isdigit()):
        nanos = int(fraction[:9].ljust(9, "0")) if fraction else 0
        return int(seconds) * 1_000_000_000 + (-nanos if seconds.startswith("-") else nanos)
    if _DURATION.fullmatch(raw):  # a duration: that long before now
        try:
            return time.time_ns() - parse_duration_ns(raw)
        except InvalidParameter:
            raise InvalidParameter(f"invalid value for {name}: {raw!r}") from None
    try:
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidParameter(f"invalid value for {name}: {raw!r}") from None
    if moment.tzinfo is None:
        moment = moment.astimezone()  # no zone given: local time, as timestamp() reads it
    since_epoch = moment - _EPOCH  # exact, unlike a float of seconds
    return (since_epoch.days * 86_400 + since_epoch.seconds) * 1_000_000_000 + (
        since_epoch.microseconds * 1_000
    )


_SPOOL_CHUNK = 1 << 20


async def spool_body(request: web.Request, directory: Path) -> Path:
    """The request body in a temporary file under ``directory``, read as it streams in."""
    fd, name = tempfile.mkstemp(dir=directory, suffix=".upload")
    path = Path(name)
    try:
        with open(fd, "wb") as f:  # noqa: PTH123, ASYNC230 - an fd from mkstemp
            while chunk := await request.content.read(_SPOOL_CHUNK):
                await asyncio.to_thread(f.write, chunk)
    except BaseException:
        path.unlink(missing_ok=True)  # noqa: ASYNC240
        raise
    return path
