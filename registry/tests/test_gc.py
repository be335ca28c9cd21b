"""Garbage collection: what it removes and keeps, and its safety against concurrent pushes
(interleavings forced at the sweep's two steps, and pushes racing a collector thread)."""

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
from pydocker_registry.gc import collect_garbage
from pydocker_registry.storage import FilesystemStorage, KeyInfo

from .conftest import OCI_CONFIG, OCI_LAYER, Registry, descriptor, digest_of

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
HOUR = 3600.0


def age(storage: FilesystemStorage, seconds: float = 2 * HOUR) -> None:
    """Make everything in the store look ``seconds`` old."""
    then = time.time() - seconds
    for path in storage.root.rglob("*"):
        os.utime(path, (then, then))


def manifest_for(config: bytes, layers: list[bytes]) -> bytes:
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": descriptor(OCI_CONFIG, config),
            "layers": [descriptor(OCI_LAYER, layer) for layer in layers],
        }
    ).encode()


async def test_unreferenced_blobs_are_removed_referenced_kept(
    registry: Registry, storage: FilesystemStorage
) -> None:
    _, _, manifest = await registry.push_image("repo", "v1", layers=2)
    orphan = await registry.push_blob("repo", b"orphan" * 100)
    age(storage)
    report = await collect_garbage(storage)
    assert report.removed_blobs == [orphan]
    assert report.bytes_freed == 600
    referenced = {manifest["config"]["digest"], *(d["digest"] for d in manifest["layers"])}
    assert set(report.kept_blobs) == referenced
    assert (await registry.head(f"/v2/repo/blobs/{orphan}")).status == 404
    for digest in referenced:
        assert (await registry.head(f"/v2/repo/blobs/{digest}")).status == 200
    assert not list(storage.root.glob("repositories/repo/_layers/*/" + orphan[7:]))
    assert await storage.children("trash") == []


async def test_dry_run_removes_nothing(registry: Registry, storage: FilesystemStorage) -> None:
    orphan = await registry.push_blob("repo", b"orphan")
    age(storage)
    report = await collect_garbage(storage, dry_run=True)
    assert report.dry_run
    assert report.removed_blobs == [orphan]
    assert report.bytes_freed == 6
    assert (await registry.head(f"/v2/repo/blobs/{orphan}")).status == 200


async def test_blobs_within_the_grace_period_are_kept(
    registry: Registry, storage: FilesystemStorage
) -> None:
    orphan = await registry.push_blob("repo", b"young orphan")
    report = await collect_garbage(storage, grace_seconds=HOUR)
    assert report.removed_blobs == []
    assert report.kept_blobs == [orphan]
    age(storage)
    assert (await collect_garbage(storage, grace_seconds=HOUR)).removed_blobs == [orphan]


async def test_deleted_manifest_frees_its_blobs(
    registry: Registry, storage: FilesystemStorage
) -> None:
    digest, _, manifest = await registry.push_image("repo", "v1")
    assert (await registry.delete(f"/v2/repo/manifests/{digest}")).status == 202
    age(storage)
    report = await collect_garbage(storage)
    assert manifest["layers"][0]["digest"] in report.removed_blobs


async def test_delete_untagged_keeps_tagged_children_and_referrers(
    registry: Registry, storage: FilesystemStorage
) -> None:
    child, child_data, child_manifest = await registry.push_image("repo", None)
    index = await registry.push_index("repo", "multi", [(child, child_data)])
    untagged, _, untagged_manifest = await registry.push_image("repo", None)
    await registry.push_blob("repo", b"{}")
    signature = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": descriptor("application/vnd.oci.empty.v1+json", b"{}"),
            "layers": [],
            "subject": {"mediaType": OCI_MANIFEST, "digest": child, "size": len(child_data)},
        }
    ).encode()
    sig = await registry.put_manifest("repo", digest_of(signature), signature)
    age(storage)
    kept = await collect_garbage(storage)  # without delete_untagged every manifest stays
    assert kept.removed_manifests == []
    report = await collect_garbage(storage, delete_untagged=True)
    assert report.removed_manifests == [f"repo@{untagged}"]
    assert set(report.kept_manifests) == {f"repo@{d}" for d in (child, index, sig)}
    assert untagged_manifest["layers"][0]["digest"] in report.removed_blobs
    assert child_manifest["layers"][0]["digest"] in report.kept_blobs
    assert (await registry.get(f"/v2/repo/manifests/{untagged}")).status == 404
    assert (await registry.get(f"/v2/repo/manifests/{sig}")).status == 200


async def test_young_untagged_manifests_are_kept(
    registry: Registry, storage: FilesystemStorage
) -> None:
    untagged, _, _ = await registry.push_image("repo", None)
    report = await collect_garbage(storage, delete_untagged=True, grace_seconds=HOUR)
    assert report.kept_manifests == [f"repo@{untagged}"]


async def test_stale_upload_sessions_are_removed(
    registry: Registry, storage: FilesystemStorage
) -> None:
    r = await registry.post("/v2/repo/blobs/uploads/")
    await registry.patch(r.headers["Location"], data=b"partial")
    fresh = await registry.post("/v2/repo/blobs/uploads/")
    stale_id = r.headers["Docker-Upload-UUID"]
    then = time.time() - 3 * 24 * HOUR
    for path in (storage.root / "uploads" / stale_id).iterdir():
        os.utime(path, (then, then))
    (storage.root / "uploads" / stale_id / "info").write_text(json.dumps({"started": then}))
    report = await collect_garbage(storage)
    assert report.removed_uploads == [stale_id]
    assert (await registry.get(fresh.headers["Location"])).status == 204


