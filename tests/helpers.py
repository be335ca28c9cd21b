"""Small helpers shared by the end-to-end tests."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Callable

__all__ = ["DOCKER", "docker", "free_port", "wait_for"]

DOCKER = shutil.which("docker") or "/usr/local/bin/docker"


def docker(
    env: dict[str, str], *args: str, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run the real docker CLI against the daemon named in ``env``."""
    return subprocess.run(
        [DOCKER, *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(predicate: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")
