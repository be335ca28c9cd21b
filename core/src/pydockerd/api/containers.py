"""The container and exec endpoints."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import time
from pathlib import Path
from typing import Any

from aiohttp import web

from pydockerd.api.keys import DAEMON
from pydockerd.api.params import json_body, parse_bool, parse_filters, parse_timestamp_ns
from pydockerd.api.responses import json_response
from pydockerd.api.streams import MULTIPLEXED, RAW, Hijack, detach_sequence, pump
from pydockerd.containers.execs import ExecService
from pydockerd.containers.model import ZERO_TIME, Container, rfc3339_nano
from pydockerd.containers.service import CONTAINER_FILTERS, ContainerService
from pydockerd.errors import (
    InvalidParameter,
    NotFound,
    NotImplementedByDaemon,
    PydockerdError,
    SystemError,
    Unavailable,
)
from pydockerd.plugin import Handler, LogQuery, StartError
from pydockerd.spec import ResourceStats
from pydockerd.supervisor.protocol import STDERR, STDOUT, frame

__all__ = ["ROUTES"]

_PRUNE_FILTERS = ("label", "until")
_STATS_INTERVAL = 1.0
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def long_lived(handler: Handler) -> Handler:
    """A handler whose response lasts (a stream, a wait): the daemon ends it when it stops,
    instead of waiting ``shutdown_timeout`` for it (:meth:`Daemon.long_lived`)."""

    @functools.wraps(handler)
    async def wrapper(request: web.Request) -> web.StreamResponse:
        with request.app[DAEMON].long_lived():
            return await handler(request)

    return wrapper


def _service(request: web.Request) -> ContainerService:
    containers = request.app[DAEMON].containers
    if containers is None:
        raise Unavailable("the container store is not ready")
    return containers


def _execs(request: web.Request) -> ExecService:
    execs = request.app[DAEMON].execs
    if execs is None:
        raise Unavailable("the container store is not ready")
    return execs


def _container(request: web.Request) -> Container:
    return _service(request).get(request.match_info["id"])


def _int(request: web.Request, name: str, default: int | None = None) -> int | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise InvalidParameter(f"invalid value for {name}: {raw!r}") from None


# -- lifecycle ---------------------------------------------------------------------------


async def create(request: web.Request) -> web.StreamResponse:
    body = await json_body(request)
    platform = request.query.get("platform", "")
    if platform and platform not in ("linux", "linux/amd64", "linux/x86_64", "linux/arm64"):
        raise InvalidParameter(f"unsupported platform: {platform}")
    container, warnings = await _service(request).create(body, request.query.get("name"))
    return json_response({"Id": container.id, "Warnings": warnings}, status=201)


async def start(request: web.Request) -> web.StreamResponse:
    await _service(request).start(_container(request))
    return web.Response(status=204)


async def stop(request: web.Request) -> web.StreamResponse:
    await _service(request).stop(
        _container(request), _int(request, "t"), request.query.get("signal") or None
    )
    return web.Response(status=204)


async def restart(request: web.Request) -> web.StreamResponse:
    await _service(request).restart(
        _container(request), _int(request, "t"), request.query.get("signal") or None
    )
    return web.Response(status=204)


async def kill(request: web.Request) -> web.StreamResponse:
    await _service(request).kill(_container(request), request.query.get("signal") or None)
    return web.Response(status=204)


async def pause(request: web.Request) -> web.StreamResponse:
    await _service(request).pause(_container(request))
    return web.Response(status=204)


async def unpause(request: web.Request) -> web.StreamResponse:
    await _service(request).unpause(_container(request))
    return web.Response(status=204)


async def rename(request: web.Request) -> web.StreamResponse:
    name = request.query.get("name", "")
    if not name:
        raise InvalidParameter("Neither old nor new names may be empty")
    await _service(request).rename(_container(request), name)
    return web.Response(status=204)


async def remove(request: web.Request) -> web.StreamResponse:
    if parse_bool(request.query.get("link")):
        raise InvalidParameter("legacy links are not supported")
    await _service(request).remove(
        _container(request),
        force=parse_bool(request.query.get("force")),
        volumes=parse_bool(request.query.get("v")),
    )
    return web.Response(status=204)


async def prune(request: web.Request) -> web.StreamResponse:
    filters = parse_filters(request.query.get("filters"), _PRUNE_FILTERS)
    removed, reclaimed = await _service(request).prune(filters)
    return json_response({"ContainersDeleted": removed or None, "SpaceReclaimed": reclaimed})


@long_lived
async def wait(request: web.Request) -> web.StreamResponse:
    """Headers at once (the CLI sends ``/start`` only after them), the body at the exit."""
    service = _service(request)
    future = service.wait_future(_container(request), request.query.get("condition", ""))
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    response.enable_chunked_encoding()
    await response.prepare(request)
    try:
        code = await future
        await response.write(json.dumps({"StatusCode": code, "Error": None}).encode() + b"\n")
        await response.write_eof()
    except (ConnectionError, asyncio.CancelledError):
        future.cancel()
    return response


# -- inspect and listing -------------------------------------------------------------------


async def inspect(request: web.Request) -> web.StreamResponse:
    service = _service(request)
    container = _container(request)
    size = await service.size(container) if parse_bool(request.query.get("size")) else None
    return json_response(
        container.inspect(service.graph_driver(container), size, service.attachments(container))
    )


async def listing(request: web.Request) -> web.StreamResponse:
    service = _service(request)
    filters = parse_filters(request.query.get("filters"), CONTAINER_FILTERS)
    found = service.listing(
        all_=parse_bool(request.query.get("all")),
        limit=_int(request, "limit", -1) or -1,
        filters=filters,
    )
    with_size = parse_bool(request.query.get("size"))
    return json_response(
        [
            c.summary(await service.size(c) if with_size else None, attachments)
            for c, attachments in zip(found, service.attachments_of(found), strict=True)
        ]
    )


# -- streams -------------------------------------------------------------------------------


async def _until_lost(hijack: Hijack, awaitable: Any) -> Any:
    """``awaitable``'s result, or ``None`` when the client leaves first."""
    task = asyncio.ensure_future(awaitable)
    lost = asyncio.ensure_future(hijack.proxy.lost.wait())
    try:
        await asyncio.wait({task, lost}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        lost.cancel()
    if not task.done():
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, PydockerdError):
            await task
        return None
    return task.result()


