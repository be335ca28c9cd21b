"""pydocker against a real daemon: version, info, plugin ls, events."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

from pydockerd.testing.daemon import DaemonProcess
from pydockerd.testing.pytest_plugin import DaemonFactory

from tests.helpers import wait_for


def pydocker(daemon: DaemonProcess, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pydocker", "-H", daemon.host, *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_version_shows_the_server(daemon: DaemonProcess) -> None:
    result = pydocker(daemon, "version")
    assert result.returncode == 0, result.stderr
    assert "\nServer: pydockerd 0.1.0\n" in result.stdout
    assert "  API version:      1.47 (minimum version 1.24)" in result.stdout
    assert pydocker(daemon, "version", "-f", "{{.Server.ApiVersion}}").stdout == "1.47\n"


def test_info_shows_driver_and_plugins_by_kind(daemon: DaemonProcess) -> None:
    result = pydocker(daemon, "info")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert " Storage Driver: overlay" in lines
    assert "  Storage: overlay vfs" in lines
    assert "  Network: bridge host null" in lines
    assert f" Docker Root Dir: {daemon.data_root}" in lines


def test_plugin_ls_lists_kind_name_plugin_version_status(daemon: DaemonProcess) -> None:
    result = pydocker(daemon, "plugin", "ls")
    assert result.returncode == 0, result.stderr
    header, *rows = result.stdout.splitlines()
    assert header.split() == ["KIND", "NAME", "PLUGIN", "VERSION", "STATUS", "REASON"]
    assert {tuple(row.split()) for row in rows} >= {
        ("storage", "overlay", "overlay", "0.1.0", "ok"),
        ("storage", "vfs", "vfs", "0.1.0", "ok"),
        ("network", "bridge", "bridge", "0.1.0", "ok"),
        ("network", "host", "host", "0.1.0", "ok"),
    }
    quiet = pydocker(daemon, "plugin", "ls", "-q", "-f", "kind=network")
    assert quiet.stdout.split() == ["network.bridge", "network.host", "network.null"]


def test_plugin_ls_shows_disabled_plugins_with_the_reason(
    daemon_factory: DaemonFactory,
) -> None:
    proc = daemon_factory(env={"PYDOCKERD_DISABLE_PLUGINS": "vfs"})
    result = pydocker(proc, "plugin", "ls", "--no-trunc")
    row = next(line for line in result.stdout.splitlines() if line.split()[1] == "vfs")
    assert row.split()[:5] == ["plugin", "vfs", "vfs", "0.1.0", "disabled"]
    assert row.endswith("disabled by configuration (disable_plugins)")


def test_events_since_until_show_the_reload(daemon: DaemonProcess) -> None:
    since = time.time() - 1
    daemon.process.send_signal(signal.SIGHUP)
    wait_for(lambda: "configuration reloaded" in daemon.log(), what="the reload")
    result = pydocker(
        daemon, "events", "--since", f"{since:.3f}", "--until", "0s", "--filter", "type=daemon"
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 1
    assert " daemon reload " in lines[0]
    assert "(log-format=text, log-level=info, name=" in lines[0]
