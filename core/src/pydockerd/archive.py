"""Image layer tars: safe unpacking into a directory, and layer diffs written back as tars.

Storage drivers call these from worker threads (plain synchronous code).

Safety model of :func:`apply_layer`: nothing is ever created, modified or deleted outside
``root``, whatever the tar holds.

* Member names are cleaned lexically as if ``root`` were ``/``: ``/etc/x`` and ``../../etc/x``
  both mean ``root/etc/x`` (docker clamps names the same way). ``.`` and ``..`` never escape.
* A member's *parent* directory is resolved like a chroot at ``root`` would: symlinks already in
  the tree are followed (``lib -> usr/lib`` then ``lib/x.so`` lands in ``root/usr/lib``), but an
  absolute target restarts at ``root`` and ``..`` stops at ``root``. The resolved directory is
  then opened component by component with ``O_NOFOLLOW``, and the final component is created,
  replaced or deleted relative to that directory fd without following it.
* Hard link targets resolve the same way and link the entry itself (a symlink stays a symlink).
  In overlay mode ``root`` is the layer's own upper directory, so a hard link target must be in
  the same tar (docker's layers always are).

Whiteouts hide what lower layers hold, never what this same layer wrote: ``.wh.x`` after ``x``
in the same tar keeps ``x`` (a directory keeps only this layer's entries), and an opaque
directory keeps what this layer wrote in it, before or after the marker.

What a refused member does:

* Raises :class:`~pydockerd.errors.InvalidParameter` (the whole layer fails, like docker's
  "invalid hardlink"): a hard link whose target does not exist inside ``root`` or is a
  directory; a path with too many levels of symlinks; a parent that is not a directory; a tar
  that cannot be read.
* Skipped with a loguru warning: a non-directory member naming ``root`` itself, malformed
  whiteouts (``.wh.``, ``.wh..``, ``.wh...``, unknown ``.wh..wh.*``), member types we do not
  know, and ``trusted.overlay.*`` xattrs (they would steer overlayfs).
"""

from __future__ import annotations

import errno
import gzip
import io
import os
import shutil
import stat
import tarfile
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import IO, BinaryIO, Literal, cast

import zstandard
from loguru import logger

from pydockerd.errors import InvalidParameter
from pydockerd.fsutil import chroot_resolve, clean_parts

__all__ = [
    "Whiteouts",
    "apply_layer",
    "decompressed",
    "is_tar_header",
    "write_changes_diff",
    "write_overlay_diff",
    "write_tar",
]

Whiteouts = Literal["delete", "overlay"]

WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"
OVERLAY_OPAQUE_XATTR = "trusted.overlay.opaque"
_OVERLAY_XATTR_PREFIX = "trusted.overlay."
_XATTR_PAX_PREFIX = "SCHILY.xattr."
_CHUNK = 1 << 20
_DEVICE_TYPES = (tarfile.CHRTYPE, tarfile.BLKTYPE, tarfile.FIFOTYPE)
_OTHER_TYPES = frozenset((tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE, *_DEVICE_TYPES))
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC

Key = tuple[str, ...]

# --------------------------------------------------------------------------- decompression


