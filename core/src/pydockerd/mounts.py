"""Mount descriptions, mounts that raise :class:`~pydockerd.errors.SystemError` (over the raw
calls of :mod:`pydockerd.linux`), and overlay mounts of any depth.

Drivers describe mounts with :class:`Mount` and perform them with :func:`mount`;
:func:`mount_overlay` handles the one case a description cannot: more lower directories than
fit in a page of mount options.
"""

from __future__ import annotations

import enum
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from pydockerd import linux
from pydockerd.errors import SystemError
from pydockerd.linux import MNT_DETACH

__all__ = [
    "MNT_DETACH",
    "MS_RDONLY",
    "Mount",
    "MountFlag",
    "MountInfo",
    "ParsedMountOptions",
    "mount",
    "mount_overlay",
    "mount_points",
    "mounted",
    "mountinfo",
    "mounts_under",
    "parse_mount_options",
    "unmount",
]


class MountFlag(enum.IntFlag):
    """mount(2)'s ``MS_*`` flags (``linux/mount.h``)."""

    RDONLY = 0x1
    NOSUID = 0x2
    NODEV = 0x4
    NOEXEC = 0x8
    SYNCHRONOUS = 0x10
    REMOUNT = 0x20
    MANDLOCK = 0x40
    DIRSYNC = 0x80
    NOATIME = 0x400
    NODIRATIME = 0x800
    BIND = 0x1000
    MOVE = 0x2000
    REC = 0x4000
    SILENT = 0x8000
    UNBINDABLE = 0x20000
    PRIVATE = 0x40000
    SLAVE = 0x80000
    SHARED = 0x100000
    RELATIME = 0x200000
    STRICTATIME = 0x1000000

    @classmethod
    def propagation(cls) -> MountFlag:
        """The flags that change propagation, which mount(2) takes in a call of their own."""
        return cls.SHARED | cls.PRIVATE | cls.SLAVE | cls.UNBINDABLE


MS_RDONLY = int(MountFlag.RDONLY)

_F = MountFlag
_FLAG_OPTIONS: dict[str, tuple[int, int]] = {
    # option: (flags it sets, flags it clears), as mount(8) and moby/sys/mount read them
    "defaults": (0, 0),
    "ro": (_F.RDONLY, 0),
    "rw": (0, _F.RDONLY),
    "nosuid": (_F.NOSUID, 0),
    "suid": (0, _F.NOSUID),
    "nodev": (_F.NODEV, 0),
    "dev": (0, _F.NODEV),
    "noexec": (_F.NOEXEC, 0),
    "exec": (0, _F.NOEXEC),
    "sync": (_F.SYNCHRONOUS, 0),
    "async": (0, _F.SYNCHRONOUS),
    "dirsync": (_F.DIRSYNC, 0),
    "remount": (_F.REMOUNT, 0),
    "mand": (_F.MANDLOCK, 0),
    "nomand": (0, _F.MANDLOCK),
    "noatime": (_F.NOATIME, 0),
    "atime": (0, _F.NOATIME),
    "nodiratime": (_F.NODIRATIME, 0),
    "diratime": (0, _F.NODIRATIME),
    "relatime": (_F.RELATIME, 0),
    "norelatime": (0, _F.RELATIME),
    "strictatime": (_F.STRICTATIME, 0),
    "nostrictatime": (0, _F.STRICTATIME),
    "bind": (_F.BIND, 0),
    "rbind": (_F.BIND | _F.REC, 0),
}
_PROPAGATION_OPTIONS: dict[str, int] = {
    "private": _F.PRIVATE,
    "rprivate": _F.PRIVATE | _F.REC,
    "slave": _F.SLAVE,
    "rslave": _F.SLAVE | _F.REC,
    "shared": _F.SHARED,
    "rshared": _F.SHARED | _F.REC,
    "unbindable": _F.UNBINDABLE,
    "runbindable": _F.UNBINDABLE | _F.REC,
}


@dataclass(frozen=True)
class ParsedMountOptions:
    """``mount(8)`` options split the way mount(2) takes them."""

    flags: int
    """The ``MS_*`` flags (propagation not included)."""
    propagation: tuple[int, ...]
    """Propagation changes, in order; each is a mount(2) call of its own."""
    data: str
    """What the filesystem itself reads (``size=64m,mode=755``)."""


