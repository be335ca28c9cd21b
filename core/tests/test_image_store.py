"""The image subsystem's parts on their own: content store, chain IDs, --change parsing,
and the metadata database's transactions."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import pytest
from pydockerd.errors import InvalidParameter
from pydockerd.images.changes import apply_changes
from pydockerd.images.content import ContentStore, HashingReader, sha256_digest
from pydockerd.images.store import ImageRecord, ImageStore, LayerRecord, chain_ids


def test_blob_gets_its_name_only_when_complete_and_verified(tmp_path: Path) -> None:
    store = ContentStore(tmp_path)
    digest = store.write(b"hello")
    assert digest == sha256_digest(b"hello")
    assert store.read(digest) == b"hello"
    with pytest.raises(InvalidParameter, match="digest mismatch"):
        store.write(b"other", expected=digest)
    assert store.digests() == [digest]
    assert list((tmp_path / "ingest").iterdir()) == [], "a refused blob leaves nothing"


def test_an_abandoned_ingest_leaves_nothing(tmp_path: Path) -> None:
    store = ContentStore(tmp_path)
    with store.ingest() as writer:
        writer.write(b"partial")
    assert store.digests() == []
    assert list((tmp_path / "ingest").iterdir()) == []


def test_digests_are_checked_before_use_as_paths(tmp_path: Path) -> None:
    store = ContentStore(tmp_path)
    for bad in ("sha256:../../etc/passwd", "md5:abc", "sha256:ABC"):
        with pytest.raises(InvalidParameter):
            store.path(bad)


def test_hashing_reader_covers_what_is_drained() -> None:
    reader = HashingReader(io.BytesIO(b"x" * 3_000_000))
    assert reader.read(10) == b"x" * 10
    reader.drain()
    assert reader.digest == sha256_digest(b"x" * 3_000_000)
    assert reader.size == 3_000_000


def test_chain_ids_follow_the_oci_rule() -> None:
    a, b = "sha256:" + "a" * 64, "sha256:" + "b" * 64
    second = "sha256:" + hashlib.sha256(f"{a} {b}".encode()).hexdigest()
    assert chain_ids([a, b]) == [a, second]
    assert chain_ids([]) == []


def test_changes_as_docker_import_applies_them() -> None:
    config = apply_changes(
        {"Env": ["A=0", "B=1"]},
        [
            'CMD ["/bin/sh", "-c", "echo hi"]',
            "ENTRYPOINT /entry.sh",
            "ENV A=2 C=3",
            "LABEL a=b c=d",
            "EXPOSE 80 53/udp",
            "USER nobody",
            "WORKDIR /srv",
            "VOLUME /data",
            "STOPSIGNAL SIGINT",
        ],
    )
    assert config == {
        "Cmd": ["/bin/sh", "-c", "echo hi"],
        "Entrypoint": ["/bin/sh", "-c", "/entry.sh"],
        "Env": ["B=1", "A=2", "C=3"],
        "Labels": {"a": "b", "c": "d"},
        "ExposedPorts": {"80/tcp": {}, "53/udp": {}},
        "User": "nobody",
        "WorkingDir": "/srv",
        "Volumes": {"/data": {}},
        "StopSignal": "SIGINT",
    }
    with pytest.raises(InvalidParameter, match="run is not a valid change command"):
        apply_changes({}, ["RUN rm -rf /"])


def test_a_failed_transaction_changes_nothing(tmp_path: Path) -> None:
    store = ImageStore(tmp_path / "images.db")
    image = ImageRecord("sha256:" + "1" * 64, None, None, None, 0, 0.0, None)

    def interrupted() -> None:
        with store.transaction() as db:
            store.add_image(db, image)
            store.set_ref(db, "docker.io/library/x:latest", image.id, "tag")
            raise RuntimeError("crash in the middle")

    with pytest.raises(RuntimeError):
        interrupted()
    assert store.images() == []
    assert store.lookup("docker.io/library/x:latest") is None
    store.close()


def test_layer_chain_and_use(tmp_path: Path) -> None:
    store = ImageStore(tmp_path / "images.db")
    base = LayerRecord("sha256:" + "a" * 64, "sha256:" + "a" * 64, None, "c1", 10, None)
    top = LayerRecord("sha256:" + "c" * 64, "sha256:" + "b" * 64, base.chain_id, "c2", 5, None)
    store.add_layer(base)
    store.add_layer(top)
    assert store.layer_chain(top.chain_id) == [base, top]
    assert store.layers_in_use() == set()
    with store.transaction() as db:
        store.add_image(
            db, ImageRecord("sha256:" + "1" * 64, top.chain_id, None, None, 15, 0, None)
        )
    assert store.layers_in_use() == {base.chain_id, top.chain_id}
    store.close()
