"""Built-in plugin of the core: the ``none`` log driver (``--log-driver none``)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from pydockerd.plugin import (
    DriverRegistry,
    LogContext,
    LogDriver,
    LogQuery,
    LogRecord,
    LogWriter,
    NotImplementedByDaemon,
    hookimpl,
)

__all__ = ["NoneLogDriver"]


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
