"""mount(2) and umount2(2) through ctypes (Python 3.11 has no wrappers), and mount descriptions.

Drivers describe mounts with :class:`Mount`; the core performs them with :func:`mount`.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from dataclasses import dataclass, field
from pathlib import Path

from pydockerd.errors import SystemError

__all__ = ["MNT_DETACH", "Mount", "mount", "unmount"]

MNT_DETACH = 2

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_libc.mount.argtypes = [
    ctypes.c_char_p,
    ctypes.c_char_p,
    ctypes.c_char_p,
    ctypes.c_ulong,
    ctypes.c_char_p,
]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]


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
