"""Plugin loading and probing: every way a plugin ends up ok, skip, error or disabled."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path
from typing import Any

import pytest
from pydockerd.errors import ConfigError
from pydockerd.manager import PluginManager
from pydockerd.plugin import (
    DriverConfig,
    DriverContext,
    DriverNotSupported,
    DriverRegistry,
    StorageDriver,
)

from .test_hooks import plugin


class Good(StorageDriver):
    name = "good"


class Shy(StorageDriver):
    name = "shy"

    @classmethod
    async def probe(cls, context: DriverContext) -> None:
        raise DriverNotSupported("not on this host")


class Crashy(StorageDriver):
    name = "crashy"

    @classmethod
    async def probe(cls, context: DriverContext) -> None:
        raise OSError("disk on fire")


class SizedConfig(DriverConfig):
    size: int = 1


class Sized(StorageDriver):
    name = "sized"
    Config = SizedConfig


def registers(*drivers: type[StorageDriver]) -> Any:
    def register(registry: DriverRegistry[StorageDriver]) -> None:
        for driver in drivers:
            registry.add(driver)

    return register


async def load(
    *plugins: tuple[str, Any],
    disabled: tuple[str, ...] = (),
    config: dict[str, dict[str, Any]] | None = None,
    tmp: Path = Path("/tmp"),
) -> PluginManager:
    manager = PluginManager(disabled=disabled)
    for name, module in plugins:
        manager.load_module(name, module)
    await manager.run_registrations()
    await manager.probe_all(tmp / "data", tmp / "exec", config or {}, scratch_dir=tmp / "scr")
    return manager


def status(manager: PluginManager, kind: str, name: str) -> tuple[str, str]:
    row = next(r for r in manager.components if (r.kind, r.name) == (kind, name))
    return row.status, row.reason


async def test_ok_skip_and_error_from_probes(tmp_path: Path) -> None:
    manager = await load(
        plugin("p", pydockerd_register_storage_drivers=registers(Good, Shy, Crashy)), tmp=tmp_path
    )
    assert status(manager, "storage", "good") == ("ok", "")
    assert status(manager, "storage", "shy") == ("skip", "not on this host")
    assert status(manager, "storage", "crashy") == ("error", "probe failed: OSError: disk on fire")


async def test_unknown_hook_marks_the_plugin_error(tmp_path: Path) -> None:
    manager = await load(
        plugin("typo", pydockerd_register_storage_driver=registers(Good)), tmp=tmp_path
    )
    assert status(manager, "plugin", "typo") == (
        "error",
        "implements unknown hook(s): pydockerd_register_storage_driver",
    )
    assert "good" not in manager.registries["storage"]


async def test_wrong_argument_name_marks_the_plugin_error(tmp_path: Path) -> None:
    def register(drivers: Any) -> None:
        drivers.add(Good)

    manager = await load(
        plugin("badarg", pydockerd_register_storage_drivers=register), tmp=tmp_path
    )
    state, reason = status(manager, "plugin", "badarg")
    assert state == "error"
    assert "drivers" in reason


async def test_failing_registration_takes_back_what_it_registered(tmp_path: Path) -> None:
    def register(registry: DriverRegistry[StorageDriver]) -> None:
        registry.add(Good)
        raise RuntimeError("half way")

    manager = await load(plugin("half", pydockerd_register_storage_drivers=register), tmp=tmp_path)
    assert status(manager, "plugin", "half") == (
        "error",
        "pydockerd_register_storage_drivers failed: RuntimeError: half way",
    )
    assert "good" not in manager.registries["storage"]


async def test_duplicate_driver_name_fails_the_second_plugin(tmp_path: Path) -> None:
    manager = await load(
        plugin("first", pydockerd_register_storage_drivers=registers(Good)),
        plugin("second", pydockerd_register_storage_drivers=registers(Good)),
        tmp=tmp_path,
    )
    assert status(manager, "storage", "good") == ("ok", "")
    state, reason = status(manager, "plugin", "second")
    assert state == "error"
    assert "registered twice: by plugin 'first' and by plugin 'second'" in reason


def test_disabled_plugin_is_never_imported() -> None:
    manager = PluginManager(disabled=["ghost"])
    record = manager.load_module("ghost", "a_module_that_would_fail_to_import")
    assert (record.status, record.reason) == (
        "disabled",
        "disabled by configuration (disable_plugins)",
    )


def test_import_error_marks_the_plugin_error() -> None:
    record = PluginManager().load_module("ghost", "a_module_that_would_fail_to_import")
    assert record.status == "error"
    assert "ModuleNotFoundError" in record.reason


async def test_driver_config_is_validated_by_its_model(tmp_path: Path) -> None:
    register = registers(Sized)
    ok = await load(
        plugin("s", pydockerd_register_storage_drivers=register),
        config={"storage.sized": {"size": 5}},
        tmp=tmp_path,
    )
    row = next(r for r in ok.components if r.name == "sized")
    assert row.context is not None
    assert row.context.config == SizedConfig(size=5)
    bad = await load(
        plugin("s", pydockerd_register_storage_drivers=register),
        config={"storage.sized": {"colour": "red"}},
        tmp=tmp_path,
    )
    state, reason = status(bad, "storage", "sized")
    assert state == "error"
    assert reason.startswith('invalid [plugins."storage.sized"]: colour: Extra inputs')


async def test_config_section_for_no_driver(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r'\[plugins."storage.zfs"\] names no installed driver'):
        await load(
            plugin("g", pydockerd_register_storage_drivers=registers(Good)),
            config={"storage.zfs": {}},
            tmp=tmp_path,
        )
    # with a plugin disabled, the section may be that plugin's: a warning, not an error
    manager = await load(
        plugin("g", pydockerd_register_storage_drivers=registers(Good)),
        disabled=("other",),
        config={"storage.zfs": {}},
        tmp=tmp_path,
    )
    assert status(manager, "storage", "good") == ("ok", "")


def test_the_installed_driver_plugins_are_entry_points() -> None:
    manager = PluginManager()
    manager.load_entry_points()
    expected = {
        "overlay": "pydockerd-storage-overlay",
        "vfs": "pydockerd-storage-vfs",
        "bridge": "pydockerd-network-bridge",
        "host": "pydockerd-network-host",
    }
    for name, package in expected.items():
        record = manager.plugins[name]
        assert (record.package, record.status) == (package, "ok")
        assert record.version == importlib.metadata.version(package)
