"""The volume service: its records and its drivers, with a real driver over a directory."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from pydockerd.containers.config import mount_points
from pydockerd.errors import InvalidParameter, SystemError
from pydockerd.plugin import VolumeDriver, VolumeInfo
from pydockerd.testing.drivers import make_driver
from pydockerd.volumes.service import VolumeService


class DirectoryVolumes(VolumeDriver):
    """Each volume a directory of the driver's state; one that holds a file ``busy`` is
    refused by ``remove``, as the local driver refuses a volume still mounted."""

    name = "dirs"

    def _path(self, name: str) -> Path:
        return self.context.state_dir / name

    async def create(self, name: str, options: Mapping[str, str]) -> VolumeInfo:
        self._path(name).mkdir()
        return self.get(name)

    async def remove(self, name: str) -> None:
        path = self._path(name)
        if (path / "busy").exists():
            raise SystemError(f"volume {name}: {path} still mounted; nothing removed")
        if path.exists():
            for child in path.iterdir():
                child.unlink()
            path.rmdir()

    async def mount(self, name: str, container_id: str) -> Path:
        return self._path(name)

    async def unmount(self, name: str, container_id: str) -> None:
        pass

    def get(self, name: str) -> VolumeInfo:
        return VolumeInfo(name, self._path(name))

    def names(self) -> list[str]:
        return sorted(p.name for p in self.context.state_dir.iterdir())


@pytest.fixture
async def service(short_tmp: Path) -> AsyncIterator[tuple[VolumeService, list[Any]]]:
    events: list[Any] = []
    driver = make_driver(DirectoryVolumes, short_tmp / "driver")
    volumes = VolumeService(
        short_tmp / "volumes", {"dirs": driver}, lambda *a, **kw: events.append((a, kw))
    )
    try:
        yield volumes, events
    finally:
        volumes.close()


async def test_a_volume_the_driver_refuses_to_remove_stays(
    service: tuple[VolumeService, list[Any]],
) -> None:
    volumes, events = service
    created = await volumes.create("keep", "dirs", labels={"a": "b"})
    busy = volumes.driver("dirs").get("keep").mountpoint / "busy"
    busy.touch()
    with pytest.raises(SystemError, match="still mounted; nothing removed"):
        await volumes.remove("keep")
    assert volumes.find("keep") == created, "the record stays with the data"
    assert [v.name for v in volumes.volumes()] == ["keep"]
    assert [a for a, _ in events] == [("volume", "create", "keep")], "no destroy event"

    busy.unlink()
    await volumes.remove("keep")
    assert volumes.find("keep") is None
    assert volumes.driver("dirs").names() == []
    assert events[-1] == (("volume", "destroy", "keep"), {"driver": "dirs"})


async def test_prune_keeps_a_volume_the_driver_refuses_to_remove(
    service: tuple[VolumeService, list[Any]],
) -> None:
    volumes, _ = service
    await volumes.create("", "dirs")
    (anonymous,) = volumes.volumes()
    (volumes.driver("dirs").get(anonymous.name).mountpoint / "busy").touch()
    with pytest.raises(SystemError):
        await volumes.prune({})
    assert volumes.volumes() == [anonymous]


async def test_prune_with_all_and_a_label(service: tuple[VolumeService, list[Any]]) -> None:
    volumes, _ = service
    await volumes.create("named", "dirs", labels={"x": "1"})
    await volumes.create("other", "dirs")
    await volumes.create("", "dirs")
    assert await volumes.prune({"all": ["true"], "label": ["x=1"]}) == (["named"], 0)
    assert [v.name for v in volumes.volumes() if not v.anonymous] == ["other"]


async def test_a_bad_name_is_refused_alike_by_volume_create_and_a_mount(
    service: tuple[VolumeService, list[Any]],
) -> None:
    volumes, _ = service
    expected = (
        'create bad$name: "bad$name" includes invalid characters for a local volume name, only '
        '"[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to pass a host directory, use '
        "absolute path"
    )
    with pytest.raises(InvalidParameter) as created:
        await volumes.create("bad$name", "dirs")
    with pytest.raises(InvalidParameter) as bound:
        mount_points({}, {"Binds": ["bad$name:/x"]}, "local")
    mount = {"Type": "volume", "Source": "bad$name", "Target": "/x"}
    with pytest.raises(InvalidParameter) as mounted:
        mount_points({}, {"Mounts": [mount]}, "local")
    assert str(created.value) == str(bound.value) == str(mounted.value) == expected
    assert volumes.volumes() == []
