"""Image metadata in SQLite (WAL): images, tags, repo digests and layers.

Blobs (configs, manifests, layer tars) live in the :class:`~.content.ContentStore`; layer
trees live in the storage driver under a ``cache_id``. This database says which of them
belong to what. Every change is one transaction, so a daemon killed at any moment restarts
with each image either fully there or absent; what a crash leaves unreferenced (a layer
unpacked for an image never recorded, a blob never used) is removed at start-up by
:meth:`ImageService.collect_garbage <pydockerd.images.service.ImageService.collect_garbage>`.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from collections.abc import Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydockerd.dbutil import transaction

__all__ = ["CacheRecord", "ImageRecord", "ImageStore", "LayerRecord", "chain_ids"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS images (
    id TEXT PRIMARY KEY,          -- sha256:<config digest>
    top_layer TEXT,               -- chain ID of the last layer, NULL for an image without layers
    parent TEXT,                  -- image ID of the parent (local builds), or NULL
    manifest TEXT,                -- digest of the manifest the image came with, or NULL
    size INTEGER NOT NULL,        -- bytes of all its layers
    added REAL NOT NULL,          -- when this daemon got it
    last_tag_time TEXT            -- RFC 3339, Metadata.LastTagTime
);
CREATE TABLE IF NOT EXISTS refs (
    ref TEXT PRIMARY KEY,         -- docker.io/library/busybox:latest or ...@sha256:...
    image TEXT NOT NULL REFERENCES images(id),
    kind TEXT NOT NULL            -- 'tag' or 'digest'
);
CREATE INDEX IF NOT EXISTS refs_by_image ON refs(image);
CREATE TABLE IF NOT EXISTS layers (
    chain_id TEXT PRIMARY KEY,
    diff_id TEXT NOT NULL,
    parent TEXT,                  -- chain ID of the layer below, or NULL
    cache_id TEXT NOT NULL,       -- the storage driver's layer ID
    size INTEGER NOT NULL,        -- bytes of file content the layer adds
    blob TEXT                     -- digest of the layer tar in the content store (maybe compressed)
);
CREATE TABLE IF NOT EXISTS build_cache (
    key TEXT PRIMARY KEY,         -- sha256 of a build step: its parent image and all it depends on
    image TEXT NOT NULL,          -- the image the step made
    parent TEXT,                  -- the image it was made on (NULL: FROM scratch)
    description TEXT NOT NULL,    -- the step (its history line)
    size INTEGER NOT NULL,        -- bytes of the layer it added (0: config only)
    created REAL NOT NULL,
    last_used REAL NOT NULL,
    usage_count INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS blob_sources (
    digest TEXT NOT NULL,         -- a blob pulled from or pushed to a repository
    registry TEXT NOT NULL,       -- docker.io, 127.0.0.1:5000
    repository TEXT NOT NULL,     -- library/busybox
    PRIMARY KEY (digest, registry, repository)
);
"""


def chain_ids(diff_ids: Iterable[str]) -> list[str]:
    """The OCI chain IDs of a stack of layers: the first is its diff ID, each next one is
    ``sha256(parent_chain_id + " " + diff_id)``."""
    chain: list[str] = []
    for diff_id in diff_ids:
        if not chain:
            chain.append(diff_id)
        else:
            text = f"{chain[-1]} {diff_id}".encode()
            chain.append("sha256:" + hashlib.sha256(text).hexdigest())
    return chain


@dataclass(frozen=True)
class ImageRecord:
    id: str
    top_layer: str | None
    parent: str | None
    manifest: str | None
    size: int
    added: float
    last_tag_time: str | None


@dataclass(frozen=True)
class LayerRecord:
    chain_id: str
    diff_id: str
    parent: str | None
    cache_id: str
    size: int
    blob: str | None


@dataclass(frozen=True)
class CacheRecord:
    """One build step the cache remembers (``docker builder prune`` removes them)."""

    key: str
    image: str
    parent: str | None
    description: str
    size: int
    created: float
    last_used: float
    usage_count: int


