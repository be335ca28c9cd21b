"""What only json-file has: Docker's exact bytes, rotation and compression on disk, reading
what Docker wrote, damaged files, its options and their messages."""

from __future__ import annotations

import asyncio
import dataclasses
import gzip
import importlib.metadata
import os
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest
from pydantic import ValidationError
from pydockerd.plugin import InvalidParameter, LogContext, LogDriver, LogQuery, LogRecord
from pydockerd.testing.drivers import make_driver, mount_safe_directory, register_from_entry_point
from pydockerd.testing.logs import (
    NS,
    T0,
    Follower,
    assert_same,
    collect,
    follow_while_writing,
    records,
    write_all,
)
from pydockerd_log_json_file.driver import JsonFileConfig, JsonFileDriver, log_path
from pydockerd_log_json_file.jsonlog import format_time, parse_time

CONTAINER_ID = "4f9a" + "0" * 60


@pytest.fixture
def base() -> Iterator[Path]:
    with mount_safe_directory("pdj-") as path:
        yield path


@pytest.fixture
def driver(base: Path) -> JsonFileDriver:
    made = make_driver(JsonFileDriver, base / "driver")
    assert isinstance(made, JsonFileDriver)
    return made


def make_context(
    base: Path, options: Mapping[str, str] | None = None, **fields: object
) -> LogContext:
    log_dir = base / "containers" / CONTAINER_ID
    log_dir.mkdir(parents=True, exist_ok=True)
    values: dict[str, object] = {
        "container_id": CONTAINER_ID,
        "container_name": "/web",
        "image_name": "nginx:latest",
        "log_dir": log_dir,
        "options": dict(options or {}),
        **fields,
    }
    return LogContext(**values)  # type: ignore[arg-type]


def log_files(context: LogContext) -> list[str]:
    return sorted(p.name.removeprefix(CONTAINER_ID) for p in context.log_dir.iterdir())


def file_text(context: LogContext) -> bytes:
    return log_path(context).read_bytes()


def wait_for_compression(context: LogContext, limit: float = 10) -> None:
    deadline = time.monotonic() + limit
    while any(not n.endswith((".log", ".gz")) for n in log_files(context)):
        assert time.monotonic() < deadline, f"still compressing: {log_files(context)}"
        time.sleep(0.01)


# -- the package


def test_the_entry_point_registers_the_driver() -> None:
    (ep,) = [e for e in importlib.metadata.entry_points(group="pydockerd") if e.name == "json-file"]
    assert ep.dist is not None
    assert ep.dist.name == "pydockerd-log-json-file"
    registry = register_from_entry_point("json-file", LogDriver)  # type: ignore[type-abstract]
    assert registry.get("json-file") is JsonFileDriver
    assert JsonFileDriver.qualified_name() == "log.json-file"
    assert JsonFileDriver.readable


# -- Docker's bytes


def test_a_line_as_docker_writes_it(base: Path, driver: JsonFileDriver) -> None:
    context = make_context(base)
    writer = driver.writer(context)  # outside an event loop: written at once
    writer.write(
        LogRecord("stdout", b"Log line is here\n", parse_time("2019-01-01T11:11:11.111111111Z"))
    )
    assert file_text(context) == (
        b'{"log":"Log line is here\\n","stream":"stdout","time":"2019-01-01T11:11:11.111111111Z"}\n'
    )
    writer.close()
    assert log_files(context) == ["-json.log"]
    assert oct(log_path(context).stat().st_mode & 0o777) == "0o640"


def test_times_are_rfc3339_nano_with_trailing_zeros_trimmed() -> None:
    assert format_time(T0) == b"2025-01-01T00:00:00Z"
    assert format_time(T0 + 120_000_000) == b"2025-01-01T00:00:00.12Z"
    assert format_time(T0 + 1) == b"2025-01-01T00:00:00.000000001Z"
    assert format_time(T0 + 86_399 * NS + 999_999_999) == b"2025-01-01T23:59:59.999999999Z"
    for text in ("2025-01-01T00:00:00Z", "2025-01-01T00:00:00.12Z", "2025-01-01T01:00:00.5+01:00"):
        assert parse_time(text) in (T0, T0 + 120_000_000, T0 + 500_000_000)
    with pytest.raises(ValueError, match="RFC 3339"):
        parse_time("yesterday Z")


