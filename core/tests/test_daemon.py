"""The daemon's hold on its roots, its engine ID, what it creates on disk, and ``--validate``."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydockerd.daemon import Daemon
from pydockerd.errors import ConfigError

from .conftest import MakeDaemon, settings_for


def tree(path: Path) -> list[str]:
    """Everything under ``path``."""
    return sorted(str(p) for p in path.rglob("*"))


HOLDER = """
import asyncio, sys
from pathlib import Path
from pydockerd.daemon import Daemon
from pydockerd.settings import DaemonSettings

async def main():
    daemon = Daemon(DaemonSettings(data_root=Path(sys.argv[1]), exec_root=Path(sys.argv[2])))
    await daemon.initialize()
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    await daemon.close()

asyncio.run(main())
"""


@pytest.fixture
def holder(roots: Path) -> Iterator[subprocess.Popen[str]]:
    """Another process running a daemon on ``roots/data`` and ``roots/held-exec``."""
    process = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(roots / "data"), str(roots / "held-exec")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "ready"
        yield process
    finally:
        process.kill()
        process.wait()


async def test_a_second_daemon_on_a_held_data_root_names_the_other_pid(
    holder: subprocess.Popen[str], roots: Path
) -> None:
    daemon = Daemon(settings_for(roots, 1))  # its own exec-root, the holder's data-root
    try:
        with pytest.raises(ConfigError) as caught:
            await daemon.initialize()
    finally:
        await daemon.close()
    assert str(caught.value) == (
        f"another pydockerd (pid {holder.pid}) is using the data-root {roots / 'data'}; "
        "give this daemon its own --data-root and --exec-root"
    )


async def test_a_second_daemon_on_a_held_exec_root_names_the_other_pid(
    holder: subprocess.Popen[str], roots: Path
) -> None:
    daemon = Daemon(
        settings_for(roots, data_root=roots / "own-data", exec_root=roots / "held-exec")
    )
    try:
        with pytest.raises(ConfigError) as caught:
            await daemon.initialize()
    finally:
        await daemon.close()
    assert f"another pydockerd (pid {holder.pid}) is using the exec-root {roots / 'held-exec'}" in (
        str(caught.value)
    )


async def test_the_roots_are_free_again_after_close(make_daemon: MakeDaemon, roots: Path) -> None:
    first = await make_daemon()
    with pytest.raises(ConfigError, match=rf"\(pid {os.getpid()}\) is using the data-root"):
        await make_daemon()
    await first.close()
    await make_daemon()
    assert (roots / "data" / "pydockerd.lock").read_text() == f"{os.getpid()}\n"


async def test_the_engine_id_persists(make_daemon: MakeDaemon, roots: Path) -> None:
    first = await make_daemon()
    assert (roots / "data" / "engine-id").read_text() == f"{first.id}\n"
    await first.close()
    second = await make_daemon()
    assert second.id == first.id != ""
    await second.close()
    (roots / "data" / "engine-id").unlink()
    third = await make_daemon()
    assert third.id not in ("", first.id)


async def test_what_a_started_daemon_creates(make_daemon: MakeDaemon, roots: Path) -> None:
    daemon = await make_daemon(storage_driver="vfs")
    data, exec_root = roots / "data", roots / "exec0"
    assert stat.S_IMODE(data.stat().st_mode) == 0o711
    assert stat.S_IMODE(exec_root.stat().st_mode) == 0o700
    assert (exec_root / "pydockerd.pid").read_text() == f"{os.getpid()}\n"
    assert stat.S_IMODE((data / "tmp").stat().st_mode) == 0o700
    assert (data / "storage" / "vfs").is_dir(), "the chosen driver's state directory"
    assert not (data / "storage" / "overlay").exists(), "no other driver's"
    assert daemon.storage is not None
    assert daemon.storage.component.name == "vfs"


async def test_the_scratch_directory_is_emptied_at_start(
    make_daemon: MakeDaemon, roots: Path
) -> None:
    first = await make_daemon()
    (roots / "data" / "tmp" / "left-by-a-crash").mkdir()
    await first.close()
    await make_daemon()
    assert list((roots / "data" / "tmp").iterdir()) == []


async def test_validate_only_creates_nothing_on_disk(roots: Path) -> None:
    data = roots / "a" / "data"
    daemon = Daemon(settings_for(roots, data_root=data, exec_root=roots / "a" / "exec"))
    try:
        await daemon.initialize(validate_only=True)
        assert daemon.storage is not None
        assert daemon.storage.component.status == "ok"
        assert daemon.id == ""
        statuses = {(c.kind, c.name): c.status for c in daemon.manager.components}
        assert statuses[("storage", "vfs")] == statuses[("network", "host")] == "ok"
    finally:
        await daemon.close()
    assert tree(roots) == []


async def test_validate_only_leaves_an_existing_data_root_as_it_was(roots: Path) -> None:
    data = roots / "data"
    (data / "storage" / "vfs").mkdir(parents=True)
    before = tree(roots)
    daemon = Daemon(settings_for(roots, storage_driver="vfs"))
    try:
        await daemon.initialize(validate_only=True)
    finally:
        await daemon.close()
    assert tree(roots) == before


async def test_a_configuration_that_cannot_work_is_refused(roots: Path) -> None:
    daemon = Daemon(settings_for(roots, storage_driver="zfs"))
    try:
        with pytest.raises(ConfigError, match=r"'zfs' is not installed \(installed: overlay, vfs"):
            await daemon.initialize()
    finally:
        await daemon.close()


async def test_emit_records_and_returns_the_event(make_daemon: MakeDaemon) -> None:
    daemon = await make_daemon()
    event = daemon.emit("network", "create", "n1", name="front")
    assert (event.type, event.action, event.actor_id) == ("network", "create", "n1")
    assert event.attributes == {"name": "front"}
    assert daemon.events.history(since_ns=None) == [event]


def test_dns_code_is_imported_only_when_a_network_needs_a_server() -> None:
    code = (
        "import sys\n"
        "import pydockerd.daemon\n"
        "from pydockerd.daemon import _dns_server\n"
        "print('dns' in sys.modules, 'pydockerd.networks.dns' in sys.modules)\n"
        "server = _dns_server('127.0.0.1', lambda name: None, [], port=0)\n"
        "print(type(server).__module__)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.split("\n")[:2] == ["False False", "pydockerd.networks.dns"]
