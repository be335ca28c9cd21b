"""``POST /build`` (the legacy builder protocol the docker CLI uses without buildx) and
``POST /build/prune``. The work is :class:`pydockerd.builder.engine.Builder`'s."""

from __future__ import annotations

import asyncio
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from aiohttp import web

from pydockerd.api.keys import DAEMON
from pydockerd.api.params import parse_bool, parse_filters, parse_timestamp_ns, spool_body
from pydockerd.api.responses import json_response, progress_stream
from pydockerd.builder.cache import BuildCache
from pydockerd.builder.context import unpack_context
from pydockerd.builder.engine import Builder, BuildOptions
from pydockerd.errors import InvalidParameter, Unavailable
from pydockerd.images.reference import parse_repository_tag
from pydockerd.images.transfer import credentials_from_json, decode_json_header

__all__ = ["ROUTES"]


def _builder(request: web.Request) -> Builder:
    builder = request.app[DAEMON].builder
    if builder is None:
        raise Unavailable("the builder is not ready")
    return builder


def _json_param(request: web.Request, name: str) -> dict[str, Any]:
    raw = request.query.get(name)
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except ValueError as e:
        raise InvalidParameter(f"invalid {name}: {e}") from None
    if not isinstance(value, dict):
        raise InvalidParameter(f"invalid {name}: not a JSON object")
    return value


def _options(request: web.Request) -> BuildOptions:
    query = request.query
    if query.get("remote"):
        raise InvalidParameter("building from a remote context (a URL) is not supported")
    tags = [parse_repository_tag(tag, None) for tag in query.getall("t", []) if tag]
    build_args = {
        str(k): (None if v is None else str(v))
        for k, v in _json_param(request, "buildargs").items()
    }
    labels = {str(k): str(v) for k, v in _json_param(request, "labels").items()}
    auth = decode_json_header(request.headers.get("X-Registry-Config"), "X-Registry-Config")
    credentials = {
        registry: credentials_from_json(config)
        for registry, config in auth.items()
        if isinstance(config, dict)
    }
    network = query.get("networkmode", "")
    return BuildOptions(
        dockerfile=query.get("dockerfile", "") or "Dockerfile",
        tags=tags,
        build_args=build_args,
        labels=labels,
        target=query.get("target", ""),
        no_cache=parse_bool(query.get("nocache")),
        pull=parse_bool(query.get("pull")),
        quiet=parse_bool(query.get("q")),
        remove=parse_bool(query.get("rm", "1")),
        force_remove=parse_bool(query.get("forcerm")),
        network_mode="" if network == "default" else network,
        credentials=credentials,
    )


async def _receive(request: web.Request, directory: Path) -> None:
    """The whole request body, spooled under ``directory``, then unpacked into
    ``directory/context`` (moby too reads the whole context before it answers)."""
    upload = await spool_body(request, directory)
    context = directory / "context"
    context.mkdir()
    await asyncio.to_thread(unpack_context, upload, context)
    upload.unlink()


async def build(request: web.Request) -> web.StreamResponse:
    """``POST /build``: a stream of ``stream`` messages, the ``aux`` image ID, and
    ``errorDetail`` (with the failed command's exit code) when a step fails."""
    builder = _builder(request)
    options = _options(request)
    directory = Path(tempfile.mkdtemp(prefix="build-", dir=builder.images.tmp))
    try:
        await _receive(request, directory)

        async def run(report: Any) -> None:
            await builder.build(directory / "context", options, report)

        return await progress_stream(request, run)
    finally:
        await asyncio.to_thread(shutil.rmtree, directory, True)


async def prune_build_cache(request: web.Request) -> web.Response:
    """``POST /build/prune``: ``all``, ``filters`` (``until``), ``keep-storage``."""
    builder = _builder(request)
    filters = parse_filters(request.query.get("filters"), ("until", "unused-for", "type", "id"))
    until = next(iter(filters.get("until") or filters.get("unused-for") or []), None)
    keep = request.query.get("keep-storage") or request.query.get("reserved-space") or "0"
    if not keep.isdigit():
        raise InvalidParameter(f"invalid keep-storage: {keep!r}")
    cache = BuildCache(builder.images)
    deleted, reclaimed = await cache.prune(
        until_ns=parse_timestamp_ns(until, "until"), keep_bytes=int(keep)
    )
    return json_response({"CachesDeleted": deleted or None, "SpaceReclaimed": reclaimed})


ROUTES = [
    ("POST", "/build", build),
    ("POST", "/build/prune", prune_build_cache),
]
