"""The storage-driver conformance suite: what every :class:`~pydockerd.plugin.StorageDriver`
must do, checked against a real driver on a real filesystem (in the spirit of moby's
``graphdriver/graphtest`` and containerd's snapshots test suite).

Use it from a driver package's tests by deriving a ``Test*`` class from
:class:`StorageDriverSuite` and naming the driver class; pytest (with pytest-asyncio in
``asyncio_mode = "auto"``) then runs every ``test_*`` method of the suite against it::

    # my_driver/tests/test_conformance.py
    from pydockerd.testing.storage import StorageDriverSuite
    from my_driver.driver import MyDriver

    class TestMyDriverConformance(StorageDriverSuite):
        driver_class = MyDriver
        makes_mounts = True  # mount() of a layer with parents makes a kernel mount

A driver that needs a configuration, or more set-up, provides the ``storage_driver``
fixture itself; build the driver with :func:`make_driver` below ``conformance_dir`` (a short,
fresh directory under ``/tmp``) and always finish with :func:`cleanup_driver`::

    class TestMyDriverConformance(StorageDriverSuite):
        @pytest.fixture
        async def storage_driver(self, conformance_dir: Path) -> AsyncIterator[StorageDriver]:
            driver = make_driver(MyDriver, conformance_dir, MyDriver.Config(option="x"))
            try:
                yield driver
            finally:
                await cleanup_driver(driver)  # removes every layer, detaches every mount

Mounts never outlive a test, even a failing one: :func:`cleanup_driver` removes every layer
and detach-unmounts whatever is left below the driver's directories, and ``conformance_dir``
does the same below itself (by scanning ``/proc/self/mountinfo``) before deleting it.

The tests need root: the layers hold files of other owners, device nodes and setuid bits.

What the suite checks:

1. a base layer from a tar with every member type (files, directories, symlinks, a hard
   link, a fifo, device nodes), modes, owners, exact mtimes and a ``user.*`` xattr reads
   back exactly through :meth:`~StorageDriver.mount`; ``apply_diff`` returns the content
   bytes;
2. a child layer's whiteouts, opaque directory and replaced file give the right merged
   view, and leave the parent's view unchanged;
3. :meth:`~StorageDriver.diff` of the child, applied onto a copy of the parent's tree,
   reproduces the child's tree; the diff of the base reproduces the base;
4. a container's writable layer: changes made through the mount come back from ``diff`` as
   exactly those changes (with whiteouts), and the image layers are untouched;
5. ``remove`` of a mounted layer unmounts it; removing twice is fine; with every layer
   removed, no layer data and no mount is left;
6. a chain 120 layers deep mounts and shows the right view;
7. ``usage`` counts what a layer itself adds, not its parents;
8. errors: ``Conflict``, ``NotFound`` and ``InvalidParameter`` where the interface says;
9. ``mount`` calls are counted, also when they race, and the last ``unmount`` releases;
10. a half-built layer left by a crash (``<state_dir>/<id>.partial``) is listed by
    ``layer_ids`` and deleted by ``remove``;
11. ids that look like the driver's own names (``l``, ``x.partial``, ``diff``, ...) are
    refused with ``InvalidParameter`` or work as layers, never clobbering another layer.
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import io
import os
import random
import shutil
import stat
import tarfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, TypeVar

import pytest
from loguru import logger

from pydockerd.archive import apply_layer, write_tar
from pydockerd.errors import Conflict, InvalidParameter, NotFound
from pydockerd.plugin import StorageDriver
from pydockerd.testing.drivers import (
    detach_mounts_under,
    make_driver,
    mount_points,
    mount_safe_directory,
    mounts_under,
)

__all__ = [
    "LayerBuilder",
    "Node",
    "StorageDriverSuite",
    "Tree",
    "assert_same_tree",
    "cleanup_driver",
    "detach_mounts_under",
    "make_driver",
    "mount_points",
    "mounts_under",
    "snapshot",
]

S = TypeVar("S", bound=StorageDriver)

NS = 1_000_000_000
_XATTR_PAX_PREFIX = "SCHILY.xattr."
_ROOT = os.geteuid() == 0
# owners other than root, when we may set them
UID = 1000 if _ROOT else os.getuid()
GID = 2000 if _ROOT else os.getgid()
ROOT_UID = 0 if _ROOT else os.getuid()
ROOT_GID = 0 if _ROOT else os.getgid()


# --------------------------------------------------------------------------------------
# drivers and mounts


async def cleanup_driver(driver: StorageDriver) -> None:
    """Remove every layer ``driver`` holds, close it, and detach any mount left below its
    directories. Never raises: it runs after failed tests too."""
    context = driver.context
    try:
        try:
            layers = driver.layer_ids()
        except Exception as e:
            logger.warning("conformance: layer_ids() failed during clean-up: {}", e)
            layers = []
        for layer in reversed(layers):
            try:
                await driver.remove(layer)
            except Exception as e:
                logger.warning("conformance: remove({}) failed during clean-up: {}", layer, e)
        try:
            await driver.close()
        except Exception as e:
            logger.warning("conformance: close() failed during clean-up: {}", e)
    finally:
        for directory in (context.state_dir, context.run_dir, context.scratch_dir):
            if directory.exists():
                detach_mounts_under(directory)


# --------------------------------------------------------------------------------------
# trees


@dataclass(frozen=True)
class Node:
    """One entry of a tree, as ``lstat`` and friends see it.

    ``content`` is a regular file's size and sha256, a symlink's target, or a device's
    ``major:minor``; ``xattrs`` are the ``user.*`` extended attributes.
    """

    kind: str
    mode: int
    uid: int
    gid: int
    mtime_ns: int
    content: str = ""
    xattrs: tuple[tuple[str, bytes], ...] = ()

    def __repr__(self) -> str:
        xattrs = f" xattrs={dict(self.xattrs)}" if self.xattrs else ""
        content = f" {self.content!r}" if self.content else ""
        return (
            f"<{self.kind} {self.mode:04o} {self.uid}:{self.gid} "
            f"mtime={self.mtime_ns}{content}{xattrs}>"
        )


@dataclass
class Tree:
    """A directory tree's entries by relative path (the root itself excluded), and its hard
    links: the groups of two or more paths that share an inode."""

    nodes: dict[str, Node] = field(default_factory=dict)
    links: set[frozenset[str]] = field(default_factory=set)

    def without(self, *paths: str) -> Tree:
        """This tree with ``paths`` and everything below them removed."""
        gone = set(paths)

        def removed(path: str) -> bool:
            return any(path == p or path.startswith(p + "/") for p in gone)

        nodes = {p: n for p, n in self.nodes.items() if not removed(p)}
        links = {frozenset(p for p in group if not removed(p)) for group in self.links}
        return Tree(nodes, {group for group in links if len(group) > 1})

    def updated(self, other: Tree) -> Tree:
        """This tree with ``other``'s entries added or replacing ours (a replaced path also
        leaves its hard-link group)."""
        replaced = set(other.nodes)
        links = {frozenset(group - replaced) for group in self.links}
        links |= other.links
        return Tree({**self.nodes, **other.nodes}, {g for g in links if len(g) > 1})


def _content_digest(data: bytes) -> str:
    return f"{len(data)} bytes sha256:{hashlib.sha256(data).hexdigest()[:16]}"


def _kind(mode: int) -> str:
    kinds = {
        stat.S_IFDIR: "dir",
        stat.S_IFREG: "file",
        stat.S_IFLNK: "symlink",
        stat.S_IFIFO: "fifo",
        stat.S_IFCHR: "char",
        stat.S_IFBLK: "block",
        stat.S_IFSOCK: "socket",
    }
    return kinds.get(stat.S_IFMT(mode), "unknown")


def _user_xattrs(path: str) -> tuple[tuple[str, bytes], ...]:
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError as e:
        if e.errno in (errno.ENOTSUP, errno.EOPNOTSUPP):
            return ()
        raise
    return tuple(
        (name, os.getxattr(path, name, follow_symlinks=False))
        for name in sorted(names)
        if name.startswith("user.")
    )


def _node(path: str, st: os.stat_result) -> Node:
    kind = _kind(st.st_mode)
    content = ""
    if kind == "file":
        with Path(path).open("rb") as f:
            content = _content_digest(f.read())
    elif kind == "symlink":
        content = str(Path(path).readlink())
    elif kind in ("char", "block"):
        content = f"{os.major(st.st_rdev)}:{os.minor(st.st_rdev)}"
    return Node(
        kind=kind,
        mode=stat.S_IMODE(st.st_mode),
        uid=st.st_uid,
        gid=st.st_gid,
        mtime_ns=st.st_mtime_ns,
        content=content,
        xattrs=_user_xattrs(path),
    )


def snapshot(root: Path) -> Tree:
    """Everything below ``root`` (symlinks not followed, fifos not opened)."""
    tree = Tree()
    inodes: dict[tuple[int, int], set[str]] = {}

    def walk(directory: str, prefix: str) -> None:
        for name in sorted(os.listdir(directory)):  # noqa: PTH208 - names, not paths
            path = f"{directory}/{name}"
            rel = prefix + name
            st = os.lstat(path)
            tree.nodes[rel] = _node(path, st)
            if stat.S_ISDIR(st.st_mode):
                walk(path, rel + "/")
            elif st.st_nlink > 1:
                inodes.setdefault((st.st_dev, st.st_ino), set()).add(rel)

    walk(str(root), "")
    tree.links = {frozenset(group) for group in inodes.values() if len(group) > 1}
    return tree


def assert_same_tree(actual: Tree, expected: Tree, what: str) -> None:
    """Fail with every difference between two trees listed."""
    problems: list[str] = []
    for path in sorted(actual.nodes.keys() | expected.nodes.keys()):
        want = expected.nodes.get(path)
        have = actual.nodes.get(path)
        if have is None:
            problems.append(f"missing {path}: expected {want!r}")
        elif want is None:
            problems.append(f"unexpected {path}: {have!r}")
        elif have != want:
            problems.append(f"{path}: expected {want!r}, found {have!r}")
    if actual.links != expected.links:
        problems.append(
            f"hard links: expected {sorted(map(sorted, expected.links))}, "
            f"found {sorted(map(sorted, actual.links))}"
        )
    assert not problems, f"{what}:\n  " + "\n  ".join(problems)


# --------------------------------------------------------------------------------------
# layer tars


class LayerBuilder:
    """An uncompressed OCI layer tar built in memory, and what it should unpack to.

    Every method adds one member and records its expected :class:`Node` in :attr:`tree`
    (whiteouts are recorded in :attr:`whiteouts` only). Parents must be added before their
    entries, as in real layers.
    """

    def __init__(self) -> None:
        self._buffer = io.BytesIO()
        self._tar = tarfile.open(  # noqa: SIM115 - closed by data()
            fileobj=self._buffer, mode="w", format=tarfile.PAX_FORMAT, encoding="utf-8"
        )
        self.tree = Tree()
        self.whiteouts: list[str] = []
        self.content_bytes = 0
        self._data: bytes | None = None

    def _add(
        self,
        name: str,
        kind: bytes,
        *,
        mode: int,
        uid: int,
        gid: int,
        mtime_ns: int,
        data: bytes | None = None,
        linkname: str = "",
        device: tuple[int, int] = (0, 0),
        xattrs: dict[str, bytes] | None = None,
    ) -> None:
        info = tarfile.TarInfo(name)
        info.type = kind
        info.mode = mode
        info.uid, info.gid = uid, gid
        info.uname = info.gname = ""
        info.mtime = mtime_ns // NS
        info.linkname = linkname
        info.devmajor, info.devminor = device
        pax: dict[str, str] = {}
        if mtime_ns % NS:
            pax["mtime"] = f"{mtime_ns // NS}.{mtime_ns % NS:09d}"
        for key, value in (xattrs or {}).items():
            pax[_XATTR_PAX_PREFIX + key] = value.decode("utf-8", "surrogateescape")
        info.pax_headers = pax
        if data is None:
            self._tar.addfile(info)
        else:
            info.size = len(data)
            self._tar.addfile(info, io.BytesIO(data))

    def _record(self, name: str, node: Node) -> None:
        self.tree.nodes[name.strip("/")] = node

    def dir(
        self,
        name: str,
        *,
        mode: int = 0o755,
        uid: int = ROOT_UID,
        gid: int = ROOT_GID,
        mtime_ns: int = 1_600_000_000 * NS,
        xattrs: dict[str, bytes] | None = None,
    ) -> None:
        self._add(
            name + "/",
            tarfile.DIRTYPE,
            mode=mode,
            uid=uid,
            gid=gid,
            mtime_ns=mtime_ns,
            xattrs=xattrs,
        )
        self._record(name, Node("dir", mode, uid, gid, mtime_ns, "", _sorted(xattrs)))

    def file(
        self,
        name: str,
        data: bytes,
        *,
        mode: int = 0o644,
        uid: int = ROOT_UID,
        gid: int = ROOT_GID,
        mtime_ns: int = 1_600_000_001 * NS,
        xattrs: dict[str, bytes] | None = None,
    ) -> None:
        self._add(
            name,
            tarfile.REGTYPE,
            mode=mode,
            uid=uid,
            gid=gid,
            mtime_ns=mtime_ns,
            data=data,
            xattrs=xattrs,
        )
        self.content_bytes += len(data)
        node = Node("file", mode, uid, gid, mtime_ns, _content_digest(data), _sorted(xattrs))
        self._record(name, node)

    def symlink(
        self,
        name: str,
        target: str,
        *,
        uid: int = ROOT_UID,
        gid: int = ROOT_GID,
        mtime_ns: int = 1_600_000_002 * NS,
    ) -> None:
        self._add(
            name,
            tarfile.SYMTYPE,
            mode=0o777,
            uid=uid,
            gid=gid,
            mtime_ns=mtime_ns,
            linkname=target,
        )
        self._record(name, Node("symlink", 0o777, uid, gid, mtime_ns, target))

    def hardlink(self, name: str, target: str) -> None:
        """A hard link to ``target``, an earlier member of this tar."""
        self._add(name, tarfile.LNKTYPE, mode=0o644, uid=0, gid=0, mtime_ns=0, linkname=target)
        self._record(name, self.tree.nodes[target])
        group = next((g for g in self.tree.links if target in g), frozenset({target}))
        self.tree.links.discard(group)
        self.tree.links.add(group | {name})

    def fifo(
        self,
        name: str,
        *,
        mode: int = 0o600,
        uid: int = ROOT_UID,
        gid: int = ROOT_GID,
        mtime_ns: int = 1_600_000_003 * NS,
    ) -> None:
        self._add(name, tarfile.FIFOTYPE, mode=mode, uid=uid, gid=gid, mtime_ns=mtime_ns)
        self._record(name, Node("fifo", mode, uid, gid, mtime_ns))

    def device(
        self,
        name: str,
        major: int,
        minor: int,
        *,
        block: bool = False,
        mode: int = 0o666,
        mtime_ns: int = 1_600_000_004 * NS,
    ) -> None:
        kind = tarfile.BLKTYPE if block else tarfile.CHRTYPE
        self._add(name, kind, mode=mode, uid=0, gid=0, mtime_ns=mtime_ns, device=(major, minor))
        node = Node("block" if block else "char", mode, 0, 0, mtime_ns, f"{major}:{minor}")
        self._record(name, node)

    def whiteout(self, path: str) -> None:
        """Delete ``path`` of the lower layers: a ``.wh.<name>`` member."""
        head, _, base = path.rpartition("/")
        member = f"{head}/.wh.{base}" if head else f".wh.{base}"
        self._add(member, tarfile.REGTYPE, mode=0o600, uid=0, gid=0, mtime_ns=0, data=b"")
        self.whiteouts.append(path)

    def opaque(self, directory: str) -> None:
        """Hide what the lower layers hold in ``directory``: a ``.wh..wh..opq`` member."""
        self._add(
            f"{directory}/.wh..wh..opq", tarfile.REGTYPE, mode=0o600, uid=0, gid=0, mtime_ns=0
        )

    def data(self) -> bytes:
        """The finished tar."""
        if self._data is None:
            self._tar.close()
            self._data = self._buffer.getvalue()
        return self._data

    def stream(self) -> io.BytesIO:
        return io.BytesIO(self.data())


def _sorted(xattrs: dict[str, bytes] | None) -> tuple[tuple[str, bytes], ...]:
    return tuple(sorted((xattrs or {}).items()))


def base_layer() -> LayerBuilder:
    """The bottom layer of the suite's image: every member type and attribute."""
    layer = LayerBuilder()
    blob = random.Random(42).randbytes(300 * 1024)  # noqa: S311 - test data, not secrets
    layer.dir("bin", mtime_ns=1_600_000_100 * NS + 123_456_789)
    layer.file("bin/tool", b"#!/bin/sh\necho tool\n", mode=0o4755)
    layer.dir("data", mode=0o750, uid=UID, gid=GID, mtime_ns=1_600_000_200 * NS + 1)
    layer.file("data/blob", blob, uid=UID, gid=GID)
    layer.file("data/old", b"old\n", mode=0o640, uid=UID, gid=GID)
    layer.dir("data/sub", mode=0o700, uid=UID, gid=GID)
    layer.file("data/sub/deep", b"deep\n", mode=0o600, uid=UID, gid=GID)
    if _ROOT:
        layer.dir("dev")
        layer.device("dev/null", 1, 3)
        layer.device("dev/sda", 8, 0, block=True, mode=0o660)
    layer.dir("etc", mtime_ns=1_600_000_300 * NS + 999_999_999)
    layer.symlink("etc/abs-link", "/etc/hello")
    layer.file("etc/empty", b"", mode=0o444)
    layer.file(
        "etc/hello",
        b"hello\n",
        uid=UID,
        gid=GID,
        mtime_ns=1_650_000_000 * NS + 250_000_000,
        xattrs={"user.comment": b"greeting"},
    )
    layer.hardlink("etc/hello-again", "etc/hello")
    layer.file("etc/hostname", b"base\n")
    layer.symlink("etc/link", "hello", uid=UID, gid=GID)
    layer.file("etc/motd", b"welcome\n", mode=0o600)
    layer.dir("run", mode=0o1777)
    layer.fifo("run/fifo", mode=0o620, uid=UID, gid=GID)
    layer.dir("srv")
    layer.dir("srv/www", mode=0o2775, gid=GID)
    layer.file("srv/www/index.html", b"<html></html>\n")
    layer.dir("usr")
    layer.dir("usr/share")
    layer.dir("usr/share/doc")
    layer.file("usr/share/doc/COPYING", b"GPL\n")
    layer.file("usr/share/doc/README", b"read me\n")
    return layer


