"""The network-driver conformance suite: what every :class:`~pydockerd.plugin.NetworkDriver`
must do, checked through the interface only, on the real kernel, with throwaway "containers"
that are network namespaces held by a process (``unshare --net sleep infinity``).

Use it from a driver package's tests by deriving a ``Test*`` class from
:class:`NetworkDriverSuite` and naming the driver class; pytest (with pytest-asyncio in
``asyncio_mode = "auto"``) then runs every ``test_*`` method against it::

    # my_driver/tests/test_conformance.py
    from pydockerd.testing.network import NetworkDriverSuite
    from my_driver.driver import MyConfig, MyDriver

    class TestMyDriverConformance(NetworkDriverSuite):
        driver_class = MyDriver

        def driver_config(self, token: str) -> MyConfig:
            return MyConfig(table=f"t{token}")  # names of its own, so tests run in parallel

        async def assert_nothing_left(self, lab: NetworkLab) -> None:
            await super().assert_nothing_left(lab)
            ...  # and what only this driver knows it makes

A :class:`NetworkLab` (the ``lab`` fixture) hands out networks with device names, subnets and
IDs of their own (a random token per lab; subnets ``10.<50-99>.<n>.0/24`` that no route of
the host overlaps and that no other test holds, by a lock file in
``/tmp/pydockerd-test-subnets``; the daemon's test kit takes ``10.100`` and up), starts
containers, joins them through the driver and records what it made. Afterwards, even when a
test fails, it leaves every endpoint, deletes every network through the driver, kills every
container's process and deletes any link or device of its own still there, then calls
:meth:`NetworkDriverSuite.force_cleanup`. Tests run in parallel (``pytest -n 2``) with each
other and with daemons.

No packet goes anywhere but to the lab's own networks: before a container or the host sends
anything, the lab checks that the host routes the destination to one of the lab's devices
(or delivers it locally on one of the lab's addresses), and fails the test otherwise.
"Beyond the host" is a namespace of the lab's own (:class:`Outside`), reached through a veth
pair the lab makes (not the driver) and routed by the host, with no route back: what gets an
answer from it was masqueraded.

Drivers whose containers keep the host's namespace (``shares_host_namespace``, like
``host``) run what applies to them: ``create_network`` and ``delete_network`` (any number of
times) make nothing, ``join`` raises :class:`NotImplementedByDaemon`, ``leave`` is fine; the
rest is skipped.

The tests need root (they carry the ``privileged`` marker), ``unshare`` and ``nsenter``
(util-linux), ``ip`` (iproute2) and ``busybox`` (its ``ping``); ``nft``, when installed, is
read to check that no rule names a deleted network. IPv4 forwarding stays as the driver
leaves it.

What the suite checks (for drivers that connect containers):

1. ``create_network`` twice makes the device with the gateway address, up; ``delete_network``
   twice removes it; a device deleted behind the driver's back is made again by the next
   ``create_network`` (a reboot);
2. ``join`` gives the interface its name, MAC and address, up, ``lo`` up, and the default route
   via the gateway; a second network's interface (``eth1``, no default route) leaves the
   default route as it is; joining again changes nothing;
3. two containers on one network reach each other (ping and TCP, with their own addresses);
   containers on two networks do not; the host reaches a container, from the gateway;
4. an internal network's containers reach each other and their gateway, but nothing beyond:
   not another network, not a host address on another network's bridge, not the outside
   (with a default route, so only a rule can stop them); a container of a normal network
   reaches both of the last two;
5. a container reaches the outside, masqueraded (:attr:`~NetworkDriverSuite.masquerades`),
   and nothing from the outside opens a connection to it, even with a route to it;
6. ``leave`` removes the interface and the host end; again is fine; after the namespace died
   (``netns=None``, or the dead process's path) too;
7. ``delete_network`` removes the device, its address and routes, and every rule naming it,
   and leaves the other networks working; with every network deleted nothing of the lab's is
   left (:meth:`~NetworkDriverSuite.assert_nothing_left`);
8. concurrent ``create_network`` and ``join`` calls;
9. a new driver instance (a daemon restart) given the same networks keeps running
   containers connected, and can leave and delete what the old one made;
10. two instances side by side (other names, subnets, configuration) do not interfere: their
    containers do not reach each other, and deleting one's networks leaves the other's.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import itertools
import json
import os
import random
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Interface, IPv4Network
from pathlib import Path
from typing import Any, ClassVar, TextIO

import pytest
from loguru import logger

from pydockerd import linux
from pydockerd.networks.ipam import mac_for
from pydockerd.plugin import (
    DriverConfig,
    EndpointConfig,
    NetworkConfig,
    NetworkDriver,
    NotImplementedByDaemon,
)
from pydockerd.testing.drivers import make_driver

__all__ = [
    "HOST",
    "Container",
    "NetworkDriverSuite",
    "NetworkLab",
    "Outside",
    "Place",
    "host_link",
    "host_links",
    "ip_json",
    "network_lab",
    "nft_ruleset",
    "run",
]

Json = dict[str, Any]
Socket = socket.socket

_PR_SET_PDEATHSIG = 1
_TIMEOUT = 10.0  # seconds for a helper command or a namespace to appear
_UNREACHABLE_AFTER = 1.0  # seconds a connection or ping gets before it counts as dropped
_SUBNET_LOCKS = Path("/tmp/pydockerd-test-subnets")  # noqa: S108 - shared by every test process


# --------------------------------------------------------------------------------------
# commands and what the kernel shows


async def run(*argv: str, check: bool = True) -> tuple[int, str, str]:
    """Run a command: its status, output and errors (with ``check``, a failure fails)."""
    process = await asyncio.create_subprocess_exec(
        *argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), _TIMEOUT)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise AssertionError(f"{' '.join(argv)} took more than {_TIMEOUT:.0f}s") from None
    assert process.returncode is not None
    code, text, errors = process.returncode, out.decode(), err.decode()
    if check and code != 0:
        raise AssertionError(f"{' '.join(argv)} failed ({code}): {errors.strip()}")
    return code, text, errors


async def ip_json(*args: str, netns: Path | None = None) -> list[Json]:
    """``ip -j <args>`` parsed, in the host's namespace or in ``netns``."""
    prefix = ("nsenter", f"--net={netns}") if netns is not None else ()
    _, out, _ = await run(*prefix, "ip", "-j", *args)
    result: list[Json] = json.loads(out) if out.strip() else []
    return result


