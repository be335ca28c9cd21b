"""etc/ stays true: the shipped daemon.toml is the daemon's real default, and the systemd
units verify and carry the directives the daemon relies on."""

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
from pydockerd.settings import DaemonSettings, TLSSettings, load_settings

REPO = Path(__file__).resolve().parent.parent
DAEMON_TOML = REPO / "etc" / "pydockerd" / "daemon.toml"
SYSTEMD = REPO / "etc" / "systemd"
UNITS = ("pydockerd.service", "pydockerd.socket")
INSTALLED_PYDOCKERD = "/usr/local/bin/pydockerd"

# A commented-out setting: "# key = value" or a table header "# [table]".
SETTING = re.compile(r"^# (?P<line>\[[^\]]+\]|[a-z_]+ = .*)$")
# The one commented table that is an example of a driver section, not a default.
EXAMPLE_TABLE = '[plugins."storage.overlay"]'


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No ``PYDOCKERD_*`` variable of the test runner leaks into the settings."""
    for name in list(os.environ):
        if name.startswith("PYDOCKERD_"):
            monkeypatch.delenv(name)


# --------------------------------------------------------------------------------------
# daemon.toml


def test_daemon_toml_is_the_output_of_config_default(clean_env: None) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pydockerd", "config", "default"],
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr.decode()
    assert DAEMON_TOML.read_bytes() == result.stdout, (
        "etc/pydockerd/daemon.toml is stale: regenerate it with "
        "`pydockerd config default > etc/pydockerd/daemon.toml`"
    )


def _uncommented(text: str) -> str:
    """``text`` with every commented-out setting made live, the example table left out."""
    lines = []
    for line in text.splitlines():
        match = SETTING.match(line)
        if match and match["line"] != EXAMPLE_TABLE:
            lines.append(match["line"])
    return "\n".join(lines) + "\n"


def test_uncommented_daemon_toml_holds_every_setting_at_its_default(
    tmp_path: Path, clean_env: None
) -> None:
    live = tmp_path / "daemon.toml"
    live.write_text(_uncommented(DAEMON_TOML.read_text()))
    parsed = tomllib.loads(live.read_text())

    # Every setting is there (plugins is a table of driver sections, with no default keys).
    assert set(parsed) == set(DaemonSettings.model_fields) - {"plugins"}
    assert set(parsed["tls"]) == set(TLSSettings.model_fields)

    # ... and each at the value the daemon uses when nothing is configured.
    empty = tmp_path / "empty.toml"
    empty.touch()
    from_file = load_settings(live)
    assert from_file == load_settings(empty)
    assert from_file == DaemonSettings()
    assert from_file.model_fields_set >= set(parsed)  # the file really set them


# --------------------------------------------------------------------------------------
# systemd units


def _unit(name: str) -> configparser.ConfigParser:
    """A unit file as sections of directives (the last value of a repeated directive)."""
    parser = configparser.ConfigParser(
        strict=False, interpolation=None, comment_prefixes=("#", ";"), empty_lines_in_values=False
    )
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keys are case-sensitive
    with (SYSTEMD / name).open() as f:
        parser.read_file(f)
    return parser


def test_service_unit_directives() -> None:
    unit = _unit("pydockerd.service")
    assert unit["Unit"]["After"].split() == ["network-online.target", "pydockerd.socket"]
    assert unit["Unit"]["Wants"].split() == ["network-online.target"]
    assert unit["Unit"]["Requires"].split() == ["pydockerd.socket"]
    assert int(unit["Unit"]["StartLimitBurst"]) > 0

    service = unit["Service"]
    assert service["Type"] == "notify"  # the daemon sends READY=1 and STOPPING=1
    assert service["ExecStart"] == f"{INSTALLED_PYDOCKERD} -H fd://"
    assert service["ExecReload"] == "/bin/kill -s HUP $MAINPID"
    assert service["KillMode"] == "process"  # containers outlive the daemon
    assert service["Delegate"] == "yes"
    assert service["Restart"] == "always"
    assert service["TimeoutStartSec"] == "0"
    for limit in ("LimitNOFILE", "LimitNPROC", "LimitCORE", "TasksMax"):
        assert service[limit] == "infinity", limit

    assert unit["Install"]["WantedBy"] == "multi-user.target"


def test_socket_unit_directives() -> None:
    unit = _unit("pydockerd.socket")
    socket = unit["Socket"]
    assert socket["ListenStream"] == "/run/pydockerd.sock"
    assert socket["SocketMode"] == "0660"
    assert socket["SocketUser"] == "root"
    assert socket["SocketGroup"] == "pydockerd"
    assert unit["Install"]["WantedBy"] == "sockets.target"


def test_socket_unit_matches_the_daemon_defaults(clean_env: None) -> None:
    """Clients find the daemon at the same place whether systemd or the daemon made the socket."""
    defaults = DaemonSettings()
    socket = _unit("pydockerd.socket")["Socket"]
    assert defaults.hosts == [f"unix://{socket['ListenStream']}"]
    assert defaults.group == socket["SocketGroup"]


def _verify(directory: Path) -> tuple[int, list[str]]:
    """``systemd-analyze verify`` on both units in ``directory``: exit status, and the lines
    of its output that are about our units."""
    analyze = shutil.which("systemd-analyze") or "/usr/bin/systemd-analyze"
    assert Path(analyze).exists(), "systemd-analyze comes with the systemd package"
    result = subprocess.run(
        [analyze, "verify", *(str(directory / unit) for unit in UNITS)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "SYSTEMD_UNIT_PATH": f"{directory}:", "SYSTEMD_LOG_COLOR": "0"},
    )
    ours = [
        line
        for line in (result.stdout + result.stderr).splitlines()
        if any(unit in line for unit in UNITS)
    ]
    return result.returncode, ours


def _copy_units(directory: Path, executable: Path) -> None:
    """The units, with ExecStart pointing at ``executable``.

    ``systemd-analyze verify`` checks that ExecStart's program exists, and
    /usr/local/bin/pydockerd exists only after ``make install``; the original ExecStart line
    is checked by :func:`test_service_unit_directives`.
    """
    directory.mkdir(parents=True, exist_ok=True)
    for unit in UNITS:
        text = (SYSTEMD / unit).read_text()
        (directory / unit).write_text(text.replace(INSTALLED_PYDOCKERD, str(executable)))


def test_systemd_analyze_verify(tmp_path: Path) -> None:
    pydockerd = Path(sys.executable).parent / "pydockerd"  # this checkout's, in the venv
    assert os.access(pydockerd, os.X_OK), pydockerd
    _copy_units(tmp_path, pydockerd)
    assert str(pydockerd) in (tmp_path / "pydockerd.service").read_text()
    status, ours = _verify(tmp_path)
    assert ours == [], "\n".join(ours)
    assert status == 0


def test_systemd_analyze_verify_would_catch_a_broken_unit(tmp_path: Path) -> None:
    """The verification above is real: the same check reports a broken copy."""
    _copy_units(tmp_path, Path(sys.executable).parent / "pydockerd")
    service = tmp_path / "pydockerd.service"
    service.write_text(service.read_text().replace("Type=notify", "Type=notifyy"))
    _status, ours = _verify(tmp_path)
    assert any("notifyy" in line for line in ours), ours
