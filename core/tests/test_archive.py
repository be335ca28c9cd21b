"""Tests of :mod:`pydockerd.archive`: layer tars applied safely, and diffs written back.

Run as root: ownership, device nodes, ``trusted.*`` xattrs and overlay mounts are real.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import shutil
import stat
import subprocess
import tarfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import zstandard
from pydockerd.archive import (
    Whiteouts,
    apply_layer,
    decompressed,
    write_changes_diff,
    write_overlay_diff,
    write_tar,
)
from pydockerd.errors import InvalidParameter

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")

MTIME = 1_600_000_000
Member = tuple[tarfile.TarInfo, bytes | None]


# --------------------------------------------------------------------------- helpers


def m(
    name: str,
    kind: bytes = tarfile.REGTYPE,
    data: bytes | None = None,
    *,
    mode: int | None = None,
    uid: int = 0,
    gid: int = 0,
    mtime: int | float = MTIME,
    linkname: str = "",
    xattrs: dict[str, bytes] | None = None,
    dev: tuple[int, int] = (0, 0),
    pax: dict[str, str] | None = None,
) -> Member:
    """One tar member (header and content)."""
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode if mode is not None else (0o755 if kind == tarfile.DIRTYPE else 0o644)
    info.uid, info.gid = uid, gid
    info.mtime = mtime
    info.linkname = linkname
    info.devmajor, info.devminor = dev
    headers = dict(pax or {})
    for key, value in (xattrs or {}).items():
        headers[f"SCHILY.xattr.{key}"] = value.decode("utf-8", "surrogateescape")
    info.pax_headers = headers
    if kind == tarfile.REGTYPE:
        data = data or b""
        info.size = len(data)
    return info, data


def d(name: str, **kw: Any) -> Member:
    return m(name, tarfile.DIRTYPE, **kw)


def sym(name: str, target: str, **kw: Any) -> Member:
    return m(name, tarfile.SYMTYPE, linkname=target, **kw)


def hard(name: str, target: str, **kw: Any) -> Member:
    return m(name, tarfile.LNKTYPE, linkname=target, **kw)


def make_tar(*members: Member, fmt: int = tarfile.PAX_FORMAT) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(
        fileobj=buffer, mode="w", format=fmt, encoding="utf-8", errors="surrogateescape"
    ) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buffer.getvalue()


class OneWay(io.RawIOBase):
    """A non-seekable stream (like a socket or a pipe)."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        chunk = self._data.read(min(len(buffer), 3000))  # short reads on purpose
        buffer[: len(chunk)] = chunk
        return len(chunk)

    def rest(self) -> bytes:
        return self._data.read()


def apply(data: bytes, root: Path, whiteouts: Whiteouts = "delete") -> int:
    root.mkdir(parents=True, exist_ok=True)
    return apply_layer(io.BytesIO(data), root, whiteouts=whiteouts)


def snapshot(top: Path, *, skip: Path | None = None, with_root: bool = False) -> dict[bytes, Any]:
    """Every entry below ``top`` (optionally excluding ``skip``): type, mode, owner, size,
    content digest or link target, mtime (ns, not for the root), device, xattrs, link count."""
    result: dict[bytes, Any] = {}
    top_b = os.fsencode(top)

    def visit(path: bytes, rel: bytes) -> None:
        st = os.lstat(path)
        if stat.S_ISREG(st.st_mode):
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
            with os.fdopen(fd, "rb") as f:
                body: Any = hashlib.sha256(f.read()).hexdigest()
        elif stat.S_ISLNK(st.st_mode):
            body = os.readlink(path)  # noqa: PTH115 - bytes path
        else:
            body = None
        xattrs = {
            k: os.getxattr(path, k, follow_symlinks=False)
            for k in sorted(os.listxattr(path, follow_symlinks=False))
        }
        is_dir = stat.S_ISDIR(st.st_mode)
        result[rel] = (
            st.st_mode,
            st.st_uid,
            st.st_gid,
            None if is_dir else st.st_size,
            body,
            st.st_mtime_ns if rel else None,
            st.st_rdev,
            xattrs,
            None if is_dir else st.st_nlink,
        )
        if is_dir:
            for name in sorted(os.listdir(path)):  # noqa: PTH208 - bytes path
                child = path + b"/" + name
                if skip is not None and child == os.fsencode(skip):
                    continue
                visit(child, rel + b"/" + name if rel else name)

    visit(top_b, b"")
    if not with_root:
        del result[b""]
    return result


