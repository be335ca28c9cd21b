"""Hijacked connections: ``attach`` and ``exec start`` switch their HTTP connection to raw
bytes both ways (``101 UPGRADED``), which httpx cannot do.

:func:`open_hijacked` speaks HTTP/1.1 itself over the transport the :class:`APIClient`
uses (a unix socket, TCP, or TLS), reads the response head byte by byte up to the blank
line, requires status 101, and hands back the same socket with whatever arrived after the
head. :class:`Streamer` then does what docker's ``hijackedIOStreamer`` does: stdin to the
connection on one thread (half-closing the socket at stdin's end, at once when no stdin is
attached), the connection to stdout/stderr on another (demultiplexing docker's 8-byte frame
headers unless the container has a tty), until the daemon ends the stream.
"""

from __future__ import annotations

import contextlib
import os
import socket
import ssl
import struct
import threading
from collections.abc import Iterable, Iterator, Mapping
from typing import IO
from urllib.parse import urlsplit

from pydocker.errors import CannotConnect, ConnectionFailed, PydockerError

__all__ = [
    "DEFAULT_DETACH_KEYS",
    "FrameDecoder",
    "Hijacked",
    "Streamer",
    "copy_output",
    "detach_sequence",
    "open_hijacked",
]

DEFAULT_DETACH_KEYS = b"\x10\x11"
"""ctrl-p, ctrl-q."""
_CHUNK = 32 * 1024
_HEAD_LIMIT = 64 * 1024
_FRAME_HEADER = struct.Struct(">BxxxL")
_STDIN, _STDOUT, _STDERR, _SYSTEMERR = 0, 1, 2, 3
_CONTROL_KEYS = ["ctrl-@", *(f"ctrl-{chr(c)}" for c in range(ord("a"), ord("z") + 1))]
_CONTROL_KEYS += ["ctrl-[", "ctrl-\\", "ctrl-]", "ctrl-^", "ctrl-_"]
_DETACH_GRACE = 1.0
"""Seconds the daemon has to end the stream after the detach keys before we close it."""


class Hijacked:
    """A connection the daemon switched to raw bytes. ``content_type`` is the 101's
    (``application/vnd.docker.multiplexed-stream`` or ``...raw-stream``)."""

    def __init__(self, sock: socket.socket, pending: bytes, content_type: str) -> None:
        self._sock = sock
        self._pending = pending
        self.content_type = content_type
        self._closed = False

    def recv(self) -> bytes:
        """The next bytes from the daemon; ``b""`` once it has closed (or we have)."""
        if self._pending:
            data, self._pending = self._pending, b""
            return data
        if self._closed:
            return b""
        try:
            return self._sock.recv(_CHUNK)
        except OSError:
            return b""

    def __iter__(self) -> Iterator[bytes]:
        while chunk := self.recv():
            yield chunk

    def send(self, data: bytes) -> None:
        self._sock.sendall(data)

    def close_write(self) -> None:
        """Half-close: the daemon reads EOF on the container's stdin; output keeps coming.
        (On TLS this shuts the TCP side: Python cannot send a lone ``close_notify``.)"""
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._sock.close()


def _connect(base_url: str, socket_path: str | None, timeout: float | None) -> socket.socket:
    if socket_path is not None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        sock.connect(socket_path)
        return sock
    parts = urlsplit(base_url)
    hostname = parts.hostname or "localhost"
    sock = socket.create_connection((hostname, parts.port or 80), timeout=timeout)
    if parts.scheme == "https":
        return ssl.create_default_context().wrap_socket(sock, server_hostname=hostname)
    return sock


def _read_head(sock: socket.socket) -> tuple[bytes, bytes]:
    """The response head (without the blank line) and the bytes read after it."""
    data = b""
    while b"\r\n\r\n" not in data:
        if len(data) > _HEAD_LIMIT:
            raise ConnectionFailed("the daemon's response head is too long")
        chunk = sock.recv(_CHUNK)
        if not chunk:
            raise ConnectionFailed("the daemon closed the connection before answering")
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    return head, rest


