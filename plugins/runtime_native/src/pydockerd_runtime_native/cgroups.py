"""A container's cgroup, on cgroup v1 (through cgroupspy) or v2, behind one interface.

:class:`Layout` is where the host's hierarchies are (found in ``/proc/self/mountinfo``, or
forced by the runtime's config); :meth:`Layout.cgroup` gives the :class:`Cgroup` of one
container path (``pydockerd/<id>``), which is the same relative path in every hierarchy.

cgroupspy's :class:`~cgroupspy.trees.Tree` walks every cgroup of the host (milliseconds,
growing with the number of containers), so the v1 code builds only the nodes of the
container's own path with cgroupspy's node and controller classes (about a microsecond).

Methods raise :class:`OSError` with the file name; the driver turns them into its errors.
"""

# cgroupfs paths are plain strings here, as cgroupspy's are bytes:
# ruff: noqa: PTH102, PTH106, PTH110, PTH112, PTH113, PTH119

from __future__ import annotations

import contextlib
import errno
import os
import signal
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from cgroupspy.controllers import (
    BlkIOController,
    Controller,
    CpuAcctController,
    CpuController,
    DevicesController,
    MemoryController,
)
from cgroupspy.nodes import Node
from pydockerd.plugin import Device, Resources, ResourceStats, mountinfo

from pydockerd_runtime_native.devices import DeviceRule, attach_device_filter, on_cgroup2

__all__ = [
    "DEFAULT_DEVICE_RULES",
    "Cgroup",
    "CgroupUnavailable",
    "CgroupV1",
    "CgroupV2",
    "Layout",
    "cpu_weight",
    "device_allow_rules",
    "split_path",
]

V1_CONTROLLERS = ("memory", "cpu", "cpuacct", "pids", "freezer", "devices", "blkio")
V1_REQUIRED = ("memory", "cpu", "pids", "freezer", "devices")
V2_CONTROLLERS = ("cpu", "memory", "pids", "io")

DEFAULT_DEVICE_RULES = (
    "c *:* m",
    "b *:* m",
    "c 1:3 rwm",  # null
    "c 1:5 rwm",  # zero
    "c 1:7 rwm",  # full
    "c 1:8 rwm",  # random
    "c 1:9 rwm",  # urandom
    "c 5:0 rwm",  # tty
    "c 5:1 rwm",  # console
    "c 5:2 rwm",  # ptmx
    "c 136:* rwm",  # pts
    "c 10:200 rwm",  # tun
)
"""Docker's default device rules (everything else is denied)."""

_UNLIMITED_V1 = 1 << 62  # memory.limit_in_bytes reads 0x7ffffffffffff000 when unlimited
_NS_PER_TICK = 1_000_000_000 // os.sysconf("SC_CLK_TCK")
_CONTROLLER_CLASSES: dict[str, type[Controller]] = {
    "memory": MemoryController,
    "cpu": CpuController,
    "cpuacct": CpuAcctController,
    "devices": DevicesController,
    "blkio": BlkIOController,
}


class CgroupUnavailable(Exception):
    """No usable cgroup hierarchy (the message says what is missing)."""


def split_path(path: str) -> tuple[str, ...]:
    """The components of a container's cgroup path.

    :raises ValueError: empty, or with ``.`` or ``..``.
    """
    parts = tuple(p for p in path.split("/") if p)
    if not parts or any(p in (".", "..") for p in parts):
        raise ValueError(f"invalid cgroup path {path!r}")
    return parts


def cpu_weight(shares: int) -> int:
    """cgroup v1 ``cpu.shares`` (2..262144) as v2 ``cpu.weight`` (1..10000), as runc
    converts it; 0 stays 0 (unset)."""
    if shares <= 0:
        return 0
    shares = min(max(shares, 2), 262144)
    return 1 + ((shares - 2) * 9999) // 262142


def _read(path: str) -> str:
    with open(path) as f:  # noqa: PTH123 - cgroup files: one small read each
        return f.read()


