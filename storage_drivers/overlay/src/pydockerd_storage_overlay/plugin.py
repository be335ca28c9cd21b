"""Wiring: registers :class:`OverlayDriver` with pydockerd."""

from __future__ import annotations

from pydockerd.plugin import DriverRegistry, StorageDriver, hookimpl

from pydockerd_storage_overlay.driver import OverlayDriver


@hookimpl
def pydockerd_register_storage_drivers(registry: DriverRegistry[StorageDriver]) -> None:
    registry.add(OverlayDriver)
