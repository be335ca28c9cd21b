"""The network commands, and the networking parts of ``create``/``run``, ``ps`` and
``port``, against a fake Engine API: the exact requests and the exact output and exit
status. Bodies in ``data/docker-*network*.json`` were recorded from docker 28.2.2 against
the same fake (``record_docker.py``); expected output is what docker 28.2.2 printed."""

from __future__ import annotations

import json
import shlex
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydocker.commands.network import ipam_config
from pydocker.errors import InvalidArgument
from pydocker.formatting import go_time_string

from client.tests.fakeengine import FakeDaemon, run, serve

DATA = Path(__file__).parent / "data"
NID = "n" * 64
BRIDGE_ID = "f2de39df4171b0dc801e8002d1d999b77256983dfc63041c0f34030aa3977566"
NETWORKS = [
    {
        "Name": "bridge",
        "Id": BRIDGE_ID,
        "Created": "2016-10-19T06:21:00.416543526Z",
        "Scope": "local",
        "Driver": "bridge",
        "EnableIPv4": True,
        "EnableIPv6": False,
        "Internal": False,
        "IPAM": {"Driver": "default", "Config": [{"Subnet": "172.17.0.0/16"}]},
        "Options": {},
        "Labels": {},
    },
    {
        "Name": "none",
        "Id": "e086a3893b05ab69242d3c44e49483a3bbbd3a26b46baa8f61ab797c1088d794",
        "Created": "0001-01-01T00:00:00Z",
        "Scope": "local",
        "Driver": "null",
    },
    {
        "Name": "net10",
        "Id": "a1" * 32,
        "Created": "2025-01-02T03:04:05.123456789+01:00",
        "Scope": "local",
        "Driver": "bridge",
        "EnableIPv6": True,
        "Internal": True,
        "Labels": {"a": "1<&>"},
    },
    {"Name": "net9", "Id": "b2" * 32, "Created": "2025-06-01T10:00:00Z", "Scope": "local",
     "Driver": "bridge", "Labels": None},
    {"Name": "host", "Id": "13e871235c677f196c4e1ecebb9dc733b9b2d2ab589e30c539efeda84a24215e",
     "Created": "0001-01-01T00:00:00Z", "Scope": "local", "Driver": "host"},
]  # fmt: skip
WEB = {
    "Name": "web",
    "Id": "a1" * 32,
    "Created": "2025-01-02T03:04:05.123456789Z",
    "Scope": "local",
    "Driver": "bridge",
    "IPAM": {"Driver": "default", "Options": None, "Config": [{"Subnet": "172.20.0.0/16"}]},
    "Containers": {"c" * 64: {"Name": "box", "IPv4Address": "172.20.0.2/16"}},
    "Labels": {"x": "y"},
}


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[FakeDaemon]:
    with serve(tmp_path) as fake:
        yield fake


