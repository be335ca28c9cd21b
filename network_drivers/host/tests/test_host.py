"""The host driver registers through its entry point and runs anywhere."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

from loguru import logger
from pydockerd.plugin import DriverConfig, DriverContext, DriverRegistry, NetworkDriver
from pydockerd_network_host.driver import HostDriver


def test_entry_point_registers_the_driver() -> None:
    (ep,) = [e for e in importlib.metadata.entry_points(group="pydockerd") if e.name == "host"]
    registry: DriverRegistry[NetworkDriver] = DriverRegistry(NetworkDriver)
    ep.load().pydockerd_register_network_drivers(registry=registry)
    assert registry.get("host") is HostDriver


async def test_probe_accepts_any_host(tmp_path: Path) -> None:
    await HostDriver.probe(
        DriverContext(
            state_dir=tmp_path,
            run_dir=tmp_path,
            scratch_dir=tmp_path,
            config=DriverConfig(),
            logger=logger,
        )
    )
