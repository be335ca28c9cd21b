"""Container DNS: the name server a user-defined network has on its gateway address.

It behaves as Docker's embedded DNS server (moby ``libnetwork/resolver.go``):

- ``A`` for a name the network knows (container name, ``--network-alias``, hostname: whatever
  :data:`Lookup` says) answers with the addresses, TTL 600, shuffled when there are several;
  ``AAAA`` and ``MX`` for a known name answer NOERROR with no records, so clients fall back to
  ``A``. Names are case-insensitive and the trailing dot does not matter. With ``domain`` (the
  network's name), ``web.<domain>`` is ``web`` too: Docker's server owns the
  ``container.network`` names. The host's search domains are not stripped (Docker does not
  either): a client that appends them asks for a name the upstreams own, and it is forwarded.
- ``PTR`` for an address ``reverse`` knows answers with its name (``name.<domain>.`` with a
  domain, as Docker's ``container.network``).
- Every other question is forwarded: the client's query as it came, over UDP, to each upstream
  in turn; a truncated answer is asked again over TCP. The upstream's answer goes back as it
  came (same id). An upstream that answers SERVFAIL or REFUSED, or is silent for its share of
  ``timeout``, is passed over; when none answers within ``timeout`` seconds in all (or there is
  none), the client gets SERVFAIL.
- Messages that do not parse, responses, and queries without a question are dropped. Answers
  we make ourselves are truncated (TC) to what the client's transport takes (512 bytes, or its
  EDNS size, over UDP).

TCP takes DNS's 2-byte length prefix, any number of queries per connection, answered as they
complete (RFC 7766); a connection idle for :data:`TCP_IDLE` seconds is closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ipaddress
import os
import random
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.reversename
import dns.rrset
from loguru import logger

from pydockerd.errors import InvalidParameter, SystemError

__all__ = ["MAX_FORWARDS", "TCP_IDLE", "TTL", "DnsServer", "Lookup", "Reverse"]

Lookup = Callable[[str], list[str] | None]
"""name (lower-case, no trailing dot) -> IPv4 addresses of running containers on this network
known by that name (container name, --network-alias, hostname...), or None if unknown."""

Reverse = Callable[[str], str | None]
"""IPv4 address (``"10.210.0.2"``) -> the name of the container that has it, or None."""

TTL = 600
"""The TTL of the records we answer with (Docker's)."""

MAX_FORWARDS = 1024
"""Queries forwarded at once at most (Docker's limit); more wait, within their timeout."""

TCP_IDLE = 10.0
"""Seconds a TCP connection may stay without a query before it is closed."""

_UDP_LIMIT = 512
_TCP_LIMIT = 65535
_PASSED_OVER = frozenset({dns.rcode.SERVFAIL, dns.rcode.REFUSED})
_shuffle = random.SystemRandom().shuffle

Upstream = tuple[str, int]
Address = tuple[str | Any, int]


def _upstream(text: str) -> Upstream:
    """``"ip"``, ``"ip:port"`` or ``"[ipv6]:port"`` as ``(ip, port)``."""
    host, port = text, "53"
    if text.startswith("["):
        host, bracket, rest = text[1:].partition("]")
        port = rest.removeprefix(":") if rest else port
        if not bracket or (rest and not rest.startswith(":")):
            host = ""
    elif text.count(":") == 1:
        host, _, port = text.partition(":")
    try:
        number = int(port)
        if not 0 < number < 65536:
            raise ValueError(port)
        return str(ipaddress.ip_address(host)), number
    except ValueError:
        raise InvalidParameter(
            f"invalid DNS upstream {text!r}: want an IP address, with :port or not"
        ) from None


def _framed(wire: bytes) -> bytes:
    """``wire`` with DNS-over-TCP's 2-byte length prefix."""
    return len(wire).to_bytes(2, "big") + wire


async def _read_framed(reader: asyncio.StreamReader) -> bytes:
    """One length-prefixed message; :class:`asyncio.IncompleteReadError` at the end."""
    size = int.from_bytes(await reader.readexactly(2), "big")
    return await reader.readexactly(size)


def _answers(query: dns.message.Message, wire: bytes) -> dns.message.Message | None:
    """The header and question of ``wire`` if it is the response to ``query``, else None."""
    try:
        reply = dns.message.from_wire(wire, question_only=True)
    except Exception:  # dnspython raises many kinds on garbage
        return None
    return reply if query.is_response(reply) else None


def _response(query: dns.message.Message, rcode: dns.rcode.Rcode) -> dns.message.Message:
    response = dns.message.make_response(query, recursion_available=True)
    response.set_rcode(rcode)
    return response


class _Exchange(asyncio.DatagramProtocol):
    """One query to one upstream over UDP: :attr:`reply` is its answer ``(wire, header)``."""

    def __init__(self, query: dns.message.Message) -> None:
        self._query = query
        self.reply: asyncio.Future[tuple[bytes, dns.message.Message]] = (
            asyncio.get_running_loop().create_future()
        )

    def datagram_received(self, data: bytes, addr: Address) -> None:
        header = _answers(self._query, data)
        if header is not None and not self.reply.done():
            self.reply.set_result((data, header))

    def error_received(self, exc: Exception) -> None:  # ICMP port unreachable: nobody there
        if not self.reply.done():
            self.reply.set_exception(exc)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.reply.done():
            self.reply.set_exception(exc or ConnectionError("closed"))


class _Listener(asyncio.DatagramProtocol):
    """The server's UDP socket: hands each datagram on; :attr:`closed` when the socket is."""

    def __init__(self, received: Callable[[bytes, Address], None]) -> None:
        self._received = received
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def datagram_received(self, data: bytes, addr: Address) -> None:
        self._received(data, addr)

    def error_received(self, exc: Exception) -> None:
        logger.debug("dns: {}", exc)  # an ICMP error about a client gone away

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)


