"""pytest fixtures for pydockerd and plugin authors (registered through ``pytest11``).

- ``daemon``: a fresh, isolated daemon for one test (stopped and removed afterwards).
- ``daemon_factory``: start several, with flags, environment or a daemon.toml of your own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from pydockerd.testing.daemon import DaemonProcess, start_daemon

__all__ = ["daemon", "daemon_factory", "pytest_configure"]

DaemonFactory = Callable[..., DaemonProcess]


def pytest_configure(config: pytest.Config) -> None:
    """The marker the kits use for tests that need root and real kernel features."""
    config.addinivalue_line(
        "markers",
        "privileged: needs root and real kernel features (mounts, namespaces, cgroups, links)",
    )


@pytest.fixture
def daemon_factory() -> Iterator[DaemonFactory]:
    """Call with :func:`~pydockerd.testing.daemon.start_daemon`'s arguments; every daemon it
    started is stopped and its directories removed after the test, even when it fails."""
    started: list[DaemonProcess] = []

    def factory(*args: str, **kwargs: Any) -> DaemonProcess:
        process = start_daemon(*args, **kwargs)
        started.append(process)
        return process

    yield factory
    for process in started:
        process.cleanup()


@pytest.fixture
def daemon(daemon_factory: DaemonFactory) -> DaemonProcess:
    """A running daemon with its own socket, data-root and exec-root."""
    return daemon_factory()
