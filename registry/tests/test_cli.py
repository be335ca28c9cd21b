from __future__ import annotations

from click.testing import CliRunner
from pydocker_registry import __version__
from pydocker_registry.cli import main


def test_version_is_the_installed_distribution_version() -> None:
    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0
    assert result.output == f"pydocker-registry version {__version__}\n"
    assert __version__ != "0.0.0"
