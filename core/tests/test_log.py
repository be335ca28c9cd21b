"""Logging: the standard library's records reach loguru at the configured level, and only
those (a dropped debug record is never built)."""

from __future__ import annotations

import subprocess
import sys

SCRIPT = """
import logging, sys
from pydockerd.log import InterceptHandler, configure_logging

emitted = []
original = InterceptHandler.emit
InterceptHandler.emit = lambda self, record: (emitted.append(record.getMessage()),
                                              original(self, record))
configure_logging(sys.argv[1], "text")
log = logging.getLogger("pyroute2.netlink")
log.debug("debug %s", "record")
log.info("info record")
log.warning("warning record")
print(emitted, file=sys.stdout)
"""


def run(level: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", SCRIPT, level],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )


def test_records_below_the_level_are_not_made() -> None:
    result = run("info")
    assert result.stdout.strip() == "['info record', 'warning record']"
    assert "debug record" not in result.stderr
    assert "warning record" in result.stderr


def test_debug_level_routes_debug_records() -> None:
    result = run("debug")
    assert result.stdout.strip() == "['debug record', 'info record', 'warning record']"
    assert "debug record" in result.stderr
