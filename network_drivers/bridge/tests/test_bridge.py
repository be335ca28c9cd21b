"""The bridge driver registers through its entry point and probes netlink for real."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydockerd.plugin import NetworkDriver
from pydockerd.testing.drivers import driver_context, register_from_entry_point
from pydockerd_network_bridge.driver import BridgeDriver


def test_entry_point_registers_the_driver() -> None:
    assert register_from_entry_point("bridge", NetworkDriver).get("bridge") is BridgeDriver


@pytest.mark.privileged
async def test_probe_talks_to_netlink(tmp_path: Path) -> None:
    await BridgeDriver.probe(driver_context(tmp_path))
