"""Fixtures for the core's tests: a real :class:`Daemon` in short temporary roots, served by
aiohttp's test client (no subprocess, no mocks)."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from pydockerd.api.app import create_app
from pydockerd.daemon import Daemon
from pydockerd.settings import DaemonSettings

MakeDaemon = Callable[..., Awaitable[Daemon]]
MakeClient = Callable[..., Awaitable[TestClient[Any, Any]]]


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No ``PYDOCKERD_*`` or systemd variable of the caller leaks into a test, and modules a
    test put on ``sys.path`` leave with it."""
    for name in list(os.environ):
        if name.startswith(("PYDOCKERD_", "NOTIFY_SOCKET", "LISTEN_")):
            monkeypatch.delenv(name)
    path = list(sys.path)
    yield
    sys.path[:] = path


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    """A short temporary directory (unix socket paths are limited to 107 bytes), removed after
    the test."""
    path = Path(tempfile.mkdtemp(prefix="pdt-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def roots(short_tmp: Path) -> Path:
    """Where the test's daemons keep their data-roots and exec-roots."""
    return short_tmp


def settings_for(roots: Path, index: int = 0, **values: Any) -> DaemonSettings:
    """Settings with the data-root and exec-root under ``roots`` (``data``, ``exec<index>``)."""
    return DaemonSettings(
        **{"data_root": roots / "data", "exec_root": roots / f"exec{index}", **values}
    )


@pytest.fixture
async def make_daemon(roots: Path) -> AsyncIterator[MakeDaemon]:
    """Initialise a daemon with extra plugins ``(name, module)`` and settings overrides; every
    daemon made is closed after the test (its locks released)."""
    daemons: list[Daemon] = []

    async def make(*plugins: tuple[str, ModuleType], **values: Any) -> Daemon:
        daemon = Daemon(settings_for(roots, len(daemons), **values))
        daemons.append(daemon)
        await daemon.initialize(extra_plugins=plugins)
        return daemon

    yield make
    for daemon in daemons:
        await daemon.close()


@pytest.fixture
def api(make_daemon: MakeDaemon, aiohttp_client: Any) -> MakeClient:
    """An aiohttp test client for a fresh daemon (same arguments as ``make_daemon``); the
    daemon is ``client.app[DAEMON]``."""

    async def make(*plugins: tuple[str, ModuleType], **values: Any) -> TestClient[Any, Any]:
        daemon = await make_daemon(*plugins, **values)
        client: TestClient[Any, Any] = await aiohttp_client(create_app(daemon))
        return client

    return make
