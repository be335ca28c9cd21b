"""The native runtime: containers from Linux namespaces, pivot_root and cgroups, forked
straight from the supervisor (no helper process stays alive; the container's own process
is all there is).

Per container it keeps, in memory, the first process's pid (and a pidfd, so a reused pid
is never signalled), the pipes to a created-but-not-started process, and the
:class:`~.cgroups.Cgroup`; and, in ``<run_dir>/<id>.json`` (the exec-root, a tmpfs), the
pid and the cgroup, so that a later supervisor can still kill and delete what an earlier
one left.
"""

from __future__ import annotations

import asyncio
import errno
import json
import os
import signal
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from signal import pidfd_send_signal  # the module's name is kill's parameter there
from typing import Literal, NoReturn, TypeVar

from pydantic import Field
from pydockerd.plugin import (
    Conflict,
    ContainerSpec,
    DriverConfig,
    DriverContext,
    DriverNotSupported,
    InvalidParameter,
    NotFound,
    ProcessSpec,
    ResourceStats,
    Runtime,
    StartError,
    Stdio,
    SystemError,
    check_layer_id,
    write_atomically,
)

from pydockerd_runtime_native import syscalls as sc
from pydockerd_runtime_native.cgroups import Cgroup, CgroupUnavailable, Layout
from pydockerd_runtime_native.child import ChildFds, run_exec, run_init
from pydockerd_runtime_native.launch import Child, spawn
from pydockerd_runtime_native.plan import InitPlan, ProcessPlan, plan_init, plan_process

__all__ = ["NativeConfig", "NativeRuntime"]

T = TypeVar("T")

# namespaces ``exec`` joins besides pid, in the order it joins them (mount last)
_EXEC_NAMESPACES = ("cgroup", "ipc", "uts", "network", "mount")
_WAIT_SECONDS = 10.0  # for processes to die, the freezer, a busy cgroup


class NativeConfig(DriverConfig):
    """``[plugins."runtime.native"]`` of daemon.toml."""

    cgroup_version: Literal["auto", "1", "2"] = "auto"
    """``auto``: cgroup v2 when its hierarchy has the memory and pids controllers, else v1;
    ``1`` or ``2`` to force one."""
    cgroup_root: str = ""
    """Where the hierarchies are: for v1 the directory holding ``memory``, ``cpu``, ...; for
    v2 the cgroup2 mount. Empty: found in ``/proc/self/mountinfo``."""
    setup_timeout: float = Field(default=30.0, gt=0)
    """Seconds a container's process may take to set itself up before ``create`` fails."""


@dataclass
class _Container:
    pid: int
    cgroup: Cgroup
    pidfd: int = -1
    child: Child | None = None
    """The pipes to the first process until :meth:`NativeRuntime.start`."""

    def close(self) -> None:
        if self.child is not None:
            self.child.close()
            self.child = None
        if self.pidfd >= 0:
            os.close(self.pidfd)
            self.pidfd = -1


def _start_error(what: str, error: OSError) -> StartError:
    where = f" {error.filename}" if error.filename else ""
    return StartError(f"{what}:{where}: {sc.errno_text(error.errno or 0)}")


