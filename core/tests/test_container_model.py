"""The container model: Go's time and duration formats, ``ps`` status lines, persistence."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydockerd.api.streams import _scan, detach_sequence
from pydockerd.containers.config import MountPoint
from pydockerd.containers.model import (
    ZERO_TIME,
    Attachment,
    Container,
    State,
    human_duration,
    parse_rfc3339,
    rfc3339_nano,
    status_line,
)
from pydockerd.containers.names import random_name, valid_name
from pydockerd.errors import InvalidParameter


def test_rfc3339_nano_as_go_formats_it() -> None:
    assert rfc3339_nano(1_700_000_000_123_456_789) == "2023-11-14T22:13:20.123456789Z"
    assert rfc3339_nano(1_700_000_000_120_000_000) == "2023-11-14T22:13:20.12Z"
    assert rfc3339_nano(1_700_000_000_000_000_000) == "2023-11-14T22:13:20Z"
    assert parse_rfc3339("2023-11-14T22:13:20.5Z") == pytest.approx(1_700_000_000.5)
    assert parse_rfc3339(ZERO_TIME) == 0


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.4, "Less than a second"),
        (1, "1 second"),
        (59, "59 seconds"),
        (60, "About a minute"),
        (119, "About a minute"),
        (120, "2 minutes"),
        (3600, "About an hour"),
        (5400, "2 hours"),  # Go rounds to the hour
        (47 * 3600, "47 hours"),
        (3 * 86400, "3 days"),
        (15 * 86400, "2 weeks"),
        (90 * 86400, "3 months"),
        (800 * 86400, "2 years"),
    ],
)
def test_human_duration(seconds: float, text: str) -> None:
    assert human_duration(seconds) == text


def test_status_lines() -> None:
    now = 1_700_000_100.0
    started = rfc3339_nano(1_700_000_000 * 10**9)
    assert status_line(State("running", started_at=started), now) == "Up About a minute"
    assert status_line(State("paused", started_at=started), now) == "Up About a minute (Paused)"
    exited = State(
        "exited", exit_code=3, started_at=started, finished_at=rfc3339_nano(int((now - 5) * 10**9))
    )
    assert status_line(exited, now) == "Exited (3) 5 seconds ago"
    assert status_line(State("created"), now) == "Created"
    restarting = State("restarting", exit_code=1, finished_at=rfc3339_nano(int((now - 2) * 10**9)))
    assert status_line(restarting, now) == "Restarting (1) 2 seconds ago"


def test_state_api_shape() -> None:
    body = State("paused", pid=42).to_api()
    assert (body["Running"], body["Paused"], body["Pid"], body["Status"]) == (
        True,
        True,
        42,
        "paused",
    )
    assert State("exited", pid=42).to_api()["Pid"] == 0


def test_container_saves_and_loads(tmp_path: Path) -> None:
    container = Container(
        id="a" * 64,
        name="web",
        created=rfc3339_nano(10**18),
        image_id="sha256:" + "b" * 64,
        image="busybox",
        config={"Cmd": ["sh"], "Labels": {"k": "v"}},
        host_config={"RestartPolicy": {"Name": "always", "MaximumRetryCount": 0}},
        path="sh",
        args=["-c", "true"],
        directory=tmp_path,
        storage_driver="overlay",
        runtime="native",
        log_driver="json-file",
        mounts=[MountPoint(type="tmpfs", destination="/t", tmpfs_options=("size=1m",))],
        state=State("running", pid=7),
    )
    container.save()
    assert Container.load(container.file) == container
    assert not list(tmp_path.glob(".*.tmp"))
    assert container.restart_policy.name == "always"
    assert container.event_attributes(exitCode="0") == {
        "k": "v",
        "image": "busybox",
        "name": "web",
        "exitCode": "0",
    }
    assert container.summary(None)["Command"] == "sh -c true"
    assert container.inspect({}, None)["HostConfig"]["LogConfig"]["Type"] == "json-file"
    attachments = [
        Attachment(network="bridge", network_id="n1", gateway="10.0.0.1", address="10.0.0.2/24"),
        Attachment(network="front", network_id="n2", aliases=("web",)),
    ]
    summary = container.summary(None, attachments)["NetworkSettings"]
    full = container.inspect({}, None, attachments)["NetworkSettings"]
    assert summary == {"Networks": full["Networks"]}
    assert set(summary["Networks"]) == {"bridge", "front"}
    assert parse_rfc3339("2023-11-14T22:13:20.5Z") == 1_700_000_000.5


def test_names() -> None:
    assert valid_name("/web-1.a_b") == "web-1.a_b"
    for bad in ("a", "-x", "x y", "x/y", ""):
        with pytest.raises(InvalidParameter, match=r"Invalid container name"):
            valid_name(bad)
    assert valid_name(random_name())


def test_detach_keys() -> None:
    assert detach_sequence(None) == b"\x10\x11"
    assert detach_sequence("ctrl-a,x") == b"\x01x"
    assert detach_sequence("ctrl-@") == b"\x00"
    with pytest.raises(InvalidParameter, match="Invalid detach keys"):
        detach_sequence("ctrl-ab")


def test_detach_sequence_is_found_across_reads_and_other_bytes_pass() -> None:
    keys = b"\x10\x11"
    assert _scan(b"abc", keys, 0) == (b"abc", 0, False)
    assert _scan(b"ab\x10", keys, 0) == (b"ab", 1, False)
    assert _scan(b"\x11rest", keys, 1) == (b"", 0, True)
    assert _scan(b"x", keys, 1) == (b"\x10x", 0, False)  # not the sequence after all
    assert _scan(b"\x10\x10\x11", keys, 0) == (b"\x10", 0, True)
