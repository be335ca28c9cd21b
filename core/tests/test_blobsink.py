"""The content store's BlobSink: partial downloads that survive, resume and verify."""

from __future__ import annotations

import asyncio
import hashlib
import os
import threading
import time
from pathlib import Path

import pytest
from pydockerd.distribution import Descriptor
from pydockerd.errors import InvalidParameter, NotFound
from pydockerd.images import blobsink
from pydockerd.images.blobsink import ContentBlobSink
from pydockerd.images.content import ContentStore, sha256_digest

DATA = os.urandom(3 * 1024 * 1024 + 17)
DESC = Descriptor("application/octet-stream", sha256_digest(DATA), len(DATA))


@pytest.fixture
def sink(tmp_path: Path) -> ContentBlobSink:
    return ContentBlobSink(ContentStore(tmp_path / "content"))


async def test_whole_download_commits(sink: ContentBlobSink) -> None:
    with sink.partial(DESC) as blob:
        assert blob.offset == 0
        await blob.write(DATA[:1000])
        await blob.write(DATA[1000:])
        assert blob.offset == len(DATA)
        assert not sink.has(DESC.digest)
        await blob.commit()
    assert sink.has(DESC.digest)
    with sink.open(DESC.digest) as f:
        assert f.read() == DATA
    assert list(sink.store.partials.iterdir()) == []


async def test_interrupted_download_resumes(sink: ContentBlobSink) -> None:
    with sink.partial(DESC) as blob:
        await blob.write(DATA[:123456])
    assert not sink.has(DESC.digest)
    # a new store over the same root: the daemon restarted
    sink = ContentBlobSink(ContentStore(sink.store.root))
    sink.store.clean_ingest()
    with sink.partial(DESC) as blob:
        assert blob.offset == 123456
        await blob.write(DATA[123456:])
        await blob.commit()  # the hash covers the kept bytes too
    assert sink.store.read(DESC.digest) == DATA


async def test_restart_throws_away_the_kept_bytes(sink: ContentBlobSink) -> None:
    with sink.partial(DESC) as blob:
        await blob.write(b"garbage")
    with sink.partial(DESC) as blob:
        assert blob.offset == 7
        blob.restart()
        assert blob.offset == 0
        await blob.write(DATA)
        await blob.commit()
    assert sink.store.read(DESC.digest) == DATA


async def test_mismatch_raises_and_discards(sink: ContentBlobSink) -> None:
    with sink.partial(DESC) as blob:
        await blob.write(DATA[:-1] + b"\0")
        with pytest.raises(InvalidParameter, match=DESC.digest):
            await blob.commit()
        assert blob.offset == 0
    assert not sink.has(DESC.digest)
    assert list(sink.store.partials.iterdir()) == []


def test_partial_longer_than_the_blob_starts_over(sink: ContentBlobSink) -> None:
    small = Descriptor("x", sha256_digest(b"abc"), 3)
    (sink.store.partials / small.digest.removeprefix("sha256:")).write_bytes(b"abcdef")
    with sink.partial(small) as blob:
        assert blob.offset == 0


async def test_concurrent_downloads_do_not_share_a_file(sink: ContentBlobSink) -> None:
    with sink.partial(DESC) as first:
        await first.write(DATA[:10])
        with sink.partial(DESC) as second:
            assert second.offset == 0
            await second.write(DATA)
            await second.commit()
        await first.write(DATA[10:])
        await first.commit()
    assert sink.store.read(DESC.digest) == DATA
    assert list(sink.store.partials.iterdir()) == []


def test_write_and_open(sink: ContentBlobSink) -> None:
    sink.write(b"{}", sha256_digest(b"{}"))
    sink.write(b"{}", sha256_digest(b"{}"))  # twice is fine
    assert sink.has(sha256_digest(b"{}"))
    with pytest.raises(InvalidParameter):
        sink.write(b"{ }", sha256_digest(b"{}"))
    with pytest.raises(NotFound):
        sink.open(sha256_digest(b"nope"))


