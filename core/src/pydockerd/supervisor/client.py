"""The daemon's end of the supervisor: start it when needed, talk to it, hear its events."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import sys
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from loguru import logger

from pydockerd import errors
from pydockerd.errors import PydockerdError, SystemError, Unavailable
from pydockerd.fsutil import write_atomically
from pydockerd.plugin import StartError
from pydockerd.supervisor.protocol import read_message, stream_limit, write_message
from pydockerd.supervisor.server import DriverSetup

__all__ = ["Stream", "SupervisorClient"]

_START_TIMEOUT = 30.0

EventHandler = Callable[[dict[str, Any]], None]
ConnectHandler = Callable[[list[dict[str, Any]]], Awaitable[None]]


def _error(category: str, message: str) -> Exception:
    """The exception a supervisor error reply stands for."""
    if category == "StartError":
        return StartError(message)
    cls = getattr(errors, category, None)
    if isinstance(cls, type) and issubclass(cls, PydockerdError):
        return cls(message)
    return SystemError(message)


class Stream:
    """A stream connection (attach or exec): the supervisor's reply, then raw bytes."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, reply: dict[str, Any]
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.reply = reply

    def close(self) -> None:
        self.writer.close()


class SupervisorClient:
    """One control connection to the supervisor of ``directory`` (under the exec-root).

    :param drivers: how the supervisor makes each runtime and log driver
        (``<kind>.<name>`` → :class:`~pydockerd.supervisor.server.DriverSetup`).
    :param on_event: called with every event the supervisor pushes (``exit``, ``exec-exit``).
    :param on_connect: awaited with the supervisor's snapshot each time a connection is made
        (the first time, and after the supervisor went away): the daemon reconciles its
        containers with it before any other call is made (it calls :meth:`call_now`).
    :param on_disconnect: called when the connection ends without :meth:`close` (the
        supervisor exited, idle or killed).
    """

    def __init__(
        self,
        directory: Path,
        drivers: dict[str, DriverSetup],
        *,
        idle_timeout: float,
        on_event: EventHandler,
        on_connect: ConnectHandler,
        on_disconnect: Callable[[], None] = lambda: None,
    ) -> None:
        self.directory = directory
        self.socket = directory / "supervisor.sock"
        self.drivers = drivers
        self.idle_timeout = idle_timeout
        self.on_event = on_event
        self.on_connect = on_connect
        self.on_disconnect = on_disconnect
        self._closing = False
        self._writer: asyncio.StreamWriter | None = None
        self._reader_task: asyncio.Task[None] | None = None
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._ids = itertools.count(1)
        self._lock = asyncio.Lock()
        self._reconciled = False
        self.pid = 0

    def connected(self) -> bool:
        """Connected, and the daemon has reconciled its containers with the supervisor."""
        return self._reconciled and self._writer is not None and not self._writer.is_closing()

    async def _open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.open_unix_connection(str(self.socket), limit=stream_limit())

    async def _start_supervisor(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        config = self.directory / "config.json"
        settings = {
            "socket": str(self.socket),
            "idle_timeout": self.idle_timeout,
            "drivers": {key: asdict(value) for key, value in self.drivers.items()},
        }
        write_atomically(config, json.dumps(settings), mode=0o600)
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "pydockerd.supervisor",
            str(config),
            "--fork",
            stdin=asyncio.subprocess.DEVNULL,
            close_fds=True,
        )
        try:
            status = await asyncio.wait_for(process.wait(), _START_TIMEOUT)
        except TimeoutError:
            process.kill()
            raise SystemError("the supervisor did not start in time") from None
        if status != 0:
            raise SystemError(f"the supervisor failed to start (exit status {status})")

    async def ensure(self) -> None:
        """Be connected: start the supervisor if nobody serves its socket, say hello and
        hand the snapshot to ``on_connect``."""
        if self.connected():
            return
        async with self._lock:
            if self.connected():
                return
            try:
                reader, writer = await self._open()
            except OSError:
                await self._start_supervisor()
                reader, writer = await self._open()
            self._writer = writer
            self._reader_task = asyncio.get_running_loop().create_task(self._read(reader))
            hello = await self.call_now("hello")
            self.pid = int(hello.get("pid", 0))
            logger.info("connected to the supervisor (pid {})", self.pid)
            await self.on_connect(hello["containers"])
            self._reconciled = True

    async def _read(self, reader: asyncio.StreamReader) -> None:
        try:
            while True:
                message = await read_message(reader)
                if message is None:
                    break
                if "event" in message:
                    try:
                        self.on_event(message)
                    except Exception:
                        logger.exception("handling supervisor event {} failed", message)
                    continue
                future = self._pending.pop(int(message.get("seq", 0)), None)
                if future is None or future.done():
                    continue
                if message.get("ok"):
                    future.set_result(message.get("result"))
                else:
                    future.set_exception(
                        _error(str(message.get("category")), str(message.get("error")))
                    )
        except (ConnectionError, ValueError) as e:
            logger.warning("supervisor connection broke: {}", e)
        finally:
            if self._writer is not None:
                self._writer.close()
            self._writer = None
            self._reconciled = False
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(Unavailable("the connection to the supervisor was lost"))
            self._pending.clear()
            if not self._closing:
                self.on_disconnect()

    async def call_now(self, op: str, **args: Any) -> Any:
        """:meth:`call` without :meth:`ensure`: for ``on_connect``, which runs before the
        connection counts as ready."""
        writer = self._writer
        if writer is None or writer.is_closing():
            raise Unavailable("not connected to the supervisor")
        request_id = next(self._ids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        write_message(writer, {**args, "op": op, "seq": request_id})
        await writer.drain()
        return await future

    async def call(self, op: str, **args: Any) -> Any:
        """One control operation (see :mod:`pydockerd.supervisor.server`); its result.

        :raises PydockerdError: the category the supervisor answered with.
        :raises StartError: the runtime could not start a process.
        """
        await self.ensure()
        return await self.call_now(op, **args)

    async def stream(self, op: str, **args: Any) -> Stream:
        """Open a stream connection (``attach`` or ``exec-attach``).

        :raises PydockerdError: the supervisor refused it (its category).
        """
        await self.ensure()
        reader, writer = await self._open()
        write_message(writer, {"op": op, **args})
        await writer.drain()
        reply = await read_message(reader)
        if reply is None:
            writer.close()
            raise Unavailable("the supervisor closed the stream")
        if not reply.get("ok"):
            writer.close()
            raise _error(str(reply.get("category")), str(reply.get("error")))
        return Stream(reader, writer, reply)

    async def close(self) -> None:
        """Drop the connection; the supervisor and its containers stay."""
        self._closing = True
        if self._writer is not None:
            self._writer.close()
        if self._reader_task is not None:
            self._reader_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader_task
