"""The image endpoints: list, inspect, history, tag, remove, save, load, import, prune.

Image names appear raw in paths (``/images/localhost:5000/x:v1/json``), hence the greedy
``{name:.+}`` routes, registered after the fixed ``/images/json`` and ``/images/get``.
"""

from __future__ import annotations

import asyncio
import fnmatch
from collections.abc import Callable
from datetime import datetime
from typing import Any

from aiohttp import web

from pydockerd.api.distribution import pull_image
from pydockerd.api.keys import DAEMON
from pydockerd.api.params import (
    Filters,
    labels_match,
    parse_bool,
    parse_filters,
    parse_timestamp_ns,
    spool_body,
)
from pydockerd.api.responses import json_response, json_stream, send_json_line
from pydockerd.errors import InvalidParameter, Unavailable
from pydockerd.images.reference import Reference, parse_repository_tag
from pydockerd.images.service import ImageService
from pydockerd.images.store import ImageRecord

__all__ = ["ROUTES", "image_inspect", "image_summary"]

_LIST_FILTERS = ("dangling", "label", "before", "since", "reference", "until")
_PRUNE_FILTERS = ("dangling", "label", "until")
_CHUNK = 1 << 20


def _service(request: web.Request) -> ImageService:
    images = request.app[DAEMON].images
    if images is None:
        raise Unavailable("the image store is not ready")
    return images


def _created_unix(config: dict[str, Any]) -> int:
    created = config.get("created")
    if not created:
        return 0
    try:
        return int(datetime.fromisoformat(str(created).replace("Z", "+00:00")).timestamp())
    except ValueError:
        return 0


def image_summary(
    images: ImageService, image: ImageRecord, config: dict[str, Any]
) -> dict[str, Any]:
    """One item of ``GET /images/json``; ``config`` is the image's config."""
    return {
        "Id": image.id,
        "ParentId": image.parent or "",
        "RepoTags": images.tags_of(image.id),
        "RepoDigests": images.digests_of(image.id),
        "Created": _created_unix(config),
        "Size": image.size,
        "SharedSize": -1,
        "VirtualSize": image.size,
        "Labels": (config.get("config") or {}).get("Labels") or {},
        "Containers": len(images.container_users(image.id)),
    }


def image_inspect(images: ImageService, image: ImageRecord) -> dict[str, Any]:
    """``GET /images/{name}/json``."""
    config = images.config(image.id)
    layers = images.layers_of(image)
    graph = images.driver.metadata(layers[-1].cache_id) if layers else {}
    return {
        "Id": image.id,
        "RepoTags": images.tags_of(image.id),
        "RepoDigests": images.digests_of(image.id),
        "Parent": image.parent or "",
        "Comment": config.get("comment", ""),
        "Created": config.get("created", ""),
        "DockerVersion": config.get("docker_version", ""),
        "Author": config.get("author", ""),
        "Config": _container_config(config.get("config") or {}),
        "Architecture": config.get("architecture", ""),
        "Variant": config.get("variant", ""),
        "Os": config.get("os", ""),
        "Size": image.size,
        "VirtualSize": image.size,
        "GraphDriver": {"Name": images.driver.name, "Data": graph or None},
        "RootFS": {"Type": "layers", "Layers": [layer.diff_id for layer in layers]},
        "Metadata": {"LastTagTime": image.last_tag_time or "0001-01-01T00:00:00Z"},
    }


def _container_config(config: dict[str, Any]) -> dict[str, Any]:
    """The image's run config in the Engine API's ContainerConfig shape."""
    return {
        "Hostname": "",
        "Domainname": "",
        "User": config.get("User", ""),
        "AttachStdin": False,
        "AttachStdout": False,
        "AttachStderr": False,
        "ExposedPorts": config.get("ExposedPorts"),
        "Tty": False,
        "OpenStdin": False,
        "StdinOnce": False,
        "Env": config.get("Env"),
        "Cmd": config.get("Cmd"),
        "Image": "",
        "Volumes": config.get("Volumes"),
        "WorkingDir": config.get("WorkingDir", ""),
        "Entrypoint": config.get("Entrypoint"),
        "OnBuild": config.get("OnBuild"),
        "Labels": config.get("Labels"),
        **({"StopSignal": config["StopSignal"]} if config.get("StopSignal") else {}),
        **({"Healthcheck": config["Healthcheck"]} if config.get("Healthcheck") else {}),
        **({"Shell": config["Shell"]} if config.get("Shell") else {}),
    }


