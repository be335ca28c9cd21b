"""How long the bridge driver takes to join a container to a network, and to leave it (while
the container runs, and after it died): ``python network_drivers/bridge/bench/join_leave.py
[runs]`` (as root).

Containers are the conformance kit's (``unshare --net sleep infinity``), on one network of a
throwaway table. A measurement, not a test: nothing here passes or fails.
"""

from __future__ import annotations

import asyncio
import secrets
import statistics
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

from loguru import logger
from pydockerd.testing.drivers import make_driver
from pydockerd.testing.network import network_lab
from pydockerd_network_bridge.driver import BridgeConfig, BridgeDriver


async def measure(runs: int) -> None:
    token = secrets.token_hex(3)
    config = BridgeConfig(firewall_table=f"pdbench_{token}")
    timings: dict[str, list[float]] = {"join": [], "leave": [], "leave, dead": []}
    with tempfile.TemporaryDirectory(prefix="pdbench-") as directory:
        make = partial(make_driver, BridgeDriver, Path(directory), config)
        async with network_lab(make, token) as lab:
            network = await lab.create()
            for run in range(runs):
                container = await lab.container()
                endpoint = lab.endpoint(network, container)
                begin = time.perf_counter()
                await lab.driver.join(network, endpoint, container.netns)
                joined = time.perf_counter()
                dead = run % 2 == 1
                if dead:
                    container.stop()
                await lab.driver.leave(network, endpoint, None if dead else container.netns)
                timings["join"].append(joined - begin)
                timings["leave, dead" if dead else "leave"].append(time.perf_counter() - joined)
                container.stop()
    for name, values in timings.items():
        print(
            f"{name:12} median {statistics.median(values) * 1000:6.2f} ms"
            f"   best {min(values) * 1000:6.2f} ms   worst {max(values) * 1000:6.2f} ms"
        )


if __name__ == "__main__":
    logger.remove()
    asyncio.run(measure(int(sys.argv[1]) if len(sys.argv) > 1 else 50))
