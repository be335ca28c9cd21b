"""The public plugin surface of pydockerd: the only module a plugin imports.

A plugin is a module named by an entry point in the group ``pydockerd``::

    [project.entry-points.pydockerd]
    overlay = "pydockerd_storage_overlay.plugin"

It implements hooks (see :mod:`pydockerd.hookspecs` and ``docs/plugin_hooks.md``) with the
:data:`hookimpl` marker. Drivers are classes derived from one of the driver bases below,
handed to the daemon by a registration hook::

    from pydockerd.plugin import DriverRegistry, StorageDriver, hookimpl

    class MyDriver(StorageDriver):
        name = "mine"

    @hookimpl
    def pydockerd_register_storage_drivers(registry: DriverRegistry[StorageDriver]) -> None:
        registry.add(MyDriver)
"""

from __future__ import annotations

import asyncio
import re
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, ClassVar, Generic, TypeVar

import pluggy
from pydantic import BaseModel, ConfigDict

from pydockerd import linux
from pydockerd.archive import (
    apply_layer,
    decompressed,
    write_changes_diff,
    write_overlay_diff,
    write_tar,
)
from pydockerd.distribution import (
    DEFAULT_PLATFORM,
    MEDIA_TYPES,
    BlobSink,
    Descriptor,
    ManifestBlob,
    PartialBlob,
    Progress,
    ProgressFn,
    PullResult,
    PushBlob,
    PushResult,
    RegistryCredentials,
    RegistryEndpoint,
    RemoteRepository,
)
from pydockerd.errors import (
    Conflict,
    DriverNotSupported,
    Forbidden,
    InvalidParameter,
    NotFound,
    NotImplementedByDaemon,
    NotModified,
    PluginLoadError,
    PydockerdError,
    SystemError,
    Unauthorized,
    Unavailable,
)
from pydockerd.fsutil import (
    check_layer_id,
    chroot_resolve,
    directory_size,
    remove_tree,
    write_atomically,
)
from pydockerd.mounts import (
    MNT_DETACH,
    Mount,
    MountFlag,
    MountInfo,
    ParsedMountOptions,
    mount,
    mount_overlay,
    mount_points,
    mounted,
    mountinfo,
    mounts_under,
    parse_mount_options,
    unmount,
)
from pydockerd.spec import (
    ALL_CAPABILITIES,
    DEFAULT_CAPABILITIES,
    DEFAULT_DEVICES,
    DEFAULT_MASKED_PATHS,
    DEFAULT_READONLY_PATHS,
    ContainerSpec,
    Device,
    MountSpec,
    ProcessSpec,
    Resources,
    ResourceStats,
    StartError,
    Stdio,
)

if TYPE_CHECKING:
    from aiohttp import web
    from loguru import Logger

__all__ = [
    "ALL_CAPABILITIES",
    "DEFAULT_CAPABILITIES",
    "DEFAULT_DEVICES",
    "DEFAULT_MASKED_PATHS",
    "DEFAULT_PLATFORM",
    "DEFAULT_READONLY_PATHS",
    "MEDIA_TYPES",
    "MNT_DETACH",
    "PROJECT_NAME",
    "AuthzDecision",
    "AuthzRequest",
    "BlobSink",
    "Conflict",
    "ContainerSpec",
    "Descriptor",
    "Device",
    "Driver",
    "DriverConfig",
    "DriverContext",
    "DriverNotSupported",
    "DriverRegistry",
    "EndpointConfig",
    "Event",
    "Forbidden",
    "InvalidParameter",
    "LogContext",
    "LogDriver",
    "LogQuery",
    "LogRecord",
    "LogWriter",
    "ManifestBlob",
    "Mount",
    "MountFlag",
    "MountInfo",
    "MountSpec",
    "NetworkConfig",
    "NetworkDriver",
    "NotFound",
    "NotImplementedByDaemon",
    "NotModified",
    "ParsedMountOptions",
    "PartialBlob",
    "PeerCredentials",
    "PluginLoadError",
    "ProcessSpec",
    "Progress",
    "ProgressFn",
    "PullResult",
    "PushBlob",
    "PushResult",
    "PydockerdError",
    "RegistryCredentials",
    "RegistryEndpoint",
    "RegistryTransport",
    "RemoteRepository",
    "ResourceStats",
    "Resources",
    "RouteRegistry",
    "Runtime",
    "StartError",
    "Stdio",
    "StorageDriver",
    "SystemError",
    "Unauthorized",
    "Unavailable",
    "VolumeDriver",
    "VolumeInfo",
    "apply_layer",
    "check_layer_id",
    "chroot_resolve",
    "decompressed",
    "directory_size",
    "hookimpl",
    "linux",
    "mount",
    "mount_overlay",
    "mount_points",
    "mounted",
    "mountinfo",
    "mounts_under",
    "parse_mount_options",
    "remove_tree",
    "unmount",
    "write_atomically",
    "write_changes_diff",
    "write_overlay_diff",
    "write_tar",
]

