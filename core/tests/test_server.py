"""Serving the API: ``-H`` values, the unix socket, the TCP guard, TLS, systemd's sockets and
readiness notification. Everything listens for real (port 0, sockets in short temporary dirs)."""

from __future__ import annotations

import grp
import os
import re
import socket
import ssl
import stat
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from loguru import logger
from pydockerd.api.app import create_app
from pydockerd.errors import ConfigError
from pydockerd.plugin import AuthzRequest
from pydockerd.server import Host, _unix_socket, open_sites, parse_host, sd_notify
from pydockerd.settings import DaemonSettings, TLSSettings

from .conftest import MakeDaemon
from .helpers import plugin

OpenSites = Callable[..., Awaitable[web.AppRunner]]


# --------------------------------------------------------------------------------------
# -H values


@pytest.mark.parametrize(
    ("value", "host"),
    [
        ("unix:///run/pydockerd.sock", Host("unix", "/run/pydockerd.sock")),
        ("unix:///tmp/a b.sock", Host("unix", "/tmp/a b.sock")),
        ("/var/run/x.sock", Host("unix", "/var/run/x.sock")),
        ("tcp://127.0.0.1:2375", Host("tcp", "127.0.0.1:2375", "127.0.0.1", 2375)),
        ("tcp://0.0.0.0:2376", Host("tcp", "0.0.0.0:2376", "0.0.0.0", 2376)),
        ("tcp://localhost:1", Host("tcp", "localhost:1", "localhost", 1)),
        ("tcp://:2375", Host("tcp", "127.0.0.1:2375", "127.0.0.1", 2375)),
        ("fd://", Host("fd", "")),
        ("fd://3", Host("fd", "3")),
    ],
)
def test_parse_host(value: str, host: Host) -> None:
    assert parse_host(value) == host


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("tcp://127.0.0.1", "tcp:// needs a port (tcp://HOST:PORT)"),
        ("tcp://127.0.0.1:http", "Port could not be cast to integer"),
        ("tcp://127.0.0.1:70000", "Port out of range"),
        ("unix://relative.sock", "the unix socket path must be absolute"),
        ("unix://", "the unix socket path must be absolute"),
        ("http://127.0.0.1:2375", "use unix://PATH, tcp://HOST:PORT or fd://"),
        ("ssh://me@host", "use unix://PATH, tcp://HOST:PORT or fd://"),
        ("relative.sock", "use unix://PATH, tcp://HOST:PORT or fd://"),
    ],
)
def test_parse_host_errors(value: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_host(value)
    assert str(caught.value).startswith(f"invalid host {value!r}: ")
    assert message in str(caught.value)


# --------------------------------------------------------------------------------------
# the unix socket


def test_unix_socket_mode_and_group(short_tmp: Path) -> None:
    path = short_tmp / "sub" / "d.sock"
    sock = _unix_socket(path, "pydockerd" if _group_exists("pydockerd") else "root")
    try:
        info = path.stat()
        assert stat.S_ISSOCK(info.st_mode)
        assert stat.S_IMODE(info.st_mode) == 0o660
        expected = grp.getgrnam("pydockerd").gr_gid if _group_exists("pydockerd") else 0
        assert (info.st_uid, info.st_gid) == (0, expected)
    finally:
        sock.close()


def test_unix_socket_with_a_missing_group_is_root_owned(short_tmp: Path) -> None:
    lines: list[str] = []
    sink = logger.add(lambda message: lines.append(str(message)), level="WARNING")
    path = short_tmp / "d.sock"
    try:
        sock = _unix_socket(path, "no-such-group-pdt")
        sock.close()
    finally:
        logger.remove(sink)
    assert path.stat().st_gid == 0
    assert any("group 'no-such-group-pdt' does not exist" in line for line in lines)


def test_a_stale_socket_is_replaced(short_tmp: Path) -> None:
    path = short_tmp / "d.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as crashed:
        crashed.bind(str(path))  # closed without unlinking: what a crash leaves
    with (
        socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as naive,
        pytest.raises(OSError, match="Address already in use"),
    ):
        naive.bind(str(path))  # what a daemon that does not clean up would hit
    sock = _unix_socket(path, "root")
    try:
        sock.listen()
        assert stat.S_IMODE(path.stat().st_mode) == 0o660
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
            client.connect(str(path))  # the new one is ours
    finally:
        sock.close()


def test_a_live_socket_is_refused(short_tmp: Path) -> None:
    path = short_tmp / "d.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as live:
        live.bind(str(path))
        live.listen()
        with pytest.raises(ConfigError, match=rf"{path} is in use by another process"):
            _unix_socket(path, "root")
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
            client.connect(str(path))  # still the other process's


def _group_exists(name: str) -> bool:
    try:
        grp.getgrnam(name)
    except KeyError:
        return False
    return True


# --------------------------------------------------------------------------------------
# open_sites: unix, tcp and its guard, TLS


@pytest.fixture
async def serve(make_daemon: MakeDaemon) -> AsyncIterator[OpenSites]:
    """``await serve(*plugins, hosts=[...], tls=..., ...)``: a daemon's API on real listeners
    through :func:`open_sites`; every runner is cleaned up after the test."""
    runners: list[web.AppRunner] = []

    async def start(*plugins: tuple[str, Any], **values: Any) -> web.AppRunner:
        daemon = await make_daemon(*plugins)
        settings = DaemonSettings(
            **{"data_root": daemon.settings.data_root, "exec_root": daemon.settings.exec_root}
            | values
        )
        runner = web.AppRunner(create_app(daemon), access_log=None)
        await runner.setup()
        runners.append(runner)
        await open_sites(runner, settings)
        return runner

    yield start
    for runner in runners:
        await runner.cleanup()


def tcp_port(runner: web.AppRunner) -> int:
    (address,) = runner.addresses
    return int(address[1])


async def test_unix_site_serves_and_tells_plugins_who_called(
    serve: OpenSites, short_tmp: Path
) -> None:
    asked: list[AuthzRequest] = []

    def record(request: AuthzRequest) -> None:
        asked.append(request)

    path = short_tmp / "api.sock"
    await serve(plugin("rec", pydockerd_authorize_request=record), hosts=[f"unix://{path}"])
    assert stat.S_IMODE(path.stat().st_mode) == 0o660
    async with (
        aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=str(path))) as session,
        session.get("http://localhost/v1.47/version") as response,
    ):
        assert response.status == 200
        assert (await response.json())["ApiVersion"] == "1.47"
    (request,) = asked
    assert request.peer is not None
    assert (request.peer.pid, request.peer.uid, request.peer.gid) == (
        os.getpid(),
        os.getuid(),
        os.getgid(),
    )


