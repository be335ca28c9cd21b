"""Networks in the daemon: addresses (IPAM), records, and the service's rules, with a driver
that keeps what it is asked in memory (the real bridge driver has its own suite)."""

from __future__ import annotations

import asyncio
import ipaddress
import sqlite3
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from pydockerd.errors import Conflict, Forbidden, InvalidParameter, NotFound, SystemError
from pydockerd.networks import ipam
from pydockerd.networks.service import NetworkService, resolv_servers
from pydockerd.networks.store import EndpointRecord, NetworkRecord, NetworkStore
from pydockerd.plugin import EndpointConfig, NetworkConfig, NetworkDriver
from pydockerd.settings import NetworkSettings
from pydockerd.testing.drivers import make_driver

N = ipaddress.IPv4Network
A = ipaddress.IPv4Address


class KeepingDriver(NetworkDriver):
    """Makes nothing in the kernel; remembers what it was asked."""

    name = "keeping"

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.networks: dict[str, NetworkConfig] = {}
        self.joined: dict[str, tuple[EndpointConfig, Path]] = {}
        self.join_error: Exception | None = None

    async def create_network(self, network: NetworkConfig) -> None:
        self.networks[network.id] = network

    async def delete_network(self, network: NetworkConfig) -> None:
        self.networks.pop(network.id, None)

    async def join(self, network: NetworkConfig, endpoint: EndpointConfig, netns: Path) -> None:
        if self.join_error is not None:
            raise self.join_error
        self.joined[endpoint.id] = (endpoint, netns)

    async def leave(
        self, network: NetworkConfig, endpoint: EndpointConfig, netns: Path | None
    ) -> None:
        self.joined.pop(endpoint.id, None)


class NullDriver(NetworkDriver):
    name = "null"
    single_instance = True


class HostDriver(NetworkDriver):
    name = "host"
    shares_host_namespace = True
    single_instance = True


class FakeDns:
    """A container DNS server that binds nothing; like the real one, a second server on an
    address fails to start."""

    def __init__(self, servers: FakeDnsServers, address: str, upstreams: list[str]) -> None:
        self.servers, self.address, self.upstreams = servers, address, upstreams
        self.running = False

    async def start(self) -> None:
        await self.servers.gate.wait()
        if any(s.running and s.address == self.address for s in self.servers.made):
            raise SystemError(f"cannot serve DNS on {self.address}:53: address already in use")
        self.running = True

    async def close(self) -> None:
        self.running = False


class FakeDnsServers:
    """The ``dns_server`` factory; a start waits for :attr:`gate`."""

    def __init__(self) -> None:
        self.made: list[FakeDns] = []
        self.gate = asyncio.Event()
        self.gate.set()

    def __call__(self, address: str, lookup: Any, upstreams: list[str], **options: Any) -> FakeDns:
        server = FakeDns(self, address, upstreams)
        self.made.append(server)
        return server

    def running(self) -> list[FakeDns]:
        return [s for s in self.made if s.running]


async def soon(condition: Callable[[], bool]) -> None:
    for _ in range(100):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("it did not happen")


def new_service(
    tmp_path: Path,
    dns_server: FakeDnsServers | None = None,
    events: list[tuple[Any, ...]] | None = None,
    **settings: Any,
) -> NetworkService:
    drivers = {
        "bridge": make_driver(KeepingDriver, tmp_path / "bridge"),
        "null": make_driver(NullDriver, tmp_path / "null"),
        "host": make_driver(HostDriver, tmp_path / "host"),
    }
    emitted = [] if events is None else events
    return NetworkService(
        tmp_path / "networks",
        drivers,
        NetworkSettings(
            default_bridge="pdtest0",
            default_subnet="10.77.0.0/24",
            address_pool="10.78.0.0/16",
            pool_prefix_length=24,
            **settings,
        ),
        lambda *args, **attributes: emitted.append((*args, attributes)),
        dns_server=dns_server,
    )


