"""Raw Linux system calls Python 3.11 does not wrap, through one ctypes handle of the C
library: mount(2), umount2(2), setns(2), unshare(2) and syscall(2) for the rest.

Each function raises :class:`OSError` with the errno and errno's text (and the path, where
there is one), as Python's own ``os`` functions do; none imports anything when called, so a
forked child may use them. Higher-level helpers (:func:`pydockerd.mounts.mount`, which takes a
:class:`~pydockerd.mounts.Mount` and raises :class:`~pydockerd.errors.SystemError`) are built
on these.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

__all__ = [
    "CLONE_NEWCGROUP",
    "CLONE_NEWIPC",
    "CLONE_NEWNET",
    "CLONE_NEWNS",
    "CLONE_NEWPID",
    "CLONE_NEWUTS",
    "MNT_DETACH",
    "libc",
    "mount",
    "raise_errno",
    "setns",
    "syscall",
    "umount2",
    "unshare",
]

CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

MNT_DETACH = 2
"""umount2(2): detach now, release once no longer busy (``umount -l``)."""

libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
"""The C library, with errno kept for :func:`ctypes.get_errno` (every caller's one handle)."""
libc.syscall.restype = ctypes.c_long
libc.mount.argtypes = [
    ctypes.c_char_p,
    ctypes.c_char_p,
    ctypes.c_char_p,
    ctypes.c_ulong,
    ctypes.c_char_p,
]
libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
libc.setns.argtypes = [ctypes.c_int, ctypes.c_int]
libc.unshare.argtypes = [ctypes.c_int]

_Path = str | bytes | os.PathLike[str]


def raise_errno(path: _Path | None = None) -> None:
    """Raise :class:`OSError` for the errno the last C call of this thread left (with
    ``path`` as its file name); for callers of :data:`libc` functions not wrapped here."""
    number = ctypes.get_errno()
    if path is None:
        raise OSError(number, os.strerror(number))
    raise OSError(number, os.strerror(number), os.fsdecode(path))


def _encoded(value: _Path | None) -> bytes | None:
    return None if value is None else os.fsencode(value)


def syscall(number: int, *args: object) -> int:
    """syscall(2) of ``number``: integers are passed as C ``long``, ``bytes`` and ctypes
    objects as pointers, ``None`` as NULL. Its (non-negative) result."""
    c_args = [ctypes.c_long(a) if isinstance(a, int) else a for a in args]
    result = int(libc.syscall(ctypes.c_long(number), *c_args))
    if result < 0:
        raise_errno()
    return result


def mount(
    source: _Path | None,
    target: _Path,
    fstype: str | None,
    flags: int = 0,
    data: str | None = None,
) -> None:
    """mount(2); the error carries ``target`` as its file name."""
    if libc.mount(_encoded(source), _encoded(target), _encoded(fstype), flags, _encoded(data)):
        raise_errno(target)


def umount2(target: _Path, flags: int = 0) -> None:
    """umount2(2) (``flags``: :data:`MNT_DETACH`...); the error carries ``target``."""
    if libc.umount2(_encoded(target), flags):
        raise_errno(target)


def setns(fd: int, nstype: int = 0) -> None:
    """setns(2): join the namespace open as ``fd`` (``nstype``: a ``CLONE_NEW*`` type to
    check it against, or 0 for any)."""
    if libc.setns(fd, nstype):
        raise_errno()


def unshare(flags: int) -> None:
    """unshare(2): new namespaces of the types in ``flags`` (``CLONE_NEW*``)."""
    if libc.unshare(flags):
        raise_errno()
