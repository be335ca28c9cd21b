"""The bridge driver's netlink work (pyroute2): bridges, veth pairs, the container's side.

Everything runs on the daemon's event loop through :class:`AsyncIPRoute`; no process is
spawned. The container's side is configured through a netlink socket opened *inside* its
network namespace by a short-lived thread of its own (:func:`netlink_socket_in`), so no
thread of the daemon ever changes namespace and nothing is forked.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import os
import re
import socket
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Interface
from pathlib import Path
from typing import Any

from pydockerd.plugin import Conflict, InvalidParameter, NotFound, SystemError, linux
from pyroute2 import AsyncIPRoute
from pyroute2.netlink.exceptions import NetlinkError

__all__ = [
    "Attachment",
    "attach",
    "bridge_mac",
    "delete_bridge",
    "detach",
    "ensure_bridge",
    "host_end_name",
    "link_kind",
    "netlink_socket_in",
    "try_bridge",
]

LOOPBACK_INDEX = 1
"""``lo``'s index, the same in every network namespace (the kernel's ``LOOPBACK_IFINDEX``)."""
_NETLINK_ROUTE = 0
_HEX_ID = re.compile(r"^[0-9a-f]{11,}$")


@dataclass(frozen=True)
class Attachment:
    """One endpoint, as :func:`attach` makes it."""

    bridge: str
    host_name: str
    """The host end of the veth pair (:func:`host_end_name`)."""
    interface: str
    address: IPv4Interface
    mac: str
    gateway: IPv4Address | None
    """The default route's gateway, or ``None`` for no default route."""
    mtu: int | None = None


def host_end_name(endpoint_id: str) -> str:
    """The host end's name: ``veth`` and 11 hex digits of the endpoint ID (15 characters, the
    kernel's limit), so :func:`detach` finds it without any state."""
    if _HEX_ID.match(endpoint_id):
        return f"veth{endpoint_id[:11]}"
    return f"veth{hashlib.sha256(endpoint_id.encode()).hexdigest()[:11]}"


def bridge_mac(device: str) -> str:
    """A fixed, locally administered MAC for the bridge, made from its name: a bridge left to
    itself takes its lowest port's, and changes it (and its neighbours' ARP caches go stale)
    as containers come and go."""
    digest = hashlib.sha256(device.encode()).digest()
    return ":".join(f"{b:02x}" for b in (0x02, *digest[:5]))


def link_kind(link: Any) -> str:
    """``bridge``, ``veth``, ... (empty for a device without link info, like ``eth0``)."""
    return str(link.get(("linkinfo", "kind")) or "")


@contextlib.asynccontextmanager
async def _rtnl(what: str, **options: Any) -> AsyncIterator[Any]:
    """An :class:`AsyncIPRoute` whose netlink and OS errors become :class:`SystemError`s
    saying ``what`` failed."""
    try:
        async with AsyncIPRoute(**options) as ipr:
            yield ipr
    except (NetlinkError, OSError) as e:
        raise SystemError(f"{what}: {e}") from e


async def _get_link(ipr: Any, name: str) -> Any:
    try:
        (link,) = await ipr.link("get", ifname=name)
    except NetlinkError as e:
        if e.code == errno.ENODEV:
            return None
        raise
    return link


async def ensure_bridge(device: str, gateway: IPv4Interface, mtu: int | None) -> None:
    """The bridge ``device``, made or taken as it is, with ``gateway`` on it and up (other
    addresses on it stay: it may be the operator's).

    :raises Conflict: ``device`` exists and is not a bridge.
    :raises SystemError: netlink failed; a bridge this call made is deleted again.
    """
    async with _rtnl(f"bridge {device}") as ipr:
        link = await _get_link(ipr, device)
        created = link is None and await _add_bridge(ipr, device, mtu)
        if link is None:
            link = await _get_link(ipr, device)
        if link is None or link_kind(link) != "bridge":
            kind = link_kind(link) if link is not None else "gone"
            raise Conflict(f"{device} exists and is not a bridge (it is {kind or 'a device'})")
        try:
            await ipr.addr(
                "replace",
                index=link["index"],
                address=str(gateway.ip),
                prefixlen=gateway.network.prefixlen,
            )
            if mtu is not None:
                await ipr.link("set", index=link["index"], mtu=mtu)
            await ipr.link("set", index=link["index"], state="up")
        except BaseException:
            if created:
                with contextlib.suppress(NetlinkError):
                    await ipr.link("del", index=link["index"])
            raise


