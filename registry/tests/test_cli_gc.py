"""``pydocker-registry gc`` as a real process on a store filled through the API: what a dry
run lists, what a run removes and the bytes it frees, and that the tagged image survives."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient
from pydocker_registry.app import make_app
from pydocker_registry.storage import open_storage
from pydocker_registry.testing import write_config

Client = Callable[[web.Application], Awaitable[TestClient[Any, Any]]]
MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"


def digest_of(data: bytes) -> str:
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


async def push(client: TestClient[Any, Any], name: str, tag: str) -> tuple[str, list[str]]:
    """A one-layer image; (manifest digest, [layer, config] digests)."""
    layer = os.urandom(4096)
    config = json.dumps(
        {"architecture": "amd64", "os": "linux", "id": os.urandom(8).hex()}
    ).encode()
    for blob in (layer, config):
        url = f"/v2/{name}/blobs/uploads/?digest={digest_of(blob)}"
        assert (await client.post(url, data=blob)).status == 201
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": MANIFEST_TYPE,
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": digest_of(config),
                "size": len(config),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": digest_of(layer),
                    "size": len(layer),
                }
            ],
        }
    ).encode()
    response = await client.put(
        f"/v2/{name}/manifests/{tag}", data=manifest, headers={"Content-Type": MANIFEST_TYPE}
    )
    assert response.status == 201
    return digest_of(manifest), [digest_of(layer), digest_of(config)]


def gc(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("PYDOCKER_REGISTRY_")}
    return subprocess.run(
        [sys.executable, "-m", "pydocker_registry.cli", "gc", "--config", str(config), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=environment,
        check=False,
    )


async def test_gc_removes_what_no_tag_keeps(aiohttp_client: Client, tmp_path: Path) -> None:
    config = write_config(tmp_path, "[gc]\ngrace_seconds = 60\n")
    storage = open_storage("filesystem", {"root": str(tmp_path / "data")})
    try:
        client = await aiohttp_client(make_app(storage))
        old_manifest, old_blobs = await push(client, "team/app", "v1")
        new_manifest, new_blobs = await push(client, "team/app", "v1")  # the tag moves on
    finally:
        await storage.close()
    hour_ago = time.time() - 3600
    for path in (tmp_path / "data").rglob("*"):
        os.utime(path, (hour_ago, hour_ago))

    kept = gc(config)  # the old manifest still exists, so it keeps its blobs
    assert kept.returncode == 0, kept.stderr
    assert kept.stdout.splitlines()[-1].startswith("removed 0 blobs, 0 manifests")

    dry = gc(config, "--dry-run", "--delete-untagged")
    assert dry.returncode == 0, dry.stderr
    lines = dry.stdout.splitlines()
    assert f"would remove manifest team/app@{old_manifest}" in lines
    for blob in old_blobs:
        assert f"would remove blob {blob}" in lines
    assert lines[-1].startswith("would remove 2 blobs, 1 manifests, 0 uploads; ")
    assert "bytes would be freed" in lines[-1]

    run = gc(config, "--delete-untagged")
    assert run.returncode == 0, run.stderr
    summary = run.stdout.splitlines()[-1]
    assert summary.startswith("removed 2 blobs, 1 manifests, 0 uploads; ")
    freed = int(summary.split("; ")[1].split()[0])
    assert freed >= 4096
    assert not any(new in run.stdout for new in [new_manifest, *new_blobs])

    again = gc(config, "--delete-untagged")
    assert again.stdout.splitlines()[-1].startswith("removed 0 blobs, 0 manifests")

    storage = open_storage("filesystem", {"root": str(tmp_path / "data")})
    try:
        client = await aiohttp_client(make_app(storage))
        response = await client.get("/v2/team/app/manifests/v1", headers={"Accept": MANIFEST_TYPE})
        assert response.status == 200
        assert response.headers["Docker-Content-Digest"] == new_manifest
        for blob in new_blobs:
            assert (await client.get(f"/v2/team/app/blobs/{blob}")).status == 200
        for blob in old_blobs:
            assert (await client.get(f"/v2/team/app/blobs/{blob}")).status == 404
    finally:
        await storage.close()


def test_gc_with_an_unusable_storage(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[storage]\nbackend = "nosuch"\n')
    result = gc(config)
    assert result.returncode == 1
    assert result.stderr.startswith("storage: unknown storage backend 'nosuch'")
