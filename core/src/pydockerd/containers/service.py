"""The container service: what the Engine API's container endpoints do.

A container's life: ``create`` (configuration merged and checked, a writable layer on the
image's, named and anonymous volumes created, ``container.json`` written) → ``start`` (root
filesystem and volumes mounted, ``/etc`` files written, the spec built, the supervisor makes
the process and lets it run) → the supervisor reports its exit (state recorded, mounts
released, waiters answered, then the restart policy or ``AutoRemove``) → ``remove``.

Containers outlive the daemon: on start-up the daemon reconnects to the supervisor and
reconciles (:meth:`ContainerService.reconcile`): running containers are taken back, exits
that happened meanwhile are processed as if they had just happened, and a container whose
supervisor is gone is recorded as exited (255).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loguru import logger
from pydockerd.api.params import Filters, labels_match, parse_timestamp_ns
from pydockerd.containers.config import (
    MountPoint,
    command_of,
    container_config,
    host_config,
    mount_points,
    parse_signal,
    port_requests,
)
from pydockerd.containers.model import (
    ZERO_TIME,
    Attachment,
    Container,
    State,
    parse_rfc3339,
    rfc3339_nano,
)
from pydockerd.containers.names import random_name, valid_name
from pydockerd.containers.runspec import build_spec, etc_files, resolve_user, user_mounts
from pydockerd.errors import (
    Conflict,
    Forbidden,
    InvalidParameter,
    NotFound,
    NotModified,
    PydockerdError,
    SystemError,
    Unavailable,
)
from pydockerd.fsutil import resolve_in_root
from pydockerd.images.service import ImageService
from pydockerd.networks.service import PREDEFINED, NetworkService
from pydockerd.networks.store import EndpointRecord, NetworkRecord
from pydockerd.plugin import LogContext, LogDriver, StartError, StorageDriver
from pydockerd.supervisor.client import Stream, SupervisorClient
from pydockerd.volumes.service import VolumeService

__all__ = ["CONTAINER_FILTERS", "ContainerService", "start_error_status"]

CONTAINER_FILTERS = (
    "ancestor",
    "before",
    "expose",
    "exited",
    "health",
    "id",
    "is-task",
    "label",
    "name",
    "network",
    "publish",
    "since",
    "status",
    "volume",
)
_STATUSES = ("created", "restarting", "running", "removing", "paused", "exited", "dead")
_RESTART_BACKOFF_START = 0.1
_RESTART_BACKOFF_MAX = 60.0
_RESTART_RESET_AFTER = 10.0
_LOST_EXIT_CODE = 255
_CONTAINER_ID = re.compile(r"[0-9a-f]{64}")


def start_error_status(message: str) -> int:
    """The exit code Docker records for a container whose program could not start."""
    if "executable file not found" in message or "no such file or directory" in message:
        return 127
    if "permission denied" in message or "is a directory" in message:
        return 126
    return 128


@dataclass
class _Live:
    """What the daemon keeps in memory about a container while it runs."""

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    stopped: asyncio.Event = field(default_factory=asyncio.Event)
    """Set whenever the container is not running (ends ``logs -f``; ``stop`` waits on it)."""
    rootfs: Path | None = None
    starting: bool = False
    early_exit: dict[str, Any] | None = None
    exit_waiters: list[asyncio.Future[int]] = field(default_factory=list)
    removed_waiters: list[asyncio.Future[int]] = field(default_factory=list)
    pending_attach: list[tuple[asyncio.Future[Stream], dict[str, bool]]] = field(
        default_factory=list
    )
    restart_task: asyncio.Task[None] | None = None
    started_at: float = 0.0
    backoff: float = 0.0

    def __post_init__(self) -> None:
        self.stopped.set()


class ContainerService:
    """Containers of one daemon, kept under ``root`` (``<data-root>/containers``)."""

    def __init__(
        self,
        root: Path,
        *,
        images: ImageService,
        storage: StorageDriver,
        volumes: VolumeService,
        networks: NetworkService,
        log_drivers: dict[str, LogDriver],
        runtimes: set[str],
        supervisor: SupervisorClient | None,
        emit: Callable[..., object],
        cgroup_parent: str,
        default_runtime: str,
        default_log_driver: str,
        default_stop_timeout: int = 10,
    ) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True, mode=0o710)
        self.images = images
        self.storage = storage
        self.volumes = volumes
        self.networks = networks
        self.log_drivers = log_drivers
        self.runtimes = runtimes
        self._supervisor = supervisor
        self.emit = emit
        self.cgroup_parent = cgroup_parent.strip("/")
        self.default_runtime = default_runtime
        self.default_log_driver = default_log_driver
        self.default_stop_timeout = default_stop_timeout
        self.containers: dict[str, Container] = {}
        self.names: dict[str, str] = {}
        self.live: dict[str, _Live] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closing = False
        self.on_exec_event: Callable[[dict[str, Any]], None] = lambda event: None
        """Where the supervisor's exec events go; set by the exec service."""
        self.on_removed: Callable[[str], None] = lambda container_id: None
        """Called with the ID of each container removed (by hand or ``--rm``)."""
        images.container_users = self.image_users
        images.layers_in_use_by_containers = lambda: set(self.containers)
        images.chains_in_use_by_containers = self._image_chains
        volumes.users = self.volume_users
        networks.names_of = self._dns_names

    @property
    def supervisor(self) -> SupervisorClient:
        if self._supervisor is None:
            raise Unavailable("no container runtime is available (see pydocker plugin ls)")
        return self._supervisor

    # -- bookkeeping --------------------------------------------------------------------

    def load(self) -> None:
        """Read every container of the data-root; drop what a crash left half-created."""
        for directory in sorted(self.root.iterdir()):
            file = directory / "container.json"
            if not _CONTAINER_ID.fullmatch(directory.name) or not file.is_file():
                logger.info("removing {}: a container half created or half removed", directory)
                shutil.rmtree(directory, ignore_errors=True)
                continue
            try:
                container = Container.load(file)
            except (ValueError, KeyError, TypeError) as e:
                logger.error("cannot read {}: {}; the container is skipped", file, e)
                continue
            self._register(container)

    def _register(self, container: Container) -> None:
        self.containers[container.id] = container
        self.names[container.name] = container.id
        self.live.setdefault(container.id, _Live())

    def image_users(self, image_id: str) -> list[tuple[str, bool]]:
        return [(c.id, c.state.running) for c in self.containers.values() if c.image_id == image_id]

    def volume_users(self, name: str) -> list[str]:
        return [
            c.id
            for c in self.containers.values()
            if any(m.type == "volume" and m.name == name for m in c.mounts)
        ]

    def _image_chains(self) -> set[str]:
        return {c.image_layer for c in self.containers.values() if c.image_layer}

    def get(self, name: str) -> Container:
        """The container ``name`` refers to: a name, a full ID or an unambiguous ID prefix.

        :raises NotFound: Docker's ``No such container: <name>``.
        """
        bare = name.removeprefix("/")
        if bare in self.containers:
            return self.containers[bare]
        if bare in self.names:
            return self.containers[self.names[bare]]
        if bare:
            matches = [cid for cid in self.containers if cid.startswith(bare)]
            if len(matches) == 1:
                return self.containers[matches[0]]
            if len(matches) > 1:
                raise InvalidParameter(f"multiple containers found with provided prefix: {name}")
        raise NotFound(f"No such container: {name}")

    def _spawn(self, coroutine: Any) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # -- create ---------------------------------------------------------------------------

    async def create(self, body: dict[str, Any], name: str | None) -> tuple[Container, list[str]]:
        """``POST /containers/create``: the container and the warnings for the client."""
        if not isinstance(body, dict) or not body.get("Image"):
            raise InvalidParameter("config cannot be empty in order to create a container")
        image = self.images.resolve(str(body["Image"]))
        image_config = self.images.config(image.id).get("config") or {}
        config = container_config(body, image_config)
        host = host_config(body.get("HostConfig"))
        path, args = command_of(config)
        mounts = mount_points(config, host, "local")
        log_driver = host["LogConfig"]["Type"] or self.default_log_driver
        if log_driver not in self.log_drivers:
            raise InvalidParameter(f"logger: no log driver named '{log_driver}' is registered")
        log_options = {str(k): str(v) for k, v in host["LogConfig"]["Config"].items()}
        self.log_drivers[log_driver].validate_options(log_options)
        runtime = host.get("Runtime") or self.default_runtime
        if runtime not in self.runtimes:
            raise InvalidParameter(f"unknown or invalid runtime name: {runtime}")
        networking = self._networking_config(host, body.get("NetworkingConfig") or {})
        port_requests(config, host)  # checks them
        if name:
            name = self._free_name(name)
        else:
            name = random_name()
            while name in self.names:
                name = random_name()
        container_id = secrets.token_hex(32)
        if not config["Hostname"]:
            config["Hostname"] = container_id[:12]
        directory = self.root / container_id
        directory.mkdir(mode=0o710)
        self.names[name] = container_id  # taken now: a concurrent create must not get it
        created_volumes: list[str] = []
        try:
            top = self.images.layers_of(image)
            await self.storage.create(container_id, top[-1].cache_id if top else None)
            mounts = await self._create_volumes(mounts, created_volumes)
            container = Container(
                id=container_id,
                name=name,
                created=rfc3339_nano(time.time_ns()),
                image_id=image.id,
                image=str(body["Image"]),
                config=config,
                host_config=host,
                path=path,
                args=args,
                directory=directory,
                storage_driver=self.storage.name,
                runtime=runtime,
                log_driver=log_driver,
                log_options=log_options,
                image_layer=image.top_layer or "",
                mounts=mounts,
                networking_config=networking,
            )
            container.save()
        except BaseException:
            self.names.pop(name, None)
            await self.storage.remove(container_id)
            for volume in created_volumes:
                with contextlib.suppress(PydockerdError):
                    await self.volumes.remove(volume)
            shutil.rmtree(directory, ignore_errors=True)
            raise
        self._register(container)
        self.emit("container", "create", container.id, **container.event_attributes())
        return container, []

    def _free_name(self, name: str) -> str:
        """``name`` checked, and not taken by another container (Docker's 409 if it is)."""
        name = valid_name(name)
        if name in self.names:
            raise Conflict(
                f'Conflict. The container name "/{name}" is already in use by container '
                f'"{self.names[name]}". You have to remove (or rename) that container to be '
                "able to reuse that name."
            )
        return name

    def _networking_config(self, host: dict[str, Any], requested: dict[str, Any]) -> dict[str, Any]:
        """The networks a new container is to be on, by name, the primary one
        (``NetworkMode``) first, each network checked.

        Not 404 for a missing network: the CLI takes any 404 of create for a missing image
        and pulls it.
        """
        mode = str(host["NetworkMode"])
        asked = dict(requested.get("EndpointsConfig") or {})
        if "default" in asked:  # what the CLI sends for the network of NetworkMode "default"
            asked.setdefault(mode, asked.pop("default"))
        if mode.startswith("container:"):
            try:
                self.get(mode.split(":", 1)[1])
            except NotFound as e:
                raise InvalidParameter(str(e)) from None
            if asked:
                raise InvalidParameter(
                    "conflicting options: container type network can't be used with other networks"
                )
            return {"EndpointsConfig": {}}
        endpoints: dict[str, Any] = {}
        for name in [mode, *(n for n in asked if n != mode)]:
            try:
                network = self.networks.get(name)
            except NotFound as e:
                raise InvalidParameter(str(e)) from None
            settings = dict(asked.get(name) or {})
            if settings.get("Aliases") and network.name == "bridge":
                raise InvalidParameter(
                    "network-scoped alias is supported only for containers in user defined networks"
                )
            if network.name in ("host", "none") and len(asked.keys() - {name}) > 0:
                raise InvalidParameter(
                    f"container cannot be disconnected from {network.name} network or "
                    "connected to another network"
                )
            endpoints[network.name] = settings
        if mode not in PREDEFINED:
            host["NetworkMode"] = self.networks.get(mode).name
        return {"EndpointsConfig": endpoints}

    async def _create_volumes(
        self, mounts: list[MountPoint], created: list[str]
    ) -> list[MountPoint]:
        """Give anonymous volumes their names and create the volumes that do not exist."""
        result = []
        for point in mounts:
            if point.type != "volume":
                result.append(point)
                continue
            existed = bool(point.name) and self.volumes.find(point.name) is not None
            try:
                volume = await self.volumes.create(
                    point.name or None,
                    point.driver,
                    point.driver_options,
                    point.labels,
                    anonymous=point.anonymous,
                )
            except NotFound as e:  # a missing driver: 404 would make the CLI pull the image
                raise InvalidParameter(str(e)) from None
            if not existed:
                created.append(volume.name)
            result.append(dataclasses.replace(point, name=volume.name, driver=volume.driver))
        return result

    # -- start --------------------------------------------------------------------------

    async def start(self, container: Container) -> None:
        """``POST /containers/{id}/start``.

        :raises NotModified: it is running already.
        :raises Conflict: it is paused, or being removed.
        :raises InvalidParameter: its program cannot be started (Docker's 400 with the
            runtime's words; the container then shows exit code 127 or 126).
        """
        live = self.live[container.id]
        async with live.lock:
            if container.state.status in ("running", "restarting"):
                raise NotModified("container already started")
            if container.state.status == "paused":
                raise Conflict("cannot start a paused container, try unpause instead")
            if container.state.status in ("removing", "dead"):
                raise Conflict("container is marked for removal and cannot be started")
            container.manually_stopped = False
            await self._start(container)

    async def _start(self, container: Container) -> None:
        """Start ``container`` (its lock held)."""
        live = self.live[container.id]
        live.starting, live.early_exit = True, None
        try:
            await self._start_process(container)
        except StartError as e:
            await self._start_failed(container, str(e))
            raise InvalidParameter(f"failed to start container {container.id[:12]}: {e}") from None
        except BaseException as e:
            await self._start_failed(container, str(e) or type(e).__name__)
            raise
        finally:
            live.starting = False
        live.started_at = time.monotonic()
        live.stopped.clear()
        self.emit("container", "start", container.id, **container.event_attributes())
        early_exit = self.live[container.id].early_exit  # set by an exit during the start
        if early_exit is not None:
            await self._exited(container, early_exit)

    async def _start_process(self, container: Container) -> None:
        live = self.live[container.id]
        rootfs = await self._mount(container)
        sources = {}
        for point in container.mounts:
            if point.type == "volume":
                path = await self.volumes.mount(point.name, container.id)
                sources[point.destination] = str(path)
                if not point.nocopy:
                    await asyncio.to_thread(_copy_up, rootfs, point.destination, path)
            elif point.type == "bind" and point.create_source:
                await asyncio.to_thread(Path(point.source).mkdir, parents=True, exist_ok=True)
        config, host = container.config, container.host_config
        user = await asyncio.to_thread(
            resolve_user, rootfs, str(config.get("User") or ""), list(host.get("GroupAdd") or [])
        )
        await self._allocate_endpoints(container)
        await self._write_etc_files(container)
        spec = build_spec(
            container_id=container.id,
            root=rootfs,
            config=config,
            host=host,
            directory=container.directory,
            mounts=user_mounts(container.mounts, sources),
            namespaces=self._namespaces(container),
            cgroup_path=f"{self.cgroup_parent}/{container.id}",
            user=user,
        )
        container.exit_file.unlink(missing_ok=True)
        with contextlib.suppress(PydockerdError):  # an exit record of the last run
            await self.supervisor.call("forget", id=container.id)
        log = self.log_context(container)
        result = await self.supervisor.call(
            "create",
            id=container.id,
            runtime=container.runtime,
            spec=spec.to_dict(),
            open_stdin=bool(config.get("OpenStdin")),
            stdin_once=bool(config.get("StdinOnce")),
            log={  # "none" keeps nothing: the supervisor need not even split lines
                "driver": container.log_driver if container.log_driver != "none" else "",
                "context": {**dataclasses.asdict(log), "log_dir": str(log.log_dir)},
            },
            exit_file=str(container.exit_file),
        )
        netns = Path(f"/proc/{int(result['pid'])}/ns/net")
        for endpoint in self.networks.endpoints(container_id=container.id):
            await self.networks.join(endpoint, netns)
        await self._publish_ports(container)
        pending, live.pending_attach = live.pending_attach, []
        for future, streams in pending:
            if future.done():
                continue
            try:
                future.set_result(
                    await self.supervisor.stream("attach", id=container.id, **streams)
                )
            except PydockerdError as e:
                future.set_exception(e)
        started = await self.supervisor.call("start", id=container.id)
        container.state = State(
            status="running",
            pid=int(result["pid"]),
            started_at=rfc3339_nano(int(started["started_at"])),
        )
        container.save()

    async def _start_failed(self, container: Container, message: str) -> None:
        """A start that did not get the program running: Docker's exit code and error."""
        with contextlib.suppress(PydockerdError):
            await self.supervisor.call("kill", id=container.id, signal=signal.SIGKILL)
        with contextlib.suppress(PydockerdError):
            await self.supervisor.call("forget", id=container.id)
        await self._release(container)
        state = container.state
        container.state = State(
            status="exited" if state.started_at != ZERO_TIME else "created",
            exit_code=start_error_status(message),
            error=message,
            started_at=state.started_at,
            finished_at=state.finished_at,
        )
        container.save()
        live = self.live[container.id]
        for future, _ in live.pending_attach:
            if not future.done():
                future.set_exception(Conflict("the container could not be started"))
        live.pending_attach.clear()
        if live.early_exit is not None:  # the kill's exit came while starting: drop its record
            live.early_exit = None
            await self._forget(container.id)
        if container.host_config.get("AutoRemove"):
            self._spawn(self._auto_remove(container, container.state.exit_code))

    def _networks_of(self, container: Container) -> list[tuple[str, dict[str, Any]]]:
        """The networks the container is to be on (name, endpoint settings), primary first."""
        return list((container.networking_config.get("EndpointsConfig") or {}).items())

    async def _allocate_endpoints(self, container: Container) -> None:
        """An address on each of the container's networks (``--ip`` where asked), recorded
        before the container exists, so that nobody else gets it."""
        try:
            for name, settings in self._networks_of(container):
                await self._allocate_endpoint(container, name, settings)
        except BaseException:
            for endpoint in self.networks.endpoints(container_id=container.id):
                await self.networks.release(endpoint, None)
            raise

    async def _allocate_endpoint(
        self, container: Container, name: str, settings: dict[str, Any]
    ) -> EndpointRecord | None:
        try:
            network = self.networks.get(name)
        except NotFound as e:
            raise InvalidParameter(str(e)) from None
        used = {e.interface for e in self.networks.endpoints(container_id=container.id)}
        interface = next(f"eth{i}" for i in range(len(used) + 1) if f"eth{i}" not in used)
        aliases = list(settings.get("Aliases") or [])
        if network.name not in PREDEFINED:
            aliases.append(container.id[:12])  # Docker's: the short ID resolves too
        return await self.networks.allocate(
            network,
            container.id,
            interface,
            aliases=aliases,
            address=(settings.get("IPAMConfig") or {}).get("IPv4Address") or None,
        )

    async def _write_etc_files(self, container: Container) -> None:
        """``hosts`` (with the container's own addresses), ``hostname`` and ``resolv.conf``
        (the network's DNS server on a user-defined network)."""
        config, host = container.config, container.host_config
        endpoints = self.networks.endpoints(container_id=container.id)
        dns = list(host.get("Dns") or [])
        if not dns:
            for endpoint in endpoints:
                server = self.networks.dns_address(self.networks.get(endpoint.network_id))
                if server:
                    dns = [server]
                    break
        await asyncio.to_thread(
            etc_files,
            container.directory,
            str(config.get("Hostname") or ""),
            own_addresses=[e.address.split("/")[0] for e in endpoints],
            extra_hosts=list(host.get("ExtraHosts") or []),
            dns=dns,
            dns_search=list(host.get("DnsSearch") or []),
            dns_options=list(host.get("DnsOptions") or []),
            host_network=host.get("NetworkMode") == "host",
        )

    async def _publish_ports(self, container: Container) -> None:
        """Proxies from the host ports to the container's address on its first network (they
        live in the supervisor); a range takes its first free port, as Docker's."""
        endpoints = self.networks.endpoints(container_id=container.id)
        requests = port_requests(container.config, container.host_config)
        if not requests or not endpoints:
            container.ports = []
            return
        target = endpoints[0].address.split("/")[0]
        published: list[dict[str, Any]] = []
        for request in requests:
            error: PydockerdError | None = None
            for candidate in request.host_ports:
                mapping = {
                    "host_ip": request.host_ip,
                    "host_port": candidate,
                    "protocol": request.protocol,
                    "target_ip": target,
                    "target_port": request.private_port,
                }
                try:
                    result = await self.supervisor.call(
                        "publish", id=container.id, mappings=[mapping]
                    )
                except Conflict as e:
                    error = e
                    continue
                published.append(
                    {
                        "HostIp": request.host_ip,
                        "HostPort": int(result["ports"][0]),
                        "PrivatePort": request.private_port,
                        "Type": request.protocol,
                    }
                )
                break
            else:
                raise Conflict(
                    "driver failed programming external connectivity on endpoint "
                    f"{container.name} ({endpoints[0].id}): {error}"
                )
        container.ports = published

    def attachments(self, container: Container) -> list[Attachment]:
        """The container's networks as inspect shows them."""
        return self._attachments(
            container,
            self.networks.store.networks(),
            self.networks.endpoints(container_id=container.id),
        )

    def attachments_of(self, containers: Sequence[Container]) -> list[list[Attachment]]:
        """:meth:`attachments` of each of ``containers``, the networks and endpoints read
        once for all (``ps`` of 500 containers read and decoded every network 500 times)."""
        networks = self.networks.store.networks()
        endpoints: dict[str, list[EndpointRecord]] = {}
        for endpoint in self.networks.endpoints():
            endpoints.setdefault(endpoint.container_id, []).append(endpoint)
        return [self._attachments(c, networks, endpoints.get(c.id, [])) for c in containers]

    def _attachments(
        self,
        container: Container,
        networks: Sequence[NetworkRecord],
        endpoint_records: Sequence[EndpointRecord],
    ) -> list[Attachment]:
        endpoints = {e.network_id: e for e in endpoint_records}
        found = []
        for name, settings in self._networks_of(container):
            try:
                network = self.networks.get(name, networks)
            except NotFound:
                found.append(Attachment(network=name, network_id=""))
                continue
            endpoint = endpoints.get(network.id)
            requested = (settings.get("IPAMConfig") or {}).get("IPv4Address") or ""
            user_defined = network.name not in PREDEFINED
            found.append(
                Attachment(
                    network=network.name,
                    network_id=network.id,
                    gateway=network.gateway,
                    endpoint_id=endpoint.id if endpoint else "",
                    address=endpoint.address if endpoint else "",
                    mac=endpoint.mac if endpoint else "",
                    aliases=tuple(settings.get("Aliases") or ()),
                    requested_address=requested,
                    dns_names=(*self._dns_names(container.id), *endpoint.aliases)
                    if endpoint and user_defined
                    else (),
                )
            )
        return found

    def _dns_names(self, container_id: str) -> list[str]:
        container = self.containers.get(container_id)
        if container is None:
            return []
        return list(dict.fromkeys([container.name, str(container.config.get("Hostname") or "")]))

    def network_users(self, network_id: str) -> bool:
        """Whether a container is on, or asks for, the network."""
        network = self.networks.get(network_id)
        return any(
            network.name in (c.networking_config.get("EndpointsConfig") or {})
            for c in self.containers.values()
        )

    async def connect(
        self, container: Container, network_name: str, settings: dict[str, Any]
    ) -> None:
        """``POST /networks/{id}/connect``: on its next start, and now if it runs.

        :raises Forbidden: it is on the network already, or shares another namespace.
        """
        network = self.networks.get(network_name)
        async with self.live[container.id].lock:
            wanted = container.networking_config.setdefault("EndpointsConfig", {})
            mode = str(container.host_config.get("NetworkMode") or "")
            if mode in ("host", "none") or mode.startswith("container:"):
                raise Forbidden(
                    f"container sharing network namespace with another container or host "
                    f"cannot be connected to any other network (it uses {mode!r})"
                )
            if network.name in ("host", "none"):
                raise Forbidden(
                    f"container cannot be disconnected from {mode} network or connected to "
                    f"{network.name} network"
                )
            if network.name in wanted:
                raise Forbidden(
                    f"endpoint with name {container.name} already exists in network {network.name}"
                )
            if settings.get("Aliases") and network.name == "bridge":
                raise InvalidParameter(
                    "network-scoped alias is supported only for containers in user defined networks"
                )
            if container.state.has_process:
                endpoint = await self._allocate_endpoint(container, network.name, settings)
                if endpoint is not None:
                    await self.networks.join(endpoint, Path(f"/proc/{container.state.pid}/ns/net"))
                    await self._write_etc_files(container)
            wanted[network.name] = settings
            container.save()

    async def disconnect(self, container: Container, network_name: str) -> None:
        """``POST /networks/{id}/disconnect``.

        :raises Forbidden: it is not on the network (Docker's message).
        """
        network = self.networks.get(network_name)
        async with self.live[container.id].lock:
            wanted = container.networking_config.setdefault("EndpointsConfig", {})
            if network.name not in wanted:
                raise Forbidden(
                    f"container {container.id} is not connected to network {network.name}"
                )
            if network.name in ("host", "none"):
                raise Forbidden(f"container cannot be disconnected from {network.name} network")
            running = container.state.has_process
            for endpoint in self.networks.endpoints(
                container_id=container.id, network_id=network.id
            ):
                netns = Path(f"/proc/{container.state.pid}/ns/net") if running else None
                await self.networks.release(endpoint, netns)
            del wanted[network.name]
            container.save()
            if running:
                await self._write_etc_files(container)

    def _namespaces(self, container: Container) -> dict[str, str]:
        # a cgroup namespace of its own: /sys/fs/cgroup shows the container's cgroup as root
        namespaces = {"pid": "", "mount": "", "uts": "", "ipc": "", "network": "", "cgroup": ""}
        mode = str(container.host_config.get("NetworkMode") or "bridge")
        if mode == "host":
            del namespaces["network"], namespaces["uts"]
        elif mode.startswith("container:"):
            other = self.get(mode.split(":", 1)[1])
            if not other.state.has_process:
                raise Conflict(f"cannot join network of a non running container: {other.id}")
            namespaces["network"] = f"/proc/{other.state.pid}/ns/net"
        return namespaces

    async def _mount(self, container: Container) -> Path:
        live = self.live[container.id]
        if live.rootfs is None:
            live.rootfs = await self.storage.mount(container.id)
        return live.rootfs

    async def _release(self, container: Container) -> None:
        """Undo what a start made: endpoints (the container's namespace is gone, or about
        to go), volumes, then the root filesystem."""
        live = self.live[container.id]

        async def endpoints() -> None:
            for endpoint in self.networks.endpoints(container_id=container.id):
                await self.networks.release(endpoint, None)

        async def filesystems() -> None:
            for point in container.mounts:
                if point.type == "volume":
                    with contextlib.suppress(PydockerdError):
                        await self.volumes.unmount(point.name, container.id)
            if live.rootfs is not None:
                live.rootfs = None
                try:
                    await self.storage.unmount(container.id)
                except PydockerdError as e:
                    logger.warning(
                        "container {}: cannot unmount its root: {}", container.id[:12], e
                    )

        # Independent: the network driver's leave (a netlink exchange or two) goes on while
        # the mounts are undone, and both finish before this returns, whatever fails.
        results = await asyncio.gather(endpoints(), filesystems(), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result

    def log_context(self, container: Container) -> LogContext:
        return LogContext(
            container_id=container.id,
            container_name=container.name,
            image_name=container.image,
            log_dir=container.directory,
            options=container.log_options,
            labels=container.labels,
            env=dict(item.split("=", 1) for item in container.config.get("Env") or []),
            image_id=container.image_id,
        )

    # -- exits --------------------------------------------------------------------------

    def on_supervisor_event(self, event: dict[str, Any]) -> None:
        """An event from the supervisor (its reader task): exits are processed in tasks."""
        if event.get("event") != "exit":
            self.on_exec_event(event)
            return
        container = self.containers.get(str(event.get("id")))
        if container is None:
            self._spawn(self._forget(str(event.get("id"))))
            return
        live = self.live[container.id]
        if live.starting:
            live.early_exit = event
            return
        self._spawn(self._exited(container, event))

    async def _forget(self, container_id: str) -> None:
        with contextlib.suppress(PydockerdError):
            await self.supervisor.call("forget", id=container_id)

    async def _exited(self, container: Container, event: dict[str, Any]) -> None:
        """The container's first process ended: record it, release, answer, then restart or
        remove it as its configuration says."""
        if not container.state.has_process:
            await self._forget(container.id)
            return
        live = self.live[container.id]
        code = int(event.get("exit_code") or 0)
        finished = int(event.get("finished_at") or time.time_ns())
        oom = bool(event.get("oom_killed"))
        container.ports = []
        container.state = State(
            status="exited",
            exit_code=code,
            error=str(event.get("error") or ""),
            started_at=container.state.started_at,
            finished_at=rfc3339_nano(finished),
            oom_killed=oom,
        )
        container.save()
        await self._release(container)
        await self._forget(container.id)
        if oom:
            self.emit("container", "oom", container.id, **container.event_attributes())
        self.emit(
            "container", "die", container.id, **container.event_attributes(exitCode=str(code))
        )
        live.stopped.set()
        waiters, live.exit_waiters = live.exit_waiters, []
        for future in waiters:
            if not future.done():
                future.set_result(code)
        if self._closing:
            return
        if container.host_config.get("AutoRemove"):
            self._spawn(self._auto_remove(container, code))
            return
        policy = container.restart_policy
        if policy.restarts_after(code, container.restart_count, container.manually_stopped):
            ran = time.monotonic() - live.started_at
            live.backoff = (
                _RESTART_BACKOFF_START
                if ran >= _RESTART_RESET_AFTER or not live.backoff
                else min(live.backoff * 2, _RESTART_BACKOFF_MAX)
            )
            container.state.status = "restarting"
            container.save()
            live.restart_task = self._spawn(self._restart_later(container, live.backoff))

    async def _restart_later(self, container: Container, delay: float) -> None:
        live = self.live[container.id]
        await asyncio.sleep(delay)
        async with live.lock:
            if container.id not in self.containers or container.state.status != "restarting":
                return
            container.restart_count += 1
            container.state.status = "exited"
            try:
                await self._start(container)
            except PydockerdError as e:
                logger.warning("container {}: restart failed: {}", container.id[:12], e)
            finally:
                live.restart_task = None

    async def _auto_remove(self, container: Container, code: int) -> None:
        try:
            await self.remove(container, force=True, volumes=True, exit_code=code)
        except NotFound:
            pass
        except PydockerdError as e:
            logger.error("container {}: automatic removal failed: {}", container.id[:12], e)

    # -- reconciliation with the supervisor ------------------------------------------------

    async def reconcile(self, snapshot: list[dict[str, Any]]) -> None:
        """Match the supervisor's containers with ours (``on_connect`` of the client)."""
        held = {record["id"]: record for record in snapshot}
        for container in list(self.containers.values()):
            record = held.pop(container.id, None)
            status = container.state.status
            if not container.state.running:
                if record is not None:  # made by a start the daemon did not live to finish
                    await self._drop(record)
                continue
            live = self.live[container.id]
            if record is not None and record["state"] != "exited":
                if live.rootfs is None:  # a new daemon: take back the mounts it holds
                    live.rootfs = await self.storage.mount(container.id)
                    for point in container.mounts:
                        if point.type == "volume":
                            await self.volumes.mount(point.name, container.id)
                live.stopped.clear()
                live.started_at = time.monotonic()
                continue
            if record is not None:
                event = record
            else:
                event = _exit_file(container.exit_file) or {
                    "exit_code": _LOST_EXIT_CODE,
                    "error": "the container's supervisor ended, and the container with it",
                }
                with contextlib.suppress(PydockerdError):
                    await self.supervisor.call_now(
                        "cleanup", id=container.id, runtime=container.runtime
                    )
            if status == "restarting":
                live.restart_task = self._spawn(self._restart_later(container, 0))
                continue
            self._spawn(self._exited(container, event))
        for orphan in held.values():  # nobody can see it: end it
            logger.warning("supervisor holds unknown container {}; killing it", orphan["id"])
            await self._drop(orphan)

    async def _drop(self, record: dict[str, Any]) -> None:
        """End and forget a process the supervisor holds for no container we know."""
        with contextlib.suppress(PydockerdError):
            if record["state"] != "exited":
                await self.supervisor.call_now("kill", id=record["id"], signal=9, all=True)
            await self.supervisor.call_now("forget", id=record["id"])

    def on_supervisor_gone(self) -> None:
        """The supervisor's connection ended: if it held running containers, connect to a new
        one at once, so that reconciliation records them as exited (they died with it)."""
        if self._closing or self._supervisor is None:
            return
        if any(c.state.has_process for c in self.containers.values()):
            logger.error("the supervisor is gone; its containers died with it")
            self._spawn(self._reconnect())

    async def _reconnect(self) -> None:
        try:
            await self.supervisor.ensure()
        except PydockerdError as e:
            logger.error("cannot start a new supervisor: {}", e)

    async def recover(self) -> None:
        """At start-up: reconnect to running containers, and start those Docker starts when
        its daemon starts (``always``; ``unless-stopped`` unless stopped by hand)."""
        alive = [c for c in self.containers.values() if c.state.running]
        to_start = [
            c
            for c in self.containers.values()
            if c.state.status == "exited"
            and (
                c.restart_policy.name == "always"
                or (c.restart_policy.name == "unless-stopped" and not c.manually_stopped)
            )
        ]
        if (alive or to_start) and self._supervisor is not None:
            await self.supervisor.ensure()
        for container in to_start:
            try:
                async with self.live[container.id].lock:
                    container.manually_stopped = False
                    await self._start(container)
            except PydockerdError as e:
                logger.warning("container {}: start at boot failed: {}", container.id[:12], e)

    # -- stop, kill, restart, pause -------------------------------------------------------------

    def _stop_timeout(self, container: Container, grace: int | None) -> int:
        if grace is not None:
            return grace
        configured = container.config.get("StopTimeout")
        return self.default_stop_timeout if configured is None else int(configured)

    async def stop(
        self, container: Container, grace: int | None = None, sig: str | None = None
    ) -> None:
        """``POST /containers/{id}/stop``: the stop signal, then SIGKILL after ``grace``
        seconds (the container's ``StopTimeout``, or the daemon's default, when ``None``).

        :raises NotModified: it is not running.
        """
        live = self.live[container.id]
        async with live.lock:
            await self._stop(container, grace, sig, manual=True)

    async def _stop(
        self, container: Container, grace: int | None, sig: str | None, *, manual: bool
    ) -> None:
        live = self.live[container.id]
        if manual:
            container.manually_stopped = True
            container.save()
        if container.state.status == "restarting" and live.restart_task is not None:
            live.restart_task.cancel()
            live.restart_task = None
            container.state.status = "exited"
            container.save()
            return
        if not container.state.has_process:
            raise NotModified("container already stopped")
        number = parse_signal(sig or container.config.get("StopSignal") or "SIGTERM")
        wait = self._stop_timeout(container, grace)
        if container.state.status == "paused":
            await self.supervisor.call("resume", id=container.id)
            container.state.status = "running"
        await self._signal(container, number)
        if wait >= 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(live.stopped.wait(), wait)
        if not live.stopped.is_set():
            await self._signal(container, signal.SIGKILL, all_processes=True)
            await live.stopped.wait()
        self.emit("container", "stop", container.id, **container.event_attributes())

    async def _signal(
        self, container: Container, number: int, *, all_processes: bool = False
    ) -> None:
        self.emit(
            "container",
            "kill",
            container.id,
            **container.event_attributes(signal=str(number)),
        )
        with contextlib.suppress(Conflict):  # it exited meanwhile
            await self.supervisor.call("kill", id=container.id, signal=number, all=all_processes)

    async def kill(self, container: Container, sig: str | None) -> None:
        """``POST /containers/{id}/kill``.

        :raises Conflict: it is not running (Docker's message).
        """
        number = parse_signal(sig or "SIGKILL")
        if container.state.status == "paused":
            raise Conflict(
                f"Cannot kill container: {container.name}: Container {container.id} is paused. "
                "Unpause the container before stopping or killing"
            )
        if container.state.status != "running":
            raise Conflict(
                f"Cannot kill container: {container.name}: Container {container.id} is not running"
            )
        await self._signal(container, number, all_processes=number == signal.SIGKILL)

    async def restart(
        self, container: Container, grace: int | None = None, sig: str | None = None
    ) -> None:
        live = self.live[container.id]
        async with live.lock:
            with contextlib.suppress(NotModified):
                await self._stop(container, grace, sig, manual=False)
            container.manually_stopped = False
            if container.state.status == "restarting":
                container.state.status = "exited"
            await self._start(container)
        self.emit("container", "restart", container.id, **container.event_attributes())

    async def pause(self, container: Container) -> None:
        async with self.live[container.id].lock:
            if container.state.status == "paused":
                raise Conflict(f"Container {container.id} is already paused")
            if container.state.status != "running":
                raise Conflict(f"Container {container.id} is not running")
            await self.supervisor.call("pause", id=container.id)
            container.state.status = "paused"
            container.save()
        self.emit("container", "pause", container.id, **container.event_attributes())

    async def unpause(self, container: Container) -> None:
        async with self.live[container.id].lock:
            if container.state.status != "paused":
                raise Conflict(f"Container {container.id} is not paused")
            await self.supervisor.call("resume", id=container.id)
            container.state.status = "running"
            container.save()
        self.emit("container", "unpause", container.id, **container.event_attributes())

    # -- remove, rename -----------------------------------------------------------------

    async def remove(
        self,
        container: Container,
        *,
        force: bool,
        volumes: bool,
        exit_code: int | None = None,
    ) -> None:
        """``DELETE /containers/{id}``.

        :raises Conflict: it is running and ``force`` is not given (Docker's message).
        """
        live = self.live[container.id]
        async with live.lock:
            if container.id not in self.containers:
                raise NotFound(f"No such container: {container.id}")
            if container.state.running:
                if not force:
                    raise Conflict(
                        f'cannot remove container "/{container.name}": container is running: '
                        "stop the container before removing or force remove"
                    )
                if container.state.status == "restarting" and live.restart_task is not None:
                    live.restart_task.cancel()
                    container.state.status = "exited"
                else:
                    if container.state.status == "paused":  # a frozen process cannot die
                        await self.supervisor.call("resume", id=container.id)
                        container.state.status = "running"
                    await self._signal(container, signal.SIGKILL, all_processes=True)
                    await live.stopped.wait()
            container.state.status = "removing"
            await self._release(container)
            # gone for good from here on, even if the daemon dies: a directory not named by
            # an ID is dropped at start-up, and its storage layer collected
            doomed = container.directory.with_name(f".{container.id}.removing")
            container.directory.rename(doomed)
            del self.containers[container.id]
            self.names.pop(container.name, None)
            await self.storage.remove(container.id)
            # the renamed directory (config, logs) is no state any more: it is deleted in a
            # thread after the removal is answered, or at the next start-up if the daemon dies
            self._spawn(asyncio.to_thread(shutil.rmtree, doomed, ignore_errors=True))
            for point in container.mounts:
                if point.type == "volume" and point.anonymous and volumes:
                    with contextlib.suppress(PydockerdError):
                        await self.volumes.remove(point.name)
        self.live.pop(container.id, None)
        self.on_removed(container.id)
        self.emit("container", "destroy", container.id, **container.event_attributes())
        code = container.state.exit_code if exit_code is None else exit_code
        for future in live.removed_waiters + live.exit_waiters:
            if not future.done():
                future.set_result(code)

    async def rename(self, container: Container, new_name: str) -> None:
        if valid_name(new_name) == container.name:
            raise Conflict("Renaming a container with the same name as its current name")
        name = self._free_name(new_name)
        old = container.name
        container.name = name
        container.save()
        del self.names[old]
        self.names[name] = container.id
        self.emit(
            "container", "rename", container.id, **container.event_attributes(oldName=f"/{old}")
        )

    async def prune(self, filters: Filters) -> tuple[list[str], int]:
        """``POST /containers/prune``: remove every stopped container that matches."""
        removed, reclaimed = [], 0
        until = [parse_timestamp_ns(value, "until") for value in filters.get("until", ())]
        for container in list(self.containers.values()):
            if container.state.running or not self.matches(container, filters):
                continue
            created = parse_rfc3339(container.created)
            if any(limit is not None and created * 1e9 >= limit for limit in until):
                continue
            size = await self.storage.usage(container.id)
            try:
                await self.remove(container, force=False, volumes=False)
            except (Conflict, NotFound):
                continue
            removed.append(container.id)
            reclaimed += size
        return removed, reclaimed

    # -- waiting and attaching -------------------------------------------------------------

    def wait_future(self, container: Container, condition: str) -> asyncio.Future[int]:
        """A future of the exit code for ``POST /containers/{id}/wait?condition=``
        (registered now, so no exit after this call is missed)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[int] = loop.create_future()
        live = self.live[container.id]
        if condition in ("", "not-running") and not container.state.running:
            future.set_result(container.state.exit_code)
        elif condition == "removed":
            live.removed_waiters.append(future)
        elif condition in ("", "not-running", "next-exit"):
            live.exit_waiters.append(future)
        else:
            raise InvalidParameter(f"invalid condition: {condition!r}")
        return future

    async def attach(
        self, container: Container, *, stdin: bool, stdout: bool, stderr: bool
    ) -> Stream:
        """A stream of the container's first process; for a container that is not running,
        once it next starts (``docker run`` and ``start -a`` attach before they start)."""
        streams = {"stdin": stdin, "stdout": stdout, "stderr": stderr}
        if container.state.has_process:
            return await self.supervisor.stream("attach", id=container.id, **streams)
        future: asyncio.Future[Stream] = asyncio.get_running_loop().create_future()
        live = self.live[container.id]
        live.pending_attach.append((future, streams))
        try:
            return await future
        finally:
            if (future, streams) in live.pending_attach:
                live.pending_attach.remove((future, streams))

    async def resize(
        self, container: Container, height: int, width: int, exec_id: str = ""
    ) -> None:
        if not container.state.has_process:
            raise Conflict(f"Container {container.id} is not running")
        await self.supervisor.call("resize", id=container.id, h=height, w=width, exec_id=exec_id)

    # -- listing --------------------------------------------------------------------------

    def matches(self, container: Container, filters: Filters) -> bool:
        """``ps --filter`` and ``container prune --filter``, with moby's meanings."""
        state = container.state
        if "id" in filters and not any(container.id.startswith(v) for v in filters["id"]):
            return False
        if "name" in filters and not any(v.lstrip("/") in container.name for v in filters["name"]):
            return False
        if "status" in filters:
            for value in filters["status"]:
                if value not in _STATUSES:
                    raise InvalidParameter(f"invalid filter 'status={value}'")
            if state.status not in filters["status"]:
                return False
        if "exited" in filters and (
            state.status != "exited" or str(state.exit_code) not in filters["exited"]
        ):
            return False
        if not labels_match(container.labels, filters.get("label", ())):
            return False
        if "ancestor" in filters and not any(
            self._descends(container, value) for value in filters["ancestor"]
        ):
            return False
        wanted_volumes = filters.get("volume", set())
        if wanted_volumes and not any(
            wanted_volumes & {m.name, m.destination, m.source} for m in container.mounts
        ):
            return False
        if (
            "network" in filters
            and str(container.host_config.get("NetworkMode")) not in filters["network"]
        ):
            return False
        return "true" not in filters.get("is-task", set())  # no swarm: no task containers

    def _descends(self, container: Container, image_name: str) -> bool:
        try:
            image = self.images.resolve(image_name)
        except PydockerdError:
            return container.image == image_name
        return container.image_id == image.id

    def listing(self, *, all_: bool, limit: int, filters: Filters) -> list[Container]:
        """``GET /containers/json``, newest first: running ones only unless ``all_``, a
        ``limit``, or a ``status``/``exited`` filter says otherwise (moby's rule)."""
        every = all_ or limit > 0 or "status" in filters or "exited" in filters
        before = self.get(next(iter(filters["before"]))).created if "before" in filters else None
        since = self.get(next(iter(filters["since"]))).created if "since" in filters else None
        found = []
        for container in sorted(self.containers.values(), key=lambda c: c.created, reverse=True):
            if not every and not container.state.running:
                continue
            if before is not None and container.created >= before:
                continue
            if since is not None and container.created <= since:
                continue
            if self.matches(container, filters):
                found.append(container)
        return found[:limit] if limit > 0 else found

    async def size(self, container: Container) -> tuple[int, int]:
        """``SizeRw`` and ``SizeRootFs``."""
        rw = await self.storage.usage(container.id)
        image = self.images.store.image(container.image_id)
        return rw, rw + (image.size if image else 0)

    def graph_driver(self, container: Container) -> dict[str, str]:
        return self.storage.metadata(container.id)

    # -- life ---------------------------------------------------------------------------

    async def close(self) -> None:
        """The daemon stops: containers keep running in the supervisor."""
        self._closing = True
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._supervisor is not None:
            await self._supervisor.close()


def _exit_file(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _copy_up(rootfs: Path, destination: str, volume: Path) -> None:
    """Fill an empty volume with what the image holds at ``destination``, as Docker does
    the first time a volume is mounted (ownership and modes kept)."""
    source = resolve_in_root(rootfs, destination)
    if not source.is_dir() or any(volume.iterdir()):
        return
    st = source.stat()
    os.chown(volume, st.st_uid, st.st_gid)
    volume.chmod(st.st_mode & 0o7777)
    result = subprocess.run(
        ["cp", "-a", "--", f"{source}/.", f"{volume}/"], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise SystemError(
            f"cannot copy the image's {destination} into its volume: {result.stderr.strip()}"
        )