class ImageStore:
    """The metadata database at ``path``. Used from the event loop's thread only."""

    def __init__(self, path: Path) -> None:
        self._db = sqlite3.connect(path, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        self._db.close()

    def transaction(self) -> AbstractContextManager[sqlite3.Connection]:
        """One atomic change: everything in the block, or nothing."""
        return transaction(self._db)

    # -- images ---------------------------------------------------------------------------

    def image(self, image_id: str) -> ImageRecord | None:
        row = self._db.execute(
            "SELECT id, top_layer, parent, manifest, size, added, last_tag_time "
            "FROM images WHERE id = ?",
            (image_id,),
        ).fetchone()
        return ImageRecord(*row) if row else None

    def images(self) -> list[ImageRecord]:
        rows = self._db.execute(
            "SELECT id, top_layer, parent, manifest, size, added, last_tag_time FROM images"
        ).fetchall()
        return [ImageRecord(*row) for row in rows]

    def ids_with_prefix(self, prefix: str) -> list[str]:
        escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        rows = self._db.execute(
            "SELECT id FROM images WHERE id LIKE ? ESCAPE '\\'", (escaped + "%",)
        ).fetchall()
        return [row[0] for row in rows]

    def children(self, image_id: str) -> list[str]:
        rows = self._db.execute("SELECT id FROM images WHERE parent = ?", (image_id,))
        return [row[0] for row in rows]

    @staticmethod
    def add_image(db: sqlite3.Connection, record: ImageRecord) -> None:
        db.execute(
            "INSERT OR REPLACE INTO images VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                record.id,
                record.top_layer,
                record.parent,
                record.manifest,
                record.size,
                record.added,
                record.last_tag_time,
            ),
        )

    @staticmethod
    def delete_image(db: sqlite3.Connection, image_id: str) -> None:
        db.execute("DELETE FROM refs WHERE image = ?", (image_id,))
        db.execute("DELETE FROM images WHERE id = ?", (image_id,))

    # -- references -----------------------------------------------------------------------

    def lookup(self, ref: str) -> str | None:
        row = self._db.execute("SELECT image FROM refs WHERE ref = ?", (ref,)).fetchone()
        return row[0] if row else None

    def refs_of(self, image_id: str, kind: str | None = None) -> list[str]:
        if kind is None:
            rows = self._db.execute(
                "SELECT ref FROM refs WHERE image = ? ORDER BY ref", (image_id,)
            )
        else:
            rows = self._db.execute(
                "SELECT ref FROM refs WHERE image = ? AND kind = ? ORDER BY ref", (image_id, kind)
            )
        return [row[0] for row in rows]

    def all_refs(self) -> dict[str, list[tuple[str, str]]]:
        """image ID -> [(ref, kind), ...]."""
        result: dict[str, list[tuple[str, str]]] = {}
        for ref, image, kind in self._db.execute("SELECT ref, image, kind FROM refs ORDER BY ref"):
            result.setdefault(image, []).append((ref, kind))
        return result

    @staticmethod
    def set_ref(db: sqlite3.Connection, ref: str, image_id: str, kind: str) -> None:
        db.execute("INSERT OR REPLACE INTO refs VALUES (?, ?, ?)", (ref, image_id, kind))

    @staticmethod
    def delete_ref(db: sqlite3.Connection, ref: str) -> None:
        db.execute("DELETE FROM refs WHERE ref = ?", (ref,))

    @staticmethod
    def touch_tag_time(db: sqlite3.Connection, image_id: str, when: str) -> None:
        db.execute("UPDATE images SET last_tag_time = ? WHERE id = ?", (when, image_id))

    def set_manifest(self, image_id: str, manifest: str) -> None:
        """Record the manifest made for pushing an image that had none."""
        with self.transaction() as db:
            db.execute("UPDATE images SET manifest = ? WHERE id = ?", (manifest, image_id))

    # -- the build cache: which image a build step made -------------------------------------

    def cached_step(self, key: str) -> str | None:
        """The image a step with this cache key made, if it is still there; counts the use."""
        row = self._db.execute(
            "SELECT c.image FROM build_cache c JOIN images i ON i.id = c.image WHERE c.key = ?",
            (key,),
        ).fetchone()
        if row is None:
            return None
        with self.transaction() as db:
            db.execute(
                "UPDATE build_cache SET last_used = ?, usage_count = usage_count + 1 WHERE key = ?",
                (time.time(), key),
            )
        return str(row[0])

    def add_cached_step(self, record: CacheRecord) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO build_cache VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    record.key,
                    record.image,
                    record.parent,
                    record.description,
                    record.size,
                    record.created,
                    record.last_used,
                    record.usage_count,
                ),
            )

    def cached_steps(self) -> list[CacheRecord]:
        rows = self._db.execute(
            "SELECT key, image, parent, description, size, created, last_used, usage_count "
            "FROM build_cache ORDER BY created"
        )
        return [CacheRecord(*row) for row in rows]

    def delete_cached_steps(self, keys: Iterable[str]) -> None:
        with self.transaction() as db:
            db.executemany("DELETE FROM build_cache WHERE key = ?", [(key,) for key in keys])

    # -- where blobs came from (cross-repository mounts on push) ---------------------------

    def add_blob_sources(self, digests: Iterable[str], registry: str, repository: str) -> None:
        with self.transaction() as db:
            db.executemany(
                "INSERT OR IGNORE INTO blob_sources VALUES (?, ?, ?)",
                [(digest, registry, repository) for digest in digests],
            )

    def blob_sources(self, digest: str, registry: str, *, exclude: str = "") -> list[str]:
        """Repositories of ``registry`` known to hold ``digest``, but ``exclude``."""
        rows = self._db.execute(
            "SELECT repository FROM blob_sources WHERE digest = ? AND registry = ? "
            "AND repository != ? ORDER BY repository",
            (digest, registry, exclude),
        )
        return [row[0] for row in rows]

    # -- layers ---------------------------------------------------------------------------

    def layer(self, chain_id: str) -> LayerRecord | None:
        row = self._db.execute(
            "SELECT chain_id, diff_id, parent, cache_id, size, blob FROM layers WHERE chain_id = ?",
            (chain_id,),
        ).fetchone()
        return LayerRecord(*row) if row else None

    def layers(self) -> list[LayerRecord]:
        rows = self._db.execute(
            "SELECT chain_id, diff_id, parent, cache_id, size, blob FROM layers"
        ).fetchall()
        return [LayerRecord(*row) for row in rows]

    def layer_chain(self, top: str | None) -> list[LayerRecord]:
        """The layers from the bottom up to ``top``."""
        chain: list[LayerRecord] = []
        while top is not None:
            record = self.layer(top)
            if record is None:
                break
            chain.append(record)
            top = record.parent
        return chain[::-1]

    def add_layer(self, record: LayerRecord) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT INTO layers VALUES (?, ?, ?, ?, ?, ?)",
                (
                    record.chain_id,
                    record.diff_id,
                    record.parent,
                    record.cache_id,
                    record.size,
                    record.blob,
                ),
            )

    def set_layer_blob(self, chain_id: str, blob: str) -> None:
        """The layer's content is now stored as ``blob`` (the same tar, compressed)."""
        with self.transaction() as db:
            db.execute("UPDATE layers SET blob = ? WHERE chain_id = ?", (blob, chain_id))

    def delete_layer(self, chain_id: str) -> None:
        with self.transaction() as db:
            db.execute("DELETE FROM layers WHERE chain_id = ?", (chain_id,))

    def layers_in_use(self) -> set[str]:
        """Chain IDs some image stands on."""
        used: set[str] = set()
        for image in self.images():
            used.update(layer.chain_id for layer in self.layer_chain(image.top_layer))
        return used

    # -- helpers --------------------------------------------------------------------------

    @staticmethod
    def dumps(value: Any) -> str:
        return json.dumps(value, separators=(",", ":"))
