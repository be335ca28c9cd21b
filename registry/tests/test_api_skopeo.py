"""End to end with a real client: ``skopeo copy`` of an OCI layout to the registry (served
from a thread on 127.0.0.1), on to a second repository (a cross-repository mount) and back,
with the digests unchanged."""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.request
from pathlib import Path

import pytest
from pydocker_registry.storage import FilesystemStorage
from pydocker_registry.testing import make_oci_layout

from .conftest import serve_in_thread

SKOPEO = shutil.which("skopeo")
pytestmark = pytest.mark.skipif(SKOPEO is None, reason="skopeo is not installed")


def skopeo(tmp_path: Path, *args: str) -> None:
    policy = tmp_path / "policy.json"
    policy.write_text(json.dumps({"default": [{"type": "insecureAcceptAnything"}]}))
    env = {"HOME": str(tmp_path), "REGISTRY_AUTH_FILE": str(tmp_path / "auth.json")}
    assert SKOPEO is not None
    result = subprocess.run(
        [SKOPEO, "--policy", str(policy), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def layout_digest(directory: Path) -> str:
    index = json.loads((directory / "index.json").read_text())
    return str(index["manifests"][0]["digest"])


def test_skopeo_copy_to_and_from_the_registry(tmp_path: Path) -> None:
    source = tmp_path / "source"
    digest = make_oci_layout(source, "v1", layers=3, layer_size=256 * 1024)
    with serve_in_thread(FilesystemStorage(tmp_path / "store")) as address:
        skopeo(
            tmp_path,
            "copy",
            "--preserve-digests",
            "--dest-tls-verify=false",
            f"oci:{source}:v1",
            f"docker://{address}/team/app:v1",
        )
        request = urllib.request.Request(
            f"http://{address}/v2/team/app/manifests/v1",
            method="HEAD",
            headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.headers["Docker-Content-Digest"] == digest
        skopeo(
            tmp_path,
            "copy",
            "--preserve-digests",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
            f"docker://{address}/team/app:v1",
            f"docker://{address}/other/app:v2",
        )
        back = tmp_path / "back"
        skopeo(
            tmp_path,
            "copy",
            "--preserve-digests",
            "--src-tls-verify=false",
            f"docker://{address}/other/app:v2",
            f"oci:{back}:v2",
        )
    assert layout_digest(back) == digest
    manifest = json.loads((back / "blobs" / "sha256" / digest[7:]).read_text())
    for descriptor in [manifest["config"], *manifest["layers"]]:
        copied = back / "blobs" / "sha256" / descriptor["digest"][7:]
        original = source / "blobs" / "sha256" / descriptor["digest"][7:]
        assert copied.read_bytes() == original.read_bytes()
