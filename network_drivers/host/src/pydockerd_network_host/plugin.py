"""Wiring: registers :class:`HostDriver` with pydockerd."""

from __future__ import annotations

from pydockerd.plugin import DriverRegistry, NetworkDriver, hookimpl

from pydockerd_network_host.driver import HostDriver


@hookimpl
def pydockerd_register_network_drivers(registry: DriverRegistry[NetworkDriver]) -> None:
    registry.add(HostDriver)
