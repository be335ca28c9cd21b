"""The network endpoints."""

from __future__ import annotations

from aiohttp import web

from pydockerd.api.keys import DAEMON
from pydockerd.api.params import json_body, parse_filters
from pydockerd.api.responses import json_response
from pydockerd.containers.service import ContainerService
from pydockerd.errors import InvalidParameter, Unavailable
from pydockerd.networks.service import NETWORK_FILTERS, NetworkService

__all__ = ["ROUTES"]


def _services(request: web.Request) -> tuple[NetworkService, ContainerService]:
    daemon = request.app[DAEMON]
    if daemon.networks is None or daemon.containers is None:
        raise Unavailable("the network store is not ready")
    return daemon.networks, daemon.containers


def _names(containers: ContainerService) -> dict[str, str]:
    """Container IDs to names, for the networks' ``Containers``."""
    return {c.id: c.name for c in containers.containers.values()}


async def listing(request: web.Request) -> web.StreamResponse:
    networks, containers = _services(request)
    filters = parse_filters(request.query.get("filters"), NETWORK_FILTERS)
    names = _names(containers)
    return json_response(
        [networks.inspect(n, names) for n in networks.networks() if networks.matches(n, filters)]
    )


async def inspect(request: web.Request) -> web.StreamResponse:
    networks, containers = _services(request)
    scope = request.query.get("scope")
    if scope and scope != "local":
        raise InvalidParameter(f"network {request.match_info['id']} not found in scope {scope}")
    network = networks.get(request.match_info["id"])
    return json_response(networks.inspect(network, _names(containers)))


async def create(request: web.Request) -> web.StreamResponse:
    networks, _ = _services(request)
    network = await networks.create(await json_body(request))
    return json_response({"Id": network.id, "Warning": ""}, status=201)


async def remove(request: web.Request) -> web.StreamResponse:
    networks, _ = _services(request)
    await networks.remove(request.match_info["id"])
    return web.Response(status=204)


async def prune(request: web.Request) -> web.StreamResponse:
    networks, containers = _services(request)
    filters = parse_filters(request.query.get("filters"), ("label", "until"))
    removed = await networks.prune(filters, containers.network_users)
    return json_response({"NetworksDeleted": removed or None})


async def connect(request: web.Request) -> web.StreamResponse:
    networks, containers = _services(request)
    body = await json_body(request)
    container = containers.get(str(body.get("Container") or ""))
    await containers.connect(
        container, networks.get(request.match_info["id"]).name, body.get("EndpointConfig") or {}
    )
    return web.Response(status=200)


async def disconnect(request: web.Request) -> web.StreamResponse:
    networks, containers = _services(request)
    body = await json_body(request)
    container = containers.get(str(body.get("Container") or ""))
    await containers.disconnect(container, networks.get(request.match_info["id"]).name)
    return web.Response(status=200)


ROUTES = [
    ("GET", "/networks", listing),
    ("POST", "/networks/create", create),
    ("POST", "/networks/prune", prune),
    ("GET", "/networks/{id}", inspect),
    ("DELETE", "/networks/{id}", remove),
    ("POST", "/networks/{id}/connect", connect),
    ("POST", "/networks/{id}/disconnect", disconnect),
]
