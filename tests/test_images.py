"""Images end to end: the real docker CLI, docker-py, skopeo and pydocker against a real
daemon on overlay and on vfs; nothing leaks, and a load killed halfway leaves nothing."""

from __future__ import annotations

import gzip
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import docker as docker_py
import pytest
from pydockerd.testing.daemon import DaemonProcess, start_daemon
from pydockerd.testing.pytest_plugin import DaemonFactory

from tests.helpers import docker, wait_for

DRIVERS = ["overlay", "vfs"]


def layer_dirs(daemon: DaemonProcess, driver: str) -> list[str]:
    state = daemon.data_root / "storage" / driver
    return sorted(p.name for p in state.iterdir() if p.name != "l") if state.is_dir() else []


def blobs(daemon: DaemonProcess, driver: str = "overlay") -> list[str]:
    directory = daemon.data_root / "image" / driver / "content" / "blobs" / "sha256"
    return sorted(p.name for p in directory.iterdir())


def load(daemon: DaemonProcess, archive: Path) -> subprocess.CompletedProcess[str]:
    result = docker(daemon.env, "load", "-i", str(archive))
    assert result.returncode == 0, result.stderr
    return result


@pytest.mark.parametrize("driver", DRIVERS)
def test_load_list_tag_inspect_history_rmi_leave_nothing(
    daemon_factory: DaemonFactory, busybox_tar: Path, driver: str
) -> None:
    daemon = daemon_factory("--storage-driver", driver)
    assert load(daemon, busybox_tar).stdout == "Loaded image: busybox:latest\n"
    assert docker(daemon.env, "tag", "busybox", "localhost:5000/tools/bb:v1").returncode == 0

    listing = docker(daemon.env, "images").stdout.splitlines()
    assert listing[0].split() == ["REPOSITORY", "TAG", "IMAGE", "ID", "CREATED", "SIZE"]
    rows = sorted(line.split()[:3] for line in listing[1:])
    inspect = json.loads(docker(daemon.env, "image", "inspect", "busybox").stdout)[0]
    short = inspect["Id"].removeprefix("sha256:")[:12]
    assert rows == [["busybox", "latest", short], ["localhost:5000/tools/bb", "v1", short]]
    assert sorted(inspect["RepoTags"]) == ["busybox:latest", "localhost:5000/tools/bb:v1"]
    assert inspect["RootFS"]["Type"] == "layers"
    assert len(inspect["RootFS"]["Layers"]) == 1
    assert inspect["Config"]["Cmd"] == ["sh"]
    assert inspect["GraphDriver"]["Name"] == driver
    assert inspect["Size"] > 1_000_000  # busybox itself
    assert inspect["Metadata"]["LastTagTime"].endswith("Z")
    # one layer, unpacked once, however many names the image has
    assert len(layer_dirs(daemon, driver)) == 1

    history = docker(daemon.env, "history", "--no-trunc", "busybox").stdout.splitlines()
    assert history[0].split()[:2] == ["IMAGE", "CREATED"]
    assert history[1].startswith(inspect["Id"])
    assert "make-busybox-image" in history[1]

    by_tag = docker(daemon.env, "rmi", "localhost:5000/tools/bb:v1")
    assert by_tag.stdout == "Untagged: localhost:5000/tools/bb:v1\n"
    final = docker(daemon.env, "rmi", "busybox")
    assert final.returncode == 0, final.stderr
    assert final.stdout.splitlines()[:2] == [
        "Untagged: busybox:latest",
        f"Deleted: {inspect['Id']}",
    ]
    assert docker(daemon.env, "images", "-q").stdout == ""
    assert layer_dirs(daemon, driver) == []
    assert blobs(daemon, driver) == []


