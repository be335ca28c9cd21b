"""Networks: the predefined ones (``bridge``, ``host``, ``none``), user-defined ones, their
addresses, the endpoints of running containers, and each network's DNS server.

The daemon keeps the records (:mod:`.store`) and the addresses (:mod:`.ipam`); the network
driver plugin makes the kernel objects. At every start the daemon hands each network to its
driver again (``create_network`` is idempotent): after a reboot that rebuilds them, after a
daemon restart it finds them. A user-defined bridge network gets a DNS server on its gateway
address, answering with the names of the containers on it (:mod:`.dns`).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import re
import secrets
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from loguru import logger

from pydockerd.api.params import Filters, labels_match, parse_timestamp_ns
from pydockerd.containers.model import now_rfc3339
from pydockerd.errors import Conflict, Forbidden, InvalidParameter, NotFound, PydockerdError
from pydockerd.networks import ipam
from pydockerd.networks.store import EndpointRecord, NetworkRecord, NetworkStore
from pydockerd.plugin import EndpointConfig, NetworkConfig, NetworkDriver
from pydockerd.settings import NetworkSettings

__all__ = ["NETWORK_FILTERS", "PREDEFINED", "NetworkService", "resolv_servers"]

PREDEFINED = {"bridge": "bridge", "host": "host", "none": "null"}
"""The networks every daemon has, and their drivers."""
NETWORK_FILTERS = ("dangling", "driver", "id", "label", "name", "scope", "type")
_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]*")
_BRIDGE_NAME_OPTION = "com.docker.network.bridge.name"


def resolv_servers(path: Path = Path("/etc/resolv.conf")) -> list[str]:
    """The host's name servers, for names container DNS does not know."""
    servers = []
    try:
        for line in path.read_text().splitlines():
            words = line.split()
            if len(words) >= 2 and words[0] == "nameserver":
                servers.append(words[1])
    except OSError:
        pass
    return servers


