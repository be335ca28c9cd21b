"""The vfs driver registers through its entry point and probes its scratch directory."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import pytest
from loguru import logger
from pydockerd.plugin import (
    DriverConfig,
    DriverContext,
    DriverNotSupported,
    DriverRegistry,
    Mount,
    StorageDriver,
    mount,
    unmount,
)
from pydockerd_storage_vfs.driver import VfsDriver


def test_entry_point_registers_the_driver() -> None:
    (ep,) = [e for e in importlib.metadata.entry_points(group="pydockerd") if e.name == "vfs"]
    registry: DriverRegistry[StorageDriver] = DriverRegistry(StorageDriver)
    ep.load().pydockerd_register_storage_drivers(registry=registry)
    assert registry.get("vfs") is VfsDriver


async def test_probe_accepts_a_writable_directory(tmp_path: Path) -> None:
    await VfsDriver.probe(
        DriverContext(
            state_dir=tmp_path,
            run_dir=tmp_path,
            scratch_dir=tmp_path / "s",
            config=DriverConfig(),
            logger=logger,
        )
    )
    assert (tmp_path / "s").is_dir()


@pytest.mark.privileged
async def test_probe_skips_a_read_only_filesystem(tmp_path: Path) -> None:
    """A read-only mount (root may write anywhere else)."""
    scratch = tmp_path / "ro"
    scratch.mkdir()
    mount(Mount("tmpfs", "tmpfs", ("ro", "size=1m")), scratch)
    try:
        with pytest.raises(DriverNotSupported, match=f"{scratch} is not writable"):
            await VfsDriver.probe(
                DriverContext(
                    state_dir=tmp_path,
                    run_dir=tmp_path,
                    scratch_dir=scratch,
                    config=DriverConfig(),
                    logger=logger,
                )
            )
    finally:
        unmount(scratch)
