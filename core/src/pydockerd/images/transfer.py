"""Pull, push and login: what ``POST /images/create?fromImage``, ``/images/{name}/push`` and
``POST /auth`` do, on top of the registry transport.

The daemon's share of the work is the policy: where a registry is reached (its mirrors, and
whether it may be plain HTTP), which credentials go with a request, what manifest a push
sends, and how a pulled image is unpacked and recorded. The transport plugin does the wire
work (see :class:`pydockerd.plugin.RegistryTransport`). Progress reaches the client as the
JSON messages Docker streams, through a :data:`Report` callback.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import gzip
import ipaddress
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from loguru import logger

from pydockerd.distribution import (
    DEFAULT_PLATFORM,
    MEDIA_TYPES,
    Descriptor,
    ManifestBlob,
    Progress,
    PullResult,
    PushBlob,
    RegistryCredentials,
    RegistryEndpoint,
    RemoteRepository,
)
from pydockerd.errors import Forbidden, InvalidParameter, NotFound, Unauthorized, Unavailable
from pydockerd.images.blobsink import ContentBlobSink
from pydockerd.images.reference import DEFAULT_DOMAIN, DEFAULT_TAG, Reference
from pydockerd.images.service import ImageService, LayerProgress, short_id
from pydockerd.images.store import ImageRecord, LayerRecord, chain_ids
from pydockerd.plugin import RegistryTransport
from pydockerd.settings import RegistrySettings

__all__ = [
    "HUB_ENDPOINT",
    "Report",
    "Transfers",
    "decode_json_header",
    "decode_registry_auth",
    "is_insecure_registry",
    "registry_info",
    "registry_of_server_address",
]

HUB_ENDPOINT = "https://registry-1.docker.io"
"""Where Docker Hub's registry API is served (the ``docker.io`` domain of references)."""
_HUB_ALIASES = ("docker.io", "index.docker.io", "registry-1.docker.io")

Report = Callable[[dict[str, Any]], None]
"""Queues one JSON message of the progress stream; returns at once."""

_GZIP_LEVEL = 1
"""Layers compressed for a push trade size for speed (the transfer is mostly local)."""


def decode_json_header(header: str | None, name: str) -> dict[str, Any]:
    """A header holding base64url JSON (``X-Registry-Auth``, ``X-Registry-Config``), accepted
    too with the standard alphabet and without padding, as clients vary; ``{}`` when absent.

    :raises InvalidParameter: the header is not base64 of a JSON object.
    """
    if not header or not header.strip():
        return {}
    text = header.strip()
    padded = text + "=" * (-len(text) % 4)
    try:
        raw = base64.b64decode(padded.replace("-", "+").replace("_", "/"), validate=True)
        data = json.loads(raw)
    except (binascii.Error, ValueError) as e:
        raise InvalidParameter(f"invalid {name} header: {e}") from None
    if not isinstance(data, dict):
        raise InvalidParameter(f"invalid {name} header: not a JSON object")
    return data


def decode_registry_auth(header: str | None) -> RegistryCredentials:
    """The credentials of an ``X-Registry-Auth`` header (see :func:`decode_json_header`)."""
    return credentials_from_json(decode_json_header(header, "X-Registry-Auth"))


def credentials_from_json(data: dict[str, Any]) -> RegistryCredentials:
    """An Engine API ``AuthConfig`` (``username``, ``password``, ``auth``, ``identitytoken``,
    ``registrytoken``; keys in any case) as credentials."""
    fields = {str(key).lower(): value for key, value in data.items() if isinstance(value, str)}
    username, password = fields.get("username", ""), fields.get("password", "")
    if not username and fields.get("auth"):
        try:
            pair = base64.b64decode(fields["auth"]).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise InvalidParameter("invalid auth configuration: auth is not base64") from None
        username, _, password = pair.partition(":")
    return RegistryCredentials(
        username=username,
        password=password,
        identity_token=fields.get("identitytoken", ""),
        registry_token=fields.get("registrytoken", ""),
    )


