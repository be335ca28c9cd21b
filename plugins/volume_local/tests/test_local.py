"""What only the local driver has: Docker's layout and messages, and real mounts by options
(tmpfs, a bind of a host directory, ext4 on a loop device)."""

from __future__ import annotations

import asyncio
import importlib.metadata
import json
import os
import shutil
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from pydockerd.plugin import (
    Conflict,
    DriverNotSupported,
    InvalidParameter,
    Mount,
    MountFlag,
    SystemError,
    VolumeDriver,
    mount,
    mounted,
    unmount,
)
from pydockerd.testing.drivers import (
    detach_mounts_under,
    driver_context,
    make_driver,
    mount_safe_directory,
    mounts_under,
    probe_as_user,
    register_from_entry_point,
)
from pydockerd.testing.fixtures import read_only_directory
from pydockerd.testing.volumes import cleanup_volumes
from pydockerd_volume_local.driver import LocalDriver
from pydockerd_volume_local.options import MountOptions, parse_flags

ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not ROOT, reason="mounts need root")
NOBODY = 65534


@pytest.fixture
def base() -> Iterator[Path]:
    with mount_safe_directory("pdlv-") as path:
        yield path


@pytest.fixture
async def driver(base: Path) -> AsyncIterator[LocalDriver]:
    made = make_driver(LocalDriver, base / "driver")
    assert isinstance(made, LocalDriver)
    try:
        yield made
    finally:
        await cleanup_volumes(made)


@pytest.fixture
def host_dir(base: Path) -> Path:
    path = base / "host"
    path.mkdir()
    (path / "from-the-host").write_bytes(b"host data\n")
    return path


def mount_entry(path: Path) -> tuple[str, str]:
    """The filesystem type and super-block options of the mount on ``path``."""
    real = os.path.realpath(path)
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split(" ")
        if fields[4] == real:
            after = fields[fields.index("-") + 1 :]
            return after[0], after[2]
    raise AssertionError(f"{path} is not mounted")


# -- the package


def test_the_entry_point_registers_the_driver() -> None:
    (ep,) = [e for e in importlib.metadata.entry_points(group="pydockerd") if e.name == "local"]
    assert ep.dist is not None
    assert ep.dist.name == "pydockerd-volume-local"
    registry = register_from_entry_point("local", VolumeDriver)  # type: ignore[type-abstract]
    assert registry.get("local") is LocalDriver
    assert LocalDriver.qualified_name() == "volume.local"
    assert LocalDriver.scope == "local"


# -- layout


async def test_docker_s_layout(driver: LocalDriver) -> None:
    state = driver.context.state_dir
    info = await driver.create("plain", {})
    assert info.mountpoint == state / "plain" / "_data"
    assert info.status == {}, "Docker's local driver reports no Status"
    assert sorted(p.name for p in (state / "plain").iterdir()) == ["_data"]
    assert oct((state / "plain").stat().st_mode & 0o7777) == "0o701"
    assert oct(info.mountpoint.stat().st_mode & 0o7777) == "0o755"
    assert (info.mountpoint.stat().st_uid, info.mountpoint.stat().st_gid) == (
        os.getuid(),
        os.getgid(),
    )

    await driver.create("tmp", {"type": "tmpfs", "device": "tmpfs", "o": "size=1m,uid=1000"})
    stored = json.loads((state / "tmp" / "opts.json").read_bytes())
    assert stored == {
        "MountType": "tmpfs",
        "MountOpts": "size=1m,uid=1000",
        "MountDevice": "tmpfs",
        "Quota": {"Size": 0},
    }
    assert oct((state / "tmp" / "opts.json").stat().st_mode & 0o777) == "0o600"
    assert sorted(p.name for p in state.iterdir()) == ["plain", "tmp"], "no temporary left"


async def test_leftovers_of_a_crash_are_cleaned_and_never_listed(
    base: Path, driver: LocalDriver
) -> None:
    state = driver.context.state_dir
    (state / ".tmp-0123456789abcdef" / "_data").mkdir(parents=True)
    (state / "stray-file").write_bytes(b"")
    (state / "no-data-dir").mkdir()
    await driver.create("real", {})
    assert driver.names() == ["real"]
    LocalDriver(driver.context)
    assert not (state / ".tmp-0123456789abcdef").exists()
    assert driver.names() == ["real"]


