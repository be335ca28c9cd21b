"""Container DNS (:mod:`pydockerd.networks.dns`): a real server on 127.0.0.1 (port 0), asked with
dnspython's async query functions, forwarding to a fake upstream that also runs on 127.0.0.1."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, cast

import dns.asyncquery
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import pytest
from pydockerd.errors import InvalidParameter, SystemError
from pydockerd.networks.dns import TTL, DnsServer

LOCAL = "127.0.0.1"
UPSTREAM_ADDRESS = "203.0.113.7"  # only ever written into answers, never contacted
NAMES = {
    "web": ["10.210.0.2"],
    "db": ["10.210.0.3"],
    "cache": ["10.210.0.4", "10.210.0.5"],  # an alias two containers share
    "many": [f"10.210.1.{i}" for i in range(1, 101)],
    "ipv6less": [],  # known, but without an IPv4 address
}
REVERSE = {"10.210.0.2": "web"}


def lookup(name: str) -> list[str] | None:
    return NAMES.get(name)


def reverse(address: str) -> str | None:
    return REVERSE.get(address)


# --------------------------------------------------------------------------------------
# a fake upstream


class FakeUpstream:
    """A name server for the tests, on 127.0.0.1, UDP and TCP. It answers ``A`` for every name
    with :data:`UPSTREAM_ADDRESS` (TTL 1234, authoritative, with a TXT record in the authority
    section so its answer is recognisable), except names that start with:

    ``hang``  never answered; ``fail``  SERVFAIL; ``gone``  REFUSED;
    ``big``   over UDP: TC set and no records; over TCP: 30 ``A`` records.

    ``always`` makes it treat every name as if it started with that word.
    :attr:`queries` lists ``(transport, name)`` as asked; :attr:`sent` every answer's bytes.
    """

    def __init__(self, always: str = "") -> None:
        self.always = always
        self.queries: list[tuple[str, str]] = []
        self._asked = asyncio.Event()
        self.sent: list[bytes] = []
        self.port = 0
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    def respond(self, wire: bytes, transport: str) -> bytes | None:
        query = dns.message.from_wire(wire)
        name = query.question[0].name.to_text(omit_final_dot=True)
        self.queries.append((transport, name))
        self._asked.set()
        response = dns.message.make_response(query, recursion_available=True)
        response.flags |= dns.flags.AA
        name = self.always or name
        if name.startswith("hang"):
            return None
        if name.startswith("fail"):
            response.set_rcode(dns.rcode.SERVFAIL)
        elif name.startswith("gone"):
            response.set_rcode(dns.rcode.REFUSED)
        elif name.startswith("big") and transport == "udp":
            response.flags |= dns.flags.TC
        else:
            count = 30 if name.startswith("big") else 1
            addresses = (
                [UPSTREAM_ADDRESS] if count == 1 else [f"198.51.100.{i}" for i in range(count)]
            )
            qname = query.question[0].name
            response.answer.append(dns.rrset.from_text_list(qname, 1234, "IN", "A", addresses))
            response.authority.append(
                dns.rrset.from_text(qname, 1234, "IN", "TXT", '"from the fake upstream"')
            )
        data = response.to_wire()
        self.sent.append(data)
        return data

    async def asked(self, count: int) -> None:
        """Return once ``count`` queries have come."""
        while len(self.queries) < count:
            self._asked.clear()
            await self._asked.wait()

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        upstream = self

        class Protocol(asyncio.DatagramProtocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                self.transport = cast(asyncio.DatagramTransport, transport)

            def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
                reply = upstream.respond(data, "udp")
                if reply is not None:
                    self.transport.sendto(reply, addr)

        for _ in range(8):
            transport, _protocol = await loop.create_datagram_endpoint(
                Protocol, local_addr=(LOCAL, 0)
            )
            port = transport.get_extra_info("sockname")[1]
            try:
                self._tcp = await asyncio.start_server(self._serve, LOCAL, port)
            except OSError:
                transport.close()
                continue
            self._udp, self.port = transport, port
            return
        raise AssertionError("no free port for the fake upstream")

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while True:
                size = int.from_bytes(await reader.readexactly(2), "big")
                reply = self.respond(await reader.readexactly(size), "tcp")
                if reply is not None:
                    writer.write(len(reply).to_bytes(2, "big") + reply)
                    await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()

    async def close(self) -> None:
        """Stop (again: nothing)."""
        if self._udp is None or self._tcp is None:
            return
        self._udp.close()
        self._tcp.close()
        for writer in list(self._writers):
            writer.transport.abort()
        await self._tcp.wait_closed()
        self._udp = self._tcp = None


@pytest.fixture
async def upstream() -> AsyncIterator[FakeUpstream]:
    server = FakeUpstream()
    await server.start()
    yield server
    await server.close()


MakeServer = Callable[..., Any]


@pytest.fixture
async def make_server() -> AsyncIterator[Callable[..., Any]]:
    """``await make_server(upstreams, **options)``: a started :class:`DnsServer` on 127.0.0.1,
    closed after the test."""
    servers: list[DnsServer] = []

    async def make(upstreams: list[str] | None = None, **options: Any) -> DnsServer:
        options.setdefault("reverse", reverse)
        server = DnsServer(LOCAL, options.pop("lookup", lookup), upstreams or [], port=0, **options)
        await server.start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        await server.close()


@pytest.fixture
async def server(make_server: MakeServer, upstream: FakeUpstream) -> DnsServer:
    """A server that forwards to :func:`upstream`."""
    created: DnsServer = await make_server([f"{LOCAL}:{upstream.port}"])
    return created


async def ask(
    server: DnsServer, name: str, rdtype: str = "A", *, tcp: bool = False, **make: Any
) -> dns.message.Message:
    query = dns.message.make_query(name, rdtype, **make)
    if tcp:
        return await dns.asyncquery.tcp(query, LOCAL, port=server.port, timeout=10)
    return await dns.asyncquery.udp(query, LOCAL, port=server.port, timeout=10)


def addresses(response: dns.message.Message) -> set[str]:
    return {rdata.to_text() for rrset in response.answer for rdata in rrset}


async def raw_udp(port: int, data: bytes) -> bytes:
    """Send ``data`` to ``port`` from a socket of its own; the first datagram that comes back."""
    loop = asyncio.get_running_loop()
    received: asyncio.Future[bytes] = loop.create_future()

    class Protocol(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
            if not received.done():
                received.set_result(data)

    transport, _ = await loop.create_datagram_endpoint(Protocol, remote_addr=(LOCAL, port))
    try:
        transport.sendto(data)
        return await asyncio.wait_for(received, 10)
    finally:
        transport.close()


both_transports = pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])


# --------------------------------------------------------------------------------------
# names of the network


@both_transports
async def test_known_name_answers_its_address(server: DnsServer, tcp: bool) -> None:
    response = await ask(server, "web", tcp=tcp)
    assert response.rcode() == dns.rcode.NOERROR
    assert addresses(response) == {"10.210.0.2"}
    (rrset,) = response.answer
    assert rrset.ttl == TTL == 600
    assert rrset.name == dns.name.from_text("web")
    assert response.flags & dns.flags.RA
    assert response.flags & dns.flags.QR


async def test_names_are_case_insensitive_and_the_lookup_gets_them_plain(
    make_server: MakeServer,
) -> None:
    asked: list[str] = []

    def recording(name: str) -> list[str] | None:
        asked.append(name)
        return lookup(name)

    server = await make_server(lookup=recording)
    for name in ("WeB.", "web", "wEb"):
        response = await ask(server, name)
        assert addresses(response) == {"10.210.0.2"}
        assert response.answer[0].name.to_text() == dns.name.from_text(name).to_text()
    assert asked == ["web", "web", "web"]


async def test_alias_shared_by_two_containers_answers_both(server: DnsServer) -> None:
    response = await ask(server, "cache")
    assert addresses(response) == {"10.210.0.4", "10.210.0.5"}


@pytest.mark.parametrize("rdtype", ["AAAA", "MX"])
async def test_other_address_types_of_known_names_answer_empty(
    server: DnsServer, upstream: FakeUpstream, rdtype: str
) -> None:
    response = await ask(server, "web", rdtype)
    assert response.rcode() == dns.rcode.NOERROR
    assert response.answer == []
    assert upstream.queries == []  # not forwarded: the network owns the name


async def test_known_name_without_ipv4_address_answers_empty(
    server: DnsServer, upstream: FakeUpstream
) -> None:
    response = await ask(server, "ipv6less")
    assert response.rcode() == dns.rcode.NOERROR
    assert response.answer == []
    assert upstream.queries == []


async def test_name_dot_network_resolves_with_a_domain(
    make_server: MakeServer, upstream: FakeUpstream
) -> None:
    server = await make_server([f"{LOCAL}:{upstream.port}"], domain="MyNet")
    assert addresses(await ask(server, "web.mynet")) == {"10.210.0.2"}
    assert addresses(await ask(server, "WEB.MYNET.")) == {"10.210.0.2"}
    # another domain (the host's search domain, say) is the upstreams' business
    assert addresses(await ask(server, "web.corp.example")) == {UPSTREAM_ADDRESS}
    assert upstream.queries == [("udp", "web.corp.example")]


async def test_many_addresses_truncate_over_udp_and_come_whole_over_tcp(
    server: DnsServer,
) -> None:
    udp = await ask(server, "many")
    assert udp.flags & dns.flags.TC
    large = await ask(server, "many", use_edns=0, payload=4096)
    assert not large.flags & dns.flags.TC
    assert len(addresses(large)) == 100
    tcp = await ask(server, "many", tcp=True)
    assert not tcp.flags & dns.flags.TC
    assert addresses(tcp) == set(NAMES["many"])


@both_transports
async def test_ptr_of_a_container_address_answers_its_name(server: DnsServer, tcp: bool) -> None:
    response = await ask(server, "2.0.210.10.in-addr.arpa", "PTR", tcp=tcp)
    assert response.rcode() == dns.rcode.NOERROR
    assert [r.to_text() for r in response.answer[0]] == ["web."]
    assert response.answer[0].ttl == TTL


async def test_ptr_names_the_network_with_a_domain(make_server: MakeServer) -> None:
    server = await make_server(domain="mynet")
    response = await ask(server, "2.0.210.10.in-addr.arpa.", "PTR")
    assert [r.to_text() for r in response.answer[0]] == ["web.mynet."]


async def test_ptr_of_another_address_is_forwarded(
    server: DnsServer, upstream: FakeUpstream
) -> None:
    await ask(server, "9.0.210.10.in-addr.arpa", "PTR")
    assert upstream.queries == [("udp", "9.0.210.10.in-addr.arpa")]


async def test_a_failing_lookup_answers_servfail(make_server: MakeServer) -> None:
    def broken(name: str) -> list[str] | None:
        raise RuntimeError("the store is gone")

    server = await make_server(lookup=broken)
    response = await ask(server, "web")
    assert response.rcode() == dns.rcode.SERVFAIL
    assert addresses(await ask(server, "2.0.210.10.in-addr.arpa", "PTR")) == {"web."}


async def test_other_opcodes_are_not_implemented(server: DnsServer) -> None:
    query = dns.message.make_query("web", "A")
    query.set_opcode(dns.opcode.NOTIFY)
    response = await dns.asyncquery.udp(query, LOCAL, port=server.port, timeout=10)
    assert response.rcode() == dns.rcode.NOTIMP


# --------------------------------------------------------------------------------------
# forwarding


@both_transports
async def test_unknown_name_is_forwarded_and_its_answer_returned_unchanged(
    server: DnsServer, upstream: FakeUpstream, tcp: bool
) -> None:
    query = dns.message.make_query("example.org", "A", use_edns=0)
    if tcp:
        response = await dns.asyncquery.tcp(query, LOCAL, port=server.port, timeout=10)
    else:
        response = await dns.asyncquery.udp(query, LOCAL, port=server.port, timeout=10)
    assert response.id == query.id
    assert addresses(response) == {UPSTREAM_ADDRESS}
    assert response.answer[0].ttl == 1234
    assert response.authority  # the upstream's TXT record came along
    assert response.flags & dns.flags.AA
    assert upstream.queries == [("udp", "example.org")]


async def test_forwarded_answer_is_the_upstreams_bytes(
    server: DnsServer, upstream: FakeUpstream
) -> None:
    query = dns.message.make_query("Example.ORG", "TXT")
    answer = await raw_udp(server.port, query.to_wire())
    assert answer == upstream.sent[-1]
    assert dns.message.from_wire(answer).id == query.id


@both_transports
async def test_other_types_of_known_names_are_forwarded(
    server: DnsServer, upstream: FakeUpstream, tcp: bool
) -> None:
    response = await ask(server, "web", "TXT", tcp=tcp)
    assert response.authority  # the upstream's answer
    assert upstream.queries == [("udp", "web")]


async def test_truncated_answer_is_asked_again_over_tcp(
    server: DnsServer, upstream: FakeUpstream
) -> None:
    response = await ask(server, "big.example", tcp=True)
    assert not response.flags & dns.flags.TC
    assert len(addresses(response)) == 30
    assert upstream.queries == [("udp", "big.example"), ("tcp", "big.example")]


async def test_truncated_answer_goes_whole_to_a_udp_client_that_takes_it(
    server: DnsServer, upstream: FakeUpstream
) -> None:
    response = await ask(server, "big.example", use_edns=0, payload=4096)
    assert not response.flags & dns.flags.TC
    assert len(addresses(response)) == 30
    # a client limited to 512 bytes gets the upstream's truncated answer and asks over TCP
    small = await ask(server, "big.example")
    assert small.flags & dns.flags.TC
    assert small.answer == []


async def test_the_server_itself_among_the_upstreams_is_passed_over(
    upstream: FakeUpstream,
) -> None:
    """As when the host's name servers name the network's gateway."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as spare:  # a port nothing holds
        spare.bind((LOCAL, 0))
        port = spare.getsockname()[1]
    server = DnsServer(
        LOCAL, lookup, [f"{LOCAL}:{port}", f"{LOCAL}:{upstream.port}"], port=port, timeout=3600
    )
    await server.start()
    try:
        response = await ask(server, "example.org")
        assert response.rcode() == dns.rcode.NOERROR
        assert upstream.queries == [("udp", "example.org")]  # not asked in a loop first
    finally:
        await server.close()


