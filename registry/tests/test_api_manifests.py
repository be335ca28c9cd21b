"""Manifest push and pull: the four manifest types, validation, references, the size limit,
and a tag read while it is rewritten."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from .conftest import OCI_CONFIG, OCI_LAYER, Registry, descriptor, digest_of, error_codes

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
ACCEPT = {"Accept": OCI_MANIFEST}


async def test_get_manifest_by_tag_and_digest_returns_200(registry: Registry) -> None:
    digest, data, _ = await registry.push_image("repo", "v1")
    for reference in ("v1", digest):
        r = await registry.get(f"/v2/repo/manifests/{reference}", headers=ACCEPT)
        assert r.status == 200
        assert r.headers["Content-Type"] == OCI_MANIFEST
        assert r.headers["Docker-Content-Digest"] == digest
        assert await r.read() == data
        r = await registry.head(f"/v2/repo/manifests/{reference}", headers=ACCEPT)
        assert r.status == 200
        assert r.headers["Content-Length"] == str(len(data))
        assert r.headers["Docker-Content-Digest"] == digest


async def test_get_missing_manifest_returns_404(registry: Registry) -> None:
    await registry.push_image("repo", "v1")
    for reference in ("nope", digest_of(b"nope")):
        r = await registry.get(f"/v2/repo/manifests/{reference}", headers=ACCEPT)
        assert r.status == 404
        assert await error_codes(r) == ["MANIFEST_UNKNOWN"]
        assert (await registry.head(f"/v2/repo/manifests/{reference}")).status == 404


async def test_get_manifest_totallywrong_digest_returns_400_with_error_body(
    registry: Registry,
) -> None:
    r = await registry.get("/v2/repo/manifests/sha256:totallywrong", headers=ACCEPT)
    assert r.status == 400
    assert await error_codes(r) == ["DIGEST_INVALID"]


async def test_put_manifest_returns_201_with_location(registry: Registry) -> None:
    await registry.push_blob("repo", b"{}")
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": descriptor(OCI_CONFIG, b"{}"),
        "layers": [],
    }
    data = json.dumps(manifest).encode()
    r = await registry.try_manifest("repo", "empty", data, OCI_MANIFEST)
    assert r.status == 201  # "manifest with no layers" of the conformance suite
    assert r.headers["Location"] == f"/v2/repo/manifests/{digest_of(data)}"
    assert r.headers["Docker-Content-Digest"] == digest_of(data)


@pytest.mark.parametrize("media_type", [OCI_MANIFEST, DOCKER_MANIFEST])
async def test_image_manifest_types_keep_their_content_type(
    registry: Registry, media_type: str
) -> None:
    digest, _, _ = await registry.push_image("repo", "t", media_type=media_type)
    r = await registry.get(f"/v2/repo/manifests/{digest}")
    assert r.headers["Content-Type"] == media_type


@pytest.mark.parametrize("media_type", [OCI_INDEX, DOCKER_LIST])
async def test_index_types_need_their_manifests(registry: Registry, media_type: str) -> None:
    child, child_data, _ = await registry.push_image("repo", None)
    index = {
        "schemaVersion": 2,
        "mediaType": media_type,
        "manifests": [{"mediaType": OCI_MANIFEST, "digest": child, "size": len(child_data)}],
    }
    digest = await registry.put_manifest("repo", "multi", json.dumps(index).encode(), media_type)
    r = await registry.get("/v2/repo/manifests/multi")
    assert r.headers["Content-Type"] == media_type
    assert r.headers["Docker-Content-Digest"] == digest
    index["manifests"].append({"mediaType": OCI_MANIFEST, "digest": digest_of(b"x"), "size": 1})
    r = await registry.try_manifest("repo", "broken", json.dumps(index).encode(), media_type)
    assert r.status == 400
    assert await error_codes(r) == ["MANIFEST_UNKNOWN"]


async def test_manifest_with_unknown_blobs_returns_manifest_blob_unknown(
    registry: Registry,
) -> None:
    layers = [b"layer one", b"layer two"]
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": descriptor(OCI_CONFIG, b"{}"),
        "layers": [descriptor(OCI_LAYER, b) for b in layers],
    }
    await registry.push_blob("repo", b"{}")
    await registry.push_blob("other", layers[0])  # in another repository only
    r = await registry.try_manifest("repo", "t", json.dumps(manifest).encode(), OCI_MANIFEST)
    assert r.status == 400
    body = await r.json()
    assert [e["code"] for e in body["errors"]] == ["MANIFEST_BLOB_UNKNOWN"] * 2
    assert {e["detail"]["digest"] for e in body["errors"]} == {digest_of(b) for b in layers}
    assert (await registry.get("/v2/repo/manifests/t")).status == 404


async def test_foreign_layers_need_not_be_pushed(registry: Registry) -> None:
    foreign = {
        "mediaType": "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
        "digest": digest_of(b"windows"),
        "size": 7,
        "urls": ["https://example.invalid/layer"],
    }
    await registry.push_blob("repo", b"{}")
    manifest = {
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST,
        "config": descriptor("application/vnd.docker.container.image.v1+json", b"{}"),
        "layers": [foreign],
    }
    await registry.put_manifest("repo", "win", json.dumps(manifest).encode(), DOCKER_MANIFEST)


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"{not json", OCI_MANIFEST),
        (b"[]", OCI_MANIFEST),
        (b'{"schemaVersion": 1, "config": {}, "layers": []}', OCI_MANIFEST),
        (b'{"schemaVersion": 2, "layers": []}', OCI_MANIFEST),
        (b'{"schemaVersion": 2, "manifests": []}', OCI_MANIFEST),
        (b'{"schemaVersion": 2, "manifests": "x"}', OCI_INDEX),
        (
            b'{"schemaVersion": 2, "mediaType": "' + OCI_INDEX.encode() + b'", "manifests": []}',
            OCI_MANIFEST,
        ),
        (b'{"schemaVersion": 2, "manifests": []}', "application/x-unknown"),
        (b'{"schemaVersion": 2, "manifests": []}', ""),
    ],
)
async def test_invalid_manifest_returns_manifest_invalid(
    registry: Registry, body: bytes, content_type: str
) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    r = await registry.put("/v2/repo/manifests/t", data=body, headers=headers)
    assert r.status == 400
    assert await error_codes(r) == ["MANIFEST_INVALID"]


async def test_manifest_over_4_mib_returns_413(registry: Registry) -> None:
    data = b'{"schemaVersion": 2, "pad": "' + b"x" * (4 << 20) + b'"}'
    r = await registry.try_manifest("repo", "big", data, OCI_MANIFEST)
    assert r.status == 413
    assert await error_codes(r) == ["SIZE_INVALID"]


async def test_manifest_with_chunked_transfer_encoding_is_read_whole(registry: Registry) -> None:
    _, data, _ = await registry.push_image("repo", None)

    async def body() -> Any:
        for i in range(0, len(data), 7):
            yield data[i : i + 7]

    r = await registry.put(
        "/v2/repo/manifests/chunked", data=body(), headers={"Content-Type": OCI_MANIFEST}
    )
    assert r.status == 201
    assert r.headers["Docker-Content-Digest"] == digest_of(data)


async def test_put_by_digest_checks_the_digest(registry: Registry) -> None:
    _, data, _ = await registry.push_image("repo", "t")
    r = await registry.try_manifest("repo", digest_of(b"other"), data, OCI_MANIFEST)
    assert r.status == 400
    assert await error_codes(r) == ["DIGEST_INVALID"]
    digest = await registry.put_manifest("repo", digest_of(data), data)
    assert digest == digest_of(data)


async def test_put_by_digest_with_tag_parameters_tags_it(registry: Registry) -> None:
    _, data, _ = await registry.push_image("repo", None)
    r = await registry.try_manifest("repo", f"{digest_of(data)}?tag=a&tag=b", data, OCI_MANIFEST)
    assert r.status == 201
    r = await registry.get("/v2/repo/tags/list")
    assert (await r.json())["tags"] == ["a", "b"]


async def test_invalid_tag_returns_400(registry: Registry) -> None:
    _, data, _ = await registry.push_image("repo", None)
    r = await registry.try_manifest("repo", "-bad", data, OCI_MANIFEST)
    assert r.status == 400
    assert await error_codes(r) == ["MANIFEST_INVALID"]


async def test_retag_moves_the_tag(registry: Registry) -> None:
    first, _, _ = await registry.push_image("repo", "t")
    second, _, _ = await registry.push_image("repo", "t")
    r = await registry.get("/v2/repo/manifests/t")
    assert r.headers["Docker-Content-Digest"] == second != first
    assert (await registry.get(f"/v2/repo/manifests/{first}")).status == 200


async def test_put_and_get_of_one_tag_at_once(registry: Registry) -> None:
    """A reader of a tag being rewritten sees one whole manifest or the other."""
    images = [await registry.push_image("repo", None) for _ in range(2)]
    bodies = {digest: data for digest, data, _ in images}
    await registry.put_manifest("repo", "t", images[0][1])

    async def writer() -> None:
        for i in range(30):
            await registry.put_manifest("repo", "t", images[i % 2][1])

    async def reader() -> list[Any]:
        seen = []
        for _ in range(30):
            r = await registry.get("/v2/repo/manifests/t")
            assert r.status == 200
            seen.append(r.headers["Docker-Content-Digest"])
            assert bodies[seen[-1]] == await r.read()
        return seen

    await asyncio.gather(writer(), reader(), reader())
