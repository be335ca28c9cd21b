"""Review fixes of garbage collection: each test failed before its fix."""

from __future__ import annotations

import json
import os
import time

from pydocker_registry.gc import UPLOAD_MAX_AGE, collect_garbage
from pydocker_registry.storage import FilesystemStorage

from .conftest import Registry, descriptor
from .test_gc import HOUR, age

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
