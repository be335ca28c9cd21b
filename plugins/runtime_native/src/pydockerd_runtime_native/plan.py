"""What the forked child is to do, worked out in the parent.

The parent turns a :class:`ContainerSpec` into plain values — mount flags, capability masks,
the program's search path — so the child only makes system calls. Everything that can be
refused before a fork (an unknown capability, a bad namespace type, a relative destination)
is refused here, as :class:`StartError`.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from pydockerd.plugin import (
    ContainerSpec,
    MountFlag,
    ProcessSpec,
    StartError,
    parse_mount_options,
)

from pydockerd_runtime_native import syscalls as sc

__all__ = [
    "DevicePlan",
    "InitPlan",
    "MountPlan",
    "ProcessPlan",
    "plan_init",
    "plan_process",
]

# flags a read-only (or nosuid, ...) bind mount needs a second, remounting call for
_REMOUNT_FLAGS = (
    MountFlag.RDONLY
    | MountFlag.NOSUID
    | MountFlag.NODEV
    | MountFlag.NOEXEC
    | MountFlag.NOATIME
    | MountFlag.NODIRATIME
    | MountFlag.RELATIME
    | MountFlag.STRICTATIME
)


@dataclass(frozen=True)
class MountPlan:
    """One mount: ``kind`` ``bind``, ``cgroup`` (the cgroup filesystem as the container
    sees it) or ``fs`` (any other filesystem type)."""

    kind: str
    destination: str
    source: str
    fstype: str
    flags: int
    data: str
    propagation: tuple[int, ...]

    @property
    def remount_flags(self) -> int:
        """For a bind: the flags of the remount that applies ``ro``, ``nosuid``, ... (0:
        none needed)."""
        return self.flags & _REMOUNT_FLAGS


@dataclass(frozen=True)
class DevicePlan:
    path: str
    mode: int  # with S_IFCHR / S_IFBLK
    rdev: int
    uid: int
    gid: int


@dataclass(frozen=True)
class ProcessPlan:
    """The process part, shared by a container's first process and ``exec``."""

    args: tuple[str, ...]
    env: tuple[str, ...]
    search_path: tuple[str, ...]
    cwd: str
    uid: int
    gid: int
    groups: tuple[int, ...]
    bounding_drop: tuple[int, ...]
    capabilities: int
    no_new_privileges: bool
    terminal: bool
    console_size: tuple[int, int] | None


@dataclass(frozen=True)
class InitPlan:
    """The container part: namespaces and root filesystem."""

    root: str
    unshare_flags: int
    mounts: tuple[MountPlan, ...]
    devices: tuple[DevicePlan, ...]
    masked_paths: tuple[str, ...]
    readonly_paths: tuple[str, ...]
    readonly_root: bool
    hostname: str | None
    domainname: str | None
    sysctls: tuple[tuple[str, str], ...]
    loopback: bool
    cgroup_mounts: tuple[tuple[str, str, str], ...]
    """For a ``cgroup`` mount: (directory name, filesystem type, options) of each
    hierarchy to mount below its destination; one ``cgroup2`` entry with an empty name on
    cgroup v2."""


def plan_process(process: ProcessSpec) -> ProcessPlan:
    """:raises StartError: no program, or an unknown capability."""
    if not process.args or not process.args[0]:
        raise StartError("no command specified")
    mask = 0
    for name in process.capabilities:  # final CAP_* names: the daemon checked them
        number = sc.CAPABILITIES.get(name)
        if number is None:
            raise StartError(f"unknown capability {name!r}")
        mask |= 1 << number
    last = sc.last_capability()
    path = next((e[5:] for e in reversed(process.env) if e.startswith("PATH=")), "")
    return ProcessPlan(
        args=process.args,
        env=process.env,
        search_path=tuple(d or "." for d in path.split(":")) if path else (),
        cwd=process.cwd or "/",
        uid=process.uid,
        gid=process.gid,
        groups=process.additional_gids,
        bounding_drop=tuple(n for n in range(last + 1) if not mask >> n & 1),
        # a user other than root starts with no capability, as with Docker (see the docs)
        capabilities=mask if process.uid == 0 else 0,
        no_new_privileges=process.no_new_privileges,
        terminal=process.terminal,
        console_size=process.console_size,
    )


def _absolute(path: str, what: str) -> str:
    if not path.startswith("/"):
        raise StartError(f"{what} {path!r} is not an absolute path")
    return path


def plan_init(spec: ContainerSpec, cgroup_mounts: tuple[tuple[str, str, str], ...]) -> InitPlan:
    """:raises StartError: the spec asks for something impossible."""
    unknown = sorted(set(spec.namespaces) - set(sc.NAMESPACES))
    if unknown:
        raise StartError(f"unknown namespace type {unknown[0]!r}")
    if spec.namespaces.get("mount") != "":
        raise StartError("a container needs a new mount namespace")
    flags = 0
    for kind, value in spec.namespaces.items():
        if value == "" and kind != "pid":  # the parent makes the pid namespace
            flags |= sc.NAMESPACES[kind][0]
    if not Path("/proc/self/ns/cgroup").exists():
        flags &= ~sc.CLONE_NEWCGROUP
    mounts = []
    for m in spec.mounts:
        parsed = parse_mount_options(m.options)
        mflags, propagation, data = parsed.flags, parsed.propagation, parsed.data
        kind = "bind" if m.type == "bind" or mflags & MountFlag.BIND else m.type
        if kind not in ("bind", "cgroup"):
            kind = "fs"
        mounts.append(
            MountPlan(
                kind=kind,
                destination=_absolute(m.destination, "mount destination"),
                source=m.source,
                fstype=m.type,
                flags=mflags | (MountFlag.BIND if kind == "bind" else 0),
                data=data,
                propagation=propagation,
            )
        )
    devices = []
    for d in spec.devices:
        if d.type not in ("c", "b", "u"):
            raise StartError(f"device {d.path}: unknown type {d.type!r}")
        file_type = stat.S_IFBLK if d.type == "b" else stat.S_IFCHR
        devices.append(
            DevicePlan(
                _absolute(d.path, "device"),
                file_type | (d.mode & 0o7777),
                os.makedev(d.major, d.minor),
                d.uid,
                d.gid,
            )
        )
    uts = spec.namespaces.get("uts") == ""
    return InitPlan(
        root=os.path.realpath(spec.root),
        unshare_flags=flags,
        mounts=tuple(mounts),
        devices=tuple(devices),
        masked_paths=spec.masked_paths,
        readonly_paths=spec.readonly_paths,
        readonly_root=spec.readonly_root,
        hostname=spec.hostname if uts and spec.hostname else None,
        domainname=spec.domainname if uts and spec.domainname else None,
        sysctls=tuple(sorted(spec.sysctls.items())),
        loopback=spec.namespaces.get("network") == "",
        cgroup_mounts=cgroup_mounts,
    )
