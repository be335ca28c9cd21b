"""A real pydockerd in a subprocess, with its own socket, data-root, exec-root and cgroup
parent.

Readiness is learnt the way systemd learns it: the daemon sends ``READY=1`` to the
``$NOTIFY_SOCKET`` the kit creates. Nothing is shared with a host-wide daemon, so any number
of these can run side by side. :meth:`DaemonProcess.cleanup` leaves nothing behind: it
removes the daemon's containers, stops its supervisor, ends any process left in its cgroups,
detaches every mount below its directory and deletes it.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "DaemonNetwork",
    "DaemonProcess",
    "DaemonStartError",
    "UnixHTTPConnection",
    "cgroup_dirs",
    "end_process",
    "remove_cgroups",
    "start_daemon",
]


class DaemonStartError(RuntimeError):
    """The daemon exited or did not become ready; the message holds its log."""


class UnixHTTPConnection(http.client.HTTPConnection):
    """``http.client`` over a unix socket."""

    def __init__(self, path: Path, timeout: float = 30.0) -> None:
        super().__init__("localhost", timeout=timeout)
        self.socket_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(str(self.socket_path))
        self.sock = sock


@dataclass
class DaemonProcess:
    """A running daemon started by :func:`start_daemon`."""

    base_dir: Path
    socket_path: Path
    data_root: Path
    exec_root: Path
    log_path: Path
    process: subprocess.Popen[bytes]
    notify_socket: socket.socket
    env: dict[str, str] = field(default_factory=dict)
    """The environment for clients of this daemon (``DOCKER_HOST`` and ``PYDOCKER_HOST``)."""
    argv: list[str] = field(default_factory=list)
    daemon_env: dict[str, str] = field(default_factory=dict)
    cgroup_parent: str = ""
    network: DaemonNetwork | None = None
    """The daemon's own network names and addresses, released by :meth:`cleanup`."""

    @property
    def host(self) -> str:
        return f"unix://{self.socket_path}"

    def request(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        """One API call: ``(status, headers, body)``; ``body`` is sent as JSON, or as it is
        when it is ``bytes``."""
        conn = UnixHTTPConnection(self.socket_path)
        try:
            payload = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
            conn.request(method, path, body=payload, headers=headers or {})
            response = conn.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        finally:
            conn.close()

    def get_json(self, path: str) -> Any:
        status, _, body = self.request("GET", path)
        if status != 200:
            raise AssertionError(f"GET {path}: {status} {body!r}")
        return json.loads(body)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout: float = 20.0) -> int:
        """SIGTERM, then SIGKILL after ``timeout``; the exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def kill(self) -> None:
        """SIGKILL the daemon (its supervisor and containers stay)."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()

    def restart(self, *, kill: bool = False, timeout: float = 30.0) -> None:
        """Stop the daemon (SIGTERM, or SIGKILL with ``kill``) and start it again on the same
        directories; returns once it is ready."""
        if kill:
            self.kill()
        else:
            self.stop()
        self.notifications()
        with (self.log_path).open("ab") as log:
            self.process = subprocess.Popen(
                self.argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.daemon_env,
                start_new_session=True,
            )
        _wait_ready(self, self.notify_socket, timeout)

    def supervisor_pid(self) -> int | None:
        """The pid of the daemon's supervisor, if one runs: the pid it wrote in its lock
        file, while the lock is held. The file stays when the supervisor ends, and its pid
        may be another process's by then: a lock nobody holds (a shared lock can be taken)
        means no supervisor."""
        import fcntl

        try:
            with (self.exec_root / "supervisor" / "supervisor.lock").open() as lock:
                try:
                    fcntl.flock(lock, fcntl.LOCK_SH | fcntl.LOCK_NB)
                except BlockingIOError:  # held: a supervisor runs
                    pid = int(lock.read().strip())
                else:
                    return None  # closing the file lets go of the lock
            os.kill(pid, 0)
        except (OSError, ValueError):
            return None
        return pid

    def notifications(self) -> list[str]:
        """What the daemon sent to ``$NOTIFY_SOCKET`` since the last call (``READY=1``...)."""
        self.notify_socket.setblocking(False)
        received = []
        while True:
            try:
                received.extend(self.notify_socket.recv(4096).decode().splitlines())
            except BlockingIOError:
                return received

    def _remove_containers(self) -> None:
        if self.process.poll() is not None:
            return
        with contextlib.suppress(OSError, AssertionError, ValueError, http.client.HTTPException):
            for container in self.get_json("/containers/json?all=1"):
                self.request("DELETE", f"/containers/{container['Id']}?force=1&v=1")

    def cleanup(self) -> None:
        """Stop the daemon and remove everything it had: containers, supervisor, the
        processes and cgroups under its cgroup parent, mounts and directories."""
        self._remove_containers()
        self.stop()
        supervisor = self.supervisor_pid()
        if supervisor is not None:
            end_process(supervisor)
        if self.cgroup_parent:
            remove_cgroups(self.cgroup_parent)
        from pydockerd.testing.drivers import detach_mounts_under  # the kit's light: lazily

        detach_mounts_under(self.base_dir)
        if self.network is not None:
            self.network.release()
        self.notify_socket.close()
        shutil.rmtree(self.base_dir, ignore_errors=True)


