"""Pushes, tag lists and logins against Debian's reference registry."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydockerd.images.blobsink import ContentBlobSink
from pydockerd.images.content import ContentStore
from pydockerd.plugin import (
    PushBlob,
    RegistryCredentials,
    RegistryEndpoint,
    Unauthorized,
)
from pydockerd.testing.drivers import make_driver
from pydockerd.testing.registries import (
    ProgressLog,
    ReferenceRegistry,
    cutting_proxy,
    pull_into,
    push_image,
    push_into,
    random_image,
    reference_registry,
    remote_repository,
    stage_for_push,
)
from pydockerd_registry_distribution.transport import Config, DistributionTransport, short_id

ALICE = RegistryCredentials(username="alice", password="wonderland")


def pulled_manifest(registry: ReferenceRegistry, path: str, reference: str) -> bytes:
    import urllib.request

    request = urllib.request.Request(
        f"{registry.url}/v2/{path}/manifests/{reference}",
        headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
    )
    with urllib.request.urlopen(request) as resp:
        data: bytes = resp.read()
        return data


def spy_methods(transport: DistributionTransport, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The method of every request the transport sends from now on."""
    http = transport.http
    original = http.request
    seen: list[str] = []

    def request(method: str, url: Any, **kwargs: Any) -> Any:
        seen.append(method)
        return original(method, url, **kwargs)

    monkeypatch.setattr(http, "request", request)
    return seen


async def test_push_then_push_again(
    registry: ReferenceRegistry,
    transport: DistributionTransport,
    sink: ContentBlobSink,
    progress: ProgressLog,
) -> None:
    image = random_image(2)
    manifest, blobs = stage_for_push(sink, image)
    repository = remote_repository(registry, "push/new")
    result = await transport.push(repository, "v1", manifest, blobs, blobs=sink, progress=progress)
    assert (result.digest, result.size) == (image.digest, len(image.manifest))
    assert pulled_manifest(registry, "push/new", "v1") == image.manifest
    for digest in image.layer_digests:
        assert progress.statuses(short_id(digest)) == ["Preparing", "Pushed"]
        pushing = [m for m in progress if m.id == short_id(digest) and m.status == "Pushing"]
        assert pushing[-1].current == pushing[-1].total == len(image.blobs()[digest])
    assert all(m.id for m in progress)  # the config is pushed silently

    again = ProgressLog()
    await transport.push(repository, "v2", manifest, blobs, blobs=sink, progress=again)
    for digest in image.layer_digests:
        assert again.statuses(short_id(digest)) == ["Preparing", "Layer already exists"]
    assert pulled_manifest(registry, "push/new", "v2") == image.manifest


async def test_push_by_digest(
    registry: ReferenceRegistry, transport: DistributionTransport, sink: ContentBlobSink
) -> None:
    image = random_image(1)
    result = await push_into(
        transport, remote_repository(registry, "push/digest"), None, image, sink
    )
    assert pulled_manifest(registry, "push/digest", result.digest) == image.manifest


async def test_cross_repository_mount(
    registry: ReferenceRegistry,
    transport: DistributionTransport,
    sink: ContentBlobSink,
    progress: ProgressLog,
) -> None:
    image = random_image(1)
    push_image(registry.url, "push/source", "v1", image)
    manifest, blobs = stage_for_push(sink, image)
    blobs = [PushBlob(b.descriptor, ["push/source"], b.progress_id) for b in blobs]
    await transport.push(
        remote_repository(registry, "push/mounted"),
        "v1",
        manifest,
        blobs,
        blobs=sink,
        progress=progress,
    )
    assert progress.statuses(short_id(image.layer_digests[0])) == [
        "Preparing",
        "Mounted from push/source",
    ]
    assert pulled_manifest(registry, "push/mounted", "v1") == image.manifest


async def test_chunked_upload(
    registry: ReferenceRegistry,
    tmp_path: Path,
    sink: ContentBlobSink,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    transport = make_driver(
        DistributionTransport, tmp_path / "small", Config(upload_chunk_size=100_000)
    )
    try:
        image = random_image(1, 350_000)
        manifest, blobs = stage_for_push(sink, image)
        methods = spy_methods(transport, monkeypatch)
        await transport.push(
            remote_repository(registry, "push/chunked"),
            "v1",
            manifest,
            blobs,
            blobs=sink,
            progress=ProgressLog(),
        )
    finally:
        await transport.close()
    layer_size = len(image.layers[0])
    config_size = len(image.config)
    assert methods.count("PATCH") == -(-layer_size // 100_000) + -(-config_size // 100_000)
    assert pulled_manifest(registry, "push/chunked", "v1") == image.manifest


async def test_list_tags(registry: ReferenceRegistry, transport: DistributionTransport) -> None:
    image = random_image(1, 100)
    names = [f"t{i}" for i in range(4)]
    for name in names:
        push_image(registry.url, "tags/few", name, image)
    # distribution 2.8 ignores n for tags (pages: see test_token.py, on pydocker-registry)
    assert sorted(await transport.list_tags(remote_repository(registry, "tags/few"))) == names


@pytest.fixture(scope="module")
def private() -> Any:
    with reference_registry(users={"alice": "wonderland"}) as running:
        yield running


async def test_basic_auth_login(
    private: ReferenceRegistry, transport: DistributionTransport
) -> None:
    endpoint = RegistryEndpoint(private.url)
    assert await transport.login(endpoint, ALICE) == ""
    with pytest.raises(Unauthorized) as caught:
        await transport.login(endpoint, RegistryCredentials("alice", "nope"))
    assert str(caught.value) == (f'Get "{private.url}/v2/": unauthorized: authentication required')


async def test_pull_and_push_with_basic_auth(
    private: ReferenceRegistry, transport: DistributionTransport, tmp_path: Path
) -> None:
    image = random_image(1)
    sink = ContentBlobSink(ContentStore(tmp_path / "pushed"))
    repository = remote_repository(private, "auth/image", ALICE)
    await push_into(transport, repository, "v1", image, sink)
    other = ContentBlobSink(ContentStore(tmp_path / "pulled"))
    result = await transport.pull(
        repository, "v1", platform="linux/amd64", blobs=other, progress=ProgressLog()
    )
    assert result.digest == image.digest
    assert other.has(image.layer_digests[0])
    with pytest.raises(Unauthorized) as caught:
        await pull_into(transport, remote_repository(private, "auth/image"), "v1", other)
    assert str(caught.value) == (
        f"pull access denied for {private.host}/auth/image, repository does not exist or "
        "may require 'docker login': unauthorized: authentication required"
    )


async def test_upload_cut_halfway_starts_again(
    registry: ReferenceRegistry, tmp_path: Path, sink: ContentBlobSink
) -> None:
    transport = make_driver(
        DistributionTransport,
        tmp_path / "cut",
        Config(upload_chunk_size=512 * 1024, retry_base_delay=0.01),
    )
    image = random_image(1, 2 * 1024 * 1024)
    manifest, blobs = stage_for_push(sink, image)
    try:
        with cutting_proxy(registry.url, cut_after=1024 * 1024, upload=True) as proxy:
            await transport.push(
                remote_repository(proxy.url, "push/cut"),
                "v1",
                manifest,
                blobs,
                blobs=sink,
                progress=ProgressLog(),
            )
            assert proxy.cut == 1
    finally:
        await transport.close()
    assert pulled_manifest(registry, "push/cut", "v1") == image.manifest
    assert registry.blob_data(image.layer_digests[0]).read_bytes() == image.layers[0]
