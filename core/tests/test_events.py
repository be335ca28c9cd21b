"""Event filters with moby's semantics, the API shape of an event, and the event bus."""

from __future__ import annotations

import asyncio

import pytest
from pydockerd.api.params import Filters, parse_filters
from pydockerd.events import EVENT_FILTERS, EventBus, event_matches
from pydockerd.plugin import Event

CID = "abcdef1234567890" * 4
START = Event(
    "container",
    "start",
    CID,
    {"name": "web", "image": "busybox", "tier": "front", "team": "a"},
)
EXEC = Event("container", "exec_start: sh -c true", CID, {"name": "web", "tier": "back"})
HEALTH = Event("container", "health_status: healthy", "99" * 32, {"name": "db"})
RELOAD = Event("daemon", "reload", "engine-1", {"name": "host"})
NETWORK = Event("network", "create", "feedbeef" * 8, {"name": "front-net"}, scope="swarm")
ALL = (START, EXEC, HEALTH, RELOAD, NETWORK)


def matching(filters: Filters) -> list[Event]:
    return [event for event in ALL if event_matches(event, filters)]


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({}, ALL),
        # type: exact
        ({"type": {"daemon"}}, (RELOAD,)),
        ({"type": {"container", "network"}}, (START, EXEC, HEALTH, NETWORK)),
        ({"type": {"contain"}}, ()),
        # event/action: exact, and "exec_start: sh" style actions by their prefix
        ({"event": {"start"}}, (START,)),
        ({"event": {"exec_start"}}, (EXEC,)),
        ({"event": {"exec_start: sh -c true"}}, (EXEC,)),
        ({"event": {"health_status"}}, (HEALTH,)),
        ({"event": {"exec"}}, ()),
        ({"event": {"start", "reload"}}, (START, RELOAD)),  # OR within a key
        # container: by full id, id prefix, name
        ({"container": {CID}}, (START, EXEC)),
        ({"container": {"abcdef"}}, (START, EXEC)),
        ({"container": {"web"}}, (START, EXEC)),
        ({"container": {"db", "web"}}, (START, EXEC, HEALTH)),
        ({"container": {"nope"}}, ()),
        # other object types by name or id
        ({"daemon": {"engine-1"}}, (RELOAD,)),
        ({"network": {"front-net"}}, (NETWORK,)),
        ({"network": {"feedbeef"}}, (NETWORK,)),
        # scope
        ({"scope": {"swarm"}}, (NETWORK,)),
        ({"scope": {"local"}}, (START, EXEC, HEALTH, RELOAD)),
        # label: key present, key=value exact, several labels all required
        ({"label": {"tier"}}, (START, EXEC)),
        ({"label": {"tier=front"}}, (START,)),
        ({"label": {"tier=fr"}}, ()),
        ({"label": {"tier", "team=a"}}, (START,)),
        ({"label": {"tier=back", "team=a"}}, ()),
        ({"label": {"missing"}}, ()),
        # AND across keys
        ({"type": {"container"}, "event": {"start"}}, (START,)),
        ({"type": {"daemon"}, "event": {"start"}}, ()),
        ({"container": {"web"}, "label": {"tier=back"}}, (EXEC,)),
        ({"image": {"busybox"}}, (START,)),
    ],
)
def test_event_filters(filters: Filters, expected: tuple[Event, ...]) -> None:
    assert matching(filters) == list(expected)


def test_filters_from_the_query_string_apply_the_same_way() -> None:
    as_cli = parse_filters('{"container":{"web":true},"event":{"exec_start":true}}', EVENT_FILTERS)
    as_docker_py = parse_filters('{"container":["web"],"event":["exec_start"]}', EVENT_FILTERS)
    assert matching(as_cli) == matching(as_docker_py) == [EXEC]


