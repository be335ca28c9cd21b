"""Go's duration strings (``300ms``, ``1m30s``, ``24h``), which Docker takes in HEALTHCHECK
flags and in the ``until`` filters of the prune endpoints."""

from __future__ import annotations

import json
import re

from pydockerd.errors import InvalidParameter

__all__ = ["parse_duration_ns"]

_UNITS = {
    "ns": 1,
    "us": 1_000,
    "\u00b5s": 1_000,  # micro sign
    "\u03bcs": 1_000,  # Greek mu
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
}
_PART = re.compile(r"([0-9]*)(\.[0-9]*)?([^0-9.]*)")


def _quote(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)  # Go's %q, as in its messages


def parse_duration_ns(text: str) -> int:
    """``text`` in Go's ``time.ParseDuration`` syntax (an optional sign, then numbers with
    units: ``1m30s``, ``1.5h``, ``300ms``) in nanoseconds, computed exactly.

    :raises InvalidParameter: with Go's messages (``time: invalid duration "x"``,
        ``time: missing unit in duration "1"``, ``time: unknown unit "d" in duration "1d"``).
    """
    invalid = InvalidParameter(f"time: invalid duration {_quote(text)}")
    rest = text
    negative = rest[:1] == "-"
    if rest[:1] in ("-", "+"):
        rest = rest[1:]
    if rest == "0":
        return 0
    if not rest:
        raise invalid
    total = 0
    while rest:
        match = _PART.match(rest)
        assert match is not None  # every group may be empty
        whole, fraction, unit = match.group(1), match.group(2) or "", match.group(3)
        if not whole and len(fraction) <= 1:
            raise invalid
        if not unit:
            raise InvalidParameter(f"time: missing unit in duration {_quote(text)}")
        scale = _UNITS.get(unit)
        if scale is None:
            raise InvalidParameter(f"time: unknown unit {_quote(unit)} in duration {_quote(text)}")
        digits = fraction[1:]
        total += int(whole or "0") * scale
        if digits:
            total += int(digits) * scale // 10 ** len(digits)
        rest = rest[match.end() :]
    return -total if negative else total
