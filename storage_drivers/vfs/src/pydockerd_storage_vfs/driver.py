"""The vfs storage driver: each layer a complete copy of its parent plus its changes."""

from __future__ import annotations

import os

from pydockerd.plugin import DriverContext, DriverNotSupported, StorageDriver

__all__ = ["VfsDriver"]


class VfsDriver(StorageDriver):
    """Plain directory copies: slow and large, but works on any filesystem."""

    name = "vfs"
    priority = 90
    description = "plain copies: works on any filesystem, costs disk and time"

    @classmethod
    async def probe(cls, context: DriverContext) -> None:
        """vfs needs only a writable directory on the data-root's filesystem."""
        context.scratch_dir.mkdir(parents=True, exist_ok=True)
        if not os.access(context.scratch_dir, os.W_OK):
            raise DriverNotSupported(f"{context.scratch_dir} is not writable")