def tree(top: Path) -> dict[bytes, Any]:
    """A tree for comparisons between copies: link counts and the root left out."""
    return {k: v[:-1] for k, v in snapshot(top).items()}


def ls(path: Path) -> list[str]:
    return sorted(p.name for p in path.iterdir())


def copy(src: Path, dst: Path) -> Path:
    subprocess.run(["cp", "-a", str(src), str(dst)], check=True)
    return dst


def names(data: bytes) -> list[str]:
    with tarfile.open(fileobj=io.BytesIO(data), encoding="utf-8", errors="surrogateescape") as t:
        return t.getnames()


# --------------------------------------------------------------------------- decompression


@pytest.mark.parametrize("codec", ["plain", "gzip", "zstd"])
def test_decompressed_detects_codec_on_non_seekable_stream(codec: str, tmp_path: Path) -> None:
    data = make_tar(d("etc"), m("etc/hostname", data=b"box\n" * 5000))
    packed = {
        "plain": data,
        "gzip": gzip.compress(data),
        "zstd": zstandard.ZstdCompressor().compress(data),
    }[codec]
    stream = OneWay(packed)
    reader = decompressed(stream)  # type: ignore[arg-type]
    size = apply_layer(reader, tmp_path, whiteouts="delete")
    assert size == 20000
    assert (tmp_path / "etc/hostname").read_bytes() == b"box\n" * 5000
    assert stream.rest() == b""


def test_decompressed_tiny_streams() -> None:
    assert decompressed(io.BytesIO(b"")).read() == b""
    assert decompressed(io.BytesIO(b"ab")).read() == b"ab"


# --------------------------------------------------------------------------- member types