def registry_of_server_address(address: str) -> str:
    """The registry a login's ``serveraddress`` names: ``https://index.docker.io/v1/`` and
    the Hub's other names are ``docker.io``; a URL's scheme and path are dropped."""
    text = address.strip()
    if not text:
        return DEFAULT_DOMAIN
    text = text.split("://", 1)[-1].split("/", 1)[0]
    return DEFAULT_DOMAIN if text in _HUB_ALIASES else text


def _split_host_port(registry: str) -> tuple[str, str]:
    if registry.startswith("["):
        host, _, rest = registry[1:].partition("]")
        return host, rest.removeprefix(":")
    host, _, port = registry.partition(":")
    return host, port


def is_insecure_registry(registry: str, settings: RegistrySettings) -> bool:
    """Whether ``registry`` (``host[:port]``) may be reached without TLS verification and over
    plain HTTP: loopback always, else when ``[registries] insecure`` lists it by name or by a
    CIDR holding its address (names are not resolved for CIDRs)."""
    host, _ = _split_host_port(registry)
    if host == "localhost":
        return True
    try:
        address: ipaddress.IPv4Address | ipaddress.IPv6Address | None = ipaddress.ip_address(host)
    except ValueError:
        address = None
    if address is not None and address.is_loopback:
        return True
    for item in settings.insecure:
        if "/" in item:
            if address is not None and address in ipaddress.ip_network(item, strict=False):
                return True
        elif item in (registry, host):
            return True
    return False


def registry_info(settings: RegistrySettings) -> dict[str, Any]:
    """``RegistryConfig`` of ``GET /info`` (``docker info`` prints its insecure registries
    and mirrors)."""
    cidrs = ["127.0.0.0/8", "::1/128"] + [item for item in settings.insecure if "/" in item]
    hub_mirrors = [url for name in _HUB_ALIASES for url in settings.mirrors.get(name, [])]
    configs: dict[str, Any] = {
        DEFAULT_DOMAIN: {
            "Name": DEFAULT_DOMAIN,
            "Mirrors": [f"{url}/" for url in hub_mirrors],
            "Secure": True,
            "Official": True,
        }
    }
    named = [item for item in settings.insecure if "/" not in item]
    for registry in [*named, *(r for r in settings.mirrors if r not in _HUB_ALIASES)]:
        entry = configs.setdefault(
            registry, {"Name": registry, "Mirrors": [], "Secure": True, "Official": False}
        )
        entry["Secure"] = not is_insecure_registry(registry, settings)
        entry["Mirrors"] = [f"{url}/" for url in settings.mirrors.get(registry, [])]
    return {
        "AllowNondistributableArtifactsCIDRs": [],
        "AllowNondistributableArtifactsHostnames": [],
        "InsecureRegistryCIDRs": cidrs,
        "IndexConfigs": configs,
        "Mirrors": [f"{url}/" for url in hub_mirrors],
    }


@dataclass(frozen=True)
class _PushSource:
    """One local image to push under one tag (or under its digest, when ``tag`` is None)."""

    image: ImageRecord
    tag: str | None


