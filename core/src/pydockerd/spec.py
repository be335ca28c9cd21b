"""What a runtime is asked to run: the container spec, in the spirit of the OCI runtime spec.

The daemon builds a :class:`ContainerSpec` from the container's configuration (image config
merged with the create request, Docker's defaults, volumes, limits) and hands it to the
runtime through the supervisor. Everything is resolved before the runtime sees it: the root
filesystem is mounted, the user is numeric, the capability list is final, paths of bind
mounts exist. The runtime only carries it out, in order.

Every type here is a frozen dataclass of plain values, so a spec crosses the process boundary
as JSON (:meth:`ContainerSpec.to_dict` / :meth:`ContainerSpec.from_dict`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "ALL_CAPABILITIES",
    "DEFAULT_CAPABILITIES",
    "DEFAULT_DEVICES",
    "DEFAULT_MASKED_PATHS",
    "DEFAULT_READONLY_PATHS",
    "ContainerSpec",
    "Device",
    "MountSpec",
    "ProcessSpec",
    "ResourceStats",
    "Resources",
    "StartError",
    "Stdio",
]

ALL_CAPABILITIES = (
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
)
"""Every Linux capability, in the order of their numbers (``CAP_CHOWN`` is 0)."""

DEFAULT_CAPABILITIES = (
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
)
"""Docker's default capability set; a container has these and no others (``--cap-add`` and
``--cap-drop`` change the list the daemon puts in :attr:`ProcessSpec.capabilities`)."""

DEFAULT_MASKED_PATHS = (
    "/proc/asound",
    "/proc/acpi",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
)
"""Paths Docker hides: a file gets ``/dev/null`` bound over it, a directory an empty
read-only tmpfs. Paths that do not exist are skipped."""

DEFAULT_READONLY_PATHS = (
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
)
"""Paths Docker makes read-only (bound onto themselves, then remounted read-only)."""


@dataclass(frozen=True)
class MountSpec:
    """One mount inside the container, made in list order.

    :ivar destination: absolute path inside the container. The runtime resolves it inside
        the root filesystem (a symlink in the image can never lead it outside) and creates
        it when missing: a directory, or an empty file when a bind mount's source is a file.
    :ivar type: the filesystem type (``proc``, ``tmpfs``, ``devpts``, ``mqueue``,
        ``sysfs``, ...) or ``bind``.
    :ivar source: the host path for ``bind``; for the others the mount's source name.
    :ivar options: ``mount(8)`` style: flags (``ro``, ``nosuid``, ``nodev``, ``noexec``,
        ``rbind``, ``private``, ``rprivate``, ``slave``, ``rslave``, ``shared``,
        ``rshared``) and data (``mode=755``, ``size=65536k``, ...). A read-only bind is
        bound first and then remounted read-only, as the kernel requires.
    """

    destination: str
    type: str
    source: str
    options: tuple[str, ...] = ()


@dataclass(frozen=True)
class Device:
    """A device node the runtime creates in the container's ``/dev``."""

    path: str
    type: str  # "c" or "b"
    major: int
    minor: int
    mode: int = 0o666
    uid: int = 0
    gid: int = 0


DEFAULT_DEVICES = (
    Device("/dev/null", "c", 1, 3),
    Device("/dev/zero", "c", 1, 5),
    Device("/dev/full", "c", 1, 7),
    Device("/dev/random", "c", 1, 8),
    Device("/dev/urandom", "c", 1, 9),
    Device("/dev/tty", "c", 5, 0),
)
"""The device nodes every Docker container has in its ``/dev``."""


@dataclass(frozen=True)
class ProcessSpec:
    """A process to run in the container: its first one, or one started by ``exec``.

    :ivar args: the program and its arguments; ``args[0]`` is looked up in ``PATH`` of
        :attr:`env` when it has no ``/``.
    :ivar env: ``NAME=value`` strings, complete (the daemon adds ``PATH``, ``HOSTNAME``,
        ``HOME`` and ``TERM`` as Docker does).
    :ivar cwd: the working directory inside the container (created if missing, as Docker does).
    :ivar uid: numeric user, already resolved in the image's ``/etc/passwd``.
    :ivar gid: numeric primary group.
    :ivar additional_gids: supplementary groups.
    :ivar terminal: whether the process gets a pseudo-terminal (``Stdio`` is then one pty).
    :ivar capabilities: the capabilities it keeps (bounding, permitted, effective and
        inheritable sets); ``CAP_*`` names.
    :ivar no_new_privileges: set ``PR_SET_NO_NEW_PRIVS`` before ``execve``.
    :ivar console_size: ``(rows, columns)`` of the terminal, or ``None``.
    """

    args: tuple[str, ...]
    env: tuple[str, ...] = ()
    cwd: str = "/"
    uid: int = 0
    gid: int = 0
    additional_gids: tuple[int, ...] = ()
    terminal: bool = False
    capabilities: tuple[str, ...] = DEFAULT_CAPABILITIES
    no_new_privileges: bool = True
    console_size: tuple[int, int] | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ProcessSpec:
        size = data.get("console_size")
        return cls(
            **{
                **data,
                "args": tuple(data["args"]),
                "env": tuple(data.get("env", ())),
                "additional_gids": tuple(data.get("additional_gids", ())),
                "capabilities": tuple(data.get("capabilities", DEFAULT_CAPABILITIES)),
                "console_size": (int(size[0]), int(size[1])) if size else None,
            }
        )


