"""The daemon's state and start-up: directories, locks, plugins, drivers, events."""

from __future__ import annotations

import asyncio
import errno
import fcntl
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from types import ModuleType
from typing import IO, Any

from loguru import logger

from pydockerd import __version__
from pydockerd.builder.engine import Builder
from pydockerd.containers.execs import ExecService
from pydockerd.containers.service import ContainerService
from pydockerd.errors import ConfigError
from pydockerd.events import EventBus
from pydockerd.images.service import ImageService
from pydockerd.images.transfer import Transfers
from pydockerd.manager import ComponentStatus, PluginManager
from pydockerd.networks.service import NetworkService
from pydockerd.plugin import (
    Driver,
    Event,
    LogDriver,
    NetworkDriver,
    RegistryTransport,
    StorageDriver,
    VolumeDriver,
)
from pydockerd.selection import Selection, select_storage_driver
from pydockerd.settings import DaemonSettings
from pydockerd.supervisor.client import SupervisorClient
from pydockerd.supervisor.server import DriverSetup
from pydockerd.volumes.service import VolumeService

__all__ = ["Daemon"]


def _dns_server(*args: Any, **kwargs: Any) -> Any:
    """A :class:`pydockerd.networks.dns.DnsServer`, imported the first time a network needs
    one: dnspython costs an idle daemon without user-defined networks about 7 MiB."""
    from pydockerd.networks.dns import DnsServer

    return DnsServer(*args, **kwargs)