@pytest.fixture
def events() -> list[tuple[Any, ...]]:
    """What the service emitted: ``(type, action, actor ID, attributes)``."""
    return []


@pytest.fixture
async def service(tmp_path: Path, events: list[tuple[Any, ...]]) -> AsyncIterator[NetworkService]:
    networks = new_service(tmp_path, events=events)
    await networks.initialize()
    try:
        yield networks
    finally:
        await networks.close()


@pytest.fixture
def dns() -> FakeDnsServers:
    return FakeDnsServers()


@pytest.fixture
async def dns_service(tmp_path: Path, dns: FakeDnsServers) -> AsyncIterator[NetworkService]:
    """A service that runs a (fake) DNS server for each user-defined network."""
    networks = new_service(tmp_path, dns, dns_upstreams=["192.0.2.53"])
    await networks.initialize()
    try:
        yield networks
    finally:
        await networks.close()


def keeping(service: NetworkService) -> KeepingDriver:
    driver = service.drivers["bridge"]
    assert isinstance(driver, KeepingDriver)
    return driver


# -- IPAM --------------------------------------------------------------------------------


def test_the_first_free_block_of_the_pool() -> None:
    pool = N("10.1.0.0/16")
    assert ipam.choose_subnet(pool, 24, []) == N("10.1.0.0/24")
    assert ipam.choose_subnet(pool, 24, [N("10.1.0.0/23"), N("10.1.3.0/24")]) == N("10.1.2.0/24")
    with pytest.raises(Conflict, match="fully subnetted"):
        ipam.choose_subnet(N("10.1.0.0/24"), 24, [N("10.0.0.0/8")])
    with pytest.raises(InvalidParameter, match="smaller than"):
        ipam.choose_subnet(N("10.1.0.0/24"), 16, [])


def test_addresses() -> None:
    subnet = N("10.9.0.0/29")  # .1 to .6
    assert ipam.allocate_address(subnet, [A("10.9.0.1")]) == A("10.9.0.2")
    assert ipam.allocate_address(subnet, [], ip_range=N("10.9.0.4/30")) == A("10.9.0.5")
    assert ipam.allocate_address(subnet, [], wanted="10.9.0.6") == A("10.9.0.6")
    with pytest.raises(Conflict, match="Address already in use"):
        ipam.allocate_address(subnet, [A("10.9.0.6")], wanted="10.9.0.6")
    with pytest.raises(InvalidParameter, match="no configured subnet"):
        ipam.allocate_address(subnet, [], wanted="10.10.0.1")
    with pytest.raises(InvalidParameter, match="invalid IPv4 address"):
        ipam.allocate_address(subnet, [], wanted="nope")
    with pytest.raises(Conflict, match="no available IPv4 addresses"):
        ipam.allocate_address(subnet, [A(f"10.9.0.{i}") for i in range(1, 7)])
    assert ipam.mac_for(A("10.210.0.2")) == "02:42:0a:d2:00:02"


def test_host_routes_are_read_from_the_kernel(tmp_path: Path) -> None:
    table = tmp_path / "route"
    table.write_text(
        "Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\tMTU\tWindow\tIRTT\n"
        "eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n"
        "eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n"
    )
    assert ipam.host_routes(table) == [N("192.0.2.0/24")]  # not the default route
    assert all(isinstance(n, N) for n in ipam.host_routes())  # the real table parses


def test_resolv_servers(tmp_path: Path) -> None:
    conf = tmp_path / "resolv.conf"
    conf.write_text("# x\nnameserver 10.0.0.53\nsearch example\nnameserver 127.0.0.53\n")
    assert resolv_servers(conf) == ["10.0.0.53", "127.0.0.53"]
    assert resolv_servers(tmp_path / "missing") == []


