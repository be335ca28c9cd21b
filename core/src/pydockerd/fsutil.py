"""Small filesystem helpers shared by the core and storage drivers."""

from __future__ import annotations

import os
import re
import shutil
import stat
from pathlib import Path

from pydockerd.errors import InvalidParameter

__all__ = ["check_layer_id", "directory_size", "remove_tree"]

_LAYER_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")


def check_layer_id(layer_id: str) -> str:
    """``layer_id`` if it is safe as one path component, else :class:`InvalidParameter`."""
    if not _LAYER_ID.fullmatch(layer_id):
        raise InvalidParameter(f"invalid layer id {layer_id!r}")
    return layer_id


def directory_size(root: Path) -> int:
    """Bytes of file content under ``root``: each regular file's size, hard links counted
    once, symlinks not followed (what ``docker images`` calls an image's size)."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for directory, _dirs, files in os.walk(root):
        for name in files:
            try:
                st = os.lstat(f"{directory}/{name}")
            except FileNotFoundError:
                continue
            if not stat.S_ISREG(st.st_mode):
                continue
            if st.st_nlink > 1:
                key = (st.st_dev, st.st_ino)
                if key in seen:
                    continue
                seen.add(key)
            total += st.st_size
    return total


def remove_tree(path: Path) -> None:
    """Remove ``path`` and everything below it; a missing ``path`` is fine. Symlinks are
    removed, never followed."""
    try:
        shutil.rmtree(path)
    except FileNotFoundError:
        pass
    except NotADirectoryError:
        path.unlink(missing_ok=True)