def _write(path: str, value: object) -> None:
    """Write an existing cgroup file (never create one: cgroupfs has only the files its
    controllers provide, and a missing one means a missing controller)."""
    fd = os.open(path, os.O_WRONLY | os.O_TRUNC | os.O_CLOEXEC)
    try:
        os.write(fd, str(value).encode())
    except OSError as e:
        raise OSError(e.errno, e.strerror, path) from None
    finally:
        os.close(fd)


def _keyed(text: str) -> dict[str, int]:
    """``key value`` lines (memory.stat, cpu.stat, memory.events, ...)."""
    result: dict[str, int] = {}
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if value.strip().lstrip("-").isdigit():
            result[key] = int(value)
    return result


def _int_or_max(text: str) -> int:
    """A limit file's value; ``max`` (unlimited) is 0."""
    text = text.strip()
    return 0 if text == "max" else int(text)


def _remove_chain(directories: Sequence[str]) -> None:
    """rmdir the container's directory (the last), then its parents while they are empty.

    :raises OSError: the container's own directory is busy.
    """
    for index, directory in enumerate(reversed(directories)):
        try:
            os.rmdir(directory)
        except FileNotFoundError:
            continue
        except OSError as e:
            if index == 0:
                raise
            if e.errno in (errno.EBUSY, errno.ENOTEMPTY):
                return  # another container's parent too
            raise


