"""The hooks of pydockerd: the reference for plugin authors.

Three kinds, named in each docstring's first line:

- **Registration**: called once at start-up, in plugin load order; the plugin adds things
  to the registry object it receives.
- **Event**: called for everything that happens; every implementation runs; return values
  are ignored.
- **Decision**: ``firstresult``: the first implementation that returns something other
  than ``None`` decides, the rest are not called.

pluggy is synchronous. Event and decision hooks run inside the daemon's event loop, so an
implementation must return quickly; it may return an awaitable, which the daemon awaits
(with a timeout of 10 s) where the docstring says "may be async". Driver *operations* never
go through hooks: the daemon calls driver methods directly.

``docs/plugin_hooks.md`` repeats every signature; a test fails when the two disagree.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TYPE_CHECKING

import pluggy

from pydockerd.plugin import PROJECT_NAME

if TYPE_CHECKING:
    from pydockerd.plugin import (
        AuthzDecision,
        AuthzRequest,
        DriverRegistry,
        Event,
        LogDriver,
        NetworkDriver,
        RegistryTransport,
        RouteRegistry,
        Runtime,
        StorageDriver,
        VolumeDriver,
    )

hookspec = pluggy.HookspecMarker(PROJECT_NAME)


@hookspec
def pydockerd_register_storage_drivers(registry: DriverRegistry[StorageDriver]) -> None:
    """Registration: add storage driver classes with ``registry.add(DriverClass)``.

    :param registry: the storage drivers registered so far.

    Called once at start-up, before any driver is probed or selected. A name registered twice
    marks the second plugin ``error``.
    """


@hookspec
def pydockerd_register_network_drivers(registry: DriverRegistry[NetworkDriver]) -> None:
    """Registration: add network driver classes with ``registry.add(DriverClass)``.

    :param registry: the network drivers registered so far.

    Called once at start-up, before any driver is probed.
    """


@hookspec
def pydockerd_register_registry_transports(
    registry: DriverRegistry[RegistryTransport],
) -> None:
    """Registration: add registry transport classes with ``registry.add(TransportClass)``.

    :param registry: the registry transports registered so far.

    Called once at start-up, before any driver is probed.
    """


@hookspec
def pydockerd_register_runtimes(registry: DriverRegistry[Runtime]) -> None:
    """Registration: add container runtime classes with ``registry.add(RuntimeClass)``.

    :param registry: the runtimes registered so far.

    Called once at start-up, before any driver is probed.
    """


@hookspec
def pydockerd_register_log_drivers(registry: DriverRegistry[LogDriver]) -> None:
    """Registration: add log driver classes with ``registry.add(LogDriverClass)``.

    :param registry: the log drivers registered so far.

    Called once at start-up, before any driver is probed.
    """


@hookspec
def pydockerd_register_volume_drivers(registry: DriverRegistry[VolumeDriver]) -> None:
    """Registration: add volume driver classes with ``registry.add(VolumeDriverClass)``.

    :param registry: the volume drivers registered so far.

    Called once at start-up, before any driver is probed.
    """


@hookspec
def pydockerd_register_routes(routes: RouteRegistry) -> None:
    """Registration: add Engine API routes with ``routes.add(method, path, handler)``.

    :param routes: collects the plugin's routes; each is served with and without the
        ``/v1.NN`` prefix, behind the daemon's error mapping and authorization.

    Called once at start-up. A route that clashes with a built-in route (or with one an
    earlier plugin added) is not served, and the daemon logs an error naming the plugin.
    """


@hookspec
def pydockerd_event(event: Event) -> Awaitable[None] | None:
    """Event: something happened in the engine (the same events ``GET /events`` streams).

    :param event: what happened; see :class:`pydockerd.plugin.Event`.

    Called after the event is recorded, for every event. May be async. An exception is
    logged and does not affect the daemon or other plugins.
    """


@hookspec(firstresult=True)
def pydockerd_authorize_request(
    request: AuthzRequest,
) -> AuthzDecision | Awaitable[AuthzDecision | None] | None:
    """Decision: may this API request be served?

    :param request: the method, unversioned path, query, headers and (on a unix socket)
        the caller's pid/uid/gid.
    :return: ``AuthzDecision(allow=False, message=...)`` to refuse it with 403 and that
        message, ``AuthzDecision(allow=True)`` to allow it without asking other plugins, or
        ``None`` to leave the decision to others. When nobody decides, the request is served.

    Called before every API request except ``/_ping``. May be async. An exception refuses the
    request with 403 (authorization fails closed).
    """
