"""Blob pull (HEAD/GET, ranges) and upload (monolithic, streamed, chunked, mount), mapped to
the v1.1.1 conformance suite's push and pull specs where they have one."""

from __future__ import annotations

import asyncio
import hashlib
import os
from pathlib import Path
from typing import Any

import pytest
from pydocker_registry.app import UPLOADS, make_app
from pydocker_registry.storage import FilesystemStorage

from .conftest import Registry, digest_of, error_codes

BLOB = os.urandom(3000)


async def test_head_blob_missing_returns_404(registry: Registry) -> None:
    r = await registry.head(f"/v2/repo/blobs/{digest_of(b'nope')}")
    assert r.status == 404


async def test_get_blob_missing_returns_404_blob_unknown(registry: Registry) -> None:
    r = await registry.get(f"/v2/repo/blobs/{digest_of(b'nope')}")
    assert r.status == 404
    assert await error_codes(r) == ["BLOB_UNKNOWN"]


async def test_head_and_get_blob_return_200(registry: Registry) -> None:
    digest = await registry.push_blob("repo", BLOB)
    r = await registry.head(f"/v2/repo/blobs/{digest}")
    assert r.status == 200
    assert r.headers["Content-Length"] == str(len(BLOB))
    assert r.headers["Docker-Content-Digest"] == digest
    assert await r.read() == b""
    r = await registry.get(f"/v2/repo/blobs/{digest}")
    assert r.status == 200
    assert r.headers["Docker-Content-Digest"] == digest
    assert r.headers["Docker-Distribution-API-Version"] == "registry/2.0"
    assert await r.read() == BLOB


async def test_blob_of_another_repository_is_unknown(registry: Registry) -> None:
    digest = await registry.push_blob("repo", BLOB)
    r = await registry.get(f"/v2/other/blobs/{digest}")
    assert r.status == 404


async def test_get_blob_with_an_invalid_digest_returns_400(registry: Registry) -> None:
    r = await registry.get("/v2/repo/blobs/sha256:totallywrong")
    assert r.status == 400
    assert await error_codes(r) == ["DIGEST_INVALID"]


class _StreamingOnly(FilesystemStorage):
    """A backend without local files: the API streams ``read`` (as for object storage)."""

    def local_path(self, key: str) -> Path | None:
        return None


@pytest.fixture(params=["sendfile", "stream"])
async def any_backend(request: pytest.FixtureRequest, aiohttp_client: Any, tmp_path: Path) -> Any:
    cls = FilesystemStorage if request.param == "sendfile" else _StreamingOnly
    return Registry(await aiohttp_client(make_app(cls(tmp_path / "s"))))


async def test_get_blob_range_returns_206(any_backend: Registry) -> None:
    digest = await any_backend.push_blob("repo", BLOB)
    r = await any_backend.get(f"/v2/repo/blobs/{digest}", headers={"Range": "bytes=10-19"})
    assert r.status == 206
    assert r.headers["Content-Range"] == f"bytes 10-19/{len(BLOB)}"
    assert await r.read() == BLOB[10:20]
    r = await any_backend.get(f"/v2/repo/blobs/{digest}", headers={"Range": "bytes=2990-"})
    assert r.status == 206
    assert await r.read() == BLOB[2990:]
    r = await any_backend.get(f"/v2/repo/blobs/{digest}", headers={"Range": "bytes=-5"})
    assert await r.read() == BLOB[-5:]


async def test_get_blob_unsatisfiable_range_returns_416(any_backend: Registry) -> None:
    digest = await any_backend.push_blob("repo", BLOB)
    r = await any_backend.get(f"/v2/repo/blobs/{digest}", headers={"Range": "bytes=5000-6000"})
    assert r.status == 416
    assert r.headers["Content-Range"] == f"bytes */{len(BLOB)}"
    assert await error_codes(r) == ["RANGE_INVALID"]


async def test_get_blob_streams_whole_blob_without_local_files(any_backend: Registry) -> None:
    big = os.urandom(3 << 20)
    digest = await any_backend.push_blob("repo", big)
    r = await any_backend.get(f"/v2/repo/blobs/{digest}")
    assert r.status == 200
    assert r.headers["Content-Length"] == str(len(big))
    assert await r.read() == big
    r = await any_backend.head(f"/v2/repo/blobs/{digest}")
    assert r.headers["Content-Length"] == str(len(big))