def _reference_matches(images: ImageService, image_id: str, patterns: set[str]) -> bool:
    for tag in images.tags_of(image_id) + images.digests_of(image_id):
        name = tag.split("@")[0].rsplit(":", 1)[0] if ":" in tag.rsplit("/", 1)[-1] else tag
        for pattern in patterns:
            if fnmatch.fnmatchcase(name, pattern) or fnmatch.fnmatchcase(tag, pattern):
                return True
    return False


ImageFilter = Callable[[ImageRecord, dict[str, Any]], bool]
"""Whether an image (with its config) passes the filters of a request."""


def _image_filter(images: ImageService, filters: Filters) -> ImageFilter:
    """The list and prune filters, their image names and times resolved once."""
    after = [_created_unix(images.config(images.resolve(n).id)) for n in filters.get("since", ())]
    before = [_created_unix(images.config(images.resolve(n).id)) for n in filters.get("before", ())]
    until = [_until_seconds(value) for value in filters.get("until", ())]
    dangling = {str(parse_bool(v)).lower() for v in filters.get("dangling", ())}

    def matches(image: ImageRecord, config: dict[str, Any]) -> bool:
        created = _created_unix(config)
        if "dangling" in filters and dangling != {str(not images.tags_of(image.id)).lower()}:
            return False
        if "label" in filters and not labels_match(
            (config.get("config") or {}).get("Labels") or {}, filters["label"]
        ):
            return False
        if "reference" in filters and not _reference_matches(
            images, image.id, filters["reference"]
        ):
            return False
        return (
            all(created > other for other in after)
            and all(created < other for other in before)
            and all(created < bound for bound in until)
        )

    return matches


def _until_seconds(value: str) -> float:
    nanos = parse_timestamp_ns(value, "until")
    return (nanos or 0) / 1e9


async def list_images(request: web.Request) -> web.Response:
    images = _service(request)
    filters = parse_filters(request.query.get("filters"), _LIST_FILTERS)
    show_all = parse_bool(request.query.get("all"))
    records = sorted(images.store.images(), key=lambda i: i.added, reverse=True)
    parents = {image.parent for image in records if image.parent}
    matches = _image_filter(images, filters)
    body = []
    for image in records:
        if not show_all and image.id in parents and not images.store.refs_of(image.id):
            continue  # an intermediate image of a build
        config = images.config(image.id)
        if matches(image, config):
            body.append(image_summary(images, image, config))
    return json_response(body)


async def inspect_image(request: web.Request) -> web.Response:
    images = _service(request)
    return json_response(image_inspect(images, images.resolve(request.match_info["name"])))


async def image_history(request: web.Request) -> web.Response:
    images = _service(request)
    image = images.resolve(request.match_info["name"])
    config = images.config(image.id)
    layers = images.layers_of(image)
    history = config.get("history") or [{"created": config.get("created", "")} for _ in layers]
    items: list[dict[str, Any]] = []
    layer_index = 0
    for entry in history:
        size = 0
        if not entry.get("empty_layer") and layer_index < len(layers):
            size = layers[layer_index].size
            layer_index += 1
        items.append(
            {
                "Id": "<missing>",
                "Created": _created_unix(entry),
                "CreatedBy": entry.get("created_by", ""),
                "Tags": None,
                "Size": size,
                "Comment": entry.get("comment", ""),
            }
        )
    items.reverse()
    # newest first, each entry is its image's, then its parent's (a local build's steps), as
    # moby fills them in; the rest stay <missing>
    current: ImageRecord | None = image
    for item in items:
        if current is None:
            break
        item["Id"] = current.id
        item["Tags"] = images.tags_of(current.id) or None
        current = images.store.image(current.parent) if current.parent else None
    return json_response(items)


