"""Pulls from Debian's reference registry (distribution 2.8) on 127.0.0.1."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import pytest
from pydockerd.images.blobsink import ContentBlobSink
from pydockerd.plugin import (
    MEDIA_TYPES,
    DriverConfig,
    InvalidParameter,
    NotFound,
    RegistryTransport,
    Unavailable,
)
from pydockerd.testing.drivers import register_from_entry_point
from pydockerd.testing.registries import (
    ProgressLog,
    ReferenceRegistry,
    cutting_proxy,
    free_port,
    pull_into,
    push_blob,
    push_image,
    push_index,
    push_manifest,
    random_image,
    reference_registry,
    remote_repository,
)
from pydockerd_registry_distribution.client import Session
from pydockerd_registry_distribution.transport import Config, DistributionTransport, short_id

AMD64 = {"os": "linux", "architecture": "amd64"}
ARM64 = {"os": "linux", "architecture": "arm64", "variant": "v8"}


def test_registered_through_its_entry_point() -> None:
    registry = register_from_entry_point("distribution", RegistryTransport)
    assert registry.get("distribution") is DistributionTransport
    assert DistributionTransport.qualified_name() == "registry.distribution"
    assert isinstance(DistributionTransport.Config(), DriverConfig)


@pytest.mark.parametrize("oci", [True, False], ids=["oci", "docker"])
async def test_pull_an_image(
    registry: ReferenceRegistry,
    transport: DistributionTransport,
    sink: ContentBlobSink,
    progress: ProgressLog,
    oci: bool,
) -> None:
    image = random_image(2, oci=oci)
    path = f"pull/{'oci' if oci else 'docker'}"
    push_image(registry.url, path, "v1", image)
    result = await pull_into(
        transport, remote_repository(registry, path), "v1", sink, progress=progress
    )
    assert result.digest == image.digest
    assert result.index is None
    assert result.manifest.data == image.manifest
    assert result.manifest.media_type == image.media_type
    assert result.config.digest == image.config_digest
    assert [layer.digest for layer in result.layers] == image.layer_digests
    for digest, data in image.blobs().items():
        assert sink.store.read(digest) == data
    assert sink.store.read(image.digest) == image.manifest
    for digest in image.layer_digests:
        assert progress.statuses(short_id(digest)) == [
            "Pulling fs layer",
            "Verifying Checksum",
            "Download complete",
        ]
        downloading = [m for m in progress if m.id == short_id(digest) and m.current]
        assert downloading[-1].current == downloading[-1].total == len(image.blobs()[digest])

    again = ProgressLog()
    await transport.pull(
        remote_repository(registry, path), "v1", platform="linux/amd64", blobs=sink, progress=again
    )
    assert [m.status for m in again] == ["Already exists"] * 2


async def test_pull_by_digest(
    registry: ReferenceRegistry, transport: DistributionTransport, sink: ContentBlobSink
) -> None:
    image = random_image(1)
    push_image(registry.url, "pull/bydigest", "v1", image)
    result = await pull_into(
        transport, remote_repository(registry, "pull/bydigest"), image.digest, sink
    )
    assert result.digest == image.digest
    assert sink.has(image.layer_digests[0])


@pytest.mark.parametrize("oci", [True, False], ids=["oci-index", "docker-list"])
async def test_index_resolves_to_amd64(
    registry: ReferenceRegistry, transport: DistributionTransport, sink: ContentBlobSink, oci: bool
) -> None:
    amd64, arm64 = random_image(1, oci=oci), random_image(1, oci=oci, architecture="arm64")
    index = push_index(
        registry.url,
        "pull/multi",
        "v1",
        [(arm64, ARM64), (amd64, AMD64)],
        oci=oci,
        attestation_for=amd64,
    )
    result = await pull_into(transport, remote_repository(registry, "pull/multi"), "v1", sink)
    assert result.digest == index
    assert result.index is not None
    assert result.index.media_type == (MEDIA_TYPES.OCI_INDEX if oci else MEDIA_TYPES.DOCKER_LIST)
    assert result.manifest.digest == amd64.digest
    assert sink.has(index)
    assert sink.has(amd64.layer_digests[0])
    assert not sink.has(arm64.layer_digests[0])

    result = await transport.pull(
        remote_repository(registry, "pull/multi"),
        "v1",
        platform="linux/arm64",
        blobs=sink,
        progress=ProgressLog(),
    )
    assert result.manifest.digest == arm64.digest


async def test_index_without_amd64(
    registry: ReferenceRegistry, transport: DistributionTransport, sink: ContentBlobSink
) -> None:
    arm64 = random_image(1, architecture="arm64")
    push_index(registry.url, "pull/armonly", "v1", [(arm64, ARM64)], attestation_for=arm64)
    with pytest.raises(InvalidParameter) as caught:
        await pull_into(transport, remote_repository(registry, "pull/armonly"), "v1", sink)
    assert str(caught.value) == (
        "no matching manifest for linux/amd64 in the manifest list entries"
    )


async def test_unknown_tag_and_repository(
    registry: ReferenceRegistry, transport: DistributionTransport, sink: ContentBlobSink
) -> None:
    push_image(registry.url, "pull/known", "v1", random_image(1))
    with pytest.raises(NotFound) as caught:
        await pull_into(transport, remote_repository(registry, "pull/known"), "nope", sink)
    assert str(caught.value) == (
        f"manifest for {registry.host}/pull/known:nope not found: "
        "manifest unknown: manifest unknown"
    )
    with pytest.raises(NotFound) as caught:
        await pull_into(transport, remote_repository(registry, "pull/unknown"), "latest", sink)
    assert str(caught.value) == (  # distribution 2.8 says MANIFEST_UNKNOWN here too
        f"manifest for {registry.host}/pull/unknown:latest not found: "
        "manifest unknown: manifest unknown"
    )


async def test_concurrent_downloads_are_limited(
    registry: ReferenceRegistry, tmp_path: object, sink: ContentBlobSink
) -> None:
    from pathlib import Path

    from pydockerd.testing.drivers import make_driver

    image = random_image(6, 1024 * 1024)
    push_image(registry.url, "pull/many", "v1", image)
    for limit in (1, 3):
        made = make_driver(
            DistributionTransport,
            Path(str(tmp_path)) / f"d{limit}",
            Config(max_concurrent_downloads=limit),
        )
        store = ContentBlobSink(type(sink.store)(Path(str(tmp_path)) / f"c{limit}"))
        log = ProgressLog()
        try:
            await made.pull(
                remote_repository(registry, "pull/many"),
                "v1",
                platform="linux/amd64",
                blobs=store,
                progress=log,
            )
        finally:
            await made.close()
        most = log.most_at_once("Downloading", "Download complete")
        assert most <= limit
        assert most > 1 or limit == 1  # several at once when allowed
        waiting = [m.id for m in log if m.status == "Waiting"]
        assert len(waiting) == 6 - limit


async def test_resume_after_a_cut_connection(
    registry: ReferenceRegistry, transport: DistributionTransport, sink: ContentBlobSink
) -> None:
    image = random_image(1, 3 * 1024 * 1024)
    push_image(registry.url, "pull/resume", "v1", image)
    (layer,) = image.layer_digests
    with cutting_proxy(registry.url, cut_after=1024 * 1024) as proxy:
        log = ProgressLog()
        await pull_into(
            transport, remote_repository(proxy.url, "pull/resume"), "v1", sink, progress=log
        )
        assert proxy.cut == 1
    assert sink.store.read(layer) == image.layers[0]
    assert list(sink.store.partials.iterdir()) == []
    # the second request asked for the rest only: no byte count went back to zero
    counts = [m.current for m in log if m.status == "Downloading" and m.current]
    assert counts == sorted(counts)


async def test_resume_from_a_partial_left_by_an_earlier_pull(
    registry: ReferenceRegistry, transport: DistributionTransport, sink: ContentBlobSink
) -> None:
    image = random_image(1, 2 * 1024 * 1024)
    push_image(registry.url, "pull/kept", "v1", image)
    (layer,) = image.layer_digests
    (descriptor,) = [
        d
        for d in json.loads(image.manifest)["layers"]
        if d["digest"] == layer  # the manifest's own descriptor
    ]
    from pydockerd.plugin import Descriptor

    with sink.partial(Descriptor.from_json(descriptor)) as partial:
        await partial.write(image.layers[0][:700_000])  # a pull that was killed
    log = ProgressLog()
    await pull_into(transport, remote_repository(registry, "pull/kept"), "v1", sink, progress=log)
    assert sink.store.read(layer) == image.layers[0]
    first = next(m for m in log if m.status == "Downloading")
    assert first.current == 700_000  # asked with Range: bytes=700000-


async def test_tampered_blob_is_refused(
    registry: ReferenceRegistry, transport: DistributionTransport, sink: ContentBlobSink
) -> None:
    image = random_image(2)
    push_image(registry.url, "pull/tampered", "v1", image)
    bad = image.layer_digests[1]
    registry.tamper(bad, at=100)
    with pytest.raises(InvalidParameter) as caught:
        await pull_into(transport, remote_repository(registry, "pull/tampered"), "v1", sink)
    assert str(caught.value) == f"filesystem layer verification failed for digest {bad}"
    assert not sink.has(bad)
    # the bad bytes are gone; the other layer's download, cut short, is kept for a resume
    assert bad.removeprefix("sha256:") not in [p.name for p in sink.store.partials.iterdir()]


@pytest.mark.parametrize("lie", [+1000, -1000], ids=["larger", "smaller"])
async def test_a_layer_size_that_lies_fails_at_once(
    registry: ReferenceRegistry, transport: DistributionTransport, sink: ContentBlobSink, lie: int
) -> None:
    """A manifest by tag whose layer size is not the blob's: the pull was retried
    max_download_attempts times, each one downloading the whole blob again (Range past its
    end: 416, start over), and ended as "the registry sent a short body" (503)."""
    image = random_image(1, 300_000)
    parsed = json.loads(image.manifest)
    parsed["layers"][0]["size"] += lie
    manifest = json.dumps(parsed).encode()
    for data in image.blobs().values():
        push_blob(registry.url, "pull/liar", data)
    push_manifest(registry.url, "pull/liar", "v1", manifest, media_type=image.media_type)
    with pytest.raises(InvalidParameter) as caught:
        await pull_into(transport, remote_repository(registry, "pull/liar"), "v1", sink)
    (layer,) = image.layer_digests
    assert str(caught.value) == (
        f"filesystem layer verification failed for digest {layer} (the registry has "
        f"{len(image.layers[0])} bytes, the manifest says {len(image.layers[0]) + lie})"
    )
    assert not sink.has(layer)


async def test_a_config_larger_than_its_blob_is_refused(
    registry: ReferenceRegistry, transport: DistributionTransport, sink: ContentBlobSink
) -> None:
    """The config's digest was checked, its size not: a manifest saying it is larger than
    it is passed."""
    image = random_image(1)
    parsed = json.loads(image.manifest)
    parsed["config"]["size"] += 10
    manifest = json.dumps(parsed).encode()
    for data in image.blobs().values():
        push_blob(registry.url, "pull/config-liar", data)
    push_manifest(registry.url, "pull/config-liar", "v1", manifest, media_type=image.media_type)
    with pytest.raises(InvalidParameter, match="blob verification failed"):
        await pull_into(transport, remote_repository(registry, "pull/config-liar"), "v1", sink)
    assert not sink.has(image.config_digest)


async def test_a_registry_gone_mid_pull_is_tried_max_download_attempts_times(
    registry: ReferenceRegistry,
    transport: DistributionTransport,
    sink: ContentBlobSink,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A layer whose requests find no server: each request is tried max_download_attempts
    times, and the layer's own retry loop tried each such request as many times again (25
    connections, a minute of backoff with the default delays, for dockerd's 5)."""
    image = random_image(1)
    push_image(registry.url, "pull/gone", "v1", image)
    tries: list[str] = []
    real = Session._send_once

    async def send_once(self: Session, method: str, url: Any, *args: Any) -> Any:
        if "/blobs/" in str(url) and image.layer_digests[0] in str(url):
            tries.append(str(url))
            raise aiohttp.ClientConnectionError("connection refused")
        return await real(self, method, url, *args)

    monkeypatch.setattr(Session, "_send_once", send_once)
    with pytest.raises(Unavailable, match="failed after 5 attempts"):
        await pull_into(transport, remote_repository(registry, "pull/gone"), "v1", sink)
    assert len(tries) == transport.config.max_download_attempts == 5


