"""The volume endpoints."""

from __future__ import annotations

from aiohttp import web

from pydockerd.api.keys import DAEMON
from pydockerd.api.params import json_body, parse_bool, parse_filters
from pydockerd.api.responses import json_response
from pydockerd.errors import Unavailable
from pydockerd.volumes.service import VOLUME_FILTERS, VolumeService

__all__ = ["ROUTES"]


def _service(request: web.Request) -> VolumeService:
    volumes = request.app[DAEMON].volumes
    if volumes is None:
        raise Unavailable("the volume store is not ready")
    return volumes


async def listing(request: web.Request) -> web.StreamResponse:
    service = _service(request)
    filters = parse_filters(request.query.get("filters"), VOLUME_FILTERS[:-1])
    found = [v for v in service.volumes() if service.matches(v, filters)]
    return json_response({"Volumes": [await service.inspect(v) for v in found], "Warnings": None})


async def create(request: web.Request) -> web.StreamResponse:
    body = await json_body(request)
    service = _service(request)
    volume = await service.create(
        body.get("Name") or None,
        body.get("Driver") or "local",
        {str(k): str(v) for k, v in (body.get("DriverOpts") or {}).items()},
        {str(k): str(v) for k, v in (body.get("Labels") or {}).items()},
    )
    return json_response(await service.inspect(volume), status=201)


async def inspect(request: web.Request) -> web.StreamResponse:
    service = _service(request)
    return json_response(await service.inspect(service.get(request.match_info["name"])))


async def remove(request: web.Request) -> web.StreamResponse:
    await _service(request).remove(
        request.match_info["name"], force=parse_bool(request.query.get("force"))
    )
    return web.Response(status=204)


async def prune(request: web.Request) -> web.StreamResponse:
    filters = parse_filters(request.query.get("filters"), ("label", "all"))
    removed, reclaimed = await _service(request).prune(filters)
    return json_response({"VolumesDeleted": removed or None, "SpaceReclaimed": reclaimed})


ROUTES = [
    ("GET", "/volumes", listing),
    ("POST", "/volumes/create", create),
    ("POST", "/volumes/prune", prune),
    ("GET", "/volumes/{name}", inspect),
    ("DELETE", "/volumes/{name}", remove),
]
