"""pydocker's container and volume commands against a real daemon: real containers,
streams, terminals and exit statuses."""

from __future__ import annotations

import json
import socket
import subprocess
import time
from pathlib import Path

import pytest
from pydockerd.testing.daemon import DaemonProcess
from pydockerd.testing.pytest_plugin import DaemonFactory

from client.tests.e2e import PYDOCKER, pydocker
from client.tests.fakeengine import Terminal

pytestmark = pytest.mark.privileged


def test_run_rm_prints_hi_and_leaves_nothing(engine: DaemonProcess) -> None:
    result = pydocker(engine, "run", "--rm", "--name", "once", "busybox", "echo", "hi")
    assert (result.returncode, result.stdout, result.stderr) == (0, "hi\n", "")
    assert pydocker(engine, "ps", "-a", "-q").stdout == ""


def test_exit_status_and_streams(engine: DaemonProcess) -> None:
    assert pydocker(engine, "run", "busybox", "sh", "-c", "exit 3").returncode == 3
    both = pydocker(engine, "run", "--rm", "busybox", "sh", "-c", "echo out; echo err >&2")
    assert (both.returncode, both.stdout, both.stderr) == (0, "out\n", "err\n")
    missing = pydocker(engine, "run", "--rm", "busybox", "nosuchcommand")
    assert missing.returncode == 127, missing.stderr
    assert missing.stderr.startswith("pydocker: Error response from daemon: ")
    assert "Run 'pydocker run --help' for more information" in missing.stderr


def test_piped_stdin_reaches_the_process_and_ends(engine: DaemonProcess) -> None:
    result = pydocker(engine, "run", "-i", "--rm", "busybox", "cat", stdin="x\n")
    assert (result.returncode, result.stdout) == (0, "x\n"), result.stderr
    lines = "".join(f"line {n}\n" for n in range(20000))
    counted = pydocker(engine, "run", "-i", "--rm", "busybox", "wc", "-l", stdin=lines)
    assert counted.stdout.strip() == "20000", counted.stderr


def test_run_it_is_an_interactive_shell_on_a_terminal(engine: DaemonProcess) -> None:
    term = Terminal(
        [*PYDOCKER, "-H", engine.host, "run", "-it", "--rm", "busybox", "sh"], rows=33, cols=91
    )
    term.expect("# ")
    term.send("[ -t 0 ] && echo is-a-tty; stty size; echo $((6*7))\r")
    screen = term.expect("42")
    assert "is-a-tty" in screen
    assert "33 91" in screen
    term.resize(40, 120)
    time.sleep(0.5)
    term.send("stty size\r")
    assert "40 120" in term.expect("40 120")
    term.send("exit 7\r")
    assert term.wait() == 7


def test_detach_keys_leave_the_container_running(engine: DaemonProcess) -> None:
    term = Terminal([*PYDOCKER, "-H", engine.host, "run", "-it", "--name", "bg", "busybox", "sh"])
    term.expect("# ")
    term.send(b"\x10\x11")
    assert term.wait() == 0
    state = pydocker(engine, "inspect", "-f", "{{.State.Running}}", "bg")
    assert state.stdout == "true\n", state.stderr
    assert pydocker(engine, "rm", "-f", "bg").stdout == "bg\n"


def test_detached_logs_exec_stop_rm(engine: DaemonProcess) -> None:
    started = pydocker(
        engine,
        "run",
        "-d",
        "--name",
        "web",
        "busybox",
        "sh",
        "-c",
        "for i in 1 2 3; do echo tick $i; sleep 0.3; done; echo oops >&2; sleep 60",
    )
    assert started.returncode == 0, started.stderr
    container_id = started.stdout.strip()
    assert len(container_id) == 64
    deadline = time.monotonic() + 15
    while "oops" not in pydocker(engine, "logs", "web").stderr:
        assert time.monotonic() < deadline, "no output"
        time.sleep(0.2)
    logs = pydocker(engine, "logs", "web")
    assert (logs.stdout, logs.stderr) == ("tick 1\ntick 2\ntick 3\n", "oops\n")
    tail = pydocker(engine, "logs", "--tail", "2", "-t", "web")
    assert tail.stdout.endswith("Z tick 3\n")
    assert tail.stderr.endswith("Z oops\n")
    assert tail.stdout[:4].isdigit()
    executed = pydocker(engine, "exec", "web", "sh", "-c", "echo inside; exit 4")
    assert (executed.returncode, executed.stdout) == (4, "inside\n")
    piped = pydocker(engine, "exec", "-i", "web", "cat", stdin="through exec\n")
    assert piped.stdout == "through exec\n"
    follow = subprocess.Popen(
        [*PYDOCKER, "-H", engine.host, "logs", "-f", "web"], stdout=subprocess.PIPE, text=True
    )
    assert pydocker(engine, "stop", "-t", "1", "web").stdout == "web\n"
    out, _ = follow.communicate(timeout=30)  # follow ends when the container stops
    assert out.startswith("tick 1\n")
    assert pydocker(engine, "wait", "web").stdout == "137\n"
    assert pydocker(engine, "rm", "web").stdout == "web\n"
    gone = pydocker(engine, "inspect", "web")
    assert gone.returncode == 1


