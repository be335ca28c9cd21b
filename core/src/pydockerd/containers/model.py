"""A container as the daemon keeps it, on disk and in the Engine API's shapes.

Each container lives in ``<data-root>/containers/<id>/``: ``container.json`` (this model,
rewritten atomically on every change), its log files, ``hosts``, ``hostname``,
``resolv.conf``, and ``exit.json`` (written by the supervisor when its process ends).
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydockerd.containers.config import MountPoint, RestartPolicy, restart_policy
from pydockerd.fsutil import write_atomically

__all__ = [
    "ZERO_TIME",
    "Attachment",
    "Container",
    "State",
    "now_rfc3339",
    "parse_rfc3339",
    "rfc3339_nano",
    "status_line",
]

ZERO_TIME = "0001-01-01T00:00:00Z"
"""Go's zero time, which Docker shows for times that never happened."""


def rfc3339_nano(nanos: int) -> str:
    """``2025-01-02T03:04:05.123456789Z``, as Go formats ``time.RFC3339Nano`` in UTC
    (trailing zeros of the fraction dropped)."""
    seconds, fraction = divmod(nanos, 1_000_000_000)
    stamp = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    digits = f"{fraction:09d}".rstrip("0")
    return f"{stamp}.{digits}Z" if digits else f"{stamp}Z"


def now_rfc3339() -> str:
    """Now, in UTC: ``2025-01-02T03:04:05.123456Z`` (the ``Created`` of images and networks)."""
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


@functools.lru_cache(maxsize=4096)
def parse_rfc3339(text: str) -> float:
    """Seconds since the epoch of an RFC 3339 time (``0`` for Go's zero time)."""
    if not text or text.startswith("0001-"):
        return 0.0
    head, _, rest = text.partition(".")
    fraction = rest.rstrip("Z").split("+")[0].split("-")[0] if rest else ""
    moment = datetime.fromisoformat(head.rstrip("Z") + "+00:00")
    return moment.timestamp() + (float(f"0.{fraction}") if fraction else 0.0)


@dataclass(frozen=True)
class Attachment:
    """One network of a container, as ``NetworkSettings.Networks`` shows it; the endpoint
    fields are empty while the container does not run."""

    network: str
    network_id: str
    gateway: str = ""
    endpoint_id: str = ""
    address: str = ""
    """With the prefix length: ``10.210.0.2/16``."""
    mac: str = ""
    aliases: tuple[str, ...] = ()
    requested_address: str = ""
    dns_names: tuple[str, ...] = ()

    def to_api(self) -> dict[str, Any]:
        ip, _, prefix = self.address.partition("/")
        return {
            "IPAMConfig": {"IPv4Address": self.requested_address}
            if self.requested_address
            else None,
            "Links": None,
            "Aliases": list(self.aliases) or None,
            "MacAddress": self.mac,
            "DriverOpts": None,
            "GwPriority": 0,
            "NetworkID": self.network_id,
            "EndpointID": self.endpoint_id,
            "Gateway": self.gateway if ip else "",
            "IPAddress": ip,
            "IPPrefixLen": int(prefix) if prefix else 0,
            "IPv6Gateway": "",
            "GlobalIPv6Address": "",
            "GlobalIPv6PrefixLen": 0,
            "DNSNames": list(self.dns_names) or None,
        }


@dataclass
class State:
    """``State`` of inspect. ``status`` is one of created, running, paused, restarting,
    removing, exited, dead."""

    status: str = "created"
    pid: int = 0
    exit_code: int = 0
    error: str = ""
    started_at: str = ZERO_TIME
    finished_at: str = ZERO_TIME
    oom_killed: bool = False

    @property
    def running(self) -> bool:
        """Running as Docker counts it: a paused or restarting container is running too."""
        return self.status in ("running", "paused", "restarting")

    @property
    def has_process(self) -> bool:
        """Its first process exists: running or paused (``State.Running`` of inspect)."""
        return self.status in ("running", "paused")

    def to_api(self) -> dict[str, Any]:
        return {
            "Status": self.status,
            "Running": self.has_process,
            "Paused": self.status == "paused",
            "Restarting": self.status == "restarting",
            "OOMKilled": self.oom_killed,
            "Dead": self.status == "dead",
            "Pid": self.pid if self.has_process else 0,
            "ExitCode": self.exit_code,
            "Error": self.error,
            "StartedAt": self.started_at,
            "FinishedAt": self.finished_at,
        }


