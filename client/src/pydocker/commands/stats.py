"""``stats``: containers' resource usage, computed from the stats JSON as docker computes
it, redrawn in place every half second (docker's ticker) unless ``--no-stream``."""

from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import click

from pydocker.api import APIClient
from pydocker.commands.common import number, print_lines, render_lines
from pydocker.commands.ps import all_containers_option
from pydocker.errors import PydockerError
from pydocker.formatting import Row, Template, decimal_size, human_size, short_id
from pydocker.options import GoCommand, filters_param, format_option, pass_client

__all__ = ["stats", "stats_row"]

_TICK = 0.5
_STALE = 2.0
"""Seconds without a sample before a container's numbers are shown as ``--`` (docker's)."""
_TITLES = {
    "Container": "CONTAINER",
    "ID": "CONTAINER ID",
    "Name": "NAME",
    "CPUPerc": "CPU %",
    "MemUsage": "MEM USAGE / LIMIT",
    "MemPerc": "MEM %",
    "NetIO": "NET I/O",
    "BlockIO": "BLOCK I/O",
    "PIDs": "PIDS",
}
_DEFAULT = Template.parse(
    "table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}"
    "\t{{.BlockIO}}\t{{.PIDs}}"
)
_HOME, _CLEAR_LINE, _CLEAR_REST = "\033[H", "\033[K", "\033[J"


def _cpu_percent(sample: dict[str, Any]) -> float:
    """Δ container CPU / Δ system CPU * online CPUs * 100 (``calculateCPUPercentUnix``)."""
    cpu = sample.get("cpu_stats") or {}
    previous = sample.get("precpu_stats") or {}
    cpu_delta = number((cpu.get("cpu_usage") or {}).get("total_usage")) - number(
        (previous.get("cpu_usage") or {}).get("total_usage")
    )
    system_delta = number(cpu.get("system_cpu_usage")) - number(previous.get("system_cpu_usage"))
    online = number(cpu.get("online_cpus")) or len(
        (cpu.get("cpu_usage") or {}).get("percpu_usage") or []
    )
    if system_delta > 0 and cpu_delta > 0:
        return cpu_delta / system_delta * online * 100.0
    return 0.0


def _memory(sample: dict[str, Any]) -> tuple[float, float]:
    """Usage without the page cache (``usage - inactive_file``, ``total_inactive_file`` on
    cgroup v1), and the limit."""
    memory = sample.get("memory_stats") or {}
    usage = number(memory.get("usage"))
    details = memory.get("stats") or {}
    for key in ("total_inactive_file", "inactive_file"):
        if key in details and number(details[key]) < usage:
            return float(usage - number(details[key])), float(number(memory.get("limit")))
    return float(usage), float(number(memory.get("limit")))


def _block_io(sample: dict[str, Any]) -> tuple[int, int]:
    read = write = 0
    entries = (sample.get("blkio_stats") or {}).get("io_service_bytes_recursive") or []
    for entry in entries:
        operation = str(entry.get("op") or "")[:1].lower()
        if operation == "r":
            read += number(entry.get("value"))
        elif operation == "w":
            write += number(entry.get("value"))
    return read, write


def _network_io(sample: dict[str, Any]) -> tuple[int, int]:
    networks = (sample.get("networks") or {}).values()
    return (
        sum(number(n.get("rx_bytes")) for n in networks),
        sum(number(n.get("tx_bytes")) for n in networks),
    )


def stats_row(container: str, sample: dict[str, Any] | None, *, trunc: bool = True) -> Row:
    """One line of ``stats`` (docker's stats context); ``sample`` ``None`` while there is
    no valid one (``--``)."""
    sample_id = str((sample or {}).get("id") or "")
    name = str((sample or {}).get("name") or "")
    row = Row(
        BlockIO="--",
        CPUPerc="--",
        Container=container,
        ID=short_id(sample_id) if trunc else sample_id,
        MemPerc="--",
        MemUsage="-- / --",
        Name=name[1:] if len(name) > 1 else "--",
        NetIO="--",
        PIDs="--",
    )
    if sample is None:
        return row
    memory, limit = _memory(sample)
    read, write = _block_io(sample)
    received, sent = _network_io(sample)
    row.update(
        BlockIO=f"{decimal_size(read)} / {decimal_size(write)}",
        CPUPerc=f"{_cpu_percent(sample):.2f}%",
        MemPerc=f"{memory / limit * 100 if limit else 0.0:.2f}%",
        MemUsage=f"{human_size(memory)} / {human_size(limit)}",
        NetIO=f"{decimal_size(received)} / {decimal_size(sent)}",
        PIDs=str(number((sample.get("pids_stats") or {}).get("current"))),
    )
    return row


