"""The supervisor: the process that holds containers, so they outlive the daemon.

One supervisor serves one daemon (one exec-root). The daemon starts it when it first needs
it and it ends by itself when it has held no container for ``idle_timeout`` seconds. It is
the parent of every container process: it keeps their stdio (pipes or a pseudo-terminal),
writes their output through the container's log driver, fans it out to attached clients,
reaps them, and keeps each exit status — in memory until the daemon has taken it
(``forget``), and on disk (``exit_file``) for a daemon that comes back after the supervisor
itself is gone. The containers' processes die with it (the runtime gives them a parent-death
signal), so no container can run on that nobody sees.

The wire protocol is in :mod:`pydockerd.supervisor.protocol`. Control operations:

=============  ==========================================================================
``hello``      the state of every container held: ``{"containers": [snapshot, ...]}``
``create``     make the container and its first process (held before exec); ``{"pid"}``
``start``      let the first process run its program; ``{"started_at": ns}``
``kill``       ``signal`` to the first process (``all``: every process of the container)
``resize``     the pseudo-terminal of the container, or of exec ``exec_id``, to ``h`` by ``w``
``pause``      freeze / ``resume`` thaw the container
``stats``      cgroup counters (:class:`~pydockerd.spec.ResourceStats` as a dict)
``processes``  the pids of the container's processes
``exec``       a detached exec (output discarded); ``{"pid"}``
``publish``    proxy host ports to the container (``mappings``); ``{"ports": [...]}``
``unpublish``  stop the container's port proxies (they stop by themselves when it exits)
``forget``     drop an exited container's record (the daemon has its exit status)
``cleanup``    ``runtime.delete`` for a container an earlier supervisor left behind
=============  ==========================================================================

Events pushed on control connections: ``{"event": "exit", "id", "exit_code", "finished_at",
"oom_killed"}`` and ``{"event": "exec-exit", "id", "exec_id", "exit_code"}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import functools
import json
import os
import signal
import struct
import sys
import termios
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loguru import logger

from pydockerd.errors import NotFound, PydockerdError
from pydockerd.fsutil import write_atomically
from pydockerd.manager import load_driver_class
from pydockerd.plugin import (
    Conflict,
    ContainerSpec,
    DriverConfig,
    DriverContext,
    InvalidParameter,
    LogContext,
    LogDriver,
    LogRecord,
    LogWriter,
    ProcessSpec,
    Runtime,
    StartError,
    Stdio,
)
from pydockerd.supervisor.ports import PortMapping, PortProxy
from pydockerd.supervisor.protocol import (
    EXIT_STREAM,
    STDERR,
    STDOUT,
    frame,
    read_message,
    stream_limit,
    write_message,
)

__all__ = ["DriverSetup", "Supervisor", "SupervisorConfig", "exit_code_of"]

_LINE_MAX = 16 * 1024
"""Output longer than this without a newline is logged in pieces (``partial``), as Docker."""
_BACKLOG_LIMIT = 4 * 1024 * 1024
"""Bytes an attached client may fall behind before the process's output is paused."""
_OUTPUT_DRAIN_TIMEOUT = 2.0
"""Seconds to wait for a process's output to end after it exited (a child of it, outside a
PID namespace, may hold the pipe)."""
_STOP_ALL_TIMEOUT = 10.0


def exit_code_of(status: int) -> int:
    """A ``waitpid`` status as Docker reports it: the exit code, or 128 + the signal."""
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


def set_window_size(fd: int, rows: int, columns: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))


@dataclass(frozen=True)
class DriverSetup:
    """How to make one driver the daemon chose: its plugin module, config and directories."""

    module: str
    config: dict[str, Any]
    state_dir: str
    run_dir: str
    scratch_dir: str


@dataclass(frozen=True)
class SupervisorConfig:
    """Written by the daemon as JSON next to the socket; read at start."""

    socket: str
    idle_timeout: float
    drivers: dict[str, DriverSetup]
    """``<kind>.<name>`` (``runtime.native``, ``log.json-file``) → how to make it."""

    @classmethod
    def read(cls, path: Path) -> SupervisorConfig:
        data = json.loads(path.read_text())
        return cls(
            socket=data["socket"],
            idle_timeout=float(data["idle_timeout"]),
            drivers={key: DriverSetup(**value) for key, value in data["drivers"].items()},
        )