class NativeRuntime(Runtime):
    """Linux containers made by the supervisor itself, in Python (ctypes)."""

    name = "native"
    Config = NativeConfig
    description = "Linux namespaces, pivot_root and cgroups (v1 via cgroupspy, or v2), in Python"

    def __init__(self, context: DriverContext) -> None:
        super().__init__(context)
        config = context.config
        self.config = config if isinstance(config, NativeConfig) else NativeConfig()
        self._containers: dict[str, _Container] = {}
        self._layout: Layout | None = None
        context.run_dir.mkdir(parents=True, exist_ok=True, mode=0o700)

    # -- probe

    @classmethod
    async def probe(cls, context: DriverContext) -> None:
        """Root, every namespace type (tried in a forked child), and a cgroup hierarchy in
        which a cgroup can be made and removed."""
        if os.geteuid() != 0:
            raise DriverNotSupported(
                "the native runtime needs root (namespaces, mounts and cgroups)"
            )
        problem = _probe_namespaces()
        if problem:
            raise DriverNotSupported(problem)
        config = context.config if isinstance(context.config, NativeConfig) else NativeConfig()
        try:
            layout = Layout.detect(config.cgroup_version, config.cgroup_root)
            layout.check(f"pydockerd-probe-{os.getpid()}")
        except CgroupUnavailable as e:
            raise DriverNotSupported(str(e)) from None
        except OSError as e:
            raise DriverNotSupported(
                f"cannot create a cgroup in {e.filename}: {sc.errno_text(e.errno or 0)}"
            ) from None

    # -- state

    @property
    def layout(self) -> Layout:
        if self._layout is None:
            try:
                self._layout = Layout.detect(self.config.cgroup_version, self.config.cgroup_root)
            except CgroupUnavailable as e:
                raise StartError(str(e)) from None
        return self._layout

    def _state_file(self, container_id: str) -> Path:
        try:
            check_layer_id(container_id)  # the same rule: safe as one path component
        except InvalidParameter:
            raise NotFound(f"no such container: {container_id!r}") from None
        return self.context.run_dir / f"{container_id}.json"

    def _save(self, container_id: str, pid: int, cgroup: Cgroup) -> None:
        state = {"pid": pid, "cgroup": cgroup.to_dict()}
        write_atomically(self._state_file(container_id), json.dumps(state))

    def _container(self, container_id: str) -> _Container:
        """The container, from memory or from a state file an earlier supervisor left.

        :raises NotFound: neither knows it.
        """
        container = self._containers.get(container_id)
        if container is not None:
            return container
        try:
            data = json.loads(self._state_file(container_id).read_text())
            return _Container(int(data["pid"]), Cgroup.from_dict(data["cgroup"]))
        except (OSError, ValueError, KeyError, TypeError):
            raise NotFound(f"no such container: {container_id}") from None

    # -- create, start, exec

    @asynccontextmanager
    async def _setup_deadline(self) -> AsyncIterator[None]:
        """:raises StartError: the child took longer than ``setup_timeout``."""
        seconds = self.config.setup_timeout
        try:
            async with asyncio.timeout(seconds):
                yield
        except TimeoutError:
            raise StartError(f"the container's process did not answer within {seconds} s") from None

    async def create(self, spec: ContainerSpec, stdio: Stdio) -> int:
        state = self._state_file(spec.id)
        if spec.id in self._containers or state.exists():
            raise Conflict(f"container {spec.id} exists already")
        if not Path(spec.root).is_dir():  # noqa: ASYNC240 - one stat
            raise StartError(f"root filesystem {spec.root}: no such directory")
        process = plan_process(spec.process)
        try:
            cgroup = self.layout.cgroup(spec.cgroup_path or f"pydockerd/{spec.id}")
        except ValueError as e:
            raise StartError(str(e)) from None
        init = plan_init(spec, self.layout.container_mounts())
        self._save(spec.id, 0, cgroup)  # before the cgroup exists: nothing leaks past a crash
        try:
            child = self._spawn_init(spec, cgroup, init, process, stdio)
        except BaseException:
            _remove_quietly(cgroup)
            state.unlink(missing_ok=True)
            raise
        try:
            container = _Container(child.pid, cgroup, _pidfd(child.pid), child)
            try:
                cgroup.add(child.pid)
            except OSError as e:
                raise _start_error(f"join cgroup {cgroup.path}", e) from None
            self._save(spec.id, child.pid, cgroup)
            child.go()
            async with self._setup_deadline():
                await child.ready()
        except BaseException:
            await child.kill()
            container.close()
            _remove_quietly(cgroup)
            state.unlink(missing_ok=True)
            raise
        self._containers[spec.id] = container
        return child.pid

    def _spawn_init(
        self,
        spec: ContainerSpec,
        cgroup: Cgroup,
        init: InitPlan,
        process: ProcessPlan,
        stdio: Stdio,
    ) -> Child:
        """Make the cgroup and fork the first process (waiting for :data:`GO`)."""
        pid_namespace = spec.namespaces.get("pid")
        joined = _open_namespaces({k: v for k, v in spec.namespaces.items() if v and k != "pid"})
        pid_fds = _open_namespaces({"pid": pid_namespace} if pid_namespace else {})
        try:
            try:
                cgroup.create(spec.resources, spec.devices)
            except OSError as e:
                raise _start_error(f"create cgroup {cgroup.path}", e) from None

            def body(fds: ChildFds) -> NoReturn:
                run_init(init, process, fds)

            return spawn(
                body,
                stdio,
                joined,
                new_pid_namespace=pid_namespace == "",
                join_pid_namespace=pid_fds[0][0] if pid_fds else None,
            )
        finally:
            for fd, _ in (*joined, *pid_fds):
                os.close(fd)

    async def start(self, container_id: str) -> None:
        container = self._container(container_id)
        child = container.child
        if child is None:
            raise Conflict(f"container {container_id} was started already")
        container.child = None
        try:
            child.start()
            async with self._setup_deadline():
                await child.executed()
        finally:
            child.close()

    async def exec(self, container_id: str, process: ProcessSpec, stdio: Stdio) -> int:
        container = self._container(container_id)
        if not _alive(container):
            raise StartError(f"container {container_id} is not running")
        try:
            if container.cgroup.frozen():
                raise Conflict(
                    f"container {container_id} is paused, unpause the container before exec"
                )
        except OSError as e:
            raise _start_error("read the freezer state", e) from None
        plan = plan_process(process)
        namespaces = _open_namespaces(_namespaces_of(container.pid, ("pid", *_EXEC_NAMESPACES)))
        pid_fd = next((fd for fd, kind in namespaces if kind == sc.CLONE_NEWPID), None)
        joined = tuple((fd, kind) for fd, kind in namespaces if kind != sc.CLONE_NEWPID)

        def body(fds: ChildFds) -> NoReturn:
            run_exec(plan, fds)

        try:
            child = spawn(body, stdio, joined, join_pid_namespace=pid_fd)
        finally:
            for fd, _ in namespaces:
                os.close(fd)
        try:
            try:
                container.cgroup.add(child.pid)
            except OSError as e:
                raise _start_error(f"join cgroup {container.cgroup.path}", e) from None
            child.go()
            async with self._setup_deadline():
                await child.executed()
        except BaseException:
            await child.kill()
            raise
        finally:
            child.close()
        return child.pid

    # -- signals, freezer, counters

    async def kill(self, container_id: str, signal: int, *, all_processes: bool = False) -> None:
        container = self._container(container_id)
        try:
            if all_processes:
                container.cgroup.signal_all(signal)
            elif container.pidfd >= 0:
                with suppress(ProcessLookupError):  # exited already
                    pidfd_send_signal(container.pidfd, signal)
            elif container.pid in container.cgroup.procs():
                os.kill(container.pid, signal)
        except ProcessLookupError:
            pass
        except OSError as e:
            raise SystemError(f"kill container {container_id}: {e}") from e

    async def pause(self, container_id: str) -> None:
        await self._freeze(container_id, frozen=True)

    async def resume(self, container_id: str) -> None:
        await self._freeze(container_id, frozen=False)

    async def _freeze(self, container_id: str, *, frozen: bool) -> None:
        cgroup = self._container(container_id).cgroup
        what = "freeze" if frozen else "thaw"
        try:
            cgroup.set_frozen(frozen)
            await _until(lambda: cgroup.frozen() == frozen, f"{what} container {container_id}")
        except OSError as e:
            raise SystemError(f"{what} container {container_id}: {e}") from e

    async def stats(self, container_id: str) -> ResourceStats:
        return self._read(container_id, lambda cgroup: cgroup.stats())

    async def processes(self, container_id: str) -> list[int]:
        return self._read(container_id, lambda cgroup: cgroup.procs())

    async def oom_killed(self, container_id: str) -> bool:
        return self._read(container_id, lambda cgroup: cgroup.oom_killed())

    def _read(self, container_id: str, read: Callable[[Cgroup], T]) -> T:
        cgroup = self._container(container_id).cgroup
        try:
            return read(cgroup)
        except FileNotFoundError:
            raise NotFound(f"no such container: {container_id} (its cgroup is gone)") from None
        except OSError as e:
            raise SystemError(f"read the cgroup of container {container_id}: {e}") from e

    # -- delete

    async def delete(self, container_id: str) -> None:
        try:
            container = self._containers.pop(container_id, None) or self._container(container_id)
        except NotFound:
            return
        container.close()  # a process still waiting for start reads end-of-file and exits
        cgroup = container.cgroup
        try:
            await self._empty(cgroup, container_id)
            await _until(lambda: _removed(cgroup), f"remove the cgroup {cgroup.path}")
        except OSError as e:
            raise SystemError(f"delete container {container_id}: {e}") from e
        self._state_file(container_id).unlink(missing_ok=True)

    async def _empty(self, cgroup: Cgroup, container_id: str) -> None:
        """Kill every process left in ``cgroup`` (thawed first: frozen ones cannot die)."""
        if not cgroup.exists():
            return
        if cgroup.frozen():
            cgroup.set_frozen(False)

        def empty() -> bool:
            if not cgroup.procs():
                return True
            cgroup.signal_all(signal.SIGKILL)
            return False

        await _until(empty, f"kill the processes of container {container_id}")


