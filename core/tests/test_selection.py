"""The storage-driver selection policy."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydockerd.errors import ConfigError
from pydockerd.manager import ComponentStatus, PluginRecord
from pydockerd.plugin import StorageDriver
from pydockerd.selection import select_storage_driver
from pydockerd.testing.drivers import driver_context


def row(
    tmp_path: Path, name: str, priority: int, status: str = "ok", state: bool = False
) -> ComponentStatus:
    driver = type(name.title(), (StorageDriver,), {"name": name, "priority": priority})
    context = driver_context(tmp_path / name)
    if state:
        (context.state_dir / "layer").mkdir(parents=True)
    return ComponentStatus(
        kind="storage",
        name=name,
        plugin=PluginRecord(name, "", "", ""),
        status=status,  # type: ignore[arg-type]
        reason="" if status == "ok" else "why not",
        driver=driver,
        context=context,
    )


def test_named_driver(tmp_path: Path) -> None:
    rows = [row(tmp_path, "overlay", 10), row(tmp_path, "vfs", 90)]
    assert select_storage_driver(rows, "vfs").component.name == "vfs"
    with pytest.raises(ConfigError, match=r"'zfs' is not installed \(installed: overlay, vfs\)"):
        select_storage_driver(rows, "zfs")


def test_named_driver_that_cannot_run(tmp_path: Path) -> None:
    rows = [row(tmp_path, "overlay", 10, status="skip")]
    with pytest.raises(ConfigError, match=r"'overlay' .* cannot be used: skip: why not"):
        select_storage_driver(rows, "overlay")


def test_priority_when_nothing_is_named(tmp_path: Path) -> None:
    rows = [
        row(tmp_path, "vfs", 90),
        row(tmp_path, "overlay", 10, status="skip"),
        row(tmp_path, "btrfs", 50),
    ]
    chosen = select_storage_driver(rows, "")
    assert (chosen.component.name, chosen.rule) == (
        "btrfs",
        "highest priority of the drivers that probed ok",
    )


def test_prior_state_wins_over_priority(tmp_path: Path) -> None:
    rows = [row(tmp_path, "overlay", 10), row(tmp_path, "vfs", 90, state=True)]
    chosen = select_storage_driver(rows, "")
    assert (chosen.component.name, chosen.rule) == ("vfs", "prior state in the data-root")


def test_prior_state_in_two_drivers_is_refused(tmp_path: Path) -> None:
    rows = [row(tmp_path, "overlay", 10, state=True), row(tmp_path, "vfs", 90, state=True)]
    with pytest.raises(ConfigError, match=r"several storage drivers have state .*overlay, vfs"):
        select_storage_driver(rows, "")


def test_nothing_can_run(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no storage driver can run on this host"):
        select_storage_driver([row(tmp_path, "overlay", 10, status="skip")], "")
