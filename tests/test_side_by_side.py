"""Two daemons with their own sockets and data-roots serve side by side."""

from __future__ import annotations

from pydockerd.testing.daemon import DaemonProcess
from pydockerd.testing.pytest_plugin import DaemonFactory

from tests.helpers import docker


def test_two_daemons_side_by_side(daemon: DaemonProcess, daemon_factory: DaemonFactory) -> None:
    other = daemon_factory("--storage-driver", "vfs")
    first, second = daemon.get_json("/info"), other.get_json("/info")
    assert first["ID"] != second["ID"]
    assert (first["Driver"], second["Driver"]) == ("overlay", "vfs")
    assert first["DockerRootDir"] != second["DockerRootDir"]
    for proc, driver in ((daemon, "overlay"), (other, "vfs")):
        result = docker(proc.env, "info", "--format", "{{.Driver}}")
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == driver
    assert other.stop() == 0
    assert daemon.request("GET", "/_ping")[0] == 200, "stopping one must not affect the other"