def test_escapes_are_go_s(base: Path, driver: JsonFileDriver) -> None:
    context = make_context(base)
    writer = driver.writer(context)
    lines = [
        b'tab\t quote" backslash\\ <html> & amp\r\n',
        b"bell\x07 nul\x00 esc\x1b del\x7f\n",
        "caf\u00e9 \u2028\u2029 \U0001f433\n".encode(),
        b"bad \xff utf-8 \xe2\x82 and \xef\xbf\xbd itself\n",
        b"no newline",
        b"",
    ]
    for i, line in enumerate(lines):
        writer.write(LogRecord("stderr", line, T0 + i, partial=not line.endswith(b"\n")))
    writer.close()
    text = file_text(context).decode()
    assert text.splitlines() == [
        r'{"log":"tab\u0009 quote\" backslash\\ \u003chtml\u003e \u0026 amp\r\n","stream":"stderr",'
        r'"time":"2025-01-01T00:00:00Z"}',
        r'{"log":"bell\u0007 nul\u0000 esc\u001b del' + "\x7f" + r'\n","stream":"stderr",'
        r'"time":"2025-01-01T00:00:00.000000001Z"}',
        '{"log":"caf\u00e9 \\u2028\\u2029 \U0001f433\\n","stream":"stderr",'
        '"time":"2025-01-01T00:00:00.000000002Z"}',
        r'{"log":"bad \ufffd utf-8 \ufffd\ufffd and ' + "\ufffd" + r' itself\n","stream":"stderr",'
        r'"time":"2025-01-01T00:00:00.000000003Z"}',
        r'{"log":"no newline","stream":"stderr","time":"2025-01-01T00:00:00.000000004Z"}',
        r'{"stream":"stderr","time":"2025-01-01T00:00:00.000000005Z"}',
    ]


def test_attrs_from_labels_env_and_tag(base: Path, driver: JsonFileDriver) -> None:
    """``attrs`` as Docker's json-file writes them: sorted keys, the environment wins over a
    label of the same name, the tag under ``tag``."""

    options = {
        "labels": "com.example.team,missing",
        "labels-regex": "^org\\.",
        "env": "SHARED,MODE",
        "env-regex": "^REGION",
        "tag": "{{.Name}}/{{.ID}} {{ .ImageName }}",
    }
    driver.validate_options(options)
    labels = {"com.example.team": "a&b", "org.x": "1", "other": "no", "SHARED": "label"}
    env = {"SHARED": "env", "MODE": "prod", "REGION_EU": "eu", "SECRET": "no"}
    context = dataclasses.replace(make_context(base, options, labels=labels), env=env)
    writer = driver.writer(context)
    writer.write(LogRecord("stdout", b"x\n", T0))
    writer.close()
    assert file_text(context) == (
        b'{"log":"x\\n","stream":"stdout","attrs":{"MODE":"prod","REGION_EU":"eu",'
        b'"SHARED":"env","com.example.team":"a\\u0026b","org.x":"1",'
        b'"tag":"web/4f9a00000000 nginx:latest"},"time":"2025-01-01T00:00:00Z"}\n'
    )


