"""Fixtures of the end-to-end tests: ``busybox:latest`` made offline, and a real daemon
(``daemon`` from pydockerd's test kit) with it loaded."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from client.tests.e2e import REPO, pydocker

if TYPE_CHECKING:
    from pydockerd.testing.daemon import DaemonProcess


@pytest.fixture(scope="session")
def busybox_tar(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``busybox:latest`` made by the repository's script (no network)."""
    path = tmp_path_factory.mktemp("images") / "busybox.tar"
    subprocess.run(
        [sys.executable, str(REPO / "scripts" / "make-busybox-image"), str(path)],
        check=True,
        capture_output=True,
    )
    return path


@pytest.fixture
def engine(daemon: DaemonProcess, busybox_tar: Path) -> DaemonProcess:
    """A real daemon with ``busybox:latest`` loaded by ``pydocker load``."""
    loaded = pydocker(daemon, "load", "-i", str(busybox_tar))
    assert loaded.returncode == 0, loaded.stderr
    return daemon
