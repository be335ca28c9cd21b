"""The command as users run it, without a daemon: version, errors, exit statuses."""

from __future__ import annotations

import importlib
import importlib.metadata
import subprocess
import sys
from pathlib import Path

import click
from pydocker import __version__
from pydocker.cli import COMMAND_MODULES, main


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


def test_version_is_the_installed_distributions() -> None:
    assert __version__ == importlib.metadata.version("pydocker")


def test_every_command_is_found_in_the_module_the_table_names() -> None:
    modules = {
        name: importlib.import_module(f"pydocker.commands.{name}")
        for name in set(COMMAND_MODULES.values())
    }
    exported = {
        str(command.name): name for name, module in modules.items() for command in module.COMMANDS
    }
    assert exported == COMMAND_MODULES
    context = click.Context(main)
    assert main.list_commands(context) == sorted(COMMAND_MODULES)
    for name in COMMAND_MODULES:
        command = main.get_command(context, name)
        assert command is not None, name
        assert command.name == name
    image_group = main.get_command(context, "image")
    assert isinstance(image_group, click.Group)
    assert {"pull", "push", "build", "ls"} <= set(image_group.commands)


def test_run_imports_no_other_commands_code() -> None:
    code = (
        "import sys\n"
        "from pydocker.cli import main\n"
        "main(['-H', 'unix:///nonexistent.sock', 'run', '--help'], standalone_mode=False)\n"
        "prefixes = ('pydocker.commands.', 'importlib.metadata')\n"
        "print(sorted(m for m in sys.modules if m.startswith(prefixes)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    loaded = result.stdout.strip().splitlines()[-1]
    for module in ("build", "network", "volume", "registry", "plugin"):
        assert f"pydocker.commands.{module}'" not in loaded, loaded
    assert "importlib.metadata" not in loaded


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