async def host_links() -> dict[int, Json]:
    """The host's links by index."""
    return {link["ifindex"]: link for link in await ip_json("link", "show")}


async def host_link(name: str) -> Json | None:
    """The host's link ``name`` with its addresses (``ip -j addr show dev``), or ``None``."""
    code, out, _ = await run("ip", "-j", "addr", "show", "dev", name, check=False)
    if code != 0:
        return None
    (link,) = json.loads(out)
    result: Json = link
    return result


async def nft_ruleset() -> str:
    """``nft list ruleset``, or the empty string when nft is not installed."""
    if shutil.which("nft", path=f"{os.environ.get('PATH', '')}:/usr/sbin:/sbin") is None:
        return ""
    _, out, _ = await run("nft", "list", "ruleset")
    return out


def _inet_addresses(link: Json) -> list[str]:
    return [
        f"{a['local']}/{a['prefixlen']}" for a in link.get("addr_info", []) if a["family"] == "inet"
    ]


def _networks_of_routes(routes: list[Json]) -> list[tuple[IPv4Network, Json]]:
    found = []
    for route in routes:
        dst = route.get("dst", "")
        if dst and dst != "default":
            with contextlib.suppress(ValueError):
                found.append((IPv4Network(dst, strict=False), route))
    return found


async def _free_subnet(held: list[TextIO]) -> IPv4Network:
    """A /24 of ``10.50.0.0``-``10.99.255.0`` that no route or address of the host overlaps
    and that no other test holds: its lock file (under ``/tmp/pydockerd-test-subnets``) is
    locked and appended to ``held``, until closed."""
    used = [n for n, _ in _networks_of_routes(await ip_json("-4", "route", "show", "table", "all"))]
    for link in await ip_json("-4", "addr", "show"):
        used += [IPv4Interface(a).network for a in _inet_addresses(link)]
    return _lock_subnet(used, held)


def _lock_subnet(used: list[IPv4Network], held: list[TextIO]) -> IPv4Network:
    _SUBNET_LOCKS.mkdir(mode=0o755, exist_ok=True)
    chooser = random.SystemRandom()
    for _ in range(1000):
        subnet = IPv4Network(f"10.{chooser.randrange(50, 100)}.{chooser.randrange(256)}.0/24")
        if any(subnet.overlaps(u) for u in used):
            continue
        lock = (_SUBNET_LOCKS / f"{subnet.network_address}.lock").open("a")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            lock.close()
            continue
        held.append(lock)
        return subnet
    raise AssertionError("no free /24 in 10.50.0.0 to 10.99.255.0: the host routes them all")


# --------------------------------------------------------------------------------------
# places: the host and the containers


class Place:
    """Where traffic starts or ends: the host's namespace (:data:`HOST`), or a container's."""

    name = "the host"

    def socket(self, kind: int = socket.SOCK_STREAM) -> Socket:
        """An IPv4 socket in this place's namespace, non-blocking."""
        sock = socket.socket(socket.AF_INET, kind)
        sock.setblocking(False)
        return sock

    def argv(self, *argv: str) -> tuple[str, ...]:
        """``argv`` run in this place's namespace."""
        return argv

    async def ping(self, address: str) -> bool:
        """Whether one ICMP echo to ``address`` gets its reply within a second."""
        code, _, _ = await run(
            *self.argv("busybox", "ping", "-c", "1", "-W", "1", address), check=False
        )
        return code == 0

    def __repr__(self) -> str:
        return self.name


HOST = Place()
"""The host: the test process's own network namespace."""


