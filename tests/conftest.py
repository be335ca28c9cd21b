"""Fixtures of the end-to-end tests."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

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