def test_reads_what_docker_wrote(base: Path, driver: JsonFileDriver) -> None:
    context = make_context(base)
    log_path(context).write_bytes(
        b'{"log":"hello \\u003cworld\\u003e\\n","stream":"stdout",'
        b'"time":"2024-05-06T07:08:09.010203040Z"}\n'
        b'{"log":"oops\\n","stream":"stderr","attrs":{"tag":"t"},"time":"2024-05-06T07:08:09.5Z"}\n'
        b'{"log":"part","stream":"stdout","time":"2024-05-06T07:08:10Z"}\n'
        b'{"log":"ial\\n","stream":"stdout","time":"2024-05-06T07:08:10Z"}\n'
    )
    got = asyncio.run(collect(driver, context))
    t = parse_time("2024-05-06T07:08:09Z")
    assert_same(
        got,
        [
            LogRecord("stdout", b"hello <world>\n", t + 10_203_040),
            LogRecord("stderr", b"oops\n", t + 500_000_000),
            LogRecord("stdout", b"part", t + NS, partial=True),
            LogRecord("stdout", b"ial\n", t + NS),
        ],
        "Docker's lines",
    )


# -- rotation


async def test_rotation_keeps_max_file_files_of_at_most_max_size(
    base: Path, driver: JsonFileDriver
) -> None:
    context = make_context(base, {"max-size": "1k", "max-file": "3"})
    written = records(500)
    await write_all(driver, context, written)
    assert log_files(context) == ["-json.log", "-json.log.1", "-json.log.2"]
    sizes = [p.stat().st_size for p in context.log_dir.iterdir()]
    assert all(0 < size <= 1000 for size in sizes), sizes  # 1k is 1000 bytes, as Docker
    got = await collect(driver, context)
    assert 30 < len(got) < 60
    assert_same(got, written[-len(got) :], "the newest records, none missing in between")
    assert_same(
        await collect(driver, context, LogQuery(tail=len(got) - 1)),
        written[-len(got) + 1 :],
        "tail",
    )


async def test_one_file_starts_over(base: Path, driver: JsonFileDriver) -> None:
    context = make_context(base, {"max-size": "1k", "max-file": "1"})
    written = records(100)
    await write_all(driver, context, written)
    assert log_files(context) == ["-json.log"]
    assert log_path(context).stat().st_size <= 1000
    got = await collect(driver, context)
    assert_same(got, written[-len(got) :], "the newest records")


async def test_rotation_is_bounded_by_default(base: Path, driver: JsonFileDriver) -> None:
    context = make_context(base)
    assert driver.config.rotation(context.options).max_size == 20_000_000
    assert driver.config.rotation(context.options).max_file == 5
    small = make_driver(JsonFileDriver, base / "small", JsonFileConfig(max_size="2k", max_file=2))
    await write_all(small, context, records(300))
    assert log_files(context) == ["-json.log", "-json.log.1"]


async def test_compressed_rotation(base: Path, driver: JsonFileDriver) -> None:
    context = make_context(base, {"max-size": "2k", "max-file": "4", "compress": "true"})
    written = records(300)
    await write_all(driver, context, written)
    wait_for_compression(context)
    assert log_files(context) == ["-json.log", "-json.log.1.gz", "-json.log.2.gz", "-json.log.3.gz"]
    for index in (1, 2, 3):
        plain = gzip.decompress(
            context.log_dir.joinpath(f"{CONTAINER_ID}-json.log.{index}.gz").read_bytes()
        )
        assert 1000 < len(plain) <= 2000
        assert plain.endswith(b"}\n")
    got = await collect(driver, context)
    assert_same(got, written[-len(got) :], "read through the archives")
    assert len(got) > 60
    assert_same(await collect(driver, context, LogQuery(tail=60)), written[-60:], "tail into them")


async def test_tail_and_since_across_rotated_files(base: Path, driver: JsonFileDriver) -> None:
    context = make_context(base, {"max-size": "1k", "max-file": "50"})
    written = records(400, step=NS)
    await write_all(driver, context, written)
    assert len(log_files(context)) > 20
    assert_same(await collect(driver, context, LogQuery(tail=123)), written[-123:], "tail 123")
    window = LogQuery(since_nano=written[33].time_nano, until_nano=written[250].time_nano)
    assert_same(await collect(driver, context, window), written[33:251], "since..until")
    before = LogQuery(tail=5, until_nano=written[100].time_nano)
    assert_same(await collect(driver, context, before), written[96:101], "the last 5 before until")


