"""mount(2) and umount2(2) through ctypes (Python 3.11 has no wrappers), mount descriptions,
and overlay mounts of any depth.

Drivers describe mounts with :class:`Mount` and perform them with :func:`mount`;
:func:`mount_overlay` handles the one case a description cannot: more lower directories than
fit in a page of mount options.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from pydockerd.errors import SystemError

__all__ = ["MNT_DETACH", "MS_RDONLY", "Mount", "mount", "mount_overlay", "mounted", "unmount"]

MNT_DETACH = 2
MS_RDONLY = 1

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

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_libc.mount.argtypes = [
    ctypes.c_char_p,
    ctypes.c_char_p,
    ctypes.c_char_p,
    ctypes.c_ulong,
    ctypes.c_char_p,
]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
_libc.syscall.restype = ctypes.c_long


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
    data = description.data().encode() or None
    if (
        _libc.mount(
            description.source.encode(),
            str(target).encode(),
            description.type.encode(),
            flags,
            data,
        )
        != 0
    ):
        err = ctypes.get_errno()
        raise SystemError(
            f"mount -t {description.type} {description.source} {target}: {os.strerror(err)}"
        )


def unmount(target: Path, flags: int = 0) -> None:
    """Unmount ``target``.

    :raises SystemError: the kernel refused.
    """
    if _libc.umount2(str(target).encode(), flags) != 0:
        err = ctypes.get_errno()
        raise SystemError(f"umount {target}: {os.strerror(err)}")


def mounted(target: Path) -> bool:
    """Whether something is mounted exactly on ``target``."""
    wanted = os.fsencode(os.path.realpath(target))
    with open("/proc/self/mountinfo", "rb") as f:  # noqa: PTH123 - bytes, one pass
        for line in f:
            # field 5 is the mount point, with space, tab, newline and backslash octal-escaped
            point = line.split(b" ", 5)[4]
            point = _OCTAL_ESCAPE.sub(lambda m: bytes([int(m.group(1), 8)]), point)
            if point == wanted:
                return True
    return False


def _syscall(number: int, *args: object) -> int:
    c_args = [ctypes.c_long(a) if isinstance(a, int) else a for a in args]
    result = int(_libc.syscall(ctypes.c_long(number), *c_args))
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return result


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
        fs = _syscall(_SYS_FSOPEN, b"overlay", _FSOPEN_CLOEXEC)
        _syscall(_SYS_FSCONFIG, fs, _FSCONFIG_SET_STRING, b"source", b"overlay", 0)
        for directory in lower:
            path = os.fsencode(directory)
            _syscall(_SYS_FSCONFIG, fs, _FSCONFIG_SET_STRING, b"lowerdir+", path, 0)
        for option in base:
            key, _, value = option.partition("=")
            if value:
                _syscall(_SYS_FSCONFIG, fs, _FSCONFIG_SET_STRING, key.encode(), value.encode(), 0)
            else:
                _syscall(_SYS_FSCONFIG, fs, _FSCONFIG_SET_FLAG, key.encode(), None, 0)
        _syscall(_SYS_FSCONFIG, fs, _FSCONFIG_CMD_CREATE, None, None, 0)
        attributes = 0 if upper is not None else _MOUNT_ATTR_RDONLY
        mnt = _syscall(_SYS_FSMOUNT, fs, _FSMOUNT_CLOEXEC, attributes)
        try:
            _syscall(
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
