"""Small filesystem helpers shared by the core and storage drivers."""

from __future__ import annotations

import os
import re
import shutil
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path

from pydockerd.errors import InvalidParameter

__all__ = [
    "check_layer_id",
    "chroot_resolve",
    "clean_parts",
    "directory_size",
    "remove_tree",
    "resolve_in_root",
    "write_atomically",
]

MAX_SYMLINKS = 40
"""Symlinks followed in one path before giving up (Linux's limit)."""

_LAYER_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")


def clean_parts(path: str) -> list[str]:
    """The components of ``path`` cleaned lexically as if the root were ``/`` (Go's
    ``path.Clean``): no empty or ``.`` parts, and ``..`` never above the root."""
    parts: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if parts:
                parts.pop()
            continue
        parts.append(part)
    return parts


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


def write_atomically(path: Path, data: bytes | str, mode: int = 0o644) -> None:
    """Write ``path`` so that a crash leaves the old file or the new one, never a part: a
    temporary file beside it, synced, then renamed into place."""
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    temporary = Path(name)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        temporary.chmod(mode)
        temporary.replace(path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def chroot_resolve(
    parts: list[str], lstat: Callable[[str], os.stat_result], readlink: Callable[[str], str]
) -> list[str]:
    """Resolve a path as a chroot would: symlinks are followed, an absolute target starts
    again at the root and ``..`` stops there. ``lstat`` and ``readlink`` take a path relative
    to the root. Returns the real components (none a symlink; missing ones kept as given).

    :raises InvalidParameter: more than :data:`MAX_SYMLINKS` symlinks.
    """
    resolved: list[str] = []
    pending = list(reversed(parts))
    followed = 0
    while pending:
        part = pending.pop()
        if part in ("", "."):
            continue
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        path = "/".join([*resolved, part])
        try:
            st = lstat(path)
        except (FileNotFoundError, NotADirectoryError):
            resolved.append(part)
            continue
        if not stat.S_ISLNK(st.st_mode):
            resolved.append(part)
            continue
        followed += 1
        if followed > MAX_SYMLINKS:
            raise InvalidParameter(f"too many levels of symbolic links in {'/'.join(parts)}")
        target = readlink(path)
        if target.startswith("/"):
            resolved = []
        pending.extend(reversed(target.split("/")))
    return resolved


def resolve_in_root(root: Path, path: str) -> Path:
    """``path`` inside the tree ``root`` as a process chrooted there sees it (see
    :func:`chroot_resolve`): never a path outside ``root``, whatever symlinks it holds."""
    parts = chroot_resolve(
        path.split("/"), lambda p: (root / p).lstat(), lambda p: str((root / p).readlink())
    )
    return root.joinpath(*parts)
