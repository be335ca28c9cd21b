"""The figures of issue 8, each run for pydockerd and its peer alternately.

Every timing is ``time.perf_counter`` around one CLI subprocess (the real docker CLI
28.2.2 at /usr/local/bin/docker for both engines, unless the figure says ``pydocker``);
every memory figure is PSS summed over the engine's own processes (:mod:`bench.procs`).
Run *i* starts with pydockerd when *i* is even and with the peer when it is odd, so a
drift of the machine (other work, page cache) falls on both.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydockerd.testing.registries import TestImage, reference_registry

from bench import procs
from bench.engines import DOCKER_CLI, Engine

__all__ = ["FIGURES", "STOP", "Bench", "Figure", "Settings", "Side", "Skip"]

MiB = 1 << 20

STOP = threading.Event()
"""Set on Ctrl-C: set-up threads (making containers) stop at their next step."""


class Skip(Exception):
    """A figure that cannot run on this machine (a tool is missing): ``skip``, no error."""


@dataclass
class Settings:
    """How much to run."""

    runs: int = 5
    ps_counts: tuple[int, ...] = (100, 500)
    memory_containers: int = 100
    image_mib: float = 200.0
    layers: int = 5
    build_steps: int = 10

    @classmethod
    def tiny(cls) -> Settings:
        return cls(runs=1, ps_counts=(2,), memory_containers=2, image_mib=0.5, build_steps=10)


@dataclass
class Figure:
    """One row of the table: the raw runs of both sides, and the goal for their ratio."""

    name: str
    title: str
    unit: str
    goal: float
    ours: str = "pydockerd"
    peer: str = "docker"
    runs: dict[str, list[float]] = field(default_factory=dict)
    notes: dict[str, Any] = field(default_factory=dict)
    error: str = ""
    skipped: str = ""

    def median(self, side: str) -> float | None:
        values = self.runs.get(side) or []
        return statistics.median(values) if values else None

    @property
    def ratio(self) -> float | None:
        ours, peer = self.median(self.ours), self.median(self.peer)
        if ours is None or peer is None or peer == 0:
            return None
        return ours / peer

    @property
    def result(self) -> str:
        if self.error:
            return "error"
        if self.skipped:
            return "skip"
        ratio = self.ratio
        if ratio is None:
            return "n/a"
        return "pass" if ratio <= self.goal else "miss"

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "title": self.title,
            "unit": self.unit,
            "goal": self.goal,
            "ours": self.ours,
            "peer": self.peer,
            "runs": self.runs,
            "median": {side: self.median(side) for side in self.runs},
            "ratio": self.ratio,
            "result": self.result,
            "notes": self.notes,
            "error": self.error,
            "skipped": self.skipped,
        }


@dataclass
class Side:
    """One side of a figure: a label, and the engine (or registry URL) behind it."""

    label: str
    engine: Engine | None = None
    url: str = ""


def timed(argv: Sequence[str], env: dict[str, str], timeout: float = 900) -> float:
    """Wall seconds of ``argv``; it must succeed."""
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, timeout=timeout, check=False)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(
            f"{' '.join(argv)}: exit {done.returncode}: "
            f"{done.stderr.decode(errors='replace')[-1500:]}"
        )
    return wall


def _ok(engine: Engine, method: str, path: str, body: Any = None) -> bytes:
    status, answer = engine.request(method, path, body)
    if status >= 300:
        raise RuntimeError(f"{engine.name}: {method} {path}: {status} {answer[:500]!r}")
    return answer


class Bench:
    """Runs the figures on the engines and registries it is given."""

    def __init__(
        self,
        *,
        settings: Settings,
        work: Path,
        engines: Sequence[Engine],
        image: TestImage,
        registries: dict[str, str],
        log: Callable[[str], None] = print,
    ) -> None:
        self.settings = settings
        self.work = work
        self.engines = list(engines)
        self.image = image
        self.registries = registries
        """label → URL: ``docker-registry`` and ``pydocker-registry``, seeded with the
        image as ``bench/big:v1``."""
        self.log = log
        self.figures: list[Figure] = []
        self._idle: dict[str, float] = {}
        self.resources: dict[str, list[str]] = {}
        """What the engines and registries make on the host, by kind (see
        :meth:`bench.engines.Engine.resources`)."""

    # -- plumbing ---------------------------------------------------------------------

    def _alternate(
        self, figure: Figure, sides: Sequence[Side], one: Callable[[Side, int], float]
    ) -> None:
        for side in sides:
            figure.runs.setdefault(side.label, [])
        for i in range(self.settings.runs):
            order = list(sides) if i % 2 == 0 else list(reversed(sides))
            for side in order:
                figure.runs[side.label].append(one(side, i))

    def _engine_sides(self) -> list[Side]:
        return [Side(e.name, e) for e in self.engines]

    def _figure(self, figure: Figure, body: Callable[[Figure], None]) -> Figure:
        self.log(f"bench: {figure.name}: {figure.title}")
        self.figures.append(figure)
        try:
            body(figure)
        except Skip as e:
            figure.skipped = str(e)
            self.log(f"bench: {figure.name} skipped: {e}")
        except KeyboardInterrupt:
            figure.error = "interrupted"
            raise
        except Exception as e:  # one broken figure does not lose the others
            figure.error = f"{type(e).__name__}: {e}"
            figure.notes["traceback"] = traceback.format_exc()
            self.log(f"bench: {figure.name} failed: {figure.error}")
        return figure

    # -- 1, 2: run ----------------------------------------------------------------------

    def run_figures(self) -> None:
        pydocker = str(Path(sys.executable).parent / "pydocker")
        for engine in self.engines:  # a first run warms each engine's caches, untimed
            timed([DOCKER_CLI, "run", "--rm", "busybox", "true"], engine.env)

        def docker_cli(side: Side, _: int) -> float:
            assert side.engine is not None
            return timed([DOCKER_CLI, "run", "--rm", "busybox", "true"], side.engine.env)

        def own_cli(side: Side, _: int) -> float:
            assert side.engine is not None
            cli = pydocker if side.engine.name == "pydockerd" else DOCKER_CLI
            return timed([cli, "run", "--rm", "busybox", "true"], side.engine.env)

        def detached(side: Side, _: int) -> float:
            assert side.engine is not None
            wall = timed([DOCKER_CLI, "run", "-d", "busybox", "sleep", "1000"], side.engine.env)
            side.engine.remove_containers()
            return wall

        sides = self._engine_sides()
        self._figure(
            Figure("run-rm", "run --rm busybox true (docker CLI)", "s", 0.33),
            lambda f: self._alternate(f, sides, docker_cli),
        )
        self._figure(
            Figure(
                "run-rm-pydocker",
                "run --rm busybox true (pydocker vs docker CLI)",
                "s",
                0.33,
                notes={"clients": {"pydockerd": "pydocker", "docker": "docker"}},
            ),
            lambda f: self._alternate(f, sides, own_cli),
        )
        self._figure(
            Figure("run-d", "run -d busybox sleep 1000", "s", 0.33),
            lambda f: self._alternate(f, sides, detached),
        )

    # -- 3, 4, 5: many containers, memory ---------------------------------------------

    def _settle(self, engine: Engine) -> procs.Memory:
        time.sleep(0.5)
        return procs.memory(engine.processes())

    def memory_figures(self) -> None:
        sides = self._engine_sides()

        def idle(side: Side, _: int) -> float:
            assert side.engine is not None
            found = self._settle(side.engine)
            return found.pss / MiB

        def idle_body(figure: Figure) -> None:
            for engine in self.engines:
                engine.remove_containers()
            self._alternate(figure, sides, idle)
            for engine in self.engines:
                self._idle[engine.name] = float(figure.median(engine.name) or 0.0)
                figure.notes[engine.name] = _breakdown(engine)

        self._figure(
            Figure(
                "idle-memory",
                "idle daemon PSS (pydockerd+supervisor vs dockerd+containerd)",
                "MiB",
                0.5,
            ),
            idle_body,
        )
        counts = sorted({*self.settings.ps_counts, self.settings.memory_containers})
        try:
            for count in counts:
                self._grow(count)
                if count == self.settings.memory_containers or count == counts[-1]:
                    self._per_container(count, sides)
                if count in self.settings.ps_counts:
                    self._ps(count, sides)
        finally:
            self.log("bench: removing the containers")
            _each_engine(self.engines, _remove_all)

    def _grow(self, count: int) -> None:
        self.log(f"bench: starting containers up to {count} on each engine")

        def grow(engine: Engine) -> None:
            have = len(engine.container_ids())

            def one(_: int) -> None:
                if STOP.is_set():
                    return
                body = {
                    "Image": "busybox",
                    "Cmd": ["sleep", "100000"],
                    "HostConfig": {"NetworkMode": "none"},
                }
                created = json.loads(_ok(engine, "POST", "/containers/create", body))
                _ok(engine, "POST", f"/containers/{created['Id']}/start")

            with ThreadPoolExecutor(4) as pool:
                list(pool.map(one, range(count - have)))

        _each_engine(self.engines, grow)

    def _per_container(self, count: int, sides: Sequence[Side]) -> None:
        def measure(side: Side, _: int) -> float:
            assert side.engine is not None
            found = self._settle(side.engine)
            return (found.pss / MiB - self._idle[side.engine.name]) / count

        def body(figure: Figure) -> None:
            if set(self._idle) != {e.name for e in self.engines}:
                raise RuntimeError("no idle figure to subtract")
            self._alternate(figure, sides, measure)
            for engine in self.engines:
                figure.notes[engine.name] = _breakdown(engine)

        name = "memory-per-container"
        if count != self.settings.memory_containers:  # the slope again, with the most
            name += f"-{count}"
        self._figure(
            Figure(
                name,
                f"PSS added per running container (N={count})",
                "MiB",
                0.15,
                notes={"containers": count},
            ),
            body,
        )

    def _ps(self, count: int, sides: Sequence[Side]) -> None:
        def ps(side: Side, _: int) -> float:
            assert side.engine is not None
            return timed([DOCKER_CLI, "ps"], side.engine.env)

        self._figure(
            Figure(f"ps-{count}", f"ps with {count} running containers", "s", 1.0),
            lambda f: self._alternate(f, sides, ps),
        )

    # -- 6, 7: registries ---------------------------------------------------------------

    def registry_figures(self) -> None:
        sides = self._engine_sides()
        source = self.registries.get("docker-registry") or self.registries["pydocker-registry"]
        host = source.partition("://")[2]
        reference = f"{host}/bench/big:v1"
        mib = sum(len(layer) for layer in self.image.layers) / MiB

        def pull(side: Side, _: int) -> float:
            assert side.engine is not None
            side.engine.request("DELETE", f"/images/{reference}?force=1")
            return timed([DOCKER_CLI, "pull", "-q", reference], side.engine.env)

        def push(side: Side, i: int) -> float:
            engine = side.engine
            assert engine is not None
            with _empty_registry(self.work / f"push-{side.label}-{i}") as target:
                name = f"{target}/bench/pushed{i}"
                _ok(engine, "POST", f"/images/{reference}/tag?repo={name}&tag=v1")
                try:
                    return timed([DOCKER_CLI, "push", "-q", f"{name}:v1"], engine.env)
                finally:
                    engine.request("DELETE", f"/images/{name}:v1")

        registry = (
            "docker-registry" if "docker-registry" in self.registries else "pydocker-registry"
        )
        notes = {"registry": registry, "mib": round(mib, 1), "layers": len(self.image.layers)}
        self._figure(
            Figure(
                "pull",
                f"cold pull, {mib:.0f} MiB in {len(self.image.layers)} layers",
                "s",
                0.8,
                notes=dict(notes),
            ),
            lambda f: self._alternate(f, sides, pull),
        )
        self._figure(
            Figure(
                "push", f"push to an empty registry, {mib:.0f} MiB", "s", 0.8, notes=dict(notes)
            ),
            lambda f: self._alternate(f, sides, push),
        )
        for engine in self.engines:
            engine.request("DELETE", f"/images/{reference}?force=1")
        self._figure(
            Figure(
                "skopeo-copy",
                f"skopeo copy of {mib:.0f} MiB out of the registry",
                "s",
                1.0,
                ours="pydocker-registry",
                peer="docker-registry",
            ),
            self._skopeo,
        )

    def _skopeo(self, figure: Figure) -> None:
        skopeo = shutil.which("skopeo")
        if skopeo is None:
            raise Skip("skopeo is not installed")
        policy = self.work / "policy.json"
        policy.write_text('{"default": [{"type": "insecureAcceptAnything"}]}')
        sides = [
            Side(label, url=url)
            for label, url in sorted(
                self.registries.items(), key=lambda kv: kv[0] != "pydocker-registry"
            )
        ]
        env = {**os.environ, "REGISTRY_AUTH_FILE": str(self.work / "no-auth.json")}

        def copy(side: Side, i: int) -> float:
            target = self.work / f"skopeo-{side.label}-{i}"
            host = side.url.partition("://")[2]
            argv = [skopeo, "--policy", str(policy), "copy", "--src-tls-verify=false"]
            argv += ["--src-no-creds", "-q", f"docker://{host}/bench/big:v1", f"dir:{target}"]
            try:
                return timed(argv, env)
            finally:
                shutil.rmtree(target, ignore_errors=True)

        self._alternate(figure, sides, copy)

    # -- 8: build -----------------------------------------------------------------------

    def build_figures(self) -> None:
        context = self.work / "build-context"
        context.mkdir(exist_ok=True)
        (context / "data.bin").write_bytes(os.urandom(1 * MiB))
        (context / "Dockerfile").write_text(dockerfile(self.settings.build_steps))
        sides = self._engine_sides()

        def build(side: Side, i: int, cold: bool) -> float:
            assert side.engine is not None
            tag = f"benchbuild:{'cold' if cold else 'warm'}{i}"
            argv = [DOCKER_CLI, "build", "-q", "-t", tag, str(context)]
            if cold:
                argv[2:2] = ["--no-cache"]
            return timed(argv, side.engine.env)

        self._figure(
            Figure(
                "build-cold",
                f"build of a {self.settings.build_steps}-step Dockerfile, "
                "no cache (legacy builder)",
                "s",
                1.0,
            ),
            lambda f: self._alternate(f, sides, lambda s, i: build(s, i, True)),
        )
        self._figure(
            Figure(
                "build-warm",
                f"build of the same {self.settings.build_steps} steps, all cached",
                "s",
                1.0,
            ),
            lambda f: self._alternate(f, sides, lambda s, i: build(s, i, False)),
        )
        for engine in self.engines:
            for image in json.loads(_ok(engine, "GET", "/images/json")):
                if any(t.startswith("benchbuild:") for t in image.get("RepoTags") or []):
                    engine.request("DELETE", f"/images/{image['Id']}?force=1")


FIGURES: dict[str, Callable[[Bench], None]] = {
    "run": Bench.run_figures,
    "memory": Bench.memory_figures,
    "registry": Bench.registry_figures,
    "build": Bench.build_figures,
}
"""Groups of figures, in the order they run (``--figures`` picks some). ``memory`` holds
the idle and per-container memory and the ``ps`` timings (they share the containers)."""


def dockerfile(steps: int) -> str:
    """A Dockerfile of ``steps`` steps after FROM: metadata and file steps, and RUNs that
    start a container each (the steps a real Dockerfile has)."""
    pool = [
        "ENV BENCH=1",
        "WORKDIR /app",
        "COPY data.bin /app/data.bin",
        "RUN echo one > /app/one",
        "ARG VERSION=1",
        "RUN seq 1 20000 > /app/seq",
        "LABEL bench=pydockerd",
        "RUN wc -l /app/seq > /app/count && md5sum /app/data.bin > /app/sum",
        "EXPOSE 8080",
        'CMD ["cat", "/app/count"]',
    ]
    lines = ["FROM busybox"]
    for i in range(steps):
        lines.append(pool[i] if i < len(pool) else f"RUN echo step{i} > /app/step{i}")
    return "\n".join(lines) + "\n"


@contextlib.contextmanager
def _empty_registry(directory: Path) -> Iterator[str]:
    """A new, empty registry on 127.0.0.1 (Debian's docker-registry; pydocker-registry where
    that is not installed): its ``host:port``."""
    if shutil.which("docker-registry"):
        with reference_registry() as registry:
            yield registry.host
        return
    from pydocker_registry.testing import RegistryProcess, write_config

    directory.mkdir()
    try:
        with RegistryProcess(write_config(directory)) as registry:
            yield registry.url.partition("://")[2]
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _breakdown(engine: Engine) -> list[dict[str, Any]]:
    """Each of the engine's processes: pid, command (shortened), PSS and RSS in MiB."""
    rows = []
    for pid in engine.processes():
        found = procs.memory([pid])
        argv = procs.cmdline(pid)
        rows.append(
            {
                "pid": pid,
                "command": " ".join(argv)[:120],
                "pss_mib": round(found.pss / MiB, 2),
                "rss_mib": round(found.rss / MiB, 2),
            }
        )
    return rows


def _remove_all(engine: Engine) -> None:
    ids = engine.container_ids()
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda c: engine.request("DELETE", f"/containers/{c}?force=1&v=1"), ids))


def _each_engine(engines: Sequence[Engine], work: Callable[[Engine], None]) -> None:
    """``work`` on every engine at once (set-up, untimed); the first error is raised."""
    errors: list[BaseException] = []

    def run(engine: Engine) -> None:
        try:
            work(engine)
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=run, args=(e,)) for e in engines]
    for thread in threads:
        thread.start()
    try:
        for thread in threads:
            thread.join()
    except KeyboardInterrupt:  # let them stop before the engines are taken down
        STOP.set()
        for thread in threads:
            thread.join()
        raise
    if errors:
        raise errors[0]
