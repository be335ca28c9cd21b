"""Plugin loading and probing: every way a plugin or driver ends up ok, skip, error or disabled.

Plugins here are real modules (built in memory, or files on ``sys.path``) with real
``@hookimpl`` functions, loaded through :meth:`PluginManager.load_module` as the daemon loads
its built-ins; the installed driver packages are loaded through their real entry points.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from loguru import logger
from pydockerd import manager as manager_module
from pydockerd.errors import ConfigError
from pydockerd.manager import PluginManager
from pydockerd.plugin import (
    DriverConfig,
    DriverContext,
    DriverNotSupported,
    DriverRegistry,
    Event,
    NetworkDriver,
    RouteRegistry,
    StorageDriver,
)

from .helpers import module_file, plugin, registers

INSTALLED = {
    "overlay": ("pydockerd-storage-overlay", "pydockerd_storage_overlay.plugin"),
    "vfs": ("pydockerd-storage-vfs", "pydockerd_storage_vfs.plugin"),
    "bridge": ("pydockerd-network-bridge", "pydockerd_network_bridge.plugin"),
    "host": ("pydockerd-network-host", "pydockerd_network_host.plugin"),
}


class Good(StorageDriver):
    name = "good"
    description = "a driver that works"
    capabilities = frozenset({"snapshots"})


class Other(StorageDriver):
    name = "other"


class Shy(StorageDriver):
    name = "shy"

    @classmethod
    async def probe(cls, context: DriverContext) -> None:
        raise DriverNotSupported("needs a quantum disk")


class Crashy(StorageDriver):
    name = "crashy"

    @classmethod
    async def probe(cls, context: DriverContext) -> None:
        raise OSError("disk on fire")


class Slow(StorageDriver):
    name = "slow"

    @classmethod
    async def probe(cls, context: DriverContext) -> None:
        await asyncio.sleep(30)


class SizedConfig(DriverConfig):
    size: int = 1


class Sized(StorageDriver):
    name = "sized"
    Config = SizedConfig
    seen: list[DriverContext] = []

    @classmethod
    async def probe(cls, context: DriverContext) -> None:
        cls.seen.append(context)


class Wired(NetworkDriver):
    name = "wired"


@pytest.fixture
def log() -> Iterator[list[str]]:
    """The daemon's log lines (WARNING and above) while the test runs."""
    lines: list[str] = []
    sink = logger.add(lambda message: lines.append(str(message)), level="WARNING")
    yield lines
    logger.remove(sink)


async def load(
    tmp: Path,
    *plugins: tuple[str, Any],
    disabled: tuple[str, ...] = (),
    config: dict[str, dict[str, Any]] | None = None,
) -> PluginManager:
    """What the daemon does at start-up, with ``plugins`` instead of the entry points."""
    manager = PluginManager(disabled=disabled)
    for name, module in plugins:
        manager.load_module(name, module)
    await manager.run_registrations()
    await manager.probe_all(tmp / "data", tmp / "exec", config or {}, scratch_dir=tmp / "scr")
    return manager


def status(manager: PluginManager, kind: str, name: str) -> tuple[str, str]:
    row = manager.component(kind, name)
    return row.status, row.reason


# --------------------------------------------------------------------------------------
# loading and registering


async def test_ok_plugin_registers_its_driver(tmp_path: Path) -> None:
    manager = await load(
        tmp_path, plugin("good", pydockerd_register_storage_drivers=registers(Good))
    )
    assert manager.plugins["good"].status == "ok"
    assert manager.registries["storage"].get("good") is Good
    assert manager.registries["storage"].owner("good") == "good"
    row = manager.component("storage", "good")
    assert (row.status, row.reason, row.plugin.name) == ("ok", "", "good")
    assert (row.interface, row.description) == ("pydockerd.storage.v1", "a driver that works")
    assert row.capabilities == frozenset({"snapshots"})
    assert row.context is not None
    assert row.context.state_dir == tmp_path / "data" / "storage" / "good"
    assert row.context.run_dir == tmp_path / "exec" / "storage" / "good"
    assert row.context.scratch_dir == tmp_path / "scr"
    assert not (tmp_path / "data").exists(), "probing creates no state directory"