def parse_mount_options(options: Iterable[str]) -> ParsedMountOptions:
    """Split ``ro``, ``nosuid``, ``rbind``, ``rprivate``, ``size=64m``... into flags,
    propagation changes and data, as mount(8) does (a later option wins: ``ro,rw`` is rw)."""
    flags = 0
    propagation: list[int] = []
    data: list[str] = []
    for option in options:
        if option in _FLAG_OPTIONS:
            add, clear = _FLAG_OPTIONS[option]
            flags = (flags | add) & ~clear
        elif option in _PROPAGATION_OPTIONS:
            propagation.append(_PROPAGATION_OPTIONS[option])
        elif option:
            data.append(option)
    return ParsedMountOptions(int(flags), tuple(int(p) for p in propagation), ",".join(data))


# The new mount API (Linux 5.2+; the syscall numbers are the same on every architecture).
_SYS_MOVE_MOUNT = 429
_SYS_FSOPEN = 430
_SYS_FSCONFIG = 431
_SYS_FSMOUNT = 432
_FSCONFIG_SET_STRING = 1
_FSCONFIG_SET_FLAG = 0
_FSCONFIG_CMD_CREATE = 6
_FSOPEN_CLOEXEC = 1
_FSMOUNT_CLOEXEC = 1
_MOUNT_ATTR_RDONLY = 1
_MOVE_MOUNT_F_EMPTY_PATH = 4
_AT_FDCWD = -100
_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
_OCTAL_ESCAPE = re.compile(rb"\\([0-7]{3})")


@dataclass(frozen=True)
class Mount:
    """One mount, described: ``mount -t <type> -o <options> <source> <target>``."""

    type: str
    source: str
    options: tuple[str, ...] = field(default_factory=tuple)

    def data(self) -> str:
        return ",".join(self.options)


def mount(description: Mount, target: Path, flags: int = 0) -> None:
    """Mount ``description`` on ``target``.

    :raises SystemError: the kernel refused; the message has errno's text.
    """
    try:
        linux.mount(description.source, target, description.type, flags, description.data() or None)
    except OSError as e:
        raise SystemError(
            f"mount -t {description.type} {description.source} {target}: {e.strerror}"
        ) from None


def unmount(target: Path, flags: int = 0) -> None:
    """Unmount ``target``.

    :raises SystemError: the kernel refused.
    """
    try:
        linux.umount2(target, flags)
    except OSError as e:
        raise SystemError(f"umount {target}: {e.strerror}") from None


@dataclass(frozen=True)
class MountInfo:
    """One line of ``/proc/<pid>/mountinfo`` (proc(5)), its escapes undone."""

    mount_id: int
    parent_id: int
    device: str
    """``major:minor`` of the filesystem."""
    root: str
    """The directory of the filesystem mounted here (``/`` unless a bind of a subtree)."""
    mount_point: str
    options: tuple[str, ...]
    """Per-mount options (``rw``, ``nosuid``, ``relatime``...)."""
    optional: tuple[str, ...]
    """Optional fields: propagation (``shared:1``, ``master:2``...)."""
    fstype: str
    source: str
    super_options: tuple[str, ...]
    """Per-superblock options (``rw``, ``size=64k``, ``memory``...)."""


def _unescaped(field: bytes) -> str:
    """The kernel writes space, tab, newline, backslash (and, in options, comma and ``=``)
    as ``\\ooo``."""
    return os.fsdecode(_OCTAL_ESCAPE.sub(lambda m: bytes([int(m.group(1), 8)]), field))


def _options(field: bytes) -> tuple[str, ...]:
    return tuple(_unescaped(option) for option in field.split(b",") if option)