async def test_no_upstream_answers_servfail_at_once(make_server: MakeServer) -> None:
    server = await make_server([], timeout=3600)
    response = await ask(server, "example.org")
    assert response.rcode() == dns.rcode.SERVFAIL


@both_transports
async def test_silent_upstream_gives_servfail_within_the_timeout(
    make_server: MakeServer, upstream: FakeUpstream, tcp: bool
) -> None:
    server = await make_server([f"{LOCAL}:{upstream.port}"], timeout=0.3)
    response = await ask(server, "hang.example", tcp=tcp)  # the client waits up to 10 s
    assert response.rcode() == dns.rcode.SERVFAIL
    assert response.id is not None


async def test_upstream_down_gives_servfail(
    make_server: MakeServer, upstream: FakeUpstream
) -> None:
    await upstream.close()  # its port answers with ICMP errors now
    server = await make_server([f"{LOCAL}:{upstream.port}"], timeout=5)
    response = await ask(server, "example.org")
    assert response.rcode() == dns.rcode.SERVFAIL


@pytest.mark.parametrize("first", ["down", "hang", "fail", "gone"])
async def test_the_next_upstream_answers_when_the_first_cannot(
    make_server: MakeServer, upstream: FakeUpstream, first: str
) -> None:
    """The first upstream is down, silent, answers SERVFAIL or REFUSED; the second answers."""
    failing = FakeUpstream(always=first)
    await failing.start()
    if first == "down":
        await failing.close()
    try:
        server = await make_server(
            [f"{LOCAL}:{failing.port}", f"{LOCAL}:{upstream.port}"], timeout=2
        )
        response = await ask(server, "example.org")
    finally:
        await failing.close()
    assert addresses(response) == {UPSTREAM_ADDRESS}
    assert upstream.queries == [("udp", "example.org")]


