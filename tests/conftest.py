"""Fixtures of the end-to-end tests."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydockerd.testing.daemon import DaemonProcess

from tests.helpers import busybox_daemon

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def busybox_tar(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``busybox:latest`` as ``docker save`` writes it, made by the repository's script from
    Debian's busybox-static (no network)."""
    path = tmp_path_factory.mktemp("images") / "busybox.tar"
    subprocess.run(
        [sys.executable, str(REPO / "scripts" / "make-busybox-image"), str(path)],
        check=True,
        capture_output=True,
    )
    return path


@pytest.fixture(scope="module")
def engine(busybox_tar: Path) -> Iterator[DaemonProcess]:
    """One daemon for a module's container tests, with ``busybox:latest`` loaded; removed
    with everything it made (containers, mounts, cgroups) after the module."""
    with busybox_daemon(busybox_tar) as daemon:
        yield daemon