@long_lived
async def attach(request: web.Request) -> web.StreamResponse:
    service = _service(request)
    container = _container(request)
    query = request.query
    stdin, stdout, stderr = (parse_bool(query.get(k)) for k in ("stdin", "stdout", "stderr"))
    keys = detach_sequence(query.get("detachKeys")) if stdin and container.tty else None
    hijack, response = await Hijack.upgrade(request, RAW if container.tty else MULTIPLEXED)
    try:
        if parse_bool(query.get("logs")):
            async for chunk in _log_chunks(
                service, container, stdout=stdout, stderr=stderr, query=LogQuery(), timestamps=False
            ):
                await hijack.write(chunk)
        if not parse_bool(query.get("stream")):
            return response
        try:
            stream = await _until_lost(
                hijack, service.attach(container, stdin=stdin, stdout=stdout, stderr=stderr)
            )
        except PydockerdError as e:
            await hijack.write(
                e.message.encode() if container.tty else frame(3, e.message.encode())
            )
            return response
        if stream is None:
            return response
        service.emit("container", "attach", container.id, **container.event_attributes())
        await pump(hijack, stream, tty=container.tty, stdin=stdin, detach_keys=keys)
        service.emit("container", "detach", container.id, **container.event_attributes())
    except (ConnectionError, OSError):
        pass
    finally:
        hijack.close()
    return response


async def resize(request: web.Request) -> web.StreamResponse:
    height, width = _int(request, "h", 0) or 0, _int(request, "w", 0) or 0
    await _service(request).resize(_container(request), height, width)
    return web.Response(status=200)