def child_layer() -> LayerBuilder:
    """The second layer: deletes a file and a directory, empties one (opaque), replaces a
    file and adds a directory."""
    layer = LayerBuilder()
    layer.dir("data", mode=0o750, uid=UID, gid=GID, mtime_ns=1_700_000_000 * NS + 5)
    layer.opaque("data")
    layer.file("data/new", b"new in the child\n", uid=UID, gid=GID)
    layer.dir("etc", mtime_ns=1_700_000_100 * NS + 7)
    layer.whiteout("etc/motd")
    layer.file("etc/hello", b"hello from the child\n", mode=0o600)
    layer.dir("opt", mode=0o711)
    layer.file("opt/app", b"app\n", mode=0o755)
    layer.whiteout("srv")
    return layer


def child_view(base: Tree) -> Tree:
    """What a mount of the child layer on top of the base layer shows."""
    child = child_layer()
    return base.without("etc/motd", "srv", "data/blob", "data/old", "data/sub").updated(child.tree)


def tar_members(data: bytes) -> list[tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r|") as tar:
        return list(tar)


def _copy_tree(tar: bytes, destination: Path) -> None:
    destination.mkdir(mode=0o755)
    apply_layer(io.BytesIO(tar), destination, whiteouts="delete")


def _tar_of(root: Path) -> bytes:
    buffer = io.BytesIO()
    write_tar(root, buffer)
    return buffer.getvalue()


def _ancestors(path: str) -> Iterator[str]:
    parts = path.split("/")
    for i in range(1, len(parts)):
        yield "/".join(parts[:i])


_LOOKALIKE_IDS = ("l", "diff", "work", "merged", "link", "lower", "root", "parent", "state")


def _names(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def _mount_count(path: Path) -> int:
    real = Path(os.path.realpath(path))
    return sum(1 for p in mount_points() if p == real)


# --------------------------------------------------------------------------------------
# the suite


class StorageDriverSuite:
    """The conformance tests; derive a ``Test*`` class that sets :attr:`driver_class` (or
    provides the ``storage_driver`` fixture)."""

    driver_class: ClassVar[type[StorageDriver]]
    """The driver under test, built by the default ``storage_driver`` fixture."""
    makes_mounts: ClassVar[bool] = False
    """Whether ``mount`` of a layer with parents makes a kernel mount (overlay: yes, vfs:
    no); when set, the suite checks that mounts appear and go exactly when they should."""

    # -- fixtures

    @pytest.fixture
    def conformance_dir(self) -> Iterator[Path]:
        """See :func:`~pydockerd.testing.drivers.mount_safe_directory`."""
        with mount_safe_directory("pdc-") as path:
            yield path

    @pytest.fixture
    async def storage_driver(self, conformance_dir: Path) -> AsyncIterator[StorageDriver]:
        """The driver under test; override it for drivers that need a configuration."""
        if not hasattr(self, "driver_class"):
            pytest.fail(f"{type(self).__name__}: set driver_class or a storage_driver fixture")
        driver = make_driver(self.driver_class, conformance_dir / "driver")
        try:
            yield driver
        finally:
            await cleanup_driver(driver)

    # -- helpers

    @staticmethod
    async def build(
        driver: StorageDriver, layer_id: str, parent: str | None, layer: LayerBuilder
    ) -> int:
        """Create ``layer_id`` on ``parent`` and apply ``layer``; apply_diff's result."""
        await driver.create(layer_id, parent)
        return await driver.apply_diff(layer_id, layer.stream())

    @staticmethod
    async def tree(driver: StorageDriver, layer_id: str) -> Tree:
        """The tree a mount of ``layer_id`` shows (mounted and unmounted again)."""
        path = await driver.mount(layer_id)
        try:
            return await asyncio.to_thread(snapshot, path)
        finally:
            await driver.unmount(layer_id)

    @staticmethod
    async def tar_of(driver: StorageDriver, layer_id: str) -> bytes:
        """The whole tree of a mount of ``layer_id`` as a tar."""
        path = await driver.mount(layer_id)
        try:
            return await asyncio.to_thread(_tar_of, path)
        finally:
            await driver.unmount(layer_id)

    @staticmethod
    async def diff(driver: StorageDriver, layer_id: str) -> bytes:
        buffer = io.BytesIO()
        await driver.diff(layer_id, buffer)
        return buffer.getvalue()

    async def image(self, driver: StorageDriver) -> tuple[Tree, Tree]:
        """The suite's two-layer image as layers ``base`` and ``child``; their views."""
        await self.build(driver, "base", None, base_layer())
        base = await self.tree(driver, "base")
        await self.build(driver, "child", "base", child_layer())
        return base, await self.tree(driver, "child")

    @staticmethod
    def assert_no_mounts(driver: StorageDriver, *directories: Path) -> None:
        context = driver.context
        for directory in (context.state_dir, context.run_dir, *directories):
            assert mounts_under(directory) == [], f"mounts left under {directory}"

    async def chain(self, driver: StorageDriver, depth: int) -> list[str]:
        """``depth`` layers, each adding ``f<i>`` and (every odd one) whiting out the
        previous layer's file; their ids, bottom first."""
        ids: list[str] = []
        parent: str | None = None
        for i in range(depth):
            layer = LayerBuilder()
            layer.file(f"f{i:03d}", f"layer {i}\n".encode())
            if i % 2:
                layer.whiteout(f"f{i - 1:03d}")
            layer_id = f"layer{i:03d}"
            await self.build(driver, layer_id, parent, layer)
            ids.append(layer_id)
            parent = layer_id
        return ids

    # -- 1. a base layer

    async def test_base_layer_reads_back_through_the_mount(
        self, storage_driver: StorageDriver
    ) -> None:
        layer = base_layer()
        assert not storage_driver.exists("base")
        written = await self.build(storage_driver, "base", None, layer)
        assert storage_driver.exists("base")
        assert written == layer.content_bytes, "apply_diff returns the bytes of file content"
        path = await storage_driver.mount("base")
        try:
            tree = await asyncio.to_thread(snapshot, path)
            assert_same_tree(tree, layer.tree, "the base layer's mount")
            hello = (path / "etc/hello").stat()
            assert hello.st_ino == (path / "etc/hello-again").stat().st_ino, "a hard link"
            assert (path / "etc/link").read_bytes() == b"hello\n", "a relative symlink"
        finally:
            await storage_driver.unmount("base")
        assert "base" in storage_driver.layer_ids()
        metadata = storage_driver.metadata("base")
        assert all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items())

    async def test_an_empty_diff_is_an_empty_layer(self, storage_driver: StorageDriver) -> None:
        await storage_driver.create("empty", None)
        assert await storage_driver.apply_diff("empty", io.BytesIO(b"")) == 0
        assert await self.tree(storage_driver, "empty") == Tree()

    # -- 2. layers on top

    async def test_child_layer_merges_whiteouts_opaque_dirs_and_replacements(
        self, storage_driver: StorageDriver
    ) -> None:
        base, child = await self.image(storage_driver)
        assert_same_tree(base, base_layer().tree, "the base layer's mount")
        assert_same_tree(child, child_view(base), "the child layer's mount")
        path = await storage_driver.mount("child")
        try:
            assert _names(path / "data") == ["new"], "an opaque directory"
            assert not (path / "srv").exists(), "a deleted directory"
            assert not (path / "etc/motd").exists(), "a deleted file"
            assert (path / "etc/hello").read_bytes() == b"hello from the child\n"
            assert (path / "etc/hello-again").read_bytes() == b"hello\n"
        finally:
            await storage_driver.unmount("child")
        assert_same_tree(await self.tree(storage_driver, "base"), base, "the base after")

    # -- 3. diffs back

    async def test_diff_reproduces_the_layers(
        self, storage_driver: StorageDriver, conformance_dir: Path
    ) -> None:
        base, child = await self.image(storage_driver)

        base_diff = await self.diff(storage_driver, "base")
        await asyncio.to_thread(_copy_tree, base_diff, conformance_dir / "base")
        restored = await asyncio.to_thread(snapshot, conformance_dir / "base")
        assert_same_tree(restored, base, "the base layer's diff, applied onto nothing")

        child_diff = await self.diff(storage_driver, "child")
        names = {m.name.rstrip("/") for m in tar_members(child_diff)}
        assert "etc/.wh.motd" in names
        assert ".wh.srv" in names
        emptied = {"data/.wh.blob", "data/.wh.old", "data/.wh.sub"}
        assert "data/.wh..wh..opq" in names or emptied <= names, "the emptied directory"
        assert not any(n.startswith(("usr", "bin", "srv/")) for n in names), (
            f"the child's diff holds only its changes: {sorted(names)}"
        )
        copy = conformance_dir / "copy"
        await asyncio.to_thread(_copy_tree, await self.tar_of(storage_driver, "base"), copy)
        await asyncio.to_thread(apply_layer, io.BytesIO(child_diff), copy, whiteouts="delete")
        restored = await asyncio.to_thread(snapshot, copy)
        assert_same_tree(restored, child, "the child's diff applied onto a copy of the base")

    # -- 4. a container's writable layer

    async def test_writable_layer_diff_holds_exactly_the_changes(
        self, storage_driver: StorageDriver, conformance_dir: Path
    ) -> None:
        base, child = await self.image(storage_driver)
        child_diff = await self.diff(storage_driver, "child")
        await storage_driver.create("container", "child")
        path = await storage_driver.mount("container")
        try:
            await asyncio.to_thread(_container_changes, path)
            changed = await asyncio.to_thread(snapshot, path)
        finally:
            await storage_driver.unmount("container")

        assert_same_tree(await self.tree(storage_driver, "base"), base, "the base afterwards")
        assert_same_tree(await self.tree(storage_driver, "child"), child, "the child after")
        assert await self.diff(storage_driver, "child") == child_diff

        data = await self.diff(storage_driver, "container")
        members = tar_members(data)
        whiteouts = {m.name for m in members if m.name.rpartition("/")[2].startswith(".wh.")}
        opaque = {w.rpartition("/")[0] for w in whiteouts if w.endswith("/.wh..wh..opq")}
        whiteouts -= {f"{d}/.wh..wh..opq" for d in opaque}
        others = (
            {m.name for m in members if not m.isdir()}
            - whiteouts
            - {f"{d}/.wh..wh..opq" for d in opaque}
        )
        dirs = {m.name.rstrip("/") for m in members if m.isdir()}
        assert whiteouts == {"etc/.wh.hostname", "etc/.wh.hello-again", "usr/share/.wh.doc"}
        assert others == {"etc/hello", "etc/renamed", "bin/tool", "work/out.txt"}
        changed_paths = others | whiteouts
        allowed = {a for p in changed_paths for a in _ancestors(p)}
        assert "work" in dirs, "a new directory"
        assert dirs <= allowed, f"directories that did not change: {sorted(dirs - allowed)}"
        assert opaque <= {"work"}, f"only a new directory may be opaque: {sorted(opaque)}"

        copy = conformance_dir / "copy"
        await asyncio.to_thread(_copy_tree, await self.tar_of(storage_driver, "child"), copy)
        await asyncio.to_thread(apply_layer, io.BytesIO(data), copy, whiteouts="delete")
        restored = await asyncio.to_thread(snapshot, copy)
        assert_same_tree(restored, changed, "the container's diff applied onto the image")
        assert_same_tree(await self.tree(storage_driver, "container"), changed, "remounted")

    # -- 5. remove

    async def test_remove_unmounts_and_deletes_everything(
        self, storage_driver: StorageDriver, conformance_dir: Path
    ) -> None:
        await self.image(storage_driver)
        await storage_driver.create("container", "child")
        path = await storage_driver.mount("container")
        (path / "written").write_bytes(b"x" * 1000)
        if self.makes_mounts:
            assert _mount_count(path) == 1
        await storage_driver.remove("container")
        assert not storage_driver.exists("container")
        assert "container" not in storage_driver.layer_ids()
        assert _mount_count(path) == 0, "remove unmounts"
        assert not path.exists(), "remove deletes the layer's tree"
        await storage_driver.remove("container")  # twice is fine
        await storage_driver.remove("never-existed")

        for layer in ("child", "base"):
            await storage_driver.remove(layer)
            assert not storage_driver.exists(layer)
        assert storage_driver.layer_ids() == []
        state = storage_driver.context.state_dir
        left = [
            str(p.relative_to(state)) for p in state.rglob("*") if p.is_symlink() or not p.is_dir()
        ]
        assert left == [], "no layer data is left in the state directory"
        await storage_driver.close()  # a driver may hold a mount of its own until closed
        self.assert_no_mounts(storage_driver, conformance_dir)

    # -- 6. many layers

    async def test_a_chain_of_120_layers_mounts(self, storage_driver: StorageDriver) -> None:
        depth = 120
        ids = await self.chain(storage_driver, depth)
        path = await storage_driver.mount(ids[-1])
        try:
            if self.makes_mounts:
                assert _mount_count(path) == 1
            expected = [f"f{i:03d}" for i in range(1, depth, 2)]
            assert _names(path) == expected
            for name in expected:
                assert (path / name).read_text() == f"layer {int(name[1:])}\n"
        finally:
            await storage_driver.unmount(ids[-1])
        assert _mount_count(path) == 0
        assert _names(await storage_driver.mount(ids[0])) == ["f000"]
        await storage_driver.unmount(ids[0])

    # -- 7. usage

    async def test_usage_counts_what_the_layer_adds(self, storage_driver: StorageDriver) -> None:
        big = LayerBuilder()
        big.file("big", b"\xa5" * (1 << 20))
        await self.build(storage_driver, "big", None, big)
        small = LayerBuilder()
        small.file("small", b"small\n")
        await self.build(storage_driver, "small", "big", small)
        await storage_driver.create("empty", "small")
        usage = await storage_driver.usage("big")
        assert 1 << 20 <= usage < 2 << 20
        assert await storage_driver.usage("small") < 256 << 10, "not the parent's bytes"
        assert await storage_driver.usage("empty") < 256 << 10

    # -- 8. errors

    async def test_errors(self, storage_driver: StorageDriver) -> None:
        await storage_driver.create("base", None)
        with pytest.raises(Conflict):
            await storage_driver.create("base", None)
        with pytest.raises(NotFound):
            await storage_driver.create("orphan", "missing")
        assert not storage_driver.exists("orphan")
        assert "orphan" not in storage_driver.layer_ids()
        with pytest.raises(NotFound):
            await storage_driver.mount("missing")
        with pytest.raises(NotFound):
            await storage_driver.diff("missing", io.BytesIO())
        with pytest.raises(NotFound):
            await storage_driver.usage("missing")
        with pytest.raises(NotFound):
            await storage_driver.apply_diff("missing", io.BytesIO(b""))
        for bad in ("a/b", "..", "../base", "../../etc", "/abs", ""):
            with pytest.raises(InvalidParameter):
                await storage_driver.create(bad, None)
            if bad:
                with pytest.raises(InvalidParameter):
                    await storage_driver.create("ok", bad)
            with pytest.raises(InvalidParameter):
                await storage_driver.mount(bad)
            with pytest.raises(InvalidParameter):
                await storage_driver.remove(bad)
        assert storage_driver.layer_ids() == ["base"]

    async def test_no_id_clobbers_another_layer_or_the_drivers_own_files(
        self, storage_driver: StorageDriver
    ) -> None:
        """Valid ids that look like the driver's own names (``l``, ``x.partial``, ``diff``)
        are refused with InvalidParameter or are layers like any other: never a crash, and
        never at the cost of another layer."""
        accepted: list[str] = []
        for layer_id in (*_LOOKALIKE_IDS, "z.partial"):
            try:
                await storage_driver.create(layer_id, None)
            except InvalidParameter:
                assert not storage_driver.exists(layer_id)
                continue
            await self.build_on(storage_driver, layer_id)
            accepted.append(layer_id)
        for layer_id in [*_LOOKALIKE_IDS, "z"]:
            parent = layer_id if layer_id in accepted else None
            await storage_driver.create(f"{layer_id}-child", parent)
            await self.build_on(storage_driver, f"{layer_id}-child")
        await storage_driver.create("z", None)  # built as z.partial, maybe
        await self.build_on(storage_driver, "z")
        for layer_id in accepted:
            assert storage_driver.exists(layer_id)
            assert _names(await storage_driver.mount(layer_id)) == [f"in-{layer_id}"]
            await storage_driver.unmount(layer_id)
            child = f"{layer_id}-child"
            if storage_driver.exists(child):
                names = _names(await storage_driver.mount(child))
                await storage_driver.unmount(child)
                assert names == sorted([f"in-{child}", f"in-{layer_id}"])

    @staticmethod
    async def build_on(driver: StorageDriver, layer_id: str) -> None:
        layer = LayerBuilder()
        layer.file(f"in-{layer_id}", b"x")
        await driver.apply_diff(layer_id, layer.stream())

    # -- 9. mount counting

    async def test_mounts_are_counted(self, storage_driver: StorageDriver) -> None:
        await self.image(storage_driver)
        first = await storage_driver.mount("child")
        second = await storage_driver.mount("child")
        assert first == second
        if self.makes_mounts:
            assert _mount_count(first) == 1, "mounted once"
        await storage_driver.unmount("child")
        assert (first / "opt/app").read_bytes() == b"app\n", "still mounted"
        await storage_driver.unmount("child")
        assert _mount_count(first) == 0, "released by the last unmount"

        paths = await asyncio.gather(*(storage_driver.mount("child") for _ in range(4)))
        assert len(set(paths)) == 1
        if self.makes_mounts:
            assert _mount_count(paths[0]) == 1, "racing mounts mount once"
        for _ in range(3):
            await storage_driver.unmount("child")
        assert (paths[0] / "opt/app").read_bytes() == b"app\n", "still mounted"
        await storage_driver.unmount("child")
        assert _mount_count(paths[0]) == 0, "released by the last unmount"

    # -- 10. crash leftovers

    async def test_half_built_layers_are_listed_and_removable(
        self, storage_driver: StorageDriver
    ) -> None:
        await storage_driver.create("base", None)
        partial = storage_driver.context.state_dir / "crashed.partial"
        (partial / "some/dir").mkdir(parents=True)
        (partial / "some/dir/file").write_bytes(b"half")
        assert "crashed.partial" in storage_driver.layer_ids()
        assert not storage_driver.exists("crashed")
        await storage_driver.remove("crashed.partial")
        assert not partial.exists()
        assert storage_driver.layer_ids() == ["base"]
        await storage_driver.create("crashed", "base")
        assert storage_driver.exists("crashed")


def _container_changes(root: Path) -> None:
    """What the container does in its writable layer."""
    with (root / "etc/hello").open("ab") as f:
        f.write(b"more\n")
    (root / "bin/tool").chmod(0o700)
    (root / "work").mkdir(mode=0o750)
    (root / "work/out.txt").write_bytes(b"output\n")
    (root / "etc/hostname").unlink()
    shutil.rmtree(root / "usr/share/doc")
    (root / "etc/hello-again").rename(root / "etc/renamed")
