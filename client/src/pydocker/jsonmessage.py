"""JSON message streams (pull, push, load, import, build) shown as docker's ``jsonmessage``
shows them.

On a terminal every message with an ``id`` and progress (``progressDetail`` or
``progress``) owns a line, found again with ANSI cursor movement and redrawn in place
(``ESC[<n>A``, ``ESC[2K``, ``\\r``, ``ESC[<n>B``), its bar drawn from
``progressDetail.current/total``; any other message forgets those lines, so later ones
start below it. Elsewhere messages with a non-empty progress are skipped and the rest are
printed as ``<id>: <status>``. ``aux`` messages are never printed (a callback may take
them); an ``errorDetail`` ends the stream with :class:`StreamError`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from typing import IO, Any

from pydocker.errors import PydockerError
from pydocker.formatting import decimal_size, rfc3339_nano
from pydocker.terminal import is_terminal, terminal_size

__all__ = ["StreamError", "display_json_messages", "progress_bar"]

_UNKNOWN_WIDTH = 200
"""The width docker assumes when it cannot ask the terminal."""
_BAR_MIN_WIDTH = 111
_TIME_LEFT_MIN_WIDTH = 51
_BAR_CELLS = 50
_ERASE_LINE = "\x1b[2K"


class StreamError(PydockerError):
    """An ``errorDetail`` message: its ``message`` is what the user reads (docker prints it
    without the ``Error response from daemon:`` of an HTTP error); ``code`` is kept for
    commands that exit with it (build)."""

    def __init__(self, message: str, code: int = 0) -> None:
        super().__init__(message)
        self.code = code


def _integer(value: Any) -> int:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0


def _quotient(a: int, b: int) -> int:
    """Go's integer division (truncated toward zero)."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q


def _go_seconds(seconds: int) -> str:
    """A whole number of seconds as Go's ``Duration.String`` writes it: ``1h2m5s``."""
    sign, seconds = ("-" if seconds < 0 else ""), abs(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    if hours:
        return f"{sign}{hours}h{minutes}m{seconds}s"
    if minutes:
        return f"{sign}{minutes}m{seconds}s"
    return f"{sign}{seconds}s"


def progress_bar(detail: Mapping[str, Any], width: int, now: float | None = None) -> str:
    """``JSONProgress.String``: ``[=====>    ]  12.3MB/45.6MB 3s``. The bar needs a
    terminal wider than 110 columns and the time left one wider than 50; without a total
    only the count is shown, and nothing at all without a count."""
    current, total = _integer(detail.get("current")), _integer(detail.get("total"))
    start, units = _integer(detail.get("start")), str(detail.get("units") or "")
    if current <= 0 and total <= 0:
        return ""
    if total <= 0:
        return f"{decimal_size(current, 4):>8}" if not units else f"{current} {units}"
    percentage = min(int(int(current / total * 100) / 2), _BAR_CELLS)
    bar = ""
    if width >= _BAR_MIN_WIDTH:
        bar = f"[{'=' * percentage}>{' ' * max(_BAR_CELLS - percentage, 0)}] "
    numbers = ""
    if detail.get("hidecounts"):
        pass
    elif not units:
        numbers = f"{decimal_size(current, 4):>8}"
        if current <= total:
            numbers += f"/{decimal_size(total, 4)}"
    else:
        numbers = f"{current}/{total} {units}" if current <= total else f"{current} {units}"
    left = ""
    if current > 0 and start > 0 and percentage < _BAR_CELLS:
        elapsed = int(((time.time() if now is None else now) - start) * 1_000_000_000)
        remaining = (total - current) * _quotient(elapsed, current)
        if width >= _TIME_LEFT_MIN_WIDTH:
            left = " " + _go_seconds(_quotient(remaining, 1_000_000_000))
    return bar + numbers + left


def _width(out: IO[str] | None) -> int:
    size = terminal_size(out) if out is not None else None
    return size[1] if size else _UNKNOWN_WIDTH


def _render(message: Mapping[str, Any], terminal: bool, width: int) -> str | None:
    """``JSONMessage.Display``: the text of one message, ``None`` when it is skipped."""
    detail = message.get("progressDetail")
    progress = detail if isinstance(detail, Mapping) else None
    stream = str(message.get("stream") or "")
    end, text = "", ""
    if terminal and not stream and progress is not None:
        end = "\r"
        text = _ERASE_LINE + end
    elif progress is not None and progress_bar(progress, width):
        return None  # no progress bars off a terminal
    nanos = _integer(message.get("timeNano")) or _integer(message.get("time")) * 1_000_000_000
    if nanos:
        text += rfc3339_nano(nanos) + " "
    if message.get("id"):
        text += f"{message['id']}: "
    if message.get("from"):
        text += f"(from {message['from']}) "
    status = str(message.get("status") or "")
    if progress is not None and terminal:
        text += f"{status} {progress_bar(progress, width)}{end}"
    elif message.get("progress"):
        text += f"{status} {message['progress']}{end}"
    elif stream:
        text += stream + end
    else:
        text += f"{status}{end}\n"
    return text


def display_json_messages(
    messages: Iterable[Any],
    out: IO[str] | None,
    *,
    terminal: bool | None = None,
    aux: Callable[[Mapping[str, Any]], None] | None = None,
) -> None:
    """Show a stream of JSON messages on ``out`` as they arrive (``None`` shows nothing but
    still fails on an error, as ``-q`` does). ``terminal`` defaults to whether ``out`` is
    one; its width is asked again for every message, so a resize is followed.

    :raises StreamError: an ``errorDetail`` message.
    """
    if terminal is None:
        terminal = out is not None and is_terminal(out)

    def write(text: str) -> None:
        if out is not None and text:
            out.write(text)

    lines: dict[str, int] = {}
    for message in messages:
        if not isinstance(message, Mapping):
            continue
        if message.get("aux") is not None:
            if aux is not None:
                aux(message)
            continue
        ident = str(message.get("id") or "")
        moved = 0
        progress = isinstance(message.get("progressDetail"), Mapping) or message.get("progress")
        if ident and progress:
            line = lines.get(ident)
            if line is None:  # a new line for this id, below the others
                line = lines[ident] = len(lines)
                if terminal:
                    write("\n")
            moved = len(lines) - line
            if terminal:
                write(f"\x1b[{moved}A")
        else:
            lines = {}  # what follows is drawn below this message, never above it
        error = message.get("errorDetail")
        if not isinstance(error, Mapping):
            rendered = _render(message, terminal, _width(out))
            write(rendered or "")
        if ident and terminal and moved:
            write(f"\x1b[{moved}B")
        if out is not None:
            out.flush()
        if isinstance(error, Mapping):
            raise StreamError(str(error.get("message") or ""), _integer(error.get("code")))
