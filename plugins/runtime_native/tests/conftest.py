"""Fixtures of the native runtime's own tests: the conformance kit's, at module level, a
unique cgroup parent and a sleeping child process."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from pydockerd.testing.drivers import make_driver
from pydockerd.testing.runtime import (
    Supervisor,
    make_busybox_root,
    runtime_directory,
    supervised,
)
from pydockerd_runtime_native.driver import NativeRuntime


@pytest.fixture
def runtime_dir() -> Iterator[Path]:
    with runtime_directory() as path:
        yield path


@pytest.fixture
def busybox_root(runtime_dir: Path) -> Path:
    return make_busybox_root(runtime_dir / "rootfs")


@pytest.fixture
def runtime(runtime_dir: Path) -> NativeRuntime:
    return make_driver(NativeRuntime, runtime_dir / "runtime")


@pytest.fixture
async def supervisor(runtime: NativeRuntime, busybox_root: Path) -> AsyncIterator[Supervisor]:
    async with supervised(runtime, busybox_root) as supervisor:
        yield supervisor


@pytest.fixture
def parent() -> str:
    return f"pydockerd-test-{os.getpid()}-{time.monotonic_ns()}"


@pytest.fixture
def sleeper() -> Iterator[int]:
    """A child process that sleeps until killed (and is reaped afterwards)."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            signal.pthread_sigmask(signal.SIG_SETMASK, ())
            time.sleep(1000)
        finally:
            os._exit(0)
    try:
        yield pid
    finally:
        with contextlib.suppress(ProcessLookupError, ChildProcessError):
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