PROJECT_NAME = "pydockerd"
"""pluggy project name, and the entry-point group plugins are found in."""

hookimpl = pluggy.HookimplMarker(PROJECT_NAME)
"""Marker for hook implementations: ``@hookimpl`` above a ``pydockerd_*`` function."""

_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")


# --------------------------------------------------------------------------------------
# Drivers


class DriverConfig(BaseModel):
    """Base of a driver's configuration model; unknown keys are errors.

    A driver's options live in ``[plugins."<kind>.<name>"]`` of daemon.toml and are
    validated by the driver's own ``Config`` model when the daemon loads it.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True)
class DriverContext:
    """What the daemon hands a driver: where it may keep state, and its validated config.

    :ivar state_dir: the driver's own directory under the data-root
        (``<data-root>/<kind>/<name>``); created by the daemon when the driver is selected,
        never by a probe. A non-empty ``state_dir`` is how the daemon recognises prior state.
    :ivar run_dir: the driver's own directory under the exec-root (``<exec-root>/<kind>/<name>``).
    :ivar scratch_dir: a directory on the data-root's filesystem for throwaway work (a probe's
        test mount); the daemon empties it at start.
    :ivar config: the driver's ``Config`` model, validated.
    :ivar logger: a loguru logger bound to ``plugin="<kind>.<name>"``.
    """

    state_dir: Path
    run_dir: Path
    scratch_dir: Path
    config: DriverConfig
    logger: Logger


class Driver(ABC):
    """Base of every driver class.

    Subclasses of a kind's base (:class:`StorageDriver`, ...) set :attr:`name` and may set
    :attr:`Config`, :attr:`capabilities`, :attr:`priority` and :attr:`description`, and
    override :meth:`probe`.
    """

    kind: ClassVar[str]
    """The driver kind: ``storage``, ``network``, ``registry``, ``runtime``, ``log`` or
    ``volume``."""
    interface: ClassVar[str]
    """The versioned interface the driver implements, e.g. ``pydockerd.storage.v1``."""
    name: ClassVar[str]
    """The driver's name, as operators write it in daemon.toml (``overlay``)."""
    Config: ClassVar[type[DriverConfig]] = DriverConfig
    """The driver's configuration model."""
    capabilities: ClassVar[frozenset[str]] = frozenset()
    """Optional features the driver supports, for the daemon to check before relying on them."""
    priority: ClassVar[int] = 100
    """Order of preference when the daemon chooses a driver by itself: lower comes first."""
    description: ClassVar[str] = ""
    """One line shown in ``plugin ls``."""

    def __init__(self, context: DriverContext) -> None:
        self.context = context

    @classmethod
    def qualified_name(cls) -> str:
        """``<kind>.<name>``: the key of the driver's config section and its plugin-list name."""
        return f"{cls.kind}.{cls.name}"

    @classmethod
    async def probe(cls, context: DriverContext) -> None:
        """Check that this host can run the driver.

        Called once at start-up for every registered driver. Raise
        :class:`DriverNotSupported` with a reason a person can act on when it cannot
        (status ``skip``); any other exception marks the driver ``error``. The default
        accepts every host.
        """


