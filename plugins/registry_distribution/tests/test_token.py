"""The bearer token flow, against pydocker-registry in token mode (its own token server:
GET with Basic, the OAuth2 POST password and refresh-token grants)."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
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
    htpasswd_file,
    pull_into,
    push_into,
    random_image,
    remote_repository,
    stage_for_push,
)
from pydockerd_registry_distribution.transport import Config, DistributionTransport, short_id

registry_testing = pytest.importorskip("pydocker_registry.testing")

ALICE = RegistryCredentials(username="alice", password="wonderland")
BOB = RegistryCredentials(username="bob", password="builder")


@pytest.fixture(scope="module")
def token_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    directory = tmp_path_factory.mktemp("token-registry")
    key = directory / "token.key"
    subprocess.run(
        [sys.executable, "-m", "pydocker_registry.cli", "keygen", str(key)],
        check=True,
        capture_output=True,
    )
    users = htpasswd_file(directory / "htpasswd", {"alice": "wonderland", "bob": "builder"})
    config = registry_testing.write_config(
        directory,
        f"""
[auth]
mode = "token"
[auth.htpasswd]
path = "{users}"
[auth.token]
private_key = "{key}"
[[auth.token.rules]]
accounts = ["alice"]
repositories = ["*"]
actions = ["*"]
[[auth.token.rules]]
accounts = ["bob"]
repositories = ["bob/*"]
actions = ["pull"]
""",
    )
    with registry_testing.RegistryProcess(config) as running:
        yield running


def logged(registry: Any, text: str, expected: int | None = None) -> int:
    """Lines of the registry's log that hold ``text``; waits a little for ``expected`` (its
    log is read by a thread, so the last lines may lag)."""
    deadline = time.monotonic() + 3
    while True:
        count = sum(text in line for line in registry.lines)
        if expected is None or count >= expected or time.monotonic() > deadline:
            return count
        time.sleep(0.02)


async def test_login_returns_an_identity_token(
    token_registry: Any, transport: DistributionTransport
) -> None:
    endpoint = RegistryEndpoint(token_registry.url)
    identity = await transport.login(endpoint, ALICE)
    assert identity.count(".") == 2  # a refresh token (a JWT) from the password grant
    with pytest.raises(Unauthorized) as caught:
        await transport.login(endpoint, RegistryCredentials("alice", "nope"))
    assert str(caught.value).startswith(f'Get "{token_registry.url}/v2/": unauthorized: ')
    # the identity token logs in again by itself (refresh-token grant)
    await transport.login(endpoint, RegistryCredentials(identity_token=identity))


async def test_push_and_pull_with_tokens(
    token_registry: Any, transport: DistributionTransport, tmp_path: Path
) -> None:
    image = random_image(2)
    sink = ContentBlobSink(ContentStore(tmp_path / "a"))
    await push_into(
        transport, remote_repository(token_registry.url, "alice/img", ALICE), "v1", image, sink
    )
    logged(token_registry, "PUT /v2/alice/img/manifests/v1", 1)
    before = logged(token_registry, "token for")
    pulled = ContentBlobSink(ContentStore(tmp_path / "b"))
    for _ in range(2):
        result = await pull_into(
            transport, remote_repository(token_registry.url, "alice/img", ALICE), "v1", pulled
        )
        assert result.digest == image.digest
    logged(token_registry, "GET /v2/alice/img/manifests/v1", 2)
    assert logged(token_registry, "token for") == before + 1  # the second pull used the cache

    # a mount from alice/img into alice/copy asks for pull on the source in the same token
    log = ProgressLog()
    manifest, blobs = stage_for_push(sink, image)
    mounted = [PushBlob(b.descriptor, ["alice/img"], b.progress_id) for b in blobs]
    await transport.push(
        remote_repository(token_registry.url, "alice/copy", ALICE),
        "v1",
        manifest,
        mounted,
        blobs=sink,
        progress=log,
    )
    assert log.statuses(short_id(image.layer_digests[0]))[-1] == "Mounted from alice/img"


async def test_pull_with_an_identity_token(
    token_registry: Any, transport: DistributionTransport, tmp_path: Path
) -> None:
    image = random_image(1)
    sink = ContentBlobSink(ContentStore(tmp_path / "a"))
    await push_into(
        transport, remote_repository(token_registry.url, "alice/byid", ALICE), "v1", image, sink
    )
    identity = await transport.login(RegistryEndpoint(token_registry.url), ALICE)
    result = await transport.pull(
        remote_repository(
            token_registry.url, "alice/byid", RegistryCredentials(identity_token=identity)
        ),
        "v1",
        platform="linux/amd64",
        blobs=ContentBlobSink(ContentStore(tmp_path / "b")),
        progress=ProgressLog(),
    )
    assert result.digest == image.digest


async def test_anonymous_and_denied(
    token_registry: Any, transport: DistributionTransport, tmp_path: Path
) -> None:
    sink = ContentBlobSink(ContentStore(tmp_path / "a"))
    with pytest.raises(Unauthorized) as caught:
        await pull_into(transport, remote_repository(token_registry.url, "alice/img"), "v1", sink)
    host = token_registry.url.removeprefix("http://")
    assert str(caught.value).startswith(
        f"pull access denied for {host}/alice/img, repository does not exist or may "
        "require 'docker login': "
    )
    bob = RegistryCredentials("bob", "builder")
    with pytest.raises(Unauthorized):  # bob may only pull from bob/*
        await push_into(
            transport,
            remote_repository(token_registry.url, "alice/bob", bob),
            "v1",
            random_image(1),
            sink,
        )


async def test_list_tags_over_pages(token_registry: Any, tmp_path: Path) -> None:
    image = random_image(1, 100)
    sink = ContentBlobSink(ContentStore(tmp_path / "a"))
    manifest, blobs = stage_for_push(sink, image)
    transport = make_driver(DistributionTransport, tmp_path / "t", Config(tag_page_size=2))
    names = [f"t{i}" for i in range(5)]
    try:
        repository = remote_repository(token_registry.url, "alice/tags", ALICE)
        for name in names:
            await transport.push(
                repository, name, manifest, blobs, blobs=sink, progress=ProgressLog()
            )
        before = logged(token_registry, "tags/list")
        assert sorted(await transport.list_tags(repository)) == names
        assert logged(token_registry, "tags/list", before + 3) == before + 3
    finally:
        await transport.close()
