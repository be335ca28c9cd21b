"""The OCI Distribution API (v1.1) as an aiohttp application: :func:`make_app`.

Every handler first turns the request into the :class:`~pydocker_registry.access.Access` it
needs and asks the authorizer; errors leave as :class:`~pydocker_registry.errors.RegistryError`
and become the spec's JSON body in :func:`_errors`. Every response carries
``Docker-Distribution-API-Version: registry/2.0``.

Choices the spec leaves open: a mount without ``from`` is not automatic (202 and a session);
``DELETE`` of a blob unlinks it from the repository (garbage collection frees the bytes);
manifest PUT by digest accepts ``?tag=`` (repeatable) to tag it too.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import re
import time
from collections.abc import AsyncIterable, Awaitable, Callable
from typing import Any
from urllib.parse import urlencode

from aiohttp import web
from loguru import logger

from pydocker_registry import gc
from pydocker_registry.access import Access, AccessDenied, AllowAll, Authorizer
from pydocker_registry.errors import Code, ErrorItem, RegistryError
from pydocker_registry.manifests import (
    DOCKER_LIST,
    MAX_MANIFEST_SIZE,
    OCI_INDEX,
    OCI_MANIFEST,
    Manifest,
    check_digest,
    check_name,
    is_digest,
    is_tag,
    new_hasher,
    parse_manifest,
    platform_manifest,
)
from pydocker_registry.storage import KeyNotFound, StorageBackend
from pydocker_registry.store import RegistryStore
from pydocker_registry.uploads import Uploads

__all__ = ["AUTHORIZER", "STORAGE", "STORE", "UPLOADS", "make_app"]

STORAGE = web.AppKey("storage", StorageBackend)
AUTHORIZER = web.AppKey("authorizer", Authorizer)
STORE = web.AppKey("store", RegistryStore)
UPLOADS = web.AppKey("uploads", Uploads)
_DELETE_ENABLED = web.AppKey("delete_enabled", bool)
_ACCESS = web.RequestKey("access", list[Access])

API_VERSION = ("Docker-Distribution-API-Version", "registry/2.0")
_UPLOAD_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
# ASCII digits, at most 19 (the largest offset a file may have): int() of a longer string
# is slow, and past 4300 digits an error.
_CONTENT_RANGE = re.compile(r"(?:bytes[ =])?([0-9]{1,19})-([0-9]{1,19})(?:/(?:[0-9]+|\*))?")
_PAGE_SIZE = re.compile(r"[0-9]+")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def make_app(
    storage: StorageBackend,
    authorizer: Authorizer = AllowAll(),  # noqa: B008 - stateless, shared safely
    *,
    delete_enabled: bool = True,
    max_blob_size: int | None = None,
) -> web.Application:
    """The registry's application on ``storage`` (which the caller owns and closes).

    :param delete_enabled: DELETE of blobs and manifests; when False they answer 405
        ``UNSUPPORTED``, as the reference registry does by default.
    :param max_blob_size: refuse blobs bigger than this many bytes (413 ``SIZE_INVALID``).
    """
    app = web.Application(middlewares=[_errors])
    store = RegistryStore(storage)
    app[STORAGE] = storage
    app[AUTHORIZER] = authorizer
    app[STORE] = store
    app[UPLOADS] = Uploads(store, max_blob_size=max_blob_size)
    app[_DELETE_ENABLED] = delete_enabled
    app.on_response_prepare.append(_api_version_header)
    name = "/v2/{name:.+}"
    app.router.add_get("/v2/", _base)
    app.router.add_get("/v2/_catalog", _catalog)
    app.router.add_get(f"{name}/tags/list", _tags)
    app.router.add_get(f"{name}/referrers/{{digest}}", _referrers)
    app.router.add_get(f"{name}/manifests/{{reference}}", _get_manifest)
    app.router.add_put(f"{name}/manifests/{{reference}}", _put_manifest)
    app.router.add_delete(f"{name}/manifests/{{reference}}", _delete_manifest)
    app.router.add_post(f"{name}/blobs/uploads/", _start_upload)
    upload = f"{name}/blobs/uploads/{{upload_id}}"
    app.router.add_get(upload, _upload_status)
    app.router.add_patch(upload, _patch_upload)
    app.router.add_put(upload, _finish_upload)
    app.router.add_delete(upload, _cancel_upload)
    app.router.add_get(f"{name}/blobs/{{digest}}", _get_blob)
    app.router.add_delete(f"{name}/blobs/{{digest}}", _delete_blob)
    return app


# --- plumbing -------------------------------------------------------------------------


async def _api_version_header(request: web.Request, response: web.StreamResponse) -> None:
    response.headers[API_VERSION[0]] = API_VERSION[1]


def _error_response(error: RegistryError) -> web.Response:
    response = web.json_response(error.to_json(), status=error.status)
    response.headers.update(error.headers)
    return response


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except RegistryError as e:
        return _error_response(e)
    except AccessDenied as e:
        detail = [{"scope": a.scope()} for a in request.get(_ACCESS, [])] or None
        error = RegistryError(e.status, [ErrorItem(e.code, str(e), detail)])
        if e.challenge:
            error.headers["WWW-Authenticate"] = e.challenge
        return _error_response(error)
    except web.HTTPMethodNotAllowed as e:
        error = RegistryError.of(Code.UNSUPPORTED, f"{request.method} is not allowed here")
        error.headers["Allow"] = ", ".join(sorted(e.allowed_methods))
        return _error_response(error)
    except web.HTTPNotFound:
        return _error_response(RegistryError.of(Code.UNSUPPORTED, "no such endpoint", status=404))
    except web.HTTPException:
        raise
    except (ConnectionError, TimeoutError):
        raise  # the client went away (or stalled): nobody to answer
    except Exception as e:
        logger.opt(exception=e).error("{} {} failed", request.method, request.path)
        return _error_response(RegistryError.of(Code.UNKNOWN, "internal error (logged)"))


async def _authorize(request: web.Request, access: list[Access]) -> None:
    request[_ACCESS] = access
    await request.app[AUTHORIZER].authorize(request, access)


async def _repository(request: web.Request, *actions: str, source: str | None = None) -> str:
    """The request's repository name, checked, once the authorizer allows ``actions`` on it
    (and pull on ``source``, a mount's origin)."""
    name = check_name(request.match_info["name"])
    access = [Access("repository", name, frozenset(actions))]
    if source is not None:
        access.append(Access("repository", check_name(source), frozenset({"pull"})))
    await _authorize(request, access)
    return name


def _check_delete_enabled(request: web.Request) -> None:
    if not request.app[_DELETE_ENABLED]:
        raise RegistryError.of(Code.UNSUPPORTED, "deletes are disabled on this registry")


def _page(request: web.Request, items: list[str], key: str) -> web.Response:
    """Sorted ``items`` after ``last``, at most ``n`` of them (all without ``n``), with a
    ``Link`` to the next page when some are left."""
    last = request.query.get("last")
    if last:
        items = [i for i in items if i > last]
    raw_n = request.query.get("n")
    if raw_n is not None and not _PAGE_SIZE.fullmatch(raw_n):
        raise RegistryError.of(Code.PAGINATION_NUMBER_INVALID, detail={"n": raw_n})
    n = len(items) if raw_n is None or len(raw_n) > 18 else int(raw_n)
    page = items[:n]
    body: dict[str, Any] = {key: page}
    if key == "tags":
        body = {"name": request.match_info["name"], "tags": page}
    response = web.json_response(body)
    if len(items) > n and page:
        query = urlencode({"n": n, "last": page[-1]})
        response.headers["Link"] = f'<{request.path}?{query}>; rel="next"'
    return response


def _upload_headers(name: str, upload_id: str, size: int) -> dict[str, str]:
    return {
        "Location": f"/v2/{name}/blobs/uploads/{upload_id}",
        "Range": f"0-{max(size - 1, 0)}",
        "Docker-Upload-UUID": upload_id,
    }


def _blob_created(name: str, digest: str) -> web.Response:
    headers = {"Location": f"/v2/{name}/blobs/{digest}", "Docker-Content-Digest": digest}
    return web.Response(status=201, headers=headers)


def _upload_id(request: web.Request) -> str:
    upload_id = request.match_info["upload_id"]
    if not _UPLOAD_ID.fullmatch(upload_id):
        raise RegistryError.of(Code.BLOB_UPLOAD_UNKNOWN, detail={"uuid": upload_id})
    return upload_id


def _body(request: web.Request) -> AsyncIterable[bytes]:
    return request.content.iter_any()


def _byte_range(request: web.Request, size: int) -> tuple[int, int] | None:
    """The ``Range`` asked for as (start, stop), or None for the whole blob; 416 when it
    cannot be satisfied."""
    if "Range" not in request.headers:
        return None
    try:
        rng = request.http_range
        start, stop = rng.start, rng.stop
        if start is None:
            raise ValueError("no range")
        if start < 0:
            start = max(size + start, 0)
        stop = size if stop is None else min(stop, size)
        if start >= size:
            raise ValueError("past the end")
    except ValueError:
        error = RegistryError.of(Code.RANGE_INVALID, f"the blob has {size} bytes")
        error.headers["Content-Range"] = f"bytes */{size}"
        raise error from None
    return start, stop


# --- base, catalog, tags, referrers ---------------------------------------------------


async def _base(request: web.Request) -> web.Response:
    await _authorize(request, [])
    return web.json_response({})


async def _catalog(request: web.Request) -> web.Response:
    await _authorize(request, [Access("registry", "catalog", frozenset({"*"}))])
    return _page(request, await request.app[STORE].repositories(), "repositories")


async def _tags(request: web.Request) -> web.Response:
    name = await _repository(request, "pull")
    tags = await request.app[STORE].tags(name)
    if tags is None:
        raise RegistryError.of(Code.NAME_UNKNOWN, detail={"name": name})
    return _page(request, tags, "tags")


async def _referrers(request: web.Request) -> web.Response:
    name = await _repository(request, "pull")
    digest = check_digest(request.match_info["digest"])
    entries = await request.app[STORE].referrers(name, digest)
    headers = {}
    artifact_type = request.query.get("artifactType")
    if artifact_type is not None:
        entries = [e for e in entries if e.get("artifactType") == artifact_type]
        headers["OCI-Filters-Applied"] = "artifactType"
    entries.sort(key=lambda e: str(e["digest"]))
    body = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}
    headers["Content-Type"] = OCI_INDEX
    return web.Response(body=json.dumps(body).encode(), headers=headers)