class StorageDriver(Driver):
    """Stores image layers and prepares container root filesystems (``overlay``, ``vfs``).

    A *layer* is a directory tree named by an ID the core chooses (a hex string). Layers
    form chains: :meth:`create` makes an empty layer on top of a parent, :meth:`apply_diff`
    unpacks one image layer tar into it, and :meth:`mount` shows the whole chain as one
    root filesystem. A container's writable layer is a layer like the others, created on
    top of its image's top layer. The core records which layers exist and removes them
    top-down; a driver never removes a parent by itself.

    Every method may block on disk: implementations run the work in a thread
    (``asyncio.to_thread``). Errors are :class:`NotFound` for an unknown layer, and
    :class:`SystemError` when the host fails (mount, disk full).
    :func:`pydockerd.testing.storage` holds the conformance suite every driver runs.
    """

    kind = "storage"
    interface = "pydockerd.storage.v1"

    @abstractmethod
    async def create(self, layer_id: str, parent: str | None) -> None:
        """Create the empty layer ``layer_id`` on top of ``parent`` (``None``: the bottom).

        :raises Conflict: ``layer_id`` exists already.
        :raises NotFound: ``parent`` does not exist.
        """

    @abstractmethod
    async def apply_diff(self, layer_id: str, diff: BinaryIO) -> int:
        """Unpack the uncompressed layer tar ``diff`` into the layer ``layer_id`` (OCI
        whiteouts included) and read ``diff`` to its end; return the bytes of file content
        written. Use :func:`apply_layer`, which keeps every write inside the layer."""

    @abstractmethod
    async def mount(self, layer_id: str) -> Path:
        """The layer chain ending at ``layer_id`` as one directory tree, mounted if the
        driver needs a mount; calls are counted, and each needs an :meth:`unmount`."""

    @abstractmethod
    async def unmount(self, layer_id: str) -> None:
        """Release one :meth:`mount` of ``layer_id``; the last one unmounts."""

    @abstractmethod
    async def remove(self, layer_id: str) -> None:
        """Delete the layer ``layer_id`` and its data, unmounting it first if needed.
        Removing a layer that does not exist is not an error."""

    @abstractmethod
    async def diff(self, layer_id: str, out: BinaryIO) -> None:
        """Write what ``layer_id`` changes over its parent to ``out`` as an uncompressed
        OCI layer tar (deletions as whiteouts)."""

    @abstractmethod
    async def usage(self, layer_id: str) -> int:
        """Bytes the layer ``layer_id`` itself takes on disk (not its parents)."""

    @abstractmethod
    def exists(self, layer_id: str) -> bool:
        """Whether the layer ``layer_id`` exists."""

    @abstractmethod
    def layer_ids(self) -> list[str]:
        """Every layer the driver holds, including ones the core may not know (left by a
        crash); the core removes those at start-up."""

    def metadata(self, layer_id: str) -> dict[str, str]:
        """``GraphDriver.Data`` of ``inspect``: the layer's directories, for operators."""
        return {}

    async def close(self) -> None:
        """The daemon is stopping: release what the driver holds. Mounts in use by running
        containers stay mounted (containers outlive the daemon)."""


@dataclass(frozen=True)
class NetworkConfig:
    """A network as the daemon hands it to its driver.

    The daemon keeps networks (their names, IDs, labels, options) and allocates addresses
    (IPAM); the driver makes what the kernel needs for them.

    :ivar id: the network's ID (64 hex digits).
    :ivar name: its name (``bridge`` for the default network).
    :ivar subnet: ``10.210.0.0/16``; empty for drivers without addresses (``host``).
    :ivar gateway: the address the driver gives the host side (``10.210.0.1``).
    :ivar internal: ``--internal``: no traffic to or from anywhere but this network.
    :ivar device: the name of the host-side device for the network (a bridge), chosen by the
        daemon (at most 15 characters).
    :ivar options: driver options (``docker network create -o``).
    """

    id: str
    name: str
    subnet: str = ""
    gateway: str = ""
    internal: bool = False
    device: str = ""
    options: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class EndpointConfig:
    """One container's attachment to a network.

    :ivar address: its address with the network's prefix length (``10.210.0.2/16``).
    :ivar mac: its MAC address (``02:42:…`` made from the address, as Docker does).
    :ivar interface: the interface's name inside the container (``eth0``, ``eth1``, ...).
    :ivar default_route: whether the container's default route goes through this endpoint's
        gateway (the first network it joins, unless the network is internal).
    """

    id: str
    network_id: str
    container_id: str
    address: str
    gateway: str
    mac: str
    interface: str = "eth0"
    default_route: bool = True


