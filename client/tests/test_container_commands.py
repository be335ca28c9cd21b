"""The container commands against a fake Engine API: the exact requests, in docker's order,
and the exact output and exit status. The expected create bodies in ``data/`` were
recorded from the real docker CLI 28.2.2 against a recording server."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydocker.commands.runopts import normalize_platform

from client.tests.fakeengine import RAW, FakeDaemon, Terminal, frame, run, serve, stream_for

DATA = Path(__file__).parent / "data"
CID = "c" * 64
CONTAINER = f"/containers/{CID}"
NOW = int(time.time())


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[FakeDaemon]:
    with serve(tmp_path) as fake:
        yield fake


def created(engine: FakeDaemon, warnings: list[str] | None = None) -> None:
    engine.reply("POST", "/containers/create", {"Id": CID, "Warnings": warnings or []}, status=201)


def runnable(engine: FakeDaemon, status: int = 0, *, output: list[bytes] | None = None) -> None:
    """A container that can be created, attached, waited for and started; its output is
    sent once ``/start`` has arrived, its exit status after that."""
    created(engine)
    engine.hijack(f"{CONTAINER}/attach", output=output or [], after=f"{CONTAINER}/start")
    engine.reply(
        "POST",
        f"{CONTAINER}/wait",
        {"StatusCode": status, "Error": None},
        after=f"{CONTAINER}/start",
    )
    engine.reply("POST", f"{CONTAINER}/start", b"", status=204)


def body_of(engine: FakeDaemon) -> Any:
    return engine.last("POST", "/containers/create").json()


# -- run ----------------------------------------------------------------------------------


def test_run_creates_attaches_waits_starts_and_exits_with_the_status(engine: FakeDaemon) -> None:
    runnable(engine, 3, output=[frame(1, b"hi\n"), frame(2, b"oops\n"), frame(1, b"bye\n")])
    engine.replies[("POST", f"{CONTAINER}/wait")].delay = 0.3
    result = run(engine, "run", "busybox", "echo", "hi")
    assert (result.status, result.out, result.stderr) == (3, "hi\nbye\n", "oops\n")
    assert engine.calls() == [
        ("POST", "/containers/create"),
        ("POST", f"{CONTAINER}/attach"),
        ("POST", f"{CONTAINER}/wait"),
        ("POST", f"{CONTAINER}/start"),
    ]
    assert body_of(engine) == json.loads((DATA / "docker-create-default.json").read_text())
    attach = engine.last("POST", f"{CONTAINER}/attach")
    assert attach.query == [("stderr", "1"), ("stdout", "1"), ("stream", "1")]
    assert (attach.headers["Connection"], attach.headers["Upgrade"]) == ("Upgrade", "tcp")
    assert attach.headers["Content-Type"] == "text/plain"
    assert engine.last("POST", f"{CONTAINER}/wait").query == [("condition", "next-exit")]
    # /start only once the wait's headers are in, as docker does
    log = engine.log
    assert log.index(f"headers {CONTAINER}/wait") < log.index(f"POST {CONTAINER}/start")
    assert engine.hijacks[f"{CONTAINER}/attach"].stdin_closed  # no stdin: half-closed at once


def test_run_rm_waits_for_removal_and_never_deletes(engine: FakeDaemon) -> None:
    runnable(engine, output=[frame(1, b"hi\n")])
    result = run(engine, "run", "--rm", "--name", "once", "busybox", "echo", "hi")
    assert (result.status, result.out) == (0, "hi\n")
    assert engine.last("POST", "/containers/create").query == [("name", "once")]
    assert body_of(engine)["HostConfig"]["AutoRemove"] is True
    assert engine.last("POST", f"{CONTAINER}/wait").query == [("condition", "removed")]
    assert all(method != "DELETE" for method, _ in engine.calls())


def test_run_piped_stdin_is_sent_and_half_closed(engine: FakeDaemon) -> None:
    created(engine)
    attach = engine.hijack(f"{CONTAINER}/attach", echo=True)
    engine.reply(
        "POST", f"{CONTAINER}/wait", {"StatusCode": 0, "Error": None}, after=f"{CONTAINER}/start"
    )
    engine.reply("POST", f"{CONTAINER}/start", b"", status=204)
    result = run(engine, "run", "-i", "--rm", "busybox", "cat", stdin=b"x\n" * 50_000)
    assert (result.status, result.stdout) == (0, b"x\n" * 50_000)
    assert attach.stdin_closed
    assert engine.last("POST", f"{CONTAINER}/attach").query == [
        ("stderr", "1"),
        ("stdin", "1"),
        ("stdout", "1"),
        ("stream", "1"),
    ]
    body = body_of(engine)
    assert (body["AttachStdin"], body["OpenStdin"], body["StdinOnce"]) == (True, True, True)


def test_run_detached_prints_the_id_and_does_not_attach(engine: FakeDaemon) -> None:
    created(engine)
    engine.reply("POST", f"{CONTAINER}/wait", {"StatusCode": 0}, after="/never")
    engine.reply("POST", f"{CONTAINER}/start", b"", status=204)
    result = run(engine, "run", "-d", "-i", "busybox", "sleep", "9")
    assert (result.status, result.out, result.stderr) == (0, f"{CID}\n", "")
    assert engine.calls() == [
        ("POST", "/containers/create"),
        ("POST", f"{CONTAINER}/wait"),
        ("POST", f"{CONTAINER}/start"),
    ]
    body = body_of(engine)
    assert [body[k] for k in ("AttachStdin", "AttachStdout", "AttachStderr", "StdinOnce")] == [
        False,
        False,
        False,
        False,
    ]
    conflict = run(engine, "run", "-d", "-a", "stdout", "busybox")
    assert (conflict.status, conflict.stderr) == (
        1,
        "conflicting options: cannot specify both --attach and --detach\n",
    )


def test_run_tty_output_is_raw(engine: FakeDaemon) -> None:
    created(engine)
    engine.hijack(f"{CONTAINER}/attach", output=[b"\x01\x00raw\r\n"], content_type=RAW)
    engine.reply(
        "POST", f"{CONTAINER}/wait", {"StatusCode": 0, "Error": None}, after=f"{CONTAINER}/start"
    )
    engine.reply("POST", f"{CONTAINER}/start", b"", status=204)
    result = run(engine, "run", "-t", "busybox")
    assert (result.status, result.stdout) == (0, b"\x01\x00raw\r\n")
    assert body_of(engine)["Tty"] is True
    assert f"{CONTAINER}/resize" not in [path for _, path in engine.calls()]  # no terminal


def test_run_pulls_a_missing_image_and_surfaces_the_pull_error(engine: FakeDaemon) -> None:
    engine.error("POST", "/containers/create", 404, "No such image: busybox:latest")
    engine.error("POST", "/images/create", 501, "pull is not implemented")
    result = run(engine, "run", "busybox")
    assert result.status == 125
    assert result.stderr == (
        "Unable to find image 'busybox:latest' locally\n"
        "pydocker: Error response from daemon: pull is not implemented\n\n"
        "Run 'pydocker run --help' for more information\n"
    )
    pull = engine.last("POST", "/images/create")
    assert pull.query == [("fromImage", "docker.io/library/busybox"), ("tag", "latest")]
    assert pull.headers["X-Registry-Auth"] == "e30="
    never = run(engine, "run", "--pull", "never", "busybox")
    assert never.status == 125
    assert never.stderr.startswith("pydocker: Error response from daemon: No such image")
    create = run(engine, "create", "me/app:2")
    assert create.status == 1
    assert create.stderr == (
        "Unable to find image 'me/app:2' locally\n"
        "Error response from daemon: pull is not implemented\n"
    )


def test_run_pulls_then_creates_again(engine: FakeDaemon) -> None:
    engine.reply_once(
        "POST", "/containers/create", {"message": "No such image: busybox:latest"}, 404
    )
    created(engine, warnings=["w1"])
    engine.reply(
        "POST",
        "/images/create",
        b'{"status":"Pulling from library/busybox","id":"latest"}\n'
        b'{"status":"Status: Downloaded newer image for busybox:latest"}\n',
        content_type="application/json",
    )
    engine.reply("POST", f"{CONTAINER}/wait", {"StatusCode": 0}, after="/never")
    engine.reply("POST", f"{CONTAINER}/start", b"", status=204)
    result = run(engine, "run", "-d", "busybox")
    assert (result.status, result.out) == (0, f"{CID}\n")
    assert result.stderr == (
        "Unable to find image 'busybox:latest' locally\n"
        "latest: Pulling from library/busybox\n"
        "Status: Downloaded newer image for busybox:latest\n"
        "WARNING: w1\n"
    )
    assert [path for _, path in engine.calls()][:3] == [
        "/containers/create",
        "/images/create",
        "/containers/create",
    ]
    quiet = run(engine, "create", "-q", "busybox")
    assert (quiet.out, quiet.stderr) == (f"{CID}\n", "WARNING: w1\n")
    always = run(engine, "create", "--pull", "always", "--platform", "linux/x86_64", "busybox:1")
    assert always.status == 0
    pull = engine.last("POST", "/images/create")
    assert pull.query == [
        ("fromImage", "docker.io/library/busybox"),
        ("tag", "1"),
        ("platform", "linux/amd64"),
    ]


@pytest.mark.parametrize(
    ("message", "status"),
    [
        ('exec: "nosuch": executable file not found in $PATH', 127),
        ("open /bin/x: no such file or directory", 127),
        ("exec /etc: permission denied", 126),
        ("exec /: is a directory", 126),
        ("cgroup setup failed", 125),
    ],
)
def test_run_start_failures_map_to_docker_statuses(
    engine: FakeDaemon, message: str, status: int
) -> None:
    created(engine)
    engine.hijack(f"{CONTAINER}/attach", until="/never")
    engine.reply("POST", f"{CONTAINER}/wait", {"StatusCode": 0}, after=f"{CONTAINER}/start")
    engine.error("POST", f"{CONTAINER}/start", 500, message)
    result = run(engine, "run", "--rm", "busybox", "nosuch")
    assert result.status == status
    assert result.stderr == (
        f"pydocker: Error response from daemon: {message}\n\n"
        "Run 'pydocker run --help' for more information\n"
    )


def test_run_refuses_what_docker_refuses(engine: FakeDaemon) -> None:
    def refused(*args: str) -> tuple[int, str]:
        result = run(engine, "run", *args, "busybox")
        return result.status, result.stderr.split("\n")[0]

    assert refused("-m", "1x") == (
        125,
        """invalid argument "1x" for "-m, --memory" flag: invalid suffix: 'x'""",
    )
    assert refused("--cpus", "abc") == (
        125,
        'invalid argument "abc" for "--cpus" flag: failed to parse abc as a rational number',
    )
    assert refused("--stop-timeout", "x") == (
        125,
        'invalid argument "x" for "--stop-timeout" flag: '
        'strconv.ParseInt: parsing "x": invalid syntax',
    )
    for text in (" 5", "1__0", "_10", "08", "0x"):
        assert refused("--cpu-shares", text) == (
            125,
            f'invalid argument "{text}" for "-c, --cpu-shares" flag: '
            f'strconv.ParseInt: parsing "{text}": invalid syntax',
        )
    assert refused("--pids-limit", "9223372036854775808") == (
        125,
        'invalid argument "9223372036854775808" for "--pids-limit" flag: '
        'strconv.ParseInt: parsing "9223372036854775808": value out of range',
    )
    assert refused("--ulimit", "foo") == (
        125,
        'invalid argument "foo" for "--ulimit" flag: invalid ulimit argument: foo',
    )
    assert refused("-a", "foo") == (
        125,
        'invalid argument "foo" for "-a, --attach" flag: '
        "valid streams are STDIN, STDOUT and STDERR",
    )
    assert refused("--mount", "src=/x") == (
        125,
        'invalid argument "src=/x" for "--mount" flag: target is required',
    )
    assert refused("--add-host", "bad") == (
        125,
        'invalid argument "bad" for "--add-host" flag: bad format for add-host: "bad"',
    )
    assert refused("--sysctl", "foo") == (
        125,
        'invalid argument "foo" for "--sysctl" flag: sysctl \'foo\' is not allowed',
    )
    assert refused("--dns", "bad") == (
        125,
        'invalid argument "bad" for "--dns" flag: IP address is not correctly formatted: bad',
    )
    assert refused("-e", "=x") == (
        125,
        'invalid argument "=x" for "-e, --env" flag: invalid environment variable: =x',
    )
    assert refused("--rm=maybe") == (
        125,
        'invalid argument "maybe" for "--rm" flag: '
        'strconv.ParseBool: parsing "maybe": invalid syntax',
    )
    for args, message in [
        (
            ["--restart", "on-failure:x"],
            "invalid restart policy format: maximum retry count must be an integer",
        ),
        (
            ["--restart", "on-failure:1_0"],
            "invalid restart policy format: maximum retry count must be an integer",
        ),
        (
            ["--restart", "on-failure: 1"],
            "invalid restart policy format: maximum retry count must be an integer",
        ),
        (
            ["--rm", "--restart", "always"],
            "conflicting options: cannot specify both --restart and --rm",
        ),
        (["-p", "abc"], "invalid containerPort: abc"),
        (["-p", "99999:80"], "invalid hostPort: 99999"),
        (
            ["--expose", "abc"],
            "invalid range format for --expose: abc, error: "
            'strconv.ParseUint: parsing "abc": invalid syntax',
        ),
        (
            ["--pull", "sometimes"],
            """invalid pull option: 'sometimes': must be one of "always", "missing" or "never\"""",
        ),
        (
            ["--network-alias", "x"],
            "network-scoped aliases are only supported for user-defined networks",
        ),
        (["--log-driver", "none", "--log-opt", "a=b"], "invalid logging opts for driver none"),
        (["--env-file", "/nonexistent"], "open /nonexistent: no such file or directory"),
    ]:
        result = run(engine, "run", *args, "busybox")
        assert (result.status, result.stderr) == (
            125,
            f"pydocker: {message}\n\nRun 'pydocker run --help' for more information\n",
        ), args
    not_a_tty = run(engine, "run", "-it", "busybox")
    assert (not_a_tty.status, not_a_tty.stderr) == (1, "the input device is not a TTY\n")
    assert engine.calls() == []


