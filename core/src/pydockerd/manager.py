"""Loads plugins, calls their hooks, probes their drivers and keeps the status of each.

A plugin's life: found as an entry point in the group ``pydockerd`` (or handed in directly,
for built-ins and tests) → ``disabled`` if named in ``disable_plugins`` → imported and
registered with pluggy (an import error, a hook with a wrong signature or an unknown
``pydockerd_*`` hook marks it ``error``) → its registration hooks run (an exception marks it
``error`` and takes back what it registered) → each of its drivers is configured from
``[plugins."<kind>.<name>"]`` and probed: ``ok``, ``skip`` (:class:`DriverNotSupported`) or
``error``. A broken plugin never stops the daemon, unless the operator selected its driver.
"""

from __future__ import annotations

import asyncio
import functools
import importlib
import importlib.metadata
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from inspect import isawaitable
from pathlib import Path
from types import ModuleType
from typing import Any, Literal

import pluggy
from loguru import logger
from pydantic import ValidationError

from pydockerd import hookspecs
from pydockerd.errors import ConfigError, DriverNotSupported, PluginLoadError
from pydockerd.plugin import (
    PROJECT_NAME,
    Driver,
    DriverContext,
    DriverRegistry,
    LogDriver,
    NetworkDriver,
    RegistryTransport,
    RouteRegistry,
    Runtime,
    StorageDriver,
    VolumeDriver,
)

__all__ = [
    "ComponentStatus",
    "PluginManager",
    "PluginRecord",
    "Status",
    "driver_registry_of",
    "load_driver_class",
]

Status = Literal["ok", "skip", "error", "disabled"]

HOOK_TIMEOUT = 10.0
PROBE_TIMEOUT = 30.0

_REGISTRATION_HOOKS: dict[str, type[Driver]] = {
    "pydockerd_register_storage_drivers": StorageDriver,
    "pydockerd_register_network_drivers": NetworkDriver,
    "pydockerd_register_registry_transports": RegistryTransport,
    "pydockerd_register_runtimes": Runtime,
    "pydockerd_register_log_drivers": LogDriver,
    "pydockerd_register_volume_drivers": VolumeDriver,
}


def driver_registry_of(module: object, base: type[Driver]) -> DriverRegistry[Any]:
    """Run the registration hook for ``base``'s kind that ``module`` implements (if any)
    into a fresh registry: what one plugin registers of one kind."""
    registry: DriverRegistry[Any] = DriverRegistry(base)
    hook = next(name for name, kind_base in _REGISTRATION_HOOKS.items() if kind_base is base)
    implementation = getattr(module, hook, None)
    if implementation is not None:
        implementation(registry=registry)
    return registry


def load_driver_class(module_name: str, base: type[Driver], name: str) -> type[Driver]:
    """The driver ``name`` of ``base``'s kind that the plugin module ``module_name``
    registers: how a process other than the daemon (the supervisor) gets a driver the
    daemon chose, without loading every plugin.

    :raises PluginLoadError: the module does not import, or does not register ``name``.
    """
    try:
        module = importlib.import_module(module_name)
        return driver_registry_of(module, base).get(name)
    except Exception as e:
        raise PluginLoadError(
            f"cannot load {base.kind} driver {name!r} from {module_name}: {e}"
        ) from e


@dataclass
class PluginRecord:
    """One plugin (an entry point), whatever became of it."""

    name: str
    module: str
    package: str
    version: str
    status: Status = "ok"
    reason: str = ""


@dataclass
class ComponentStatus:
    """One row of ``plugin ls``: a driver, or a plugin that registered no driver."""

    kind: str
    name: str
    plugin: PluginRecord
    status: Status
    reason: str = ""
    interface: str = ""
    description: str = ""
    capabilities: frozenset[str] = field(default_factory=frozenset)
    driver: type[Driver] | None = None
    context: DriverContext | None = None
    state_dir: Path | None = None
    """The driver's state directory, known even when its config is invalid (prior state)."""

    @property
    def qualified_name(self) -> str:
        return f"{self.kind}.{self.name}"


