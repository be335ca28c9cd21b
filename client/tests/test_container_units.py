"""Units of the container commands: docker's parsers and formatters, one rule at a time."""

from __future__ import annotations

import socket
import threading
from pathlib import Path

import pytest
from pydocker.commands.ps import displayable_ports
from pydocker.commands.runopts import ConfigError, normalize_platform, parse_env_file, parse_ram
from pydocker.commands.stats import stats_row
from pydocker.errors import PydockerError
from pydocker.formatting import Row, Template
from pydocker.hijack import FrameDecoder, Hijacked, detach_sequence, open_hijacked
from pydocker.options import go_parse_int


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("64m", 64 << 20),
        ("1.5g", 3 << 29),
        ("512k", 512 << 10),
        ("1GiB", 1 << 30),
        ("10MB", 10 << 20),
        ("100", 100),
        ("2 m", 2 << 20),
        ("7b", 7),
    ],
)
def test_ram_sizes(text: str, size: int) -> None:
    assert parse_ram(text) == size


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("1x", "invalid suffix: 'x'"),
        ("1kbb", "invalid suffix: 'kbb'"),
        ("m", "invalid size: 'm'"),
        ("1.2.3m", 'strconv.ParseFloat: parsing "1.2.3": invalid syntax'),
    ],
)
def test_ram_refusals(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace(".", r"\.")):
        parse_ram(text)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("0", 0),
        ("-0", 0),
        ("+0x_f", 15),
        ("0_10", 8),
        ("0x_1F", 31),
        ("0B101", 5),
        ("1_0_0", 100),
        ("-9223372036854775808", -(2**63)),
    ],
)
def test_go_integer_literals(text: str, value: int) -> None:
    assert go_parse_int(text, base=0) == value


@pytest.mark.parametrize(
    ("text", "base", "reason"),
    [
        ("1_000", 10, "invalid syntax"),  # underscores only with base 0 (pflag's int flags)
        (" 5", 0, "invalid syntax"),
        ("1_", 0, "invalid syntax"),
        ("0b_", 0, "invalid syntax"),
        ("0_x1", 0, "invalid syntax"),
        ("0__1", 0, "invalid syntax"),
        ("", 0, "invalid syntax"),
        ("+", 10, "invalid syntax"),
        ("\u0661", 10, "invalid syntax"),  # a non-ASCII digit
        ("9223372036854775808", 0, "value out of range"),
        ("-0x8000000000000001", 0, "value out of range"),
        ("99999999999999999999x", 10, "value out of range"),  # overflows before the x
        ("9223372036854775808x", 10, "invalid syntax"),
    ],
)
def test_go_integer_refusals(text: str, base: int, reason: str) -> None:
    with pytest.raises(ValueError) as refused:
        go_parse_int(text, base=base)
    assert str(refused.value) == f'strconv.ParseInt: parsing "{text}": {reason}'


def test_platforms_normalize() -> None:
    assert normalize_platform("linux/x86_64") == "linux/amd64"
    assert normalize_platform("Linux/aarch64") == "linux/arm64"
    assert normalize_platform("linux/arm64/v8") == "linux/arm64"
    assert normalize_platform("linux/arm/v7") == "linux/arm/v7"
    assert normalize_platform("linux").count("/") == 1


def test_env_files(tmp_path: Path) -> None:
    env = tmp_path / "env"
    env.write_bytes(b"\xef\xbb\xbfA=1\n  # comment\n\n  B\nC= spaced \r\nMISSING\n")
    found = {"B": "from-env"}
    assert parse_env_file(str(env), found.get) == ["A=1", "B=from-env", "C= spaced "]
    assert parse_env_file(str(env)) == ["A=1", "C= spaced "]  # label files: bare keys go
    env.write_text("BAD KEY=1\n")
    with pytest.raises(ConfigError, match="variable 'BAD KEY' contains whitespaces"):
        parse_env_file(str(env))
    with pytest.raises(ConfigError, match=r"open .*/none: no such file or directory"):
        parse_env_file(str(tmp_path / "none"))