# --------------------------------------------------------------------------------------
# helpers


def _pidfd(pid: int) -> int:
    """A pidfd of ``pid`` (signals through it never reach a reused pid); -1 when the
    kernel has none (before 5.3)."""
    try:
        return os.pidfd_open(pid)
    except OSError:
        return -1


def _alive(container: _Container) -> bool:
    try:
        return container.pid in container.cgroup.procs()
    except OSError:
        return False


def _removed(cgroup: Cgroup) -> bool:
    """Try to remove ``cgroup``; whether it is gone (``EBUSY`` while the last processes
    finish exiting)."""
    try:
        cgroup.remove()
    except OSError as e:
        if e.errno == errno.EBUSY:
            return False
        raise
    return True


def _remove_quietly(cgroup: Cgroup) -> None:
    with suppress(OSError):
        cgroup.remove()


async def _until(done: Callable[[], bool], what: str) -> None:
    """Poll ``done`` (1 ms, doubling to 50 ms) until it is true.

    :raises SystemError: still false after :data:`_WAIT_SECONDS`.
    """
    delay = 0.001
    try:
        async with asyncio.timeout(_WAIT_SECONDS):
            while not done():
                await asyncio.sleep(delay)
                delay = min(delay * 2, 0.05)
    except TimeoutError:
        raise SystemError(f"{what}: timed out after {_WAIT_SECONDS} s") from None


