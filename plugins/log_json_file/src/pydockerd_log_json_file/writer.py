"""The writing side: one container's output into ``<id>-json.log``, rotated.

It runs in the supervisor's event loop, so :meth:`JsonFileWriter.write` only encodes the
record and appends it to a buffer; the buffer goes to the file in one ``write(2)`` when the
loop has finished what it is doing (``call_soon``), or at once past 64 KiB. A reader in
another process thus sees a line one loop iteration after it was written, and the cost of
the system call is shared by every line of a burst. No ``fsync``: like Docker, a crash of the
machine may lose the last lines; a crash of the supervisor loses none it has written out.
"""

from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from pydockerd.plugin import LogRecord, LogWriter

from pydockerd_log_json_file import files
from pydockerd_log_json_file.jsonlog import LineEncoder
from pydockerd_log_json_file.options import Rotation

if TYPE_CHECKING:
    from loguru import Logger

__all__ = ["JsonFileWriter"]

FLUSH_AT = 64 << 10
"""Buffered bytes that are written out without waiting for the loop."""
MODE = 0o640

_compressing: dict[Path, threading.Thread] = {}
"""The gzip running for each log, whichever writer started it: a restarted container's new
writer must not rotate under its previous writer's compression."""


def _wait_for_compression(path: Path) -> None:
    """Wait for the compression of the log ``path``'s ``.1``, if one is running; before its
    next rotation, a writer waits only when rotations come faster than gzip."""
    thread = _compressing.pop(path, None)
    if thread is not None:
        thread.join()


class JsonFileWriter(LogWriter):
    """Appends records to ``path`` and rotates it by ``policy``."""

    def __init__(self, path: Path, policy: Rotation, encoder: LineEncoder, logger: Logger) -> None:
        self.path = path
        self.policy = policy
        self._encoder = encoder
        self._logger = logger
        self._pending: list[bytes] = []
        self._pending_size = 0
        self._scheduled: asyncio.Handle | None = None
        self._failures = 0
        path.parent.mkdir(parents=True, exist_ok=True)
        _wait_for_compression(path)
        files.remove_leftovers(path)
        self._fd: int | None = None
        self._size = 0
        self._open()

    def _open(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, MODE)
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            # a crash cut the last line short: end it, so the next record stands on its own
            os.write(fd, b"\n")
            size += 1
        self._fd, self._size = fd, size

    def write(self, record: LogRecord) -> None:
        if self._fd is None:
            return
        data = self._encoder.encode(record)
        if 0 < self.policy.max_size < self._size + len(data) and self._size:
            self._rotate()
        self._pending.append(data)
        self._pending_size += len(data)
        self._size += len(data)
        if self._pending_size >= FLUSH_AT:
            self.flush()
        elif self._scheduled is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # not in an event loop: nothing would flush later
                self.flush()
            else:
                self._scheduled = loop.call_soon(self.flush)

    def flush(self) -> None:
        """Write out what is buffered."""
        if self._scheduled is not None:
            self._scheduled.cancel()
            self._scheduled = None
        if not self._pending or self._fd is None:
            return
        data = b"".join(self._pending)
        self._pending.clear()
        self._pending_size = 0
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(self._fd, view) :]
        except OSError as e:  # a full disk: Docker drops the lines too
            self._size -= len(view)
            self._failures += 1
            if self._failures in (1, 10, 100) or self._failures % 1000 == 0:
                self._logger.error(
                    f"json-file: cannot write {self.path} ({self._failures} times): {e}"
                )

    def _rotate(self) -> None:
        self.flush()
        assert self._fd is not None
        os.close(self._fd)
        self._fd = None
        try:
            if self.policy.max_file > 1:
                _wait_for_compression(self.path)
                first = files.rotate(self.path, self.policy.max_file)
                if self.policy.compress:
                    thread = threading.Thread(
                        target=self._compress, args=(first,), name=f"gzip {first.name}"
                    )
                    _compressing[self.path] = thread
                    thread.start()
            else:
                self.path.unlink(missing_ok=True)  # one file: start it over, as Docker does
        except OSError as e:  # go on in the same file
            self._logger.error(f"json-file: cannot rotate {self.path}: {e}")
        try:
            self._open()
        except OSError as e:  # what follows is dropped, with this one message
            self._logger.error(f"json-file: cannot reopen {self.path}: {e}")

    def _compress(self, path: Path) -> None:
        try:
            files.compress(path)
        except OSError as e:
            self._logger.error(f"json-file: cannot compress {path}: {e}")

    def close(self) -> None:
        """Flush and close the file, and wait for a compression still running: the container's
        directory may be removed next, and nothing may appear in it then. gzip at its fastest
        level takes about 50 ms for a 20 MB file, and only a rotation just before the end
        leaves one running."""
        self.flush()
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        _wait_for_compression(self.path)
