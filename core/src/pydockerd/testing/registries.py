"""A test kit for registry transports: Debian's reference registry (``docker-registry``,
distribution 2.8) on a free 127.0.0.1 port, random images pushed to it with plain HTTP, a
way to tamper with a stored blob, and a TCP proxy that cuts a connection once.

Everything listens on 127.0.0.1 and is stopped and removed when its block ends::

    with reference_registry(users={"alice": "secret"}) as registry:
        image = random_image(layers=2)
        push_image(registry.url, "x", "latest", image, auth=("alice", "secret"))
"""

from __future__ import annotations

import base64
import contextlib
import gzip
import hashlib
import io
import json
import os
import secrets
import shutil
import socket
import subprocess
import tarfile
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydockerd.distribution import (
    DEFAULT_PLATFORM,
    BlobSink,
    Descriptor,
    ManifestBlob,
    Progress,
    PullResult,
    PushBlob,
    PushResult,
    RegistryCredentials,
    RegistryEndpoint,
    RemoteRepository,
)

if TYPE_CHECKING:
    from pydockerd.plugin import RegistryTransport

__all__ = [
    "REGISTRY_BINARY",
    "CuttingProxy",
    "ProgressLog",
    "ReferenceRegistry",
    "TestImage",
    "cutting_proxy",
    "free_port",
    "htpasswd_file",
    "pull_into",
    "push_image",
    "push_index",
    "push_into",
    "random_image",
    "reference_registry",
    "remote_repository",
    "stage_for_push",
]

REGISTRY_BINARY = "/usr/bin/docker-registry"

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass
class ReferenceRegistry:
    """A running reference registry.

    :ivar url: ``http://127.0.0.1:<port>``.
    :ivar host: ``127.0.0.1:<port>``, as references name it.
    :ivar storage: its filesystem storage root.
    """

    url: str
    host: str
    storage: Path
    process: subprocess.Popen[bytes]
    log: Path

    def blob_data(self, digest: str) -> Path:
        """Where the registry keeps ``digest``'s bytes."""
        hex_ = digest.removeprefix("sha256:")
        return self.storage / "docker/registry/v2/blobs/sha256" / hex_[:2] / hex_ / "data"

    def tamper(self, digest: str, at: int = 0) -> None:
        """Change one byte of a stored blob (its size stays), so that what the registry
        serves under ``digest`` no longer matches it."""
        path = self.blob_data(digest)
        data = bytearray(path.read_bytes())
        data[at] ^= 0xFF
        path.write_bytes(bytes(data))


def htpasswd_file(path: Path, users: Mapping[str, str]) -> Path:
    """Write an htpasswd file (bcrypt, the only hash distribution takes) for ``users``."""
    import bcrypt

    path.write_text(
        "".join(
            f"{user}:{bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()}\n"
            for user, password in users.items()
        )
    )
    return path


def _wait_until_up(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"docker-registry exited {process.returncode}: {log.read_text()}")
        try:
            with urllib.request.urlopen(url + "/v2/", timeout=1):  # noqa: S310 (127.0.0.1)
                return
        except urllib.error.HTTPError:
            return  # 401: up, with auth
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"docker-registry did not answer on {url}: {log.read_text()}")


