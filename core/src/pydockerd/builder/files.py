"""COPY and ADD: finding sources, hashing them for the cache, and placing them in a root
filesystem as Docker's builder does.

Every path is resolved as a chroot would (:func:`pydockerd.fsutil.resolve_in_root`): a
symlink in the context or in the image can never make a source or a destination leave its
tree. The functions here do blocking I/O; the builder runs them in a worker thread.
"""

from __future__ import annotations

import glob
import hashlib
import os
import shutil
import stat
import tarfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from pydockerd.archive import decompressed, is_tar_header
from pydockerd.errors import InvalidParameter
from pydockerd.fsutil import clean_parts, resolve_in_root

__all__ = [
    "Ownership",
    "content_digest",
    "copy_sources",
    "ensure_directory",
    "find_sources",
    "is_archive",
    "parse_chmod",
    "parse_chown",
    "write_file",
]

_GLOB_CHARS = frozenset("*?[")
_DIR_MODE = 0o755


@dataclass(frozen=True)
class Ownership:
    """Who owns what COPY makes (``--chown``); 0:0 when not given."""

    uid: int = 0
    gid: int = 0


def _clean(path: str) -> str:
    """``path`` as a relative, normalised POSIX path ("" for the root)."""
    return "/".join(clean_parts(path))


def find_sources(root: Path, patterns: Sequence[str], instruction: str = "COPY") -> list[Path]:
    """The files and directories ``patterns`` name under ``root`` (globs as Go's
    ``filepath.Match``: ``*``, ``?``, ``[...]``), each resolved inside ``root``.

    :raises InvalidParameter: a pattern matches nothing (Docker's words).
    """
    found: list[Path] = []
    for pattern in patterns:
        cleaned = _clean(pattern)
        if _GLOB_CHARS & set(cleaned):
            names = sorted(glob.glob(cleaned, root_dir=root, include_hidden=True))  # noqa: PTH207 - Path.glob has no include_hidden
        else:
            names = [cleaned]
        matched = False
        for name in names:
            path = resolve_in_root(root, name)
            if path.exists() or path.is_symlink():
                found.append(path)
                matched = True
        if not matched:
            raise InvalidParameter(
                f"{instruction} failed: file not found in build context or excluded by "
                f".dockerignore: stat {pattern}: file does not exist"
            )
    return found


def _walk(path: Path) -> Iterable[Path]:
    """``path`` and, for a directory, everything under it, in a stable order."""
    yield path
    if path.is_dir() and not path.is_symlink():
        for child in sorted(path.iterdir()):
            yield from _walk(child)


def content_digest(sources: Sequence[Path], extra: Iterable[str] = ()) -> str:
    """A digest of what COPY would copy: names, types, modes, link targets and contents
    (owners and times are left out, as Docker's cache does), plus ``extra`` strings."""
    digest = hashlib.sha256()
    for item in extra:
        digest.update(item.encode() + b"\0")
    for source in sources:
        for path in _walk(source):
            info = path.lstat()
            name = str(path.relative_to(source.parent)) if path != source else source.name
            digest.update(
                f"{name}\0{stat.S_IFMT(info.st_mode)}\0{info.st_mode & 0o7777}\0".encode()
            )
            if stat.S_ISLNK(info.st_mode):
                digest.update(str(path.readlink()).encode() + b"\0")
            elif stat.S_ISREG(info.st_mode):
                with path.open("rb") as f:
                    while chunk := f.read(1 << 20):
                        digest.update(chunk)
                digest.update(b"\0")
    return "sha256:" + digest.hexdigest()


def parse_chmod(value: str | None) -> int | None:
    """``--chmod=755`` as a mode; None when not given."""
    if not value:
        return None
    try:
        mode = int(value, 8)
    except ValueError:
        raise InvalidParameter(f"invalid chmod parameter: {value}") from None
    if not 0 <= mode <= 0o7777:
        raise InvalidParameter(f"invalid chmod parameter: {value}")
    return mode


def _lookup(rootfs: Path, database: str, name: str) -> int | None:
    """The id of ``name`` in the image's ``/etc/passwd`` or ``/etc/group``."""
    path = resolve_in_root(rootfs, f"etc/{database}")
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return None
    for line in lines:
        fields = line.split(":")
        if len(fields) > 2 and fields[0] == name and fields[2].isdigit():
            return int(fields[2])
    return None


def parse_chown(value: str | None, rootfs: Path | None) -> Ownership:
    """``--chown=user[:group]``: names looked up in the image's ``/etc/passwd`` and
    ``/etc/group``, or numbers; without a group, the user's number is the group's too (as
    Docker documents it)."""
    if not value:
        return Ownership()
    user, _, group = value.partition(":")

    def resolve(name: str, database: str, kind: str) -> int:
        if name.isdigit():
            return int(name)
        found = _lookup(rootfs, database, name) if rootfs is not None else None
        if found is None:
            raise InvalidParameter(
                "unable to convert uid/gid chown string to host mapping: can't find "
                f"{'uid' if kind == 'user' else 'gid'} for {kind} {name}: no such {kind}: {name}"
            )
        return found

    uid = resolve(user, "passwd", "user")
    return Ownership(uid, resolve(group, "group", "group") if group else uid)


