"""Hijacked connections (attach, exec) and the pumps between them and the supervisor.

The Engine API upgrades ``POST /containers/{id}/attach`` and ``POST /exec/{id}/start`` to a
raw TCP-like stream: ``101 UPGRADED``, then bytes both ways. aiohttp closes a transport when
the client half-closes (``eof_received`` returns None), but the docker CLI half-closes as
soon as its stdin ends, so :class:`Hijack` takes the transport over with a protocol of its
own: the client's half-close becomes the container's stdin EOF, never a disconnect.
"""

from __future__ import annotations

import asyncio
import contextlib
import json

from aiohttp import web

from pydockerd.errors import InvalidParameter
from pydockerd.supervisor.client import Stream
from pydockerd.supervisor.protocol import EXIT_STREAM, frame, read_frame

__all__ = ["MULTIPLEXED", "RAW", "Hijack", "detach_sequence", "pump"]

MULTIPLEXED = "application/vnd.docker.multiplexed-stream"
RAW = "application/vnd.docker.raw-stream"
_FIRST_BYTE_DELAY = 0.05
"""docker-py reads the 101 through a buffered reader and then the raw socket: bytes sent
together with the 101 are lost to it, so the first output waits this long."""
_DEFAULT_DETACH = b"\x10\x11"  # ctrl-p ctrl-q


class _Proxy(asyncio.Protocol):
    def __init__(self, original: asyncio.BaseProtocol) -> None:
        self.original = original
        self.incoming: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.lost = asyncio.Event()
        self._writable = asyncio.Event()
        self._writable.set()

    def data_received(self, data: bytes) -> None:
        self.incoming.put_nowait(data)

    def eof_received(self) -> bool:
        self.incoming.put_nowait(None)
        return True  # keep the transport open for our writes

    def connection_lost(self, exc: Exception | None) -> None:
        self.incoming.put_nowait(None)
        self.lost.set()
        self._writable.set()
        self.original.connection_lost(exc)

    def pause_writing(self) -> None:
        self._writable.clear()
        self.original.pause_writing()

    def resume_writing(self) -> None:
        self._writable.set()
        self.original.resume_writing()


class Hijack:
    """An upgraded connection: :meth:`read` the client's bytes, :meth:`write` ours."""

    def __init__(self, transport: asyncio.Transport, proxy: _Proxy) -> None:
        self.transport = transport
        self.proxy = proxy

    @classmethod
    async def upgrade(
        cls, request: web.Request, content_type: str
    ) -> tuple[Hijack, web.StreamResponse]:
        """Answer ``101 UPGRADED`` and take the connection over. Return the response too:
        the handler must return it."""
        response = web.StreamResponse(
            status=101,
            reason="UPGRADED",
            headers={"Content-Type": content_type, "Connection": "Upgrade", "Upgrade": "tcp"},
        )
        await response.prepare(request)
        transport = request.transport
        assert transport is not None
        proxy = _Proxy(request.protocol)
        transport.set_protocol(proxy)
        return cls(transport, proxy), response

    @property
    def lost(self) -> bool:
        return self.proxy.lost.is_set()

    async def read(self) -> bytes | None:
        """The client's next bytes; ``None`` once it has half-closed or gone."""
        return await self.proxy.incoming.get()

    async def write(self, data: bytes) -> None:
        if self.lost or self.transport.is_closing():
            raise ConnectionResetError("the client went away")
        self.transport.write(data)
        await self.proxy._writable.wait()

    def close(self) -> None:
        self.transport.close()


def detach_sequence(keys: str | None) -> bytes:
    """``detachKeys`` (``ctrl-p,ctrl-q``, ``a``, ``ctrl-@``...) as bytes."""
    if not keys:
        return _DEFAULT_DETACH
    sequence = bytearray()
    for raw in keys.split(","):
        key = raw.strip()
        if key.startswith("ctrl-") and len(key) == 6:
            char = key[5]
            code = {"@": 0, "[": 27, "\\": 28, "]": 29, "^": 30, "_": 31}.get(char)
            sequence.append(code if code is not None else ord(char.lower()) - ord("a") + 1)
        elif len(key) == 1:
            sequence.append(ord(key))
        else:
            raise InvalidParameter(f"Invalid detach keys ({keys}) provided")
    return bytes(sequence)


async def pump(
    hijack: Hijack,
    stream: Stream,
    *,
    tty: bool,
    stdin: bool,
    detach_keys: bytes | None = None,
) -> int | None:
    """Copy the client's bytes to the supervisor (stdin) and the supervisor's frames to the
    client (framed as they are without a tty, raw with one) until the output ends, the
    client leaves, or it types the detach keys. The exit code of an exec stream (its last
    frame), or ``None``."""
    exit_code: int | None = None

    async def output() -> None:
        nonlocal exit_code
        await asyncio.sleep(_FIRST_BYTE_DELAY)
        while True:
            item = await read_frame(stream.reader)
            if item is None:
                return
            kind, payload = item
            if kind == EXIT_STREAM:
                exit_code = int(json.loads(payload)["exit_code"])
                continue
            await hijack.write(payload if tty else frame(kind, payload))

    async def input_() -> None:
        """Ends only when the client is gone, or typed the detach keys."""
        matched = 0
        while True:
            data = await hijack.read()
            if data is None:
                break
            if detach_keys:
                data, matched, found = _scan(data, detach_keys, matched)
                if found:
                    return
            if stdin and data:
                stream.writer.write(data)
                await stream.writer.drain()
        if stdin and stream.writer.can_write_eof():
            stream.writer.write_eof()
        await hijack.proxy.lost.wait()  # a half-closed client still reads our output

    tasks = {asyncio.ensure_future(output()), asyncio.ensure_future(input_())}
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, ConnectionError, OSError):
                await task
        stream.close()
        hijack.close()
    return exit_code


def _scan(data: bytes, keys: bytes, matched: int) -> tuple[bytes, int, bool]:
    """Look for the detach sequence across reads: (bytes to forward, progress, found).
    Bytes that turn out not to be the sequence are forwarded after all."""
    out = bytearray()
    for byte in data:
        if byte == keys[matched]:
            matched += 1
            if matched == len(keys):
                return bytes(out), 0, True
            continue
        if matched:
            out += keys[:matched]
            matched = 1 if byte == keys[0] else 0
            if matched:
                continue
        out.append(byte)
    return bytes(out), matched, False