def test_integer_flags_read_go_literals_as_docker_does(engine: FakeDaemon) -> None:
    """pflag's int flags are ``strconv.ParseInt(s, 0, 64)``: docker 28.2.2 sends these."""
    created(engine)
    for text, value in [("1_000", 1000), ("0x10", 16), ("010", 8), ("0b11", 3), ("-0o17", -15)]:
        result = run(engine, "create", f"--cpu-shares={text}", "--pids-limit", text, "busybox")
        assert result.status == 0, result.stderr
        host_config = body_of(engine)["HostConfig"]
        assert (host_config["CpuShares"], host_config["PidsLimit"]) == (value, value), text
    run(engine, "create", "--restart", "on-failure:+3", "busybox")
    assert body_of(engine)["HostConfig"]["RestartPolicy"] == {
        "Name": "on-failure",
        "MaximumRetryCount": 3,
    }


def test_create_sends_the_body_docker_builds(engine: FakeDaemon, tmp_path: Path) -> None:
    created(engine, warnings=["careful"])
    (tmp_path / "env.list").write_text("A=1\n# c\nB\n\nC=x y\n")
    (tmp_path / "labels.list").write_text("l1=a\nl2\n")
    cidfile = tmp_path / "cid"
    args = f"""-it --name web -e X=1 -e B -e NOTSET --env-file {tmp_path}/env.list -w /tmp
        -u 1000:1000 -h myhost --entrypoint /bin/sh -v /src:/dst:ro -v named:/data -v /anon
        --mount type=bind,src=/a,dst=/b,readonly
        --mount type=volume,source=v2,target=/v2,volume-opt=a=b
        --mount type=tmpfs,dst=/t,tmpfs-size=1m --tmpfs /run:rw,size=64m --read-only
        --restart on-failure:3 --stop-signal SIGUSR1 --stop-timeout 7 -l a=b -l c
        --label-file {tmp_path}/labels.list -m 64m --memory-swap 128m --cpus 1.5 -c 512
        --pids-limit 100 --network mynet -p 8080:80 -p 127.0.0.1:9000:9000/udp -p 53
        -p 7000-7001:7000-7001 -P --expose 3000 --expose 4000-4001/udp --network-alias al1
        --ip 10.0.0.5 --cap-add NET_ADMIN --cap-drop MKNOD --privileged --log-driver json-file
        --log-opt max-size=1m --init --platform linux/amd64 --cidfile {cidfile}
        --add-host h:1.2.3.4 --dns 8.8.8.8 --group-add 10 --sysctl net.ipv4.ip_forward=1
        --ulimit nofile=1024:2048 --ulimit nproc=100 busybox sh -c""".split()
    result = run(engine, "create", *args, "echo hi", env={"B": "B"})
    assert (result.status, result.out, result.stderr) == (0, f"{CID}\n", "WARNING: careful\n")
    expected = json.loads((DATA / "docker-create-all-flags.json").read_text())
    expected["HostConfig"]["ContainerIDFile"] = str(cidfile)
    request = engine.only()
    assert request.query == [("name", "web"), ("platform", "linux/amd64")]
    assert json.dumps(request.json()) == json.dumps(expected)  # the same keys, in order
    assert cidfile.read_text() == CID
    again = run(engine, "create", "--cidfile", str(cidfile), "busybox")
    assert (again.status, again.stderr) == (
        1,
        "container ID file found, make sure the other container isn't running or delete "
        f"{cidfile}\n",
    )


