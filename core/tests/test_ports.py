"""Published ports (:mod:`pydockerd.supervisor.ports`): real proxies on 127.0.0.1 (port 0) in
front of real target servers on 127.0.0.1."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from pydockerd.errors import Conflict, InvalidParameter, SystemError
from pydockerd.supervisor.ports import PortMapping, PortProxy

LOCAL = "127.0.0.1"
Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def open_fds() -> int:
    return sum(1 for _ in Path("/proc/self/fd").iterdir())


async def eventually(condition: Callable[[], bool]) -> None:
    """Return once ``condition()`` holds; fail after a generous while (10 s)."""
    for _ in range(1000):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the condition never held")


@contextlib.asynccontextmanager
async def tcp_target(handler: Handler) -> AsyncIterator[int]:
    """A TCP server on 127.0.0.1 that runs ``handler`` per connection; its port."""
    handlers: set[asyncio.Task[Any]] = set()

    async def tracked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        handlers.add(task)
        try:
            await handler(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.transport.abort()
            handlers.discard(task)

    server = await asyncio.start_server(tracked, LOCAL, 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        for task in list(handlers):
            task.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)
        await server.wait_closed()


async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()
    writer.write_eof()
    await writer.drain()
    await reader.read()  # until the proxy closes


@contextlib.asynccontextmanager
async def proxy_to(
    port: int, *, protocol: str = "tcp", host_ip: str = LOCAL, **options: Any
) -> AsyncIterator[PortProxy]:
    proxy = PortProxy(PortMapping(host_ip, 0, protocol, LOCAL, port), **options)
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.close()


async def connect(proxy: PortProxy, host: str = LOCAL) -> tuple[asyncio.StreamReader, Any]:
    return await asyncio.open_connection(host, proxy.port)


async def finish(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(ConnectionError):
        await writer.wait_closed()


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A port nothing listens on (taken and given back)."""
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind((LOCAL, 0))
        port: int = sock.getsockname()[1]
        return port


def other_tasks() -> set[asyncio.Task[Any]]:
    return asyncio.all_tasks() - {asyncio.current_task()}


@pytest.fixture
async def no_leaks() -> AsyncIterator[None]:
    """The test leaves no task and no file descriptor behind."""
    tasks = other_tasks()
    fds = open_fds()
    yield
    assert other_tasks() <= tasks
    assert open_fds() == fds


# --------------------------------------------------------------------------------------
# TCP


@pytest.mark.usefixtures("no_leaks")
async def test_tcp_echo_through_the_proxy() -> None:
    async with tcp_target(echo) as port, proxy_to(port) as proxy:
        reader, writer = await connect(proxy)
        writer.write(b"hello")
        assert await reader.readexactly(5) == b"hello"
        writer.write(b", world")
        assert await reader.readexactly(7) == b", world"
        await finish(writer)


@pytest.mark.usefixtures("no_leaks")
async def test_a_megabyte_both_ways() -> None:
    payload = bytes(range(256)) * 4096  # 1 MiB
    async with tcp_target(echo) as port, proxy_to(port) as proxy:
        reader, writer = await connect(proxy)

        async def send() -> None:
            writer.write(payload)
            await writer.drain()
            writer.write_eof()

        sending = asyncio.create_task(send())
        received = await reader.read(-1)  # the echo, until the target's end of file
        await sending
        assert received == payload
        await finish(writer)


@pytest.mark.usefixtures("no_leaks")
async def test_client_half_close_reaches_the_target() -> None:
    """The client sends, shuts its write side; the target answers after end of file."""

    async def count_then_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        data = await reader.read(-1)
        writer.write(f"got {len(data)} bytes".encode())
        await writer.drain()
        writer.close()

    async with tcp_target(count_then_answer) as port, proxy_to(port) as proxy:
        reader, writer = await connect(proxy)
        writer.write(b"x" * 1000)
        writer.write_eof()
        assert await reader.read(-1) == b"got 1000 bytes"
        await finish(writer)


@pytest.mark.usefixtures("no_leaks")
async def test_target_half_close_reaches_the_client() -> None:
    """The target sends, shuts its write side and still reads what the client sends."""
    heard: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    async def speak_then_listen(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"banner")
        writer.write_eof()
        heard.set_result(await reader.read(-1))

    async with tcp_target(speak_then_listen) as port, proxy_to(port) as proxy:
        reader, writer = await connect(proxy)
        assert await reader.read(-1) == b"banner"
        writer.write(b"still talking")
        writer.write_eof()
        assert await asyncio.wait_for(heard, 10) == b"still talking"
        await finish(writer)