async def test_every_upstream_failing_gives_servfail(
    make_server: MakeServer, upstream: FakeUpstream
) -> None:
    server = await make_server([f"{LOCAL}:{upstream.port}", f"{LOCAL}:{upstream.port}"])
    response = await ask(server, "fail.example")
    assert response.rcode() == dns.rcode.SERVFAIL
    assert upstream.queries == [("udp", "fail.example")] * 2


# --------------------------------------------------------------------------------------
# robustness


@pytest.mark.parametrize(
    "garbage",
    [
        b"",
        b"\x00",
        b"not a dns message at all",
        bytes(range(256)) * 2,
        dns.message.make_response(dns.message.make_query("web", "A")).to_wire(),  # a response
        dns.message.Message().to_wire(),  # a query without a question
    ],
    ids=["empty", "one-byte", "text", "binary", "response", "no-question"],
)
async def test_garbage_is_dropped_and_the_server_still_answers(
    server: DnsServer, garbage: bytes
) -> None:
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(
        asyncio.DatagramProtocol, remote_addr=(LOCAL, server.port)
    )
    transport.sendto(garbage)
    transport.close()
    query = dns.message.make_query("web", "A")
    # the garbage and the query come from different sockets: the answer is the query's
    assert dns.message.from_wire(await raw_udp(server.port, query.to_wire())).id == query.id
    assert addresses(await ask(server, "web")) == {"10.210.0.2"}
    # over TCP, garbage in a frame is dropped and the connection goes on
    reader, writer = await asyncio.open_connection(LOCAL, server.port)
    try:
        writer.write(len(garbage).to_bytes(2, "big") + garbage)
        wire = query.to_wire()
        writer.write(len(wire).to_bytes(2, "big") + wire)
        size = int.from_bytes(await reader.readexactly(2), "big")
        answer = dns.message.from_wire(await reader.readexactly(size))
        assert answer.id == query.id
    finally:
        writer.close()
        await writer.wait_closed()


