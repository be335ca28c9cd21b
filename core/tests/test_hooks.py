"""One test per hook (``tests/test_docs.py`` requires ``test_hook_<name>`` for every hookspec):
each proves the hook takes effect in a real daemon, initialised in temporary roots and served by
aiohttp's test client."""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

from aiohttp import web
from pydockerd.api.keys import DAEMON
from pydockerd.errors import NotFound
from pydockerd.plugin import (
    AuthzDecision,
    AuthzRequest,
    DriverRegistry,
    Event,
    LogContext,
    LogDriver,
    LogQuery,
    LogRecord,
    LogWriter,
    NetworkDriver,
    RegistryTransport,
    RouteRegistry,
    Runtime,
    StorageDriver,
    VolumeDriver,
    VolumeInfo,
)
from pydockerd_storage_vfs.driver import VfsDriver

from .conftest import MakeClient
from .helpers import plugin


async def plugin_rows(client: Any) -> dict[str, dict[str, Any]]:
    response = await client.get("/plugins")
    assert response.status == 200
    return {row["Name"]: row for row in await response.json()}


async def info(client: Any) -> dict[str, Any]:
    response = await client.get("/v1.47/info")
    assert response.status == 200
    body: dict[str, Any] = await response.json()
    return body


class MemoryStorage(VfsDriver):  # a complete driver under another name
    name = "memory"
    description = "layers in RAM"


class MacvlanDriver(NetworkDriver):
    name = "macvlan"


class MirrorTransport(RegistryTransport):
    name = "mirror"


class SandboxRuntime(Runtime):
    name = "sandbox"


class SyslogDriver(LogDriver):  # the daemon makes an instance of every log driver
    name = "syslog"

    def writer(self, context: LogContext) -> LogWriter:
        raise NotImplementedError

    def read(
        self, context: LogContext, query: LogQuery, stopped: asyncio.Event
    ) -> AsyncIterator[LogRecord]:
        raise NotImplementedError


class DirectoryVolumes(VolumeDriver):
    """A complete volume driver: each volume a directory of the driver's state."""

    name = "dirs"

    def _path(self, name: str) -> Path:
        return self.context.state_dir / name

    async def create(self, name: str, options: Mapping[str, str]) -> VolumeInfo:
        self._path(name).mkdir()
        return self.get(name)

    async def remove(self, name: str) -> None:
        shutil.rmtree(self._path(name), ignore_errors=True)

    async def mount(self, name: str, container_id: str) -> Path:
        return self._path(name)

    async def unmount(self, name: str, container_id: str) -> None:
        pass

    def get(self, name: str) -> VolumeInfo:
        return VolumeInfo(name, self._path(name), {"kept": "in a directory"})

    def names(self) -> list[str]:
        return [p.name for p in self.context.state_dir.iterdir()]


# --------------------------------------------------------------------------------------
# registration


async def test_hook_pydockerd_register_storage_drivers(api: MakeClient) -> None:
    def register(registry: DriverRegistry[StorageDriver]) -> None:
        registry.add(MemoryStorage)

    client = await api(
        plugin("mem", pydockerd_register_storage_drivers=register), storage_driver="memory"
    )
    row = (await plugin_rows(client))["storage.memory"]
    assert (row["Kind"], row["Driver"], row["Plugin"], row["Status"]) == (
        "storage",
        "memory",
        "mem",
        "ok",
    )
    assert row["Config"]["Description"] == "layers in RAM"
    body = await info(client)
    assert body["Driver"] == "memory", "the daemon runs on the plugin's driver"
    assert body["Plugins"]["Storage"] == ["memory", "overlay", "vfs"]
    daemon = client.app[DAEMON]
    assert (daemon.settings.data_root / "storage" / "memory").is_dir()


async def test_hook_pydockerd_register_network_drivers(api: MakeClient) -> None:
    def register(registry: DriverRegistry[NetworkDriver]) -> None:
        registry.add(MacvlanDriver)

    client = await api(plugin("mv", pydockerd_register_network_drivers=register))
    row = (await plugin_rows(client))["network.macvlan"]
    assert (row["Kind"], row["Plugin"], row["Status"], row["Enabled"]) == (
        "network",
        "mv",
        "ok",
        True,
    )
    assert row["Config"]["Interface"]["Types"] == ["pydockerd.network/v1"]
    assert (await info(client))["Plugins"]["Network"] == ["bridge", "host", "macvlan", "null"]