def test_every_member_type(tmp_path: Path) -> None:
    root = tmp_path / "root"
    data = make_tar(
        d("dir", mode=0o1777, uid=12, gid=34, mtime=MTIME + 5, xattrs={"user.dir": b"d"}),
        m(
            "dir/file",
            data=b"hello",
            mode=0o4755,
            uid=1000,
            gid=1001,
            mtime=MTIME + 0.25,
            xattrs={"user.test": b"\xff\x00bin", "trusted.note": b"t"},
        ),
        m("dir/sgid", data=b"x", mode=0o2711, uid=5, gid=6),
        sym("dir/link", "file", uid=7, gid=8, mtime=MTIME + 9),
        hard("dir/hard", "dir/file"),
        m("dir/chr", tarfile.CHRTYPE, dev=(1, 3), mode=0o666, uid=3, gid=4),
        m("dir/blk", tarfile.BLKTYPE, dev=(7, 0), mode=0o660),
        m("dir/fifo", tarfile.FIFOTYPE, mode=0o600, uid=9),
        m("dir/sub/deep", data=b"implicit parent"),
    )
    size = apply(data, root)
    assert size == len(b"hello") + 1 + len(b"implicit parent")

    st = os.lstat(root / "dir")
    assert stat.S_IMODE(st.st_mode) == 0o1777
    assert (st.st_uid, st.st_gid) == (12, 34)
    assert st.st_mtime_ns == (MTIME + 5) * 10**9  # set after its children were written
    assert os.getxattr(root / "dir", "user.dir") == b"d"

    st = os.lstat(root / "dir/file")
    assert stat.S_IMODE(st.st_mode) == 0o4755
    assert (st.st_uid, st.st_gid) == (1000, 1001)
    assert st.st_mtime_ns == MTIME * 10**9 + 250_000_000
    assert os.getxattr(root / "dir/file", "user.test") == b"\xff\x00bin"
    assert os.getxattr(root / "dir/file", "trusted.note") == b"t"
    assert (root / "dir/file").read_bytes() == b"hello"
    assert stat.S_IMODE(os.lstat(root / "dir/sgid").st_mode) == 0o2711

    st = os.lstat(root / "dir/link")
    assert stat.S_ISLNK(st.st_mode)
    assert (root / "dir/link").readlink() == Path("file")
    assert (st.st_uid, st.st_gid, st.st_mtime_ns) == (7, 8, (MTIME + 9) * 10**9)

    assert os.lstat(root / "dir/hard").st_ino == os.lstat(root / "dir/file").st_ino
    st = os.lstat(root / "dir/chr")
    assert stat.S_ISCHR(st.st_mode)
    assert st.st_rdev == os.makedev(1, 3)
    assert stat.S_IMODE(st.st_mode) == 0o666
    assert (st.st_uid, st.st_gid) == (3, 4)
    st = os.lstat(root / "dir/blk")
    assert stat.S_ISBLK(st.st_mode)
    assert st.st_rdev == os.makedev(7, 0)
    st = os.lstat(root / "dir/fifo")
    assert stat.S_ISFIFO(st.st_mode)
    assert st.st_uid == 9
    st = os.lstat(root / "dir/sub")
    assert stat.S_ISDIR(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o755


def test_exact_pax_mtime_and_gnu_format(tmp_path: Path) -> None:
    data = make_tar(m("f", pax={"mtime": "1600000000.123456789"}))
    apply(data, tmp_path / "a")
    assert os.lstat(tmp_path / "a/f").st_mtime_ns == 1_600_000_000_123_456_789
    apply(make_tar(d("x"), m("x/y", data=b"1"), fmt=tarfile.GNU_FORMAT), tmp_path / "b")
    assert (tmp_path / "b/x/y").read_bytes() == b"1"


def test_reads_stream_to_eof_and_empty_stream(tmp_path: Path) -> None:
    stream = io.BytesIO(make_tar(m("f", data=b"1")) + b"\0" * 20000 + b"trailing")
    assert apply_layer(stream, tmp_path, whiteouts="delete") == 1
    assert stream.read() == b""
    assert apply_layer(io.BytesIO(b""), tmp_path, whiteouts="delete") == 0
    with pytest.raises(InvalidParameter):
        apply_layer(io.BytesIO(b"not a tar" * 100), tmp_path, whiteouts="delete")


def test_non_utf8_names(tmp_path: Path) -> None:
    name = b"caf\xe9-\xff".decode("utf-8", "surrogateescape")
    data = make_tar(d(name), m(f"{name}/{name}", data=b"bytes"), sym("l", name))
    apply(data, tmp_path / "a")
    raw = b"/".join([os.fsencode(tmp_path / "a"), b"caf\xe9-\xff", b"caf\xe9-\xff"])
    fd = os.open(raw, os.O_RDONLY)
    assert os.read(fd, 100) == b"bytes"
    os.close(fd)
    out = io.BytesIO()
    write_tar(tmp_path / "a", out)
    apply(out.getvalue(), tmp_path / "b")
    assert tree(tmp_path / "a") == tree(tmp_path / "b")


# --------------------------------------------------------------------------- replacing


def test_replacement_rules(tmp_path: Path) -> None:
    root = tmp_path / "root"
    apply(
        make_tar(
            m("file", data=b"old"),
            d("dir", mode=0o700),
            m("dir/keep", data=b"k"),
            d("gone"),
            m("gone/child", data=b"c"),
            sym("link", "file"),
            m("tolink", data=b"t"),
        ),
        root,
    )
    apply(
        make_tar(
            sym("file", "elsewhere"),  # file -> symlink
            d("dir", mode=0o751, uid=3, mtime=MTIME + 100),  # dir over dir: merged
            m("dir/new", data=b"n"),
            m("gone", data=b"now a file"),  # dir -> file: removed first
            d("link"),  # symlink -> directory (not followed)
            m("link/inside", data=b"i"),
            m("tolink", data=b"second"),
        ),
        root,
    )
    assert (root / "file").readlink() == Path("elsewhere")
    st = os.lstat(root / "dir")
    assert stat.S_IMODE(st.st_mode) == 0o751
    assert st.st_uid == 3
    assert st.st_mtime_ns == (MTIME + 100) * 10**9
    assert ls(root / "dir") == ["keep", "new"]
    assert (root / "gone").read_bytes() == b"now a file"
    assert (root / "link").is_dir()
    assert not (root / "link").is_symlink()
    assert (root / "link/inside").read_bytes() == b"i"
    assert (root / "tolink").read_bytes() == b"second"


def test_writing_a_file_never_writes_through_a_hardlink(tmp_path: Path) -> None:
    root = tmp_path / "root"
    apply(make_tar(m("a", data=b"A"), hard("b", "a"), m("b", data=b"B")), root)
    assert (root / "a").read_bytes() == b"A"
    assert (root / "b").read_bytes() == b"B"


def test_symlinked_parent_is_followed_inside_root(tmp_path: Path) -> None:
    root = tmp_path / "root"
    apply(make_tar(d("usr"), d("usr/lib"), sym("lib", "usr/lib"), sym("lib64", "/usr/lib")), root)
    apply(
        make_tar(
            m("lib/x.so", data=b"x"),
            m("lib64/y.so", data=b"y"),
            hard("lib/z.so", "lib64/y.so"),
        ),
        root,
    )
    assert (root / "usr/lib/x.so").read_bytes() == b"x"
    assert (root / "usr/lib/y.so").read_bytes() == b"y"
    assert os.lstat(root / "usr/lib/z.so").st_ino == os.lstat(root / "usr/lib/y.so").st_ino
    assert (root / "lib").is_symlink()
    assert (root / "lib64").is_symlink()


def test_hardlink_to_a_symlink_links_the_symlink(tmp_path: Path) -> None:
    root = tmp_path / "root"
    apply(make_tar(m("f", data=b"f"), sym("s", "f"), hard("h", "s")), root)
    assert (root / "h").readlink() == Path("f")
    assert os.lstat(root / "h").st_ino == os.lstat(root / "s").st_ino


# --------------------------------------------------------------------------- whiteouts


def lower(root: Path) -> None:
    apply(
        make_tar(
            m("a", data=b"a"),
            d("dir"),
            m("dir/x", data=b"x"),
            d("dir/sub"),
            m("dir/sub/y", data=b"y"),
            d("opq"),
            m("opq/old1", data=b"1"),
            d("opq/olddir"),
            m("opq/olddir/z", data=b"z"),
            m("re", data=b"lower"),
            d("redir"),
            m("redir/old", data=b"o"),
        ),
        root,
    )


def test_whiteouts_delete(tmp_path: Path) -> None:
    root = tmp_path / "root"
    lower(root)
    apply(
        make_tar(
            m(".wh.a"),
            m("dir/.wh.sub"),
            m("opq/new-before", data=b"nb"),
            d("opq/olddir"),  # re-written by this layer: kept, but its old content is not
            m("opq/olddir/fresh", data=b"f"),
            m("opq/.wh..wh..opq"),
            m("opq/new-after", data=b"na"),
            m(".wh.re"),  # deleted then re-created
            m("re", data=b"upper"),
            d("redir"),  # re-created, then whited out: only the lower content goes
            m("redir/new", data=b"n"),
            m(".wh.redir"),
            m(".wh.missing"),
        ),
        root,
    )
    assert ls(root) == ["dir", "opq", "re", "redir"]
    assert ls(root / "dir") == ["x"]
    assert ls(root / "opq") == ["new-after", "new-before", "olddir"]
    assert ls(root / "opq/olddir") == ["fresh"]
    assert (root / "re").read_bytes() == b"upper"
    assert ls(root / "redir") == ["new"]


def test_whiteouts_overlay(tmp_path: Path) -> None:
    root = tmp_path / "upper"
    apply(
        make_tar(
            m(".wh.a"),
            m("dir/.wh.sub"),
            d("opq"),
            m("opq/.wh..wh..opq"),
            m("opq/new", data=b"n"),
            m("implicit/.wh..wh..opq"),
            m(".wh.re"),
            m("re", data=b"upper"),
            m(".wh.redir"),
            d("redir"),  # a directory over a whiteout: must hide the lower one
            m("kept", data=b"k"),
            m(".wh.kept"),  # whiteout of something this layer wrote: ignored
        ),
        root,
        "overlay",
    )
    for path in ("a", "dir/sub"):
        st = os.lstat(root / path)
        assert stat.S_ISCHR(st.st_mode)
        assert st.st_rdev == 0
    assert os.getxattr(root / "opq", "trusted.overlay.opaque") == b"y"
    assert os.getxattr(root / "implicit", "trusted.overlay.opaque") == b"y"
    assert os.getxattr(root / "redir", "trusted.overlay.opaque") == b"y"
    assert (root / "re").read_bytes() == b"upper"
    assert (root / "kept").read_bytes() == b"k"
    assert not any(b".wh." in k for k in snapshot(root))


def test_overlay_implicit_parent_over_whiteout_is_opaque(tmp_path: Path) -> None:
    root = tmp_path / "upper"
    apply(make_tar(m(".wh.d"), m("d/f", data=b"f")), root, "overlay")
    assert os.getxattr(root / "d", "trusted.overlay.opaque") == b"y"
    assert (root / "d/f").read_bytes() == b"f"


def test_file_as_parent_and_truncated_tar_are_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidParameter, match="not a directory"):
        apply(make_tar(m("f", data=b"1"), m("f/x", data=b"2")), tmp_path / "a")
    data = make_tar(m("big", data=b"x" * 100_000))
    with pytest.raises(InvalidParameter, match="invalid layer tar"):
        apply(data[:20_000], tmp_path / "b")


