"""Entry point of the ``distribution`` registry transport: wiring only."""

from __future__ import annotations

from pydockerd.plugin import DriverRegistry, RegistryTransport, hookimpl

from pydockerd_registry_distribution.transport import DistributionTransport


@hookimpl
def pydockerd_register_registry_transports(registry: DriverRegistry[RegistryTransport]) -> None:
    registry.add(DistributionTransport)
