"""The local volume driver: Docker's ``local`` driver.

Layout, as Docker's ``/var/lib/docker/volumes``: ``<state_dir>/<name>/_data`` holds a
volume's data (``<name>`` mode 0701, ``_data`` 0755, both root's) and
``<state_dir>/<name>/opts.json`` its mount options when it has some. A volume is built in
``<state_dir>/.tmp-<random>`` and renamed into place, and removed by renaming it back out of
sight first, so a crash never leaves half a volume under a real name (leftovers are deleted
when the driver starts).

A volume with options (``type``/``device``/``o``) is mounted on its ``_data`` when the first
container mounts it and unmounted when the last one lets go. Who uses it is kept in
``<run_dir>/<name>.users`` (the exec-root: it lasts exactly as long as the mounts, until the
next boot), so a restarted daemon counts the containers that kept running, finds the mount
in place and never mounts twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import stat
import tempfile
from collections import Counter
from collections.abc import Mapping
from pathlib import Path

from pydockerd.plugin import (
    MNT_DETACH,
    Conflict,
    DriverContext,
    DriverNotSupported,
    NotFound,
    SystemError,
    VolumeDriver,
    VolumeInfo,
    directory_size,
    mounted,
    mounts_under,
    remove_tree,
    unmount,
    write_atomically,
)

from pydockerd_volume_local.options import MountOptions, check_name

__all__ = ["LocalDriver"]

DATA = "_data"
OPTIONS = "opts.json"
TEMPORARY = ".tmp-"


def _mount_points_under(directory: Path) -> list[Path]:
    """What is mounted at or below ``directory``, in ``/proc/self/mountinfo`` order."""
    return mounts_under(directory)[::-1]


class LocalDriver(VolumeDriver):
    """Volumes as directories under the data-root, or as mounts their options describe
    (``tmpfs``, a bind of a host directory, a block device, NFS, CIFS)."""

    name = "local"
    description = "directories under the data-root, or mounts by options (tmpfs, bind, nfs)"

    @classmethod
    async def probe(cls, context: DriverContext) -> None:
        """The data-root's filesystem must take files: one is written in ``scratch_dir``."""
        await asyncio.to_thread(cls._probe, context)

    @staticmethod
    def _probe(context: DriverContext) -> None:
        scratch = context.scratch_dir
        try:
            scratch.mkdir(parents=True, exist_ok=True)
            fd, name = tempfile.mkstemp(dir=scratch, prefix="probe-")
            os.close(fd)
            Path(name).unlink()
        except OSError as e:
            raise DriverNotSupported(f"{scratch} is not writable: {e.strerror}") from None
        if context.state_dir.is_dir() and not os.access(context.state_dir, os.W_OK):
            raise DriverNotSupported(f"{context.state_dir} is not writable")

    def __init__(self, context: DriverContext) -> None:
        super().__init__(context)
        context.state_dir.mkdir(parents=True, exist_ok=True, mode=0o701)
        for leftover in context.state_dir.glob(TEMPORARY + "*"):
            if not _mount_points_under(leftover):
                remove_tree(leftover)
        self._locks: dict[str, asyncio.Lock] = {}

    # -- paths and records

    def _root(self, name: str) -> Path:
        return self.context.state_dir / check_name(name)

    def _data(self, name: str) -> Path:
        return self._root(name) / DATA

    def _lock(self, name: str) -> asyncio.Lock:
        return self._locks.setdefault(name, asyncio.Lock())

    def _options(self, name: str) -> MountOptions:
        return MountOptions.load(self._root(name) / OPTIONS)

    def _users_file(self, name: str) -> Path:
        return self.context.run_dir / f"{check_name(name)}.users"

    def _users(self, name: str) -> Counter[str]:
        """The containers using the mounted volume ``name``, with how many mounts each."""
        try:
            stored = json.loads(self._users_file(name).read_bytes())
            return Counter({str(k): int(v) for k, v in stored.items() if int(v) > 0})
        except FileNotFoundError:
            return Counter()
        except (ValueError, TypeError, AttributeError) as e:  # damaged: as if unknown
            self.context.logger.warning(f"local: ignoring {self._users_file(name)}: {e}")
            return Counter()

    def _save_users(self, name: str, users: Counter[str]) -> None:
        path = self._users_file(name)
        if not users:
            path.unlink(missing_ok=True)
            return
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        write_atomically(path, json.dumps(dict(users)), mode=0o600)

    def _exists(self, name: str) -> bool:
        return self._data(name).is_dir()

    def _existing(self, name: str) -> Path:
        data = self._data(name)
        if not data.is_dir():
            raise NotFound(f"no such volume: {name}")
        return data

    # -- the interface

    async def create(self, name: str, options: Mapping[str, str]) -> VolumeInfo:
        """Create the volume; Docker's local driver returns an existing volume as it is, this
        one is strict and the daemon decides (it returns the existing one).

        :raises InvalidParameter: a bad name or option, with Docker's messages.
        :raises Conflict: the volume exists already.
        """
        root = self._root(name)
        mount_options = MountOptions.parse(options)
        async with self._lock(name):
            if self._exists(name):
                raise Conflict(f"volume {name} already exists")
            if root.exists():
                raise SystemError(f"{root} exists and is not a volume (it has no {DATA})")
            await asyncio.to_thread(self._create, root, mount_options)
        return self.get(name)

    def _create(self, root: Path, options: MountOptions) -> None:
        building = self.context.state_dir / f"{TEMPORARY}{secrets.token_hex(8)}"
        try:
            building.mkdir(mode=0o701)
            building.chmod(0o701)  # whatever the umask
            (building / DATA).mkdir(mode=0o755)
            (building / DATA).chmod(0o755)
            if options.needs_mount:
                (building / OPTIONS).write_bytes(options.to_json())
                (building / OPTIONS).chmod(0o600)
            os.rename(building, root)  # noqa: PTH104 - never over a non-empty ``root``
        except OSError as e:
            remove_tree(building)
            if root.exists():
                raise Conflict(f"volume {root.name} already exists") from None
            raise SystemError(f"error while creating volume {root.name}: {e}") from None

    async def remove(self, name: str) -> None:
        """Delete the volume, unmounting it first (whoever still uses it: the daemon checks
        that no container does); a missing volume is fine.

        :raises SystemError: it cannot be unmounted; then nothing is deleted.
        """
        root = self._root(name)
        async with self._lock(name):
            if root.exists():
                await asyncio.to_thread(self._remove, name, root)

    def _remove(self, name: str, root: Path) -> None:
        data = root / DATA
        self._release(data, everything=True)
        self._users_file(name).unlink(missing_ok=True)
        left = _mount_points_under(root)
        if left:
            raise SystemError(
                f"volume {name}: {', '.join(map(str, left))} still mounted; nothing removed"
            )
        going = self.context.state_dir / f"{TEMPORARY}{secrets.token_hex(8)}"
        root.rename(going)
        remove_tree(going)

    @staticmethod
    def _release(data: Path, *, everything: bool = False) -> None:
        """Unmount ``data`` (lazily when it is busy); with ``everything``, every mount stacked
        on it too."""
        for _ in range(100 if everything else 1):
            if not mounted(data):
                return
            try:
                unmount(data)
            except SystemError:
                unmount(data, MNT_DETACH)

    async def mount(self, name: str, container_id: str) -> Path:
        """``_data``; a volume with options is mounted there first unless it is already (by
        another container, or before the daemon restarted).

        :raises NotFound: no such volume.
        :raises SystemError: the mount failed (Docker's ``failed to mount local volume``).
        """
        data = self._existing(name)
        options = self._options(name)
        if not options.needs_mount:
            return data
        async with self._lock(name):
            self._existing(name)  # not removed while waiting for the lock
            await asyncio.to_thread(self._mount, name, data, options, container_id)
        return data

    def _mount(self, name: str, data: Path, options: MountOptions, container_id: str) -> None:
        if not mounted(data):
            options.mount_on(data)
        users = self._users(name)
        users[container_id] += 1
        self._save_users(name, users)

    async def unmount(self, name: str, container_id: str) -> None:
        """Count one mount of ``container_id`` off; the last unmounts. A volume that does not
        exist, or a container that does not use it, is not an error; a mount no container
        is known to use is released."""
        if not self._exists(name):
            return
        options = self._options(name)
        if not options.needs_mount:
            return
        async with self._lock(name):
            await asyncio.to_thread(self._unmount, name, container_id)

    def _unmount(self, name: str, container_id: str) -> None:
        users = self._users(name)
        if container_id in users:
            users[container_id] -= 1
            users += Counter()  # drop the zero
        elif users:
            return
        if not users:
            self._release(self._data(name))
        self._save_users(name, users)

    def get(self, name: str) -> VolumeInfo:
        """The volume; Docker's local driver reports no ``Status``.

        :raises NotFound: no such volume.
        """
        return VolumeInfo(name=name, mountpoint=self._existing(name))

    def names(self) -> list[str]:
        state = self.context.state_dir
        if not state.is_dir():
            return []
        found = []
        for entry in os.scandir(state):
            if entry.name.startswith(".") or not entry.is_dir(follow_symlinks=False):
                continue
            with contextlib.suppress(OSError):
                if stat.S_ISDIR(os.lstat(f"{entry.path}/{DATA}").st_mode):
                    found.append(entry.name)
        return sorted(found)

    async def usage(self, name: str) -> int:
        """Bytes of the files in ``_data``; -1 for a volume with mount options, whose data is
        not the data-root's (Docker leaves those out of ``system df`` for that reason).

        :raises NotFound: no such volume.
        """
        data = self._existing(name)
        if self._options(name).needs_mount:
            return -1
        return await asyncio.to_thread(directory_size, data)