def test_create_flag_details(engine: FakeDaemon) -> None:
    created(engine)

    def body(*args: str) -> Any:
        assert run(engine, "create", *args, "busybox").status == 0
        return body_of(engine)

    host = body("--cap-add", "all", "--cap-add", "sys_admin", "--cap-drop", "x", "--cap-drop", "X")
    assert (host["HostConfig"]["CapAdd"], host["HostConfig"]["CapDrop"]) == (
        ["ALL", "CAP_SYS_ADMIN"],
        ["CAP_X"],
    )
    assert body("--entrypoint=")["Entrypoint"] == [""]
    assert body("--network", "host")["NetworkingConfig"] == {"EndpointsConfig": {}}
    assert body("--network", "host")["HostConfig"]["NetworkMode"] == "host"
    assert body("--memory-swap", "-1", "--pids-limit", "-1")["HostConfig"]["MemorySwap"] == -1
    assert body("--restart", "unless-stopped")["HostConfig"]["RestartPolicy"] == {
        "Name": "unless-stopped",
        "MaximumRetryCount": 0,
    }
    ports = body("-p", "[::1]:80:80", "-p", "127.0.0.1::81", "-p", "8000-8010:90")["HostConfig"]
    assert ports["PortBindings"] == {
        "80/tcp": [{"HostIp": "::1", "HostPort": "80"}],
        "81/tcp": [{"HostIp": "127.0.0.1", "HostPort": ""}],
        "90/tcp": [{"HostIp": "", "HostPort": "8000-8010"}],
    }
    assert body("--add-host", "a=[::1]", "--add-host", "b:host-gateway")["HostConfig"][
        "ExtraHosts"
    ] == ["a:::1", "b:host-gateway"]
    body("--platform", "linux")
    platform = dict(engine.last("POST", "/containers/create").query)["platform"]
    assert platform == normalize_platform("linux")
    assert platform.startswith("linux/")
    mounts = body(
        "--mount", "type=volume,target=/v,volume-driver=local,volume-nocopy,volume-label=a=b"
    )
    assert mounts["HostConfig"]["Mounts"] == [
        {
            "Type": "volume",
            "Target": "/v",
            "VolumeOptions": {
                "NoCopy": True,
                "Labels": {"a": "b"},
                "DriverConfig": {"Name": "local"},
            },
        }
    ]
    tmpfs = body("--mount", "type=tmpfs,target=/t,tmpfs-mode=1770")["HostConfig"]["Mounts"]
    assert tmpfs == [{"Type": "tmpfs", "Target": "/t", "TmpfsOptions": {"Mode": 0o1770}}]
    relative = body("-v", "./rel:/x")["HostConfig"]["Binds"]
    assert relative == [f"{Path.cwd()}/rel:/x"]
    warned = run(engine, "create", "--dns", "127.0.0.1", "busybox")
    assert warned.stderr == ("WARNING: Localhost DNS (127.0.0.1) may fail in containers.\n")


