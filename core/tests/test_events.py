"""Event filters with moby's semantics, and the event bus."""

from __future__ import annotations

import asyncio

import pytest
from pydockerd.api.params import parse_bool, parse_filters, parse_timestamp_ns
from pydockerd.errors import InvalidParameter
from pydockerd.events import EVENT_FILTERS, EventBus, event_matches
from pydockerd.plugin import Event

START = Event(
    "container", "start", "abcdef123456", {"name": "web", "image": "busybox", "tier": "front"}
)
EXEC = Event("container", "exec_start: sh -c true", "abcdef123456", {"name": "web"})
RELOAD = Event("daemon", "reload", "engine-1", {"name": "host"})


@pytest.mark.parametrize(
    ("filters", "start", "exec_", "reload"),
    [
        ({}, True, True, True),
        ({"type": {"daemon"}}, False, False, True),
        ({"event": {"exec_start"}}, False, True, False),
        ({"container": {"abc"}}, True, True, False),
        ({"container": {"web"}}, True, True, False),
        ({"container": {"db"}}, False, False, False),
        ({"label": {"tier"}}, True, False, False),
        ({"label": {"tier=back"}}, False, False, False),
        ({"type": {"container"}, "event": {"start"}}, True, False, False),
        ({"image": {"busybox"}}, True, False, False),
    ],
)
def test_event_filters(
    filters: dict[str, set[str]], start: bool, exec_: bool, reload: bool
) -> None:
    assert [event_matches(e, filters) for e in (START, EXEC, RELOAD)] == [start, exec_, reload]


def test_filters_in_map_and_list_form() -> None:
    assert parse_filters('{"type":{"daemon":true,"x":false}}', EVENT_FILTERS) == {
        "type": {"daemon"}
    }
    assert parse_filters('{"type":["daemon"]}', EVENT_FILTERS) == {"type": {"daemon"}}
    with pytest.raises(InvalidParameter, match="invalid filter 'colour'"):
        parse_filters('{"colour":["red"]}', EVENT_FILTERS)
    with pytest.raises(InvalidParameter):
        parse_filters("{not json", EVENT_FILTERS)


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        ("1", True),
        ("True", True),
        ("0", False),
        ("False", False),
        ("no", False),
        ("", False),
        (None, False),
        ("none", False),
    ],
)
def test_booleans_as_moby_reads_them(raw: str | None, value: bool) -> None:
    assert parse_bool(raw) is value


def test_timestamps() -> None:
    assert parse_timestamp_ns("1700000000", "since") == 1_700_000_000_000_000_000
    assert parse_timestamp_ns("1700000000.5", "since") == 1_700_000_000_500_000_000
    assert parse_timestamp_ns("2023-11-14T22:13:20Z", "since") == 1_700_000_000_000_000_000
    assert parse_timestamp_ns("", "since") is None
    with pytest.raises(InvalidParameter, match="invalid value for until"):
        parse_timestamp_ns("soon", "until")


async def test_bus_history_subscribers_and_close() -> None:
    published: list[Event] = []

    async def on_publish(event: Event) -> None:
        published.append(event)

    bus = EventBus(history=2, on_publish=on_publish)
    async with bus.subscribe() as queue:
        for event in (START, EXEC, RELOAD):
            bus.publish(event)
        assert [await queue.get() for _ in range(3)] == [START, EXEC, RELOAD]
        assert bus.history(since_ns=0) == [EXEC, RELOAD]  # only the last two are kept
        assert bus.history(since_ns=RELOAD.time_nano + 1) == []
        await bus.close()
        assert await asyncio.wait_for(queue.get(), 1) is None
    assert published == [START, EXEC, RELOAD]
