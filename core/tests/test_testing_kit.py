"""The daemon test kit's own safety: it never signals a process that is not the daemon's,
and it never waits forever for one to end (no daemon is started here)."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from pydockerd.testing.daemon import (
    DaemonNetwork,
    DaemonProcess,
    DaemonStartError,
    end_process,
    start_daemon,
)

HOLD_LOCK = """
import fcntl, os, sys
lock = open(sys.argv[1], "a+")
fcntl.flock(lock, fcntl.LOCK_EX)
lock.seek(0)
lock.truncate()
lock.write(f"{os.getpid()}\\n")
lock.flush()
print("held", flush=True)
sys.stdin.read()
"""


def kit_daemon(base: Path) -> DaemonProcess:
    """A :class:`DaemonProcess` over ``base`` with no process: only its paths are used."""
    return DaemonProcess(
        base_dir=base,
        socket_path=base / "pydockerd.sock",
        data_root=base / "data",
        exec_root=base / "exec",
        log_path=base / "daemon.log",
        process=None,  # type: ignore[arg-type]
        notify_socket=None,  # type: ignore[arg-type]
    )


def test_supervisor_pid_is_the_holder_of_the_lock_only(short_tmp: Path) -> None:
    daemon = kit_daemon(short_tmp)
    lock = daemon.exec_root / "supervisor" / "supervisor.lock"
    lock.parent.mkdir(parents=True)
    assert daemon.supervisor_pid() is None, "no lock file"
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        lock.write_text(f"{sleeper.pid}\n")  # a live process, as after pid reuse
        assert daemon.supervisor_pid() is None, "a pid nobody holds the lock for"
    finally:
        sleeper.kill()
        sleeper.wait()
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(lock)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline() == "held\n"
        assert daemon.supervisor_pid() == holder.pid
        assert daemon.supervisor_pid() == holder.pid, "asking does not take the lock away"
    finally:
        holder.communicate("")
    assert daemon.supervisor_pid() is None, "the holder is gone, its pid stays in the file"


@pytest.mark.timeout(60)
def testend_process_counts_a_zombie_as_gone() -> None:
    child = subprocess.Popen(["sleep", "60"])  # not reaped until wait(): a zombie once ended
    try:
        started = time.monotonic()
        end_process(child.pid, timeout=20)
        assert time.monotonic() - started < 10
    finally:
        child.kill()
        child.wait()
    assert child.returncode == -15


@pytest.mark.timeout(60)
def testend_process_kills_what_ignores_sigterm_and_is_bounded() -> None:
    code = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN);"
    code += " print('ready', flush=True); time.sleep(60)"
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        assert child.stdout.readline() == "ready\n"
        started = time.monotonic()
        end_process(child.pid, timeout=0.5)
        assert time.monotonic() - started < 5
    finally:
        child.kill()
        child.wait()
    assert child.returncode == -9


def open_files() -> set[str]:
    """What this process has open (sockets show as ``socket:[inode]``)."""
    found = set()
    for fd in Path("/proc/self/fd").iterdir():
        try:
            found.add(str(fd.readlink()))
        except OSError:
            continue  # the listing's own descriptor
    return found


def test_a_daemon_that_cannot_be_started_leaves_no_lock_nor_socket(short_tmp: Path) -> None:
    before = open_files()
    with pytest.raises(FileNotFoundError) as caught:
        start_daemon(base_dir=short_tmp / "d", python=short_tmp / "no-such-python")
    # closed by start_daemon, not by the garbage collector: the traceback still holds them
    assert caught.tb is not None
    assert open_files() == before, "the network number's lock and the notify socket are closed"


def test_no_network_number_leaves_no_socket(
    short_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def taken(cls: type[DaemonNetwork], *, with_bridge_driver: bool) -> DaemonNetwork:
        raise DaemonStartError("no free test network number (100 to 249 are all taken)")

    monkeypatch.setattr(DaemonNetwork, "take", classmethod(taken))
    before = open_files()
    with pytest.raises(DaemonStartError, match="no free test network number") as caught:
        start_daemon(base_dir=short_tmp / "d")
    assert caught.tb is not None  # holds start_daemon's frame
    assert open_files() == before, "the notify socket is closed"
    assert (short_tmp / "d").is_dir(), "a directory of the caller's stays"

    made: list[str] = []

    def mkdtemp(**kwargs: str) -> str:
        made.append(make_temporary(**kwargs))
        return made[-1]

    make_temporary = tempfile.mkdtemp
    monkeypatch.setattr(tempfile, "mkdtemp", mkdtemp)
    with pytest.raises(DaemonStartError):
        start_daemon()
    assert len(made) == 1
    assert not Path(made[0]).exists(), "the directory it made is removed"