@contextlib.contextmanager
def reference_registry(
    *,
    users: Mapping[str, str] | None = None,
    token: Mapping[str, str] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Iterator[ReferenceRegistry]:
    """Start ``docker-registry serve`` with filesystem storage in a temporary directory, on
    a free 127.0.0.1 port, deletes enabled; wait until ``/v2/`` answers; stop it and remove
    everything afterwards, whatever happened.

    :param users: htpasswd basic auth with these users and passwords.
    :param token: ``auth.token`` settings (``realm``, ``service``, ``issuer``,
        ``rootcertbundle``) for a registry that wants bearer tokens.
    :param extra: more top-level configuration keys, merged over the defaults.
    """
    directory = Path(tempfile.mkdtemp(prefix="pdreg-"))
    port = free_port()
    config: dict[str, Any] = {
        "version": 0.1,
        "log": {"level": "info", "accesslog": {"disabled": True}},
        "storage": {
            "filesystem": {"rootdirectory": str(directory / "storage")},
            "delete": {"enabled": True},
            "maintenance": {"uploadpurging": {"enabled": False}},
        },
        "http": {"addr": f"127.0.0.1:{port}", "secret": secrets.token_hex(16)},
    }
    if users is not None:
        htpasswd_file(directory / "htpasswd", users)
        htpasswd = {"realm": "pydockerd-test", "path": str(directory / "htpasswd")}
        config["auth"] = {"htpasswd": htpasswd}
    if token is not None:
        config["auth"] = {"token": dict(token)}
    config |= dict(extra or {})
    config_file = directory / "config.yml"
    config_file.write_text(json.dumps(config))  # YAML is a superset of JSON
    log = directory / "registry.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [REGISTRY_BINARY, "serve", str(config_file)],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(url, process, log)
        yield ReferenceRegistry(url, f"127.0.0.1:{port}", directory / "storage", process, log)
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        shutil.rmtree(directory, ignore_errors=True)


def remote_repository(
    registry: ReferenceRegistry | str,
    path: str,
    credentials: RegistryCredentials | None = None,
    mirrors: Sequence[str] = (),
) -> RemoteRepository:
    """``path`` on ``registry`` (a running one, or a URL), with ``mirrors`` (URLs) first."""
    url = registry if isinstance(registry, str) else registry.url
    endpoints = [RegistryEndpoint(m, mirror=True) for m in mirrors] + [RegistryEndpoint(url)]
    host = url.partition("://")[2]
    return RemoteRepository(host, path, endpoints, credentials or RegistryCredentials())


class ProgressLog(list[Progress]):
    """A :data:`~pydockerd.distribution.ProgressFn` that keeps every message, in order."""

    def __call__(self, message: Progress) -> None:
        self.append(message)

    def statuses(self, progress_id: str) -> list[str]:
        """The statuses about ``progress_id``, byte counts (``Downloading``, ``Pushing``)
        left out."""
        return [
            m.status
            for m in self
            if m.id == progress_id and m.status not in ("Downloading", "Pushing")
        ]

    def most_at_once(self, start: str, end: str) -> int:
        """The most ids that were between a ``start`` and an ``end`` status at one time
        (``Downloading`` and ``Verifying Checksum``: downloads running at once)."""
        running: set[str] = set()
        most = 0
        for m in self:
            if m.status == start:
                running.add(m.id)
            elif m.status == end:
                running.discard(m.id)
            most = max(most, len(running))
        return most


async def pull_into(
    transport: RegistryTransport,
    repository: RemoteRepository,
    reference: str,
    blobs: BlobSink,
    *,
    platform: str = DEFAULT_PLATFORM,
    progress: ProgressLog | None = None,
) -> PullResult:
    """``transport.pull`` with the default platform, its progress into ``progress``."""
    return await transport.pull(
        repository,
        reference,
        platform=platform,
        blobs=blobs,
        progress=progress if progress is not None else ProgressLog(),
    )


# --------------------------------------------------------------------------------------
# Images


@dataclass(frozen=True)
class TestImage:
    """A random image: its config, its gzip layers and the manifest that names them."""

    __test__ = False  # not a test class, for pytest

    config: bytes
    layers: Sequence[bytes]
    manifest: bytes
    media_type: str

    @property
    def digest(self) -> str:
        return _digest(self.manifest)

    @property
    def layer_digests(self) -> list[str]:
        return [_digest(layer) for layer in self.layers]

    @property
    def config_digest(self) -> str:
        return _digest(self.config)

    def blobs(self) -> dict[str, bytes]:
        return {_digest(b): b for b in (self.config, *self.layers)}


def stage_for_push(
    blobs: BlobSink, image: TestImage, mount_from: Sequence[str] = ()
) -> tuple[ManifestBlob, list[PushBlob]]:
    """Store ``image``'s blobs in ``blobs`` and return what the daemon hands a push: the
    manifest, and the layers (progress ids: their short digests) then the config (none)."""
    for digest, data in image.blobs().items():
        blobs.write(data, digest)
    parsed = json.loads(image.manifest)
    layers = [Descriptor.from_json(d) for d in parsed["layers"]]
    pushed = [PushBlob(d, mount_from, d.digest.removeprefix("sha256:")[:12]) for d in layers]
    pushed.append(PushBlob(Descriptor.from_json(parsed["config"]), mount_from))
    return ManifestBlob(image.media_type, image.digest, image.manifest), pushed


async def push_into(
    transport: RegistryTransport,
    repository: RemoteRepository,
    tag: str | None,
    image: TestImage,
    blobs: BlobSink,
    *,
    progress: ProgressLog | None = None,
) -> PushResult:
    """``image`` staged in ``blobs`` (:func:`stage_for_push`) and pushed with ``transport``
    under ``tag`` (its digest when None), its progress into ``progress``."""
    manifest, pushed = stage_for_push(blobs, image)
    return await transport.push(
        repository,
        tag,
        manifest,
        pushed,
        blobs=blobs,
        progress=progress if progress is not None else ProgressLog(),
    )


def _random_layer(size: int) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        info = tarfile.TarInfo(f"random-{secrets.token_hex(4)}")
        info.size = size
        tar.addfile(info, io.BytesIO(os.urandom(size)))
    return gzip.compress(raw.getvalue(), compresslevel=1)


def random_image(
    layers: int = 2,
    layer_size: int = 64 * 1024,
    *,
    oci: bool = True,
    architecture: str = "amd64",
    variant: str = "",
) -> TestImage:
    """An image of ``layers`` random gzip layers of about ``layer_size`` bytes each, with
    OCI (or Docker schema 2) media types."""
    blobs = [_random_layer(layer_size) for _ in range(layers)]
    diff_ids = ["sha256:" + hashlib.sha256(gzip.decompress(b)).hexdigest() for b in blobs]
    platform = {"architecture": architecture, "os": "linux"}
    if variant:
        platform["variant"] = variant
    rootfs = {"type": "layers", "diff_ids": diff_ids}
    config = json.dumps(platform | {"config": {"Cmd": ["/bin/sh"]}, "rootfs": rootfs}).encode()
    layer_type = (
        "application/vnd.oci.image.layer.v1.tar+gzip"
        if oci
        else "application/vnd.docker.image.rootfs.diff.tar.gzip"
    )
    config_type = (
        "application/vnd.oci.image.config.v1+json"
        if oci
        else "application/vnd.docker.container.image.v1+json"
    )
    media_type = OCI_MANIFEST if oci else DOCKER_MANIFEST
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": media_type,
            "config": {"mediaType": config_type, "digest": _digest(config), "size": len(config)},
            "layers": [
                {"mediaType": layer_type, "digest": _digest(b), "size": len(b)} for b in blobs
            ],
        },
        indent=3,
    ).encode()
    return TestImage(config, blobs, manifest, media_type)