def test_save_writes_what_skopeo_and_a_second_daemon_read(
    daemon_factory: DaemonFactory, busybox_tar: Path, tmp_path: Path
) -> None:
    first = daemon_factory()
    load(first, busybox_tar)
    assert docker(first.env, "tag", "busybox", "other/name:2").returncode == 0
    out = tmp_path / "out.tar"
    saved = docker(first.env, "save", "-o", str(out), "busybox", "other/name:2")
    assert saved.returncode == 0, saved.stderr
    if shutil.which("skopeo"):
        result = subprocess.run(
            ["skopeo", "inspect", f"docker-archive:{out}:busybox:latest"],
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        image_id = json.loads(docker(first.env, "image", "inspect", "busybox").stdout)[0]["Id"]
        assert json.loads(result.stdout)["Layers"] == json.loads(
            docker(first.env, "image", "inspect", "-f", "{{json .RootFS.Layers}}", image_id).stdout
        )
    second = daemon_factory("--storage-driver", "vfs")
    loaded = load(second, out).stdout.splitlines()
    assert sorted(loaded) == ["Loaded image: busybox:latest", "Loaded image: other/name:2"]
    ids = {
        docker(d.env, "image", "inspect", "-f", "{{.Id}}", "other/name:2").stdout
        for d in (first, second)
    }
    assert len(ids) == 1, "the same image ID on both daemons"


def test_errors_have_dockers_status_and_message(daemon: DaemonProcess, busybox_tar: Path) -> None:
    load(daemon, busybox_tar)
    missing = docker(daemon.env, "image", "inspect", "nope")
    assert missing.returncode == 1
    assert "Error response from daemon: No such image: nope:latest" in missing.stderr
    status, _, body = daemon.request("POST", "/images/busybox/tag?repo=upper/Case&tag=x")
    assert status == 400
    assert json.loads(body)["message"] == (
        "invalid reference format: repository name (upper/Case) must be lowercase"
    )
    status, _, body = daemon.request("POST", "/images/busybox/tag?repo=ok&tag=bad:tag")
    assert (status, json.loads(body)["message"]) == (400, "invalid tag format")
    docker(daemon.env, "tag", "busybox", "another/repo")
    image_id = docker(daemon.env, "image", "inspect", "-f", "{{.Id}}", "busybox").stdout
    by_id = docker(daemon.env, "rmi", image_id[7:19])
    assert by_id.returncode == 1
    assert (
        f"conflict: unable to delete {image_id[7:19]} (must be forced) - image is referenced "
        "in multiple repositories" in by_id.stderr
    )
    forced = docker(daemon.env, "rmi", "-f", image_id[7:19])
    assert forced.returncode == 0, forced.stderr
    assert forced.stdout.splitlines()[:3] == [
        "Untagged: another/repo:latest",
        "Untagged: busybox:latest",
        f"Deleted: {image_id.strip()}",
    ]
    status, _, body = daemon.request("POST", "/images/load", b"not a tar at all")
    assert status == 400
    assert json.loads(body)["message"].startswith("invalid archive")


def _rootfs_tar(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def test_import_from_stdin_with_changes_then_prune_and_df(daemon: DaemonProcess) -> None:
    rootfs = gzip.compress(_rootfs_tar({"hello.txt": b"hello\n"}))
    result = subprocess.run(
        [
            "docker",
            "import",
            "-c",
            'CMD ["/bin/cat", "/hello.txt"]',
            "-c",
            "ENV A=1",
            "-m",
            "made in a test",
            "-",
            "imported:v1",
        ],
        input=rootfs,
        env=daemon.env,
        capture_output=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    image_id = result.stdout.decode().strip()
    assert image_id.startswith("sha256:")
    inspect = json.loads(docker(daemon.env, "image", "inspect", "imported:v1").stdout)[0]
    assert inspect["Id"] == image_id
    assert inspect["Config"]["Cmd"] == ["/bin/cat", "/hello.txt"]
    assert inspect["Config"]["Env"] == ["A=1"]
    assert inspect["Comment"] == "made in a test"
    history = daemon.get_json("/images/imported:v1/history")
    assert history[0]["Comment"] == "made in a test"

    df = docker(daemon.env, "system", "df").stdout.splitlines()
    assert df[1].split()[:3] == ["Images", "1", "0"]
    # a new image takes the tag: the first one is dangling, and prune removes it
    newer = subprocess.run(
        ["docker", "import", "-", "imported:v1"],
        input=_rootfs_tar({"other.txt": b"other\n"}),
        env=daemon.env,
        capture_output=True,
        check=False,
    )
    assert newer.returncode == 0, newer.stderr
    dangling = docker(daemon.env, "images", "-q", "--no-trunc", "-f", "dangling=true").stdout
    assert dangling.split() == [image_id]
    pruned = docker(daemon.env, "image", "prune", "-f")
    assert pruned.returncode == 0, pruned.stderr
    assert f"deleted: {image_id}" in pruned.stdout
    assert "Total reclaimed space: 6B" in pruned.stdout
    assert docker(daemon.env, "images", "-a", "--format", "{{.Repository}}").stdout == "imported\n"


def test_docker_py_loads_lists_and_removes(daemon: DaemonProcess, busybox_tar: Path) -> None:
    client = docker_py.DockerClient(base_url=daemon.host, version="auto")
    try:
        (image,) = client.images.load(busybox_tar.read_bytes())
        assert image.tags == ["busybox:latest"]
        assert [i.id for i in client.images.list()] == [image.id]
        assert client.images.get("busybox").id == image.id
        assert client.images.get(image.id[7:19]).id == image.id
        image.tag("py/tagged", "t1")
        assert sorted(client.images.get(image.id).tags) == ["busybox:latest", "py/tagged:t1"]
        client.images.remove("py/tagged:t1")
        client.images.remove("busybox")
        assert client.images.list() == []
        with pytest.raises(docker_py.errors.ImageNotFound):
            client.images.get("busybox")
    finally:
        client.close()


def test_pydocker_load_images_and_rmi(daemon: DaemonProcess, busybox_tar: Path) -> None:
    def pydocker(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "pydocker", "-H", daemon.host, *args],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )

    assert pydocker("load", "-i", str(busybox_tar)).stdout == "Loaded image: busybox:latest\n"
    listing = pydocker("images").stdout.splitlines()
    assert listing[0].split() == ["REPOSITORY", "TAG", "IMAGE", "ID", "CREATED", "SIZE"]
    assert listing[1].split()[:2] == ["busybox", "latest"]
    assert pydocker("rmi", "busybox").stdout.startswith("Untagged: busybox:latest\nDeleted: ")
    info = pydocker("info", "--format", "{{.Driver}} {{.Images}}")
    assert info.stdout.strip() == "overlay 0"


def _big_image(tmp_path: Path, megabytes: int) -> Path:
    """An image archive whose one layer holds ``megabytes`` of zeros (gzip: small to send,
    slow to unpack), so a test can kill the daemon while it unpacks."""
    layer_tar = tmp_path / "layer.tar"
    with tarfile.open(layer_tar, "w") as tar:
        info = tarfile.TarInfo("zeros")
        info.size = megabytes << 20
        with open("/dev/zero", "rb") as zeros:  # noqa: PTH123
            tar.addfile(info, zeros)
    import hashlib

    diff_id = "sha256:" + hashlib.file_digest(layer_tar.open("rb"), "sha256").hexdigest()
    compressed = gzip.compress(layer_tar.read_bytes(), compresslevel=1)
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {},
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        }
    ).encode()
    archive = tmp_path / "big.tar"
    with tarfile.open(archive, "w") as tar:
        for name, data in (
            ("config.json", config),
            ("layer.tar.gz", compressed),
            (
                "manifest.json",
                json.dumps(
                    [{"Config": "config.json", "RepoTags": ["big:1"], "Layers": ["layer.tar.gz"]}]
                ).encode(),
            ),
        ):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return archive