async def test_several_queries_on_one_tcp_connection(server: DnsServer) -> None:
    names = ["web", "db", "cache", "example.org", "2.0.210.10.in-addr.arpa"]
    queries = {}
    reader, writer = await asyncio.open_connection(LOCAL, server.port)
    try:
        for name in names:
            query = dns.message.make_query(name, "PTR" if "arpa" in name else "A")
            queries[query.id] = name
            wire = query.to_wire()
            writer.write(len(wire).to_bytes(2, "big") + wire)
        writer.write_eof()  # done asking: the answers still come
        answers = {}
        for _ in names:
            size = int.from_bytes(await reader.readexactly(2), "big")
            answer = dns.message.from_wire(await reader.readexactly(size))
            answers[queries[answer.id]] = addresses(answer)
        assert await reader.read() == b""  # then the server closes
    finally:
        writer.close()
        await writer.wait_closed()
    assert answers == {
        "web": {"10.210.0.2"},
        "db": {"10.210.0.3"},
        "cache": {"10.210.0.4", "10.210.0.5"},
        "example.org": {UPSTREAM_ADDRESS},
        "2.0.210.10.in-addr.arpa": {"web."},
    }


async def test_fifty_queries_answer_while_a_forward_hangs(
    make_server: MakeServer, upstream: FakeUpstream
) -> None:
    # the hanging forward would hold everything for an hour; each query below waits 10 s
    server = await make_server([f"{LOCAL}:{upstream.port}"], timeout=3600)
    hanging = asyncio.create_task(ask(server, "hang.example"))
    hanging_tcp = asyncio.create_task(ask(server, "hang.example", tcp=True))
    await upstream.asked(2)  # both are at the upstream now
    names = [("web", "db", "cache", f"name{i}.example")[i % 4] for i in range(50)]
    responses = await asyncio.gather(
        *(ask(server, name, tcp=i % 2 == 1) for i, name in enumerate(names))
    )
    for name, response in zip(names, responses, strict=True):
        assert response.rcode() == dns.rcode.NOERROR
        assert addresses(response) == set(NAMES.get(name, [UPSTREAM_ADDRESS]))
    assert not hanging.done()
    assert not hanging_tcp.done()
    hanging.cancel()
    hanging_tcp.cancel()
    await asyncio.gather(hanging, hanging_tcp, return_exceptions=True)