# -- start / attach -----------------------------------------------------------------------


def inspected(engine: FakeDaemon, name: str = "web", **config: Any) -> None:
    engine.reply(
        "GET",
        f"/containers/{name}/json",
        {
            "Id": CID,
            "Name": f"/{name}",
            "Config": {"Tty": False, "OpenStdin": True, **config},
            "State": {"Running": True, "Paused": False, "Restarting": False},
            "HostConfig": {"AutoRemove": False},
        },
    )


def test_start_several_and_the_failures(engine: FakeDaemon) -> None:
    engine.reply("POST", "/containers/a/start", b"", status=204)
    engine.error("POST", "/containers/nosuch/start", 404, "No such container: nosuch")
    result = run(engine, "start", "a", "nosuch")
    assert (result.status, result.out) == (1, "a\n")
    assert result.stderr == (
        "Error response from daemon: No such container: nosuch\n"
        "Error: failed to start containers: nosuch\n"
    )
    several = run(engine, "start", "-a", "a", "b")
    assert (several.status, several.stderr) == (
        1,
        "you cannot start and attach multiple containers at once\n",
    )


def test_start_attached_streams_and_exits_with_the_status(engine: FakeDaemon) -> None:
    inspected(engine)
    engine.hijack(f"{CONTAINER}/attach", output=[frame(1, b"out\n")], after=f"{CONTAINER}/start")
    engine.reply(
        "POST", f"{CONTAINER}/wait", {"StatusCode": 2, "Error": None}, after=f"{CONTAINER}/start"
    )
    engine.reply("POST", f"{CONTAINER}/start", b"", status=204)
    result = run(engine, "start", "-ai", "web", stdin=b"in\n")
    assert (result.status, result.out) == (2, "out\n")
    assert engine.calls() == [
        ("GET", "/containers/web/json"),
        ("POST", f"{CONTAINER}/attach"),
        ("POST", f"{CONTAINER}/wait"),
        ("POST", f"{CONTAINER}/start"),
    ]
    assert engine.last("POST", f"{CONTAINER}/attach").query == [
        ("stderr", "1"),
        ("stdin", "1"),
        ("stdout", "1"),
        ("stream", "1"),
    ]
    assert bytes(engine.hijacks[f"{CONTAINER}/attach"].stdin) == b"in\n"


def test_attach_waits_first_and_refuses_a_stopped_container(engine: FakeDaemon) -> None:
    inspected(engine)
    engine.hijack("/containers/web/attach", output=[frame(2, b"err\n")])
    engine.reply(
        "POST",
        "/containers/web/wait",
        {"StatusCode": 4, "Error": None},
        after="/containers/web/attach",
    )
    result = run(engine, "attach", "--no-stdin", "--detach-keys", "ctrl-x", "web")
    assert (result.status, result.stderr) == (4, "err\n")
    assert engine.calls() == [
        ("POST", "/containers/web/wait"),
        ("GET", "/containers/web/json"),
        ("POST", "/containers/web/attach"),
        ("GET", "/containers/web/json"),
    ]
    assert engine.last("POST", "/containers/web/wait").query == []
    assert engine.last("POST", "/containers/web/attach").query == [
        ("detachKeys", "ctrl-x"),
        ("stderr", "1"),
        ("stdout", "1"),
        ("stream", "1"),
    ]
    engine.reply("GET", "/containers/web/json", {"Id": CID, "State": {"Running": False}})
    stopped = run(engine, "attach", "web")
    assert (stopped.status, stopped.stderr) == (
        1,
        "You cannot attach to a stopped container, start it first\n",
    )


def test_hijack_must_answer_101(engine: FakeDaemon) -> None:
    created(engine)
    engine.reply("POST", f"{CONTAINER}/attach", {"message": "no"}, status=409)
    result = run(engine, "run", "busybox")
    assert (result.status, result.stderr) == (1, "unable to upgrade to tcp, received 409\n")


# -- exec ---------------------------------------------------------------------------------


def test_exec_creates_starts_hijacked_and_exits_with_the_exec_code(engine: FakeDaemon) -> None:
    inspected(engine)
    engine.reply("POST", "/containers/web/exec", {"Id": "e" * 64}, status=201)
    engine.hijack(f"/exec/{'e' * 64}/start", echo=True)
    engine.reply("GET", f"/exec/{'e' * 64}/json", {"ExitCode": 5, "Running": False})
    result = run(
        engine,
        "exec",
        "-i",
        "-e",
        "A=1",
        "-u",
        "root",
        "-w",
        "/tmp",
        "web",
        "cat",
        "-n",
        stdin=b"hi\n",
    )
    assert (result.status, result.stdout) == (5, b"hi\n")
    assert engine.calls() == [
        ("GET", "/containers/web/json"),
        ("POST", "/containers/web/exec"),
        ("POST", f"/exec/{'e' * 64}/start"),
        ("GET", f"/exec/{'e' * 64}/json"),
    ]
    assert json.dumps(engine.last("POST", "/containers/web/exec").json()) == json.dumps(
        {
            "User": "root",
            "Privileged": False,
            "Tty": False,
            "AttachStdin": True,
            "AttachStderr": True,
            "AttachStdout": True,
            "Detach": False,
            "DetachKeys": "",
            "Env": ["A=1"],
            "WorkingDir": "/tmp",
            "Cmd": ["cat", "-n"],
        }
    )
    start = engine.last("POST", f"/exec/{'e' * 64}/start")
    assert start.json() == {"Detach": False, "Tty": False}
    assert (start.headers["Upgrade"], start.headers["Content-Type"]) == ("tcp", "application/json")


