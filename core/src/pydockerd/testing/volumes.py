"""The volume-driver conformance suite: what every :class:`~pydockerd.plugin.VolumeDriver`
must do, checked through the interface only, on a real filesystem.

Use it from a driver package's tests by deriving a ``Test*`` class from
:class:`VolumeDriverSuite` and naming the driver class; pytest (with pytest-asyncio in
``asyncio_mode = "auto"``) then runs every ``test_*`` method against it::

    # my_driver/tests/test_conformance.py
    from pydockerd.testing.volumes import VolumeDriverSuite
    from my_driver.driver import MyDriver

    class TestMyDriverConformance(VolumeDriverSuite):
        driver_class = MyDriver
        mount_options = {"type": "tmpfs", "device": "tmpfs", "o": "size=8m"}

``mount_options`` (optional) are ``create`` options that make the driver mount something
on the volume's mountpoint when a container mounts it; the suite then checks that the mount
appears with the first container, stays while one is left, goes with the last, survives a
new instance of the driver (a daemon restart) and goes with ``remove``. Those checks need
root, and carry the ``privileged`` marker (register it in your pytest configuration). A
driver that needs a configuration overrides the ``volume_driver`` fixture (see
:func:`~pydockerd.testing.drivers.make_driver`), and a driver that accepts every option sets
``refuses_unknown_options = False``.

Nothing outlives a test, even a failing one: every volume is removed, and whatever is still
mounted below the suite's directory is detached (``/proc/self/mountinfo``) and reported as
a failure.

What the suite checks:

1. ``create`` makes a volume ``get`` and ``names`` report, whose mountpoint is an empty,
   writable directory; a second ``create`` of the name is a ``Conflict``;
2. ``mount`` gives that directory to every container, and data written there is kept across
   unmounts; ``unmount`` of a container that does not use the volume is not an error;
3. ``remove`` deletes the volume and its data; removing twice, or a volume that never
   existed, is fine; ``get``, ``mount`` and ``usage`` of it are ``NotFound``;
4. names that are not one safe path component (``..``, ``a/b``, ``/x``, empty) are
   ``InvalidParameter`` everywhere; an unknown option is ``InvalidParameter``;
5. ``usage`` counts what is written (or says -1);
6. a new instance of the driver over the same directories (a daemon restart) has the
   volumes and their data;
7. concurrent creates and mounts work;
8. with ``mount_options``: mounts are counted per container, and survive a restart.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator, Mapping
from pathlib import Path
from typing import ClassVar

import pytest
from loguru import logger

from pydockerd.errors import Conflict, InvalidParameter, NotFound
from pydockerd.plugin import VolumeDriver, mounted
from pydockerd.testing.drivers import (
    make_driver,
    mount_safe_directory,
    mounts_under,
)

__all__ = ["VolumeDriverSuite", "cleanup_volumes"]

BAD_NAMES = ("..", ".", "a/b", "../escape", "/abs", "", "x")


async def cleanup_volumes(driver: VolumeDriver) -> None:
    """Remove every volume ``driver`` holds. Never raises: it runs after failed tests too."""
    try:
        names = driver.names()
    except Exception as e:
        logger.warning("conformance: names() failed during clean-up: {}", e)
        return
    for name in names:
        try:
            await driver.remove(name)
        except Exception as e:
            logger.warning("conformance: remove({}) failed during clean-up: {}", name, e)


def _write_file(path: Path, size: int) -> None:
    with path.open("wb") as f:
        f.write(os.urandom(size))


class VolumeDriverSuite:
    """The conformance tests; derive a ``Test*`` class that sets :attr:`driver_class` (or
    provides the ``volume_driver`` fixture)."""

    driver_class: ClassVar[type[VolumeDriver]]
    """The driver under test, built by the default ``volume_driver`` fixture."""
    mount_options: ClassVar[Mapping[str, str] | None] = None
    """``create`` options under which ``mount`` makes a kernel mount (needs root)."""
    refuses_unknown_options: ClassVar[bool] = True
    """Whether ``create`` refuses an option it does not know (most drivers do)."""

    # -- fixtures

    @pytest.fixture
    def suite_dir(self) -> Iterator[Path]:
        """See :func:`mount_safe_directory`."""
        with mount_safe_directory("pdvol-") as path:
            yield path

    @pytest.fixture
    async def volume_driver(self, suite_dir: Path) -> AsyncIterator[VolumeDriver]:
        """The driver under test; override it for drivers that need a configuration."""
        if not hasattr(self, "driver_class"):
            pytest.fail(f"{type(self).__name__}: set driver_class or a volume_driver fixture")
        driver = make_driver(self.driver_class, suite_dir / "driver")
        try:
            yield driver
        finally:
            await cleanup_volumes(driver)

    @pytest.fixture
    def mounting(self) -> Mapping[str, str]:
        """:attr:`mount_options`; the test is skipped without them or without root."""
        if self.mount_options is None:
            pytest.skip("the driver sets no mount_options")
        if os.geteuid() != 0:
            pytest.skip("mounts need root")
        return dict(self.mount_options)

    def restarted(self, driver: VolumeDriver) -> VolumeDriver:
        """A new instance of ``driver``'s class over the same directories and config."""
        return type(driver)(driver.context)

    # -- 1. create

    async def test_create_get_and_names(self, volume_driver: VolumeDriver) -> None:
        info = await volume_driver.create("first", {})
        assert info.name == "first"
        assert info.mountpoint.is_dir()
        assert list(info.mountpoint.iterdir()) == [], "a new volume is empty"
        assert volume_driver.get("first") == info
        await volume_driver.create("second.vol_2-x", {})
        assert volume_driver.names() == ["first", "second.vol_2-x"]
        assert volume_driver.get("second.vol_2-x").mountpoint != info.mountpoint
        with pytest.raises(Conflict):
            await volume_driver.create("first", {})
        assert volume_driver.scope in ("local", "global")

    # -- 2. mount

    async def test_mount_gives_the_data_to_every_container(
        self, volume_driver: VolumeDriver
    ) -> None:
        await volume_driver.create("data", {})
        path = await volume_driver.mount("data", "container-1")
        assert path == volume_driver.get("data").mountpoint
        (path / "file").write_bytes(b"kept\n")
        (path / "dir").mkdir()
        other = await volume_driver.mount("data", "container-2")
        assert other == path
        await volume_driver.unmount("data", "container-1")
        await volume_driver.unmount("data", "container-2")
        again = await volume_driver.mount("data", "container-3")
        assert (again / "file").read_bytes() == b"kept\n"
        await volume_driver.unmount("data", "container-3")
        await volume_driver.unmount("data", "never-mounted-it")
        await volume_driver.unmount("data", "container-3")  # twice

    # -- 3. remove

    async def test_remove(self, volume_driver: VolumeDriver) -> None:
        info = await volume_driver.create("doomed", {})
        path = await volume_driver.mount("doomed", "c1")
        _write_file(path / "blob", 4096)
        await volume_driver.unmount("doomed", "c1")
        await volume_driver.remove("doomed")
        assert volume_driver.names() == []
        assert not info.mountpoint.exists(), "the data is gone"
        await volume_driver.remove("doomed")
        await volume_driver.remove("never-existed")
        with pytest.raises(NotFound):
            volume_driver.get("doomed")
        with pytest.raises(NotFound):
            await volume_driver.mount("doomed", "c1")
        with pytest.raises(NotFound):
            await volume_driver.usage("doomed")
        await volume_driver.unmount("doomed", "c1")  # a container stopping late
        recreated = await volume_driver.create("doomed", {})
        assert list(recreated.mountpoint.iterdir()) == [], "nothing of the old one"

    # -- 4. errors

    async def test_bad_names_and_options(self, volume_driver: VolumeDriver) -> None:
        await volume_driver.create("fine", {})
        for bad in BAD_NAMES:
            with pytest.raises(InvalidParameter):
                await volume_driver.create(bad, {})
            with pytest.raises(InvalidParameter):
                volume_driver.get(bad)
            with pytest.raises(InvalidParameter):
                await volume_driver.mount(bad, "c1")
            with pytest.raises(InvalidParameter):
                await volume_driver.remove(bad)
        if self.refuses_unknown_options:
            with pytest.raises(InvalidParameter):
                await volume_driver.create("opts", {"no-such-option": "1"})
            assert "opts" not in volume_driver.names()
        assert volume_driver.names() == ["fine"]
        assert (await volume_driver.mount("fine", "c1")).is_dir(), "still there"
        await volume_driver.unmount("fine", "c1")

    # -- 5. usage

    async def test_usage(self, volume_driver: VolumeDriver) -> None:
        await volume_driver.create("sized", {})
        path = await volume_driver.mount("sized", "c1")
        _write_file(path / "one", 1 << 20)
        (path / "sub").mkdir()
        _write_file(path / "sub" / "two", 100_000)
        usage = await volume_driver.usage("sized")
        assert usage == -1 or (1 << 20) + 100_000 <= usage < (1 << 20) + 1_000_000
        await volume_driver.unmount("sized", "c1")

    # -- 6. restart

    async def test_a_restarted_daemon_has_the_volumes(self, volume_driver: VolumeDriver) -> None:
        await volume_driver.create("persistent", {})
        path = await volume_driver.mount("persistent", "c1")
        (path / "state").write_bytes(b"before the restart\n")
        await volume_driver.unmount("persistent", "c1")
        again = self.restarted(volume_driver)
        assert again.names() == ["persistent"]
        assert (await again.mount("persistent", "c2") / "state").read_bytes() == (
            b"before the restart\n"
        )
        await again.unmount("persistent", "c2")

    # -- 7. concurrency

    async def test_concurrent_creates_and_mounts(self, volume_driver: VolumeDriver) -> None:
        names = [f"vol{i}" for i in range(8)]
        await asyncio.gather(*(volume_driver.create(n, {}) for n in names))
        assert volume_driver.names() == names
        paths = await asyncio.gather(*(volume_driver.mount("vol0", f"c{i}") for i in range(8)))
        assert len(set(paths)) == 1
        await asyncio.gather(*(volume_driver.unmount("vol0", f"c{i}") for i in range(8)))
        results = await asyncio.gather(
            *(volume_driver.create("racing", {}) for _ in range(4)), return_exceptions=True
        )
        assert sum(1 for r in results if not isinstance(r, BaseException)) == 1
        assert all(isinstance(r, Conflict) for r in results if isinstance(r, BaseException))

    # -- 8. mounts

    @pytest.mark.privileged
    async def test_mounts_are_counted_per_container(
        self, volume_driver: VolumeDriver, mounting: Mapping[str, str], suite_dir: Path
    ) -> None:
        info = await volume_driver.create("mounted", mounting)
        assert not mounted(info.mountpoint), "nothing is mounted before a container needs it"
        path = await volume_driver.mount("mounted", "c1")
        assert mounted(path)
        (path / "shared").write_bytes(b"in the mount\n")
        await volume_driver.mount("mounted", "c2")
        assert len(mounts_under(path)) == 1, "mounted once"
        await volume_driver.unmount("mounted", "c1")
        assert (path / "shared").read_bytes() == b"in the mount\n", "c2 still uses it"
        await volume_driver.unmount("mounted", "c2")
        assert not mounted(path), "the last container released it"
        assert mounts_under(suite_dir) == []

    @pytest.mark.privileged
    async def test_mounts_survive_a_restart(
        self, volume_driver: VolumeDriver, mounting: Mapping[str, str], suite_dir: Path
    ) -> None:
        await volume_driver.create("lasting", mounting)
        path = await volume_driver.mount("lasting", "running")
        (path / "written").write_bytes(b"by a container that kept running\n")
        again = self.restarted(volume_driver)
        assert mounted(path), "a new driver instance leaves the mount alone"
        same = await again.mount("lasting", "new")
        assert (same / "written").exists()
        assert len(mounts_under(path)) == 1, "not mounted twice"
        await again.unmount("lasting", "new")
        assert mounted(path), "the container from before the restart still uses it"
        await again.unmount("lasting", "running")
        assert not mounted(path)
        assert mounts_under(suite_dir) == []

    @pytest.mark.privileged
    async def test_remove_unmounts(
        self, volume_driver: VolumeDriver, mounting: Mapping[str, str], suite_dir: Path
    ) -> None:
        await volume_driver.create("busy", mounting)
        path = await volume_driver.mount("busy", "c1")
        await volume_driver.remove("busy")
        assert not path.exists()
        assert "busy" not in volume_driver.names()
        assert mounts_under(suite_dir) == []
        await volume_driver.unmount("busy", "c1")
