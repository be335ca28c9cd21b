"""The registry's content model on a :class:`~pydocker_registry.storage.StorageBackend`.

Storage layout (keys)::

    blobs/<alg>/<hh>/<hex>/data                        blob bytes, shared by all repositories
    repositories/<name>/_layers/<alg>/<hex>            the repository holds the blob (a link)
    repositories/<name>/_manifests/revisions/<alg>/<hex>   "<media type>\\n" + manifest bytes
    repositories/<name>/_manifests/tags/<tag>          the digest the tag points at
    repositories/<name>/_referrers/<alg>/<hex>/<alg>-<hex>  referrers index entry (JSON) of a
                                                       manifest whose subject is <alg>:<hex>
    uploads/<id>/info, uploads/<id>/data               an upload session and its bytes so far

A blob's mtime is its "last referenced" time: a committed upload, a mount and every manifest
PUT that references it renew it (:meth:`RegistryStore.touch_blob`); the garbage collector
spares blobs younger than its grace period (see :mod:`pydocker_registry.gc`).

Every key is written whole (put or move), so a crash never leaves a half-written blob,
manifest or tag visible; a manifest is stored before a tag points at it.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from pydocker_registry.manifests import Manifest, referrer_descriptor
from pydocker_registry.storage import KeyInfo, KeyNotFound, StorageBackend

__all__ = ["RegistryStore", "StoredManifest"]

StoredManifest = tuple[str, bytes]
"""A manifest's media type and its exact bytes."""


def _split(digest: str) -> tuple[str, str]:
    alg, _, encoded = digest.partition(":")
    return alg, encoded