# --- manifests ------------------------------------------------------------------------


async def _resolve(store: RegistryStore, name: str, reference: str) -> str:
    """The digest a tag or digest reference names (the digest unchecked for existence)."""
    if is_digest(reference):
        return check_digest(reference)
    if not is_tag(reference):
        raise RegistryError.of(Code.MANIFEST_INVALID, f"invalid tag {reference!r}")
    digest = await store.resolve_tag(name, reference)
    if digest is None:
        raise RegistryError.of(Code.MANIFEST_UNKNOWN, detail={"tag": reference})
    return digest


def _accepted(request: web.Request) -> set[str] | None:
    """The media types the request's ``Accept`` headers name, or None when they name none
    (or ``*/*``): the client takes whatever is stored."""
    types = {
        item.partition(";")[0].strip().lower()
        for value in request.headers.getall("Accept", [])
        for item in value.split(",")
    } - {""}
    if not types or types & {"*/*", "application/*"}:
        return None
    return types


async def _get_manifest(request: web.Request) -> web.Response:
    """The manifest, negotiated as distribution does for a client whose ``Accept`` names
    media types: an OCI manifest or index it does not accept is MANIFEST_UNKNOWN (it could
    not read it); a Docker manifest list asked for by tag by a client that does not accept
    lists is answered with the list's linux/amd64 manifest (old clients pull that one); a
    Docker schema 2 manifest is always served, and so is a list asked for by digest."""
    name = await _repository(request, "pull")
    store = request.app[STORE]
    reference = request.match_info["reference"]
    digest = await _resolve(store, name, reference)
    stored = await store.get_manifest(name, digest)
    if stored is None:
        raise RegistryError.of(Code.MANIFEST_UNKNOWN, detail={"digest": digest})
    media_type, data = stored
    accepted = _accepted(request)
    if accepted is not None and media_type not in accepted:
        if media_type in (OCI_MANIFEST, OCI_INDEX):
            raise RegistryError.of(
                Code.MANIFEST_UNKNOWN,
                f"{media_type} found, but the Accept header does not allow it",
                {"digest": digest},
            )
        if media_type == DOCKER_LIST and not is_digest(reference):
            child = platform_manifest(data, "linux", "amd64")
            found = await store.get_manifest(name, child) if child else None
            if child is None or found is None:
                raise RegistryError.of(
                    Code.MANIFEST_UNKNOWN,
                    f"the manifest list {digest} has no linux/amd64 manifest, and the Accept "
                    "header does not allow the list",
                    {"digest": digest},
                )
            digest, (media_type, data) = child, found
    headers = {"Content-Type": media_type, "Docker-Content-Digest": digest, "ETag": f'"{digest}"'}
    return web.Response(body=data, headers=headers)


