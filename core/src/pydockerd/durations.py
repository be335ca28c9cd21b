"""Go's duration strings (``300ms``, ``1m30s``, ``24h``), which Docker takes in HEALTHCHECK
flags and in the ``until`` filters of the prune endpoints."""

from __future__ import annotations

import re

from pydockerd.errors import InvalidParameter

__all__ = ["parse_duration_ns"]

_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_UNIT_NS = {"ns": 1, "us": 1e3, "µs": 1e3, "μs": 1e3, "ms": 1e6, "s": 1e9, "m": 60e9, "h": 3600e9}


def parse_duration_ns(text: str, what: str = "duration") -> int:
    """``text`` (Go's ``time.ParseDuration`` syntax, with an optional sign) in nanoseconds.

    :raises InvalidParameter: Go's ``time: invalid duration "<text>"``, naming ``what``.
    """
    body = text.lstrip("+-")
    sign = -1 if text.startswith("-") else 1
    if body == "0":
        return 0
    position, total = 0, 0.0
    for match in _PART.finditer(body):
        if match.start() != position:
            break
        total += float(match.group(1)) * _UNIT_NS[match.group(2)]
        position = match.end()
    if not body or position != len(body):
        raise InvalidParameter(f'time: invalid duration "{text}" for {what}')
    return sign * int(total)