async def _spawn() -> subprocess.Popen[bytes]:
    """``unshare --net sleep infinity``, once its namespace is its own; it gets SIGKILL when
    the test process dies."""
    process = subprocess.Popen(  # noqa: ASYNC220 - returns at once
        ["unshare", "--net", "sleep", "infinity"],
        stdin=subprocess.DEVNULL,
        preexec_fn=_die_with_parent,  # noqa: PLW1509 - only a prctl
    )
    for _ in range(int(_TIMEOUT / 0.002)):
        if _has_own_netns(process.pid):
            return process
        if process.poll() is not None:
            break
        await asyncio.sleep(0.002)
    process.kill()
    process.wait()
    raise AssertionError(f"unshare --net made no namespace (status {process.returncode})")


def _has_own_netns(pid: int) -> bool:
    try:
        theirs = Path(f"/proc/{pid}/ns/net").stat().st_ino
    except FileNotFoundError:
        return False
    return theirs != Path("/proc/self/ns/net").stat().st_ino


def _die_with_parent() -> None:  # pragma: no cover - runs in the child
    linux.libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


class Container(Place):
    """A throwaway container: ``sleep infinity`` alone in a new network namespace (``lo``
    down, nothing else), killed with the test process if not before."""

    def __init__(self, process: subprocess.Popen[bytes], name: str) -> None:
        self.process = process
        self.name = name
        self.netns = Path(f"/proc/{process.pid}/ns/net")

    @classmethod
    async def start(cls, name: str) -> Container:
        return cls(await _spawn(), name)

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        """Kill its process (the namespace goes with it)."""
        if self.alive:
            self.process.kill()
        self.process.wait()

    def argv(self, *argv: str) -> tuple[str, ...]:
        return ("nsenter", f"--net={self.netns}", *argv)

    def socket(self, kind: int = socket.SOCK_STREAM) -> Socket:
        """An IPv4 socket in the container's namespace: made by a thread that enters the
        namespace and ends (the test's threads stay where they are)."""
        box: list[Socket | OSError] = []
        thread = threading.Thread(target=self._make_socket, args=(kind, box), daemon=True)
        thread.start()
        thread.join()
        made = box[0]
        if isinstance(made, OSError):
            raise made
        made.setblocking(False)
        return made

    def _make_socket(self, kind: int, box: list[Socket | OSError]) -> None:
        try:
            fd = os.open(self.netns, os.O_RDONLY | os.O_CLOEXEC)
            try:
                linux.setns(fd, linux.CLONE_NEWNET)
            finally:
                os.close(fd)
            box.append(socket.socket(socket.AF_INET, kind))
        except OSError as e:
            box.append(e)

    async def links(self) -> dict[str, Json]:
        """Its interfaces with their addresses, by name."""
        return {link["ifname"]: link for link in await ip_json("addr", "show", netns=self.netns)}

    async def default_routes(self) -> list[Json]:
        routes = await ip_json("-4", "route", "show", netns=self.netns)
        return [r for r in routes if r["dst"] == "default"]


class Outside(Container):
    """A namespace beyond the host, connected by a veth pair of the lab's own: ``host_end``
    with :attr:`host_address` on the host's side, ``ext0`` with :attr:`address` inside."""

    def __init__(
        self, process: subprocess.Popen[bytes], name: str, host_end: str, subnet: IPv4Network
    ) -> None:
        super().__init__(process, name)
        self.host_end = host_end
        self.subnet = subnet

    @property
    def host_address(self) -> str:
        return str(self.subnet[1])

    @property
    def address(self) -> str:
        return str(self.subnet[2])


# --------------------------------------------------------------------------------------
# the lab


@dataclass
class _Joined:
    network: NetworkConfig
    endpoint: EndpointConfig
    container: Container