class Transfers:
    """Pulls, pushes and logins of one daemon."""

    def __init__(
        self, images: ImageService, transport: RegistryTransport, settings: RegistrySettings
    ) -> None:
        self.images = images
        self.transport = transport
        self.settings = settings

    # -- endpoints -----------------------------------------------------------------------

    def endpoints(self, registry: str, *, push: bool = False) -> list[RegistryEndpoint]:
        """Where ``registry`` is reached, in the order to try: its mirrors (pulls only),
        then the registry; an insecure one over HTTPS without verification, then HTTP."""
        found: list[RegistryEndpoint] = []
        if not push:
            found += [RegistryEndpoint(url, mirror=True) for url in self._mirrors(registry)]
        if registry == DEFAULT_DOMAIN:
            found.append(RegistryEndpoint(HUB_ENDPOINT))
        elif is_insecure_registry(registry, self.settings):
            found.append(RegistryEndpoint(f"https://{registry}", tls_verify=False))
            found.append(RegistryEndpoint(f"http://{registry}"))
        else:
            found.append(RegistryEndpoint(f"https://{registry}"))
        return found

    def _mirrors(self, registry: str) -> list[str]:
        names = _HUB_ALIASES if registry == DEFAULT_DOMAIN else (registry,)
        return [url for name in names for url in self.settings.mirrors.get(name, [])]

    def repository(
        self, ref: Reference, credentials: RegistryCredentials, *, push: bool = False
    ) -> RemoteRepository:
        return RemoteRepository(
            registry=ref.domain,
            path=ref.path,
            endpoints=self.endpoints(ref.domain, push=push),
            credentials=credentials,
        )

    # -- login ---------------------------------------------------------------------------

    async def login(self, server_address: str, credentials: RegistryCredentials) -> str:
        """Check credentials against a registry; the identity token it gave, or ``""``.

        Endpoints that cannot be reached are skipped; the last such error is raised when
        none can be.
        """
        registry = registry_of_server_address(server_address)
        unreachable: Unavailable | None = None
        for endpoint in self.endpoints(registry, push=True):
            try:
                return await self.transport.login(endpoint, credentials)
            except Unavailable as e:
                unreachable = e
        assert unreachable is not None
        raise unreachable

    # -- pull ----------------------------------------------------------------------------

    async def pull(
        self,
        ref: Reference,
        credentials: RegistryCredentials,
        report: Report,
        *,
        platform: str = "",
    ) -> str:
        """Pull ``ref`` (one tag or digest) and record it; the image ID.

        The first message (``Pulling from <path>``) is reported only once the transport
        reports something, so that an error before it (no such manifest, no access) reaches
        the client as a plain HTTP error, as Docker's does.
        """
        image_id, updated = await self._pull(ref, credentials, report, platform=platform)
        shown = Reference(ref.domain, ref.path, ref.tag, None) if ref.tag else ref
        _report_status(report, shown.familiar(), updated)
        return image_id

    async def _pull(
        self, ref: Reference, credentials: RegistryCredentials, report: Report, *, platform: str
    ) -> tuple[str, bool]:
        """A pull without its ``Status:`` line; the image ID, and whether the reference
        moved to it."""
        reference = ref.digest or ref.tag or DEFAULT_TAG
        started = False
        unpacker = _Unpacker(self.images, report)

        def announce() -> None:
            nonlocal started
            if not started:
                started = True
                report({"status": f"Pulling from {ref.path}", "id": reference})

        def progress(update: Progress) -> None:
            announce()
            report(_message(update))
            unpacker.wake()  # a layer may be stored now

        blobs = ContentBlobSink(self.images.content)  # holds what it stores until recorded
        try:
            try:
                result = await self.transport.pull(
                    self.repository(ref, credentials),
                    reference,
                    platform=platform or DEFAULT_PLATFORM,
                    blobs=blobs,
                    progress=progress,
                    resolved=unpacker.start,
                )
            except (Unauthorized, Forbidden) as e:
                # moby answers a refused pull as "not found" (its notFoundError), never 401:
                # on a 401 the docker CLI would stop to ask for a login on stdin
                raise NotFound(e.message) from None
            announce()  # when nothing was reported: every blob was there already
            await unpacker.finish()
            return await self._record_pull(ref, result, report, unpacker.layer_progress)
        except BaseException:
            await unpacker.abandon()
            raise
        finally:
            blobs.release()

    async def _record_pull(
        self, ref: Reference, result: PullResult, report: Report, on_layer: LayerProgress
    ) -> tuple[str, bool]:
        """Record the pulled image; ``on_layer`` hears the layers that are unpacked only now
        (all of them, for a transport that does not call ``resolved``)."""
        config_digest = result.config.digest
        blobs = [layer.digest for layer in result.layers]
        tagged = Reference(ref.domain, ref.path, ref.tag, None) if ref.tag else None
        by_digest = Reference(ref.domain, ref.path, None, result.digest)
        before = self.images.store.lookup(str(tagged or by_digest))
        async with self.images.lock:
            image_id, moved = await self.images.add_image(
                config_digest,
                blobs,
                refs=[r for r in (tagged, by_digest) if r is not None],
                manifest=result.manifest.digest,
                on_layer=on_layer,
            )
            self.images.store.add_blob_sources(blobs, ref.domain, ref.path)
        for moved_ref, _old in moved:
            logger.info("{} moved to image {}", moved_ref.familiar(), short_id(image_id))
        report({"status": f"Digest: {result.digest}"})
        shown = (tagged or by_digest).familiar()
        self.images.emit("image", "pull", str(tagged or by_digest), name=shown)
        return image_id, before != image_id

    async def pull_all_tags(
        self, ref: Reference, credentials: RegistryCredentials, report: Report, *, platform: str
    ) -> None:
        """``docker pull -a``: every tag of the repository."""
        try:
            tags = await self.transport.list_tags(self.repository(ref, credentials))
        except (Unauthorized, Forbidden) as e:
            raise NotFound(e.message) from None
        if not tags:
            raise NotFound(f"no tags found for {ref.familiar_name}")
        updated = False
        for tag in sorted(tags):
            tagged = Reference(ref.domain, ref.path, tag, None)
            updated |= (await self._pull(tagged, credentials, report, platform=platform))[1]
        _report_status(report, ref.familiar_name, updated)  # once, as moby's pullRepository

    # -- push ----------------------------------------------------------------------------

    def _push_sources(self, ref: Reference, *, all_tags: bool) -> list[_PushSource]:
        """The local images a push sends: ``ref``'s tag, or every tag of its repository."""
        store = self.images.store
        if not all_tags:
            try:
                image = self.images.resolve(str(ref))
            except NotFound:
                raise NotFound(
                    f"An image does not exist locally with the tag: {ref.familiar()}"
                ) from None
            return [_PushSource(image, ref.tag)]
        sources: list[_PushSource] = []
        for image_id, refs in store.all_refs().items():
            for text, kind in refs:
                name, _, tag = text.rpartition(":")
                if kind == "tag" and name == ref.name:
                    record = store.image(image_id)
                    if record is not None:
                        sources.append(_PushSource(record, tag))
        if not sources:
            raise NotFound(f"An image does not exist locally with the tag: {ref.familiar_name}")
        return sorted(sources, key=lambda source: source.tag or "")

    async def push(
        self,
        ref: Reference,
        credentials: RegistryCredentials,
        report: Report,
        *,
        all_tags: bool = False,
    ) -> None:
        """Push ``ref``'s image (or, with ``all_tags``, every tag of its repository)."""
        if ref.digest is not None:
            raise InvalidParameter("cannot push a digest reference")
        if ref.domain == "":
            raise InvalidParameter(f"invalid repository {ref.name}")
        sources = self._push_sources(ref, all_tags=all_tags)
        report({"status": f"The push refers to repository [{ref.name}]"})
        repository = self.repository(ref, credentials, push=True)
        for source in sources:
            blobs = ContentBlobSink(self.images.content)  # an rmi meanwhile keeps them
            try:
                manifest, to_push = await self._manifest_for_push(source.image, ref)
                for blob in to_push:
                    blobs.hold(blob.descriptor.digest)
                result = await self.transport.push(
                    repository,
                    source.tag,
                    manifest,
                    to_push,
                    blobs=blobs,
                    progress=lambda update: report(_message(update)),
                )
            finally:
                blobs.release()
            with self.images.store.transaction() as db:
                self.images.store.set_ref(
                    db, f"{ref.name}@{result.digest}", source.image.id, "digest"
                )
            self.images.store.add_blob_sources(
                [p.descriptor.digest for p in to_push], ref.domain, ref.path
            )
            label = source.tag or result.digest
            report(
                {
                    "status": f"{label}: digest: {result.digest} size: {result.size}",
                    "progressDetail": {},
                }
            )
            report(
                {
                    "progressDetail": {},
                    "aux": {"Tag": source.tag or "", "Digest": result.digest, "Size": result.size},
                }
            )
            pushed = f"{ref.name}:{source.tag}" if source.tag else f"{ref.name}@{result.digest}"
            self.images.emit("image", "push", pushed, name=pushed)

    async def _manifest_for_push(
        self, image: ImageRecord, ref: Reference
    ) -> tuple[ManifestBlob, list[PushBlob]]:
        """The manifest to push and the blobs it needs, bottom layer first, config last.

        The manifest the image came with is pushed unchanged when all its blobs are here (so
        the digest survives a pull and push); otherwise one is made: Docker schema 2 with
        gzip layers, compressing (once, kept) the layers stored uncompressed.
        """
        layers = self.images.layers_of(image)
        content = self.images.content
        manifest = self._stored_manifest(image)
        if manifest is None:
            manifest = await self._make_manifest(image, layers)
            layers = self.images.layers_of(image)  # their blobs may be compressed now
        data = json.loads(manifest.data)
        by_blob = {layer.blob: layer for layer in layers}
        to_push: list[PushBlob] = []
        for item in data.get("layers") or []:
            descriptor = Descriptor.from_json(item)
            if descriptor.urls:  # foreign layers are not pushed, as Docker does
                continue
            layer = by_blob.get(descriptor.digest)
            shown = short_id(layer.diff_id) if layer else _short(descriptor.digest)
            to_push.append(
                PushBlob(
                    descriptor,
                    mount_from=self.images.store.blob_sources(
                        descriptor.digest, ref.domain, exclude=ref.path
                    ),
                    progress_id=shown,
                )
            )
        config = Descriptor.from_json(data["config"])
        to_push.append(PushBlob(config))
        assert content.has(config.digest)
        return manifest, to_push

    def _stored_manifest(self, image: ImageRecord) -> ManifestBlob | None:
        content = self.images.content
        if image.manifest is None or not content.has(image.manifest):
            return None
        raw = content.read(image.manifest)
        try:
            data = json.loads(raw)
            media_type = str(data.get("mediaType") or MEDIA_TYPES.OCI_MANIFEST)
            digests = [data["config"]["digest"]] + [
                item["digest"] for item in data.get("layers") or [] if not item.get("urls")
            ]
        except (ValueError, KeyError, TypeError):
            return None
        if media_type not in MEDIA_TYPES.MANIFESTS or data["config"]["digest"] != image.id:
            return None
        if not all(content.has(digest) for digest in digests):
            return None
        return ManifestBlob(media_type, image.manifest, raw)

    async def _make_manifest(
        self, image: ImageRecord, layers: Sequence[LayerRecord]
    ) -> ManifestBlob:
        content = self.images.content
        # each layer in a thread, several at once (zlib and hashlib release the GIL)
        slots = asyncio.Semaphore(os.cpu_count() or 1)
        once: dict[str | None, asyncio.Task[str]] = {}  # a blob two layers share: once

        async def compressed(layer: LayerRecord) -> str:
            async with slots:
                return await self._compressed_blob(layer)

        for layer in layers:
            if layer.blob not in once:
                once[layer.blob] = asyncio.ensure_future(compressed(layer))
        try:
            blobs = await asyncio.gather(*(once[layer.blob] for layer in layers))
        finally:
            for task in once.values():
                task.cancel()  # one failed: the others stop waiting for a slot
        descriptors = [
            {"mediaType": MEDIA_TYPES.DOCKER_LAYER_GZIP, "size": content.size(blob), "digest": blob}
            for blob in blobs
        ]
        manifest = {
            "schemaVersion": 2,
            "mediaType": MEDIA_TYPES.DOCKER_MANIFEST,
            "config": {
                "mediaType": MEDIA_TYPES.DOCKER_CONFIG,
                "size": content.size(image.id),
                "digest": image.id,
            },
            "layers": descriptors,
        }
        raw = json.dumps(manifest, indent=3).encode()
        digest = content.write(raw)
        self.images.store.set_manifest(image.id, digest)
        return ManifestBlob(MEDIA_TYPES.DOCKER_MANIFEST, digest, raw)

    async def _compressed_blob(self, layer: LayerRecord) -> str:
        """The digest of ``layer``'s gzip blob, compressing a stored uncompressed tar once
        (the layer then keeps the compressed blob: the same content, smaller)."""
        content = self.images.content
        if layer.blob is None:
            raise NotFound(f"layer {layer.diff_id} has no stored content to push")
        with content.open(layer.blob) as f:
            magic = f.read(2)
        if magic == b"\x1f\x8b":
            return layer.blob
        blob = await asyncio.to_thread(self._gzip_blob, layer.blob)
        self.images.store.set_layer_blob(layer.chain_id, blob)
        return blob

    def _gzip_blob(self, digest: str) -> str:
        content = self.images.content
        with content.open(digest) as source, content.ingest() as writer:
            with gzip.GzipFile(
                fileobj=_Writer(writer), mode="wb", compresslevel=_GZIP_LEVEL, mtime=0
            ) as out:
                while chunk := source.read(1 << 20):
                    out.write(chunk)
            return writer.commit()