@dataclass(frozen=True)
class Layout:
    """Where the cgroup hierarchies are.

    :ivar version: ``"1"`` or ``"2"``.
    :ivar mounts: v1: controller → its hierarchy's mount point (co-mounted controllers
        share one); v2: ``{"": <cgroup2 mount point>}``.
    :ivar options: v1: mount point → its subsystem options (``cpu,cpuacct``), to mount the
        same hierarchies inside a container.
    :ivar device_filter: v2: whether a container's cgroup gets the eBPF device program;
        :meth:`detect` sets it when the hierarchy is a real cgroup2 filesystem, tests of
        limit files on a tree that only looks like one build a layout without it.
    """

    version: str
    mounts: dict[str, str]
    options: dict[str, str] = field(default_factory=dict)
    device_filter: bool = True

    @classmethod
    def detect(cls, version: str = "auto", root: str = "") -> Layout:
        """The host's layout; ``version`` ``"1"`` or ``"2"`` forces one, ``root`` names the
        directory holding the v1 hierarchies (``<root>/memory``, ...) or the v2 mount.

        :raises CgroupUnavailable: nothing usable.
        """
        v1, v2 = _mounted_hierarchies()
        if version == "2" or (version == "auto" and _v2_usable(root or v2)):
            path = root or v2
            if not path or not os.path.isfile(f"{path}/cgroup.procs"):
                raise CgroupUnavailable(f"no cgroup v2 hierarchy at {path or '/sys/fs/cgroup'}")
            return cls("2", {"": path}, device_filter=on_cgroup2(path))
        if root:
            v1 = {
                c: os.path.realpath(f"{root}/{c}")
                for c in V1_CONTROLLERS
                if os.path.isdir(f"{root}/{c}")
            }
        missing = [c for c in V1_REQUIRED if c not in v1]
        if missing:
            where = root or "/proc/self/mountinfo"
            raise CgroupUnavailable(
                f"cgroup v1 controllers not mounted ({where}): {', '.join(missing)}; "
                "mount them, or use a cgroup v2 host (systemd.unified_cgroup_hierarchy=1)"
            )
        options = {
            point: ",".join(c for c in V1_CONTROLLERS if v1.get(c) == point)
            for point in set(v1.values())
        }
        return cls("1", v1, options)

    def cgroup(self, path: str) -> Cgroup:
        """The container cgroup ``path`` (relative to every hierarchy's root).

        :raises ValueError: a malformed path.
        """
        if self.version == "2":
            return CgroupV2(self, path)
        return CgroupV1(self, path)

    def container_mounts(self) -> tuple[tuple[str, str, str], ...]:
        """(directory, filesystem type, options) of each hierarchy a ``cgroup`` mount of a
        container shows."""
        if self.version == "2":
            return (("", "cgroup2", ""),)
        return tuple(
            (os.path.basename(point), "cgroup", self.options.get(point, ""))
            for point in sorted(set(self.mounts.values()))
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "mounts": self.mounts,
            "options": self.options,
            "device_filter": self.device_filter,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Layout:
        return cls(
            str(data["version"]),
            dict(data["mounts"]),
            dict(data.get("options", {})),
            bool(data.get("device_filter", True)),
        )

    def check(self, name: str) -> None:
        """Create and remove the cgroup ``name`` in every hierarchy.

        :raises OSError: it cannot.
        """
        for point in sorted(set(self.mounts.values())):
            os.mkdir(f"{point}/{name}")
            os.rmdir(f"{point}/{name}")


def _mounted_hierarchies() -> tuple[dict[str, str], str]:
    """(v1 controller → mount point, the cgroup2 mount point or "") from mountinfo."""
    v1: dict[str, str] = {}
    v2 = ""
    try:
        mounts = [m for m in mountinfo() if m.root == "/"]
    except OSError:
        return v1, v2
    for info in mounts:
        if info.fstype == "cgroup2" and not v2:
            v2 = info.mount_point
        elif info.fstype == "cgroup":
            for option in info.super_options:
                if option in V1_CONTROLLERS:
                    v1.setdefault(option, info.mount_point)
    return v1, v2


def _v2_usable(path: str) -> bool:
    """Whether the cgroup2 mount at ``path`` holds the controllers a container needs (on a
    hybrid host they are bound to v1 and it holds almost none)."""
    try:
        available = set(_read(f"{path}/cgroup.controllers").split())
    except OSError:
        return False
    return {"memory", "pids"} <= available


class Cgroup(ABC):
    """One container's cgroup, in every hierarchy of a :class:`Layout`."""

    version: ClassVar[str]

    def __init__(self, layout: Layout, path: str) -> None:
        self.layout = layout
        self.path = path
        self.parts = split_path(path)

    @abstractmethod
    def roots(self) -> list[str]:
        """The root of each hierarchy the container is in."""

    def directories(self) -> list[str]:
        """The container's directory in each hierarchy."""
        return [f"{root}/{'/'.join(self.parts)}" for root in self.roots()]

    @abstractmethod
    def create(self, resources: Resources, devices: Sequence[Device]) -> None:
        """Make the cgroup (and its missing parents) and write its limits; on failure
        nothing of it is left."""

    @abstractmethod
    def add(self, pid: int) -> None:
        """Move process ``pid`` into the cgroup, in every hierarchy."""

    @abstractmethod
    def procs(self) -> list[int]:
        """The pids in the cgroup (as this process sees them)."""

    @abstractmethod
    def set_frozen(self, frozen: bool) -> None:
        """Ask the freezer to freeze or thaw."""

    @abstractmethod
    def frozen(self) -> bool:
        """Whether every process is frozen now."""

    @abstractmethod
    def oom_killed(self) -> bool:
        """Whether the OOM killer killed a process of the cgroup."""

    @abstractmethod
    def stats(self) -> ResourceStats:
        """The counters now."""

    def exists(self) -> bool:
        return any(os.path.isdir(d) for d in self.directories())

    def signal_all(self, number: int) -> None:
        """Send signal ``number`` to every process of the cgroup."""
        for pid in self.procs():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, number)

    def remove(self) -> None:
        """Remove the cgroup in every hierarchy, and its parents that are left empty.

        :raises OSError: ``EBUSY``: processes are still in it.
        """
        for root in self.roots():
            _remove_chain(
                [f"{root}/{'/'.join(self.parts[: i + 1])}" for i in range(len(self.parts))]
            )

    def to_dict(self) -> dict[str, Any]:
        return {"layout": self.layout.to_dict(), "path": self.path}

    @staticmethod
    def from_dict(data: dict[str, Any]) -> Cgroup:
        return Layout.from_dict(data["layout"]).cgroup(str(data["path"]))


# --------------------------------------------------------------------------------------
# v1


