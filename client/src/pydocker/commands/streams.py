"""Attached commands (``run``, ``start -a``, ``attach``, ``exec``) as docker's CLI runs them:
the exit waiter whose headers arrive before ``/start`` is sent, the user's streams on the
hijacked connection (the terminal raw while a container's tty has it), the signals
forwarded to the container and the tty kept at the terminal's size."""

from __future__ import annotations

import contextlib
import json
import signal
import sys
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass

import click
import httpx

from pydocker.api import APIClient
from pydocker.errors import PydockerError
from pydocker.hijack import Hijacked, Streamer, detach_sequence
from pydocker.terminal import FORWARDED_SIGNALS, Signals, is_terminal, raw_mode, terminal_size

__all__ = ["Attach", "ExitWaiter", "Session", "WaitResult"]

_RESIZE_RETRIES = 10


@dataclass(frozen=True)
class WaitResult:
    """The body of ``/containers/{id}/wait``: the exit status, and the daemon's error."""

    status: int
    error: str | None = None


class ExitWaiter:
    """``POST /containers/{id}/wait[?condition=...]`` on a thread of its own. The
    constructor returns once the response headers are in (the daemon is then watching the
    container, so ``/start`` can follow); :meth:`result` blocks until the body arrives."""

    def __init__(self, client: APIClient, container: str, condition: str | None) -> None:
        self._client = client
        self._path = f"/containers/{container}/wait"
        self._params = {"condition": condition} if condition else None
        self._headers = threading.Event()
        self._done = threading.Event()
        self._response: httpx.Response | None = None
        self._result: WaitResult | None = None
        self._error: PydockerError | None = None
        threading.Thread(target=self._wait, daemon=True).start()
        self._headers.wait()

    def _wait(self) -> None:
        try:
            with self._client.stream("POST", self._path, params=self._params) as response:
                self._response = response
                self._headers.set()
                body = response.read()
            self._result = _wait_result(body)
        except PydockerError as e:
            self._error = e
        except (httpx.HTTPError, OSError, RuntimeError) as e:  # closed under us (run -d)
            self._error = PydockerError(str(e))
        finally:
            self._headers.set()
            self._done.set()

    def result(self) -> WaitResult:
        """The container's exit status, once the condition is met.

        :raises PydockerError: the request failed (``Error response from daemon: ...``).
        """
        self._done.wait()
        if self._error is not None:
            raise self._error
        assert self._result is not None
        return self._result

    def close(self) -> None:
        """Drop the request (``run -d`` does not wait for the container)."""
        if self._response is not None and not self._done.is_set():
            with contextlib.suppress(Exception):
                self._response.close()


def _wait_result(body: bytes) -> WaitResult:
    """``{"StatusCode": n, "Error": null | {"Message": ...}}``; a body that is not JSON is
    the error itself (a proxy cut the stream), as docker reads it."""
    try:
        value = json.loads(body)
    except ValueError:
        raise PydockerError(body.decode(errors="replace").strip()) from None
    if not isinstance(value, dict):
        raise PydockerError(body.decode(errors="replace").strip())
    error = value.get("Error")
    message = error.get("Message") if isinstance(error, dict) else None
    status = value.get("StatusCode")
    return WaitResult(status if isinstance(status, int) else 0, message or None)


@dataclass(frozen=True)
class Attach:
    """Which of the user's streams an attached command connects, and how."""

    stdin: bool
    stdout: bool = True
    stderr: bool = True
    tty: bool = False
    detach_keys: str = ""

    @property
    def params(self) -> list[tuple[str, str]]:
        """The query of ``/containers/{id}/attach``, in Go's (sorted) order."""
        params = [("detachKeys", self.detach_keys)] if self.detach_keys else []
        for name, on in (("stderr", self.stderr), ("stdin", self.stdin), ("stdout", self.stdout)):
            if on:
                params.append((name, "1"))
        return [*params, ("stream", "1")]


class Session:
    """The life of one attached command: signal handlers, the terminal (raw while a
    container's tty has stdin), and the streamer; all put back on leaving the block."""

    def __init__(self, client: APIClient) -> None:
        self._client = client
        self._stack = ExitStack()
        self._terminal = ExitStack()
        self.signals = Signals()
        self.streamer: Streamer | None = None

    def __enter__(self) -> Session:
        self._stack.enter_context(self.signals)
        self._stack.enter_context(self._terminal)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def forward_signals(self, container_id: str) -> None:
        """docker's ``--sig-proxy``: each signal we receive goes to the container."""

        def kill(signum: signal.Signals) -> None:
            self._client.post(
                f"/containers/{container_id}/kill", params={"signal": Signals.name(signum)}
            )

        self.signals.handle(FORWARDED_SIGNALS, kill)

    def stream(self, conn: Hijacked, attach: Attach) -> Streamer:
        """Start copying between the user's streams and ``conn``."""
        self._stack.callback(conn.close)
        if attach.stdin and attach.tty and is_terminal(sys.stdin):
            self._terminal.enter_context(raw_mode(sys.stdin))
        stdout = sys.stdout.buffer
        self.streamer = Streamer(
            conn,
            tty=attach.tty,
            stdin=sys.stdin.buffer if attach.stdin else None,
            stdout=stdout if attach.stdout else None,
            stderr=(stdout if attach.tty else sys.stderr.buffer) if attach.stderr else None,
            detach_keys=detach_sequence(attach.detach_keys),
        )
        self.streamer.start()
        return self.streamer

    def stop(self) -> None:
        """The container did not start: end the streams and give the terminal back."""
        if self.streamer is not None:
            self.streamer.stop()
        self._terminal.close()

    def finish(self) -> bool:
        """Until the daemon ends the stream; the terminal is restored as soon as it does.
        Whether the user detached.

        :raises PydockerError: an error inside the stream.
        """
        assert self.streamer is not None
        try:
            self.streamer.wait()
        finally:
            self._terminal.close()
        return self.streamer.detached

    def resize(self, path: str, rows: int, columns: int) -> None:
        """Set the tty at ``path`` (``/containers/{id}/resize``, ``/exec/{id}/resize``) to
        ``rows`` by ``columns``.

        :raises PydockerError: the daemon refused.
        """
        self._client.post(path, params={"h": str(rows), "w": str(columns)})

    def monitor_size(self, path: str) -> None:
        """Keep the tty at ``path`` at the terminal's size (:meth:`resize`): now (retried
        as docker retries it) and on every SIGWINCH."""

        def resize(signum: signal.Signals | None = None) -> None:
            size = terminal_size(sys.stdout)
            if size is None or size == (0, 0):
                return
            self.resize(path, *size)

        try:
            resize()
        except PydockerError:
            threading.Thread(target=self._retry, args=(resize,), daemon=True).start()
        self.signals.handle([signal.SIGWINCH], resize)

    @staticmethod
    def _retry(resize: Callable[[], None]) -> None:
        for attempt in range(_RESIZE_RETRIES):
            time.sleep((attempt + 1) * 0.01)
            try:
                resize()
            except PydockerError:
                continue
            return
        click.echo("failed to resize tty, using default size", err=True)