def test_trusted_overlay_xattrs_from_the_tar_are_ignored(tmp_path: Path) -> None:
    root = tmp_path / "root"
    apply(make_tar(d("d", xattrs={"trusted.overlay.redirect": b"/x"})), root, "overlay")
    assert "trusted.overlay.redirect" not in os.listxattr(root / "d")


# --------------------------------------------------------------------------- hostile tars

# Unique absolute names: if the module ever regressed, the battery would only create these
# (and the sandbox removes them); it never writes through to a real host file.
TOKEN = f"pydockerd-archive-test-{uuid.uuid4().hex}"
ABS = f"/tmp/{TOKEN}"
TOP = f"/{TOKEN}"


def hostile_cases(outside: str) -> dict[str, list[Member]]:
    """Tars that try to reach out of root; ``outside`` is the sentinel directory's real path."""
    return {
        "dotdot": [m("../outside/x", data=b"pwn"), m("../" * 30 + ABS.lstrip("/"), data=b"pwn")],
        "absolute": [m(f"{TOP}/x", data=b"pwn"), m(f"{ABS}/x", data=b"pwn")],
        "absolute-dir": [d(ABS), d(f"{outside}/sub", mode=0o777)],
        "symlink-root": [sym("l", "/"), m(f"l{ABS}", data=b"pwn"), d(f"l{TOP}")],
        "symlink-dotdot": [
            sym("l", "../outside"),
            m("l/x", data=b"pwn"),
            sym("l2", "../../outside"),
            m("l2/file", data=b"pwn"),
        ],
        "symlink-absolute": [sym("l", outside), m("l/file", data=b"pwn"), d("l/newdir")],
        "symlink-host-dir": [sym("evil", "/tmp"), m(f"evil/{TOKEN}", data=b"pwn")],
        "symlink-chain": [
            sym("a", "b"),
            sym("b", "c/.."),
            sym("c", f"{outside}/sub"),
            m("a/file", data=b"pwn"),
        ],
        "symlink-loop": [sym("x", "y"), sym("y", "x"), m("x/f", data=b"pwn")],
        "symlink-then-file": [sym("s", f"{outside}/file"), m("s", data=b"pwn")],
        "symlink-then-dir": [sym("outside", outside), d("outside", mode=0o777)],
        "hardlink-etc-passwd": [hard("h", "/etc/passwd")],
        "hardlink-dotdot": [hard("h", "../outside/file")],
        "hardlink-through-symlink": [sym("l", outside), hard("h", "l/file")],
        "symlink-then-hardlink": [sym("s", f"{outside}/file"), hard("h", "s")],
        "device-dotdot": [m("../outside/dev", tarfile.CHRTYPE, dev=(1, 3))],
        "fifo-through-symlink": [sym("l", outside), m("l/fifo", tarfile.FIFOTYPE)],
        "whiteout-dotdot": [m("../.wh.outside"), m("../outside/.wh.file")],
        "whiteout-dots": [m(".wh..."), m(".wh.."), m(".wh."), m(".wh..wh.x")],
        "whiteout-through-symlink": [
            sym("l", outside),
            m("l/.wh.file"),
            m("l/.wh..wh..opq"),
            sym("l2", "../outside"),
            m("l2/.wh.file"),
        ],
        "dot-dirs": [d(".", mode=0o777), d("./", mode=0o700), m(".", data=b"x"), d("..")],
        "dot-file": [m("./", data=b"x"), m("..", data=b"y"), m("/", data=b"z")],
    }


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "file").write_bytes(b"sentinel")
    outside.chmod(0o750)
    root = tmp_path / "root"
    root.mkdir()
    passwd = snapshot(Path("/etc"))[b"passwd"]
    before = snapshot(tmp_path, skip=root, with_root=True)
    yield root, outside
    escaped = [path for path in (ABS, TOP) if os.path.lexists(path)]
    for path in escaped:
        shutil.rmtree(path) if Path(path).is_dir() else Path(path).unlink()
    assert not escaped
    assert snapshot(tmp_path, skip=root, with_root=True) == before
    assert snapshot(Path("/etc"))[b"passwd"] == passwd