class _Unpacker:
    """Unpacks a pull's layers, bottom up, each as soon as it is stored, while the next ones
    download (as Docker extracts during a pull). What it unpacked for a pull that then failed
    is removed unless something else stands on it."""

    def __init__(self, images: ImageService, report: Report) -> None:
        self.images = images
        self.report = report
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._chains: set[str] = set()
        self._existing: set[str] = set()
        self._downloaded = False

    def start(self, result: PullResult) -> None:
        """The transport resolved the image (its config is stored): begin."""
        if self._task is None:
            self._existing = {layer.chain_id for layer in self.images.store.layers()}
            self._task = asyncio.ensure_future(self._run(result))

    def wake(self) -> None:
        self._wake.set()

    async def _run(self, result: PullResult) -> None:
        try:
            diff_ids = list(self.images.config(result.config.digest)["rootfs"]["diff_ids"])
        except (ValueError, KeyError, TypeError):
            return  # add_image names what is wrong with the config
        blobs = [layer.digest for layer in result.layers]
        if len(diff_ids) != len(blobs):
            return
        self._chains = set(chain_ids(diff_ids))
        content = self.images.content
        for count, blob in enumerate(blobs, start=1):
            while not content.has(blob):
                if self._downloaded:  # the transport is done and did not store it
                    raise NotFound(f"blob {blob} of the pull is not stored")
                self._wake.clear()
                if not content.has(blob):
                    await self._wake.wait()
            async with self.images.lock:
                await self.images.ensure_layers(
                    diff_ids[:count], blobs[:count], self.layer_progress
                )

    def layer_progress(self, blob: str, status: str) -> None:
        """``Extracting`` and ``Pull complete`` of a layer, as Docker's progress lines."""
        self.report({"status": status, "progressDetail": {}, "id": _short(blob)})

    async def finish(self) -> None:
        """Every layer is downloaded: wait for the last ones to be unpacked."""
        if self._task is not None:
            self._downloaded = True
            self._wake.set()
            await self._task

    async def abandon(self) -> None:
        """The pull failed: stop, and remove the layers it unpacked that nothing uses."""
        if self._task is None:
            return
        self._task.cancel()
        with contextlib.suppress(BaseException):
            await self._task
        mine = self._chains - self._existing
        if mine:
            async with self.images.lock:
                await self.images.remove_unused_layers(mine)


class _Writer:
    """A file-like ``write`` over an :class:`~pydockerd.images.content.IngestWriter` (for
    :class:`gzip.GzipFile`, which wants a file object)."""

    def __init__(self, writer: Any) -> None:
        self._writer = writer

    def write(self, data: bytes) -> int:
        return int(self._writer.write(bytes(data)))

    def flush(self) -> None:
        pass


def _report_status(report: Report, shown: str, updated: bool) -> None:
    """A pull's last line (moby's writeStatus)."""
    if updated:
        report({"status": f"Status: Downloaded newer image for {shown}"})
    else:
        report({"status": f"Status: Image is up to date for {shown}"})


def _short(digest: str) -> str:
    return digest.partition(":")[2][:12]


def _message(update: Progress) -> dict[str, Any]:
    """A progress update as the Engine API's JSON message."""
    detail: dict[str, int] = {}
    if update.current is not None:
        detail["current"] = update.current
        if update.total:
            detail["total"] = update.total
    message: dict[str, Any] = {"status": update.status, "progressDetail": detail}
    if update.id:
        message["id"] = update.id
    return message
