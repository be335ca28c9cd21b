"""The command as users run it, without a daemon: version, errors, exit statuses."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from pydocker import __version__


def pydocker(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pydocker", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )


def test_version_flag() -> None:
    result = pydocker("--version")
    assert result.returncode == 0
    assert result.stdout == f"pydocker version {__version__}\n"


def test_no_daemon_gives_the_message_and_status_1(tmp_path: Path) -> None:
    host = f"unix://{tmp_path}/missing.sock"
    for command in (["info"], ["plugin", "ls"], ["events"]):
        result = pydocker("-H", host, *command)
        assert result.returncode == 1, command
        assert result.stderr == (
            f"Cannot connect to the pydockerd daemon at {host}. Is the daemon running?\n"
        )


def test_version_without_daemon_prints_the_client_then_fails(tmp_path: Path) -> None:
    host = f"unix://{tmp_path}/missing.sock"
    result = pydocker("version", env={"PYDOCKER_HOST": host, "PATH": "/usr/bin:/bin"})
    assert result.returncode == 1
    assert result.stdout.startswith("Client:\n Version:           " + __version__)
    assert "Server:" not in result.stdout
    assert f"Cannot connect to the pydockerd daemon at {host}" in result.stderr


def test_bad_filter_is_a_flag_error_with_status_125(tmp_path: Path) -> None:
    result = pydocker("-H", f"unix://{tmp_path}/x.sock", "events", "-f", "nonsense")
    assert result.returncode == 125
    assert result.stderr.startswith('invalid argument "nonsense" for "-f, --filter" flag')
