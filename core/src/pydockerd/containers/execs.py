"""``docker exec``: more processes in a running container.

Exec instances live in memory only, as in moby: created by ``POST /containers/{id}/exec``,
run once by ``POST /exec/{id}/start``, inspected by ``GET /exec/{id}/json`` (the CLI reads
the exit code there right after the stream ends, so the code is recorded before the stream
is closed). They go when their container goes; a container keeps its last
:data:`KEEP_FINISHED` finished ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from dataclasses import dataclass, field
from typing import Any

from pydockerd.containers.config import capabilities
from pydockerd.containers.model import Container
from pydockerd.containers.runspec import (
    container_env,
    process_env,
    replace_or_append,
    resolve_user,
)
from pydockerd.containers.service import ContainerService, start_error_status
from pydockerd.errors import Conflict, InvalidParameter, NotFound
from pydockerd.spec import ProcessSpec
from pydockerd.supervisor.client import Stream

__all__ = ["KEEP_FINISHED", "Exec", "ExecService"]

KEEP_FINISHED = 100


@dataclass
class Exec:
    id: str
    container_id: str
    config: dict[str, Any]
    running: bool = False
    started: bool = False
    exit_code: int | None = None
    pid: int = 0
    done: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def tty(self) -> bool:
        return bool(self.config.get("Tty"))

    def command(self) -> str:
        return " ".join(self.config.get("Cmd") or [])

    def inspect(self) -> dict[str, Any]:
        cmd = list(self.config.get("Cmd") or [])
        return {
            "ID": self.id,
            "Running": self.running,
            "ExitCode": self.exit_code,
            "ProcessConfig": {
                "tty": self.tty,
                "entrypoint": cmd[0] if cmd else "",
                "arguments": cmd[1:],
                "privileged": bool(self.config.get("Privileged")),
                "user": self.config.get("User") or "",
            },
            "OpenStdin": bool(self.config.get("AttachStdin")),
            "OpenStderr": bool(self.config.get("AttachStderr")),
            "OpenStdout": bool(self.config.get("AttachStdout")),
            "CanRemove": False,
            "ContainerID": self.container_id,
            "DetachKeys": self.config.get("DetachKeys") or "",
            "Pid": self.pid,
        }


class ExecService:
    """Exec instances of every container of ``containers``."""

    def __init__(self, containers: ContainerService) -> None:
        self.containers = containers
        self.execs: dict[str, Exec] = {}
        containers.on_exec_event = self.on_event
        containers.on_removed = self.forget_container

    def get(self, exec_id: str) -> Exec:
        try:
            return self.execs[exec_id]
        except KeyError:
            raise NotFound(f"No such exec instance: {exec_id}") from None

    def _running(self, container: Container) -> None:
        if container.state.status == "paused":
            raise Conflict(f"Container {container.id} is paused, unpause the container before exec")
        if container.state.status != "running":
            raise Conflict(f"Container {container.id} is not running")

    def create(self, container: Container, body: dict[str, Any]) -> Exec:
        """``POST /containers/{id}/exec``."""
        self._running(container)
        cmd = body.get("Cmd")
        if isinstance(cmd, str):
            cmd = [cmd]
        if not cmd or not all(isinstance(c, str) for c in cmd):
            raise InvalidParameter("No exec command specified")
        for item in body.get("Env") or []:
            if not isinstance(item, str):
                raise InvalidParameter("invalid Env: expected a list of strings")
        instance = Exec(secrets.token_hex(32), container.id, {**body, "Cmd": cmd})
        self.execs[instance.id] = instance
        self._trim(container.id)
        self.containers.emit(
            "container",
            f"exec_create: {instance.command()}",
            container.id,
            **container.event_attributes(execID=instance.id),
        )
        return instance

    def _trim(self, container_id: str) -> None:
        finished = [
            e for e in self.execs.values() if e.container_id == container_id and e.done.is_set()
        ]
        for old in finished[: max(0, len(finished) - KEEP_FINISHED)]:
            del self.execs[old.id]

    def forget_container(self, container_id: str) -> None:
        for exec_id in [e.id for e in self.execs.values() if e.container_id == container_id]:
            del self.execs[exec_id]

    def process(self, instance: Exec, container: Container, console_size: Any) -> ProcessSpec:
        """The exec's process: the container's environment, user and working directory,
        overridden by the exec's own."""
        root = self.containers.live[container.id].rootfs
        if root is None:
            raise Conflict(f"Container {container.id} is not running")
        config = instance.config
        user = resolve_user(
            root,
            str(config.get("User") or container.config.get("User") or ""),
            list(container.host_config.get("GroupAdd") or []),
        )
        env = replace_or_append(container_env(container.config), config.get("Env") or [])
        size = console_size or config.get("ConsoleSize")
        privileged = {**container.host_config, "Privileged": True}
        caps = capabilities(privileged if config.get("Privileged") else container.host_config)
        return ProcessSpec(
            args=tuple(config["Cmd"]),
            env=process_env(env, user),
            cwd=str(config.get("WorkingDir") or container.config.get("WorkingDir") or "/"),
            uid=user.uid,
            gid=user.gid,
            additional_gids=user.additional_gids,
            terminal=instance.tty,
            capabilities=caps,
            no_new_privileges=not config.get("Privileged")
            and not container.host_config.get("Privileged"),
            console_size=(int(size[0]), int(size[1])) if size and size[0] and size[1] else None,
        )

    def _begin(self, instance: Exec) -> Container:
        if instance.started:
            raise Conflict(f"Error: Exec command {instance.id} has already run")
        container = self.containers.get(instance.container_id)
        self._running(container)
        instance.started = instance.running = True
        self.containers.emit(
            "container",
            f"exec_start: {instance.command()}",
            container.id,
            **container.event_attributes(execID=instance.id),
        )
        return container

    async def start_detached(self, instance: Exec) -> None:
        """``POST /exec/{id}/start`` with ``Detach``: output is discarded."""
        container = self._begin(instance)
        try:
            result = await self.containers.supervisor.call(
                "exec",
                id=container.id,
                exec_id=instance.id,
                process=self.process(instance, container, None).to_dict(),
            )
        except BaseException as e:
            self._finished(instance, start_error_status(str(e)))
            raise
        instance.pid = int(result["pid"])

    async def start_attached(self, instance: Exec, console_size: Any) -> Stream:
        """``POST /exec/{id}/start`` with streams: the supervisor connection carrying them."""
        container = self._begin(instance)
        config = instance.config
        try:
            stream = await self.containers.supervisor.stream(
                "exec-attach",
                id=container.id,
                exec_id=instance.id,
                process=self.process(instance, container, console_size).to_dict(),
                stdin=bool(config.get("AttachStdin")),
                stdout=bool(config.get("AttachStdout", True)),
                stderr=bool(config.get("AttachStderr", True)),
            )
        except BaseException as e:
            self._finished(instance, start_error_status(str(e)))
            raise
        instance.pid = int(stream.reply.get("pid", 0))
        return stream

    def on_event(self, event: dict[str, Any]) -> None:
        """``exec-exit`` from the supervisor."""
        if event.get("event") == "exec-exit":
            instance = self.execs.get(str(event.get("exec_id")))
            if instance is not None:
                self._finished(instance, int(event.get("exit_code") or 0))

    def _finished(self, instance: Exec, exit_code: int) -> None:
        if instance.done.is_set():
            return
        instance.exit_code, instance.running = exit_code, False
        instance.done.set()
        with contextlib.suppress(NotFound):
            container = self.containers.get(instance.container_id)
            self.containers.emit(
                "container",
                "exec_die",
                container.id,
                **container.event_attributes(execID=instance.id, exitCode=str(exit_code)),
            )

    def record_exit(self, instance: Exec, exit_code: int) -> None:
        """The exit code read from the stream's last frame (before the client sees EOF)."""
        self._finished(instance, exit_code)
