"""The forked child: what runs between ``fork`` and ``execve`` of a container's process.

Rules of this module, because it runs in a fork of the single-threaded supervisor: only
code imported before the fork (``os``, ``ctypes`` through :mod:`.syscalls`, ``fcntl``,
``select``, ``signal``, ``socket``, ``struct``, ``termios``), no asyncio, no logging, no
import; every path ends in ``execve`` or ``os._exit``.

The child talks to its parent over two pipes. *control* (parent → child) carries
:data:`GO` once the parent has put the child into its cgroup, and :data:`START` when the
container is to run its program; end-of-file on it means the parent is gone, and the child
exits. *status* (child → parent, close-on-exec) carries :data:`READY` when a container's
first process waits just before ``execve``, or :data:`ERROR` and a message before the
child exits; its end-of-file without an error means ``execve`` succeeded.
"""

# str paths and os calls only: this runs in the forked child:
# ruff: noqa: PTH102, PTH108, PTH112, PTH115, PTH116, PTH120, PTH211

from __future__ import annotations

import contextlib
import errno
import fcntl
import gc
import os
import select
import signal
import socket
import stat
import struct
import termios
from collections.abc import Callable
from dataclasses import dataclass
from typing import NoReturn

from pydockerd.plugin import MountFlag

from pydockerd_runtime_native import syscalls as sc
from pydockerd_runtime_native.paths import make_directories, make_mount_point, secure_join
from pydockerd_runtime_native.plan import InitPlan, MountPlan, ProcessPlan

__all__ = ["ERROR", "GO", "READY", "START", "ChildFds", "run_exec", "run_init"]

GO = b"G"
START = b"S"
READY = b"R"
ERROR = b"E"

_SIOCGIFFLAGS = 0x8913
_SIOCSIFFLAGS = 0x8914
_IFF_UP = 0x1
_IFREQ = "16sH22x"
# per-mount flags statvfs reports with the same bits as mount(2) takes
_KEPT_FLAGS = (
    MountFlag.NOSUID
    | MountFlag.NODEV
    | MountFlag.NOEXEC
    | MountFlag.NOATIME
    | MountFlag.NODIRATIME
    | MountFlag.RELATIME
)
_DEV_LINKS = (
    ("fd", "/proc/self/fd"),
    ("stdin", "/proc/self/fd/0"),
    ("stdout", "/proc/self/fd/1"),
    ("stderr", "/proc/self/fd/2"),
)
_MAX_FD = 2**31 - 1


@dataclass(frozen=True)
class ChildFds:
    """The descriptors the child keeps; every other one is closed first thing."""

    stdin: int
    stdout: int
    stderr: int
    control: int
    status: int
    namespaces: tuple[tuple[int, int], ...] = ()
    """(fd, ``CLONE_NEW*`` type) of each namespace to join, in order."""


class SetupError(Exception):
    """A step failed: the message the user sees, and the child's exit status."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class _ParentGone(Exception):
    """The control pipe ended: nobody waits for this child any more."""


def _failed(what: str, error: OSError) -> SetupError:
    return SetupError(f"{what}: {sc.errno_text(error.errno) if error.errno else error}")


# --------------------------------------------------------------------------------------
# entry points


def run_init(init: InitPlan, process: ProcessPlan, fds: ChildFds) -> NoReturn:
    """A container's first process: new namespaces, root filesystem, then wait for
    :data:`START` and ``execve``."""
    _run(lambda kept: _init(init, process, kept), fds)


def run_exec(process: ProcessPlan, fds: ChildFds) -> NoReturn:
    """Another process in a running container: join its namespaces and ``execve``."""
    _run(lambda kept: _exec(process, kept), fds)


def _run(body: Callable[[ChildFds], None], fds: ChildFds) -> NoReturn:
    code = 1
    status = fds.status
    try:
        gc.disable()
        _reset_signals()
        kept = _keep_only(fds)
        status = kept.status
        body(kept)
    except SetupError as e:
        code = e.exit_code
        _report(status, str(e))
    except _ParentGone:
        pass
    except BaseException as e:
        _report(status, f"container setup: {type(e).__name__}: {e}")
    finally:
        os._exit(code)


def _report(status: int, message: str) -> None:
    with contextlib.suppress(OSError):
        os.write(status, ERROR + message.encode("utf-8", "replace"))


def _reset_signals() -> None:
    """Default dispositions and an empty mask: ignored signals stay ignored across execve
    (Python ignores SIGPIPE), and the parent blocked every signal around the fork."""
    for number in range(1, signal.NSIG):
        if number in (signal.SIGKILL, signal.SIGSTOP):
            continue
        try:
            signal.signal(number, signal.SIG_DFL)
        except (OSError, ValueError):  # the C library's own signals (32, 33)
            with contextlib.suppress(OSError):
                sc.default_signal_action(number)
    signal.pthread_sigmask(signal.SIG_SETMASK, ())


def _keep_only(fds: ChildFds) -> ChildFds:
    """Move the descriptors we keep above 2 (close-on-exec) and close all others, so no
    other container's pipe stays open in this one."""
    moved: dict[int, int] = {}

    def move(fd: int) -> int:
        if fd not in moved:
            moved[fd] = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 3)
        return moved[fd]

    kept = ChildFds(
        stdin=move(fds.stdin),
        stdout=move(fds.stdout),
        stderr=move(fds.stderr),
        control=move(fds.control),
        status=move(fds.status),
        namespaces=tuple((move(fd), kind) for fd, kind in fds.namespaces),
    )
    low = 0
    for fd in sorted(moved.values()):
        os.closerange(low, fd)
        low = fd + 1
    os.closerange(low, _MAX_FD)
    return kept