async def test_trash_of_a_dead_run_is_recovered(
    registry: Registry, storage: FilesystemStorage
) -> None:
    """A run killed between its move and its re-check: a touched blob goes back."""
    digest, _, manifest = await registry.push_image("repo", "v1")
    layer = manifest["layers"][0]["digest"]
    key = f"blobs/sha256/{layer[7:9]}/{layer[7:]}/data"
    await storage.move(key, f"trash/sha256-{layer[7:]}-0123456789ab")
    await collect_garbage(storage)
    assert (await registry.head(f"/v2/repo/blobs/{layer}")).status == 200
    assert digest


# --- races -----------------------------------------------------------------------------


class PausingStorage(FilesystemStorage):
    """Pauses the collector at one step of its sweep (``pause_at``: "move", before it sets a
    blob aside, or "recheck", before it reads the mtime again) until ``resume`` is set."""

    def __init__(self, root: Path, pause_at: str) -> None:
        super().__init__(root)
        self.pause_at = pause_at
        self.paused = asyncio.Event()
        self.resume = asyncio.Event()

    async def _pause(self) -> None:
        self.paused.set()
        await self.resume.wait()

    async def move(self, src: str, dst: str) -> None:
        if self.pause_at == "move" and dst.startswith("trash/"):
            await self._pause()
        await super().move(src, dst)

    async def stat(self, key: str) -> KeyInfo | None:
        if self.pause_at == "recheck" and key.startswith("trash/"):
            await self._pause()
        return await super().stat(key)


async def _race(aiohttp_client: Any, tmp_path: Path, pause_at: str) -> tuple[Any, ...]:
    storage = PausingStorage(tmp_path / "s", pause_at)
    registry = Registry(await aiohttp_client(make_app(storage)))
    config, layer = b'{"os":"linux"}', os.urandom(500)
    await registry.push_blob("repo", config)
    await registry.push_blob("repo", layer)
    await registry.push_image("repo", "other")
    age(storage)
    gc = asyncio.create_task(collect_garbage(storage, grace_seconds=HOUR))
    await storage.paused.wait()
    data = manifest_for(config, [layer])
    r = await registry.try_manifest("repo", "v1", data, OCI_MANIFEST)
    storage.resume.set()
    report = await gc
    return registry, r, report, {digest_of(config), digest_of(layer)}


async def test_manifest_put_before_the_sweep_moves_a_blob_keeps_it(
    aiohttp_client: Any, tmp_path: Path
) -> None:
    """The PUT touched and found the blob; the collector's re-check sees the touch."""
    registry, put, report, blobs = await _race(aiohttp_client, tmp_path, "move")
    assert put.status == 201
    assert not blobs & set(report.removed_blobs)
    for blob in blobs:
        assert (await registry.head(f"/v2/repo/blobs/{blob}")).status == 200
    assert (await registry.get("/v2/repo/manifests/v1")).status == 200


async def test_manifest_put_while_a_blob_is_set_aside_fails(
    aiohttp_client: Any, tmp_path: Path
) -> None:
    """The blob is in the trash: the PUT's touch and check fail, so the PUT fails."""
    registry, put, report, blobs = await _race(aiohttp_client, tmp_path, "recheck")
    assert put.status == 400
    assert (await put.json())["errors"][0]["code"] == "MANIFEST_BLOB_UNKNOWN"
    assert blobs & set(report.removed_blobs)  # the one set aside when the PUT came
    assert (await registry.get("/v2/repo/manifests/v1")).status == 404


async def test_pushes_racing_a_collector_thread_never_lose_a_blob(
    aiohttp_client: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pushes run on the test's loop while collections with no grace period run in another
    thread (their own loop): every manifest that was accepted has all its blobs. The clock
    slack is cut to a few jiffies, so that blobs do get collected under the pushes."""
    monkeypatch.setattr(gc, "CLOCK_SLACK", 0.03)
    storage = FilesystemStorage(tmp_path / "s")
    registry = Registry(await aiohttp_client(make_app(storage)))
    stop = False

    def collector() -> int:
        runs = 0
        while not stop:
            report = asyncio.run(collect_garbage(FilesystemStorage(storage.root), grace_seconds=0))
            removed.extend(report.removed_blobs)
            runs += 1
        return runs

    accepted: list[tuple[str, list[str]]] = []
    removed: list[str] = []

    async def pusher(n: int) -> None:
        for i in range(15):
            config, layer = f'{{"n":"{n}-{i}"}}'.encode(), os.urandom(2000)
            await registry.push_blob("repo", config)
            await registry.push_blob("repo", layer)
            await asyncio.sleep(0.03 * (i % 4))  # some blobs age past the slack
            tag = f"t{n}-{i}"
            r = await registry.try_manifest("repo", tag, manifest_for(config, [layer]))
            if r.status == 201:
                accepted.append((tag, [digest_of(config), digest_of(layer)]))
            else:
                assert r.status == 400
                assert {e["code"] for e in (await r.json())["errors"]} == {"MANIFEST_BLOB_UNKNOWN"}

    thread = asyncio.ensure_future(asyncio.to_thread(collector))
    try:
        await asyncio.gather(*(pusher(n) for n in range(4)))
    finally:
        stop = True
        runs = await thread
    assert runs >= 1
    assert accepted
    assert removed, "no blob was collected: the race was not exercised"
    for _, blobs in accepted:
        for blob in blobs:
            assert (await registry.head(f"/v2/repo/blobs/{blob}")).status == 200, blob
    report = await collect_garbage(storage, grace_seconds=0)
    assert not {b for _, blobs in accepted for b in blobs} & set(report.removed_blobs)