class NetworkDriver(Driver):
    """Makes networks and connects containers to them (``bridge``, ``host``).

    Methods run in the daemon. Every one must be idempotent: the daemon calls
    :meth:`create_network` for every network it knows at each start (after a reboot nothing
    of them is left in the kernel; after a daemon restart everything is) and may repeat a
    :meth:`leave` the kernel already did (a container's namespace, with the container's end
    of its links, goes when its last process does).

    Errors: :class:`InvalidParameter` for a bad option, :class:`Conflict` when the kernel
    already has something by that name that is not ours, :class:`SystemError` when the host
    fails.
    """

    kind = "network"
    interface = "pydockerd.network.v1"
    shares_host_namespace: ClassVar[bool] = False
    """True for a driver whose containers keep the host's network namespace (``host``): the
    daemon then makes no namespace for them and calls no :meth:`join`."""
    single_instance: ClassVar[bool] = False
    """True for a driver that has only its predefined network (``host``, ``null``): the
    daemon refuses to create another with it, as Docker (``only one instance of "host"
    network is allowed``)."""

    async def create_network(self, network: NetworkConfig) -> None:
        """Make what ``network`` needs on the host (a bridge with the gateway address, its
        firewall rules), or check that it is there. Drivers without host objects need not
        override this."""

    async def delete_network(self, network: NetworkConfig) -> None:
        """Undo :meth:`create_network`: no device, address or rule of the network is left.
        Deleting one that is not there is not an error."""

    async def join(self, network: NetworkConfig, endpoint: EndpointConfig, netns: Path) -> None:
        """Connect the container whose network namespace is ``netns`` (a ``/proc/<pid>/ns/net``
        path) to ``network``: inside it, ``endpoint.interface`` up with ``endpoint.address``
        and ``endpoint.mac``, and a default route via the gateway when
        ``endpoint.default_route``.

        :raises NotImplementedByDaemon: the driver connects no containers (``host``).
        """
        raise NotImplementedByDaemon(f"network driver {self.name} connects no containers")

    async def leave(
        self, network: NetworkConfig, endpoint: EndpointConfig, netns: Path | None
    ) -> None:
        """Disconnect the endpoint: its interface goes from ``netns`` (``None`` when the
        container's namespace is gone already) and whatever the driver made for it on the
        host."""