def _log_query(request: web.Request) -> LogQuery:
    tail_raw = request.query.get("tail", "all")
    tail: int | None = None
    if tail_raw not in ("", "all"):
        try:
            tail = max(int(tail_raw), 0)
        except ValueError:
            raise InvalidParameter(f"invalid value for tail: {tail_raw!r}") from None
    return LogQuery(
        since_nano=parse_timestamp_ns(request.query.get("since"), "since"),
        until_nano=parse_timestamp_ns(request.query.get("until"), "until"),
        tail=tail,
        follow=parse_bool(request.query.get("follow")),
    )


async def _log_chunks(
    service: ContainerService,
    container: Container,
    *,
    stdout: bool,
    stderr: bool,
    query: LogQuery,
    timestamps: bool,
) -> Any:
    """The container's stored output as the bytes ``logs`` sends (framed without a tty)."""
    driver = service.log_drivers.get(container.log_driver)
    if driver is None or not driver.readable:
        raise NotImplementedByDaemon("configured logging driver does not support reading")
    stopped = service.live[container.id].stopped
    if not query.follow or not container.state.has_process:
        stopped = asyncio.Event()
        stopped.set()
    async for record in driver.read(service.log_context(container), query, stopped):
        if (record.stream == "stderr" and not stderr) or (record.stream != "stderr" and not stdout):
            continue
        line = record.line
        if timestamps:
            line = rfc3339_nano(record.time_nano).encode() + b" " + line
        kind = STDERR if record.stream == "stderr" else STDOUT
        yield line if container.tty else frame(kind, line)


@long_lived
async def logs(request: web.Request) -> web.StreamResponse:
    service = _service(request)
    container = _container(request)
    stdout, stderr = (
        parse_bool(request.query.get("stdout")),
        parse_bool(request.query.get("stderr")),
    )
    if not stdout and not stderr:
        raise InvalidParameter("Bad parameters: you must choose at least one stream")
    query = _log_query(request)
    chunks = _log_chunks(
        service,
        container,
        stdout=stdout,
        stderr=stderr,
        query=query,
        timestamps=parse_bool(request.query.get("timestamps")),
    )
    response = web.StreamResponse(headers={"Content-Type": RAW if container.tty else MULTIPLEXED})
    response.enable_chunked_encoding()
    first = True
    try:
        async for chunk in chunks:
            if first:
                await response.prepare(request)
                first = False
            await response.write(chunk)
        if first:
            await response.prepare(request)
        await response.write_eof()
    except ConnectionError:
        pass
    return response


# -- top and stats ---------------------------------------------------------------------------


async def top(request: web.Request) -> web.StreamResponse:
    service = _service(request)
    container = _container(request)
    if not container.state.has_process:
        raise InvalidParameter(f"Container {container.id} is not running")
    pids = set(await service.supervisor.call("processes", id=container.id))
    args = (request.query.get("ps_args") or "-ef").split()
    # without COLUMNS, and not on a terminal, ps does not cut the command line short
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    process = await asyncio.create_subprocess_exec(
        "ps", *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env
    )
    out, err = await process.communicate()
    if process.returncode != 0:
        raise SystemError(f"Error running ps: {err.decode().strip() or process.returncode}")
    lines = out.decode(errors="replace").splitlines()
    if not lines:
        raise SystemError("ps printed nothing")
    titles = lines[0].split()
    if "PID" not in titles:
        raise SystemError("Couldn't find PID field in ps output")
    column = titles.index("PID")
    rows = []
    for line in lines[1:]:
        fields = line.split(None, len(titles) - 1)
        if len(fields) > column and fields[column].isdigit() and int(fields[column]) in pids:
            rows.append(fields)
    service.emit("container", "top", container.id, **container.event_attributes())
    return json_response({"Titles": titles, "Processes": rows})


