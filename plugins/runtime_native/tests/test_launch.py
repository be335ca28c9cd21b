"""The forked child's parent side: killing a child that never reached the supervisor."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from pathlib import Path

import pytest
from pydockerd.plugin import Resources
from pydockerd_runtime_native.cgroups import Layout
from pydockerd_runtime_native.launch import Child

V1 = Path("/sys/fs/cgroup/freezer/cgroup.procs").exists()


def reaped(pid: int) -> bool:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return True
    return False


async def test_kill_reaps_the_child(sleeper: int) -> None:
    pid = sleeper
    await asyncio.wait_for(Child(pid, -1, -1).kill(), 10)
    assert reaped(pid)
    await Child(pid, -1, -1).kill()  # reaped already: not an error


@pytest.mark.skipif(not V1, reason="no cgroup v1 freezer here (v2 lets SIGKILL through)")
@pytest.mark.privileged
async def test_kill_of_a_child_that_cannot_die_yet_leaves_the_loop_running(
    parent: str, sleeper: int
) -> None:
    """A frozen child (v1 freezer) dies only once thawed, as one in uninterruptible sleep
    only once it wakes: meanwhile the event loop goes on."""
    cgroup = Layout.detect("1").cgroup(f"{parent}/c")
    cgroup.create(Resources(), [])
    pid = sleeper
    try:
        cgroup.add(pid)
        cgroup.set_frozen(True)
        deadline = time.monotonic() + 5
        while not cgroup.frozen():
            assert time.monotonic() < deadline, "not frozen after 5 s"
            await asyncio.sleep(0.01)
        killing = asyncio.create_task(Child(pid, -1, -1).kill())
        await asyncio.sleep(0.2)  # the loop runs while the child cannot die
        assert not killing.done()
        cgroup.set_frozen(False)
        await asyncio.wait_for(killing, 10)
        assert reaped(pid)
    finally:
        with contextlib.suppress(OSError):
            cgroup.set_frozen(False)
        await asyncio.wait_for(Child(pid, -1, -1).kill(), 10)
        cgroup.remove()
