"""The reading side: what ``docker logs`` shows, from the files of one container's log.

:class:`LogReader` does the file work (blocking; the driver runs it in threads) and
:func:`read_log` is the async iterator the daemon consumes. Reading never takes a lock the
writer (another process) would wait for: it opens a consistent set of file descriptors
(:func:`~pydockerd_log_json_file.files.open_snapshot`) and reads them while the writer goes
on, following the current file across rotations.

Semantics, as Docker's json-file reader unless said otherwise:

- records are yielded oldest first; a record that is not valid JSON (a crash cut it short)
  is skipped, never an error;
- ``since``/``until`` keep records with ``since <= time <= until``; reading stops at the
  first record after ``until``;
- ``tail`` keeps the last ``tail`` records *of the window*: with ``until`` in the past that
  is the last ones before it (Docker takes the last lines of the file first and filters them
  afterwards, which usually leaves nothing);
- partial records (a chunk of a line without its ``\\n``) come back as stored, one record
  each, ``partial`` set: written one after the other they make up the line, which is how
  Docker's reader gives them back too;
- ``follow`` goes on with what is written later, polling every :data:`POLL` seconds with a
  cheap ``fstat``; it ends once ``stopped`` is set and everything written until then has been
  yielded (or once ``until`` has passed).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import time
from collections.abc import AsyncIterator, Callable, Generator, Iterator
from pathlib import Path
from typing import TypeVar

from pydockerd.plugin import LogQuery, LogRecord

from pydockerd_log_json_file import files
from pydockerd_log_json_file.files import Cursor, LogFile
from pydockerd_log_json_file.jsonlog import decode_line

__all__ = ["POLL", "LogReader", "read_log"]

POLL = 0.05
"""Seconds between two looks at a followed log with nothing new."""
BATCH = 2000
"""Records read per trip to a thread."""

T = TypeVar("T")


def _decoded(lines: list[bytes]) -> list[LogRecord]:
    return [record for raw in lines if (record := decode_line(raw)) is not None]


class LogReader:
    """The files of one log, opened at one moment, and the cursor that follows it on."""

    def __init__(self, path: Path, query: LogQuery) -> None:
        self.path = path
        self.since = query.since_nano
        self.until = query.until_nano
        self.tail = query.tail if query.tail is not None and query.tail >= 0 else None
        self.ended = False
        """Whether a record after ``until`` was met: there is nothing more to follow."""
        self._rotated: list[LogFile] = []
        self.cursor: Cursor | None = None
        """Where the current file has been read up to."""
        self._anchor: tuple[int, bytes | None] | None = None
        """Inode and last line of the newest rotated file read, when there was no current
        file (opened between a rotation's rename and the new file): where following
        resumes."""

    def open(self) -> None:
        """Open the log's files as they are now."""
        snapshot = files.open_snapshot(self.path)
        self._rotated = snapshot.rotated
        if snapshot.current is not None:
            self.cursor = Cursor(snapshot.current.fd)
        elif snapshot.rotated:
            newest = snapshot.rotated[-1]
            self._anchor = (os.fstat(newest.fd).st_ino, newest.last_line())

    def close(self) -> None:
        for file in self._rotated:
            file.close()
        self._rotated = []
        if self.cursor is not None:
            os.close(self.cursor.fd)
            self.cursor = None

    # -- what is stored

    def history(self) -> Generator[LogRecord, None, None]:
        """The stored records the query selects; the cursor ends after the last one."""
        try:
            if self.tail is None:
                yield from self._everything()
            else:
                yield from self._last(self.tail)
        finally:
            for file in self._rotated:
                file.close()
            self._rotated = []

    def _after_window(self, record: LogRecord) -> bool:
        if self.until is not None and record.time_nano > self.until:
            self.ended = True
        return self.ended

    def _everything(self) -> Iterator[LogRecord]:
        sources: list[Iterator[bytes]] = []
        for file in self._rotated:
            if self.since is not None and not file.compressed and self._before_since(file):
                continue  # the whole file is older than ``since``
            sources.append(file.lines())
        if self.cursor is not None:
            sources.append(iter(self.cursor))
        for raw in itertools.chain.from_iterable(sources):
            record = decode_line(raw)
            if record is None or (self.since is not None and record.time_nano < self.since):
                continue
            if self._after_window(record):
                return
            yield record

    def _before_since(self, file: LogFile) -> bool:
        last = file.last_line()
        record = decode_line(last) if last is not None else None
        return record is not None and self.since is not None and record.time_nano < self.since

    def _last(self, count: int) -> Iterator[LogRecord]:
        """The last ``count`` records of the window, reading backwards from the end."""
        newest_first: list[Iterator[bytes]] = []
        if self.cursor is not None:
            fd, cursor = self.cursor.fd, self.cursor
            cursor.offset = files.complete_end(fd, os.fstat(fd).st_size)
            backwards = files.lines_backwards(fd, cursor.offset)
            cursor.last_line = next(backwards, None)
            if cursor.last_line is not None:
                newest_first.append(itertools.chain((cursor.last_line,), backwards))
        newest_first += [file.backwards() for file in reversed(self._rotated)]
        found: list[LogRecord] = []
        for raw in itertools.chain.from_iterable(newest_first):
            if len(found) >= count:
                break
            record = decode_line(raw)
            if record is None or (self.until is not None and record.time_nano > self.until):
                continue
            if self.since is not None and record.time_nano < self.since:
                break
            found.append(record)
        yield from reversed(found)

    # -- what is written next

    def _rotated_away(self) -> bool:
        """Whether the log's path names another file than the cursor's (rotation)."""
        assert self.cursor is not None
        try:
            st = self.path.stat()
        except FileNotFoundError:  # between the rename and the new file
            return False
        return st.st_ino != self.cursor.inode

    def has_news(self) -> bool:
        """Whether :meth:`poll` may find something; a ``stat`` or two, no reading."""
        if self.cursor is None:
            return self.path.exists()
        return self.cursor.has_more() or self._rotated_away()

    def poll(self) -> list[LogRecord]:
        """The records written since the last call, across rotations; ``[]`` if none."""
        if self.cursor is None:  # the log did not exist: all of it is new
            return _decoded(self._move_on([]))
        lines = self.cursor.read()
        if lines or not self._rotated_away():
            return _decoded(lines)
        return _decoded(self._move_on(self.cursor.read_all()))

    def _move_on(self, lines: list[bytes]) -> list[bytes]:
        """``lines`` (the rest of the file that was rotated away), then the lines of the
        rotated files that came after it and the first of the new current file, where the
        cursor moves."""
        snapshot = files.open_snapshot(self.path)
        try:
            if snapshot.current is None:  # not there yet: look again next time
                return lines
            if self.cursor is not None:
                newer = snapshot.newer_than(self.cursor.inode, self.cursor.last_line)
                os.close(self.cursor.fd)
            elif self._anchor is not None:
                newer = snapshot.newer_than(*self._anchor)
            else:
                newer = snapshot.rotated
            for file in newer:
                lines += file.lines()
            self.cursor = Cursor(snapshot.current.fd)
            snapshot.current = None
        finally:
            snapshot.close()
        return lines + self.cursor.read()


async def _blocking(function: Callable[[], T]) -> T:
    """``function()`` in a thread. When the caller is cancelled, the thread is waited for
    before the cancellation goes on: the file descriptors it reads must not be closed (and
    their numbers reused) under it."""
    future = asyncio.ensure_future(asyncio.to_thread(function))
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        with contextlib.suppress(BaseException):
            await future
        raise


async def _pause(stopped: asyncio.Event) -> None:
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(POLL):
            await stopped.wait()


async def read_log(path: Path, query: LogQuery, stopped: asyncio.Event) -> AsyncIterator[LogRecord]:
    """The records of the log ``path`` that ``query`` selects (see the module docstring)."""
    reader = LogReader(path, query)
    history = reader.history()
    try:
        await _blocking(reader.open)
        while batch := await _blocking(lambda: list(itertools.islice(history, BATCH))):
            for record in batch:
                yield record
        if not query.follow or reader.ended:
            return
        since, until = query.since_nano, query.until_nano
        while True:
            final = stopped.is_set() or (until is not None and time.time_ns() > until)
            records = await _blocking(reader.poll) if reader.has_news() else []
            for record in records:
                if since is not None and record.time_nano < since:
                    continue
                if until is not None and record.time_nano > until:
                    return
                yield record
            if records:
                continue
            if final:
                return
            await _pause(stopped)
    finally:
        history.close()
        reader.close()