# --- uploads ---------------------------------------------------------------------------


async def _start(registry: Registry, name: str = "repo") -> str:
    r = await registry.post(f"/v2/{name}/blobs/uploads/")
    assert r.status == 202
    assert r.headers["Range"] == "0-0"
    assert r.headers["Docker-Upload-UUID"]
    location = r.headers["Location"]
    assert location == f"/v2/{name}/blobs/uploads/{r.headers['Docker-Upload-UUID']}"
    return location


async def test_post_monolithic_upload_returns_201(registry: Registry) -> None:
    digest = digest_of(BLOB)
    r = await registry.post(f"/v2/repo/blobs/uploads/?digest={digest}", data=BLOB)
    assert r.status == 201
    assert r.headers["Location"] == f"/v2/repo/blobs/{digest}"
    assert r.headers["Docker-Content-Digest"] == digest


async def test_post_then_put_monolithic_upload_returns_201(registry: Registry) -> None:
    location = await _start(registry)
    digest = digest_of(BLOB)
    r = await registry.put(f"{location}?digest={digest}", data=BLOB)
    assert r.status == 201
    assert r.headers["Docker-Content-Digest"] == digest
    assert (await (await registry.get(f"/v2/repo/blobs/{digest}")).read()) == BLOB


async def test_streamed_patch_then_put_returns_201(registry: Registry) -> None:
    location = await _start(registry)
    r = await registry.patch(location, data=BLOB)
    assert r.status == 202
    assert r.headers["Range"] == f"0-{len(BLOB) - 1}"
    assert r.headers["Location"] == location
    r = await registry.put(f"{location}?digest={digest_of(BLOB)}")
    assert r.status == 201


async def test_chunked_upload_with_content_range(registry: Registry) -> None:
    location = await _start(registry)
    first, second = BLOB[:1000], BLOB[1000:]
    r = await registry.patch(location, data=first, headers={"Content-Range": "0-999"})
    assert r.status == 202
    assert r.headers["Range"] == "0-999"
    r = await registry.get(location)
    assert r.status == 204
    assert r.headers["Range"] == "0-999"
    assert r.headers["Location"] == location
    r = await registry.patch(
        location, data=second, headers={"Content-Range": f"1000-{len(BLOB) - 1}"}
    )
    assert r.status == 202
    assert r.headers["Range"] == f"0-{len(BLOB) - 1}"
    r = await registry.put(f"{location}?digest={digest_of(BLOB)}")
    assert r.status == 201


async def test_put_with_last_chunk_completes_upload(registry: Registry) -> None:
    location = await _start(registry)
    await registry.patch(location, data=BLOB[:100], headers={"Content-Range": "0-99"})
    r = await registry.put(f"{location}?digest={digest_of(BLOB)}", data=BLOB[100:])
    assert r.status == 201
    assert (await (await registry.get(f"/v2/repo/blobs/{digest_of(BLOB)}")).read()) == BLOB


async def test_out_of_order_chunk_returns_416(registry: Registry) -> None:
    location = await _start(registry)
    r = await registry.patch(location, data=BLOB[1000:2000], headers={"Content-Range": "1000-1999"})
    assert r.status == 416
    assert await error_codes(r) == ["BLOB_UPLOAD_INVALID"]


async def test_repeated_chunk_returns_416(registry: Registry) -> None:
    location = await _start(registry)
    await registry.patch(location, data=BLOB[:1000], headers={"Content-Range": "0-999"})
    r = await registry.patch(location, data=BLOB[:1000], headers={"Content-Range": "0-999"})
    assert r.status == 416
    r = await registry.get(location)
    assert r.headers["Range"] == "0-999"


async def test_chunk_whose_length_does_not_match_its_range_returns_416(
    registry: Registry,
) -> None:
    location = await _start(registry)
    r = await registry.patch(location, data=BLOB[:10], headers={"Content-Range": "0-99"})
    assert r.status == 416