class PluginManager:
    """pluggy's manager plus the driver registries and the status of every plugin and driver."""

    def __init__(self, *, disabled: Iterable[str] = (), trace: bool = False) -> None:
        self.pm = pluggy.PluginManager(PROJECT_NAME)
        self.pm.add_hookspecs(hookspecs)
        self.disabled = set(disabled)
        self.trace = trace
        self.plugins: dict[str, PluginRecord] = {}
        self.registries: dict[str, DriverRegistry[Any]] = {
            base.kind: DriverRegistry(base) for base in _REGISTRATION_HOOKS.values()
        }
        self.routes = RouteRegistry()
        self.components: list[ComponentStatus] = []

    # -- loading ----------------------------------------------------------------------

    def load_entry_points(self) -> None:
        """Load every plugin installed in the entry-point group ``pydockerd``."""
        for ep in sorted(importlib.metadata.entry_points(group=PROJECT_NAME), key=lambda e: e.name):
            package = ep.dist.name if ep.dist else ""
            version = ep.dist.version if ep.dist else ""
            self._load(PluginRecord(ep.name, ep.value, package, version), ep.load)

    def load_module(
        self, name: str, module: ModuleType | str, package: str = "", version: str = ""
    ) -> PluginRecord:
        """Load a plugin given directly (built-ins, tests) rather than by entry point."""
        if isinstance(module, str):
            record = PluginRecord(name, module, package, version)
            self._load(record, functools.partial(importlib.import_module, module))
        else:
            record = PluginRecord(name, module.__name__, package, version)
            self._load(record, lambda: module)
        return record

    def _load(self, record: PluginRecord, importer: Callable[[], object]) -> None:
        """Import (unless disabled) and register one plugin, recording what became of it."""
        self.plugins[record.name] = record
        if record.name in self.disabled:
            self._fail(record, "disabled", "disabled by configuration (disable_plugins)")
            return
        try:
            module = importer()
        except Exception as e:
            self._fail(record, "error", f"cannot import {record.module}: {type(e).__name__}: {e}")
            return
        self._register(record, module)

    def _register(self, record: PluginRecord, module: object) -> None:
        try:
            self.pm.register(module, name=record.name)
        except (pluggy.PluginValidationError, ValueError) as e:
            self._fail(record, "error", f"invalid plugin: {e}")
            return
        # pluggy knows a hook by the attribute's name, not by the function's __name__
        unknown = [
            hook.name
            for hook in self.pm.get_hookcallers(module) or []
            if not hook.has_spec() and hook.name.startswith("pydockerd_")
        ]
        if unknown:
            self.pm.unregister(module)
            self._fail(record, "error", f"implements unknown hook(s): {', '.join(unknown)}")

    def _fail(self, record: PluginRecord, status: Status, reason: str) -> None:
        record.status, record.reason = status, reason
        level = "ERROR" if status == "error" else "INFO"
        logger.log(level, "plugin {}: {}: {}", record.name, status, reason)

    # -- hook calls ---------------------------------------------------------------------

    def _impls(self, hook_name: str) -> list[pluggy.HookImpl]:
        """The implementations of ``hook_name`` in pluggy's call order."""
        return list(reversed(getattr(self.pm.hook, hook_name).get_hookimpls()))

    async def _call_one(self, impl: pluggy.HookImpl, hook_name: str, kwargs: dict[str, Any]) -> Any:
        started = time.perf_counter()
        try:
            # as pluggy does: an implementation may take a subset of the spec's arguments
            result = impl.function(*[kwargs[name] for name in impl.argnames])
            if isawaitable(result):
                result = await asyncio.wait_for(result, HOOK_TIMEOUT)
            return result
        finally:
            if self.trace:
                logger.info(
                    "hook {} -> plugin {}: {:.3f} ms",
                    hook_name,
                    impl.plugin_name,
                    (time.perf_counter() - started) * 1000,
                )

    async def notify(self, hook_name: str, **kwargs: Any) -> None:
        """Call every implementation of an event hook; one failing does not stop the others."""
        for impl in self._impls(hook_name):
            try:
                await self._call_one(impl, hook_name, kwargs)
            except Exception:
                logger.exception("hook {} failed in plugin {}", hook_name, impl.plugin_name)

    async def decide(self, hook_name: str, **kwargs: Any) -> tuple[str, Any]:
        """Call a decision hook: ``(plugin name, answer)`` of the first non-None answer,
        or ``("", None)``. Exceptions propagate, with the plugin's name in a note."""
        for impl in self._impls(hook_name):
            try:
                result = await self._call_one(impl, hook_name, kwargs)
            except Exception as e:
                e.add_note(f"in plugin {impl.plugin_name}")
                raise
            if result is not None:
                return impl.plugin_name, result
        return "", None

    async def run_registrations(self) -> None:
        """Run every registration hook, plugin by plugin; a failing plugin is taken back."""
        hook_names = [*_REGISTRATION_HOOKS, "pydockerd_register_routes"]
        for name, record in self.plugins.items():
            if record.status != "ok":
                continue
            for hook_name in hook_names:
                impl = next((i for i in self._impls(hook_name) if i.plugin_name == name), None)
                if impl is None:
                    continue
                target: DriverRegistry[Any] | RouteRegistry
                if hook_name in _REGISTRATION_HOOKS:
                    target = self.registries[_REGISTRATION_HOOKS[hook_name].kind]
                    argname = "registry"
                else:
                    target, argname = self.routes, "routes"
                target.registering_plugin = name
                try:
                    await self._call_one(impl, hook_name, {argname: target})
                except Exception as e:
                    logger.opt(exception=e).debug("registration failed")
                    self._take_back(name)
                    self._fail(record, "error", f"{hook_name} failed: {type(e).__name__}: {e}")
                    break

    def _take_back(self, plugin_name: str) -> None:
        for registry in self.registries.values():
            registry.discard_plugin(plugin_name)
        self.routes.routes = [r for r in self.routes.routes if r[3] != plugin_name]
        plugin = self.pm.get_plugin(plugin_name)
        if plugin is not None:
            self.pm.unregister(plugin)

    # -- probing ------------------------------------------------------------------------

    async def probe_all(
        self,
        data_root: Path,
        exec_root: Path,
        plugin_config: dict[str, dict[str, Any]],
        *,
        scratch_dir: Path,
    ) -> None:
        """Configure and probe every registered driver; fill :attr:`components`.

        :raises ConfigError: ``plugin_config`` has a section for a driver that is not
            installed (while no plugin is disabled, which could explain it).
        """
        known = {d.qualified_name() for reg in self.registries.values() for d in reg}
        for section in plugin_config:
            if section not in known:
                message = (
                    f'config section [plugins."{section}"] names no installed driver '
                    f"(installed: {', '.join(sorted(known)) or 'none'})"
                )
                if self.disabled:
                    logger.warning(
                        "{}; ignored because plugins are disabled: {}",
                        message,
                        ", ".join(sorted(self.disabled)),
                    )
                else:
                    raise ConfigError(message)
        components = []
        for kind, registry in self.registries.items():
            for driver in registry:
                record = self.plugins[registry.owner(driver.name)]
                row = ComponentStatus(
                    kind=kind,
                    name=driver.name,
                    plugin=record,
                    status="ok",
                    interface=driver.interface,
                    description=driver.description,
                    capabilities=driver.capabilities,
                    driver=driver,
                )
                components.append(row)
                await self._probe(
                    row,
                    data_root,
                    exec_root,
                    scratch_dir,
                    plugin_config.get(driver.qualified_name(), {}),
                )
        with_drivers = {c.plugin.name for c in components}
        for record in self.plugins.values():
            if record.name not in with_drivers:
                components.append(
                    ComponentStatus(
                        kind="plugin",
                        name=record.name,
                        plugin=record,
                        status=record.status,
                        reason=record.reason,
                    )
                )
        self.components = components

    async def _probe(
        self,
        row: ComponentStatus,
        data_root: Path,
        exec_root: Path,
        scratch: Path,
        options: dict[str, Any],
    ) -> None:
        driver = row.driver
        assert driver is not None
        row.state_dir = data_root / row.kind / row.name
        try:
            config = driver.Config.model_validate(options)
        except ValidationError as e:
            row.status = "error"
            row.reason = f'invalid [plugins."{driver.qualified_name()}"]: ' + "; ".join(
                f"{'.'.join(map(str, err['loc']))}: {err['msg']}" for err in e.errors()
            )
            return
        row.context = DriverContext(
            state_dir=row.state_dir,
            run_dir=exec_root / row.kind / row.name,
            scratch_dir=scratch,
            config=config,
            logger=logger.bind(plugin=driver.qualified_name()),
        )
        try:
            await asyncio.wait_for(driver.probe(row.context), PROBE_TIMEOUT)
        except DriverNotSupported as e:
            row.status, row.reason = "skip", str(e)
        except Exception as e:
            row.status, row.reason = "error", f"probe failed: {type(e).__name__}: {e}"
        logger.log(
            "INFO" if row.status != "error" else "ERROR",
            "{} driver {} ({}): {}{}",
            row.kind,
            row.name,
            row.plugin.name,
            row.status,
            f": {row.reason}" if row.reason else "",
        )

    def component(self, kind: str, name: str) -> ComponentStatus:
        """The status row of driver ``name`` of ``kind`` (after :meth:`probe_all`)."""
        for row in self.components:
            if row.kind == kind and row.name == name:
                return row
        raise KeyError(f"{kind}.{name}")