@dataclass
class _Watched:
    """One container's latest sample, kept up to date by its own thread."""

    container: str
    sample: dict[str, Any] | None = None
    error: PydockerError | None = None
    received: float = 0.0
    first: threading.Event = field(default_factory=threading.Event)

    def collect(self, client: APIClient, stream: bool) -> None:
        params = {"stream": "1" if stream else "0"}
        try:
            for sample in client.stream_json(f"/containers/{self.container}/stats", params):
                if isinstance(sample, dict):
                    self.sample, self.error, self.received = sample, None, time.monotonic()
                    self.first.set()
                if not stream:
                    break
        except PydockerError as e:
            self.error = e
        self.first.set()

    def current(self) -> dict[str, Any] | None:
        fresh = time.monotonic() - self.received < _STALE
        return self.sample if self.error is None and (fresh or not self.received) else None


class _Board:
    """The containers shown, added and removed as container events arrive."""

    def __init__(self, client: APIClient, stream: bool) -> None:
        self._client = client
        self._stream = stream
        self._lock = threading.Lock()
        self.watched: dict[str, _Watched] = {}

    def add(self, container: str) -> None:
        with self._lock:
            if container in self.watched:
                return
            watched = self.watched[container] = _Watched(container)
        threading.Thread(
            target=watched.collect, args=(self._client, self._stream), daemon=True
        ).start()

    def remove(self, container: str) -> None:
        with self._lock:
            self.watched.pop(container, None)

    def snapshot(self) -> list[_Watched]:
        with self._lock:
            return list(self.watched.values())

    def follow_events(self, show_all: bool, subscribed: threading.Event) -> None:
        """Containers that start (with ``-a``: are created) join; those that die (with
        ``-a``: are destroyed) leave."""
        params = filters_param({"type": {"container": True}})
        joins = {"start", "create"} if show_all else {"start"}
        leaves = {"destroy"} if show_all else {"die"}
        try:
            with self._client.stream("GET", "/events", params=params) as response:
                subscribed.set()
                for event in APIClient.json_values(response):
                    self._event(event, joins, leaves)
        except PydockerError:
            pass
        finally:
            subscribed.set()

    def _event(self, event: Any, joins: set[str], leaves: set[str]) -> None:
        if not isinstance(event, dict):
            return
        action = str(event.get("Action") or event.get("status") or "")
        actor = event.get("Actor") or {}
        container = short_id(str(actor.get("ID") or event.get("id") or ""))
        if action in joins:
            self.add(container)
        elif action in leaves:
            self.remove(container)


@click.command("stats", cls=GoCommand)
@click.argument("containers", nargs=-1, metavar="[CONTAINER...]")
@all_containers_option
@format_option(error_prefix="template parsing error", error_status=1)
@click.option(
    "--no-stream", is_flag=True, help="Disable streaming stats and only pull the first result."
)
@click.option("--no-trunc", is_flag=True, help="Do not truncate output.")
@pass_client
def stats(
    client: APIClient,
    *,
    containers: tuple[str, ...],
    show_all: bool,
    template: Template | None,
    no_stream: bool,
    no_trunc: bool,
) -> None:
    """Display a live stream of container(s) resource usage statistics."""
    board = _Board(client, stream=not no_stream)
    if containers:
        for container in containers:
            board.add(container)
    else:
        if not no_stream:
            subscribed = threading.Event()
            threading.Thread(
                target=board.follow_events, args=(show_all, subscribed), daemon=True
            ).start()
            subscribed.wait()
        listing = client.get("/containers/json", params={"all": "1"} if show_all else None)
        for container in listing:
            board.add(short_id(str(container.get("Id") or "")))
    for watched in board.snapshot():
        watched.first.wait()
    if containers:
        errors = [str(w.error) for w in board.snapshot() if w.error is not None]
        if errors:
            raise PydockerError("\n".join(errors))
    out = sys.stdout
    while True:
        shown = board.snapshot()
        rows = [stats_row(w.container, w.current(), trunc=not no_trunc) for w in shown]
        lines = render_lines(template, _DEFAULT, rows, _TITLES)
        if no_stream:
            print_lines(lines)
            return
        out.write(_HOME + "".join(f"{line}{_CLEAR_LINE}\n" for line in lines) + _CLEAR_REST)
        out.flush()
        time.sleep(_TICK)
