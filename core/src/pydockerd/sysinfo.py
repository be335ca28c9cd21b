"""Facts about the host for ``/info`` and ``/version``: kernel, OS, cgroups, filesystems."""

from __future__ import annotations

import os
import platform
from functools import cache
from pathlib import Path

__all__ = [
    "architecture",
    "backing_filesystem",
    "cgroup_version",
    "kernel_version",
    "mem_total",
    "operating_system",
]

_GO_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386"}


def kernel_version() -> str:
    return platform.release()


def architecture() -> str:
    """The machine as ``uname -m`` says it (``x86_64``), as ``info`` reports it."""
    return platform.machine()


def go_arch() -> str:
    """The machine in Go's words (``amd64``), as ``version`` reports it."""
    machine = platform.machine()
    return _GO_ARCH.get(machine, machine)


@cache
def operating_system() -> str:
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            key, _, value = line.partition("=")
            if key == "PRETTY_NAME":
                return value.strip().strip('"')
    except OSError:
        pass
    return platform.system()


def mem_total() -> int:
    """Bytes of RAM."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def _mounts() -> list[tuple[str, str]]:
    """(mount point, filesystem type) for every mount, from /proc/self/mounts."""
    result = []
    for line in Path("/proc/self/mounts").read_text().splitlines():
        parts = line.split()
        if len(parts) >= 3:
            result.append((parts[1].replace("\\040", " "), parts[2]))
    return result


def backing_filesystem(path: Path) -> str:
    """The type of the filesystem holding ``path`` (``ext4``, ``xfs``, ``overlay``, ...)."""
    target = path.resolve()
    while not target.exists() and target != target.parent:
        target = target.parent
    best, fstype = "", "unknown"
    for mountpoint, kind in _mounts():
        inside = target == Path(mountpoint) or Path(mountpoint) in target.parents
        if inside and len(mountpoint) >= len(best):
            best, fstype = mountpoint, kind
    return fstype


def cgroup_version() -> str:
    """``"2"`` on a unified hierarchy, ``"1"`` on v1 or hybrid (the v1 controllers limit
    containers there), ``""`` without cgroups."""
    # the last mount on /sys/fs/cgroup is the visible one (an earlier one may be hidden by it)
    kinds = [kind for mountpoint, kind in _mounts() if mountpoint == "/sys/fs/cgroup"]
    if not kinds:
        return ""
    return "2" if kinds[-1] == "cgroup2" else "1"