async def test_plugin_from_a_module_path(tmp_path: Path) -> None:
    name = module_file(
        tmp_path,
        "from pydockerd.plugin import NetworkDriver, hookimpl\n"
        "class Wired(NetworkDriver):\n"
        "    name = 'wired'\n"
        "@hookimpl\n"
        "def pydockerd_register_network_drivers(registry):\n"
        "    registry.add(Wired)\n",
    )
    manager = PluginManager()
    record = manager.load_module("wired", name, package="pdtest-wired", version="1.2")
    await manager.run_registrations()
    await manager.probe_all(tmp_path, tmp_path, {}, scratch_dir=tmp_path / "scr")
    assert (record.status, record.module, record.package, record.version) == (
        "ok",
        name,
        "pdtest-wired",
        "1.2",
    )
    assert status(manager, "network", "wired") == ("ok", "")


async def test_plugin_without_drivers_is_listed_as_a_plugin(tmp_path: Path) -> None:
    def register(routes: RouteRegistry) -> None:
        pass

    manager = await load(tmp_path, plugin("routes-only", pydockerd_register_routes=register))
    assert status(manager, "plugin", "routes-only") == ("ok", "")


async def test_unknown_hook_marks_the_plugin_error_and_names_the_hook(tmp_path: Path) -> None:
    def register(registry: DriverRegistry[StorageDriver]) -> None:
        registry.add(Good)

    def listen(event: Event) -> None:
        raise AssertionError("an unregistered plugin is never called")

    manager = await load(
        tmp_path,
        plugin(
            "typo",
            pydockerd_register_storage_driver=register,  # the hook ends in "drivers"
            pydockerd_event=listen,
        ),
    )
    assert status(manager, "plugin", "typo") == (
        "error",
        "implements unknown hook(s): pydockerd_register_storage_driver",
    )
    assert manager.pm.get_plugin("typo") is None
    assert "good" not in manager.registries["storage"]
    await manager.notify("pydockerd_event", event=Event("daemon", "reload", "x"))


async def test_hook_with_a_wrong_argument_name_marks_the_plugin_error(tmp_path: Path) -> None:
    def register(drivers: DriverRegistry[StorageDriver]) -> None:
        drivers.add(Good)

    manager = await load(tmp_path, plugin("badarg", pydockerd_register_storage_drivers=register))
    state, reason = status(manager, "plugin", "badarg")
    assert state == "error"
    assert reason.startswith("invalid plugin: ")
    assert "pydockerd_register_storage_drivers" in reason
    assert "drivers" in reason
    assert "good" not in manager.registries["storage"]


async def test_hook_taking_fewer_arguments_than_the_spec_is_fine(tmp_path: Path) -> None:
    """pluggy lets an implementation accept a subset of the spec's arguments."""
    calls: list[str] = []

    def count() -> None:
        calls.append("called")

    manager = await load(tmp_path, plugin("counter", pydockerd_event=count))
    assert manager.plugins["counter"].status == "ok"
    await manager.notify("pydockerd_event", event=Event("daemon", "reload", "x"))
    assert calls == ["called"]


def test_disabled_plugin_is_never_imported(tmp_path: Path) -> None:
    marker = tmp_path / "imported"
    name = module_file(tmp_path, f"open({str(marker)!r}, 'w').close()\nraise ImportError('no')\n")
    manager = PluginManager(disabled=["ghost"])
    record = manager.load_module("ghost", name)
    assert (record.status, record.reason) == (
        "disabled",
        "disabled by configuration (disable_plugins)",
    )
    assert not marker.exists()
    assert name not in sys.modules
    # the same module, not disabled: imported, and its failure recorded
    other = PluginManager().load_module("ghost", name)
    assert marker.exists()
    assert other.status == "error"


