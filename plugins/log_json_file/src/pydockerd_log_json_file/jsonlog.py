"""One line of a json-file log, byte for byte as Docker writes it, and back.

Docker's line is ``{"log":"hi\\n","stream":"stdout","attrs":{...},"time":"<RFC 3339>"}``
followed by ``\\n``, with keys in that order, ``log`` and ``stream`` left out when empty and
``attrs`` only when the container has some. Strings are escaped as Go's encoder escapes them:
``"``, ``\\``, ``\\n`` and ``\\r`` with a backslash, other control characters and ``<``,
``>``, ``&``, U+2028 and U+2029 as ``\\u00XX``/``\\u202X``, and every byte that is not part
of valid UTF-8 as ``\\ufffd``. Times are UTC with nanoseconds, trailing zeros trimmed
(Go's ``RFC3339Nano``): ``2025-01-01T00:00:00.1234Z``, ``2025-01-01T00:00:00Z``.
"""

from __future__ import annotations

import codecs
import json
import re
import time
from datetime import UTC, datetime, timedelta

from pydockerd.plugin import LogRecord

__all__ = [
    "LineEncoder",
    "decode_line",
    "encode_attrs",
    "format_time",
    "parse_time",
]

NS = 1_000_000_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SECOND = timedelta(seconds=1)

# Bytes a log line may hold as they are: printable ASCII but for " & < > \
_NEEDS_ESCAPE = re.compile(rb"[^\x20\x21\x23-\x25\x27-\x3b\x3d\x3f-\x5b\x5d-\x7f]")
# Characters escaped in the slow path; U+D800 stands for a byte that is not UTF-8 (a lone
# surrogate never comes out of a UTF-8 decoder otherwise)
_ESCAPED = re.compile('[\x00-\x1f"\\\\<>&\u2028\u2029\ud800]')
_INVALID_BYTE = "\ud800"


def _one_per_byte(error: UnicodeError) -> tuple[str, int]:
    """Decoding error handler: one replacement per invalid byte, as Go's decoder does."""
    assert isinstance(error, UnicodeDecodeError)
    return _INVALID_BYTE, error.start + 1


codecs.register_error("pydockerd-json-file", _one_per_byte)


def _escape_table(short: str) -> dict[str, str]:
    """Escapes for :data:`_ESCAPED`: control characters as ``\\u00XX`` except those in
    ``short``, which get their one-letter form."""
    letters = {"\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}
    table = {chr(c): f"\\u{c:04x}" for c in range(0x20)}
    table.update({c: letters[c] for c in short})
    table.update({'"': '\\"', "\\": "\\\\", "<": "\\u003c", ">": "\\u003e", "&": "\\u0026"})
    table.update({"\u2028": "\\u2028", "\u2029": "\\u2029", _INVALID_BYTE: "\\ufffd"})
    return table


_LOG_ESCAPES = _escape_table("\n\r")  # daemon/logger/jsonfilelog/jsonlog's own encoder
_JSON_ESCAPES = _escape_table("\b\t\n\f\r")  # encoding/json, which marshals the attrs


def _escape(data: bytes, table: dict[str, str]) -> bytes:
    text = data.decode("utf-8", "pydockerd-json-file")
    return _ESCAPED.sub(lambda m: table[m.group()], text).encode()


def _quoted(text: str) -> bytes:
    return b'"' + _escape(text.encode("utf-8", "surrogateescape"), _JSON_ESCAPES) + b'"'


def encode_attrs(attrs: dict[str, str]) -> bytes:
    """``attrs`` as Go's ``json.Marshal`` writes a ``map[string]string``: keys sorted."""
    items = (_quoted(k) + b":" + _quoted(attrs[k]) for k in sorted(attrs))
    return b"{" + b",".join(items) + b"}"


_second_cache: tuple[int, bytes] = (-1, b"")


def format_time(time_nano: int) -> bytes:
    """``time_nano`` (ns since the epoch) as Go's ``RFC3339Nano`` in UTC."""
    global _second_cache  # noqa: PLW0603 - one cache for every writer of the process
    seconds, fraction = divmod(time_nano, NS)
    cached_second, prefix = _second_cache
    if seconds != cached_second:
        prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)).encode()
        _second_cache = (seconds, prefix)
    if fraction:
        return prefix + b"." + (b"%09d" % fraction).rstrip(b"0") + b"Z"
    return prefix + b"Z"