class RegistryStore:
    """Blobs, manifests, tags and referrers of every repository. Names, tags and digests are
    validated by the caller (the API); this layer maps them to keys."""

    def __init__(self, storage: StorageBackend) -> None:
        self.storage = storage

    # --- keys ---------------------------------------------------------------------------

    @staticmethod
    def blob_key(digest: str) -> str:
        alg, encoded = _split(digest)
        return f"blobs/{alg}/{encoded[:2]}/{encoded}/data"

    @staticmethod
    def _layer_key(name: str, digest: str) -> str:
        alg, encoded = _split(digest)
        return f"repositories/{name}/_layers/{alg}/{encoded}"

    @staticmethod
    def _revision_key(name: str, digest: str) -> str:
        alg, encoded = _split(digest)
        return f"repositories/{name}/_manifests/revisions/{alg}/{encoded}"

    @staticmethod
    def _tag_key(name: str, tag: str) -> str:
        return f"repositories/{name}/_manifests/tags/{tag}"

    @staticmethod
    def _referrers_prefix(name: str, subject: str) -> str:
        alg, encoded = _split(subject)
        return f"repositories/{name}/_referrers/{alg}/{encoded}"

    def _referrer_key(self, name: str, subject: str, digest: str) -> str:
        return f"{self._referrers_prefix(name, subject)}/{digest.replace(':', '-')}"

    # --- blobs --------------------------------------------------------------------------

    async def blob_info(self, name: str, digest: str) -> KeyInfo | None:
        """The blob's size and mtime if the repository holds it."""
        if await self.storage.stat(self._layer_key(name, digest)) is None:
            return None
        return await self.storage.stat(self.blob_key(digest))

    async def touch_blob(self, digest: str) -> bool:
        """Renew the blob's "last referenced" time; False when it is gone."""
        return await self.storage.touch(self.blob_key(digest))

    async def commit_blob(self, name: str, digest: str, data_key: str) -> None:
        """Move verified upload data into place and link it into the repository. The data
        is touched first: its mtime is its last write, maybe older than a collector's
        cutoff (a client that paused before its final PUT), and the blob must not show
        with it even for a moment."""
        await self.storage.touch(data_key)
        await self.storage.move(data_key, self.blob_key(digest))
        await self.link_blob(name, digest)

    async def link_blob(self, name: str, digest: str) -> None:
        await self.touch_blob(digest)
        await self.storage.put(self._layer_key(name, digest), digest.encode())

    async def mount_blob(self, name: str, source: str, digest: str) -> bool:
        """Link a blob ``source`` holds into ``name``; False when ``source`` lacks it."""
        if await self.blob_info(source, digest) is None:
            return False
        await self.link_blob(name, digest)
        return await self.storage.stat(self.blob_key(digest)) is not None

    async def _delete_key(self, key: str) -> bool:
        """Delete the key; False when it was not there."""
        if await self.storage.stat(key) is None:
            return False
        await self.storage.delete(key)
        return True

    async def unlink_blob(self, name: str, digest: str) -> bool:
        """Remove the blob from the repository (its bytes stay until garbage collection)."""
        return await self._delete_key(self._layer_key(name, digest))

    async def linked_blobs(self, name: str) -> list[str]:
        """The digests of the blobs the repository links (even if their bytes are gone)."""
        return await self._digests(f"repositories/{name}/_layers")

    async def all_blobs(self) -> AsyncIterator[str]:
        """Every stored blob's digest."""
        for alg in await self.storage.children("blobs"):
            for shard in await self.storage.children(f"blobs/{alg}"):
                for encoded in await self.storage.children(f"blobs/{alg}/{shard}"):
                    yield f"{alg}:{encoded}"

    # --- manifests ----------------------------------------------------------------------

    async def get_manifest(self, name: str, digest: str) -> StoredManifest | None:
        try:
            raw = await self.storage.get(self._revision_key(name, digest))
        except KeyNotFound:
            return None
        media_type, _, data = raw.partition(b"\n")
        return media_type.decode(), data

    async def has_manifest(self, name: str, digest: str) -> bool:
        return await self.storage.stat(self._revision_key(name, digest)) is not None

    async def manifest_info(self, name: str, digest: str) -> KeyInfo | None:
        return await self.storage.stat(self._revision_key(name, digest))

    async def put_manifest(self, name: str, digest: str, data: bytes, manifest: Manifest) -> None:
        """Store the manifest's referrers entry when it has a subject, then the manifest
        (each atomically). An entry shows only while its manifest exists (see
        :meth:`referrers`), so a crash between the two leaves neither visible."""
        if manifest.subject is not None:
            entry = referrer_descriptor(manifest, digest, len(data))
            await self.storage.put(
                self._referrer_key(name, manifest.subject.digest, digest),
                json.dumps(entry).encode(),
            )
        raw = manifest.media_type.encode() + b"\n" + data
        await self.storage.put(self._revision_key(name, digest), raw)

    async def delete_manifest(
        self, name: str, digest: str, manifest: Manifest | None, *, untag: bool = True
    ) -> None:
        """Remove the tags pointing at the manifest (unless ``untag`` is False: the caller
        knows of none), the manifest, then its referrers entry (hidden from the moment the
        manifest is gone)."""
        for tag in (await self.tags(name) or []) if untag else []:
            if await self.resolve_tag(name, tag) == digest:
                await self.storage.delete(self._tag_key(name, tag))
        await self.storage.delete(self._revision_key(name, digest))
        if manifest is not None and manifest.subject is not None:
            await self.storage.delete(self._referrer_key(name, manifest.subject.digest, digest))

    async def manifests(self, name: str) -> list[str]:
        return await self._digests(f"repositories/{name}/_manifests/revisions")

    async def referrers(self, name: str, subject: str) -> list[dict[str, Any]]:
        """The referrers index entries of the manifests whose subject is ``subject`` (an
        entry whose manifest is missing, left by a crash or being written, is skipped)."""
        prefix = self._referrers_prefix(name, subject)
        entries = []
        for child in await self.storage.children(prefix):
            try:
                entry = json.loads(await self.storage.get(f"{prefix}/{child}"))
            except KeyNotFound:  # deleted meanwhile
                continue
            if await self.has_manifest(name, str(entry.get("digest"))):
                entries.append(entry)
        return entries

    # --- tags and repositories ----------------------------------------------------------

    async def resolve_tag(self, name: str, tag: str) -> str | None:
        try:
            return (await self.storage.get(self._tag_key(name, tag))).decode()
        except KeyNotFound:
            return None

    async def put_tag(self, name: str, tag: str, digest: str) -> None:
        await self.storage.put(self._tag_key(name, tag), digest.encode())

    async def delete_tag(self, name: str, tag: str) -> bool:
        return await self._delete_key(self._tag_key(name, tag))

    async def tags(self, name: str) -> list[str] | None:
        """The repository's tags, sorted, or None when the repository does not exist."""
        children = await self.storage.children(f"repositories/{name}")
        if not any(c.startswith("_") for c in children):  # only nested repositories
            return None
        return await self.storage.children(f"repositories/{name}/_manifests/tags")

    async def repositories(self) -> list[str]:
        """Every repository's name, sorted (components never start with ``_``)."""
        found: list[str] = []

        async def walk(prefix: str, name: str) -> None:
            children = await self.storage.children(prefix)
            if any(c.startswith("_") for c in children):
                found.append(name)
            for child in children:
                if not child.startswith("_"):
                    await walk(f"{prefix}/{child}", f"{name}/{child}" if name else child)

        await walk("repositories", "")
        return sorted(found)

    async def _digests(self, prefix: str) -> list[str]:
        return [
            f"{alg}:{encoded}"
            for alg in await self.storage.children(prefix)
            for encoded in await self.storage.children(f"{prefix}/{alg}")
        ]