def _wait_for(control: int, expected: bytes) -> None:
    try:
        message = os.read(control, 1)
    except OSError:
        message = b""
    if message != expected:
        raise _ParentGone


def _parent_alive(control: int) -> None:
    """Raise :class:`_ParentGone` when the parent's end of the control pipe is closed."""
    poller = select.poll()
    poller.register(control, select.POLLIN)
    if poller.poll(0):
        raise _ParentGone


# --------------------------------------------------------------------------------------
# the container's first process


def _init(init: InitPlan, process: ProcessPlan, fds: ChildFds) -> None:
    sc.set_parent_death_signal(signal.SIGKILL)
    _wait_for(fds.control, GO)  # now in the cgroup: what follows is accounted to it
    _join(fds.namespaces)
    try:
        sc.unshare(init.unshare_flags)
    except OSError as e:
        raise _failed("unshare namespaces", e) from None
    os.umask(0)
    _prepare_root(init, process, fds)
    try:  # Docker creates a missing working directory (before the root turns read-only)
        make_directories("/", secure_join("/", process.cwd))
    except OSError as e:
        raise _failed(f"mkdir {process.cwd}", e) from None
    _uts(init)
    if init.loopback:
        _loopback_up()
    for key, value in init.sysctls:
        _write_sysctl(key, value)
    for path in init.readonly_paths:
        _readonly(path)
    for path in init.masked_paths:
        _mask(path)
    if init.readonly_root:
        try:
            _readonly_remount("/")
        except OSError as e:
            raise _failed("remount the root read-only", e) from None
    _finalize(process, fds, wait_for_start=True)


def _join(namespaces: tuple[tuple[int, int], ...]) -> None:
    for fd, kind in namespaces:
        try:
            sc.setns(fd, kind)
        except OSError as e:
            name = next((n for n, (f, _) in sc.NAMESPACES.items() if f == kind), str(kind))
            raise _failed(f"join {name} namespace", e) from None
        os.close(fd)


def _prepare_root(init: InitPlan, process: ProcessPlan, fds: ChildFds) -> None:
    root = init.root
    try:
        # nothing of what follows may propagate to the host
        sc.mount(None, "/", None, MountFlag.SLAVE | MountFlag.REC)
        sc.mount(root, root, None, MountFlag.BIND | MountFlag.REC)
    except OSError as e:
        raise _failed(f"prepare root {root}", e) from None
    for m in init.mounts:
        _mount(root, m, init.cgroup_mounts)
    _make_devices(init)
    _dev_links(root)
    if process.terminal:
        _console(root, fds.stdin)
    _pivot_root(root)


def _mount(root: str, m: MountPlan, cgroup_mounts: tuple[tuple[str, str, str], ...]) -> None:
    what = f"mount {m.source} to {m.destination}"
    try:
        target = secure_join(root, m.destination)
        if m.kind == "bind":
            try:
                is_file = not stat.S_ISDIR(os.stat(m.source).st_mode)
            except OSError as e:
                raise _failed(f"{what}: stat {m.source}", e) from None
            make_mount_point(root, target, file=is_file)
            sc.mount(m.source, target, None, m.flags & (MountFlag.BIND | MountFlag.REC))
            if m.remount_flags:
                sc.mount(None, target, None, MountFlag.BIND | MountFlag.REMOUNT | m.remount_flags)
        elif m.kind == "cgroup":
            make_directories(root, target)
            _mount_cgroups(target, m, cgroup_mounts)
        else:
            make_directories(root, target)
            sc.mount(m.source, target, m.fstype, m.flags, m.data or None)
        for propagation in m.propagation:
            sc.mount(None, target, None, propagation)
    except OSError as e:
        raise _failed(what, e) from None


