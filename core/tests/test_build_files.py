"""The builder's file work: COPY/ADD placement, source lookup, the cache digest, ``--chown``,
and the build context as real clients send it."""

from __future__ import annotations

import gzip
import io
import os
import tarfile
from pathlib import Path

import pytest
from pydockerd.builder import files
from pydockerd.builder.context import read_dockerfile, unpack_context
from pydockerd.errors import InvalidParameter


@pytest.fixture
def context(tmp_path: Path) -> Path:
    root = tmp_path / "context"
    (root / "src" / "sub").mkdir(parents=True)
    (root / "src" / "a.txt").write_text("a")
    (root / "src" / "sub" / "b.txt").write_text("b")
    (root / "one.txt").write_text("one")
    (root / "two.txt").write_text("two")
    (root / "escape").symlink_to("/etc")
    return root


@pytest.fixture
def rootfs(tmp_path: Path) -> Path:
    root = tmp_path / "rootfs"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "passwd").write_text("root:x:0:0::/root:/bin/sh\napp:x:1001:1002::/:/bin/sh\n")
    (root / "etc" / "group").write_text("root:x:0:\nstaff:x:50:\n")
    (root / "var").mkdir()
    (root / "var" / "run").symlink_to("/run")  # an absolute link inside the image
    (root / "run").mkdir()
    return root


def test_a_directory_source_copies_its_contents(context: Path, rootfs: Path) -> None:
    sources = files.find_sources(context, ["src"])
    files.copy_sources(sources, rootfs, "/app", owner=files.Ownership())
    assert (rootfs / "app" / "a.txt").read_text() == "a"
    assert (rootfs / "app" / "sub" / "b.txt").read_text() == "b"
    assert not (rootfs / "app" / "src").exists()


def test_a_file_becomes_the_destination_or_goes_into_a_directory(
    context: Path, rootfs: Path
) -> None:
    one = files.find_sources(context, ["one.txt"])
    files.copy_sources(one, rootfs, "/renamed", owner=files.Ownership())
    assert (rootfs / "renamed").read_text() == "one"
    files.copy_sources(one, rootfs, "/dir/", owner=files.Ownership())
    assert (rootfs / "dir" / "one.txt").read_text() == "one"
    files.copy_sources(one, rootfs, "/run", owner=files.Ownership())  # an existing directory
    assert (rootfs / "run" / "one.txt").read_text() == "one"


def test_several_sources_need_a_directory_destination(context: Path, rootfs: Path) -> None:
    both = files.find_sources(context, ["*.txt"])
    assert [p.name for p in both] == ["one.txt", "two.txt"]
    with pytest.raises(InvalidParameter, match="destination must be a directory and end with a /"):
        files.copy_sources(both, rootfs, "/x", owner=files.Ownership())
    files.copy_sources(both, rootfs, "/x/", owner=files.Ownership())
    assert sorted(p.name for p in (rootfs / "x").iterdir()) == ["one.txt", "two.txt"]


def test_destinations_resolve_inside_the_image(context: Path, rootfs: Path) -> None:
    one = files.find_sources(context, ["one.txt"])
    files.copy_sources(one, rootfs, "/var/run/", owner=files.Ownership())
    assert (rootfs / "run" / "one.txt").read_text() == "one"  # /var/run -> /run of the image
    files.copy_sources(one, rootfs, "/../../../outside", owner=files.Ownership())
    assert (rootfs / "outside").exists()


def test_sources_resolve_inside_the_context(context: Path) -> None:
    (context / "inside").symlink_to("/src")  # absolute: the context's /src
    (found,) = files.find_sources(context, ["inside"])
    assert found == context / "src"
    with pytest.raises(InvalidParameter, match="stat escape: file does not exist"):
        files.find_sources(context, ["escape"])  # the host's /etc is not reachable
    with pytest.raises(InvalidParameter, match=r"stat nothing\*: file does not exist"):
        files.find_sources(context, ["nothing*"])