async def test_hook_pydockerd_register_registry_transports(api: MakeClient) -> None:
    def register(registry: DriverRegistry[RegistryTransport]) -> None:
        registry.add(MirrorTransport)

    client = await api(plugin("mirror", pydockerd_register_registry_transports=register))
    row = (await plugin_rows(client))["registry.mirror"]
    assert (row["Kind"], row["Status"]) == ("registry", "ok")
    assert row["Config"]["Interface"]["Types"] == ["pydockerd.registry/v1"]
    assert (await info(client))["Plugins"]["Registry"] == ["distribution", "mirror"]


async def test_hook_pydockerd_register_runtimes(api: MakeClient) -> None:
    def register(registry: DriverRegistry[Runtime]) -> None:
        registry.add(SandboxRuntime)

    client = await api(plugin("sandbox", pydockerd_register_runtimes=register))
    row = (await plugin_rows(client))["runtime.sandbox"]
    assert (row["Kind"], row["Status"]) == ("runtime", "ok")
    assert (await info(client))["Plugins"]["Runtime"] == ["native", "sandbox"]


async def test_hook_pydockerd_register_log_drivers(api: MakeClient) -> None:
    async def register(registry: DriverRegistry[LogDriver]) -> None:  # may be async
        await asyncio.sleep(0)
        registry.add(SyslogDriver)

    client = await api(plugin("syslog", pydockerd_register_log_drivers=register))
    row = (await plugin_rows(client))["log.syslog"]
    assert (row["Kind"], row["Plugin"], row["Status"]) == ("log", "syslog", "ok")
    assert (await info(client))["Plugins"]["Log"] == ["json-file", "none", "syslog"]
    body = await (await client.get('/plugins?filters={"kind":["log"]}')).json()
    assert [item["Name"] for item in body] == ["log.json-file", "log.none", "log.syslog"]


async def test_hook_pydockerd_register_volume_drivers(api: MakeClient, roots: Path) -> None:
    def register(registry: DriverRegistry[VolumeDriver]) -> None:
        registry.add(DirectoryVolumes)

    client = await api(plugin("dirs", pydockerd_register_volume_drivers=register))
    row = (await plugin_rows(client))["volume.dirs"]
    assert (row["Kind"], row["Plugin"], row["Status"]) == ("volume", "dirs", "ok")
    assert (await info(client))["Plugins"]["Volume"] == ["dirs", "local"]
    created = await client.post("/volumes/create", json={"Name": "v1", "Driver": "dirs"})
    assert created.status == 201, await created.text()
    body = await created.json()
    assert body["Driver"] == "dirs"
    assert body["Mountpoint"] == str(roots / "data" / "volume" / "dirs" / "v1")
    assert body["Status"] == {"kept": "in a directory"}
    assert (roots / "data" / "volume" / "dirs" / "v1").is_dir()
    assert (await client.delete("/volumes/v1")).status == 204
    assert not (roots / "data" / "volume" / "dirs" / "v1").exists()


async def test_hook_pydockerd_register_routes(api: MakeClient) -> None:
    async def hello(request: web.Request) -> web.StreamResponse:
        return web.json_response({"hello": request.match_info["who"], "q": request.query.get("q")})

    async def missing(request: web.Request) -> web.StreamResponse:
        raise NotFound("no such widget: w1")

    async def clash(request: web.Request) -> web.StreamResponse:
        return web.json_response({"stolen": True})

    def register(routes: RouteRegistry) -> None:
        routes.add("GET", "/hello/{who}", hello)
        routes.add("post", "/widgets/{id}/poke", missing)
        routes.add("GET", "/version", clash)

    def deny_secret(request: AuthzRequest) -> AuthzDecision | None:
        if request.path == "/hello/secret":
            return AuthzDecision(allow=False, message="secret")
        return None

    client = await api(
        plugin("hello", pydockerd_register_routes=register),
        plugin("policy", pydockerd_authorize_request=deny_secret),
    )
    for path in ("/hello/world?q=1", "/v1.47/hello/world?q=1", "/v1.24/hello/world?q=1"):
        response = await client.get(path)
        assert response.status == 200, path
        assert await response.json() == {"hello": "world", "q": "1"}
        assert response.headers["Api-Version"] == "1.47"
    # behind the daemon's version check, error mapping and authorization
    too_new = await client.get("/v1.99/hello/world")
    assert too_new.status == 400
    poked = await client.post("/v1.47/widgets/w1/poke")
    assert (poked.status, await poked.json()) == (404, {"message": "no such widget: w1"})
    assert poked.headers["Content-Type"] == "application/json"
    denied = await client.get("/hello/secret")
    assert denied.status == 403
    assert await denied.json() == {"message": "authorization denied by plugin policy: secret"}
    # a plugin cannot replace a built-in route
    version = await (await client.get("/version")).json()
    assert "stolen" not in version
    assert version["ApiVersion"] == "1.47"


# --------------------------------------------------------------------------------------
# events


