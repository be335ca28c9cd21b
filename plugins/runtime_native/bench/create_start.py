"""How long the native runtime takes to create and start a container running ``true``, and to
delete it: ``python plugins/runtime_native/bench/create_start.py [runs]`` (as root).

It drives the runtime as the supervisor does, with the conformance kit's harness and its
busybox root. A measurement, not a test: nothing here passes or fails.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time

from pydockerd.testing.drivers import make_driver
from pydockerd.testing.runtime import (
    make_busybox_root,
    runtime_directory,
    supervised,
)
from pydockerd_runtime_native.driver import NativeRuntime


async def measure(runs: int) -> None:
    with runtime_directory() as directory:
        root = make_busybox_root(directory / "rootfs")
        runtime = make_driver(NativeRuntime, directory / "runtime")
        async with supervised(runtime, root) as supervisor:
            create, start, delete = [], [], []
            for _ in range(runs):
                spec = supervisor.spec("true")
                begin = time.perf_counter()
                process = await supervisor.create(spec)
                created = time.perf_counter()
                await supervisor.start(spec.id)
                started = time.perf_counter()
                if await process.wait() != 0:
                    raise SystemExit("true did not exit 0")
                deleting = time.perf_counter()
                await supervisor.delete(spec.id)
                create.append(created - begin)
                start.append(started - created)
                delete.append(time.perf_counter() - deleting)
    for name, values in (("create", create), ("start", start), ("delete", delete)):
        print(
            f"{name:7} median {statistics.median(values) * 1000:6.2f} ms"
            f"   best {min(values) * 1000:6.2f} ms"
        )


if __name__ == "__main__":
    asyncio.run(measure(int(sys.argv[1]) if len(sys.argv) > 1 else 50))
