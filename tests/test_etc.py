"""etc/: the shipped daemon.toml is the true default, and the systemd units verify."""

from __future__ import annotations

import configparser
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from pydockerd.settings import DaemonSettings, default_toml, load_settings

REPO = Path(__file__).resolve().parent.parent
ETC = REPO / "etc"
SETTING_LINE = re.compile(r"^# (\[[a-z_.\"]+\]|[a-z_]+ = .*)$")


def test_shipped_daemon_toml_is_the_generated_default() -> None:
    assert (ETC / "pydockerd" / "daemon.toml").read_text() == default_toml()


def test_commented_settings_are_the_real_defaults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in list(os.environ):
        if name.startswith("PYDOCKERD_"):
            monkeypatch.delenv(name)
    uncommented = [
        SETTING_LINE.sub(r"\1", line).replace('""  # unset by default', '""')
        for line in (ETC / "pydockerd" / "daemon.toml").read_text().splitlines()
        if SETTING_LINE.match(line) and 'plugins."' not in line
    ]
    config = tmp_path / "daemon.toml"
    config.write_text("\n".join(uncommented) + "\n")
    parsed = tomllib.loads(config.read_text())
    assert set(parsed) == set(DaemonSettings.model_fields) - {"plugins"}
    empty = tmp_path / "empty.toml"
    empty.touch()
    assert load_settings(config) == load_settings(empty)


def _unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(ETC / "systemd" / name)
    return parser


def test_service_unit_directives() -> None:
    service = _unit("pydockerd.service")
    assert service["Service"]["Type"] == "notify"
    assert service["Service"]["Delegate"] == "yes"
    assert service["Service"]["KillMode"] == "process"
    assert service["Service"]["Restart"] == "always"
    assert service["Service"]["ExecStart"] == "/usr/local/bin/pydockerd -H fd://"
    assert service["Service"]["ExecReload"] == "/bin/kill -s HUP $MAINPID"
    assert "pydockerd.socket" in service["Unit"]["Requires"].split()


def test_socket_unit_directives() -> None:
    sock = _unit("pydockerd.socket")
    assert sock["Socket"]["ListenStream"] == "/run/pydockerd.sock"
    assert sock["Socket"]["SocketMode"] == "0660"
    assert sock["Socket"]["SocketGroup"] == "pydockerd"


def test_systemd_analyze_verify(tmp_path: Path) -> None:
    """Verify both units; ExecStart points at this checkout's pydockerd, since
    /usr/local/bin/pydockerd exists only after make install."""
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze is installed by scripts/bootstrap (package systemd)"
    for unit in ("pydockerd.service", "pydockerd.socket"):
        text = (ETC / "systemd" / unit).read_text()
        pydockerd = Path(sys.executable).parent / "pydockerd"
        (tmp_path / unit).write_text(text.replace("/usr/local/bin/pydockerd", str(pydockerd)))
    result = subprocess.run(
        [
            analyze,
            "verify",
            str(tmp_path / "pydockerd.service"),
            str(tmp_path / "pydockerd.socket"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "SYSTEMD_UNIT_PATH": f"{tmp_path}:"},
    )
    ours = [line for line in (result.stdout + result.stderr).splitlines() if "pydockerd" in line]
    assert result.returncode == 0, result.stdout + result.stderr
    assert ours == [], ours
