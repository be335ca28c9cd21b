"""The log-driver conformance suite: what every :class:`~pydockerd.plugin.LogDriver` must do,
checked through the interface only, on a real filesystem.

Use it from a driver package's tests by deriving a ``Test*`` class from
:class:`LogDriverSuite` and naming the driver class; pytest (with pytest-asyncio in
``asyncio_mode = "auto"``) then runs every ``test_*`` method against it::

    # my_driver/tests/test_conformance.py
    from pydockerd.testing.logs import LogDriverSuite
    from my_driver.driver import MyDriver

    class TestMyDriverConformance(LogDriverSuite):
        driver_class = MyDriver
        many_files_options = {"max-size": "4k", "max-file": "100"}

``many_files_options`` (optional) are ``--log-opt`` values under which the driver splits a
log into many small pieces, without dropping any: every check then runs a second time with
them, so reading, tail and follow are checked across those boundaries too. A driver that
needs a configuration overrides the ``log_driver`` fixture (see
:func:`~pydockerd.testing.drivers.make_driver`).

How the suite drives a writer is how the supervisor does: inside a running event loop,
``write`` for each record, then ``close``. A record must be readable once the loop has had
one more turn (a writer may buffer within one iteration of the loop) and after ``close``.
Following readers are stopped as the daemon stops them: ``stopped`` is set after the
writer's ``close``, and the reader must then end having yielded everything.

What the suite checks:

1. records come back in order with their stream, bytes, time and ``partial`` flag, both
   streams interleaved, with quotes, backslashes, control characters, HTML characters and
   non-ASCII text; an empty line; a line longer than 16 KiB in partial pieces;
2. nothing written, nothing read (and no error); a second writer (a restarted container)
   appends after the first;
3. ``since``/``until`` keep the records with ``since <= time <= until``;
4. ``tail``: the last N records, ``0`` none, more than stored all; combined with ``since``;
5. ``follow``: records written while following arrive in order, and the reader ends when
   ``stopped`` is set, with nothing lost; it works when the log does not exist yet, and with
   ``tail=0`` it yields only new records;
6. ``validate_options``: no options is fine, an unknown one is refused with Docker's
   ``unknown log opt 'x' for <name> log driver``;
7. a driver that is ``readable`` reads back what was written; one that is not raises
   ``NotImplementedByDaemon`` from ``read``.

How fast a driver writes is for benchmarks, not for this suite (json-file has one in
``plugins/log_json_file/bench``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import ClassVar

import pytest

from pydockerd.errors import InvalidParameter, NotImplementedByDaemon
from pydockerd.plugin import LogContext, LogDriver, LogQuery, LogRecord
from pydockerd.testing.drivers import make_driver, mount_safe_directory

__all__ = [
    "NS",
    "T0",
    "Follower",
    "LogDriverSuite",
    "assert_same",
    "collect",
    "follow_while_writing",
    "records",
    "write_all",
]

NS = 1_000_000_000
T0 = 1_735_689_600 * NS  # 2025-01-01T00:00:00Z
CONTAINER_ID = "c0ffee" + "0123456789abcdef" * 3 + "0123456789"
LONG = 16 * 1024
"""Where the supervisor cuts an over-long line into partial records (as Docker)."""

SPECIAL_LINES = (
    b"plain ascii\n",
    b'quotes " and backslashes \\ and a tab\t\n',
    b"html <b>&amp;</b> and a carriage return\r\n",
    b"controls \x00\x01\x1b[31m and DEL \x7f\n",
    "unicode: h\u00e9llo \u65e5\u672c \U0001f433 \u2028 \u2029\n".encode(),
    b"\n",
)


def records(
    count: int, start: int = T0, step: int = 1000, stream: str | None = None
) -> list[LogRecord]:
    """``count`` distinct records ``step`` ns apart, alternating stdout and stderr unless
    ``stream`` is given."""
    return [
        LogRecord(
            stream or ("stdout", "stderr")[i % 2], f"record {i:06d}\n".encode(), start + i * step
        )
        for i in range(count)
    ]


async def write_all(driver: LogDriver, context: LogContext, items: Iterable[LogRecord]) -> None:
    """Write ``items`` with a new writer inside the running loop, as the supervisor does,
    and close it."""
    writer = driver.writer(context)
    try:
        for record in items:
            writer.write(record)
        await asyncio.sleep(0)
    finally:
        writer.close()


async def collect(
    driver: LogDriver, context: LogContext, query: LogQuery | None = None, limit: float = 20
) -> list[LogRecord]:
    """Everything ``read`` yields for ``query``, with ``stopped`` set: the container has
    stopped, so a ``follow`` ends after the stored records."""
    stopped = asyncio.Event()
    stopped.set()

    async def run() -> list[LogRecord]:
        return [r async for r in driver.read(context, query or LogQuery(), stopped)]

    return await asyncio.wait_for(run(), limit)


class Follower:
    """A reader following a log in a task, collecting what it yields; :meth:`stop` ends it
    the way the daemon does, :meth:`cancel` the way a client that goes away does."""

    def __init__(self, driver: LogDriver, context: LogContext, query: LogQuery) -> None:
        self.stopped = asyncio.Event()
        self.got: list[LogRecord] = []
        self.task = asyncio.ensure_future(self._run(driver, context, query))

    async def _run(self, driver: LogDriver, context: LogContext, query: LogQuery) -> None:
        async for record in driver.read(context, query, self.stopped):
            self.got.append(record)

    async def wait_for(self, count: int, limit: float = 20) -> None:
        deadline = time.monotonic() + limit
        while len(self.got) < count:
            assert not self.task.done(), f"the reader ended after {len(self.got)} records"
            assert time.monotonic() < deadline, f"{len(self.got)} of {count} records arrived"
            await asyncio.sleep(0.01)

    async def stop(self, limit: float = 20) -> list[LogRecord]:
        """Set ``stopped``; the reader must end by itself."""
        self.stopped.set()
        await asyncio.wait_for(self.task, limit)
        return self.got

    def cancel(self) -> None:
        self.task.cancel()


async def follow_while_writing(
    driver: LogDriver, context: LogContext, query: LogQuery, written: list[LogRecord]
) -> list[LogRecord]:
    """What a reader following with ``query`` yields when ``written`` is written once it
    follows (:func:`write_all`) and it is stopped right after the writer's close."""
    follower = Follower(driver, context, query)
    try:
        await asyncio.sleep(0.2)
        await write_all(driver, context, written)
        return await follower.stop()
    finally:
        follower.cancel()


