"""The files of one container's log: names, rotation, and reading them while they rotate.

Docker's layout: ``<id>-json.log`` is written; rotation renames it ``<id>-json.log.1``
(after moving ``.1`` to ``.2``, and so on, the oldest beyond ``max-file`` deleted); with
``compress`` the rotated files are gzipped to ``.1.gz``, ``.2.gz``, ... A reader opens
file descriptors, which stay valid whatever renames, compressions and deletions follow.
"""

from __future__ import annotations

import contextlib
import errno
import gzip
import os
import re
import shutil
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "Cursor",
    "LogFile",
    "Snapshot",
    "compress",
    "lines_backwards",
    "open_snapshot",
    "rotate",
]

CHUNK = 1 << 20
"""Bytes read at a time going forward."""
BLOCK = 64 << 10
"""Bytes read at a time going backwards (tail)."""
TMP_SUFFIX = ".tmp"


def _rotated_pattern(path: Path) -> re.Pattern[str]:
    return re.compile(re.escape(path.name) + r"\.([1-9][0-9]*)(\.gz)?")


def rotated(path: Path) -> list[tuple[int, Path]]:
    """The rotated files of the log ``path``, newest (``.1``) first. Where a file exists both
    plain and gzipped (its compression just finished), the gzipped one is listed."""
    pattern = _rotated_pattern(path)
    found: dict[int, Path] = {}
    try:
        names = os.listdir(path.parent)  # noqa: PTH208 - names, not paths
    except FileNotFoundError:
        return []
    for name in names:
        match = pattern.fullmatch(name)
        if match is not None:
            index = int(match.group(1))
            if match.group(2) or index not in found:
                found[index] = path.parent / name
    return sorted(found.items())


