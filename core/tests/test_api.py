"""The Engine API basics, served by a real daemon through aiohttp's test client."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from pydockerd.api.keys import DAEMON

from .conftest import MakeClient, MakeDaemon

# every built-in route, as a request that answers 200
ROUTES = [
    ("GET", "/_ping"),
    ("HEAD", "/_ping"),
    ("GET", "/version"),
    ("GET", "/info"),
    ("GET", "/plugins"),
    ("GET", "/plugins/storage.vfs/json"),
    ("GET", "/events?until=1"),
]
SERVER_RE = re.compile(r"^Docker/.+\s\((.+)\)$")  # the Go client's
PING_HEADERS = {
    "Api-Version": "1.47",
    "Ostype": "linux",
    "Docker-Experimental": "false",
    "Builder-Version": "1",
    "Swarm": "inactive",
    "Cache-Control": "no-cache, no-store, must-revalidate",
    "Pragma": "no-cache",
}


def cgroup_version_from_mounts() -> str:
    """What /proc/self/mounts says for /sys/fs/cgroup (the last mount there is the visible one)."""
    fstypes = [
        line.split()[2]
        for line in Path("/proc/self/mounts").read_text().splitlines()
        if line.split()[1] == "/sys/fs/cgroup"
    ]
    if not fstypes:
        return ""
    return "2" if fstypes[-1] == "cgroup2" else "1"


def filesystem_type(path: Path) -> str:
    """The type of the filesystem holding ``path``, as ``findmnt`` (util-linux) tells it."""
    findmnt = subprocess.run(
        ["findmnt", "-n", "-o", "FSTYPE", "-T", str(path)],
        capture_output=True,
        text=True,
        check=True,
    )
    return findmnt.stdout.strip()


async def json_lines(response: Any) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (await response.text()).splitlines()]


# --------------------------------------------------------------------------------------
# /_ping and the headers of every response


@pytest.mark.parametrize("prefix", ["", "/v1.47"])
@pytest.mark.parametrize("method", ["HEAD", "GET"])
async def test_ping(api: MakeClient, method: str, prefix: str) -> None:
    client = await api()
    response = await client.request(method, prefix + "/_ping")
    assert response.status == 200
    for name, value in PING_HEADERS.items():
        assert response.headers[name] == value, name
    match = SERVER_RE.match(response.headers["Server"])
    assert match is not None
    assert match.group(1) == "linux"
    if method == "GET":
        assert await response.text() == "OK"
    else:
        assert response.headers["Content-Length"] == "0"
        assert response.headers["Content-Type"].startswith("text/plain")
        assert await response.read() == b""


@pytest.mark.parametrize(("method", "path"), ROUTES)
async def test_every_route_with_and_without_the_version_prefix(
    api: MakeClient, method: str, path: str
) -> None:
    client = await api()
    for prefix in ("", "/v1.47", "/v1.43", "/v1.24"):
        response = await client.request(method, prefix + path)
        assert response.status == 200, (prefix + path, await response.text())
        for name in ("Api-Version", "Ostype", "Docker-Experimental"):
            assert response.headers[name] == PING_HEADERS[name]
        match = SERVER_RE.match(response.headers["Server"])
        assert match is not None
        assert match.group(1) == "linux"
        if method == "GET" and path != "/_ping":
            assert response.headers["Content-Type"] == "application/json"


@pytest.mark.parametrize(("method", "path"), ROUTES)
async def test_a_version_too_new_is_400(api: MakeClient, method: str, path: str) -> None:
    client = await api()
    response = await client.request(method, "/v1.99" + path)
    assert response.status == 400
    assert response.headers["Content-Type"] == "application/json"
    if method == "GET":
        assert await response.json() == {
            "message": "client version 1.99 is too new. Maximum supported API version is 1.47"
        }


@pytest.mark.parametrize("version", ["1.12", "1.5", "1.23"])
async def test_a_version_too_old_is_400(api: MakeClient, version: str) -> None:
    client = await api()
    response = await client.get(f"/v{version}/info")
    assert response.status == 400
    assert await response.json() == {
        "message": f"client version {version} is too old. Minimum supported API version is "
        "1.24, please upgrade your client to a newer version"
    }


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/nope"),
        ("GET", "/v1.47/nope"),
        ("GET", "/v1.47/swarm"),
        ("POST", "/info"),
        ("POST", "/v1.47/_ping"),
        ("DELETE", "/version"),
        ("PUT", "/v1.47/plugins"),
        ("GET", "/vx.y/info"),
    ],
)
async def test_unknown_path_or_method_is_page_not_found(
    api: MakeClient, method: str, path: str
) -> None:
    client = await api()
    response = await client.request(method, path)
    assert response.status == 404
    assert response.headers["Content-Type"] == "application/json"  # exactly: the CLI needs it
    assert await response.json() == {"message": "page not found"}
    match = SERVER_RE.match(response.headers["Server"])
    assert match is not None
    assert match.group(1) == "linux"


# --------------------------------------------------------------------------------------
# /version and /info


async def test_version(api: MakeClient) -> None:
    client = await api()
    for path in ("/version", "/v1.47/version"):  # docker-py asks unversioned first
        body = await (await client.get(path)).json()
        daemon = client.app[DAEMON]
        assert body["ApiVersion"] == "1.47"
        assert body["MinAPIVersion"] == "1.24"
        assert body["Version"] == daemon.version != ""
        assert body["Os"] == "linux"
        assert body["Arch"] == {"x86_64": "amd64", "aarch64": "arm64"}.get(
            os.uname().machine, os.uname().machine
        )
        assert body["KernelVersion"] == os.uname().release
        assert body["Platform"]["Name"].startswith("pydockerd ")
        assert body["Experimental"] is False
        for key in ("GitCommit", "GoVersion", "BuildTime"):
            assert isinstance(body[key], str), key
        engine = body["Components"][0]
        assert engine["Name"] == "Engine"
        assert engine["Version"] == body["Version"]
        details = engine["Details"]
        assert (details["ApiVersion"], details["MinAPIVersion"]) == ("1.47", "1.24")
        assert details["Os"] == "linux"
        assert details["KernelVersion"] == os.uname().release
        assert all(isinstance(value, str) for value in details.values())


async def test_info(api: MakeClient, roots: Path) -> None:
    client = await api(storage_driver="vfs")
    info = await (await client.get("/v1.47/info")).json()
    daemon = client.app[DAEMON]
    assert info["ID"] == daemon.id
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", info["ID"])
    assert info["Driver"] == "vfs"
    status = dict(map(tuple, info["DriverStatus"]))
    assert status["Selected Because"] == "named in the configuration"
    assert status["Driver Status"] == "ok"
    assert status["Backing Filesystem"] == filesystem_type(roots / "data")
    assert info["Plugins"]["Storage"] == ["overlay", "vfs"]
    assert info["Plugins"]["Network"] == ["bridge", "host", "null"]
    assert info["Plugins"]["Authorization"] == []
    assert info["Plugins"]["Volume"] == ["local"]
    assert info["DockerRootDir"] == str(roots / "data")
    assert info["CgroupVersion"] == cgroup_version_from_mounts()
    assert info["KernelVersion"] == os.uname().release
    assert info["OSType"] == "linux"
    assert info["Architecture"] == os.uname().machine
    assert info["NCPU"] == os.cpu_count()
    pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    assert info["MemTotal"] == pages > 0
    assert info["ServerVersion"] == daemon.version
    assert info["Name"] == os.uname().nodename
    assert info["Swarm"]["LocalNodeState"] == "inactive"
    assert info["Warnings"] == []
    rows = {(p["Kind"], p["Name"]): p["Status"] for p in info["PydockerdPlugins"]}
    assert rows[("storage", "vfs")] == rows[("network", "host")] == "ok"


@pytest.mark.privileged
def test_cgroup_version_is_the_visible_mount(short_tmp: Path) -> None:
    """With cgroup2 mounted over /sys/fs/cgroup (in a private mount namespace), /info reports
    the mount on top, not the one it hides."""
    code = "from pydockerd import sysinfo; print(sysinfo.cgroup_version())"
    script = short_tmp / "check.sh"
    script.write_text(
        "set -e\n"
        "mount --make-rprivate /\n"
        "mount -t tmpfs none /sys/fs/cgroup\n"
        "mount -t cgroup2 none /sys/fs/cgroup\n"
        f"exec {sys.executable} -c '{code}'\n"
    )
    result = subprocess.run(
        ["unshare", "--mount", "sh", str(script)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "2"


async def test_the_engine_id_is_stable_across_daemons_on_one_data_root(
    aiohttp_client: Any, make_daemon: MakeDaemon
) -> None:
    from pydockerd.api.app import create_app

    first = await make_daemon()
    id_first = (await (await (await aiohttp_client(create_app(first))).get("/info")).json())["ID"]
    await first.close()
    second = await make_daemon()
    id_second = (await (await (await aiohttp_client(create_app(second))).get("/info")).json())["ID"]
    assert id_first == id_second == first.id != ""


# --------------------------------------------------------------------------------------
# /events


async def test_events_replay_the_window_and_end_at_until(api: MakeClient) -> None:
    client = await api()
    daemon = client.app[DAEMON]
    daemon.emit("daemon", "reload", daemon.id, name="before")
    await asyncio.sleep(0.002)
    since = time.time()
    reload = daemon.emit("daemon", "reload", daemon.id, name="host")
    start = daemon.emit("container", "start", "c" * 64, name="web", image="busybox")
    until = time.time() + 0.3
    started = time.monotonic()
    response = await client.get(f"/v1.47/events?since={since}&until={until}")
    assert response.status == 200
    assert response.headers["Content-Type"] == "application/json"
    lines = await json_lines(response)
    elapsed = time.monotonic() - started
    assert lines == [reload.to_api(), start.to_api()]
    assert 0.1 < elapsed < 5, "the stream stays open until `until`, then ends"


async def test_events_stream_live_events_until_until(api: MakeClient) -> None:
    client = await api()
    daemon = client.app[DAEMON]
    until = time.time() + 0.5

    async def later() -> None:
        for _ in range(500):
            if daemon.events.subscriber_count:
                break
            await asyncio.sleep(0.01)
        daemon.emit("container", "die", "d" * 64, name="job", exitCode="0")

    task = asyncio.create_task(later())
    response = await client.get(f"/events?until={until}")
    lines = await json_lines(response)
    await task
    assert [(line["Type"], line["Action"]) for line in lines] == [("container", "die")]
    assert lines[0]["Actor"]["Attributes"] == {"name": "job", "exitCode": "0"}


async def test_events_until_in_the_past_ends_at_once(api: MakeClient) -> None:
    client = await api()
    daemon = client.app[DAEMON]
    daemon.emit("daemon", "reload", daemon.id)
    started = time.monotonic()
    response = await client.get("/events?until=1")
    assert await response.text() == ""
    assert time.monotonic() - started < 1


@pytest.mark.parametrize(
    ("filters", "actions"),
    [
        ('{"type":["container"]}', ["start", "die"]),
        ('{"type":{"daemon":true}}', ["reload"]),
        ('{"container":{"web":true}}', ["start"]),
        ('{"event":["die","reload"]}', ["reload", "die"]),
        ('{"label":["tier=front"]}', ["start"]),
        ('{"type":["container"],"event":["reload"]}', []),
    ],
)
async def test_events_filters(api: MakeClient, filters: str, actions: list[str]) -> None:
    client = await api()
    daemon = client.app[DAEMON]
    since = time.time()
    daemon.emit("daemon", "reload", daemon.id, name="host")
    daemon.emit("container", "start", "a" * 64, name="web", tier="front")
    daemon.emit("container", "die", "b" * 64, name="db", tier="back")
    response = await client.get(
        "/events", params={"since": str(since), "until": str(time.time()), "filters": filters}
    )
    assert [line["Action"] for line in await json_lines(response)] == actions


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"filters": '{"nonsense":["x"]}'}, "invalid filter 'nonsense'"),
        ({"filters": "{broken"}, "invalid filter: "),
        ({"since": "yesterday"}, "invalid value for since: 'yesterday'"),
        ({"until": "--1"}, "invalid value for until: '--1'"),
    ],
)
async def test_events_bad_parameters_are_400(
    api: MakeClient, query: dict[str, str], message: str
) -> None:
    client = await api()
    response = await client.get("/events", params=query)
    assert response.status == 400
    assert response.headers["Content-Type"] == "application/json"
    assert (await response.json())["message"].startswith(message)


# --------------------------------------------------------------------------------------
# /plugins


async def test_plugins_list(api: MakeClient) -> None:
    client = await api()
    body = await (await client.get("/v1.47/plugins")).json()
    by_name = {item["Name"]: item for item in body}
    assert {"storage.overlay", "storage.vfs", "network.bridge", "network.host"} <= set(by_name)
    vfs = by_name["storage.vfs"]
    assert (vfs["Kind"], vfs["Driver"], vfs["Plugin"]) == ("storage", "vfs", "vfs")
    assert (vfs["Package"], vfs["PluginReference"]) == ("pydockerd-storage-vfs",) * 2
    assert (vfs["Status"], vfs["Enabled"], vfs["Reason"]) == ("ok", True, "")
    assert re.fullmatch(r"[0-9a-f]{64}", vfs["Id"])
    assert vfs["Config"]["Interface"]["Types"] == ["pydockerd.storage/v1"]


@pytest.mark.parametrize(
    ("filters", "names"),
    [
        ('{"kind":["network"]}', ["network.bridge", "network.host", "network.null"]),
        ('{"kind":{"storage":true}}', ["storage.overlay", "storage.vfs"]),
        (
            '{"kind":["storage","network"]}',
            ["network.bridge", "network.host", "network.null", "storage.overlay", "storage.vfs"],
        ),
        ('{"status":["skip"]}', []),
        ('{"status":["ok"],"kind":["storage"]}', ["storage.overlay", "storage.vfs"]),
        ('{"enabled":["false"]}', []),
    ],
)
async def test_plugins_filters(api: MakeClient, filters: str, names: list[str]) -> None:
    client = await api()
    response = await client.get("/plugins", params={"filters": filters})
    assert response.status == 200
    assert sorted(item["Name"] for item in await response.json()) == names


async def test_plugins_filter_by_status_shows_a_disabled_plugin(api: MakeClient) -> None:
    client = await api(disable_plugins=["bridge"])
    body = await (await client.get('/plugins?filters={"status":["disabled"]}')).json()
    assert [(item["Name"], item["Kind"], item["Enabled"]) for item in body] == [
        ("bridge", "plugin", False)
    ]
    assert body[0]["Reason"] == "disabled by configuration (disable_plugins)"
    ok = await (await client.get('/plugins?filters={"status":["ok"],"kind":["network"]}')).json()
    assert [item["Name"] for item in ok] == ["network.host", "network.null"]


async def test_plugins_bad_filter_is_400(api: MakeClient) -> None:
    client = await api()
    response = await client.get('/plugins?filters={"colour":["red"]}')
    assert response.status == 400
    assert await response.json() == {"message": "invalid filter 'colour'"}


async def test_plugin_inspect_by_name_and_by_id_prefix(api: MakeClient) -> None:
    client = await api()
    vfs = await (await client.get("/plugins/storage.vfs/json")).json()
    assert (vfs["Name"], vfs["Driver"]) == ("storage.vfs", "vfs")
    for ident in (vfs["Id"], vfs["Id"][:12], vfs["Id"][:3]):
        response = await client.get(f"/v1.47/plugins/{ident}/json")
        assert response.status == 200, ident
        assert await response.json() == vfs


@pytest.mark.parametrize("name", ["storage.zfs", "zfs", "ab"])
async def test_plugin_inspect_unknown_is_404(api: MakeClient, name: str) -> None:
    client = await api()
    response = await client.get(f"/plugins/{name}/json")
    assert response.status == 404
    assert response.headers["Content-Type"] == "application/json"
    assert await response.json() == {"message": f'plugin "{name}" not found'}