async def _read_manifest(request: web.Request) -> bytes:
    """The body, or 413 as soon as it is bigger than a manifest may be."""
    if (request.content_length or 0) > MAX_MANIFEST_SIZE:
        raise _manifest_too_big()
    data = bytearray()
    async for chunk in request.content.iter_any():
        data += chunk
        if len(data) > MAX_MANIFEST_SIZE:
            raise _manifest_too_big()
    return bytes(data)


def _manifest_too_big() -> RegistryError:
    return RegistryError.of(
        Code.SIZE_INVALID, f"manifests are limited to {MAX_MANIFEST_SIZE} bytes", status=413
    )


_CHECKS_AT_ONCE = 32
"""Blob checks of a manifest PUT run this many at a time (a manifest may list thousands)."""


async def _check_references(store: RegistryStore, name: str, manifest: Manifest) -> None:
    """Every blob and child manifest must be in the repository. Touching each blob first
    renews its "last referenced" time, which the garbage collector re-reads after it set a
    blob aside (see :mod:`pydocker_registry.gc`)."""
    required = {check_digest(b.digest) for b in manifest.blobs}
    children = [check_digest(c.digest) for c in manifest.children]

    async def check_blob(digest: str) -> ErrorItem | None:
        if digest not in required:  # a foreign layer: gc keeps it if the registry has it
            with contextlib.suppress(RegistryError):
                await store.touch_blob(check_digest(digest))
            return None
        await store.touch_blob(digest)
        if await store.blob_info(name, digest) is None:
            return _missing(Code.MANIFEST_BLOB_UNKNOWN, digest)
        return None

    async def check_child(digest: str) -> ErrorItem | None:
        if await store.has_manifest(name, digest):
            return None
        return _missing(Code.MANIFEST_UNKNOWN, digest)

    checks = [(check_blob, d) for d in dict.fromkeys(b.digest for b in manifest.references)]
    checks += [(check_child, d) for d in children]
    missing: list[ErrorItem] = []
    for i in range(0, len(checks), _CHECKS_AT_ONCE):
        found = await asyncio.gather(*(check(d) for check, d in checks[i : i + _CHECKS_AT_ONCE]))
        missing += [item for item in found if item is not None]
    if missing:
        raise RegistryError(400, missing)