class _Prefixed(io.RawIOBase):
    """A raw stream that replays ``head`` and then reads on from ``rest``."""

    def __init__(self, head: bytes, rest: IO[bytes]) -> None:
        self._head = head
        self._rest = rest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        if self._head:
            n = min(len(buffer), len(self._head))
            buffer[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        data = self._rest.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def is_tar_header(head: bytes) -> bool:
    """Whether ``head`` (a stream's first 512 bytes) starts a tar archive (ustar magic)."""
    return len(head) >= 262 and head[257:262] == b"ustar"


def decompressed(stream: BinaryIO) -> BinaryIO:
    """``stream`` uncompressed: gzip and zstd are detected by their magic bytes, anything else
    is returned as is (read through). Works on non-seekable streams."""
    head = b""
    while len(head) < 4:
        chunk = stream.read(4 - len(head))
        if not chunk:
            break
        head += chunk
    buffered = io.BufferedReader(_Prefixed(head, stream), _CHUNK)
    if head.startswith(b"\x1f\x8b"):
        return cast(BinaryIO, gzip.GzipFile(fileobj=buffered, mode="rb"))
    if head.startswith(b"\x28\xb5\x2f\xfd"):
        reader = zstandard.ZstdDecompressor().stream_reader(buffered, read_across_frames=True)
        return cast(BinaryIO, reader)
    return cast(BinaryIO, buffered)


# --------------------------------------------------------------------------- applying


def _mtime_ns(member: tarfile.TarInfo) -> int:
    """The member's mtime in ns, exact from a PAX ``mtime`` record when there is one."""
    text = member.pax_headers.get("mtime")
    if text is not None:
        try:
            return int(Decimal(text) * 1_000_000_000)
        except (ArithmeticError, ValueError):
            pass
    return int(member.mtime) * 1_000_000_000


def _member_xattrs(member: tarfile.TarInfo) -> dict[str, bytes]:
    xattrs: dict[str, bytes] = {}
    for key, value in member.pax_headers.items():
        if not key.startswith(_XATTR_PAX_PREFIX):
            continue
        name = key[len(_XATTR_PAX_PREFIX) :]
        if name.startswith(_OVERLAY_XATTR_PREFIX):
            logger.warning("layer member {!r}: ignoring xattr {}", member.name, name)
            continue
        xattrs[name] = value.encode("utf-8", "surrogateescape")
    return xattrs


def _proc_path(dir_fd: int, name: str) -> str:
    """A path naming ``name`` in the directory ``dir_fd`` (for calls without ``dir_fd``)."""
    return f"/proc/self/fd/{dir_fd}/{name}"


def _set_xattrs(target: int | str, xattrs: dict[str, bytes], what: str) -> None:
    for name, value in xattrs.items():
        try:
            if isinstance(target, int):
                os.setxattr(target, name, value)
            else:
                os.setxattr(target, name, value, follow_symlinks=False)
        except OSError as e:
            if e.errno not in (errno.ENOTSUP, errno.EOPNOTSUPP, errno.EPERM):
                raise
            if name.startswith(("trusted.", "security.")):
                logger.debug("{}: cannot set xattr {}: {}", what, name, e)
            else:
                logger.warning("{}: cannot set xattr {}: {}", what, name, e)


class _Applier:
    """State of one :func:`apply_layer` run: ``root`` as an fd, and what this layer wrote."""

    def __init__(self, root_fd: int, whiteouts: Whiteouts) -> None:
        self.root_fd = root_fd
        self.mode = whiteouts
        self.size = 0
        self.written: set[Key] = set()  # entries this layer created or replaced
        self.touched: set[Key] = set()  # ``written`` and all their ancestors
        self.dir_times: dict[Key, int] = {}

    # -- resolution

    def resolve(self, parts: list[str]) -> list[str]:
        """Resolve a directory path with chroot semantics at ``root``: the real components
        (none of them a symlink; missing ones are kept as they would be created)."""
        return chroot_resolve(
            parts,
            lambda p: os.lstat(p, dir_fd=self.root_fd),
            lambda p: os.readlink(p, dir_fd=self.root_fd),
        )

    def open_dir(self, parts: list[str], *, create: bool) -> int:
        """An fd of the real directory ``parts`` below ``root``, opened without following any
        symlink; missing directories (and, for overlay, whiteouts) are made when ``create``."""
        fd = os.dup(self.root_fd)
        try:
            for i, part in enumerate(parts):
                try:
                    sub = os.open(part, _DIR_FLAGS, dir_fd=fd)
                except OSError as e:
                    if e.errno not in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
                        raise
                    sub = self.make_dir(fd, part, (*parts[: i + 1],), e, create=create)
                os.close(fd)
                fd = sub
        except BaseException:
            os.close(fd)
            raise
        return fd

    def make_dir(self, fd: int, name: str, key: Key, error: OSError, *, create: bool) -> int:
        """Create the implicit parent directory ``name`` (0755) in ``fd``, over a whiteout of
        this layer in overlay mode (the directory is then opaque)."""
        opaque = False
        if create and error.errno != errno.ENOENT and self.mode == "overlay":
            opaque = _is_whiteout(os.lstat(name, dir_fd=fd))
            if opaque:
                os.unlink(name, dir_fd=fd)
        if error.errno == errno.ENOENT and not create:
            raise error
        if error.errno != errno.ENOENT and not opaque:
            raise InvalidParameter(f"{'/'.join(key)}: not a directory") from error
        os.mkdir(name, 0o755, dir_fd=fd)
        sub = os.open(name, _DIR_FLAGS, dir_fd=fd)
        os.fchmod(sub, 0o755)
        if opaque:
            os.setxattr(sub, OVERLAY_OPAQUE_XATTR, b"y")
        self.mark(key)
        return sub

    def mark(self, key: Key) -> None:
        self.written.add(key)
        for i in range(1, len(key) + 1):
            self.touched.add(key[:i])

    # -- members

    def apply(self, tar: tarfile.TarFile, member: tarfile.TarInfo) -> None:
        parts = clean_parts(member.name)
        if parts and parts[-1].startswith(WHITEOUT_PREFIX):
            self.whiteout(parts[:-1], parts[-1], member.name)
            return
        if not parts:
            if member.isdir():
                self.set_fd_meta(self.root_fd, member, member.name)
                self.dir_times[()] = _mtime_ns(member)
            else:
                logger.warning("layer member {!r} names the root: skipped", member.name)
            return
        if not (member.isreg() or member.type in _OTHER_TYPES):
            logger.warning("layer member {!r}: unsupported type {!r}", member.name, member.type)
            return
        parent = self.resolve(parts[:-1])
        name = parts[-1]
        key = (*parent, name)
        pfd = self.open_dir(parent, create=True)
        try:
            if member.islnk():
                self.hardlink(pfd, name, key, member)
            else:
                self.create(tar, pfd, name, key, member)
        finally:
            os.close(pfd)
        self.mark(key)

    def clear(self, pfd: int, name: str, *, keep_dir: bool) -> os.stat_result | None:
        """Remove whatever is at ``name`` (a directory only unless ``keep_dir``); the stat of
        what was there, or None."""
        try:
            st = os.lstat(name, dir_fd=pfd)
        except FileNotFoundError:
            return None
        if stat.S_ISDIR(st.st_mode):
            if not keep_dir:
                shutil.rmtree(name, dir_fd=pfd)
        else:
            os.unlink(name, dir_fd=pfd)
        return st

    def create(
        self, tar: tarfile.TarFile, pfd: int, name: str, key: Key, member: tarfile.TarInfo
    ) -> None:
        old = self.clear(pfd, name, keep_dir=member.isdir())
        what = member.name
        if member.isdir():
            if old is None or not stat.S_ISDIR(old.st_mode):
                os.mkdir(name, 0o700, dir_fd=pfd)
            fd = os.open(name, _DIR_FLAGS, dir_fd=pfd)
            try:
                self.set_fd_meta(fd, member, what)
                if self.mode == "overlay" and old is not None and _is_whiteout(old):
                    os.setxattr(fd, OVERLAY_OPAQUE_XATTR, b"y")
            finally:
                os.close(fd)
            self.dir_times[key] = _mtime_ns(member)
            return
        if member.isreg():
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
            fd = os.open(name, flags, 0o600, dir_fd=pfd)
            try:
                source = tar.extractfile(member)
                if source is not None:
                    with os.fdopen(fd, "wb", closefd=False) as sink:
                        shutil.copyfileobj(source, sink, _CHUNK)
                        self.size += sink.tell()
                self.set_fd_meta(fd, member, what)
                ns = _mtime_ns(member)
                os.utime(fd, ns=(ns, ns))
            finally:
                os.close(fd)
            return
        if member.issym():
            os.symlink(member.linkname, name, dir_fd=pfd)
        elif member.ischr() or member.isblk():
            kind = stat.S_IFCHR if member.ischr() else stat.S_IFBLK
            device = os.makedev(member.devmajor, member.devminor)
            os.mknod(name, kind | 0o600, device, dir_fd=pfd)
        else:
            os.mkfifo(name, 0o600, dir_fd=pfd)
        os.chown(name, member.uid, member.gid, dir_fd=pfd, follow_symlinks=False)
        if not member.issym():  # a node we just made, not a symlink: chmod cannot follow
            os.chmod(name, member.mode, dir_fd=pfd)
        _set_xattrs(_proc_path(pfd, name), _member_xattrs(member), what)
        ns = _mtime_ns(member)
        os.utime(name, ns=(ns, ns), dir_fd=pfd, follow_symlinks=False)

    def set_fd_meta(self, fd: int, member: tarfile.TarInfo, what: str) -> None:
        os.fchown(fd, member.uid, member.gid)  # before chmod: chown clears setuid/setgid
        os.fchmod(fd, member.mode)
        _set_xattrs(fd, _member_xattrs(member), what)  # after chown: it drops capabilities

    def hardlink(self, pfd: int, name: str, key: Key, member: tarfile.TarInfo) -> None:
        target = clean_parts(member.linkname)
        invalid = f"invalid hardlink {member.name!r} -> {member.linkname!r}"
        if not target:
            raise InvalidParameter(invalid)
        tparent = self.resolve(target[:-1])
        try:
            tfd = self.open_dir(tparent, create=False)
        except (FileNotFoundError, InvalidParameter) as e:
            raise InvalidParameter(f"{invalid}: no such target") from e
        try:
            try:
                st = os.lstat(target[-1], dir_fd=tfd)
            except FileNotFoundError as e:
                raise InvalidParameter(f"{invalid}: no such target") from e
            if stat.S_ISDIR(st.st_mode):
                raise InvalidParameter(f"{invalid}: target is a directory")
            if (*tparent, target[-1]) == key:
                return
            self.clear(pfd, name, keep_dir=False)
            os.link(target[-1], name, src_dir_fd=tfd, dst_dir_fd=pfd, follow_symlinks=False)
        finally:
            os.close(tfd)

    # -- whiteouts

    def whiteout(self, parent_parts: list[str], base: str, what: str) -> None:
        if base == OPAQUE_MARKER:
            self.opaque(self.resolve(parent_parts))
            return
        name = base[len(WHITEOUT_PREFIX) :]
        if base.startswith(WHITEOUT_PREFIX + WHITEOUT_PREFIX) or name in ("", ".", ".."):
            logger.warning("layer member {!r}: invalid whiteout, skipped", what)
            return
        parent = self.resolve(parent_parts)
        key = (*parent, name)
        try:
            pfd = self.open_dir(parent, create=self.mode == "overlay")
        except (FileNotFoundError, InvalidParameter):
            return  # nothing there to delete
        try:
            try:
                st: os.stat_result | None = os.lstat(name, dir_fd=pfd)
            except FileNotFoundError:
                st = None
            if key in self.written:  # a whiteout hides lower layers, not this one
                if st is not None and stat.S_ISDIR(st.st_mode):
                    self.opaque(list(key))
                return
            self.clear(pfd, name, keep_dir=False)
            if self.mode == "overlay":
                os.mknod(name, stat.S_IFCHR, os.makedev(0, 0), dir_fd=pfd)
        finally:
            os.close(pfd)

    def opaque(self, parts: list[str]) -> None:
        if self.mode == "overlay":
            fd = self.open_dir(parts, create=True)
            try:
                os.setxattr(fd, OVERLAY_OPAQUE_XATTR, b"y")
            finally:
                os.close(fd)
            return
        try:
            fd = self.open_dir(parts, create=False)
        except (FileNotFoundError, InvalidParameter):
            return
        try:
            self.purge(fd, tuple(parts))
        finally:
            os.close(fd)

    def purge(self, fd: int, key: Key) -> None:
        """Delete what is in the directory ``fd`` that this layer did not write."""
        for name in os.listdir(fd):
            child = (*key, name)
            if child not in self.touched:
                self.clear(fd, name, keep_dir=False)
                continue
            try:
                sub = os.open(name, _DIR_FLAGS, dir_fd=fd)
            except OSError:
                continue  # not a directory: written by this layer, kept
            try:
                self.purge(sub, child)
            finally:
                os.close(sub)

    def finish(self) -> None:
        """Directory mtimes, now that nothing more is written into them."""
        for key, ns in self.dir_times.items():
            try:
                fd = self.open_dir(list(key), create=False)
            except (OSError, InvalidParameter):
                continue  # replaced or deleted later in the layer
            try:
                os.utime(fd, ns=(ns, ns))
            finally:
                os.close(fd)


def _is_whiteout(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


class _Counting(io.RawIOBase):
    def __init__(self, stream: IO[bytes]) -> None:
        self.stream = stream
        self.count = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        data = self.stream.read(size)
        self.count += len(data)
        return data

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def apply_layer(stream: BinaryIO, root: Path, *, whiteouts: Whiteouts) -> int:
    """Apply the uncompressed layer tar ``stream`` onto the existing directory ``root``, read
    ``stream`` to its end, and return the bytes of regular-file content written."""
    counting = _Counting(stream)
    root_fd = os.open(root, _DIR_FLAGS)
    applier = _Applier(root_fd, whiteouts)
    try:
        try:
            tar = tarfile.open(  # noqa: SIM115 - closed below; stream mode has no context use
                fileobj=cast(IO[bytes], counting),
                mode="r|",
                encoding="utf-8",
                errors="surrogateescape",
            )
        except tarfile.ReadError as e:
            if counting.count == 0:
                return 0  # an empty stream is an empty layer
            raise InvalidParameter(f"invalid layer tar: {e}") from e
        try:
            while True:
                try:
                    member = tar.next()
                except tarfile.TarError as e:
                    raise InvalidParameter(f"invalid layer tar: {e}") from e
                if member is None:
                    break
                # stream mode: do not keep every header in memory
                tar.members = []  # type: ignore[attr-defined]
                try:
                    applier.apply(tar, member)
                except tarfile.TarError as e:  # truncated content
                    raise InvalidParameter(f"invalid layer tar: {e}") from e
        finally:
            tar.close()
        applier.finish()
    finally:
        os.close(root_fd)
    while stream.read(_CHUNK):
        pass
    return applier.size


# --------------------------------------------------------------------------- writing


def _walk(dir_fd: int, prefix: str, descend: set[str] | None = None) -> Iterator[_Entry]:
    """Entries below ``dir_fd`` in sorted order, directories before their contents; with
    ``descend``, only directories whose path is in it are entered."""
    for name in sorted(os.listdir(dir_fd)):
        st = os.lstat(name, dir_fd=dir_fd)
        entry = _Entry(f"{prefix}{name}", dir_fd, name, st)
        yield entry
        if stat.S_ISDIR(st.st_mode) and (descend is None or entry.rel in descend):
            sub = os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
            try:
                yield from _walk(sub, entry.rel + "/", descend)
            finally:
                os.close(sub)


class _Entry:
    __slots__ = ("dir_fd", "name", "rel", "st")

    def __init__(self, rel: str, dir_fd: int, name: str, st: os.stat_result) -> None:
        self.rel = rel
        self.dir_fd = dir_fd
        self.name = name
        self.st = st


def _xattrs(dir_fd: int, name: str) -> dict[str, bytes]:
    """Extended attributes of ``name`` (not followed), without ``trusted.overlay.*``."""
    path = _proc_path(dir_fd, name)
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError as e:
        if e.errno in (errno.ENOTSUP, errno.EOPNOTSUPP):
            return {}
        raise
    return {
        key: os.getxattr(path, key, follow_symlinks=False)
        for key in sorted(names)
        if not key.startswith(_OVERLAY_XATTR_PREFIX)
    }


class _Writer:
    """A PAX tar stream with numeric ids, exact mtimes, xattrs and hard links."""

    def __init__(self, out: BinaryIO) -> None:
        self.tar = tarfile.open(  # noqa: SIM115 - closed by close()
            fileobj=out,
            mode="w|",
            format=tarfile.PAX_FORMAT,
            encoding="utf-8",
            errors="surrogateescape",
        )
        self.links: dict[tuple[int, int], str] = {}

    def close(self) -> None:
        self.tar.close()

    def entry(self, entry: _Entry) -> None:
        st = entry.st
        if stat.S_ISSOCK(st.st_mode):
            return  # sockets are not part of an image
        info = tarfile.TarInfo(entry.rel)
        info.mode = stat.S_IMODE(st.st_mode)
        info.uid, info.gid = st.st_uid, st.st_gid
        info.uname = info.gname = ""
        info.mtime = st.st_mtime_ns // 1_000_000_000
        pax: dict[str, str] = {}
        if st.st_mtime_ns >= 0 and st.st_mtime_ns % 1_000_000_000:
            pax["mtime"] = f"{info.mtime}.{st.st_mtime_ns % 1_000_000_000:09d}"
        for key, value in _xattrs(entry.dir_fd, entry.name).items():
            pax[_XATTR_PAX_PREFIX + key] = value.decode("utf-8", "surrogateescape")
        info.pax_headers = pax
        if not stat.S_ISDIR(st.st_mode) and st.st_nlink > 1:
            first = self.links.setdefault((st.st_dev, st.st_ino), entry.rel)
            if first != entry.rel:
                info.type = tarfile.LNKTYPE
                info.linkname = first
                self.tar.addfile(info)
                return
        if stat.S_ISREG(st.st_mode):
            info.size = st.st_size
            fd = os.open(
                entry.name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=entry.dir_fd
            )
            with os.fdopen(fd, "rb") as source:
                self.tar.addfile(info, source)
            return
        if stat.S_ISDIR(st.st_mode):
            info.type = tarfile.DIRTYPE
        elif stat.S_ISLNK(st.st_mode):
            info.type = tarfile.SYMTYPE
            info.linkname = os.readlink(entry.name, dir_fd=entry.dir_fd)
        elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
            info.type = tarfile.CHRTYPE if stat.S_ISCHR(st.st_mode) else tarfile.BLKTYPE
            info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
        elif stat.S_ISFIFO(st.st_mode):
            info.type = tarfile.FIFOTYPE
        self.tar.addfile(info)

    def whiteout(self, rel: str) -> None:
        info = tarfile.TarInfo(rel)
        info.mode = 0o600
        info.uname = info.gname = ""
        self.tar.addfile(info)


def write_tar(root: Path, out: BinaryIO) -> None:
    """Everything below ``root`` (not ``root`` itself) as an uncompressed PAX tar."""
    writer = _Writer(out)
    root_fd = os.open(root, _DIR_FLAGS)
    try:
        for entry in _walk(root_fd, ""):
            writer.entry(entry)
    finally:
        os.close(root_fd)
        writer.close()


def write_overlay_diff(upper: Path, out: BinaryIO) -> None:
    """The overlayfs upper directory ``upper`` as an OCI layer tar: whiteout devices become
    ``.wh.<name>`` and opaque directories get a ``.wh..wh..opq`` member."""
    writer = _Writer(out)
    upper_fd = os.open(upper, _DIR_FLAGS)
    try:
        for entry in _walk(upper_fd, ""):
            if _is_whiteout(entry.st):
                head, _, _ = entry.rel.rpartition("/")
                writer.whiteout(f"{head}/{WHITEOUT_PREFIX}{entry.name}".lstrip("/"))
                continue
            writer.entry(entry)
            if stat.S_ISDIR(entry.st.st_mode) and _is_opaque(entry.dir_fd, entry.name):
                writer.whiteout(f"{entry.rel}/{OPAQUE_MARKER}")
    finally:
        os.close(upper_fd)
        writer.close()


def _is_opaque(dir_fd: int, name: str) -> bool:
    try:
        value = os.getxattr(_proc_path(dir_fd, name), OVERLAY_OPAQUE_XATTR, follow_symlinks=False)
    except OSError:
        return False
    return value == b"y"


def _differs(lfd: int, pfd: int, name: str, lst: os.stat_result, pst: os.stat_result) -> bool:
    if stat.S_IFMT(lst.st_mode) != stat.S_IFMT(pst.st_mode):
        return True
    fields = ("st_mode", "st_uid", "st_gid", "st_mtime_ns")
    if any(getattr(lst, f) != getattr(pst, f) for f in fields):
        return True
    if not stat.S_ISDIR(lst.st_mode) and lst.st_size != pst.st_size:
        return True
    if (stat.S_ISCHR(lst.st_mode) or stat.S_ISBLK(lst.st_mode)) and lst.st_rdev != pst.st_rdev:
        return True
    if stat.S_ISLNK(lst.st_mode) and os.readlink(name, dir_fd=lfd) != os.readlink(name, dir_fd=pfd):
        return True
    return _xattrs(lfd, name) != _xattrs(pfd, name)


def _changes(
    lfd: int, pfd: int | None, prefix: str, emit: set[str], whiteouts: dict[str, list[str]]
) -> bool:
    """Collect into ``emit`` the paths below ``lfd`` that differ from ``pfd`` and into
    ``whiteouts`` (by directory prefix) the names deleted; whether anything changed."""
    lnames = sorted(os.listdir(lfd))
    pnames = set(os.listdir(pfd) if pfd is not None else ())  # noqa: PTH208 - an fd
    gone = sorted(pnames.difference(lnames))
    if gone:
        whiteouts[prefix] = gone
    changed = bool(gone)
    for name in lnames:
        lst = os.lstat(name, dir_fd=lfd)
        pst = os.lstat(name, dir_fd=pfd) if pfd is not None and name in pnames else None
        differs = pst is None or _differs(lfd, cast(int, pfd), name, lst, pst)
        rel = prefix + name
        if stat.S_ISDIR(lst.st_mode):
            sub_l = os.open(name, _DIR_FLAGS, dir_fd=lfd)
            sub_p = None
            try:
                if pst is not None and stat.S_ISDIR(pst.st_mode):
                    sub_p = os.open(name, _DIR_FLAGS, dir_fd=cast(int, pfd))
                if _changes(sub_l, sub_p, rel + "/", emit, whiteouts):
                    differs = True
            finally:
                os.close(sub_l)
                if sub_p is not None:
                    os.close(sub_p)
        if differs:
            emit.add(rel)
            changed = True
    return changed


def write_changes_diff(layer: Path, parent: Path | None, out: BinaryIO) -> None:
    """What turns the full tree ``parent`` (None: empty) into the full tree ``layer``, as an
    OCI layer tar: changed or added entries, and a whiteout for each top-most deleted path."""
    emit: set[str] = set()
    whiteouts: dict[str, list[str]] = {}
    layer_fd = os.open(layer, _DIR_FLAGS)
    parent_fd = os.open(parent, _DIR_FLAGS) if parent is not None else None
    writer = _Writer(out)
    try:
        _changes(layer_fd, parent_fd, "", emit, whiteouts)
        for name in whiteouts.get("", []):
            writer.whiteout(WHITEOUT_PREFIX + name)
        for entry in _walk(layer_fd, "", emit):
            if entry.rel not in emit:
                continue
            writer.entry(entry)
            for name in whiteouts.get(entry.rel + "/", []):
                writer.whiteout(f"{entry.rel}/{WHITEOUT_PREFIX}{name}")
    finally:
        os.close(layer_fd)
        if parent_fd is not None:
            os.close(parent_fd)
        writer.close()