async def test_unreachable_registry(
    transport: DistributionTransport, sink: ContentBlobSink
) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(Unavailable) as caught:
        await pull_into(transport, remote_repository(url, "x"), "latest", sink)
    assert str(caught.value).startswith("cannot reach registry 127.0.0.1:")
    assert f"({url}): " in str(caught.value)
    assert "refused" in str(caught.value)


async def test_a_mirror_that_is_down_falls_back_to_the_registry(
    registry: ReferenceRegistry, transport: DistributionTransport, sink: ContentBlobSink
) -> None:
    image = random_image(1)
    push_image(registry.url, "pull/mirrored", "v1", image)
    down = f"http://127.0.0.1:{free_port()}"
    with reference_registry() as empty_mirror:
        repository = remote_repository(registry, "pull/mirrored", mirrors=(down, empty_mirror.url))
        result = await transport.pull(
            repository, "v1", platform="linux/amd64", blobs=sink, progress=ProgressLog()
        )
    assert result.digest == image.digest


async def test_schema1_is_refused_clearly(
    registry: ReferenceRegistry, transport: DistributionTransport, sink: ContentBlobSink
) -> None:
    from pydockerd.testing.registries import push_manifest

    # the reference registry refuses schema 1 uploads; serve one from a mirror-less fake
    del push_manifest
    from aiohttp import web

    async def manifest(request: web.Request) -> web.Response:
        return web.Response(
            body=json.dumps({"schemaVersion": 1, "name": "x", "tag": "v1"}).encode(),
            content_type="application/vnd.docker.distribution.manifest.v1+prettyjws",
        )

    async def ping(request: web.Request) -> web.Response:
        return web.json_response({})

    app = web.Application()
    app.router.add_get("/v2/", ping)
    app.router.add_get("/v2/old/manifests/v1", manifest)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    try:
        with pytest.raises(InvalidParameter, match="schema 1"):
            await pull_into(
                transport, remote_repository(f"http://127.0.0.1:{port}", "old"), "v1", sink
            )
    finally:
        await transport.close()
        await runner.cleanup()


async def test_insecure_registry_https_then_http(
    registry: ReferenceRegistry, transport: DistributionTransport, sink: ContentBlobSink
) -> None:
    from pydockerd.plugin import RegistryEndpoint, RemoteRepository

    image = random_image(1)
    push_image(registry.url, "pull/insecure", "v1", image)
    https = RegistryEndpoint(registry.url.replace("http://", "https://"), tls_verify=False)
    repository = RemoteRepository(
        registry.host, "pull/insecure", [https, RegistryEndpoint(registry.url)]
    )
    result = await transport.pull(
        repository, "v1", platform="linux/amd64", blobs=sink, progress=ProgressLog()
    )
    assert result.digest == image.digest
    with pytest.raises(Unavailable) as caught:  # https only: the TLS failure is named
        await pull_into(
            transport, RemoteRepository(registry.host, "pull/insecure", [https]), "v1", sink
        )
    assert str(caught.value) == (
        f"cannot reach registry {registry.host} ({https.url}): "
        "http: server gave HTTP response to HTTPS client"
    )
