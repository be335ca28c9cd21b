"""Paths inside a container's root that no symlink of the image can lead out of.

:func:`secure_join` resolves a path component by component as if ``root`` were ``/``
(what ``filepath-securejoin`` does for runc): an absolute symlink restarts at ``root``,
``..`` never climbs above it, and missing components are kept as they are written.
Runs in the forked child too: only ``os``, ``stat`` and the core's (imported) resolver.
"""

# str paths and os calls: this runs in the forked child:
# ruff: noqa: PTH102, PTH115, PTH120

from __future__ import annotations

import errno
import os
import stat

from pydockerd.plugin import InvalidParameter, chroot_resolve

__all__ = ["make_directories", "make_mount_point", "secure_join"]

_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def secure_join(root: str, unsafe: str) -> str:
    """``root`` joined with ``unsafe``, every symlink resolved inside ``root``.

    :raises OSError: ``ELOOP`` after too many symlinks.
    """
    base = root.rstrip("/")
    try:
        resolved = chroot_resolve(
            unsafe.split("/"),
            lambda p: os.lstat(base + "/" + p),
            lambda p: os.readlink(base + "/" + p),
        )
    except InvalidParameter:
        raise OSError(errno.ELOOP, "too many levels of symbolic links", root + unsafe) from None
    return base + "/" + "/".join(resolved)


def make_directories(root: str, path: str, mode: int = 0o755) -> None:
    """Create the directory ``path`` (a :func:`secure_join` result below ``root``) and its
    missing parents; an existing non-directory in the way is ``ENOTDIR``."""
    relative = path[len(root.rstrip("/")) :].strip("/")
    current = root.rstrip("/")
    for part in relative.split("/") if relative else ():
        current += "/" + part
        try:
            os.mkdir(current, mode)
        except FileExistsError:
            if not stat.S_ISDIR(os.lstat(current).st_mode):
                raise NotADirectoryError(errno.ENOTDIR, "not a directory", current) from None


def make_mount_point(root: str, path: str, *, file: bool) -> None:
    """Make ``path`` (below ``root``) a place to mount on: a directory, or an empty file
    when a file is to be bound there. What exists already is left as it is."""
    if not file:
        make_directories(root, path)
        return
    make_directories(root, os.path.dirname(path))
    try:
        fd = os.open(path, _NEW_FILE, 0o644)
    except FileExistsError:
        return
    os.close(fd)