# -- messages


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"foo": "bar"}, 'invalid option: "foo"'),
        ({"type": "tmpfs"}, 'missing required option: "device"'),
        ({"device": "/dev/sdz"}, 'missing required option: "type"'),
        ({"o": "size=1m"}, 'missing required option: "device"'),
        ({"o": "bind", "device": "/x"}, 'missing required option: "type"'),
        ({"size": "10m"}, "quota size requested but no quota support"),
        ({"size": "ten"}, "invalid size: 'ten'"),
        (
            {"type": "cifs", "device": "//host:445/share", "o": "username=u"},
            "port not allowed in CIFS device URL, include 'port' in 'o='",
        ),
    ],
)
async def test_bad_options_are_refused_with_docker_s_messages(
    driver: LocalDriver, options: dict[str, str], message: str
) -> None:
    with pytest.raises(InvalidParameter) as caught:
        await driver.create("vol", options)
    assert str(caught.value) == message
    assert driver.names() == []


async def test_name_messages(driver: LocalDriver) -> None:
    with pytest.raises(InvalidParameter) as caught:
        await driver.create("x", {})
    assert str(caught.value) == (
        "volume name is too short, names should be at least two alphanumeric characters"
    )
    with pytest.raises(InvalidParameter) as caught:
        await driver.create("a/b", {})
    assert str(caught.value) == (
        '"a/b" includes invalid characters for a local volume name, only '
        '"[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to pass a host directory, '
        "use absolute path"
    )
    with pytest.raises(InvalidParameter):
        await driver.create("a" * 256, {})
    await driver.create("a" * 255, {})
    await driver.create("size-0", {"size": "0"})  # no quota asked


async def test_create_is_strict(driver: LocalDriver) -> None:
    await driver.create("once", {})
    with pytest.raises(Conflict, match="volume once already exists"):
        await driver.create("once", {"type": "tmpfs", "device": "tmpfs"})
    (driver.context.state_dir / "stray").mkdir()
    with pytest.raises(SystemError, match="exists and is not a volume"):
        await driver.create("stray", {})


@pytest.mark.privileged
@needs_root
async def test_a_damaged_users_record_is_ignored(driver: LocalDriver) -> None:
    await driver.create("tmp", {"type": "tmpfs", "device": "tmpfs", "o": "size=1m"})
    path = await driver.mount("tmp", "c1")
    (driver.context.run_dir / "tmp.users").write_bytes(b"[not, json")
    await driver.mount("tmp", "c2")
    await driver.unmount("tmp", "c2")
    assert not mounted(path), "c2 was the only user known"


def test_mount_flags_as_moby_sys_mount_reads_them() -> None:
    assert parse_flags("bind,ro") == (MountFlag.BIND | MountFlag.RDONLY, "")
    assert parse_flags("size=10m,uid=1000,nosuid") == (MountFlag.NOSUID, "size=10m,uid=1000")
    assert parse_flags("ro,rw,,addr=1.2.3.4") == (0, "addr=1.2.3.4")
    # moby's table maps "defaults" to no flag, so it goes to the filesystem as data
    assert parse_flags("defaults,noexec") == (MountFlag.NOEXEC, "")  # not passed on as data


def test_an_nfs_server_name_is_resolved() -> None:
    options = MountOptions("nfs", ":/export", "addr=localhost,vers=4,soft")
    assert options._resolved() in ("addr=127.0.0.1,vers=4,soft", "addr=::1,vers=4,soft")
    options = MountOptions("nfs", ":/export", "addr=10.0.0.1,vers=4")
    assert options._resolved() == "addr=10.0.0.1,vers=4"


async def test_usage(driver: LocalDriver, base: Path) -> None:
    info = await driver.create("plain", {})
    (info.mountpoint / "a").write_bytes(b"x" * 5000)
    os.link(info.mountpoint / "a", info.mountpoint / "hard")
    (info.mountpoint / "link").symlink_to("/etc/passwd")
    assert await driver.usage("plain") == 5000, "hard links once, symlinks not followed"
    await driver.create("tmp", {"type": "tmpfs", "device": "tmpfs"})
    assert await driver.usage("tmp") == -1, "not the data-root's bytes (Docker skips them)"


