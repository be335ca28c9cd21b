"""Forking a container's process on the caller's thread, into the right pid namespace, and
reading what the child reports.

The child must be a direct child of the caller (the supervisor reaps it) and, for a new
container, PID 1 of a new pid namespace. ``unshare(CLONE_NEWPID)`` changes only the
namespace the caller's *next* children get, so the caller unshares, forks, and returns
to its own namespace with ``setns``; ``exec`` does the same with ``setns`` into the
container's namespace.
"""

from __future__ import annotations

import asyncio
import functools
import os
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import NoReturn

from pydockerd.plugin import StartError, Stdio, SystemError

from pydockerd_runtime_native import syscalls as sc
from pydockerd_runtime_native.child import ERROR, GO, READY, START, ChildFds

__all__ = ["Child", "spawn"]


@functools.cache
def _own_pid_namespace() -> int:
    """This process's own pid namespace, to come back to after forking into another: opened
    once (close-on-exec) and kept for the process's life."""
    return os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)


@contextmanager
def _pid_namespace_for_children(*, new: bool = False, join: int | None = None) -> Iterator[None]:
    """Children forked inside get a new pid namespace (``new``), the one open as ``join``,
    or the caller's."""
    if not new and join is None:
        yield
        return
    own = _own_pid_namespace()
    try:
        if new:
            sc.unshare(sc.CLONE_NEWPID)
        else:
            assert join is not None
            sc.setns(join, sc.CLONE_NEWPID)
    except OSError as e:
        what = "create a pid namespace" if new else "join the container's pid namespace"
        raise StartError(f"{what}: {sc.errno_text(e.errno or 0)}") from None
    try:
        yield
    finally:
        try:
            sc.setns(own, sc.CLONE_NEWPID)
        except OSError as e:  # every later child would land in the container
            raise SystemError(f"return to the supervisor's pid namespace: {e}") from e


@dataclass
class Child:
    """A forked child waiting for :meth:`go`: the parent's ends of its two pipes."""

    pid: int
    control: int
    status: int

    def send(self, message: bytes) -> None:
        """Write :data:`GO` or :data:`START` (ignored when the child is gone)."""
        with suppress(OSError):  # the child is gone
            os.write(self.control, message)

    def go(self) -> None:
        self.send(GO)

    def start(self) -> None:
        self.send(START)

    async def ready(self) -> None:
        """Wait until the child waits just before ``execve``.

        :raises StartError: its setup failed, with its message.
        """
        message = await _read(self.status, until_ready=True)
        if message != READY:
            raise StartError(_error_text(message))

    async def executed(self) -> None:
        """Wait until the child ran ``execve`` (the close-on-exec status pipe ends).

        :raises StartError: ``execve`` failed; the child exits 127 or 126.
        """
        message = await _read(self.status, until_ready=False)
        if message:
            raise StartError(_error_text(message))

    async def kill(self) -> None:
        """SIGKILL the child and reap it (it was never handed to the supervisor), waiting
        without blocking the event loop: a child in uninterruptible sleep (``D``) dies only
        when it leaves it, and the supervisor's other containers go on meanwhile."""
        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            return  # already reaped, by a supervisor's catch-all waitpid
        await _reaped(self.pid)

    def close(self) -> None:
        for fd in (self.control, self.status):
            if fd >= 0:
                os.close(fd)
        self.control = self.status = -1


def _reap(pid: int) -> bool:
    """``waitpid`` without waiting: whether ``pid`` is reaped (or was, by someone else)."""
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return True
    return done != 0


async def _reaped(pid: int) -> None:
    """Wait until the child ``pid``, killed, has exited, and reap it: its pidfd turns
    readable when it exits; without pidfds (Linux before 5.3), poll (1 ms, doubling to
    50 ms)."""
    try:
        pidfd = os.pidfd_open(pid)
    except OSError:  # reaped already (a zombie keeps its pid), or no pidfds: the loop tells
        pidfd = -1
    try:
        if pidfd >= 0:
            loop = asyncio.get_running_loop()
            exited: asyncio.Future[None] = loop.create_future()

            def readable() -> None:
                if not exited.done():
                    exited.set_result(None)

            loop.add_reader(pidfd, readable)
            try:
                await exited
            finally:
                loop.remove_reader(pidfd)
        delay = 0.001
        while not _reap(pid):
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.05)
    finally:
        if pidfd >= 0:
            os.close(pidfd)


def _error_text(message: bytes) -> str:
    if message.startswith(ERROR):
        return message[1:].decode("utf-8", "replace")
    return "container process exited during setup"


async def _read(fd: int, *, until_ready: bool) -> bytes:
    """What the child writes on the status pipe: until end-of-file, or until
    :data:`READY` when ``until_ready``."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[bytes] = loop.create_future()
    chunks: list[bytes] = []
    os.set_blocking(fd, False)

    def readable() -> None:
        if done.done():
            return
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            return
        except OSError as e:
            done.set_exception(StartError(f"read the container's status: {e.strerror}"))
            return
        chunks.append(data)
        if not data or (until_ready and chunks[0][:1] == READY):
            done.set_result(b"".join(chunks))

    loop.add_reader(fd, readable)
    try:
        return await done
    finally:
        loop.remove_reader(fd)


def spawn(
    run: Callable[[ChildFds], NoReturn],
    stdio: Stdio,
    namespaces: tuple[tuple[int, int], ...],
    *,
    new_pid_namespace: bool = False,
    join_pid_namespace: int | None = None,
) -> Child:
    """Fork a child that runs ``run`` (which never returns) and waits for :data:`GO`.

    Signals are blocked around the fork so no Python handler runs in the child before it
    resets them.

    :raises StartError: the fork or the pid namespace failed; nothing is left.
    :raises SystemError: called from a thread other than the main one.
    """
    if threading.current_thread() is not threading.main_thread():
        # the child's parent-death signal would follow this thread, not the process
        raise SystemError("the native runtime forks containers on the main thread only")
    control_r, control_w = os.pipe2(os.O_CLOEXEC)
    status_r, status_w = os.pipe2(os.O_CLOEXEC)
    fds = ChildFds(stdio.stdin, stdio.stdout, stdio.stderr, control_r, status_w, namespaces)
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())
    try:
        with _pid_namespace_for_children(new=new_pid_namespace, join=join_pid_namespace):
            pid = os.fork()
            if pid == 0:  # pragma: no cover - the child
                run(fds)
    except BaseException as e:
        for fd in (control_r, control_w, status_r, status_w):
            os.close(fd)
        if isinstance(e, OSError):
            raise StartError(f"fork: {sc.errno_text(e.errno or 0)}") from None
        raise
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
    os.close(control_r)
    os.close(status_w)
    return Child(pid, control_w, status_r)
