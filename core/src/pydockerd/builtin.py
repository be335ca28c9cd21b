"""Built-in plugin of the core: the ``none`` log driver (``--log-driver none``) and the
``null`` network driver (the ``none`` network: a namespace of its own, with loopback only)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

from pydockerd.plugin import (
    DriverRegistry,
    EndpointConfig,
    LogContext,
    LogDriver,
    LogQuery,
    LogRecord,
    LogWriter,
    NetworkConfig,
    NetworkDriver,
    NotImplementedByDaemon,
    hookimpl,
)

__all__ = ["NoneLogDriver", "NullNetworkDriver"]


class _Discard(LogWriter):
    def write(self, record: LogRecord) -> None:
        pass

    def close(self) -> None:
        pass


class NoneLogDriver(LogDriver):
    """Keeps nothing: ``docker logs`` has nothing to read."""

    name = "none"
    readable = False
    description = "discards container output"

    def writer(self, context: LogContext) -> LogWriter:
        return _Discard()

    def read(
        self, context: LogContext, query: LogQuery, stopped: asyncio.Event
    ) -> AsyncIterator[LogRecord]:
        raise NotImplementedByDaemon("configured logging driver does not support reading")


@hookimpl
def pydockerd_register_log_drivers(registry: DriverRegistry[LogDriver]) -> None:
    registry.add(NoneLogDriver)


class NullNetworkDriver(NetworkDriver):
    """The ``none`` network: the container gets a namespace of its own with only ``lo``."""

    name = "null"
    description = "no network: loopback only"
    single_instance = True

    async def join(self, network: NetworkConfig, endpoint: EndpointConfig, netns: Path) -> None:
        pass  # nothing to connect: the namespace's loopback is up already


@hookimpl
def pydockerd_register_network_drivers(registry: DriverRegistry[NetworkDriver]) -> None:
    registry.add(NullNetworkDriver)