async def test_chunked_upload_resumes_after_restart(aiohttp_client: Any, tmp_path: Path) -> None:
    """A second process (or a restarted one) continues a session: its hash is rebuilt."""
    storage = FilesystemStorage(tmp_path / "s")
    one = Registry(await aiohttp_client(make_app(storage)))
    location = await _start(one)
    await one.patch(location, data=BLOB[:1000], headers={"Content-Range": "0-999"})
    two = Registry(await aiohttp_client(make_app(storage)))
    r = await two.put(f"{location}?digest={digest_of(BLOB)}", data=BLOB[1000:])
    assert r.status == 201


async def test_upload_status_of_unknown_session_returns_404(registry: Registry) -> None:
    r = await registry.get("/v2/repo/blobs/uploads/3f0b7bde-4a8c-4b7e-9d6a-1c2b3a4d5e6f")
    assert r.status == 404
    assert await error_codes(r) == ["BLOB_UPLOAD_UNKNOWN"]
    r = await registry.patch("/v2/repo/blobs/uploads/not-a-uuid", data=b"x")
    assert r.status == 404


async def test_upload_session_belongs_to_its_repository(registry: Registry) -> None:
    location = await _start(registry, "repo")
    r = await registry.patch(location.replace("/repo/", "/other/"), data=b"x")
    assert r.status == 404
    assert await error_codes(r) == ["BLOB_UPLOAD_UNKNOWN"]


async def test_delete_upload_cancels_it(registry: Registry) -> None:
    location = await _start(registry)
    await registry.patch(location, data=BLOB)
    r = await registry.delete(location)
    assert r.status == 204
    r = await registry.get(location)
    assert r.status == 404
    r = await registry.put(f"{location}?digest={digest_of(BLOB)}")
    assert r.status == 404


async def test_digest_mismatch_returns_400_and_stores_nothing(
    registry: Registry, storage: FilesystemStorage
) -> None:
    wrong = digest_of(b"something else")
    r = await registry.post(f"/v2/repo/blobs/uploads/?digest={wrong}", data=BLOB)
    assert r.status == 400
    assert await error_codes(r) == ["DIGEST_INVALID"]
    location = await _start(registry)
    await registry.patch(location, data=BLOB)
    r = await registry.put(f"{location}?digest={wrong}")
    assert r.status == 400
    assert await error_codes(r) == ["DIGEST_INVALID"]
    assert (await registry.head(f"/v2/repo/blobs/{wrong}")).status == 404
    assert not list(storage.root.glob("blobs/**/data"))
    assert (await registry.get(location)).status == 404  # the session is gone too


async def test_put_without_digest_returns_400(registry: Registry) -> None:
    location = await _start(registry)
    r = await registry.put(location, data=BLOB)
    assert r.status == 400
    assert await error_codes(r) == ["DIGEST_INVALID"]


async def test_sha512_digest_is_verified(registry: Registry) -> None:
    digest = f"sha512:{hashlib.sha512(BLOB).hexdigest()}"
    r = await registry.post(f"/v2/repo/blobs/uploads/?digest={digest}", data=BLOB)
    assert r.status == 201
    assert (await (await registry.get(f"/v2/repo/blobs/{digest}")).read()) == BLOB
    location = await _start(registry)
    await registry.patch(location, data=BLOB)
    bad = f"sha512:{hashlib.sha512(b'x').hexdigest()}"
    r = await registry.put(f"{location}?digest={bad}")
    assert r.status == 400


async def test_unsupported_digest_algorithm_returns_400(registry: Registry) -> None:
    r = await registry.post("/v2/repo/blobs/uploads/?digest=md5:abcd", data=BLOB)
    assert r.status == 400
    assert await error_codes(r) == ["DIGEST_INVALID"]


async def test_blob_bigger_than_the_limit_returns_413(aiohttp_client: Any, tmp_path: Path) -> None:
    client = Registry(
        await aiohttp_client(make_app(FilesystemStorage(tmp_path / "s"), max_blob_size=100))
    )
    r = await client.post(f"/v2/repo/blobs/uploads/?digest={digest_of(BLOB)}", data=BLOB)
    assert r.status == 413
    assert await error_codes(r) == ["SIZE_INVALID"]