def test_ports_are_grouped_as_docker_shows_them() -> None:
    ports = [
        {"PrivatePort": 445, "Type": "tcp"},
        {"PrivatePort": 443, "Type": "tcp"},
        {"PrivatePort": 444, "Type": "tcp"},
        {"PrivatePort": 447, "Type": "tcp"},
        {"IP": "0.0.0.0", "PrivatePort": 80, "PublicPort": 80, "Type": "tcp"},
        {"IP": "0.0.0.0", "PrivatePort": 81, "PublicPort": 81, "Type": "tcp"},
        {"IP": "::", "PrivatePort": 80, "PublicPort": 80, "Type": "tcp"},
        {"IP": "127.0.0.1", "PrivatePort": 22, "PublicPort": 2222, "Type": "tcp"},
        {"PrivatePort": 53, "Type": "udp"},
    ]
    assert displayable_ports(ports) == (
        "443-445/tcp, 53/udp, 0.0.0.0:80-81->80-81/tcp, [::]:80->80/tcp, 447/tcp, "
        "127.0.0.1:2222->22/tcp"
    )
    assert displayable_ports([]) == ""


def test_frames_whatever_the_chunks() -> None:
    data = b"\x01\x00\x00\x00\x00\x00\x00\x03abc\x02\x00\x00\x00\x00\x00\x00\x01e"
    decoder = FrameDecoder()
    frames = [f for byte in range(len(data)) for f in decoder.feed(data[byte : byte + 1])]
    assert frames == [(1, b"abc"), (2, b"e")]
    with pytest.raises(PydockerError, match="error from daemon in stream: boom"):
        list(FrameDecoder().feed(b"\x03\x00\x00\x00\x00\x00\x00\x04boom"))
    with pytest.raises(PydockerError, match="Unrecognized input header: 9"):
        list(FrameDecoder().feed(b"\x09\x00\x00\x00\x00\x00\x00\x00"))


def test_detach_keys() -> None:
    assert detach_sequence(None) == b"\x10\x11"
    assert detach_sequence("ctrl-x,a,ctrl-@,ctrl-\\,DEL") == b"\x18a\x00\x1c\x7f"
    assert detach_sequence("ctrl-nope") == b"\x10\x11"  # docker warns and uses the default


def test_template_methods_and_row_json() -> None:
    row = Row(B="<b>", A="1", Label=lambda name: {"x": "y"}.get(name, ""))
    assert Template.parse('{{.Label "x"}}/{{.Label "none"}}/{{.A}}').render(row) == "y//1"
    assert Template.parse("{{json .}}").render(row) == '{"A":"1","B":"\\u003cb\\u003e"}'
    assert Template.parse("{{json .}}").render({"B": "<b>"}) == '{"B":"<b>"}'  # raw data


def test_stats_without_a_sample_show_dashes() -> None:
    row = stats_row("web", None)
    assert [row[k] for k in ("Container", "Name", "CPUPerc", "MemUsage", "PIDs")] == [
        "web",
        "--",
        "--",
        "-- / --",
        "--",
    ]


def test_hijack_keeps_bytes_read_with_the_head(tmp_path: Path) -> None:
    """The 101 and the first output arrive in one read: nothing may be lost."""
    path = str(tmp_path / "s.sock")
    server = socket.socket(socket.AF_UNIX)
    server.bind(path)
    server.listen(1)
    received: list[bytes] = []

    def serve() -> None:
        conn, _ = server.accept()
        request = b""
        while b"\r\n\r\n" not in request:
            request += conn.recv(4096)
        received.append(request)
        conn.sendall(
            b"HTTP/1.1 101 UPGRADED\r\nContent-Type: application/vnd.docker.raw-stream\r\n"
            b"Connection: Upgrade\r\nUpgrade: tcp\r\n\r\nfirst bytes"
        )
        received.append(conn.recv(4096))
        conn.sendall(b" and more")
        conn.close()

    thread = threading.Thread(target=serve)
    thread.start()
    conn: Hijacked = open_hijacked(
        f"unix://{path}", "http://localhost", path, "/v1.47/x/attach", headers={"A": "b"}
    )
    assert conn.content_type == "application/vnd.docker.raw-stream"
    conn.send(b"typed")
    assert b"".join(conn) == b"first bytes and more"
    conn.close()
    thread.join(5)
    server.close()
    assert received[0].startswith(b"POST /v1.47/x/attach HTTP/1.1\r\nHost: localhost\r\nA: b\r\n")
    assert b"Connection: Upgrade\r\nUpgrade: tcp\r\n" in received[0]
    assert received[1] == b"typed"