def _namespaces_of(pid: int, kinds: tuple[str, ...]) -> dict[str, str]:
    """``/proc/<pid>/ns/<kind>`` of each kind that differs from the caller's own."""
    paths: dict[str, str] = {}
    for kind in kinds:
        name = sc.NAMESPACES[kind][1]
        path = f"/proc/{pid}/ns/{name}"
        try:
            if Path(path).stat().st_ino != Path(f"/proc/self/ns/{name}").stat().st_ino:
                paths[kind] = path
        except FileNotFoundError:
            if kind != "cgroup":
                raise StartError(f"container process {pid} is gone") from None
    return paths


def _open_namespaces(paths: dict[str, str]) -> tuple[tuple[int, int], ...]:
    """Open each namespace file (in the dict's order): (fd, CLONE_NEW* type).

    :raises StartError: one cannot be opened; none is left open.
    """
    opened: list[tuple[int, int]] = []
    try:
        for kind, path in paths.items():
            try:
                opened.append((os.open(path, os.O_RDONLY | os.O_CLOEXEC), sc.NAMESPACES[kind][0]))
            except OSError as e:
                raise StartError(
                    f"open {kind} namespace {path}: {sc.errno_text(e.errno or 0)}"
                ) from None
    except BaseException:
        for fd, _ in opened:
            os.close(fd)
        raise
    return tuple(opened)


def _probe_namespaces() -> str:
    """Try every namespace type (and the pid-namespace round trip ``create`` relies on) in a
    forked child; what failed, or ``""``. A child that fails otherwise (an exception, a
    signal) fails the probe too, with what it could say."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 1
        try:
            os.close(read_end)
            problems = []
            own = os.open("/proc/self/ns/pid", os.O_RDONLY)
            for kind, (flag, _) in sc.NAMESPACES.items():
                if kind == "cgroup" and not Path("/proc/self/ns/cgroup").exists():
                    continue
                try:
                    sc.unshare(flag)
                    if kind == "pid":
                        sc.setns(own, sc.CLONE_NEWPID)
                except OSError as e:
                    problems.append(f"{kind} namespace: {sc.errno_text(e.errno or 0)}")
            os.write(write_end, "; ".join(problems).encode())
            code = 0
        except BaseException as e:
            with suppress(BaseException):
                os.write(write_end, f"the probe failed: {type(e).__name__}: {e}".encode())
        finally:
            os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        report = pipe.read().decode(errors="replace")
    _, status = os.waitpid(pid, 0)
    if status != 0 and not report:
        report = f"the probe's process ended with wait status {status}"
    return f"cannot create namespaces: {report}" if report else ""