class RegistryTransport(Driver):
    """Pulls from and pushes to image registries (``distribution``: the OCI Distribution API).

    The daemon chooses the repository, its endpoints (mirrors first, ``http://`` only for
    insecure registries), the credentials and, for a push, the manifest; the transport does the
    wire work: the token or basic auth flow, manifests, blob transfers with verification,
    resume and retries. It reports progress through ``progress`` with the statuses Docker
    streams (``Pulling fs layer``, ``Waiting``, ``Downloading``, ``Verifying Checksum``,
    ``Download complete``, ``Already exists``; ``Preparing``, ``Waiting``, ``Pushing``,
    ``Pushed``, ``Layer already exists``, ``Mounted from <repo>``).

    Errors, with texts Docker users know: :class:`NotFound` for a manifest or repository the
    registry does not have (``manifest unknown``), :class:`Unauthorized` when credentials are
    missing or refused, :class:`Forbidden` for a denied scope, :class:`Unavailable` when no
    endpoint can be reached (the text names the registry and the cause),
    :class:`InvalidParameter` for content that does not match its digest or a manifest that
    cannot be used (no ``linux/amd64`` image in an index).
    """

    kind = "registry"
    interface = "pydockerd.registry.v1"

    @abstractmethod
    async def pull(
        self,
        repository: RemoteRepository,
        reference: str,
        *,
        platform: str,
        blobs: BlobSink,
        progress: ProgressFn,
        resolved: Callable[[PullResult], None] | None = None,
    ) -> PullResult:
        """Fetch the manifest ``reference`` (a tag or a digest) names, resolve an index to
        ``platform`` (``os/arch[/variant]``), and download its config and every layer the
        store lacks, several at once, each verified, an interrupted one resumed.

        A manifest fetched by digest is checked against it. ``resolved``, when given, is
        called once with what the pull will return as soon as the manifests and the config
        are stored and before any layer is downloaded: the daemon then unpacks each layer
        while the next ones download (it waits for each in :meth:`BlobSink.has`).
        """

    @abstractmethod
    async def list_tags(self, repository: RemoteRepository) -> list[str]:
        """Every tag of the repository (all pages), for ``docker pull -a``."""

    @abstractmethod
    async def push(
        self,
        repository: RemoteRepository,
        tag: str | None,
        manifest: ManifestBlob,
        blobs_to_push: Sequence[PushBlob],
        *,
        blobs: BlobSink,
        progress: ProgressFn,
    ) -> PushResult:
        """Upload every blob the registry lacks (``HEAD`` first; a cross-repository mount
        when ``mount_from`` names a source; else a chunked upload), then ``PUT`` the manifest
        under ``tag`` (or its digest when ``tag`` is None)."""

    @abstractmethod
    async def login(self, endpoint: RegistryEndpoint, credentials: RegistryCredentials) -> str:
        """Check the credentials against the registry's ``/v2/``, with whichever auth flow it
        asks for; the identity token the flow returned, or ``""``.

        :raises Unauthorized: the registry refused them.
        """

    async def close(self) -> None:
        """The daemon is stopping: close connections (called once, after the last pull)."""


class Runtime(Driver):
    """Creates and runs container processes (``native``).

    A runtime works in the **supervisor**, the process that holds containers while the
    daemon restarts, not in the daemon: the supervisor makes one instance per runtime name
    (with the context and ``[plugins."runtime.<name>"]`` config the daemon would give it)
    and calls it for every container that names it. The daemon only probes the class.

    Rules every runtime keeps:

    - every pid it returns is a **child of the calling process**: the supervisor reaps it
      and keeps its exit status, so a container's exit code is never lost;
    - methods run on the supervisor's main thread, in its event loop; a runtime that forks
      does it there, never in a worker thread (a child's parent-death signal follows the
      thread that forked it);
    - a container's processes die with the supervisor (parent-death signal), so none can
      run on that nobody can see.

    Errors: :class:`StartError` when a process cannot be started (its text is shown to the
    user; see there for the words clients look for), :class:`NotFound` for an unknown
    container, :class:`SystemError` when the host fails.
    """

    kind = "runtime"
    interface = "pydockerd.runtime.v1"

    @abstractmethod
    async def create(self, spec: ContainerSpec, stdio: Stdio) -> int:
        """Create the container: its namespaces, its cgroup with ``spec.resources``, its root
        filesystem and mounts, and its first process, held just before ``execve`` of
        ``spec.process.args`` (the program has been found, so a missing one fails here).

        :returns: the first process's pid, as the supervisor sees it.
        :raises StartError: the container cannot be set up; nothing of it is left.
        """

    @abstractmethod
    async def start(self, container_id: str) -> None:
        """Let the process :meth:`create` made run its program.

        :raises StartError: ``execve`` failed; the process has exited (127 or 126).
        """

    @abstractmethod
    async def exec(self, container_id: str, process: ProcessSpec, stdio: Stdio) -> int:
        """Run another process inside the running container (its namespaces, cgroup and
        root); its pid, once it has started its program.

        :raises StartError: it could not be started.
        """

    @abstractmethod
    async def kill(self, container_id: str, signal: int, *, all_processes: bool = False) -> None:
        """Send ``signal`` to the container's first process, or to every one of its
        processes with ``all_processes``. A container with no process left is not an error."""

    @abstractmethod
    async def pause(self, container_id: str) -> None:
        """Freeze every process of the container (cgroup freezer)."""

    @abstractmethod
    async def resume(self, container_id: str) -> None:
        """Thaw what :meth:`pause` froze."""

    @abstractmethod
    async def stats(self, container_id: str) -> ResourceStats:
        """The container's cgroup counters now."""

    @abstractmethod
    async def processes(self, container_id: str) -> list[int]:
        """The pids (as the supervisor sees them) of every process in the container."""

    @abstractmethod
    async def oom_killed(self, container_id: str) -> bool:
        """Whether the kernel's OOM killer ended a process of the container since
        :meth:`create`."""

    @abstractmethod
    async def delete(self, container_id: str) -> None:
        """Release what :meth:`create` made (its cgroup), killing any process still in it.
        Deleting an unknown or already deleted container is not an error: the supervisor
        also calls this for containers a previous supervisor left behind."""