def start_daemon(
    *args: str,
    base_dir: Path | None = None,
    env: dict[str, str] | None = None,
    config: str | None = None,
    timeout: float = 30.0,
    python: str | Path = sys.executable,
) -> DaemonProcess:
    """Start ``pydockerd`` with its own directories and wait until it is ready.

    :param args: extra command-line flags.
    :param base_dir: where its socket, data-root, exec-root and log go; a new short
        directory under /tmp by default (unix socket paths are limited to 107 bytes).
    :param env: extra environment variables.
    :param config: daemon.toml text, written to ``<base_dir>/daemon.toml`` and passed with
        ``--config-file``.
    :param python: the interpreter whose installed pydockerd (and plugins) to run.
    :raises DaemonStartError: it exited or did not send ``READY=1`` within ``timeout``.
    """
    base = base_dir or Path(tempfile.mkdtemp(prefix="pd-", dir="/tmp"))
    base.mkdir(parents=True, exist_ok=True)
    flags = list(args)
    if config is not None:
        (base / "daemon.toml").write_text(config)
        flags += ["--config-file", str(base / "daemon.toml")]
    else:  # never read the host's /etc/pydockerd/daemon.toml
        (base / "empty.toml").write_text("")
        flags += ["--config-file", str(base / "empty.toml")]
    notify_path = base / "notify.sock"
    notify_path.unlink(missing_ok=True)
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    network: DaemonNetwork | None = None
    try:
        notify.bind(str(notify_path))
        cgroup_parent = f"pydockerd-test-{base.name}"
        network = DaemonNetwork.take(with_bridge_driver=Path(python) == Path(sys.executable))
        full_env = {
            **os.environ,
            "PYDOCKERD_CGROUP_PARENT": cgroup_parent,
            **network.environment(),
            **(env or {}),
            "NOTIFY_SOCKET": str(notify_path),
        }
        daemon = DaemonProcess(
            base_dir=base,
            socket_path=base / "pydockerd.sock",
            data_root=base / "data",
            exec_root=base / "exec",
            log_path=base / "daemon.log",
            process=None,  # type: ignore[arg-type]  # set just below
            notify_socket=notify,
            daemon_env=full_env,
            cgroup_parent=full_env["PYDOCKERD_CGROUP_PARENT"],
            network=network,
        )
        daemon.argv = [
            str(python),
            "-m",
            "pydockerd",
            "-H",
            daemon.host,
            "--data-root",
            str(daemon.data_root),
            "--exec-root",
            str(daemon.exec_root),
            *flags,
        ]
        with daemon.log_path.open("wb") as log:
            daemon.process = subprocess.Popen(
                daemon.argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=full_env,
                start_new_session=True,
            )
    except BaseException:  # no daemon ran: give back the number and the socket
        if network is not None:
            network.lock.close()
        notify.close()
        if base_dir is None:
            shutil.rmtree(base, ignore_errors=True)
        raise
    daemon.env = {
        **os.environ,
        **(env or {}),
        "DOCKER_HOST": daemon.host,
        "PYDOCKER_HOST": daemon.host,
    }
    try:
        _wait_ready(daemon, notify, timeout)
    except BaseException:
        daemon.cleanup()
        raise
    return daemon


