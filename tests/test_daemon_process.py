"""The pydockerd process as operators run it: flags, config errors, signals, listeners."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from pydockerd.testing.daemon import DaemonProcess, DaemonStartError
from pydockerd.testing.pytest_plugin import DaemonFactory

from tests.helpers import docker, free_port, wait_for

PYDOCKERD = [sys.executable, "-m", "pydockerd"]


def run_pydockerd(
    *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*PYDOCKERD, *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
        check=False,
    )


def isolated(tmp_path: Path) -> list[str]:
    """Flags that keep a daemon's socket, data-root and exec-root under ``tmp_path``."""
    return [
        "--data-root",
        str(tmp_path / "d"),
        "--exec-root",
        str(tmp_path / "e"),
        "-H",
        f"unix://{tmp_path}/s.sock",
    ]


def server_api_version(docker_host: str) -> str:
    """``docker version``'s server API version at ``docker_host``, asserting success."""
    result = docker(
        {**os.environ, "DOCKER_HOST": docker_host}, "version", "--format", "{{.Server.APIVersion}}"
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_socket_is_0660_and_the_daemon_says_ready(daemon: DaemonProcess) -> None:
    mode = stat.S_IMODE(daemon.socket_path.stat().st_mode)
    assert mode == 0o660
    assert stat.S_ISSOCK(daemon.socket_path.stat().st_mode)


def test_sigterm_stops_cleanly(daemon: DaemonProcess) -> None:
    assert daemon.stop() == 0
    assert "STOPPING=1" in daemon.notifications()
    assert not daemon.socket_path.exists()
    assert "stopped" in daemon.log()


def test_validate_prints_every_driver(tmp_path: Path) -> None:
    config = tmp_path / "daemon.toml"
    config.write_text(f'data_root = "{tmp_path / "data"}"\nexec_root = "{tmp_path / "exec"}"\n')
    result = run_pydockerd("--validate", "--config-file", str(config))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[-1] == "configuration OK"
    assert "storage driver: overlay (highest priority of the drivers that probed ok)" in lines
    statuses = {line.split()[0]: line.split()[1] for line in lines[:-2]}
    assert statuses["storage.overlay"] == "ok"
    assert statuses["network.host"] == "ok"
    assert not (tmp_path / "data").exists(), "--validate must not create the data-root"


def test_unknown_key_stops_the_daemon_naming_it(tmp_path: Path) -> None:
    config = tmp_path / "daemon.toml"
    config.write_text('stroage_driver = "vfs"\n')
    result = run_pydockerd(*isolated(tmp_path), "--config-file", str(config))
    assert result.returncode == 1
    assert "unknown key 'stroage_driver'; did you mean 'storage_driver'?" in result.stderr
    assert str(config) in result.stderr


def test_uninstalled_storage_driver_lists_the_installed_ones(tmp_path: Path) -> None:
    result = run_pydockerd(
        *isolated(tmp_path),
        "--storage-driver",
        "zfs",
        "--config-file",
        os.devnull,
    )
    assert result.returncode == 1
    assert "storage driver 'zfs' is not installed (installed: overlay, vfs)" in result.stderr


def test_environment_overrides_the_file(daemon_factory: DaemonFactory) -> None:
    proc = daemon_factory(
        config='storage_driver = "overlay"\n', env={"PYDOCKERD_STORAGE_DRIVER": "vfs"}
    )
    assert proc.get_json("/info")["Driver"] == "vfs"


def test_disable_plugins_marks_them_disabled(daemon_factory: DaemonFactory) -> None:
    proc = daemon_factory(env={"PYDOCKERD_DISABLE_PLUGINS": "bridge,host"})
    rows = {p["Name"]: p for p in proc.get_json("/plugins")}
    assert rows["bridge"]["Status"] == "disabled"
    assert rows["host"]["Status"] == "disabled"
    assert "network.bridge" not in rows
    assert proc.get_json("/info")["Plugins"]["Network"] == ["null"]  # the core's own


def test_trace_hooks_logs_every_hook_call(daemon_factory: DaemonFactory) -> None:
    proc = daemon_factory(env={"PYDOCKERD_TRACE_HOOKS": "1"})
    assert "hook pydockerd_register_storage_drivers -> plugin overlay:" in proc.log()


def test_json_logs_carry_a_request_id(daemon_factory: DaemonFactory) -> None:
    proc = daemon_factory("--log-format", "json", "--log-level", "debug")
    status, _, _ = proc.request("GET", "/version", headers={"X-Request-Id": "req-e2e-1"})
    assert status == 200
    records = [json.loads(line) for line in proc.log().splitlines() if line.startswith("{")]
    assert records, proc.log()
    served = [r for r in records if r["record"]["extra"].get("request_id") == "req-e2e-1"]
    assert served
    assert "GET /version -> 200" in served[0]["record"]["message"]


def test_sighup_applies_a_new_log_level(daemon_factory: DaemonFactory, tmp_path: Path) -> None:
    proc = daemon_factory(config='log_level = "info"\n')
    (proc.base_dir / "daemon.toml").write_text('log_level = "debug"\n')
    proc.process.send_signal(signal.SIGHUP)
    wait_for(lambda: "configuration reloaded" in proc.log(), what="the reload")
    proc.request("GET", "/version")
    wait_for(lambda: "GET /version -> 200" in proc.log(), what="a debug access line")


def test_tcp_on_loopback_serves_the_docker_cli(daemon_factory: DaemonFactory) -> None:
    port = free_port()
    daemon_factory("-H", f"tcp://127.0.0.1:{port}")
    assert server_api_version(f"tcp://127.0.0.1:{port}") == "1.47"


def test_tcp_on_all_addresses_without_tls_is_refused(daemon_factory: DaemonFactory) -> None:
    port = free_port()
    refused = r"refusing to serve tcp://0\.0\.0\.0:\d+ without TLS"
    with pytest.raises(DaemonStartError, match=refused):
        daemon_factory("-H", f"tcp://0.0.0.0:{port}")


def test_tcp_on_all_addresses_when_explicitly_allowed(daemon_factory: DaemonFactory) -> None:
    port = free_port()
    daemon_factory("-H", f"tcp://0.0.0.0:{port}", "--allow-insecure-tcp")
    assert server_api_version(f"tcp://127.0.0.1:{port}") == "1.47"


def test_a_second_daemon_on_the_same_data_root_is_refused(
    daemon: DaemonProcess, daemon_factory: DaemonFactory
) -> None:
    with pytest.raises(DaemonStartError, match=f"another pydockerd \\(pid {daemon.process.pid}\\)"):
        daemon_factory("--data-root", str(daemon.data_root))
    assert daemon.request("GET", "/_ping")[0] == 200


def test_socket_activation_through_fd(tmp_path: Path) -> None:
    """``-H fd://`` serves the sockets systemd passes (here: systemd-socket-activate)."""
    sock = tmp_path / "activated.sock"
    activator = subprocess.Popen(
        [
            "systemd-socket-activate",
            "-l",
            str(sock),
            *PYDOCKERD,
            "-H",
            "fd://",
            "--config-file",
            os.devnull,
            "--data-root",
            str(tmp_path / "data"),
            "--exec-root",
            str(tmp_path / "exec"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        wait_for(sock.exists, what="the activation socket")
        # The first connection starts the daemon; docker's CLI waits for its answer.
        assert server_api_version(f"unix://{sock}") == "1.47"
    finally:
        os.killpg(activator.pid, signal.SIGTERM)
        activator.wait(30)
