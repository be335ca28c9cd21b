"""Helpers for tests that run a real ``pydocker-registry serve`` (this package's and
pydockerd's end-to-end tests): the process on a free loopback port, a self-signed
certificate made by ``openssl``, and an OCI image layout to copy with skopeo.

Nothing here is imported by the server itself.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import re
import signal
import subprocess
import sys
import tarfile
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

__all__ = [
    "RegistryProcess",
    "make_oci_layout",
    "parse_challenge",
    "self_signed_certificate",
    "token_config",
    "write_config",
]

_LISTENING = re.compile(r"listening on (https?://\S+)")
_CHALLENGE_PARAMETER = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def write_config(directory: Path, text: str = "") -> Path:
    """``directory/config.toml``: ``text``, then storage under ``directory/data``."""
    path = directory / "config.toml"
    path.write_text(f'{text}\n[storage.options]\nroot = "{directory / "data"}"\n')
    return path


SCOPED_RULES = """
[[auth.token.rules]]
accounts = ["alice"]
repositories = ["a/*"]
actions = ["pull", "push"]
[[auth.token.rules]]
accounts = ["alice"]
repositories = ["b/*"]
actions = ["pull"]
[[auth.token.rules]]
accounts = ["admin"]
repositories = ["*"]
actions = ["*"]
catalog = true
"""
"""The token policy of the tests: alice pulls and pushes ``a/*`` but only pulls ``b/*``;
admin may do anything, the catalog too."""


def token_config(
    directory: Path, users: Mapping[str, str], rules: str = SCOPED_RULES, token: str = ""
) -> Path:
    """A token-mode configuration with the built-in token server: an htpasswd file of
    ``users`` (name → password, bcrypt cost 4), a new signing key, ``rules`` (TOML), and
    ``token`` (more ``[auth.token]`` keys)."""
    from pydocker_registry.auth import generate_key, set_password

    for user, password in users.items():
        set_password(directory / "htpasswd", user, password, rounds=4)
    generate_key(directory / "token.key")
    auth = f'[auth]\nmode = "token"\n[auth.htpasswd]\npath = "{directory / "htpasswd"}"\n'
    auth += f'[auth.token]\nprivate_key = "{directory / "token.key"}"\n{token}\n{rules}'
    return write_config(directory, auth)


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """``Bearer realm="r",service="s"`` → ("bearer", {"realm": "r", "service": "s"})."""
    scheme, _, rest = header.partition(" ")
    parameters = {
        name: re.sub(r"\\(.)", r"\1", value) for name, value in _CHALLENGE_PARAMETER.findall(rest)
    }
    return scheme.lower(), parameters


@dataclass
class RegistryProcess:
    """``pydocker-registry serve --config CONFIG --addr 127.0.0.1:0`` as a child process.

    Use as a context manager: entering waits until it listens (:attr:`url`), leaving stops
    it with SIGTERM (SIGKILL after ``stop_timeout``). Its stderr is kept in :attr:`lines`.
    """

    config: Path
    env: Mapping[str, str] = field(default_factory=dict)
    start_timeout: float = 20.0
    stop_timeout: float = 15.0
    url: str = ""
    lines: list[str] = field(default_factory=list)
    process: subprocess.Popen[str] | None = None
    _reader: threading.Thread | None = None
    _listening: threading.Event = field(default_factory=threading.Event)

    def start(self) -> RegistryProcess:
        environment = {
            name: value
            for name, value in os.environ.items()
            if not name.startswith("PYDOCKER_REGISTRY_")
        }
        environment.update(self.env)
        command = [sys.executable, "-m", "pydocker_registry.cli", "serve"]
        command += ["--config", str(self.config), "--addr", "127.0.0.1:0"]
        self.process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env=environment,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        deadline = time.monotonic() + self.start_timeout
        while not self._listening.wait(0.05):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("pydocker-registry did not start:\n" + self.log())
        return self

    def _read(self) -> None:
        assert self.process is not None
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.append(line.rstrip("\n"))
            found = _LISTENING.search(line)
            if found and not self.url:
                self.url = found.group(1)
                self._listening.set()

    def log(self) -> str:
        return "\n".join(self.lines)

    def stop(self) -> int:
        """SIGTERM, wait, SIGKILL if need be; the exit status."""
        process = self.process
        if process is None:
            return 0
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(self.stop_timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._reader is not None:
            self._reader.join(5)
        return process.returncode

    def __enter__(self) -> RegistryProcess:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def self_signed_certificate(directory: Path, host: str = "127.0.0.1") -> tuple[Path, Path]:
    """``openssl req -x509``: a P-256 certificate for ``host`` (an IP address SAN) and its
    key, valid one day. Returns (certificate, key)."""
    certificate, key = directory / "cert.pem", directory / "key.pem"
    command = ["openssl", "req", "-x509", "-nodes", "-days", "1", "-subj", f"/CN={host}"]
    command += ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"]
    command += ["-addext", f"subjectAltName=IP:{host}"]
    command += ["-keyout", str(key), "-out", str(certificate)]
    subprocess.run(command, check=True, capture_output=True)
    return certificate, key


def _put_blob(layout: Path, data: bytes, media_type: str) -> dict[str, Any]:
    digest = hashlib.sha256(data).hexdigest()
    (layout / "blobs" / "sha256" / digest).write_bytes(data)
    return {"mediaType": media_type, "digest": f"sha256:{digest}", "size": len(data)}


def _random_layer(index: int, size: int) -> tuple[bytes, str]:
    """A gzipped tar with one file of random bytes; (blob, diff_id)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        content = os.urandom(size)
        info = tarfile.TarInfo(f"layer{index}/data.bin")
        info.size, info.mtime = len(content), 0
        tar.addfile(info, io.BytesIO(content))
    tar_bytes = raw.getvalue()
    return gzip.compress(tar_bytes, mtime=0), f"sha256:{hashlib.sha256(tar_bytes).hexdigest()}"


def make_oci_layout(
    directory: Path, tag: str = "latest", layers: int = 2, layer_size: int = 64 * 1024
) -> str:
    """An OCI image layout (``oci-layout``, ``index.json``, blobs) holding one image with
    ``layers`` random layers, tagged ``tag``. Returns the manifest's digest."""
    blobs = directory / "blobs" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)
    (directory / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
    descriptors: list[dict[str, Any]] = []
    diff_ids: list[str] = []
    for index in range(layers):
        blob, diff_id = _random_layer(index, layer_size)
        descriptors.append(
            _put_blob(directory, blob, "application/vnd.oci.image.layer.v1.tar+gzip")
        )
        diff_ids.append(diff_id)
    image_config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {"Cmd": ["/bin/true"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }
    config_descriptor = _put_blob(
        directory, json.dumps(image_config).encode(), "application/vnd.oci.image.config.v1+json"
    )
    manifest: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": config_descriptor,
        "layers": descriptors,
    }
    manifest_descriptor = _put_blob(
        directory, json.dumps(manifest).encode(), "application/vnd.oci.image.manifest.v1+json"
    )
    manifest_descriptor["annotations"] = {"org.opencontainers.image.ref.name": tag}
    image_index = {"schemaVersion": 2, "manifests": [manifest_descriptor]}
    (directory / "index.json").write_text(json.dumps(image_index))
    return str(manifest_descriptor["digest"])