# -- probe


async def test_probe_accepts_a_writable_directory(base: Path) -> None:
    context = driver_context(base)
    await LocalDriver.probe(context)
    assert list(context.scratch_dir.iterdir()) == []
    assert not context.state_dir.exists(), "a probe never creates the state directory"


@pytest.mark.privileged
@pytest.mark.skipif(not ROOT, reason="needs another user")
def test_probe_skips_a_directory_the_daemon_cannot_write(base: Path) -> None:
    scratch = base / "scratch"
    scratch.mkdir(mode=0o755)
    result = probe_as_user(LocalDriver, driver_context(base, scratch_dir=scratch), NOBODY)
    assert result == f"skip: {scratch} is not writable: Permission denied"


@pytest.mark.privileged
@needs_root
async def test_probe_skips_a_read_only_filesystem(base: Path) -> None:
    with read_only_directory(base / "ro") as scratch:
        with pytest.raises(DriverNotSupported) as caught:
            await LocalDriver.probe(driver_context(base, scratch_dir=scratch))
        assert str(caught.value) == f"{scratch} is not writable: Read-only file system"


# -- mounts by options


@pytest.mark.privileged
@needs_root
async def test_a_tmpfs_volume(driver: LocalDriver, base: Path) -> None:
    info = await driver.create(
        "scratch", {"type": "tmpfs", "device": "tmpfs", "o": "size=2m,uid=1000,mode=0750"}
    )
    path = await driver.mount("scratch", "c1")
    fstype, options = mount_entry(path)
    assert fstype == "tmpfs"
    assert "size=2048k" in options
    assert "mode=750" in options
    assert "uid=1000" in options
    assert (path.stat().st_uid, oct(path.stat().st_mode & 0o777)) == (1000, "0o750")
    (path / "in-memory").write_bytes(b"x")
    await driver.unmount("scratch", "c1")
    assert not mounted(path)
    assert list(info.mountpoint.iterdir()) == [], "the data went with the tmpfs"


async def bound(driver: LocalDriver, name: str, host_dir: Path, options: str) -> Path:
    """A volume ``name`` binding ``host_dir`` with ``o=options``, mounted for ``c1``."""
    await driver.create(name, {"type": "none", "o": options, "device": str(host_dir)})
    path = await driver.mount(name, "c1")
    assert (path / "from-the-host").read_bytes() == b"host data\n"
    return path


@pytest.mark.privileged
@needs_root
async def test_a_bind_of_a_host_directory(driver: LocalDriver, host_dir: Path) -> None:
    path = await bound(driver, "host", host_dir, "bind")
    (path / "from-the-container").write_bytes(b"container data\n")
    assert (host_dir / "from-the-container").exists()
    await driver.unmount("host", "c1")
    assert list(path.iterdir()) == []
    await driver.mount("host", "c2")
    await driver.remove("host")  # mounted: unmounted first, the host's files are not touched
    assert sorted(os.listdir(host_dir)) == ["from-the-container", "from-the-host"]  # noqa: PTH208
    assert "host" not in driver.names()


@pytest.mark.privileged
@needs_root
async def test_a_read_only_bind(driver: LocalDriver, host_dir: Path) -> None:
    path = await bound(driver, "ro", host_dir, "bind,ro")
    with pytest.raises(OSError, match="Read-only file system"):
        (path / "new").write_bytes(b"no")
    await driver.unmount("ro", "c1")
    assert not mounted(path)


@pytest.mark.privileged
@needs_root
async def test_a_failed_mount_leaves_nothing_and_can_be_retried(
    driver: LocalDriver, base: Path
) -> None:
    missing = base / "not-yet"
    await driver.create("later", {"type": "none", "o": "bind", "device": str(missing)})
    with pytest.raises(SystemError, match="failed to mount local volume"):
        await driver.mount("later", "c1")
    assert mounts_under(base) == []
    missing.mkdir()
    path = await driver.mount("later", "c1")
    assert mounted(path)
    await driver.unmount("later", "c1")


