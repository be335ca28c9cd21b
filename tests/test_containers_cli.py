"""The real docker CLI runs containers on pydockerd: the lifecycle, streams, terminals, exit
codes, isolation, limits, volumes, and nothing left behind after ``rm``."""

from __future__ import annotations

import json
import re
import subprocess
import tarfile
import time
from pathlib import Path
from typing import Any

import pytest
from pydockerd.testing.daemon import DaemonProcess

from tests.helpers import DOCKER, Terminal, leftovers, wait_for

pytestmark = pytest.mark.privileged


def run(engine: DaemonProcess, *args: str, stdin: str | None = None) -> tuple[int, str, str]:
    """The docker CLI against ``engine``: exit status, stdout, stderr."""
    result = subprocess.run(
        [DOCKER, *args],
        env=engine.env,
        capture_output=True,
        text=True,
        timeout=60,
        input=stdin,
        check=False,
    )
    return result.returncode, result.stdout, result.stderr


def inspect(engine: DaemonProcess, name: str) -> dict[str, Any]:
    code, out, err = run(engine, "inspect", name)
    assert code == 0, err
    return json.loads(out)[0]


# -- the "done when" list -----------------------------------------------------------------


def test_run_rm_prints_hi_and_removes_the_container(engine: DaemonProcess) -> None:
    code, out, err = run(engine, "run", "--rm", "--name", "hi-once", "busybox", "echo", "hi")
    assert (code, out) == (0, "hi\n"), err
    assert run(engine, "ps", "-a", "-q", "--filter", "name=hi-once")[1] == ""


def test_run_rm_leaves_no_endpoint_mount_or_directory(engine: DaemonProcess) -> None:
    code, out, err = run(engine, "run", "--rm", "-d", "--name", "rm-clean", "busybox", "sleep", "1")
    assert code == 0, err
    container_id = out.strip()
    status, _, body = engine.request("POST", f"/containers/{container_id}/wait?condition=removed")
    assert (status, json.loads(body)["StatusCode"]) == (200, 0), body
    # answered once the removal is recorded: nothing of it is visible any more
    assert run(engine, "inspect", container_id)[0] == 1
    assert leftovers(container_id, engine.cgroup_parent) == []
    bridge = engine.get_json("/networks/bridge")
    assert container_id not in (bridge.get("Containers") or {})
    # its directory (config, logs) goes in the background, soon after
    containers = engine.data_root / "containers"
    wait_for(
        lambda: not any(container_id in p.name for p in containers.iterdir()),
        what="the container's directory to go",
    )


def test_exit_status_is_the_containers(engine: DaemonProcess) -> None:
    code, _, err = run(engine, "run", "--rm", "busybox", "sh", "-c", "exit 3")
    assert code == 3, err


def test_stdin_is_piped_and_its_end_reaches_the_process(engine: DaemonProcess) -> None:
    code, out, err = run(engine, "run", "-i", "--rm", "busybox", "cat", stdin="x\n")
    assert (code, out) == (0, "x\n"), err


def test_stdout_and_stderr_stay_apart(engine: DaemonProcess) -> None:
    code, out, err = run(
        engine, "run", "--rm", "busybox", "sh", "-c", "echo out; echo err >&2; echo out2"
    )
    assert code == 0
    assert out == "out\nout2\n"
    assert err == "err\n"


def test_run_it_gives_an_interactive_shell_in_a_terminal(engine: DaemonProcess) -> None:
    argv = [DOCKER, "run", "-it", "--rm", "busybox", "sh"]
    with Terminal(argv, engine.env, rows=33, cols=91) as term:
        term.expect("# ")
        term.send("[ -t 0 ] && echo is-a-tty; stty size; echo $((6*7)); echo $TERM\r")
        screen = term.expect("xterm")
        assert "is-a-tty" in screen
        assert "33 91" in screen  # the CLI's terminal size reached the container's
        assert "42" in screen
        term.send("exit 7\r")
        assert term.wait() == 7