class CgroupV1(Cgroup):
    """cgroup v1 through cgroupspy: one node per hierarchy, controllers on those nodes."""

    version = "1"

    def __init__(self, layout: Layout, path: str) -> None:
        super().__init__(layout, path)
        self._nodes: dict[str, Node] = {}

    def roots(self) -> list[str]:
        return sorted(set(self.layout.mounts.values()))

    def _node(self, point: str, *, create: bool = False) -> Node:
        node = self._nodes.get(point)
        if node is None or create:
            node = Node(point.encode())
            for part in self.parts:
                node = node.create_cgroup(part) if create else Node(part.encode(), parent=node)
            self._nodes[point] = node
        return node

    def _controller(self, name: str) -> Any:
        """The cgroupspy controller of ``name`` on the container's node (a plain
        :class:`Controller` for pids and freezer, which cgroupspy has no class for)."""
        return _CONTROLLER_CLASSES.get(name, Controller)(self._node(self.layout.mounts[name]))

    def _has(self, name: str) -> bool:
        return name in self.layout.mounts

    def create(self, resources: Resources, devices: Sequence[Device]) -> None:
        try:
            for point in self.roots():
                self._create_node(point)
            self._limit(resources, devices)
        except BaseException:
            self.remove()
            raise

    def _create_node(self, point: str) -> None:
        for attempt in range(3):  # a parent another supervisor removed in between
            try:
                self._node(point, create=True)
                return
            except FileNotFoundError:
                if attempt == 2:
                    raise

    @staticmethod
    def _set(controller: Any, attribute: str, value: object) -> None:
        """``controller.<attribute> = value``, cgroupspy's way; errors name the file."""
        try:
            setattr(controller, attribute, value)
        except OSError as e:
            filename = controller.get_interface(attribute).filename
            raise _v1_error(controller, filename, e) from None

    def _set_file(self, name: str, filename: str, value: object) -> None:
        """A file cgroupspy has no attribute for (pids, freezer)."""
        controller = self._controller(name)
        try:
            controller.set_property(filename.encode(), value)
        except OSError as e:
            raise _v1_error(controller, filename.encode(), e) from None

    def _limit(self, resources: Resources, devices: Sequence[Device]) -> None:
        memory = self._controller("memory")
        if resources.memory > 0:
            self._set(memory, "limit_in_bytes", resources.memory)
            memsw = memory.filepath(b"memory.memsw.limit_in_bytes")
            if resources.memory_swap and os.path.exists(memsw):
                self._set(memory, "memsw_limit_in_bytes", resources.memory_swap)
        cpu = self._controller("cpu")
        if resources.cpu_shares > 0:
            self._set(cpu, "shares", resources.cpu_shares)
        if resources.cpu_quota > 0 or resources.cpu_period > 0:
            self._set(cpu, "cfs_period_us", resources.cpu_period or 100_000)
            if resources.cpu_quota > 0:
                self._set(cpu, "cfs_quota_us", resources.cpu_quota)
        if resources.pids_limit > 0:
            self._set_file("pids", "pids.max", resources.pids_limit)
        rules = self._controller("devices")
        self._set(rules, "deny", "a *:* rwm")
        for rule in device_allow_rules(devices):
            self._set(rules, "allow", rule)

    def add(self, pid: int) -> None:
        for point in self.roots():
            self._set(Controller(self._node(point)), "procs", [pid])

    def procs(self) -> list[int]:
        try:
            return list(self._controller("freezer").procs)
        except FileNotFoundError:
            return []

    def set_frozen(self, frozen: bool) -> None:
        self._set_file("freezer", "freezer.state", "FROZEN" if frozen else "THAWED")

    def frozen(self) -> bool:
        return bool(self._controller("freezer").get_property(b"freezer.state") == "FROZEN")

    def signal_all(self, number: int) -> None:
        """SIGKILL freezes first, so no process forks a new one in between (as runc), and
        thaws after: a frozen process dies only once thawed."""
        if number != signal.SIGKILL:
            super().signal_all(number)
            return
        self.set_frozen(True)
        try:
            super().signal_all(number)
        finally:
            self.set_frozen(False)

    def oom_killed(self) -> bool:
        control = self._controller("memory").oom_control
        return isinstance(control, dict) and int(control.get("oom_kill", 0)) > 0

    def stats(self) -> ResourceStats:
        memory = self._controller("memory")
        cpu_stat = self._controller("cpu").stat
        limit = int(memory.limit_in_bytes or 0)
        pids = self._controller("pids")
        values: dict[str, Any] = {
            "throttled_periods": cpu_stat.get("nr_throttled", 0),
            "throttled_time": cpu_stat.get("throttled_time", 0),
            "periods": cpu_stat.get("nr_periods", 0),
            "memory_usage": int(memory.usage_in_bytes or 0),
            "memory_max_usage": int(memory.max_usage_in_bytes or 0),
            "memory_limit": 0 if limit >= _UNLIMITED_V1 else limit,
            "memory_stat": dict(memory.stat),
            "pids_current": int(pids.get_property(b"pids.current")),
            "pids_limit": _int_or_max(pids.get_property(b"pids.max")),
        }
        if self._has("cpuacct"):
            acct = self._controller("cpuacct")
            times = acct.acct_stat
            values |= {
                "cpu_total": int(acct.usage),
                "cpu_percpu": tuple(acct.usage_percpu),
                "cpu_user": times.get("user", 0) * _NS_PER_TICK,
                "cpu_system": times.get("system", 0) * _NS_PER_TICK,
            }
        if self._has("blkio"):
            values["io_read_bytes"], values["io_write_bytes"] = self._io_bytes()
        return ResourceStats(**values)

    def _io_bytes(self) -> tuple[int, int]:
        blkio = self._controller("blkio")
        for name in (
            b"blkio.throttle.io_service_bytes_recursive",
            b"blkio.throttle.io_service_bytes",
        ):
            if os.path.exists(blkio.filepath(name)):
                text = blkio.get_property(name)
                break
        else:
            return 0, 0
        read = write = 0
        for line in text.splitlines():
            fields = line.split()
            if len(fields) == 3 and fields[2].isdigit():
                if fields[1] == "Read":
                    read += int(fields[2])
                elif fields[1] == "Write":
                    write += int(fields[2])
        return read, write


