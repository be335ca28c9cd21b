"""A create request made into a container's configuration, by Docker's rules.

The request's ``Config`` is merged with the image's config (moby's ``merge``), ``HostConfig``
is checked and completed with defaults, and the mounts (``Binds``, ``Mounts``, ``Tmpfs``
and the ``Volumes`` of image and request) become one list of :class:`MountPoint`. Every
refusal is :class:`~pydockerd.errors.InvalidParameter` with moby's message.
"""

from __future__ import annotations

import copy
import functools
import ipaddress
import os
import re
import signal
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from pydockerd.errors import InvalidParameter
from pydockerd.spec import ALL_CAPABILITIES, DEFAULT_CAPABILITIES
from pydockerd.volumes.names import check_volume_name

__all__ = [
    "MIN_MEMORY",
    "MountPoint",
    "PortRequest",
    "RestartPolicy",
    "capabilities",
    "command_of",
    "container_config",
    "host_config",
    "merge_image_config",
    "mount_points",
    "parse_signal",
    "port_requests",
    "restart_policy",
]

MIN_MEMORY = 6 * 1024 * 1024
"""moby's smallest ``--memory``."""

_RESTART_POLICIES = ("no", "always", "unless-stopped", "on-failure")
_PROPAGATIONS = frozenset({"private", "rprivate", "shared", "rshared", "slave", "rslave"})
_BIND_MODES = frozenset({"ro", "rw", "z", "Z", "nocopy", *_PROPAGATIONS})


@dataclass(frozen=True)
class RestartPolicy:
    name: str = "no"
    maximum_retry_count: int = 0

    def restarts_after(self, exit_code: int, restart_count: int, manually_stopped: bool) -> bool:
        """Whether a container that just exited with ``exit_code`` is started again."""
        if manually_stopped or self.name == "no":
            return False
        if self.name == "on-failure":
            return exit_code != 0 and (
                self.maximum_retry_count == 0 or restart_count < self.maximum_retry_count
            )
        return True


@dataclass(frozen=True)
class MountPoint:
    """One mount of a container as the daemon keeps it (``Mounts`` of inspect).

    :ivar source: the host path of a bind; for a volume its data path once mounted.
    :ivar name: the volume's name (volumes only).
    :ivar anonymous: a volume the daemon named (``-v /data``, image ``VOLUME``): removed
        with the container by ``rm -v`` and ``--rm``.
    :ivar nocopy: do not fill an empty volume from the image's content at the destination.
    :ivar create_source: a ``-v`` bind whose missing host directory is created (``--mount``
        refuses a missing source instead).
    :ivar tmpfs_options: ``size=…``, ``mode=…`` of a tmpfs mount.
    """

    type: str
    destination: str
    source: str = ""
    name: str = ""
    driver: str = ""
    rw: bool = True
    mode: str = ""
    propagation: str = ""
    anonymous: bool = False
    nocopy: bool = False
    create_source: bool = False
    driver_options: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    tmpfs_options: tuple[str, ...] = ()

    def to_api(self) -> dict[str, Any]:
        body: dict[str, Any] = {"Type": self.type}
        if self.type == "volume":
            body["Name"] = self.name
        body.update(
            {
                "Source": self.source,
                "Destination": self.destination,
                "Mode": self.mode,
                "RW": self.rw,
                "Propagation": self.propagation,
            }
        )
        if self.type == "volume":
            body["Driver"] = self.driver
        return body

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MountPoint:
        return cls(**{**data, "tmpfs_options": tuple(data.get("tmpfs_options", ()))})


