"""Wiring: registers :class:`NativeRuntime` with pydockerd."""

from __future__ import annotations

from pydockerd.plugin import DriverRegistry, Runtime, hookimpl

from pydockerd_runtime_native.driver import NativeRuntime


@hookimpl
def pydockerd_register_runtimes(registry: DriverRegistry[Runtime]) -> None:
    registry.add(NativeRuntime)