async def _add_bridge(ipr: Any, device: str, mtu: int | None) -> bool:
    """Make the bridge; whether this call made it (else a concurrent one did)."""
    spec: dict[str, Any] = {"ifname": device, "kind": "bridge", "address": bridge_mac(device)}
    if mtu is not None:
        spec["mtu"] = mtu
    try:
        await ipr.link("add", **spec)
    except NetlinkError as e:
        if e.code != errno.EEXIST:
            raise
        return False
    return True


async def delete_bridge(device: str) -> bool:
    """Delete the bridge ``device`` (its address, routes and ports' attachments go with it);
    whether there was one. A device of that name that is not a bridge is left alone."""
    async with _rtnl(f"delete bridge {device}") as ipr:
        link = await _get_link(ipr, device)
        if link is None or link_kind(link) != "bridge":
            return False
        try:
            await ipr.link("del", index=link["index"])
        except NetlinkError as e:
            if e.code == errno.ENODEV:
                return False
            raise
    return True


async def try_bridge(device: str) -> None:
    """Make the bridge ``device`` and delete it again (the probe's test).

    :raises OSError: netlink is not there.
    :raises NetlinkError: the kernel refused.
    """
    async with AsyncIPRoute() as ipr:
        await ipr.link("add", ifname=device, kind="bridge")
        (index,) = await ipr.link_lookup(ifname=device)
        await ipr.link("del", index=index)


def netlink_socket_in(nsfd: int) -> socket.socket:
    """A NETLINK_ROUTE socket in the network namespace ``nsfd``. A thread of its own enters
    the namespace, opens the socket and ends: the socket stays in that namespace for good,
    and no other thread ever changes its own."""
    made: list[socket.socket | OSError] = []

    def enter_and_open() -> None:
        try:
            linux.setns(nsfd, linux.CLONE_NEWNET)
            made.append(socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, _NETLINK_ROUTE))
        except OSError as e:
            made.append(e)

    thread = threading.Thread(target=enter_and_open, name="pydockerd-bridge-setns", daemon=True)
    thread.start()
    thread.join()
    (result,) = made
    if isinstance(result, OSError):
        raise result
    return result


def _open_netns(netns: Path) -> int:
    """An fd of the namespace ``netns``, which must not be the daemon's own (a container's
    first process that has not made its namespace yet shows the daemon's)."""
    try:
        fd = os.open(netns, os.O_RDONLY | os.O_CLOEXEC)
    except (FileNotFoundError, ProcessLookupError) as e:
        raise NotFound(f"the container's network namespace {netns} is gone") from e
    if os.fstat(fd).st_ino == Path("/proc/self/ns/net").stat().st_ino:
        os.close(fd)
        raise InvalidParameter(f"{netns} is the daemon's own network namespace")
    return fd


