"""What a registry transport works with: remote repositories, credentials, descriptors, the
daemon's blob store as the transport sees it, and progress.

The daemon decides *what* to pull or push (names, endpoints from mirrors and the insecure
list, credentials from ``X-Registry-Auth``, the image's manifest for a push); the transport
(:class:`pydockerd.plugin.RegistryTransport`) does the wire work: the auth flow, manifests,
blob downloads with verification, resume and retries, uploads. Everything here is plain data
or a small protocol, so a transport never touches the daemon's stores directly.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Protocol

__all__ = [
    "DEFAULT_PLATFORM",
    "MEDIA_TYPES",
    "BlobSink",
    "Descriptor",
    "ManifestBlob",
    "PartialBlob",
    "Progress",
    "ProgressFn",
    "PullResult",
    "PushBlob",
    "PushResult",
    "RegistryCredentials",
    "RegistryEndpoint",
    "RemoteRepository",
]

DEFAULT_PLATFORM = "linux/amd64"


class MEDIA_TYPES:
    """Media types of manifests and layers a transport meets."""

    OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
    OCI_INDEX = "application/vnd.oci.image.index.v1+json"
    OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
    OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
    OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
    OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
    DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
    DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
    DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
    DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar"
    DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
    DOCKER_FOREIGN_LAYER = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"

    MANIFESTS = (OCI_MANIFEST, DOCKER_MANIFEST)
    INDEXES = (OCI_INDEX, DOCKER_LIST)


@dataclass(frozen=True)
class RegistryEndpoint:
    """One place a repository can be reached: the registry itself or one of its mirrors.

    :ivar url: scheme, host and port, no trailing slash: ``https://registry-1.docker.io``,
        ``http://127.0.0.1:5000``. ``http`` only for registries the daemon allows insecurely.
    :ivar mirror: a pull-through mirror; pushes never go to one, and a transport falls back to
        the next endpoint when a mirror fails.
    :ivar tls_verify: verify the server's certificate (``False`` for insecure registries served
        over HTTPS).
    """

    url: str
    mirror: bool = False
    tls_verify: bool = True


@dataclass(frozen=True)
class RegistryCredentials:
    """What the client sent in ``X-Registry-Auth`` (or ``POST /auth``); empty: anonymous.

    ``identity_token`` is an OAuth2 refresh token from an earlier login; ``registry_token`` a
    bearer token to send as is.
    """

    username: str = ""
    password: str = ""
    identity_token: str = ""
    registry_token: str = ""

    @property
    def anonymous(self) -> bool:
        return not (self.username or self.password or self.identity_token or self.registry_token)


@dataclass(frozen=True)
class RemoteRepository:
    """A repository on a registry.

    :ivar registry: the registry's name as references spell it: ``docker.io``,
        ``127.0.0.1:5000`` (for messages, and the token flow's ``service`` fallback).
    :ivar path: the repository path: ``library/busybox``.
    :ivar endpoints: where to reach it, tried in order: mirrors first (pulls only), then the
        registry itself; for an insecure registry, ``https://`` without verification before
        ``http://``, as Docker does. A transport checks an endpoint with one ``GET /v2/``
        (no retries) and moves to the next when it cannot be reached, fails TLS, or (for a
        mirror) answers with an error; retries with backoff apply once an endpoint answered.
    :ivar credentials: used for every endpoint that asks.
    """

    registry: str
    path: str
    endpoints: Sequence[RegistryEndpoint]
    credentials: RegistryCredentials = field(default_factory=RegistryCredentials)

    @property
    def name(self) -> str:
        return f"{self.registry}/{self.path}"


@dataclass(frozen=True)
class Descriptor:
    """An OCI content descriptor (``mediaType``, ``digest``, ``size``, optional extras)."""

    media_type: str
    digest: str
    size: int
    urls: Sequence[str] = ()
    annotations: dict[str, str] | None = None
    platform: dict[str, Any] | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Descriptor:
        """From a manifest's descriptor object; ``ValueError`` when it is not one."""
        try:
            return cls(
                media_type=str(data.get("mediaType", "")),
                digest=str(data["digest"]),
                size=int(data["size"]),
                urls=tuple(data.get("urls") or ()),
                annotations=data.get("annotations"),
                platform=data.get("platform"),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"invalid descriptor {data!r}: {e}") from None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "mediaType": self.media_type,
            "digest": self.digest,
            "size": self.size,
        }
        if self.urls:
            data["urls"] = list(self.urls)
        if self.annotations:
            data["annotations"] = self.annotations
        if self.platform:
            data["platform"] = self.platform
        return data