def test_ps_columns_and_formats(engine: DaemonProcess) -> None:
    assert (
        pydocker(
            engine, "run", "-d", "--name", "up", "-l", "team=a", "busybox", "sleep", "60"
        ).returncode
        == 0
    )
    assert pydocker(engine, "create", "--name", "made", "busybox", "true").returncode == 0
    running = pydocker(engine, "ps").stdout.splitlines()
    header, row = running[0], running[1]
    assert header.split() == [
        "CONTAINER",
        "ID",
        "IMAGE",
        "COMMAND",
        "CREATED",
        "STATUS",
        "PORTS",
        "NAMES",
    ]
    assert len(running) == 2
    assert row.startswith(row.split()[0] + "   busybox ")
    assert len(row.split()[0]) == 12
    assert row[header.index("COMMAND") :].startswith('"sleep 60"')
    assert row[header.index("NAMES") :] == "up"
    everything = pydocker(engine, "ps", "-a", "--format", '{{.Names}} {{.State}} {{.Label "team"}}')
    assert sorted(everything.stdout.splitlines()) == ["made created ", "up running a"]
    as_json = [
        json.loads(line) for line in pydocker(engine, "ps", "--format", "json").stdout.splitlines()
    ]
    assert [row["Names"] for row in as_json] == ["up"]
    assert as_json[0]["Labels"] == "team=a"
    assert pydocker(engine, "ps", "-q", "--filter", "name=made", "-a").stdout.strip() != ""
    top = pydocker(engine, "top", "up")
    assert "sleep 60" in top.stdout
    stats = pydocker(engine, "stats", "--no-stream", "up").stdout.splitlines()
    assert stats[0].startswith("CONTAINER ID   NAME      CPU %     MEM USAGE / LIMIT")
    assert stats[1].split()[1] == "up"
    assert pydocker(engine, "pause", "up").stdout == "up\n"
    assert pydocker(engine, "ps", "--format", "{{.Status}}").stdout.strip().endswith("(Paused)")
    assert pydocker(engine, "unpause", "up").stdout == "up\n"
    assert pydocker(engine, "rename", "up", "renamed").returncode == 0
    assert pydocker(engine, "rm", "-f", "renamed", "made").stdout == "renamed\nmade\n"


def test_volume_commands(engine: DaemonProcess) -> None:
    assert pydocker(engine, "volume", "create", "--label", "a=b", "data").stdout == "data\n"
    anonymous = pydocker(engine, "volume", "create").stdout.strip()
    assert len(anonymous) == 64
    listing = pydocker(engine, "volume", "ls").stdout.splitlines()
    assert listing[0] == "DRIVER    VOLUME NAME"
    assert sorted(line.split() for line in listing[1:]) == sorted(
        [["local", "data"], ["local", anonymous]]
    )
    info = json.loads(pydocker(engine, "volume", "inspect", "data").stdout)[0]
    assert (info["Name"], info["Driver"], info["Labels"]) == ("data", "local", {"a": "b"})
    written = pydocker(
        engine, "run", "--rm", "-v", "data:/data", "busybox", "sh", "-c", "echo kept > /data/f"
    )
    assert written.returncode == 0, written.stderr
    read = pydocker(
        engine, "run", "--rm", "--mount", "type=volume,src=data,dst=/d", "busybox", "cat", "/d/f"
    )
    assert read.stdout == "kept\n", read.stderr
    assert pydocker(engine, "volume", "ls", "-q", "--filter", "label=a=b").stdout == "data\n"
    assert pydocker(engine, "volume", "rm", "data").stdout == "data\n"
    pruned = pydocker(engine, "volume", "prune", "-f")
    assert pruned.stdout.startswith(f"Deleted Volumes:\n{anonymous}\n")
    assert pydocker(engine, "volume", "ls", "-q").stdout == ""


def test_attach_over_tcp(daemon_factory: DaemonFactory, busybox_tar: Path) -> None:
    """The hijacked connection goes over the transport the client uses, TCP too."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    daemon = daemon_factory("-H", f"tcp://127.0.0.1:{port}")
    assert pydocker(daemon, "load", "-i", str(busybox_tar)).returncode == 0
    result = subprocess.run(
        [
            *PYDOCKER,
            "-H",
            f"tcp://127.0.0.1:{port}",
            "run",
            "--rm",
            "-i",
            "busybox",
            "sh",
            "-c",
            "cat; exit 2",
        ],
        input="over tcp\n",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (result.returncode, result.stdout, result.stderr) == (2, "over tcp\n", "")


def test_exec_it_start_a_and_attach(engine: DaemonProcess) -> None:
    assert pydocker(engine, "run", "-d", "--name", "box", "busybox", "sleep", "60").returncode == 0
    term = Terminal([*PYDOCKER, "-H", engine.host, "exec", "-it", "box", "sh"], rows=20, cols=70)
    term.expect("# ")
    term.send("stty size; exit 3\r")
    assert term.wait() == 3
    assert "20 70" in term.output.decode()
    made = pydocker(engine, "create", "--name", "once", "busybox", "sh", "-c", "echo ran; exit 6")
    assert made.returncode == 0, made.stderr
    started = pydocker(engine, "start", "-a", "once")
    assert (started.returncode, started.stdout) == (6, "ran\n")
    late = pydocker(
        engine, "run", "-d", "--name", "late", "busybox", "sh", "-c", "sleep 2; echo late; exit 5"
    )
    assert late.returncode == 0
    attached = pydocker(engine, "attach", "late")
    assert (attached.returncode, attached.stdout) == (5, "late\n"), attached.stderr
    assert pydocker(engine, "rm", "-f", "box", "once", "late").returncode == 0
