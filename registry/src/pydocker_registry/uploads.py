"""Blob upload sessions: streamed and chunked appends, hashed as they are written.

Request bodies are gathered into batches of :data:`BATCH` bytes; each batch is hashed and
written in worker threads (hashlib and file writes release the GIL) while the event loop
reads the next one, so a large push costs one thread hop per 8 MiB, not per socket read.
The running sha256 of each session lives in memory, keyed by the bytes it covers; when it is
missing or stale (another process served the previous chunk, a restart, a failed write) the
session's data is hashed again from storage. A session is served by one task at a time (a
lock per session, per process).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import time
import uuid
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Sequence
from dataclasses import dataclass

from pydocker_registry.errors import Code, RegistryError
from pydocker_registry.manifests import new_hasher
from pydocker_registry.storage import KeyNotFound, Writer
from pydocker_registry.store import RegistryStore

__all__ = ["BATCH", "Uploads"]

BATCH = 8 << 20


@dataclass
class _Progress:
    hasher: hashlib._Hash
    size: int


def _update(hasher: hashlib._Hash, chunks: Sequence[bytes]) -> None:
    for chunk in chunks:
        hasher.update(chunk)


class Uploads:
    """The upload sessions of one registry process."""

    def __init__(self, store: RegistryStore, *, max_blob_size: int | None = None) -> None:
        self.store = store
        self.storage = store.storage
        self.max_blob_size = max_blob_size
        self._progress: dict[str, _Progress] = {}
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}  # lock, tasks holding or waiting

    @staticmethod
    def _data_key(upload_id: str) -> str:
        return f"uploads/{upload_id}/data"

    async def start(self, name: str) -> str:
        upload_id = str(uuid.uuid4())
        info = {"name": name, "started": time.time()}
        await self.storage.put(f"uploads/{upload_id}/info", json.dumps(info).encode())
        return upload_id

    async def size(self, name: str, upload_id: str) -> int:
        """Bytes received so far; BLOB_UPLOAD_UNKNOWN unless the session is ``name``'s."""
        await self._check(name, upload_id)
        info = await self.storage.stat(self._data_key(upload_id))
        return info.size if info else 0

    async def append(
        self,
        name: str,
        upload_id: str,
        body: AsyncIterable[bytes],
        *,
        start: int | None = None,
    ) -> int:
        """Append the body; with ``start`` (a chunk's Content-Range) it must be the current
        size, else 416. Returns the new size."""
        async with self._lock(upload_id):
            await self._check(name, upload_id)
            writer = await self.storage.writer(self._data_key(upload_id))
            try:
                if start is not None and start != writer.size:
                    raise RegistryError.of(
                        Code.BLOB_UPLOAD_INVALID,
                        f"chunk starts at {start}, the upload has {writer.size} bytes",
                        status=416,
                    )
                await self._write(upload_id, writer, body)
                return writer.size
            finally:
                await writer.close()

    async def finish(
        self, name: str, upload_id: str, digest: str, body: AsyncIterable[bytes]
    ) -> int:
        """Append the body (the last chunk, maybe empty), verify ``digest`` and commit the
        blob to the repository. On a mismatch the session is cancelled and nothing is stored
        (DIGEST_INVALID). Returns the blob's size."""
        async with self._lock(upload_id):
            await self._check(name, upload_id)
            writer = await self.storage.writer(self._data_key(upload_id))
            try:
                await self._write(upload_id, writer, body)
            finally:
                await writer.close(sync=True)
            size = writer.size
            actual = await self._digest(upload_id, size, digest.partition(":")[0])
            if actual != digest:
                await self._forget(upload_id)
                raise RegistryError.of(
                    Code.DIGEST_INVALID,
                    f"the upload's digest is {actual}, not {digest}",
                    {"digest": digest},
                )
            await self.store.commit_blob(name, digest, self._data_key(upload_id))
            await self._forget(upload_id)
            return size

    async def cancel(self, name: str, upload_id: str) -> None:
        async with self._lock(upload_id):
            await self._check(name, upload_id)
            await self._forget(upload_id)

    async def discard(self, upload_id: str) -> None:
        """Remove the session whatever state it is in (one that failed before its id was
        given out)."""
        async with self._lock(upload_id):
            await self._forget(upload_id)

    # --- internals ----------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _lock(self, upload_id: str) -> AsyncIterator[None]:
        """Serve one request of the session at a time; the lock goes when nobody needs it."""
        lock, users = self._locks.get(upload_id, (asyncio.Lock(), 0))
        self._locks[upload_id] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[upload_id]
            if users == 1:
                del self._locks[upload_id]
            else:
                self._locks[upload_id] = (lock, users - 1)

    async def _check(self, name: str, upload_id: str) -> None:
        try:
            info = json.loads(await self.storage.get(f"uploads/{upload_id}/info"))
        except KeyNotFound:
            info = None
        if info is None or info.get("name") != name:
            raise RegistryError.of(Code.BLOB_UPLOAD_UNKNOWN, detail={"uuid": upload_id})

    async def _forget(self, upload_id: str) -> None:
        self._progress.pop(upload_id, None)
        await self.storage.delete(f"uploads/{upload_id}")

    async def _write(self, upload_id: str, writer: Writer, body: AsyncIterable[bytes]) -> None:
        progress = self._progress.pop(upload_id, None)
        if progress is None or progress.size != writer.size:
            progress = _Progress(await self._rehash(upload_id, writer.size, "sha256"), writer.size)
        pending: Awaitable[object] | None = None
        batch: list[bytes] = []
        batched, received = 0, writer.size

        def consume(chunks: list[bytes]) -> Awaitable[object]:
            return asyncio.gather(
                asyncio.to_thread(_update, progress.hasher, chunks), writer.write(chunks)
            )

        try:
            async for chunk in body:
                received += len(chunk)
                if self.max_blob_size is not None and received > self.max_blob_size:
                    raise RegistryError.of(
                        Code.SIZE_INVALID,
                        f"blobs are limited to {self.max_blob_size} bytes",
                        status=413,
                    )
                batch.append(chunk)
                batched += len(chunk)
                if batched >= BATCH:
                    if pending is not None:
                        await pending
                    pending, batch, batched = consume(batch), [], 0
            if pending is not None:
                await pending
            if batch:
                await consume(batch)
        finally:
            # A write still running when the body failed must end before the writer closes.
            if pending is not None:
                await asyncio.gather(pending, return_exceptions=True)
        progress.size = writer.size
        self._progress[upload_id] = progress

    async def _digest(self, upload_id: str, size: int, alg: str) -> str:
        progress = self._progress.get(upload_id)
        if alg == "sha256" and progress is not None and progress.size == size:
            return f"sha256:{progress.hasher.hexdigest()}"
        return f"{alg}:{(await self._rehash(upload_id, size, alg)).hexdigest()}"

    async def _rehash(self, upload_id: str, size: int, alg: str) -> hashlib._Hash:
        hasher = new_hasher(f"{alg}:")
        if size:
            batch: list[bytes] = []
            async for chunk in self.storage.read(self._data_key(upload_id), 0, size):
                batch.append(chunk)
                if len(batch) >= BATCH // (1 << 20):
                    await asyncio.to_thread(_update, hasher, batch)
                    batch = []
            await asyncio.to_thread(_update, hasher, batch)
        return hasher
