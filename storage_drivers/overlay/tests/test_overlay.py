"""The overlay driver registers through its entry point and probes with a real mount."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydockerd.plugin import DriverNotSupported, StorageDriver
from pydockerd.testing.drivers import driver_context, register_from_entry_point
from pydockerd_storage_overlay.driver import OverlayDriver, overlay_in_kernel


def mounts() -> str:
    return Path("/proc/self/mounts").read_text()


def test_entry_point_registers_the_driver() -> None:
    assert register_from_entry_point("overlay", StorageDriver).get("overlay") is OverlayDriver


@pytest.mark.privileged
async def test_probe_mounts_for_real_and_leaves_nothing(tmp_path: Path) -> None:
    assert os.geteuid() == 0, "the suite runs as root"
    before = mounts()
    await OverlayDriver.probe(driver_context(tmp_path))
    assert mounts() == before
    assert list((tmp_path / "scratch").iterdir()) == []


async def test_probe_skips_without_overlay_in_the_kernel(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = tmp_path / "filesystems"
    fake.write_text("nodev\tsysfs\nnodev\ttmpfs\n\text4\n")
    assert overlay_in_kernel(fake) is False
    monkeypatch.setattr("pydockerd_storage_overlay.driver.overlay_in_kernel", lambda: False)
    with pytest.raises(DriverNotSupported, match="the kernel has no overlayfs"):
        await OverlayDriver.probe(driver_context(tmp_path))


def test_kernel_list_is_read() -> None:
    assert overlay_in_kernel() is ("overlay" in Path("/proc/filesystems").read_text())