@dataclass(frozen=True)
class ManifestBlob:
    """A manifest exactly as the registry served it (its digest is of ``data``)."""

    media_type: str
    digest: str
    data: bytes


@dataclass(frozen=True)
class Progress:
    """One progress message, as the Engine API streams it (``{"id","status","progressDetail"}``).

    ``id`` is the short layer ID (12 hex digits) or empty for a message about the whole
    operation; ``current``/``total`` are bytes, when the status is ``Downloading``/``Pushing``.
    """

    id: str
    status: str
    current: int | None = None
    total: int | None = None


ProgressFn = Callable[[Progress], None]
"""How a transport reports progress; it must return quickly (it only queues the message)."""


class PartialBlob(Protocol):
    """A blob being downloaded into the daemon's content store.

    What was kept of an earlier, interrupted download of the same digest is still there:
    :attr:`offset` says how many bytes, so the transport can resume with ``Range``. Nothing is
    visible under the digest until :meth:`commit` checked it.

    Hashing and writing happen off the event loop (the daemon's sink does them in a thread
    of the download's own, in order): :meth:`write` queues a piece and returns at once with
    an awaitable; :meth:`restart` is ordered after the writes before it and before those
    after it.
    """

    @property
    def offset(self) -> int:
        """Bytes given to :meth:`write` (kept from an interrupted download, plus this
        one's), whether or not the writer has caught up."""

    def write(self, data: bytes) -> Awaitable[None]:
        """Append ``data``; await the result to hear of a failure and to keep the queue of
        unwritten pieces short."""

    def restart(self) -> None:
        """Throw away what is written (the server ignored ``Range``, or a retry starts over)."""

    async def commit(self) -> None:
        """Verify the digest and size and make the blob visible (off the event loop).

        :raises pydockerd.errors.InvalidParameter: the content does not match; the partial
            data is discarded, so a retry starts from zero.
        """


class BlobSink(Protocol):
    """The daemon's content store, as a transport uses it for pulls and pushes."""

    def has(self, digest: str) -> bool:
        """The blob is stored (complete and verified)."""

    def partial(self, descriptor: Descriptor) -> AbstractContextManager[PartialBlob]:
        """A writer for ``descriptor``'s blob. On leaving the block without
        :meth:`PartialBlob.commit`, what was written is kept (not visible), so that a later
        pull resumes it."""

    def open(self, digest: str) -> BinaryIO:
        """A stored blob, for upload. :raises pydockerd.errors.NotFound: not stored."""

    def write(self, data: bytes, digest: str) -> None:
        """Store a small blob (a manifest, a config) held in memory, checked against
        ``digest``."""


@dataclass(frozen=True)
class PullResult:
    """What a pull fetched; every blob named here is in the :class:`BlobSink`.

    :ivar manifest: the image manifest (not the index) of the chosen platform.
    :ivar index: the index or manifest list the reference pointed at, if it was one.
    :ivar config: the config's descriptor.
    :ivar layers: the layer descriptors, bottom first, each stored.
    """

    manifest: ManifestBlob
    config: Descriptor
    layers: Sequence[Descriptor]
    index: ManifestBlob | None = None

    @property
    def digest(self) -> str:
        """The digest the reference resolved to (the index's, when there was one): what
        ``RepoDigests`` records and ``docker pull`` prints."""
        return (self.index or self.manifest).digest


@dataclass(frozen=True)
class PushBlob:
    """A blob to push, with where it may be mounted from.

    :ivar mount_from: repository paths on the *same registry* known to hold this blob (the
        transport tries a cross-repository mount from them before uploading).
    :ivar progress_id: the id progress messages about it carry (the short layer ID); empty
        for the config, which Docker pushes without progress lines.
    """

    descriptor: Descriptor
    mount_from: Sequence[str] = ()
    progress_id: str = ""


@dataclass(frozen=True)
class PushResult:
    """The pushed manifest's digest and size (``<tag>: digest: <digest> size: <size>``)."""

    digest: str
    size: int