class _Output(asyncio.Protocol):
    """Reads one output fd (a pipe, or a pty master) and hands the bytes on."""

    def __init__(self, on_data: Callable[[bytes], None]) -> None:
        self.on_data = on_data
        self.done = asyncio.get_running_loop().create_future()
        self.transport: asyncio.ReadTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.ReadTransport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.on_data(data)

    def eof_received(self) -> bool:
        return False

    def connection_lost(self, exc: Exception | None) -> None:  # EIO from a pty is its end
        if not self.done.done():
            self.done.set_result(None)


class _LineSplitter:
    """Cuts one stream's output into log records: lines, and pieces of over-long lines."""

    def __init__(self, stream: str, writer: LogWriter | None) -> None:
        self.stream = stream
        self.writer = writer
        self.pending = b""

    def feed(self, data: bytes) -> None:
        if self.writer is None:
            return
        buffer = self.pending + data
        now = time.time_ns()
        start = 0
        while True:
            end = buffer.find(b"\n", start)
            if end < 0:
                break
            self.writer.write(LogRecord(self.stream, buffer[start : end + 1], now))
            start = end + 1
        rest = buffer[start:]
        while len(rest) >= _LINE_MAX:
            self.writer.write(LogRecord(self.stream, rest[:_LINE_MAX], now, partial=True))
            rest = rest[_LINE_MAX:]
        self.pending = rest

    def flush(self) -> None:
        if self.writer is not None and self.pending:
            self.writer.write(LogRecord(self.stream, self.pending, time.time_ns(), partial=True))
        self.pending = b""


class _Attachment:
    """One stream connection's view of a process: which outputs it gets, in frames.

    It is attached before the process starts (no output is missed) but *held* until the
    stream's reply line is written: frames arriving meanwhile wait in :attr:`held`.
    """

    def __init__(self, writer: asyncio.StreamWriter, streams: set[int]) -> None:
        self.writer = writer
        self.streams = streams
        self.held: list[bytes] | None = []

    def send(self, stream: int, data: bytes) -> None:
        if stream in self.streams and not self.writer.is_closing():
            self._write(frame(stream, data))

    def _write(self, data: bytes) -> None:
        if self.held is not None:
            self.held.append(data)
        else:
            self.writer.write(data)

    def backlog(self) -> int:
        """Bytes written to the connection that the peer has not taken yet."""
        if self.writer.is_closing():
            return 0
        return self.writer.transport.get_write_buffer_size()

    def release(self) -> None:
        """The reply is out: write what was held, and from now on write at once."""
        held, self.held = self.held or [], None
        for data in held:
            self.writer.write(data)

    def finish(self, trailer: bytes = b"") -> None:
        """The output has ended: the last frame (if any), then the end of the stream."""
        self._write(trailer)
        if self.held is None:
            self.writer.close()


@dataclass
class _Process:
    """A process the supervisor holds: a container's first one, or an exec."""

    pid: int = 0
    tty: bool = False
    stdin: asyncio.WriteTransport | None = None
    master: int | None = None
    outputs: list[_Output] = field(default_factory=list)
    attachments: set[_Attachment] = field(default_factory=set)
    splitters: dict[int, _LineSplitter] = field(default_factory=dict)
    exit_code: int | None = None
    exited: asyncio.Event = field(default_factory=asyncio.Event)
    paused: bool = False
    resuming: asyncio.Task[None] | None = None

    def deliver(self, stream: int, data: bytes) -> None:
        splitter = self.splitters.get(stream)
        if splitter is not None:
            splitter.feed(data)
        slow = None
        for attachment in list(self.attachments):
            attachment.send(stream, data)
            if attachment.backlog() > _BACKLOG_LIMIT:
                slow = attachment
        if slow is not None and not self.paused:
            self._pause_until_drained(slow)

    def _pause_until_drained(self, slow: _Attachment) -> None:
        """A client reads slower than the process writes: stop reading the process's output
        (its writes then block, as with Docker) until the client has caught up."""
        self.paused = True
        for output in self.outputs:
            if output.transport is not None:
                output.transport.pause_reading()

        async def resume() -> None:
            with contextlib.suppress(ConnectionError):
                await slow.writer.drain()
            self.paused = False
            for output in self.outputs:
                if output.transport is not None and not output.transport.is_closing():
                    output.transport.resume_reading()

        task = asyncio.get_running_loop().create_task(resume())
        self.resuming = task

    def close_stdin(self) -> None:
        if self.stdin is not None:
            self.stdin.close()
            self.stdin = None

    async def drain_output(self) -> None:
        """Wait (a little) for the output to end, then release every stdio fd."""
        pending = [o.done for o in self.outputs if not o.done.done()]
        if pending:
            await asyncio.wait(pending, timeout=_OUTPUT_DRAIN_TIMEOUT)
        for splitter in self.splitters.values():
            splitter.flush()
        self.close_stdin()
        if self.master is not None:
            with contextlib.suppress(OSError):
                os.close(self.master)
            self.master = None