async def attach(attachment: Attachment, netns: Path) -> None:
    """Connect the namespace ``netns`` to the bridge: a veth pair whose host end is on the
    bridge and whose other end is made right inside ``netns`` (named, with its MAC), then
    configured there. Attaching what is attached already only configures it again.

    :raises NotFound: the bridge or the namespace is not there.
    :raises InvalidParameter: ``netns`` is the daemon's own namespace.
    :raises Conflict: the host end's name or the interface's is taken by something else.
    :raises SystemError: netlink failed; nothing of the endpoint is left.
    """
    a = attachment
    nsfd = _open_netns(netns)
    try:
        async with _rtnl(f"connect {a.interface} to {a.bridge}", nlm_echo=True) as host:
            pair = await _add_pair(host, a, nsfd)
            try:
                sock = await asyncio.to_thread(netlink_socket_in, nsfd)
                async with AsyncIPRoute(fileno=sock.detach()) as inside:
                    await _configure_inside(inside, a, pair)
                if not pair.created:  # now known to be this endpoint's: on the bridge, up
                    await host.link("set", index=pair.host_index, master=pair.bridge, state="up")
            except BaseException:
                if pair.created:
                    with contextlib.suppress(NetlinkError):
                        await host.link("del", index=pair.host_index)
                raise
    finally:
        os.close(nsfd)


@dataclass(frozen=True)
class _Pair:
    created: bool
    """Made by this call (else it was there: a join again, or a name taken)."""
    bridge: int
    host_index: int
    peer_index: int | None
    """The container end's index in its namespace, when this call made it."""


async def _add_pair(host: Any, a: Attachment, nsfd: int) -> _Pair:
    """Make the pair, unless its host end is there already."""
    bridge = await _get_link(host, a.bridge)
    if bridge is None or link_kind(bridge) != "bridge":
        raise NotFound(f"bridge {a.bridge} does not exist (the network was not created)")
    peer: dict[str, Any] = {"ifname": a.interface, "net_ns_fd": nsfd}
    spec: dict[str, Any] = {"ifname": a.host_name, "kind": "veth", "peer": peer}
    if a.mac:
        peer["address"] = a.mac
    if a.mtu is not None:
        spec["mtu"] = peer["mtu"] = a.mtu
    try:  # the socket echoes the new host end: its index, and its peer's
        (made,) = await host.link("add", master=bridge["index"], state="up", **spec)
        return _Pair(True, bridge["index"], int(made["index"]), made.get("link"))
    except NetlinkError as e:
        if e.code != errno.EEXIST:
            raise
    host_end = await _get_link(host, a.host_name)  # a join again, or a name taken
    if host_end is None:
        raise Conflict(f"the container already has an interface named {a.interface}")
    return _Pair(False, bridge["index"], int(host_end["index"]), None)


async def _configure_inside(inside: Any, a: Attachment, pair: _Pair) -> None:
    index = pair.peer_index
    if index is None:
        link = await _get_link(inside, a.interface)
        if link is None or link.get("link") != pair.host_index:
            raise Conflict(
                f"{a.host_name} (for this endpoint) is connected to another container, or "
                f"{a.interface} of this container to something else"
            )
        index = link["index"]
    await inside.addr(
        "replace", index=index, address=str(a.address.ip), prefixlen=a.address.network.prefixlen
    )
    await inside.link("set", index=index, state="up")
    await inside.link("set", index=LOOPBACK_INDEX, state="up")
    if a.gateway is not None:
        await inside.route("replace", dst="0.0.0.0/0", gateway=str(a.gateway))


async def detach(bridge: str, host_name: str) -> None:
    """Delete the veth pair whose host end is ``host_name``: both ends go, wherever the other
    one is, so the container's namespace is never entered (its ``/proc/<pid>`` may be a
    reused pid). A host end that is not a veth on ``bridge`` (or on no bridge: the bridge
    was deleted) is not ours and stays; a missing one is fine."""
    async with _rtnl(f"delete {host_name}") as host:
        link = await _get_link(host, host_name)
        if link is None or link_kind(link) != "veth":
            return
        master = link.get("master")
        if master is not None:
            owner = await _get_link(host, bridge)
            if owner is None or owner["index"] != master:
                return
        try:
            await host.link("del", index=link["index"])
        except NetlinkError as e:
            if e.code != errno.ENODEV:  # else the namespace went, and the pair with it
                raise
