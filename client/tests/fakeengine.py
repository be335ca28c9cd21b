"""A fake Engine API for the client's tests: an aiohttp server on a unix socket that records
every request and answers from canned replies, including streamed bodies, ``/wait``'s
early headers and hijacked (``101 UPGRADED``) exchanges that speak docker's framing."""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import pty
import select
import signal
import struct
import subprocess
import sys
import termios
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

__all__ = [
    "FakeDaemon",
    "Hijack",
    "Recorded",
    "Reply",
    "Result",
    "Terminal",
    "frame",
    "run",
    "serve",
    "stream_for",
]

MULTIPLEXED = "application/vnd.docker.multiplexed-stream"
RAW = "application/vnd.docker.raw-stream"


def frame(stream: int, data: bytes) -> bytes:
    """One frame of docker's multiplexed stream."""
    return struct.pack(">BxxxL", stream, len(data)) + data


@dataclass
class Recorded:
    method: str
    path: str
    query: list[tuple[str, str]]
    body: bytes
    headers: dict[str, str]

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Reply:
    """A canned answer. ``chunks`` stream the body piece by piece, ``after`` holds the body
    back until a request for that path has arrived (``/wait`` answers once ``/start`` has
    come), ``delay`` holds the headers back."""

    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"
    chunks: list[bytes] | None = None
    after: str | None = None
    delay: float = 0.0


@dataclass
class Hijack:
    """A scripted hijacked exchange: ``101 UPGRADED``, then ``output`` (sent once a request
    for ``after`` has arrived, if given); what the client sends is kept in ``stdin``.
    ``echo`` sends stdin back as a stdout frame when the client half-closes. The daemon
    then ends the stream, or once a request for ``until`` has arrived."""

    output: list[bytes] = field(default_factory=list)
    content_type: str = MULTIPLEXED
    after: str | None = None
    echo: bool = False
    until: str | None = None
    stdin: bytearray = field(default_factory=bytearray)
    stdin_closed: bool = False


class _StdinProtocol(asyncio.Protocol):
    """Takes the connection over from aiohttp after the 101 (the recipe of the daemon's
    attach): data is stdin, EOF is a half-close, not a disconnect."""

    def __init__(self, inner: asyncio.BaseProtocol, hijack: Hijack, eof: asyncio.Event) -> None:
        self.inner, self.hijack, self.eof = inner, hijack, eof

    def data_received(self, data: bytes) -> None:
        self.hijack.stdin += data

    def eof_received(self) -> bool:
        self.hijack.stdin_closed = True
        self.eof.set()
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self.eof.set()
        self.inner.connection_lost(exc)