def test_clean_partials_drops_old_and_finished_ones(sink: ContentBlobSink) -> None:
    store = sink.store
    old, fresh = store.partials / ("a" * 64), store.partials / ("b" * 64)
    old.write_bytes(b"x")
    fresh.write_bytes(b"y")
    day_ago = time.time() - 90000
    os.utime(old, (day_ago, day_ago))
    done = store.partials / DESC.digest.removeprefix("sha256:")
    done.write_bytes(b"z")
    store.write(DATA, DESC.digest)
    assert store.clean_partials() == sorted([old.name, done.name])
    assert [p.name for p in store.partials.iterdir()] == [fresh.name]


def test_clean_partials_drops_private_ones(sink: ContentBlobSink) -> None:
    """A second download of a blob at the same time writes <hex>.<random>, which no pull
    ever resumes; one a killed daemon left stayed for a day (a whole layer's worth)."""
    store = sink.store
    private = store.partials / (("c" * 64) + ".1a2b3c4d")
    private.write_bytes(b"half a layer")
    assert store.clean_partials() == [private.name]
    assert list(store.partials.iterdir()) == []


async def test_hashing_and_writing_stay_off_the_event_loop(
    sink: ContentBlobSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    """sha256 of a download ran on the loop: parallel downloads shared one core, and
    opening a large kept partial re-hashed it there before the first byte was asked for."""
    with sink.partial(DESC) as blob:
        await blob.write(DATA[:2_000_000])  # a pull that was cut
    loop_thread = threading.current_thread()
    hashed_on: list[threading.Thread] = []
    real = hashlib.sha256

    class Spy:
        def __init__(self) -> None:
            self._hash = real()

        def update(self, data: bytes) -> None:
            hashed_on.append(threading.current_thread())
            self._hash.update(data)

        def hexdigest(self) -> str:
            return self._hash.hexdigest()

    monkeypatch.setattr(blobsink.hashlib, "sha256", Spy)
    with sink.partial(DESC) as blob:
        assert blob.offset == 2_000_000  # known at once, from the file's size
        await blob.write(DATA[2_000_000:])
        await blob.commit()
    assert sink.store.read(DESC.digest) == DATA
    assert hashed_on
    assert loop_thread not in hashed_on


async def test_a_cancelled_write_keeps_its_place(sink: ContentBlobSink) -> None:
    """A download cancelled while a piece is being written: that piece and the ones queued
    after it still reach the file in order, so the partial stays a prefix of the blob."""
    with sink.partial(DESC) as blob:
        pieces = [DATA[i : i + 100_000] for i in range(0, 1_000_000, 100_000)]
        tasks = [asyncio.ensure_future(blob.write(piece)) for piece in pieces]
        tasks[3].cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    with sink.partial(DESC) as blob:
        assert blob.offset == 1_000_000
        await blob.write(DATA[1_000_000:])
        await blob.commit()
    assert sink.store.read(DESC.digest) == DATA


async def test_restart_after_resume_starts_from_zero(sink: ContentBlobSink) -> None:
    with sink.partial(DESC) as blob:
        await blob.write(DATA[:500_000])
    with sink.partial(DESC) as blob:
        blob.restart()  # the server ignored Range, while the kept bytes were being hashed
        await blob.write(DATA)
        await blob.commit()
    assert sink.store.read(DESC.digest) == DATA


async def test_what_a_pull_stored_is_held_until_it_is_released(sink: ContentBlobSink) -> None:
    """rmi collects the blobs no image references; a pull's are referenced only once it is
    recorded, so they are held (ContentStore.held) from when the sink stores or finds them."""
    config = b'{"rootfs": {}}'
    sink.write(config, sha256_digest(config))
    with sink.partial(DESC) as blob:
        await blob.write(DATA)
        await blob.commit()
    assert sink.store.held() == {sha256_digest(config), DESC.digest}
    other = ContentBlobSink(sink.store)  # a second pull of the same image
    assert other.has(DESC.digest)
    sink.release()
    assert sink.store.held() == {DESC.digest}
    other.release()
    assert sink.store.held() == set()
