"""The storage-driver selection policy (selection.py): named, prior state, priority, nothing.

Rows are produced the way the daemon produces them: drivers registered by a plugin and
probed by :class:`PluginManager`; prior state is a real file in the driver's state directory.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from pydockerd.errors import ConfigError
from pydockerd.manager import ComponentStatus, PluginManager
from pydockerd.plugin import DriverContext, DriverNotSupported, StorageDriver
from pydockerd.selection import select_storage_driver

from .helpers import plugin, registers


def driver(name: str, priority: int, skip: str = "") -> type[StorageDriver]:
    async def probe(cls: type[StorageDriver], context: DriverContext) -> None:
        if skip:
            raise DriverNotSupported(skip)

    return type(
        f"Driver_{name}",
        (StorageDriver,),
        {"name": name, "priority": priority, "probe": classmethod(probe)},
    )


OVERLAY = driver("overlay", 10)
VFS = driver("vfs", 90)
BTRFS = driver("btrfs", 50)
ZFS = driver("zfs", 50)
NO_OVERLAY = driver("overlay", 10, skip="the kernel has no overlayfs")
NO_VFS = driver("vfs", 90, skip="not writable")


async def probed(
    tmp: Path, *drivers: type[StorageDriver], state: tuple[str, ...] = ()
) -> list[ComponentStatus]:
    """The storage rows after registering and probing ``drivers``, with a layer already in the
    state directory of each driver named in ``state``."""
    data = tmp / "data"
    for name in state:
        (data / "storage" / name / "layers" / "sha256-abc").mkdir(parents=True)
    manager = PluginManager()
    manager.load_module(*plugin("drivers", pydockerd_register_storage_drivers=registers(*drivers)))
    await manager.run_registrations()
    await manager.probe_all(data, tmp / "exec", {}, scratch_dir=tmp / "scr")
    return [row for row in manager.components if row.kind == "storage"]


async def test_named_and_installed(tmp_path: Path) -> None:
    rows = await probed(tmp_path, OVERLAY, VFS)
    chosen = select_storage_driver(rows, "vfs")
    assert (chosen.component.name, chosen.rule) == ("vfs", "named in the configuration")


async def test_named_wins_over_prior_state_of_another(tmp_path: Path) -> None:
    rows = await probed(tmp_path, OVERLAY, VFS, state=("overlay",))
    assert select_storage_driver(rows, "vfs").component.name == "vfs"


async def test_named_but_not_installed_lists_the_installed(tmp_path: Path) -> None:
    rows = await probed(tmp_path, OVERLAY, VFS)
    with pytest.raises(ConfigError) as caught:
        select_storage_driver(rows, "zfs")
    assert str(caught.value) == "storage driver 'zfs' is not installed (installed: overlay, vfs)"


def test_named_with_nothing_installed() -> None:
    with pytest.raises(ConfigError, match=r"'vfs' is not installed \(installed: none\)"):
        select_storage_driver([], "vfs")


async def test_named_but_skipped(tmp_path: Path) -> None:
    rows = await probed(tmp_path, NO_OVERLAY, VFS)
    with pytest.raises(ConfigError) as caught:
        select_storage_driver(rows, "overlay")
    assert str(caught.value) == (
        "storage driver 'overlay' (named in the configuration) cannot be used: "
        "skip: the kernel has no overlayfs"
    )


async def test_prior_state_with_one_driver(tmp_path: Path) -> None:
    rows = await probed(tmp_path, OVERLAY, VFS, state=("vfs",))
    chosen = select_storage_driver(rows, "")
    assert (chosen.component.name, chosen.rule) == ("vfs", "prior state in the data-root")


async def test_an_empty_state_directory_is_no_prior_state(tmp_path: Path) -> None:
    (tmp_path / "data" / "storage" / "vfs").mkdir(parents=True)
    rows = await probed(tmp_path, OVERLAY, VFS)
    assert select_storage_driver(rows, "").component.name == "overlay"


async def test_prior_state_of_a_driver_that_cannot_run_is_refused(tmp_path: Path) -> None:
    """The daemon does not silently abandon existing images for another driver."""
    rows = await probed(tmp_path, NO_OVERLAY, VFS, state=("overlay",))
    with pytest.raises(ConfigError) as caught:
        select_storage_driver(rows, "")
    assert str(caught.value) == (
        "storage driver 'overlay' (it holds the existing state) cannot be used: "
        "skip: the kernel has no overlayfs"
    )


async def test_prior_state_of_a_misconfigured_driver_is_refused(tmp_path: Path) -> None:
    """A typo in the driver's config section must not switch the daemon to another driver."""
    data = tmp_path / "data"
    (data / "storage" / "overlay" / "layers").mkdir(parents=True)
    manager = PluginManager()
    manager.load_module(
        *plugin("drivers", pydockerd_register_storage_drivers=registers(OVERLAY, VFS))
    )
    await manager.run_registrations()
    await manager.probe_all(
        data, tmp_path / "exec", {"storage.overlay": {"typo": 1}}, scratch_dir=tmp_path / "s"
    )
    rows = [row for row in manager.components if row.kind == "storage"]
    with pytest.raises(ConfigError, match=r"'overlay' \(it holds the existing state\) cannot"):
        select_storage_driver(rows, "")


async def test_prior_state_in_two_drivers_is_refused(tmp_path: Path) -> None:
    rows = await probed(tmp_path, OVERLAY, VFS, BTRFS, state=("vfs", "overlay"))
    with pytest.raises(ConfigError) as caught:
        select_storage_driver(rows, "")
    assert str(caught.value) == (
        "several storage drivers have state in the data-root (overlay, vfs); "
        "name one with storage_driver in daemon.toml or --storage-driver"
    )


async def test_priority_order_of_the_drivers_that_probed_ok(tmp_path: Path) -> None:
    rows = await probed(tmp_path, VFS, ZFS, BTRFS, OVERLAY)
    chosen = select_storage_driver(rows, "")
    assert (chosen.component.name, chosen.rule) == (
        "overlay",
        "highest priority of the drivers that probed ok",
    )
    rows = await probed(tmp_path / "2", VFS, ZFS, BTRFS, NO_OVERLAY)
    assert select_storage_driver(rows, "").component.name == "btrfs", "a tie goes by name"


async def test_nothing_ok(tmp_path: Path) -> None:
    rows = await probed(tmp_path, NO_OVERLAY, NO_VFS)
    with pytest.raises(ConfigError) as caught:
        select_storage_driver(rows, "")
    assert str(caught.value) == (
        "no storage driver can run on this host (overlay: skip: the kernel has no overlayfs; "
        "vfs: skip: not writable)"
    )


def test_nothing_installed() -> None:
    with pytest.raises(ConfigError, match=r"no storage driver can run on this host \(none inst"):
        select_storage_driver([], "")
