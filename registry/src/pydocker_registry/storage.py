"""Where the registry keeps its bytes: a small key/stream interface and the filesystem backend.

A :class:`StorageBackend` knows nothing of blobs, tags or repositories (that is
:mod:`pydocker_registry.store`); it stores byte strings under ``/``-separated keys, as an object
store does. Keys are relative, their components non-empty and never ``.`` or ``..``. A "prefix"
is a key whose children are listed or deleted, like a directory (on S3: a delimiter listing).

Backends are found by name through the entry-point group ``pydocker_registry.storage``
(:func:`open_storage`); each entry point names a class whose constructor takes the options.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import secrets
import shutil
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, BinaryIO

__all__ = [
    "ENTRY_POINT_GROUP",
    "FilesystemStorage",
    "KeyInfo",
    "KeyNotFound",
    "StorageBackend",
    "Writer",
    "open_storage",
]

ENTRY_POINT_GROUP = "pydocker_registry.storage"

_KEY = re.compile(r"^(?!\.\.?(/|$))[A-Za-z0-9_.:@+=-]+(/(?!\.\.?(/|$))[A-Za-z0-9_.:@+=-]+)*$")
READ_CHUNK = 1 << 20


class KeyNotFound(KeyError):
    """The key does not exist."""


@dataclass(frozen=True)
class KeyInfo:
    """What :meth:`StorageBackend.stat` knows of a key: its size and modification time
    (seconds since the epoch; set by a write, a move keeps it, :meth:`~StorageBackend.touch`
    renews it)."""

    size: int
    mtime: float


class Writer(ABC):
    """An open upload: appends data to one key that readers may not rely on until it is
    moved into place (the registry verifies a digest first). Not safe for concurrent use."""

    @property
    @abstractmethod
    def size(self) -> int:
        """Bytes written so far, including those of earlier writers of the same key."""

    @abstractmethod
    async def write(self, chunks: Sequence[bytes]) -> None:
        """Append the chunks, in order."""

    @abstractmethod
    async def close(self, *, sync: bool = False) -> None:
        """Finish this writer; with ``sync`` the data is durable when it returns (fsync)."""


class StorageBackend(ABC):
    """A key/stream store. Each method states the atomicity it guarantees; every method may
    be called concurrently from several tasks and several processes (registry replicas, the
    ``gc`` command) sharing one store."""

    @abstractmethod
    async def get(self, key: str) -> bytes:
        """The whole value of a small key. Raises :class:`KeyNotFound`."""

    @abstractmethod
    async def put(self, key: str, data: bytes) -> None:
        """Store a small value, replacing any: readers see the old value or the new one,
        whole, never a part (atomic; durable when it returns)."""

    @abstractmethod
    async def stat(self, key: str) -> KeyInfo | None:
        """The key's size and mtime, or None when it does not exist (or is a prefix)."""

    @abstractmethod
    async def touch(self, key: str) -> bool:
        """Set the key's mtime to now; False (and nothing created) when it does not exist."""

    @abstractmethod
    async def children(self, prefix: str) -> list[str]:
        """The names of the prefix's direct children (keys and prefixes), sorted; empty when
        there are none. ``""`` lists the top level."""

    @abstractmethod
    async def delete(self, key: str) -> None:
        """Remove the key, or the prefix and everything under it. A missing key is no error.
        Each key disappears atomically; a prefix's keys one by one."""

    @abstractmethod
    async def move(self, src: str, dst: str) -> None:
        """Move a key onto ``dst``, replacing it: ``dst`` shows the old value or the whole
        new one, never a part (atomic for readers of ``dst``). Raises :class:`KeyNotFound`."""

    @abstractmethod
    async def writer(self, key: str) -> Writer:
        """A :class:`Writer` appending to the key (created empty when missing)."""

    @abstractmethod
    def read(self, key: str, offset: int = 0, length: int | None = None) -> AsyncIterator[bytes]:
        """Stream ``length`` bytes (to the end when None) from ``offset``, in large chunks.
        Raises :class:`KeyNotFound` on first iteration when the key does not exist."""

    def local_path(self, key: str) -> Path | None:
        """A local file holding the key's value, for zero-copy serving (sendfile), or None
        (the default: the API streams :meth:`read`). The file is replaced, never modified,
        so a reader that opened it keeps a consistent value."""
        return None

    async def remove_temporaries(self, older_than: float, *, dry_run: bool = False) -> list[str]:
        """Remove what writes cut short left behind (a backend's own temporary files, older
        than ``older_than``, seconds since the epoch) and name it; garbage collection calls
        this. The default has none (an object store's put is atomic by itself)."""
        return []

    async def close(self) -> None:
        """Release connections; the default has none."""


