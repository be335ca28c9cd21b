"""pydocker's network commands and published ports against a real daemon: user-defined
bridge networks, containers reaching each other by name, connect/disconnect of a running
container, and a published port answering on 127.0.0.1. No traffic leaves 127.0.0.0/8 or
the networks the tests create (the test kit gives each daemon its own bridges and
addresses)."""

from __future__ import annotations

import ipaddress
import json
import socket
import time
import urllib.request
from collections.abc import Callable

import pytest
from pydockerd.testing.daemon import DaemonProcess

from client.tests.e2e import pydocker

pytestmark = pytest.mark.privileged

SERVE = "mkdir -p /www && echo hello from $(hostname) > /www/index.html && httpd -f -p 80 -h /www"


def ok(daemon: DaemonProcess, *args: str) -> str:
    """The output of a command that must succeed."""
    result = pydocker(daemon, *args)
    assert result.returncode == 0, f"pydocker {' '.join(args)}: {result.stderr}"
    return result.stdout


def eventually(check: Callable[[], str | None], what: str, seconds: float = 20) -> str:
    """Poll ``check`` until it returns text; fail with the last attempt after ``seconds``."""
    deadline = time.monotonic() + seconds
    while True:
        found = check()
        if found is not None:
            return found
        assert time.monotonic() < deadline, f"no {what} after {seconds} s"
        time.sleep(0.3)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def spare_subnet(daemon: DaemonProcess) -> str:
    """A /24 inside the daemon's own address block (next to its default bridge's), so
    that tests on other daemons never meet it."""
    config = json.loads(ok(daemon, "network", "inspect", "-f", "{{json .IPAM.Config}}", "bridge"))
    base = ipaddress.ip_network(config[0]["Subnet"]).network_address
    return f"{base + 250 * 256}/24"


def test_create_ls_inspect_rm_prune(engine: DaemonProcess) -> None:
    listing = ok(engine, "network", "ls").splitlines()
    assert listing[0] == "NETWORK ID     NAME      DRIVER    SCOPE"
    assert {tuple(line.split()[1:]) for line in listing[1:]} >= {
        ("bridge", "bridge", "local"),
        ("host", "host", "local"),
        ("none", "null", "local"),
    }
    subnet = spare_subnet(engine)
    gateway = str(ipaddress.ip_network(subnet).network_address + 1)
    created = ok(
        engine,
        "network",
        "create",
        "--subnet",
        subnet,
        "--gateway",
        gateway,
        "--label",
        "team=a",
        "n1",
    ).strip()
    assert len(created) == 64
    info = json.loads(ok(engine, "network", "inspect", "n1"))[0]
    assert (info["Name"], info["Id"], info["Driver"], info["Scope"]) == (
        "n1",
        created,
        "bridge",
        "local",
    )
    assert info["IPAM"]["Config"] == [{"Subnet": subnet, "Gateway": gateway}]
    ranged = ok(
        engine, "network", "inspect", "-f", "{{range .IPAM.Config}}{{.Subnet}}{{end}}", "n1"
    )
    assert ranged == f"{subnet}\n"
    assert info["Labels"] == {"team": "a"}
    assert ok(engine, "network", "create", "n2").strip() != created
    quiet = ok(engine, "network", "ls", "-q", "--filter", "label=team=a", "--no-trunc")
    assert quiet == f"{created}\n"
    names = ok(engine, "network", "ls", "--filter", "type=custom", "--format", "{{.Name}}")
    assert names == "n1\nn2\n"
    row = ok(engine, "network", "ls", "-f", "name=n1", "--format", "{{.ID}} {{.Driver}} {{.IPv6}}")
    assert row == f"{created[:12]} bridge false\n"
    again = pydocker(engine, "network", "create", "n1")
    assert again.returncode == 1
    assert again.stderr.startswith("Error response from daemon: ")
    missing = pydocker(engine, "network", "rm", "n1", "nosuch")
    assert (missing.returncode, missing.stdout) == (1, "n1\n")
    assert missing.stderr == (
        "Error response from daemon: network nosuch not found\nexit status 1\n"
    )
    assert ok(engine, "network", "rm", "-f", "nosuch") == ""
    unknown = pydocker(engine, "network", "inspect", "nosuch")
    assert (unknown.returncode, unknown.stdout, unknown.stderr) == (
        1,
        "[]\n",
        "Error response from daemon: network nosuch not found\n",
    )
    assert ok(engine, "network", "prune", "-f") == "Deleted Networks:\nn2\n\n"
    assert ok(engine, "network", "ls", "-q", "-f", "type=custom") == ""
    builtin = pydocker(engine, "network", "rm", "bridge")
    assert builtin.returncode == 1
    assert builtin.stderr.startswith("Error response from daemon: ")


