"""What the end-to-end tests share: running ``pydocker`` against a real daemon (the
fixtures are in ``conftest.py``)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pydockerd.testing.daemon import DaemonProcess

__all__ = ["PYDOCKER", "REPO", "pydocker"]

REPO = Path(__file__).resolve().parents[2]
PYDOCKER = [sys.executable, "-m", "pydocker"]


def pydocker(
    daemon: DaemonProcess, *args: str, stdin: str | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """``pydocker -H <daemon> args...``, its output as text."""
    return subprocess.run(
        [*PYDOCKER, "-H", daemon.host, *args],
        input=stdin if stdin is not None else "",
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
