"""The daemon's :class:`~pydockerd.distribution.BlobSink`: registry transports write pulled
blobs into the :class:`~pydockerd.images.content.ContentStore` through it.

A download goes to ``<content root>/partial/<hex>`` (not ``ingest/``, which is emptied at
start-up), so a pull that stops halfway (the client went away, the daemon was killed) leaves
its bytes there and the next pull of the same blob resumes from them. The running hash is
recomputed from the file when a partial is reopened. A blob is renamed under its digest only
after :meth:`ContentPartial.commit` checked size and digest.

Two pulls of one blob at the same time do not share a file: the first holds an exclusive
``flock`` on ``partial/<hex>``; a second one writes ``partial/<hex>.<random>`` from zero
(dropped when it ends, committed or not).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from pydockerd.distribution import Descriptor
from pydockerd.errors import InvalidParameter
from pydockerd.images.content import ContentStore, sha256_digest

__all__ = ["ContentBlobSink", "ContentPartial"]

_CHUNK = 1 << 20


class ContentPartial:
    """One blob being downloaded (a :class:`~pydockerd.distribution.PartialBlob`)."""

    def __init__(self, store: ContentStore, descriptor: Descriptor, path: Path) -> None:
        self._store = store
        self._descriptor = descriptor
        self._path = path
        self._file: BinaryIO = path.open("a+b")
        self._hash = hashlib.sha256()
        self._offset = 0
        self._closing = threading.Lock()  # commit may run in a thread while a cancel closes
        self.committed = False

    def lock(self) -> bool:
        """Take the file for this download; False when another download holds it."""
        try:
            fcntl.flock(self._file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def resume(self) -> None:
        """Hash what an earlier download left; start over when it cannot be the blob's
        beginning (longer than the blob)."""
        self._file.seek(0)
        while chunk := self._file.read(_CHUNK):
            self._hash.update(chunk)
            self._offset += len(chunk)
        if self._offset > self._descriptor.size:
            self.restart()

    @property
    def offset(self) -> int:
        return self._offset

    def write(self, data: bytes) -> None:
        self._file.write(data)
        self._hash.update(data)
        self._offset += len(data)

    def restart(self) -> None:
        self._file.seek(0)
        self._file.truncate()
        self._hash = hashlib.sha256()
        self._offset = 0

    def commit(self) -> None:
        with self._closing:
            self._commit()

    def _commit(self) -> None:
        if self._file.closed:
            raise InvalidParameter(f"download of {self._descriptor.digest} was closed")
        expected = self._descriptor
        digest = "sha256:" + self._hash.hexdigest()
        if digest != expected.digest or self._offset != expected.size:
            self.discard()
            raise InvalidParameter(
                f"content of {expected.digest} does not match its descriptor: got "
                f"{self._offset} bytes with digest {digest}, expected {expected.size} bytes"
            )
        self._file.flush()
        os.fsync(self._file.fileno())
        target = self._store.path(expected.digest)
        self._path.replace(target)
        self._file.close()
        self.committed = True

    def discard(self) -> None:
        """Drop the file and what was written."""
        self._path.unlink(missing_ok=True)
        self.restart()

    def close(self) -> None:
        with self._closing:
            if not self._file.closed:
                self._file.flush()
                self._file.close()


class ContentBlobSink:
    """The content store as transports see it (a :class:`~pydockerd.distribution.BlobSink`)."""

    def __init__(self, store: ContentStore) -> None:
        self.store = store

    def has(self, digest: str) -> bool:
        return self.store.has(digest)

    def open(self, digest: str) -> BinaryIO:
        return self.store.open(digest)

    def write(self, data: bytes, digest: str) -> None:
        actual = sha256_digest(data)
        if actual != digest:
            raise InvalidParameter(f"content of {digest} does not match: got {actual}")
        if not self.store.has(digest):
            self.store.write(data, digest)

    @contextmanager
    def partial(self, descriptor: Descriptor) -> Iterator[ContentPartial]:
        hex_ = self.store.path(descriptor.digest).name  # checks the digest's form
        path = self.store.partials / hex_
        blob = ContentPartial(self.store, descriptor, path)
        shared = blob.lock()
        if shared:
            blob.resume()
        else:  # another pull is downloading it: a private file, from zero
            blob.close()
            path = self.store.partials / f"{hex_}.{secrets.token_hex(4)}"
            blob = ContentPartial(self.store, descriptor, path)
        try:
            yield blob
        finally:
            blob.close()
            if not shared and not blob.committed:
                path.unlink(missing_ok=True)