def recorded(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((DATA / name).read_text())
    return data


def by_subnet(body: dict[str, Any]) -> str:
    """The body as JSON text, keys in their order, IPAM configs sorted by subnet (docker
    builds them from a Go map, so their order changes from run to run)."""
    ipam = body.get("IPAM")
    if ipam:
        ipam["Config"] = sorted(ipam["Config"], key=lambda c: c["Subnet"])
    return json.dumps(body)


# -- units ----------------------------------------------------------------------------------


def test_go_time_string_is_what_docker_prints_for_created_at() -> None:
    assert go_time_string("2016-10-19T06:21:00.416543526Z") == (
        "2016-10-19 06:21:00.416543526 +0000 UTC"
    )
    assert go_time_string("2025-06-02T03:04:05.100Z") == "2025-06-02 03:04:05.1 +0000 UTC"
    assert go_time_string("") == "0001-01-01 00:00:00 +0000 UTC"
    offset = go_time_string("2025-06-02T03:04:05-04:00")
    assert offset.startswith("2025-06-02 03:04:05 -0400 ")  # then the zone, if local has it


def test_ipam_config_pairs_ranges_gateways_and_aux_addresses_with_their_subnet() -> None:
    assert ipam_config(
        ["10.1.0.0/16", "fd00::/64"],
        ["10.1.1.0/24"],
        ["fd00::1", "::ffff:10.1.0.1"],
        {"h": "10.1.0.5"},
    ) == [
        {
            "Subnet": "10.1.0.0/16",
            "IPRange": "10.1.1.0/24",
            "Gateway": "::ffff:10.1.0.1",
            "AuxiliaryAddresses": {"h": "10.1.0.5"},
        },
        {"Subnet": "fd00::/64", "Gateway": "fd00::1"},
    ]
    with pytest.raises(InvalidArgument, match="no matching subnet for gateway fd01::1"):
        ipam_config(["fd00::/64"], [], ["fd01::1"], {})


# -- create ---------------------------------------------------------------------------------


def created(engine: FakeDaemon) -> None:
    engine.reply("POST", "/networks/create", {"Id": NID, "Warning": ""}, status=201)


@pytest.mark.parametrize("command", list(recorded("docker-network-create.json")))
def test_create_sends_the_body_docker_sends(engine: FakeDaemon, command: str) -> None:
    created(engine)
    result = run(engine, *shlex.split(command))
    assert (result.status, result.out, result.stderr) == (0, f"{NID}\n", "")
    expected = recorded("docker-network-create.json")[command]
    assert by_subnet(engine.only().json()) == by_subnet(expected)


S = "--subnet 10.1.0.0/16"
REFUSED = [
    ("--gateway 10.1.0.1", "every ip-range or gateway must have a corresponding subnet"),
    (f"{S} --gateway 10.1.0.1 --gateway 10.1.0.2", "every ip-range or gateway must have a "
     "corresponding subnet"),
    (f"{S} --gateway 10.2.0.1", "no matching subnet for gateway 10.2.0.1"),
    (f"{S} --gateway bad", "no matching subnet for gateway bad"),
    (f"{S} --subnet 10.1.2.0/24", "multiple overlapping subnet configuration is not supported"),
    (f"{S} --ip-range 10.2.0.0/24", "no matching subnet for range 10.2.0.0/24"),
    (f"{S} --ip-range bad", "invalid CIDR address: bad"),
    (f"{S} --ip-range 10.1.1.0/24 --ip-range 10.1.2.0/24 --subnet 10.2.0.0/16",
     "cannot configure multiple ranges (10.1.2.0/24, 10.1.1.0/24) on the same subnet "
     "(10.1.0.0/16)"),
    (f"{S} --subnet bad", "invalid subnet: invalid CIDR address: bad"),
    ("--subnet bad --gateway 10.1.0.1", "invalid subnet: invalid CIDR address: bad"),
    (f"{S} --aux-address a=10.9.0.1", "no matching subnet for aux-address 10.9.0.1"),
    ("--aux-address a=10.9.0.1", "no matching subnet for aux-address 10.9.0.1"),
]  # fmt: skip


@pytest.mark.parametrize(("args", "message"), REFUSED)
def test_create_refuses_what_docker_refuses_before_sending(
    engine: FakeDaemon, args: str, message: str
) -> None:
    result = run(engine, "network", "create", *args.split(), "n")
    assert (result.status, result.out, result.stderr) == (1, "", f"{message}\n")
    assert engine.calls() == []


def test_create_flag_and_argument_errors(engine: FakeDaemon) -> None:
    label = run(engine, "network", "create", "--label", "a b=c", "n")
    assert (label.status, label.stderr) == (
        125,
        'invalid argument "a b=c" for "--label" flag: label \'a b\' contains whitespaces\n\n'
        "Usage:  pydocker network create [OPTIONS] NETWORK\n\n"
        "Run 'pydocker network create --help' for more information\n",
    )
    empty = run(engine, "network", "create", "--label", "=x", "n")
    assert empty.stderr.startswith(
        'invalid argument "=x" for "--label" flag: invalid label \'=x\': empty name\n'
    )
    flag = run(engine, "network", "create", "--ipv4=maybe", "n")
    assert (flag.status, flag.stderr) == (
        125,
        'invalid argument "maybe" for "--ipv4" flag: strconv.ParseBool: parsing "maybe": '
        "invalid syntax\n\nUsage:  pydocker network create [OPTIONS] NETWORK\n\n"
        "Run 'pydocker network create --help' for more information\n",
    )
    for args in ([], ["a", "b"]):
        count = run(engine, "network", "create", *args)
        assert (count.status, count.stderr) == (
            1,
            "pydocker: 'pydocker network create' requires 1 argument\n\n"
            "Usage:  pydocker network create [OPTIONS] NETWORK\n\n"
            "Run 'pydocker network create --help' for more information\n",
        )
    assert engine.calls() == []


def test_create_reports_the_daemon_error(engine: FakeDaemon) -> None:
    engine.error("POST", "/networks/create", 409, "network with name n1 already exists")
    result = run(engine, "network", "create", "n1")
    assert (result.status, result.out, result.stderr) == (
        1,
        "",
        "Error response from daemon: network with name n1 already exists\n",
    )


# -- ls -------------------------------------------------------------------------------------

TABLE = """\
NETWORK ID     NAME      DRIVER    SCOPE
f2de39df4171   bridge    bridge    local
13e871235c67   host      host      local
b2b2b2b2b2b2   net9      bridge    local
a1a1a1a1a1a1   net10     bridge    local
e086a3893b05   none      null      local
"""


def test_ls_sorts_naturally_and_prints_docker_table(engine: FakeDaemon) -> None:
    engine.reply("GET", "/networks", NETWORKS)
    result = run(engine, "network", "ls")
    assert (result.status, result.out, result.stderr) == (0, TABLE, "")
    assert engine.only().query == []
    assert run(engine, "network", "list", "--format", "table").out == TABLE
    full = run(engine, "network", "ls", "--no-trunc").out.splitlines()
    assert full[0] == "NETWORK ID" + " " * 57 + "NAME      DRIVER    SCOPE"
    assert full[1] == f"{BRIDGE_ID}   bridge    bridge    local"
    quiet = run(engine, "network", "ls", "-q").out
    assert quiet == "f2de39df4171\n13e871235c67\nb2b2b2b2b2b2\na1a1a1a1a1a1\ne086a3893b05\n"
    assert run(engine, "network", "ls", "-q", "--no-trunc").out.splitlines()[0] == BRIDGE_ID
    named = run(engine, "network", "ls", "-q", "--format", "{{.Name}}").out  # the format wins
    assert named == "bridge\nhost\nnet9\nnet10\nnone\n"


def test_ls_formats(engine: FakeDaemon) -> None:
    engine.reply("GET", "/networks", NETWORKS)
    as_json = run(engine, "network", "ls", "--format", "json").out.splitlines()
    assert as_json[0] == (
        '{"CreatedAt":"2016-10-19 06:21:00.416543526 +0000 UTC","Driver":"bridge",'
        '"ID":"f2de39df4171","IPv4":"true","IPv6":"false","Internal":"false","Labels":"",'
        '"Name":"bridge","Scope":"local"}'
    )
    assert '"Labels":"a=1\\u003c\\u0026\\u003e"' in as_json[3]
    table = run(
        engine,
        "network",
        "ls",
        "--format",
        "table {{.ID}}\\t{{.Name}}\\t{{.IPv4}}\\t{{.IPv6}}\\t{{.Internal}}\\t{{.Labels}}\\t"
        "{{.CreatedAt}}",
        env={"TZ": "UTC"},
    )
    assert table.out.splitlines()[0] == (
        "NETWORK ID     NAME      IPV4      IPV6      INTERNAL   LABELS    CREATED AT"
    )
    assert table.out.splitlines()[4] == (
        "a1a1a1a1a1a1   net10     false     true      true       a=1<&>    "
        "2025-01-02 03:04:05.123456789 +0100 +0100"
    )
    labels = run(engine, "network", "ls", "--format", '{{.Name}}|{{.Label "a"}}|{{.Scope}}')
    assert labels.out.splitlines()[3] == "net10|1<&>|local"
    raw = run(engine, "network", "ls", "--format", "raw").out
    assert raw.startswith(
        "network_id: f2de39df4171\nname: bridge\ndriver: bridge\nscope: local\n\n"
        "network_id: 13e871235c67\n"
    )
    assert run(engine, "network", "ls", "-q", "--format", "raw").out.splitlines()[0] == (
        "network_id: f2de39df4171"
    )


def test_ls_filters_and_errors(engine: FakeDaemon) -> None:
    engine.reply("GET", "/networks", NETWORKS)
    args = "-f driver=bridge -f name=net --filter label=a=1 -f dangling=true -f type=custom"
    run(engine, "network", "ls", *args.split(), "-f", "scope=local", "-f", "id=a1")
    assert engine.only().query == [
        (
            "filters",
            '{"dangling":{"true":true},"driver":{"bridge":true},"id":{"a1":true},'
            '"label":{"a=1":true},"name":{"net":true},"scope":{"local":true},'
            '"type":{"custom":true}}',
        )
    ]
    bad = run(engine, "network", "ls", "-f", "bogus")
    assert (bad.status, bad.stderr.splitlines()[0]) == (
        125,
        'invalid argument "bogus" for "-f, --filter" flag: bad format of filter (expected '
        "name=value)",
    )
    unclosed = run(engine, "network", "ls", "--format", "{{.Name")
    assert (unclosed.status, unclosed.stderr) == (
        1,
        "template parsing error: template: :1: unclosed action\n",
    )
    extra = run(engine, "network", "list", "x")
    assert (extra.status, extra.stderr) == (
        1,
        "pydocker: 'pydocker network ls' accepts no arguments\n\n"
        "Usage:  pydocker network ls [OPTIONS]\n\n"
        "Run 'pydocker network ls --help' for more information\n",
    )


# -- inspect / rm / prune -------------------------------------------------------------------


def test_inspect_prints_json_or_the_template_then_the_errors(engine: FakeDaemon) -> None:
    engine.reply("GET", "/networks/web", WEB)
    engine.error("GET", "/networks/nosuch", 404, "network nosuch not found")
    result = run(engine, "network", "inspect", "web")
    assert (result.status, json.loads(result.out)) == (0, [WEB])
    assert result.out.startswith('[\n    {\n        "Name": "web",\n        "Id": ')
    both = run(
        engine, "network", "inspect", "-v", "-f", "{{.Name}} {{json .Labels}}", "web", "nosuch"
    )
    assert (both.status, both.out, both.stderr) == (
        1,
        'web {"x":"y"}\n',
        "Error response from daemon: network nosuch not found\n",
    )
    assert engine.calls()[-2:] == [("GET", "/networks/web"), ("GET", "/networks/nosuch")]
    assert engine.last("GET", "/networks/nosuch").query == [("verbose", "true")]
    missing = run(engine, "network", "inspect", "nosuch")
    assert (missing.status, missing.out) == (1, "[]\n")
    bad = run(engine, "network", "inspect", "-f", "{{.Name", "web")
    assert (bad.status, bad.stderr) == (
        64,
        "template parsing error: template: :1: unclosed action\n",
    )
    none = run(engine, "network", "inspect")
    assert (none.status, none.stderr) == (
        1,
        "pydocker: 'pydocker network inspect' requires at least 1 argument\n\n"
        "Usage:  pydocker network inspect [OPTIONS] NETWORK [NETWORK...]\n\n"
        "See 'pydocker network inspect --help' for more information\n",
    )


def test_inspect_prints_the_daemons_text_where_docker_does(engine: FakeDaemon) -> None:
    """docker 28 prints network, container and image JSON as the daemon wrote it (indented),
    volumes as Go encodes them again (``<`` escaped, UTF-8 kept)."""
    engine.reply("GET", "/networks/odd", {"Name": "w\u00e9b", "Labels": {"x": "<y>&"}})
    engine.reply("GET", "/volumes/odd", {"Name": "w\u00e9b", "Labels": {"x": "<y>&"}})
    network = run(engine, "network", "inspect", "odd").out
    assert network == (
        '[\n    {\n        "Name": "w\\u00e9b",\n        "Labels": {\n'
        '            "x": "<y>&"\n        }\n    }\n]\n'
    )
    volume = run(engine, "volume", "inspect", "odd").out
    assert '"Name": "w\u00e9b"' in volume
    assert '"x": "\\u003cy\\u003e\\u0026"' in volume


def test_rm_tries_every_network_and_ends_with_exit_status_1(engine: FakeDaemon) -> None:
    engine.reply("GET", "/networks/web", WEB)
    engine.reply("DELETE", "/networks/web", b"", status=204)
    engine.error("DELETE", "/networks/nosuch", 404, "network nosuch not found")
    engine.error("DELETE", "/networks/busy", 403, "network busy has active endpoints")
    result = run(engine, "network", "rm", "web", "nosuch", "busy", "web")
    assert (result.status, result.out, result.stderr) == (
        1,
        "web\nweb\n",
        "Error response from daemon: network nosuch not found\n"
        "Error response from daemon: network busy has active endpoints\nexit status 1\n",
    )
    assert engine.calls()[:4] == [
        ("GET", "/networks/web"),
        ("DELETE", "/networks/web"),
        ("GET", "/networks/nosuch"),
        ("DELETE", "/networks/nosuch"),
    ]
    forced = run(engine, "network", "remove", "-f", "nosuch", "web")
    assert (forced.status, forced.out, forced.stderr) == (0, "web\n", "")


def test_rm_of_the_ingress_network_asks_first(engine: FakeDaemon) -> None:
    engine.reply("GET", "/networks/ing", {**WEB, "Name": "ing", "Ingress": True})
    engine.reply("DELETE", "/networks/ing", b"", status=204)
    result = run(engine, "network", "rm", "ing", stdin=b"n\n")
    assert result.status == 0
    assert result.out.startswith("WARNING! Before removing the routing-mesh network, ")
    assert result.out.endswith("Are you sure you want to continue? [y/N] ")
    assert engine.calls() == [("GET", "/networks/ing")]
    assert run(engine, "network", "rm", "ing", stdin=b"y\n").out.endswith("[y/N] ing\n")


def test_prune_asks_unless_forced_and_lists_what_went(engine: FakeDaemon) -> None:
    engine.reply("POST", "/networks/prune", {"NetworksDeleted": ["n1", "n2"]})
    forced = run(engine, "network", "prune", "-f", "--filter", "until=24h", "--filter", "label=a")
    assert (forced.status, forced.out) == (0, "Deleted Networks:\nn1\nn2\n\n")
    assert engine.only().query == [("filters", '{"label":{"a":true},"until":{"24h":true}}')]
    warning = (
        "WARNING! This will remove all custom networks not used by at least one container.\n"
        "Are you sure you want to continue? [y/N] "
    )
    assert run(engine, "network", "prune", stdin=b"y\n").out == (
        f"{warning}Deleted Networks:\nn1\nn2\n\n"
    )
    declined = run(engine, "network", "prune", stdin=b"n\n")
    assert (declined.status, declined.out) == (0, warning)
    assert len(engine.calls()) == 2
    engine.reply("POST", "/networks/prune", {"NetworksDeleted": None})
    assert run(engine, "network", "prune", "-f").out == ""


# -- connect / disconnect -------------------------------------------------------------------


@pytest.mark.parametrize("command", list(recorded("docker-network-connect.json")))
def test_connect_and_disconnect_send_docker_bodies(engine: FakeDaemon, command: str) -> None:
    action = command.split()[1]
    engine.reply("POST", f"/networks/web/{action}", b"", status=200)
    result = run(engine, *shlex.split(command))
    assert (result.status, result.out, result.stderr) == (0, "", "")
    request = engine.only()
    assert (request.method, request.path) == ("POST", f"/networks/web/{action}")
    expected = recorded("docker-network-connect.json")[command]
    assert json.dumps(request.json()) == json.dumps(expected)


def test_connect_errors(engine: FakeDaemon) -> None:
    engine.error("POST", "/networks/nosuch/connect", 404, "network nosuch not found")
    engine.error("POST", "/networks/nosuch/disconnect", 404, "network nosuch not found")
    for action in ("connect", "disconnect"):
        missing = run(engine, "network", action, "nosuch", "box")
        assert (missing.status, missing.stderr) == (
            1,
            "Error response from daemon: network nosuch not found\n",
        )
        count = run(engine, "network", action, "web")
        assert (count.status, count.stderr.splitlines()[0]) == (
            1,
            f"pydocker: 'pydocker network {action}' requires 2 arguments",
        )
    option = run(engine, "network", "connect", "--driver-opt", "novalue", "web", "box")
    assert (option.status, option.stderr) == (
        1,
        "invalid key/value pair format in driver options\n",
    )
    link = run(engine, "network", "connect", "--link", "a:b:c", "web", "box")
    assert (link.status, link.stderr.splitlines()[0]) == (
        125,
        'invalid argument "a:b:c" for "--link" flag: bad format for links: a:b:c',
    )
    priority = run(engine, "network", "connect", "--gw-priority", "x", "web", "box")
    assert priority.status == 125
    assert len(engine.calls()) == 2


# -- run / create, ps, port -----------------------------------------------------------------


@pytest.mark.parametrize("command", list(recorded("docker-create-networking.json")))
def test_create_sends_docker_networking_fields(engine: FakeDaemon, command: str) -> None:
    engine.reply("POST", "/containers/create", {"Id": "c" * 64, "Warnings": []}, status=201)
    result = run(engine, *shlex.split(command))
    assert result.status == 0, result.stderr
    expected = recorded("docker-create-networking.json")[command]
    assert json.dumps(engine.only().json()) == json.dumps(expected)


REFUSED_NETWORKING = [
    ("--network name=mynet,ip=1.2.3.4 --ip 1.2.3.5",
     "conflicting options: cannot specify both --ip and per-network IPv4 address"),
    ("--network name=mynet,alias=a --network-alias b",
     "conflicting options: cannot specify both --network-alias and per-network alias"),
    ("--network name=mynet,ip6=fd00::1 --ip6 fd00::2",
     "conflicting options: cannot specify both --ip6 and per-network IPv6 address"),
    ("--network name=mynet,mac-address=02:42:ac:11:00:02 --mac-address 02:42:ac:11:00:03",
     "conflicting options: cannot specify both --mac-address and per-network MAC address"),
    ("--network name=mynet,link-local-ip=169.254.1.1 --link-local-ip 169.254.1.2",
     "conflicting options: cannot specify both --link-local-ip and per-network link-local "
     "IP addresses"),
    ("--network name=bridge,alias=a",
     "network-scoped aliases are only supported for user-defined networks"),
    ("--network-alias x", "network-scoped aliases are only supported for user-defined networks"),
    ("--network name=mynet --network name=mynet", 'network "mynet" is specified multiple times'),
    ("--network mynet --network host",
     "conflicting options: cannot attach both user-defined and non-user-defined network-modes"),
    ("--mac-address bad", "bad is not a valid mac address"),
    ("--network name=mynet,mac-address=zz", "zz is not a valid mac address"),
    ("--network ''", "no name set for network"),
    ("--publish published=8080", "no port specified: 8080:/tcp<empty>"),
    ("--publish target=80,x", "invalid publish opts format (should be name=value but got 'x')"),
    ("--publish target=x", "invalid containerPort: x"),
    ("-p [fe80::1%eth0]:80:80", "invalid IP address: fe80::1%eth0"),
]  # fmt: skip


@pytest.mark.parametrize(("args", "message"), REFUSED_NETWORKING)
def test_create_refuses_networking_flags_as_docker(
    engine: FakeDaemon, args: str, message: str
) -> None:
    result = run(engine, "create", *shlex.split(args), "busybox")
    assert (result.status, result.stderr) == (
        125,
        f"pydocker: {message}\n\nRun 'pydocker create --help' for more information\n",
    )
    assert engine.calls() == []


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("name=mynet,bogus", "invalid field bogus"),
        ("x:y=z", "invalid field key x:y"),
        ("alias=x", "network name/id is not specified"),
        ("name=mynet,gw-priority=x", "invalid gw-priority (x): invalid syntax"),
        ("name=mynet,driver-opt=novalue", "invalid key value pair format in driver options"),
    ],
)
def test_create_network_flag_errors(engine: FakeDaemon, value: str, reason: str) -> None:
    result = run(engine, "create", "--network", value, "busybox")
    assert result.status == 125
    assert result.stderr.splitlines()[0] == (
        f'invalid argument "{value}" for "--network" flag: {reason}'
    )


