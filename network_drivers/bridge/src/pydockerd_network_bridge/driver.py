"""The bridge network driver: containers on a Linux bridge through veth pairs, with NAT and
isolation from one nftables table (see ``docs/drivers/bridge-network.md``).

- :meth:`BridgeDriver.create_network`: the bridge with the gateway address, up; IPv4
  forwarding on; the driver's table rebuilt from every network this instance knows.
- :meth:`BridgeDriver.join`: a veth pair, host end on the bridge, the other end made inside
  the container's namespace and configured there (:mod:`.links`).
- :meth:`BridgeDriver.leave`: the pair deleted through its host end.

The instance keeps only the networks it was given (the daemon gives it all of them again at
each start); it keeps no file.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import re
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Interface
from pathlib import Path

from pydantic import Field, field_validator
from pydockerd.plugin import (
    Conflict,
    DriverConfig,
    DriverContext,
    DriverNotSupported,
    EndpointConfig,
    InvalidParameter,
    NetworkConfig,
    NetworkDriver,
    SystemError,
)
from pyroute2.netlink.exceptions import NetlinkError

from pydockerd_network_bridge import links
from pydockerd_network_bridge.firewall import BridgeRules, Firewall, find_nft

__all__ = ["BridgeConfig", "BridgeDriver"]

IP_FORWARD = Path("/proc/sys/net/ipv4/ip_forward")
_TABLE_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,31}$")
# tables other software owns: the driver replaces its table whole, so never one of these
_FOREIGN_TABLES = frozenset({"filter", "nat", "mangle", "raw", "security", "firewalld"})
_DEVICE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,14}$")
_MAC_RE = re.compile(r"^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$")
_TRUE = frozenset({"1", "t", "T", "true", "TRUE", "True"})
_FALSE = frozenset({"0", "f", "F", "false", "FALSE", "False"})
OPT_MTU = "com.docker.network.driver.mtu"
OPT_MASQUERADE = "com.docker.network.bridge.enable_ip_masquerade"
OPT_ICC = "com.docker.network.bridge.enable_icc"
BR_NETFILTER = Path("/proc/sys/net/bridge/bridge-nf-call-iptables")


class BridgeConfig(DriverConfig):
    """``[plugins."network.bridge"]`` of daemon.toml."""

    firewall_table: str = "pydockerd"
    """The nftables table (family ``ip``) the driver owns and rebuilds; give two daemons on
    one host different ones."""
    firewall: bool = True
    """Write NAT and isolation rules (needs nft). ``false``: none at all, as Docker's
    ``--iptables=false``: networks are not isolated, and what leaves the host keeps the
    containers' addresses."""
    ip_forward: bool = True
    """Turn ``net.ipv4.ip_forward`` on when a network is created, as Docker does; ``false``
    leaves it to the operator."""
    mtu: int | None = Field(default=None, ge=68, le=65535)
    """MTU of bridges and veth pairs; unset: the kernel's (1500). The network option
    ``com.docker.network.driver.mtu`` overrides it."""

    @field_validator("firewall_table")
    @classmethod
    def _table_name(cls, value: str) -> str:
        if not _TABLE_RE.match(value):
            raise ValueError("a letter, then up to 31 letters, digits or '_'")
        if value in _FOREIGN_TABLES:
            raise ValueError(f"{value!r} is a table other software uses; the driver needs its own")
        return value


@dataclass(frozen=True)
class _Network:
    """A :class:`NetworkConfig` checked and parsed."""

    rules: BridgeRules
    mtu: int | None

    @property
    def device(self) -> str:
        return self.rules.device


def _device(name: str, what: str) -> str:
    if not _DEVICE_RE.match(name):
        raise InvalidParameter(
            f"{what} {name!r} is not a device name the driver accepts "
            "(1 to 15 letters, digits, '_', '.', '-')"
        )
    return name


def _bool_option(options: Mapping[str, str], key: str) -> bool:
    value = options.get(key, "true")
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise InvalidParameter(f"invalid value {value!r} for option {key}: want true or false")


