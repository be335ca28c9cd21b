"""The real docker CLI against pydockerd: version, info, plugin ls, events, errors."""

from __future__ import annotations

import json
import signal
import time

from pydockerd.testing.daemon import DaemonProcess
from pydockerd.testing.pytest_plugin import DaemonFactory

from tests.helpers import docker, wait_for


def test_docker_version_shows_the_server_section(daemon: DaemonProcess) -> None:
    result = docker(daemon.env, "version")
    assert result.returncode == 0, result.stderr
    server = result.stdout.split("Server:", 1)[1]
    assert server.startswith(" pydockerd ")
    assert "API version:      1.47 (minimum version 1.24)" in server
    assert "OS/Arch:          linux/" in server
    assert "API version:       1.47 (downgraded from 1.50)" in result.stdout


def test_docker_version_format_reads_the_api_version(daemon: DaemonProcess) -> None:
    result = docker(daemon.env, "version", "--format", "{{json .Server}}")
    assert result.returncode == 0, result.stderr
    server = json.loads(result.stdout)
    assert server["ApiVersion"] == "1.47"
    assert server["Components"][0]["Name"] == "Engine"


def test_docker_info_prints_storage_driver_and_plugins(daemon: DaemonProcess) -> None:
    result = docker(daemon.env, "info")
    assert result.returncode == 0, result.stderr
    lines = [line.strip() for line in result.stdout.splitlines()]
    assert "Storage Driver: overlay" in lines
    assert "Backing Filesystem: " + daemon.get_json("/info")["DriverStatus"][0][1] in lines
    assert "Network: bridge host null" in lines
    assert f"Docker Root Dir: {daemon.data_root}" in lines
    assert "Cgroup Version: 1" in lines or "Cgroup Version: 2" in lines


def test_docker_info_with_vfs_selected_by_flag(daemon_factory: DaemonFactory) -> None:
    vfs = daemon_factory("--storage-driver", "vfs")
    result = docker(vfs.env, "info", "--format", "{{.Driver}} {{json .DriverStatus}}")
    assert result.returncode == 0, result.stderr
    driver, status = result.stdout.split(" ", 1)
    assert driver == "vfs"
    assert ["Selected Because", "named in the configuration"] in json.loads(status)


def test_docker_plugin_ls_lists_every_driver(daemon: DaemonProcess) -> None:
    result = docker(daemon.env, "plugin", "ls", "--format", "{{.Name}} {{.Enabled}}")
    assert result.returncode == 0, result.stderr
    rows = set(result.stdout.split("\n")) - {""}
    assert {
        "storage.overlay true",
        "storage.vfs true",
        "network.bridge true",
        "network.host true",
    } <= rows


def reload_then_list_events(daemon: DaemonProcess, type_filter: str) -> list[str]:
    """SIGHUP the daemon (a ``daemon reload`` event), then ``docker events`` over that time."""
    since = int(time.time()) - 1
    daemon.process.send_signal(signal.SIGHUP)
    wait_for(lambda: "configuration reloaded" in daemon.log(), what="the reload")
    until = str(int(time.time()) + 1)
    result = docker(
        daemon.env,
        "events",
        "--since",
        str(since),
        "--until",
        until,
        "--filter",
        f"type={type_filter}",
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


def test_docker_events_shows_a_daemon_reload(daemon: DaemonProcess) -> None:
    lines = reload_then_list_events(daemon, "daemon")
    assert len(lines) == 1, lines
    engine_id = daemon.get_json("/info")["ID"]
    assert f" daemon reload {engine_id} (" in lines[0]
    assert "log-level=info" in lines[0]


def test_docker_events_filter_excludes_other_types(daemon: DaemonProcess) -> None:
    assert reload_then_list_events(daemon, "container") == []


def test_docker_cli_prints_daemon_errors_in_dockers_words(daemon: DaemonProcess) -> None:
    result = docker({**daemon.env, "DOCKER_API_VERSION": "1.99"}, "info")
    assert result.returncode != 0
    assert (
        "Error response from daemon: client version 1.99 is too new. "
        "Maximum supported API version is 1.47"
    ) in result.stderr
