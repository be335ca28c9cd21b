"""The Engine API basics, served by a real daemon through aiohttp's test client."""

from __future__ import annotations

import os
import re
import time

import pytest
from pydockerd import sysinfo
from pydockerd.api.keys import DAEMON
from pydockerd.errors import ConfigError

from .conftest import MakeClient, MakeDaemon

ROUTES = ["/_ping", "/version", "/info", "/plugins", "/events?until=1"]


@pytest.mark.parametrize("method", ["HEAD", "GET"])
async def test_ping_headers(api: MakeClient, method: str) -> None:
    client = await api()
    response = await client.request(method, "/_ping")
    assert response.status == 200
    headers = response.headers
    assert headers["Api-Version"] == "1.47"
    assert headers["Ostype"] == "linux"
    assert headers["Docker-Experimental"] == "false"
    assert headers["Builder-Version"] == "1"
    assert headers["Swarm"] == "inactive"
    assert headers["Cache-Control"] == "no-cache, no-store, must-revalidate"
    assert headers["Pragma"] == "no-cache"
    assert re.match(r"^Docker/.+\s\((.+)\)$", headers["Server"]).group(1) == "linux"  # type: ignore[union-attr]
    if method == "GET":
        assert await response.text() == "OK"
    else:
        assert headers["Content-Length"] == "0"


@pytest.mark.parametrize("path", ROUTES)
async def test_every_route_with_and_without_the_version_prefix(api: MakeClient, path: str) -> None:
    client = await api()
    for prefix in ("", "/v1.47", "/v1.24"):
        response = await client.get(prefix + path)
        assert response.status == 200, (prefix + path, await response.text())


@pytest.mark.parametrize(
    ("version", "message"),
    [
        ("1.99", "client version 1.99 is too new. Maximum supported API version is 1.47"),
        (
            "1.12",
            "client version 1.12 is too old. Minimum supported API version is 1.24, "
            "please upgrade your client to a newer version",
        ),
    ],
)
async def test_versions_out_of_range_are_400(api: MakeClient, version: str, message: str) -> None:
    client = await api()
    response = await client.get(f"/v{version}/info")
    assert response.status == 400
    assert await response.json() == {"message": message}


@pytest.mark.parametrize(
    ("method", "path"), [("GET", "/nope"), ("POST", "/info"), ("GET", "/v1.47/containers/json")]
)
async def test_unknown_routes_are_page_not_found(api: MakeClient, method: str, path: str) -> None:
    client = await api()
    response = await client.request(method, path)
    assert response.status == 404
    assert response.headers["Content-Type"] == "application/json"
    assert await response.json() == {"message": "page not found"}


async def test_version_fields(api: MakeClient) -> None:
    body = await (await (await api()).get("/version")).json()
    assert body["ApiVersion"] == "1.47"
    assert body["MinAPIVersion"] == "1.24"
    assert body["Os"] == "linux"
    assert body["KernelVersion"] == os.uname().release
    assert body["Components"][0]["Name"] == "Engine"
    assert body["Components"][0]["Version"] == body["Version"]


async def test_info_fields(api: MakeClient) -> None:
    client = await api(storage_driver="vfs")
    info = await (await client.get("/info")).json()
    assert info["Driver"] == "vfs"
    assert ["Selected Because", "named in the configuration"] in info["DriverStatus"]
    assert info["CgroupVersion"] == sysinfo.cgroup_version() != ""
    assert info["KernelVersion"] == os.uname().release
    assert info["NCPU"] == os.cpu_count()
    assert info["MemTotal"] > 0
    assert info["Plugins"]["Storage"] == ["overlay", "vfs"]
    assert info["DockerRootDir"].endswith("/data")
    assert re.fullmatch(r"[0-9a-f-]{36}", info["ID"])


async def test_engine_id_is_kept_in_the_data_root(make_daemon: MakeDaemon) -> None:
    first = await make_daemon()
    with pytest.raises(ConfigError, match=rf"another pydockerd \(pid {os.getpid()}\) is using"):
        await make_daemon()
    await first.close()
    second = await make_daemon()
    assert second.id == first.id != ""


async def test_events_replay_and_end_at_until(api: MakeClient) -> None:
    client = await api()
    daemon = client.app[DAEMON]
    since = time.time()
    daemon.emit("daemon", "reload", daemon.id, name="a")
    daemon.emit("container", "start", "c" * 64, name="web", image="busybox")
    until = time.time() + 0.2
    response = await client.get(f"/events?since={since}&until={until}")
    assert response.status == 200
    lines = (await response.text()).splitlines()
    assert [line.split('"Action": ')[1].split('"')[1] for line in lines] == ["reload", "start"]
    filtered = await client.get(
        f'/events?since={since}&until={until}&filters={{"container":{{"web":true}}}}'
    )
    assert len((await filtered.text()).splitlines()) == 1
    bad = await client.get('/events?filters={"nonsense":["x"]}')
    assert bad.status == 400
    assert await bad.json() == {"message": "invalid filter 'nonsense'"}


async def test_plugins_filters_and_inspect(api: MakeClient) -> None:
    client = await api()
    network = await (await client.get('/plugins?filters={"kind":["network"]}')).json()
    assert sorted(p["Name"] for p in network) == ["network.bridge", "network.host"]
    vfs = await (await client.get("/plugins/storage.vfs/json")).json()
    assert vfs["Driver"] == "vfs"
    by_id = await client.get(f"/v1.47/plugins/{vfs['Id'][:12]}/json")
    assert (await by_id.json())["Name"] == "storage.vfs"
    missing = await client.get("/plugins/storage.zfs/json")
    assert missing.status == 404
    assert await missing.json() == {"message": 'plugin "storage.zfs" not found'}
