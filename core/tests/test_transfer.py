"""The daemon's side of pulls and pushes: credentials from the client, which endpoints a
registry has (mirrors, insecure registries), and the progress stream's error rules."""

from __future__ import annotations

import asyncio
import base64
import gzip
import json
import os
import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from pydockerd.api.responses import error_response, progress_stream
from pydockerd.distribution import RegistryCredentials, RegistryEndpoint
from pydockerd.errors import InvalidParameter, NotFound, PydockerdError, status_for
from pydockerd.images.content import ContentStore, sha256_digest
from pydockerd.images.store import ImageRecord, LayerRecord
from pydockerd.images.transfer import (
    HUB_ENDPOINT,
    Transfers,
    credentials_from_json,
    decode_registry_auth,
    is_insecure_registry,
    registry_info,
    registry_of_server_address,
)
from pydockerd.settings import RegistrySettings


def _header(data: dict[str, Any], *, urlsafe: bool = True, padding: bool = True) -> str:
    raw = json.dumps(data).encode()
    text = (base64.urlsafe_b64encode if urlsafe else base64.standard_b64encode)(raw).decode()
    return text if padding else text.rstrip("=")


def test_empty_or_missing_auth_header_is_anonymous() -> None:
    assert decode_registry_auth(None).anonymous
    assert decode_registry_auth("").anonymous
    assert decode_registry_auth("e30=").anonymous  # {} as the docker CLI sends it


@pytest.mark.parametrize("urlsafe", [True, False])
@pytest.mark.parametrize("padding", [True, False])
def test_auth_header_decodes_in_every_base64_dialect(urlsafe: bool, padding: bool) -> None:
    # a password whose base64 has '+' '/' in the standard alphabet and '-' '_' in the other
    data = {"username": "me", "password": "??>>~~", "serveraddress": "127.0.0.1:5000"}
    credentials = decode_registry_auth(_header(data, urlsafe=urlsafe, padding=padding))
    assert credentials == RegistryCredentials(username="me", password="??>>~~")


def test_auth_header_carries_tokens_and_the_auth_field() -> None:
    pair = base64.b64encode(b"user:pa:ss").decode()
    assert decode_registry_auth(_header({"auth": pair})) == RegistryCredentials("user", "pa:ss")
    tokens = decode_registry_auth(_header({"identitytoken": "refresh", "registrytoken": "bear"}))
    assert tokens == RegistryCredentials(identity_token="refresh", registry_token="bear")
    assert credentials_from_json({"Username": "u", "Password": "p"}) == RegistryCredentials(
        "u", "p"
    )


@pytest.mark.parametrize("header", ["not base64!", _header([1, 2]), "bm90IGpzb24="])
def test_a_bad_auth_header_is_a_400(header: str) -> None:
    with pytest.raises(InvalidParameter, match="invalid X-Registry-Auth header"):
        decode_registry_auth(header)


@pytest.mark.parametrize(
    ("address", "registry"),
    [
        ("", "docker.io"),
        ("https://index.docker.io/v1/", "docker.io"),
        ("index.docker.io", "docker.io"),
        ("registry-1.docker.io", "docker.io"),
        ("docker.io", "docker.io"),
        ("127.0.0.1:5000", "127.0.0.1:5000"),
        ("http://127.0.0.1:5000/v2/", "127.0.0.1:5000"),
        ("registry.example.com", "registry.example.com"),
    ],
)
def test_server_addresses_name_registries_as_docker_does(address: str, registry: str) -> None:
    assert registry_of_server_address(address) == registry