@pytest.mark.usefixtures("no_leaks")
async def test_target_refusing_closes_the_client() -> None:
    async with proxy_to(free_port()) as proxy:
        reader, writer = await connect(proxy)
        with contextlib.suppress(ConnectionResetError):
            assert await reader.read() == b""
        await finish(writer)


def reset(writer: asyncio.StreamWriter) -> None:
    """Close with a reset (RST), not an end of file."""
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


@pytest.mark.usefixtures("no_leaks")
async def test_target_reset_ends_the_client() -> None:
    async def reset_after_hello(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readexactly(5)
        reset(writer)

    async with tcp_target(reset_after_hello) as port, proxy_to(port) as proxy:
        reader, writer = await connect(proxy)
        writer.write(b"hello")
        with contextlib.suppress(ConnectionResetError):
            assert await reader.read() == b""
        await finish(writer)


@pytest.mark.usefixtures("no_leaks")
async def test_client_reset_ends_the_target() -> None:
    ended: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    async def wait_for_end(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"ready")
        try:
            ended.set_result(await reader.read())
        except ConnectionResetError:
            ended.set_result(b"")

    async with tcp_target(wait_for_end) as port, proxy_to(port) as proxy:
        reader, writer = await connect(proxy)
        assert await reader.readexactly(5) == b"ready"
        reset(writer)
        assert await asyncio.wait_for(ended, 10) == b""


@pytest.mark.usefixtures("no_leaks")
async def test_twenty_connections_at_once() -> None:
    async def one(proxy: PortProxy, index: int) -> bytes:
        reader, writer = await connect(proxy)
        writer.write(f"connection {index} ".encode() * 1000)
        writer.write_eof()
        data = await reader.read(-1)
        await finish(writer)
        return data

    async with tcp_target(echo) as port, proxy_to(port) as proxy:
        results = await asyncio.gather(*(one(proxy, i) for i in range(20)))
    assert results == [f"connection {i} ".encode() * 1000 for i in range(20)]


@pytest.mark.usefixtures("no_leaks")
async def test_a_client_that_does_not_read_holds_back_only_its_own_target() -> None:
    """Flow control: the target's writes to a client that never reads stop going through (the
    proxy does not buffer them all), and other clients are served meanwhile."""
    pushed = 0

    async def flood(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal pushed
        writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
        chunk = bytes(1 << 20)
        for _ in range(1024):  # 1 GiB: more than every buffer on the way holds
            writer.write(chunk)
            await writer.drain()
            pushed += len(chunk)

    async with (
        tcp_target(flood) as flood_port,
        tcp_target(echo) as echo_port,
        proxy_to(flood_port) as slow_proxy,
        proxy_to(echo_port) as proxy,
    ):
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, (LOCAL, slow_proxy.port))
        _, slow = await asyncio.open_connection(sock=sock)  # never read
        await eventually(lambda: pushed > 0)
        reader, writer = await connect(proxy)
        writer.write(b"not blocked")
        assert await asyncio.wait_for(reader.readexactly(11), 10) == b"not blocked"
        await finish(writer)
        assert pushed < 1024 << 20
        slow.transport.abort()


@pytest.mark.usefixtures("no_leaks")
async def test_port_zero_gives_a_real_free_port() -> None:
    async with tcp_target(echo) as port:
        proxy = PortProxy(PortMapping(LOCAL, 0, "tcp", LOCAL, port))
        assert proxy.port == 0
        bound = await proxy.start()
        try:
            assert bound == proxy.port
            assert bound not in (0, port)
            reader, writer = await connect(proxy)
            writer.write(b"ping")
            assert await reader.readexactly(4) == b"ping"
            await finish(writer)
        finally:
            await proxy.close()


@pytest.mark.usefixtures("no_leaks")
async def test_all_addresses_are_reachable_through_each_loopback_address() -> None:
    async with tcp_target(echo) as port, proxy_to(port, host_ip="0.0.0.0") as proxy:
        for host in ("127.0.0.1", "127.0.0.2"):
            reader, writer = await connect(proxy, host)
            writer.write(host.encode())
            assert await reader.readexactly(len(host)) == host.encode()
            await finish(writer)


@pytest.mark.usefixtures("no_leaks")
async def test_close_ends_live_connections() -> None:
    ended: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"hi")
        with contextlib.suppress(ConnectionResetError):
            await reader.read()
        ended.set_result(None)

    async with tcp_target(hold) as port:
        tasks = asyncio.all_tasks()
        fds = open_fds()
        proxy = PortProxy(PortMapping(LOCAL, 0, "tcp", LOCAL, port))
        await proxy.start()
        clients = [await connect(proxy) for _ in range(3)]
        for reader, _ in clients:
            assert await reader.readexactly(2) == b"hi"
        await proxy.close()
        assert asyncio.all_tasks() == tasks  # nothing of the proxy runs on
        for reader, writer in clients:
            with contextlib.suppress(ConnectionResetError):
                assert await reader.read() == b""
            await finish(writer)
        await asyncio.wait_for(ended, 10)  # the targets' ends too
        with pytest.raises(ConnectionRefusedError):
            await asyncio.open_connection(LOCAL, proxy.port)
        assert open_fds() == fds