@pytest.mark.parametrize("whiteouts", ["delete", "overlay"])
@pytest.mark.parametrize("case", sorted(hostile_cases("/x")))
def test_hostile_tar_stays_inside_root(
    case: str, whiteouts: Whiteouts, sandbox: tuple[Path, Path]
) -> None:
    root, outside = sandbox
    data = make_tar(*hostile_cases(str(outside))[case])
    try:
        apply_layer(io.BytesIO(data), root, whiteouts=whiteouts)
    except InvalidParameter:
        assert case.startswith(("hardlink-", "symlink-loop")), case
    else:
        assert not case.startswith(("hardlink-", "symlink-loop")), case


def test_hostile_results_land_inside_root(sandbox: tuple[Path, Path]) -> None:
    top, outside = sandbox
    cases = hostile_cases(str(outside))

    def run(*members: Member) -> Path:
        root = top / uuid.uuid4().hex
        apply(make_tar(*members), root)
        return root

    root = run(*cases["dotdot"])
    assert (root / "outside/x").read_bytes() == b"pwn"
    assert (root / ABS.lstrip("/")).read_bytes() == b"pwn"
    root = run(*cases["absolute"])
    assert (root / TOKEN / "x").read_bytes() == b"pwn"
    assert (root / ABS.lstrip("/") / "x").read_bytes() == b"pwn"
    root = run(*cases["symlink-host-dir"], *cases["symlink-absolute"])
    assert (root / "tmp" / TOKEN).read_bytes() == b"pwn"
    assert (root / outside.relative_to("/") / "file").read_bytes() == b"pwn"
    root = run(sym("c", "/"), sym("b", "c/../.."), sym("a", "b"), m("a/chain", data=b"c"))
    assert (root / "chain").read_bytes() == b"c"
    root = run(*cases["symlink-then-file"])
    assert (root / "s").read_bytes() == b"pwn"