@pytest.mark.privileged
@needs_root
async def test_a_password_never_shows_in_an_error(driver: LocalDriver) -> None:
    await driver.create(
        "share",
        {"type": "cifs", "device": "//192.0.2.1/share", "o": "username=u,password=s3cret"},
    )
    with pytest.raises(SystemError) as caught:
        await driver.mount("share", "c1")
    assert "s3cret" not in str(caught.value)


@pytest.fixture
def loop_device(base: Path) -> Iterator[str]:
    if shutil.which("mkfs.ext4") is None or shutil.which("losetup") is None:
        pytest.skip("needs mkfs.ext4 and losetup")
    image = base / "disk.img"
    with image.open("wb") as f:
        f.truncate(16 << 20)
    subprocess.run(["mkfs.ext4", "-q", "-F", str(image)], check=True)
    device = subprocess.run(
        ["losetup", "--find", "--show", str(image)], check=True, capture_output=True, text=True
    ).stdout.strip()
    try:
        yield device
    finally:
        detach_mounts_under(base)
        subprocess.run(["losetup", "-d", device], check=False)


@pytest.mark.privileged
@needs_root
async def test_ext4_on_a_block_device(driver: LocalDriver, loop_device: str) -> None:
    await driver.create("disk", {"type": "ext4", "device": loop_device, "o": "noatime"})
    path = await driver.mount("disk", "c1")
    assert mount_entry(path)[0] == "ext4"
    (path / "on-disk").write_bytes(b"persisted\n")
    await driver.unmount("disk", "c1")
    assert not (path / "on-disk").exists()
    again = await driver.mount("disk", "c2")
    assert (again / "on-disk").read_bytes() == b"persisted\n", "the device kept it"
    await driver.unmount("disk", "c2")


# -- restarts and removal


@pytest.mark.privileged
@needs_root
async def test_a_mount_found_without_its_users_record(driver: LocalDriver, base: Path) -> None:
    """The exec-root was cleaned but the mount stayed: the new instance adopts it, never
    mounts twice, and the last container it knows of releases it."""
    await driver.create("adopted", {"type": "tmpfs", "device": "tmpfs", "o": "size=1m"})
    path = await driver.mount("adopted", "before")
    shutil.rmtree(driver.context.run_dir)
    fresh = LocalDriver(driver.context)
    assert await fresh.mount("adopted", "after") == path
    assert len(mounts_under(path)) == 1
    await fresh.unmount("adopted", "before")  # unknown to it, and it is not the last
    assert mounted(path)
    await fresh.unmount("adopted", "after")
    assert not mounted(path)
    await fresh.unmount("adopted", "after")


@pytest.mark.privileged
@needs_root
async def test_remove_refuses_to_delete_through_a_foreign_mount(
    driver: LocalDriver, host_dir: Path
) -> None:
    """Something else mounted inside the data (a bind of a host directory): removing the
    volume must not delete the host's files through it."""
    info = await driver.create("nested", {})
    inner = info.mountpoint / "inner"
    inner.mkdir()
    mount(Mount("none", str(host_dir), ()), inner, MountFlag.BIND)
    try:
        with pytest.raises(SystemError, match="still mounted; nothing removed"):
            await driver.remove("nested")
        assert (host_dir / "from-the-host").exists()
        assert driver.names() == ["nested"]
    finally:
        unmount(inner)
    await driver.remove("nested")
    assert (host_dir / "from-the-host").exists()


@pytest.mark.privileged
@needs_root
async def test_concurrent_mounts_of_a_tmpfs_volume_mount_once(
    driver: LocalDriver, base: Path
) -> None:
    await driver.create("racy", {"type": "tmpfs", "device": "tmpfs", "o": "size=1m"})
    paths = await asyncio.gather(*(driver.mount("racy", f"c{i}") for i in range(6)))
    assert len(mounts_under(paths[0])) == 1
    await asyncio.gather(*(driver.unmount("racy", f"c{i}") for i in range(5)))
    assert mounted(paths[0])
    await driver.unmount("racy", "c5")
    assert mounts_under(base) == []
