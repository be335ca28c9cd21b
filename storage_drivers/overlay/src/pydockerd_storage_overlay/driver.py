"""The overlay storage driver: image layers as overlayfs lower directories."""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import tempfile
from pathlib import Path
from typing import BinaryIO

from pydockerd.plugin import (
    MNT_DETACH,
    Conflict,
    DriverContext,
    DriverNotSupported,
    InvalidParameter,
    Mount,
    NotFound,
    StorageDriver,
    SystemError,
    apply_layer,
    check_layer_id,
    directory_size,
    mount,
    mount_overlay,
    mounted,
    remove_tree,
    unmount,
    write_overlay_diff,
)

__all__ = ["OverlayDriver", "overlay_in_kernel"]


def overlay_in_kernel(filesystems: Path = Path("/proc/filesystems")) -> bool:
    """Whether the running kernel knows overlayfs (built in or its module loaded)."""
    try:
        return any(
            line.split()[-1] == "overlay"
            for line in filesystems.read_text().splitlines()
            if line.strip()
        )
    except OSError:
        return False


_LINK_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
_PARTIAL = ".partial"


def _short_link() -> str:
    return "".join(secrets.choice(_LINK_ALPHABET) for _ in range(26))


class OverlayDriver(StorageDriver):
    """Stores layers as directories and stacks them with overlayfs.

    Layout, as moby's overlay2: ``<state>/<id>/diff`` holds what the layer changes (the
    overlay "upper" while it is a container's layer), ``work`` is overlayfs's work
    directory, ``merged`` the mount point, ``link`` the layer's short name, and ``lower``
    its parents' short names, topmost first (``l/AB…:l/CD…``). ``<state>/l/<short>`` links
    to ``../<id>/diff``: short paths keep ~60 layers within one page of mount options, and
    deeper chains are mounted through the new mount API (see
    :func:`pydockerd.plugin.mount_overlay`).
    """

    name = "overlay"
    priority = 10
    description = "overlayfs: layers stacked as lower directories, one upper per container"

    @classmethod
    async def probe(cls, context: DriverContext) -> None:
        """Mount a real overlay in the scratch directory (same filesystem as the data-root)."""
        if os.geteuid() != 0:
            raise DriverNotSupported("mounting overlayfs needs root (CAP_SYS_ADMIN)")
        if not overlay_in_kernel():
            raise DriverNotSupported("the kernel has no overlayfs (try: modprobe overlay)")
        context.scratch_dir.mkdir(parents=True, exist_ok=True)
        test = Path(tempfile.mkdtemp(prefix="overlay-probe-", dir=context.scratch_dir))
        try:
            for name in ("lower", "upper", "work", "merged"):
                (test / name).mkdir()
            (test / "lower" / "file").write_text("lower")
            options = (
                f"lowerdir={test / 'lower'}",
                f"upperdir={test / 'upper'}",
                f"workdir={test / 'work'}",
            )
            try:
                mount(Mount("overlay", "overlay", options), test / "merged")
            except SystemError as e:
                raise DriverNotSupported(
                    f"overlayfs does not work on the data-root's filesystem: {e}"
                ) from e
            try:
                (test / "merged" / "file").write_text("upper")
            finally:
                unmount(test / "merged")
            if (test / "lower" / "file").read_text() != "lower":
                raise DriverNotSupported("overlayfs wrote through to the lower directory")
        finally:
            shutil.rmtree(test, ignore_errors=True)

    def __init__(self, context: DriverContext) -> None:
        super().__init__(context)
        self._mounts: dict[str, int] = {}
        self._lock = asyncio.Lock()
        (context.state_dir / "l").mkdir(parents=True, exist_ok=True, mode=0o700)

    def _dir(self, layer_id: str) -> Path:
        return self.context.state_dir / check_layer_id(layer_id)

    def _existing(self, layer_id: str) -> Path:
        directory = self._dir(layer_id)
        if not (directory / "link").is_file():
            raise NotFound(f"overlay: no such layer: {layer_id}")
        return directory

    def _lowers(self, directory: Path) -> list[Path]:
        """The parents' diff directories (as short links), topmost first."""
        try:
            text = (directory / "lower").read_text().strip()
        except FileNotFoundError:
            return []
        return [self.context.state_dir / entry for entry in text.split(":") if entry]

    async def create(self, layer_id: str, parent: str | None) -> None:
        if layer_id == "l" or layer_id.endswith(_PARTIAL):
            # the short-link directory, and the name a layer is built under
            raise InvalidParameter(f"overlay: {layer_id!r} is reserved for the driver's use")
        if self.exists(layer_id):
            raise Conflict(f"overlay: layer {layer_id} exists already")
        lower = ""
        if parent is not None:
            parent_dir = self._existing(parent)
            parent_link = (parent_dir / "link").read_text().strip()
            parent_lower = (parent_dir / "lower").read_text().strip()
            lower = ":".join(x for x in (f"l/{parent_link}", parent_lower) if x)
        await asyncio.to_thread(self._create, layer_id, lower)

    def _create(self, layer_id: str, lower: str) -> None:
        state = self.context.state_dir
        partial = self._dir(layer_id + _PARTIAL)
        remove_tree(partial)
        partial.mkdir(mode=0o700)
        for name in ("diff", "work", "merged"):
            (partial / name).mkdir(mode=0o755 if name == "diff" else 0o700)
        link = _short_link()
        (state / "l" / link).symlink_to(f"../{layer_id}/diff")
        (partial / "link").write_text(link)
        (partial / "lower").write_text(lower)
        partial.rename(self._dir(layer_id))

    async def apply_diff(self, layer_id: str, diff: BinaryIO) -> int:
        upper = self._existing(layer_id) / "diff"
        return await asyncio.to_thread(apply_layer, diff, upper, whiteouts="overlay")

    async def mount(self, layer_id: str) -> Path:
        directory = self._existing(layer_id)
        lowers = self._lowers(directory)
        if not lowers:
            return directory / "diff"  # a bottom layer is its own tree
        target = directory / "merged"
        async with self._lock:
            count = self._mounts.get(layer_id, 0)
            if count == 0 and not mounted(target):
                await asyncio.to_thread(
                    mount_overlay,
                    lowers,
                    target,
                    upper=directory / "diff",
                    work=directory / "work",
                    options=self._options(),
                )
            self._mounts[layer_id] = count + 1
        return target

    @staticmethod
    def _options() -> tuple[str, ...]:
        # index=off: the same lower directories are shared by many mounts
        return ("index=off",) if Path("/sys/module/overlay/parameters/index").exists() else ()

    async def unmount(self, layer_id: str) -> None:
        directory = self._existing(layer_id)
        async with self._lock:
            count = self._mounts.get(layer_id, 0)
            if count > 1:
                self._mounts[layer_id] = count - 1
                return
            self._mounts.pop(layer_id, None)
            target = directory / "merged"
            if mounted(target):
                await asyncio.to_thread(unmount, target)

    async def remove(self, layer_id: str) -> None:
        directory = self._dir(layer_id)
        async with self._lock:
            self._mounts.pop(layer_id, None)
            target = directory / "merged"
            if target.exists() and mounted(target):
                await asyncio.to_thread(unmount, target, MNT_DETACH)
        await asyncio.to_thread(self._remove, directory)

    def _remove(self, directory: Path) -> None:
        try:
            link = (directory / "link").read_text().strip()
        except FileNotFoundError:
            link = ""
        if link:
            (self.context.state_dir / "l" / check_layer_id(link)).unlink(missing_ok=True)
        remove_tree(directory)

    async def diff(self, layer_id: str, out: BinaryIO) -> None:
        upper = self._existing(layer_id) / "diff"
        await asyncio.to_thread(write_overlay_diff, upper, out)

    async def usage(self, layer_id: str) -> int:
        return await asyncio.to_thread(directory_size, self._existing(layer_id) / "diff")

    def exists(self, layer_id: str) -> bool:
        return (self._dir(layer_id) / "link").is_file()

    def layer_ids(self) -> list[str]:
        state = self.context.state_dir
        self._drop_dangling_links()
        return sorted(p.name for p in state.iterdir() if p.is_dir() and p.name != "l")

    def _drop_dangling_links(self) -> None:
        links = self.context.state_dir / "l"
        for link in links.iterdir() if links.is_dir() else ():
            if not link.exists():  # its layer is gone (removed, or a crash mid-create)
                link.unlink(missing_ok=True)

    def metadata(self, layer_id: str) -> dict[str, str]:
        directory = self._dir(layer_id)
        data = {
            "UpperDir": str(directory / "diff"),
            "WorkDir": str(directory / "work"),
            "MergedDir": str(directory / "merged"),
        }
        lowers = self._lowers(directory)
        if lowers:
            data["LowerDir"] = ":".join(str(p.resolve()) for p in lowers)
        return data