@dataclass(frozen=True)
class LogRecord:
    """One piece of a container's output: a line with its ``\\n``, or the rest of the
    stream when it ended without one (``partial``)."""

    stream: str
    """``stdout`` or ``stderr`` (with a terminal, everything is ``stdout``)."""
    line: bytes
    time_nano: int
    partial: bool = False


@dataclass(frozen=True)
class LogContext:
    """The container whose output a log driver writes or reads.

    :ivar log_dir: the container's own directory under the data-root, where a driver that
        keeps files keeps them; it is removed with the container.
    :ivar options: ``--log-opt`` values, after :meth:`LogDriver.validate_options`.
    """

    container_id: str
    container_name: str
    image_name: str
    log_dir: Path
    options: Mapping[str, str] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)
    env: Mapping[str, str] = field(default_factory=dict)
    """The container's environment (``Config.Env``), for options like ``env``."""
    image_id: str = ""


@dataclass(frozen=True)
class LogQuery:
    """What ``docker logs`` asks for: the window, how many of the last lines, and whether to
    follow."""

    since_nano: int | None = None
    until_nano: int | None = None
    tail: int | None = None
    """The last ``tail`` records only; ``None`` for all."""
    follow: bool = False


class LogWriter(ABC):
    """Writes one container's output; made by :meth:`LogDriver.writer` in the supervisor."""

    @abstractmethod
    def write(self, record: LogRecord) -> None:
        """Store ``record``. Called in the supervisor's event loop: return quickly."""

    @abstractmethod
    def close(self) -> None:
        """The container's streams have ended: flush and release."""


class LogDriver(Driver):
    """Stores container output and reads it back (``json-file``, ``none``).

    The writing side runs in the supervisor (output keeps being stored while the daemon is
    down), the reading side in the daemon; both make their own instance.
    """

    kind = "log"
    interface = "pydockerd.log.v1"
    readable: ClassVar[bool] = True
    """Whether ``docker logs`` can read what this driver stores."""

    def validate_options(self, options: Mapping[str, str]) -> None:
        """Check ``--log-opt`` values for a new container.

        :raises InvalidParameter: an option the driver does not know, or a bad value
            (Docker's ``unknown log opt 'x' for json-file log driver``).
        """
        if options:
            raise InvalidParameter(
                f"unknown log opt '{sorted(options)[0]}' for {self.name} log driver"
            )

    @abstractmethod
    def writer(self, context: LogContext) -> LogWriter:
        """A writer for the container's output (in the supervisor)."""

    @abstractmethod
    def read(
        self, context: LogContext, query: LogQuery, stopped: asyncio.Event
    ) -> AsyncIterator[LogRecord]:
        """The stored records that match ``query``, oldest first (in the daemon).

        With ``query.follow`` the iterator goes on yielding records as they are written,
        until ``stopped`` is set (the container stopped); it then yields what was written
        up to that moment and ends.

        :raises NotImplementedByDaemon: the driver does not read back (``readable`` false).
        """


