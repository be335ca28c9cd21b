"""The overlay storage driver: image layers as overlayfs lower directories."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from pydockerd.plugin import (
    DriverContext,
    DriverNotSupported,
    Mount,
    StorageDriver,
    SystemError,
    mount,
    unmount,
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


class OverlayDriver(StorageDriver):
    """Stores layers as directories and stacks them with overlayfs."""

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