@pytest.mark.parametrize(
    ("registry", "insecure", "expected"),
    [
        ("127.0.0.1:5000", [], True),
        ("127.9.9.9", [], True),
        ("localhost:5000", [], True),
        ("[::1]:5000", [], True),
        ("registry.example.com", [], False),
        ("10.1.2.3:5000", [], False),
        ("10.1.2.3:5000", ["10.0.0.0/8"], True),
        ("registry.example.com", ["10.0.0.0/8"], False),  # names are not resolved
        ("registry.example.com:5000", ["registry.example.com:5000"], True),
        ("registry.example.com:5000", ["registry.example.com"], True),
        ("registry.example.com:5001", ["registry.example.com:5000"], False),
    ],
)
def test_insecure_registries(registry: str, insecure: list[str], expected: bool) -> None:
    assert is_insecure_registry(registry, RegistrySettings(insecure=insecure)) is expected


def _transfers(settings: RegistrySettings) -> Transfers:
    """A Transfers for its endpoint policy alone (no images, no transport are touched)."""
    transfers = Transfers.__new__(Transfers)
    transfers.settings = settings
    return transfers


def test_docker_hub_is_reached_at_its_api_host_after_its_mirrors() -> None:
    transfers = _transfers(RegistrySettings(mirrors={"docker.io": ["https://mirror.test"]}))
    assert transfers.endpoints("docker.io") == [
        RegistryEndpoint("https://mirror.test", mirror=True),
        RegistryEndpoint(HUB_ENDPOINT),
    ]
    # pushes never go to a mirror
    assert transfers.endpoints("docker.io", push=True) == [RegistryEndpoint(HUB_ENDPOINT)]


def test_an_insecure_registry_tries_tls_without_verification_then_plain_http() -> None:
    transfers = _transfers(RegistrySettings(mirrors={"127.0.0.1:5000": ["http://127.0.0.1:5001"]}))
    assert transfers.endpoints("127.0.0.1:5000") == [
        RegistryEndpoint("http://127.0.0.1:5001", mirror=True),
        RegistryEndpoint("https://127.0.0.1:5000", tls_verify=False),
        RegistryEndpoint("http://127.0.0.1:5000"),
    ]
    assert transfers.endpoints("registry.example.com") == [
        RegistryEndpoint("https://registry.example.com")
    ]


