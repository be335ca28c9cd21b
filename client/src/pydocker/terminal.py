"""The user's terminal and signals while a container is attached: raw mode (always
restored), the window size, and docker's signal handling (every signal forwarded to the
container, SIGWINCH resizing its tty).

Signal handlers only queue the signal; a worker thread makes the API calls, so a handler
never blocks the main thread nor runs an HTTP request in the middle of another.
"""

from __future__ import annotations

import fcntl
import logging
import queue
import signal
import struct
import termios
import threading
import tty
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import IO, Any

from pydocker.errors import PydockerError

__all__ = ["FORWARDED_SIGNALS", "Signals", "is_terminal", "no_echo", "raw_mode", "terminal_size"]

_NOT_FORWARDED = {
    signal.SIGKILL,
    signal.SIGSTOP,
    signal.SIGCHLD,
    signal.SIGPIPE,
    signal.SIGURG,
    # faults of the client itself, not signals meant for the container
    signal.SIGSEGV,
    signal.SIGBUS,
    signal.SIGFPE,
    signal.SIGILL,
}
FORWARDED_SIGNALS = tuple(s for s in signal.Signals if s not in _NOT_FORWARDED)
"""What docker's ``ForwardAllSignals`` passes on: everything but SIGCHLD, SIGPIPE and
SIGURG (and what no process can catch)."""


def is_terminal(stream: IO[Any]) -> bool:
    try:
        return stream.isatty()
    except (ValueError, OSError):
        return False


def terminal_size(stream: IO[Any]) -> tuple[int, int] | None:
    """``(rows, columns)`` of the terminal ``stream`` is, or ``None``."""
    if not is_terminal(stream):
        return None
    try:
        packed = fcntl.ioctl(stream.fileno(), termios.TIOCGWINSZ, b"\0" * 8)
    except OSError:
        return None
    rows, columns, _, _ = struct.unpack("HHHH", packed)
    return rows, columns


@contextmanager
def raw_mode(stream: IO[Any]) -> Iterator[None]:
    """The terminal in raw mode (keys go to the container as typed, ctrl-c included), and
    back as it was on every way out."""
    fd = stream.fileno()
    saved = termios.tcgetattr(fd)
    tty.setraw(fd, termios.TCSANOW)
    try:
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSANOW, saved)


@contextmanager
def no_echo(stream: IO[Any]) -> Iterator[None]:
    """What is typed on the terminal ``stream`` is not shown (a password prompt), until
    the block is left; nothing changes when ``stream`` is not a terminal."""
    if not is_terminal(stream):
        yield
        return
    fd = stream.fileno()
    saved = termios.tcgetattr(fd)
    quiet = list(saved)
    quiet[3] &= ~termios.ECHO
    termios.tcsetattr(fd, termios.TCSANOW, quiet)
    try:
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSANOW, saved)


Callback = Callable[[signal.Signals], object]
log = logging.getLogger("pydocker")


class Signals:
    """The signal handlers of an attached command. :meth:`handle` installs a handler at
    once (in the main thread); the callback runs later on the worker thread. Everything is
    put back on leaving the ``with`` block."""

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[signal.Signals | None] = queue.SimpleQueue()
        self._callbacks: dict[signal.Signals, list[Callback]] = {}
        self._saved: dict[signal.Signals, Any] = {}
        self._worker = threading.Thread(target=self._work, daemon=True)
        self._active = threading.current_thread() is threading.main_thread()

    def __enter__(self) -> Signals:
        if self._active:
            self._worker.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if not self._active:
            return
        for signum, previous in self._saved.items():
            signal.signal(signum, previous)
        self._queue.put(None)
        self._worker.join(5)

    def handle(self, signums: Iterable[signal.Signals], callback: Callback) -> None:
        """Call ``callback(signum)`` for each of ``signums`` received from now on."""
        if not self._active:
            return  # not the main thread (an embedding program): leave signals alone
        for signum in signums:
            self._callbacks.setdefault(signum, []).append(callback)
            if signum not in self._saved:
                self._saved[signum] = signal.getsignal(signum)
                signal.signal(signum, self._received)

    def _received(self, signum: int, frame: FrameType | None) -> None:
        self._queue.put(signal.Signals(signum))

    def _work(self) -> None:
        while (signum := self._queue.get()) is not None:
            for callback in self._callbacks.get(signum, []):
                try:
                    callback(signum)
                except PydockerError as e:  # a failed kill or resize is not fatal
                    log.debug("handling %s: %s", signum.name, e)

    @staticmethod
    def name(signum: signal.Signals) -> str:
        """The name the Engine API takes: ``SIGTERM`` → ``TERM``."""
        return signum.name.removeprefix("SIG")