async def tag_image(request: web.Request) -> web.Response:
    images = _service(request)
    image = images.resolve(request.match_info["name"])
    repo = request.query.get("repo", "")
    if not repo:
        raise InvalidParameter("repository name must have at least one component")
    tag = request.query.get("tag") or None
    if tag is not None and tag.startswith("sha256"):
        raise InvalidParameter("refusing to create an ambiguous tag using digest algorithm as name")
    images.tag(image, parse_repository_tag(repo, tag))
    return web.Response(status=201)


async def delete_image(request: web.Request) -> web.Response:
    images = _service(request)
    records = await images.delete(
        request.match_info["name"],
        force=parse_bool(request.query.get("force")),
        prune=not parse_bool(request.query.get("noprune")),
    )
    return json_response(records)


async def save_images(request: web.Request) -> web.StreamResponse:
    images = _service(request)
    names = request.query.getall("names", [])
    if "name" in request.match_info:
        names = [request.match_info["name"]]
    if not names:
        raise InvalidParameter("no image names given (names=...)")
    archive = await images.save(names)
    try:
        response = web.StreamResponse(headers={"Content-Type": "application/x-tar"})
        await response.prepare(request)
        with archive.open("rb") as f:
            while chunk := await asyncio.to_thread(f.read, _CHUNK):
                await response.write(chunk)
        await response.write_eof()
        return response
    finally:
        archive.unlink(missing_ok=True)


async def load_images(request: web.Request) -> web.StreamResponse:
    images = _service(request)
    quiet = parse_bool(request.query.get("quiet"))
    upload = await spool_body(request, images.tmp)
    try:
        lines = await images.load(upload)
    finally:
        upload.unlink(missing_ok=True)
    response = await json_stream(request)
    for line in lines:
        if not quiet or line.startswith("Loaded image"):
            await send_json_line(response, {"stream": line + "\n"})
    await response.write_eof()
    return response


async def create_image(request: web.Request) -> web.StreamResponse:
    """``POST /images/create``: ``fromImage`` pulls (see :mod:`.distribution`); ``fromSrc=-``
    imports the body as a root filesystem."""
    if "fromImage" in request.query:
        return await pull_image(request)
    images = _service(request)
    source = request.query.get("fromSrc")
    if source is None:
        raise InvalidParameter("give fromImage (to pull) or fromSrc (to import)")
    if source != "-":
        raise InvalidParameter("importing from a URL is not supported; send the tar as the body")
    repo = request.query.get("repo", "")
    ref: Reference | None = None
    if repo:
        ref = parse_repository_tag(repo, request.query.get("tag") or None)
    changes = request.query.getall("changes", [])
    upload = await spool_body(request, images.tmp)
    try:
        with upload.open("rb") as stream:
            image_id = await images.import_rootfs(
                stream, ref=ref, changes=changes, message=request.query.get("message", "")
            )
    finally:
        upload.unlink(missing_ok=True)
    response = await json_stream(request)
    await send_json_line(response, {"status": image_id})
    await response.write_eof()
    return response


async def prune_images(request: web.Request) -> web.Response:
    images = _service(request)
    filters = parse_filters(request.query.get("filters"), _PRUNE_FILTERS)
    dangling = {parse_bool(v) for v in filters.pop("dangling", {"true"})}
    if len(dangling) != 1:
        raise InvalidParameter("invalid filter 'dangling': give true or false, not both")
    matches = _image_filter(images, filters)
    result = await images.prune(
        dangling_only=dangling.pop(),
        keep=lambda image: not matches(image, images.config(image.id)),
    )
    return json_response(result)


ROUTES = [
    ("GET", "/images/json", list_images),
    ("GET", "/images/get", save_images),
    ("POST", "/images/load", load_images),
    ("POST", "/images/create", create_image),
    ("POST", "/images/prune", prune_images),
    ("GET", "/images/{name:.+}/json", inspect_image),
    ("GET", "/images/{name:.+}/history", image_history),
    ("GET", "/images/{name:.+}/get", save_images),
    ("POST", "/images/{name:.+}/tag", tag_image),
    ("DELETE", "/images/{name:.+}", delete_image),
]
