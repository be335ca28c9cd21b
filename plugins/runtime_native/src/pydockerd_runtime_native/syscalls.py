"""The system calls Python 3.11 does not wrap, through ctypes: namespaces, mounts,
pivot_root, capabilities, prctl, host names. mount, umount2, setns and unshare are the
core's (:mod:`pydockerd.linux`, exported by ``pydockerd.plugin``), re-exported here; the
rest use its C library handle.

Every function raises :class:`OSError` with the errno (and the path, where there is one),
and none imports anything when called, so the forked child may use them. Messages shown to
users take errno's text from :func:`errno_text`.
"""

from __future__ import annotations

import ctypes
import os
from typing import Any

from pydockerd.plugin import ALL_CAPABILITIES, linux

__all__ = [
    "CAPABILITIES",
    "CLONE_NEWCGROUP",
    "CLONE_NEWIPC",
    "CLONE_NEWNET",
    "CLONE_NEWNS",
    "CLONE_NEWPID",
    "CLONE_NEWUTS",
    "MNT_DETACH",
    "NAMESPACES",
    "capset",
    "clear_ambient_capabilities",
    "default_signal_action",
    "drop_bounding_capability",
    "errno_text",
    "last_capability",
    "mount",
    "pivot_root",
    "set_no_new_privileges",
    "set_parent_death_signal",
    "setdomainname",
    "sethostname",
    "setns",
    "umount",
    "unshare",
]

CLONE_NEWNS = linux.CLONE_NEWNS
CLONE_NEWCGROUP = linux.CLONE_NEWCGROUP
CLONE_NEWUTS = linux.CLONE_NEWUTS
CLONE_NEWIPC = linux.CLONE_NEWIPC
CLONE_NEWNET = linux.CLONE_NEWNET
CLONE_NEWPID = linux.CLONE_NEWPID

NAMESPACES: dict[str, tuple[int, str]] = {
    "pid": (CLONE_NEWPID, "pid"),
    "mount": (CLONE_NEWNS, "mnt"),
    "uts": (CLONE_NEWUTS, "uts"),
    "ipc": (CLONE_NEWIPC, "ipc"),
    "network": (CLONE_NEWNET, "net"),
    "cgroup": (CLONE_NEWCGROUP, "cgroup"),
}
"""Namespace type of :attr:`ContainerSpec.namespaces` → (clone flag, name in /proc/<pid>/ns)."""

MNT_DETACH = linux.MNT_DETACH

_PR_SET_PDEATHSIG = 1
_PR_CAPBSET_DROP = 24
_PR_SET_NO_NEW_PRIVS = 38
_PR_CAP_AMBIENT = 47
_PR_CAP_AMBIENT_CLEAR_ALL = 4
_LINUX_CAPABILITY_VERSION_3 = 0x20080522

CAPABILITIES: dict[str, int] = {name: number for number, name in enumerate(ALL_CAPABILITIES)}
"""Capability names → numbers (linux/capability.h)."""


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    ]


def errno_text(number: int) -> str:
    """errno's text the way Go (runc, the docker CLI) writes it: ``no such file or directory``.
    The docker CLI looks for these exact lower-case words to choose exit statuses."""
    text = os.strerror(number)
    return text[:1].lower() + text[1:]


def _check(result: int, path: str | None = None) -> None:
    if result != 0:
        linux.raise_errno(path)


def _bytes(value: str | None) -> bytes | None:
    return None if value is None else os.fsencode(value)


unshare = linux.unshare
setns = linux.setns
mount = linux.mount
umount = linux.umount2


def pivot_root(new_root: str, put_old: str) -> None:
    _check(linux.libc.pivot_root(_bytes(new_root), _bytes(put_old)), new_root)


def sethostname(name: str) -> None:
    _set_name(linux.libc.sethostname, name)


def setdomainname(name: str) -> None:
    _set_name(linux.libc.setdomainname, name)


def _set_name(call: Any, name: str) -> None:
    raw = name.encode()
    _check(call(raw, ctypes.c_size_t(len(raw))))


def _prctl(option: int, arg2: int = 0, arg3: int = 0) -> None:
    args = (ctypes.c_ulong(arg2), ctypes.c_ulong(arg3), ctypes.c_ulong(0), ctypes.c_ulong(0))
    _check(linux.libc.prctl(ctypes.c_int(option), *args))


def set_parent_death_signal(signal: int) -> None:
    """``PR_SET_PDEATHSIG``: the signal this process gets when the thread that forked it
    ends (cleared by a change of uid or gid, so set it again after one)."""
    _prctl(_PR_SET_PDEATHSIG, signal)


def set_no_new_privileges() -> None:
    _prctl(_PR_SET_NO_NEW_PRIVS, 1)


def drop_bounding_capability(number: int) -> None:
    """Remove capability ``number`` from the bounding set (needs CAP_SETPCAP)."""
    _prctl(_PR_CAPBSET_DROP, number)


def clear_ambient_capabilities() -> None:
    _prctl(_PR_CAP_AMBIENT, _PR_CAP_AMBIENT_CLEAR_ALL)


def capset(effective: int, permitted: int, inheritable: int) -> None:
    """capset(2) of this process's three sets, as 64-bit masks (bit n = capability n)."""
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)(
        _CapData(effective & 0xFFFFFFFF, permitted & 0xFFFFFFFF, inheritable & 0xFFFFFFFF),
        _CapData(effective >> 32, permitted >> 32, inheritable >> 32),
    )
    _check(linux.libc.capset(ctypes.byref(header), data))


def last_capability() -> int:
    """The highest capability number this kernel knows."""
    try:
        with open("/proc/sys/kernel/cap_last_cap", "rb") as f:  # noqa: PTH123 - tiny read
            return int(f.read())
    except OSError:
        return max(CAPABILITIES.values())


_SYS_RT_SIGACTION = {"x86_64": 13, "aarch64": 134}.get(os.uname().machine)


class _KernelSigaction(ctypes.Structure):
    _fields_ = [
        ("handler", ctypes.c_void_p),
        ("flags", ctypes.c_ulong),
        ("restorer", ctypes.c_void_p),
        ("mask", ctypes.c_uint64),
    ]


def default_signal_action(number: int) -> None:
    """Give signal ``number`` its default action with the raw ``rt_sigaction`` system call,
    which also reaches the signals the C library keeps to itself (32 and 33), where
    Python's ``signal.signal`` and libc's ``sigaction`` refuse them."""
    if _SYS_RT_SIGACTION is None:
        return
    action = _KernelSigaction(None, 0, None, 0)
    linux.syscall(_SYS_RT_SIGACTION, number, ctypes.byref(action), None, 8)