def _mtu_option(options: Mapping[str, str], default: int | None) -> int | None:
    value = options.get(OPT_MTU)
    if value is None or value == "0":
        return default
    try:
        mtu = int(value)
    except ValueError:
        mtu = -1
    if not 68 <= mtu <= 65535:
        raise InvalidParameter(f"invalid value {value!r} for option {OPT_MTU}: want 68 to 65535")
    return mtu


def _parse_network(network: NetworkConfig, config: BridgeConfig) -> _Network:
    """Check what the daemon gave; options Docker's bridge driver knows are honoured or
    refused with a reason, others are ignored (as Docker does).

    :raises InvalidParameter: a bad device, subnet, gateway or option.
    """
    device = _device(network.device, "bridge")
    try:
        subnet = ipaddress.ip_network(network.subnet)
        gateway = ipaddress.ip_address(network.gateway)
    except ValueError as e:
        raise InvalidParameter(f"network {network.name}: {e}") from None
    if subnet.version != 4 or gateway.version != 4:
        raise InvalidParameter(f"network {network.name}: the bridge driver does IPv4 only")
    if gateway not in subnet or gateway in (subnet.network_address, subnet.broadcast_address):
        raise InvalidParameter(
            f"network {network.name}: gateway {gateway} is not a host of {subnet}"
        )
    icc = _bool_option(network.options, OPT_ICC)
    rules = BridgeRules(
        device=device,
        gateway=IPv4Interface(f"{gateway}/{subnet.prefixlen}"),
        internal=network.internal,
        masquerade=_bool_option(network.options, OPT_MASQUERADE),
        icc=icc,
    )
    return _Network(rules, _mtu_option(network.options, config.mtu))


def _parse_endpoint(network: _Network, endpoint: EndpointConfig) -> links.Attachment:
    what = f"endpoint {endpoint.id[:12]}"
    try:
        address = IPv4Interface(endpoint.address)
    except ValueError:
        raise InvalidParameter(f"{what}: bad IPv4 address {endpoint.address!r}") from None
    try:
        gateway = IPv4Address(endpoint.gateway) if endpoint.default_route else None
    except ValueError:
        raise InvalidParameter(f"{what}: bad gateway {endpoint.gateway!r}") from None
    if address.network != network.rules.gateway.network:
        raise InvalidParameter(
            f"endpoint address {address} is not in the network's subnet "
            f"{network.rules.gateway.network}"
        )
    if endpoint.mac and not _MAC_RE.match(endpoint.mac):
        raise InvalidParameter(f"{what}: bad MAC address {endpoint.mac!r}")
    return links.Attachment(
        bridge=network.device,
        host_name=links.host_end_name(endpoint.id),
        interface=_device(endpoint.interface, "interface"),
        address=address,
        mac=endpoint.mac.lower(),
        gateway=gateway,
        mtu=network.mtu,
    )


def _enable_ip_forward() -> bool:
    """``net.ipv4.ip_forward=1``; whether it was off."""
    try:
        if IP_FORWARD.read_text().strip() == "1":
            return False
        IP_FORWARD.write_text("1\n")
    except OSError as e:
        raise SystemError(f"cannot turn on IPv4 forwarding ({IP_FORWARD}): {e}") from e
    return True


def _config(context: DriverContext) -> BridgeConfig:
    """The context's config; the defaults for a plain :class:`DriverConfig` (no options)."""
    config = context.config
    return config if isinstance(config, BridgeConfig) else BridgeConfig()