@dataclass
class _Container:
    id: str
    runtime: Runtime
    spec: ContainerSpec
    exit_file: Path
    stdin_once: bool
    process: _Process
    log_writer: LogWriter | None
    state: str = "created"
    started_at: int = 0
    finished_at: int = 0
    oom_killed: bool = False
    execs: dict[str, _Process] = field(default_factory=dict)
    proxies: list[PortProxy] = field(default_factory=list)
    """Its published ports: they live here, so they work on while the daemon restarts."""
    done: asyncio.Event = field(default_factory=asyncio.Event)
    """Set once the exit is recorded."""

    def snapshot(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "pid": self.process.pid,
            "state": self.state,
            "exit_code": self.process.exit_code,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "oom_killed": self.oom_killed,
        }


class Supervisor:
    """The supervisor's state: its containers, their processes, the daemon connections."""

    def __init__(self, config: SupervisorConfig) -> None:
        self.config = config
        self.containers: dict[str, _Container] = {}
        self.by_pid: dict[int, _Process] = {}
        self.controls: set[asyncio.StreamWriter] = set()
        self.streams = 0
        self.runtimes: dict[str, Runtime] = {}
        self.log_drivers: dict[str, LogDriver] = {}
        self.stopping = asyncio.Event()
        self.ready = asyncio.Event()
        self.idle_since = time.monotonic()
        self._tasks: set[asyncio.Task[Any]] = set()

    # -- drivers ---------------------------------------------------------------------

    def _driver(self, kind: str, name: str, base: type[Any]) -> Any:
        key = f"{kind}.{name}"
        setup = self.config.drivers.get(key)
        if setup is None:
            raise InvalidParameter(f"{kind} driver {name!r} is not available to the supervisor")
        cls = load_driver_class(setup.module, base, name)
        config = cls.Config.model_validate(setup.config)
        assert isinstance(config, DriverConfig)
        context = DriverContext(
            state_dir=Path(setup.state_dir),
            run_dir=Path(setup.run_dir),
            scratch_dir=Path(setup.scratch_dir),
            config=config,
            logger=logger.bind(plugin=key),
        )
        context.run_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        return cls(context)

    def runtime(self, name: str) -> Runtime:
        if name not in self.runtimes:
            self.runtimes[name] = self._driver("runtime", name, Runtime)
        return self.runtimes[name]

    def log_driver(self, name: str) -> LogDriver:
        if name not in self.log_drivers:
            self.log_drivers[name] = self._driver("log", name, LogDriver)
        return self.log_drivers[name]

    # -- processes -------------------------------------------------------------------

    @staticmethod
    async def _read_output(process: _Process, fd: int, stream: int) -> None:
        """Deliver what arrives on ``fd`` (which the reader then owns) as ``stream``."""
        reader = _Output(functools.partial(process.deliver, stream))
        await asyncio.get_running_loop().connect_read_pipe(lambda: reader, os.fdopen(fd, "rb", 0))
        process.outputs.append(reader)

    @staticmethod
    async def _write_input(process: _Process, fd: int) -> None:
        """Make ``fd`` (which the transport then owns) the process's stdin."""
        transport, _ = await asyncio.get_running_loop().connect_write_pipe(
            asyncio.Protocol, os.fdopen(fd, "wb", 0)
        )
        process.stdin = transport

    async def _stdio(
        self,
        process: _Process,
        *,
        tty: bool,
        open_stdin: bool,
        console_size: tuple[int, int] | None,
        discard: bool = False,
    ) -> tuple[Stdio, list[int]]:
        """Make the process's stdio; the fds to close once the process has them."""
        if discard:
            null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
            return Stdio(null, null, null), [null]
        if tty:
            master, slave = os.openpty()
            os.set_inheritable(master, False)
            if console_size:
                set_window_size(slave, *console_size)
            process.tty, process.master = True, master
            await self._read_output(process, os.dup(master), STDOUT)
            if open_stdin:
                await self._write_input(process, os.dup(master))
            return Stdio(slave, slave, slave), [slave]
        child_fds: list[int] = []
        for stream in (STDOUT, STDERR):
            read_end, write_end = os.pipe2(os.O_CLOEXEC)
            child_fds.append(write_end)
            await self._read_output(process, read_end, stream)
        if open_stdin:
            read_end, write_end = os.pipe2(os.O_CLOEXEC)
            await self._write_input(process, write_end)
        else:
            read_end = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        child_fds.append(read_end)
        return Stdio(read_end, child_fds[0], child_fds[1]), child_fds

    def _watch(self, process: _Process) -> None:
        """Reap ``process`` when it exits (it may have exited already)."""
        self.by_pid[process.pid] = process
        self._reap()

    def _reap(self) -> None:
        for pid, process in list(self.by_pid.items()):
            try:
                done, status = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                done, status = pid, 255 << 8  # reaped elsewhere: we cannot know how it ended
            if done == 0:
                continue
            del self.by_pid[pid]
            process.exit_code = exit_code_of(status)
            process.exited.set()

    def _spawn_task(self, coroutine: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- control operations ---------------------------------------------------------------

    def _container(self, container_id: str) -> _Container:
        try:
            return self.containers[container_id]
        except KeyError:
            raise NotFound(f"the supervisor holds no container {container_id}") from None

    def _running(self, container_id: str) -> _Container:
        container = self._container(container_id)
        if container.state != "running":
            raise Conflict(f"container {container_id} is not running")
        return container

    def _not_exited(self, container_id: str) -> _Container:
        """The container, created or running (a process to signal, a namespace to reach)."""
        container = self._container(container_id)
        if container.state == "exited":
            raise Conflict(f"container {container_id} is not running")
        return container

    async def op_hello(self, message: dict[str, Any]) -> Any:
        return {"containers": [c.snapshot() for c in self.containers.values()], "pid": os.getpid()}

    async def op_create(self, message: dict[str, Any]) -> Any:
        container_id = message["id"]
        previous = self.containers.get(container_id)
        if previous is not None:
            if previous.state != "exited":
                raise Conflict(f"container {container_id} is already held by the supervisor")
            del self.containers[container_id]
        spec = ContainerSpec.from_dict(message["spec"])
        runtime = self.runtime(message["runtime"])
        log = message.get("log") or {}
        writer: LogWriter | None = None
        if log.get("driver"):
            context = LogContext(**{**log["context"], "log_dir": Path(log["context"]["log_dir"])})
            writer = self.log_driver(log["driver"]).writer(context)
        process = _Process()
        if writer is not None:
            process.splitters = {
                STDOUT: _LineSplitter("stdout", writer),
                STDERR: _LineSplitter("stderr", writer),
            }
        stdio, child_fds = await self._stdio(
            process,
            tty=spec.process.terminal,
            open_stdin=bool(message.get("open_stdin")),
            console_size=spec.process.console_size,
        )
        try:
            process.pid = await runtime.create(spec, stdio)
        except BaseException:
            _close_all(child_fds)
            await process.drain_output()
            if writer is not None:
                writer.close()
            raise
        _close_all(child_fds)
        container = _Container(
            id=container_id,
            runtime=runtime,
            spec=spec,
            exit_file=Path(message["exit_file"]),
            stdin_once=bool(message.get("stdin_once")),
            process=process,
            log_writer=writer,
        )
        self.containers[container_id] = container
        self._watch(process)
        self._spawn_task(self._finish(container))
        return {"pid": process.pid}

    async def op_start(self, message: dict[str, Any]) -> Any:
        container = self._container(message["id"])
        if container.state != "created":
            raise Conflict(f"container {container.id} was started already")
        container.started_at = time.time_ns()
        container.state = "running"
        await container.runtime.start(container.id)
        return {"started_at": container.started_at}

    async def op_kill(self, message: dict[str, Any]) -> Any:
        container = self._not_exited(message["id"])
        await container.runtime.kill(
            container.id, int(message["signal"]), all_processes=bool(message.get("all"))
        )

    async def op_resize(self, message: dict[str, Any]) -> Any:
        container = self._container(message["id"])
        process = container.process
        if message.get("exec_id"):
            process = container.execs.get(message["exec_id"]) or _Process()
        if process.master is None:
            raise Conflict("the process has no terminal")
        set_window_size(process.master, int(message["h"]), int(message["w"]))

    async def op_pause(self, message: dict[str, Any]) -> Any:
        await self._running(message["id"]).runtime.pause(message["id"])

    async def op_resume(self, message: dict[str, Any]) -> Any:
        await self._running(message["id"]).runtime.resume(message["id"])

    async def op_stats(self, message: dict[str, Any]) -> Any:
        stats = await self._running(message["id"]).runtime.stats(message["id"])
        return stats.to_dict()

    async def op_processes(self, message: dict[str, Any]) -> Any:
        return await self._running(message["id"]).runtime.processes(message["id"])

    async def op_publish(self, message: dict[str, Any]) -> Any:
        """Start a proxy per mapping; all or none (a port in use stops the others again)."""
        container = self._not_exited(message["id"])
        started: list[PortProxy] = []
        ports = []
        try:
            for mapping in message["mappings"]:
                proxy = PortProxy(PortMapping(**mapping))
                ports.append(await proxy.start())
                started.append(proxy)
        except BaseException:
            for proxy in started:
                await proxy.close()
            raise
        container.proxies.extend(started)
        return {"ports": ports}

    async def op_unpublish(self, message: dict[str, Any]) -> Any:
        await _close_proxies(self._container(message["id"]))

    async def op_forget(self, message: dict[str, Any]) -> Any:
        container = self.containers.get(message["id"])
        if container is not None and container.state == "exited":
            del self.containers[container.id]
            container.exit_file.unlink(missing_ok=True)
            self._note_idle()

    async def op_cleanup(self, message: dict[str, Any]) -> Any:
        if message["id"] in self.containers:
            raise Conflict(f"container {message['id']} is held by this supervisor")
        await self.runtime(message["runtime"]).delete(message["id"])

    async def op_exec(self, message: dict[str, Any]) -> Any:
        """A detached exec: output goes nowhere, the exit comes as an ``exec-exit`` event."""
        process, _ = await self._start_exec(message, discard=True)
        return {"pid": process.pid}

    async def _start_exec(
        self,
        message: dict[str, Any],
        *,
        discard: bool = False,
        attachment: _Attachment | None = None,
    ) -> tuple[_Process, _Container]:
        container = self._running(message["id"])
        spec = ProcessSpec.from_dict(message["process"])
        process = _Process()
        if attachment is not None:
            process.attachments.add(attachment)
        stdio, child_fds = await self._stdio(
            process,
            tty=spec.terminal,
            open_stdin=bool(message.get("stdin")),
            console_size=spec.console_size,
            discard=discard,
        )
        try:
            process.pid = await container.runtime.exec(container.id, spec, stdio)
        except BaseException:
            _close_all(child_fds)
            await process.drain_output()
            raise
        _close_all(child_fds)
        exec_id = message["exec_id"]
        container.execs[exec_id] = process
        self._watch(process)
        self._spawn_task(self._finish_exec(container, exec_id, process))
        return process, container

    # -- exits ------------------------------------------------------------------------

    async def _finish(self, container: _Container) -> None:
        """When the first process exits: its output, the OOM verdict, the cgroup, the record."""
        process = container.process
        await process.exited.wait()
        await _close_proxies(container)
        await process.drain_output()
        if container.log_writer is not None:
            container.log_writer.close()
        try:
            container.oom_killed = await container.runtime.oom_killed(container.id)
        except PydockerdError as e:
            logger.warning(
                "container {}: cannot tell whether it was OOM-killed: {}", container.id, e
            )
        try:
            await container.runtime.delete(container.id)
        except Exception:
            logger.exception("container {}: runtime delete failed", container.id)
        container.finished_at = time.time_ns()
        container.state = "exited"
        write_atomically(container.exit_file, json.dumps(container.snapshot()))
        for attachment in process.attachments:
            attachment.writer.close()
        self._broadcast(
            {
                "event": "exit",
                "id": container.id,
                "exit_code": process.exit_code,
                "finished_at": container.finished_at,
                "oom_killed": container.oom_killed,
            }
        )
        container.done.set()
        logger.info("container {} exited with {}", container.id[:12], process.exit_code)

    async def _finish_exec(self, container: _Container, exec_id: str, process: _Process) -> None:
        await process.exited.wait()
        await process.drain_output()
        for attachment in process.attachments:
            attachment.writer.write(
                frame(EXIT_STREAM, json.dumps({"exit_code": process.exit_code}).encode())
            )
            attachment.writer.close()
        container.execs.pop(exec_id, None)
        self._broadcast(
            {
                "event": "exec-exit",
                "id": container.id,
                "exec_id": exec_id,
                "exit_code": process.exit_code,
            }
        )

    def _broadcast(self, event: dict[str, Any]) -> None:
        for writer in list(self.controls):
            if not writer.is_closing():
                write_message(writer, event)

    def _note_idle(self) -> None:
        if not self.containers and self.streams == 0:
            self.idle_since = time.monotonic()

    # -- connections ------------------------------------------------------------------

    async def serve_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        try:
            first = await read_message(reader)
            if first is None:
                return
            if first.get("op") in ("attach", "exec-attach"):
                await self._serve_stream(first, reader, writer)
            else:
                await self._serve_control(first, reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def _serve_control(
        self,
        first: dict[str, Any],
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        self.controls.add(writer)
        try:
            message: dict[str, Any] | None = first
            while message is not None:
                self._spawn_task(self._answer(message, writer))
                message = await read_message(reader)
        finally:
            self.controls.discard(writer)

    async def _answer(self, message: dict[str, Any], writer: asyncio.StreamWriter) -> None:
        reply: dict[str, Any] = {"seq": message.get("seq")}
        try:
            handler = getattr(self, f"op_{str(message.get('op', '')).replace('-', '_')}", None)
            if handler is None:
                raise InvalidParameter(f"unknown supervisor operation {message.get('op')!r}")
            reply.update(ok=True, result=await handler(message))
        except (PydockerdError, StartError) as e:
            reply.update(ok=False, error=str(e), category=type(e).__name__)
        except Exception as e:
            logger.exception("supervisor operation {} failed", message.get("op"))
            reply.update(ok=False, error=f"{type(e).__name__}: {e}", category="SystemError")
        if not writer.is_closing():
            write_message(writer, reply)

    async def _serve_stream(
        self,
        first: dict[str, Any],
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        """An attach to a container's first process, or an exec with its streams."""
        self.streams += 1
        try:
            wanted = ((STDOUT, first.get("stdout")), (STDERR, first.get("stderr")))
            attachment = _Attachment(writer, {stream for stream, on in wanted if on})
            container: _Container
            if first["op"] == "attach":
                container = self._container(first["id"])
                process = container.process
                if container.state == "exited":
                    raise Conflict("You cannot attach to a stopped container, start it first")
                process.attachments.add(attachment)
            else:  # attached before it starts: no output is missed
                process, container = await self._start_exec(first, attachment=attachment)
            write_message(writer, {"ok": True, "pid": process.pid, "tty": process.tty})
            attachment.release()
            await writer.drain()
            if first.get("stdin"):
                await self._pump_stdin(
                    reader, process, close_at_end=first["op"] != "attach" or container.stdin_once
                )
            await _closed(writer)
            process.attachments.discard(attachment)
        except (PydockerdError, StartError) as e:
            write_message(writer, {"ok": False, "error": str(e), "category": type(e).__name__})
            await writer.drain()
        finally:
            self.streams -= 1
            self._note_idle()

    @staticmethod
    async def _pump_stdin(
        reader: asyncio.StreamReader, process: _Process, *, close_at_end: bool
    ) -> None:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            if process.stdin is not None and not process.stdin.is_closing():
                process.stdin.write(data)
        if close_at_end:
            process.close_stdin()

    # -- life ---------------------------------------------------------------------------

    async def stop_all(self) -> None:
        """SIGTERM: end every container (TERM, then KILL), keeping their exit statuses."""
        running = [c for c in self.containers.values() if c.state != "exited"]
        for sig, timeout in ((signal.SIGTERM, _STOP_ALL_TIMEOUT), (signal.SIGKILL, None)):
            left = [c for c in running if not c.done.is_set()]
            if not left:
                return
            for container in left:
                with contextlib.suppress(Exception):
                    await container.runtime.kill(container.id, sig, all_processes=True)
            await asyncio.wait(
                [asyncio.ensure_future(c.done.wait()) for c in left], timeout=timeout
            )

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGCHLD, self._reap)
        loop.add_signal_handler(signal.SIGTERM, self.stopping.set)
        for ignored in (signal.SIGINT, signal.SIGHUP, signal.SIGPIPE):
            signal.signal(ignored, signal.SIG_IGN)
        path = self.config.socket
        _remove_socket(path)
        old_umask = os.umask(0o177)  # the socket is the daemon's (root's) alone
        try:
            server = await asyncio.start_unix_server(
                self.serve_connection, path=path, limit=stream_limit()
            )
        finally:
            os.umask(old_umask)
        self.ready.set()
        logger.info("supervisor ready on {} (pid {})", path, os.getpid())
        try:
            while not self.stopping.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stopping.wait(), 1.0)
                idle = not self.containers and self.streams == 0
                if idle and time.monotonic() - self.idle_since > self.config.idle_timeout:
                    logger.info(
                        "supervisor: no container for {} s, exiting", self.config.idle_timeout
                    )
                    break
            else:
                logger.info("supervisor: stopping every container")
                await self.stop_all()
        finally:
            server.close()
            _remove_socket(path)
            for writer in list(self.controls):
                writer.close()


async def _closed(writer: asyncio.StreamWriter) -> None:
    """Wait until the connection is closed (by the supervisor when output ended, or the peer)."""
    with contextlib.suppress(ConnectionError):
        await writer.wait_closed()


async def _close_proxies(container: _Container) -> None:
    proxies, container.proxies = container.proxies, []
    for proxy in proxies:
        with contextlib.suppress(Exception):
            await proxy.close()


def _close_all(fds: list[int]) -> None:
    """Close the child's ends of its stdio (it has its own copies by now)."""
    for fd in fds:
        with contextlib.suppress(OSError):
            os.close(fd)


def _remove_socket(path: str) -> None:
    Path(path).unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> int:
    """``python -m pydockerd.supervisor CONFIG``: serve until idle or SIGTERM.

    With ``--fork`` the process forks first and the parent exits once the child serves, so
    the daemon that started it never becomes its parent (and need not reap it).
    """
    args = list(sys.argv[1:] if argv is None else argv)
    fork = "--fork" in args
    args = [a for a in args if a != "--fork"]
    config_path = Path(args[0])
    config = SupervisorConfig.read(config_path)
    lock_path = Path(config.socket).with_suffix(".lock")
    lock = lock_path.open("a+")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
        if e.errno in (errno.EAGAIN, errno.EACCES):
            return 0  # another supervisor serves this exec-root
        raise
    ready_read = ready_write = -1
    if fork:
        ready_read, ready_write = os.pipe()
        if os.fork() != 0:
            os.close(ready_write)
            ok = os.read(ready_read, 1) == b"1"
            os._exit(0 if ok else 1)
        os.close(ready_read)
    lock.seek(0)
    lock.truncate()
    lock.write(f"{os.getpid()}\n")
    lock.flush()
    logger.remove()
    logger.add(
        sys.stderr,
        level="INFO",
        format="{time:YYYY-MM-DDTHH:mm:ss.SSSZZ} {level: <7} supervisor {message}",
    )
    with contextlib.suppress(OSError):  # its own session; containers escape the daemon's
        os.setsid()
    supervisor = Supervisor(config)

    async def serve() -> None:
        task = asyncio.create_task(supervisor.run())
        ready = asyncio.ensure_future(supervisor.ready.wait())
        await asyncio.wait([task, ready], return_when=asyncio.FIRST_COMPLETED)
        ready.cancel()
        if ready_write >= 0:
            os.write(ready_write, b"1")
            os.close(ready_write)
        await task

    asyncio.run(serve())
    return 0