def open_hijacked(
    host_url: str,
    base_url: str,
    socket_path: str | None,
    target: str,
    *,
    headers: Mapping[str, str],
    body: bytes = b"",
    timeout: float | None = 60.0,
) -> Hijacked:
    """``POST target`` with ``Connection: Upgrade`` and ``Upgrade: tcp``; the connection
    once the daemon has answered 101.

    :raises CannotConnect: nobody answers at the address.
    :raises PydockerError: any other status: ``unable to upgrade to tcp, received <code>``
        (docker's words).
    """
    try:
        sock = _connect(base_url, socket_path, timeout)
    except OSError as e:
        raise CannotConnect(host_url, permission_denied=isinstance(e, PermissionError)) from None
    parts = urlsplit(base_url)
    authority = "localhost" if socket_path is not None else parts.netloc
    lines = [
        f"POST {parts.path.rstrip('/')}{target} HTTP/1.1",
        f"Host: {authority}",
        *(f"{name}: {value}" for name, value in headers.items()),
        f"Content-Length: {len(body)}",
        "Connection: Upgrade",
        "Upgrade: tcp",
    ]
    try:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        head, rest = _read_head(sock)
    except OSError as e:
        sock.close()
        raise ConnectionFailed(f"error during connect: POST {target}: {e}") from None
    except PydockerError:
        sock.close()
        raise
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    fields = status_line.split(" ", 2)
    status = int(fields[1]) if len(fields) > 1 and fields[1].isdigit() else 0
    if status != 101:
        sock.close()
        raise PydockerError(f"unable to upgrade to tcp, received {status}")
    response_headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        response_headers[name.strip().lower()] = value.strip()
    sock.settimeout(None)
    return Hijacked(sock, rest, response_headers.get("content-type", ""))


# -- the multiplexed stream -------------------------------------------------------------


class FrameDecoder:
    """docker's stream framing, ``[stream:u8][0,0,0][length:u32 big-endian]`` then the
    payload, decoded whatever the chunk boundaries."""

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, chunk: bytes) -> Iterator[tuple[int, bytes]]:
        """The complete frames in what has arrived so far, as ``(stream, payload)``.

        :raises PydockerError: a system-error frame (``error from daemon in stream: ...``)
            or a header naming no known stream, in docker's words.
        """
        self._buffer += chunk
        while len(self._buffer) >= _FRAME_HEADER.size:
            stream, length = _FRAME_HEADER.unpack_from(self._buffer)
            if stream > _SYSTEMERR:
                raise PydockerError(f"Unrecognized input header: {stream}")
            end = _FRAME_HEADER.size + length
            if len(self._buffer) < end:
                return
            payload, self._buffer = self._buffer[_FRAME_HEADER.size : end], self._buffer[end:]
            if stream == _SYSTEMERR:
                raise PydockerError(
                    f"error from daemon in stream: {payload.decode(errors='replace')}"
                )
            yield stream, payload


def copy_output(
    chunks: Iterable[bytes], *, tty: bool, stdout: IO[bytes] | None, stderr: IO[bytes] | None
) -> None:
    """A container's output to ``stdout`` and ``stderr`` (``None``: dropped), each piece
    flushed as it comes: the bytes as they are with a tty, otherwise docker's frames
    demultiplexed (stdin's, which a tty-less stream never has, to stdout, as docker's
    ``stdcopy`` does).

    :raises PydockerError: an error frame or a bad header (see :class:`FrameDecoder`).
    """
    if tty:
        for chunk in chunks:
            _write(stdout, chunk)
        return
    targets = {_STDIN: stdout, _STDOUT: stdout, _STDERR: stderr}
    decoder = FrameDecoder()
    for chunk in chunks:
        for stream, payload in decoder.feed(chunk):
            _write(targets[stream], payload)