def ensure_directory(rootfs: Path, directory: str, owner: Ownership) -> Path:
    """Make ``directory`` (absolute in the image) and its missing parents (mode 755, owned
    by ``owner``); the directory on the host."""
    current = ""
    for part in _clean(directory).split("/"):
        if not part:
            continue
        current = f"{current}/{part}" if current else part
        path = resolve_in_root(rootfs, current)
        if not path.exists():
            path.mkdir(mode=_DIR_MODE)
            os.chown(path, owner.uid, owner.gid)
            path.chmod(_DIR_MODE)
        elif not path.is_dir():
            raise InvalidParameter(f"cannot copy to {directory}: /{current} is not a directory")
    return resolve_in_root(rootfs, _clean(directory))


def _target(directory: str, name: str) -> str:
    return str(PurePosixPath("/", directory, name))


def _copy_entry(
    source: Path, rootfs: Path, target: str, owner: Ownership, mode: int | None
) -> None:
    """One file, link or (empty) directory at ``target`` in the image."""
    destination = resolve_in_root(rootfs, _clean(target))
    info = source.lstat()
    if stat.S_ISDIR(info.st_mode):
        if not destination.is_dir():
            if destination.exists() or destination.is_symlink():
                destination.unlink()
            destination.mkdir()
        destination.chmod(mode if mode is not None else stat.S_IMODE(info.st_mode))
    else:
        if destination.is_dir() and not destination.is_symlink():
            shutil.rmtree(destination)
        elif destination.exists() or destination.is_symlink():
            destination.unlink()
        if stat.S_ISLNK(info.st_mode):
            destination.symlink_to(source.readlink())
        else:
            shutil.copyfile(source, destination, follow_symlinks=False)
            destination.chmod(mode if mode is not None else stat.S_IMODE(info.st_mode))
    os.chown(destination, owner.uid, owner.gid, follow_symlinks=False)
    if not stat.S_ISLNK(info.st_mode):
        os.utime(destination, ns=(info.st_atime_ns, info.st_mtime_ns))


def _copy_tree(source: Path, rootfs: Path, target: str, owner: Ownership, mode: int | None) -> None:
    """The contents of directory ``source`` into directory ``target`` (made if missing)."""
    ensure_directory(rootfs, target, owner)
    for child in sorted(source.iterdir()):
        child_target = _target(target, child.name)
        _copy_entry(child, rootfs, child_target, owner, mode)
        if child.is_dir() and not child.is_symlink():
            _copy_tree(child, rootfs, child_target, owner, mode)


def is_archive(path: Path) -> bool:
    """Whether ADD unpacks ``path``: a tar, plain or compressed (gzip, bzip2, xz, zstd)."""
    try:
        with path.open("rb") as raw:
            head = decompressed(raw).read(512)
    except (OSError, ValueError, EOFError):
        return False
    return is_tar_header(head)


def _unpack(source: Path, rootfs: Path, target: str, owner: Ownership) -> None:
    directory = ensure_directory(rootfs, target, owner)
    with source.open("rb") as raw, tarfile.open(fileobj=decompressed(raw), mode="r|") as tar:
        try:
            tar.extractall(directory, filter="tar")
        except (tarfile.TarError, OSError) as e:
            raise InvalidParameter(f"ADD failed to unpack {source.name}: {e}") from None


def copy_sources(
    sources: Sequence[Path],
    rootfs: Path,
    destination: str,
    *,
    owner: Ownership,
    mode: int | None = None,
    unpack: bool = False,
    instruction: str = "COPY",
) -> None:
    """Place ``sources`` at ``destination`` (absolute in the image) as COPY does: a
    directory's contents go into the destination directory; a file goes into it when it ends
    with ``/`` or is a directory there, else becomes it. With ``unpack`` (ADD), local tar
    archives are unpacked into the destination directory instead."""
    into_directory = destination.endswith("/")
    if len(sources) > 1 and not into_directory:
        raise InvalidParameter(
            f"When using {instruction} with more than one source file, the destination must "
            "be a directory and end with a /"
        )
    existing = resolve_in_root(rootfs, _clean(destination))
    if existing.is_dir():
        into_directory = True
    for source in sources:
        if source.is_dir() and not source.is_symlink():
            _copy_tree(source, rootfs, destination, owner, mode)
        elif unpack and is_archive(source):
            _unpack(source, rootfs, destination, owner)
        elif into_directory:
            ensure_directory(rootfs, destination, owner)
            _copy_entry(source, rootfs, _target(destination, source.name), owner, mode)
        else:
            parent = str(PurePosixPath("/", _clean(destination)).parent)
            ensure_directory(rootfs, parent, owner)
            _copy_entry(source, rootfs, destination, owner, mode)


def write_file(rootfs: Path, destination: str, data: bytes, owner: Ownership, mode: int) -> None:
    """A file made from text (``COPY <<EOF /dest``)."""
    parent = str(PurePosixPath("/", _clean(destination)).parent)
    ensure_directory(rootfs, parent, owner)
    path = resolve_in_root(rootfs, _clean(destination))
    if path.is_dir() and not path.is_symlink():
        path = resolve_in_root(rootfs, _clean(destination) + "/" + "heredoc")
    path.write_bytes(data)
    os.chown(path, owner.uid, owner.gid)
    path.chmod(mode)