def _request(
    method: str,
    url: str,
    data: bytes | None = None,
    headers: Mapping[str, str] | None = None,
    auth: tuple[str, str] | None = None,
) -> tuple[int, Mapping[str, str]]:
    sent = dict(headers or {})
    if auth is not None:
        sent["Authorization"] = "Basic " + base64.b64encode(":".join(auth).encode()).decode()
    request = urllib.request.Request(url, data=data, headers=sent, method=method)  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:  # noqa: S310 (127.0.0.1)
            resp.read()
            return resp.status, dict(resp.headers)
    except urllib.error.HTTPError as e:
        body = e.read()
        raise RuntimeError(f"{method} {url}: {e.code} {body[:300]!r}") from None


def push_blob(url: str, repository: str, data: bytes, auth: tuple[str, str] | None = None) -> str:
    """Upload one blob monolithically (``POST`` then ``PUT ?digest=``); its digest."""
    digest = _digest(data)
    _, headers = _request("POST", f"{url}/v2/{repository}/blobs/uploads/", b"", auth=auth)
    location = headers["Location"]
    if location.startswith("/"):
        location = url + location
    separator = "&" if "?" in location else "?"
    _request(
        "PUT",
        f"{location}{separator}digest={digest}",
        data,
        {"Content-Type": "application/octet-stream"},
        auth,
    )
    return digest


def push_manifest(
    url: str,
    repository: str,
    reference: str,
    manifest: bytes,
    *,
    media_type: str,
    auth: tuple[str, str] | None = None,
) -> str:
    _request(
        "PUT",
        f"{url}/v2/{repository}/manifests/{reference}",
        manifest,
        {"Content-Type": media_type},
        auth,
    )
    return _digest(manifest)


def push_image(
    url: str,
    repository: str,
    tag: str,
    image: TestImage,
    auth: tuple[str, str] | None = None,
) -> str:
    """Push ``image`` (its blobs, then its manifest under ``tag``) with plain HTTP; the
    manifest's digest."""
    for data in image.blobs().values():
        push_blob(url, repository, data, auth)
    return push_manifest(
        url, repository, tag, image.manifest, media_type=image.media_type, auth=auth
    )


