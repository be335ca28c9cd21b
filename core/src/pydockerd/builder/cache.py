"""The build cache as ``docker builder prune`` and ``docker system df`` see it.

A cache entry is one build step the builder remembers (see
:meth:`pydockerd.images.store.ImageStore.cached_step`); its image is an intermediate image
of the build. Pruning forgets entries and deletes the intermediate images only they kept:
untagged, used by no container, with no child image.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from pydockerd.images.service import ImageService
from pydockerd.images.store import CacheRecord

__all__ = ["BuildCache"]


def _rfc3339(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat().replace("+00:00", "Z")


def cache_id(record: CacheRecord) -> str:
    """The ID an entry is shown with (25 characters, like BuildKit's)."""
    return record.key.removeprefix("sha256:")[:25]


class BuildCache:
    """The build cache of one image service."""

    def __init__(self, images: ImageService) -> None:
        self.images = images

    def usage(self) -> list[dict[str, Any]]:
        """``BuildCache`` of ``GET /system/df``."""
        records = self.images.store.cached_steps()
        by_image = {record.image: record for record in records}
        return [
            {
                "ID": cache_id(record),
                "Parent": cache_id(by_image[record.parent]) if record.parent in by_image else "",
                "Parents": [],
                "Type": "regular",
                "Description": record.description,
                "InUse": bool(self.images.container_users(record.image)),
                "Shared": bool(self.images.store.refs_of(record.image)),
                "Size": record.size,
                "CreatedAt": _rfc3339(record.created),
                "LastUsedAt": _rfc3339(record.last_used),
                "UsageCount": record.usage_count,
            }
            for record in records
        ]

    async def prune(
        self, *, until_ns: int | None = None, keep_bytes: int = 0
    ) -> tuple[list[str], int]:
        """Forget the entries last used before ``until_ns`` (all without it), keeping the
        most recently used ones that fit in ``keep_bytes``; (their IDs, bytes freed)."""
        records = sorted(self.images.store.cached_steps(), key=lambda r: r.last_used, reverse=True)
        kept_bytes = 0
        chosen: list[CacheRecord] = []
        cutoff = until_ns / 1e9 if until_ns is not None else time.time() + 1
        for record in records:
            if record.last_used >= cutoff:
                continue
            if keep_bytes and kept_bytes + record.size <= keep_bytes:
                kept_bytes += record.size
                continue
            chosen.append(record)
        self.images.store.delete_cached_steps(record.key for record in chosen)
        remaining = {record.image for record in self.images.store.cached_steps()}
        candidates = {record.image for record in chosen} - remaining
        reclaimed = await self.images.remove_unused(candidates)
        return [cache_id(record) for record in chosen], reclaimed