def test_exec_detached_and_missing(engine: FakeDaemon) -> None:
    inspected(engine)
    engine.reply("POST", "/containers/web/exec", {"Id": "e" * 64}, status=201)
    engine.reply("POST", f"/exec/{'e' * 64}/start", b"", status=200)
    result = run(engine, "exec", "-d", "web", "sleep", "1")
    assert (result.status, result.out) == (0, "")
    body = engine.last("POST", "/containers/web/exec").json()
    assert [body[k] for k in ("AttachStdin", "AttachStdout", "AttachStderr", "Detach")] == [
        False,
        False,
        False,
        True,
    ]
    start = engine.last("POST", f"/exec/{'e' * 64}/start")
    assert (start.json(), start.headers.get("Upgrade")) == ({"Detach": True, "Tty": False}, None)
    engine.error("GET", "/containers/nosuch/json", 404, "No such container: nosuch")
    missing = run(engine, "exec", "nosuch", "ls")
    assert (missing.status, missing.stderr) == (
        1,
        "Error response from daemon: No such container: nosuch\n",
    )
    tty = run(engine, "exec", "-it", "web", "sh")
    assert (tty.status, tty.stderr) == (1, "the input device is not a TTY\n")


# -- logs / wait --------------------------------------------------------------------------


def test_logs_demultiplexes_and_sends_docker_query(engine: FakeDaemon) -> None:
    inspected(engine)
    engine.reply(
        "GET",
        f"{CONTAINER}/logs",
        b"",
        chunks=[
            frame(1, b"one\n")[:5],
            frame(1, b"one\n")[5:] + frame(2, b"two\n"),
            frame(1, b"3\n"),
        ],
        content_type="application/vnd.docker.multiplexed-stream",
    )
    result = run(
        engine, "logs", "-f", "--tail", "3", "-t", "--details", "--until", "1704067200", "web"
    )
    assert (result.status, result.out, result.stderr) == (0, "one\n3\n", "two\n")
    assert engine.calls() == [("GET", "/containers/web/json"), ("GET", f"{CONTAINER}/logs")]
    assert engine.last("GET", f"{CONTAINER}/logs").query == [
        ("details", "1"),
        ("follow", "1"),
        ("stderr", "1"),
        ("stdout", "1"),
        ("tail", "3"),
        ("timestamps", "1"),
        ("until", "1704067200"),
    ]
    inspected(engine, Tty=True)
    engine.reply("GET", f"{CONTAINER}/logs", b"\x01raw\r\n", content_type=RAW)
    raw = run(engine, "logs", "web")
    assert raw.stdout == b"\x01raw\r\n"
    assert engine.last("GET", f"{CONTAINER}/logs").query == [
        ("stderr", "1"),
        ("stdout", "1"),
        ("tail", "all"),
    ]


def test_wait_prints_each_status(engine: FakeDaemon) -> None:
    engine.reply("POST", "/containers/a/wait", {"StatusCode": 0, "Error": None}, delay=0.1)
    engine.reply("POST", "/containers/b/wait", {"StatusCode": 137, "Error": None})
    engine.error("POST", "/containers/nosuch/wait", 404, "No such container: nosuch")
    result = run(engine, "wait", "a", "nosuch", "b")
    assert (result.status, result.out) == (1, "0\n137\n")
    assert result.stderr == "Error response from daemon: No such container: nosuch\n"


# -- stop / kill / restart / rm / pause / unpause / rename ----------------------------------


def test_stop_kill_restart_queries_and_errors(engine: FakeDaemon) -> None:
    for action in ("stop", "restart", "kill", "pause", "unpause"):
        engine.reply("POST", f"/containers/a/{action}", b"", status=204)
        engine.error("POST", f"/containers/nosuch/{action}", 404, "No such container: nosuch")
    stop = run(engine, "stop", "-t", "5", "-s", "KILL", "a", "nosuch", "a")
    assert (stop.status, stop.out) == (1, "a\na\n")
    assert stop.stderr == "Error response from daemon: No such container: nosuch\n"
    assert engine.last("POST", "/containers/a/stop").query == [("signal", "KILL"), ("t", "5")]
    assert run(engine, "container", "restart", "-t", "0", "a").out == "a\n"
    assert engine.last("POST", "/containers/a/restart").query == [("t", "0")]
    assert run(engine, "kill", "a").status == 0
    assert engine.last("POST", "/containers/a/kill").query == []
    assert run(engine, "kill", "-s", "HUP", "a").out == "a\n"
    assert engine.last("POST", "/containers/a/kill").query == [("signal", "HUP")]
    for action in ("pause", "unpause"):
        both = run(engine, action, "nosuch", "a")
        assert (both.status, both.out) == (1, "a\n")
    bad = run(engine, "stop", "-t", "x", "a")
    assert bad.status == 125
    assert bad.stderr.startswith('invalid argument "x" for "-t, --timeout" flag')


def test_rm_flags_and_force_forgives_missing(engine: FakeDaemon) -> None:
    engine.reply("DELETE", "/containers/a", b"", status=204)
    engine.error("DELETE", "/containers/nosuch", 404, "No such container: nosuch")
    result = run(engine, "rm", "-f", "-v", "-l", "a", "nosuch")
    assert (result.status, result.out) == (0, "a\n")
    assert result.stderr == "Error response from daemon: No such container: nosuch\n"
    assert engine.last("DELETE", "/containers/a").query == [
        ("force", "1"),
        ("link", "1"),
        ("v", "1"),
    ]
    plain = run(engine, "container", "remove", "nosuch")
    assert (plain.status, plain.stderr) == (
        1,
        "Error response from daemon: No such container: nosuch\n",
    )
    empty = run(engine, "rm", "/")
    assert (empty.status, empty.stderr) == (1, "Container name cannot be empty\n")


def test_rename(engine: FakeDaemon) -> None:
    engine.reply("POST", "/containers/a/rename", b"", status=204)
    assert run(engine, "rename", "a", "b").status == 0
    assert engine.last("POST", "/containers/a/rename").query == [("name", "b")]
    engine.error("POST", "/containers/x/rename", 409, "name b is in use")
    failed = run(engine, "container", "rename", "x", "b")
    assert (failed.status, failed.stderr) == (
        1,
        "Error response from daemon: name b is in use\nError: failed to rename container named x\n",
    )


