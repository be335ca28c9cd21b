"""Published ports: the userland proxy that makes a host port lead to a container's port.

``docker run -p 127.0.0.1:18080:80`` gets one :class:`PortProxy` (Docker's ``docker-proxy``),
run by the supervisor so that published ports keep working while the daemon restarts.

TCP: every connection accepted on the host port gets a connection of its own to the target; if
the target refuses, the client's connection is closed. Bytes are copied both ways with flow
control (a side that does not read holds back the other, nothing is buffered without bound),
a half-close is passed on (one side shuts its write side: so is the other's), a reset or a
failed write on one side ends both at once, and both connections close once both directions
have ended.

UDP: one socket on the host port; each client address gets a socket of its own connected to
the target, so the target's replies go back to that client, from the host port (and from the
address the client sent to, when bound to all addresses). A client mapping nobody used for
``udp_idle`` seconds (60 by default) goes. Datagrams that cannot be sent at once are dropped,
as the network would.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import ipaddress
import os
import socket
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from loguru import logger

from pydockerd.errors import Conflict, InvalidParameter, SystemError

__all__ = ["UDP_IDLE", "PortMapping", "PortProxy"]

UDP_IDLE = 60.0
"""Seconds a UDP client mapping lives without traffic."""

_CHUNK = 64 * 1024
_DATAGRAM = 65535
_UDP_CLIENTS = 1024  # at most; a datagram from a further client is dropped
_ACCEPT_BACKOFF = 0.1  # seconds between accepts while out of file descriptors
_IP_PKTINFO = getattr(socket, "IP_PKTINFO", 8)  # Linux's value; Python names it from 3.13
_ANCILLARY = socket.CMSG_SPACE(32)  # room for an in_pktinfo or in6_pktinfo


@dataclass(frozen=True)
class PortMapping:
    """One published port."""

    host_ip: str
    """Where to listen: ``"0.0.0.0"`` (every IPv4 address; ``""`` too), ``"127.0.0.1"``,
    ``"::"`` (every IPv6 address)..."""
    host_port: int
    """0: a free port the kernel picks (``-P``, ``-p 80``)."""
    protocol: str
    """``"tcp"`` or ``"udp"``."""
    target_ip: str
    """The container's address."""
    target_port: int