def mountinfo(pid: int | str = "self") -> Iterator[MountInfo]:
    """The mounts of ``pid``'s mount namespace, in ``/proc/<pid>/mountinfo`` order (parents
    before their children, older before newer)."""
    with open(f"/proc/{pid}/mountinfo", "rb") as f:  # noqa: PTH123 - bytes, one pass
        for line in f:
            fields = line.rstrip(b"\n").split(b" ")
            separator = fields.index(b"-", 6)
            fstype, source, super_options = fields[separator + 1 : separator + 4]
            yield MountInfo(
                mount_id=int(fields[0]),
                parent_id=int(fields[1]),
                device=fields[2].decode(),
                root=_unescaped(fields[3]),
                mount_point=_unescaped(fields[4]),
                options=_options(fields[5]),
                optional=tuple(_unescaped(f) for f in fields[6:separator]),
                fstype=_unescaped(fstype),
                source=_unescaped(source),
                super_options=_options(super_options),
            )


def mount_points() -> list[Path]:
    """Every mount point of this mount namespace, in ``/proc/self/mountinfo`` order (a
    stacked mount is listed once per mount)."""
    return [Path(info.mount_point) for info in mountinfo()]


def mounts_under(directory: Path) -> list[Path]:
    """Mount points at or below ``directory``, the most recent first (a stacked mount is
    listed once per mount)."""
    base = Path(os.path.realpath(directory))
    return [p for p in reversed(mount_points()) if p == base or base in p.parents]


def mounted(target: Path) -> bool:
    """Whether something is mounted exactly on ``target``."""
    wanted = os.path.realpath(target)
    return any(info.mount_point == wanted for info in mountinfo())


def mount_overlay(
    lower: list[Path],
    target: Path,
    *,
    upper: Path | None = None,
    work: Path | None = None,
    options: tuple[str, ...] = (),
) -> None:
    """Mount an overlay of ``lower`` (topmost first) on ``target``; writable when ``upper``
    and ``work`` are given, read-only otherwise.

    The classic mount(2) takes its options in one page (4 KiB), which about 60 layers'
    paths overflow. Longer lists go through the new mount API, which takes each lower
    directory on its own (``lowerdir+``, Linux 6.8+).

    :raises SystemError: the kernel refused.
    """
    if not lower:
        raise ValueError("an overlay needs at least one lower directory")
    base = [*options]
    if upper is not None and work is not None:
        base += [f"upperdir={upper}", f"workdir={work}"]
    classic = ",".join([f"lowerdir={':'.join(map(str, lower))}", *base])
    if len(classic) < _PAGE_SIZE:
        flags = 0 if upper is not None else MS_RDONLY
        mount(Mount("overlay", "overlay", (classic,)), target, flags)
        return
    fs = -1
    try:
        fs = linux.syscall(_SYS_FSOPEN, b"overlay", _FSOPEN_CLOEXEC)
        linux.syscall(_SYS_FSCONFIG, fs, _FSCONFIG_SET_STRING, b"source", b"overlay", 0)
        for directory in lower:
            path = os.fsencode(directory)
            linux.syscall(_SYS_FSCONFIG, fs, _FSCONFIG_SET_STRING, b"lowerdir+", path, 0)
        for option in base:
            key, _, value = option.partition("=")
            if value:
                linux.syscall(
                    _SYS_FSCONFIG, fs, _FSCONFIG_SET_STRING, key.encode(), value.encode(), 0
                )
            else:
                linux.syscall(_SYS_FSCONFIG, fs, _FSCONFIG_SET_FLAG, key.encode(), None, 0)
        linux.syscall(_SYS_FSCONFIG, fs, _FSCONFIG_CMD_CREATE, None, None, 0)
        attributes = 0 if upper is not None else _MOUNT_ATTR_RDONLY
        mnt = linux.syscall(_SYS_FSMOUNT, fs, _FSMOUNT_CLOEXEC, attributes)
        try:
            linux.syscall(
                _SYS_MOVE_MOUNT, mnt, b"", _AT_FDCWD, os.fsencode(target), _MOVE_MOUNT_F_EMPTY_PATH
            )
        finally:
            os.close(mnt)
    except OSError as e:
        raise SystemError(
            f"mount -t overlay ({len(lower)} lower directories) {target}: {e.strerror}"
            + (
                "; this kernel cannot stack that many (it needs Linux 6.8+)"
                if e.errno in (22, 38)
                else ""
            )
        ) from None
    finally:
        if fs >= 0:
            os.close(fs)