async def test_tcp_on_loopback_without_tls_is_accepted(serve: OpenSites) -> None:
    runner = await serve(hosts=["tcp://127.0.0.1:0"])
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{tcp_port(runner)}/_ping") as response,
    ):
        assert (response.status, await response.text()) == (200, "OK")


@pytest.mark.parametrize("address", ["0.0.0.0", "[::]"])
async def test_tcp_on_every_address_without_tls_is_refused(serve: OpenSites, address: str) -> None:
    with pytest.raises(ConfigError) as caught:
        await serve(hosts=[f"tcp://{address}:0"])
    assert "without TLS on a non-loopback address" in str(caught.value)
    assert "allow_insecure_tcp" in str(caught.value)


async def test_tcp_on_every_address_with_allow_insecure_tcp(serve: OpenSites) -> None:
    runner = await serve(hosts=["tcp://0.0.0.0:0"], allow_insecure_tcp=True)
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{tcp_port(runner)}/_ping") as response,
    ):
        assert response.status == 200


def openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)


def _ec_key() -> tuple[str, ...]:
    return ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")


def self_signed(directory: Path, name: str = "server") -> tuple[Path, Path]:
    cert, key = directory / f"{name}.pem", directory / f"{name}.key"
    openssl(
        "req", "-x509", *_ec_key(), "-keyout", str(key), "-out", str(cert), "-days", "1",
        "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
    )  # fmt: skip
    return cert, key


def signed_by(ca: tuple[Path, Path], directory: Path, name: str) -> tuple[Path, Path]:
    cert, key, csr = (directory / f"{name}.{ext}" for ext in ("pem", "key", "csr"))
    extensions = directory / f"{name}.ext"
    extensions.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    openssl("req", *_ec_key(), "-keyout", str(key), "-out", str(csr), "-subj", f"/CN={name}")
    openssl(
        "x509", "-req", "-in", str(csr), "-CA", str(ca[0]), "-CAkey", str(ca[1]),
        "-CAcreateserial", "-out", str(cert), "-days", "1", "-extfile", str(extensions),
    )  # fmt: skip
    return cert, key


async def test_tls_site_answers_over_https(serve: OpenSites, short_tmp: Path) -> None:
    cert, key = self_signed(short_tmp)
    runner = await serve(hosts=["tcp://127.0.0.1:0"], tls=TLSSettings(cert=cert, key=key))
    port = tcp_port(runner)
    trusting = ssl.create_default_context(cafile=str(cert))
    async with aiohttp.ClientSession() as session:
        async with session.get(f"https://127.0.0.1:{port}/_ping", ssl=trusting) as response:
            assert (response.status, await response.text()) == (200, "OK")
            assert response.headers["Api-Version"] == "1.47"
        # a client that does not trust the certificate is refused at the handshake
        with pytest.raises(aiohttp.ClientConnectorCertificateError):
            await session.get(f"https://127.0.0.1:{port}/_ping", ssl=ssl.create_default_context())
        # and plain http gets no API
        with pytest.raises(aiohttp.ClientError):
            await session.get(f"http://127.0.0.1:{port}/_ping")


async def test_tls_makes_every_address_acceptable(serve: OpenSites, short_tmp: Path) -> None:
    cert, key = self_signed(short_tmp)
    runner = await serve(hosts=["tcp://0.0.0.0:0"], tls=TLSSettings(cert=cert, key=key))
    trusting = ssl.create_default_context(cafile=str(cert))
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"https://127.0.0.1:{tcp_port(runner)}/_ping", ssl=trusting) as response,
    ):
        assert response.status == 200


