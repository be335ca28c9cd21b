"""Content discovery (tags list, catalog, referrers) and content management (deletes)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydocker_registry.app import make_app
from pydocker_registry.storage import FilesystemStorage

from .conftest import Registry, descriptor, digest_of, error_codes

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
EMPTY = b"{}"
EMPTY_TYPE = "application/vnd.oci.empty.v1+json"


async def test_tags_list_returns_sorted_tags(registry: Registry) -> None:
    digest, _, _ = await registry.push_image("repo", "v2")
    for tag in ("v1", "latest"):
        data = await (await registry.get(f"/v2/repo/manifests/{digest}")).read()
        r = await registry.try_manifest("repo", f"{digest}?tag={tag}", data, OCI_MANIFEST)
        assert r.status == 201
    r = await registry.get("/v2/repo/tags/list")
    assert r.status == 200
    assert await r.json() == {"name": "repo", "tags": ["latest", "v1", "v2"]}
    assert "Link" not in r.headers


async def _tagged(registry: Registry, tags: list[str]) -> None:
    _, data, _ = await registry.push_image("a/repo", None)
    for tag in tags:
        await registry.put_manifest("a/repo", tag, data)


async def test_tags_list_with_n_and_last_pages_with_link(registry: Registry) -> None:
    await _tagged(registry, ["t1", "t2", "t3", "t4", "t5"])
    r = await registry.get("/v2/a/repo/tags/list?n=2")
    assert (await r.json())["tags"] == ["t1", "t2"]
    assert r.headers["Link"] == '</v2/a/repo/tags/list?n=2&last=t2>; rel="next"'
    r = await registry.get(r.headers["Link"][1:].partition(">")[0])
    assert (await r.json())["tags"] == ["t3", "t4"]
    r = await registry.get("/v2/a/repo/tags/list?n=2&last=t4")
    assert (await r.json())["tags"] == ["t5"]
    assert "Link" not in r.headers
    r = await registry.get("/v2/a/repo/tags/list?last=t3")
    assert (await r.json())["tags"] == ["t4", "t5"]
    r = await registry.get("/v2/a/repo/tags/list?n=0")
    assert (await r.json())["tags"] == []


async def test_tags_list_with_invalid_n_returns_400(registry: Registry) -> None:
    await _tagged(registry, ["t1"])
    r = await registry.get("/v2/a/repo/tags/list?n=minus")
    assert r.status == 400
    assert await error_codes(r) == ["PAGINATION_NUMBER_INVALID"]


async def test_tags_list_of_unknown_repository_returns_404(registry: Registry) -> None:
    await _tagged(registry, ["t1"])
    for name in ("nothing/here", "a"):  # "a" only holds the repository a/repo
        r = await registry.get(f"/v2/{name}/tags/list")
        assert r.status == 404
        assert await error_codes(r) == ["NAME_UNKNOWN"]


async def test_tags_list_without_n_returns_every_tag(registry: Registry) -> None:
    tags = [f"t{i:03}" for i in range(120)]
    _, data, _ = await registry.push_image("a/repo", None)
    for tag in tags:
        await registry.put_manifest("a/repo", tag, data)
    r = await registry.get("/v2/a/repo/tags/list")
    assert (await r.json())["tags"] == tags
    assert "Link" not in r.headers


async def test_catalog_lists_repositories_with_pagination(registry: Registry) -> None:
    for name in ("b/two", "a", "c/d/e"):
        await registry.push_image(name)
    r = await registry.get("/v2/_catalog")
    assert await r.json() == {"repositories": ["a", "b/two", "c/d/e"]}
    r = await registry.get("/v2/_catalog?n=1")
    assert await r.json() == {"repositories": ["a"]}
    assert r.headers["Link"] == '</v2/_catalog?n=1&last=a>; rel="next"'
    r = await registry.get("/v2/_catalog?n=5&last=a")
    assert await r.json() == {"repositories": ["b/two", "c/d/e"]}


# --- referrers -------------------------------------------------------------------------


async def _artifact(
    registry: Registry,
    subject: tuple[str, bytes],
    artifact_type: str | None,
    *,
    config_type: str = EMPTY_TYPE,
    annotations: dict[str, str] | None = None,
) -> tuple[str, int, Any]:
    await registry.push_blob("repo", EMPTY)
    manifest: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": descriptor(config_type, EMPTY),
        "layers": [descriptor(EMPTY_TYPE, EMPTY)],
        "subject": {"mediaType": OCI_MANIFEST, "digest": subject[0], "size": len(subject[1])},
    }
    if artifact_type:
        manifest["artifactType"] = artifact_type
    if annotations:
        manifest["annotations"] = annotations
    data = json.dumps(manifest).encode()
    r = await registry.try_manifest("repo", digest_of(data), data, OCI_MANIFEST)
    assert r.status == 201
    assert r.headers["OCI-Subject"] == subject[0]
    return digest_of(data), len(data), r


async def test_referrers_list_manifests_with_the_subject(registry: Registry) -> None:
    image, data, _ = await registry.push_image("repo", "v1")
    signature, sig_size, _ = await _artifact(
        registry, (image, data), "application/vnd.example.sig", annotations={"k": "v"}
    )
    sbom, sbom_size, _ = await _artifact(
        registry, (image, data), None, config_type="application/vnd.example.sbom"
    )
    r = await registry.get(f"/v2/repo/referrers/{image}")
    assert r.status == 200
    assert r.headers["Content-Type"] == OCI_INDEX
    body = await r.json()
    assert body["schemaVersion"] == 2
    assert body["mediaType"] == OCI_INDEX
    expected = [
        {
            "mediaType": OCI_MANIFEST,
            "digest": signature,
            "size": sig_size,
            "artifactType": "application/vnd.example.sig",
            "annotations": {"k": "v"},
        },
        {
            "mediaType": OCI_MANIFEST,
            "digest": sbom,
            "size": sbom_size,
            "artifactType": "application/vnd.example.sbom",
        },
    ]
    assert body["manifests"] == sorted(expected, key=lambda e: e["digest"])
    assert "OCI-Filters-Applied" not in r.headers


async def test_referrers_filter_by_artifact_type(registry: Registry) -> None:
    image, data, _ = await registry.push_image("repo", "v1")
    signature, _, _ = await _artifact(registry, (image, data), "application/vnd.example.sig")
    await _artifact(registry, (image, data), "application/vnd.example.sbom")
    r = await registry.get(f"/v2/repo/referrers/{image}?artifactType=application/vnd.example.sig")
    assert r.headers["OCI-Filters-Applied"] == "artifactType"
    assert [m["digest"] for m in (await r.json())["manifests"]] == [signature]


async def test_referrers_of_unknown_digest_is_an_empty_index(registry: Registry) -> None:
    r = await registry.get(f"/v2/nothing/referrers/{digest_of(b'unknown')}")
    assert r.status == 200
    assert await r.json() == {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}


async def test_subject_need_not_exist_and_index_may_have_one(registry: Registry) -> None:
    ghost = digest_of(b"not pushed yet")
    await _artifact(registry, (ghost, b"x"), "application/vnd.example.sig")
    index = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "artifactType": "application/vnd.example.bundle",
        "manifests": [],
        "subject": {"mediaType": OCI_MANIFEST, "digest": ghost, "size": 1},
    }
    data = json.dumps(index).encode()
    r = await registry.try_manifest("repo", "bundle", data, OCI_INDEX)
    assert r.status == 201
    assert r.headers["OCI-Subject"] == ghost
    r = await registry.get(f"/v2/repo/referrers/{ghost}")
    types = sorted(m.get("artifactType") for m in (await r.json())["manifests"])
    assert types == ["application/vnd.example.bundle", "application/vnd.example.sig"]


async def test_invalid_referrers_digest_returns_400(registry: Registry) -> None:
    r = await registry.get("/v2/repo/referrers/sha256:nope")
    assert r.status == 400
    assert await error_codes(r) == ["DIGEST_INVALID"]


# --- deletes ---------------------------------------------------------------------------


async def test_delete_tag_returns_202_and_keeps_the_manifest(registry: Registry) -> None:
    digest, data, _ = await registry.push_image("repo", "v1")
    await registry.put_manifest("repo", "v2", data)
    r = await registry.delete("/v2/repo/manifests/v1")
    assert r.status == 202
    assert (await registry.get("/v2/repo/manifests/v1")).status == 404
    assert (await registry.get(f"/v2/repo/manifests/{digest}")).status == 200
    assert (await (await registry.get("/v2/repo/tags/list")).json())["tags"] == ["v2"]
    assert (await registry.delete("/v2/repo/manifests/v1")).status == 404


async def test_delete_manifest_by_digest_returns_202_and_removes_its_tags(
    registry: Registry,
) -> None:
    digest, data, _ = await registry.push_image("repo", "v1")
    await registry.put_manifest("repo", "v2", data)
    other, _, _ = await registry.push_image("repo", "v3")
    r = await registry.delete(f"/v2/repo/manifests/{digest}")
    assert r.status == 202
    assert (await registry.get(f"/v2/repo/manifests/{digest}")).status == 404
    assert (await registry.get("/v2/repo/manifests/v1")).status == 404
    assert (await (await registry.get("/v2/repo/tags/list")).json())["tags"] == ["v3"]
    assert (await registry.get(f"/v2/repo/manifests/{other}")).status == 200
    r = await registry.delete(f"/v2/repo/manifests/{digest}")
    assert r.status == 404
    assert await error_codes(r) == ["MANIFEST_UNKNOWN"]


async def test_delete_manifest_removes_it_from_referrers(registry: Registry) -> None:
    image, data, _ = await registry.push_image("repo", "v1")
    signature, _, _ = await _artifact(registry, (image, data), "application/vnd.example.sig")
    assert (await registry.delete(f"/v2/repo/manifests/{signature}")).status == 202
    r = await registry.get(f"/v2/repo/referrers/{image}")
    assert (await r.json())["manifests"] == []


async def test_delete_blob_returns_202_then_404(registry: Registry) -> None:
    digest = await registry.push_blob("repo", b"some blob")
    r = await registry.delete(f"/v2/repo/blobs/{digest}")
    assert r.status == 202
    assert (await registry.get(f"/v2/repo/blobs/{digest}")).status == 404
    r = await registry.delete(f"/v2/repo/blobs/{digest}")
    assert r.status == 404
    assert await error_codes(r) == ["BLOB_UNKNOWN"]


async def test_deletes_disabled_return_405_unsupported(aiohttp_client: Any, tmp_path: Path) -> None:
    client = Registry(
        await aiohttp_client(make_app(FilesystemStorage(tmp_path / "s"), delete_enabled=False))
    )
    digest, _, manifest = await client.push_image("repo", "v1")
    blob = manifest["layers"][0]["digest"]
    for path in (f"manifests/{digest}", "manifests/v1", f"blobs/{blob}"):
        r = await client.delete(f"/v2/repo/{path}")
        assert r.status == 405
        assert await error_codes(r) == ["UNSUPPORTED"]
    assert (await client.get("/v2/repo/manifests/v1")).status == 200


async def test_wrong_method_returns_405_unsupported(registry: Registry) -> None:
    r = await registry.post("/v2/repo/tags/list")
    assert r.status == 405
    assert await error_codes(r) == ["UNSUPPORTED"]
