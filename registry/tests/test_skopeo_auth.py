"""skopeo, a real registry client, against a served pydocker-registry: Basic auth (push and
pull back, wrong credentials refused), token auth through the built-in token server (push
where the policy allows it, refused where it only allows pull), and HTTPS verified against
the registry's certificate."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from pydocker_registry.auth import set_password
from pydocker_registry.testing import (
    RegistryProcess,
    make_oci_layout,
    self_signed_certificate,
    token_config,
    write_config,
)

pytestmark = pytest.mark.skipif(shutil.which("skopeo") is None, reason="skopeo is not installed")


class Skopeo:
    """skopeo with its own HOME, auth file and policy, never the host's."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir()
        self.directory = directory
        self.policy = directory / "policy.json"
        self.policy.write_text(json.dumps({"default": [{"type": "insecureAcceptAnything"}]}))
        self.env = {
            "HOME": str(directory),
            "PATH": "/usr/bin:/bin",
            "REGISTRY_AUTH_FILE": str(directory / "auth.json"),
            "XDG_RUNTIME_DIR": str(directory),
        }

    def copy(self, *args: str) -> subprocess.CompletedProcess[str]:
        command = ["skopeo", "--policy", str(self.policy), "copy", "--retry-times", "0", *args]
        return subprocess.run(
            command, env=self.env, capture_output=True, text=True, timeout=120, check=False
        )


def host_of(registry: RegistryProcess) -> str:
    return registry.url.split("://", 1)[1]


def blobs(layout: Path) -> set[str]:
    return {path.name for path in (layout / "blobs" / "sha256").iterdir()}


@pytest.fixture
def image(tmp_path: Path) -> tuple[Path, str]:
    layout = tmp_path / "image"
    digest = make_oci_layout(layout, "v1", layers=2)
    return layout, digest


def test_skopeo_push_and_pull_with_basic_auth(tmp_path: Path, image: tuple[Path, str]) -> None:
    layout, digest = image
    users = tmp_path / "htpasswd"
    set_password(users, "alice", "wonderland", rounds=4)
    config = write_config(
        tmp_path, f'[auth]\nmode = "htpasswd"\n[auth.htpasswd]\npath = "{users}"\n'
    )
    skopeo = Skopeo(tmp_path / "skopeo")
    with RegistryProcess(config) as registry:
        remote = f"docker://{host_of(registry)}/team/app:v1"
        pushed = skopeo.copy(
            "--dest-creds",
            "alice:wonderland",
            "--dest-tls-verify=false",
            f"oci:{layout}:v1",
            remote,
        )
        assert pushed.returncode == 0, pushed.stderr

        back = tmp_path / "back"
        pulled = skopeo.copy(
            "--src-creds", "alice:wonderland", "--src-tls-verify=false", remote, f"oci:{back}:v1"
        )
        assert pulled.returncode == 0, pulled.stderr
        assert blobs(back) == blobs(layout)
        assert json.loads((back / "index.json").read_text())["manifests"][0]["digest"] == digest

        refused = skopeo.copy(
            "--src-creds", "alice:wrong", "--src-tls-verify=false", remote, f"oci:{back}:v2"
        )
        assert refused.returncode != 0
        assert "unauthorized" in refused.stderr.lower() or "401" in refused.stderr
        anonymous = skopeo.copy("--src-tls-verify=false", remote, f"oci:{back}:v3")
        assert anonymous.returncode != 0
        refused = skopeo.copy(
            "--dest-creds",
            "mallory:x",
            "--dest-tls-verify=false",
            f"oci:{layout}:v1",
            f"docker://{host_of(registry)}/team/evil:v1",
        )
        assert refused.returncode != 0
    assert '"PUT /v2/team/app/manifests/v1 HTTP/1.1" 201' in registry.log()
    assert "PUT /v2/team/evil/manifests" not in registry.log()


def test_skopeo_with_tokens_is_scoped_by_repository(
    tmp_path: Path, image: tuple[Path, str]
) -> None:
    layout, _ = image
    config = token_config(tmp_path, {"alice": "wonderland", "admin": "root"})
    skopeo = Skopeo(tmp_path / "skopeo")
    source = f"oci:{layout}:v1"
    with RegistryProcess(config) as registry:
        host = host_of(registry)

        def push(creds: str, name: str) -> subprocess.CompletedProcess[str]:
            target = f"docker://{host}/{name}:v1"
            return skopeo.copy("--dest-creds", creds, "--dest-tls-verify=false", source, target)

        assert push("admin:root", "b/base").returncode == 0
        allowed = push("alice:wonderland", "a/app")
        assert allowed.returncode == 0, allowed.stderr
        denied = push("alice:wonderland", "b/other")
        assert denied.returncode != 0
        assert "denied" in denied.stderr.lower() or "unauthorized" in denied.stderr.lower()

        pulled = skopeo.copy(
            "--src-creds",
            "alice:wonderland",
            "--src-tls-verify=false",
            f"docker://{host}/b/base:v1",
            f"oci:{tmp_path / 'back'}:v1",
        )
        assert pulled.returncode == 0, pulled.stderr
        assert blobs(tmp_path / "back") == blobs(layout)
    log = registry.log()
    assert '"PUT /v2/a/app/manifests/v1 HTTP/1.1" 201' in log
    assert "PUT /v2/b/other/manifests" not in log
    assert "GET /token?" in log


def test_skopeo_over_verified_https(tmp_path: Path, image: tuple[Path, str]) -> None:
    layout, _ = image
    certificate, key = self_signed_certificate(tmp_path)
    certs = tmp_path / "certs.d"
    certs.mkdir()
    shutil.copy(certificate, certs / "ca.crt")
    config = write_config(tmp_path, f'[tls]\ncertificate = "{certificate}"\nkey = "{key}"\n')
    skopeo = Skopeo(tmp_path / "skopeo")
    with RegistryProcess(config) as registry:
        remote = f"docker://{host_of(registry)}/secure/app:v1"
        pushed = skopeo.copy("--dest-cert-dir", str(certs), f"oci:{layout}:v1", remote)
        assert pushed.returncode == 0, pushed.stderr
        unverified = skopeo.copy(f"oci:{layout}:v1", remote.replace(":v1", ":v2"))
        assert unverified.returncode != 0
        assert "certificate" in unverified.stderr