def _key(record: LogRecord) -> tuple[str, bytes, int, bool]:
    return (record.stream, record.line, record.time_nano, record.partial)


def assert_same(actual: list[LogRecord], expected: list[LogRecord], what: str) -> None:
    """Fail with the first difference between two record lists."""
    have, want = [_key(r) for r in actual], [_key(r) for r in expected]
    if have == want:
        return
    for i, (a, b) in enumerate(zip(have, want, strict=False)):
        assert a == b, f"{what}: record {i} is {a!r}, expected {b!r}"
    raise AssertionError(f"{what}: {len(have)} records, expected {len(want)}")


class LogDriverSuite:
    """The conformance tests; derive a ``Test*`` class that sets :attr:`driver_class` (or
    provides the ``log_driver`` fixture)."""

    driver_class: ClassVar[type[LogDriver]]
    """The driver under test, built by the default ``log_driver`` fixture."""
    many_files_options: ClassVar[Mapping[str, str]] = {}
    """``--log-opt`` values that make the driver split a log into many small pieces without
    dropping any; when set, every check also runs with them."""

    # -- fixtures

    @pytest.fixture
    def suite_dir(self) -> Iterator[Path]:
        """A fresh directory with a short path under /tmp, deleted afterwards."""
        with mount_safe_directory() as path:
            yield path

    @pytest.fixture
    def log_driver(self, suite_dir: Path) -> LogDriver:
        """The driver under test; override it for drivers that need a configuration."""
        if not hasattr(self, "driver_class"):
            pytest.fail(f"{type(self).__name__}: set driver_class or a log_driver fixture")
        return make_driver(self.driver_class, suite_dir / "driver")

    @pytest.fixture(params=["default options", "many files"])
    def log_options(self, request: pytest.FixtureRequest) -> Mapping[str, str]:
        if request.param == "many files":
            if not self.many_files_options:
                pytest.skip("the driver sets no many_files_options")
            return dict(self.many_files_options)
        return {}

    @pytest.fixture
    def context(
        self, suite_dir: Path, log_driver: LogDriver, log_options: Mapping[str, str]
    ) -> LogContext:
        """A container whose log lives below ``suite_dir``."""
        log_driver.validate_options(log_options)
        log_dir = suite_dir / "containers" / CONTAINER_ID
        log_dir.mkdir(parents=True)
        return LogContext(
            container_id=CONTAINER_ID,
            container_name="/conformance",
            image_name="busybox:latest",
            log_dir=log_dir,
            options=log_options,
            labels={"suite": "logs"},
        )

    @pytest.fixture
    def readable(self, log_driver: LogDriver) -> None:
        if not log_driver.readable:
            pytest.skip(f"{log_driver.name} does not read logs back")

    # -- 1. round trips

    @pytest.mark.usefixtures("readable")
    async def test_records_come_back_exactly(
        self, log_driver: LogDriver, context: LogContext
    ) -> None:
        written = [
            LogRecord(("stdout", "stderr")[i % 2], line, T0 + i * 1_000_000_007)
            for i, line in enumerate(SPECIAL_LINES * 3)
        ]
        written.append(LogRecord("stdout", b"the end, without a newline", T0 + 99 * NS, True))
        await write_all(log_driver, context, written)
        assert_same(await collect(log_driver, context), written, "read back")

    @pytest.mark.usefixtures("readable")
    async def test_a_long_line_in_pieces(self, log_driver: LogDriver, context: LogContext) -> None:
        line = bytes(range(0x41, 0x5B)) * (3 * LONG // 26) + b"\n"
        pieces = [line[i : i + LONG] for i in range(0, len(line), LONG)]
        written = [
            LogRecord("stdout", piece, T0, partial=not piece.endswith(b"\n")) for piece in pieces
        ]
        written.append(LogRecord("stderr", b"after\n", T0 + 1))
        await write_all(log_driver, context, written)
        got = await collect(log_driver, context)
        assert_same(got, written, "the pieces")
        assert b"".join(r.line for r in got if r.stream == "stdout") == line

    # -- 2. nothing, and appending

    @pytest.mark.usefixtures("readable")
    async def test_nothing_written_nothing_read(
        self, log_driver: LogDriver, context: LogContext
    ) -> None:
        assert await collect(log_driver, context) == []
        assert await collect(log_driver, context, LogQuery(tail=10)) == []
        await write_all(log_driver, context, [])
        assert await collect(log_driver, context) == []

    @pytest.mark.usefixtures("readable")
    async def test_a_restarted_container_appends(
        self, log_driver: LogDriver, context: LogContext
    ) -> None:
        first, second = records(50), records(50, start=T0 + 10 * NS)
        await write_all(log_driver, context, first)
        await write_all(log_driver, context, second)
        assert_same(await collect(log_driver, context), first + second, "both runs")

    # -- 3. since / until

    @pytest.mark.usefixtures("readable")
    async def test_since_and_until_are_inclusive(
        self, log_driver: LogDriver, context: LogContext
    ) -> None:
        written = records(100, step=NS)
        await write_all(log_driver, context, written)
        since, until = written[20].time_nano, written[60].time_nano
        window = await collect(log_driver, context, LogQuery(since_nano=since, until_nano=until))
        assert_same(window, written[20:61], "since..until")
        assert_same(
            await collect(log_driver, context, LogQuery(since_nano=since + 1)),
            written[21:],
            "since",
        )
        assert_same(
            await collect(log_driver, context, LogQuery(until_nano=until - 1)),
            written[:60],
            "until",
        )
        assert await collect(log_driver, context, LogQuery(since_nano=T0 + 1000 * NS)) == []

    # -- 4. tail

    @pytest.mark.usefixtures("readable")
    async def test_tail(self, log_driver: LogDriver, context: LogContext) -> None:
        written = records(300, step=NS)
        await write_all(log_driver, context, written)
        for count in (1, 10, 299, 300):
            got = await collect(log_driver, context, LogQuery(tail=count))
            assert_same(got, written[-count:], f"tail {count}")
        assert await collect(log_driver, context, LogQuery(tail=0)) == []
        assert_same(await collect(log_driver, context, LogQuery(tail=1000)), written, "tail 1000")
        since = written[280].time_nano
        got = await collect(log_driver, context, LogQuery(tail=50, since_nano=since))
        assert_same(got, written[280:], "tail 50 since the 280th")

    # -- 5. follow

    @pytest.mark.usefixtures("readable")
    async def test_follow_sees_new_records_and_stopped_ends_it(
        self, log_driver: LogDriver, context: LogContext
    ) -> None:
        before = records(20)
        await write_all(log_driver, context, before)
        follower = Follower(log_driver, context, LogQuery(follow=True))
        try:
            await follower.wait_for(20)
            writer = log_driver.writer(context)
            after = records(2000, start=T0 + 100 * NS)
            for i, record in enumerate(after):
                writer.write(record)
                if i % 100 == 99:
                    await asyncio.sleep(0.005)  # the supervisor's loop turns between reads
            await follower.wait_for(1000)
            writer.close()
            got = await follower.stop()
        finally:
            follower.cancel()
        assert_same(got, before + after, "followed")

    @pytest.mark.usefixtures("readable")
    async def test_follow_a_log_that_does_not_exist_yet(
        self, log_driver: LogDriver, context: LogContext
    ) -> None:
        written = records(10)
        got = await follow_while_writing(log_driver, context, LogQuery(follow=True), written)
        assert_same(got, written, "followed from nothing")

    @pytest.mark.usefixtures("readable")
    async def test_follow_with_tail_0_yields_only_new_records(
        self, log_driver: LogDriver, context: LogContext
    ) -> None:
        await write_all(log_driver, context, records(30))
        new = records(5, start=T0 + 100 * NS)
        got = await follow_while_writing(log_driver, context, LogQuery(tail=0, follow=True), new)
        assert_same(got, new, "tail 0, then followed")

    @pytest.mark.usefixtures("readable")
    async def test_follow_of_a_stopped_container_ends_after_its_records(
        self, log_driver: LogDriver, context: LogContext
    ) -> None:
        written = records(40)
        await write_all(log_driver, context, written)
        got = await collect(log_driver, context, LogQuery(tail=5, follow=True))
        assert_same(got, written[-5:], "tail 5 of a stopped one")

    # -- 6. options

    def test_validate_options(self, log_driver: LogDriver) -> None:
        log_driver.validate_options({})
        with pytest.raises(InvalidParameter) as caught:
            log_driver.validate_options({"no-such-option": "1"})
        expected = f"unknown log opt 'no-such-option' for {log_driver.name} log driver"
        assert str(caught.value) == expected

    # -- 7. drivers that do not read

    async def test_reading_is_what_readable_says(
        self, log_driver: LogDriver, context: LogContext
    ) -> None:
        if log_driver.readable:
            await write_all(log_driver, context, records(3))
            assert len(await collect(log_driver, context)) == 3
        else:
            with pytest.raises(NotImplementedByDaemon):
                await collect(log_driver, context)
