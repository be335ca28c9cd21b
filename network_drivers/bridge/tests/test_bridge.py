"""The bridge driver registers through its entry point and probes netlink for real."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import pytest
from loguru import logger
from pydockerd.plugin import DriverConfig, DriverContext, DriverRegistry, NetworkDriver
from pydockerd_network_bridge.driver import BridgeDriver


def test_entry_point_registers_the_driver() -> None:
    (ep,) = [e for e in importlib.metadata.entry_points(group="pydockerd") if e.name == "bridge"]
    registry: DriverRegistry[NetworkDriver] = DriverRegistry(NetworkDriver)
    ep.load().pydockerd_register_network_drivers(registry=registry)
    assert registry.get("bridge") is BridgeDriver


@pytest.mark.privileged
async def test_probe_talks_to_netlink(tmp_path: Path) -> None:
    await BridgeDriver.probe(
        DriverContext(
            state_dir=tmp_path,
            run_dir=tmp_path,
            scratch_dir=tmp_path,
            config=DriverConfig(),
            logger=logger,
        )
    )
