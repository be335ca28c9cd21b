"""The host driver registers through its entry point and runs anywhere."""

from __future__ import annotations

from pathlib import Path

from pydockerd.plugin import NetworkDriver
from pydockerd.testing.drivers import driver_context, register_from_entry_point
from pydockerd_network_host.driver import HostDriver


def test_entry_point_registers_the_driver() -> None:
    assert register_from_entry_point("host", NetworkDriver).get("host") is HostDriver


async def test_probe_accepts_any_host(tmp_path: Path) -> None:
    await HostDriver.probe(driver_context(tmp_path))