class NetworkService:
    """The daemon's networks.

    :param drivers: the usable network drivers by name.
    :param dns_server: makes a container DNS server ``(address, lookup, upstreams)``; the
        daemon passes :class:`pydockerd.networks.dns.DnsServer` (tests may pass ``None``:
        no DNS servers).
    """

    def __init__(
        self,
        root: Path,
        drivers: Mapping[str, NetworkDriver],
        settings: NetworkSettings,
        emit: Callable[..., object],
        dns_server: Callable[..., Any] | None = None,
    ) -> None:
        self.store = NetworkStore(root / "networks.db")
        self.drivers = dict(drivers)
        self.settings = settings
        self.emit = emit
        self._dns_factory = dns_server
        self._dns: dict[str, Any] = {}
        self._dns_lock = asyncio.Lock()
        """Held while a DNS server starts or stops: a network has one at most, and none once
        it is removed."""
        self._ensured: set[str] = set()
        self._lock = asyncio.Lock()
        self.names_of: Callable[[str], list[str]] = lambda container_id: []
        """``container ID -> names`` it answers to on every network (name, hostname); set by
        the container service."""

    # -- start-up and shut-down ----------------------------------------------------------

    async def initialize(self) -> None:
        """Record the predefined networks once; hand to their drivers the user-defined
        networks and those with endpoints (the default bridge is made when a container
        first needs it)."""
        known = {n.name for n in self.store.networks()}
        for name, driver_name in PREDEFINED.items():
            if name in known:
                continue
            record = NetworkRecord(
                id=secrets.token_hex(32), name=name, driver=driver_name, created=now_rfc3339()
            )
            if name == "bridge":
                subnet = ipaddress.IPv4Network(self.settings.default_subnet)
                record.subnet, record.gateway = str(subnet), str(next(subnet.hosts()))
                record.device = self.settings.default_bridge
                record.options = {_BRIDGE_NAME_OPTION: self.settings.default_bridge}
            self.store.add_network(record)
        in_use = {e.network_id for e in self.store.endpoints()}
        for network in self.store.networks():
            if network.name in PREDEFINED and network.id not in in_use:
                continue
            try:
                await self.ensure(network)
            except PydockerdError as e:
                logger.error("network {}: {}", network.name, e)

    async def ensure(self, network: NetworkRecord) -> None:
        """Have the network's driver make it (once in the daemon's life; drivers are
        idempotent, so after a daemon restart this finds what is there), and its DNS server
        run."""
        if network.id not in self._ensured:
            await self.driver(network).create_network(self.config(network))
            self._ensured.add(network.id)
        await self._start_dns(network)

    async def close(self) -> None:
        async with self._dns_lock:
            for server in list(self._dns.values()):
                with contextlib.suppress(Exception):
                    await server.close()
            self._dns.clear()
        self.store.close()

    # -- lookups ----------------------------------------------------------------------

    def networks(self) -> list[NetworkRecord]:
        return self.store.networks()

    def get(self, name: str, networks: Sequence[NetworkRecord] | None = None) -> NetworkRecord:
        """The network ``name`` refers to: its name, full ID or an ID prefix (as Docker).

        :param networks: look among these (``store.networks()`` read once for many
            lookups) instead of reading the store now.
        :raises NotFound: Docker's ``network x not found``.
        """
        networks = self.store.networks() if networks is None else networks
        for network in networks:
            if name in (network.name, network.id):
                return network
        matches = [n for n in networks if name and n.id.startswith(name)]
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise InvalidParameter(f"network {name} is ambiguous ({len(matches)} matches found)")
        raise NotFound(f"network {name} not found")

    def driver(self, network: NetworkRecord) -> NetworkDriver:
        try:
            return self.drivers[network.driver]
        except KeyError:
            raise NotFound(f"plugin {network.driver!r} not found") from None

    def config(self, network: NetworkRecord) -> NetworkConfig:
        return NetworkConfig(
            id=network.id,
            name=network.name,
            subnet=network.subnet,
            gateway=network.gateway,
            internal=network.internal,
            device=network.device,
            options=dict(network.options),
        )

    def endpoints(
        self, *, network_id: str | None = None, container_id: str | None = None
    ) -> list[EndpointRecord]:
        return self.store.endpoints(network_id=network_id, container_id=container_id)

    def matches(self, network: NetworkRecord, filters: Filters) -> bool:
        """``network ls`` and ``network prune`` filters, with moby's meanings."""
        if "name" in filters and not any(v in network.name for v in filters["name"]):
            return False
        if "id" in filters and not any(network.id.startswith(v) for v in filters["id"]):
            return False
        if "driver" in filters and network.driver not in filters["driver"]:
            return False
        if "scope" in filters and "local" not in filters["scope"]:
            return False
        if "type" in filters:
            kind = "builtin" if network.name in PREDEFINED else "custom"
            if kind not in filters["type"]:
                return False
        if "dangling" in filters:
            unused = not self.store.endpoints(network_id=network.id)
            wanted = {v.lower() in ("true", "1") for v in filters["dangling"]}
            if (unused and network.name not in PREDEFINED) not in wanted:
                return False
        return labels_match(network.labels, filters.get("label", ()))

    # -- create and remove --------------------------------------------------------------

    async def create(self, body: Mapping[str, Any]) -> NetworkRecord:
        """``POST /networks/create``.

        :raises Forbidden: the name of a predefined network.
        :raises Conflict: the name is taken.
        :raises InvalidParameter: a bad subnet, gateway or range, or one that overlaps another
            network or a route of the host.
        """
        name = str(body.get("Name") or "")
        if not _NAME.fullmatch(name):
            raise InvalidParameter(
                f'invalid name "{name}": only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed'
            )
        if name in PREDEFINED:
            raise Forbidden(f"{name} is a pre-defined network and cannot be created")
        driver_name = str(body.get("Driver") or "bridge")
        if driver_name not in self.drivers:
            raise NotFound(f"plugin {driver_name!r} not found")
        driver = self.drivers[driver_name]
        if driver.single_instance:
            raise Forbidden(f'only one instance of "{driver_name}" network is allowed')
        if body.get("EnableIPv6"):
            raise InvalidParameter("IPv6 networks are not supported yet")
        ipam_body = body.get("IPAM") or {}
        if (ipam_body.get("Driver") or "default") != "default":
            raise NotFound(f"plugin {ipam_body.get('Driver')!r} not found")
        pools = list(ipam_body.get("Config") or [])
        if len(pools) > 1:
            raise InvalidParameter("only one IPv4 address pool per network is supported")
        async with self._lock:
            if any(n.name == name for n in self.store.networks()):
                raise Conflict(f"network with name {name} already exists")
            record = NetworkRecord(
                id=secrets.token_hex(32),
                name=name,
                driver=driver_name,
                created=now_rfc3339(),
                internal=bool(body.get("Internal")),
                attachable=bool(body.get("Attachable")),
                options={str(k): str(v) for k, v in (body.get("Options") or {}).items()},
                labels={str(k): str(v) for k, v in (body.get("Labels") or {}).items()},
                ipam_options={str(k): str(v) for k, v in (ipam_body.get("Options") or {}).items()},
            )
            self._address(record, pools[0] if pools else {})
            record.device = record.options.get(_BRIDGE_NAME_OPTION) or (
                self.settings.bridge_prefix + record.id[:8]
            )
            await driver.create_network(self.config(record))
            self._ensured.add(record.id)
            try:
                self.store.add_network(record)
            except sqlite3.IntegrityError:
                await driver.delete_network(self.config(record))
                raise Conflict(f"network with name {name} already exists") from None
        await self._start_dns(record)
        self.emit("network", "create", record.id, name=name, type=driver_name)
        return record

    def _address(self, record: NetworkRecord, pool: Mapping[str, Any]) -> None:
        """Subnet, gateway and range of a new network: the request's, checked, or the next
        free block of the address pool."""
        others = [
            ipaddress.IPv4Network(n.subnet) for n in self.store.networks() if n.subnet
        ] + ipam.host_routes()
        try:
            if pool.get("Subnet"):
                subnet = ipaddress.IPv4Network(str(pool["Subnet"]))
                record.user_subnet = True
                clash = ipam.overlapping(subnet, others)
                if clash is not None:
                    raise InvalidParameter(
                        f"invalid pool request: Pool overlaps with other one on this address "
                        f"space ({subnet} overlaps {clash})"
                    )
            else:
                subnet = ipam.choose_subnet(
                    ipaddress.IPv4Network(self.settings.address_pool),
                    self.settings.pool_prefix_length,
                    others,
                )
            gateway = ipaddress.IPv4Address(str(pool["Gateway"])) if pool.get("Gateway") else None
            ip_range = ipaddress.IPv4Network(str(pool["IPRange"])) if pool.get("IPRange") else None
        except ValueError as e:
            raise InvalidParameter(f"invalid address pool: {e}") from None
        if gateway is None:
            gateway = next(subnet.hosts())
        elif gateway not in subnet:
            raise InvalidParameter(f"gateway {gateway} is not in subnet {subnet}")
        if ip_range is not None and not ip_range.subnet_of(subnet):
            raise InvalidParameter(f"ip-range {ip_range} is not within subnet {subnet}")
        record.subnet, record.gateway = str(subnet), str(gateway)
        record.ip_range = str(ip_range) if ip_range else ""

    async def remove(self, name: str) -> None:
        """``DELETE /networks/{id}``.

        :raises Forbidden: a predefined network, or one with containers on it (Docker's).
        """
        network = self.get(name)
        if network.name in PREDEFINED:
            raise Forbidden(f"{network.name} is a pre-defined network and cannot be removed")
        async with self._lock:
            if self.store.endpoints(network_id=network.id):
                raise Forbidden(
                    f"error while removing network: network {network.name} id {network.id} "
                    "has active endpoints"
                )
            async with self._dns_lock:  # no DNS server starts until the record is gone
                server = self._dns.pop(network.id, None)
                if server is not None:
                    await server.close()
                await self.driver(network).delete_network(self.config(network))
                self._ensured.discard(network.id)
                self.store.delete_network(network.id)
        self.emit("network", "destroy", network.id, name=network.name, type=network.driver)

    async def prune(self, filters: Filters, in_use: Callable[[str], bool]) -> list[str]:
        """``POST /networks/prune``: user-defined networks no container uses or asks for
        (with ``until``: created before that time, as Docker's).

        :raises InvalidParameter: an ``until`` that is no time (before anything is removed).
        """
        removed = []
        until = [parse_timestamp_ns(value, "until") for value in filters.get("until", ())]
        others = {k: v for k, v in filters.items() if k != "until"}
        for network in self.store.networks():
            if network.name in PREDEFINED or in_use(network.id):
                continue
            if not self.matches(network, others):
                continue
            created = parse_timestamp_ns(network.created, "created") or 0
            if any(limit is not None and created >= limit for limit in until):
                continue
            try:
                await self.remove(network.id)
            except (Forbidden, NotFound):
                continue
            removed.append(network.name)
        return removed

    # -- endpoints ----------------------------------------------------------------------

    async def allocate(
        self,
        network: NetworkRecord,
        container_id: str,
        interface: str,
        *,
        aliases: Sequence[str] = (),
        address: str | None = None,
    ) -> EndpointRecord | None:
        """Record the container's address on ``network`` (``None`` for a network without
        addresses: ``none``, ``host``).

        :raises InvalidParameter: ``address`` on a network whose subnet was not given, or
            outside it.
        :raises Conflict: ``address`` is taken.
        """
        if not network.subnet:
            return None
        if address and not network.user_subnet:
            raise InvalidParameter(
                "user specified IP address is supported only when connecting to networks with "
                "user configured subnets"
            )
        subnet = ipaddress.IPv4Network(network.subnet)
        async with self._lock:
            used = [ipaddress.IPv4Address(network.gateway)] + [
                ipaddress.IPv4Interface(e.address).ip
                for e in self.store.endpoints(network_id=network.id)
            ]
            chosen = ipam.allocate_address(
                subnet,
                used,
                ip_range=ipaddress.IPv4Network(network.ip_range) if network.ip_range else None,
                wanted=address,
            )
            endpoint = EndpointRecord(
                id=secrets.token_hex(32),
                network_id=network.id,
                container_id=container_id,
                address=f"{chosen}/{subnet.prefixlen}",
                mac=ipam.mac_for(chosen),
                interface=interface,
                aliases=list(dict.fromkeys(aliases)),
            )
            try:
                self.store.add_endpoint(endpoint)
            except sqlite3.IntegrityError:
                raise Conflict(
                    f"container {container_id[:12]} is already attached to network {network.name}"
                ) from None
        return endpoint

    def endpoint_config(self, network: NetworkRecord, endpoint: EndpointRecord) -> EndpointConfig:
        return EndpointConfig(
            id=endpoint.id,
            network_id=network.id,
            container_id=endpoint.container_id,
            address=endpoint.address,
            gateway=network.gateway,
            mac=endpoint.mac,
            interface=endpoint.interface,
            default_route=endpoint.interface == "eth0" and not network.internal,
        )

    async def join(self, endpoint: EndpointRecord, netns: Path) -> None:
        """Connect the container whose network namespace is ``netns`` (its driver's
        ``join``); on failure the endpoint is freed (no event: it never connected)."""
        try:
            network = self.get(endpoint.network_id)
            await self.ensure(network)
            await self.driver(network).join(
                self.config(network), self.endpoint_config(network, endpoint), netns
            )
        except BaseException:
            await self._free(endpoint, None)
            raise
        self.emit(
            "network",
            "connect",
            network.id,
            container=endpoint.container_id,
            name=network.name,
            type=network.driver,
        )

    async def release(self, endpoint: EndpointRecord, netns: Path | None) -> None:
        """Disconnect an endpoint (its driver's ``leave``) and free its address."""
        network = await self._free(endpoint, netns)
        if network is None:
            return
        self.emit(
            "network",
            "disconnect",
            network.id,
            container=endpoint.container_id,
            name=network.name,
            type=network.driver,
        )

    async def _free(self, endpoint: EndpointRecord, netns: Path | None) -> NetworkRecord | None:
        """The driver's ``leave`` of the endpoint and its record gone, without an event; its
        network, or ``None`` when that is gone."""
        try:
            network = self.get(endpoint.network_id)
        except NotFound:
            self.store.delete_endpoint(endpoint.id)
            return None
        try:
            await self.driver(network).leave(
                self.config(network), self.endpoint_config(network, endpoint), netns
            )
        except PydockerdError as e:
            logger.warning("network {}: leave of {} failed: {}", network.name, endpoint.id[:12], e)
        self.store.delete_endpoint(endpoint.id)
        return network

    # -- DNS ----------------------------------------------------------------------------

    def lookup(self, network_id: str, name: str) -> list[str] | None:
        """The addresses of the running containers on the network known as ``name``."""
        wanted = name.lower().rstrip(".")
        found = []
        for endpoint in self.store.endpoints(network_id=network_id):
            names = {n.lower() for n in (*self.names_of(endpoint.container_id), *endpoint.aliases)}
            if wanted in names:
                found.append(str(ipaddress.IPv4Interface(endpoint.address).ip))
        return found or None

    def reverse(self, network_id: str, address: str) -> str | None:
        """The name of the container with ``address`` on the network."""
        for endpoint in self.store.endpoints(network_id=network_id):
            if str(ipaddress.IPv4Interface(endpoint.address).ip) == address:
                names = self.names_of(endpoint.container_id)
                return names[0] if names else None
        return None

    def dns_address(self, network: NetworkRecord) -> str | None:
        """Where the network's DNS server listens (user-defined bridge networks only, as
        Docker has it for user-defined networks), or ``None``."""
        return network.gateway if network.id in self._dns else None

    async def _start_dns(self, network: NetworkRecord) -> None:
        factory = self._dns_factory
        if factory is None or network.name in PREDEFINED or not network.gateway:
            return
        async with self._dns_lock:
            # One start at a time (a second would find the address in use), and none for a
            # network removed meanwhile (its server would outlive it).
            if network.id in self._dns or self.store.network(network.id) is None:
                return
            upstreams: list[str] = []
            if not network.internal:  # as Docker since 26.0: nothing beyond it, names neither
                # (the server passes over itself, should the host's servers name the gateway)
                upstreams = list(self.settings.dns_upstreams) or resolv_servers()
            server = factory(
                network.gateway,
                lambda name, network_id=network.id: self.lookup(network_id, name),
                upstreams,
                reverse=lambda address, network_id=network.id: self.reverse(network_id, address),
                domain=network.name,
            )
            try:
                await server.start()
            except PydockerdError as e:
                logger.error("network {}: no container DNS: {}", network.name, e)
                return
            self._dns[network.id] = server

    # -- inspect ------------------------------------------------------------------------

    def inspect(self, network: NetworkRecord, container_names: Mapping[str, str]) -> dict[str, Any]:
        """``GET /networks/{id}``; ``container_names`` maps container IDs to names."""
        config = []
        if network.subnet:
            pool: dict[str, str] = {"Subnet": network.subnet, "Gateway": network.gateway}
            if network.ip_range:
                pool["IPRange"] = network.ip_range
            config.append(pool)
        containers = {
            e.container_id: {
                "Name": container_names.get(e.container_id, ""),
                "EndpointID": e.id,
                "MacAddress": e.mac,
                "IPv4Address": e.address,
                "IPv6Address": "",
            }
            for e in self.store.endpoints(network_id=network.id)
        }
        return {
            "Name": network.name,
            "Id": network.id,
            "Created": network.created,
            "Scope": "local",
            "Driver": network.driver,
            "EnableIPv4": True,
            "EnableIPv6": False,
            "IPAM": {
                "Driver": "default",
                "Options": network.ipam_options or None,
                "Config": config,
            },
            "Internal": network.internal,
            "Attachable": network.attachable,
            "Ingress": False,
            "ConfigFrom": {"Network": ""},
            "ConfigOnly": False,
            "Containers": containers,
            "Options": network.options,
            "Labels": network.labels,
        }
