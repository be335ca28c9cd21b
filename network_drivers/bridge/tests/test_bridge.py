"""The bridge driver: registration through its real entry point, and its probe for real (netlink
as root; a skip for a user who may not create links)."""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydockerd.plugin import NetworkDriver
from pydockerd.testing.drivers import driver_context, probe_as_user, register_from_entry_point
from pydockerd_network_bridge.driver import BridgeDriver

NOBODY = 65534


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="pdb-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def files_in(directory: Path) -> list[Path]:
    return list(directory.iterdir())


def probe_as(uid: int, directory: Path) -> str:
    return probe_as_user(BridgeDriver, driver_context(directory), uid)


def test_the_entry_point_is_installed() -> None:
    (ep,) = [e for e in importlib.metadata.entry_points(group="pydockerd") if e.name == "bridge"]
    assert ep.value == "pydockerd_network_bridge.plugin"
    assert ep.dist is not None
    assert ep.dist.name == "pydockerd-network-bridge"


def test_loading_the_entry_point_registers_the_driver() -> None:
    registry = register_from_entry_point("bridge", NetworkDriver)
    assert registry.names() == ["bridge"]
    assert registry.get("bridge") is BridgeDriver
    assert BridgeDriver.qualified_name() == "network.bridge"
    assert BridgeDriver.interface == "pydockerd.network.v1"


@pytest.mark.privileged
async def test_probe_passes_as_root(short_tmp: Path) -> None:
    assert os.geteuid() == 0, "privileged tests run as root"
    context = driver_context(short_tmp)
    await BridgeDriver.probe(context)
    assert files_in(short_tmp) == [], "the probe touches no file"


@pytest.mark.privileged
def test_probe_skips_without_root(short_tmp: Path) -> None:
    assert probe_as(NOBODY, short_tmp) == (
        "skip: creating bridges and veth pairs needs root (CAP_NET_ADMIN)"
    )
    assert probe_as(0, short_tmp) == "ok", "the same probe in the same way, as root"
