"""Review fixes of the API: each test failed before its fix (see the commit that added it)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from pydocker_registry.app import make_app
from pydocker_registry.storage import FilesystemStorage

from .conftest import Registry, digest_of, error_codes

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
SCHEMA2_ONLY = {"Accept": DOCKER_MANIFEST}


async def _docker_list(registry: Registry, platforms: list[tuple[str, str]]) -> list[str]:
    """Push one schema 2 image per platform and a Docker manifest list ``multi`` of them;
    return the images' digests, then the list's."""
    children = []
    for os_, arch in platforms:
        digest, data, _ = await registry.push_image("repo", None, media_type=DOCKER_MANIFEST)
        children.append(
            {
                "mediaType": DOCKER_MANIFEST,
                "digest": digest,
                "size": len(data),
                "platform": {"os": os_, "architecture": arch},
            }
        )
    index = {"schemaVersion": 2, "mediaType": DOCKER_LIST, "manifests": children}
    data = json.dumps(index).encode()
    digest = await registry.put_manifest("repo", "multi", data, DOCKER_LIST)
    return [c["digest"] for c in children] + [digest]


async def test_manifest_list_by_tag_for_a_schema2_only_client_is_its_amd64_manifest(
    registry: Registry,
) -> None:
    arm, amd, listed = await _docker_list(registry, [("linux", "arm64"), ("linux", "amd64")])
    for method in (registry.get, registry.head):
        r = await method("/v2/repo/manifests/multi", headers=SCHEMA2_ONLY)
        assert r.status == 200
        assert r.headers["Content-Type"] == DOCKER_MANIFEST
        assert r.headers["Docker-Content-Digest"] == amd
    # by digest the list itself (nothing else matches the digest), and to list-aware clients
    r = await registry.get(f"/v2/repo/manifests/{listed}", headers=SCHEMA2_ONLY)
    assert r.headers["Docker-Content-Digest"] == listed
    both = {"Accept": f"{DOCKER_MANIFEST}, {DOCKER_LIST}"}
    r = await registry.get("/v2/repo/manifests/multi", headers=both)
    assert r.headers["Docker-Content-Digest"] == listed
    # no Accept at all, or */*: whatever is stored
    r = await registry.get("/v2/repo/manifests/multi", headers={"Accept": "*/*"})
    assert r.headers["Docker-Content-Digest"] == listed
    assert arm != amd


async def test_manifest_list_without_amd64_for_a_schema2_only_client_is_unknown(
    registry: Registry,
) -> None:
    await _docker_list(registry, [("linux", "arm64")])
    r = await registry.get("/v2/repo/manifests/multi", headers=SCHEMA2_ONLY)
    assert r.status == 404
    assert await error_codes(r) == ["MANIFEST_UNKNOWN"]


async def test_oci_manifest_and_index_for_a_client_that_cannot_read_them_are_unknown(
    registry: Registry,
) -> None:
    digest, data, _ = await registry.push_image("repo", "image")
    await registry.push_index("repo", "index", [(digest, data)])
    for tag in ("image", "index"):
        r = await registry.get(f"/v2/repo/manifests/{tag}", headers=SCHEMA2_ONLY)
        assert r.status == 404, tag
        assert await error_codes(r) == ["MANIFEST_UNKNOWN"]
    r = await registry.get("/v2/repo/manifests/index", headers={"Accept": f"{OCI_INDEX};q=0.5"})
    assert r.status == 200
    # a schema 2 manifest is served to anyone (distribution: "supported by default")
    await registry.push_image("repo", "docker", media_type=DOCKER_MANIFEST)
    r = await registry.get("/v2/repo/manifests/docker", headers={"Accept": OCI_MANIFEST})
    assert r.status == 200


async def test_absurd_page_sizes_are_all_or_400_not_500(registry: Registry) -> None:
    for tag in ("a", "b"):
        await registry.push_image("repo", tag)
    r = await registry.get("/v2/repo/tags/list", params={"n": "9" * 5000})
    assert r.status == 200
    assert (await r.json())["tags"] == ["a", "b"]
    r = await registry.get("/v2/_catalog", params={"n": "1" + "0" * 30})
    assert r.status == 200
    for bad in ("²", "-1", "1e3"):  # "²".isdigit() is true, int("²") fails
        r = await registry.get("/v2/repo/tags/list", params={"n": bad})
        assert r.status == 400, bad
        assert await error_codes(r) == ["PAGINATION_NUMBER_INVALID"]


async def test_a_content_range_with_absurd_numbers_is_416_not_500(registry: Registry) -> None:
    r = await registry.post("/v2/repo/blobs/uploads/")
    location = r.headers["Location"]
    huge = "9" * 4400  # int() refuses more than 4300 digits
    for value in (f"0-{huge}", f"{huge[:3000]}-{huge[:3001]}", "\u0660-\u0663"):  # \\d takes these
        r = await registry.patch(location, data=b"abcd", headers={"Content-Range": value})
        assert r.status == 416, value[:30]
    r = await registry.patch(location, data=b"abcd", headers={"Content-Range": "0-3"})
    assert r.status == 202


async def test_a_failed_monolithic_upload_leaves_no_session_behind(
    aiohttp_client: Callable[..., Awaitable[TestClient[Any, Any]]], storage: FilesystemStorage
) -> None:
    client = await aiohttp_client(make_app(storage, max_blob_size=10))
    data = b"x" * 100
    r = await client.post(f"/v2/repo/blobs/uploads/?digest={digest_of(data)}", data=data)
    assert r.status == 413
    # its id was never given out: nobody could finish or cancel it
    assert await storage.children("uploads") == []


class _Crashing(FilesystemStorage):
    """A store whose ``crash_at``-th put or delete (counting from 1 once armed) fails, as a
    kill between two writes would leave it."""

    crash_at = 0
    calls = 0

    def _step(self) -> None:
        if self.crash_at:
            self.calls += 1
            if self.calls == self.crash_at:
                raise OSError("killed here")

    async def put(self, key: str, data: bytes) -> None:
        self._step()
        await super().put(key, data)

    async def delete(self, key: str) -> None:
        self._step()
        await super().delete(key)


async def _referrers(registry: Registry, subject: str) -> list[str]:
    r = await registry.get(f"/v2/repo/referrers/{subject}")
    return [m["digest"] for m in (await r.json())["manifests"]]


@pytest.mark.parametrize("crash_at", [1, 2])
async def test_a_manifest_put_or_delete_cut_short_never_half_shows_a_referrer(
    aiohttp_client: Callable[..., Awaitable[TestClient[Any, Any]]], tmp_path: Path, crash_at: int
) -> None:
    storage = _Crashing(tmp_path / "store")
    registry = Registry(await aiohttp_client(make_app(storage)))
    subject, _, _ = await registry.push_image("repo", "v1")
    config = await registry.push_blob("repo", b"{}")
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.example", "digest": config, "size": 2},
        "layers": [],
        "subject": {"mediaType": OCI_MANIFEST, "digest": subject, "size": 1},
    }
    data = json.dumps(manifest).encode()
    digest = digest_of(data)

    async def consistent() -> bool:
        stored = (await registry.head(f"/v2/repo/manifests/{digest}")).status == 200
        return stored == (digest in await _referrers(registry, subject))

    storage.crash_at, storage.calls = crash_at, 0  # the referrers entry and the manifest
    r = await registry.try_manifest("repo", digest, data)
    assert r.status == 500
    assert await consistent()
    storage.crash_at = 0
    await registry.put_manifest("repo", digest, data)
    assert await _referrers(registry, subject) == [digest]
    storage.crash_at, storage.calls = crash_at, 0  # the manifest and the referrers entry
    r = await registry.delete(f"/v2/repo/manifests/{digest}")
    assert r.status == 500
    assert await consistent()


class _CountingStats(FilesystemStorage):
    """Records how many stats run at once."""

    running = 0
    most = 0

    async def stat(self, key: str) -> Any:
        self.running += 1
        self.most = max(self.most, self.running)
        try:
            await asyncio.sleep(0.001)  # a round trip (an object store's HEAD)
            return await super().stat(key)
        finally:
            self.running -= 1


async def test_a_manifest_with_many_layers_checks_them_concurrently(
    aiohttp_client: Callable[..., Awaitable[TestClient[Any, Any]]], tmp_path: Path
) -> None:
    storage = _CountingStats(tmp_path / "store")
    registry = Registry(await aiohttp_client(make_app(storage)))
    _, data, _ = await registry.push_image("repo", "t", layers=40)
    storage.most = 0
    await registry.put_manifest("repo", "again", data)
    # one round trip at a time made 5000 layers take 2.5 s on a local disk
    assert storage.most > 8
