"""Containers outlive the daemon: SIGKILL or SIGTERM it, start it again, and every container
is where it was; exits that happened meanwhile keep their codes; restart policies hold; a
supervisor that dies takes its containers with it and the daemon says so."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydockerd.testing.daemon import DaemonProcess

from tests.helpers import DOCKER, busybox_daemon, leftovers, wait_for

pytestmark = pytest.mark.privileged


@pytest.fixture
def engine(busybox_tar: Path) -> Iterator[DaemonProcess]:
    """A daemon of this test alone (the tests restart it), with busybox."""
    with busybox_daemon(busybox_tar, env={"PYDOCKERD_SUPERVISOR_IDLE_TIMEOUT": "1"}) as daemon:
        yield daemon


def run(engine: DaemonProcess, *args: str) -> tuple[int, str, str]:
    result = subprocess.run(
        [DOCKER, *args], env=engine.env, capture_output=True, text=True, timeout=60, check=False
    )
    return result.returncode, result.stdout, result.stderr


def state(engine: DaemonProcess, name: str) -> dict[str, Any]:
    code, out, err = run(engine, "inspect", "--format", "{{json .State}}", name)
    assert code == 0, err
    result: dict[str, Any] = json.loads(out)
    return result


@pytest.mark.parametrize("kill", [True, False], ids=["SIGKILL", "SIGTERM"])
def test_a_detached_container_survives_the_daemon(engine: DaemonProcess, kill: bool) -> None:
    code, out, err = run(
        engine,
        "run",
        "-d",
        "--name",
        "keeper",
        "busybox",
        "sh",
        "-c",
        "trap 'echo stopping; exit 0' TERM; i=0;"
        " while true; do echo line $i; i=$((i+1)); sleep 0.1; done",
    )
    assert code == 0, err
    container_id = out.strip()
    pid = state(engine, "keeper")["Pid"]
    engine.restart(kill=kill)
    assert state(engine, "keeper")["Pid"] == pid
    assert Path(f"/proc/{pid}").exists()
    code, out, _ = run(engine, "ps", "--format", "{{.Names}} {{.Status}}")
    assert out.startswith("keeper Up ")
    lines = run(engine, "logs", "keeper")[1].splitlines()
    time.sleep(0.5)
    assert len(run(engine, "logs", "keeper")[1].splitlines()) > len(lines)  # still logging
    assert run(engine, "exec", "keeper", "echo", "reachable") == (0, "reachable\n", "")
    assert run(engine, "stop", "keeper") == (0, "keeper\n", "")
    assert run(engine, "logs", "--tail", "1", "keeper")[1] == "stopping\n"
    assert run(engine, "wait", "keeper") == (0, "0\n", "")
    assert run(engine, "rm", "keeper")[0] == 0
    assert leftovers(container_id, engine.cgroup_parent) == []


def test_an_exit_while_the_daemon_is_down_keeps_its_code(engine: DaemonProcess) -> None:
    code, _, err = run(
        engine,
        "run",
        "-d",
        "--name",
        "quitter",
        "busybox",
        "sh",
        "-c",
        "sleep 1; echo done; exit 42",
    )
    assert code == 0, err
    engine.kill()
    time.sleep(2)  # it exits while nobody watches but the supervisor
    engine.restart()
    wait_for(lambda: state(engine, "quitter")["Status"] == "exited", what="the exit")
    assert state(engine, "quitter")["ExitCode"] == 42
    assert run(engine, "logs", "quitter")[1] == "done\n"
    assert run(engine, "wait", "quitter") == (0, "42\n", "")


def test_restart_policies_survive_a_daemon_restart(engine: DaemonProcess) -> None:
    assert (
        run(
            engine,
            "run",
            "-d",
            "--name",
            "always",
            "--restart",
            "always",
            "busybox",
            "sleep",
            "1000",
        )[0]
        == 0
    )
    assert (
        run(
            engine,
            "run",
            "-d",
            "--name",
            "unless",
            "--restart",
            "unless-stopped",
            "busybox",
            "sleep",
            "1000",
        )[0]
        == 0
    )
    assert run(engine, "stop", "-t", "0", "always", "unless")[0] == 0
    engine.restart(kill=True)
    # Docker's rules: `always` starts with the daemon even after a manual stop,
    # `unless-stopped` stays stopped
    wait_for(lambda: state(engine, "always")["Status"] == "running", what="always to run")
    assert state(engine, "unless")["Status"] == "exited"
    pid = state(engine, "always")["Pid"]
    os.kill(pid, signal.SIGKILL)  # the policy restarts it, as before the daemon restart
    wait_for(
        lambda: (
            state(engine, "always")["Status"] == "running" and state(engine, "always")["Pid"] != pid
        ),
        what="the policy to restart it",
    )


def test_a_killed_supervisor_takes_its_containers_and_the_daemon_records_it(
    engine: DaemonProcess,
) -> None:
    code, out, err = run(engine, "run", "-d", "--name", "orphan", "busybox", "sleep", "1000")
    assert code == 0, err
    container_id = out.strip()
    pid = state(engine, "orphan")["Pid"]
    supervisor = engine.supervisor_pid()
    assert supervisor is not None
    os.kill(supervisor, signal.SIGKILL)
    wait_for(lambda: not Path(f"/proc/{pid}").exists(), what="the container to die with it")
    wait_for(lambda: state(engine, "orphan")["Status"] == "exited", what="the daemon to notice")
    assert state(engine, "orphan")["ExitCode"] == 255
    assert "supervisor" in state(engine, "orphan")["Error"]
    assert run(engine, "rm", "orphan")[0] == 0
    assert leftovers(container_id, engine.cgroup_parent) == []


def test_the_supervisor_leaves_when_idle_and_comes_back(engine: DaemonProcess) -> None:
    assert run(engine, "run", "--rm", "busybox", "true")[0] == 0
    wait_for(lambda: engine.supervisor_pid() is None, timeout=15, what="the supervisor to leave")
    assert run(engine, "run", "--rm", "busybox", "echo", "again") == (0, "again\n", "")


@pytest.mark.parametrize("auto_remove", [False, True], ids=["kept", "--rm"])
def test_a_start_that_fails_after_create_leaves_the_supervisor_idle(
    engine: DaemonProcess, auto_remove: bool
) -> None:
    """A port already taken fails the start once the process exists: its exit must not stay
    held in the supervisor, which then could never go idle."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        args = ["run", *(["--rm"] if auto_remove else []), "-p", f"127.0.0.1:{port}:80"]
        code, _, err = run(engine, *args, "busybox", "true")
    assert code == 125
    assert "port is already allocated" in err
    wait_for(lambda: engine.supervisor_pid() is None, 15, "the supervisor to exit, idle")
    code, out, _ = run(engine, "ps", "-aq")
    assert bool(out.strip()) is not auto_remove
