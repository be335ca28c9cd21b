"""Addresses for networks and endpoints (the daemon's own IPAM, as Docker's default one).

Subnets for user-defined networks come from the address pool, the first free block that
overlaps neither another network of this daemon nor a route the host already has (so a
network never hides a LAN the host reaches). An endpoint gets the lowest free address of its
network's range; the gateway, the network address and the broadcast address are never given.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from pathlib import Path

from pydockerd.errors import Conflict, InvalidParameter

__all__ = [
    "Network4",
    "allocate_address",
    "choose_subnet",
    "host_routes",
    "mac_for",
    "overlapping",
]

Network4 = ipaddress.IPv4Network


def host_routes(route_table: Path = Path("/proc/net/route")) -> list[Network4]:
    """The IPv4 destinations the host routes (not the default route), from the kernel."""
    routes: list[Network4] = []
    try:
        lines = route_table.read_text().splitlines()[1:]
    except OSError:
        return routes
    for line in lines:
        fields = line.split()
        if len(fields) < 8:
            continue
        destination = int(fields[1], 16).to_bytes(4, "little")
        mask = int(fields[7], 16).to_bytes(4, "little")
        network = ipaddress.IPv4Network(
            (ipaddress.IPv4Address(destination), ipaddress.IPv4Address(mask).compressed),
            strict=False,
        )
        if network.prefixlen:  # the default route overlaps everything
            routes.append(network)
    return routes


def overlapping(subnet: Network4, others: Iterable[Network4]) -> Network4 | None:
    """The first of ``others`` that overlaps ``subnet``."""
    return next((other for other in others if subnet.overlaps(other)), None)


def choose_subnet(pool: Network4, prefix_length: int, taken: Sequence[Network4]) -> Network4:
    """The first ``/prefix_length`` block of ``pool`` that overlaps nothing in ``taken``.

    :raises Conflict: the pool is exhausted (Docker's message).
    """
    if prefix_length < pool.prefixlen:
        raise InvalidParameter(
            f"the address pool {pool} is smaller than a /{prefix_length} network"
        )
    for candidate in pool.subnets(new_prefix=prefix_length):
        if overlapping(candidate, taken) is None:
            return candidate
    raise Conflict(
        "all predefined address pools have been fully subnetted"
        f" (pool {pool}; free some networks or widen network.address_pool)"
    )


def allocate_address(
    subnet: Network4,
    used: Iterable[ipaddress.IPv4Address],
    *,
    ip_range: Network4 | None = None,
    wanted: str | None = None,
) -> ipaddress.IPv4Address:
    """An address of ``subnet`` nobody has: ``wanted`` if given, else the lowest free one of
    ``ip_range`` (the whole subnet by default).

    :raises InvalidParameter: ``wanted`` is not an address of the subnet.
    :raises Conflict: ``wanted`` is taken, or no address is left.
    """
    taken = set(used) | {subnet.network_address, subnet.broadcast_address}
    if wanted:
        try:
            address = ipaddress.IPv4Address(wanted)
        except ValueError:
            raise InvalidParameter(f"invalid IPv4 address: {wanted}") from None
        if address not in subnet:
            raise InvalidParameter(
                f"no configured subnet or ip-range contain the IP address {wanted}"
            )
        if address in taken:
            raise Conflict("Address already in use")
        return address
    for address in (ip_range or subnet).hosts():
        if address in subnet and address not in taken:
            return address
    raise Conflict(f"no available IPv4 addresses on this network's address pools: {subnet}")


def mac_for(address: ipaddress.IPv4Address) -> str:
    """Docker's MAC for an address: ``02:42`` and the address's four bytes."""
    return "02:42:" + ":".join(f"{b:02x}" for b in address.packed)
