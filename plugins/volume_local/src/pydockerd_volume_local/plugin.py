"""Wiring only: hands the local volume driver to pydockerd."""

from __future__ import annotations

from pydockerd.plugin import DriverRegistry, VolumeDriver, hookimpl

from pydockerd_volume_local.driver import LocalDriver


@hookimpl
def pydockerd_register_volume_drivers(registry: DriverRegistry[VolumeDriver]) -> None:
    registry.add(LocalDriver)
