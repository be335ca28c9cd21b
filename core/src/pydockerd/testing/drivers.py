"""Helpers for testing driver packages: load a driver through its real entry point, and
build the context a probe gets."""

from __future__ import annotations

import asyncio
import importlib.metadata
import os
from pathlib import Path
from typing import TypeVar

from loguru import logger

from pydockerd.manager import driver_registry_of
from pydockerd.plugin import (
    PROJECT_NAME,
    Driver,
    DriverConfig,
    DriverContext,
    DriverNotSupported,
    DriverRegistry,
)

__all__ = ["driver_context", "probe_as_user", "register_from_entry_point"]

D = TypeVar("D", bound=Driver)


def register_from_entry_point(entry_point: str, base: type[D]) -> DriverRegistry[D]:
    """Load the installed plugin ``entry_point`` (group ``pydockerd``) and run its
    registration hook for ``base``'s kind into a fresh registry, as the daemon does."""
    (ep,) = [
        e for e in importlib.metadata.entry_points(group=PROJECT_NAME) if e.name == entry_point
    ]
    registry: DriverRegistry[D] = driver_registry_of(ep.load(), base)
    return registry


def driver_context(
    directory: Path, config: DriverConfig | None = None, scratch_dir: Path | None = None
) -> DriverContext:
    """A :class:`DriverContext` whose directories are under ``directory``."""
    return DriverContext(
        state_dir=directory / "state",
        run_dir=directory / "run",
        scratch_dir=scratch_dir or directory / "scratch",
        config=config or DriverConfig(),
        logger=logger,
    )


def probe_as_user(driver: type[Driver], context: DriverContext, uid: int) -> str:
    """Run ``driver``'s probe in a forked child as ``uid`` (and gid ``uid``, no supplementary
    groups): ``ok``, ``skip: <reason>`` or ``error: <exception>``. Root passes most checks, so
    this is how a test sees what a probe says to an unprivileged user. The child never execs,
    so it needs no access to the interpreter."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            os.close(read_end)
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
            try:
                asyncio.run(driver.probe(context))
                result = "ok"
            except DriverNotSupported as e:
                result = f"skip: {e}"
            except BaseException as e:
                result = f"error: {type(e).__name__}: {e}"
            os.write(write_end, result.encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end) as pipe:
        result = pipe.read()
    os.waitpid(pid, 0)
    return result
