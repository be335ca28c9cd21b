"""Review fixes of garbage collection: each test failed before its fix."""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path
from typing import Any

import pytest
from pydocker_registry import gc
from pydocker_registry.app import make_app
from pydocker_registry.gc import UPLOAD_MAX_AGE, collect_garbage
from pydocker_registry.storage import FilesystemStorage

from .conftest import Registry, descriptor, digest_of
from .test_gc import HOUR, age, manifest_for

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
NONDISTRIBUTABLE = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"


async def test_a_pushed_foreign_layer_a_manifest_references_is_kept(
    registry: Registry, storage: FilesystemStorage
) -> None:
    # docker with allow-nondistributable-artifacts pushes such layers like any other
    layer = b"a non-distributable layer"
    await registry.push_blob("repo", b"{}")
    digest = await registry.push_blob("repo", layer)
    manifest = {
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST,
        "config": descriptor("application/vnd.docker.container.image.v1+json", b"{}"),
        "layers": [descriptor(NONDISTRIBUTABLE, layer)],
    }
    await registry.put_manifest("repo", "t", json.dumps(manifest).encode(), DOCKER_MANIFEST)
    age(storage)
    report = await collect_garbage(storage)
    assert digest not in report.removed_blobs
    r = await registry.get(f"/v2/repo/blobs/{digest}")
    assert r.status == 200
    assert await r.read() == layer


async def test_what_a_kill_left_half_written_or_half_deleted_is_removed(
    registry: Registry, storage: FilesystemStorage
) -> None:
    await registry.push_image("repo", "v1")
    # a put killed before its rename, and an upload's directory killed mid-rmtree
    half_put = storage.root / "repositories/repo/_manifests/tags/.tmp-0123456789abcdef-v2"
    half_put.write_bytes(b"sha256:")
    doomed = storage.root / "uploads/.tmp-fedcba9876543210-0b5e3f"
    doomed.mkdir(parents=True)
    (doomed / "data").write_bytes(b"x" * 100_000)
    age(storage, 2 * UPLOAD_MAX_AGE)
    fresh = storage.root / "repositories/repo/.tmp-00000000000000ff-being-written"
    fresh.write_bytes(b"")
    slow = time.time() - 2 * HOUR  # a put still syncing: older than the grace period
    os.utime(fresh, (slow, slow))
    report = await collect_garbage(storage, dry_run=True)
    assert half_put.exists()
    report = await collect_garbage(storage)
    assert report.removed_temporaries == [
        "repositories/repo/_manifests/tags/.tmp-0123456789abcdef-v2",
        "uploads/.tmp-fedcba9876543210-0b5e3f",
    ]
    assert not half_put.exists()
    assert not doomed.exists()
    assert fresh.exists()  # younger than a day: maybe a put in progress
    r = await registry.get("/v2/repo/manifests/v1")
    assert r.status == 200


class _Collecting(FilesystemStorage):
    """A store that runs a collection with no grace period (another process, as far as
    this store is concerned) at a moment its subclass picks."""

    collected: list[str]

    async def collect(self) -> None:
        report = await collect_garbage(FilesystemStorage(self.root), grace_seconds=0)
        self.collected = report.removed_blobs


class _SlowManifestWrites(_Collecting):
    """A store where writing a manifest is slow, and a collection with no grace period
    runs while it is under way: the race of a PUT whose blob checks are past a collector's
    cutoff before its manifest shows (many layers, a loaded disk, grace_seconds = 0)."""

    async def put(self, key: str, data: bytes) -> None:
        if "/_manifests/revisions/" in key:
            await asyncio.sleep(0.2)
            await self.collect()
        await super().put(key, data)


async def test_a_manifest_put_racing_a_collector_never_stores_it_with_a_blob_gone(
    aiohttp_client: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(gc, "CLOCK_SLACK", 0.05)
    storage = _SlowManifestWrites(tmp_path / "store")
    registry = Registry(await aiohttp_client(make_app(storage)))
    config = await registry.push_blob("repo", b"{}")
    layer = await registry.push_blob("repo", b"layer")
    r = await registry.try_manifest("repo", "t", manifest_for(b"{}", [b"layer"]))
    assert storage.collected == sorted([config, layer])  # swept while the manifest was written
    assert r.status == 400  # was 201, with both blobs gone
    assert {e["code"] for e in (await r.json())["errors"]} == {"MANIFEST_BLOB_UNKNOWN"}
    assert (await registry.get("/v2/repo/manifests/t")).status == 404
    assert (
        await registry.get("/v2/repo/manifests/" + digest_of(manifest_for(b"{}", [b"layer"])))
    ).status == 404


class _CollectAfterMoves(_Collecting):
    """A collection runs right after each move into blobs/."""

    async def move(self, src: str, dst: str) -> None:
        await super().move(src, dst)
        if dst.startswith("blobs/"):
            await self.collect()


async def test_a_blob_committed_after_a_pause_is_not_collected_as_it_lands(
    aiohttp_client: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(gc, "CLOCK_SLACK", 0.05)
    storage = _CollectAfterMoves(tmp_path / "store")
    registry = Registry(await aiohttp_client(make_app(storage)))
    r = await registry.post("/v2/repo/blobs/uploads/")
    location = r.headers["Location"]
    assert (await registry.patch(location, data=b"layer")).status == 202
    age(storage)  # the client paused after its last chunk
    r = await registry.put(f"{location}?digest={digest_of(b'layer')}")
    assert r.status == 201
    assert storage.collected == []
    assert (await registry.get(f"/v2/repo/blobs/{digest_of(b'layer')}")).status == 200


class _CountingTagReads(FilesystemStorage):
    tag_reads = 0

    async def get(self, key: str) -> bytes:
        if "/_manifests/tags/" in key:
            self.tag_reads += 1
        return await super().get(key)


async def test_delete_untagged_reads_the_tags_a_few_times_not_once_per_manifest(
    aiohttp_client: Any, tmp_path: Path
) -> None:
    storage = _CountingTagReads(tmp_path / "store")
    registry = Registry(await aiohttp_client(make_app(storage)))
    for i in range(15):
        await registry.push_image("repo", f"t{i}", layers=0)
        await registry.push_image("repo", None, layers=0)
    age(storage)
    storage.tag_reads = 0
    report = await collect_garbage(storage, delete_untagged=True)
    assert len(report.removed_manifests) == 15
    assert len(report.kept_manifests) == 15
    assert storage.tag_reads <= 3 * 15  # it was 15 + 15 x 15: O(manifests x tags)
    for i in range(15):
        assert (await registry.get(f"/v2/repo/manifests/t{i}")).status == 200


async def test_the_blobs_of_a_manifest_gc_cannot_parse_are_kept_with_it(
    registry: Registry, storage: FilesystemStorage
) -> None:
    # stored by an older, laxer version (or edited by hand): gc keeps the manifest, and
    # must keep what it names, or the manifest it kept cannot be pulled
    config = await registry.push_blob("repo", b"{}")
    layer = await registry.push_blob("repo", b"layer")
    body = {"schemaVersion": 2, "config": {"digest": config}, "layers": [{"digest": layer}]}
    data = json.dumps(body).encode()
    revision = storage.root / f"repositories/repo/_manifests/revisions/sha256/{digest_of(data)[7:]}"
    revision.parent.mkdir(parents=True)
    revision.write_bytes(b"application/vnd.oci.image.manifest.v1+json\n" + data)
    age(storage)
    report = await collect_garbage(storage)
    assert report.removed_blobs == []
    assert (await registry.head(f"/v2/repo/blobs/{layer}")).status == 200
