"""Wiring only: hands the json-file driver to pydockerd."""

from __future__ import annotations

from pydockerd.plugin import DriverRegistry, LogDriver, hookimpl

from pydockerd_log_json_file.driver import JsonFileDriver


@hookimpl
def pydockerd_register_log_drivers(registry: DriverRegistry[LogDriver]) -> None:
    registry.add(JsonFileDriver)
