"""``pydocker-registry serve`` as a real process on 127.0.0.1: its log, its stop on SIGTERM
and SIGINT, and the auth modes through the real API (htpasswd, and token mode with the
built-in token server doing repository-scoped pull and push)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from pydocker_registry.auth import set_password
from pydocker_registry.testing import (
    SCOPED_RULES,
    RegistryProcess,
    parse_challenge,
    token_config,
    write_config,
)

MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"


def digest_of(data: bytes) -> str:
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


class Pusher:
    """Pushes and pulls through the API as a client would, doing the Bearer token dance
    (challenge → realm → token → retry) when the registry asks for it."""

    def __init__(
        self, session: aiohttp.ClientSession, base: str, login: tuple[str, str] | None
    ) -> None:
        self.session, self.base = session, base
        self.auth = {"Authorization": aiohttp.encode_basic_auth(*login)} if login else {}
        self.tokens: dict[str, str] = {}
        self.basic = False
        self.granted: list[str] = []

    async def request(
        self,
        method: str,
        path: str,
        data: bytes | str | None = None,
        headers: dict[str, str] | None = None,
    ) -> aiohttp.ClientResponse:
        url = self.base + path
        scope_key = path.split("/blobs/", maxsplit=1)[0].split("/manifests/", maxsplit=1)[0]
        for _ in range(2):
            send = dict(headers or {})
            if scope_key in self.tokens:
                send["Authorization"] = f"Bearer {self.tokens[scope_key]}"
            if self.basic:
                send.update(self.auth)
            response = await self.session.request(method, url, data=data, headers=send)
            if response.status != 401 or "WWW-Authenticate" not in response.headers:
                return response
            scheme, challenge = parse_challenge(response.headers["WWW-Authenticate"])
            if scheme == "basic" and self.auth and not self.basic:
                self.basic = True
                continue
            if scheme != "bearer" or challenge.get("error") == "insufficient_scope":
                return response
            params = {"service": challenge["service"], "scope": challenge.get("scope", "")}
            async with self.session.get(
                challenge["realm"], params=params, headers=self.auth
            ) as got:
                assert got.status == 200, await got.text()
                body = await got.json()
            self.tokens[scope_key] = body["token"]
            self.granted.append(body["scope"])
        return response

    async def push(self, name: str, tag: str) -> int:
        """Push a one-layer image; the status of the first refusal, or 201."""
        layer = os.urandom(1024)
        config = json.dumps({"architecture": "amd64", "os": "linux"}).encode()
        for blob in (layer, config):
            response = await self.request(
                "POST", f"/v2/{name}/blobs/uploads/?digest={digest_of(blob)}", data=blob
            )
            if response.status != 201:
                return response.status
        config_type = "application/vnd.oci.image.config.v1+json"
        layer_type = "application/vnd.oci.image.layer.v1.tar"
        manifest = {
            "schemaVersion": 2,
            "mediaType": MANIFEST_TYPE,
            "config": {"mediaType": config_type, "digest": digest_of(config), "size": len(config)},
            "layers": [{"mediaType": layer_type, "digest": digest_of(layer), "size": len(layer)}],
        }
        headers = {"Content-Type": MANIFEST_TYPE}
        path = f"/v2/{name}/manifests/{tag}"
        response = await self.request("PUT", path, data=json.dumps(manifest), headers=headers)
        return response.status

    async def pull(self, name: str, tag: str) -> int:
        response = await self.request(
            "GET", f"/v2/{name}/manifests/{tag}", headers={"Accept": MANIFEST_TYPE}
        )
        if response.status == 200:
            manifest = await response.json()
            for layer in manifest["layers"]:
                blob = await self.request("GET", f"/v2/{name}/blobs/{layer['digest']}")
                assert digest_of(await blob.read()) == layer["digest"]
        return response.status


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
async def test_serve_logs_requests_and_stops_on_signal(tmp_path: Path, signum: int) -> None:
    config = write_config(tmp_path, 'log_level = "info"\n')
    with RegistryProcess(config) as registry:
        assert registry.url.startswith("http://127.0.0.1:")
        async with aiohttp.ClientSession() as session:
            async with session.get(registry.url + "/v2/") as response:
                assert response.status == 200
                assert response.headers["Docker-Distribution-API-Version"] == "registry/2.0"
            async with session.get(registry.url + "/v2/nothing/tags/list") as response:
                assert response.status == 404
        assert registry.process is not None
        registry.process.send_signal(signum)
        assert registry.process.wait(15) == 0
        registry.stop()
    log = registry.log()
    assert '"GET /v2/ HTTP/1.1" 200 ' in log
    assert '"GET /v2/nothing/tags/list HTTP/1.1" 404 ' in log
    assert "(auth: none)" in log
    assert log.rstrip().endswith("stopped")
    assert (tmp_path / "data").is_dir()


def test_serve_refuses_an_unusable_configuration(tmp_path: Path) -> None:
    config = write_config(tmp_path, '[auth]\nmode = "htpasswd"\n[auth.htpasswd]\npath = "/nope"\n')
    registry = RegistryProcess(config, start_timeout=15)
    with pytest.raises(RuntimeError, match="did not start"):
        registry.start()
    assert registry.stop() == 1
    assert registry.lines == [
        "auth: htpasswd file /nope: [Errno 2] No such file or directory: '/nope'"
    ]


async def test_serve_with_htpasswd(tmp_path: Path) -> None:
    users = tmp_path / "htpasswd"
    set_password(users, "alice", "wonderland", rounds=4)
    set_password(users, "reader", "only", rounds=4)
    config = write_config(
        tmp_path,
        f'[auth]\nmode = "htpasswd"\n[auth.htpasswd]\npath = "{users}"\nrealm = "test realm"\n'
        'read_only_users = ["reader"]\n',
    )
    with RegistryProcess(config) as registry:
        async with aiohttp.ClientSession() as session:
            async with session.get(registry.url + "/v2/") as response:
                assert response.status == 401
                assert response.headers["WWW-Authenticate"] == 'Basic realm="test realm"'
            wrong = ("alice", "nope")
            headers = {"Authorization": aiohttp.encode_basic_auth(*wrong)}
            async with session.get(registry.url + "/v2/", headers=headers) as response:
                assert response.status == 401
            alice = Pusher(session, registry.url, ("alice", "wonderland"))
            assert await alice.push("team/app", "v1") == 201
            assert await alice.pull("team/app", "v1") == 200
            reader = Pusher(session, registry.url, ("reader", "only"))
            assert await reader.pull("team/app", "v1") == 200
            assert await reader.push("team/app", "v2") == 403
            assert await Pusher(session, registry.url, wrong).pull("team/app", "v1") == 401
            # A user added while the registry runs may log in at once.
            set_password(users, "late", "comer", rounds=4)
            late = ("late", "comer")
            headers = {"Authorization": aiohttp.encode_basic_auth(*late)}
            async with session.get(registry.url + "/v2/", headers=headers) as response:
                assert response.status == 200
    assert "htpasswd file" in registry.log()
    assert '"PUT /v2/team/app/manifests/v1 HTTP/1.1" 201' in registry.log()
    assert "alice" in registry.log()


async def test_serve_token_mode_scopes_pull_and_push_by_repository(tmp_path: Path) -> None:
    anonymous_pulls_b = """