def test_deleting_a_network_is_one_transaction(tmp_path: Path) -> None:
    store = NetworkStore(tmp_path / "networks.db")
    try:
        store.add_network(NetworkRecord(id="n1", name="net", driver="bridge", created="x"))
        endpoint = EndpointRecord("e1", "n1", "c1", "10.9.0.2/24", "02:42:0a:09:00:02", "eth0")
        store.add_endpoint(endpoint)
        with sqlite3.connect(tmp_path / "networks.db") as other:  # the second DELETE fails
            other.execute(
                "CREATE TRIGGER refuse BEFORE DELETE ON networks "
                "BEGIN SELECT RAISE(ABORT, 'refused'); END"
            )
        with pytest.raises(sqlite3.IntegrityError, match="refused"):
            store.delete_network("n1")
        assert store.endpoints(network_id="n1") == [endpoint]  # the first was undone
        assert [n.id for n in store.networks()] == ["n1"]
    finally:
        store.close()


# -- the service ------------------------------------------------------------------------


async def test_predefined_networks_and_the_lazy_default_bridge(service: NetworkService) -> None:
    names = {n.name: n for n in service.networks()}
    assert set(names) == {"bridge", "host", "none"}
    bridge = names["bridge"]
    assert (bridge.subnet, bridge.gateway, bridge.device) == (
        "10.77.0.0/24",
        "10.77.0.1",
        "pdtest0",
    )
    assert keeping(service).networks == {}  # made when a container first needs it
    for name in ("bridge", "host", "none"):
        with pytest.raises(Forbidden, match="pre-defined network and cannot be removed"):
            await service.remove(name)
    with pytest.raises(Forbidden, match="cannot be created"):
        await service.create({"Name": "host"})
    for driver in ("host", "null"):
        with pytest.raises(Forbidden, match=f'^only one instance of "{driver}" network is'):
            await service.create({"Name": "another", "Driver": driver})


async def test_create_picks_a_subnet_and_a_device(service: NetworkService) -> None:
    first = await service.create({"Name": "front", "Labels": {"tier": "web"}})
    second = await service.create({"Name": "back", "Internal": True})
    assert (first.subnet, first.gateway) == ("10.78.0.0/24", "10.78.0.1")
    assert second.subnet == "10.78.1.0/24"
    assert first.device == f"pdbr-{first.id[:8]}"
    assert keeping(service).networks[second.id].internal is True
    assert service.get("front") == service.get(first.id) == service.get(first.id[:10])
    with pytest.raises(Conflict, match="network with name front already exists"):
        await service.create({"Name": "front"})
    with pytest.raises(NotFound, match="network nope not found"):
        service.get("nope")
    assert [n.name for n in service.networks() if service.matches(n, {"label": {"tier=web"}})] == [
        "front"
    ]
    assert {n.name for n in service.networks() if service.matches(n, {"type": {"custom"}})} == {
        "front",
        "back",
    }


async def test_create_checks_addresses(service: NetworkService) -> None:
    def pool(**values: str) -> dict[str, Any]:
        return {"Name": "x1", "IPAM": {"Config": [values]}}

    with pytest.raises(InvalidParameter, match="Pool overlaps with other one"):
        await service.create(pool(Subnet="10.77.0.128/25"))  # the default bridge's
    with pytest.raises(InvalidParameter, match=r"gateway 10\.5\.0\.1 is not in subnet"):
        await service.create(pool(Subnet="10.99.0.0/24", Gateway="10.5.0.1"))
    with pytest.raises(InvalidParameter, match=r"ip-range .* is not within subnet"):
        await service.create(pool(Subnet="10.99.0.0/24", IPRange="10.98.0.0/25"))
    with pytest.raises(InvalidParameter, match="invalid address pool"):
        await service.create(pool(Subnet="10.99.0.0/33"))
    with pytest.raises(InvalidParameter, match="invalid name"):
        await service.create({"Name": "bad name"})
    with pytest.raises(NotFound, match="plugin 'nosuch' not found"):
        await service.create({"Name": "x2", "Driver": "nosuch"})
    made = await service.create(
        pool(Subnet="10.99.0.0/24", Gateway="10.99.0.254", IPRange="10.99.0.64/26")
    )
    assert (made.gateway, made.ip_range, made.user_subnet) == ("10.99.0.254", "10.99.0.64/26", True)