def _system_cpu_ns() -> int:
    """All CPUs' time since boot, in ns (``system_cpu_usage``), from ``/proc/stat``."""
    with Path("/proc/stat").open() as f:
        for line in f:
            if line.startswith("cpu "):
                ticks = sum(int(v) for v in line.split()[1:8])
                return ticks * 1_000_000_000 // _CLOCK_TICKS
    return 0


def _networks(pid: int) -> dict[str, dict[str, int]]:
    """Counters of the container's interfaces other than loopback, from its net/dev."""
    try:
        lines = Path(f"/proc/{pid}/net/dev").read_text().splitlines()[2:]
    except OSError:
        return {}
    names = ("rx_bytes", "rx_packets", "rx_errors", "rx_dropped")
    tx = ("tx_bytes", "tx_packets", "tx_errors", "tx_dropped")
    result = {}
    for line in lines:
        name, _, counters = line.partition(":")
        name = name.strip()
        if name == "lo":
            continue
        values = [int(v) for v in counters.split()]
        result[name] = {
            **dict(zip(names, values[0:4], strict=True)),
            **dict(zip(tx, values[8:12], strict=True)),
        }
    return result


def _cpu_stats(stats: ResourceStats | None, system: int) -> dict[str, Any]:
    if stats is None:
        stats = ResourceStats()
    return {
        "cpu_usage": {
            "total_usage": stats.cpu_total,
            "percpu_usage": list(stats.cpu_percpu) or None,
            "usage_in_kernelmode": stats.cpu_system,
            "usage_in_usermode": stats.cpu_user,
        },
        "system_cpu_usage": system,
        "online_cpus": len(stats.cpu_percpu) or os.cpu_count() or 1,
        "throttling_data": {
            "periods": stats.periods,
            "throttled_periods": stats.throttled_periods,
            "throttled_time": stats.throttled_time,
        },
    }


def _pids(stats: ResourceStats | None) -> dict[str, int]:
    if stats is None:
        return {}
    return {
        "current": stats.pids_current,
        **({"limit": stats.pids_limit} if stats.pids_limit else {}),
    }


def _stats_body(
    container: Container,
    now: int,
    current: ResourceStats | None,
    system: int,
    previous: tuple[int, ResourceStats | None, int] | None,
) -> dict[str, Any]:
    """One object of ``GET /containers/{id}/stats``, in moby's shape."""
    memory: dict[str, Any] = {}
    if current is not None:
        memory = {
            "usage": current.memory_usage,
            "max_usage": current.memory_max_usage,
            "stats": current.memory_stat,
            "limit": current.memory_limit
            or os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"),
        }
    io = []
    if current is not None and (current.io_read_bytes or current.io_write_bytes):
        io = [
            {"major": 0, "minor": 0, "op": "read", "value": current.io_read_bytes},
            {"major": 0, "minor": 0, "op": "write", "value": current.io_write_bytes},
        ]
    return {
        "name": f"/{container.name}",
        "id": container.id,
        "read": rfc3339_nano(now) if current is not None else ZERO_TIME,
        "preread": rfc3339_nano(previous[0]) if previous else ZERO_TIME,
        "pids_stats": _pids(current),
        "blkio_stats": {"io_service_bytes_recursive": io or None},
        "num_procs": 0,
        "storage_stats": {},
        "cpu_stats": _cpu_stats(current, system),
        "precpu_stats": _cpu_stats(previous[1], previous[2]) if previous else _cpu_stats(None, 0),
        "memory_stats": memory,
        **({"networks": _networks(container.state.pid)} if current is not None else {}),
    }