@pytest.mark.parametrize("kind", [socket.SOCK_STREAM, socket.SOCK_DGRAM], ids=["tcp", "udp"])
@pytest.mark.parametrize("taken_on", ["127.0.0.1", "0.0.0.0"])
@pytest.mark.usefixtures("no_leaks")
async def test_port_in_use_is_a_conflict_with_dockers_words(kind: int, taken_on: str) -> None:
    protocol = "tcp" if kind == socket.SOCK_STREAM else "udp"
    with socket.socket(socket.AF_INET, kind) as taken:
        taken.bind((taken_on, 0))
        if kind == socket.SOCK_STREAM:
            taken.listen()
        port = taken.getsockname()[1]
        fds = open_fds()
        proxy = PortProxy(PortMapping(LOCAL, port, protocol, LOCAL, 80))
        with pytest.raises(Conflict) as raised:
            await proxy.start()
        assert str(raised.value) == f"Bind for 127.0.0.1:{port} failed: port is already allocated"
        assert open_fds() == fds
        await proxy.close()
    # nothing of the proxy holds the port
    with socket.socket(socket.AF_INET, kind) as again:
        again.bind((LOCAL, port))


@pytest.mark.parametrize("protocol", ["tcp", "udp"])
@pytest.mark.usefixtures("no_leaks")
async def test_ipv6_any_and_ipv4_any_take_the_same_port_side_by_side(protocol: str) -> None:
    """``-p 8080:80`` publishes on "0.0.0.0" and "::" (Docker's two proxies): "::" holds
    IPv6 only. (Bound, never sent to: the tests talk to 127.0.0.0/8 only.)"""
    for _ in range(5):  # the port the kernel gave "::" may be taken on IPv4: another then
        v6 = PortProxy(PortMapping("::", 0, protocol, LOCAL, 80))
        port = await v6.start()
        v4 = PortProxy(PortMapping("0.0.0.0", port, protocol, LOCAL, 80))
        try:
            await v4.start()
            break
        except Conflict:
            await v6.close()
    try:
        assert v4.port == port
        again = PortProxy(PortMapping("::", port, protocol, LOCAL, 80))
        with pytest.raises(Conflict, match=rf"^Bind for \[::\]:{port} failed"):
            await again.start()
    finally:
        await v4.close()
        await v6.close()


async def test_address_not_on_this_host_is_a_system_error() -> None:
    proxy = PortProxy(PortMapping("192.0.2.1", 0, "tcp", LOCAL, 80))  # TEST-NET-1, not ours
    with pytest.raises(SystemError, match=r"^Error starting userland proxy: listen tcp 192"):
        await proxy.start()


@pytest.mark.parametrize(
    ("mapping", "message"),
    [
        (PortMapping(LOCAL, 0, "sctp", LOCAL, 80), "sctp ports is not supported"),
        (PortMapping(LOCAL, 0, "icmp", LOCAL, 80), "invalid protocol 'icmp'"),
        (PortMapping("localhost", 0, "tcp", LOCAL, 80), "invalid host IP 'localhost'"),
        (PortMapping(LOCAL, 0, "tcp", "web", 80), "invalid target IP 'web'"),
        (PortMapping(LOCAL, 65536, "tcp", LOCAL, 80), "invalid port mapping"),
        (PortMapping(LOCAL, 80, "tcp", LOCAL, 0), "invalid port mapping"),
    ],
)
def test_invalid_mappings_are_refused(mapping: PortMapping, message: str) -> None:
    with pytest.raises(InvalidParameter, match=message):
        PortProxy(mapping)


# --------------------------------------------------------------------------------------
# UDP