@dataclass
class FakeDaemon:
    """Records every request (the version prefix dropped from the path) and answers from
    canned replies; anything not set up gets Docker's 404 shape. ``log`` lists what
    happened in order: ``"POST /path"`` for each request, ``"headers /path"`` when a held
    reply's headers went out."""

    socket: Path
    requests: list[Recorded] = field(default_factory=list)
    replies: dict[tuple[str, str], Reply] = field(default_factory=dict)
    once: dict[tuple[str, str], list[Reply]] = field(default_factory=dict)
    hijacks: dict[str, Hijack] = field(default_factory=dict)
    log: list[str] = field(default_factory=list)
    arrivals: dict[str, asyncio.Event] = field(default_factory=dict)

    @property
    def host(self) -> str:
        return f"unix://{self.socket}"

    def reply(
        self, method: str, path: str, body: Any = None, status: int = 200, **extra: Any
    ) -> None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        content_type = "application/x-tar" if isinstance(body, bytes) else "application/json"
        extra.setdefault("content_type", content_type)
        self.replies[(method, path)] = Reply(status, data, **extra)

    def error(self, method: str, path: str, status: int, message: str) -> None:
        self.reply(method, path, {"message": message}, status)

    def reply_once(self, method: str, path: str, body: Any = None, status: int = 200) -> None:
        """An answer for the next such request only; later ones get :meth:`reply`'s."""
        data = json.dumps(body).encode()
        self.once.setdefault((method, path), []).append(Reply(status, data))

    def hijack(self, path: str, **settings: Any) -> Hijack:
        scripted = self.hijacks[path] = Hijack(**settings)
        return scripted

    def calls(self) -> list[tuple[str, str]]:
        return [(r.method, r.path) for r in self.requests if r.path != "/_ping"]

    def only(self) -> Recorded:
        found = [r for r in self.requests if r.path != "/_ping"]
        assert len(found) == 1, self.calls()
        return found[0]

    def last(self, method: str, path: str) -> Recorded:
        return [r for r in self.requests if (r.method, r.path) == (method, path)][-1]

    def _arrival(self, path: str) -> asyncio.Event:
        return self.arrivals.setdefault(path, asyncio.Event())

    async def _until(self, path: str | None) -> None:
        if path is not None:
            await self._arrival(path).wait()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        if path.startswith("/v1."):
            path = "/" + path.split("/", 2)[2]
        body = await request.read()
        self.requests.append(
            Recorded(request.method, path, list(request.query.items()), body, dict(request.headers))
        )
        self.log.append(f"{request.method} {path}")
        self._arrival(path).set()
        if path == "/_ping":
            return web.Response(text="OK", headers={"Api-Version": "1.47"})
        if request.method == "POST" and path in self.hijacks and request.headers.get("Upgrade"):
            return await self._hijack(request, self.hijacks[path])
        pending = self.once.get((request.method, path))
        reply = pending.pop(0) if pending else self.replies.get((request.method, path))
        if reply is None:
            return web.json_response({"message": f"page not found: {path}"}, status=404)
        if reply.delay:
            await asyncio.sleep(reply.delay)
        if reply.chunks is None and reply.after is None:
            return web.Response(
                status=reply.status, body=reply.body, headers={"Content-Type": reply.content_type}
            )
        response = web.StreamResponse(
            status=reply.status, headers={"Content-Type": reply.content_type}
        )
        await response.prepare(request)
        self.log.append(f"headers {path}")
        await self._until(reply.after)
        for chunk in reply.chunks if reply.chunks is not None else [reply.body]:
            await response.write(chunk)
            await asyncio.sleep(0.02)
        await response.write_eof()
        return response

    async def _hijack(self, request: web.Request, scripted: Hijack) -> web.StreamResponse:
        response = web.StreamResponse(
            status=101,
            reason="UPGRADED",
            headers={
                "Content-Type": scripted.content_type,
                "Connection": "Upgrade",
                "Upgrade": "tcp",
            },
        )
        await response.prepare(request)
        transport = request.transport
        assert transport is not None
        assert request.protocol is not None
        eof = asyncio.Event()
        transport.set_protocol(_StdinProtocol(request.protocol, scripted, eof))
        await self._until(scripted.after)
        for chunk in scripted.output:
            transport.write(chunk)
            await asyncio.sleep(0.02)
        if scripted.echo:
            await eof.wait()
            transport.write(frame(1, bytes(scripted.stdin)))
        await self._until(scripted.until)
        await asyncio.sleep(0.05)
        transport.close()
        return response


@contextmanager
def serve(directory: Path) -> Iterator[FakeDaemon]:
    """A :class:`FakeDaemon` on ``directory/engine.sock``, served from a thread."""
    fake = FakeDaemon(directory / "engine.sock")
    loop = asyncio.new_event_loop()
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_route("*", "/{tail:.*}", fake.handle)
    runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=1.0)
    loop.run_until_complete(runner.setup())
    loop.run_until_complete(web.UnixSite(runner, str(fake.socket)).start())
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


@dataclass
class Result:
    status: int
    stdout: bytes
    stderr: str

    @property
    def out(self) -> str:
        return self.stdout.decode()


