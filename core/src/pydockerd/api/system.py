"""``/_ping``, ``/version``, ``/info`` and ``/events``."""

from __future__ import annotations

import asyncio
import json
import os
import platform
import socket
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp import web

from pydockerd import API_VERSION, MIN_API_VERSION, sysinfo
from pydockerd.api.images import image_summary
from pydockerd.api.keys import DAEMON
from pydockerd.api.params import parse_filters, parse_timestamp_ns
from pydockerd.api.responses import json_response
from pydockerd.builder.cache import BuildCache
from pydockerd.daemon import Daemon
from pydockerd.events import EVENT_FILTERS, event_matches
from pydockerd.images.transfer import registry_info
from pydockerd.plugin import Event

__all__ = ["ROUTES"]

_PING_HEADERS = {
    "Api-Version": API_VERSION,
    "Builder-Version": "1",
    "Docker-Experimental": "false",
    "Ostype": "linux",
    "Swarm": "inactive",
    "Cache-Control": "no-cache, no-store, must-revalidate",
    "Pragma": "no-cache",
}

_CLIENT_CHECK_INTERVAL = 1.0
"""Seconds between checks that an idle ``/events`` client is still connected."""

# The Plugins map of /info: Docker's keys, then pydockerd's driver kinds.
_INFO_PLUGIN_KEYS = {
    "network": "Network",
    "log": "Log",
    "storage": "Storage",
    "runtime": "Runtime",
    "registry": "Registry",
    "volume": "Volume",
}


async def ping(request: web.Request) -> web.StreamResponse:
    if request.method == "HEAD":
        return web.Response(
            headers={**_PING_HEADERS, "Content-Length": "0"}, content_type="text/plain"
        )
    return web.Response(text="OK", headers=_PING_HEADERS)


def _build_time() -> str:
    return datetime.fromtimestamp(Path(__file__).stat().st_mtime, UTC).isoformat()


async def version(request: web.Request) -> web.StreamResponse:
    daemon = request.app[DAEMON]
    details = {
        "ApiVersion": API_VERSION,
        "MinAPIVersion": MIN_API_VERSION,
        "GitCommit": "",
        "GoVersion": f"python{platform.python_version()}",
        "Os": "linux",
        "Arch": sysinfo.go_arch(),
        "KernelVersion": sysinfo.kernel_version(),
        "BuildTime": _build_time(),
        "Experimental": False,
    }
    return json_response(
        {
            "Platform": {"Name": f"pydockerd {daemon.version}"},
            "Components": [
                {
                    "Name": "Engine",
                    "Version": daemon.version,
                    "Details": {
                        k: str(v).lower() if isinstance(v, bool) else v for k, v in details.items()
                    },
                }
            ],
            "Version": daemon.version,
            **details,
        }
    )


def _plugins_by_kind(daemon: Daemon) -> dict[str, list[str]]:
    by_kind: dict[str, list[str]] = {"Authorization": []}
    by_kind.update({key: [] for key in _INFO_PLUGIN_KEYS.values()})
    for row in daemon.manager.components:
        if row.kind in _INFO_PLUGIN_KEYS and row.status == "ok":
            by_kind[_INFO_PLUGIN_KEYS[row.kind]].append(row.name)
    authz = daemon.manager.pm.hook.pydockerd_authorize_request.get_hookimpls()
    by_kind["Authorization"] = sorted({impl.plugin_name for impl in authz})
    return by_kind