async def test_tls_verify_requires_a_client_certificate(serve: OpenSites, short_tmp: Path) -> None:
    ca = self_signed(short_tmp, "ca")
    cert, key = signed_by(ca, short_tmp, "server")
    client_cert, client_key = signed_by(ca, short_tmp, "client")
    runner = await serve(
        hosts=["tcp://127.0.0.1:0"],
        tls=TLSSettings(cert=cert, key=key, cacert=ca[0], verify=True),
    )
    url = f"https://127.0.0.1:{tcp_port(runner)}/_ping"
    anonymous = ssl.create_default_context(cafile=str(ca[0]))
    with_cert = ssl.create_default_context(cafile=str(ca[0]))
    with_cert.load_cert_chain(client_cert, client_key)
    async with aiohttp.ClientSession() as session:
        async with session.get(url, ssl=with_cert) as response:
            assert response.status == 200
        with pytest.raises(aiohttp.ClientError):
            async with session.get(url, ssl=anonymous) as response:
                await response.read()


@pytest.mark.parametrize(
    ("tls", "message"),
    [
        (TLSSettings(verify=True), "tls.verify needs tls.cert and tls.key"),
        (TLSSettings(cert=Path("/nonexistent.pem"), key=Path("/x.key")), "cannot load TLS files"),
    ],
)
async def test_tls_misconfiguration_is_a_config_error(
    serve: OpenSites, tls: TLSSettings, message: str
) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        await serve(hosts=["tcp://127.0.0.1:0"], tls=tls)


async def test_tls_verify_without_a_ca(serve: OpenSites, short_tmp: Path) -> None:
    cert, key = self_signed(short_tmp)
    with pytest.raises(ConfigError, match=r"tls\.verify needs tls\.cacert"):
        await serve(hosts=["tcp://127.0.0.1:0"], tls=TLSSettings(cert=cert, key=key, verify=True))


# --------------------------------------------------------------------------------------
# systemd: socket activation and readiness


async def test_fd_without_sockets_from_systemd_is_an_error(serve: OpenSites) -> None:
    with pytest.raises(ConfigError, match="no sockets were passed by systemd"):
        await serve(hosts=["fd://"])


SOCKET_ACTIVATED = """
import os, sys
os.dup2(int(sys.argv[1]), 3)
os.environ["LISTEN_PID"], os.environ["LISTEN_FDS"] = str(os.getpid()), "1"
import asyncio
from aiohttp import web
from pydockerd.server import open_sites
from pydockerd.settings import DaemonSettings

async def main():
    async def ping(request):
        return web.Response(text="activated")
    app = web.Application()
    app.router.add_get("/_ping", ping)
    runner = web.AppRunner(app)
    await runner.setup()
    await open_sites(runner, DaemonSettings(hosts=["fd://"]))
    print("ready", "LISTEN_FDS" in os.environ, flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    await runner.cleanup()

asyncio.run(main())
"""


def socket_activated(path: Path) -> subprocess.Popen[str]:
    """A process started as systemd starts a socket-activated service: a listening socket on
    ``path`` as fd 3, ``LISTEN_PID`` and ``LISTEN_FDS`` set; returned once it serves."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen()
    process = subprocess.Popen(
        [sys.executable, "-c", SOCKET_ACTIVATED, str(listener.fileno())],
        pass_fds=(listener.fileno(),),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    listener.close()
    try:
        assert process.stdout is not None
        assert process.stdout.readline().split() == ["ready", "False"]  # the variables consumed
    except BaseException:
        process.kill()
        process.wait()
        raise
    return process


async def test_fd_serves_on_the_socket_systemd_passed(short_tmp: Path) -> None:
    path = short_tmp / "activated.sock"
    process = socket_activated(path)
    try:
        async with (
            aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=str(path))) as session,
            session.get("http://localhost/_ping") as response,
        ):
            assert await response.text() == "activated"
    finally:
        process.kill()
        process.wait()


def test_sd_notify_sends_to_the_notify_socket(
    short_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = short_tmp / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as receiver:
        receiver.bind(str(path))
        receiver.settimeout(5)
        monkeypatch.setenv("NOTIFY_SOCKET", str(path))
        assert sd_notify("READY=1\nSTATUS=serving") is True
        assert receiver.recv(4096) == b"READY=1\nSTATUS=serving"


def test_sd_notify_to_an_abstract_socket(monkeypatch: pytest.MonkeyPatch) -> None:
    name = f"pdt-notify-{os.getpid()}-{id(monkeypatch)}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as receiver:
        receiver.bind("\0" + name)
        receiver.settimeout(5)
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        assert sd_notify("STOPPING=1") is True
        assert receiver.recv(4096) == b"STOPPING=1"


def test_sd_notify_without_systemd(short_tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert sd_notify("READY=1") is False  # no NOTIFY_SOCKET
    monkeypatch.setenv("NOTIFY_SOCKET", str(short_tmp / "nobody-listens.sock"))
    assert sd_notify("READY=1") is False