def stream_for(fake: FakeDaemon, seconds: float, *args: str) -> bytes:
    """The output of a command that streams until stopped, after ``seconds``."""
    command = [sys.executable, "-m", "pydocker", "-H", fake.host, *args]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL) as process:
        time.sleep(seconds)
        process.kill()
        output, _ = process.communicate()
    return output


def run(
    fake: FakeDaemon,
    *args: str,
    stdin: bytes | None = None,
    tty_stdin: bool = False,
    tty_stdout: bool = False,
    env: dict[str, str] | None = None,
    timeout: float = 60,
    cwd: Path | None = None,
) -> Result:
    """``pydocker -H <fake> args...`` in a subprocess (in ``cwd``, if given); stdin and/or
    stdout on a pty. The docker config directory is the fake's own (never the user's),
    unless ``env`` says."""
    command = [sys.executable, "-m", "pydocker", "-H", fake.host, *args]
    config = str(fake.socket.parent / "docker-config")
    environment = {**os.environ, "DOCKER_CONFIG": config, **(env or {})}
    if not (tty_stdin or tty_stdout):
        done = subprocess.run(
            command,
            input=stdin if stdin is not None else b"",
            capture_output=True,
            timeout=timeout,
            check=False,
            env=environment,
            cwd=cwd,
        )
        return Result(done.returncode, done.stdout, done.stderr.decode())
    controller, terminal = pty.openpty()
    try:
        process = subprocess.run(
            command,
            stdin=terminal if tty_stdin else subprocess.DEVNULL,
            stdout=terminal if tty_stdout else subprocess.PIPE,
            stderr=subprocess.PIPE,
            timeout=timeout,
            check=False,
            env=environment,
            cwd=cwd,
        )
    finally:
        os.close(terminal)
        os.close(controller)
    return Result(process.returncode, process.stdout or b"", process.stderr.decode())


class Terminal:
    """A command on a real pseudo-terminal of ``rows`` x ``cols``, driven as a person
    would: wait for text, type, read the exit status."""

    def __init__(
        self, argv: list[str], env: dict[str, str] | None = None, rows: int = 30, cols: int = 100
    ) -> None:
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # pragma: no cover - the child
            os.execvpe(argv[0], argv, {**os.environ, **(env or {})})
        fcntl.ioctl(self.fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        self.output = b""

    def _read(self, timeout: float) -> bool:
        ready, _, _ = select.select([self.fd], [], [], timeout)
        if not ready:
            return True
        try:
            chunk = os.read(self.fd, 4096)
        except OSError:
            return False
        self.output += chunk
        return bool(chunk)

    def expect(self, text: str, timeout: float = 15.0) -> str:
        """Read until ``text`` appears; everything read so far, decoded."""
        deadline = time.monotonic() + timeout
        while text.encode() not in self.output:
            left = deadline - time.monotonic()
            if left <= 0 or not self._read(min(left, 0.1)):
                raise AssertionError(f"no {text!r} in {self.output[-500:]!r}")
        return self.output.decode(errors="replace")

    def send(self, text: str | bytes) -> None:
        os.write(self.fd, text.encode() if isinstance(text, str) else text)

    def resize(self, rows: int, cols: int) -> None:
        """Change the window size; the kernel sends the command SIGWINCH."""
        fcntl.ioctl(self.fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    def wait(self, timeout: float = 15.0) -> int:
        """The command's exit status (it is killed after ``timeout``)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._read(0.05)
            done, status = os.waitpid(self.pid, os.WNOHANG)
            if done:
                while self._read(0.05) and select.select([self.fd], [], [], 0)[0]:
                    pass
                os.close(self.fd)
                return os.waitstatus_to_exitcode(status)
        os.kill(self.pid, signal.SIGKILL)
        os.waitpid(self.pid, 0)
        os.close(self.fd)
        raise AssertionError(f"the command did not end: {self.output[-500:]!r}")