def _mount_cgroups(
    target: str, m: MountPlan, hierarchies: tuple[tuple[str, str, str], ...]
) -> None:
    """The cgroup filesystem as the container sees it (its cgroup namespace's root)."""
    if len(hierarchies) == 1 and hierarchies[0][1] == "cgroup2":
        sc.mount("cgroup2", target, "cgroup2", m.flags, None)
        return
    sc.mount("tmpfs", target, "tmpfs", m.flags & ~MountFlag.RDONLY, "mode=755")
    for name, fstype, options in hierarchies:
        directory = f"{target}/{name}"
        os.mkdir(directory, 0o755)
        sc.mount("cgroup", directory, fstype, m.flags, options)
        if "," in name:
            for alias in name.split(","):
                os.symlink(name, f"{target}/{alias}")
    if m.flags & MountFlag.RDONLY:
        sc.mount(None, target, None, MountFlag.REMOUNT | (m.flags & ~MountFlag.BIND), "mode=755")


def _make_devices(init: InitPlan) -> None:
    for device in init.devices:
        try:
            path = secure_join(init.root, device.path)
            make_directories(init.root, os.path.dirname(path))
            try:
                os.mknod(path, device.mode, device.rdev)
            except FileExistsError:
                continue
            os.chown(path, device.uid, device.gid)
        except OSError as e:
            raise _failed(f"mknod {device.path}", e) from None


