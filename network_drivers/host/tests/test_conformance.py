"""The host driver against the network-driver conformance suite: what applies to a driver
whose containers keep the host's namespace (create and delete make nothing, join is refused,
leave is fine); the rest is skipped."""

from __future__ import annotations

from pydockerd.testing.network import NetworkDriverSuite
from pydockerd_network_host.driver import HostDriver


class TestHostConformance(NetworkDriverSuite):
    driver_class = HostDriver