def _missing(code: Code, digest: str) -> ErrorItem:
    return ErrorItem(code.name, code.message, {"digest": digest})


async def _put_manifest(request: web.Request) -> web.Response:
    name = await _repository(request, "pull", "push")
    store = request.app[STORE]
    reference = request.match_info["reference"]
    data = await _read_manifest(request)
    manifest = parse_manifest(data, request.headers.get("Content-Type"))
    if is_digest(reference):
        digest = check_digest(reference)
        hasher = new_hasher(digest)
        hasher.update(data)
        if f"{digest.partition(':')[0]}:{hasher.hexdigest()}" != digest:
            raise RegistryError.of(
                Code.DIGEST_INVALID, "the manifest does not match its digest", {"digest": digest}
            )
        tags = request.query.getall("tag", [])
    else:
        digest = f"sha256:{hashlib.sha256(data).hexdigest()}"
        tags = [reference]
    for tag in tags:
        if not is_tag(tag):
            raise RegistryError.of(Code.MANIFEST_INVALID, f"invalid tag {tag!r}")
    existed = await store.has_manifest(name, digest)
    began = time.monotonic()
    await _check_references(store, name, manifest)
    await store.put_manifest(name, digest, data, manifest)
    if time.monotonic() - began > gc.CLOCK_SLACK / 2:
        # A collector that listed the manifests before this one showed sees only the touches
        # above, which may be older than its cutoff by now: touch and check again, now that
        # it shows, and take it back if a blob went meanwhile (see pydocker_registry.gc).
        try:
            await _check_references(store, name, manifest)
        except RegistryError:
            if not existed:
                await store.delete_manifest(name, digest, manifest)
            raise
    for tag in tags:
        await store.put_tag(name, tag, digest)
    headers = {"Location": f"/v2/{name}/manifests/{digest}", "Docker-Content-Digest": digest}
    if manifest.subject is not None:
        headers["OCI-Subject"] = manifest.subject.digest
    return web.Response(status=201, headers=headers)


async def _delete_manifest(request: web.Request) -> web.Response:
    name = await _repository(request, "delete")
    _check_delete_enabled(request)
    store = request.app[STORE]
    reference = request.match_info["reference"]
    if not is_digest(reference):
        if not is_tag(reference):
            raise RegistryError.of(Code.MANIFEST_INVALID, f"invalid tag {reference!r}")
        if not await store.delete_tag(name, reference):
            raise RegistryError.of(Code.MANIFEST_UNKNOWN, detail={"tag": reference})
        return web.Response(status=202)
    digest = check_digest(reference)
    stored = await store.get_manifest(name, digest)
    if stored is None:
        raise RegistryError.of(Code.MANIFEST_UNKNOWN, detail={"digest": digest})
    try:
        manifest: Manifest | None = parse_manifest(stored[1], stored[0])
    except RegistryError:
        manifest = None
    await store.delete_manifest(name, digest, manifest)
    return web.Response(status=202)


