from __future__ import annotations

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