@dataclass(frozen=True)
class VolumeInfo:
    """A volume as its driver reports it."""

    name: str
    mountpoint: Path
    """Where the volume's data is on the host (``Mountpoint`` of ``volume inspect``)."""
    status: Mapping[str, Any] = field(default_factory=dict)
    """Driver-specific facts (``Status`` of ``volume inspect``)."""


class VolumeDriver(Driver):
    """Provides named volumes (``local``).

    The daemon keeps each volume's metadata (labels, options, creation time, which
    containers use it); the driver keeps its data. A volume's name is safe as one path
    component (``[a-zA-Z0-9][a-zA-Z0-9_.-]+``).
    """

    kind = "volume"
    interface = "pydockerd.volume.v1"
    scope: ClassVar[str] = "local"
    """``local`` or ``global``: ``Scope`` of ``volume inspect``."""

    @abstractmethod
    async def create(self, name: str, options: Mapping[str, str]) -> VolumeInfo:
        """Create the volume ``name`` with driver ``options`` (``-o``).

        :raises InvalidParameter: an unknown or bad option.
        :raises Conflict: the volume exists already.
        """

    @abstractmethod
    async def remove(self, name: str) -> None:
        """Delete the volume and its data; a volume that does not exist is not an error."""

    @abstractmethod
    async def mount(self, name: str, container_id: str) -> Path:
        """Make the volume's data available for ``container_id``; the host path to bind
        into the container. Calls are per container; each has an :meth:`unmount`.

        :raises NotFound: no such volume.
        """

    @abstractmethod
    async def unmount(self, name: str, container_id: str) -> None:
        """``container_id`` no longer uses the volume."""

    @abstractmethod
    def get(self, name: str) -> VolumeInfo:
        """The volume ``name``.

        :raises NotFound: no such volume.
        """

    @abstractmethod
    def names(self) -> list[str]:
        """Every volume the driver holds."""

    async def usage(self, name: str) -> int:
        """Bytes the volume's data takes; -1 when the driver cannot tell."""
        return -1


D = TypeVar("D", bound=Driver)


class DriverRegistry(Generic[D]):
    """The drivers of one kind, by name; handed to the ``pydockerd_register_*`` hooks."""

    def __init__(self, base: type[D]) -> None:
        self.base = base
        self.kind = base.kind
        self._drivers: dict[str, type[D]] = {}
        self._owners: dict[str, str] = {}
        self.registering_plugin = ""
        """Set by the daemon to the plugin whose hook is running, for :meth:`owner`."""

    def add(self, driver: type[D]) -> None:
        """Register ``driver``.

        :raises PluginLoadError: it is not a ``base`` subclass, its name is malformed, or
            another plugin registered the same name.
        """
        if not (isinstance(driver, type) and issubclass(driver, self.base)):
            raise PluginLoadError(f"{driver!r} is not a {self.base.__name__} subclass")
        name = getattr(driver, "name", "")
        if not isinstance(name, str) or not _NAME_RE.match(name):
            raise PluginLoadError(
                f"{driver.__qualname__}.name {name!r} is not a valid driver name "
                "(lowercase letters, digits, '.', '_', '-')"
            )
        if name in self._drivers:
            raise PluginLoadError(
                f"{self.kind} driver {name!r} is registered twice: by plugin "
                f"{self._owners[name]!r} and by plugin {self.registering_plugin!r}"
            )
        self._drivers[name] = driver
        self._owners[name] = self.registering_plugin

    def discard_plugin(self, plugin: str) -> None:
        """Forget every driver ``plugin`` registered (used when the plugin fails)."""
        for name in [n for n, owner in self._owners.items() if owner == plugin]:
            del self._drivers[name], self._owners[name]

    def get(self, name: str) -> type[D]:
        """The driver called ``name``.

        :raises NotFound: no such driver; the message lists the installed ones.
        """
        try:
            return self._drivers[name]
        except KeyError:
            raise NotFound(
                f"{self.kind} driver {name!r} is not installed "
                f"(installed: {', '.join(self.names()) or 'none'})"
            ) from None

    def owner(self, name: str) -> str:
        """The plugin that registered the driver ``name``."""
        return self._owners[name]

    def names(self) -> list[str]:
        return sorted(self._drivers)

    def __contains__(self, name: object) -> bool:
        return name in self._drivers

    def __iter__(self) -> Iterator[type[D]]:
        return iter(self._drivers[name] for name in self.names())

    def __len__(self) -> int:
        return len(self._drivers)