# --- blobs ----------------------------------------------------------------------------


async def _get_blob(request: web.Request) -> web.StreamResponse:
    name = await _repository(request, "pull")
    store = request.app[STORE]
    digest = check_digest(request.match_info["digest"])
    info = await store.blob_info(name, digest)
    if info is None:
        raise RegistryError.of(Code.BLOB_UNKNOWN, detail={"digest": digest})
    headers = {
        "Docker-Content-Digest": digest,
        "Content-Type": "application/octet-stream",
        "Accept-Ranges": "bytes",
        "Cache-Control": "max-age=31536000",
    }
    byte_range = _byte_range(request, info.size)  # FileResponse applies it again, alike
    key = store.blob_key(digest)
    path = store.storage.local_path(key)
    if path is not None:
        return web.FileResponse(path, headers=headers)  # sendfile; applies the Range itself
    start, stop = byte_range or (0, info.size)
    response = web.StreamResponse(status=206 if byte_range else 200, headers=headers)
    if byte_range:
        response.headers["Content-Range"] = f"bytes {start}-{stop - 1}/{info.size}"
    response.content_length = stop - start
    await response.prepare(request)
    if request.method != "HEAD":
        try:
            async for chunk in store.storage.read(key, start, stop - start):
                await response.write(chunk)
        except KeyNotFound:  # collected meanwhile; the client sees a short body
            return response
    await response.write_eof()
    return response


async def _delete_blob(request: web.Request) -> web.Response:
    name = await _repository(request, "delete")
    _check_delete_enabled(request)
    digest = check_digest(request.match_info["digest"])
    if not await request.app[STORE].unlink_blob(name, digest):
        raise RegistryError.of(Code.BLOB_UNKNOWN, detail={"digest": digest})
    return web.Response(status=202, headers={"Docker-Content-Digest": digest})


# --- uploads --------------------------------------------------------------------------


async def _start_upload(request: web.Request) -> web.Response:
    query = request.query
    mount, source = query.get("mount"), query.get("from")
    name = await _repository(request, "pull", "push", source=source if mount else None)
    uploads = request.app[UPLOADS]
    if mount and source:
        digest = check_digest(mount)
        if await request.app[STORE].mount_blob(name, source, digest):
            return _blob_created(name, digest)
    monolithic = query.get("digest")
    if monolithic is not None:
        check_digest(monolithic)
    upload_id = await uploads.start(name)
    if monolithic is not None:
        try:
            await uploads.finish(name, upload_id, monolithic, _body(request))
        except BaseException:
            # Nobody knows this session's id: a failed body (too big, cut off) is garbage.
            with contextlib.suppress(Exception):
                await uploads.discard(upload_id)
            raise
        return _blob_created(name, monolithic)
    return web.Response(status=202, headers=_upload_headers(name, upload_id, 0))


async def _upload_status(request: web.Request) -> web.Response:
    name = await _repository(request, "pull", "push")
    upload_id = _upload_id(request)
    size = await request.app[UPLOADS].size(name, upload_id)
    return web.Response(status=204, headers=_upload_headers(name, upload_id, size))


async def _patch_upload(request: web.Request) -> web.Response:
    name = await _repository(request, "pull", "push")
    upload_id = _upload_id(request)
    start = None
    content_range = request.headers.get("Content-Range")
    if content_range is not None:
        match = _CONTENT_RANGE.fullmatch(content_range.strip())
        length = request.content_length
        if (
            match is None
            or int(match[2]) < int(match[1])
            or (length is not None and length != int(match[2]) - int(match[1]) + 1)
        ):
            raise RegistryError.of(
                Code.BLOB_UPLOAD_INVALID, f"invalid Content-Range {content_range!r}", status=416
            )
        start = int(match[1])
    size = await request.app[UPLOADS].append(name, upload_id, _body(request), start=start)
    return web.Response(status=202, headers=_upload_headers(name, upload_id, size))


async def _finish_upload(request: web.Request) -> web.Response:
    name = await _repository(request, "pull", "push")
    upload_id = _upload_id(request)
    digest = request.query.get("digest")
    if digest is None:
        raise RegistryError.of(Code.DIGEST_INVALID, "the digest parameter is required")
    check_digest(digest)
    await request.app[UPLOADS].finish(name, upload_id, digest, _body(request))
    return _blob_created(name, digest)


async def _cancel_upload(request: web.Request) -> web.Response:
    name = await _repository(request, "pull", "push")
    upload_id = _upload_id(request)
    await request.app[UPLOADS].cancel(name, upload_id)
    return web.Response(status=204)
