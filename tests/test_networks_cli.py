"""The real docker CLI with pydockerd's networks: user-defined bridge networks, names that
resolve, isolation, published ports from the host, connect and disconnect, and nothing left
behind. All traffic stays on loopback and in namespaces the tests create."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from pydockerd.testing.daemon import DaemonNetwork, DaemonProcess

from tests.helpers import DOCKER, free_port, wait_for

pytestmark = pytest.mark.privileged

SERVE = (
    "mkdir -p /www && echo hello from $(hostname) > /www/index.html && exec httpd -f -p 80 -h /www"
)


def run(engine: DaemonProcess, *args: str) -> tuple[int, str, str]:
    result = subprocess.run(
        [DOCKER, *args], env=engine.env, capture_output=True, text=True, timeout=60, check=False
    )
    return result.returncode, result.stdout, result.stderr


def ok(engine: DaemonProcess, *args: str) -> str:
    code, out, err = run(engine, *args)
    assert code == 0, f"docker {' '.join(args)}: {err}"
    return out


def inspect(engine: DaemonProcess, *what: str) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(ok(engine, "inspect", *what))[0]
    return result


def net(engine: DaemonProcess) -> DaemonNetwork:
    """The test daemon's own network numbers and names."""
    assert engine.network is not None
    return engine.network


def links() -> set[str]:
    out = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=True).stdout
    return {line.split(":")[1].strip().split("@")[0] for line in out.splitlines()}


def http_get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        body: str = response.read().decode()
        return body


def test_containers_on_a_network_reach_each_other_by_name(engine: DaemonProcess) -> None:
    ok(engine, "network", "create", "appnet")
    try:
        ok(engine, "run", "-d", "--name", "web", "--network", "appnet", "--network-alias", "www",
           "-h", "webhost", "busybox", "sh", "-c", SERVE)  # fmt: skip
        for name in ("web", "www", "webhost"):
            code, out, err = run(engine, "run", "--rm", "--network", "appnet", "busybox",
                                 "wget", "-qO-", f"http://{name}/")  # fmt: skip
            assert (code, out) == (0, "hello from webhost\n"), (name, err)
        code, out, _ = run(engine, "run", "--rm", "--network", "appnet", "busybox",
                           "nslookup", "web")  # fmt: skip
        address = inspect(engine, "web")["NetworkSettings"]["Networks"]["appnet"]["IPAddress"]
        assert address in out
        # a name nobody knows fails at once (the upstream answers nothing), it does not hang
        code, out, err = run(engine, "run", "--rm", "--network", "appnet", "busybox",
                             "nslookup", "no-such-name.invalid")  # fmt: skip
        assert code != 0
    finally:
        run(engine, "rm", "-f", "web")
        run(engine, "network", "rm", "appnet")


def test_different_networks_cannot_reach_each_other(engine: DaemonProcess) -> None:
    ok(engine, "network", "create", "left")
    ok(engine, "network", "create", "right")
    try:
        ok(
            engine,
            "run",
            "-d",
            "--name",
            "lefty",
            "--network",
            "left",
            "busybox",
            "sh",
            "-c",
            SERVE,
        )
        address = inspect(engine, "lefty")["NetworkSettings"]["Networks"]["left"]["IPAddress"]
        assert _fetch(engine, "left", f"http://{address}/").startswith("hello")
        assert _fetch(engine, "right", f"http://{address}/") == "rc=143\n"  # cut by timeout
        code, _, _ = run(engine, "run", "--rm", "--network", "right", "busybox",
                         "nslookup", "lefty")  # fmt: skip
        assert code != 0  # not a name on this network
    finally:
        run(engine, "rm", "-f", "lefty")
        run(engine, "network", "rm", "left", "right")