def _dev_links(root: str) -> None:
    dev = secure_join(root, "/dev")
    if not os.path.isdir(dev):
        return
    try:
        for name, target in _DEV_LINKS:
            with contextlib.suppress(FileExistsError):
                os.symlink(target, f"{dev}/{name}")
        if os.path.isdir(f"{dev}/pts"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(f"{dev}/ptmx")
            os.symlink("pts/ptmx", f"{dev}/ptmx")
    except OSError as e:
        raise _failed("make /dev links", e) from None


def _console(root: str, terminal: int) -> None:
    """Bind the pty slave on ``/dev/console``. The bind's source is the slave's path, which
    names this mount namespace's copy of its devpts (the descriptor names the
    supervisor's, which the kernel refuses to bind from)."""
    try:
        source = os.readlink(f"/proc/self/fd/{terminal}")
        if os.stat(source).st_rdev != os.fstat(terminal).st_rdev:
            raise OSError(errno.ENODEV, "the terminal is not in this mount namespace", source)
        console = secure_join(root, "/dev/console")
        make_mount_point(root, console, file=True)
        sc.mount(source, console, None, MountFlag.BIND)
    except OSError as e:
        raise _failed("mount the terminal on /dev/console", e) from None


def _pivot_root(root: str) -> None:
    try:
        old = os.open("/", os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
        new = os.open(root, os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
        os.fchdir(new)
        sc.pivot_root(".", ".")
        os.fchdir(old)  # the old root, now stacked under the new one
        sc.mount(None, ".", None, MountFlag.SLAVE | MountFlag.REC)
        sc.umount(".", sc.MNT_DETACH)
        os.chdir("/")
        os.close(old)
        os.close(new)
    except OSError as e:
        raise _failed(f"pivot_root {root}", e) from None


def _uts(init: InitPlan) -> None:
    try:
        if init.hostname is not None:
            sc.sethostname(init.hostname)
        if init.domainname is not None:
            sc.setdomainname(init.domainname)
    except OSError as e:
        raise _failed("set the host name", e) from None


def _loopback_up() -> None:
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            request = struct.pack(_IFREQ, b"lo", 0)
            flags = struct.unpack(_IFREQ, fcntl.ioctl(s.fileno(), _SIOCGIFFLAGS, request))[1]
            fcntl.ioctl(s.fileno(), _SIOCSIFFLAGS, struct.pack(_IFREQ, b"lo", flags | _IFF_UP))
    except OSError as e:
        raise _failed("bring the loopback interface up", e) from None


def _write_sysctl(key: str, value: str) -> None:
    path = "/proc/sys/" + key.replace(".", "/")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.write(fd, value.encode())
        finally:
            os.close(fd)
    except OSError as e:
        raise _failed(f"sysctl {key}={value}", e) from None


def _readonly_remount(path: str) -> None:
    flags = os.statvfs(path).f_flag & _KEPT_FLAGS
    sc.mount(None, path, None, MountFlag.BIND | MountFlag.REMOUNT | MountFlag.RDONLY | flags)


def _readonly(path: str) -> None:
    if not os.path.lexists(path):
        return
    try:
        sc.mount(path, path, None, MountFlag.BIND | MountFlag.REC)
        _readonly_remount(path)
    except OSError as e:
        raise _failed(f"make {path} read-only", e) from None


def _mask(path: str) -> None:
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return
    except OSError as e:
        raise _failed(f"mask {path}", e) from None
    try:
        if stat.S_ISDIR(mode):
            sc.mount("tmpfs", path, "tmpfs", MountFlag.RDONLY)
        else:
            sc.mount("/dev/null", path, None, MountFlag.BIND)
    except OSError as e:
        raise _failed(f"mask {path}", e) from None


# --------------------------------------------------------------------------------------
# exec


def _exec(process: ProcessPlan, fds: ChildFds) -> None:
    sc.set_parent_death_signal(signal.SIGKILL)
    _wait_for(fds.control, GO)
    _join(fds.namespaces)
    _finalize(process, fds, wait_for_start=False)


# --------------------------------------------------------------------------------------
# both: user, capabilities, terminal, program


def _finalize(process: ProcessPlan, fds: ChildFds, *, wait_for_start: bool) -> None:
    _terminal(process, fds.stdin)
    _credentials(process)
    try:
        os.chdir(process.cwd)
    except OSError as e:
        raise _failed(f'chdir to cwd ("{process.cwd}")', e) from None
    program = _look_up(process)
    sc.set_parent_death_signal(signal.SIGKILL)  # the uid change cleared it
    if process.no_new_privileges:
        sc.set_no_new_privileges()
    try:
        os.dup2(fds.stdin, 0)
        os.dup2(fds.stdout, 1)
        os.dup2(fds.stderr, 2)
    except OSError as e:
        raise _failed("set up stdio", e) from None
    os.umask(0o022)
    if wait_for_start:
        os.write(fds.status, READY)
        _wait_for(fds.control, START)
    else:
        _parent_alive(fds.control)
    try:
        os.execve(program, process.args, _environment(process.env))  # noqa: S606
    except OSError as e:
        code = 127 if e.errno in (errno.ENOENT, errno.ENOTDIR) else 126
        raise SetupError(f"exec {program}: {sc.errno_text(e.errno or 0)}", code) from None


def _environment(env: tuple[str, ...]) -> dict[str, str]:
    result: dict[str, str] = {}
    for entry in env:
        name, _, value = entry.partition("=")
        result[name] = value
    return result


def _terminal(process: ProcessPlan, terminal: int) -> None:
    try:
        os.setsid()
        if not process.terminal:
            return
        fcntl.ioctl(terminal, termios.TIOCSCTTY, 0)
        if process.console_size:
            rows, columns = process.console_size
            fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
    except OSError as e:
        raise _failed("set up the terminal", e) from None


def _credentials(process: ProcessPlan) -> None:
    try:
        for number in process.bounding_drop:
            sc.drop_bounding_capability(number)
    except OSError as e:
        raise _failed("drop capabilities from the bounding set", e) from None
    try:
        os.setgroups(list(process.groups))
        os.setgid(process.gid)
        os.setuid(process.uid)
    except OSError as e:
        raise _failed(f"set user {process.uid}:{process.gid}", e) from None
    try:
        caps = process.capabilities
        sc.capset(caps, caps, 0)
        sc.clear_ambient_capabilities()
    except OSError as e:
        raise _failed("set capabilities", e) from None


def _executable(path: str) -> tuple[str, int] | None:
    """Why ``path`` cannot be run (Go's ``exec.LookPath`` words) and the exit status, or
    ``None`` when it can."""
    try:
        mode = os.stat(path).st_mode
    except OSError as e:
        code = 127 if e.errno in (errno.ENOENT, errno.ENOTDIR) else 126
        return f"stat {path}: {sc.errno_text(e.errno or 0)}", code
    if stat.S_ISDIR(mode):
        return "is a directory", 126
    if not mode & 0o111:
        return "permission denied", 126
    return None


def _look_up(process: ProcessPlan) -> str:
    name = process.args[0]
    if "/" in name:
        problem = _executable(name)
        if problem is not None:
            raise SetupError(f'exec: "{name}": {problem[0]}', problem[1])
        return name
    for directory in process.search_path:
        candidate = f"{directory.rstrip('/')}/{name}"
        if _executable(candidate) is None:
            return candidate
    raise SetupError(f'exec: "{name}": executable file not found in $PATH', 127)