@dataclass(frozen=True)
class Resources:
    """cgroup limits; 0 means unlimited (or the kernel's default)."""

    memory: int = 0
    """``--memory``: bytes; past it the kernel's OOM killer ends the container's processes."""
    memory_swap: int = 0
    """``--memory-swap``: memory plus swap in bytes; -1 unlimited swap."""
    cpu_quota: int = 0
    """``--cpus`` as CFS quota (µs per period)."""
    cpu_period: int = 0
    """CFS period (µs); 100000 when a quota is set."""
    cpu_shares: int = 0
    """``--cpu-shares`` (v1 ``cpu.shares``; converted to ``cpu.weight`` on v2)."""
    pids_limit: int = 0
    """``--pids-limit``: most processes at once."""


@dataclass(frozen=True)
class ContainerSpec:
    """Everything a runtime needs to create a container.

    :ivar id: the container's ID (64 hex digits).
    :ivar root: host path of the container's root filesystem, already mounted.
    :ivar readonly_root: ``--read-only``: the root is remounted read-only after the mounts.
    :ivar hostname: the UTS hostname (when the UTS namespace is new).
    :ivar domainname: the UTS domain name.
    :ivar process: the first process.
    :ivar mounts: every mount, in order, beginning with Docker's defaults (``/proc``,
        ``/dev``, ``/dev/pts``, ``/dev/shm``, ``/dev/mqueue``, ``/sys``), then ``/etc/hosts``,
        ``/etc/hostname``, ``/etc/resolv.conf``, then volumes, binds and tmpfs mounts.
    :ivar devices: device nodes to create (Docker's: null, zero, full, random, urandom, tty).
    :ivar masked_paths: see :data:`DEFAULT_MASKED_PATHS`.
    :ivar readonly_paths: see :data:`DEFAULT_READONLY_PATHS`.
    :ivar namespaces: namespace type (``pid``, ``mount``, ``uts``, ``ipc``, ``network``,
        ``cgroup``) → ``""`` for a new one or a path (``/proc/<pid>/ns/net``, a bind-mounted
        namespace file) to join. A type that is absent is shared with the host.
    :ivar cgroup_path: the container's cgroup, relative to each hierarchy's root
        (``pydockerd/<id>``).
    :ivar resources: its limits.
    :ivar sysctls: ``/proc/sys`` keys (``net.ipv4.ip_forward``) to set inside it.
    """

    id: str
    root: str
    process: ProcessSpec
    readonly_root: bool = False
    hostname: str = ""
    domainname: str = ""
    mounts: tuple[MountSpec, ...] = ()
    devices: tuple[Device, ...] = ()
    masked_paths: tuple[str, ...] = DEFAULT_MASKED_PATHS
    readonly_paths: tuple[str, ...] = DEFAULT_READONLY_PATHS
    namespaces: dict[str, str] = field(default_factory=dict)
    cgroup_path: str = ""
    resources: Resources = field(default_factory=Resources)
    sysctls: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain values, for JSON (tuples come back from JSON as lists: :meth:`from_dict`)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ContainerSpec:
        return cls(
            **{
                **data,
                "process": ProcessSpec.from_dict(data["process"]),
                "mounts": tuple(
                    MountSpec(**{**m, "options": tuple(m["options"])}) for m in data["mounts"]
                ),
                "devices": tuple(Device(**d) for d in data["devices"]),
                "masked_paths": tuple(data["masked_paths"]),
                "readonly_paths": tuple(data["readonly_paths"]),
                "resources": Resources(**data["resources"]),
            }
        )


@dataclass(frozen=True)
class Stdio:
    """The process's standard streams, as file descriptors of the calling process.

    Without a terminal, ``stdin``, ``stdout`` and ``stderr`` are three descriptors (pipe
    ends, or ``/dev/null``). With :attr:`ProcessSpec.terminal`, all three are the same pty
    slave, and the process must make it its controlling terminal (``setsid`` and
    ``TIOCSCTTY``). The runtime duplicates them onto 0, 1 and 2 in the child and closes
    every other descriptor the child inherited.
    """

    stdin: int
    stdout: int
    stderr: int


@dataclass(frozen=True)
class ResourceStats:
    """One reading of a container's cgroup counters, for ``docker stats``.

    CPU times are in nanoseconds; memory and I/O in bytes. ``memory_limit`` 0 means
    unlimited; ``pids_limit`` 0 too.
    """

    cpu_total: int = 0
    cpu_percpu: tuple[int, ...] = ()
    cpu_user: int = 0
    cpu_system: int = 0
    throttled_periods: int = 0
    throttled_time: int = 0
    periods: int = 0
    memory_usage: int = 0
    memory_max_usage: int = 0
    memory_limit: int = 0
    memory_stat: dict[str, int] = field(default_factory=dict)
    pids_current: int = 0
    pids_limit: int = 0
    io_read_bytes: int = 0
    io_write_bytes: int = 0

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ResourceStats:
        return cls(**{**data, "cpu_percpu": tuple(data.get("cpu_percpu", ()))})


class StartError(Exception):
    """The runtime could not start a process; the text is shown to the user.

    Say what failed the way runc says it, because the docker CLI picks its exit status from
    the words: ``exec: "x": executable file not found in $PATH`` or ``no such file or
    directory`` (127), ``permission denied`` or ``is a directory`` (126).
    """
