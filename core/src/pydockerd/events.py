"""The engine's event log: recent history in memory and live subscribers (``GET /events``)."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any

from pydockerd.api.params import Filters, labels_match
from pydockerd.plugin import Event

__all__ = ["EVENT_FILTERS", "EventBus", "event_matches"]

_OBJECT_TYPES = (
    "container",
    "image",
    "network",
    "volume",
    "plugin",
    "daemon",
    "node",
    "service",
    "secret",
    "config",
)
EVENT_FILTERS = frozenset({"type", "event", "label", "scope", *_OBJECT_TYPES})
"""The filter keys ``GET /events`` accepts (moby's set)."""


def _match_prefix(filters: Filters, key: str, *candidates: str) -> bool:
    """moby's fuzzy match: true without the key, else some value equals or prefixes a
    candidate."""
    values = filters.get(key)
    if not values:
        return True
    return any(c and (c == v or c.startswith(v)) for v in values for c in candidates)


def event_matches(event: Event, filters: Filters) -> bool:
    """Whether ``event`` passes ``filters``, with moby's semantics (AND across keys, OR within)."""
    if "type" in filters and event.type not in filters["type"]:
        return False
    if "scope" in filters and event.scope not in filters["scope"]:
        return False
    if "event" in filters:
        action = event.action.split(":", 1)[0]
        if event.action not in filters["event"] and action not in filters["event"]:
            return False
    name = event.attributes.get("name", "")
    for key in _OBJECT_TYPES:
        if key == "image":
            image = event.attributes.get("image", "")
            if not _match_prefix(filters, key, event.actor_id, name, image):
                return False
        elif not _match_prefix(filters, key, event.actor_id, name):
            return False
    return labels_match(event.attributes, filters.get("label", ()))


class EventBus:
    """Records events, keeps the last ``history`` of them, and fans them out.

    :param history: how many past events ``GET /events?since=`` can replay.
    :param on_publish: called with every event after it is recorded (the daemon passes the
        ``pydockerd_event`` hook); its awaitable runs as a task so publishing never blocks.
    """

    def __init__(
        self, history: int, on_publish: Callable[[Event], Coroutine[Any, Any, None]] | None = None
    ) -> None:
        self._history: deque[Event] = deque(maxlen=history)
        self._subscribers: set[asyncio.Queue[Event | None]] = set()
        self._on_publish = on_publish
        self._tasks: set[asyncio.Task[None]] = set()
        self.closed = False

    def publish(self, event: Event) -> None:
        """Record ``event`` and hand it to every subscriber and to ``on_publish``."""
        self._history.append(event)
        for queue in self._subscribers:
            queue.put_nowait(event)
        if self._on_publish is not None:
            task = asyncio.get_running_loop().create_task(self._on_publish(event))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)

    def history(self, since_ns: int | None, until_ns: int | None = None) -> list[Event]:
        """Recorded events with ``since_ns <= time <= until_ns``."""
        return [
            e
            for e in self._history
            if (since_ns is None or e.time_nano >= since_ns)
            and (until_ns is None or e.time_nano <= until_ns)
        ]

    @asynccontextmanager
    async def subscribe(self) -> AsyncIterator[asyncio.Queue[Event | None]]:
        """A queue of the events published from now on; ``None`` in it means the bus closed."""
        queue: asyncio.Queue[Event | None] = asyncio.Queue()
        if self.closed:
            queue.put_nowait(None)
        self._subscribers.add(queue)
        try:
            yield queue
        finally:
            self._subscribers.discard(queue)

    async def close(self) -> None:
        """End every subscription and wait for pending ``on_publish`` calls."""
        self.closed = True
        for queue in self._subscribers:
            queue.put_nowait(None)
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