# -- ps -----------------------------------------------------------------------------------

CONTAINERS = [
    {
        "Id": "a" * 64,
        "Names": ["/web", "/other/link"],
        "Image": "busybox",
        "ImageID": "sha256:" + "b" * 64,
        "Command": "sh -c 'while true; do sleep 1; done'",
        "Created": NOW - 3600 * 3,
        "Ports": [
            {"IP": "0.0.0.0", "PrivatePort": 80, "PublicPort": 8080, "Type": "tcp"},
            {"IP": "::", "PrivatePort": 80, "PublicPort": 8080, "Type": "tcp"},
            {"PrivatePort": 443, "Type": "tcp"},
            {"PrivatePort": 444, "Type": "tcp"},
            {"IP": "0.0.0.0", "PrivatePort": 53, "PublicPort": 53, "Type": "udp"},
        ],
        "Labels": {"a": "1", "b": "2"},
        "State": "running",
        "Status": "Up 3 hours",
        "SizeRw": 12,
        "SizeRootFs": 4261000,
        "Mounts": [{"Name": "averyveryverylongvolumename", "Source": "/x", "Driver": "local"}],
        "NetworkSettings": {"Networks": {"bridge": {}}},
    },
    {
        "Id": "c" * 64,
        "Names": ["/db"],
        "Image": "docker.io/library/busybox:latest@sha256:" + "d" * 64,
        "ImageID": "sha256:" + "e" * 64,
        "Command": "true",
        "Created": NOW - 86400 * 2,
        "Ports": [],
        "Labels": {},
        "State": "exited",
        "Status": "Exited (0) 2 days ago",
        "SizeRw": 0,
    },
    {"Id": "f" * 64},
]


def test_ps_table_as_docker_prints_it(engine: FakeDaemon) -> None:
    """The same list docker 28.2.2 printed (recorded against the same fake)."""
    engine.reply("GET", "/containers/json", CONTAINERS)
    result = run(engine, "ps")
    assert (result.status, result.stderr) == (0, "")
    ports = "0.0.0.0:53->53/udp, 443-444/tcp, 0.0.0.0:8080->80/tcp, [::]:8080->80/tcp"
    assert result.out.splitlines() == [
        "CONTAINER ID   IMAGE            COMMAND                  CREATED        STATUS"
        "                  PORTS" + " " * 70 + "NAMES",
        'aaaaaaaaaaaa   busybox          "sh -c \'while true; …"   3 hours ago    Up 3 hours'
        f"              {ports}   web",
        'cccccccccccc   busybox:latest   "true"                   2 days ago     '
        "Exited (0) 2 days ago" + " " * 78 + "db",
        'ffffffffffff   <no image>       ""                       56 years ago',
    ]
    assert engine.only().query == []
    sized = run(engine, "ps", "-s").out.splitlines()
    assert sized[0].endswith("NAMES     SIZE")
    assert sized[1].endswith("web       12B (virtual 4.26MB)")
    assert engine.last("GET", "/containers/json").query == [("size", "1")]
    full = run(engine, "ps", "--no-trunc").out.splitlines()
    assert full[1].startswith("a" * 64 + "   busybox ")
    assert full[1].endswith("web,other/link")
    assert "docker.io/library/busybox:latest@sha256:" in full[2]


def test_ps_formats_and_query(engine: FakeDaemon) -> None:
    engine.reply("GET", "/containers/json", CONTAINERS[:2])
    as_json = run(engine, "ps", "--format", "json").out.splitlines()
    first = json.loads(as_json[0])
    assert list(first) == sorted(first)
    assert first["Ports"].startswith("0.0.0.0:53->53/udp")
    assert '"Ports":"0.0.0.0:53-\\u003e53/udp' in as_json[0]  # escaped as Go marshals it
    assert (first["Mounts"], first["LocalVolumes"], first["Platform"]) == (
        "averyveryveryl…",
        "1",
        None,
    )
    fields = run(engine, "ps", "--format", '{{.Labels}}|{{.Label "a"}}|{{.Networks}}|{{.State}}')
    assert fields.out == "a=1,b=2|1|bridge|running\n|||exited\n"
    titled = run(
        engine, "ps", "--format", 'table {{.ID}}\\t{{.Label "com.x.my-label"}}\\t{{.Size}}'
    )
    assert titled.out.splitlines()[0] == "CONTAINER ID   my label   SIZE"
    assert engine.last("GET", "/containers/json").query == [("size", "1")]  # .Size asks for it
    quiet = run(engine, "ps", "-q", "-a", "-n", "3", "--filter", "status=exited", "-f", "label=a=b")
    assert quiet.out == "aaaaaaaaaaaa\ncccccccccccc\n"
    query = dict(engine.last("GET", "/containers/json").query)
    assert (query["all"], query["limit"]) == ("1", "3")
    assert json.loads(query["filters"]) == {"status": {"exited": True}, "label": {"a=b": True}}
    run(engine, "container", "ls", "-l")
    assert engine.last("GET", "/containers/json").query == [("limit", "1")]


# -- top / port / inspect / prune ---------------------------------------------------------


def test_top_columns(engine: FakeDaemon) -> None:
    engine.reply(
        "GET",
        "/containers/web/top",
        {
            "Titles": ["PID", "USER", "TIME", "COMMAND"],
            "Processes": [
                ["1", "root", "0:00", "sh -c sleep 100"],
                ["12345", "nobody", "0:01", "sleep 100"],
            ],
        },
    )
    result = run(engine, "top", "web", "-eo", "pid")
    assert result.out.splitlines() == [
        "PID                 USER                TIME                COMMAND",
        "1                   root                0:00                sh -c sleep 100",
        "12345               nobody              0:01                sleep 100",
    ]
    assert engine.only().query == [("ps_args", "-eo pid")]


