"""The host driver: registration through its real entry point; its probe accepts any host."""

from __future__ import annotations

import importlib.metadata
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydockerd.plugin import NetworkDriver
from pydockerd.testing.drivers import driver_context, probe_as_user, register_from_entry_point
from pydockerd_network_host.driver import HostDriver

NOBODY = 65534


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="pdh-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def files_in(directory: Path) -> list[Path]:
    return list(directory.iterdir())


def probe_as(uid: int, directory: Path) -> str:
    return probe_as_user(HostDriver, driver_context(directory), uid)


def test_the_entry_point_is_installed() -> None:
    (ep,) = [e for e in importlib.metadata.entry_points(group="pydockerd") if e.name == "host"]
    assert ep.value == "pydockerd_network_host.plugin"
    assert ep.dist is not None
    assert ep.dist.name == "pydockerd-network-host"


def test_loading_the_entry_point_registers_the_driver() -> None:
    registry = register_from_entry_point("host", NetworkDriver)
    assert registry.names() == ["host"]
    assert registry.get("host") is HostDriver
    assert HostDriver.qualified_name() == "network.host"


async def test_probe_accepts_this_host(short_tmp: Path) -> None:
    await HostDriver.probe(driver_context(short_tmp))
    assert files_in(short_tmp) == [], "the probe touches no file"


@pytest.mark.privileged
def test_probe_accepts_any_user(short_tmp: Path) -> None:
    """Nothing to create, so no privilege needed (the fork and setuid need root)."""
    assert probe_as(NOBODY, short_tmp) == "ok"
