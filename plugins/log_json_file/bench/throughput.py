"""Throughput of the json-file driver: the writer's lines per second (and CPU per line), and
``tail`` of the last 100 lines of a 100 MB log.

Run: ``.venv/bin/python plugins/log_json_file/bench/throughput.py [directory]``
(a directory on the disk to measure; by default a new one under /tmp, removed afterwards).
"""

from __future__ import annotations

import asyncio
import shutil
import sys
import tempfile
import time
from pathlib import Path

from pydockerd.plugin import LogContext, LogQuery, LogRecord
from pydockerd.testing.drivers import make_driver
from pydockerd.testing.logs import collect
from pydockerd_log_json_file.driver import JsonFileConfig, JsonFileDriver, log_path

LINE = b"2025-01-01 12:00:00.000 INFO  request handled path=/api/v1/items status=200 took=3ms\n"
"""An 85-byte line: what a web server logs."""
CHUNK_LINES = 700
"""Lines the supervisor gets in one 64 KiB read of a busy pipe."""


def context(base: Path, name: str) -> LogContext:
    log_dir = base / name
    log_dir.mkdir(parents=True)
    return LogContext(name.ljust(64, "0"), f"/{name}", "busybox", log_dir)


async def write(driver: JsonFileDriver, ctx: LogContext, lines: int, per_turn: int) -> float:
    """Write ``lines`` records, ``per_turn`` per turn of the loop (as the supervisor gets
    them from a pipe); seconds of CPU."""
    writer = driver.writer(ctx)
    now = time.time_ns()
    cpu = time.process_time()
    for i in range(0, lines, per_turn):
        for j in range(per_turn):
            writer.write(LogRecord("stdout", LINE, now + i + j))
        await asyncio.sleep(0)
    writer.close()
    return time.process_time() - cpu


async def main(base: Path) -> None:
    unbounded = make_driver(JsonFileDriver, base / "driver", JsonFileConfig(max_size="-1"))
    default = make_driver(JsonFileDriver, base / "default")
    assert isinstance(unbounded, JsonFileDriver)
    assert isinstance(default, JsonFileDriver)
    lines = 500_000
    for label, driver, per_turn in (
        ("bursts of 700 lines, no rotation", unbounded, CHUNK_LINES),
        ("bursts of 700 lines, rotated 20m x 5", default, CHUNK_LINES),
        ("one line per loop turn", unbounded, 1),
    ):
        ctx = context(base, f"w{per_turn}{driver is default}")
        started = time.perf_counter()
        cpu = await write(driver, ctx, lines, per_turn)
        wall = time.perf_counter() - started
        print(
            f"writer, {label}: {lines / wall:,.0f} lines/s, {cpu / lines * 1e6:.2f} us CPU per line"
        )

    ctx = context(base, "big")
    size = 100 * 10**6
    await write(unbounded, ctx, size // (len(LINE) + 75), CHUNK_LINES)
    megabytes = log_path(ctx).stat().st_size / 1e6
    for tail in (100, 10_000):
        started = time.perf_counter()
        got = await collect(unbounded, ctx, LogQuery(tail=tail))
        elapsed = time.perf_counter() - started
        assert len(got) == tail
        print(f"tail {tail} of a {megabytes:.0f} MB log: {elapsed * 1000:.1f} ms")
    started = time.perf_counter()
    count = len(await collect(unbounded, ctx, limit=600))
    elapsed = time.perf_counter() - started
    print(f"reading all of it: {count:,} records in {elapsed:.1f} s ({count / elapsed:,.0f}/s)")


if __name__ == "__main__":
    if len(sys.argv) > 1:
        asyncio.run(main(Path(sys.argv[1])))
    else:
        directory = Path(tempfile.mkdtemp(prefix="pdb-", dir="/tmp"))
        try:
            asyncio.run(main(directory))
        finally:
            shutil.rmtree(directory, ignore_errors=True)