class UdpTarget(asyncio.DatagramProtocol):
    """Answers each datagram with ``<datagram> from <port it came from>``."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: Any = transport

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        self.transport.sendto(data + f" from {addr[1]}".encode(), addr)


class UdpClient(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.received: asyncio.Queue[bytes] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        self.received.put_nowait(data)


@contextlib.asynccontextmanager
async def udp_target() -> AsyncIterator[int]:
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(UdpTarget, local_addr=(LOCAL, 0))
    try:
        yield transport.get_extra_info("sockname")[1]
    finally:
        transport.close()
        await asyncio.sleep(0)  # the socket closes on the next turn of the loop


@contextlib.asynccontextmanager
async def udp_client(port: int, host: str = LOCAL) -> AsyncIterator[Callable[..., Any]]:
    """``await ask(data)``: send ``data`` to ``host:port`` from a connected socket of its own
    (which only takes datagrams from there); the answer."""
    loop = asyncio.get_running_loop()
    transport, client = await loop.create_datagram_endpoint(UdpClient, remote_addr=(host, port))

    async def ask(data: bytes) -> bytes:
        transport.sendto(data)
        return await asyncio.wait_for(client.received.get(), 10)

    try:
        yield ask
    finally:
        transport.close()
        await asyncio.sleep(0)


@pytest.mark.usefixtures("no_leaks")
async def test_udp_round_trip_for_two_clients() -> None:
    async with (
        udp_target() as port,
        proxy_to(port, protocol="udp") as proxy,
        udp_client(proxy.port) as first,
        udp_client(proxy.port) as second,
    ):
        one = await first(b"one")
        two = await second(b"two")
        assert one.startswith(b"one from ")
        assert two.startswith(b"two from ")
        assert one.split()[-1] != two.split()[-1]  # a socket to the target per client
        assert await first(b"again") == b"again from " + one.split()[-1]  # the same one
        assert (await second(b"two")) == two


@pytest.mark.usefixtures("no_leaks")
async def test_udp_replies_come_from_the_address_the_client_sent_to() -> None:
    """Bound to every address, a reply leaves from the one the client used: a connected
    client socket takes nothing else."""
    async with udp_target() as port, proxy_to(port, protocol="udp", host_ip="0.0.0.0") as proxy:
        for host in ("127.0.0.1", "127.0.0.2", "127.0.0.3"):
            async with udp_client(proxy.port, host) as ask:
                assert (await ask(host.encode())).startswith(host.encode() + b" from ")


@pytest.mark.usefixtures("no_leaks")
async def test_udp_idle_client_mappings_expire() -> None:
    async with (
        udp_target() as port,
        proxy_to(port, protocol="udp", udp_idle=0.05) as proxy,
        udp_client(proxy.port) as ask,
    ):
        fds = open_fds()
        first = await ask(b"hello")
        assert open_fds() == fds + 1  # the client's socket to the target
        await eventually(lambda: open_fds() == fds)  # gone when idle
        second = await ask(b"hello")  # a new mapping serves it
        assert second.startswith(b"hello from ")
        assert first.startswith(b"hello from ")


@pytest.mark.usefixtures("no_leaks")
async def test_udp_close_drops_every_mapping() -> None:
    async with udp_target() as port:
        fds = open_fds()
        proxy = PortProxy(PortMapping(LOCAL, 0, "udp", LOCAL, port))
        await proxy.start()
        async with udp_client(proxy.port) as first, udp_client(proxy.port) as second:
            await first(b"a")
            await second(b"b")
            await proxy.close()
        assert open_fds() == fds
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as again:
            again.bind((LOCAL, proxy.port))


@pytest.mark.usefixtures("no_leaks")
async def test_udp_target_gone_for_a_while_is_taken_in_stride() -> None:
    """Datagrams to a closed target port come back as ICMP errors to the proxy; the mapping
    lives on and serves once the target is back."""
    loop = asyncio.get_running_loop()
    async with udp_target() as port:
        pass  # a port that was the target's, now closed
    async with proxy_to(port, protocol="udp") as proxy, udp_client(proxy.port) as ask:
        sender = asyncio.create_task(ask(b"anyone?"))  # its answer comes later, if ever
        await asyncio.sleep(0)
        transport, _ = await loop.create_datagram_endpoint(UdpTarget, local_addr=(LOCAL, port))
        try:
            # the first datagram may have reached the target just now, or met its ICMP error
            reply = await ask(b"again")
            while not reply.startswith(b"again"):
                reply = await ask(b"again")
        finally:
            transport.close()
            sender.cancel()
            await asyncio.gather(sender, return_exceptions=True)