def _endpoint(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _address(text: str, what: str) -> str:
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise InvalidParameter(f"invalid {what} {text!r}: not an IP address") from None


class PortProxy:
    """The proxy of one :class:`PortMapping`.

    :param udp_idle: seconds a UDP client mapping lives without traffic.
    :raises InvalidParameter: the protocol is not tcp or udp (sctp is refused), an address or
        a port is invalid.
    """

    def __init__(self, mapping: PortMapping, *, udp_idle: float = UDP_IDLE) -> None:
        if mapping.protocol == "sctp":
            raise InvalidParameter("publishing sctp ports is not supported: only tcp and udp")
        if mapping.protocol not in ("tcp", "udp"):
            raise InvalidParameter(f"invalid protocol {mapping.protocol!r}: tcp or udp")
        if not 0 <= mapping.host_port <= 65535 or not 0 < mapping.target_port <= 65535:
            raise InvalidParameter(
                f"invalid port mapping {mapping.host_port}:{mapping.target_port}"
            )
        self.mapping = mapping
        self._host = _address(mapping.host_ip or "0.0.0.0", "host IP")
        self._target = (_address(mapping.target_ip, "target IP"), mapping.target_port)
        self._udp_idle = udp_idle
        self._listener: socket.socket | None = None
        self._udp: _UdpRelay | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._backoff: asyncio.TimerHandle | None = None
        self._port = 0

    @property
    def port(self) -> int:
        """The host port it listens on (0 before :meth:`start`)."""
        return self._port

    async def start(self) -> int:
        """Listen on the host port; the port (the one the kernel picked for port 0).

        :raises Conflict: the port is in use (Docker's words: ``Bind for ... failed: port is
            already allocated``).
        :raises SystemError: the host refused otherwise (an address not on this host...).
        """
        if self._listener is not None:
            return self._port
        listener = self._bind()
        self._listener, self._port = listener, listener.getsockname()[1]
        if self.mapping.protocol == "tcp":
            self._accepting(True)
        else:
            self._udp = _UdpRelay(listener, self._target, self._udp_idle)
        logger.debug("port {}: to {}", self._described(), _endpoint(*self._target))
        return self._port

    async def close(self) -> None:
        """Stop listening; end every connection at once (what is still buffered is dropped) and
        every UDP client mapping."""
        if self._listener is None:
            return
        if self._udp is not None:
            self._udp.close()
            self._udp = None
        else:
            self._accepting(False)
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._listener.close()
        self._listener = None

    def _described(self) -> str:
        return f"{_endpoint(self._host, self._port)}/{self.mapping.protocol}"

    def _bind(self) -> socket.socket:
        tcp = self.mapping.protocol == "tcp"
        family = socket.AF_INET6 if ":" in self._host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM if tcp else socket.SOCK_DGRAM)
        try:
            if family == socket.AF_INET6:  # "::" is IPv6 only; "0.0.0.0" has a proxy of its own
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            if tcp:  # rebinding over connections in TIME_WAIT; listeners still conflict
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self._host, self.mapping.host_port))
            if tcp:
                sock.listen(socket.SOMAXCONN)
            sock.setblocking(False)
        except OSError as e:
            sock.close()
            where = _endpoint(self._host, self.mapping.host_port)
            if e.errno == errno.EADDRINUSE:
                raise Conflict(f"Bind for {where} failed: port is already allocated") from None
            reason = os.strerror(e.errno).lower() if e.errno else str(e)
            raise SystemError(
                f"Error starting userland proxy: listen {self.mapping.protocol} {where}: "
                f"bind: {reason}"
            ) from None
        return sock

    # -- TCP -------------------------------------------------------------------------------

    def _accepting(self, on: bool) -> None:
        """Accept connections as they come (``on``), or no more."""
        assert self._listener is not None
        loop = asyncio.get_running_loop()
        if self._backoff is not None:
            self._backoff.cancel()
            self._backoff = None
        if on:
            loop.add_reader(self._listener.fileno(), self._accept)
        else:
            loop.remove_reader(self._listener.fileno())

    def _accept(self) -> None:
        assert self._listener is not None
        loop = asyncio.get_running_loop()
        for _ in range(64):  # a batch, then the loop's other work
            try:
                connection, _ = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:  # out of descriptors: pause; else the client gave up
                logger.debug("port {}: accept: {}", self._described(), e)
                if e.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    loop.remove_reader(self._listener.fileno())
                    self._backoff = loop.call_later(_ACCEPT_BACKOFF, self._accepting, True)
                    return
                continue
            connection.setblocking(False)
            task = loop.create_task(self._carry(connection))
            self._tasks.add(task)
            task.add_done_callback(functools.partial(self._carried, connection))

    def _carried(self, connection: socket.socket, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        connection.close()  # closed already, unless the task was cancelled before it ran

    async def _carry(self, connection: socket.socket) -> None:
        """Relay one client connection to the target, both ways, until both ends are done."""
        client = await asyncio.open_connection(sock=connection)
        writers = [client[1]]
        ended = False
        try:
            try:
                target = await asyncio.open_connection(*self._target)
            except OSError as e:
                logger.debug("port {}: target {}: {}", self._described(), self._target, e)
                ended = True  # a client whose target refuses sees its connection closed
                return
            writers.append(target[1])
            transports = [w.transport for w in writers]
            await asyncio.gather(
                _pipe(client[0], target[1], transports), _pipe(target[0], client[1], transports)
            )
            ended = True
        finally:
            for writer in writers:
                if ended:
                    writer.close()  # everything was written: close without losing any of it
                else:
                    writer.transport.abort()
                with contextlib.suppress(Exception):
                    await writer.wait_closed()


async def _pipe(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    transports: Sequence[asyncio.WriteTransport],
) -> None:
    """Copy ``reader`` to ``writer`` until end of file, then shut ``writer``'s write side.

    A reset or a write that fails ends both directions at once: ``transports`` are aborted.
    """
    try:
        while data := await reader.read(_CHUNK):
            writer.write(data)
            await writer.drain()  # the other side reads slower: read slower too
        if writer.can_write_eof() and not writer.is_closing():
            writer.write_eof()
    except OSError:
        for transport in transports:
            transport.abort()


# -- UDP -----------------------------------------------------------------------------------


class _UdpClient:
    """One client address: its socket connected to the target, and when it was last used."""

    def __init__(self, address: Any, sock: socket.socket, now: float) -> None:
        self.address = address
        self.sock = sock
        self.last = now
        self.local: bytes | None = None
        """The address the client sent to (packed), to reply from it."""
        self.timer: asyncio.TimerHandle | None = None


class _UdpRelay:
    """The UDP side of a proxy: reads the host socket and each client's target socket with
    the event loop's readers (no task, nothing buffered)."""

    def __init__(self, sock: socket.socket, target: tuple[str, int], idle: float) -> None:
        self._loop = asyncio.get_running_loop()
        self._sock = sock
        self._target = target
        self._idle = idle
        self._clients: dict[Any, _UdpClient] = {}
        self._family = sock.family
        # Bound to every address: learn each datagram's destination, to reply from it.
        self._pktinfo = ipaddress.ip_address(sock.getsockname()[0]).is_unspecified
        if self._pktinfo:
            if self._family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVPKTINFO, 1)
            else:
                sock.setsockopt(socket.IPPROTO_IP, _IP_PKTINFO, 1)
        self._loop.add_reader(sock.fileno(), self._from_clients)

    def close(self) -> None:
        self._loop.remove_reader(self._sock.fileno())
        for client in list(self._clients.values()):
            self._drop(client)

    def _from_clients(self) -> None:
        for _ in range(64):  # a batch, then the loop's other work
            try:
                data, ancillary, _, address = self._sock.recvmsg(_DATAGRAM, _ANCILLARY)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:
                logger.debug("udp {}: {}", self._sock.getsockname(), e)
                return
            client = self._clients.get(address) or self._connect(address)
            if client is None:
                continue
            client.last = self._loop.time()
            if self._pktinfo:
                client.local = self._destination(ancillary)
            with contextlib.suppress(OSError):  # a full buffer, or the target's port closed
                client.sock.send(data)

    def _connect(self, address: Any) -> _UdpClient | None:
        if len(self._clients) >= _UDP_CLIENTS:
            logger.debug("udp: {} client mappings already, dropping {}", _UDP_CLIENTS, address)
            return None
        family = socket.AF_INET6 if ":" in self._target[0] else socket.AF_INET
        try:
            sock = socket.socket(family, socket.SOCK_DGRAM)
        except OSError as e:
            logger.debug("udp: no socket for {}: {}", address, e)
            return None
        try:
            sock.setblocking(False)
            sock.connect(self._target)
        except OSError as e:
            sock.close()
            logger.debug("udp: cannot reach {}: {}", self._target, e)
            return None
        client = _UdpClient(address, sock, self._loop.time())
        self._clients[address] = client
        self._loop.add_reader(sock.fileno(), self._from_target, client)
        client.timer = self._loop.call_later(self._idle, self._expire, client)
        return client

    def _from_target(self, client: _UdpClient) -> None:
        for _ in range(64):
            try:
                data = client.sock.recv(_DATAGRAM)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # the target's port is closed (ICMP): nothing to pass back
                continue
            client.last = self._loop.time()
            try:
                if client.local is not None:
                    with contextlib.suppress(OSError):  # e.g. sent to a broadcast address
                        self._sock.sendmsg([data], [self._source(client.local)], 0, client.address)
                        continue
                self._sock.sendto(data, client.address)
            except OSError as e:
                logger.debug("udp: reply to {} dropped: {}", client.address, e)

    def _expire(self, client: _UdpClient) -> None:
        left = client.last + self._idle - self._loop.time()
        if left > 0:
            client.timer = self._loop.call_later(left, self._expire, client)
        else:
            logger.debug("udp: client {} idle, its mapping goes", client.address)
            self._drop(client)

    def _drop(self, client: _UdpClient) -> None:
        if client.timer is not None:
            client.timer.cancel()
        self._loop.remove_reader(client.sock.fileno())
        client.sock.close()
        del self._clients[client.address]

    def _destination(self, ancillary: list[tuple[int, int, bytes]]) -> bytes | None:
        """The destination address of a datagram, packed, from its ``*_PKTINFO``."""
        for level, kind, data in ancillary:
            if level == socket.IPPROTO_IP and kind == _IP_PKTINFO:
                return data[8:12]  # struct in_pktinfo: ifindex, spec_dst, addr
            if level == socket.IPPROTO_IPV6 and kind == socket.IPV6_PKTINFO:
                return data[:16]  # struct in6_pktinfo: addr, ifindex
        return None

    def _source(self, local: bytes) -> tuple[int, int, bytes]:
        """The ancillary data that sends a datagram from the address ``local``."""
        if self._family == socket.AF_INET6:
            return socket.IPPROTO_IPV6, socket.IPV6_PKTINFO, local + struct.pack("=I", 0)
        return socket.IPPROTO_IP, _IP_PKTINFO, struct.pack("=i4s4s", 0, local, bytes(4))