async def test_endpoints_addresses_and_dns_names(service: NetworkService) -> None:
    network = await service.create(
        {"Name": "apps", "IPAM": {"Config": [{"Subnet": "10.99.1.0/24"}]}}
    )
    service.names_of = lambda cid: {"c1" * 32: ["web", "h1"], "c2" * 32: ["db"]}.get(cid, [])
    web = await service.allocate(network, "c1" * 32, "eth0", aliases=["www"])
    db = await service.allocate(network, "c2" * 32, "eth0", address="10.99.1.50")
    assert web is not None
    assert db is not None
    assert (web.address, web.mac) == ("10.99.1.2/24", "02:42:0a:63:01:02")
    assert db.address == "10.99.1.50/24"
    with pytest.raises(Conflict, match="Address already in use"):
        await service.allocate(network, "c3" * 32, "eth0", address="10.99.1.50")
    with pytest.raises(Conflict, match="already attached"):
        await service.allocate(network, "c1" * 32, "eth1")
    assert service.lookup(network.id, "WEB.") == ["10.99.1.2"]
    assert service.lookup(network.id, "www") == ["10.99.1.2"]
    assert service.lookup(network.id, "h1") == ["10.99.1.2"]
    assert service.lookup(network.id, "nobody") is None
    assert service.reverse(network.id, "10.99.1.50") == "db"
    await service.join(web, Path("/proc/1/ns/net"))
    assert keeping(service).joined[web.id][0].default_route is True
    body = service.inspect(network, {"c1" * 32: "web"})
    assert body["Containers"]["c1" * 32]["IPv4Address"] == "10.99.1.2/24"
    assert body["IPAM"]["Config"] == [{"Subnet": "10.99.1.0/24", "Gateway": "10.99.1.1"}]
    with pytest.raises(Forbidden, match="has active endpoints"):
        await service.remove("apps")
    await service.release(web, None)
    await service.release(db, None)
    assert keeping(service).joined == {}
    await service.remove("apps")
    assert network.id not in keeping(service).networks


async def test_a_fixed_address_needs_a_subnet_given_by_the_user(service: NetworkService) -> None:
    network = await service.create({"Name": "auto"})
    with pytest.raises(InvalidParameter, match="user configured subnets"):
        await service.allocate(network, "c" * 64, "eth0", address="10.78.0.9")
    assert await service.allocate(service.get("none"), "c" * 64, "eth0") is None


async def test_a_failed_join_frees_the_endpoint_without_events(
    service: NetworkService, events: list[tuple[Any, ...]]
) -> None:
    network = await service.create({"Name": "flaky"})
    endpoint = await service.allocate(network, "c" * 64, "eth0")
    assert endpoint is not None
    keeping(service).join_error = SystemError("no veth for you")
    with pytest.raises(SystemError, match="no veth for you"):
        await service.join(endpoint, Path("/proc/1/ns/net"))
    assert service.endpoints(container_id="c" * 64) == []
    assert [e[1] for e in events] == ["create"]  # it never connected: no disconnect either


async def test_a_join_to_a_network_gone_frees_the_endpoint(
    service: NetworkService, tmp_path: Path
) -> None:
    network = await service.create({"Name": "vanishing"})
    endpoint = await service.allocate(network, "c" * 64, "eth0")
    assert endpoint is not None
    with sqlite3.connect(tmp_path / "networks" / "networks.db") as other:  # behind its back
        other.execute("DELETE FROM networks WHERE id = ?", (network.id,))
    with pytest.raises(NotFound, match=f"network {network.id} not found"):
        await service.join(endpoint, Path("/proc/1/ns/net"))
    assert service.endpoints(container_id="c" * 64) == []


async def test_prune_spares_networks_in_use(service: NetworkService) -> None:
    used = await service.create({"Name": "used"})
    await service.create({"Name": "spare"})
    removed = await service.prune({}, lambda network_id: network_id == used.id)
    assert removed == ["spare"]
    assert {n.name for n in service.networks()} == {"bridge", "host", "none", "used"}


