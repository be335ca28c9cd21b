"""Small helpers shared by the end-to-end tests."""

from __future__ import annotations

import contextlib
import os
import pty
import select
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from pydockerd.testing.daemon import DaemonProcess, cgroup_dirs, start_daemon

__all__ = [
    "DOCKER",
    "Terminal",
    "busybox_daemon",
    "docker",
    "free_port",
    "leftovers",
    "load_image",
    "wait_for",
]

DOCKER = shutil.which("docker") or "/usr/local/bin/docker"


def docker(
    env: dict[str, str], *args: str, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run the real docker CLI against the daemon named in ``env``."""
    return subprocess.run(
        [DOCKER, *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def load_image(daemon: DaemonProcess, archive: Path) -> None:
    """``docker load`` of ``archive`` into ``daemon``, through the API."""
    status, _, body = daemon.request("POST", "/images/load?quiet=1", archive.read_bytes())
    assert status == 200, body


@contextlib.contextmanager
def busybox_daemon(tar: Path, **start_kwargs: Any) -> Iterator[DaemonProcess]:
    """A daemon (``start_daemon(**start_kwargs)``) with ``busybox:latest`` loaded from
    ``tar``; removed with everything it made (containers, mounts, cgroups) afterwards."""
    daemon = start_daemon(**start_kwargs)
    try:
        load_image(daemon, tar)
        yield daemon
    finally:
        daemon.cleanup()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(predicate: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


class Terminal:
    """A command under a real pseudo-terminal, driven like a person would: wait for text,
    type, and read its exit status. Use it as a context manager: on the way out a command
    still running is killed and reaped, and the terminal closed, whatever happened."""

    def __init__(self, argv: Sequence[str], env: dict[str, str], rows: int = 30, cols: int = 100):
        pid, fd = pty.fork()
        if pid == 0:  # pragma: no cover - the child: it execs, or exits; it never returns
            try:
                os.execvpe(argv[0], list(argv), env)
            except BaseException as e:
                os.write(2, f"{argv[0]}: {e}\n".encode())  # what the terminal shows
            finally:
                os._exit(127)
        self.pid, self.fd = pid, fd
        self.output = b""
        self.status: int | None = None
        self._reaped = False
        try:
            import fcntl
            import struct
            import termios

            fcntl.ioctl(self.fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> Terminal:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """SIGKILL the command if it was not reaped yet, reap it, and close the terminal;
        once (later calls do nothing)."""
        if not self._reaped:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
            self._reaped = True
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def expect(self, text: str, timeout: float = 15.0) -> str:
        """Read until ``text`` appears; everything read so far, decoded."""
        deadline = time.monotonic() + timeout
        while text.encode() not in self.output:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"timed out waiting for {text!r}; got {self.output[-500:]!r}")
            ready, _, _ = select.select([self.fd], [], [], min(left, 0.2))
            if ready:
                try:
                    chunk = os.read(self.fd, 4096)
                except OSError:
                    chunk = b""
                if not chunk:
                    raise AssertionError(f"the terminal closed before {text!r}: {self.output!r}")
                self.output += chunk
        return self.output.decode(errors="replace")

    def send(self, text: str) -> None:
        os.write(self.fd, text.encode())

    def wait(self, timeout: float = 15.0) -> int:
        """The command's exit status (it is killed after ``timeout``)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.fd], [], [], 0.1)
            if ready:
                with contextlib.suppress(OSError):
                    self.output += os.read(self.fd, 4096)
            done, status = os.waitpid(self.pid, os.WNOHANG)
            if done:
                self._reaped = True
                self.close()
                self.status = os.waitstatus_to_exitcode(status)
                return self.status
        self.close()
        raise AssertionError(f"the command did not end: {self.output[-500:]!r}")


def leftovers(
    container_id: str, cgroup_parent: str, cgroup_root: Path = Path("/sys/fs/cgroup")
) -> list[str]:
    """What the host still holds of a removed container: mounts naming it, its cgroups (in
    every hierarchy, cgroup v1 and v2), processes in them. Empty when it left nothing."""
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        if container_id in line:
            found.append(f"mount {line.split()[4]}")
    for top in cgroup_dirs(cgroup_parent, cgroup_root):
        cgroup = top / container_id
        if not cgroup.is_dir():
            continue
        found.append(f"cgroup {cgroup}")
        for directory in [cgroup, *(d for d in cgroup.rglob("*") if d.is_dir())]:
            try:
                pids = (directory / "cgroup.procs").read_text().split()
            except OSError:
                continue
            found += [f"process {pid} in {directory}" for pid in pids]
    return found
