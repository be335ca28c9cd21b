"""The Engine API application: routing with and without ``/v1.NN``, and the middleware that
every request passes (request id, access log, version check, authorization, error mapping)."""

from __future__ import annotations

import socket
import struct
import time
import uuid
from collections.abc import Awaitable, Callable

from aiohttp import web
from loguru import logger

from pydockerd import API_VERSION, MIN_API_VERSION
from pydockerd.api import (
    build,
    containers,
    distribution,
    images,
    networks,
    plugins,
    system,
    volumes,
)
from pydockerd.api.keys import DAEMON
from pydockerd.api.responses import error_response
from pydockerd.daemon import Daemon
from pydockerd.errors import Forbidden, InvalidParameter, NotFound, PydockerdError, status_for
from pydockerd.plugin import AuthzDecision, AuthzRequest, Handler, PeerCredentials

__all__ = ["add_route", "create_app"]

_VERSION_PREFIX = r"/v{api_version:[0-9]+\.[0-9]+}"
_UNAUTHORIZED_PATHS = frozenset({"/_ping"})


def _version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


def _peer(request: web.Request) -> PeerCredentials | None:
    sock = request.transport.get_extra_info("socket") if request.transport else None
    if sock is None or sock.family != socket.AF_UNIX:
        return None
    try:
        raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    except OSError:
        return None
    pid, uid, gid = struct.unpack("3i", raw)
    return PeerCredentials(pid=pid, uid=uid, gid=gid)


def _unversioned_path(request: web.Request) -> str:
    version = request.match_info.get("api_version")
    return request.path[len(version) + 2 :] if version else request.path


async def _authorize(request: web.Request, path: str) -> None:
    authz = AuthzRequest(
        method=request.method,
        path=path,
        query=dict(request.query),
        headers=dict(request.headers),
        peer=_peer(request),
    )
    try:
        plugin, decision = await request.app[DAEMON].manager.decide(
            "pydockerd_authorize_request", request=authz
        )
    except Exception as e:
        notes = "; ".join(getattr(e, "__notes__", []))
        logger.exception("authorization hook failed ({})", notes)
        raise Forbidden(f"authorization failed ({notes}): {e}") from e
    if isinstance(decision, AuthzDecision) and not decision.allow:
        raise Forbidden(f"authorization denied by plugin {plugin}: {decision.message}")


@web.middleware
async def api_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Request id and access log, version check, authorization, and error mapping."""
    request_id = request.headers.get("X-Request-Id") or uuid.uuid4().hex[:16]
    started = time.perf_counter()
    status = 500
    with logger.contextualize(request_id=request_id):
        try:
            response = await _serve(request, handler)
            status = response.status
            return response
        finally:
            logger.debug(
                "{} {} -> {} in {:.1f} ms",
                request.method,
                request.path_qs,
                status,
                (time.perf_counter() - started) * 1000,
            )


async def _serve(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    try:
        version = request.match_info.get("api_version")
        if version:
            if _version_tuple(version) > _version_tuple(API_VERSION):
                raise InvalidParameter(
                    f"client version {version} is too new. "
                    f"Maximum supported API version is {API_VERSION}"
                )
            if _version_tuple(version) < _version_tuple(MIN_API_VERSION):
                raise InvalidParameter(
                    f"client version {version} is too old. Minimum supported API version "
                    f"is {MIN_API_VERSION}, please upgrade your client to a newer version"
                )
        path = _unversioned_path(request)
        if isinstance(request.match_info.http_exception, web.HTTPException):
            raise NotFound("page not found")
        if path not in _UNAUTHORIZED_PATHS:
            await _authorize(request, path)
        return await handler(request)
    except PydockerdError as e:
        status = status_for(e)
        if status >= 500 and status != 501:
            logger.opt(exception=e).error("{} {}: {}", request.method, request.path, e)
        return error_response(status, e.message)
    except web.HTTPException as e:
        if e.status in (404, 405):
            return error_response(404, "page not found")
        return error_response(e.status, e.reason)


async def _add_default_headers(request: web.Request, response: web.StreamResponse) -> None:
    """Headers every moby response carries; clients read the OS from ``Server``."""
    daemon = request.app[DAEMON]
    response.headers.setdefault("Api-Version", API_VERSION)
    response.headers.setdefault("Ostype", "linux")
    response.headers.setdefault("Docker-Experimental", "false")
    response.headers["Server"] = f"Docker/{daemon.version}-pydockerd (linux)"


def add_route(app: web.Application, method: str, path: str, handler: Handler) -> None:
    """Serve ``method path`` with ``handler``, with and without the ``/v1.NN`` prefix."""
    app.router.add_route(method, path, handler)
    app.router.add_route(method, _VERSION_PREFIX + path, handler)


def create_app(daemon: Daemon) -> web.Application:
    """The Engine API for ``daemon``: built-in routes, then the plugins' routes."""
    app = web.Application(middlewares=[api_middleware], client_max_size=64 * 1024 * 1024)
    app[DAEMON] = daemon
    app.on_response_prepare.append(_add_default_headers)
    for module in (system, plugins, distribution, build, images, containers, volumes, networks):
        for method, path, handler in module.ROUTES:
            add_route(app, method, path, handler)
    taken = {(r.method, r.resource.canonical) for r in app.router.routes() if r.resource}
    for method, path, handler, plugin in daemon.manager.routes.routes:
        if (method, path) in taken:
            logger.error(
                "plugin {} route {} {} clashes with an existing route; skipped",
                plugin,
                method,
                path,
            )
            continue
        add_route(app, method, path, handler)
        taken.add((method, path))
    return app
