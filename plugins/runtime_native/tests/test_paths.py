"""Paths inside a root that no symlink leads out of (no kernel needed)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydockerd_runtime_native.paths import make_directories, make_mount_point, secure_join


@pytest.fixture
def root(tmp_path: Path) -> str:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/real").mkdir()
    (tmp_path / "etc/abs").symlink_to("/etc/real")
    (tmp_path / "etc/rel").symlink_to("real")
    (tmp_path / "escape").symlink_to("../../../../..")
    (tmp_path / "escape-abs").symlink_to("/../../../tmp")
    (tmp_path / "loop").symlink_to("loop")
    (tmp_path / "file").write_text("x")
    return str(tmp_path)


@pytest.mark.parametrize(
    ("unsafe", "inside"),
    [
        ("/", ""),
        ("/etc/real/x", "etc/real/x"),
        ("/etc/abs/x", "etc/real/x"),
        ("/etc/rel/x", "etc/real/x"),
        ("/etc/../../../x", "x"),
        ("/escape/x", "x"),
        ("/escape-abs/x", "tmp/x"),
        ("//etc/./real//", "etc/real"),
        ("/missing/../etc/abs", "etc/real"),
        ("/file/below", "file/below"),
    ],
)
def test_secure_join_stays_inside(root: str, unsafe: str, inside: str) -> None:
    assert secure_join(root, unsafe) == f"{root}/{inside}"


def test_secure_join_gives_up_on_a_symlink_loop(root: str) -> None:
    with pytest.raises(OSError, match="too many levels of symbolic links"):
        secure_join(root, "/loop/x")


def test_mount_points(root: str) -> None:
    make_directories(root, secure_join(root, "/escape/a/b"))
    assert Path(root, "a/b").is_dir()
    make_mount_point(root, secure_join(root, "/etc/abs/hosts"), file=True)
    assert Path(root, "etc/real/hosts").read_text() == ""
    make_mount_point(root, f"{root}/file", file=True)  # exists: left alone
    assert Path(root, "file").read_text() == "x"
    with pytest.raises(NotADirectoryError):
        make_directories(root, f"{root}/file/below")
