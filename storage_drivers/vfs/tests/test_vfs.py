"""The vfs driver: registration through its real entry point, and its probe for real (a
writable directory is enough; an unwritable one is a skip)."""

from __future__ import annotations

import importlib.metadata
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydockerd.plugin import DriverNotSupported, StorageDriver
from pydockerd.testing.drivers import (
    driver_context,
    mount_safe_directory,
    probe_as_user,
    register_from_entry_point,
)
from pydockerd.testing.fixtures import read_only_directory
from pydockerd_storage_vfs.driver import VfsDriver

NOBODY = 65534


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    """A short directory under /tmp, mode 0755 (the probes below run as nobody, who must
    look inside); no mount outlives it."""
    with mount_safe_directory("pdv-") as path:
        yield path


def mounts() -> str:
    return Path("/proc/self/mounts").read_text()


def probe_as(uid: int, directory: Path, scratch: Path) -> str:
    """Root may write anywhere, so an unwritable directory needs another user."""
    return probe_as_user(VfsDriver, driver_context(directory, scratch_dir=scratch), uid)


def test_the_entry_point_is_installed() -> None:
    (ep,) = [e for e in importlib.metadata.entry_points(group="pydockerd") if e.name == "vfs"]
    assert ep.value == "pydockerd_storage_vfs.plugin"
    assert ep.dist is not None
    assert ep.dist.name == "pydockerd-storage-vfs"


def test_loading_the_entry_point_registers_the_driver() -> None:
    registry = register_from_entry_point("vfs", StorageDriver)
    assert registry.names() == ["vfs"]
    assert registry.get("vfs") is VfsDriver
    assert VfsDriver.qualified_name() == "storage.vfs"
    assert VfsDriver.priority == 90


async def test_probe_accepts_a_writable_directory(short_tmp: Path) -> None:
    context = driver_context(short_tmp)
    await VfsDriver.probe(context)
    assert context.scratch_dir.is_dir()
    assert list(context.scratch_dir.iterdir()) == []
    assert not context.state_dir.exists(), "a probe never creates the state directory"


@pytest.mark.privileged
def test_probe_skips_a_directory_the_daemon_cannot_write(short_tmp: Path) -> None:
    scratch = short_tmp / "scratch"
    scratch.mkdir(mode=0o755)  # root's: nobody cannot write it
    assert probe_as(NOBODY, short_tmp, scratch) == f"skip: {scratch} is not writable"
    scratch.chmod(0o777)
    assert probe_as(NOBODY, short_tmp, scratch) == "ok", "the same user, a writable directory"


@pytest.mark.privileged
async def test_probe_skips_a_read_only_filesystem(short_tmp: Path) -> None:
    """Read-only is the one thing root cannot write through."""
    with read_only_directory(short_tmp / "ro") as scratch:
        with pytest.raises(DriverNotSupported) as caught:
            await VfsDriver.probe(driver_context(short_tmp, scratch_dir=scratch))
        assert str(caught.value) == f"{scratch} is not writable"
    assert str(short_tmp) not in mounts()
