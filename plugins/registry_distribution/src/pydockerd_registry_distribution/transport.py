"""The ``distribution`` registry transport: pull, push, list tags and log in over the OCI
Distribution API, with Docker's progress messages and error texts."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from typing import Any, TypeVar
from urllib.parse import quote

import aiohttp
from pydantic import Field
from pydockerd.plugin import (
    MEDIA_TYPES,
    BlobSink,
    Descriptor,
    DriverConfig,
    DriverContext,
    Forbidden,
    InvalidParameter,
    ManifestBlob,
    NotFound,
    PartialBlob,
    Progress,
    ProgressFn,
    PullResult,
    PushBlob,
    PushResult,
    PydockerdError,
    RegistryCredentials,
    RegistryEndpoint,
    RegistryTransport,
    RemoteRepository,
    Unauthorized,
    Unavailable,
)
from yarl import URL

from pydockerd_registry_distribution.auth import TokenCache, fetch_token
from pydockerd_registry_distribution.client import (
    RegistryError,
    Session,
    Unreachable,
    describe,
)
from pydockerd_registry_distribution.platforms import choose

__all__ = ["Config", "DistributionTransport"]

T = TypeVar("T")

MiB = 1 << 20
CHUNK = MiB
MANIFEST_LIMIT = 4 * MiB
_ACCEPT = ", ".join((*MEDIA_TYPES.MANIFESTS, *MEDIA_TYPES.INDEXES))
_SCHEMA1 = "application/vnd.docker.distribution.manifest.v1+"
_FOREIGN = (
    MEDIA_TYPES.DOCKER_FOREIGN_LAYER,
    "application/vnd.oci.image.layer.nondistributable.v1.tar",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
)
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
_NEXT = re.compile(r'<([^>]*)>\s*;\s*rel="?next"?')
_RANGE = re.compile(r"^(?:bytes=)?0-(\d+)$")
_LOST = frozenset({"BLOB_UPLOAD_INVALID", "BLOB_UPLOAD_UNKNOWN", "RANGE_INVALID"})
_NETWORK = (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, TimeoutError)


class Config(DriverConfig):
    """``[plugins."registry.distribution"]`` of daemon.toml."""

    max_concurrent_downloads: int = Field(3, ge=1)
    """Layers downloaded at once per pull (dockerd's ``max-concurrent-downloads``)."""
    max_concurrent_uploads: int = Field(5, ge=1)
    """Blobs uploaded at once per push (dockerd's ``max-concurrent-uploads``)."""
    max_download_attempts: int = Field(5, ge=1)
    """Tries per request and per blob download, for connection errors, truncated bodies,
    5xx and 429 (dockerd's ``max-download-attempts``)."""
    upload_chunk_size: int = Field(16 * MiB, ge=1)
    """Bytes per ``PATCH`` of a chunked upload."""
    connect_timeout: float = Field(15.0, gt=0)
    """Seconds to open a connection (and finish TLS)."""
    read_timeout: float = Field(60.0, gt=0)
    """Seconds without a byte from the registry before a request is given up (and retried)."""
    retry_base_delay: float = Field(0.5, ge=0)
    """First retry delay, in seconds; doubled for each further retry, with ±50% jitter."""
    retry_max_delay: float = Field(30.0, ge=0)
    """Longest retry delay, ``Retry-After`` included."""
    tag_page_size: int = Field(0, ge=0)
    """Tags asked per page when listing them (``n``); 0 lets the registry choose."""


def short_id(digest: str) -> str:
    """A layer's progress id: the first 12 hex digits of its digest."""
    return digest.partition(":")[2][:12]


def familiar(repository: RemoteRepository) -> str:
    """The repository as Docker writes it in messages (``busybox``, ``127.0.0.1:5000/x``)."""
    if repository.registry == "docker.io":
        return repository.path.removeprefix("library/")
    return repository.name


def _reference_text(repository: RemoteRepository, reference: str) -> str:
    separator = "@" if _DIGEST.fullmatch(reference) else ":"
    return f"{familiar(repository)}{separator}{reference}"


async def _all(coroutines: Sequence[Coroutine[Any, Any, None]]) -> None:
    """Run them together; the first failure cancels the others and is raised."""
    tasks = [asyncio.ensure_future(c) for c in coroutines]
    try:
        await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


async def _read_limited(resp: aiohttp.ClientResponse, limit: int) -> bytes:
    """The whole body, refused (InvalidParameter) past ``limit`` bytes."""
    data = bytearray()
    while chunk := await resp.content.read(limit + 1 - len(data)):
        data += chunk
        if len(data) > limit:
            raise InvalidParameter(f"{resp.url.path}: the registry sent more than {limit} bytes")
    return bytes(data)


def _blob_length(resp: aiohttp.ClientResponse) -> int | None:
    """The whole blob's length as a blob ``GET`` answers it: a 200's ``Content-Length``, the
    ``/<length>`` of a 206's or 416's ``Content-Range``; None when it does not say."""
    if resp.status == 200:
        return resp.content_length
    if resp.status in (206, 416):
        total = resp.headers.get("Content-Range", "").rpartition("/")[2].strip()
        return int(total) if total.isdigit() else None
    return None


class _UploadLost(Exception):
    """An upload session broke and cannot be resumed; a new one starts from zero."""


class _Throttle:
    """Passes a byte-count report on at most ten times a second or each 512 KiB."""

    def __init__(self, send: Callable[[int], None]) -> None:
        self._send = send
        self._bytes = -1
        self._time = 0.0

    def __call__(self, current: int, *, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self._time >= 0.1 or current - self._bytes >= 512 * 1024:
            self._bytes, self._time = current, now
            self._send(current)


class DistributionTransport(RegistryTransport):
    """Registries that speak the OCI Distribution API (Docker Hub, ``registry:2``,
    pydocker-registry), over HTTP/1.1 with aiohttp."""

    name = "distribution"
    description = "OCI Distribution API (Docker Hub, registry:2, pydocker-registry)"
    Config = Config

    def __init__(self, context: DriverContext) -> None:
        super().__init__(context)
        config = context.config
        self.config = config if isinstance(config, Config) else Config()
        self.tokens = TokenCache()
        self._http: aiohttp.ClientSession | None = None

    @property
    def http(self) -> aiohttp.ClientSession:
        """The transport's one HTTP client, made on first use (in the daemon's loop)."""
        if self._http is None or self._http.closed:
            timeout = aiohttp.ClientTimeout(
                total=None,
                connect=self.config.connect_timeout,
                sock_connect=self.config.connect_timeout,
                sock_read=self.config.read_timeout,
            )
            self._http = aiohttp.ClientSession(
                timeout=timeout,
                auto_decompress=False,
                read_bufsize=CHUNK,
                headers={"User-Agent": "pydockerd", "Accept-Encoding": "identity"},
            )
        return self._http

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None

    # ----------------------------------------------------------------------------------
    # Endpoints

    def _session(
        self,
        registry: str,
        endpoint: RegistryEndpoint,
        credentials: RegistryCredentials,
        scopes: Sequence[str],
    ) -> Session:
        return Session(
            self.http, self.config, self.tokens, registry, endpoint, credentials, list(scopes)
        )

    async def _walk(
        self,
        repository: RemoteRepository,
        scopes: Sequence[str],
        operation: Callable[[Session], Awaitable[T]],
        *,
        mirrors: bool,
    ) -> T:
        """Run ``operation`` on the first endpoint that answers ``/v2/``; a mirror that fails
        in any way hands over to the next endpoint."""
        endpoints = [e for e in repository.endpoints if mirrors or not e.mirror]
        if not endpoints:
            raise Unavailable(f"no endpoint for registry {repository.registry}")
        unreachable: list[Unreachable] = []
        for endpoint in endpoints:
            session = self._session(repository.registry, endpoint, repository.credentials, scopes)
            try:
                resp = await session.ping()
                if endpoint.mirror and resp.status not in (200, 401):
                    raise Unreachable(f"mirror {endpoint.url} answered {resp.status} to /v2/")
                return await operation(session)
            except Unreachable as e:
                self.context.logger.info(f"registry endpoint {endpoint.url} failed: {e}")
                unreachable.append(e)
            except PydockerdError as e:
                if not endpoint.mirror:
                    raise
                self.context.logger.info(f"mirror {endpoint.url} failed, next endpoint: {e}")
        raise Unavailable("; ".join(str(e) for e in unreachable))

    # ----------------------------------------------------------------------------------
    # Pull

    async def pull(
        self,
        repository: RemoteRepository,
        reference: str,
        *,
        platform: str,
        blobs: BlobSink,
        progress: ProgressFn,
        resolved: Callable[[PullResult], None] | None = None,
    ) -> PullResult:
        scopes = [f"repository:{repository.path}:pull"]

        async def operation(session: Session) -> PullResult:
            return await self._pull(
                session,
                repository=repository,
                reference=reference,
                platform=platform,
                blobs=blobs,
                progress=progress,
                resolved=resolved,
            )

        return await self._walk(repository, scopes, operation, mirrors=True)

    async def _manifest(
        self, session: Session, repository: RemoteRepository, reference: str
    ) -> ManifestBlob:
        """The manifest ``reference`` names, checked against it when it is a digest."""
        url = f"/v2/{repository.path}/manifests/{reference}"
        async with session.request("GET", url, headers={"Accept": _ACCEPT}) as resp:
            if resp.status != 200:
                raise self._pull_error(await RegistryError.read(resp), repository, reference)
            data = await _read_limited(resp, MANIFEST_LIMIT)
            header_type = resp.headers.get("Content-Type", "").partition(";")[0].strip()
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        if _DIGEST.fullmatch(reference) and digest != reference:
            raise InvalidParameter(
                f"manifest verification failed for digest {reference} (got {digest})"
            )
        try:
            parsed = json.loads(data)
        except ValueError:
            parsed = None
        if not isinstance(parsed, dict):
            raise InvalidParameter(f"manifest {reference} of {repository.name} is not JSON")
        media_type = str(parsed.get("mediaType") or header_type)
        if media_type.startswith(_SCHEMA1) or parsed.get("schemaVersion") == 1:
            raise InvalidParameter(
                f"{_reference_text(repository, reference)} uses the Docker image manifest "
                "version 2, schema 1, which pydockerd does not support: push it again as "
                "an OCI image or a Docker manifest v2, schema 2"
            )
        if media_type not in (*MEDIA_TYPES.MANIFESTS, *MEDIA_TYPES.INDEXES):
            if "manifests" in parsed:
                media_type = MEDIA_TYPES.OCI_INDEX
            elif "layers" in parsed:
                media_type = MEDIA_TYPES.OCI_MANIFEST
            else:
                raise InvalidParameter(f"unsupported manifest media type {media_type!r}")
        return ManifestBlob(media_type, digest, data)

    @staticmethod
    def _pull_error(
        error: RegistryError, repository: RemoteRepository, reference: str
    ) -> PydockerdError:
        if error.unauthorized or error.denied or "NAME_UNKNOWN" in error.codes:
            text = (
                f"pull access denied for {familiar(repository)}, repository does not exist "
                f"or may require 'docker login': {error.cause}"
            )
            return error.exception(text) if error.unauthorized or error.denied else NotFound(text)
        if error.not_found:
            return NotFound(
                f"manifest for {_reference_text(repository, reference)} not found: {error.cause}"
            )
        return error.exception()

    async def _pull(
        self,
        session: Session,
        *,
        repository: RemoteRepository,
        reference: str,
        platform: str,
        blobs: BlobSink,
        progress: ProgressFn,
        resolved: Callable[[PullResult], None] | None,
    ) -> PullResult:
        manifest = await self._manifest(session, repository, reference)
        index = None
        if manifest.media_type in MEDIA_TYPES.INDEXES:
            index = manifest
            chosen = choose(json.loads(index.data), platform)
            manifest = await self._manifest(session, repository, chosen.digest)
            if manifest.media_type not in MEDIA_TYPES.MANIFESTS:
                raise InvalidParameter(
                    f"manifest list entry {chosen.digest} is not an image manifest"
                )
        parsed = json.loads(manifest.data)
        try:
            config = Descriptor.from_json(parsed["config"])
            layers = [Descriptor.from_json(layer) for layer in parsed.get("layers") or ()]
        except (KeyError, TypeError, ValueError) as e:
            raise InvalidParameter(f"invalid image manifest {manifest.digest}: {e}") from None
        for layer in layers:
            if layer.media_type in _FOREIGN or layer.urls:
                raise InvalidParameter(
                    f"layer {layer.digest} is a foreign layer (to be fetched from "
                    f"{', '.join(layer.urls) or 'elsewhere'}); pydockerd does not download "
                    "foreign layers"
                )
        if index is not None:
            blobs.write(index.data, index.digest)
        blobs.write(manifest.data, manifest.digest)
        if not blobs.has(config.digest):
            blobs.write(await self._small_blob(session, repository, config), config.digest)
        result = PullResult(manifest=manifest, config=config, layers=layers, index=index)
        if resolved is not None:
            resolved(result)
        await self._download_layers(session, repository, layers, blobs, progress)
        return result

    async def _small_blob(
        self, session: Session, repository: RemoteRepository, descriptor: Descriptor
    ) -> bytes:
        """A config blob, in memory, verified; a short body is fetched again."""
        if descriptor.size > MANIFEST_LIMIT * 4:
            raise InvalidParameter(f"config {descriptor.digest} is too large")
        url = f"/v2/{repository.path}/blobs/{descriptor.digest}"
        attempts = self.config.max_download_attempts
        for attempt in range(1, attempts + 1):
            try:
                async with session.request("GET", url) as resp:
                    if resp.status != 200:
                        error = await RegistryError.read(resp)
                        raise error.exception(
                            f"error pulling config {descriptor.digest} of "
                            f"{familiar(repository)}: {error.cause}"
                        )
                    data = await _read_limited(resp, descriptor.size)
            except _NETWORK as e:
                if attempt == attempts:
                    raise session.unreachable(e) from e
                await asyncio.sleep(session.delay(attempt))
                continue
            actual = "sha256:" + hashlib.sha256(data).hexdigest()
            if actual != descriptor.digest or len(data) != descriptor.size:
                raise InvalidParameter(f"blob verification failed for {descriptor.digest}")
            return data
        raise AssertionError("unreachable")

    async def _download_layers(
        self,
        session: Session,
        repository: RemoteRepository,
        layers: Sequence[Descriptor],
        blobs: BlobSink,
        progress: ProgressFn,
    ) -> None:
        todo: list[Descriptor] = []
        for layer in layers:
            if blobs.has(layer.digest):
                progress(Progress(short_id(layer.digest), "Already exists"))
            elif layer.digest not in {d.digest for d in todo}:
                todo.append(layer)
                progress(Progress(short_id(layer.digest), "Pulling fs layer"))
        slots = asyncio.Semaphore(self.config.max_concurrent_downloads)
        await _all(
            [
                self._download(
                    session,
                    repository=repository,
                    layer=d,
                    blobs=blobs,
                    progress=progress,
                    slots=slots,
                )
                for d in todo
            ]
        )

    async def _download(
        self,
        session: Session,
        *,
        repository: RemoteRepository,
        layer: Descriptor,
        blobs: BlobSink,
        progress: ProgressFn,
        slots: asyncio.Semaphore,
    ) -> None:
        pid = short_id(layer.digest)
        if slots.locked():
            progress(Progress(pid, "Waiting"))
        async with slots:
            for tries in (1, 2):
                with blobs.partial(layer) as partial:
                    resumed = partial.offset > 0
                    await self._fetch_into(session, repository, layer, partial, progress)
                    progress(Progress(pid, "Verifying Checksum"))
                    try:
                        await partial.commit()
                    except InvalidParameter:
                        if resumed and tries == 1:
                            continue  # what an earlier pull left may be what was wrong
                        raise InvalidParameter(
                            f"filesystem layer verification failed for digest {layer.digest}"
                        ) from None
                progress(Progress(pid, "Download complete"))
                return

    async def _fetch_into(
        self,
        session: Session,
        repository: RemoteRepository,
        layer: Descriptor,
        partial: PartialBlob,
        progress: ProgressFn,
    ) -> None:
        """Download the rest of ``layer`` into ``partial``, resuming with ``Range`` after a
        broken connection or a truncated body."""
        pid = short_id(layer.digest)
        url = f"/v2/{repository.path}/blobs/{layer.digest}"
        report = _Throttle(lambda n: progress(Progress(pid, "Downloading", n, layer.size)))
        attempts = self.config.max_download_attempts
        failures = 0
        while partial.offset < layer.size:
            headers = {"Range": f"bytes={partial.offset}-"} if partial.offset else {}
            try:
                async with session.request("GET", url, headers=headers) as resp:
                    length = _blob_length(resp)
                    if length is not None and length != layer.size:
                        partial.restart()  # no retry can make it the manifest's blob
                        raise InvalidParameter(
                            f"filesystem layer verification failed for digest {layer.digest} "
                            f"(the registry has {length} bytes, the manifest says {layer.size})"
                        )
                    wrong_range = resp.status == 206 and not resp.headers.get(
                        "Content-Range", ""
                    ).startswith(f"bytes {partial.offset}-")
                    if wrong_range or resp.status == 416:
                        partial.restart()  # not the range we asked for: from zero
                        failures += 1
                        if failures >= attempts:
                            raise Unavailable(
                                f"layer {layer.digest}: the registry answered {resp.status} "
                                f"with Content-Range {resp.headers.get('Content-Range')!r} "
                                f"{attempts} times"
                            )
                        continue
                    if resp.status == 200 and partial.offset:
                        partial.restart()  # the server ignores Range
                    elif resp.status not in (200, 206):
                        error = await RegistryError.read(resp)
                        raise error.exception(
                            f"error pulling layer {layer.digest} of {familiar(repository)}: "
                            f"{error.cause}"
                        )
                    report(partial.offset, force=True)
                    await self._copy(resp, partial, layer, report)
            except (*_NETWORK, Unreachable) as e:
                failures += 1
                # Unreachable: the request was tried max_download_attempts times already
                if failures >= attempts or isinstance(e, Unreachable):
                    raise Unavailable(
                        f"downloading layer {layer.digest} from {repository.registry} failed "
                        f"after {attempts} attempts: {describe(e)}"
                    ) from e
                self.context.logger.info(f"layer {pid} broke off at {partial.offset}: {e}")
                await asyncio.sleep(session.delay(failures))
                continue
            if partial.offset < layer.size:  # the body ended early without an error
                failures += 1
                if failures >= attempts:
                    raise Unavailable(f"layer {layer.digest}: the registry sent a short body")
        report(partial.offset, force=True)

    @staticmethod
    async def _copy(
        resp: aiohttp.ClientResponse,
        partial: PartialBlob,
        layer: Descriptor,
        report: _Throttle,
    ) -> None:
        """The body into ``partial`` in pieces of about 1 MiB, each hashed and written off
        the loop while the next one arrives; what arrived before an error is written too, so
        a retry resumes after it."""
        buffer = bytearray()
        pending: Awaitable[None] | None = None
        try:
            async for chunk in resp.content.iter_chunked(CHUNK):
                buffer += chunk
                if partial.offset + len(buffer) > layer.size:
                    raise InvalidParameter(
                        f"filesystem layer verification failed for digest {layer.digest} "
                        f"(the registry sent more than {layer.size} bytes)"
                    )
                if len(buffer) >= CHUNK:
                    piece = bytes(buffer)
                    buffer.clear()  # handed over before the await: never written twice
                    if pending is not None:
                        await pending  # one piece is written while the next one arrives
                    pending = partial.write(piece)
                    report(partial.offset)
            if pending is not None:
                await pending
        finally:
            if buffer and partial.offset + len(buffer) <= layer.size:
                partial.write(bytes(buffer))  # queued after the others, written at close

    # ----------------------------------------------------------------------------------
    # Tags

    async def list_tags(self, repository: RemoteRepository) -> list[str]:
        scopes = [f"repository:{repository.path}:pull"]

        async def operation(session: Session) -> list[str]:
            url: URL | None = URL(session.url + f"/v2/{repository.path}/tags/list")
            assert url is not None
            if self.config.tag_page_size:
                url = url.with_query(n=str(self.config.tag_page_size))
            tags: list[str] = []
            while url is not None:
                async with session.request("GET", url) as resp:
                    if resp.status != 200:
                        error = await RegistryError.read(resp)
                        raise error.exception(
                            f"cannot list the tags of {familiar(repository)}: {error.cause}"
                        )
                    data = json.loads(await resp.read())
                    links = resp.headers.getall("Link", [])
                tags += [str(t) for t in (data.get("tags") or ())]
                found = next((m.group(1) for h in links if (m := _NEXT.search(h))), None)
                url = url.join(URL(found, encoded=True)) if found else None
            return tags

        return await self._walk(repository, scopes, operation, mirrors=True)

    # ----------------------------------------------------------------------------------
    # Push

    async def push(
        self,
        repository: RemoteRepository,
        tag: str | None,
        manifest: ManifestBlob,
        blobs_to_push: Sequence[PushBlob],
        *,
        blobs: BlobSink,
        progress: ProgressFn,
    ) -> PushResult:
        scopes = [f"repository:{repository.path}:pull,push"]
        for blob in blobs_to_push:
            scopes += [
                f"repository:{source}:pull"
                for source in blob.mount_from
                if source != repository.path and f"repository:{source}:pull" not in scopes
            ]

        async def operation(session: Session) -> PushResult:
            slots = asyncio.Semaphore(self.config.max_concurrent_uploads)
            for blob in blobs_to_push:
                if blob.progress_id:
                    progress(Progress(blob.progress_id, "Preparing"))
            await _all(
                [
                    self._push_blob(
                        session,
                        repository=repository,
                        blob=b,
                        blobs=blobs,
                        progress=progress,
                        slots=slots,
                    )
                    for b in blobs_to_push
                ]
            )
            return await self._put_manifest(session, repository, tag, manifest)

        return await self._walk(repository, scopes, operation, mirrors=False)

    @staticmethod
    def _push_error(error: RegistryError, what: str) -> PydockerdError:
        return error.exception(f"{what}: {error.cause}" if what else error.cause)

    async def _push_blob(
        self,
        session: Session,
        *,
        repository: RemoteRepository,
        blob: PushBlob,
        blobs: BlobSink,
        progress: ProgressFn,
        slots: asyncio.Semaphore,
    ) -> None:
        pid = blob.progress_id

        def say(status: str, current: int | None = None, total: int | None = None) -> None:
            if pid:
                progress(Progress(pid, status, current, total))

        if slots.locked():
            say("Waiting")
        digest = blob.descriptor.digest
        base = f"/v2/{repository.path}/blobs"
        async with slots:
            async with session.request("HEAD", f"{base}/{digest}") as resp:
                if resp.status == 200:
                    say("Layer already exists")
                    return
                if resp.status in (401, 403):
                    raise self._push_error(await RegistryError.read(resp), "")
            location = None
            for source in blob.mount_from:
                if source == repository.path:
                    continue
                query = f"?mount={quote(digest)}&from={quote(source, safe='/')}"
                async with session.request("POST", f"{base}/uploads/{query}") as resp:
                    if resp.status == 201:
                        say(f"Mounted from {source}")
                        return
                    if resp.status == 202 and "Location" in resp.headers:
                        location = URL(session.url).join(
                            URL(resp.headers["Location"], encoded=True)
                        )
                        break
            attempts = self.config.max_download_attempts
            for attempt in range(1, attempts + 1):
                if location is None:
                    async with session.request("POST", f"{base}/uploads/") as resp:
                        if resp.status != 202 or "Location" not in resp.headers:
                            raise self._push_error(await RegistryError.read(resp), "")
                        location = URL(session.url).join(
                            URL(resp.headers["Location"], encoded=True)
                        )
                try:
                    await self._upload(session, location, blob.descriptor, blobs, say)
                    break
                except _UploadLost as e:
                    if attempt == attempts:
                        raise Unavailable(f"upload of {digest} failed: {e}") from e
                    self.context.logger.info(f"upload of {digest} lost, starting over: {e}")
                    location = None  # distribution cancels an upload a broken PATCH left
                    await asyncio.sleep(session.delay(attempt))
            say("Pushed")

    async def _upload(
        self,
        session: Session,
        location: URL,
        descriptor: Descriptor,
        blobs: BlobSink,
        say: Callable[..., None],
    ) -> None:
        """Chunked upload: ``PATCH`` pieces of ``upload_chunk_size`` with ``Content-Range``,
        resuming from the ``Range`` the registry reports after a broken connection, then the
        final ``PUT ?digest=``."""
        size = descriptor.size
        report = _Throttle(lambda n: say("Pushing", n, size))
        failures = 0
        offset = 0
        with blobs.open(descriptor.digest) as file:
            fd = file.fileno()

            def body(start: int, end: int) -> Callable[[], AsyncIterator[bytes]]:
                async def pieces() -> AsyncIterator[bytes]:
                    position = start
                    while position < end:
                        # off the loop: a blob that is not in the page cache reads slowly
                        data = await asyncio.to_thread(
                            os.pread, fd, min(CHUNK, end - position), position
                        )
                        if not data:
                            raise InvalidParameter(f"{descriptor.digest} is short")
                        position += len(data)
                        yield data
                        report(position)

                return pieces

            while offset < size:
                end = min(size, offset + self.config.upload_chunk_size)
                headers = {
                    "Content-Type": "application/octet-stream",
                    "Content-Range": f"{offset}-{end - 1}",
                    "Content-Length": str(end - offset),
                }
                try:
                    async with session.request(
                        "PATCH", location, headers=headers, body=body(offset, end), retries=False
                    ) as resp:
                        if resp.status != 202:
                            error = await RegistryError.read(resp)
                            if resp.status in (404, 416) or error.codes & _LOST:
                                raise _UploadLost(error.cause)
                            raise self._push_error(error, f"upload of {descriptor.digest}")
                        location = location.join(URL(resp.headers["Location"], encoded=True))
                        offset = self._uploaded(resp, end)
                except (*_NETWORK, Unreachable) as e:
                    failures += 1
                    if failures >= self.config.max_download_attempts:
                        raise _UploadLost(describe(e)) from e
                    await asyncio.sleep(session.delay(failures))
                    offset = await self._upload_offset(session, location, e)
        separator = "&" if location.raw_query_string else "?"
        final = URL(f"{location}{separator}digest={quote(descriptor.digest)}", encoded=True)
        async with session.request("PUT", final, headers={"Content-Length": "0"}) as resp:
            if resp.status not in (201, 204):
                raise self._push_error(
                    await RegistryError.read(resp), f"upload of {descriptor.digest}"
                )
        report(size, force=True)

    async def _upload_offset(self, session: Session, location: URL, cause: BaseException) -> int:
        """Where an upload stands after a broken ``PATCH`` (``GET`` its status).

        :raises _UploadLost: the registry no longer has it.
        """
        try:
            async with session.request("GET", location) as resp:
                if resp.status == 204:
                    return self._uploaded(resp, 0)
                error = await RegistryError.read(resp)
        except (*_NETWORK, Unreachable) as e:
            raise _UploadLost(describe(e)) from e
        raise _UploadLost(f"{describe(cause)}, then {error.cause}")

    @staticmethod
    def _uploaded(resp: aiohttp.ClientResponse, default: int) -> int:
        """The offset the registry's ``Range: 0-<last>`` says it has."""
        match = _RANGE.match(resp.headers.get("Range", "").strip())
        if not match or match.group(1) == "0":  # distribution writes 0-0 for 0 bytes too
            return default
        return int(match.group(1)) + 1

    async def _put_manifest(
        self,
        session: Session,
        repository: RemoteRepository,
        tag: str | None,
        manifest: ManifestBlob,
    ) -> PushResult:
        digest = "sha256:" + hashlib.sha256(manifest.data).hexdigest()
        url = f"/v2/{repository.path}/manifests/{tag or digest}"
        data = manifest.data
        async with session.request(
            "PUT", url, headers={"Content-Type": manifest.media_type}, body=lambda: data
        ) as resp:
            if resp.status not in (200, 201):
                raise self._push_error(await RegistryError.read(resp), "")
        return PushResult(digest, len(data))

    # ----------------------------------------------------------------------------------
    # Login

    async def login(self, endpoint: RegistryEndpoint, credentials: RegistryCredentials) -> str:
        host = URL(endpoint.url).host_port_subcomponent or endpoint.url
        session = self._session(host, endpoint, credentials, [])
        ping = session.url + "/v2/"
        resp = await session.ping()
        if resp.status == 200:
            return ""
        if resp.status != 401:
            raise Unavailable(f'Get "{ping}": received unexpected HTTP status: {resp.status}')
        identity = ""
        bearer = next((c for c in session.challenges if c.scheme == "bearer"), None)
        if bearer is not None and not credentials.registry_token:
            try:
                token = await fetch_token(
                    self.http, bearer, [], credentials, offline=True, ssl=endpoint.tls_verify
                )
            except Unauthorized as e:
                raise Unauthorized(f'Get "{ping}": {e}') from None
            identity = token.refresh_token
            self.tokens.put(self.tokens.key(bearer, [], credentials), token)
        async with session.request("GET", "/v2/", retries=False) as resp:
            if resp.status == 200:
                return identity
            error = await RegistryError.read(resp)
        if error.unauthorized:
            raise Unauthorized(f'Get "{ping}": {error.cause}')
        if error.denied:
            raise Forbidden(f'Get "{ping}": {error.cause}')
        raise Unavailable(f'Get "{ping}": {error.cause}')
