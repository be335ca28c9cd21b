"""Volumes: their metadata (one SQLite database), their drivers, and who uses them.

The metadata (driver, labels, options, creation time, whether the daemon named it) is in
``<data-root>/volumes/metadata.db``; the data is the driver's. A volume is created in the
driver first and recorded second, and removed from the record first and from the driver
second (the record is put back when the driver refuses), so a crash leaves at most data no
record names, which :meth:`VolumeService.load` reports.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import sqlite3
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from loguru import logger
from pydockerd.api.params import Filters, labels_match
from pydockerd.errors import Conflict, NotFound
from pydockerd.plugin import VolumeDriver
from pydockerd.volumes.names import check_volume_name

__all__ = ["VOLUME_FILTERS", "Volume", "VolumeService"]

VOLUME_FILTERS = ("dangling", "driver", "label", "name", "all")


@dataclass
class Volume:
    name: str
    driver: str
    created: str
    labels: dict[str, str] = field(default_factory=dict)
    options: dict[str, str] = field(default_factory=dict)
    anonymous: bool = False


_SELECT = "SELECT name, driver, created, labels, options, anonymous FROM volumes"
"""The columns of a volume's record, in :class:`Volume`'s order (:func:`_volume` reads them)."""


def _volume(row: tuple[Any, ...]) -> Volume:
    name, driver, created, labels, options, anonymous = row
    return Volume(name, driver, created, json.loads(labels), json.loads(options), bool(anonymous))


class VolumeService:
    """The daemon's volumes.

    :param drivers: the usable volume drivers by name.
    :param users: ``volume name -> [container ID, ...]`` of the containers that mount it;
        set by the container service.
    """

    def __init__(
        self, root: Path, drivers: Mapping[str, VolumeDriver], emit: Callable[..., object]
    ) -> None:
        root.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.drivers = dict(drivers)
        self.emit = emit
        self.users: Callable[[str], list[str]] = lambda name: []
        self._db = sqlite3.connect(root / "metadata.db", isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS volumes (name TEXT PRIMARY KEY, driver TEXT NOT NULL,"
            " created TEXT NOT NULL, labels TEXT NOT NULL, options TEXT NOT NULL,"
            " anonymous INTEGER NOT NULL)"
        )
        self._lock = asyncio.Lock()

    def close(self) -> None:
        self._db.close()

    def load(self) -> None:
        """Report data of volumes no record names (a crash between driver and record)."""
        known = {v.name for v in self.volumes()}
        for name, driver in self.drivers.items():
            for orphan in set(driver.names()) - known:
                logger.warning("volume driver {} holds {!r}, which no record names", name, orphan)

    # -- records ----------------------------------------------------------------------

    def volumes(self) -> list[Volume]:
        rows = self._db.execute(f"{_SELECT} ORDER BY name").fetchall()
        return [_volume(row) for row in rows]

    def find(self, name: str) -> Volume | None:
        row = self._db.execute(f"{_SELECT} WHERE name = ?", (name,)).fetchone()
        return None if row is None else _volume(row)

    def get(self, name: str) -> Volume:
        """:raises NotFound: Docker's ``get x: no such volume``."""
        volume = self.find(name)
        if volume is None:
            raise NotFound(f"get {name}: no such volume")
        return volume

    def driver(self, name: str) -> VolumeDriver:
        try:
            return self.drivers[name]
        except KeyError:
            raise NotFound(
                f"error looking up volume plugin {name}: plugin {name!r} not found"
            ) from None

    def _insert(self, volume: Volume) -> None:
        self._db.execute(
            "INSERT INTO volumes VALUES (?, ?, ?, ?, ?, ?)",
            (
                volume.name,
                volume.driver,
                volume.created,
                json.dumps(volume.labels),
                json.dumps(volume.options),
                int(volume.anonymous),
            ),
        )

    # -- operations ---------------------------------------------------------------------

    async def create(
        self,
        name: str | None,
        driver_name: str = "local",
        options: Mapping[str, str] | None = None,
        labels: Mapping[str, str] | None = None,
        *,
        anonymous: bool = False,
    ) -> Volume:
        """Create a volume (a new random name when ``name`` is empty). Creating one that
        exists with the same driver returns it, as Docker does.

        :raises Conflict: it exists with another driver.
        :raises InvalidParameter: a bad name or driver option.
        """
        if not name:
            name, anonymous = secrets.token_hex(32), True
        check_volume_name(name)
        driver = self.driver(driver_name or "local")
        async with self._lock:
            existing = self.find(name)
            if existing is not None:
                if existing.driver != driver.name:
                    raise Conflict(
                        f"create {name}: volume name is already in use with driver "
                        f'"{existing.driver}"'
                    )
                return existing
            await driver.create(name, dict(options or {}))
            volume = Volume(
                name,
                driver.name,
                datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z"),
                dict(labels or {}),
                dict(options or {}),
                anonymous,
            )
            self._insert(volume)
        self.emit("volume", "create", name, driver=driver.name)
        return volume

    async def remove(self, name: str, *, force: bool = False) -> None:
        """``docker volume rm``.

        :raises NotFound: no such volume (unless ``force``).
        :raises Conflict: a container uses it (``force`` does not change that, as Docker).
        :raises SystemError: the driver could not remove it; then the record stays too.
        """
        async with self._lock:
            volume = self.find(name)
            if volume is None:
                if force:
                    return
                raise NotFound(f"get {name}: no such volume")
            users = self.users(name)
            if users:
                raise Conflict(f"remove {name}: volume is in use - [{', '.join(users)}]")
            self._db.execute("DELETE FROM volumes WHERE name = ?", (name,))
            try:
                await self.driver(volume.driver).remove(name)
            except Exception:  # the driver kept the data ("still mounted"): so does the record
                self._insert(volume)
                raise
        self.emit("volume", "destroy", name, driver=volume.driver)

    async def mount(self, name: str, container_id: str) -> Path:
        volume = self.get(name)
        return await self.driver(volume.driver).mount(name, container_id)

    async def unmount(self, name: str, container_id: str) -> None:
        volume = self.find(name)
        if volume is not None:
            await self.driver(volume.driver).unmount(name, container_id)

    def matches(self, volume: Volume, filters: Filters) -> bool:
        """``volume ls`` / ``volume prune`` filters, as moby applies them."""
        if "name" in filters and not any(f in volume.name for f in filters["name"]):
            return False
        if "driver" in filters and volume.driver not in filters["driver"]:
            return False
        if "dangling" in filters:
            wanted = {v.lower() in ("true", "1") for v in filters["dangling"]}
            if (not self.users(volume.name)) not in wanted:
                return False
        return labels_match(volume.labels, filters.get("label", ()))

    async def prune(self, filters: Filters) -> tuple[list[str], int]:
        """Remove unused volumes: anonymous ones only, unless the filter ``all=true``;
        the names removed and the bytes reclaimed."""
        every = any(v.lower() in ("true", "1") for v in filters.get("all", ()))
        removed, reclaimed = [], 0
        for volume in self.volumes():
            if self.users(volume.name) or not (every or volume.anonymous):
                continue
            if not self.matches(volume, filters):
                continue
            size = await self.driver(volume.driver).usage(volume.name)
            try:
                await self.remove(volume.name)
            except Conflict:
                continue  # a container took it meanwhile
            removed.append(volume.name)
            reclaimed += max(size, 0)
        return removed, reclaimed

    async def inspect(self, volume: Volume, *, usage: bool = False) -> dict[str, Any]:
        """``GET /volumes/{name}`` (``UsageData`` when ``usage``: ``system df``)."""
        driver = self.driver(volume.driver)
        info = driver.get(volume.name)
        body: dict[str, Any] = {
            "CreatedAt": volume.created,
            "Driver": volume.driver,
            "Labels": volume.labels or None,
            "Mountpoint": str(info.mountpoint),
            "Name": volume.name,
            "Options": volume.options or None,
            "Scope": driver.scope,
        }
        if info.status:
            body["Status"] = dict(info.status)
        if usage:
            body["UsageData"] = {
                "Size": await driver.usage(volume.name),
                "RefCount": len(self.users(volume.name)),
            }
        return body