async def test_prune_until_spares_networks_created_since(service: NetworkService) -> None:
    made = await service.create({"Name": "recent"})
    seconds = datetime.fromisoformat(made.created.replace("Z", "+00:00")).timestamp()
    with pytest.raises(InvalidParameter, match="invalid value for until"):
        await service.prune({"until": {"yesterday"}}, lambda network_id: False)
    for until in (str(int(seconds) - 60), made.created):  # before it, and its very time
        assert await service.prune({"until": {until}}, lambda network_id: False) == []
    assert service.get("recent") == made
    later = str(int(seconds) + 60)
    assert await service.prune({"until": {later}}, lambda network_id: False) == ["recent"]
    with pytest.raises(NotFound):
        service.get("recent")


async def test_one_dns_server_however_many_start_it_at_once(
    dns_service: NetworkService, dns: FakeDnsServers
) -> None:
    dns.gate.clear()
    creating = asyncio.create_task(dns_service.create({"Name": "named"}))
    await soon(lambda: len(dns.made) == 1)  # starting, outside the service's lock
    record = dns_service.get("named")
    ensuring = [asyncio.create_task(dns_service.ensure(record)) for _ in range(2)]
    await asyncio.sleep(0)
    dns.gate.set()
    await asyncio.gather(creating, *ensuring)
    assert [s.address for s in dns.running()] == [record.gateway]
    assert len(dns.made) == 1
    assert dns_service.dns_address(record) == record.gateway


async def test_a_network_removed_while_its_dns_server_starts_keeps_none(
    dns_service: NetworkService, dns: FakeDnsServers
) -> None:
    dns.gate.clear()
    creating = asyncio.create_task(dns_service.create({"Name": "brief"}))
    await soon(lambda: len(dns.made) == 1)
    record = dns_service.get("brief")
    removing = asyncio.create_task(dns_service.remove("brief"))
    await asyncio.sleep(0)
    dns.gate.set()
    await asyncio.gather(creating, removing)
    assert dns.running() == []  # the server that was starting stopped with its network
    await dns_service.ensure(record)  # a late start, with the record read before the remove
    assert dns.running() == []
    assert dns_service.dns_address(record) is None


async def test_only_internal_networks_forward_no_names(
    dns_service: NetworkService, dns: FakeDnsServers
) -> None:
    await dns_service.create({"Name": "open"})
    await dns_service.create({"Name": "sealed", "Internal": True})
    assert [s.upstreams for s in dns.running()] == [["192.0.2.53"], []]


async def test_records_outlive_the_service(tmp_path: Path) -> None:
    drivers = {
        "bridge": make_driver(KeepingDriver, tmp_path / "b"),
        "null": make_driver(NullDriver, tmp_path / "n"),
        "host": make_driver(HostDriver, tmp_path / "h"),
    }
    settings = NetworkSettings(default_subnet="10.77.0.0/24", address_pool="10.78.0.0/16")
    first = NetworkService(tmp_path / "networks", drivers, settings, lambda *a, **k: None)
    await first.initialize()
    made = await first.create({"Name": "kept"})
    endpoint = await first.allocate(made, "c" * 64, "eth0")
    ids = {n.name: n.id for n in first.networks()}
    await first.close()
    keeping_driver = drivers["bridge"]
    assert isinstance(keeping_driver, KeepingDriver)
    keeping_driver.networks.clear()  # as after a reboot
    second = NetworkService(tmp_path / "networks", drivers, settings, lambda *a, **k: None)
    await second.initialize()
    try:
        assert {n.name: n.id for n in second.networks()} == ids
        assert second.endpoints(container_id="c" * 64) == [endpoint]
        assert made.id in keeping_driver.networks  # handed to the driver again at start
        assert isinstance(endpoint, EndpointRecord)
    finally:
        await second.close()
