"""One test per hook (``tests/test_docs.py`` requires it): each hook takes effect in a real
daemon served by aiohttp."""

from __future__ import annotations

import asyncio
from types import ModuleType
from typing import Any

from aiohttp import web
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
    hookimpl,
)

from .conftest import MakeClient, MakeDaemon


def plugin(name: str, **hooks: Any) -> tuple[str, ModuleType]:
    """A plugin module named ``name`` implementing ``hooks``."""
    module = ModuleType(f"test_plugin_{name}")
    for hook_name, function in hooks.items():
        function.__name__ = hook_name
        setattr(module, hook_name, hookimpl(function))
    return name, module


async def plugin_rows(client: Any) -> dict[str, dict[str, Any]]:
    response = await client.get("/plugins")
    assert response.status == 200
    return {row["Name"]: row for row in await response.json()}


class MemoryStorage(StorageDriver):
    name = "memory"


class MacvlanDriver(NetworkDriver):
    name = "macvlan"


class MirrorTransport(RegistryTransport):
    name = "mirror"


class SandboxRuntime(Runtime):
    name = "sandbox"


class SyslogDriver(LogDriver):
    name = "syslog"


async def test_hook_pydockerd_register_storage_drivers(api: MakeClient) -> None:
    def register(registry: DriverRegistry[StorageDriver]) -> None:
        registry.add(MemoryStorage)

    client = await api(
        plugin("mem", pydockerd_register_storage_drivers=register), storage_driver="memory"
    )
    rows = await plugin_rows(client)
    assert rows["storage.memory"]["Status"] == "ok"
    assert rows["storage.memory"]["Plugin"] == "mem"
    info = await (await client.get("/info")).json()
    assert info["Driver"] == "memory"
    assert "memory" in info["Plugins"]["Storage"]


async def test_hook_pydockerd_register_network_drivers(api: MakeClient) -> None:
    def register(registry: DriverRegistry[NetworkDriver]) -> None:
        registry.add(MacvlanDriver)

    client = await api(plugin("mv", pydockerd_register_network_drivers=register))
    assert (await plugin_rows(client))["network.macvlan"]["Kind"] == "network"
    info = await (await client.get("/info")).json()
    assert "macvlan" in info["Plugins"]["Network"]


async def test_hook_pydockerd_register_registry_transports(api: MakeClient) -> None:
    def register(registry: DriverRegistry[RegistryTransport]) -> None:
        registry.add(MirrorTransport)

    client = await api(plugin("mirror", pydockerd_register_registry_transports=register))
    row = (await plugin_rows(client))["registry.mirror"]
    assert (row["Kind"], row["Status"]) == ("registry", "ok")
    assert row["Config"]["Interface"]["Types"] == ["pydockerd.registry/v1"]


async def test_hook_pydockerd_register_runtimes(api: MakeClient) -> None:
    def register(registry: DriverRegistry[Runtime]) -> None:
        registry.add(SandboxRuntime)

    client = await api(plugin("sandbox", pydockerd_register_runtimes=register))
    assert (await plugin_rows(client))["runtime.sandbox"]["Status"] == "ok"
    info = await (await client.get("/info")).json()
    assert info["Plugins"]["Runtime"] == ["sandbox"]


async def test_hook_pydockerd_register_log_drivers(api: MakeClient) -> None:
    def register(registry: DriverRegistry[LogDriver]) -> None:
        registry.add(SyslogDriver)

    client = await api(plugin("syslog", pydockerd_register_log_drivers=register))
    info = await (await client.get("/info")).json()
    assert info["Plugins"]["Log"] == ["syslog"]


async def test_hook_pydockerd_register_routes(api: MakeClient) -> None:
    async def hello(request: web.Request) -> web.StreamResponse:
        return web.json_response({"hello": request.match_info["who"]})

    async def clash(request: web.Request) -> web.StreamResponse:
        return web.json_response({"stolen": True})

    def register(routes: RouteRegistry) -> None:
        routes.add("GET", "/hello/{who}", hello)
        routes.add("GET", "/version", clash)

    client = await api(plugin("hello", pydockerd_register_routes=register))
    for path in ("/hello/world", "/v1.47/hello/world"):
        response = await client.get(path)
        assert response.status == 200
        assert await response.json() == {"hello": "world"}
    version = await (await client.get("/version")).json()
    assert "stolen" not in version, "a plugin must not replace a built-in route"


async def test_hook_pydockerd_event(make_daemon: MakeDaemon) -> None:
    seen: list[tuple[str, Event]] = []

    def sync_listener(event: Event) -> None:
        seen.append(("sync", event))

    async def async_listener(event: Event) -> None:
        await asyncio.sleep(0)
        seen.append(("async", event))

    def broken(event: Event) -> None:
        raise RuntimeError("listener bug")

    daemon = await make_daemon(
        plugin("sync", pydockerd_event=sync_listener),
        plugin("broken", pydockerd_event=broken),
        plugin("async", pydockerd_event=async_listener),
    )
    event = daemon.emit("daemon", "reload", daemon.id, name="host")
    for _ in range(100):
        if len(seen) == 2:
            break
        await asyncio.sleep(0.01)
    assert sorted(kind for kind, _ in seen) == ["async", "sync"]
    assert all(received is event for _, received in seen)


async def test_hook_pydockerd_authorize_request(api: MakeClient) -> None:
    asked: list[AuthzRequest] = []

    def deny_info(request: AuthzRequest) -> AuthzDecision | None:
        asked.append(request)
        if request.path == "/info":
            return AuthzDecision(allow=False, message="no info for you")
        return None

    async def explode_on_events(request: AuthzRequest) -> AuthzDecision | None:
        await asyncio.sleep(0)
        if request.path == "/events":
            raise RuntimeError("policy store unreachable")
        return None

    client = await api(
        plugin("policy", pydockerd_authorize_request=deny_info),
        plugin("flaky", pydockerd_authorize_request=explode_on_events),
    )
    denied = await client.get("/v1.47/info")
    assert denied.status == 403
    assert await denied.json() == {
        "message": "authorization denied by plugin policy: no info for you"
    }
    assert (await client.get("/version")).status == 200
    failed = await client.get("/events?until=1")
    assert failed.status == 403
    assert "policy store unreachable" in (await failed.json())["message"]
    assert (await client.get("/_ping")).status == 200
    assert "/_ping" not in [r.path for r in asked]
    assert asked[0].path == "/info"
    assert asked[0].peer is None or asked[0].peer.pid > 0
    assert (await client.get("/plugins")).status == 200, "allowed when nobody decides"
