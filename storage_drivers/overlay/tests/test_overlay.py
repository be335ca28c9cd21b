"""The overlay driver: registration through its real entry point, and its probe for real
(a real overlay mount as root; refusals where overlayfs honestly cannot work)."""

from __future__ import annotations

import functools
import importlib.metadata
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydockerd.plugin import (
    DriverNotSupported,
    DriverRegistry,
    Mount,
    PluginLoadError,
    StorageDriver,
    mount,
    unmount,
)
from pydockerd.testing.drivers import driver_context, probe_as_user, register_from_entry_point
from pydockerd_storage_overlay import driver as driver_module
from pydockerd_storage_overlay.driver import OverlayDriver, overlay_in_kernel

NOBODY = 65534
MNT_DETACH = 2


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    """A short directory under /tmp (mount options and socket paths stay small)."""
    path = Path(tempfile.mkdtemp(prefix="pdo-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def mounts() -> list[str]:
    return Path("/proc/self/mounts").read_text().splitlines()


def probe_as(uid: int, directory: Path) -> str:
    return probe_as_user(OverlayDriver, driver_context(directory), uid)


# --------------------------------------------------------------------------------------
# registration


def test_the_entry_point_is_installed() -> None:
    (ep,) = [e for e in importlib.metadata.entry_points(group="pydockerd") if e.name == "overlay"]
    assert ep.value == "pydockerd_storage_overlay.plugin"
    assert ep.dist is not None
    assert ep.dist.name == "pydockerd-storage-overlay"


def test_loading_the_entry_point_registers_the_driver() -> None:
    registry = register_from_entry_point("overlay", StorageDriver)
    assert registry.names() == ["overlay"]
    assert registry.get("overlay") is OverlayDriver


def test_the_hook_registers_into_a_registry_once() -> None:
    (ep,) = [e for e in importlib.metadata.entry_points(group="pydockerd") if e.name == "overlay"]
    module = ep.load()
    registry: DriverRegistry[StorageDriver] = DriverRegistry(StorageDriver)
    module.pydockerd_register_storage_drivers(registry=registry)
    with pytest.raises(PluginLoadError, match="'overlay' is registered twice"):
        module.pydockerd_register_storage_drivers(registry=registry)


def test_driver_description() -> None:
    assert OverlayDriver.kind == "storage"
    assert OverlayDriver.interface == "pydockerd.storage.v1"
    assert OverlayDriver.qualified_name() == "storage.overlay"
    assert OverlayDriver.priority < 90, "preferred over vfs"


# --------------------------------------------------------------------------------------
# the probe


@pytest.mark.privileged
async def test_probe_passes_and_leaves_no_mount_and_no_file(short_tmp: Path) -> None:
    assert os.geteuid() == 0, "privileged tests run as root"
    assert overlay_in_kernel(), "this host's kernel has overlayfs"
    before = mounts()
    context = driver_context(short_tmp)
    await OverlayDriver.probe(context)
    assert mounts() == before
    assert not any(str(short_tmp) in line for line in mounts())
    assert list(context.scratch_dir.iterdir()) == []
    assert not context.state_dir.exists(), "a probe never creates the state directory"


@pytest.mark.privileged
async def test_probe_skips_where_an_upper_dir_cannot_live(short_tmp: Path) -> None:
    """overlayfs cannot use an overlay mount for its upper directory: a data-root on such a
    filesystem gets skip, with the kernel's refusal in the reason."""
    layers = short_tmp / "outer"
    for name in ("lower", "upper", "work", "merged"):
        (layers / name).mkdir(parents=True)
    merged = layers / "merged"
    mount(
        Mount(
            "overlay",
            "overlay",
            (
                f"lowerdir={layers / 'lower'}",
                f"upperdir={layers / 'upper'}",
                f"workdir={layers / 'work'}",
            ),
        ),
        merged,
    )
    try:
        before = mounts()
        context = driver_context(short_tmp, scratch_dir=merged / "scratch")
        with pytest.raises(DriverNotSupported) as caught:
            await OverlayDriver.probe(context)
        assert str(caught.value).startswith(
            "overlayfs does not work on the data-root's filesystem: mount -t overlay overlay "
        )
        assert mounts() == before, "no half-made mount is left"
        assert list(context.scratch_dir.iterdir()) == []
    finally:
        try:
            unmount(merged)
        except Exception:
            unmount(merged, MNT_DETACH)
    assert not any(str(short_tmp) in line for line in mounts())


@pytest.mark.privileged
def test_probe_skips_without_root(short_tmp: Path) -> None:
    short_tmp.chmod(0o777)
    assert probe_as(NOBODY, short_tmp) == "skip: mounting overlayfs needs root (CAP_SYS_ADMIN)"
    assert probe_as(0, short_tmp) == "ok", "the same probe in the same way, as root"


async def test_probe_skips_when_the_kernel_has_no_overlayfs(
    short_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = short_tmp / "filesystems"
    fake.write_text("nodev\tsysfs\nnodev\ttmpfs\n\text4\n\tvfat\n")
    monkeypatch.setattr(
        driver_module, "overlay_in_kernel", functools.partial(overlay_in_kernel, fake)
    )
    context = driver_context(short_tmp)
    if os.geteuid() != 0:
        pytest.skip("the root check comes first")
    with pytest.raises(DriverNotSupported, match=r"the kernel has no overlayfs \(try: modprobe"):
        await OverlayDriver.probe(context)
    assert not context.scratch_dir.exists(), "nothing was tried"


@pytest.mark.parametrize(
    ("content", "known"),
    [
        ("nodev\tsysfs\nnodev\toverlay\n\text4\n", True),
        ("nodev\tsysfs\n\text4\n", False),
        ("nodev\toverlayfs\n", False),  # the name must be exact
        ("", False),
    ],
)
def test_overlay_in_kernel_reads_the_filesystems_list(
    short_tmp: Path, content: str, known: bool
) -> None:
    fake = short_tmp / "filesystems"
    fake.write_text(content)
    assert overlay_in_kernel(fake) is known


def test_overlay_in_kernel_without_the_list(short_tmp: Path) -> None:
    assert overlay_in_kernel(short_tmp / "missing") is False


def test_overlay_in_kernel_agrees_with_the_running_kernel() -> None:
    names = [line.split()[-1] for line in Path("/proc/filesystems").read_text().splitlines()]
    assert overlay_in_kernel() is ("overlay" in names)