@pytest.mark.parametrize(
    "values",
    [
        {"insecure": ["http://registry.example.com"]},
        {"insecure": ["10.0.0.0/33"]},
        {"mirrors": {"docker.io": ["mirror.test"]}},
    ],
)
def test_bad_registry_settings_are_refused(values: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        RegistrySettings(**values)


# -- the progress stream -------------------------------------------------------------------


async def _stream_client(aiohttp_client: Any, operation: Any) -> TestClient[Any, Any]:
    async def handler(request: web.Request) -> web.StreamResponse:
        try:
            return await progress_stream(request, operation)
        except PydockerdError as e:  # what the API's error middleware does
            return error_response(status_for(e), e.message)

    app = web.Application()
    app.router.add_post("/op", handler)
    client: TestClient[Any, Any] = await aiohttp_client(app)
    return client


async def test_an_error_before_any_message_is_a_plain_http_error(aiohttp_client: Any) -> None:
    async def fails(report: Any) -> None:
        raise NotFound("manifest unknown")

    client = await _stream_client(aiohttp_client, fails)
    async with client.post("/op") as response:
        assert response.status == 404
        assert await response.json() == {"message": "manifest unknown"}


async def test_an_error_after_a_message_ends_the_stream_with_error_detail(
    aiohttp_client: Any,
) -> None:
    async def fails_later(report: Any) -> None:
        report({"status": "Pulling fs layer", "id": "abc", "progressDetail": {}})
        raise InvalidParameter("digest mismatch")

    client = await _stream_client(aiohttp_client, fails_later)
    async with client.post("/op") as response:
        assert response.status == 200
        assert response.headers["Content-Type"] == "application/json"
        lines = [json.loads(line) for line in (await response.read()).splitlines()]
    assert lines == [
        {"status": "Pulling fs layer", "id": "abc", "progressDetail": {}},
        {"errorDetail": {"message": "digest mismatch"}, "error": "digest mismatch"},
    ]


async def test_a_client_that_goes_away_cancels_the_operation(aiohttp_client: Any) -> None:
    cancelled = asyncio.Event()

    async def endless(report: Any) -> None:
        try:
            while True:
                report({"status": "Downloading", "id": "abc", "progressDetail": {"current": 1}})
                await asyncio.sleep(0.01)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    client = await _stream_client(aiohttp_client, endless)
    async with client.post("/op") as response:
        await response.content.readline()
    await asyncio.wait_for(cancelled.wait(), 5)


async def test_a_client_that_goes_away_before_any_message_cancels_the_operation() -> None:
    """The operation was cancelled only when writing a message failed: a client that left
    while it reported nothing (a registry that does not answer, with retries for a minute; a
    layer being unpacked) left it running to its end."""
    cancelled = asyncio.Event()

    async def silent(report: Any) -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    async def handler(request: web.Request) -> web.StreamResponse:
        return await progress_stream(request, silent)

    app = web.Application()
    app.router.add_post("/op", handler)
    runner = web.AppRunner(app)  # as the daemon's: a handler is not cancelled on disconnect
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        async with aiohttp.ClientSession() as session:
            with pytest.raises(TimeoutError):
                await session.post(
                    f"http://127.0.0.1:{port}/op", timeout=aiohttp.ClientTimeout(total=0.2)
                )
        await asyncio.wait_for(cancelled.wait(), 5)
    finally:
        await runner.cleanup()


def test_info_lists_insecure_registries_and_mirrors() -> None:
    settings = RegistrySettings(
        insecure=["10.0.0.0/8", "registry.test:5000"],
        mirrors={"docker.io": ["https://mirror.test"], "registry.test:5000": ["http://m2:1"]},
    )
    info = registry_info(settings)
    assert info["InsecureRegistryCIDRs"] == ["127.0.0.0/8", "::1/128", "10.0.0.0/8"]
    assert info["Mirrors"] == ["https://mirror.test/"]
    assert info["IndexConfigs"]["docker.io"] == {
        "Name": "docker.io",
        "Mirrors": ["https://mirror.test/"],
        "Secure": True,
        "Official": True,
    }
    assert info["IndexConfigs"]["registry.test:5000"] == {
        "Name": "registry.test:5000",
        "Mirrors": ["http://m2:1/"],
        "Secure": False,
        "Official": False,
    }


async def test_layers_are_gzipped_for_a_push_several_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A push of a loaded image (uncompressed layers) gzipped them one after the other, on
    one core; each is compressed in a thread of its own now, at most one a CPU."""
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    content = ContentStore(tmp_path / "content")
    tars = [bytes([n]) * 300_000 for n in range(3)]
    layers = [
        LayerRecord(
            f"sha256:{n:064}", sha256_digest(tar), None, str(n), len(tar), content.write(tar)
        )
        for n, tar in enumerate(tars)
    ]
    config = content.write(b"{}")
    image = ImageRecord(config, layers[-1].chain_id, None, None, 0, 0.0, None)
    stored: dict[str, str] = {}
    images = SimpleNamespace(
        content=content,
        store=SimpleNamespace(
            set_layer_blob=stored.__setitem__,
            set_manifest=lambda image_id, digest: None,
        ),
    )
    transfers = Transfers.__new__(Transfers)
    transfers.images = images  # type: ignore[assignment]
    together = threading.Barrier(2, timeout=10)  # one at a time never gets past it
    real = Transfers._gzip_blob

    def gzip_blob(self: Transfers, digest: str) -> str:
        if digest != layers[2].blob:
            together.wait()
        return real(self, digest)

    monkeypatch.setattr(Transfers, "_gzip_blob", gzip_blob)
    manifest = await transfers._make_manifest(image, layers)
    described = json.loads(manifest.data)["layers"]
    assert [stored[layer.chain_id] for layer in layers] == [d["digest"] for d in described]
    for tar, descriptor in zip(tars, described, strict=True):
        assert gzip.decompress(content.read(descriptor["digest"])) == tar