def test_containers_on_a_network_reach_each_other_by_name(engine: DaemonProcess) -> None:
    ok(engine, "network", "create", "app")
    ok(engine, "run", "-d", "--network", "app", "--name", "web", "--network-alias", "site",
       "busybox", "sh", "-c", SERVE)  # fmt: skip

    def fetch(name: str) -> Callable[[], str | None]:
        def attempt() -> str | None:
            result = pydocker(
                engine, "run", "--rm", "--network", "app", "busybox", "wget", "-qO-",
                f"http://{name}/",
            )  # fmt: skip
            return result.stdout if result.returncode == 0 else None

        return attempt

    assert eventually(fetch("web"), "answer from web").startswith("hello from ")
    assert eventually(fetch("site"), "answer from the alias").startswith("hello from ")
    found = ok(engine, "run", "--rm", "--network", "app", "busybox", "nslookup", "web")
    address = json.loads(
        ok(engine, "inspect", "-f", "{{json .NetworkSettings.Networks.app}}", "web")
    )["IPAddress"]
    assert address in found
    members = json.loads(ok(engine, "network", "inspect", "-f", "{{json .Containers}}", "app"))
    assert [member["Name"] for member in members.values()] == ["web"]
    assert ok(engine, "ps", "--format", "{{.Names}} {{.Networks}}") == "web app\n"
    busy = pydocker(engine, "network", "rm", "app")
    assert busy.returncode == 1
    assert busy.stderr.endswith("exit status 1\n")


def _addresses(daemon: DaemonProcess, container: str) -> dict[str, str]:
    """``ip -o -4 addr`` inside the container: interface → address/prefix."""
    lines = ok(daemon, "exec", container, "ip", "-o", "-4", "addr").splitlines()
    return {line.split()[1]: line.split()[3] for line in lines}


def test_connect_and_disconnect_a_running_container(engine: DaemonProcess) -> None:
    subnet = spare_subnet(engine)
    ok(engine, "network", "create", "--subnet", subnet, "side")
    ok(engine, "run", "-d", "--name", "box", "busybox", "sleep", "300")
    before = _addresses(engine, "box")
    assert set(before) == {"lo", "eth0"}
    wanted = str(ipaddress.ip_network(subnet).network_address + 42)
    ok(engine, "network", "connect", "--ip", wanted, "--alias", "boxy", "side", "box")
    during = _addresses(engine, "box")
    assert len(during) == 3
    (added,) = set(during) - set(before)
    assert during[added] == f"{wanted}/24"
    settings = json.loads(
        ok(engine, "inspect", "-f", "{{json .NetworkSettings.Networks.side}}", "box")
    )
    assert settings["IPAddress"] == wanted
    every = ok(
        engine, "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}", "box"
    )
    assert wanted in every.split()
    assert "boxy" in settings["Aliases"]
    twice = pydocker(engine, "network", "connect", "side", "box")
    assert twice.returncode == 1
    assert twice.stderr.startswith("Error response from daemon: ")
    ok(engine, "network", "disconnect", "side", "box")
    assert _addresses(engine, "box") == before
    gone = pydocker(engine, "network", "disconnect", "side", "box")
    assert gone.returncode == 1
    unknown = pydocker(engine, "network", "connect", "nosuch", "box")
    assert (unknown.returncode, unknown.stderr) == (
        1,
        "Error response from daemon: network nosuch not found\n",
    )


def test_published_port_answers_on_127_0_0_1(engine: DaemonProcess) -> None:
    port = free_port()
    ok(engine, "run", "-d", "--name", "web", "-p", f"127.0.0.1:{port}:80", "busybox",
       "sh", "-c", SERVE)  # fmt: skip

    def fetch(url: str) -> Callable[[], str | None]:
        def attempt() -> str | None:
            try:
                with urllib.request.urlopen(url, timeout=2) as reply:
                    text: str = reply.read().decode()
            except OSError:
                return None
            return text

        return attempt

    assert eventually(fetch(f"http://127.0.0.1:{port}/"), "answer").startswith("hello from ")
    assert ok(engine, "port", "web") == f"80/tcp -> 127.0.0.1:{port}\n"
    assert ok(engine, "port", "web", "80") == f"127.0.0.1:{port}\n"
    assert ok(engine, "ps", "--format", "{{.Ports}}") == f"127.0.0.1:{port}->80/tcp\n"
    table = ok(engine, "ps").splitlines()
    assert table[1][table[0].index("PORTS") :].startswith(f"127.0.0.1:{port}->80/tcp   ")
    published = ok(engine, "ps", "-q", "--filter", "publish=80")  # docker: by container port
    assert published == ok(engine, "ps", "-q", "--filter", "expose=80")
    assert published.strip() != ""
    bindings = json.loads(ok(engine, "inspect", "-f", "{{json .NetworkSettings.Ports}}", "web"))
    assert bindings == {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(port)}]}
    ok(engine, "run", "-d", "--name", "any", "-p", "127.0.0.1::80", "busybox", "sh", "-c", SERVE)
    chosen = ok(engine, "port", "any", "80/tcp").strip()
    host, _, number = chosen.rpartition(":")
    assert host == "127.0.0.1"
    assert int(number) > 0
    assert eventually(fetch(f"http://{chosen}/"), "answer on the random port").startswith("hello")
    ok(engine, "rm", "-f", "web")
    refused = fetch(f"http://127.0.0.1:{port}/")
    assert eventually(lambda: "closed" if refused() is None else None, "closed port") == "closed"
