"""The engines under test, each isolated on its own socket and directories.

* :class:`Pydockerd`: ``pydockerd.testing.daemon.start_daemon`` on a data-root below the
  bench's work directory (its own socket, exec-root, cgroup parent, bridge and nft table).
* :class:`Docker`: Debian's ``containerd`` and ``dockerd``, started here with every path
  below the work directory (``--data-root``, ``--exec-root``, ``--pidfile``, ``-H unix://``,
  containerd's root, state and sockets), on a bridge this module creates, with
  ``--iptables=false --ip-forward=false --ip-masq=false`` so it changes nothing of the
  host's firewall or sysctls, and a cgroup parent of its own.

Both offer the same few things the figures need: :attr:`env` for a CLI, :meth:`request`
for the API, :meth:`processes` (the engine's own, without the containers') and
:meth:`cleanup`, which leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

from pydockerd.testing.daemon import (
    DaemonProcess,
    UnixHTTPConnection,
    end_process,
    remove_cgroups,
    start_daemon,
)
from pydockerd.testing.drivers import detach_mounts_under

from bench import procs

__all__ = ["DOCKER_CLI", "Docker", "Engine", "Pydockerd"]

DOCKER_CLI = "/usr/local/bin/docker" if Path("/usr/local/bin/docker").exists() else "docker"
"""The docker CLI the tests use (28.2.2); Debian's /usr/bin/docker is never used."""


def _request(
    socket_path: Path, method: str, path: str, body: Any = None, timeout: float = 120.0
) -> tuple[int, bytes]:
    conn = UnixHTTPConnection(socket_path, timeout=timeout)
    try:
        payload = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"} if payload is not None else {}
        conn.request(method, path, body=payload, headers=headers)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


class Engine:
    """What the figures use of an engine."""

    name: str
    socket_path: Path
    env: dict[str, str]

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, bytes]:
        return _request(self.socket_path, method, path, body)

    def processes(self) -> list[int]:
        raise NotImplementedError

    def resources(self) -> dict[str, list[str]]:
        """Names of what the engine makes on the host (``bridges``, ``nft_tables``,
        ``cgroups``, ``dirs``), for a check that cleanup left none of them."""
        raise NotImplementedError

    def cleanup(self) -> None:
        raise NotImplementedError

    def container_ids(self) -> list[str]:
        status, body = self.request("GET", "/containers/json?all=1")
        if status != 200:
            raise RuntimeError(f"{self.name}: GET /containers/json: {status} {body[:300]!r}")
        return [c["Id"] for c in json.loads(body)]

    def remove_containers(self) -> None:
        for container in self.container_ids():
            self.request("DELETE", f"/containers/{container}?force=1&v=1")


class Pydockerd(Engine):
    """pydockerd from this checkout (the running interpreter's), on ``base``."""

    name = "pydockerd"

    def __init__(self, base: Path) -> None:
        self.daemon: DaemonProcess = start_daemon(base_dir=base)
        self.socket_path = self.daemon.socket_path
        self.env = {
            **self.daemon.env,
            "DOCKER_CONFIG": str(base / "cli-config"),
            "PYDOCKER_CONFIG": str(base / "cli-config"),
            "DOCKER_BUILDKIT": "0",
        }
        (base / "cli-config").mkdir(exist_ok=True)

    def processes(self) -> list[int]:
        """The daemon and the supervisor (when one runs) and their children in the host's
        pid namespace (none, today)."""
        roots = [self.daemon.process.pid]
        supervisor = self.daemon.supervisor_pid()
        if supervisor is not None:
            roots.append(supervisor)
        return procs.tree(roots)

    def resources(self) -> dict[str, list[str]]:
        network = self.daemon.network
        return {
            "bridges": [network.default_bridge] if network else [],
            "nft_tables": [network.firewall_table] if network else [],
            "cgroups": [self.daemon.cgroup_parent],
            "dirs": [str(self.daemon.base_dir)],
        }

    def cleanup(self) -> None:
        self.daemon.cleanup()


_CONTAINERD_CONFIG = """version = 2
root = "{base}/containerd/root"
state = "{base}/containerd/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "{base}/containerd/containerd.sock"
[ttrpc]
  address = "{base}/containerd/containerd.sock.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "{base}/containerd/opt"
"""


_SHIM_SOCKETS = Path("/run/containerd/s")
"""Where containerd 1.6 puts its shims' sockets, whatever its state directory."""


