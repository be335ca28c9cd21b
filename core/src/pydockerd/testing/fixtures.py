"""Small fixtures for the tests of the core and of driver packages (import them from
``pydockerd.testing.fixtures``)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from pydockerd.plugin import MNT_DETACH, Mount, SystemError, mount, unmount

__all__ = ["read_only_directory"]


@contextlib.contextmanager
def read_only_directory(path: Path) -> Iterator[Path]:
    """``path``, a new directory with a read-only tmpfs mounted on it: the one thing root
    cannot write through. It is unmounted afterwards (detached when busy). Needs root."""
    path.mkdir()
    mount(Mount("tmpfs", "tmpfs", ("ro", "size=1m")), path)
    try:
        yield path
    finally:
        try:
            unmount(path)
        except SystemError:
            unmount(path, MNT_DETACH)
