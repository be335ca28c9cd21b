"""Each distribution installs on its own with pip; the client needs nothing of the daemon."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
MEMBERS = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["uv"]["workspace"]["members"]


def _run(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, timeout=600, cwd=cwd, check=False
    )


@pytest.fixture
def fresh_venv(tmp_path: Path) -> Path:
    """A new virtual environment with pip, made by the machine's Python."""
    venv = tmp_path / "venv"
    result = _run(sys.executable, "-m", "venv", venv)
    assert result.returncode == 0, result.stderr
    return venv


def test_every_member_is_a_distribution_with_its_own_pyproject() -> None:
    names = {
        tomllib.loads((REPO / m / "pyproject.toml").read_text())["project"]["name"] for m in MEMBERS
    }
    assert names == {
        "pydockerd",
        "pydocker",
        "pydocker-registry",
        "pydockerd-storage-overlay",
        "pydockerd-storage-vfs",
        "pydockerd-network-bridge",
        "pydockerd-network-host",
        "pydockerd-runtime-native",
        "pydockerd-log-json-file",
        "pydockerd-volume-local",
        "pydockerd-registry-distribution",
    }


@pytest.mark.parametrize(
    ("member", "command"), [("client", "pydocker"), ("registry", "pydocker-registry")]
)
def test_client_and_registry_install_alone_with_pip(
    fresh_venv: Path, member: str, command: str
) -> None:
    pip = _run(fresh_venv / "bin" / "pip", "install", "--quiet", REPO / member)
    assert pip.returncode == 0, pip.stdout + pip.stderr
    version = _run(fresh_venv / "bin" / command, "--version")
    assert version.returncode == 0, version.stderr
    assert version.stdout.startswith(f"{command} version 0.1.0")
    no_daemon = _run(fresh_venv / "bin" / "python", "-c", "import pydockerd")
    assert no_daemon.returncode != 0, f"{member} must not pull in the daemon"


def test_daemon_with_one_driver_installs_with_pip(fresh_venv: Path, tmp_path: Path) -> None:
    pip = _run(
        fresh_venv / "bin" / "pip",
        "install",
        "--quiet",
        REPO / "core",
        REPO / "storage_drivers" / "vfs",
    )
    assert pip.returncode == 0, pip.stdout + pip.stderr
    validate = _run(
        fresh_venv / "bin" / "pydockerd",
        "--validate",
        "--config-file",
        os.devnull,
        "--data-root",
        tmp_path / "data",
        "--exec-root",
        tmp_path / "exec",
    )
    assert validate.returncode == 0, validate.stderr
    assert validate.stdout.splitlines()[0].split() == ["storage.vfs", "ok"]
    assert "storage driver: vfs (highest priority of the drivers that probed ok)" in validate.stdout