@pytest.mark.parametrize("driver", DRIVERS)
def test_sigkill_during_load_leaves_no_half_loaded_image(
    tmp_path: Path, busybox_tar: Path, driver: str
) -> None:
    archive = _big_image(tmp_path, 384)
    daemon = start_daemon("--storage-driver", driver)
    try:
        load(daemon, busybox_tar)
        kept_layers = layer_dirs(daemon, driver)
        loader = subprocess.Popen(
            ["docker", "load", "-i", str(archive)],
            env=daemon.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for(
            lambda: len(layer_dirs(daemon, driver)) > len(kept_layers),
            timeout=30,
            what="the big layer to start unpacking",
        )
        time.sleep(0.2)
        os.killpg(daemon.process.pid, signal.SIGKILL)
        daemon.process.wait()
        loader.wait(timeout=30)
        (daemon.base_dir / "notify.sock").unlink()
        restarted = start_daemon(
            "--storage-driver",
            driver,
            base_dir=daemon.base_dir,
        )
        try:
            names = docker(restarted.env, "images", "--format", "{{.Repository}}").stdout.split()
            assert names == ["busybox"], "the half-loaded image is not visible"
            assert layer_dirs(restarted, driver) == kept_layers, "its partial layer was removed"
            assert len(blobs(restarted, driver)) == 2, "only busybox's config and layer remain"
            ingest = restarted.data_root / "image" / driver / "content" / "ingest"
            assert list(ingest.iterdir()) == []
            assert load(restarted, busybox_tar).returncode == 0
        finally:
            restarted.cleanup()
    finally:
        daemon.cleanup()