def push_index(
    url: str,
    repository: str,
    tag: str,
    images: Sequence[tuple[TestImage, Mapping[str, str]]],
    *,
    oci: bool = True,
    attestation_for: TestImage | None = None,
    auth: tuple[str, str] | None = None,
) -> str:
    """Push every image by digest and an index (or Docker manifest list) of them under
    ``tag``, each entry with its ``platform``; with ``attestation_for``, also a buildkit-style
    ``unknown/unknown`` attestation entry first. The index's digest."""
    entries: list[dict[str, Any]] = []
    if attestation_for is not None:
        attestation = random_image(1, 256)
        push_image(url, repository, attestation.digest, attestation, auth)
        entries.append(
            {
                "mediaType": attestation.media_type,
                "digest": attestation.digest,
                "size": len(attestation.manifest),
                "platform": {"architecture": "unknown", "os": "unknown"},
                "annotations": {
                    "vnd.docker.reference.type": "attestation-manifest",
                    "vnd.docker.reference.digest": attestation_for.digest,
                },
            }
        )
    for image, platform in images:
        push_image(url, repository, image.digest, image, auth)
        entries.append(
            {
                "mediaType": image.media_type,
                "digest": image.digest,
                "size": len(image.manifest),
                "platform": dict(platform),
            }
        )
    media_type = OCI_INDEX if oci else DOCKER_LIST
    index = json.dumps({"schemaVersion": 2, "mediaType": media_type, "manifests": entries}).encode()
    return push_manifest(url, repository, tag, index, media_type=media_type, auth=auth)


# --------------------------------------------------------------------------------------
# A proxy that breaks a download


@dataclass
class CuttingProxy:
    """A TCP proxy on 127.0.0.1 in front of ``target``: the first ``cuts`` connections that
    carry more than ``cut_after`` bytes towards the client (``upload``: towards the server)
    are closed right there.

    :ivar url: ``http://127.0.0.1:<port>``.
    :ivar cut: how many connections it has cut so far.
    """

    url: str
    target: tuple[str, int]
    cut_after: int
    cuts: int
    rate: int = 0
    """Bytes a second each connection may carry towards the client; 0: no limit."""
    cut: int = 0
    connections: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _take_cut(self) -> bool:
        with self._lock:
            if self.cut < self.cuts:
                self.cut += 1
                return True
            return False


def _pump(source: socket.socket, sink: socket.socket, proxy: CuttingProxy | None) -> None:
    """Copy ``source`` to ``sink`` until either closes; with ``proxy``, cut after
    ``proxy.cut_after`` bytes when a cut is left."""
    sent = 0
    cutting = proxy is not None
    started = time.monotonic()
    try:
        while data := source.recv(65536):
            if proxy is not None and proxy.rate:  # ahead of the rate: wait until it is not
                time.sleep(max(0.0, started + (sent + len(data)) / proxy.rate - time.monotonic()))
            if cutting and proxy is not None and sent + len(data) > proxy.cut_after:
                if proxy._take_cut():
                    sink.sendall(data[: proxy.cut_after - sent])
                    break
                cutting = False
            sink.sendall(data)
            sent += len(data)
    except OSError:
        pass
    finally:
        for s in (source, sink):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)


@contextlib.contextmanager
def cutting_proxy(
    target_url: str, cut_after: int, cuts: int = 1, *, upload: bool = False, rate: int = 0
) -> Iterator[CuttingProxy]:
    """A :class:`CuttingProxy` in front of ``target_url`` (``http://127.0.0.1:<port>``);
    ``upload`` cuts what the client sends instead of what it receives; ``rate`` limits
    what each connection carries (bytes a second), to make a transfer last."""
    host, _, port = target_url.removeprefix("http://").rpartition(":")
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    proxy = CuttingProxy(
        f"http://127.0.0.1:{listener.getsockname()[1]}", (host, int(port)), cut_after, cuts, rate
    )
    sockets: list[socket.socket] = []
    threads: list[threading.Thread] = []

    def serve() -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(proxy.target)
            proxy.connections += 1
            sockets.extend((client, upstream))
            cut_up, cut_down = (proxy, None) if upload else (None, proxy)
            for args in ((client, upstream, cut_up), (upstream, client, cut_down)):
                thread = threading.Thread(target=_pump, args=args, daemon=True)
                thread.start()
                threads.append(thread)

    acceptor = threading.Thread(target=serve, daemon=True)
    acceptor.start()
    try:
        yield proxy
    finally:
        listener.shutdown(socket.SHUT_RDWR)
        listener.close()
        for s in sockets:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()
        acceptor.join(5)
        for thread in threads:
            thread.join(5)
