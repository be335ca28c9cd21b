"""The daemon's :class:`~pydockerd.distribution.BlobSink`: registry transports write pulled
blobs into the :class:`~pydockerd.images.content.ContentStore` through it.

A download goes to ``<content root>/partial/<hex>`` (not ``ingest/``, which is emptied at
start-up), so a pull that stops halfway (the client went away, the daemon was killed) leaves
its bytes there and the next pull of the same blob resumes from them. A blob is renamed under
its digest only after :meth:`ContentPartial.commit` checked size and digest.

Hashing and writing happen off the event loop, in a thread of each download's own (its
*writer*): :meth:`ContentPartial.write` hands a piece over and returns an awaitable, so
parallel downloads hash on several cores (hashlib releases the GIL on large buffers) and the
loop never waits for sha256. The writer runs its jobs in the order they were given, so the
file and the hash always agree with :attr:`ContentPartial.offset`; the bytes an earlier
download left are hashed by the writer too, before the first new piece, not when the partial
is opened.

Two pulls of one blob at the same time do not share a file: the first holds an exclusive
``flock`` on ``partial/<hex>``; a second one writes ``partial/<hex>.<random>`` from zero
(dropped when it ends, committed or not).
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import os
import secrets
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from pydockerd.distribution import Descriptor
from pydockerd.errors import InvalidParameter
from pydockerd.images.content import ContentStore, sha256_digest

__all__ = ["ContentBlobSink", "ContentPartial"]

_CHUNK = 1 << 20


class ContentPartial:
    """One blob being downloaded (a :class:`~pydockerd.distribution.PartialBlob`).

    :attr:`offset` is what was handed to :meth:`write` (kept bytes included); the writer
    thread catches up with it in order. :meth:`close` waits for the writer's last job.
    """

    def __init__(self, store: ContentStore, descriptor: Descriptor, path: Path) -> None:
        self._store = store
        self._descriptor = descriptor
        self._path = path
        self._file: BinaryIO = path.open("a+b")
        self._hash = hashlib.sha256()
        self._offset = 0
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="partial-writer")
        self._closed = threading.Event()  # a kept prefix being hashed stops at close
        self._failure: BaseException | None = None
        self._generation = 0  # a restart stops the hashing of a kept prefix
        self.committed = False

    def lock(self) -> bool:
        """Take the file for this download; False when another download holds it."""
        try:
            fcntl.flock(self._file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def resume(self) -> None:
        """Keep what an earlier download left (hashed by the writer, not here); start over
        when it cannot be the blob's beginning (longer than the blob)."""
        kept = os.fstat(self._file.fileno()).st_size
        if kept > self._descriptor.size:
            self.restart()
            return
        self._offset = kept
        self._submit(self._hash_kept, kept, self._generation)

    def _hash_kept(self, kept: int, generation: int) -> None:
        fd, position = self._file.fileno(), 0
        while position < kept:
            if generation != self._generation:
                return  # restarted: the bytes are thrown away anyway
            if self._closed.is_set():
                raise InvalidParameter(f"download of {self._descriptor.digest} was closed")
            chunk = os.pread(fd, min(_CHUNK, kept - position), position)
            if not chunk:  # truncated behind our back: cannot be trusted
                raise InvalidParameter(f"partial download of {self._descriptor.digest} shrank")
            self._hash.update(chunk)
            position += len(chunk)

    @property
    def offset(self) -> int:
        return self._offset

    def _submit(self, job: Callable[..., None], *args: object) -> Future[None]:
        """Run ``job`` on the writer after the jobs before it; a failure is kept for commit
        (a write nobody awaited still fails the blob)."""

        def run() -> None:
            if self._failure is not None:
                raise self._failure
            try:
                job(*args)
            except BaseException as e:
                self._failure = e
                raise

        return self._writer.submit(run)

    def write(self, data: bytes) -> asyncio.Future[None]:
        """Append ``data``: hashed and written by the writer thread; await the result to
        hear of a failure (and to keep the queue short)."""
        self._offset += len(data)
        # shielded: a cancelled caller must not unqueue a piece the offset already counts
        return asyncio.shield(asyncio.wrap_future(self._submit(self._append, data)))

    def _append(self, data: bytes) -> None:
        self._file.write(data)
        self._hash.update(data)

    def restart(self) -> None:
        """Throw away what was written; the writer truncates the file after its earlier
        jobs, before any later write."""
        self._offset = 0
        self._generation += 1
        self._submit(self._truncate)

    def _truncate(self) -> None:
        self._file.seek(0)
        self._file.truncate()
        self._hash = hashlib.sha256()

    async def commit(self) -> None:
        await asyncio.wrap_future(self._writer.submit(self._commit))

    def _commit(self) -> None:
        if self._file.closed or self._closed.is_set():
            raise InvalidParameter(f"download of {self._descriptor.digest} was closed")
        expected = self._descriptor
        if self._failure is not None:
            failure, self._failure = self._failure, None
            self.discard()
            raise InvalidParameter(
                f"download of {expected.digest} failed to be written: {failure}"
            ) from failure
        digest = "sha256:" + self._hash.hexdigest()
        if digest != expected.digest or self._offset != expected.size:
            got = self._offset
            self.discard()
            raise InvalidParameter(
                f"content of {expected.digest} does not match its descriptor: got "
                f"{got} bytes with digest {digest}, expected {expected.size} bytes"
            )
        self._file.flush()
        os.fsync(self._file.fileno())
        target = self._store.path(expected.digest)
        self._path.replace(target)
        self._file.close()
        self.committed = True

    def discard(self) -> None:
        """Drop the file and what was written (on the writer thread)."""
        self._path.unlink(missing_ok=True)
        self._offset = 0
        self._truncate()

    def close(self) -> None:
        """Wait for the writer's last job (a kept prefix being hashed stops early), then
        close the file."""
        self._closed.set()
        self._writer.shutdown(wait=True)
        if not self._file.closed:
            self._file.flush()
            self._file.close()


class ContentBlobSink:
    """The content store as transports see it (a :class:`~pydockerd.distribution.BlobSink`),
    for one pull or push: every blob it stores, finds or opens is held in the store (kept from
    the garbage collection of ``rmi`` and ``image prune``) until :meth:`release`, so that a
    blob downloaded for an image that is not recorded yet, or being uploaded, stays."""

    def __init__(self, store: ContentStore) -> None:
        self.store = store
        self._held: set[str] = set()

    def hold(self, digest: str) -> None:
        if digest not in self._held:
            self._held.add(digest)
            self.store.hold(digest)

    def release(self) -> None:
        """The operation is over (recorded, or failed): its blobs may be collected."""
        for digest in self._held:
            self.store.release(digest)
        self._held.clear()

    def has(self, digest: str) -> bool:
        self.hold(digest)
        return self.store.has(digest)

    def open(self, digest: str) -> BinaryIO:
        self.hold(digest)
        return self.store.open(digest)

    def write(self, data: bytes, digest: str) -> None:
        actual = sha256_digest(data)
        if actual != digest:
            raise InvalidParameter(f"content of {digest} does not match: got {actual}")
        self.hold(digest)
        if not self.store.has(digest):
            self.store.write(data, digest)

    @contextmanager
    def partial(self, descriptor: Descriptor) -> Iterator[ContentPartial]:
        hex_ = self.store.path(descriptor.digest).name  # checks the digest's form
        self.hold(descriptor.digest)
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
