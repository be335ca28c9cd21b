"""Logging: loguru, configured once here; the standard library's loggers (aiohttp's among them)
are routed into it. Plugins never add sinks: they log with ``logger.bind(plugin=...)``."""

from __future__ import annotations

import inspect
import logging
import sys

from loguru import logger

__all__ = ["configure_logging"]

_TEXT_FORMAT = (
    "<green>{time:YYYY-MM-DDTHH:mm:ss.SSSZZ}</green> <level>{level: <7}</level> "
    "{extra[request_id]: <16} {message}"
)


class InterceptHandler(logging.Handler):
    """Hands standard-library log records to loguru, keeping level and caller."""

    def emit(self, record: logging.LogRecord) -> None:
        level: str | int
        try:
            level = logger.level(record.levelname).name
        except ValueError:
            level = record.levelno
        frame, depth = inspect.currentframe(), 0
        while frame and (depth == 0 or frame.f_code.co_filename == logging.__file__):
            frame = frame.f_back
            depth += 1
        logger.opt(depth=depth, exception=record.exc_info).log(level, record.getMessage())


def configure_logging(level: str, fmt: str) -> None:
    """Log to stderr at ``level`` as ``text`` or ``json`` (one JSON object a line)."""
    logger.remove()
    logger.configure(extra={"request_id": "-"})
    if fmt == "json":
        logger.add(sys.stderr, level=level.upper(), serialize=True, diagnose=False)
    else:
        logger.add(
            sys.stderr, level=level.upper(), format=_TEXT_FORMAT, colorize=sys.stderr.isatty()
        )
    # The standard library's loggers drop what loguru would drop before making a record of
    # it: pyroute2 logs at debug on every netlink exchange, and at level 0 each such record
    # was built, formatted and handed over (with a walk up the stack) to be thrown away.
    logging.basicConfig(
        handlers=[InterceptHandler()], level=logger.level(level.upper()).no, force=True
    )
    # aiohttp's access log is replaced by our own line per request (with its request id).
    logging.getLogger("aiohttp.access").disabled = True