def detach_sequence(keys: str | None) -> bytes:
    """``--detach-keys`` (``ctrl-p,ctrl-q``, ``a,ctrl-x``, ``DEL``) as bytes, as
    ``term.ToBytes`` reads it; the default ctrl-p ctrl-q for none, or for keys docker would
    not understand either (it warns and uses the default)."""
    if not keys:
        return DEFAULT_DETACH_KEYS
    codes = bytearray()
    for key in keys.split(","):
        if len(key) == 1:
            codes += key.encode("latin-1", errors="replace")
        elif key in _CONTROL_KEYS:
            codes.append(_CONTROL_KEYS.index(key))
        elif key == "DEL":
            codes.append(127)
        else:
            return DEFAULT_DETACH_KEYS
    return bytes(codes)


class _DetachWatch:
    """Notices the detach sequence in what the user types into a tty (docker's escape
    proxy, except that the bytes still go to the daemon, which detaches on them)."""

    def __init__(self, sequence: bytes) -> None:
        self._sequence = sequence
        self._matched = 0

    def seen_in(self, data: bytes) -> bool:
        for byte in data:
            if byte == self._sequence[self._matched]:
                self._matched += 1
                if self._matched == len(self._sequence):
                    return True
            else:
                self._matched = 1 if byte == self._sequence[0] else 0
        return False


class Streamer:
    """Copies between the user's streams and a hijacked connection until the daemon ends
    the stream (docker's ``hijackedIOStreamer``).

    :param tty: the container (or exec) has a terminal: output is raw bytes, not frames.
    :param stdin: the user's stdin, or ``None`` when it is not attached (the write side is
        then closed at once, so the daemon sees EOF).
    :param stdout: where the container's stdout goes (``None``: dropped).
    :param stderr: where its stderr goes (``None``: dropped).
    :param detach_keys: the sequence that detaches (see :func:`detach_sequence`); as in
        docker, only a tty detaches: other input is passed on whatever bytes it holds.
    """

    def __init__(
        self,
        conn: Hijacked,
        *,
        tty: bool,
        stdin: IO[bytes] | None,
        stdout: IO[bytes] | None,
        stderr: IO[bytes] | None,
        detach_keys: bytes = DEFAULT_DETACH_KEYS,
    ) -> None:
        self._conn = conn
        self._tty = tty
        self._stdin = stdin
        self._stdout = stdout
        self._stderr = stderr
        self._watch = _DetachWatch(detach_keys) if tty else None
        self._output = threading.Thread(target=self._copy_output, daemon=True)
        self._input = threading.Thread(target=self._copy_input, daemon=True)
        self._error: PydockerError | None = None
        self._finished = threading.Event()
        self.detached = False
        """The user typed the detach keys: the container goes on without us."""

    def start(self) -> None:
        self._output.start()
        self._input.start()

    def stop(self) -> None:
        """End the exchange now (the container failed to start)."""
        self._conn.close()
        self._output.join()

    def wait(self) -> None:
        """Until the daemon has ended the stream and all output is written (or the user
        detached).

        :raises PydockerError: the daemon reported an error inside the stream.
        """
        self._finished.wait()
        self._conn.close()
        if self._error is not None:
            raise self._error

    def _copy_output(self) -> None:
        try:
            copy_output(self._conn, tty=self._tty, stdout=self._stdout, stderr=self._stderr)
        except PydockerError as e:
            self._error = e
        except OSError:
            pass  # our own stdout went away: nothing more to show
        finally:
            self._finished.set()

    def _copy_input(self) -> None:
        if self._stdin is None:
            self._conn.close_write()
            return
        fd = self._stdin.fileno()
        try:
            while data := os.read(fd, _CHUNK):
                self._conn.send(data)
                if self._watch is not None and self._watch.seen_in(data):
                    self.detached = True
                    if not self._finished.wait(_DETACH_GRACE):
                        self._conn.close()
                    return
        except OSError:
            return  # the connection is gone: the output side sees it too
        self._conn.close_write()


def _write(stream: IO[bytes] | None, data: bytes) -> None:
    if stream is not None:
        stream.write(data)
        stream.flush()