def merge_image_config(user: dict[str, Any], image: Mapping[str, Any]) -> dict[str, Any]:
    """The request's config completed from the image's, as moby merges them."""
    merged = copy.deepcopy(user)
    if not merged.get("User"):
        merged["User"] = image.get("User") or ""
    ports = dict(image.get("ExposedPorts") or {})
    ports.update(merged.get("ExposedPorts") or {})
    merged["ExposedPorts"] = ports or None
    env = list(merged.get("Env") or [])
    keys = {item.split("=", 1)[0] for item in env}
    env += [item for item in image.get("Env") or [] if item.split("=", 1)[0] not in keys]
    merged["Env"] = env
    labels = dict(image.get("Labels") or {})
    labels.update(merged.get("Labels") or {})
    merged["Labels"] = labels
    if not merged.get("Entrypoint"):
        if not merged.get("Cmd"):
            merged["Cmd"] = image.get("Cmd")
        if merged.get("Entrypoint") is None:
            merged["Entrypoint"] = image.get("Entrypoint")
    if merged.get("Entrypoint") == [""]:  # --entrypoint "": no entrypoint, and no image Cmd
        merged["Entrypoint"] = None
    if not merged.get("WorkingDir"):
        merged["WorkingDir"] = image.get("WorkingDir") or ""
    volumes = dict(image.get("Volumes") or {})
    volumes.update(merged.get("Volumes") or {})
    merged["Volumes"] = volumes or None
    if not merged.get("StopSignal") and image.get("StopSignal"):
        merged["StopSignal"] = image["StopSignal"]
    if merged.get("Healthcheck") is None and image.get("Healthcheck"):
        merged["Healthcheck"] = image["Healthcheck"]
    return merged


def container_config(raw: Mapping[str, Any], image_config: Mapping[str, Any]) -> dict[str, Any]:
    """``Config`` of inspect: the request's, merged with the image's, every field present."""
    for key in ("Cmd", "Entrypoint"):
        value = raw.get(key)
        if isinstance(value, str):  # the API allows a string for both
            raw = {**raw, key: [value]}
        elif value is not None and not (
            isinstance(value, list) and all(isinstance(v, str) for v in value)
        ):
            raise InvalidParameter(f"invalid {key}: expected a list of strings")
    env = raw.get("Env") or []
    if not isinstance(env, list) or not all(isinstance(item, str) for item in env):
        raise InvalidParameter("invalid Env: expected a list of strings")
    merged = merge_image_config(dict(raw), image_config)
    merged["Env"] = [item for item in merged["Env"] if "=" in item]
    return {
        "Hostname": raw.get("Hostname") or "",
        "Domainname": raw.get("Domainname") or "",
        "User": merged["User"],
        "AttachStdin": bool(raw.get("AttachStdin")),
        "AttachStdout": bool(raw.get("AttachStdout")),
        "AttachStderr": bool(raw.get("AttachStderr")),
        "ExposedPorts": merged["ExposedPorts"],
        "Tty": bool(raw.get("Tty")),
        "OpenStdin": bool(raw.get("OpenStdin")),
        "StdinOnce": bool(raw.get("StdinOnce")),
        "Env": merged["Env"],
        "Cmd": merged.get("Cmd"),
        **({"Healthcheck": merged["Healthcheck"]} if merged.get("Healthcheck") else {}),
        "Image": raw.get("Image") or "",
        "Volumes": merged["Volumes"],
        "WorkingDir": merged["WorkingDir"],
        "Entrypoint": merged.get("Entrypoint"),
        "OnBuild": None,
        "Labels": merged["Labels"],
        **({"StopSignal": merged["StopSignal"]} if merged.get("StopSignal") else {}),
        **({"StopTimeout": raw["StopTimeout"]} if raw.get("StopTimeout") is not None else {}),
    }


def command_of(config: Mapping[str, Any]) -> tuple[str, list[str]]:
    """``Path`` and ``Args``: the entrypoint followed by the command.

    :raises InvalidParameter: neither gives a program (moby's ``No command specified``).
    """
    argv = [*(config.get("Entrypoint") or []), *(config.get("Cmd") or [])]
    if not argv:
        raise InvalidParameter("No command specified")
    return argv[0], argv[1:]