class NetworkLab:
    """A test's networks, containers and endpoints, made through one driver instance, and
    everything needed to see what they became and to clean up afterwards."""

    def __init__(
        self,
        make: Callable[[], NetworkDriver],
        token: str,
        on_cleanup: Callable[[NetworkDriver], Awaitable[None]] | None = None,
    ) -> None:
        self._make = make
        self.driver = make()
        self.token = token
        self.on_cleanup = on_cleanup
        self.networks: dict[str, NetworkConfig] = {}
        """Every network handed out, by ID (deleted ones too)."""
        self.containers: list[Container] = []
        self.outsides: list[Outside] = []
        self.joined: list[_Joined] = []
        self.host_ends: dict[int, str] = {}
        """Host links that appeared for endpoints (the peers of containers' interfaces)."""
        self.peers: list[NetworkLab] = []
        """Other labs whose networks this one's traffic may go to (two instances' test)."""
        self._next_address: dict[str, Iterator[IPv4Address]] = {}
        self._counter = itertools.count()
        self._first_index = 0
        self._subnet_locks: list[TextIO] = []

    async def start(self) -> None:
        self._first_index = max(await host_links(), default=0)

    @property
    def connects(self) -> bool:
        """Whether the driver connects containers (not ``shares_host_namespace``)."""
        return not self.driver.shares_host_namespace

    def restart(self) -> NetworkDriver:
        """Replace the driver with a new instance made the same way (a daemon restart)."""
        self.driver = self._make()
        return self.driver

    # -- making things

    async def network(
        self, *, internal: bool = False, options: Mapping[str, str] | None = None
    ) -> NetworkConfig:
        """A new network's configuration (not created yet)."""
        n = next(self._counter)
        subnet = await _free_subnet(self._subnet_locks)
        hosts = subnet.hosts()
        gateway = next(hosts)
        network = NetworkConfig(
            id=secrets.token_hex(32),
            name=f"lab-{self.token}-{n}",
            subnet=str(subnet),
            gateway=str(gateway),
            internal=internal,
            device=f"pd{self.token}{n}",
            options=dict(options or {}),
        )
        self.networks[network.id] = network
        self._next_address[network.id] = hosts
        return network

    async def create(
        self, *, internal: bool = False, options: Mapping[str, str] | None = None
    ) -> NetworkConfig:
        """A new network, created through the driver."""
        network = await self.network(internal=internal, options=options)
        await self.driver.create_network(network)
        return network

    async def container(self) -> Container:
        container = await Container.start(f"container {len(self.containers)}")
        self.containers.append(container)
        return container

    def endpoint(
        self,
        network: NetworkConfig,
        container: Container,
        *,
        interface: str = "eth0",
        default_route: bool = True,
    ) -> EndpointConfig:
        """A new endpoint of ``container`` on ``network`` with the next free address."""
        address = next(self._next_address[network.id])
        prefix = IPv4Network(network.subnet).prefixlen
        return EndpointConfig(
            id=secrets.token_hex(32),
            network_id=network.id,
            container_id=f"{container.process.pid:x}",
            address=f"{address}/{prefix}",
            gateway=network.gateway,
            mac=mac_for(address),
            interface=interface,
            default_route=default_route,
        )

    async def join(
        self,
        network: NetworkConfig,
        container: Container,
        *,
        interface: str = "eth0",
        default_route: bool = True,
        endpoint: EndpointConfig | None = None,
    ) -> EndpointConfig:
        """Join ``container`` to ``network`` through the driver (a new endpoint unless one is
        given); the host link that became its interface's peer is recorded."""
        if endpoint is None:
            endpoint = self.endpoint(
                network, container, interface=interface, default_route=default_route
            )
        self.joined.append(_Joined(network, endpoint, container))
        await self.driver.join(network, endpoint, container.netns)
        inside = (await container.links()).get(endpoint.interface)
        if inside is not None and "link_netnsid" in inside and "link_index" in inside:
            peer = (await host_links()).get(inside["link_index"])
            if peer is not None:
                self.host_ends[peer["ifindex"]] = peer["ifname"]
        return endpoint

    async def leave(
        self, network: NetworkConfig, endpoint: EndpointConfig, container: Container
    ) -> None:
        """``leave`` through the driver, with the namespace while the container runs and
        ``None`` after."""
        await self.driver.leave(network, endpoint, container.netns if container.alive else None)
        self.joined = [j for j in self.joined if j.endpoint.id != endpoint.id]

    async def outside(self, *, route_back: bool = False) -> Outside:
        """A namespace beyond the host (see :class:`Outside`). Without ``route_back`` it
        answers only its own subnet, so only masqueraded traffic gets an answer."""
        n = len(self.outsides)
        outside = Outside(
            await _spawn(),
            f"outside {n}",
            f"po{self.token}{n}",
            await _free_subnet(self._subnet_locks),
        )
        self.outsides.append(outside)
        await run(
            "ip", "link", "add", outside.host_end, "type", "veth",
            "peer", "name", "ext0", "netns", str(outside.netns),
        )  # fmt: skip
        await run("ip", "addr", "add", f"{outside.host_address}/24", "dev", outside.host_end)
        await run("ip", "link", "set", outside.host_end, "up")
        for command in (
            ("ip", "addr", "add", f"{outside.address}/24", "dev", "ext0"),
            ("ip", "link", "set", "ext0", "up"),
            ("ip", "link", "set", "lo", "up"),
        ):
            await run(*outside.argv(*command))
        if route_back:
            await run(*outside.argv("ip", "route", "add", "default", "via", outside.host_address))
        return outside

    # -- traffic, only ever inside the lab

    def _subnets(self) -> list[IPv4Network]:
        subnets = [IPv4Network(n.subnet) for n in self.networks.values()]
        subnets += [o.subnet for o in self.outsides]
        return subnets + [s for peer in self.peers for s in peer._subnets()]

    def _devices(self) -> set[str]:
        devices = {n.device for n in self.networks.values()} | {o.host_end for o in self.outsides}
        return devices.union(*(peer._devices() for peer in self.peers))

    async def check_route(self, address: str) -> None:
        """Fail unless the host keeps ``address`` inside the lab: one of the lab's subnets,
        routed to one of its devices or local on one of its addresses. Nothing is sent to an
        address that does not pass."""
        ip = IPv4Address(address)
        if not any(ip in subnet for subnet in self._subnets()):
            raise AssertionError(f"{address} is not an address of this lab")
        (route,) = await ip_json("-4", "route", "get", address)
        local = route.get("type") == "local"
        assert local or route.get("dev") in self._devices(), (
            f"the host routes {address} through {route.get('dev')}, not a device of the lab: "
            "nothing is sent"
        )

    async def reaches(self, source: Place, target: Place, address: str) -> str | None:
        """Open a TCP connection from ``source`` to ``address``, where ``target`` listens; the
        address ``target`` saw it come from, or ``None`` when it did not get through within a
        second."""
        await self.check_route(address)
        loop = asyncio.get_running_loop()
        with contextlib.ExitStack() as stack:
            listener = stack.enter_context(target.socket())
            listener.bind((address, 0))
            listener.listen(1)
            client = stack.enter_context(source.socket())
            try:
                await asyncio.wait_for(
                    loop.sock_connect(client, (address, listener.getsockname()[1])),
                    _UNREACHABLE_AFTER,
                )
                accepted, peer = await asyncio.wait_for(loop.sock_accept(listener), _TIMEOUT)
            except (TimeoutError, OSError):
                return None
            accepted.close()
            return str(peer[0])

    async def pings(self, source: Place, address: str) -> bool:
        """Whether ``source`` gets an ICMP echo reply from ``address``."""
        await self.check_route(address)
        return await source.ping(address)

    # -- what is left

    async def leftovers(self, networks: Iterable[NetworkConfig] | None = None) -> list[str]:
        """What of the lab's networks (or of ``networks`` only) the host still has: devices,
        addresses and routes in their subnets, nft rules naming their devices, subnets or
        gateways, and (for all networks) host ends of endpoints."""
        chosen = list(self.networks.values() if networks is None else networks)
        links = await host_links()
        names = {link["ifname"] for link in links.values()}
        left = [f"device {n.device}" for n in chosen if n.device in names]
        if networks is None:
            left += [f"host end {name} (index {i})" for i, name in self._host_ends_in(links)]
        subnets = [IPv4Network(n.subnet) for n in chosen]
        for link in await ip_json("-4", "addr", "show"):
            left += [
                f"address {a} on {link['ifname']}"
                for a in _inet_addresses(link)
                if any(IPv4Interface(a).ip in s for s in subnets)
            ]
        routes = _networks_of_routes(await ip_json("-4", "route", "show", "table", "all"))
        left += [
            f"route {r.get('dst')} dev {r.get('dev')}"
            for network, r in routes
            if any(network.overlaps(s) for s in subnets)
        ]
        ruleset = await nft_ruleset()
        for n in chosen:
            for word in (f'"{n.device}"', n.subnet, n.gateway):
                if re.search(rf"(?<![\w.]){re.escape(word)}(?![\w./])", ruleset):
                    left.append(f"nft rule naming {word}")
        return left

    def _host_ends_in(self, links: Mapping[int, Json]) -> list[tuple[int, str]]:
        """The recorded host ends that ``links`` still has (made during the lab's life)."""
        return [
            (index, name)
            for index, name in self.host_ends.items()
            if index > self._first_index and links.get(index, {}).get("ifname") == name
        ]

    async def cleanup(self) -> None:
        """Leave, delete, kill and remove everything of the lab. Never raises."""
        for joined in list(self.joined):
            with _logged("leave"):
                await self.leave(joined.network, joined.endpoint, joined.container)
        for network in self.networks.values():
            with _logged(f"delete_network {network.name}"):
                await self.driver.delete_network(network)
        for container in [*self.containers, *self.outsides]:
            with _logged(f"stop {container.name}"):
                container.stop()
        with _logged("removing links"):
            links = await host_links()
            names = {link["ifname"] for link in links.values()}
            doomed = [n.device for n in self.networks.values() if n.device in names]
            doomed += [o.host_end for o in self.outsides if o.host_end in names]
            doomed += [name for _, name in self._host_ends_in(links)]
            for name in doomed:
                await run("ip", "link", "del", name, check=False)
        if self.on_cleanup is not None:
            with _logged("force_cleanup"):
                await self.on_cleanup(self.driver)
        for lock in self._subnet_locks:
            lock.close()