# --------------------------------------------------------------------------------------
# life cycle


def open_fds() -> int:
    return sum(1 for _ in Path("/proc/self/fd").iterdir())


async def test_close_releases_the_ports_and_leaves_nothing(
    upstream: FakeUpstream,
) -> None:
    tasks = asyncio.all_tasks()
    fds = open_fds()
    server = DnsServer(LOCAL, lookup, [f"{LOCAL}:{upstream.port}"], port=0, timeout=3600)
    await server.start()
    port = server.port
    assert port != 0
    assert addresses(await ask(server, "web", tcp=True)) == {"10.210.0.2"}
    # in flight at close: a forward over UDP, an idle TCP connection, a forward over TCP
    hanging = asyncio.create_task(ask(server, "hang.example"))
    idle = await asyncio.open_connection(LOCAL, port)
    hanging_tcp = asyncio.create_task(ask(server, "hang.example", tcp=True))
    await upstream.asked(2)
    await server.close()
    # the TCP clients see the end; the UDP one would wait for its timeout
    assert await idle[0].read() == b""
    idle[1].close()
    await idle[1].wait_closed()
    with pytest.raises((EOFError, ConnectionError)):
        await hanging_tcp
    hanging.cancel()
    await asyncio.gather(hanging, return_exceptions=True)
    assert asyncio.all_tasks() == tasks
    assert open_fds() == fds
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.bind((LOCAL, port))
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
        tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        tcp.bind((LOCAL, port))
        tcp.listen()