def test_a_published_port_answers_on_the_hosts_loopback(engine: DaemonProcess) -> None:
    port = free_port()
    container_id = ok(engine, "run", "-d", "--name", "published", "-p", f"127.0.0.1:{port}:80",
                      "busybox", "sh", "-c", SERVE).strip()  # fmt: skip
    try:
        wait_for(lambda: _answers(port), what="the published port")
        assert http_get(f"http://127.0.0.1:{port}/").startswith("hello from ")
        assert ok(engine, "port", "published") == f"80/tcp -> 127.0.0.1:{port}\n"
        row = ok(engine, "ps", "--format", "{{.Ports}}", "--filter", "name=published")
        assert row.strip() == f"127.0.0.1:{port}->80/tcp"
        ports = inspect(engine, "published")["NetworkSettings"]["Ports"]
        assert ports == {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(port)}]}
        # the port is taken: a second container asking for it fails and leaves nothing
        code, _, err = run(engine, "run", "-d", "--name", "second", "-p", f"127.0.0.1:{port}:80",
                           "busybox", "httpd", "-f")  # fmt: skip
        assert code == 125
        assert f"Bind for 127.0.0.1:{port} failed: port is already allocated" in err
        assert inspect(engine, "second")["State"]["Running"] is False
        assert not inspect(engine, "second")["NetworkSettings"]["Networks"]["bridge"]["IPAddress"]
        ok(engine, "rm", "second")
    finally:
        run(engine, "rm", "-f", "published")
    assert not _answers(port)
    assert not [name for name in links() if name.startswith("veth") and container_id in name]


def test_publish_all_ranges_and_udp(engine: DaemonProcess) -> None:
    ok(engine, "run", "-d", "--name", "many", "--expose", "90", "-P", "-p", "127.0.0.1::81/udp",
       "busybox", "sleep", "60")  # fmt: skip
    try:
        lines = sorted(ok(engine, "port", "many").splitlines())
        assert re.fullmatch(r"81/udp -> 127\.0\.0\.1:\d+", lines[0])
        assert re.fullmatch(r"90/tcp -> 0\.0\.0\.0:\d+", lines[1])
    finally:
        run(engine, "rm", "-f", "many")


def test_udp_round_trip_through_a_published_port(engine: DaemonProcess) -> None:
    port = free_port()
    ok(engine, "run", "-d", "--name", "udpecho", "-p", f"127.0.0.1:{port}:7/udp",
       "busybox", "sleep", "60")  # fmt: skip
    pid = inspect(engine, "udpecho")["State"]["Pid"]
    # busybox has no UDP server: an echo server of the host's Python, in the container's
    # network namespace
    echo = (
        "import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM);"
        " s.bind(('0.0.0.0', 7));\nwhile True: data, peer = s.recvfrom(100); s.sendto(data, peer)"
    )
    server = subprocess.Popen(["nsenter", f"--net=/proc/{pid}/ns/net", sys.executable, "-c", echo])
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(1)

            def echoed() -> bool:
                sock.sendto(b"ping", ("127.0.0.1", port))
                try:
                    return sock.recv(100) == b"ping"
                except TimeoutError:
                    return False

            wait_for(echoed, timeout=20, what="a UDP echo")
    finally:
        server.kill()
        server.wait()
        run(engine, "rm", "-f", "udpecho")


def test_connect_and_disconnect_a_running_container(engine: DaemonProcess) -> None:
    ok(engine, "network", "create", "--subnet", f"10.{net(engine).number}.250.0/24", "extra")
    ok(engine, "run", "-d", "--name", "mover", "busybox", "sleep", "60")
    try:
        ok(engine, "network", "connect", "--ip", f"10.{net(engine).number}.250.9", "extra", "mover")
        addresses = ok(engine, "exec", "mover", "ip", "-o", "-4", "addr")
        assert f"10.{net(engine).number}.250.9/24" in addresses
        assert "eth1" in addresses
        networks = inspect(engine, "mover")["NetworkSettings"]["Networks"]
        assert set(networks) == {"bridge", "extra"}
        ok(engine, "network", "disconnect", "extra", "mover")
        assert "eth1" not in ok(engine, "exec", "mover", "ip", "-o", "-4", "addr")
        code, _, err = run(engine, "network", "disconnect", "extra", "mover")
        assert code == 1
        assert "is not connected to network extra" in err
    finally:
        run(engine, "rm", "-f", "mover")
        run(engine, "network", "rm", "extra")


