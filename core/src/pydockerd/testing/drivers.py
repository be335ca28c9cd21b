"""Helpers for testing driver packages: load a driver through its real entry point, and
build the context a probe gets."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path
from typing import TypeVar

from loguru import logger

from pydockerd.plugin import PROJECT_NAME, Driver, DriverConfig, DriverContext, DriverRegistry

__all__ = ["driver_context", "register_from_entry_point"]

D = TypeVar("D", bound=Driver)

_HOOK_BY_KIND = {
    "storage": "pydockerd_register_storage_drivers",
    "network": "pydockerd_register_network_drivers",
    "registry": "pydockerd_register_registry_transports",
    "runtime": "pydockerd_register_runtimes",
    "log": "pydockerd_register_log_drivers",
}


def register_from_entry_point(entry_point: str, base: type[D]) -> DriverRegistry[D]:
    """Load the installed plugin ``entry_point`` (group ``pydockerd``) and run its
    registration hook for ``base``'s kind into a fresh registry, as the daemon does."""
    (ep,) = [
        e for e in importlib.metadata.entry_points(group=PROJECT_NAME) if e.name == entry_point
    ]
    registry: DriverRegistry[D] = DriverRegistry(base)
    getattr(ep.load(), _HOOK_BY_KIND[base.kind])(registry=registry)
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