async def test_start_after_close_serves_again(make_server: MakeServer) -> None:
    server = await make_server()
    await server.close()
    await server.start()
    assert addresses(await ask(server, "web")) == {"10.210.0.2"}


@pytest.mark.parametrize("kind", [socket.SOCK_DGRAM, socket.SOCK_STREAM], ids=["udp", "tcp"])
async def test_port_in_use_is_a_system_error(kind: int) -> None:
    with socket.socket(socket.AF_INET, kind) as taken:
        taken.bind((LOCAL, 0))
        if kind == socket.SOCK_STREAM:
            taken.listen()
        port = taken.getsockname()[1]
        fds = open_fds()
        server = DnsServer(LOCAL, lookup, [], port=port)
        with pytest.raises(SystemError) as raised:
            await server.start()
        assert str(raised.value) == (f"cannot serve DNS on {LOCAL}:{port}: address already in use")
        assert open_fds() == fds
        await server.close()


async def test_address_not_on_this_host_is_a_system_error() -> None:
    server = DnsServer("192.0.2.1", lookup, [], port=0)  # TEST-NET-1: bound, never sent to
    with pytest.raises(SystemError, match=r"^cannot serve DNS on 192\.0\.2\.1:0: cannot assign"):
        await server.start()


@pytest.mark.parametrize(
    "upstream_text", ["dns.example", "1.2.3.4:0", "1.2.3.4:x", "1.2.3.4:53:53", "[::1", ""]
)
def test_invalid_upstream_is_refused(upstream_text: str) -> None:
    with pytest.raises(InvalidParameter, match="invalid DNS upstream"):
        DnsServer(LOCAL, lookup, [upstream_text])


def test_upstream_forms() -> None:
    DnsServer(LOCAL, lookup, ["1.2.3.4", "1.2.3.4:5353", "::1", "[::1]:5353", "[fe80::1]"])
    with pytest.raises(InvalidParameter, match="not an IP address"):
        DnsServer("gateway", lookup, [])