def test_detached_container_logs_exec_stop_rm(engine: DaemonProcess) -> None:
    code, out, err = run(
        engine,
        "run",
        "-d",
        "--name",
        "ticker",
        "busybox",
        "sh",
        "-c",
        "trap 'echo bye; exit 0' TERM; i=0;"
        " while true; do echo tick $i; i=$((i+1)); sleep 0.2; done",
    )
    assert code == 0, err
    container_id = out.strip()
    assert re.fullmatch(r"[0-9a-f]{64}", container_id)
    wait_for(lambda: "tick 2" in run(engine, "logs", "ticker")[1], what="three ticks")
    code, out, _ = run(engine, "logs", "--tail", "1", "ticker")
    assert code == 0
    assert re.fullmatch(r"tick \d+\n", out)

    with Terminal([DOCKER, "exec", "-it", "ticker", "sh"], engine.env) as term:
        term.expect("# ")
        term.send("echo inside $(hostname)\r")
        term.expect(f"inside {container_id[:12]}")
        term.send("exit 4\r")
        assert term.wait() == 4

    code, out, _ = run(engine, "exec", "ticker", "sh", "-c", "echo piped; exit 5")
    assert (code, out) == (5, "piped\n")

    follow = subprocess.Popen(
        [DOCKER, "logs", "-f", "ticker"],
        env=engine.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert run(engine, "stop", "ticker") == (0, "ticker\n", "")
    out, _ = follow.communicate(timeout=20)  # logs -f ends when the container stops
    assert out.endswith("bye\n")
    state = inspect(engine, "ticker")["State"]
    assert (state["Status"], state["ExitCode"], state["Running"]) == ("exited", 0, False)
    assert run(engine, "rm", "ticker") == (0, "ticker\n", "")
    assert leftovers(container_id, engine.cgroup_parent) == []


def test_ps_shows_dockers_columns(engine: DaemonProcess) -> None:
    code, out, err = run(engine, "run", "-d", "--name", "columns", "busybox", "sleep", "30")
    assert code == 0, err
    try:
        code, out, err = run(engine, "ps")
        assert code == 0, err
        header, *rows = out.splitlines()
        assert re.fullmatch(
            r"CONTAINER ID +IMAGE +COMMAND +CREATED +STATUS +PORTS +NAMES", header.rstrip()
        )
        row = next(r for r in rows if r.rstrip().endswith("columns"))
        assert re.match(r"[0-9a-f]{12} +busybox +\"sleep 30\" +.+ago +Up .+ +columns$", row)
        listed = run(engine, "ps", "-a", "--format", "{{.Names}} {{.State}}", "-f", "name=columns")
        assert listed[1] == "columns running\n"
    finally:
        run(engine, "rm", "-f", "columns")


def test_isolation_hostname_processes_network(engine: DaemonProcess) -> None:
    code, out, err = run(
        engine,
        "run",
        "--rm",
        "-h",
        "box1",
        "busybox",
        "sh",
        "-c",
        "hostname; ps -o pid,comm | tail -n +2; echo links; ip -o link | cut -d: -f2",
    )
    assert code == 0, err
    lines = [line.strip() for line in out.splitlines()]
    assert lines[0] == "box1"
    pids = [line.split()[0] for line in lines[1 : lines.index("links")]]
    assert pids[0] == "1"  # the shell is PID 1, and only its own processes are seen
    assert len(pids) <= 3
    inside = lines[lines.index("links") + 1 :]
    # its loopback and its own end of a veth pair (eth0@ifN), no interface of the host's
    assert inside[0] == "lo"
    assert re.fullmatch(r"eth0@if\d+", inside[1])
    assert len(inside) == 2


def test_default_capabilities_and_no_new_privileges(engine: DaemonProcess) -> None:
    code, out, err = run(
        engine,
        "run",
        "--rm",
        "busybox",
        "grep",
        "-E",
        "CapEff|CapBnd|NoNewPrivs",
        "/proc/self/status",
    )
    assert code == 0, err
    fields = dict(line.split(":\t") for line in out.splitlines())
    assert fields["CapEff"] == fields["CapBnd"] == "00000000a80425fb"  # Docker's default set
    assert fields["NoNewPrivs"] == "1"
    code, out, _ = run(
        engine,
        "run",
        "--rm",
        "--cap-drop",
        "NET_RAW",
        "busybox",
        "grep",
        "CapBnd",
        "/proc/self/status",
    )
    assert out.split()[1] == f"{0xA80425FB & ~(1 << 13):016x}"


def test_masked_and_read_only_proc_paths(engine: DaemonProcess) -> None:
    code, out, err = run(
        engine,
        "run",
        "--rm",
        "busybox",
        "sh",
        "-c",
        "wc -c < /proc/timer_list; ls /sys/firmware | wc -l;"
        " echo 1 > /proc/sys/kernel/domainname && echo wrote || echo refused",
    )
    assert code == 0, err
    assert Path("/proc/timer_list").read_text()  # the host's is not empty
    assert out.split() == ["0", "0", "refused"]


def test_start_errors_have_dockers_exit_codes(engine: DaemonProcess) -> None:
    code, _, err = run(engine, "run", "--rm", "busybox", "nosuchcmd")
    assert code == 127
    assert "executable file not found" in err
    code, _, err = run(engine, "run", "--rm", "busybox", "/etc/passwd")
    assert code == 126, err
    code, _, err = run(engine, "run", "--rm", "-m", "1b", "busybox", "true")
    assert code == 125
    assert "Minimum memory limit allowed is 6MB" in err
    # --rm containers whose start failed are removed by the daemon
    assert run(engine, "ps", "-a", "--filter", "status=created", "-q")[1] == ""


def test_config_flags_reach_the_process(engine: DaemonProcess, tmp_path: Path) -> None:
    env_file = tmp_path / "env"
    env_file.write_text("FROM_FILE=yes\n")
    code, out, err = run(
        engine,
        "run",
        "--rm",
        "-e",
        "A=1",
        "--env-file",
        str(env_file),
        "-w",
        "/made/here",
        "-u",
        "65534:65534",
        "--entrypoint",
        "sh",
        "busybox",
        "-c",
        "echo $A $FROM_FILE $(pwd) $(id -u):$(id -g)",
    )
    assert code == 0, err
    assert out == "1 yes /made/here 65534:65534\n"
    code, out, err = run(engine, "run", "--rm", "-u", "nobody", "busybox", "id", "-un")
    assert (code, out) == (0, "nobody\n"), err
    code, _, err = run(engine, "run", "--rm", "-u", "nosuchuser", "busybox", "true")
    assert code != 0
    assert "unable to find user nosuchuser" in err


def test_labels_restart_policy_and_inspect(engine: DaemonProcess) -> None:
    code, _, err = run(
        engine,
        "create",
        "--name",
        "labelled",
        "-l",
        "tier=web",
        "--restart",
        "on-failure:3",
        "--stop-signal",
        "SIGUSR1",
        "--stop-timeout",
        "4",
        "busybox",
        "true",
    )
    assert code == 0, err
    try:
        body = inspect(engine, "labelled")
        assert body["Config"]["Labels"]["tier"] == "web"
        assert body["HostConfig"]["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 3}
        assert body["Config"]["StopSignal"] == "SIGUSR1"
        assert body["Config"]["StopTimeout"] == 4
        assert body["HostConfig"]["LogConfig"]["Type"] == "json-file"
        assert body["State"]["Status"] == "created"
        assert (
            run(engine, "ps", "-a", "-q", "--filter", "label=tier=web")[1].strip()
            == body["Id"][:12]
        )
    finally:
        run(engine, "rm", "labelled")


def test_restart_policy_restarts_a_failing_container(engine: DaemonProcess) -> None:
    code, _, err = run(
        engine,
        "run",
        "-d",
        "--name",
        "flaky",
        "--restart",
        "on-failure:2",
        "busybox",
        "sh",
        "-c",
        "exit 9",
    )
    assert code == 0, err
    try:
        wait_for(
            lambda: (
                inspect(engine, "flaky")["RestartCount"] == 2
                and inspect(engine, "flaky")["State"]["Status"] == "exited"
            ),
            timeout=20,
            what="two restarts",
        )
        assert inspect(engine, "flaky")["State"]["ExitCode"] == 9
    finally:
        run(engine, "rm", "-f", "flaky")


def test_kill_restart_pause_rename_top_wait(engine: DaemonProcess) -> None:
    code, out, err = run(
        engine,
        "run",
        "-d",
        "--name",
        "worker",
        "busybox",
        "sh",
        "-c",
        "trap 'echo got-usr1' USR1; while true; do sleep 0.1; done",
    )
    assert code == 0, err
    try:
        assert run(engine, "kill", "-s", "USR1", "worker")[0] == 0
        wait_for(lambda: "got-usr1" in run(engine, "logs", "worker")[1], what="the signal")
        assert run(engine, "pause", "worker")[0] == 0
        assert inspect(engine, "worker")["State"]["Status"] == "paused"
        assert "(Paused)" in run(engine, "ps", "--filter", "name=worker")[1]
        assert run(engine, "unpause", "worker")[0] == 0
        assert inspect(engine, "worker")["State"]["Status"] == "running"
        code, out, _ = run(engine, "top", "worker")
        assert code == 0
        assert "PID" in out.splitlines()[0]
        assert "while true" in out, out
        assert run(engine, "rename", "worker", "worker2")[0] == 0
        started = inspect(engine, "worker2")["State"]["StartedAt"]
        assert run(engine, "restart", "-t", "0", "worker2")[0] == 0
        assert inspect(engine, "worker2")["State"]["StartedAt"] != started
        assert run(engine, "kill", "worker2")[0] == 0
        assert run(engine, "wait", "worker2") == (0, "137\n", "")
        code, _, err = run(engine, "kill", "worker2")
        assert code == 1
        assert "is not running" in err
    finally:
        run(engine, "rm", "-f", "worker", "worker2")


def test_rm_of_a_running_container_needs_force(engine: DaemonProcess) -> None:
    code, out, _ = run(engine, "run", "-d", "--name", "busy", "busybox", "sleep", "100")
    container_id = out.strip()
    pid = inspect(engine, "busy")["State"]["Pid"]
    net = Path(f"/proc/{pid}/ns/net").stat().st_ino
    assert net != Path("/proc/self/ns/net").stat().st_ino
    code, _, err = run(engine, "rm", "busy")
    assert code == 1
    assert "container is running: stop the container before removing or force remove" in err
    assert run(engine, "rm", "-f", "busy") == (0, "busy\n", "")
    assert leftovers(container_id, engine.cgroup_parent) == []
    assert not Path(f"/proc/{pid}").exists()  # its process, and with it its namespaces, gone


def test_memory_limit_oom_kills_and_inspect_says_so(engine: DaemonProcess) -> None:
    code, _, _ = run(
        engine,
        "run",
        "--name",
        "hog",
        "-m",
        "8m",
        "busybox",
        "sh",
        "-c",
        "head -c 64000000 /dev/zero | tail",
    )
    try:
        assert code == 137
        state = inspect(engine, "hog")["State"]
        assert state["OOMKilled"] is True
        assert state["ExitCode"] == 137
    finally:
        run(engine, "rm", "hog")


def test_pids_limit_cpus_and_cpu_shares_are_in_the_cgroup(engine: DaemonProcess) -> None:
    code, out, err = run(
        engine,
        "run",
        "-d",
        "--name",
        "limited",
        "--pids-limit",
        "12",
        "--cpus",
        "0.5",
        "--cpu-shares",
        "512",
        "busybox",
        "sleep",
        "60",
    )
    assert code == 0, err
    container_id = out.strip()
    try:
        base = Path("/sys/fs/cgroup")
        parent = engine.cgroup_parent
        assert (base / "pids" / parent / container_id / "pids.max").read_text().strip() == "12"
        assert (
            base / "cpu" / parent / container_id / "cpu.cfs_quota_us"
        ).read_text().strip() == "50000"
        assert (
            base / "cpu" / parent / container_id / "cpu.cfs_period_us"
        ).read_text().strip() == "100000"
        assert (base / "cpu" / parent / container_id / "cpu.shares").read_text().strip() == "512"
        code, out, _ = run(
            engine,
            "exec",
            "limited",
            "sh",
            "-c",
            "for i in $(seq 20); do sleep 5 & done 2>&1; wait",
        )
        assert "can't fork" in out or "Resource temporarily unavailable" in out
    finally:
        run(engine, "rm", "-f", "limited")


def test_stats_no_stream(engine: DaemonProcess) -> None:
    run(engine, "run", "-d", "--name", "measured", "busybox", "sleep", "60")
    try:
        code, out, err = run(
            engine,
            "stats",
            "--no-stream",
            "--format",
            "{{.Name}} {{.PIDs}} {{.MemUsage}}",
            "measured",
        )
        assert code == 0, err
        name, pids, usage = out.split(" ", 2)
        assert (name, pids) == ("measured", "1")
        assert re.match(r"[\d.]+[KMG]iB / [\d.]+[KMG]iB", usage)
    finally:
        run(engine, "rm", "-f", "measured")


def test_named_volume_is_filled_from_the_image_and_outlives_containers(
    engine: DaemonProcess,
) -> None:
    code, out, err = run(
        engine,
        "run",
        "--rm",
        "-v",
        "etcdata:/etc",
        "busybox",
        "sh",
        "-c",
        "cat /etc/passwd | head -1; echo kept > /etc/note",
    )
    assert code == 0, err
    assert out.startswith("root:")
    code, out, err = run(
        engine, "run", "--rm", "-v", "etcdata:/data", "busybox", "cat", "/data/note"
    )
    assert (code, out) == (0, "kept\n"), err
    code, out, _ = run(engine, "volume", "ls", "--format", "{{.Driver}} {{.Name}}")
    assert "local etcdata" in out.splitlines()
    assert run(engine, "volume", "rm", "etcdata") == (0, "etcdata\n", "")


def test_bind_mounts_tmpfs_and_read_only_root(engine: DaemonProcess, tmp_path: Path) -> None:
    (tmp_path / "in.txt").write_text("from the host\n")
    code, out, err = run(
        engine,
        "run",
        "--rm",
        "--read-only",
        "-v",
        f"{tmp_path}:/host:ro",
        "--tmpfs",
        "/scratch",
        "--mount",
        f"type=bind,source={tmp_path},target=/rw",
        "busybox",
        "sh",
        "-c",
        "cat /host/in.txt; touch /host/x 2>/dev/null || echo ro-bind;"
        " touch /x 2>/dev/null || echo ro-root;"
        " echo t > /scratch/t && echo tmpfs-ok; echo w > /rw/out.txt",
    )
    assert code == 0, err
    assert out.split("\n")[:4] == ["from the host", "ro-bind", "ro-root", "tmpfs-ok"]
    assert (tmp_path / "out.txt").read_text() == "w\n"
    code, _, err = run(
        engine,
        "run",
        "--rm",
        "--mount",
        "type=bind,source=/no/such/dir,target=/x",
        "busybox",
        "true",
    )
    assert code == 125
    assert "bind source path does not exist: /no/such/dir" in err


def test_anonymous_volumes_go_with_rm_v(engine: DaemonProcess) -> None:
    code, out, err = run(engine, "create", "-v", "/anon", "busybox", "true")
    assert code == 0, err
    container_id = out.strip()
    name = inspect(engine, container_id)["Mounts"][0]["Name"]
    assert re.fullmatch(r"[0-9a-f]{64}", name)
    assert name in run(engine, "volume", "ls", "-q")[1]
    assert run(engine, "rm", "-v", container_id)[0] == 0
    assert name not in run(engine, "volume", "ls", "-q")[1]


def test_events_of_a_container_life(engine: DaemonProcess) -> None:
    since = str(int(time.time()))
    code, out, _ = run(engine, "run", "--rm", "--name", "eventful", "busybox", "true")
    assert code == 0
    code, out, err = run(
        engine,
        "events",
        "--since",
        since,
        "--until",
        str(int(time.time()) + 1),
        "--filter",
        "container=eventful",
        "--format",
        "{{.Action}}",
    )
    assert code == 0, err
    actions = out.split()
    for expected in ("create", "attach", "start", "die", "destroy"):
        assert expected in actions, actions
    assert actions.index("die") < actions.index("destroy")


def test_attach_and_detach_with_the_keys(engine: DaemonProcess) -> None:
    code, _, err = run(engine, "run", "-dit", "--name", "attachable", "busybox", "sh")
    assert code == 0, err
    try:
        with Terminal([DOCKER, "attach", "attachable"], engine.env) as term:
            term.send("echo attached-$((1+1))\r")
            term.expect("attached-2")
            term.send("\x10\x11")  # ctrl-p ctrl-q: the CLI detaches (and exits 1, as with Docker)
            assert term.wait() == 1
            assert b"read escape sequence" in term.output
        assert inspect(engine, "attachable")["State"]["Status"] == "running"
    finally:
        run(engine, "rm", "-f", "attachable")


def test_exec_flags(engine: DaemonProcess) -> None:
    run(engine, "run", "-d", "--name", "execd", "busybox", "sleep", "60")
    try:
        code, out, err = run(
            engine, "exec", "-e", "X=from-exec", "-u", "65534", "-w", "/tmp", "execd",
            "sh", "-c", "echo $X $(id -u) $(pwd)",
        )  # fmt: skip
        assert (code, out) == (0, "from-exec 65534 /tmp\n"), err
        assert run(engine, "exec", "-d", "execd", "sh", "-c", "echo detached > /tmp/d")[0] == 0
        wait_for(lambda: run(engine, "exec", "execd", "cat", "/tmp/d")[1] == "detached\n")
        code, out, _ = run(engine, "exec", "-i", "execd", "cat")
        assert code == 0
        code, out, _ = run(engine, "exec", "execd", "nosuch")
        assert code == 127
        assert "executable file not found" in out
    finally:
        run(engine, "rm", "-f", "execd")
    code, _, err = run(engine, "exec", "execd", "true")
    assert code == 1
    assert "No such container: execd" in err


def test_stats_streams_a_sample_a_second(engine: DaemonProcess) -> None:
    run(engine, "run", "-d", "--name", "streamed", "busybox", "sh", "-c", "while :; do :; done")
    try:
        import docker as docker_py

        client = docker_py.DockerClient(base_url=engine.host, version="auto")
        samples = []
        for sample in client.api.stats("streamed", decode=True):
            samples.append(sample)
            if len(samples) == 3:
                break
        client.close()
        assert samples[2]["read"] > samples[1]["read"]
        cpu, pre = samples[2]["cpu_stats"], samples[2]["precpu_stats"]
        delta = cpu["cpu_usage"]["total_usage"] - pre["cpu_usage"]["total_usage"]
        system = cpu["system_cpu_usage"] - pre["system_cpu_usage"]
        assert 0.3 < delta / system * cpu["online_cpus"] <= cpu["online_cpus"] + 0.1  # a busy loop
        assert samples[2]["memory_stats"]["usage"] > 0
        assert samples[2]["pids_stats"]["current"] >= 1
    finally:
        run(engine, "rm", "-f", "streamed")


def test_volume_commands_and_in_use_conflict(engine: DaemonProcess) -> None:
    assert run(engine, "volume", "create", "--label", "a=b", "cmdvol") == (0, "cmdvol\n", "")
    body = json.loads(run(engine, "volume", "inspect", "cmdvol")[1])[0]
    assert (body["Driver"], body["Labels"], body["Scope"]) == ("local", {"a": "b"}, "local")
    assert Path(body["Mountpoint"]).is_dir()
    run(engine, "create", "--name", "volume-user", "-v", "cmdvol:/v", "busybox", "true")
    code, _, err = run(engine, "volume", "rm", "cmdvol")
    assert code == 1
    assert "volume is in use" in err
    assert run(engine, "container", "prune", "-f", "--filter", "label=none")[0] == 0
    assert run(engine, "rm", "volume-user")[0] == 0
    code, out, _ = run(engine, "volume", "prune", "-a", "-f")
    assert code == 0
    assert "cmdvol" in out
    assert "cmdvol" not in run(engine, "volume", "ls", "-q")[1]


def test_container_prune_removes_stopped_ones(engine: DaemonProcess) -> None:
    run(engine, "run", "--name", "stopped-one", "-l", "prune=me", "busybox", "true")
    run(engine, "run", "-d", "--name", "running-one", "-l", "prune=me", "busybox", "sleep", "30")
    try:
        code, out, err = run(engine, "container", "prune", "-f", "--filter", "label=prune=me")
        assert code == 0, err
        assert out.startswith("Deleted Containers:\n")
        names = run(engine, "ps", "-a", "--format", "{{.Names}}", "--filter", "label=prune=me")[1]
        assert names == "running-one\n"
    finally:
        run(engine, "rm", "-f", "running-one")


def test_network_modes_host_none_and_another_containers(engine: DaemonProcess) -> None:
    # The netns identity, not a list of links: tests running alongside add and remove links.
    code, out, err = run(
        engine, "run", "--rm", "--network", "host", "busybox", "readlink", "/proc/self/ns/net"
    )  # fmt: skip
    assert code == 0, err
    assert out.strip() == str(Path("/proc/self/ns/net").readlink())
    code, out, _ = run(engine, "run", "--rm", "--network", "none", "busybox", "ip", "-o", "link")
    assert [line.split(":")[1].strip() for line in out.splitlines()] == ["lo"]
    run(engine, "run", "-d", "--name", "netowner", "busybox", "sleep", "60")
    try:
        owner = inspect(engine, "netowner")["State"]["Pid"]
        code, out, err = run(
            engine, "run", "--rm", "--network", "container:netowner", "busybox",
            "readlink", "/proc/self/ns/net",
        )  # fmt: skip
        assert code == 0, err
        assert out.strip() == str(Path(f"/proc/{owner}/ns/net").readlink())
    finally:
        run(engine, "rm", "-f", "netowner")
    code, _, err = run(engine, "run", "--rm", "--network", "nosuchnet", "busybox", "true")
    assert code == 125
    assert "network nosuchnet not found" in err


def test_logs_timestamps_since_until_and_streams(engine: DaemonProcess) -> None:
    code, _, err = run(
        engine, "run", "--name", "chatty", "busybox", "sh", "-c",
        "echo one; echo two >&2; sleep 1.2; echo three",
    )  # fmt: skip
    assert code == 0, err
    try:
        code, out, err = run(engine, "logs", "-t", "chatty")
        assert code == 0
        stamped = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z (.*)")
        assert [stamped.fullmatch(line)[1] for line in out.splitlines()] == ["one", "three"]  # type: ignore[index]
        assert [stamped.fullmatch(line)[1] for line in err.splitlines()] == ["two"]  # type: ignore[index]
        first = out.split()[0]
        last = out.splitlines()[1].split()[0]
        assert run(engine, "logs", "--since", last, "chatty")[1] == "three\n"
        assert run(engine, "logs", "--until", first, "chatty")[1] == "one\n"
        assert run(engine, "logs", "--tail", "1", "chatty") == (0, "three\n", "")
        assert run(engine, "logs", "--tail", "0", "chatty") == (0, "", "")
    finally:
        run(engine, "rm", "chatty")


def test_privileged_gets_every_capability_the_host_has(engine: DaemonProcess) -> None:
    code, out, err = run(
        engine, "run", "--rm", "--privileged", "busybox", "grep", "CapEff", "/proc/self/status"
    )
    assert code == 0, err
    host = next(
        line
        for line in Path("/proc/self/status").read_text().splitlines()
        if line.startswith("CapBnd")
    )
    assert out.split()[1] == host.split()[1]


def test_the_container_sees_its_own_cgroup_read_only(engine: DaemonProcess) -> None:
    code, out, err = run(
        engine, "run", "--rm", "-m", "64m", "busybox", "sh", "-c",
        "cat /sys/fs/cgroup/memory/memory.limit_in_bytes; grep memory /proc/self/cgroup;"
        " touch /sys/fs/cgroup/memory/x 2>/dev/null || echo read-only",
    )  # fmt: skip
    assert code == 0, err
    assert out.split() == [str(64 * 1024 * 1024), f"{_memory_line()}:memory:/", "read-only"]


def _memory_line() -> str:
    """The number of the memory hierarchy in /proc/<pid>/cgroup."""
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        number, controllers, _ = line.split(":", 2)
        if "memory" in controllers.split(","):
            return number
    raise AssertionError("no memory cgroup hierarchy")


def test_a_paused_container_is_not_killed_but_rm_f_ends_it(engine: DaemonProcess) -> None:
    code, out, _ = run(engine, "run", "-d", "--name", "frozen", "busybox", "sleep", "60")
    assert code == 0
    container_id = out.strip()
    assert run(engine, "pause", "frozen")[0] == 0
    code, _, err = run(engine, "kill", "frozen")
    assert code == 1
    assert "is paused. Unpause the container before stopping or killing" in err
    assert run(engine, "rm", "-f", "frozen") == (0, "frozen\n", "")
    assert leftovers(container_id, engine.cgroup_parent) == []


def test_rmi_f_of_a_stopped_containers_image_keeps_its_layers(
    engine: DaemonProcess, tmp_path: Path
) -> None:
    rootfs = tmp_path / "fs.tar"
    with tarfile.open(rootfs, "w") as tar:
        tar.add("/bin/busybox", "bin/busybox")
        link = tarfile.TarInfo("bin/echo")
        link.type, link.linkname = tarfile.SYMTYPE, "busybox"
        tar.addfile(link)
    assert run(engine, "import", str(rootfs), "solo:1")[0] == 0
    code, _, err = run(engine, "create", "--name", "orphaned", "solo:1", "echo", "still-runs")
    assert code == 0, err
    try:
        code, out, err = run(engine, "rmi", "-f", "solo:1")
        assert code == 0, err
        assert "Deleted: sha256:" in out  # the image is gone, not just untagged
        engine.restart()  # the start-up garbage collection must spare the container's layers
        code, out, err = run(engine, "start", "-a", "orphaned")
        assert (code, out) == (0, "still-runs\n"), err
    finally:
        run(engine, "rm", "-f", "orphaned")