def test_port_lists_and_looks_up(engine: FakeDaemon) -> None:
    engine.reply(
        "GET",
        "/containers/web/json",
        {
            "NetworkSettings": {
                "Ports": {
                    "80/tcp": [
                        {"HostIp": "0.0.0.0", "HostPort": "8080"},
                        {"HostIp": "::", "HostPort": "8080"},
                    ],
                    "53/udp": [{"HostIp": "0.0.0.0", "HostPort": "53"}],
                    "9000/tcp": None,
                    "10000/tcp": [{"HostIp": "127.0.0.1", "HostPort": "10000"}],
                }
            }
        },
    )
    assert run(engine, "port", "web").out == (
        "53/udp -> 0.0.0.0:53\n80/tcp -> 0.0.0.0:8080\n80/tcp -> [::]:8080\n"
        "10000/tcp -> 127.0.0.1:10000\n"
    )
    assert run(engine, "container", "port", "web", "80").out == "0.0.0.0:8080\n[::]:8080\n"
    missing = run(engine, "port", "web", "80/udp")
    assert (missing.status, missing.stderr) == (
        1,
        "Error: No public port '80/udp' published for web\n",
    )
    invalid = run(engine, "port", "web", "abc")
    assert invalid.stderr == (
        'Error: invalid port (abc): strconv.ParseUint: parsing "abc": invalid syntax\n'
    )
    invalid_syntax, out_of_range = "invalid syntax", "value out of range"
    for text, reason in [("1_0", invalid_syntax), ("+80", invalid_syntax), ("70000", out_of_range)]:
        refused = run(engine, "port", "web", text)
        assert (refused.status, refused.stderr) == (
            1,
            f'Error: invalid port ({text}): strconv.ParseUint: parsing "{text}": {reason}\n',
        )


def test_container_inspect_and_top_level_inspect(engine: FakeDaemon) -> None:
    engine.reply("GET", "/containers/web/json", {"Id": CID, "State": {"Status": "running"}})
    engine.error("GET", "/containers/nosuch/json", 404, "No such container: nosuch")
    result = run(engine, "container", "inspect", "-s", "-f", "{{.State.Status}}", "web", "nosuch")
    assert (result.status, result.out) == (1, "running\n")
    assert result.stderr == "Error response from daemon: No such container: nosuch\n"
    assert engine.last("GET", "/containers/web/json").query == [("size", "1")]
    top = run(engine, "inspect", "--format", "{{.Id}}", "web")
    assert (top.status, top.out) == (0, f"{CID}\n")
    assert engine.calls()[-1] == ("GET", "/containers/web/json")


def test_container_prune(engine: FakeDaemon) -> None:
    engine.reply(
        "POST",
        "/containers/prune",
        {"ContainersDeleted": ["a" * 64, "c" * 64], "SpaceReclaimed": 1234567},
    )
    result = run(engine, "container", "prune", "-f", "--filter", "until=24h")
    assert result.out == (
        f"Deleted Containers:\n{'a' * 64}\n{'c' * 64}\n\nTotal reclaimed space: 1.235MB\n"
    )
    assert json.loads(dict(engine.only().query)["filters"]) == {"until": {"24h": True}}
    declined = run(engine, "container", "prune", stdin=b"n\n")
    assert (declined.status, declined.out) == (
        0,
        "WARNING! This will remove all stopped containers.\n"
        "Are you sure you want to continue? [y/N] ",
    )


# -- stats --------------------------------------------------------------------------------

SAMPLE = {
    "id": "a" * 64,
    "name": "/web",
    "read": "2024-01-01T00:00:01Z",
    "preread": "2024-01-01T00:00:00Z",
    "cpu_stats": {
        "cpu_usage": {"total_usage": 300_000_000},
        "system_cpu_usage": 20_000_000_000,
        "online_cpus": 4,
    },
    "precpu_stats": {
        "cpu_usage": {"total_usage": 100_000_000},
        "system_cpu_usage": 10_000_000_000,
        "online_cpus": 4,
    },
    "memory_stats": {
        "usage": 10_485_760,
        "limit": 2_147_483_648,
        "stats": {"inactive_file": 1_048_576},
    },
    "networks": {"eth0": {"rx_bytes": 1234, "tx_bytes": 5_678_000}},
    "blkio_stats": {
        "io_service_bytes_recursive": [
            {"op": "read", "value": 4096},
            {"op": "write", "value": 1_000_000},
        ]
    },
    "pids_stats": {"current": 3},
}


def test_stats_no_stream_as_docker_prints_it(engine: FakeDaemon) -> None:
    engine.reply("GET", "/containers/web/stats", SAMPLE)
    result = run(engine, "stats", "--no-stream", "web")
    assert result.out.splitlines() == [
        "CONTAINER ID   NAME      CPU %     MEM USAGE / LIMIT   MEM %     NET I/O"
        "           BLOCK I/O     PIDS",
        "aaaaaaaaaaaa   web       8.00%     9MiB / 2GiB         0.44%     1.23kB / 5.68MB"
        "   4.1kB / 1MB   3",
    ]
    assert engine.only().query == [("stream", "0")]
    as_json = run(engine, "stats", "--no-stream", "--format", "json", "web")
    assert as_json.out == (
        '{"BlockIO":"4.1kB / 1MB","CPUPerc":"8.00%","Container":"web","ID":"aaaaaaaaaaaa",'
        '"MemPerc":"0.44%","MemUsage":"9MiB / 2GiB","Name":"web","NetIO":"1.23kB / 5.68MB",'
        '"PIDs":"3"}\n'
    )
    cgroup_v1 = {
        **SAMPLE,
        "memory_stats": {"usage": 3 << 20, "limit": 0, "stats": {"total_inactive_file": 1 << 20}},
    }
    engine.reply("GET", "/containers/web/stats", cgroup_v1)
    v1 = run(engine, "stats", "--no-stream", "--format", "{{.MemUsage}} {{.MemPerc}}", "web")
    assert v1.out == "2MiB / 0B 0.00%\n"
    engine.error("GET", "/containers/nosuch/stats", 404, "No such container: nosuch")
    missing = run(engine, "stats", "--no-stream", "nosuch")
    assert (missing.status, missing.out, missing.stderr) == (
        1,
        "",
        "Error response from daemon: No such container: nosuch\n",
    )


def test_stats_all_lists_containers_and_streams_redraws(engine: FakeDaemon) -> None:
    engine.reply("GET", "/containers/json", [{"Id": "a" * 64}])
    engine.reply("GET", f"/containers/{'a' * 12}/stats", SAMPLE)
    listed = run(engine, "stats", "--no-stream", "-a")
    assert listed.out.splitlines()[1].startswith("aaaaaaaaaaaa   web       8.00%")
    assert engine.calls() == [("GET", "/containers/json"), ("GET", f"/containers/{'a' * 12}/stats")]
    assert engine.last("GET", "/containers/json").query == [("all", "1")]
    line = json.dumps(SAMPLE).encode() + b"\n"
    engine.reply(
        "GET", "/containers/web/stats", b"", chunks=[line] * 200, content_type="application/json"
    )
    output = stream_for(engine, 2.0, "stats", "--format", "{{.Name}} {{.CPUPerc}}", "web")
    frames = output.split(b"\033[H")
    assert len(frames) >= 3
    assert frames[1] == b"web 8.00%\033[K\n\033[J"


