"""The storage-driver conformance suite (:mod:`pydockerd.testing.storage`) run against vfs."""

from __future__ import annotations

from pydockerd.testing.storage import StorageDriverSuite
from pydockerd_storage_vfs.driver import VfsDriver


class TestVfsConformance(StorageDriverSuite):
    driver_class = VfsDriver
    makes_mounts = False  # a layer is a plain directory