class Docker(Engine):
    """Debian's dockerd and containerd, every path below ``base``.

    :param bridge: the name of the bridge to create and hand to dockerd (``--bridge``).
    :param subnet: its address, ``10.x.y.1/nn``.
    :param pool: ``--default-address-pool`` base for user networks (none are made).
    """

    name = "docker"

    def __init__(self, base: Path, bridge: str, subnet: str, pool: str) -> None:
        self.base = base
        self.bridge = bridge
        self.cgroup_parent = f"pdbench-docker-{base.parent.name}"
        self.socket_path = base / "docker.sock"
        self.containerd_socket = base / "containerd" / "containerd.sock"
        base.mkdir(parents=True, exist_ok=True)
        (base / "cli-config").mkdir(exist_ok=True)
        self.env = {
            **os.environ,
            "DOCKER_HOST": f"unix://{self.socket_path}",
            "DOCKER_CONFIG": str(base / "cli-config"),
            "DOCKER_BUILDKIT": "0",
        }
        self._shim_sockets_existed = _SHIM_SOCKETS.exists()
        self.containerd: subprocess.Popen[bytes] | None = None
        self.dockerd: subprocess.Popen[bytes] | None = None
        try:
            self._start(subnet, pool)
        except BaseException:
            self.cleanup()
            raise

    def _start(self, subnet: str, pool: str) -> None:
        run = subprocess.run
        run(["ip", "link", "add", self.bridge, "type", "bridge"], check=True, capture_output=True)
        run(["ip", "addr", "add", subnet, "dev", self.bridge], check=True, capture_output=True)
        run(["ip", "link", "set", self.bridge, "up"], check=True, capture_output=True)
        (self.base / "containerd").mkdir(exist_ok=True)
        config = self.base / "containerd.toml"
        config.write_text(_CONTAINERD_CONFIG.format(base=self.base))
        with (self.base / "containerd.log").open("wb") as log:
            self.containerd = subprocess.Popen(
                ["containerd", "--config", str(config), "--log-level", "warn"],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self._wait(self.containerd_socket.exists, "containerd", self.containerd)
        (self.base / "daemon.json").write_text("{}")  # never /etc/docker/daemon.json
        argv = [
            "dockerd",
            "--host", f"unix://{self.socket_path}",
            "--data-root", str(self.base / "data"),
            "--exec-root", str(self.base / "exec"),
            "--pidfile", str(self.base / "docker.pid"),
            "--config-file", str(self.base / "daemon.json"),
            "--containerd", str(self.containerd_socket),
            "--bridge", self.bridge,
            "--default-address-pool", f"base={pool},size=24",
            "--iptables=false",
            "--ip6tables=false",
            "--ip-forward=false",
            "--ip-masq=false",
            "--userland-proxy=false",
            "--storage-driver", "overlay2",
            "--exec-opt", "native.cgroupdriver=cgroupfs",
            "--cgroup-parent", f"/{self.cgroup_parent}",
            "--dns", "127.0.0.1",
            "--log-level", "warn",
        ]  # fmt: skip
        with (self.base / "dockerd.log").open("wb") as log:
            self.dockerd = subprocess.Popen(
                argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self._wait(self._pings, "dockerd", self.dockerd)

    def _pings(self) -> bool:
        try:
            return self.request("GET", "/_ping")[0] == 200
        except OSError:
            return False

    def _wait(self, ready: Any, what: str, process: subprocess.Popen[bytes]) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if process.poll() is not None:
                log = (self.base / f"{what}.log").read_text(errors="replace")
                raise RuntimeError(f"{what} exited with {process.returncode}:\n{log[-3000:]}")
            if ready():
                return
            time.sleep(0.05)
        raise RuntimeError(f"{what} did not start in 60 s")

    def shims(self) -> list[int]:
        """The containerd-shim processes of this containerd (matched by its socket)."""
        found = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                argv = procs.cmdline(int(entry.name))
                if argv and "containerd-shim" in argv[0] and str(self.containerd_socket) in argv:
                    found.append(int(entry.name))
        return found

    def processes(self) -> list[int]:
        """dockerd, containerd and containerd's shims, and their children in the host's pid
        namespace (runc while it runs)."""
        roots = [p.pid for p in (self.dockerd, self.containerd) if p is not None]
        return procs.tree([*roots, *self.shims()])

    def resources(self) -> dict[str, list[str]]:
        return {
            "bridges": [self.bridge],
            "nft_tables": [],
            "cgroups": [self.cgroup_parent],
            "dirs": [str(self.base)],
        }

    def cleanup(self) -> None:
        if self.dockerd is not None and self.dockerd.poll() is None:
            with contextlib.suppress(OSError, RuntimeError, http.client.HTTPException):
                self.remove_containers()
        for process in (self.dockerd, self.containerd):
            if process is not None and process.poll() is None:
                process.terminate()
                try:
                    process.wait(30)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        for shim in self.shims():
            end_process(shim)
        remove_cgroups(self.cgroup_parent)
        detach_mounts_under(self.base)
        ports = subprocess.run(
            ["ip", "-o", "link", "show", "master", self.bridge],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.splitlines()
        for line in ports:  # veths a killed dockerd left
            name = line.split(":")[1].strip().split("@")[0]
            subprocess.run(["ip", "link", "delete", name], capture_output=True, check=False)
        subprocess.run(["ip", "link", "delete", self.bridge], capture_output=True, check=False)
        shutil.rmtree(self.base, ignore_errors=True)
        if not self._shim_sockets_existed:  # containerd 1.6 keeps shim sockets there
            for directory in (_SHIM_SOCKETS, _SHIM_SOCKETS.parent):
                with contextlib.suppress(OSError):
                    directory.rmdir()
