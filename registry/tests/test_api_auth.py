"""The API asks the authorizer for the access each request needs, before it does anything,
and answers a refusal with the spec's error body and the challenge."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from pydocker_registry.access import Access, AccessDenied
from pydocker_registry.app import make_app
from pydocker_registry.storage import FilesystemStorage

from .conftest import Registry, digest_of, error_codes

CHALLENGE = 'Bearer realm="http://127.0.0.1/token",service="test"'


class Recorder:
    """Allows everything, records what was asked; ``deny`` turns it into a refusal."""

    def __init__(self) -> None:
        self.asked: list[set[str]] = []
        self.deny: AccessDenied | None = None

    async def authorize(self, request: web.Request, access: Sequence[Access]) -> None:
        self.asked.append({a.scope() for a in access})
        if self.deny is not None:
            raise self.deny


@pytest.fixture
async def guarded(aiohttp_client: Any, tmp_path: Path) -> tuple[Registry, Recorder]:
    recorder = Recorder()
    app = make_app(FilesystemStorage(tmp_path / "s"), recorder)
    return Registry(await aiohttp_client(app)), recorder


D = digest_of(b"blob")


@pytest.mark.parametrize(
    ("method", "path", "scopes"),
    [
        ("GET", "/v2/", set()),
        ("GET", "/v2/_catalog", {"registry:catalog:*"}),
        ("GET", "/v2/a/b/tags/list", {"repository:a/b:pull"}),
        ("GET", f"/v2/a/b/referrers/{D}", {"repository:a/b:pull"}),
        ("GET", "/v2/a/b/manifests/t", {"repository:a/b:pull"}),
        ("HEAD", f"/v2/a/b/blobs/{D}", {"repository:a/b:pull"}),
        ("PUT", "/v2/a/b/manifests/t", {"repository:a/b:pull,push"}),
        ("DELETE", "/v2/a/b/manifests/t", {"repository:a/b:delete"}),
        ("DELETE", f"/v2/a/b/blobs/{D}", {"repository:a/b:delete"}),
        ("POST", "/v2/a/b/blobs/uploads/", {"repository:a/b:pull,push"}),
        (
            "POST",
            f"/v2/a/b/blobs/uploads/?mount={D}&from=c",
            {"repository:a/b:pull,push", "repository:c:pull"},
        ),
        ("PATCH", "/v2/a/b/blobs/uploads/x", {"repository:a/b:pull,push"}),
        ("GET", "/v2/a/b/blobs/uploads/x", {"repository:a/b:pull,push"}),
        ("DELETE", "/v2/a/b/blobs/uploads/x", {"repository:a/b:pull,push"}),
    ],
)
async def test_each_request_asks_for_its_access(
    guarded: tuple[Registry, Recorder], method: str, path: str, scopes: set[str]
) -> None:
    client, recorder = guarded
    await client.client.request(method, path)
    assert recorder.asked == [scopes]


async def test_unauthorized_returns_401_with_challenge(
    guarded: tuple[Registry, Recorder],
) -> None:
    client, recorder = guarded
    recorder.deny = AccessDenied("authentication required", challenge=CHALLENGE)
    r = await client.get("/v2/a/tags/list")
    assert r.status == 401
    assert r.headers["WWW-Authenticate"] == CHALLENGE
    assert r.headers["Docker-Distribution-API-Version"] == "registry/2.0"
    body = await r.json()
    assert body["errors"][0]["code"] == "UNAUTHORIZED"
    assert body["errors"][0]["detail"] == [{"scope": "repository:a:pull"}]


async def test_denied_returns_403_and_does_nothing(
    guarded: tuple[Registry, Recorder], tmp_path: Path
) -> None:
    client, recorder = guarded
    recorder.deny = AccessDenied("no", status=403, code="DENIED")
    r = await client.post(f"/v2/a/blobs/uploads/?digest={digest_of(b'x')}", data=b"x")
    assert r.status == 403
    assert await error_codes(r) == ["DENIED"]
    assert "WWW-Authenticate" not in r.headers
    assert not (tmp_path / "s" / "uploads").exists()
    assert not (tmp_path / "s" / "blobs").exists()
