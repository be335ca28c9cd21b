"""Fixtures for the registry's API, storage and GC tests: a registry app on a temporary
filesystem store, and a small client that pushes blobs and manifests the way clients do."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import threading
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient
from pydocker_registry.app import make_app
from pydocker_registry.manifests import OCI_INDEX, OCI_MANIFEST
from pydocker_registry.storage import FilesystemStorage

OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


def digest_of(data: bytes) -> str:
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


def descriptor(media_type: str, data: bytes) -> dict[str, Any]:
    return {"mediaType": media_type, "digest": digest_of(data), "size": len(data)}


class Registry:
    """A test client of the registry API with the pushes a client makes."""

    def __init__(self, client: TestClient[Any, Any]) -> None:
        self.client = client

    def __getattr__(self, method: str) -> Callable[..., Awaitable[ClientResponse]]:
        # get, head, put, post, patch, delete go to the test client
        return getattr(self.client, method)  # type: ignore[no-any-return]

    async def push_blob(self, name: str, data: bytes) -> str:
        digest = digest_of(data)
        r = await self.client.post(f"/v2/{name}/blobs/uploads/?digest={digest}", data=data)
        assert r.status == 201, await r.text()
        return digest

    async def push_image(
        self,
        name: str,
        tag: str | None = "latest",
        *,
        layers: int = 1,
        extra: dict[str, Any] | None = None,
        media_type: str = OCI_MANIFEST,
    ) -> tuple[str, bytes, dict[str, Any]]:
        """Push a config, ``layers`` random layers and a manifest; return the manifest's
        digest, bytes and JSON."""
        config = json.dumps({"architecture": "amd64", "os": "linux", "n": os.urandom(4).hex()})
        await self.push_blob(name, config.encode())
        blobs = [os.urandom(1000) for _ in range(layers)]
        for blob in blobs:
            await self.push_blob(name, blob)
        manifest: dict[str, Any] = {
            "schemaVersion": 2,
            "mediaType": media_type,
            "config": descriptor(OCI_CONFIG, config.encode()),
            "layers": [descriptor(OCI_LAYER, b) for b in blobs],
            **(extra or {}),
        }
        data = json.dumps(manifest).encode()
        digest = await self.put_manifest(name, tag or digest_of(data), data, media_type)
        return digest, data, manifest

    async def try_manifest(
        self, name: str, reference: str, data: bytes, media_type: str = OCI_MANIFEST
    ) -> ClientResponse:
        """PUT a manifest; the response, whatever it is."""
        return await self.client.put(
            f"/v2/{name}/manifests/{reference}", data=data, headers={"Content-Type": media_type}
        )

    async def put_manifest(
        self, name: str, reference: str, data: bytes, media_type: str = OCI_MANIFEST
    ) -> str:
        r = await self.try_manifest(name, reference, data, media_type)
        assert r.status == 201, await r.text()
        return r.headers["Docker-Content-Digest"]

    async def push_index(self, name: str, tag: str, children: list[tuple[str, bytes]]) -> str:
        index = {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [
                {"mediaType": OCI_MANIFEST, "digest": d, "size": len(b)} for d, b in children
            ],
        }
        return await self.put_manifest(name, tag, json.dumps(index).encode(), OCI_INDEX)


@pytest.fixture
def storage(tmp_path: Path) -> FilesystemStorage:
    return FilesystemStorage(tmp_path / "store")


@pytest.fixture
async def registry(
    aiohttp_client: Callable[..., Awaitable[TestClient[Any, Any]]], storage: FilesystemStorage
) -> Registry:
    return Registry(await aiohttp_client(make_app(storage)))


async def error_codes(response: ClientResponse) -> list[str]:
    """The codes of a spec error body (and a check that the body has the spec's shape)."""
    body = await response.json()
    assert set(body) == {"errors"}, body
    for error in body["errors"]:
        assert isinstance(error["code"], str)
        assert isinstance(error["message"], str)
    return [e["code"] for e in body["errors"]]


@contextlib.contextmanager
def serve_in_thread(storage: FilesystemStorage) -> Iterator[str]:
    """Serve ``make_app(storage)`` on 127.0.0.1, a free port, from a thread with its own event
    loop (for clients that are processes, such as skopeo). Yields ``host:port``; stops the
    server and the thread on exit, also when the body fails."""
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(make_app(storage), access_log=None)

    async def start() -> str:
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        return f"{host}:{port}"

    thread = threading.Thread(target=loop.run_forever, name="registry", daemon=True)
    thread.start()
    try:
        address = asyncio.run_coroutine_threadsafe(start(), loop).result(timeout=30)
        yield address
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(timeout=30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=30)
        loop.close()