async def test_hook_pydockerd_event(api: MakeClient) -> None:
    seen: list[tuple[str, Event]] = []
    counted: list[None] = []

    def sync_listener(event: Event) -> None:
        seen.append(("sync", event))

    async def async_listener(event: Event) -> None:
        await asyncio.sleep(0.01)  # only an awaited coroutine gets past this
        seen.append(("async", event))

    def broken(event: Event) -> None:
        raise RuntimeError("listener bug")

    async def broken_async(event: Event) -> None:
        await asyncio.sleep(0)
        raise RuntimeError("async listener bug")

    def count() -> None:  # takes none of the spec's arguments: allowed by pluggy
        counted.append(None)

    client = await api(
        plugin("sync", pydockerd_event=sync_listener),
        plugin("broken", pydockerd_event=broken),
        plugin("async", pydockerd_event=async_listener),
        plugin("broken-async", pydockerd_event=broken_async),
        plugin("count", pydockerd_event=count),
    )
    daemon = client.app[DAEMON]
    since = time.time()
    event = daemon.emit("daemon", "reload", daemon.id, name="host", **{"log-level": "debug"})
    for _ in range(200):
        if len(seen) == 2:
            break
        await asyncio.sleep(0.01)
    assert sorted(kind for kind, _ in seen) == ["async", "sync"]
    assert all(received is event for _, received in seen)
    assert counted == [None]
    # what the plugins received is what GET /events streams
    response = await client.get(f"/events?since={since}&until={time.time()}")
    streamed = [json.loads(line) for line in (await response.text()).splitlines()]
    assert streamed == [event.to_api()]
    assert streamed[0]["Type"] == "daemon"
    assert streamed[0]["Action"] == "reload"
    assert streamed[0]["Actor"]["Attributes"] == {"name": "host", "log-level": "debug"}
    # the broken plugins did not stop the next event either
    daemon.emit("daemon", "reload", daemon.id)
    await daemon.events.close()  # waits for the pending hook calls
    assert [kind for kind, _ in seen].count("async") == 2
    assert len(counted) == 2


# --------------------------------------------------------------------------------------
# decisions


async def test_hook_pydockerd_authorize_request(api: MakeClient) -> None:
    asked: list[AuthzRequest] = []

    def deny_info(request: AuthzRequest) -> AuthzDecision | None:
        asked.append(request)
        if request.path == "/info":
            return AuthzDecision(allow=False, message="no info for you")
        return None

    async def async_policy(request: AuthzRequest) -> AuthzDecision | None:
        await asyncio.sleep(0)
        if request.path == "/events":
            raise RuntimeError("policy store unreachable")
        if request.path == "/plugins" and request.query.get("filters"):
            return AuthzDecision(allow=False, message="no filtering")
        if request.path == "/version" and request.headers.get("X-Trusted") == "yes":
            return AuthzDecision(allow=True)  # decides: the other plugin is not asked
        return None

    client = await api(
        plugin("policy", pydockerd_authorize_request=deny_info),
        plugin("async-policy", pydockerd_authorize_request=async_policy),
    )
    # a plain denial, with and without the version prefix
    for path in ("/v1.47/info", "/info"):
        denied = await client.get(path)
        assert denied.status == 403
        assert denied.headers["Content-Type"] == "application/json"
        assert await denied.json() == {
            "message": "authorization denied by plugin policy: no info for you"
        }
    # an async decision
    filtered = await client.get('/plugins?filters={"kind":["log"]}')
    assert filtered.status == 403
    assert await filtered.json() == {
        "message": "authorization denied by plugin async-policy: no filtering"
    }
    # an async allow decides without asking the other plugin
    before = len(asked)
    allowed = await client.get("/version", headers={"X-Trusted": "yes"})
    assert allowed.status == 200
    assert len(asked) == before
    # an exception fails closed
    failed = await client.get("/events?until=1")
    assert failed.status == 403
    message = (await failed.json())["message"]
    assert "policy store unreachable" in message
    assert "async-policy" in message
    # nobody decides: served
    assert (await client.get("/plugins")).status == 200
    # /_ping is never asked, however it is reached
    asked.clear()
    for method, path in (("GET", "/_ping"), ("HEAD", "/_ping"), ("GET", "/v1.47/_ping")):
        assert (await client.request(method, path)).status == 200
    assert asked == []
    # what a plugin is told about a request
    await client.get("/v1.47/version?x=1&x=2", headers={"X-Test": "t"})
    (request,) = asked
    assert (request.method, request.path) == ("GET", "/version")
    assert request.query == {"x": "1"}  # the value the handlers read
    assert request.headers["X-Test"] == "t"
    assert request.peer is None  # TCP, not a unix socket