def _v1_error(controller: Any, filename: bytes, error: OSError) -> OSError:
    return OSError(error.errno, error.strerror, controller.filepath(filename).decode())


def device_allow_rules(devices: Sequence[Device]) -> tuple[str, ...]:
    """:data:`DEFAULT_DEVICE_RULES` and a rule for each of the container's ``devices``, each
    rule once (a spec's devices hold Docker's default nodes, which the defaults allow
    already): the ``devices.allow`` writes on v1, the device program's rules on v2."""
    own = (f"{'b' if d.type == 'b' else 'c'} {d.major}:{d.minor} rwm" for d in devices)
    return tuple(dict.fromkeys((*DEFAULT_DEVICE_RULES, *own)))


# --------------------------------------------------------------------------------------
# v2


class CgroupV2(Cgroup):
    """cgroup v2: one directory in the unified hierarchy, controllers enabled from the root
    down to its parent, and the device rules as an eBPF program (:mod:`.devices`)."""

    version = "2"

    def __init__(self, layout: Layout, path: str) -> None:
        super().__init__(layout, path)
        self.root = layout.mounts[""]
        self.directory = f"{self.root}/{'/'.join(self.parts)}"

    def roots(self) -> list[str]:
        return [self.root]

    def _file(self, name: str) -> str:
        return f"{self.directory}/{name}"

    def create(self, resources: Resources, devices: Sequence[Device]) -> None:
        try:
            current = self.root
            for part in self.parts:
                self._enable_controllers(current)
                current = f"{current}/{part}"
                with contextlib.suppress(FileExistsError):
                    os.mkdir(current)
            self._limit(resources)
            if self.layout.device_filter:
                rules = [DeviceRule.parse(r) for r in device_allow_rules(devices)]
                attach_device_filter(self.directory, rules)
        except BaseException:
            self.remove()
            raise

    @staticmethod
    def _enable_controllers(directory: str) -> None:
        try:
            available = set(_read(f"{directory}/cgroup.controllers").split())
            enabled = set(_read(f"{directory}/cgroup.subtree_control").split())
        except FileNotFoundError:
            return
        wanted = [c for c in V2_CONTROLLERS if c in available and c not in enabled]
        if wanted:
            _write(f"{directory}/cgroup.subtree_control", " ".join(f"+{c}" for c in wanted))

    def _limit(self, resources: Resources) -> None:
        if resources.memory > 0:
            _write(self._file("memory.max"), resources.memory)
            if resources.memory_swap == -1:
                _write(self._file("memory.swap.max"), "max")
            elif resources.memory_swap > 0:
                _write(
                    self._file("memory.swap.max"), max(resources.memory_swap - resources.memory, 0)
                )
        if resources.cpu_quota > 0 or resources.cpu_period > 0:
            quota = resources.cpu_quota if resources.cpu_quota > 0 else "max"
            _write(self._file("cpu.max"), f"{quota} {resources.cpu_period or 100_000}")
        if resources.cpu_shares > 0:
            _write(self._file("cpu.weight"), cpu_weight(resources.cpu_shares))
        if resources.pids_limit > 0:
            _write(self._file("pids.max"), resources.pids_limit)

    def add(self, pid: int) -> None:
        _write(self._file("cgroup.procs"), pid)

    def procs(self) -> list[int]:
        try:
            return [int(p) for p in _read(self._file("cgroup.procs")).split()]
        except FileNotFoundError:
            return []

    def set_frozen(self, frozen: bool) -> None:
        _write(self._file("cgroup.freeze"), 1 if frozen else 0)

    def frozen(self) -> bool:
        return _keyed(_read(self._file("cgroup.events"))).get("frozen") == 1

    def signal_all(self, number: int) -> None:
        """SIGKILL through ``cgroup.kill`` (Linux 5.14+), atomic against forks."""
        kill = self._file("cgroup.kill")
        if number == signal.SIGKILL and os.path.exists(kill):
            _write(kill, 1)
        else:
            super().signal_all(number)

    def oom_killed(self) -> bool:
        try:
            return _keyed(_read(self._file("memory.events"))).get("oom_kill", 0) > 0
        except FileNotFoundError:
            return False

    def _optional(self, name: str) -> str | None:
        try:
            return _read(self._file(name))
        except FileNotFoundError:
            return None

    def stats(self) -> ResourceStats:
        cpu = _keyed(_read(self._file("cpu.stat")))
        values: dict[str, Any] = {
            "cpu_total": cpu.get("usage_usec", 0) * 1000,
            "cpu_user": cpu.get("user_usec", 0) * 1000,
            "cpu_system": cpu.get("system_usec", 0) * 1000,
            "periods": cpu.get("nr_periods", 0),
            "throttled_periods": cpu.get("nr_throttled", 0),
            "throttled_time": cpu.get("throttled_usec", 0) * 1000,
        }
        for key, name, parse in (
            ("memory_usage", "memory.current", int),
            ("memory_max_usage", "memory.peak", int),
            ("memory_limit", "memory.max", _int_or_max),
            ("memory_stat", "memory.stat", _keyed),
            ("pids_current", "pids.current", int),
            ("pids_limit", "pids.max", _int_or_max),
        ):
            text = self._optional(name)
            if text is not None:
                values[key] = parse(text)
        io = self._optional("io.stat")
        if io is not None:
            values["io_read_bytes"], values["io_write_bytes"] = _io_stat(io)
        return ResourceStats(**values)


def _io_stat(text: str) -> tuple[int, int]:
    read = write = 0
    for line in text.splitlines():
        for item in line.split()[1:]:
            key, _, value = item.partition("=")
            if key == "rbytes":
                read += int(value)
            elif key == "wbytes":
                write += int(value)
    return read, write