class DnsServer:
    """The DNS server of one network, on ``address``:``port``, UDP and TCP.

    :param address: where to listen: the network's gateway address.
    :param lookup: the network's names (see :data:`Lookup`); called on the event loop, so
        it must not block.
    :param upstreams: where names the network does not know go, tried in order: ``"ip"`` or
        ``"ip:port"`` (``"[ipv6]:port"``). This server itself is left out if listed.
    :param port: 53; 0 takes a free port (tests), see :attr:`port`.
    :param timeout: seconds a forwarded query may take in all before the client gets SERVFAIL;
        each upstream gets its share of what is left.
    :param reverse: the network's addresses (see :data:`Reverse`), for ``PTR`` queries.
    :param domain: the network's name: ``name.<domain>`` resolves as ``name``.
    :raises InvalidParameter: an upstream or the address is not an IP address.
    """

    def __init__(
        self,
        address: str,
        lookup: Lookup,
        upstreams: Sequence[str],
        *,
        port: int = 53,
        timeout: float = 2.0,
        reverse: Reverse | None = None,
        domain: str | None = None,
    ) -> None:
        try:
            self._address = str(ipaddress.ip_address(address))
        except ValueError:
            raise InvalidParameter(f"cannot serve DNS on {address!r}: not an IP address") from None
        self._lookup = lookup
        self._reverse = reverse
        self._domain = domain.lower().rstrip(".") if domain else None
        self._upstreams = [_upstream(u) for u in upstreams]
        self._port = port
        self._timeout = timeout
        self._udp: asyncio.DatagramTransport | None = None
        self._udp_closed: asyncio.Future[None] | None = None
        self._tcp: asyncio.Server | None = None
        self._streams: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._forwarding = asyncio.Semaphore(MAX_FORWARDS)
        self._closing = False

    @property
    def port(self) -> int:
        """The port it listens on (once started: the one bound when ``port`` was 0)."""
        return self._port

    async def start(self) -> None:
        """Listen on UDP and TCP.

        :raises SystemError: the address cannot be bound (in use, not on this host, no right).
        """
        if self._udp is not None:
            return
        self._closing = False
        # With port 0 the kernel picks the UDP port; TCP may hold it already: pick again.
        attempts = 8 if self._port == 0 else 1
        for attempt in range(attempts):
            try:
                await self._bind()
                break
            except OSError as e:
                if e.errno == errno.EADDRINUSE and attempt + 1 < attempts:
                    continue
                reason = os.strerror(e.errno).lower() if e.errno else str(e)
                raise SystemError(
                    f"cannot serve DNS on {self._address}:{self._port}: {reason}"
                ) from None
        own = (self._address, self._port)
        if own in self._upstreams:
            logger.debug("dns {}:{}: not forwarding to itself", *own)
            self._upstreams = [u for u in self._upstreams if u != own]
        logger.debug("dns: serving on {}:{}", *own)

    async def _bind(self) -> None:
        loop = asyncio.get_running_loop()
        transport, listener = await loop.create_datagram_endpoint(
            lambda: _Listener(self._received), local_addr=(self._address, self._port)
        )
        port: int = transport.get_extra_info("sockname")[1]
        try:
            self._tcp = await asyncio.start_server(self._serve_stream, self._address, port)
        except BaseException:
            transport.close()
            await listener.closed
            raise
        self._udp, self._udp_closed, self._port = transport, listener.closed, port

    async def close(self) -> None:
        """Stop listening, end every connection and every query in progress."""
        self._closing = True
        if self._tcp is not None:
            self._tcp.close()
        if self._udp is not None:
            self._udp.close()
        for writer in self._streams:
            writer.transport.abort()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._udp_closed is not None:
            await self._udp_closed
        if self._tcp is not None:
            await self._tcp.wait_closed()
        self._tcp = self._udp = self._udp_closed = None

    # -- transports ------------------------------------------------------------------------

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._finished)
        return task

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.opt(exception=task.exception()).debug("dns: a query failed")

    def _received(self, data: bytes, addr: Address) -> None:
        if not self._closing:
            self._spawn(self._answer_datagram(data, addr))

    async def _answer_datagram(self, wire: bytes, addr: Address) -> None:
        reply = await self._answer(wire, tcp=False)
        if reply is not None and self._udp is not None and not self._udp.is_closing():
            self._udp.sendto(reply, addr)

    async def _serve_stream(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        if self._closing or task is None:
            writer.transport.abort()
            return
        self._tasks.add(task)
        self._streams.add(writer)
        pending: set[asyncio.Task[None]] = set()
        try:
            while True:
                async with asyncio.timeout(TCP_IDLE):
                    wire = await _read_framed(reader)
                answer = self._spawn(self._answer_stream(wire, writer))
                pending.add(answer)
                answer.add_done_callback(pending.discard)
        except (TimeoutError, EOFError, OSError):
            pass  # idle, the client is done (answers still go out: see below), or it is gone
        finally:
            # A client may shut its side down after its last query: let the answers out.
            await asyncio.gather(*pending, return_exceptions=True)
            self._streams.discard(writer)
            writer.close()
            self._tasks.discard(task)

    async def _answer_stream(self, wire: bytes, writer: asyncio.StreamWriter) -> None:
        reply = await self._answer(wire, tcp=True)
        if reply is not None and not writer.is_closing():
            writer.write(_framed(reply))
            with contextlib.suppress(ConnectionError):
                await writer.drain()

    # -- answers ---------------------------------------------------------------------------

    async def _answer(self, wire: bytes, *, tcp: bool) -> bytes | None:
        """The answer to the message ``wire``, or None to drop it."""
        try:
            query = dns.message.from_wire(wire)
        except Exception:  # dnspython raises many kinds on garbage
            logger.debug("dns: dropped a malformed message of {} bytes", len(wire))
            return None
        if query.flags & dns.flags.QR or not query.question:
            return None
        limit = _TCP_LIMIT
        if not tcp:
            limit = max(_UDP_LIMIT, query.payload) if query.edns >= 0 else _UDP_LIMIT
        try:
            response = self._local(query)
        except Exception as e:
            logger.opt(exception=e).debug("dns: cannot answer {}", query.question[0])
            response = _response(query, dns.rcode.SERVFAIL)
        if response is None:
            forwarded = await self._forward(wire, query, limit)
            if forwarded is not None:
                return forwarded
            response = _response(query, dns.rcode.SERVFAIL)
        return response.to_wire(max_size=limit, prefer_truncation=True)

    def _local(self, query: dns.message.Message) -> dns.message.Message | None:
        """Our answer to ``query``, or None when it is for the upstreams."""
        if query.opcode() != dns.opcode.QUERY:
            return _response(query, dns.rcode.NOTIMP)
        question = query.question[0]
        if question.rdclass != dns.rdataclass.IN:
            return None
        if question.rdtype == dns.rdatatype.PTR:
            return self._local_ptr(query, question.name)
        if question.rdtype not in (dns.rdatatype.A, dns.rdatatype.AAAA, dns.rdatatype.MX):
            return None
        addresses = self._addresses(question.name)
        if addresses is None:
            return None
        logger.debug("dns: {} is {}", question.name, addresses)
        response = _response(query, dns.rcode.NOERROR)
        if question.rdtype == dns.rdatatype.A and addresses:
            addresses = list(addresses)
            _shuffle(addresses)
            response.answer.append(
                dns.rrset.from_text_list(
                    question.name, TTL, dns.rdataclass.IN, dns.rdatatype.A, addresses
                )
            )
        return response

    def _addresses(self, name: dns.name.Name) -> list[str] | None:
        if name == dns.name.root:
            return None
        text = name.to_text(omit_final_dot=True).lower()
        found = self._lookup(text)
        if found is None and self._domain and text.endswith("." + self._domain):
            found = self._lookup(text[: -len(self._domain) - 1])
        return found

    def _local_ptr(
        self, query: dns.message.Message, name: dns.name.Name
    ) -> dns.message.Message | None:
        if self._reverse is None:
            return None
        try:
            address = dns.reversename.to_address(name)
        except Exception:  # not a reverse name, or a partial one: the upstreams may know it
            return None
        host = self._reverse(address)
        if not host:
            return None
        if self._domain:
            host = f"{host}.{self._domain}"
        logger.debug("dns: {} is {}", address, host)
        response = _response(query, dns.rcode.NOERROR)
        response.answer.append(
            dns.rrset.from_text_list(
                name,
                TTL,
                dns.rdataclass.IN,
                dns.rdatatype.PTR,
                [dns.name.from_text(host).to_text()],
            )
        )
        return response

    # -- forwarding ------------------------------------------------------------------------

    async def _forward(self, wire: bytes, query: dns.message.Message, limit: int) -> bytes | None:
        """An upstream's answer to ``wire``, or None when none answered in time."""
        if not self._upstreams:
            return None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._timeout
        try:
            async with asyncio.timeout_at(deadline):
                await self._forwarding.acquire()
        except TimeoutError:
            return None
        try:
            for index, upstream in enumerate(self._upstreams):
                share = (deadline - loop.time()) / (len(self._upstreams) - index)
                reply = await self._ask(
                    upstream, wire, query, limit=limit, share=share, deadline=deadline
                )
                if reply is not None:
                    return reply
            return None
        finally:
            self._forwarding.release()

    async def _ask(
        self,
        upstream: Upstream,
        wire: bytes,
        query: dns.message.Message,
        *,
        limit: int,
        share: float,
        deadline: float,
    ) -> bytes | None:
        """``upstream``'s answer within ``share`` seconds, or None to try the next one."""
        try:
            async with asyncio.timeout(share):
                answer, header = await _exchange_udp(upstream, wire, query)
        except (TimeoutError, OSError) as e:
            logger.debug("dns: upstream {}:{}: {}", *upstream, str(e) or "no answer")
            return None
        if header.rcode() in _PASSED_OVER:
            logger.debug("dns: upstream {}:{}: {}", *upstream, dns.rcode.to_text(header.rcode()))
            return None
        if not header.flags & dns.flags.TC:
            return answer
        try:
            async with asyncio.timeout_at(deadline):
                full = await _exchange_tcp(upstream, wire, query)
        except (TimeoutError, OSError, EOFError) as e:
            logger.debug("dns: upstream {}:{} over TCP: {}", *upstream, str(e) or "no answer")
            return answer  # truncated, but an answer: the client may ask us over TCP
        return full if len(full) <= limit else answer


async def _exchange_udp(
    upstream: Upstream, wire: bytes, query: dns.message.Message
) -> tuple[bytes, dns.message.Message]:
    """Send ``wire`` to ``upstream`` from a socket of its own; its answer and its header."""
    loop = asyncio.get_running_loop()
    transport, exchange = await loop.create_datagram_endpoint(
        lambda: _Exchange(query), remote_addr=upstream
    )
    try:
        transport.sendto(wire)
        return await exchange.reply
    finally:
        exchange.reply.cancel()
        transport.close()


async def _exchange_tcp(upstream: Upstream, wire: bytes, query: dns.message.Message) -> bytes:
    """Send ``wire`` to ``upstream`` over TCP; its answer (messages that are not are skipped)."""
    reader, writer = await asyncio.open_connection(*upstream)
    try:
        writer.write(_framed(wire))
        await writer.drain()
        while True:
            reply = await _read_framed(reader)
            if _answers(query, reply) is not None:
                return reply
    finally:
        writer.close()
