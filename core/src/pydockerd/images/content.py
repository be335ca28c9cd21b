"""The content store: blobs addressed by their sha256 digest, each written once and verified.

Layout under its root: ``blobs/sha256/<hex>`` for committed blobs, ``ingest/`` for blobs
being written and ``partial/<hex>`` for downloads that may be resumed (see
:mod:`pydockerd.images.blobsink`). A blob appears under its digest only once it is complete
and its digest was checked (write to ``ingest/`` or ``partial/``, fsync, rename), so a crash
never leaves a half-written blob under a real name; :meth:`ContentStore.clean_ingest` empties
``ingest/`` at start-up, and :meth:`ContentStore.clean_partials` drops stale partials.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, BinaryIO

from pydockerd.errors import InvalidParameter, NotFound
from pydockerd.fsutil import remove_tree

__all__ = ["ContentStore", "HashingReader", "IngestWriter", "sha256_digest"]

_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
_CHUNK = 1 << 20


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class HashingReader:
    """Wraps a readable stream and hashes every byte read through it."""

    def __init__(self, stream: IO[bytes]) -> None:
        self._stream = stream
        self._hash = hashlib.sha256()
        self.size = 0

    def read(self, size: int = -1) -> bytes:
        data = self._stream.read(size)
        self._hash.update(data)
        self.size += len(data)
        return data

    def readable(self) -> bool:
        return True

    def drain(self) -> None:
        """Read to the end, so the digest covers the whole stream."""
        while self.read(_CHUNK):
            pass

    @property
    def digest(self) -> str:
        return "sha256:" + self._hash.hexdigest()


class IngestWriter:
    """A blob being written: hashes as it goes, and commits under its digest."""

    def __init__(self, store: ContentStore, file: IO[bytes], path: Path) -> None:
        self._store = store
        self._file = file
        self._path = path
        self._hash = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self._file.write(data)
        self._hash.update(data)
        self.size += len(data)
        return len(data)

    def copy_from(self, stream: IO[bytes]) -> None:
        while chunk := stream.read(_CHUNK):
            self.write(chunk)

    @property
    def digest(self) -> str:
        return "sha256:" + self._hash.hexdigest()

    def commit(self, expected: str | None = None) -> str:
        """Verify the digest against ``expected`` (when given) and move the blob into place.

        :raises InvalidParameter: the content does not match ``expected``.
        """
        digest = self.digest
        if expected is not None and expected != digest:
            raise InvalidParameter(f"digest mismatch: expected {expected}, got {digest}")
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        target = self._store.path(digest)
        if target.exists():
            self._path.unlink()
        else:
            self._path.rename(target)
        return digest


class ContentStore:
    """Blobs by digest under ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._blobs = root / "blobs" / "sha256"
        self._ingest = root / "ingest"
        self.partials = root / "partial"
        """Interrupted downloads, kept across restarts to be resumed: ``partial/<hex>``."""
        self._blobs.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._ingest.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.partials.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._held: Counter[str] = Counter()

    def hold(self, digest: str) -> None:
        """Keep ``digest`` from garbage collection (a pull or push in progress uses it,
        before or without an image record that references it); once per :meth:`release`."""
        self._held[digest] += 1

    def release(self, digest: str) -> None:
        self._held[digest] -= 1
        if self._held[digest] <= 0:
            del self._held[digest]

    def held(self) -> set[str]:
        """The digests some operation holds (see :meth:`hold`)."""
        return set(self._held)

    def path(self, digest: str) -> Path:
        if not _DIGEST.fullmatch(digest):
            raise InvalidParameter(f"invalid digest {digest!r}")
        return self._blobs / digest.removeprefix("sha256:")

    def has(self, digest: str) -> bool:
        return self.path(digest).is_file()

    def open(self, digest: str) -> BinaryIO:
        try:
            return self.path(digest).open("rb")
        except FileNotFoundError:
            raise NotFound(f"blob {digest} not found") from None

    def read(self, digest: str) -> bytes:
        with self.open(digest) as f:
            return f.read()

    def size(self, digest: str) -> int:
        return self.path(digest).stat().st_size

    @contextmanager
    def ingest(self) -> Iterator[IngestWriter]:
        """A writer for a new blob; anything not committed when the block ends is removed."""
        fd, name = tempfile.mkstemp(dir=self._ingest)
        path = Path(name)
        file = os.fdopen(fd, "wb")
        try:
            yield IngestWriter(self, file, path)
        finally:
            if not file.closed:
                file.close()
            path.unlink(missing_ok=True)

    def write(self, data: bytes, expected: str | None = None) -> str:
        with self.ingest() as writer:
            writer.write(data)
            return writer.commit(expected)

    def delete(self, digest: str) -> None:
        self.path(digest).unlink(missing_ok=True)

    def digests(self) -> list[str]:
        return sorted("sha256:" + p.name for p in self._blobs.iterdir())

    def clean_ingest(self) -> None:
        remove_tree(self._ingest)
        self._ingest.mkdir(mode=0o700)

    def clean_partials(self, max_age: float = 86400.0) -> list[str]:
        """Delete the partial downloads not written to for ``max_age`` seconds (a day by
        default; called at start-up), those whose blob is stored by now, and the private ones
        (``<hex>.<random>``: a second download of a blob at the same time, never resumed);
        their names."""
        cutoff = time.time() - max_age
        dropped = []
        for path in self.partials.iterdir():
            try:
                stale = path.stat().st_mtime < cutoff
                hex_, private, _ = path.name.partition(".")
                digest = "sha256:" + hex_
                done = _DIGEST.fullmatch(digest) is not None and self.has(digest)
                if stale or done or private:
                    path.unlink()
                    dropped.append(path.name)
            except FileNotFoundError:
                continue
        return sorted(dropped)