[[auth.token.rules]]
accounts = ["anonymous"]
repositories = ["b/*"]
actions = ["pull"]
"""
    config = token_config(
        tmp_path,
        {"alice": "wonderland", "admin": "root"},
        SCOPED_RULES + anonymous_pulls_b,
        token='service = "test-registry"',
    )
    with RegistryProcess(config) as registry:
        async with aiohttp.ClientSession() as session:
            async with session.get(registry.url + "/v2/") as response:
                assert response.status == 401
                scheme, challenge = parse_challenge(response.headers["WWW-Authenticate"])
                assert scheme == "bearer"
                assert challenge == {"realm": registry.url + "/token", "service": "test-registry"}

            admin = Pusher(session, registry.url, ("admin", "root"))
            assert await admin.push("b/base", "1") == 201

            alice = Pusher(session, registry.url, ("alice", "wonderland"))
            assert await alice.push("a/app", "1") == 201
            assert await alice.pull("a/app", "1") == 200
            assert await alice.pull("b/base", "1") == 200
            assert await alice.push("b/base", "2") == 401  # insufficient_scope
            assert "repository:b/base:pull" in alice.granted

            anonymous = Pusher(session, registry.url, None)
            assert await anonymous.pull("b/base", "1") == 200
            assert await anonymous.pull("a/app", "1") == 401

            response = await admin.request("GET", "/v2/_catalog")
            assert response.status == 200
            assert (await response.json())["repositories"] == ["a/app", "b/base"]
    assert "token for alice" in registry.log()


async def test_sigterm_lets_a_request_in_flight_finish(tmp_path: Path) -> None:
    """An upload still streaming when SIGTERM arrives completes; then the process exits 0."""
    with RegistryProcess(write_config(tmp_path)) as registry:
        assert registry.process is not None
        process = registry.process
        chunks = [os.urandom(64 * 1024) for _ in range(4)]

        async def slow_body() -> AsyncIterator[bytes]:
            for index, chunk in enumerate(chunks):
                if index == 2:  # the server is reading the body by now
                    await asyncio.sleep(0.5)
                    process.send_signal(signal.SIGTERM)
                    await asyncio.sleep(1.0)
                yield chunk

        async with aiohttp.ClientSession() as session:
            async with session.post(registry.url + "/v2/slow/blobs/uploads/") as response:
                assert response.status == 202
                location = response.headers["Location"]
            url = location if location.startswith("http") else registry.url + location
            async with session.patch(url, data=slow_body()) as response:
                assert response.status == 202
                assert response.headers["Range"] == f"0-{sum(map(len, chunks)) - 1}"
        assert process.wait(15) == 0
    assert "stopping: finishing 1 requests in flight" in registry.log()
    assert '"PATCH /v2/slow/blobs/uploads/' in registry.log()