def restart_policy(host: Mapping[str, Any]) -> RestartPolicy:
    """``HostConfig.RestartPolicy``, checked as moby checks it."""
    raw = host.get("RestartPolicy") or {}
    name = raw.get("Name") or "no"
    count = int(raw.get("MaximumRetryCount") or 0)
    if name not in _RESTART_POLICIES:
        raise InvalidParameter(
            f"invalid restart policy: unknown policy '{name}'; use one of 'no', 'always', "
            "'on-failure', or 'unless-stopped'"
        )
    if count < 0:
        raise InvalidParameter(
            "invalid restart policy: maximum retry count must be a positive integer"
        )
    if count and name != "on-failure":
        raise InvalidParameter(
            "invalid restart policy: maximum retry count can only be used with 'on-failure'"
        )
    return RestartPolicy(name, count)


_HOST_DEFAULTS: dict[str, Any] = {
    "Binds": None,
    "ContainerIDFile": "",
    "LogConfig": {"Type": "", "Config": {}},
    "NetworkMode": "bridge",
    "PortBindings": {},
    "RestartPolicy": {"Name": "no", "MaximumRetryCount": 0},
    "AutoRemove": False,
    "VolumeDriver": "",
    "VolumesFrom": None,
    "ConsoleSize": [0, 0],
    "CapAdd": None,
    "CapDrop": None,
    "CgroupnsMode": "host",
    "Dns": [],
    "DnsOptions": [],
    "DnsSearch": [],
    "ExtraHosts": None,
    "GroupAdd": None,
    "IpcMode": "private",
    "Cgroup": "",
    "Links": None,
    "OomScoreAdj": 0,
    "PidMode": "",
    "Privileged": False,
    "PublishAllPorts": False,
    "ReadonlyRootfs": False,
    "SecurityOpt": None,
    "UTSMode": "",
    "UsernsMode": "",
    "ShmSize": 67108864,
    "Runtime": "",
    "Isolation": "",
    "CpuShares": 0,
    "Memory": 0,
    "NanoCpus": 0,
    "CgroupParent": "",
    "BlkioWeight": 0,
    "BlkioWeightDevice": [],
    "BlkioDeviceReadBps": [],
    "BlkioDeviceWriteBps": [],
    "BlkioDeviceReadIOps": [],
    "BlkioDeviceWriteIOps": [],
    "CpuPeriod": 0,
    "CpuQuota": 0,
    "CpuRealtimePeriod": 0,
    "CpuRealtimeRuntime": 0,
    "CpusetCpus": "",
    "CpusetMems": "",
    "Devices": [],
    "DeviceCgroupRules": None,
    "DeviceRequests": None,
    "MemoryReservation": 0,
    "MemorySwap": 0,
    "MemorySwappiness": None,
    "OomKillDisable": None,
    "PidsLimit": None,
    "Ulimits": [],
    "CpuCount": 0,
    "CpuPercent": 0,
    "IOMaximumIOps": 0,
    "IOMaximumBandwidth": 0,
    "Mounts": None,
    "Tmpfs": None,
    "Sysctls": None,
    "MaskedPaths": None,
    "ReadonlyPaths": None,
}


def _int(host: Mapping[str, Any], key: str) -> int:
    value = host.get(key)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidParameter(f"invalid {key}: {value!r} is not an integer")
    return value