def test_refused_hardlinks_say_so(tmp_path: Path) -> None:
    for target in ("/etc/passwd", "missing", "dir"):
        root = tmp_path / uuid.uuid4().hex
        with pytest.raises(InvalidParameter, match="invalid hardlink"):
            apply(make_tar(d("dir"), hard("h", target)), root)


# --------------------------------------------------------------------------- round trips


def sample_layer() -> bytes:
    return make_tar(
        d("etc", mode=0o755, mtime=MTIME + 1),
        m("etc/passwd", data=b"root:x:0:0\n", mtime=MTIME + 2),
        m("etc/shadow", data=b"secret", mode=0o640, gid=42, xattrs={"user.k": b"v"}),
        hard("etc/shadow-", "etc/shadow"),
        sym("etc/localtime", "/usr/share/zoneinfo/UTC", uid=1),
        d("usr"),
        d("usr/bin"),
        m("usr/bin/su", data=b"\x7fELF", mode=0o4755),
        d("tmp", mode=0o1777),
        d("dev"),
        m("dev/null", tarfile.CHRTYPE, dev=(1, 3), mode=0o666),
        m("dev/loop0", tarfile.BLKTYPE, dev=(7, 0), mode=0o660),
        m("run/fifo", tarfile.FIFOTYPE, mode=0o620, pax={"mtime": "1600000003.5"}),
        d("empty", mode=0o700, uid=1000, gid=1000, mtime=MTIME + 7),
    )