def _lock(path: Path, what: str) -> IO[str]:
    """Hold an exclusive flock on ``path`` for the daemon's life, with our pid in it."""
    handle = path.open("a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
        handle.seek(0)
        holder = handle.read().strip() or "unknown"
        handle.close()
        if e.errno in (errno.EAGAIN, errno.EACCES):
            raise ConfigError(
                f"another pydockerd (pid {holder}) is using the {what} {path.parent}; "
                "give this daemon its own --data-root and --exec-root"
            ) from None
        raise
    handle.seek(0)
    handle.truncate()
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return handle


class Daemon:
    """Everything the API serves from: settings, plugins, the chosen drivers, the event bus."""

    def __init__(self, settings: DaemonSettings) -> None:
        self.settings = settings
        self.manager = PluginManager(disabled=settings.disable_plugins, trace=settings.trace_hooks)
        self.events = EventBus(settings.event_history, on_publish=self._notify_plugins)
        self.storage: Selection | None = None
        self.storage_driver: StorageDriver | None = None
        self.images: ImageService | None = None
        self.transfers: Transfers | None = None
        """Pulls, pushes and logins; None when no registry transport can be used."""
        self.builder: Builder | None = None
        self.volumes: VolumeService | None = None
        self.networks: NetworkService | None = None
        self.containers: ContainerService | None = None
        self.execs: ExecService | None = None
        self.id = ""
        self.version = __version__
        self.started_at = time.time()
        self._resources = ExitStack()
        self._long_lived: set[asyncio.Task[Any]] = set()

    async def initialize(
        self,
        *,
        validate_only: bool = False,
        extra_plugins: Iterable[tuple[str, ModuleType | str]] = (),
    ) -> None:
        """Take the data-root and exec-root, load plugins, probe drivers, choose storage.

        :param validate_only: touch nothing on disk (``--validate``): probes get a temporary
            scratch directory and no engine ID is created.
        :param extra_plugins: ``(name, module)`` pairs loaded besides the entry points.
        :raises ConfigError: the configuration cannot work; the daemon must not start.
        """
        settings = self.settings
        if validate_only:
            anchor = settings.data_root
            while not anchor.exists():
                anchor = anchor.parent
            scratch = Path(
                self._resources.enter_context(
                    tempfile.TemporaryDirectory(prefix=".pydockerd-validate-", dir=anchor)
                )
            )
        else:
            self._take_roots()
            scratch = settings.data_root / "tmp"
            shutil.rmtree(scratch, ignore_errors=True)
            scratch.mkdir(mode=0o700)
            self.id = self._engine_id()
        self.manager.load_entry_points()
        for name, module in extra_plugins:
            self.manager.load_module(name, module)
        await self.manager.run_registrations()
        await self.manager.probe_all(
            settings.data_root, settings.exec_root, settings.plugins, scratch_dir=scratch
        )
        storage_rows = [c for c in self.manager.components if c.kind == "storage"]
        self.storage = select_storage_driver(storage_rows, settings.storage_driver)
        logger.info("storage driver {} ({})", self.storage.component.name, self.storage.rule)
        component = self.storage.component
        if not validate_only and component.context is not None and component.driver is not None:
            component.context.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            try:
                driver = component.driver(component.context)
            except TypeError as e:  # an abstract method left unimplemented
                raise ConfigError(f"storage driver {component.name!r} cannot be used: {e}") from e
            assert isinstance(driver, StorageDriver)
            self.storage_driver = driver
            # per driver, as moby does: layers of one driver mean nothing to another
            images_root = settings.data_root / "image" / component.name
            self.images = ImageService(images_root, driver, self.emit)
            self._start_containers(driver)
            assert self.containers is not None
            await self.images.collect_garbage()
            self.transfers = self._transfers(self.images)
            self.builder = Builder(self.images, self.containers, self.transfers)
            assert self.networks is not None
            await self.networks.initialize()
            await self.containers.recover()

    def _transfers(self, images: ImageService) -> Transfers | None:
        """Pulls and pushes through the configured registry transport, when it is usable."""
        wanted = self.settings.registries.transport
        for row in self._usable("registry"):
            if row.name == wanted:
                transport = self._instance(row)
                assert isinstance(transport, RegistryTransport)
                return Transfers(images, transport, self.settings.registries)
        logger.warning(
            "registry transport {!r} is not available: pulls and pushes will fail", wanted
        )
        return None

    def _usable(self, kind: str) -> list[ComponentStatus]:
        return [
            row
            for row in self.manager.components
            if row.kind == kind and row.status == "ok" and row.driver and row.context
        ]

    @staticmethod
    def _instance(row: ComponentStatus) -> Driver:
        assert row.driver is not None
        assert row.context is not None
        row.context.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            return row.driver(row.context)
        except TypeError as e:  # an abstract method left unimplemented
            raise ConfigError(f"{row.qualified_name} cannot be used: {e}") from e

    def _start_containers(self, storage: StorageDriver) -> None:
        """The volume, container and exec services, and the supervisor's client."""
        settings = self.settings
        assert self.images is not None
        volume_drivers = {}
        for row in self._usable("volume"):
            driver = self._instance(row)
            assert isinstance(driver, VolumeDriver)
            volume_drivers[row.name] = driver
        self.volumes = VolumeService(settings.data_root / "volumes", volume_drivers, self.emit)
        network_drivers = {}
        for row in self._usable("network"):
            driver = self._instance(row)
            assert isinstance(driver, NetworkDriver)
            network_drivers[row.name] = driver
        self.networks = NetworkService(
            settings.data_root / "networks",
            network_drivers,
            settings.network,
            self.emit,
            dns_server=_dns_server,
        )
        log_drivers = {}
        for row in self._usable("log"):
            driver = self._instance(row)
            assert isinstance(driver, LogDriver)
            log_drivers[row.name] = driver
        setups = {
            row.qualified_name: DriverSetup(
                module=row.plugin.module.partition(":")[0],
                config=row.context.config.model_dump(mode="json"),
                state_dir=str(row.context.state_dir),
                run_dir=str(row.context.run_dir),
                scratch_dir=str(row.context.scratch_dir),
            )
            for row in self._usable("runtime") + self._usable("log")
            if row.context is not None
        }
        runtimes = {row.name for row in self._usable("runtime")}
        if settings.default_runtime not in runtimes:
            logger.warning(
                "runtime {!r} is not usable (see plugin ls): containers cannot start",
                settings.default_runtime,
            )
        if settings.log_driver not in log_drivers:
            logger.warning(
                "log driver {!r} is not usable (usable: {}): containers need --log-driver",
                settings.log_driver,
                ", ".join(sorted(log_drivers)) or "none",
            )
        supervisor = None
        if runtimes:
            supervisor = SupervisorClient(
                settings.exec_root / "supervisor",
                setups,
                idle_timeout=settings.supervisor_idle_timeout,
                on_event=lambda event: self._containers().on_supervisor_event(event),
                on_connect=lambda snapshot: self._containers().reconcile(snapshot),
                on_disconnect=lambda: self._containers().on_supervisor_gone(),
            )
        self.containers = ContainerService(
            settings.data_root / "containers",
            images=self.images,
            storage=storage,
            volumes=self.volumes,
            networks=self.networks,
            log_drivers=log_drivers,
            runtimes=runtimes,
            supervisor=supervisor,
            emit=self.emit,
            cgroup_parent=settings.cgroup_parent,
            default_runtime=settings.default_runtime,
            default_log_driver=settings.log_driver,
            default_stop_timeout=settings.stop_timeout,
        )
        self.execs = ExecService(self.containers)
        self.containers.load()
        self.volumes.load()

    def _containers(self) -> ContainerService:
        assert self.containers is not None
        return self.containers

    def _take_roots(self) -> None:
        for root, mode in ((self.settings.data_root, 0o711), (self.settings.exec_root, 0o700)):
            root.mkdir(parents=True, exist_ok=True, mode=mode)
        self._resources.enter_context(
            _lock(self.settings.data_root / "pydockerd.lock", "data-root")
        )
        self._resources.enter_context(_lock(self.settings.exec_root / "pydockerd.pid", "exec-root"))

    def _engine_id(self) -> str:
        """A stable ID for this engine (``info``'s ``ID``), kept in the data-root."""
        path = self.settings.data_root / "engine-id"
        try:
            return path.read_text().strip()
        except FileNotFoundError:
            engine_id = str(uuid.uuid4())
            tmp = path.with_suffix(".tmp")
            tmp.write_text(engine_id + "\n")
            tmp.replace(path)
            return engine_id

    @contextmanager
    def long_lived(self) -> Iterator[None]:
        """Mark the running request as one that lasts (``wait``, ``attach``, ``logs -f``):
        :meth:`end_long_lived` ends it when the daemon stops, instead of the daemon waiting
        for it."""
        task = asyncio.current_task()
        if task is None:
            yield
            return
        self._long_lived.add(task)
        try:
            yield
        finally:
            self._long_lived.discard(task)

    def end_long_lived(self) -> None:
        for task in self._long_lived:
            task.cancel()

    def emit(self, type_: str, action: str, actor_id: str, **attributes: str) -> Event:
        """Record an event and tell subscribers and ``pydockerd_event`` plugins."""
        event = Event(type=type_, action=action, actor_id=actor_id, attributes=attributes)
        self.events.publish(event)
        return event

    async def _notify_plugins(self, event: Event) -> None:
        await self.manager.notify("pydockerd_event", event=event)

    async def close(self) -> None:
        """End event streams, wait for plugins' pending event calls, release the roots."""
        await self.events.close()
        if self.containers is not None:
            await self.containers.close()
        if self.networks is not None:
            await self.networks.close()
        if self.volumes is not None:
            self.volumes.close()
        if self.transfers is not None:
            await self.transfers.transport.close()
        if self.images is not None:
            self.images.close()
        if self.storage_driver is not None:
            await self.storage_driver.close()
        self._resources.close()
