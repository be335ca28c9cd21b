"""A third-party plugin package, pip-installed into a virtual environment, adds drivers that
the daemon lists, configures and can select, with no change to the core."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydockerd.testing.pytest_plugin import DaemonFactory

from tests.helpers import docker

REPO = Path(__file__).resolve().parent.parent
UV = shutil.which("uv")

PLUGIN_MODULE = '''
"""A third party's pydockerd plugin: one storage driver that works, one network driver that
cannot run here."""

from __future__ import annotations

from pydockerd.plugin import (
    DriverConfig, DriverContext, DriverNotSupported, DriverRegistry, NetworkDriver,
    hookimpl,
)
from pydockerd_storage_vfs.driver import VfsDriver


class ScratchConfig(DriverConfig):
    size_mb: int = 64


class ScratchDriver(VfsDriver):  # a third party building on an installed driver
    name = "scratch"
    Config = ScratchConfig
    priority = 50
    description = "a third party's storage driver"

    @classmethod
    async def probe(cls, context: DriverContext) -> None:
        assert isinstance(context.config, ScratchConfig)
        if context.config.size_mb <= 0:
            raise DriverNotSupported(f"size_mb must be positive, not {context.config.size_mb}")


class FancyNetwork(NetworkDriver):
    name = "fancy"

    @classmethod
    async def probe(cls, context: DriverContext) -> None:
        raise DriverNotSupported("needs a fancy network card")


@hookimpl
def pydockerd_register_storage_drivers(registry: DriverRegistry[StorageDriver]) -> None:
    registry.add(ScratchDriver)


@hookimpl
def pydockerd_register_network_drivers(registry: DriverRegistry[NetworkDriver]) -> None:
    registry.add(FancyNetwork)
'''

PLUGIN_PYPROJECT = """
[project]
name = "pydockerd-thirdparty-example"
version = "3.1.4"
requires-python = ">=3.11"
dependencies = ["pydockerd"]

[project.entry-points.pydockerd]
thirdparty = "pydockerd_thirdparty_example"

[build-system]
requires = ["hatchling"]
build-backend = "hatchling.build"
"""


def _run(*args: str | Path) -> None:
    result = subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture(scope="module")
def venv_python(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A fresh virtual environment with pydockerd, its drivers and the client installed, and
    then the third-party plugin package, each as a user would: by path, with uv's pip."""
    if UV is None:
        pytest.fail("uv is needed to build the test's virtual environment (scripts/bootstrap)")
    base = tmp_path_factory.mktemp("thirdparty")
    venv = base / "venv"
    _run(UV, "venv", "--quiet", "--python", sys.executable, venv)
    python = venv / "bin" / "python"
    members = [
        "core",
        "client",
        "storage_drivers/overlay",
        "storage_drivers/vfs",
        "network_drivers/bridge",
        "network_drivers/host",
    ]
    _run(UV, "pip", "install", "--quiet", "--python", python, *(REPO / m for m in members))
    package = base / "plugin"
    (package / "pydockerd_thirdparty_example").mkdir(parents=True)
    (package / "pyproject.toml").write_text(textwrap.dedent(PLUGIN_PYPROJECT))
    (package / "pydockerd_thirdparty_example" / "__init__.py").write_text(PLUGIN_MODULE)
    _run(UV, "pip", "install", "--quiet", "--python", python, package)
    yield python
    shutil.rmtree(base, ignore_errors=True)


def test_plugin_is_listed_with_its_status(venv_python: Path, daemon_factory: DaemonFactory) -> None:
    proc = daemon_factory(python=venv_python)
    rows = {p["Name"]: p for p in proc.get_json("/plugins")}
    assert "storage.scratch" in rows, rows.get("thirdparty")
    scratch = rows["storage.scratch"]
    assert (scratch["Status"], scratch["Plugin"], scratch["Package"], scratch["Version"]) == (
        "ok",
        "thirdparty",
        "pydockerd-thirdparty-example",
        "3.1.4",
    )
    fancy = rows["network.fancy"]
    assert (fancy["Status"], fancy["Reason"]) == ("skip", "needs a fancy network card")
    # overlay (priority 10) still wins when nothing is named
    assert proc.get_json("/info")["Driver"] == "overlay"

    pydocker = subprocess.run(
        [str(venv_python), "-m", "pydocker", "-H", proc.host, "plugin", "ls", "--no-trunc"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert pydocker.returncode == 0, pydocker.stderr
    lines = pydocker.stdout.splitlines()
    assert any(
        line.split()[:5] == ["storage", "scratch", "thirdparty", "3.1.4", "ok"] for line in lines
    ), lines
    assert any(
        line.split()[:5] == ["network", "fancy", "thirdparty", "3.1.4", "skip"]
        and line.endswith("needs a fancy network card")
        for line in lines
    ), lines


def test_plugin_driver_is_selected_and_configured_by_daemon_toml(
    venv_python: Path, daemon_factory: DaemonFactory
) -> None:
    config = 'storage_driver = "scratch"\n[plugins."storage.scratch"]\nsize_mb = 128\n'
    proc = daemon_factory(python=venv_python, config=config)
    result = docker(proc.env, "info", "--format", "{{.Driver}}")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "scratch"
    assert proc.get_json("/info")["Plugins"]["Storage"] == ["overlay", "scratch", "vfs"]


def test_plugin_config_is_validated_by_the_plugin(
    venv_python: Path, daemon_factory: DaemonFactory
) -> None:
    proc = daemon_factory(python=venv_python, config='[plugins."storage.scratch"]\nsize_mb = -1\n')
    scratch = next(p for p in proc.get_json("/plugins") if p["Name"] == "storage.scratch")
    assert (scratch["Status"], scratch["Reason"]) == ("skip", "size_mb must be positive, not -1")
    wrong = daemon_factory(python=venv_python, config='[plugins."storage.scratch"]\nsize = 1\n')
    scratch = next(p for p in wrong.get_json("/plugins") if p["Name"] == "storage.scratch")
    assert scratch["Status"] == "error"
    assert scratch["Reason"].startswith('invalid [plugins."storage.scratch"]: size: Extra inputs')
