"""Fixtures for the core's tests: a real :class:`Daemon` in temporary roots, served by aiohttp's
test client (no subprocess, no mocks)."""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
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


@pytest.fixture
def roots() -> Path:
    """A short temporary directory for a daemon's data-root and exec-root."""
    return Path(tempfile.mkdtemp(prefix="pdc-", dir="/tmp"))


@pytest.fixture
async def make_daemon(roots: Path) -> AsyncIterator[MakeDaemon]:
    """Initialise a daemon with extra plugins ``(name, module)`` and settings overrides."""
    daemons: list[Daemon] = []

    async def make(*plugins: tuple[str, ModuleType], **settings: Any) -> Daemon:
        values = {
            "data_root": roots / "data",
            "exec_root": roots / f"exec{len(daemons)}",
            **settings,
        }
        daemon = Daemon(DaemonSettings(**values))
        daemons.append(daemon)
        await daemon.initialize(extra_plugins=plugins)
        return daemon

    yield make
    for daemon in daemons:
        await daemon.close()
    import shutil

    shutil.rmtree(roots, ignore_errors=True)


@pytest.fixture
def api(make_daemon: MakeDaemon, aiohttp_client: Any) -> MakeClient:
    """An aiohttp test client for a fresh daemon (same arguments as ``make_daemon``)."""

    async def make(*plugins: tuple[str, ModuleType], **settings: Any) -> TestClient[Any, Any]:
        daemon = await make_daemon(*plugins, **settings)
        client: TestClient[Any, Any] = await aiohttp_client(create_app(daemon))
        return client

    return make
