"""Review fixes of garbage collection: each test failed before its fix."""

from __future__ import annotations

import json

from pydocker_registry.gc import collect_garbage
from pydocker_registry.storage import FilesystemStorage

from .conftest import Registry, descriptor
from .test_gc import age

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