def check_key(key: str) -> str:
    if not _KEY.match(key):
        raise ValueError(f"invalid storage key {key!r}")
    return key


class _FileWriter(Writer):
    def __init__(self, file: BinaryIO) -> None:
        self._file = file
        self._size = file.seek(0, os.SEEK_END)

    @property
    def size(self) -> int:
        return self._size

    async def write(self, chunks: Sequence[bytes]) -> None:
        await asyncio.to_thread(self._write, chunks)

    def _write(self, chunks: Sequence[bytes]) -> None:
        for chunk in chunks:
            view = memoryview(chunk)
            while view:
                done = self._file.write(view)
                view = view[done:]
                self._size += done

    async def close(self, *, sync: bool = False) -> None:
        await asyncio.to_thread(self._close, sync)

    def _close(self, sync: bool) -> None:
        try:
            if sync:
                os.fsync(self._file.fileno())
        finally:
            self._file.close()


class FilesystemStorage(StorageBackend):
    """Keys are files under ``root``; a put or move is a rename over the target after the
    data is synced, so a crash leaves the old value or the new one. Temporary files are
    ``.tmp-*`` beside their target; :meth:`children` hides them."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        if not self.root.is_absolute():
            raise ValueError(f"filesystem storage: root must be an absolute path, not {root!r}")
        self.root.mkdir(parents=True, exist_ok=True)

    def __repr__(self) -> str:
        return f"FilesystemStorage({str(self.root)!r})"

    def _path(self, key: str) -> Path:
        return self.root / check_key(key) if key else self.root

    async def get(self, key: str) -> bytes:
        path = self._path(key)
        try:
            return await asyncio.to_thread(path.read_bytes)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise KeyNotFound(key) from None

    async def put(self, key: str, data: bytes) -> None:
        await asyncio.to_thread(self._put, self._path(key), data)

    @staticmethod
    def _put(path: Path, data: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".tmp-{secrets.token_hex(8)}-{path.name}")
        try:
            with tmp.open("wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            tmp.replace(path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        _sync_dir(path.parent)

    async def stat(self, key: str) -> KeyInfo | None:
        return await asyncio.to_thread(self._stat, self._path(key))

    @staticmethod
    def _stat(path: Path) -> KeyInfo | None:
        try:
            st = path.stat()
        except (FileNotFoundError, NotADirectoryError):
            return None
        if not path.is_file():
            return None
        return KeyInfo(st.st_size, st.st_mtime)

    async def touch(self, key: str) -> bool:
        return await asyncio.to_thread(self._touch, self._path(key))

    @staticmethod
    def _touch(path: Path) -> bool:
        try:
            os.utime(path)
        except (FileNotFoundError, NotADirectoryError):
            return False
        return True

    async def children(self, prefix: str) -> list[str]:
        return await asyncio.to_thread(self._children, self._path(prefix))

    @staticmethod
    def _children(path: Path) -> list[str]:
        try:
            names = [p.name for p in path.iterdir()]
        except (FileNotFoundError, NotADirectoryError):
            return []
        return sorted(n for n in names if not n.startswith(".tmp-"))

    async def delete(self, key: str) -> None:
        await asyncio.to_thread(self._delete, self._path(key))

    def _delete(self, path: Path) -> None:
        if path == self.root:
            raise ValueError("refusing to delete the whole store")
        if path.is_dir() and not path.is_symlink():
            # Rename first, so that the prefix disappears at once and its keys with it.
            doomed = path.with_name(f".tmp-{secrets.token_hex(8)}-{path.name}")
            with contextlib.suppress(FileNotFoundError):
                path.rename(doomed)
                shutil.rmtree(doomed, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)

    async def move(self, src: str, dst: str) -> None:
        await asyncio.to_thread(self._move, self._path(src), self._path(dst), src)

    @staticmethod
    def _move(src: Path, dst: Path, key: str) -> None:
        dst.parent.mkdir(parents=True, exist_ok=True)
        try:
            src.replace(dst)
        except FileNotFoundError:
            raise KeyNotFound(key) from None
        _sync_dir(dst.parent)

    async def writer(self, key: str) -> Writer:
        path = self._path(key)

        def open_file() -> BinaryIO:
            path.parent.mkdir(parents=True, exist_ok=True)
            return path.open("ab", buffering=0)

        return _FileWriter(await asyncio.to_thread(open_file))

    async def read(
        self, key: str, offset: int = 0, length: int | None = None
    ) -> AsyncIterator[bytes]:
        path = self._path(key)
        try:
            file = await asyncio.to_thread(path.open, "rb")
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise KeyNotFound(key) from None
        try:
            file.seek(offset)
            left = length
            while left is None or left > 0:
                n = READ_CHUNK if left is None else min(READ_CHUNK, left)
                chunk = await asyncio.to_thread(file.read, n)
                if not chunk:
                    break
                if left is not None:
                    left -= len(chunk)
                yield chunk
        finally:
            file.close()

    def local_path(self, key: str) -> Path | None:
        return self._path(key)

    async def remove_temporaries(self, older_than: float, *, dry_run: bool = False) -> list[str]:
        """The ``.tmp-*`` files of puts and the ``.tmp-*`` directories of prefix deletes that
        a kill interrupted: :meth:`children` hides them, so nothing else would ever free
        them (an upload's directory may hold gigabytes)."""
        return await asyncio.to_thread(self._remove_temporaries, older_than, dry_run)

    def _remove_temporaries(self, older_than: float, dry_run: bool) -> list[str]:
        found = []
        for top, dirs, files in os.walk(self.root):
            for name in [*dirs, *files]:
                if not name.startswith(".tmp-"):
                    continue
                path = Path(top, name)
                with contextlib.suppress(FileNotFoundError):
                    if path.lstat().st_mtime >= older_than:
                        continue
                    found.append(str(path.relative_to(self.root)))
                    if not dry_run:
                        if path.is_dir() and not path.is_symlink():
                            shutil.rmtree(path, ignore_errors=True)
                        else:
                            path.unlink()
            dirs[:] = [d for d in dirs if not d.startswith(".tmp-")]
        return sorted(found)


def _sync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def open_storage(name: str, options: dict[str, Any]) -> StorageBackend:
    """The backend registered as ``name`` in the entry-point group ``pydocker_registry.storage``,
    built with ``options`` as keyword arguments. Raises ValueError for an unknown name or
    options the backend refuses."""
    found = {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}
    if name not in found:
        known = ", ".join(sorted(found)) or "none"
        raise ValueError(f"unknown storage backend {name!r} (installed: {known})")
    cls = found[name].load()
    try:
        backend = cls(**options)
    except TypeError as e:
        raise ValueError(f"storage backend {name!r}: bad options {sorted(options)}: {e}") from e
    if not isinstance(backend, StorageBackend):
        raise ValueError(f"storage backend {name!r} is not a StorageBackend: {cls!r}")
    return backend
