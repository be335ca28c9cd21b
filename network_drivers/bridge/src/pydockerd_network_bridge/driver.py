"""The bridge network driver: containers on a Linux bridge through veth pairs."""

from __future__ import annotations

import os

from pydockerd.plugin import DriverContext, DriverNotSupported, NetworkDriver
from pyroute2 import AsyncIPRoute
from pyroute2.netlink.exceptions import NetlinkError

__all__ = ["BridgeDriver"]


class BridgeDriver(NetworkDriver):
    """A Linux bridge per network, a veth pair per endpoint."""

    name = "bridge"
    description = "Linux bridge per network, veth pair per container"

    @classmethod
    async def probe(cls, context: DriverContext) -> None:
        """Netlink must answer, and we must be allowed to create links."""
        if os.geteuid() != 0:
            raise DriverNotSupported("creating bridges and veth pairs needs root (CAP_NET_ADMIN)")
        try:
            async with AsyncIPRoute() as ipr:
                if not await ipr.link_lookup(ifname="lo"):
                    raise DriverNotSupported("netlink lists no loopback interface")
        except (OSError, NetlinkError) as e:
            raise DriverNotSupported(f"netlink is not usable: {e}") from e