@long_lived
async def stats(request: web.Request) -> web.StreamResponse:
    service = _service(request)
    container = _container(request)
    streaming = request.query.get("stream") is None or parse_bool(request.query.get("stream"))
    one_shot = parse_bool(request.query.get("one-shot"))

    async def sample() -> tuple[int, ResourceStats | None, int]:
        if not container.state.has_process:
            return 0, None, 0
        try:
            raw = await service.supervisor.call("stats", id=container.id)
        except PydockerdError:
            return 0, None, 0
        return time.time_ns(), ResourceStats.from_dict(raw), _system_cpu_ns()

    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    response.enable_chunked_encoding()
    await response.prepare(request)
    previous: tuple[int, ResourceStats | None, int] | None = None
    try:
        if not streaming and not one_shot:
            previous = await sample()
            await asyncio.sleep(_STATS_INTERVAL)
        while True:
            now, current, system = await sample()
            body = _stats_body(
                container, now, current, system, previous if previous and previous[1] else None
            )
            await response.write(json.dumps(body).encode() + b"\n")
            if not streaming or current is None:
                break
            previous = (now, current, system)
            await asyncio.sleep(_STATS_INTERVAL)
        await response.write_eof()
    except ConnectionError:
        pass
    return response


# -- exec ---------------------------------------------------------------------------------


async def exec_create(request: web.Request) -> web.StreamResponse:
    body = await json_body(request)
    instance = _execs(request).create(_container(request), body)
    return json_response({"Id": instance.id}, status=201)


@long_lived
async def exec_start(request: web.Request) -> web.StreamResponse:
    execs = _execs(request)
    instance = execs.get(request.match_info["id"])
    body = await json_body(request)
    if body.get("Detach"):
        await execs.start_detached(instance)
        return web.Response(status=200)
    tty = bool(body.get("Tty", instance.tty))
    hijack, response = await Hijack.upgrade(request, RAW if tty else MULTIPLEXED)
    try:
        try:
            stream = await execs.start_attached(instance, body.get("ConsoleSize"))
        except (StartError, PydockerdError) as e:
            message = f"OCI runtime exec failed: exec failed: {e}: unknown\r\n".encode()
            await hijack.write(message if tty else frame(STDOUT, message))
            return response
        code = await pump(hijack, stream, tty=tty, stdin=bool(instance.config.get("AttachStdin")))
        if code is not None:
            execs.record_exit(instance, code)
        else:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(instance.done.wait(), 5)
    except (ConnectionError, OSError):
        pass
    finally:
        hijack.close()
    return response


async def exec_resize(request: web.Request) -> web.StreamResponse:
    instance = _execs(request).get(request.match_info["id"])
    height, width = _int(request, "h", 0) or 0, _int(request, "w", 0) or 0
    container = _service(request).get(instance.container_id)
    if not instance.running:
        raise NotFound(f"No such exec instance: {instance.id} is not running")
    await _service(request).resize(container, height, width, exec_id=instance.id)
    return web.Response(status=200)


async def exec_inspect(request: web.Request) -> web.StreamResponse:
    return json_response(_execs(request).get(request.match_info["id"]).inspect())


ROUTES = [
    ("POST", "/containers/create", create),
    ("GET", "/containers/json", listing),
    ("POST", "/containers/prune", prune),
    ("GET", "/containers/{id}/json", inspect),
    ("POST", "/containers/{id}/start", start),
    ("POST", "/containers/{id}/stop", stop),
    ("POST", "/containers/{id}/restart", restart),
    ("POST", "/containers/{id}/kill", kill),
    ("POST", "/containers/{id}/pause", pause),
    ("POST", "/containers/{id}/unpause", unpause),
    ("POST", "/containers/{id}/rename", rename),
    ("POST", "/containers/{id}/wait", wait),
    ("DELETE", "/containers/{id}", remove),
    ("POST", "/containers/{id}/attach", attach),
    ("POST", "/containers/{id}/resize", resize),
    ("GET", "/containers/{id}/logs", logs),
    ("GET", "/containers/{id}/top", top),
    ("GET", "/containers/{id}/stats", stats),
    ("POST", "/containers/{id}/exec", exec_create),
    ("POST", "/exec/{id}/start", exec_start),
    ("POST", "/exec/{id}/resize", exec_resize),
    ("GET", "/exec/{id}/json", exec_inspect),
]