@dataclass
class Container:
    """One container: what it was created with, and where it stands."""

    id: str
    name: str
    created: str
    image_id: str
    image: str
    """The image as the create request named it (``busybox``), for ``ps`` and events."""
    config: dict[str, Any]
    host_config: dict[str, Any]
    path: str
    args: list[str]
    directory: Path
    storage_driver: str
    runtime: str
    log_driver: str
    log_options: dict[str, str] = field(default_factory=dict)
    image_layer: str = ""
    """Chain ID of the image's top layer, which the container's layer stands on: kept even
    if the image is deleted (``rmi -f``), so its layers are never collected under it."""
    mounts: list[MountPoint] = field(default_factory=list)
    networking_config: dict[str, Any] = field(default_factory=dict)
    """``{"EndpointsConfig": {network name: endpoint settings}}``, the primary network first."""
    ports: list[dict[str, Any]] = field(default_factory=list)
    """Published ports while it runs: ``HostIp``, ``HostPort``, ``PrivatePort``, ``Type``."""
    state: State = field(default_factory=State)
    restart_count: int = 0
    manually_stopped: bool = False

    # -- persistence ----------------------------------------------------------------

    @property
    def file(self) -> Path:
        return self.directory / "container.json"

    @property
    def exit_file(self) -> Path:
        return self.directory / "exit.json"

    @property
    def log_path(self) -> str:
        return str(self.directory / f"{self.id}-json.log") if self.log_driver == "json-file" else ""

    def save(self) -> None:
        body = asdict(self)
        body["directory"] = str(self.directory)
        body["mounts"] = [m.to_dict() for m in self.mounts]
        write_atomically(self.file, json.dumps(body))

    @classmethod
    def load(cls, path: Path) -> Container:
        data = json.loads(path.read_text())
        data["directory"] = path.parent
        data["state"] = State(**data["state"])
        data["mounts"] = [MountPoint.from_dict(m) for m in data.get("mounts", [])]
        return cls(**data)

    # -- derived --------------------------------------------------------------------

    @property
    def restart_policy(self) -> RestartPolicy:
        return restart_policy(self.host_config)

    @property
    def labels(self) -> dict[str, str]:
        return dict(self.config.get("Labels") or {})

    @property
    def tty(self) -> bool:
        return bool(self.config.get("Tty"))

    def event_attributes(self, **extra: str) -> dict[str, str]:
        """What Docker puts in a container event: its labels, image and name."""
        return {**self.labels, "image": self.image, "name": self.name, **extra}

    def command_line(self) -> str:
        """``Command`` of ``ps``: the program and its arguments, space-separated."""
        return " ".join([self.path, *self.args])

    # -- Engine API shapes ------------------------------------------------------------

    def inspect(
        self,
        graph_driver: dict[str, str],
        size: tuple[int, int] | None,
        attachments: Sequence[Attachment] = (),
    ) -> dict[str, Any]:
        """``GET /containers/{id}/json``."""
        body: dict[str, Any] = {
            "Id": self.id,
            "Created": self.created,
            "Path": self.path,
            "Args": self.args,
            "State": self.state.to_api(),
            "Image": self.image_id,
            "ResolvConfPath": str(self.directory / "resolv.conf"),
            "HostnamePath": str(self.directory / "hostname"),
            "HostsPath": str(self.directory / "hosts"),
            "LogPath": self.log_path,
            "Name": f"/{self.name}",
            "RestartCount": self.restart_count,
            "Driver": self.storage_driver,
            "Platform": "linux",
            "MountLabel": "",
            "ProcessLabel": "",
            "AppArmorProfile": "",
            "ExecIDs": None,
            "HostConfig": {
                **self.host_config,
                "LogConfig": {"Type": self.log_driver, "Config": self.log_options},
                "Runtime": self.runtime,
            },
            "GraphDriver": {"Name": self.storage_driver, "Data": graph_driver or None},
            "Mounts": [m.to_api() for m in self.mounts],
            "Config": self.config,
            "NetworkSettings": self.network_settings(attachments),
        }
        if size is not None:
            body["SizeRw"], body["SizeRootFs"] = size
        return body

    def network_settings(self, attachments: Sequence[Attachment]) -> dict[str, Any]:
        """``NetworkSettings``: each network the container is on, its address there while it
        runs, and its published ports. The top-level address fields are the default bridge
        network's, as Docker fills them."""
        networks = {a.network: a.to_api() for a in attachments}
        default = next((a for a in attachments if a.network == "bridge"), None)
        address = default.address if default else ""
        running = self.state.has_process
        return {
            "Bridge": "",
            "SandboxID": self.id if running else "",
            "SandboxKey": f"/proc/{self.state.pid}/ns/net" if running else "",
            "HairpinMode": False,
            "LinkLocalIPv6Address": "",
            "LinkLocalIPv6PrefixLen": 0,
            "Ports": self.port_map() if running else {},
            "SecondaryIPAddresses": None,
            "SecondaryIPv6Addresses": None,
            "EndpointID": default.endpoint_id if default else "",
            "Gateway": default.gateway if default and address else "",
            "GlobalIPv6Address": "",
            "GlobalIPv6PrefixLen": 0,
            "IPAddress": address.split("/")[0],
            "IPPrefixLen": int(address.split("/")[1]) if address else 0,
            "IPv6Gateway": "",
            "MacAddress": default.mac if default else "",
            "Networks": networks,
        }

    def port_map(self) -> dict[str, list[dict[str, str]] | None]:
        """``NetworkSettings.Ports``: every exposed or published port, with its bindings."""
        exposed = self.config.get("ExposedPorts") or {}
        result: dict[str, list[dict[str, str]] | None] = dict.fromkeys(exposed)
        for binding in self.ports:
            key = f"{binding['PrivatePort']}/{binding['Type']}"
            result.setdefault(key, None)
            result[key] = [
                *(result[key] or []),
                {"HostIp": binding["HostIp"], "HostPort": str(binding["HostPort"])},
            ]
        return result

    def port_summary(self) -> list[dict[str, Any]]:
        """``Ports`` of ``ps``: published ports with their host side, exposed ones without."""
        if not self.state.has_process:
            return []
        published = {(b["PrivatePort"], b["Type"]) for b in self.ports}
        summary: list[dict[str, Any]] = [
            {
                "IP": b["HostIp"],
                "PrivatePort": b["PrivatePort"],
                "PublicPort": b["HostPort"],
                "Type": b["Type"],
            }
            for b in self.ports
        ]
        for port in self.config.get("ExposedPorts") or {}:
            number, _, protocol = port.partition("/")
            if (int(number), protocol or "tcp") not in published:
                summary.append({"PrivatePort": int(number), "Type": protocol or "tcp"})
        return summary

    def summary(
        self, size: tuple[int, int] | None, attachments: Sequence[Attachment] = ()
    ) -> dict[str, Any]:
        """One item of ``GET /containers/json``."""
        body: dict[str, Any] = {
            "Id": self.id,
            "Names": [f"/{self.name}"],
            "Image": self.image,
            "ImageID": self.image_id,
            "Command": self.command_line(),
            "Created": int(parse_rfc3339(self.created)),
            "Ports": self.port_summary(),
            "Labels": self.labels,
            "State": self.state.status,
            "Status": status_line(self.state),
            "HostConfig": {"NetworkMode": self.host_config.get("NetworkMode", "bridge")},
            "NetworkSettings": {"Networks": {a.network: a.to_api() for a in attachments}},
            "Mounts": [m.to_api() for m in self.mounts],
        }
        if size is not None:
            body["SizeRw"], body["SizeRootFs"] = size
        return body