def test_internal_networks_have_no_way_out(engine: DaemonProcess) -> None:
    ok(engine, "network", "create", "--internal", "sealed")
    try:
        out = ok(engine, "run", "--rm", "--network", "sealed", "busybox", "ip", "route")
        assert "default" not in out
        # its names resolve; others are forwarded nowhere and fail at once
        ok(engine, "run", "-d", "--name", "insider", "--network", "sealed", "busybox",
           "sleep", "60")  # fmt: skip
        address = inspect(engine, "insider")["NetworkSettings"]["Networks"]["sealed"]["IPAddress"]
        code, out, err = run(engine, "run", "--rm", "--network", "sealed", "busybox",
                             "nslookup", "insider")  # fmt: skip
        assert (code, address in out) == (0, True), err
        code, out, _ = run(engine, "run", "--rm", "--network", "sealed", "busybox",
                           "nslookup", "example.com")  # fmt: skip
        assert code != 0
        assert "sealed" in ok(
            engine,
            "network",
            "ls",
            "--filter",
            "name=sealed",
            "--format",
            "{{.Name}} {{.Internal}}",
        )
    finally:
        run(engine, "rm", "-f", "insider")
        run(engine, "network", "rm", "sealed")


def test_network_commands_and_what_they_leave(engine: DaemonProcess) -> None:
    network_id = ok(
        engine,
        "network",
        "create",
        "--subnet",
        f"10.{net(engine).number}.251.0/24",
        "--gateway",
        f"10.{net(engine).number}.251.254",
        "--label",
        "k=v",
        "tidy",
    ).strip()
    body = json.loads(ok(engine, "network", "inspect", "tidy"))[0]
    assert body["IPAM"]["Config"] == [
        {
            "Subnet": f"10.{net(engine).number}.251.0/24",
            "Gateway": f"10.{net(engine).number}.251.254",
        }
    ]
    assert body["Labels"] == {"k": "v"}
    listed = ok(engine, "network", "ls", "--format", "{{.Name}} {{.Driver}}")
    assert {"bridge bridge", "host host", "none null", "tidy bridge"} <= set(listed.split("\n"))
    code, _, err = run(engine, "network", "create", "tidy")
    assert code == 1
    assert "network with name tidy already exists" in err
    for driver in ("host", "null"):
        code, _, err = run(engine, "network", "create", "-d", driver, "another")
        assert code == 1
        assert f'only one instance of "{driver}" network is allowed' in err
    code, _, err = run(engine, "network", "rm", "bridge")
    assert code == 1
    assert "bridge is a pre-defined network and cannot be removed" in err
    device = f"{net(engine).bridge_prefix}{network_id[:8]}"
    assert device in links()
    assert ok(engine, "network", "prune", "-f").startswith("Deleted Networks:\ntidy\n")
    assert device not in links()
    tables = subprocess.run(
        ["nft", "list", "ruleset"], capture_output=True, text=True, check=True
    ).stdout
    assert device not in tables


def test_networks_and_ports_survive_a_daemon_restart(busybox_engine_factory: Any) -> None:
    engine = busybox_engine_factory()
    port = free_port()
    ok(engine, "network", "create", "durable")
    ok(engine, "run", "-d", "--name", "served", "--network", "durable",
       "-p", f"127.0.0.1:{port}:80", "busybox", "sh", "-c", SERVE)  # fmt: skip
    wait_for(lambda: _answers(port), what="the published port")
    engine.restart(kill=True)
    assert http_get(f"http://127.0.0.1:{port}/").startswith("hello from ")
    code, out, err = run(engine, "run", "--rm", "--network", "durable", "busybox",
                         "wget", "-qO-", "http://served/")  # fmt: skip
    assert (code, out.startswith("hello")) == (0, True), err
    ok(engine, "rm", "-f", "served")
    ok(engine, "network", "rm", "durable")


def _fetch(engine: DaemonProcess, network: str, url: str) -> str:
    """What a container on ``network`` gets from ``url`` within 3 s, else ``rc=<status>``.
    (busybox's wget -T crashes, and a timeout that is PID 1 cannot kill: a shell is PID 1.)"""
    script = f"timeout 3 wget -qO- {url} || echo rc=$?"
    return ok(engine, "run", "--rm", "--network", network, "busybox", "sh", "-c", script)


def _answers(port: int) -> bool:
    try:
        return http_get(f"http://127.0.0.1:{port}/").startswith("hello")
    except OSError:
        return False


@pytest.fixture
def busybox_engine_factory(busybox_tar: Path) -> Any:
    """Start busybox daemons; each is cleaned up after the test."""
    import contextlib

    from tests.helpers import busybox_daemon

    with contextlib.ExitStack() as started:
        yield lambda: started.enter_context(busybox_daemon(busybox_tar))