def _rename(source: Path, target: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        source.rename(target)


def rotate(path: Path, max_file: int) -> Path:
    """Move every rotated file of ``path`` one place older, deleting what would pass
    ``max_file`` files, then ``path`` to ``.1``; the new ``.1``."""
    for index, file in rotated(path):
        if index >= max_file - 1:
            file.unlink(missing_ok=True)
    for index in range(max_file - 2, 0, -1):
        for suffix in ("", ".gz"):
            _rename(
                path.with_name(f"{path.name}.{index}{suffix}"),
                path.with_name(f"{path.name}.{index + 1}{suffix}"),
            )
    first = path.with_name(path.name + ".1")
    path.rename(first)
    return first


def compress(source: Path) -> None:
    """Replace ``source`` by ``source.gz`` (gzip's fastest level: logs still shrink about
    tenfold and more): written under a temporary name, renamed into place, and only then
    ``source`` removed, so a reader finds one complete copy at any
    moment and a crash never leaves half a file under a real name."""
    target = source.with_name(source.name + ".gz")
    temporary = source.with_name(target.name + TMP_SUFFIX)
    try:
        with source.open("rb") as plain, temporary.open("wb") as raw:
            with gzip.GzipFile("", "wb", compresslevel=1, fileobj=raw, mtime=0) as packed:
                shutil.copyfileobj(plain, packed, CHUNK)
            raw.flush()
            os.fsync(raw.fileno())
        temporary.rename(target)
        source.unlink(missing_ok=True)
    finally:
        temporary.unlink(missing_ok=True)


def remove_leftovers(path: Path) -> None:
    """Delete what an interrupted compression left (``*.gz.tmp``)."""
    pattern = re.compile(re.escape(path.name) + r"\.[0-9]+\.gz" + re.escape(TMP_SUFFIX))
    try:
        names = os.listdir(path.parent)  # noqa: PTH208 - names, not paths
    except FileNotFoundError:
        return
    for name in names:
        if pattern.fullmatch(name):
            (path.parent / name).unlink(missing_ok=True)


# --------------------------------------------------------------------------------------
# reading


def complete_end(fd: int, size: int) -> int:
    """The offset just after the last ``\\n`` before ``size`` (0 if there is none): where the
    complete lines of a file being written end."""
    position = size
    while position > 0:
        start = max(0, position - BLOCK)
        block = os.pread(fd, position - start, start)
        newline = block.rfind(b"\n")
        if newline >= 0:
            return start + newline + 1
        position = start
    return 0


def lines_backwards(fd: int, end: int) -> Iterator[bytes]:
    """The non-empty lines of a plain file before offset ``end`` (a line boundary), last
    first, reading :data:`BLOCK` bytes at a time from the end."""
    position = end
    head = b""
    while position > 0:
        start = max(0, position - BLOCK)
        lines = (os.pread(fd, position - start, start) + head).split(b"\n")
        head = lines[0]  # continues before ``start``
        for line in reversed(lines[1:]):
            if line:
                yield line
        position = start
    if head:
        yield head


class Cursor:
    """Reads the complete lines of a plain file, forward from an offset."""

    def __init__(self, fd: int, offset: int = 0, last_line: bytes | None = None) -> None:
        self.fd = fd
        self.offset = offset
        self.last_line = last_line
        """The last complete line read (how a follower recognises its file once rotated)."""
        self.inode = os.fstat(fd).st_ino

    def has_more(self) -> bool:
        """Whether the file has grown past what was read (cheap: one ``fstat``)."""
        return os.fstat(self.fd).st_size > self.offset

    def read(self) -> list[bytes]:
        """The next complete lines, up to about :data:`CHUNK` bytes of them; ``[]`` at the
        end (an incomplete last line is left for when it is complete)."""
        size = CHUNK
        while True:
            chunk = os.pread(self.fd, size, self.offset)
            end = chunk.rfind(b"\n")
            if end >= 0:
                break
            if len(chunk) < size:
                return []
            size *= 2  # a line longer than a chunk
        self.offset += end + 1
        lines = [line for line in chunk[:end].split(b"\n") if line]
        if lines:
            self.last_line = lines[-1]
        return lines

    def __iter__(self) -> Iterator[bytes]:
        """Every complete line left, read a chunk at a time as they are taken."""
        while batch := self.read():
            yield from batch

    def read_all(self) -> list[bytes]:
        """Every complete line left."""
        return list(self)


@dataclass
class LogFile:
    """One open file of a log (plain or gzipped)."""

    fd: int
    compressed: bool

    def lines(self) -> Iterator[bytes]:
        """Every complete non-empty line, first to last."""
        if self.compressed:
            # a duplicate shares the file offset: start from the beginning every time
            with os.fdopen(os.dup(self.fd), "rb") as raw:
                raw.seek(0)
                try:
                    with gzip.GzipFile(fileobj=raw) as f:
                        for line in f:
                            if line.endswith(b"\n") and len(line) > 1:
                                yield line[:-1]
                except (OSError, EOFError, zlib.error):  # damaged: what could be read
                    return
        else:
            yield from Cursor(self.fd)

    def backwards(self, end: int | None = None) -> Iterator[bytes]:
        """The complete non-empty lines, last first (before ``end`` for a plain file)."""
        if self.compressed:
            yield from reversed(list(self.lines()))
        else:
            if end is None:
                end = complete_end(self.fd, os.fstat(self.fd).st_size)
            yield from lines_backwards(self.fd, end)

    def last_line(self) -> bytes | None:
        return next(self.backwards(), None)

    def close(self) -> None:
        """Close the file (once: the number may belong to another file afterwards)."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


@dataclass
class Snapshot:
    """The files of a log at one moment: rotated ones oldest first, then the current one
    (``None`` when there is none yet)."""

    rotated: list[LogFile] = field(default_factory=list)
    current: LogFile | None = None

    def files(self) -> list[LogFile]:
        return [*self.rotated, *([self.current] if self.current else [])]

    def close(self) -> None:
        for file in self.files():
            file.close()
        self.rotated, self.current = [], None

    def newer_than(self, inode: int, last_line: bytes | None) -> list[LogFile]:
        """The rotated files written after the file with ``inode`` whose last line was
        ``last_line`` (that file renamed, maybe compressed since), oldest first; all of them
        when that file is gone (rotated out), none when it cannot be recognised."""
        newer: list[LogFile] = []
        for file in reversed(self.rotated):
            if not file.compressed and os.fstat(file.fd).st_ino == inode:
                break
            if last_line is not None and file.last_line() == last_line:
                break
            newer.append(file)
        else:
            if last_line is None:
                return []
        return newer[::-1]


def _open(path: Path) -> int | None:
    try:
        return os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None


def open_snapshot(path: Path) -> Snapshot:
    """Open every file of the log ``path`` at one moment.

    The current file is opened first and checked again at the end: a rotation in between
    (it has another inode then) starts over, so the files never skip or repeat one.
    """
    for _ in range(100):
        snapshot = Snapshot()
        consistent = True
        try:
            fd = _open(path)
            if fd is not None:
                snapshot.current = LogFile(fd, compressed=False)
            for _index, file in reversed(rotated(path)):
                rotated_fd = _open(file)
                if rotated_fd is None:  # compressed or rotated out meanwhile
                    consistent = False
                    break
                snapshot.rotated.append(LogFile(rotated_fd, file.name.endswith(".gz")))
            if consistent:
                now = _open(path)
                if now is not None:
                    same = snapshot.current is not None and _same_file(now, snapshot.current.fd)
                    os.close(now)
                    consistent = same
                else:
                    consistent = snapshot.current is None
        except BaseException:
            snapshot.close()
            raise
        if consistent:
            return snapshot
        snapshot.close()
    raise OSError(errno.EAGAIN, f"{path} keeps rotating while it is opened")


def _same_file(fd_a: int, fd_b: int) -> bool:
    a, b = os.fstat(fd_a), os.fstat(fd_b)
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)