def human_duration(seconds: float) -> str:
    """Go's ``units.HumanDuration``, which ``ps`` uses: ``Less than a second``,
    ``5 seconds``, ``About a minute``, ``3 hours``, ``2 weeks``, ``3 months``..."""
    if seconds < 1:
        return "Less than a second"
    if seconds < 2:
        return "1 second"
    if seconds < 60:
        return f"{int(seconds)} seconds"
    minutes = seconds / 60
    if minutes < 2:
        return "About a minute"
    if minutes < 60:
        return f"{int(minutes)} minutes"
    hours = int(seconds / 3600 + 0.5)  # Go rounds the duration to the hour, halves up
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{int(seconds / 3600) // 24 // 365} years"


def status_line(state: State, now: float | None = None) -> str:
    """``Status`` of ``ps``: ``Up 2 seconds``, ``Exited (0) 3 seconds ago``, ``Created``..."""
    now = time.time() if now is None else now
    if state.has_process:
        line = f"Up {human_duration(now - parse_rfc3339(state.started_at))}"
        return f"{line} (Paused)" if state.status == "paused" else line
    if state.status == "restarting":
        ago = human_duration(now - parse_rfc3339(state.finished_at))
        return f"Restarting ({state.exit_code}) {ago} ago"
    if state.status == "removing":
        return "Removal In Progress"
    if state.status == "dead":
        return "Dead"
    if state.status == "exited":
        if parse_rfc3339(state.finished_at) == 0:
            return (
                "Created" if parse_rfc3339(state.started_at) == 0 else f"Exited ({state.exit_code})"
            )
        ago = human_duration(now - parse_rfc3339(state.finished_at))
        return f"Exited ({state.exit_code}) {ago} ago"
    return "Created"
