from __future__ import annotations

from pathlib import Path
from typing import Any

from pydocker_registry.app import make_app
from pydocker_registry.storage import FilesystemStorage

from .conftest import Registry, error_codes


async def test_base_returns_200_and_api_version(registry: Registry) -> None:
    r = await registry.get("/v2/")
    assert r.status == 200
    assert await r.json() == {}
    assert r.headers["Docker-Distribution-API-Version"] == "registry/2.0"


async def test_unknown_endpoint_is_a_spec_error(registry: Registry) -> None:
    r = await registry.get("/v2/nope")
    assert r.status == 404
    assert await error_codes(r) == ["UNSUPPORTED"]
    assert r.headers["Docker-Distribution-API-Version"] == "registry/2.0"


class _Broken(FilesystemStorage):
    async def get(self, key: str) -> bytes:
        raise RuntimeError("disk on fire")


async def test_unexpected_failure_is_a_500_with_a_spec_body(
    aiohttp_client: Any, tmp_path: Path
) -> None:
    client = Registry(await aiohttp_client(make_app(_Broken(tmp_path / "s"))))
    r = await client.get("/v2/repo/manifests/latest")
    assert r.status == 500
    assert await error_codes(r) == ["UNKNOWN"]
