"""Throwaway plugins for the core's tests: real modules with real ``@hookimpl`` functions,
loaded through the same :class:`~pydockerd.manager.PluginManager` paths as installed ones."""

from __future__ import annotations

import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from pydockerd.plugin import DriverRegistry, StorageDriver, hookimpl

__all__ = ["module_file", "plugin", "registers"]


def plugin(name: str, **hooks: Callable[..., Any]) -> tuple[str, ModuleType]:
    """``(name, module)``: a fresh module whose attributes ``hooks`` are ``@hookimpl`` functions.

    The functions keep their own ``__name__``: pluggy knows a hook by the attribute name, and so
    must pydockerd.
    """
    module = ModuleType(f"pdtest_{name}_{uuid.uuid4().hex[:8]}")
    for hook_name, function in hooks.items():
        setattr(module, hook_name, hookimpl(function))
    return name, module


def registers(*drivers: type[StorageDriver]) -> Callable[[DriverRegistry[StorageDriver]], None]:
    """A ``pydockerd_register_storage_drivers`` implementation adding ``drivers``."""

    def register(registry: DriverRegistry[StorageDriver]) -> None:
        for driver in drivers:
            registry.add(driver)

    return register


def module_file(directory: Path, source: str) -> str:
    """Write ``source`` as a uniquely named module in ``directory`` (put on ``sys.path``) and
    return its import name; the module is not imported."""
    name = f"pdtest_mod_{uuid.uuid4().hex[:12]}"
    (directory / f"{name}.py").write_text(source)
    if str(directory) not in sys.path:
        sys.path.insert(0, str(directory))
    return name
