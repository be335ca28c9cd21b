"""Retries and redirects, with a small aiohttp front in front of the reference registry:
it answers some requests with 503/429 first, asks for Basic credentials, and redirects blob
downloads to another origin (as registries do to object storage)."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aiohttp
import pytest
from aiohttp import web
from pydockerd.images.blobsink import ContentBlobSink
from pydockerd.plugin import RegistryCredentials, Unavailable
from pydockerd.testing.registries import (
    ReferenceRegistry,
    free_port,
    pull_into,
    push_image,
    random_image,
    remote_repository,
)
from pydockerd_registry_distribution.transport import DistributionTransport

CREDS = RegistryCredentials("u", "p")
BASIC = "Basic " + base64.b64encode(b"u:p").decode()
PASSED = ("Content-Type", "Docker-Content-Digest", "Content-Range", "Location", "Range")


@dataclass
class Front:
    url: str
    failures: dict[str, list[tuple[int, dict[str, str]]]] = field(default_factory=dict)
    """Path suffix → answers to give (in order) before passing requests on."""
    bodies: dict[int, bytes] = field(default_factory=dict)
    """The body of each status those answers have (none when not here)."""
    redirect_blobs: bool = False
    seen: list[tuple[str, str, str | None]] = field(default_factory=list)
    """(origin, path, Authorization) of every request."""


async def _start(app: web.Application, port: int) -> web.AppRunner:
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner


@pytest.fixture
async def front(registry: ReferenceRegistry) -> AsyncIterator[Front]:
    front_port, storage_port = free_port(), free_port()
    state = Front(f"http://127.0.0.1:{front_port}")
    client = aiohttp.ClientSession(auto_decompress=False)

    async def forward(request: web.Request) -> web.StreamResponse:
        auth = request.headers.get("Authorization")
        state.seen.append(("front", request.path, auth))
        if auth != BASIC:
            raise web.HTTPUnauthorized(headers={"WWW-Authenticate": 'Basic realm="front"'})
        for suffix, answers in state.failures.items():
            if request.path.endswith(suffix) and answers:
                status, headers = answers.pop(0)
                body = state.bodies.get(status)
                if body is not None:
                    headers = {**headers, "Content-Type": "application/json"}
                return web.Response(status=status, headers=headers, body=body)
        if state.redirect_blobs and "/blobs/sha256:" in request.path:
            digest = request.path.rpartition("/")[2]
            location = f"http://127.0.0.1:{storage_port}/data/{digest}?signature=x"
            raise web.HTTPTemporaryRedirect(location)
        headers = {k: v for k, v in request.headers.items() if k in ("Accept", "Range")}
        async with client.request(
            request.method,
            registry.url + request.path_qs,
            headers=headers,
            data=await request.read(),
            allow_redirects=False,
        ) as upstream:
            body = await upstream.read()
            passed = {k: v for k, v in upstream.headers.items() if k in PASSED}
            return web.Response(status=upstream.status, body=body, headers=passed)

    async def storage(request: web.Request) -> web.StreamResponse:
        state.seen.append(("storage", request.path, request.headers.get("Authorization")))
        data = registry.blob_data(request.match_info["digest"]).read_bytes()
        return web.Response(body=data, content_type="application/octet-stream")

    front_app = web.Application()
    front_app.router.add_route("*", "/{tail:.*}", forward)
    storage_app = web.Application()
    storage_app.router.add_get("/data/{digest}", storage)
    runners = [await _start(front_app, front_port), await _start(storage_app, storage_port)]
    try:
        yield state
    finally:
        await client.close()
        for runner in runners:
            await runner.cleanup()


async def test_5xx_and_429_are_retried(
    registry: ReferenceRegistry,
    front: Front,
    transport: DistributionTransport,
    sink: ContentBlobSink,
) -> None:
    image = random_image(1)
    push_image(registry.url, "flaky/img", "v1", image)
    front.failures["/manifests/v1"] = [(503, {}), (429, {"Retry-After": "0"})]
    front.failures[f"/blobs/{image.layer_digests[0]}"] = [(502, {})]
    try:
        result = await pull_into(
            transport, remote_repository(front.url, "flaky/img", CREDS), "v1", sink
        )
    finally:
        await transport.close()  # before the front stops, which waits for idle clients
    assert result.digest == image.digest
    assert sink.has(image.layer_digests[0])


async def test_retries_end(
    registry: ReferenceRegistry,
    front: Front,
    transport: DistributionTransport,
    sink: ContentBlobSink,
) -> None:
    push_image(registry.url, "flaky/down", "v1", random_image(1))
    front.failures["/manifests/v1"] = [(503, {})] * 10
    try:
        with pytest.raises(Unavailable, match="503"):
            await pull_into(
                transport, remote_repository(front.url, "flaky/down", CREDS), "v1", sink
            )
    finally:
        await transport.close()
    assert len(front.failures["/manifests/v1"]) == 10 - transport.config.max_download_attempts


@pytest.mark.parametrize(
    ("status", "body", "text"),
    [
        (
            429,
            b'{"errors":[{"code":"TOOMANYREQUESTS","message":"You have reached your pull '
            b'rate limit."}]}',
            "toomanyrequests: You have reached your pull rate limit.",
        ),
        (500, b'{"errors":[{"code":"UNKNOWN","message":"boom"}]}', "unknown: boom"),
        (503, None, "received unexpected HTTP status: 503 Service Unavailable"),
    ],
    ids=["429-coded", "500-coded", "503-bare"],
)
async def test_an_error_answer_that_persists_says_what_docker_says(
    registry: ReferenceRegistry,
    front: Front,
    transport: DistributionTransport,
    sink: ContentBlobSink,
    status: int,
    body: bytes | None,
    text: str,
) -> None:
    """Docker prints a registry's coded error as it is ("toomanyrequests: You have reached
    your pull rate limit."); Go's "received unexpected HTTP status: <status>" is for an
    answer without one. Every 5xx and 429 had that prefix before its code, and a layer's
    lost the "error pulling layer" context."""
    image = random_image(1)
    push_image(registry.url, "flaky/coded", "v1", image)
    front.failures["/manifests/v1"] = [(status, {"Retry-After": "0"})] * 10
    front.failures[f"/blobs/{image.layer_digests[0]}"] = [(status, {"Retry-After": "0"})] * 10
    if body is not None:
        front.bodies[status] = body
    repository = remote_repository(front.url, "flaky/coded", CREDS)
    try:
        with pytest.raises(Unavailable) as manifest:
            await pull_into(transport, repository, "v1", sink)
        front.failures["/manifests/v1"].clear()
        with pytest.raises(Unavailable) as layer:
            await pull_into(transport, repository, "v1", sink)
    finally:
        await transport.close()
    assert str(manifest.value) == text
    assert str(layer.value) == (
        f"error pulling layer {image.layer_digests[0]} of {front.url[7:]}/flaky/coded: {text}"
    )


async def test_a_registry_that_keeps_sending_the_wrong_range_is_given_up(
    registry: ReferenceRegistry,
    front: Front,
    transport: DistributionTransport,
    sink: ContentBlobSink,
) -> None:
    """A 206 for another range than asked (or a 416) started over from zero without counting
    against max_download_attempts: a registry that always did so was asked for ever."""
    image = random_image(1)
    push_image(registry.url, "flaky/range", "v1", image)
    (layer,) = image.layer_digests
    wrong = {"Content-Range": f"bytes 7-9/{len(image.layers[0])}"}
    front.failures[f"/blobs/{layer}"] = [(206, wrong)] * 10
    try:
        with pytest.raises(Unavailable, match="answered 206 with Content-Range"):
            await pull_into(
                transport, remote_repository(front.url, "flaky/range", CREDS), "v1", sink
            )
    finally:
        await transport.close()
    assert len(front.failures[f"/blobs/{layer}"]) == 10 - transport.config.max_download_attempts
    assert not sink.has(layer)


async def test_credentials_stay_with_the_registry_after_a_redirect(
    registry: ReferenceRegistry,
    front: Front,
    transport: DistributionTransport,
    sink: ContentBlobSink,
) -> None:
    image = random_image(2)
    push_image(registry.url, "redirected/img", "v1", image)
    front.redirect_blobs = True
    try:
        await pull_into(
            transport, remote_repository(front.url, "redirected/img", CREDS), "v1", sink
        )
    finally:
        await transport.close()
    for digest in image.blobs():
        assert sink.has(digest)
    storage = [seen for seen in front.seen if seen[0] == "storage"]
    assert len(storage) == 3  # the config and both layers
    assert all(auth is None for _, _, auth in storage)
    at_front = [auth for origin, path, auth in front.seen if origin == "front" and path != "/v2/"]
    assert at_front
    assert all(auth == BASIC for auth in at_front)