def test_disabled_entry_point_is_never_imported() -> None:
    """In a fresh interpreter: the disabled plugin's module is not in ``sys.modules``."""
    code = (
        "import sys\n"
        "from pydockerd.manager import PluginManager\n"
        "m = PluginManager(disabled=['bridge'])\n"
        "m.load_entry_points()\n"
        "print(m.plugins['bridge'].status, m.plugins['host'].status)\n"
        "print('pydockerd_network_bridge.plugin' in sys.modules, "
        "'pydockerd_network_host.plugin' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.split() == ["disabled", "ok", "False", "True"]


async def test_import_error_marks_the_plugin_error(tmp_path: Path) -> None:
    name = module_file(tmp_path, "import a_module_that_does_not_exist_anywhere\n")
    manager = await load(tmp_path, ("broken", name))
    state, reason = status(manager, "plugin", "broken")
    assert state == "error"
    assert reason == (
        f"cannot import {name}: ModuleNotFoundError: "
        "No module named 'a_module_that_does_not_exist_anywhere'"
    )


async def test_exception_at_import_marks_the_plugin_error(tmp_path: Path) -> None:
    name = module_file(tmp_path, "raise RuntimeError('bad plugin')\n")
    manager = await load(tmp_path, ("broken", name))
    assert status(manager, "plugin", "broken") == (
        "error",
        f"cannot import {name}: RuntimeError: bad plugin",
    )


async def test_failing_registration_takes_back_what_it_registered(tmp_path: Path) -> None:
    calls: list[str] = []

    def register_storage(registry: DriverRegistry[StorageDriver]) -> None:
        registry.add(Good)

    def register_network(registry: DriverRegistry[NetworkDriver]) -> None:
        registry.add(Wired)
        raise RuntimeError("half way")

    def listen(event: Event) -> None:
        calls.append("half")

    manager = await load(
        tmp_path,
        plugin(
            "half",
            pydockerd_register_storage_drivers=register_storage,
            pydockerd_register_network_drivers=register_network,
            pydockerd_event=listen,
        ),
        plugin("fine", pydockerd_register_storage_drivers=registers(Other)),
    )
    assert status(manager, "plugin", "half") == (
        "error",
        "pydockerd_register_network_drivers failed: RuntimeError: half way",
    )
    assert "good" not in manager.registries["storage"]
    assert "wired" not in manager.registries["network"]
    assert [c.name for c in manager.components if c.kind != "plugin"] == ["other"]
    await manager.notify("pydockerd_event", event=Event("daemon", "reload", "x"))
    assert calls == [], "a failed plugin's other hooks are unregistered"


async def test_failing_route_registration_takes_back_its_routes(tmp_path: Path) -> None:
    async def handler(request: Any) -> Any:
        raise AssertionError

    def register(routes: RouteRegistry) -> None:
        routes.add("GET", "/mine", handler)
        routes.add("GET", "no-slash", handler)

    manager = await load(tmp_path, plugin("routes", pydockerd_register_routes=register))
    state, reason = status(manager, "plugin", "routes")
    assert state == "error"
    assert "route path 'no-slash' must start with '/'" in reason
    assert manager.routes.routes == []


async def test_registering_something_that_is_not_a_driver(tmp_path: Path) -> None:
    def register(registry: DriverRegistry[StorageDriver]) -> None:
        registry.add(Wired)  # type: ignore[arg-type]  # a network driver

    manager = await load(tmp_path, plugin("wrong", pydockerd_register_storage_drivers=register))
    state, reason = status(manager, "plugin", "wrong")
    assert state == "error"
    assert "is not a StorageDriver subclass" in reason


async def test_malformed_driver_name(tmp_path: Path) -> None:
    class Shouting(StorageDriver):
        name = "LOUD NAME"

    manager = await load(
        tmp_path, plugin("loud", pydockerd_register_storage_drivers=registers(Shouting))
    )
    state, reason = status(manager, "plugin", "loud")
    assert state == "error"
    assert "'LOUD NAME' is not a valid driver name" in reason


async def test_duplicate_driver_name_fails_the_second_plugin(tmp_path: Path) -> None:
    manager = await load(
        tmp_path,
        plugin("first", pydockerd_register_storage_drivers=registers(Good)),
        plugin("second", pydockerd_register_storage_drivers=registers(Other, Good)),
    )
    assert status(manager, "storage", "good") == ("ok", "")
    assert manager.component("storage", "good").plugin.name == "first"
    assert manager.plugins["first"].status == "ok"
    state, reason = status(manager, "plugin", "second")
    assert state == "error"
    assert reason == (
        "pydockerd_register_storage_drivers failed: PluginLoadError: storage driver 'good' is "
        "registered twice: by plugin 'first' and by plugin 'second'"
    )
    assert "other" not in manager.registries["storage"], "taken back with the plugin"


async def test_async_registration_hook_is_awaited(tmp_path: Path) -> None:
    async def register(registry: DriverRegistry[StorageDriver]) -> None:
        await asyncio.sleep(0)
        registry.add(Good)

    manager = await load(tmp_path, plugin("async", pydockerd_register_storage_drivers=register))
    assert status(manager, "storage", "good") == ("ok", "")


# --------------------------------------------------------------------------------------
# probing and configuration


async def test_probe_not_supported_is_skip_with_the_reason(tmp_path: Path) -> None:
    manager = await load(tmp_path, plugin("p", pydockerd_register_storage_drivers=registers(Shy)))
    assert status(manager, "storage", "shy") == ("skip", "needs a quantum disk")
    assert manager.plugins["p"].status == "ok", "a skipped driver is not a broken plugin"


async def test_probe_raising_anything_else_is_error(tmp_path: Path) -> None:
    manager = await load(
        tmp_path, plugin("p", pydockerd_register_storage_drivers=registers(Crashy, Good))
    )
    assert status(manager, "storage", "crashy") == ("error", "probe failed: OSError: disk on fire")
    assert status(manager, "storage", "good") == ("ok", ""), "other drivers still probe"


async def test_probe_that_hangs_is_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(manager_module, "PROBE_TIMEOUT", 0.05)
    manager = await load(tmp_path, plugin("p", pydockerd_register_storage_drivers=registers(Slow)))
    assert status(manager, "storage", "slow") == ("error", "probe failed: TimeoutError: ")


async def test_driver_config_is_validated_by_its_model(tmp_path: Path) -> None:
    Sized.seen.clear()
    manager = await load(
        tmp_path,
        plugin("s", pydockerd_register_storage_drivers=registers(Sized)),
        config={"storage.sized": {"size": 5}},
    )
    assert status(manager, "storage", "sized") == ("ok", "")
    assert [context.config for context in Sized.seen] == [SizedConfig(size=5)]


@pytest.mark.parametrize(
    ("options", "reason"),
    [
        ({"colour": "red"}, 'invalid [plugins."storage.sized"]: colour: Extra inputs'),
        ({"size": "big"}, 'invalid [plugins."storage.sized"]: size: Input should be a valid'),
    ],
)
async def test_invalid_driver_config_is_error_and_the_driver_is_not_probed(
    tmp_path: Path, options: dict[str, Any], reason: str
) -> None:
    Sized.seen.clear()
    manager = await load(
        tmp_path,
        plugin("s", pydockerd_register_storage_drivers=registers(Sized)),
        config={"storage.sized": options},
    )
    state, text = status(manager, "storage", "sized")
    assert state == "error"
    assert text.startswith(reason)
    assert Sized.seen == []


async def test_config_section_for_no_installed_driver(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        await load(
            tmp_path,
            plugin("g", pydockerd_register_storage_drivers=registers(Good)),
            config={"storage.zfs": {}},
        )
    assert str(caught.value) == (
        'config section [plugins."storage.zfs"] names no installed driver (installed: storage.good)'
    )


async def test_config_section_for_no_driver_only_warns_when_a_plugin_is_disabled(
    tmp_path: Path, log: list[str]
) -> None:
    manager = await load(
        tmp_path,
        plugin("g", pydockerd_register_storage_drivers=registers(Good)),
        disabled=("zfs",),
        config={"storage.zfs": {"pool": "tank"}},
    )
    assert status(manager, "storage", "good") == ("ok", "")
    assert any(
        '[plugins."storage.zfs"] names no installed driver' in line
        and "ignored because plugins are disabled: zfs" in line
        for line in log
    )


# --------------------------------------------------------------------------------------
# calling hooks


async def test_notify_calls_every_plugin_even_after_one_fails(tmp_path: Path) -> None:
    calls: list[str] = []

    def broken(event: Event) -> None:
        calls.append("broken")
        raise RuntimeError("listener bug")

    async def fine(event: Event) -> None:
        await asyncio.sleep(0)
        calls.append("fine")

    manager = await load(
        tmp_path, plugin("fine", pydockerd_event=fine), plugin("broken", pydockerd_event=broken)
    )
    await manager.notify("pydockerd_event", event=Event("daemon", "reload", "x"))
    assert calls == ["broken", "fine"]


async def test_decide_takes_the_first_answer_and_names_the_plugin(tmp_path: Path) -> None:
    asked: list[str] = []

    def undecided(request: Any) -> None:
        asked.append("undecided")

    def decides(request: Any) -> str:
        asked.append("decides")
        return "yes"

    def never(request: Any) -> str:
        asked.append("never")
        return "no"

    # pluggy calls the last registered plugin first
    manager = await load(
        tmp_path,
        plugin("never", pydockerd_authorize_request=never),
        plugin("decides", pydockerd_authorize_request=decides),
        plugin("undecided", pydockerd_authorize_request=undecided),
    )
    assert await manager.decide("pydockerd_authorize_request", request=None) == ("decides", "yes")
    assert asked == ["undecided", "decides"]


async def test_decide_error_names_the_plugin(tmp_path: Path) -> None:
    def broken(request: Any) -> None:
        raise ValueError("policy store down")

    manager = await load(tmp_path, plugin("policy", pydockerd_authorize_request=broken))
    with pytest.raises(ValueError, match="policy store down") as caught:
        await manager.decide("pydockerd_authorize_request", request=None)
    assert caught.value.__notes__ == ["in plugin policy"]


async def test_trace_hooks_logs_every_call(tmp_path: Path) -> None:
    lines: list[str] = []
    sink = logger.add(lambda message: lines.append(str(message)), level="INFO")
    try:
        manager = PluginManager(trace=True)
        manager.load_module(*plugin("traced", pydockerd_event=lambda event: None))
        await manager.notify("pydockerd_event", event=Event("daemon", "reload", "x"))
    finally:
        logger.remove(sink)
    assert any("hook pydockerd_event -> plugin traced: " in line for line in lines)


# --------------------------------------------------------------------------------------
# the installed driver packages


def test_the_installed_driver_plugins_are_found_as_entry_points() -> None:
    manager = PluginManager()
    manager.load_entry_points()
    for name, (package, module) in INSTALLED.items():
        record = manager.plugins[name]
        assert (record.package, record.module, record.status) == (package, module, "ok")
        assert record.version == importlib.metadata.version(package)
        assert manager.pm.get_plugin(name) is not None


async def test_the_installed_drivers_register_and_probe(short_tmp: Path) -> None:
    manager = PluginManager()
    manager.load_entry_points()
    await manager.run_registrations()
    await manager.probe_all(
        short_tmp / "data", short_tmp / "exec", {}, scratch_dir=short_tmp / "scr"
    )
    rows = {(c.kind, c.name): (c.status, c.plugin.name) for c in manager.components}
    for kind, name in (
        ("storage", "overlay"),
        ("storage", "vfs"),
        ("network", "bridge"),
        ("network", "host"),
    ):
        assert rows[(kind, name)] == ("ok", name), (kind, name, manager.component(kind, name))