def test_chown_and_chmod(context: Path, rootfs: Path) -> None:
    owner = files.parse_chown("app:staff", rootfs)
    assert owner == files.Ownership(1001, 50)
    assert files.parse_chown("app", rootfs) == files.Ownership(1001, 1001)
    assert files.parse_chown("7:8", None) == files.Ownership(7, 8)
    with pytest.raises(InvalidParameter, match="can't find uid for user nobody"):
        files.parse_chown("nobody", rootfs)
    assert files.parse_chmod("0755") == 0o755
    with pytest.raises(InvalidParameter, match="invalid chmod parameter"):
        files.parse_chmod("rwx")
    one = files.find_sources(context, ["one.txt"])
    files.copy_sources(one, rootfs, "/owned/", owner=owner, mode=0o640)
    info = (rootfs / "owned" / "one.txt").stat()
    assert (info.st_uid, info.st_gid, info.st_mode & 0o777) == (1001, 50, 0o640)
    made = (rootfs / "owned").stat()
    assert (made.st_uid, made.st_gid, made.st_mode & 0o777) == (1001, 50, 0o755)


def test_the_cache_digest_follows_content_and_modes_not_times(context: Path) -> None:
    sources = files.find_sources(context, ["src"])
    before = files.content_digest(sources)
    os.utime(context / "src" / "a.txt", (1, 1))
    assert files.content_digest(sources) == before
    (context / "src" / "a.txt").chmod(0o600)
    after_chmod = files.content_digest(sources)
    assert after_chmod != before
    (context / "src" / "a.txt").write_text("A")
    assert files.content_digest(sources) != after_chmod
    assert files.content_digest(sources, ["extra"]) != files.content_digest(sources)


def test_add_unpacks_archives(tmp_path: Path, rootfs: Path) -> None:
    archive = tmp_path / "pkg.tgz"
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        info = tarfile.TarInfo("pkg/file")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"hi"))
    archive.write_bytes(gzip.compress(raw.getvalue()))
    assert files.is_archive(archive)
    files.copy_sources([archive], rootfs, "/opt", owner=files.Ownership(), unpack=True)
    assert (rootfs / "opt" / "pkg" / "file").read_text() == "hi"
    plain = tmp_path / "plain.gz"
    plain.write_bytes(gzip.compress(b"not a tar"))
    assert not files.is_archive(plain)


# -- the context ---------------------------------------------------------------------------


def _tar(members: dict[str, bytes]) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return raw.getvalue()


def test_a_truncated_context_tar_is_read(tmp_path: Path) -> None:
    """docker build -f - sends its last member without padding and no end blocks."""
    whole = _tar({"a.txt": b"a", ".dockerfile.0123": b"FROM busybox\n"})
    data_end = 512 + 512 + 512 + len(b"FROM busybox\n")  # two headers, a's block, the data
    upload = tmp_path / "upload"
    upload.write_bytes(whole[:data_end])
    out = tmp_path / "out"
    out.mkdir()
    unpack_context(upload, out)
    assert read_dockerfile(out, ".dockerfile.0123") == b"FROM busybox\n"
    assert (out / "a.txt").read_text() == "a"


def test_a_compressed_context_and_a_bare_dockerfile(tmp_path: Path) -> None:
    upload = tmp_path / "upload"
    upload.write_bytes(gzip.compress(_tar({"Dockerfile": b"FROM scratch\n"})))
    out = tmp_path / "gz"
    out.mkdir()
    unpack_context(upload, out)
    assert read_dockerfile(out, "") == b"FROM scratch\n"
    upload.write_bytes(b"FROM busybox\nRUN true\n")
    bare = tmp_path / "bare"
    bare.mkdir()
    unpack_context(upload, bare)
    assert read_dockerfile(bare, "Dockerfile") == b"FROM busybox\nRUN true\n"


def test_context_members_cannot_leave_the_directory(tmp_path: Path) -> None:
    upload = tmp_path / "upload"
    upload.write_bytes(_tar({"../outside.txt": b"x"}))
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(InvalidParameter, match="invalid build context"):
        unpack_context(upload, out)
    assert not (tmp_path / "outside.txt").exists()


def test_a_missing_dockerfile_is_dockers_error(tmp_path: Path) -> None:
    (tmp_path / "dockerfile").write_text("FROM scratch\n")
    assert read_dockerfile(tmp_path, "") == b"FROM scratch\n"  # the lower-case fallback
    with pytest.raises(InvalidParameter, match="Cannot locate specified Dockerfile: other"):
        read_dockerfile(tmp_path, "other")