async def test_tail_reads_only_the_end_of_a_large_log(base: Path, driver: JsonFileDriver) -> None:
    """A 60 MB log: ``tail 10`` reads a block from the end, not the whole file."""
    context = make_context(base)
    line = b'{"log":"%s\\n","stream":"stdout","time":"2025-01-01T00:00:00Z"}\n' % (b"x" * 500)
    log_path(context).write_bytes(line * 110_000)
    before = _bytes_read()
    got = await collect(driver, context, LogQuery(tail=10))
    read = _bytes_read() - before
    assert len(got) == 10
    assert read < 2_000_000, f"tail 10 of a 60 MB log read {read} bytes"


def _bytes_read() -> int:
    """Bytes this process has read with read(2) and friends (``rchar`` of /proc/self/io)."""
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    raise AssertionError("/proc/self/io has no rchar")


# -- follow


async def test_follow_across_rotations_with_few_files(base: Path, driver: JsonFileDriver) -> None:
    """Only 2 files of 1 kB: a follower that keeps up loses nothing while the writer rotates
    every 10 records."""
    context = make_context(base, {"max-size": "1k", "max-file": "2"})
    follower = Follower(driver, context, LogQuery(follow=True, tail=0))
    await asyncio.sleep(0.2)  # following before the first record, which tail=0 would skip
    writer = driver.writer(context)
    written: list[LogRecord] = []
    try:
        for burst in range(30):
            batch = records(10, start=T0 + burst * NS)
            for record in batch:
                writer.write(record)
            written += batch
            await asyncio.sleep(0.15)
        writer.close()
        got = await follower.stop()
    finally:
        writer.close()
        follower.cancel()
    assert_same(got, written, "followed through 30 rotations")


async def test_stopped_right_after_the_last_write_loses_nothing(
    base: Path, driver: JsonFileDriver
) -> None:
    context = make_context(base, {"max-size": "3k", "max-file": "40", "compress": "true"})
    written = records(1000)
    got = await follow_while_writing(driver, context, LogQuery(follow=True), written)
    assert_same(got, written, "everything written before stopped")


async def test_follow_from_between_a_rename_and_the_new_file(
    base: Path, driver: JsonFileDriver
) -> None:
    """Only ``.1`` exists (the writer died mid-rotation): the follower shows it once, then
    what the next writer writes."""
    context = make_context(base, {"max-size": "1k", "max-file": "3"})
    old = records(10)
    await write_all(driver, context, old)
    log_path(context).rename(log_path(context).with_name(log_path(context).name + ".1"))
    new = records(5, start=T0 + 10 * NS)
    got = await follow_while_writing(driver, context, LogQuery(follow=True), new)
    assert_same(got, old + new, "each record once")


def open_files() -> int:
    return len(os.listdir("/proc/self/fd"))  # noqa: PTH208 - a count


async def test_a_reader_that_goes_away_leaves_no_open_file(
    base: Path, driver: JsonFileDriver
) -> None:
    context = make_context(base, {"max-size": "1k", "max-file": "5"})
    await write_all(driver, context, records(100))
    before = open_files()
    follower = Follower(driver, context, LogQuery(follow=True))
    await follower.wait_for(10)
    follower.cancel()
    with pytest.raises(asyncio.CancelledError):
        await follower.task
    assert open_files() == before


# -- damage


async def test_a_truncated_last_line_and_garbage_do_not_break_reading(
    base: Path, driver: JsonFileDriver
) -> None:
    context = make_context(base)
    good = records(3)
    await write_all(driver, context, good[:2])
    with log_path(context).open("ab") as f:
        f.write(b"\x00\x00 not json\n[1, 2]\n")
    await write_all(driver, context, good[2:])
    with log_path(context).open("ab") as f:
        f.write(b'{"log":"cut sho')  # the writer died mid-line
    assert_same(await collect(driver, context), good, "the whole records")
    assert_same(await collect(driver, context, LogQuery(tail=2)), good[1:], "tail")
    more = records(2, start=T0 + 10 * NS)
    await write_all(driver, context, more)  # the restarted container goes on
    assert_same(await collect(driver, context), good + more, "after a restart")
    assert file_text(context).count(b"\n") == 8  # 5 records, 2 garbage lines, the cut one