async def test_large_streamed_upload_spans_several_batches(registry: Registry) -> None:
    big = os.urandom(20 << 20)

    async def body() -> Any:
        for i in range(0, len(big), 1 << 20):
            yield big[i : i + (1 << 20)]

    location = await _start(registry)
    r = await registry.patch(location, data=body())
    assert r.status == 202
    assert r.headers["Range"] == f"0-{len(big) - 1}"
    r = await registry.put(f"{location}?digest={digest_of(big)}")
    assert r.status == 201
    r = await registry.get(f"/v2/repo/blobs/{digest_of(big)}")
    assert hashlib.sha256(await r.read()).hexdigest() == digest_of(big).partition(":")[2]


async def test_two_uploads_of_the_same_blob_at_once(registry: Registry) -> None:
    big = os.urandom(9 << 20)
    results = await asyncio.gather(registry.push_blob("repo", big), registry.push_blob("repo", big))
    assert results[0] == results[1] == digest_of(big)
    r = await registry.get(f"/v2/repo/blobs/{digest_of(big)}")
    assert await r.read() == big


# --- mounts ----------------------------------------------------------------------------


async def test_cross_repository_mount_returns_201(registry: Registry) -> None:
    digest = await registry.push_blob("source/repo", BLOB)
    r = await registry.post(f"/v2/target/blobs/uploads/?mount={digest}&from=source/repo")
    assert r.status == 201
    assert r.headers["Location"] == f"/v2/target/blobs/{digest}"
    assert r.headers["Docker-Content-Digest"] == digest
    assert (await registry.head(f"/v2/target/blobs/{digest}")).status == 200


async def test_mount_of_unknown_blob_returns_202_session(registry: Registry) -> None:
    r = await registry.post(f"/v2/target/blobs/uploads/?mount={digest_of(b'no')}&from=source")
    assert r.status == 202
    assert r.headers["Location"].startswith("/v2/target/blobs/uploads/")


async def test_mount_without_from_is_not_automatic(registry: Registry) -> None:
    digest = await registry.push_blob("source", BLOB)
    r = await registry.post(f"/v2/target/blobs/uploads/?mount={digest}")
    assert r.status == 202
    assert (await registry.head(f"/v2/target/blobs/{digest}")).status == 404


async def test_mount_from_an_invalid_name_returns_400(registry: Registry) -> None:
    r = await registry.post(f"/v2/target/blobs/uploads/?mount={digest_of(b'x')}&from=Bad!")
    assert r.status == 400
    assert await error_codes(r) == ["NAME_INVALID"]


# --- names -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["a/b/c", "my-org/my_repo", "x.y/z__w", "a/blobs/b"])
async def test_multi_component_names_work(registry: Registry, name: str) -> None:
    digest = await registry.push_blob(name, BLOB)
    assert (await registry.head(f"/v2/{name}/blobs/{digest}")).status == 200


@pytest.mark.parametrize("name", ["UPPER", "a//b", "-a", "a_", "a/.b", "a" * 256])
async def test_invalid_name_returns_400_name_invalid(registry: Registry, name: str) -> None:
    r = await registry.post(f"/v2/{name}/blobs/uploads/")
    assert r.status == 400
    assert await error_codes(r) == ["NAME_INVALID"]


async def test_concurrent_chunks_of_one_session_are_serialised(registry: Registry) -> None:
    """Two PATCHes with the same Content-Range at once: one lands, the other is a 416, and
    the session keeps no lock once they are done."""
    location = await _start(registry)
    chunk = os.urandom(1 << 20)
    results = await asyncio.gather(
        *(
            registry.patch(location, data=chunk, headers={"Content-Range": f"0-{len(chunk) - 1}"})
            for _ in range(2)
        )
    )
    assert sorted(r.status for r in results) == [202, 416]
    assert (await registry.get(location)).headers["Range"] == f"0-{len(chunk) - 1}"
    assert registry.client.app[UPLOADS]._locks == {}


async def test_blob_is_invisible_until_its_upload_is_verified(
    registry: Registry, storage: FilesystemStorage
) -> None:
    location = await _start(registry)
    await registry.patch(location, data=BLOB)
    assert (await registry.head(f"/v2/repo/blobs/{digest_of(BLOB)}")).status == 404
    assert not list(storage.root.glob("blobs/**/data"))
    await registry.put(f"{location}?digest={digest_of(BLOB)}")
    assert (await registry.head(f"/v2/repo/blobs/{digest_of(BLOB)}")).status == 200
    assert await storage.children("uploads") == []