# --------------------------------------------------------------------------------------
# Events


@dataclass(frozen=True)
class Event:
    """One engine event, as ``GET /events`` streams it and ``pydockerd_event`` receives it.

    :ivar type: the object type: ``container``, ``image``, ``network``, ``volume``,
        ``daemon``, ``plugin``.
    :ivar action: what happened: ``create``, ``start``, ``die``, ``pull``, ``reload``, ...
    :ivar actor_id: the ID of the object.
    :ivar attributes: key/value pairs about it (``name``, ``image``, labels, ``exitCode``).
    """

    type: str
    action: str
    actor_id: str
    attributes: Mapping[str, str] = field(default_factory=dict)
    scope: str = "local"
    time_nano: int = field(default_factory=time.time_ns)

    def to_api(self) -> dict[str, Any]:
        """The Engine API's JSON shape, including the deprecated ``status``/``id``/``from``."""
        body: dict[str, Any] = {
            "Type": self.type,
            "Action": self.action,
            "Actor": {"ID": self.actor_id, "Attributes": dict(self.attributes)},
            "scope": self.scope,
            "time": self.time_nano // 1_000_000_000,
            "timeNano": self.time_nano,
        }
        if self.type in ("container", "image"):
            body["status"] = self.action
            body["id"] = self.actor_id
            if "image" in self.attributes:
                body["from"] = self.attributes["image"]
        return body


# --------------------------------------------------------------------------------------
# Authorization


@dataclass(frozen=True)
class PeerCredentials:
    """Who is at the other end of a unix-socket connection (``SO_PEERCRED``)."""

    pid: int
    uid: int
    gid: int


@dataclass(frozen=True)
class AuthzRequest:
    """An API request, as authorization plugins see it before it is served.

    :ivar method: the HTTP method.
    :ivar path: the path without the ``/v1.NN`` prefix (``/containers/create``).
    :ivar query: the query string's parameters (the first value of each: the one the API
        handlers read, so a check cannot be bypassed by repeating a parameter).
    :ivar headers: the request headers.
    :ivar peer: the caller's credentials on a unix socket, else ``None``.
    """

    method: str
    path: str
    query: Mapping[str, str]
    headers: Mapping[str, str]
    peer: PeerCredentials | None


@dataclass(frozen=True)
class AuthzDecision:
    """An authorization plugin's answer: ``allow`` or not, and the message for the client."""

    allow: bool
    message: str = ""


# --------------------------------------------------------------------------------------
# Routes

Handler = Callable[["web.Request"], Awaitable["web.StreamResponse"]]


class RouteRegistry:
    """Where plugins add Engine API routes; handed to ``pydockerd_register_routes``.

    Every route is served with and without the ``/v1.NN`` prefix, behind the same error
    mapping, request id and authorization as the built-in routes.
    """

    def __init__(self) -> None:
        self.routes: list[tuple[str, str, Handler, str]] = []
        self.registering_plugin = ""

    def add(self, method: str, path: str, handler: Handler) -> None:
        """Serve ``method path`` with ``handler``; ``path`` starts with ``/`` and may use
        aiohttp's ``{name}`` placeholders."""
        if not path.startswith("/"):
            raise PluginLoadError(f"route path {path!r} must start with '/'")
        self.routes.append((method.upper(), path, handler, self.registering_plugin))