# -- volumes ------------------------------------------------------------------------------


def test_volume_create_ls_inspect_rm_prune(engine: FakeDaemon) -> None:
    engine.reply("POST", "/volumes/create", {"Name": "myvol", "Driver": "local"}, status=201)
    made = run(
        engine,
        "volume",
        "create",
        "-d",
        "x",
        "-o",
        "a=b",
        "-o",
        "c=d",
        "--label",
        "l=1",
        "--label",
        "m",
        "myvol",
    )
    assert (made.status, made.out) == (0, "myvol\n")
    assert json.dumps(engine.only().json()) == json.dumps(
        {
            "Driver": "x",
            "DriverOpts": {"a": "b", "c": "d"},
            "Labels": {"l": "1", "m": ""},
            "Name": "myvol",
        }
    )
    run(engine, "volume", "create")
    assert engine.last("POST", "/volumes/create").json() == {"Driver": "local"}

    volumes = [
        {
            "Name": "vol10",
            "Driver": "local",
            "Mountpoint": "/m",
            "Labels": {"a": "b"},
            "Scope": "local",
        },
        {"Name": "vol9", "Driver": "local", "UsageData": {"Size": 2000, "RefCount": 1}},
    ]
    engine.reply("GET", "/volumes", {"Volumes": volumes, "Warnings": None})
    assert (
        run(engine, "volume", "ls").out
        == "DRIVER    VOLUME NAME\nlocal     vol9\nlocal     vol10\n"
    )
    assert run(engine, "volume", "list", "-q", "-f", "dangling=true").out == "vol9\nvol10\n"
    assert json.loads(dict(engine.last("GET", "/volumes").query)["filters"]) == {
        "dangling": {"true": True}
    }
    as_json = run(engine, "volume", "ls", "--format", "json").out.splitlines()
    assert json.loads(as_json[1]) == {
        "Availability": "N/A",
        "Driver": "local",
        "Group": "N/A",
        "Labels": "a=b",
        "Links": "N/A",
        "Mountpoint": "/m",
        "Name": "vol10",
        "Scope": "local",
        "Size": "N/A",
        "Status": "N/A",
    }
    usage = run(engine, "volume", "ls", "--format", '{{.Name}} {{.Links}} {{.Size}} {{.Label "a"}}')
    assert usage.out == "vol9 1 2kB \nvol10 N/A N/A b\n"

    engine.reply("GET", "/volumes/myvol", {"Name": "myvol", "Driver": "local"})
    engine.error("GET", "/volumes/nosuch", 404, "get nosuch: no such volume")
    inspected_ = run(engine, "volume", "inspect", "-f", "{{.Driver}}", "myvol", "nosuch")
    assert (inspected_.status, inspected_.out, inspected_.stderr) == (
        1,
        "local\n",
        "Error response from daemon: get nosuch: no such volume\n",
    )

    engine.reply("DELETE", "/volumes/myvol", b"", status=204)
    engine.error("DELETE", "/volumes/nosuch", 404, "get nosuch: no such volume")
    removed = run(engine, "volume", "rm", "-f", "myvol", "nosuch")
    assert (removed.status, removed.out) == (1, "myvol\n")
    assert engine.last("DELETE", "/volumes/myvol").query == [("force", "1")]

    engine.reply(
        "POST", "/volumes/prune", {"VolumesDeleted": ["myvol", "other"], "SpaceReclaimed": 2000}
    )
    pruned = run(engine, "volume", "prune", "-f", "-a", "--filter", "label=x")
    assert pruned.out == "Deleted Volumes:\nmyvol\nother\n\nTotal reclaimed space: 2kB\n"
    assert json.loads(dict(engine.last("POST", "/volumes/prune").query)["filters"]) == {
        "label": {"x": True},
        "all": {"true": True},
    }
    asked = run(engine, "volume", "prune", stdin=b"n\n")
    assert asked.out == (
        "WARNING! This will remove anonymous local volumes not used by at least one container."
        "\nAre you sure you want to continue? [y/N] "
    )


# -- a real terminal ----------------------------------------------------------------------


def test_run_it_on_a_terminal_is_raw_resized_and_restored(
    engine: FakeDaemon, tmp_path: Path
) -> None:
    created(engine)
    attach = engine.hijack(f"{CONTAINER}/attach", output=[b"# "], content_type=RAW, until="/done")
    engine.reply("POST", f"{CONTAINER}/wait", {"StatusCode": 7, "Error": None}, after="/done")
    engine.reply("POST", f"{CONTAINER}/start", b"", status=204)
    engine.reply("POST", f"{CONTAINER}/resize", b"", status=200)
    engine.reply("POST", f"{CONTAINER}/kill", b"", status=204)
    engine.reply("POST", "/done", b"", status=204)
    script = (
        f"cd {tmp_path}; stty -g > before; "
        f"{sys.executable} -m pydocker -H {engine.host} run -it --rm busybox sh; "
        "echo status=$?; stty -g > after"
    )
    term = Terminal(["sh", "-c", script], rows=33, cols=91)
    term.expect("# ")
    term.send("ls\r\x03")  # raw: the keys, ctrl-c too, go to the container as typed
    eventually(lambda: bytes(attach.stdin) == b"ls\r\x03")
    assert body_of(engine)["HostConfig"]["ConsoleSize"] == [33, 91]
    assert engine.last("POST", f"{CONTAINER}/resize").query == [("h", "33"), ("w", "91")]
    term.resize(40, 120)  # SIGWINCH: forwarded (sig-proxy), then the tty resized
    eventually(
        lambda: engine.last("POST", f"{CONTAINER}/resize").query == [("h", "40"), ("w", "120")]
    )
    assert engine.last("POST", f"{CONTAINER}/kill").query == [("signal", "WINCH")]
    resizes = [i for i, entry in enumerate(engine.log) if entry == f"POST {CONTAINER}/resize"]
    assert resizes[0] < engine.log.index(f"POST {CONTAINER}/kill") < resizes[-1]
    with httpx.Client(transport=httpx.HTTPTransport(uds=str(engine.socket))) as http:
        http.post("http://fake/done")  # the container exits
    assert term.wait() == 0
    assert "status=7" in term.output.decode()
    assert (tmp_path / "after").read_text() == (tmp_path / "before").read_text()


def eventually(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)
