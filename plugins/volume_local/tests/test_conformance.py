"""The volume-driver conformance suite (:mod:`pydockerd.testing.volumes`) run against local,
with plain volumes and (as root) tmpfs volumes mounted by options."""

from __future__ import annotations

from pydockerd.testing.volumes import VolumeDriverSuite
from pydockerd_volume_local.driver import LocalDriver


class TestLocalConformance(VolumeDriverSuite):
    driver_class = LocalDriver
    mount_options = {"type": "tmpfs", "device": "tmpfs", "o": "size=8m,mode=0755"}