def info_body(daemon: Daemon) -> dict[str, Any]:
    """``GET /info``: Docker's SystemInfo fields pydockerd can fill truthfully, plus
    ``PydockerdPlugins`` (every plugin and driver with its status)."""
    settings = daemon.settings
    storage = daemon.storage.component if daemon.storage else None
    warnings = [
        f"{row.kind} driver {row.name} ({row.plugin.name}): {row.status}: {row.reason}"
        for row in daemon.manager.components
        if row.status == "error"
    ]
    cgroup_version = sysinfo.cgroup_version()
    states = (
        [c.state.status for c in daemon.containers.containers.values()] if daemon.containers else []
    )
    running = sum(1 for s in states if s in ("running", "restarting"))
    paused = states.count("paused")
    runtimes = sorted(daemon.containers.runtimes) if daemon.containers else []
    return {
        "ID": daemon.id,
        "Containers": len(states),
        "ContainersRunning": running,
        "ContainersPaused": paused,
        "ContainersStopped": len(states) - running - paused,
        "Images": len(daemon.images.store.images()) if daemon.images else 0,
        "Driver": storage.name if storage else "",
        "DriverStatus": [
            ["Backing Filesystem", sysinfo.backing_filesystem(settings.data_root)],
            ["Driver Status", storage.status if storage else ""],
            ["Selected Because", daemon.storage.rule if daemon.storage else ""],
        ],
        "Plugins": _plugins_by_kind(daemon),
        "MemoryLimit": cgroup_version != "",
        "SwapLimit": False,
        "CpuCfsPeriod": cgroup_version != "",
        "CpuCfsQuota": cgroup_version != "",
        "CPUShares": cgroup_version != "",
        "CPUSet": cgroup_version != "",
        "PidsLimit": cgroup_version != "",
        "IPv4Forwarding": _ipv4_forwarding(),
        "Debug": settings.log_level == "debug",
        "NFd": sum(1 for _ in Path("/proc/self/fd").iterdir()),
        "NGoroutines": len(asyncio.all_tasks()),
        "SystemTime": datetime.now(UTC).isoformat(),
        "LoggingDriver": settings.log_driver,
        "CgroupDriver": "cgroupfs" if cgroup_version else "none",
        "CgroupVersion": cgroup_version,
        "NEventsListener": daemon.events.subscriber_count,
        "KernelVersion": sysinfo.kernel_version(),
        "OperatingSystem": sysinfo.operating_system(),
        "OSVersion": "",
        "OSType": "linux",
        "Architecture": sysinfo.architecture(),
        "NCPU": os.cpu_count() or 1,
        "MemTotal": sysinfo.mem_total(),
        "IndexServerAddress": "https://index.docker.io/v1/",
        "RegistryConfig": registry_info(settings.registries),
        "GenericResources": None,
        "DockerRootDir": str(settings.data_root),
        "HttpProxy": os.environ.get("HTTP_PROXY", ""),
        "HttpsProxy": os.environ.get("HTTPS_PROXY", ""),
        "NoProxy": os.environ.get("NO_PROXY", ""),
        "Name": socket.gethostname(),
        "Labels": [],
        "ExperimentalBuild": False,
        "ServerVersion": daemon.version,
        "Runtimes": {name: {"path": f"pydockerd-runtime-{name}"} for name in runtimes},
        "DefaultRuntime": settings.default_runtime,
        "Swarm": {
            "NodeID": "",
            "NodeAddr": "",
            "LocalNodeState": "inactive",
            "ControlAvailable": False,
            "Error": "",
            "RemoteManagers": None,
        },
        "LiveRestoreEnabled": False,
        "Isolation": "",
        "InitBinary": "",
        "SecurityOptions": [],
        "Warnings": warnings,
        "PydockerdPlugins": [
            {
                "Kind": row.kind,
                "Name": row.name,
                "Plugin": row.plugin.name,
                "Status": row.status,
                "Reason": row.reason,
            }
            for row in daemon.manager.components
        ],
    }


async def system_df(request: web.Request) -> web.StreamResponse:
    """``GET /system/df``: what images, containers and volumes take on disk."""
    daemon = request.app[DAEMON]
    body: dict[str, Any] = {
        "LayersSize": 0,
        "Images": [],
        "Containers": [],
        "Volumes": [],
        "BuildCache": [],
    }
    images = daemon.images
    if images is not None:
        body["Images"] = [
            image_summary(images, image, images.config(image.id)) for image in images.store.images()
        ]
        body["LayersSize"] = sum(layer.size for layer in images.store.layers())
        body["BuildCache"] = BuildCache(images).usage()
    if daemon.containers is not None:
        containers = daemon.containers
        listed = containers.listing(all_=True, limit=-1, filters={})
        body["Containers"] = [
            c.summary(await containers.size(c), attachments)
            for c, attachments in zip(listed, containers.attachments_of(listed), strict=True)
        ]
    if daemon.volumes is not None:
        body["Volumes"] = [
            await daemon.volumes.inspect(v, usage=True) for v in daemon.volumes.volumes()
        ]
    return json_response(body)


def _ipv4_forwarding() -> bool:
    try:
        return Path("/proc/sys/net/ipv4/ip_forward").read_text().strip() == "1"
    except OSError:
        return False


async def info(request: web.Request) -> web.StreamResponse:
    return json_response(info_body(request.app[DAEMON]))


async def events(request: web.Request) -> web.StreamResponse:
    """Stream events as JSON lines: the recorded ones since ``since``, then live ones until
    ``until`` (or until the client leaves, or the daemon stops)."""
    daemon = request.app[DAEMON]
    since = parse_timestamp_ns(request.query.get("since"), "since")
    until = parse_timestamp_ns(request.query.get("until"), "until")
    filters = parse_filters(request.query.get("filters"), EVENT_FILTERS)
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    response.enable_chunked_encoding()

    async def send(event: Event) -> None:
        if event_matches(event, filters):
            await response.write(json.dumps(event.to_api()).encode() + b"\n")

    def in_window(event: Event) -> bool:
        return (since is None or event.time_nano >= since) and (
            until is None or event.time_nano <= until
        )

    def client_gone() -> bool:
        return request.transport is None or request.transport.is_closing()

    # Subscribe before reading the history, so no event falls between the two; an event in
    # both is sent once.
    async with daemon.events.subscribe() as queue:
        await response.prepare(request)
        replayed = daemon.events.history(since, until) if since is not None else []
        try:
            for event in replayed:
                await send(event)
            seen = {id(e) for e in replayed}
            while not client_gone() and (until is None or time.time_ns() < until):
                wait = _CLIENT_CHECK_INTERVAL
                if until is not None:
                    wait = min(wait, (until - time.time_ns()) / 1e9)
                try:
                    live = await asyncio.wait_for(queue.get(), max(wait, 0))
                except TimeoutError:
                    continue
                if live is None:
                    break
                if id(live) not in seen and in_window(live):
                    await send(live)
            await response.write_eof()
        except ConnectionResetError:
            pass  # the client left; nothing to tell it
    return response


ROUTES = [
    ("GET", "/_ping", ping),
    ("HEAD", "/_ping", ping),
    ("GET", "/version", version),
    ("GET", "/info", info),
    ("GET", "/events", events),
    ("GET", "/system/df", system_df),
]
