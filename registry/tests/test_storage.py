"""The storage backend's contract, on FilesystemStorage, and open_storage's lookup."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydocker_registry.storage import (
    FilesystemStorage,
    KeyNotFound,
    StorageBackend,
    open_storage,
)


async def test_put_get_stat_and_touch(storage: FilesystemStorage) -> None:
    await storage.put("a/b/c", b"one")
    assert await storage.get("a/b/c") == b"one"
    await storage.put("a/b/c", b"two!")
    assert await storage.get("a/b/c") == b"two!"
    info = await storage.stat("a/b/c")
    assert info is not None
    assert info.size == 4
    os.utime(storage.root / "a/b/c", (1000, 1000))
    assert await storage.touch("a/b/c")
    info = await storage.stat("a/b/c")
    assert info is not None
    assert info.mtime > 1000
    assert await storage.stat("a/b") is None  # a prefix is not a key
    assert await storage.stat("nope") is None
    assert not await storage.touch("nope")
    assert not (storage.root / "nope").exists()
    with pytest.raises(KeyNotFound):
        await storage.get("nope")


async def test_failed_put_keeps_the_old_value_and_no_temporary(
    storage: FilesystemStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    await storage.put("k", b"old")

    def crash(fd: int) -> None:
        raise OSError("disk gone")

    monkeypatch.setattr(os, "fsync", crash)
    with pytest.raises(OSError, match="disk gone"):
        await storage.put("k", b"new")
    monkeypatch.undo()
    assert await storage.get("k") == b"old"
    assert [p.name for p in storage.root.iterdir()] == ["k"]


async def test_children_are_sorted_and_hide_temporaries(storage: FilesystemStorage) -> None:
    for key in ("p/b", "p/a/x", "p/c"):
        await storage.put(key, b"")
    (storage.root / "p" / ".tmp-123-d").write_bytes(b"half")
    assert await storage.children("p") == ["a", "b", "c"]
    assert await storage.children("missing") == []
    assert await storage.children("") == ["p"]


async def test_delete_key_and_prefix(storage: FilesystemStorage) -> None:
    for key in ("p/a/x", "p/a/y", "p/b"):
        await storage.put(key, b"1")
    await storage.delete("p/a")
    assert await storage.children("p") == ["b"]
    await storage.delete("p/b")
    await storage.delete("p/b")  # missing is fine
    assert await storage.children("p") == []
    with pytest.raises(ValueError, match="whole store"):
        await storage.delete("")


async def test_move_replaces_the_target(storage: FilesystemStorage) -> None:
    await storage.put("src", b"new")
    await storage.put("dst/k", b"old")
    await storage.move("src", "dst/k")
    assert await storage.get("dst/k") == b"new"
    assert await storage.stat("src") is None
    with pytest.raises(KeyNotFound):
        await storage.move("src", "elsewhere")


async def test_writers_append_and_read_streams_ranges(storage: FilesystemStorage) -> None:
    writer = await storage.writer("up/data")
    assert writer.size == 0
    await writer.write([b"hello ", b"wor"])
    await writer.close()
    writer = await storage.writer("up/data")
    assert writer.size == 9
    await writer.write([b"ld"])
    await writer.close(sync=True)
    assert writer.size == 11
    assert b"".join([c async for c in storage.read("up/data")]) == b"hello world"
    assert b"".join([c async for c in storage.read("up/data", 6, 3)]) == b"wor"
    with pytest.raises(KeyNotFound):
        async for _ in storage.read("none"):
            pass


@pytest.mark.parametrize("key", ["../x", "a/../b", "/abs", "a//b", "a/./b", "sp ace", "a/"])
async def test_invalid_keys_are_refused(storage: FilesystemStorage, key: str) -> None:
    with pytest.raises(ValueError, match="invalid storage key"):
        await storage.put(key, b"")


def test_local_path_is_the_key_file(storage: FilesystemStorage) -> None:
    assert storage.local_path("a/b") == storage.root / "a" / "b"


def test_open_storage_finds_filesystem_by_entry_point(tmp_path: Path) -> None:
    backend = open_storage("filesystem", {"root": str(tmp_path / "r")})
    assert isinstance(backend, FilesystemStorage)
    assert isinstance(backend, StorageBackend)
    assert backend.root == tmp_path / "r"


@pytest.mark.parametrize(
    ("name", "options", "message"),
    [
        ("s3-nope", {}, "unknown storage backend 's3-nope' \\(installed: .*filesystem"),
        ("filesystem", {}, "bad options"),
        ("filesystem", {"root": "/tmp/x", "colour": "red"}, "bad options \\['colour', 'root'\\]"),
        ("filesystem", {"root": "relative"}, "must be an absolute path"),
    ],
)
def test_open_storage_refuses_clearly(name: str, options: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        open_storage(name, options)