@contextlib.asynccontextmanager
async def network_lab(
    make: Callable[[], NetworkDriver],
    token: str | None = None,
    on_cleanup: Callable[[NetworkDriver], Awaitable[None]] | None = None,
) -> AsyncIterator[NetworkLab]:
    """A started :class:`NetworkLab` whose driver ``make`` makes, cleaned up afterwards
    (the suite's fixtures are made with it; use it for an instance with another
    configuration)."""
    lab = NetworkLab(make, token or secrets.token_hex(3), on_cleanup)
    await lab.start()
    try:
        yield lab
    finally:
        await lab.cleanup()


@contextlib.contextmanager
def _logged(what: str) -> Iterator[None]:
    try:
        yield
    except Exception as e:
        logger.warning("network conformance: {} failed during clean-up: {}", what, e)


# --------------------------------------------------------------------------------------
# the suite


class NetworkDriverSuite:
    """The conformance tests; derive a ``Test*`` class that sets :attr:`driver_class` (and
    :meth:`driver_config` when instances need names of their own)."""

    pytestmark: ClassVar[Any] = [pytest.mark.privileged]
    driver_class: ClassVar[type[NetworkDriver]]
    """The driver under test."""
    masquerades: ClassVar[bool] = True
    """Whether containers of a non-internal network reach beyond the host from the host's
    address (NAT), as Docker's bridge does; else from their own, and the outside routes
    back."""

    # -- hooks for the driver's package

    def driver_config(self, token: str) -> DriverConfig:
        """The configuration of a new instance; ``token`` (6 hex digits) differs between
        labs, for names that must not clash across parallel tests."""
        return self.driver_class.Config()

    async def assert_nothing_left(self, lab: NetworkLab) -> None:
        """Fail if anything of the lab's networks is left; extend it with what only the
        driver knows it makes (call ``super()``)."""
        assert await lab.leftovers() == []

    async def force_cleanup(self, driver: NetworkDriver) -> None:
        """Remove what only the driver knows it makes, after a test (even a failed one),
        once the lab has left and deleted everything through the driver."""

    # -- fixtures

    @pytest.fixture
    def suite_dir(self) -> Iterator[Path]:
        """Where the instances' state, run and scratch directories are."""
        path = Path(tempfile.mkdtemp(prefix="pdnet-", dir="/tmp"))
        try:
            yield path
        finally:
            shutil.rmtree(path, ignore_errors=True)

    def _maker(self, directory: Path, token: str) -> Callable[[], NetworkDriver]:
        if not hasattr(self, "driver_class"):
            pytest.fail(f"{type(self).__name__}: set driver_class")
        config = self.driver_config(token)
        return lambda: make_driver(self.driver_class, directory / token, config)

    def new_lab(self, directory: Path) -> contextlib.AbstractAsyncContextManager[NetworkLab]:
        """A lab with a new instance of the driver under test, whose directories are below
        ``directory`` and whose configuration is :meth:`driver_config` of a new token."""
        token = secrets.token_hex(3)
        return network_lab(self._maker(directory, token), token, self.force_cleanup)

    @pytest.fixture
    async def lab(self, suite_dir: Path) -> AsyncIterator[NetworkLab]:
        """A lab with an instance of the driver under test."""
        async with self.new_lab(suite_dir) as lab:
            yield lab

    @pytest.fixture
    async def other_lab(self, suite_dir: Path) -> AsyncIterator[NetworkLab]:
        """A second lab, with a second instance (its own token, so its own configuration)."""
        async with self.new_lab(suite_dir) as lab:
            yield lab

    @staticmethod
    def connecting(lab: NetworkLab) -> None:
        """Skip the test for a driver whose containers keep the host's namespace."""
        if not lab.connects:
            pytest.skip(f"{lab.driver.name} connects no containers (shares_host_namespace)")

    @staticmethod
    def address(endpoint: EndpointConfig) -> str:
        return str(IPv4Interface(endpoint.address).ip)

    # -- 1. networks

    async def test_create_and_delete_are_idempotent(self, lab: NetworkLab) -> None:
        network = await lab.network()
        await lab.driver.create_network(network)
        await lab.driver.create_network(network)
        device = await host_link(network.device)
        if lab.connects:
            assert device is not None, f"create_network makes {network.device}"
            assert "UP" in device["flags"]
            prefix = IPv4Network(network.subnet).prefixlen
            assert _inet_addresses(device) == [f"{network.gateway}/{prefix}"]
        else:
            assert device is None, "a driver of the host's namespace makes no device"
        await lab.driver.delete_network(network)
        await lab.driver.delete_network(network)
        assert await host_link(network.device) is None
        await self.assert_nothing_left(lab)

    async def test_create_makes_again_what_is_missing(self, lab: NetworkLab) -> None:
        """After a reboot nothing of a network is left; the daemon creates it again."""
        self.connecting(lab)
        network = await lab.create()
        await run("ip", "link", "del", network.device)
        await lab.driver.create_network(network)
        assert await host_link(network.device) is not None
        container = await lab.container()
        await lab.join(network, container)
        assert await lab.reaches(container, HOST, network.gateway)

    # -- 2. join

    async def test_join_configures_the_interface(self, lab: NetworkLab) -> None:
        network = await lab.create()
        container = await lab.container()
        if not lab.connects:
            endpoint = lab.endpoint(network, container)
            with pytest.raises(NotImplementedByDaemon):
                await lab.driver.join(network, endpoint, container.netns)
            return
        endpoint = await lab.join(network, container)
        links = await container.links()
        assert sorted(links) == ["eth0", "lo"]
        eth0 = links["eth0"]
        assert eth0["address"] == endpoint.mac
        assert "UP" in eth0["flags"]
        assert _inet_addresses(eth0) == [endpoint.address]
        assert "UP" in links["lo"]["flags"], "lo is up"
        (route,) = await container.default_routes()
        assert (route["gateway"], route["dev"]) == (network.gateway, "eth0")

    async def test_a_second_network_adds_an_interface(self, lab: NetworkLab) -> None:
        self.connecting(lab)
        first, second = await lab.create(), await lab.create()
        container = await lab.container()
        await lab.join(first, container)
        endpoint = await lab.join(second, container, interface="eth1", default_route=False)
        links = await container.links()
        assert sorted(links) == ["eth0", "eth1", "lo"]
        assert _inet_addresses(links["eth1"]) == [endpoint.address]
        assert links["eth1"]["address"] == endpoint.mac
        (route,) = await container.default_routes()
        assert (route["gateway"], route["dev"]) == (first.gateway, "eth0")
        assert await lab.reaches(container, HOST, second.gateway)

    async def test_join_again_changes_nothing(self, lab: NetworkLab) -> None:
        self.connecting(lab)
        network = await lab.create()
        container = await lab.container()
        endpoint = await lab.join(network, container)
        before = await container.links()
        await lab.join(network, container, endpoint=endpoint)
        after = await container.links()
        assert sorted(after) == ["eth0", "lo"]
        assert after["eth0"]["ifindex"] == before["eth0"]["ifindex"], "the same interface"
        assert after["eth0"].get("link_index") == before["eth0"].get("link_index"), "one peer"
        assert len(lab.host_ends) <= 1, "no second host link"
        assert _inet_addresses(after["eth0"]) == [endpoint.address]
        assert len(await container.default_routes()) == 1
        assert await lab.reaches(container, HOST, network.gateway)

    # -- 3. traffic

    async def test_containers_on_one_network_reach_each_other(self, lab: NetworkLab) -> None:
        self.connecting(lab)
        network = await lab.create()
        one, two = await lab.container(), await lab.container()
        a = self.address(await lab.join(network, one))
        b = self.address(await lab.join(network, two))
        assert await lab.pings(one, b)
        assert await lab.pings(two, a)
        assert await lab.reaches(one, two, b) == a, "no NAT within a network"
        assert await lab.reaches(two, one, a) == b

    async def one_on_each(self, *labs: NetworkLab) -> list[tuple[NetworkConfig, Container, str]]:
        """A new network in each of ``labs`` (the same lab twice: two networks) with a
        container on it that reaches its gateway: each network, container and address."""
        placed = []
        for lab in labs:
            network = await lab.create()
            container = await lab.container()
            address = self.address(await lab.join(network, container))
            assert await lab.reaches(container, HOST, network.gateway)
            placed.append((network, container, address))
        return placed

    async def test_networks_are_isolated(self, lab: NetworkLab) -> None:
        self.connecting(lab)
        (_, one, a), (_, two, b) = await self.one_on_each(lab, lab)
        assert await lab.reaches(one, two, b) is None, "from one network to another"
        assert await lab.reaches(two, one, a) is None, "and back"
        assert not await lab.pings(one, b)

    async def test_the_host_reaches_a_container_from_the_gateway(self, lab: NetworkLab) -> None:
        self.connecting(lab)
        network = await lab.create()
        container = await lab.container()
        address = self.address(await lab.join(network, container))
        assert await lab.pings(HOST, address)
        assert await lab.reaches(HOST, container, address) == network.gateway

    async def test_an_internal_network_stays_inside(self, lab: NetworkLab) -> None:
        self.connecting(lab)
        internal = await lab.create(internal=True)
        normal, third = await lab.create(), await lab.create()
        one, two, other, witness = [await lab.container() for _ in range(4)]
        outside = await lab.outside(route_back=not self.masquerades)
        # default routes, so that only a rule can keep the internal network's traffic in
        a = self.address(await lab.join(internal, one))
        b = self.address(await lab.join(internal, two))
        c = self.address(await lab.join(normal, other))
        await lab.join(third, witness)
        assert await lab.reaches(one, two, b) == a, "within the internal network"
        assert await lab.reaches(one, HOST, internal.gateway), "its own gateway"
        assert await lab.reaches(one, other, c) is None, "to another network"
        assert await lab.reaches(other, one, a) is None, "from another network"
        assert await lab.reaches(one, HOST, normal.gateway) is None, "a host address beyond"
        assert await lab.reaches(one, outside, outside.address) is None, "the outside"
        assert not await lab.pings(one, outside.address)
        assert await lab.reaches(witness, HOST, normal.gateway), "not internal: allowed"
        assert await lab.reaches(other, outside, outside.address), "not internal: allowed"

    async def test_a_container_reaches_beyond_the_host(self, lab: NetworkLab) -> None:
        self.connecting(lab)
        network = await lab.create()
        container = await lab.container()
        address = self.address(await lab.join(network, container))
        outside = await lab.outside(route_back=not self.masquerades)
        seen = await lab.reaches(container, outside, outside.address)
        assert seen == (outside.host_address if self.masquerades else address)
        assert await lab.pings(container, outside.address)
        if self.masquerades:  # behind NAT, nothing from beyond opens a connection to it
            routed = await lab.outside(route_back=True)
            assert await lab.reaches(routed, container, address) is None, "from beyond"
            assert await lab.reaches(container, routed, routed.address) == routed.host_address

    # -- 4. leave

    async def test_leave_removes_both_ends(self, lab: NetworkLab) -> None:
        network = await lab.create()
        container = await lab.container()
        if not lab.connects:
            endpoint = lab.endpoint(network, container)
            await lab.driver.leave(network, endpoint, container.netns)
            await lab.driver.leave(network, endpoint, None)
            return
        endpoint = await lab.join(network, container)
        assert lab.host_ends, "the container's interface has a peer on the host"
        await lab.leave(network, endpoint, container)
        assert sorted(await container.links()) == ["lo"]
        links = await host_links()
        assert not [i for i in lab.host_ends if i in links], "the host end is gone"
        await lab.driver.leave(network, endpoint, container.netns)
        await lab.driver.leave(network, endpoint, None)
        assert await host_link(network.device) is not None, "the network stays"

    async def test_leave_after_the_namespace_died(self, lab: NetworkLab) -> None:
        network = await lab.create()
        container = await lab.container()
        if lab.connects:
            endpoint = await lab.join(network, container)
        else:
            endpoint = lab.endpoint(network, container)
        netns = container.netns
        container.stop()
        await lab.leave(network, endpoint, container)  # netns None
        await lab.driver.leave(network, endpoint, None)
        await lab.driver.leave(network, endpoint, netns)  # a dead process's path
        links = await host_links()
        assert not [i for i in lab.host_ends if i in links], "the host end is gone"

    # -- 5. delete, and nothing left

    async def test_delete_removes_device_address_and_rules(self, lab: NetworkLab) -> None:
        self.connecting(lab)
        doomed, kept = await lab.create(), await lab.create()
        one, two = await lab.container(), await lab.container()
        endpoint = await lab.join(doomed, one)
        await lab.join(kept, two)
        await lab.leave(doomed, endpoint, one)
        await lab.driver.delete_network(doomed)
        assert await host_link(doomed.device) is None
        assert await lab.leftovers([doomed]) == [], "nothing of the deleted network"
        assert await host_link(kept.device) is not None, "the other network stays"
        assert await lab.reaches(two, HOST, kept.gateway), "and works"

    async def test_nothing_is_left(self, lab: NetworkLab) -> None:
        plain, internal = await lab.create(), await lab.create(internal=True)
        containers = [await lab.container() for _ in range(3)]
        if lab.connects:
            for container in containers:
                await lab.join(plain, container)
            await lab.join(internal, containers[0], interface="eth1", default_route=False)
            for joined in list(lab.joined):
                await lab.leave(joined.network, joined.endpoint, joined.container)
        for network in (plain, internal):
            await lab.driver.delete_network(network)
        await self.assert_nothing_left(lab)

    # -- 6. concurrency

    async def test_concurrent_creates_and_joins(self, lab: NetworkLab) -> None:
        self.connecting(lab)
        first, second = await lab.network(), await lab.network()
        await asyncio.gather(lab.driver.create_network(first), lab.driver.create_network(second))
        containers = [await lab.container() for _ in range(4)]
        await asyncio.gather(*(lab.join(first, c) for c in containers))
        await asyncio.gather(
            *(lab.join(second, c, interface="eth1", default_route=False) for c in containers)
        )
        for container in containers:
            assert await lab.reaches(container, HOST, first.gateway)
            assert await lab.reaches(container, HOST, second.gateway)
        await asyncio.gather(
            *(lab.leave(j.network, j.endpoint, j.container) for j in list(lab.joined))
        )
        await asyncio.gather(lab.driver.delete_network(first), lab.driver.delete_network(second))
        await self.assert_nothing_left(lab)

    # -- 7. instances

    async def test_a_new_instance_takes_over(self, lab: NetworkLab) -> None:
        """A daemon restart: the new instance is given every network again, before anything
        else; running containers stay connected."""
        self.connecting(lab)
        network, internal = await lab.create(), await lab.create(internal=True)
        one, two = await lab.container(), await lab.container()
        a = self.address(await lab.join(network, one))
        await lab.join(internal, one, interface="eth1", default_route=False)
        driver = lab.restart()
        await driver.create_network(network)
        await driver.create_network(internal)
        assert await lab.reaches(one, HOST, network.gateway), "still connected"
        b = self.address(await lab.join(network, two))
        assert await lab.reaches(two, one, a) == b
        for joined in list(lab.joined):
            await lab.leave(joined.network, joined.endpoint, joined.container)
        await driver.delete_network(network)
        await driver.delete_network(internal)
        await self.assert_nothing_left(lab)

    async def test_two_instances_side_by_side(self, lab: NetworkLab, other_lab: NetworkLab) -> None:
        self.connecting(lab)
        (mine, one, a), (theirs, two, b) = await self.one_on_each(lab, other_lab)
        lab.peers.append(other_lab)
        assert await lab.reaches(one, two, b) is None, "one instance's to the other's"
        assert await lab.reaches(two, one, a) is None, "and back"
        for joined in list(lab.joined):
            await lab.leave(joined.network, joined.endpoint, joined.container)
        await lab.driver.delete_network(mine)
        await self.assert_nothing_left(lab)
        assert await other_lab.reaches(two, HOST, theirs.gateway), "the other still works"