def host_config(raw: Mapping[str, Any] | None, *, cpus: int | None = None) -> dict[str, Any]:
    """``HostConfig`` of inspect: the request's, checked, with Docker's defaults filled in.

    :raises InvalidParameter: a value moby refuses, with its message.
    """
    host = {**_HOST_DEFAULTS, **{k: v for k, v in (raw or {}).items() if v is not None}}
    if host.get("NetworkMode") in ("", "default"):
        host["NetworkMode"] = "bridge"
    policy = restart_policy(host)
    host["RestartPolicy"] = {"Name": policy.name, "MaximumRetryCount": policy.maximum_retry_count}
    if host["AutoRemove"] and policy.name != "no":
        raise InvalidParameter("can't create 'AutoRemove' container with restart policy")
    memory, swap = _int(host, "Memory"), _int(host, "MemorySwap")
    if memory and memory < MIN_MEMORY:
        raise InvalidParameter("Minimum memory limit allowed is 6MB")
    if swap > 0 and not memory:
        raise InvalidParameter(
            "You should always set the Memory limit when using Memoryswap limit, see usage"
        )
    if swap > 0 and swap < memory:
        raise InvalidParameter(
            "Minimum memoryswap limit should be larger than memory limit, see usage"
        )
    nano = _int(host, "NanoCpus")
    available = cpus or os.cpu_count() or 1
    if nano and (_int(host, "CpuPeriod") or _int(host, "CpuQuota")):
        raise InvalidParameter(
            "Conflicting options: Nano CPUs and CPU Period cannot both be set"
            if _int(host, "CpuPeriod")
            else "Conflicting options: Nano CPUs and CPU Quota cannot both be set"
        )
    if nano < 0 or nano > available * 10**9:
        raise InvalidParameter(
            f"Range of CPUs is from 0.01 to {available}.00, as there are only {available} "
            "CPUs available"
        )
    if _int(host, "CpuShares") < 0:
        raise InvalidParameter("invalid CPU shares: it must be positive")
    log = host.get("LogConfig") or {}
    host["LogConfig"] = {"Type": log.get("Type") or "", "Config": dict(log.get("Config") or {})}
    capabilities(host)  # checks the names
    return host


def _canonical_capability(name: str) -> str:
    upper = name.upper()
    if upper == "ALL":
        return upper
    full = upper if upper.startswith("CAP_") else f"CAP_{upper}"
    if full not in ALL_CAPABILITIES:
        raise InvalidParameter(f'unknown capability: "{full}"')
    return full


