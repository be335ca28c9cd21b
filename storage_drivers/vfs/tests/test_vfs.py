"""The vfs driver registers through its entry point and probes its scratch directory."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydockerd.plugin import DriverNotSupported, Mount, StorageDriver, mount, unmount
from pydockerd.testing.drivers import driver_context, register_from_entry_point
from pydockerd_storage_vfs.driver import VfsDriver


def test_entry_point_registers_the_driver() -> None:
    assert register_from_entry_point("vfs", StorageDriver).get("vfs") is VfsDriver


async def test_probe_accepts_a_writable_directory(tmp_path: Path) -> None:
    await VfsDriver.probe(driver_context(tmp_path))
    assert (tmp_path / "scratch").is_dir()


@pytest.mark.privileged
async def test_probe_skips_a_read_only_filesystem(tmp_path: Path) -> None:
    """A read-only mount (root may write anywhere else)."""
    scratch = tmp_path / "ro"
    scratch.mkdir()
    mount(Mount("tmpfs", "tmpfs", ("ro", "size=1m")), scratch)
    try:
        with pytest.raises(DriverNotSupported, match=f"{scratch} is not writable"):
            await VfsDriver.probe(driver_context(tmp_path, scratch_dir=scratch))
    finally:
        unmount(scratch)