def test_write_tar_round_trip(tmp_path: Path) -> None:
    apply(sample_layer(), tmp_path / "a")
    out = io.BytesIO()
    write_tar(tmp_path / "a", out)
    data = out.getvalue()
    assert not any(n.startswith(("./", "/")) for n in names(data))
    assert names(data) == sorted(names(data))
    apply(data, tmp_path / "b")
    assert tree(tmp_path / "a") == tree(tmp_path / "b")
    assert os.lstat(tmp_path / "b/etc/shadow-").st_ino == os.lstat(tmp_path / "b/etc/shadow").st_ino
    again = io.BytesIO()
    write_tar(tmp_path / "b", again)
    assert again.getvalue() == data  # deterministic


def test_write_tar_keeps_nanoseconds(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a/f").write_bytes(b"x")
    os.utime(tmp_path / "a/f", ns=(1, 1_600_000_000_987_654_321))
    out = io.BytesIO()
    write_tar(tmp_path / "a", out)
    apply(out.getvalue(), tmp_path / "b")
    assert os.lstat(tmp_path / "b/f").st_mtime_ns == 1_600_000_000_987_654_321


def modify(top: Path) -> None:
    """Changes a container could make: add, change, delete, retype, chmod, xattr."""
    (top / "etc/passwd").write_bytes(b"root:x:0:0\nuser:x:1000:1000\n")
    (top / "etc/new").write_bytes(b"new")
    (top / "etc/localtime").unlink()
    (top / "etc/localtime").symlink_to("/usr/share/zoneinfo/CET")
    shutil.rmtree(top / "usr")
    (top / "dev/null").unlink()
    (top / "dev/null").mkdir()
    (top / "tmp").chmod(0o1770)
    os.setxattr(top / "etc/shadow", "user.k", b"changed")
    (top / "empty").rmdir()
    (top / "empty").write_bytes(b"was a dir")
    (top / "run/deep/er").mkdir(parents=True)
    (top / "run/deep/er/f").write_bytes(b"deep")


def test_write_changes_diff_round_trip(tmp_path: Path) -> None:
    parent = tmp_path / "parent"
    apply(sample_layer(), parent)
    layer = copy(parent, tmp_path / "layer")
    assert tree(layer) == tree(parent)
    unchanged = io.BytesIO()
    write_changes_diff(layer, parent, unchanged)
    assert names(unchanged.getvalue()) == []
    modify(layer)
    out = io.BytesIO()
    write_changes_diff(layer, parent, out)
    data = out.getvalue()
    listed = names(data)
    assert ".wh.usr" in listed
    assert not any(n.startswith("usr/") for n in listed)
    assert "etc/passwd" in listed
    assert "etc/shadow" in listed
    assert "dev/loop0" not in listed
    target = copy(parent, tmp_path / "target")
    apply(data, target)
    assert tree(target) == tree(layer)

    full = io.BytesIO()
    write_changes_diff(layer, None, full)
    apply(full.getvalue(), tmp_path / "fresh")
    assert tree(tmp_path / "fresh") == tree(layer)


def overlay_mount(lower: Path, upper: Path, work: Path, merged: Path) -> None:
    for path in (upper, work, merged):
        path.mkdir(exist_ok=True)
    options = f"lowerdir={lower},upperdir={upper},workdir={work}"
    result = subprocess.run(
        ["mount", "-t", "overlay", "overlay", "-o", options, str(merged)],
        capture_output=True,
        check=False,
    )
    if result.returncode:
        pytest.skip(f"overlay mount failed: {result.stderr.decode()}")


def test_write_overlay_diff_round_trip_on_a_real_overlay(tmp_path: Path) -> None:
    lower_dir = tmp_path / "lower"
    apply(sample_layer(), lower_dir)
    merged = tmp_path / "merged"
    overlay_mount(lower_dir, tmp_path / "upper", tmp_path / "work", merged)
    try:
        modify(merged)
        shutil.rmtree(merged / "etc")  # re-created: the upper dir becomes opaque
        (merged / "etc").mkdir()
        (merged / "etc/only").write_bytes(b"only")
        expected = tree(merged)
    finally:
        subprocess.run(["umount", str(merged)], check=True)
    out = io.BytesIO()
    write_overlay_diff(tmp_path / "upper", out)
    data = out.getvalue()
    listed = names(data)
    assert "etc/.wh..wh..opq" in listed
    assert ".wh.usr" in listed
    assert listed.index("etc/.wh..wh..opq") == listed.index("etc") + 1

    target = copy(lower_dir, tmp_path / "target")  # vfs: onto a full copy of the parent
    apply(data, target)
    assert tree(target) == expected

    upper2 = tmp_path / "upper2"  # overlay: into a fresh upper, mounted again
    apply(data, upper2, "overlay")
    merged2 = tmp_path / "merged2"
    overlay_mount(lower_dir, upper2, tmp_path / "work2", merged2)
    try:
        assert tree(merged2) == expected
    finally:
        subprocess.run(["umount", str(merged2)], check=True)


def test_write_overlay_diff_without_mount(tmp_path: Path) -> None:
    upper = tmp_path / "upper"
    upper.mkdir()
    os.mknod(upper / "gone", stat.S_IFCHR, os.makedev(0, 0))
    (upper / "opq").mkdir()
    os.setxattr(upper / "opq", "trusted.overlay.opaque", b"y")
    (upper / "opq/new").write_bytes(b"n")
    os.mknod(upper / "opq/null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    out = io.BytesIO()
    write_overlay_diff(upper, out)
    assert names(out.getvalue()) == [".wh.gone", "opq", "opq/.wh..wh..opq", "opq/new", "opq/null"]
    with tarfile.open(fileobj=io.BytesIO(out.getvalue())) as tar:
        assert not any("trusted.overlay" in k for t in tar for k in t.pax_headers)