def test_create_link_flag_errors_and_the_localhost_dns_warning(engine: FakeDaemon) -> None:
    link = run(engine, "create", "--link", "a:b:c", "busybox")
    assert (link.status, link.stderr.splitlines()[0]) == (
        125,
        'invalid argument "a:b:c" for "--link" flag: bad format for links: a:b:c',
    )
    engine.reply("POST", "/containers/create", {"Id": "c" * 64, "Warnings": []}, status=201)
    result = run(engine, "create", "--dns", "1.1.1.1", "--dns", "::1", "busybox")
    assert result.stderr == "WARNING: Localhost DNS (::1) may fail in containers.\n"


def _container(name: str, ports: list[dict[str, Any]]) -> dict[str, Any]:
    return {"Id": name * 64, "Names": [f"/{name}"], "Image": "busybox", "Command": "httpd",
            "Created": int(time.time()) - 10, "Ports": ports, "Status": "Up 9 seconds"}  # fmt: skip


def _port(ip: str | None, private: int, public: int | None, kind: str = "tcp") -> dict[str, Any]:
    port: dict[str, Any] = {"PrivatePort": private, "Type": kind}
    if ip is not None:
        port |= {"IP": ip, "PublicPort": public}
    return port


def test_ps_ports_as_docker_prints_them(engine: FakeDaemon) -> None:
    containers = [
        _container("a", [_port("0.0.0.0", 80, 18080), _port("::", 80, 18080)]),
        _container("b", [_port("0.0.0.0", 80, 8080), _port("0.0.0.0", 81, 8081),
                         _port("::", 80, 8080), _port("::", 81, 8081)]),
        _container("c", [_port("127.0.0.1", 80, 8080)]),
        _container("f", [_port(None, 80, None), _port(None, 81, None), _port(None, 82, None),
                         _port(None, 90, None, "udp")]),
        _container("g", [_port("0.0.0.0", 53, 53, "udp"), _port("0.0.0.0", 54, 54, "udp"),
                         _port("::", 53, 53, "udp"), _port("::", 54, 54, "udp")]),
        _container("i", [_port("0.0.0.0", 8080, 8080), _port("0.0.0.0", 8081, 8081),
                         _port("0.0.0.0", 8083, 8083), _port("::1", 80, 80)]),
        _container("j", [_port("0.0.0.0", 80, 8080, "sctp"), _port(None, 443, None)]),
        _container("k", []),
    ]  # fmt: skip
    engine.reply("GET", "/containers/json", containers)
    result = run(engine, "ps", "--format", "{{.Names}}: {{.Ports}}")
    assert result.out.splitlines() == [
        "a: 0.0.0.0:18080->80/tcp, [::]:18080->80/tcp",
        "b: 0.0.0.0:8080->80/tcp, [::]:8080->80/tcp, 0.0.0.0:8081->81/tcp, [::]:8081->81/tcp",
        "c: 127.0.0.1:8080->80/tcp",
        "f: 80-82/tcp, 90/udp",
        "g: 0.0.0.0:53-54->53-54/udp, [::]:53-54->53-54/udp",
        "i: 0.0.0.0:8080-8081->8080-8081/tcp, [::1]:80->80/tcp, 0.0.0.0:8083->8083/tcp",
        "j: 443/tcp, 0.0.0.0:8080->80/sctp",
        "k: ",
    ]
    table = run(engine, "ps").out.splitlines()
    assert table[0].index("PORTS") == table[1].index("0.0.0.0:18080->80/tcp")
    run(engine, "ps", "-q", "--filter", "publish=8080/tcp", "--filter", "expose=80-81")
    assert engine.last("GET", "/containers/json").query == [
        ("filters", '{"expose":{"80-81":true},"publish":{"8080/tcp":true}}')
    ]


def test_port_as_docker_prints_it(engine: FakeDaemon) -> None:
    ports = {
        "80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "18080"},
                   {"HostIp": "::", "HostPort": "18080"}],
        "81/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8081"}],
        "53/udp": [{"HostIp": "0.0.0.0", "HostPort": "53"}],
        "9/tcp": None,
        "8000/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8000"}],
    }  # fmt: skip
    engine.reply("GET", "/containers/web/json", {"NetworkSettings": {"Ports": ports}})
    assert run(engine, "port", "web").out == (
        "53/udp -> 0.0.0.0:53\n80/tcp -> 0.0.0.0:18080\n80/tcp -> [::]:18080\n"
        "81/tcp -> 127.0.0.1:8081\n8000/tcp -> 0.0.0.0:8000\n"
    )
    assert run(engine, "port", "web", "80/tcp").out == "0.0.0.0:18080\n[::]:18080\n"
    unpublished = run(engine, "port", "web", "9")
    assert (unpublished.status, unpublished.stderr) == (
        1,
        "Error: No public port '9' published for web\n",
    )
