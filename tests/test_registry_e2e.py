"""Pull, push and login end to end: the real docker CLI against pydockerd, with Debian's
reference registry (``docker-registry``) and our own ``pydocker-registry`` on 127.0.0.1."""

from __future__ import annotations

import io
import json
import re
import signal
import subprocess
import sys
import tarfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydocker_registry.auth import set_password
from pydocker_registry.testing import RegistryProcess, token_config, write_config
from pydockerd.testing.daemon import DaemonProcess
from pydockerd.testing.registries import (
    ReferenceRegistry,
    cutting_proxy,
    push_image,
    push_index,
    random_image,
    reference_registry,
)

from tests.helpers import DOCKER, Terminal, busybox_daemon, docker, wait_for

pytestmark = pytest.mark.privileged

USER, PASSWORD = "alice", "wonderland-7"


@pytest.fixture(scope="module")
def daemon(busybox_tar: Path) -> Iterator[DaemonProcess]:
    with busybox_daemon(busybox_tar) as process:
        yield process


@pytest.fixture(scope="module")
def reference() -> Iterator[ReferenceRegistry]:
    with reference_registry() as registry:
        yield registry


@pytest.fixture(scope="module")
def ours(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """pydocker-registry with htpasswd basic auth; its ``host:port``."""
    directory = tmp_path_factory.mktemp("ours")
    set_password(directory / "htpasswd", USER, PASSWORD, rounds=4)
    config = write_config(
        directory,
        f'delete_enabled = true\n[auth]\nmode = "htpasswd"\n'
        f'[auth.htpasswd]\npath = "{directory / "htpasswd"}"\n',
    )
    with RegistryProcess(config) as registry:
        yield registry.url.removeprefix("http://")


@pytest.fixture
def env(daemon: DaemonProcess, tmp_path: Path) -> dict[str, str]:
    """The daemon's client environment with a config.json of this test's own."""
    return {**daemon.env, "DOCKER_CONFIG": str(tmp_path / "docker-config")}


def ok(env: dict[str, str], *args: str, timeout: float = 120) -> str:
    result = docker(env, *args, timeout=timeout)
    assert result.returncode == 0, (args, result.stdout, result.stderr)
    return result.stdout


def docker_login(env: dict[str, str], host: str, password: str) -> subprocess.CompletedProcess[str]:
    """``docker login -u USER --password-stdin host`` with ``password``."""
    return subprocess.run(
        [DOCKER, "login", "-u", USER, "--password-stdin", host],
        input=password + "\n",
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def anonymous(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """``docker ARGS`` expected to get a 401: after one the CLI asks for a login on stdin
    ("Login prior to pull"), so stdin is empty here."""
    return subprocess.run(
        [DOCKER, *args],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def inspect(env: dict[str, str], name: str) -> dict[str, Any]:
    data: list[dict[str, Any]] = json.loads(ok(env, "image", "inspect", name))
    return data[0]


def content_dir(daemon: DaemonProcess) -> Path:
    """The daemon's content store (one storage driver per test daemon)."""
    (driver_dir,) = (daemon.data_root / "image").iterdir()
    return driver_dir / "content"


def storage_layers(daemon: DaemonProcess) -> set[str]:
    """The layer directories of the daemon's storage driver."""
    (driver_dir,) = (daemon.data_root / "storage").iterdir()
    return {p.name for p in driver_dir.iterdir() if len(p.name) == 64}


def test_push_and_pull_with_the_reference_registry(
    env: dict[str, str], reference: ReferenceRegistry
) -> None:
    name = f"{reference.host}/e2e/busybox:v1"
    ok(env, "tag", "busybox", name)
    first = ok(env, "push", name)
    assert f"The push refers to repository [{reference.host}/e2e/busybox]" in first
    assert ": Pushed" in first
    assert "v1: digest: sha256:" in first
    digest = first.split("v1: digest: ")[1].split()[0]
    again = ok(env, "push", name)
    assert ": Layer already exists" in again
    assert f"digest: {digest}" in again
    assert f"{reference.host}/e2e/busybox@{digest}" in inspect(env, name)["RepoDigests"]

    ok(env, "rmi", name)  # busybox:latest keeps the image and its layer
    pulled = ok(env, "pull", name)
    assert "v1: Pulling from e2e/busybox" in pulled
    assert ": Already exists" in pulled
    assert f"Digest: {digest}" in pulled
    assert f"Status: Downloaded newer image for {name}" in pulled
    assert pulled.rstrip().endswith(name)
    assert ok(env, "run", "--rm", name, "echo", "pulled and ran") == "pulled and ran\n"
    assert f"Status: Image is up to date for {name}" in ok(env, "pull", name)
    # by digest, and the same image comes back
    by_digest = f"{reference.host}/e2e/busybox@{digest}"
    ok(env, "pull", by_digest)
    assert inspect(env, by_digest)["Id"] == inspect(env, name)["Id"]
    ok(env, "rmi", name)  # the repository's last tag: its digest reference goes too
    assert docker(env, "image", "inspect", by_digest).returncode == 1

    # the daemon knows e2e/busybox has the layer: a push to another repository mounts it
    other = f"{reference.host}/e2e/other:v1"
    ok(env, "tag", "busybox", other)
    assert ": Mounted from e2e/busybox" in ok(env, "push", other)
    ok(env, "rmi", other)
    # docker run pulls what is missing
    run = docker(env, "run", "--rm", other, "echo", "ran after a pull")
    assert run.returncode == 0, run.stderr
    assert f"Unable to find image '{other}' locally" in run.stderr
    assert run.stdout == "ran after a pull\n"
    ok(env, "rmi", other)


def test_pull_of_a_multi_platform_index_takes_linux_amd64(
    env: dict[str, str], reference: ReferenceRegistry
) -> None:
    amd64, arm64 = random_image(2, 4096), random_image(1, 4096, architecture="arm64")
    push_index(
        reference.url,
        "e2e/multi",
        "v1",
        [
            (arm64, {"os": "linux", "architecture": "arm64"}),
            (amd64, {"os": "linux", "architecture": "amd64"}),
        ],
        attestation_for=amd64,
    )
    name = f"{reference.host}/e2e/multi:v1"
    ok(env, "pull", name)
    image = inspect(env, name)
    assert image["Id"] == amd64.config_digest
    assert image["Architecture"] == "amd64"
    ok(env, "rmi", name)
    # --platform chooses another entry
    ok(env, "pull", "--platform", "linux/arm64", name)
    assert inspect(env, name)["Id"] == arm64.config_digest
    ok(env, "rmi", name)


def test_pull_all_tags_and_push_all_tags(env: dict[str, str], reference: ReferenceRegistry) -> None:
    """docker pull -a printed a Status line per tag (with the tag); moby's pullRepository
    prints one, at the end, for the repository."""
    one, two = random_image(1, 4096), random_image(1, 4096)
    push_image(reference.url, "e2e/tags", "v1", one)
    push_image(reference.url, "e2e/tags", "v2", two)
    repository = f"{reference.host}/e2e/tags"
    pulled = ok(env, "pull", "-a", repository)
    assert "v1: Pulling from e2e/tags" in pulled
    assert "v2: Pulling from e2e/tags" in pulled
    assert f"Digest: {one.digest}" in pulled
    assert f"Digest: {two.digest}" in pulled
    statuses = [line for line in pulled.splitlines() if line.startswith("Status: ")]
    assert statuses == [f"Status: Downloaded newer image for {repository}"], pulled
    assert inspect(env, f"{repository}:v1")["Id"] == one.config_digest
    assert inspect(env, f"{repository}:v2")["Id"] == two.config_digest
    again = ok(env, "pull", "--all-tags", repository)
    statuses = [line for line in again.splitlines() if line.startswith("Status: ")]
    assert statuses == [f"Status: Image is up to date for {repository}"], again

    # push -a sends every tag of the repository, each with its own manifest
    target = f"{reference.host}/e2e/tags-copy"
    for tag in ("v1", "v2"):
        ok(env, "tag", f"{repository}:{tag}", f"{target}:{tag}")
    pushed = ok(env, "push", "--all-tags", target)
    assert f"v1: digest: {one.digest}" in pushed
    assert f"v2: digest: {two.digest}" in pushed
    for tag in ("v1", "v2"):
        ok(env, "rmi", f"{repository}:{tag}", f"{target}:{tag}")


def test_errors_say_what_went_wrong(env: dict[str, str], reference: ReferenceRegistry) -> None:
    missing = docker(env, "pull", f"{reference.host}/e2e/nothing:here")
    assert missing.returncode == 1
    assert "manifest unknown" in missing.stderr
    hub = docker(env, "pull", "busybox:not-loaded")
    assert hub.returncode == 1
    assert "cannot reach registry docker.io" in hub.stderr, hub.stderr
    unknown = docker(env, "push", f"{reference.host}/e2e/never:tagged")
    assert unknown.returncode == 1
    assert "An image does not exist locally with the tag" in unknown.stderr


def test_login_push_pull_logout_with_pydocker_registry(env: dict[str, str], ours: str) -> None:
    name = f"{ours}/team/busybox:v1"
    ok(env, "tag", "busybox", name)
    refused = anonymous(env, "push", name)
    assert refused.returncode == 1
    assert "unauthorized: authentication required" in refused.stderr, refused.stderr

    wrong = docker_login(env, ours, "not-the-password")
    assert wrong.returncode == 1
    assert "unauthorized" in wrong.stderr.lower(), wrong.stderr

    login = docker_login(env, ours, PASSWORD)
    assert login.returncode == 0, login.stderr
    assert "Login Succeeded" in login.stdout
    config = json.loads((Path(env["DOCKER_CONFIG"]) / "config.json").read_text())
    assert ours in config["auths"]

    assert "v1: digest: sha256:" in ok(env, "push", name)
    ok(env, "rmi", name)
    assert f"Status: Downloaded newer image for {name}" in ok(env, "pull", name)
    ok(env, "rmi", name)

    assert "Removing login credentials" in ok(env, "logout", ours)
    logged_out = anonymous(env, "pull", name)
    assert logged_out.returncode == 1
    assert "pull access denied" in logged_out.stderr, logged_out.stderr


def test_token_auth_login_and_repository_scopes(
    env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> None:
    """pydocker-registry in token mode: alice may push a/* and only pull b/*."""
    directory = tmp_path_factory.mktemp("token")
    with RegistryProcess(token_config(directory, {USER: PASSWORD})) as registry:
        host = registry.url.removeprefix("http://")
        login = docker_login(env, host, PASSWORD)
        assert login.returncode == 0, login.stderr
        stored = json.loads((Path(env["DOCKER_CONFIG"]) / "config.json").read_text())
        assert stored["auths"][host].get("identitytoken"), stored  # a refresh token
        allowed, denied = f"{host}/a/busybox:v1", f"{host}/b/busybox:v1"
        ok(env, "tag", "busybox", allowed)
        ok(env, "tag", "busybox", denied)
        assert "v1: digest: sha256:" in ok(env, "push", allowed)
        refused = anonymous(env, "push", denied)
        assert refused.returncode == 1, refused.stdout
        ok(env, "rmi", allowed, denied)
        assert f"Status: Downloaded newer image for {allowed}" in ok(env, "pull", allowed)
        ok(env, "rmi", allowed)


def test_pull_draws_a_progress_line_per_layer_on_a_terminal(
    env: dict[str, str], reference: ReferenceRegistry
) -> None:
    image = random_image(3, 3 * 1024 * 1024)
    push_image(reference.url, "e2e/layers", "v1", image)
    name = f"{reference.host}/e2e/layers:v1"
    with Terminal([DOCKER, "pull", name], env, cols=140) as terminal:
        assert terminal.wait(120) == 0, terminal.output[-2000:]
        output = terminal.output.decode(errors="replace")
    for digest in image.layer_digests:
        assert f"{digest.removeprefix('sha256:')[:12]}: Pull complete" in output
    assert re.search(r"\x1b\[\d*A", output), "no cursor-up: the lines were not redrawn"
    assert "[=" in output  # a bar (drawn on terminals wider than 110 columns)
    assert "MB/" in output  # with byte counts
    ok(env, "rmi", name)


def test_a_blob_that_does_not_match_its_digest_fails_the_pull_and_stores_nothing(
    daemon: DaemonProcess, env: dict[str, str], reference: ReferenceRegistry
) -> None:
    image = random_image(2, 64 * 1024)
    push_image(reference.url, "e2e/tampered", "v1", image)
    bad = image.layer_digests[1]
    reference.tamper(bad)
    name = f"{reference.host}/e2e/tampered:v1"
    layers_before = storage_layers(daemon)
    result = docker(env, "pull", name)
    assert result.returncode == 1
    assert f"verification failed for digest {bad}" in result.stderr, result.stderr
    assert docker(env, "image", "inspect", name).returncode == 1
    content = content_dir(daemon)
    assert not (content / "blobs" / "sha256" / bad.removeprefix("sha256:")).exists()
    assert not [p for p in (content / "partial").iterdir() if bad[7:] in p.name]
    # the good first layer was unpacked while the second downloaded: it is gone again
    assert storage_layers(daemon) == layers_before


def _first_downloading(messages: list[dict[str, Any]], layer: str) -> int:
    return next(
        m["progressDetail"]["current"]
        for m in messages
        if m.get("id") == layer and m.get("status") == "Downloading"
    )


def test_a_pull_killed_halfway_shows_nothing_and_resumes(
    daemon: DaemonProcess, env: dict[str, str], reference: ReferenceRegistry
) -> None:
    image = random_image(1, 16 * 1024 * 1024)
    push_image(reference.url, "e2e/big", "v1", image)
    layer = image.layer_digests[0].removeprefix("sha256:")
    partial = content_dir(daemon) / "partial" / layer
    with cutting_proxy(reference.url, cut_after=1 << 40, cuts=0, rate=4 * 1024 * 1024) as proxy:
        host = proxy.url.removeprefix("http://")
        name = f"{host}/e2e/big:v1"
        client = subprocess.Popen(
            [DOCKER, "pull", name], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            wait_for(
                lambda: partial.exists() and partial.stat().st_size > 4 * 1024 * 1024,
                timeout=30,
                what="half the layer",
            )
        finally:
            client.send_signal(signal.SIGKILL)
            client.wait()
        # the daemon notices the client left and stops: the partial stops growing
        sizes = [partial.stat().st_size]
        for _ in range(20):
            time.sleep(0.25)
            sizes.append(partial.stat().st_size)
            if sizes[-1] == sizes[-2]:
                break
        kept = sizes[-1]
        assert kept < len(image.layers[0]), "the pull went on to the end"
        assert docker(env, "image", "inspect", name).returncode == 1  # nothing visible
        assert not (content_dir(daemon) / "blobs" / "sha256" / layer).exists()

        # the next pull resumes where the first one stopped
        query = f"/images/create?fromImage={host}/e2e/big&tag=v1"
        status, _, body = daemon.request("POST", query, b"")
        assert status == 200, body
    messages = [json.loads(line) for line in body.splitlines() if line.strip()]
    assert not [m for m in messages if "errorDetail" in m], messages
    assert _first_downloading(messages, layer[:12]) >= kept
    assert inspect(env, name)["Id"] == image.config_digest
    assert not partial.exists()
    ok(env, "rmi", name)


def test_an_rmi_during_a_pull_leaves_the_pulled_blobs_alone(
    daemon: DaemonProcess, env: dict[str, str], reference: ReferenceRegistry
) -> None:
    """rmi (of any image) collects the blobs no image references, and a pull's blobs are
    referenced only once it is recorded: the config it had downloaded first went, and the
    pull failed at the end."""
    image = random_image(1, 6 * 1024 * 1024)
    push_image(reference.url, "e2e/raced", "v1", image)
    config = content_dir(daemon) / "blobs" / "sha256" / image.config_digest.partition(":")[2]
    status, _, body = daemon.request(
        "POST", "/images/create?fromSrc=-&repo=e2e/doomed&tag=v1", _empty_tar()
    )
    assert status == 200, body
    with cutting_proxy(reference.url, cut_after=1 << 40, cuts=0, rate=3 * 1024 * 1024) as proxy:
        host = proxy.url.removeprefix("http://")
        answer: list[tuple[int, bytes]] = []
        puller = threading.Thread(
            target=lambda: answer.append(
                daemon.request("POST", f"/images/create?fromImage={host}/e2e/raced&tag=v1")[::2]
            )
        )
        puller.start()
        try:
            wait_for(config.exists, timeout=30, what="the config")
            ok(env, "rmi", "e2e/doomed:v1")  # collects what no image references
        finally:
            puller.join(60)
    ((status, body),) = answer
    assert status == 200, body
    assert b"errorDetail" not in body, body
    assert inspect(env, f"{host}/e2e/raced:v1")["Id"] == image.config_digest
    ok(env, "rmi", f"{host}/e2e/raced:v1")


def _empty_tar() -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        info = tarfile.TarInfo("hello")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"hi"))
    return raw.getvalue()


def pydocker(
    env: dict[str, str], *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Our client (``python -m pydocker``) against the daemon named in ``env``."""
    return subprocess.run(
        [sys.executable, "-m", "pydocker", *args],
        env=env,
        input=stdin,
        stdin=subprocess.DEVNULL if stdin is None else None,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_pydocker_login_push_pull_logout(env: dict[str, str], ours: str) -> None:
    name = f"{ours}/client/busybox:v2"
    ok(env, "tag", "busybox", name)
    login = pydocker(env, "login", "-u", USER, "--password-stdin", ours, stdin=PASSWORD)
    assert login.returncode == 0, login.stderr
    assert "Login Succeeded" in login.stdout
    pushed = pydocker(env, "push", name)
    assert pushed.returncode == 0, pushed.stderr
    assert "v2: digest: sha256:" in pushed.stdout
    ok(env, "rmi", name)
    pulled = pydocker(env, "pull", name)
    assert pulled.returncode == 0, pulled.stderr
    assert pulled.stdout.rstrip().endswith(name)
    assert f"Status: Downloaded newer image for {name}" in pulled.stdout
    assert pydocker(env, "logout", ours).returncode == 0
    refused = pydocker(env, "pull", name.replace("v2", "v3"))
    assert refused.returncode == 1
    assert "pull access denied" in refused.stderr
    ok(env, "rmi", name)


def test_docker_py_pulls_and_pushes(env: dict[str, str], reference: ReferenceRegistry) -> None:
    import docker as docker_py

    client = docker_py.DockerClient(base_url=env["DOCKER_HOST"], version="auto")
    try:
        repository = f"{reference.host}/e2e/py"
        client.images.get("busybox").tag(repository, "v1")
        lines = list(client.images.push(repository, tag="v1", stream=True, decode=True))
        assert not [line for line in lines if "errorDetail" in line], lines
        assert any("Digest" in (line.get("aux") or {}) for line in lines)
        client.images.remove(f"{repository}:v1")
        image = client.images.pull(repository, tag="v1")
        assert f"{repository}:v1" in image.tags
        client.images.remove(f"{repository}:v1")
    finally:
        client.close()
