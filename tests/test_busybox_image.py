"""scripts/make-busybox-image writes a docker-archive (Docker 25+ ``docker save`` layout) that
is consistent, deterministic, readable by skopeo, and whose busybox really runs."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "scripts" / "make-busybox-image"
BUSYBOX = Path("/bin/busybox")

MEDIA_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_LAYER = "application/vnd.oci.image.layer.v1.tar"
ARCHES = {"x86_64": "amd64", "aarch64": "arm64"}


def make_image(
    output: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), str(output), *args],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, **(env or {})},
        timeout=120,
    )


def read_archive(path: Path) -> dict[str, bytes]:
    """Every regular file of the tar by name; directories map to b""."""
    files: dict[str, bytes] = {}
    with tarfile.open(path) as tar:
        for member in tar.getmembers():
            assert member.uid == member.gid == 0
            if member.isdir():
                files[member.name] = b""
                continue
            assert member.isfile(), member.name
            extracted = tar.extractfile(member)
            assert extracted is not None
            files[member.name] = extracted.read()
    return files


def blob(files: dict[str, bytes], digest: str) -> bytes:
    algorithm, _, hex_digest = digest.partition(":")
    assert algorithm == "sha256"
    return files[f"blobs/sha256/{hex_digest}"]


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """(the archive, the image ID the script printed)."""
    output = tmp_path_factory.mktemp("busybox") / "busybox.tar"
    result = make_image(output)
    assert result.returncode == 0, result.stderr
    return output, result.stdout.strip()


@pytest.fixture(scope="module")
def files(image: tuple[Path, str]) -> dict[str, bytes]:
    return read_archive(image[0])


def test_prints_image_id_and_writes_docker_save_layout(
    image: tuple[Path, str], files: dict[str, bytes]
) -> None:
    path, image_id = image
    assert image_id.startswith("sha256:")
    assert len(image_id) == len("sha256:") + 64
    blobs = sorted(name for name in files if name.startswith("blobs/sha256/") and files[name])
    assert len(blobs) == 3  # manifest, config, layer
    with tarfile.open(path) as tar:
        names = tar.getnames()
    assert names == [
        "blobs",
        "blobs/sha256",
        *blobs,
        "index.json",
        "manifest.json",
        "oci-layout",
        "repositories",
    ]
    assert json.loads(files["oci-layout"]) == {"imageLayoutVersion": "1.0.0"}


def test_every_blob_matches_its_digest(files: dict[str, bytes]) -> None:
    for name, content in files.items():
        if name.startswith("blobs/sha256/"):
            assert hashlib.sha256(content).hexdigest() == name.rsplit("/", 1)[1]


def test_index_manifest_config_and_legacy_files_agree(
    image: tuple[Path, str], files: dict[str, bytes]
) -> None:
    image_id = image[1]
    index = json.loads(files["index.json"])
    assert index["schemaVersion"] == 2
    assert index["mediaType"] == "application/vnd.oci.image.index.v1+json"
    [descriptor] = index["manifests"]
    assert descriptor["mediaType"] == MEDIA_MANIFEST
    assert descriptor["annotations"] == {
        "io.containerd.image.name": "docker.io/library/busybox:latest",
        "org.opencontainers.image.ref.name": "latest",
    }
    manifest_bytes = blob(files, descriptor["digest"])
    assert descriptor["size"] == len(manifest_bytes)

    manifest = json.loads(manifest_bytes)
    assert manifest["schemaVersion"] == 2
    assert manifest["mediaType"] == MEDIA_MANIFEST
    assert manifest["config"]["mediaType"] == MEDIA_CONFIG
    assert manifest["config"]["digest"] == image_id
    config_bytes = blob(files, image_id)
    assert manifest["config"]["size"] == len(config_bytes)
    [layer_descriptor] = manifest["layers"]
    assert layer_descriptor["mediaType"] == MEDIA_LAYER
    layer = blob(files, layer_descriptor["digest"])
    assert layer_descriptor["size"] == len(layer)
    layer_hex = layer_descriptor["digest"].removeprefix("sha256:")

    config = json.loads(config_bytes)
    assert config["rootfs"] == {"type": "layers", "diff_ids": [f"sha256:{layer_hex}"]}
    assert config["architecture"] == ARCHES.get(os.uname().machine, os.uname().machine)
    assert config["os"] == "linux"
    assert config["config"] == {
        "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
        "Cmd": ["sh"],
    }
    [history] = config["history"]
    assert history["created"] == config["created"]
    assert history["created_by"].startswith("scripts/make-busybox-image (busybox 1.")

    assert json.loads(files["manifest.json"]) == [
        {
            "Config": f"blobs/sha256/{image_id.removeprefix('sha256:')}",
            "RepoTags": ["busybox:latest"],
            "Layers": [f"blobs/sha256/{layer_hex}"],
        }
    ]
    assert json.loads(files["repositories"]) == {"busybox": {"latest": layer_hex}}


def layer_members(files: dict[str, bytes]) -> list[tarfile.TarInfo]:
    legacy = json.loads(files["manifest.json"])[0]
    path = legacy["Layers"][0]
    with tarfile.open(fileobj=io.BytesIO(files[path])) as tar:
        return tar.getmembers()


def test_layer_is_a_busybox_rootfs(files: dict[str, bytes]) -> None:
    members = layer_members(files)
    by_name = {member.name: member for member in members}
    assert len(by_name) == len(members), "duplicate entries"
    for member in members:
        assert (member.uid, member.gid, member.uname, member.gname) == (0, 0, "", "")

    busybox = by_name["bin/busybox"]
    assert busybox.isfile()
    assert busybox.mode == 0o755
    assert busybox.size == BUSYBOX.stat().st_size

    directories = ["bin", "dev", "etc", "home", "proc", "root", "sys", "tmp", "usr"]
    directories += ["usr/bin", "usr/sbin", "var", "var/spool", "var/www", "sbin"]
    for directory in directories:
        assert by_name[directory].isdir(), directory
    assert by_name["tmp"].mode == 0o1777

    links = [member for member in members if member.type == tarfile.LNKTYPE]
    assert len(links) > 100
    assert all(link.linkname == "bin/busybox" for link in links)
    assert {link.name.rsplit("/", 1)[0] for link in links} <= {"bin", "sbin", "usr/bin", "usr/sbin"}
    for applet in ("bin/sh", "bin/ls", "bin/echo", "usr/bin/wc"):
        assert by_name[applet].type == tarfile.LNKTYPE, applet
    # Every link comes after its target, so a streaming extractor can make it.
    names = [member.name for member in members]
    assert names.index("bin/busybox") < min(names.index(link.name) for link in links)
    # Parents before children, everything else sorted.
    assert names[0] == "bin"
    rest = [name for name in names if name != "bin/busybox"]
    assert rest == sorted(rest)

    listed = subprocess.run(
        [str(BUSYBOX), "--list-full"], capture_output=True, text=True, check=True
    ).stdout.split()
    # Each applet at its listed path, and in /bin too (where the official image has them all).
    expected = {
        name
        for name in listed
        if name.rsplit("/", 1)[0] in {"bin", "sbin", "usr/bin", "usr/sbin"}
        and name != "bin/busybox"
    }
    expected |= {"bin/" + name.rsplit("/", 1)[1] for name in expected}
    assert {link.name for link in links} == expected


def test_etc_passwd_and_group(files: dict[str, bytes]) -> None:
    legacy = json.loads(files["manifest.json"])[0]
    with tarfile.open(fileobj=io.BytesIO(files[legacy["Layers"][0]])) as tar:
        passwd_file = tar.extractfile("etc/passwd")
        group_file = tar.extractfile("etc/group")
        assert passwd_file is not None
        assert group_file is not None
        passwd = passwd_file.read().decode().splitlines()
        group = group_file.read().decode().splitlines()
    assert passwd[0] == "root:x:0:0:root:/root:/bin/sh"
    assert "nobody:x:65534:65534:nobody:/home:/bin/false" in passwd
    assert [line.split(":")[0] for line in passwd] == [
        "root",
        "daemon",
        "bin",
        "sys",
        "sync",
        "mail",
        "www-data",
        "operator",
        "nobody",
    ]
    assert "users:x:100:" in group
    assert "nogroup:x:65534:" in group
    assert {line.split(":")[0] for line in group} >= {
        "root",
        "daemon",
        "bin",
        "sys",
        "adm",
        "tty",
        "disk",
        "wheel",
        "mail",
        "www-data",
    }


def test_two_runs_are_byte_identical(image: tuple[Path, str], tmp_path: Path) -> None:
    again = tmp_path / "again.tar"
    result = make_image(again)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == image[1]
    assert again.read_bytes() == image[0].read_bytes()
    # Written atomically: no temporary file is left beside it.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["again.tar"]


def test_source_date_epoch_sets_every_time_stamp(tmp_path: Path) -> None:
    output = tmp_path / "epoch.tar"
    result = make_image(output, env={"SOURCE_DATE_EPOCH": "1700000000"})
    assert result.returncode == 0, result.stderr
    files = read_archive(output)
    config = json.loads(blob(files, result.stdout.strip()))
    assert config["created"] == "2023-11-14T22:13:20Z"
    with tarfile.open(output) as tar:
        assert {member.mtime for member in tar.getmembers()} == {1700000000}
    assert {member.mtime for member in layer_members(files)} == {1700000000}


def test_tag_option(tmp_path: Path) -> None:
    output = tmp_path / "tagged.tar"
    result = make_image(output, "--tag", "example.com:5000/test/bb:v1")
    assert result.returncode == 0, result.stderr
    files = read_archive(output)
    assert json.loads(files["manifest.json"])[0]["RepoTags"] == ["example.com:5000/test/bb:v1"]
    assert list(json.loads(files["repositories"])) == ["example.com:5000/test/bb"]
    annotations = json.loads(files["index.json"])["manifests"][0]["annotations"]
    assert annotations == {
        "io.containerd.image.name": "example.com:5000/test/bb:v1",
        "org.opencontainers.image.ref.name": "v1",
    }


def test_missing_busybox_fails_clearly(tmp_path: Path) -> None:
    output = tmp_path / "out.tar"
    result = make_image(output, "--busybox", str(tmp_path / "nope"))
    assert result.returncode != 0
    assert "no such file" in result.stderr
    assert "busybox-static" in result.stderr
    assert not output.exists()


def test_dynamic_binary_is_refused(tmp_path: Path) -> None:
    dynamic = Path(shutil.which("ls") or "/bin/ls").resolve()
    output = tmp_path / "out.tar"
    result = make_image(output, "--busybox", str(dynamic))
    assert result.returncode != 0
    assert "dynamically linked" in result.stderr
    assert "busybox-static" in result.stderr
    assert not output.exists()
    assert list(tmp_path.iterdir()) == []


def skopeo_json(*args: str) -> tuple[Any, str]:
    result = subprocess.run(
        ["skopeo", *args], capture_output=True, text=True, check=False, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout), result.stdout


@pytest.mark.skipif(shutil.which("skopeo") is None, reason="skopeo is not installed")
def test_skopeo_reads_it(image: tuple[Path, str], files: dict[str, bytes]) -> None:
    path, image_id = image
    layer_hex = json.loads(files["repositories"])["busybox"]["latest"]
    index = json.loads(files["index.json"])
    manifest_digest = index["manifests"][0]["digest"]

    # docker-archive: reads manifest.json (and converts to a Docker schema 2 manifest).
    info, _ = skopeo_json("inspect", f"docker-archive:{path}")
    assert info["Layers"] == [f"sha256:{layer_hex}"]
    assert info["Architecture"] == ARCHES.get(os.uname().machine, os.uname().machine)
    assert info["Os"] == "linux"
    raw, raw_text = skopeo_json("inspect", "--raw", f"docker-archive:{path}")
    assert raw["config"]["digest"] == image_id
    assert info["Digest"] == "sha256:" + hashlib.sha256(raw_text.encode()).hexdigest()
    config, _ = skopeo_json("inspect", "--config", f"docker-archive:{path}")
    assert config["rootfs"]["diff_ids"] == [f"sha256:{layer_hex}"]

    # oci-archive: reads index.json; the digest is our OCI manifest's.
    info, _ = skopeo_json("inspect", f"oci-archive:{path}")
    assert info["Digest"] == manifest_digest
    assert info["Layers"] == [f"sha256:{layer_hex}"]


def test_busybox_runs_in_a_chroot(files: dict[str, bytes], tmp_path: Path) -> None:
    legacy = json.loads(files["manifest.json"])[0]
    layer = tmp_path / "layer.tar"
    layer.write_bytes(files[legacy["Layers"][0]])
    rootfs = tmp_path / "rootfs"
    rootfs.mkdir()
    with tarfile.open(layer) as tar:
        tar.extractall(rootfs, filter="tar")
    assert (rootfs / "bin" / "sh").stat().st_ino == (rootfs / "bin" / "busybox").stat().st_ino
    result = subprocess.run(
        ["chroot", str(rootfs), "/bin/sh", "-c", "echo hello; ls /bin | wc -l"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.split()
    assert lines[0] == "hello"
    assert int(lines[1]) > 100