class LineEncoder:
    """Turns records into log lines for one container (its ``attrs`` fixed)."""

    def __init__(self, attrs: bytes = b"") -> None:
        self._attrs = b'"attrs":' + attrs + b"," if attrs else b""
        self._middles: dict[str, bytes] = {}

    def _middle(self, stream: str) -> bytes:
        """What comes between the log text and the time: ``","stream":"stdout","time":"``."""
        middle = self._middles.get(stream)
        if middle is None:
            head = b'"stream":' + _quoted(stream) + b"," if stream else b""
            middle = self._middles[stream] = b'",' + head + self._attrs + b'"time":"'
        return middle

    def encode(self, record: LogRecord) -> bytes:
        line = record.line
        last = len(line) - 1
        if last >= 0 and line[last] == 0x0A and _NEEDS_ESCAPE.search(line, 0, last) is None:
            text = line[:last] + b"\\n"  # the common case: printable ASCII and its newline
        elif line and _NEEDS_ESCAPE.search(line) is None:
            text = line
        elif line:
            text = _escape(line, _LOG_ESCAPES)
        else:  # Docker leaves out an empty "log"
            return b"{" + self._middle(record.stream)[2:] + format_time(record.time_nano) + b'"}\n'
        return (
            b'{"log":"'
            + text
            + self._middle(record.stream)
            + format_time(record.time_nano)
            + b'"}\n'
        )


_seconds_cache: dict[str, int] = {}


def parse_time(text: str) -> int:
    """An RFC 3339 time (any offset, up to nanoseconds) as ns since the epoch.

    :raises ValueError: not such a time.
    """
    if text.endswith("Z"):
        base, offset = text[:-1], "+00:00"
    else:
        base, offset = text[:-6], text[-6:]
        if offset[0] not in "+-" or offset[3] != ":":
            raise ValueError(f"no offset in {text!r}")
    base, dot, fraction = base.partition(".")
    if dot and not (fraction.isdigit() and len(fraction) <= 9):
        raise ValueError(f"bad fraction in {text!r}")
    key = base + offset
    seconds = _seconds_cache.get(key)
    if seconds is None:
        if len(base) != 19:
            raise ValueError(f"not an RFC 3339 time: {text!r}")
        seconds = (datetime.fromisoformat(key) - _EPOCH) // _SECOND
        if len(_seconds_cache) > 4096:
            _seconds_cache.clear()
        _seconds_cache[key] = seconds
    return seconds * NS + (int(fraction.ljust(9, "0")) if fraction else 0)


def _record(obj: object) -> LogRecord | None:
    if not isinstance(obj, dict):
        return None
    log, stream, when = obj.get("log", ""), obj.get("stream", ""), obj.get("time")
    if not (isinstance(log, str) and isinstance(stream, str) and isinstance(when, str)):
        return None
    try:
        time_nano = parse_time(when)
    except ValueError:
        return None
    try:
        line = log.encode()
    except UnicodeEncodeError:  # a lone surrogate escape written by something else
        line = log.encode(errors="replace")
    return LogRecord(stream, line, time_nano, partial=not line.endswith(b"\n"))


def decode_line(raw: bytes) -> LogRecord | None:
    """The record of one log line (without its ``\\n``); ``None`` for a line that is not one.

    A line a crash cut short and the next start of the writer continued is
    ``<garbage>{"log":...}``: the record at its end is recovered.
    """
    try:
        return _record(json.loads(raw))
    except ValueError:
        pass
    start = raw.rfind(b'{"', 1)
    for _ in range(8):  # the record's own braces, then its attrs' braces
        if start <= 0:
            break
        try:
            return _record(json.loads(raw[start:]))
        except ValueError:
            start = raw.rfind(b'{"', 1, start)
    return None