@functools.cache
def host_capabilities() -> tuple[str, ...]:
    """The capabilities this process may hand on (its bounding set): what ``ALL`` and
    ``--privileged`` mean here, as a host that withholds some from root cannot give them."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("CapBnd:"):
            mask = int(line.split()[1], 16)
            return tuple(c for i, c in enumerate(ALL_CAPABILITIES) if mask >> i & 1)
    return ALL_CAPABILITIES


def capabilities(host: Mapping[str, Any]) -> tuple[str, ...]:
    """The capabilities a container's processes keep: Docker's defaults, ``CapAdd``,
    ``CapDrop`` (``ALL`` in either), and every one the host has when ``Privileged``."""
    if host.get("Privileged"):
        return host_capabilities()
    added = [_canonical_capability(c) for c in host.get("CapAdd") or []]
    dropped = [_canonical_capability(c) for c in host.get("CapDrop") or []]
    base = set(host_capabilities()) if "ALL" in added else set(DEFAULT_CAPABILITIES)
    base |= {c for c in added if c != "ALL"}
    if "ALL" in dropped:
        base = {c for c in added if c != "ALL"}
    else:
        base -= set(dropped)
    return tuple(c for c in ALL_CAPABILITIES if c in base)


def parse_signal(value: str | int, *, what: str = "signal") -> int:
    """A signal by number (``9``) or name (``KILL``, ``SIGKILL``, ``sigkill``).

    :raises InvalidParameter: moby's ``Invalid signal: X``.
    """
    text = str(value).strip()
    if text.isdigit():
        number = int(text)
        if 0 < number < signal.NSIG:
            return number
    else:
        name = text.upper()
        name = name if name.startswith("SIG") else f"SIG{name}"
        try:
            return int(signal.Signals[name])
        except KeyError:
            match = re.fullmatch(r"SIGRTMIN\+(\d+)", name)
            if match and signal.SIGRTMIN + int(match[1]) <= signal.SIGRTMAX:
                return int(signal.SIGRTMIN) + int(match[1])
    raise InvalidParameter(f"Invalid {what}: {value}")


# -- mounts ------------------------------------------------------------------------------


def _mount_error(kind: str, message: str) -> InvalidParameter:
    return InvalidParameter(f'invalid mount config for type "{kind}": {message}')


def _absolute(kind: str, path: str) -> str:
    if not path.startswith("/"):
        raise _mount_error(kind, f"invalid mount path: '{path}' mount path must be absolute")
    return str(PurePosixPath(path))


def _parse_bind(spec: str, volume_driver: str) -> MountPoint:
    """One ``-v`` value: ``/host:/ctr[:opts]``, ``name:/ctr[:opts]`` or ``/ctr``."""
    parts = spec.split(":")
    if len(parts) == 1:
        return MountPoint(
            type="volume",
            destination=_absolute("volume", parts[0]),
            driver=volume_driver,
            anonymous=True,
        )
    if len(parts) > 3 or not parts[0] or not parts[1]:
        raise InvalidParameter(f"invalid volume specification: '{spec}'")
    source, destination = parts[0], _absolute("volume", parts[1])
    modes = [m for m in (parts[2].split(",") if len(parts) == 3 else []) if m]
    unknown = [m for m in modes if m not in _BIND_MODES]
    if unknown or ("ro" in modes and "rw" in modes):
        raise InvalidParameter(f"invalid mode: {parts[2]}")
    rw = "ro" not in modes
    propagation = next((m for m in modes if m in _PROPAGATIONS), "")
    mode = parts[2] if len(parts) == 3 else ""
    if source.startswith("/"):
        if "nocopy" in modes:
            raise InvalidParameter(f"invalid mode: {parts[2]}")
        return MountPoint(
            type="bind",
            destination=destination,
            source=str(PurePosixPath(source)),
            rw=rw,
            mode=mode,
            propagation=propagation or "rprivate",
            create_source=True,
        )
    return MountPoint(
        type="volume",
        destination=destination,
        name=check_volume_name(source),
        driver=volume_driver,
        rw=rw,
        mode=mode or "z",
        nocopy="nocopy" in modes,
    )


def _parse_mount(raw: Mapping[str, Any], volume_driver: str) -> MountPoint:
    """One ``HostConfig.Mounts`` entry (``--mount``)."""
    kind = raw.get("Type") or ""
    target = raw.get("Target") or ""
    source = raw.get("Source") or ""
    if kind not in ("bind", "volume", "tmpfs"):
        raise _mount_error(kind, "mount type unknown")
    if not target:
        raise _mount_error(kind, "field Target must not be empty")
    destination = _absolute(kind, target)
    read_only = bool(raw.get("ReadOnly"))
    if kind == "bind":
        if not source:
            raise _mount_error(kind, "field Source must not be empty")
        source = _absolute(kind, source)
        options = raw.get("BindOptions") or {}
        create = bool(options.get("CreateMountpoint"))
        if not create and not os.path.exists(source):  # noqa: PTH110 - one stat, host path
            raise _mount_error(kind, f"bind source path does not exist: {source}")
        return MountPoint(
            type="bind",
            destination=destination,
            source=source,
            rw=not read_only,
            propagation=options.get("Propagation") or "rprivate",
            create_source=create,
        )
    if kind == "tmpfs":
        if source:
            raise _mount_error(kind, "field Source must not be specified")
        options = raw.get("TmpfsOptions") or {}
        tmpfs = []
        if options.get("SizeBytes"):
            tmpfs.append(f"size={int(options['SizeBytes'])}")
        if options.get("Mode"):
            tmpfs.append(f"mode={int(options['Mode']):o}")
        return MountPoint(
            type="tmpfs", destination=destination, rw=not read_only, tmpfs_options=tuple(tmpfs)
        )
    options = raw.get("VolumeOptions") or {}
    driver_config = options.get("DriverConfig") or {}
    return MountPoint(
        type="volume",
        destination=destination,
        name=check_volume_name(source) if source else "",
        driver=driver_config.get("Name") or volume_driver,
        rw=not read_only,
        mode="z",
        anonymous=not source,
        nocopy=bool(options.get("NoCopy")),
        driver_options=dict(driver_config.get("Options") or {}),
        labels=dict(options.get("Labels") or {}),
    )


def _parse_tmpfs(destination: str, options: str) -> MountPoint:
    return MountPoint(
        type="tmpfs",
        destination=_absolute("tmpfs", destination),
        tmpfs_options=tuple(o for o in options.split(",") if o),
        rw="ro" not in options.split(","),
    )


def mount_points(
    config: Mapping[str, Any], host: Mapping[str, Any], default_volume_driver: str
) -> list[MountPoint]:
    """Every mount of the container, from ``Binds``, ``Mounts``, ``Tmpfs`` and the
    ``Volumes`` of image and request (anonymous volumes where nothing else is mounted).

    :raises InvalidParameter: a malformed entry, or two mounts at one destination
        (moby's ``Duplicate mount point: /x``).
    """
    driver = host.get("VolumeDriver") or default_volume_driver
    found: list[MountPoint] = []
    for bind in host.get("Binds") or []:
        found.append(_parse_bind(str(bind), driver))
    for raw in host.get("Mounts") or []:
        found.append(_parse_mount(raw, driver))
    for destination, options in (host.get("Tmpfs") or {}).items():
        found.append(_parse_tmpfs(str(destination), str(options or "")))
    seen: set[str] = set()
    for point in found:
        if point.destination in seen:
            raise InvalidParameter(f"Duplicate mount point: {point.destination}")
        seen.add(point.destination)
    for destination in config.get("Volumes") or {}:
        clean = _absolute("volume", str(destination))
        if clean not in seen:
            found.append(
                MountPoint(type="volume", destination=clean, driver=driver, anonymous=True)
            )
            seen.add(clean)
    return found


# -- published ports ------------------------------------------------------------------------


@dataclass(frozen=True)
class PortRequest:
    """One port to publish: the container's port, and where on the host (``host_ports``
    holds the candidates: one port, a range's ports in order, or ``(0,)`` for any)."""

    private_port: int
    protocol: str
    host_ip: str
    host_ports: tuple[int, ...]


def _port_number(text: str, what: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise InvalidParameter(f"invalid {what}: {text}")
    return int(text)


def _host_ports(text: str) -> tuple[int, ...]:
    if not text:
        return (0,)
    first, dash, last = text.partition("-")
    low = _port_number(first, "host port")
    high = _port_number(last, "host port") if dash else low
    if high < low:
        raise InvalidParameter(f"invalid port range: {text}")
    return tuple(range(low, high + 1))


def port_requests(config: Mapping[str, Any], host: Mapping[str, Any]) -> list[PortRequest]:
    """``HostConfig.PortBindings`` (and, with ``PublishAllPorts``, every exposed port on a
    port the kernel picks), checked.

    :raises InvalidParameter: a malformed port, range, protocol or address.
    """
    bindings = dict(host.get("PortBindings") or {})
    if host.get("PublishAllPorts"):
        for port in config.get("ExposedPorts") or {}:
            bindings.setdefault(port, [{"HostIp": "", "HostPort": ""}])
    requests = []
    for key, entries in bindings.items():
        number, _, protocol = str(key).partition("/")
        protocol = protocol or "tcp"
        if protocol not in ("tcp", "udp", "sctp"):
            raise InvalidParameter(f"invalid protocol: {protocol} (in {key})")
        private = _port_number(number, "container port")
        for entry in entries or [{}]:
            host_ip = str((entry or {}).get("HostIp") or "0.0.0.0")
            try:
                ipaddress.ip_address(host_ip)
            except ValueError:
                raise InvalidParameter(f"invalid IP address: {host_ip}") from None
            ports = _host_ports(str((entry or {}).get("HostPort") or ""))
            requests.append(PortRequest(private, protocol, host_ip, ports))
    return requests
