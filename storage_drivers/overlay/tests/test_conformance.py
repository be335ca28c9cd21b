"""The storage-driver conformance suite (:mod:`pydockerd.testing.storage`) run against
overlay, plus what only overlay has: chains deeper than a page of mount options."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from pydockerd.testing.storage import (
    StorageDriverSuite,
    cleanup_driver,
    make_driver,
    mounts_under,
)
from pydockerd_storage_overlay.driver import OverlayDriver, overlay_in_kernel

if os.geteuid() != 0:
    pytest.skip("overlay mounts need root (CAP_SYS_ADMIN)", allow_module_level=True)
if not overlay_in_kernel():
    pytest.skip("the kernel has no overlayfs", allow_module_level=True)

pytestmark = pytest.mark.privileged

PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


class TestOverlayConformance(StorageDriverSuite):
    makes_mounts = True  # layers with parents are overlay mounts

    @pytest.fixture
    async def storage_driver(self, conformance_dir: Path) -> AsyncIterator[OverlayDriver]:
        driver = make_driver(OverlayDriver, conformance_dir / "driver")
        try:
            yield driver
        finally:
            await cleanup_driver(driver)

    async def test_a_deep_chain_overflows_a_page_of_mount_options(
        self, storage_driver: OverlayDriver
    ) -> None:
        """The 120-layer chain of the suite needs the new mount API: its lower directories
        do not fit in the one page the classic mount(2) takes."""
        ids = await self.chain(storage_driver, 120)
        top = storage_driver.context.state_dir / ids[-1]
        lowers = (top / "lower").read_text().split(":")
        assert len(lowers) == 119
        classic = "lowerdir=" + ":".join(str(storage_driver.context.state_dir / x) for x in lowers)
        assert len(classic) > PAGE_SIZE
        path = await storage_driver.mount(ids[-1])
        try:
            assert (path / "f119").read_text() == "layer 119\n"
            assert not (path / "f118").exists()
            assert (path / "f000").exists() is False
            assert mounts_under(path) == [path]
        finally:
            await storage_driver.unmount(ids[-1])
        assert mounts_under(path) == []
