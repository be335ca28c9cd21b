"""The vfs storage driver: each layer a complete copy of its parent plus its changes."""

from __future__ import annotations

import asyncio
import os
import stat
import subprocess
from pathlib import Path
from typing import BinaryIO

from pydockerd.plugin import (
    Conflict,
    DriverContext,
    DriverNotSupported,
    InvalidParameter,
    NotFound,
    StorageDriver,
    SystemError,
    apply_layer,
    check_layer_id,
    directory_size,
    remove_tree,
    write_changes_diff,
)

__all__ = ["VfsDriver"]

_PARTIAL = ".partial"


class VfsDriver(StorageDriver):
    """Plain directory copies: slow and large, but works on any filesystem.

    Layout: ``<state>/<id>/root`` is the layer's whole tree and ``<state>/<id>/parent``
    names its parent. A layer is built in ``<id>.partial`` and renamed into place, so a
    crash never leaves a half-copied layer under its real name.
    """

    name = "vfs"
    priority = 90
    description = "plain copies: works on any filesystem, costs disk and time"

    @classmethod
    async def probe(cls, context: DriverContext) -> None:
        """vfs needs only a writable directory on the data-root's filesystem."""
        context.scratch_dir.mkdir(parents=True, exist_ok=True)
        if not os.access(context.scratch_dir, os.W_OK):
            raise DriverNotSupported(f"{context.scratch_dir} is not writable")

    def _dir(self, layer_id: str) -> Path:
        return self.context.state_dir / check_layer_id(layer_id)

    def _root(self, layer_id: str) -> Path:
        root = self._dir(layer_id) / "root"
        if not root.is_dir():
            raise NotFound(f"vfs: no such layer: {layer_id}")
        return root

    def _parent(self, layer_id: str) -> str | None:
        parent = (self._dir(layer_id) / "parent").read_text().strip()
        return parent or None

    async def create(self, layer_id: str, parent: str | None) -> None:
        if layer_id.endswith(_PARTIAL):  # the name another layer is built under
            raise InvalidParameter(f"vfs: {layer_id!r} is reserved for the driver's use")
        if self.exists(layer_id):
            raise Conflict(f"vfs: layer {layer_id} exists already")
        parent_root = self._root(parent) if parent else None
        await asyncio.to_thread(self._create, layer_id, parent, parent_root)

    def _create(self, layer_id: str, parent: str | None, parent_root: Path | None) -> None:
        partial = self._dir(layer_id + _PARTIAL)
        remove_tree(partial)
        partial.mkdir(parents=True, mode=0o700)
        if parent_root is None:
            (partial / "root").mkdir(mode=0o755)
        else:
            # cp keeps hard links, xattrs, devices and sparse files, and reflinks where it can
            result = subprocess.run(
                ["cp", "-a", "--reflink=auto", "--", str(parent_root), str(partial / "root")],
                capture_output=True,
                text=True,
                check=False,
            )
            if result.returncode != 0:
                remove_tree(partial)
                raise SystemError(f"vfs: copying layer {parent}: {result.stderr.strip()}")
        (partial / "parent").write_text(parent or "")
        partial.rename(self._dir(layer_id))

    async def apply_diff(self, layer_id: str, diff: BinaryIO) -> int:
        return await asyncio.to_thread(apply_layer, diff, self._root(layer_id), whiteouts="delete")

    async def mount(self, layer_id: str) -> Path:
        return self._root(layer_id)

    async def unmount(self, layer_id: str) -> None:
        self._root(layer_id)

    async def remove(self, layer_id: str) -> None:
        await asyncio.to_thread(remove_tree, self._dir(layer_id))

    async def diff(self, layer_id: str, out: BinaryIO) -> None:
        root = self._root(layer_id)
        parent = self._parent(layer_id)
        parent_root = self._root(parent) if parent else None
        await asyncio.to_thread(write_changes_diff, root, parent_root, out)

    async def usage(self, layer_id: str) -> int:
        """Bytes of the files the layer adds or changes over its parent (its copy of the
        parent's files is not counted, as moby's naive diff size)."""
        root = self._root(layer_id)
        parent = self._parent(layer_id)
        if parent is None:
            return await asyncio.to_thread(directory_size, root)
        return await asyncio.to_thread(_added_size, root, self._root(parent))

    def exists(self, layer_id: str) -> bool:
        return (self._dir(layer_id) / "root").is_dir()

    def layer_ids(self) -> list[str]:
        state = self.context.state_dir
        return sorted(p.name for p in state.iterdir() if p.is_dir()) if state.is_dir() else []

    def metadata(self, layer_id: str) -> dict[str, str]:
        return {"Dir": str(self._dir(layer_id) / "root")}


def _added_size(layer: Path, parent: Path) -> int:
    """Bytes of the regular files below ``layer`` that ``parent`` has not at the same path
    with the same size and mtime; hard links counted once, symlinks never followed."""
    seen: set[tuple[int, int]] = set()

    def walk(directory: str, parent_directory: str | None) -> int:
        total = 0
        before: dict[str, os.DirEntry[str]] = {}
        if parent_directory is not None:
            with os.scandir(parent_directory) as entries:
                before = {entry.name: entry for entry in entries}
        with os.scandir(directory) as entries:
            for entry in entries:
                st = entry.stat(follow_symlinks=False)
                old = before.get(entry.name)
                old_st = old.stat(follow_symlinks=False) if old is not None else None
                if stat.S_ISDIR(st.st_mode):
                    old_dir = old_st is not None and stat.S_ISDIR(old_st.st_mode)
                    total += walk(entry.path, old.path if old is not None and old_dir else None)
                    continue
                if not stat.S_ISREG(st.st_mode):
                    continue
                if (
                    old_st is not None
                    and stat.S_ISREG(old_st.st_mode)
                    and (old_st.st_size, old_st.st_mtime_ns) == (st.st_size, st.st_mtime_ns)
                ):
                    continue  # the parent's file, copied
                if st.st_nlink > 1:
                    if (st.st_dev, st.st_ino) in seen:
                        continue
                    seen.add((st.st_dev, st.st_ino))
                total += st.st_size
        return total

    return walk(str(layer), str(parent))