async def test_a_record_glued_to_garbage_is_recovered(base: Path, driver: JsonFileDriver) -> None:
    context = make_context(base)
    log_path(context).write_bytes(
        b'{"log":"cut sh{"log":"next\\n","stream":"stdout","attrs":{"a":"b"},'
        b'"time":"2025-01-01T00:00:00Z"}\n'
    )
    assert_same(await collect(driver, context), [LogRecord("stdout", b"next\n", T0)], "recovered")


# -- options


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"max-sise": "1m"}, "unknown log opt 'max-sise' for json-file log driver"),
        ({"mode": "non-blocking"}, "unknown log opt 'mode' for json-file log driver"),
        ({"max-size": "abc"}, "invalid size: 'abc'"),
        ({"max-size": "-5m"}, "invalid size: '-5m'"),
        ({"max-size": "0"}, "max-size must be a positive number"),
        ({"max-file": "three"}, 'strconv.Atoi: parsing "three": invalid syntax'),
        ({"max-file": "0"}, "max-file cannot be less than 1"),
        ({"compress": "yes"}, 'strconv.ParseBool: parsing "yes": invalid syntax'),
        (
            {"compress": "true", "max-file": "1"},
            "compress cannot be true when max-file is less than 2 or max-size is not set",
        ),
        ({"labels-regex": "("}, "error parsing regexp"),
        ({"tag": "{{.Nope}}"}, "can't evaluate field Nope"),
        ({"tag": "{{.ID | upper}}"}, "understands only {{.Field}} templates"),
    ],
)
def test_bad_options_are_refused_with_docker_s_messages(
    driver: JsonFileDriver, options: dict[str, str], message: str
) -> None:
    with pytest.raises(InvalidParameter) as caught:
        driver.validate_options(options)
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("options", "max_size", "max_file", "compress"),
    [
        ({}, 20_000_000, 5, False),
        ({"max-size": "10m"}, 10_000_000, 5, False),
        ({"max-size": "1.5k", "max-file": "+3"}, 1500, 3, False),
        ({"max-size": "2KB"}, 2000, 5, False),
        ({"max-size": "3 MiB"}, 3_000_000, 5, False),
        ({"max-size": "1g", "compress": "1"}, 10**9, 5, True),
        (
            {"max-file": "2"},
            20_000_000,
            2,
            False,
        ),  # Docker ignores it without max-size; here the default size applies
        (
            {"labels": "a,b", "env": "X", "tag": "{{.FullID}}", "env-regex": "^A"},
            20_000_000,
            5,
            False,
        ),
    ],
)
def test_good_options(
    driver: JsonFileDriver, options: dict[str, str], max_size: int, max_file: int, compress: bool
) -> None:
    driver.validate_options(options)
    policy = driver.config.rotation(options)
    assert (policy.max_size, policy.max_file, policy.compress) == (max_size, max_file, compress)


def test_configuration() -> None:
    assert JsonFileConfig().rotation({}).max_size == 20_000_000
    assert JsonFileConfig(max_size="-1").rotation({}).max_size == -1
    for bad, message in (
        ({"max_size": "big"}, "invalid size: 'big'"),
        ({"max_file": 0}, "max-file cannot be less than 1"),
        ({"max_size": "-1", "compress": True}, "compress cannot be true"),
        ({"max_file": 1, "compress": True}, "compress cannot be true"),
        ({"rotate": True}, "Extra inputs are not permitted"),
    ):
        with pytest.raises(ValidationError, match=message):
            JsonFileConfig(**bad)


async def test_unlimited_never_rotates(base: Path) -> None:
    driver = make_driver(JsonFileDriver, base / "d", JsonFileConfig(max_size="-1"))
    context = make_context(base)
    await write_all(driver, context, records(2000))
    assert log_files(context) == ["-json.log"]