def _wait_ready(daemon: DaemonProcess, notify: socket.socket, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    notify.settimeout(0.1)
    while time.monotonic() < deadline:
        if daemon.process.poll() is not None:
            raise DaemonStartError(
                f"pydockerd exited with {daemon.process.returncode}:\n{daemon.log()}"
            )
        try:
            message = notify.recv(4096).decode()
        except TimeoutError:
            continue
        if "READY=1" in message.splitlines():
            return
    raise DaemonStartError(f"pydockerd did not become ready in {timeout} s:\n{daemon.log()}")


@dataclass
class DaemonNetwork:
    """Network names and addresses no other test daemon on the host has: a number from 100
    to 249, held by a lock file while the daemon lives. The default bridge is ``pdt<n>``
    on ``10.<n>.0.0/24``, user-defined networks take ``/24`` blocks of ``10.<n>.0.0/16``
    on devices ``pt<n>-…``, the bridge driver's nftables table is ``pdt_<n>``, and container
    DNS forwards to ``127.0.0.1:9``, where nothing answers (tests never send DNS out)."""

    number: int
    lock: Any
    with_bridge_driver: bool = True

    @classmethod
    def take(cls, *, with_bridge_driver: bool) -> DaemonNetwork:
        import fcntl

        for number in range(100, 250):
            lock = Path(f"/tmp/pydockerd-test-network-{number}.lock")  # noqa: S108 - shared
            handle = lock.open("a+")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                handle.close()
                continue
            return cls(number, handle, with_bridge_driver)
        raise DaemonStartError("no free test network number (100 to 249 are all taken)")

    @property
    def default_bridge(self) -> str:
        return f"pdt{self.number}"

    @property
    def bridge_prefix(self) -> str:
        return f"pt{self.number}-"

    @property
    def firewall_table(self) -> str:
        return f"pdt_{self.number}"

    def environment(self) -> dict[str, str]:
        env = {
            "PYDOCKERD_NETWORK__DEFAULT_BRIDGE": self.default_bridge,
            "PYDOCKERD_NETWORK__DEFAULT_SUBNET": f"10.{self.number}.0.0/24",
            "PYDOCKERD_NETWORK__ADDRESS_POOL": f"10.{self.number}.0.0/16",
            "PYDOCKERD_NETWORK__BRIDGE_PREFIX": self.bridge_prefix,
            "PYDOCKERD_NETWORK__DNS_UPSTREAMS": "127.0.0.1:9",
        }
        if self.with_bridge_driver and _bridge_installed():
            env["PYDOCKERD_PLUGINS"] = json.dumps(
                {"network.bridge": {"firewall_table": self.firewall_table}}
            )
        return env

    def release(self) -> None:
        """Delete what the daemon left of its networks (its bridges, their table), and give
        the number back."""
        links = subprocess.run(
            ["ip", "-o", "link", "show"], capture_output=True, text=True, check=False
        ).stdout
        for line in links.splitlines():
            name = line.split(":")[1].strip().split("@")[0]
            if name == self.default_bridge or name.startswith(self.bridge_prefix):
                subprocess.run(["ip", "link", "delete", name], capture_output=True, check=False)
        subprocess.run(
            ["nft", "delete", "table", "ip", self.firewall_table], capture_output=True, check=False
        )
        self.lock.close()


def _bridge_installed() -> bool:
    import importlib.metadata

    return any(ep.name == "bridge" for ep in importlib.metadata.entry_points(group="pydockerd"))


def end_process(pid: int, timeout: float = 15.0) -> None:
    """SIGTERM ``pid``, SIGKILL it after ``timeout``, and wait until it is gone, ``timeout``
    again at most. A zombie is gone (its parent, not this process, reaps it)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if _gone(pid):
                return
            time.sleep(0.05)


def _gone(pid: int) -> bool:
    """Whether ``pid`` has ended: no such process, or a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rpartition(")")[2].split()[0] in ("Z", "X")


def cgroup_dirs(parent: str, root: Path = Path("/sys/fs/cgroup")) -> list[Path]:
    """The directories of the cgroup ``parent`` in every hierarchy: ``<root>/<name>/<parent>``
    (cgroup v1's controllers, and a v2 hierarchy mounted there, as ``unified``) and
    ``<root>/<parent>`` (v2 mounted on ``root``)."""
    return [p for p in root.glob(f"*/{parent}") if p.is_dir()] + [
        p for p in (root / parent,) if p.is_dir() and (p / "cgroup.procs").exists()
    ]


def remove_cgroups(parent: str, root: Path = Path("/sys/fs/cgroup")) -> None:
    """End every process under ``parent`` in every hierarchy, then remove its cgroups."""
    for top in cgroup_dirs(parent, root):
        directories = sorted((d for d in top.rglob("*") if d.is_dir()), key=lambda d: -len(d.parts))
        for directory in [*directories, top]:
            for _ in range(100):
                try:
                    pids = (directory / "cgroup.procs").read_text().split()
                except OSError:
                    break
                for pid in pids:
                    with contextlib.suppress(ProcessLookupError, ValueError):
                        os.kill(int(pid), signal.SIGKILL)
                try:
                    directory.rmdir()
                    break
                except OSError:
                    time.sleep(0.05)