def test_event_api_shape() -> None:
    body = START.to_api()
    assert body["Type"] == "container"
    assert body["Action"] == "start"
    assert body["Actor"] == {"ID": CID, "Attributes": dict(START.attributes)}
    assert body["scope"] == "local"
    assert body["timeNano"] == START.time_nano
    assert body["time"] == START.time_nano // 1_000_000_000
    # the deprecated fields old clients read, for containers and images only
    assert (body["status"], body["id"], body["from"]) == ("start", CID, "busybox")
    assert not {"status", "id", "from"} & set(RELOAD.to_api())


# --------------------------------------------------------------------------------------
# the bus


def numbered(count: int) -> list[Event]:
    return [Event("daemon", "reload", f"e{i}", time_nano=1_000 + i) for i in range(count)]


async def test_history_keeps_the_last_n_events() -> None:
    bus = EventBus(history=3)
    events = numbered(5)
    for event in events:
        bus.publish(event)
    assert bus.history(since_ns=None) == events[2:]
    assert bus.history(since_ns=0) == events[2:]


async def test_history_window_bounds_are_inclusive() -> None:
    bus = EventBus(history=10)
    events = numbered(5)  # times 1000..1004
    for event in events:
        bus.publish(event)
    assert bus.history(since_ns=1_001, until_ns=1_003) == events[1:4]
    assert bus.history(since_ns=1_004) == events[4:]
    assert bus.history(since_ns=1_005) == []
    assert bus.history(since_ns=None, until_ns=1_000) == events[:1]


async def test_history_of_zero_keeps_nothing_but_still_delivers() -> None:
    bus = EventBus(history=0)
    async with bus.subscribe() as queue:
        bus.publish(RELOAD)
        assert queue.get_nowait() is RELOAD
    assert bus.history(since_ns=None) == []


async def test_every_subscriber_gets_every_event_in_order() -> None:
    bus = EventBus(history=10)
    bus.publish(START)  # before anyone subscribed: history only
    async with bus.subscribe() as first, bus.subscribe() as second:
        assert bus.subscriber_count == 2
        for event in (EXEC, RELOAD):
            bus.publish(event)
        assert [first.get_nowait(), first.get_nowait()] == [EXEC, RELOAD]
        assert [second.get_nowait(), second.get_nowait()] == [EXEC, RELOAD]
        assert first.empty()
    assert bus.subscriber_count == 0
    bus.publish(HEALTH)  # nobody is subscribed any more: no queue grows
    assert first.empty()


async def test_close_ends_every_subscriber() -> None:
    bus = EventBus(history=10)

    async def consume() -> list[Event]:
        received = []
        async with bus.subscribe() as queue:
            while (event := await queue.get()) is not None:
                received.append(event)
        return received

    consumers = [asyncio.create_task(consume()) for _ in range(2)]
    await asyncio.sleep(0)
    assert bus.subscriber_count == 2
    bus.publish(START)
    await bus.close()
    assert await asyncio.wait_for(asyncio.gather(*consumers), 2) == [[START], [START]]
    assert bus.closed
    # subscribing after the close ends at once
    async with bus.subscribe() as queue:
        assert queue.get_nowait() is None


async def test_on_publish_gets_every_event_and_close_waits_for_it() -> None:
    published: list[Event] = []

    async def on_publish(event: Event) -> None:
        await asyncio.sleep(0.02)
        published.append(event)

    bus = EventBus(history=10, on_publish=on_publish)
    bus.publish(START)
    bus.publish(RELOAD)
    assert published == [], "publishing does not wait for on_publish"
    await bus.close()
    assert sorted(e.action for e in published) == ["reload", "start"]


async def test_a_failing_on_publish_does_not_stop_publishing() -> None:
    calls: list[Event] = []

    async def on_publish(event: Event) -> None:
        calls.append(event)
        raise RuntimeError("listener bug")

    bus = EventBus(history=10, on_publish=on_publish)
    async with bus.subscribe() as queue:
        bus.publish(START)
        bus.publish(EXEC)
        assert [queue.get_nowait(), queue.get_nowait()] == [START, EXEC]
    await bus.close()
    assert calls == [START, EXEC]