class BridgeDriver(NetworkDriver):
    """A Linux bridge per network, a veth pair per endpoint, one nftables table."""

    name = "bridge"
    description = "Linux bridge per network, veth pair per container, nftables NAT/isolation"
    Config = BridgeConfig

    def __init__(self, context: DriverContext) -> None:
        super().__init__(context)
        self.config = _config(context)
        self._networks: dict[str, _Network] = {}
        self._lock = asyncio.Lock()
        self._firewall = (
            Firewall(self.config.firewall_table, find_nft() or "nft")
            if self.config.firewall
            else None
        )
        self._log = context.logger

    @classmethod
    async def probe(cls, context: DriverContext) -> None:
        """Root, netlink, a test bridge made and deleted, and (with ``firewall``) a working
        nft that takes the driver's kind of ruleset."""
        if os.geteuid() != 0:
            raise DriverNotSupported("creating bridges and veth pairs needs root (CAP_NET_ADMIN)")
        config = _config(context)
        try:
            await links.try_bridge(f"pdprobe{secrets.token_hex(3)}")
        except OSError as e:
            raise DriverNotSupported(f"netlink is not usable: {e}") from e
        except NetlinkError as e:
            raise DriverNotSupported(f"the kernel refuses to create a bridge: {e}") from e
        if not config.firewall:
            return
        nft = find_nft()
        if nft is None:
            raise DriverNotSupported(
                "nft is not installed (apt install nftables), or set firewall = false "
                '[plugins."network.bridge"] to run without NAT and isolation'
            )
        await Firewall(config.firewall_table, nft).check()

    def _parse(self, network: NetworkConfig) -> _Network:
        return _parse_network(network, self.config)

    async def _apply_rules(self) -> None:
        if self._firewall is not None:
            await self._firewall.apply(n.rules for n in self._networks.values())

    async def create_network(self, network: NetworkConfig) -> None:
        """The bridge, its gateway address, up; forwarding on; the table rebuilt (first, so
        the bridge never forwards without its rules).

        :raises Conflict: the device exists and is not a bridge, or another network of this
            instance has it.
        """
        parsed = self._parse(network)
        if parsed.rules.icc is False and not _br_netfilter():
            raise InvalidParameter(
                f"{OPT_ICC}=false needs br_netfilter with bridge-nf-call-iptables=1 "
                "(modprobe br_netfilter)"
            )
        async with self._lock:
            for other_id, other in self._networks.items():
                if other.device == parsed.device and other_id != network.id:
                    raise Conflict(f"bridge {parsed.device} belongs to another network")
            previous = self._networks.get(network.id)
            self._networks[network.id] = parsed
            try:
                await self._apply_rules()
                await links.ensure_bridge(parsed.device, parsed.rules.gateway, parsed.mtu)
            except BaseException:
                if previous is None:
                    del self._networks[network.id]
                else:
                    self._networks[network.id] = previous
                try:
                    await self._apply_rules()
                except Exception as e:  # the first error is the one to report
                    self._log.warning("rules not restored after a failed create: {}", e)
                raise
        if self.config.ip_forward and await asyncio.to_thread(_enable_ip_forward):
            self._log.info("turned IPv4 forwarding on (net.ipv4.ip_forward=1)")
        self._log.debug("network {} on bridge {}", network.name, parsed.device)

    async def delete_network(self, network: NetworkConfig) -> None:
        """The bridge deleted (a device of that name that is not a bridge stays), then the
        table rebuilt without the network (deleted with the last one)."""
        device = _device(network.device, "bridge")
        async with self._lock:
            await links.delete_bridge(device)
            self._networks.pop(network.id, None)
            await self._apply_rules()
        self._log.debug("network {} deleted with bridge {}", network.name, device)

    async def join(self, network: NetworkConfig, endpoint: EndpointConfig, netns: Path) -> None:
        """A veth pair: ``veth<endpoint id[:11]>`` on the bridge, ``endpoint.interface`` in
        ``netns`` with the endpoint's MAC and address, up, ``lo`` up, and the default route
        when asked for. Joining again only configures it again.

        :raises NotFound: the bridge or the namespace is gone.
        :raises Conflict: a name is taken by something else.
        """
        attachment = _parse_endpoint(self._parse(network), endpoint)
        started = time.perf_counter()
        await links.attach(attachment, netns)
        self._log.debug(
            "endpoint {} joined {} as {} in {:.1f} ms",
            endpoint.id[:12],
            network.name,
            endpoint.interface,
            (time.perf_counter() - started) * 1000,
        )

    async def leave(
        self, network: NetworkConfig, endpoint: EndpointConfig, netns: Path | None
    ) -> None:
        """The veth pair deleted through its host end, whatever ``netns`` is: deleting one
        end deletes both, and the namespace is never entered."""
        await links.detach(_device(network.device, "bridge"), links.host_end_name(endpoint.id))


def _br_netfilter() -> bool:
    try:
        return BR_NETFILTER.read_text().strip() == "1"
    except OSError:
        return False
