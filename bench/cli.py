"""``make bench`` / ``python -m bench``: set everything up, run the figures, print the table,
write the JSON, and take everything down again, also on failure, Ctrl-C or SIGTERM."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import FrameType

from bench import peers, report
from bench.engines import Docker, Engine, Pydockerd
from bench.figures import FIGURES, STOP, Bench, Settings

__all__ = ["main"]

REPO = Path(__file__).resolve().parent.parent


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--runs", type=int, help="runs of each figure per side (default 5)")
    parser.add_argument(
        "--tiny",
        action="store_true",
        help="1 run, 2 containers, a 0.5 MiB image: checks that the harness works (the smoke test)",
    )
    parser.add_argument(
        "--peers",
        choices=("auto", "yes", "no"),
        default="yes",
        help="yes: install the peers if missing and compare (default); auto: "
        "compare if installed, never install; no: pydockerd only",
    )
    parser.add_argument(
        "--figures",
        default=",".join(FIGURES),
        help=f"groups to run, of {','.join(FIGURES)} (default all)",
    )
    parser.add_argument("--ps-counts", help="running containers for ps (default 100,500)")
    parser.add_argument("--memory-containers", type=int, help="N for memory per container")
    parser.add_argument("--image-mib", type=float, help="pull/push image size (default 200)")
    parser.add_argument(
        "--results",
        type=Path,
        default=REPO / "bench" / "results",
        help="where the JSON goes (default bench/results)",
    )
    return parser


def _settings(args: argparse.Namespace) -> Settings:
    settings = Settings.tiny() if args.tiny else Settings()
    if args.runs:
        settings.runs = args.runs
    if args.ps_counts:
        settings.ps_counts = tuple(int(n) for n in args.ps_counts.split(","))
    if args.memory_containers:
        settings.memory_containers = args.memory_containers
    if args.image_mib:
        settings.image_mib = args.image_mib
    return settings


def _terminate(signum: int, _: FrameType | None) -> None:
    """The first Ctrl-C, SIGTERM or SIGHUP: stop; the cleanup that follows is not cut by
    another."""
    for name in _SIGNALS:
        signal.signal(name, signal.SIG_IGN)
    STOP.set()
    raise KeyboardInterrupt(f"signal {signum}")


_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    settings = _settings(args)
    groups = [g for g in args.figures.split(",") if g]
    unknown = set(groups) - set(FIGURES)
    if unknown:
        _log(f"bench: unknown figure groups {sorted(unknown)}")
        return 2
    if os.geteuid() != 0:
        _log("bench: needs root (containers, mounts, bridges)")
        return 2
    for name in _SIGNALS:
        signal.signal(name, _terminate)
    compare = args.peers != "no"
    if compare:
        still = peers.ensure_peers(install=args.peers == "yes")
        if any(tool in still for tool in ("dockerd", "containerd", "runc")):
            if args.peers == "yes":
                _log(f"bench: peers missing after install: {still}")
                return 1
            _log(f"bench: {', '.join(still)} not installed: pydockerd only")
            compare = False
    work = Path(tempfile.mkdtemp(prefix="pdbench-", dir="/tmp"))
    work.chmod(0o755)
    _log(f"bench: work directory {work}")
    started = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    bench: Bench | None = None
    try:
        with contextlib.ExitStack() as stack:
            stack.callback(shutil.rmtree, work, True)
            bench = _run(stack, work, settings, groups, compare)
    except KeyboardInterrupt:
        _log("bench: interrupted; everything it started is stopped and removed")
        if bench is None:
            return 130
    print(report.table(bench.figures), flush=True)
    path = report.write_json(
        args.results / f"{started}.json",
        bench.figures,
        settings,
        {
            "work_dir": str(work),
            "engines": [e.name for e in bench.engines],
            "resources": bench.resources,
            "peer_versions": _versions() if compare else {},
        },
    )
    print(f"\nraw runs: {path}", flush=True)
    return 1 if any(f.error for f in bench.figures) else 0


def _run(
    stack: contextlib.ExitStack, work: Path, settings: Settings, groups: list[str], compare: bool
) -> Bench:
    from pydockerd.testing.registries import push_image, random_image, reference_registry

    busybox = work / "busybox.tar"
    subprocess.run(
        [sys.executable, str(REPO / "scripts" / "make-busybox-image"), str(busybox)],
        check=True,
        capture_output=True,
    )
    engines: list[Engine] = []
    _log("bench: starting pydockerd")
    ours = Pydockerd(work / f"pd-{work.name[-6:]}")
    stack.callback(ours.cleanup)
    engines.append(ours)
    if compare:
        _log("bench: starting containerd and dockerd")
        n = 250 + int.from_bytes(os.urandom(1)) % 6  # the test kit's daemons use 10.100-249
        docker = Docker(work / "docker", f"pdbd{n}", f"10.{n}.0.1/24", f"10.{n}.128.0/17")
        stack.callback(docker.cleanup)
        engines.append(docker)
    resources: dict[str, list[str]] = {}
    for engine in engines:
        for kind, names in engine.resources().items():
            resources.setdefault(kind, []).extend(names)
        _load(engine, busybox)
    registries: dict[str, str] = {}
    image = None
    if "registry" in groups:
        image = random_image(
            settings.layers, int(settings.image_mib * (1 << 20)) // settings.layers
        )
        if shutil.which("docker-registry"):
            reference = stack.enter_context(reference_registry())
            registries["docker-registry"] = reference.url
            resources.setdefault("dirs", []).append(str(reference.storage.parent))
        from pydocker_registry.testing import RegistryProcess, write_config

        (work / "pdreg").mkdir()
        ours_registry = stack.enter_context(RegistryProcess(write_config(work / "pdreg")))
        registries["pydocker-registry"] = ours_registry.url
        for url in registries.values():
            push_image(url, "bench/big", "v1", image)
    _log(f"bench: resources {json.dumps(resources)}")
    bench = Bench(
        settings=settings,
        work=work,
        engines=engines,
        image=image or random_image(1, 1),
        registries=registries,
        log=_log,
    )
    bench.resources = resources
    for group in groups:
        FIGURES[group](bench)
    return bench


def _load(engine: Engine, archive: Path) -> None:
    status, body = engine.request("POST", "/images/load?quiet=1", archive.read_bytes())
    if status != 200:
        raise RuntimeError(f"{engine.name}: docker load: {status} {body[:300]!r}")


def _versions() -> dict[str, str]:
    found = {}
    for tool, flag in (
        ("dockerd", "--version"),
        ("containerd", "--version"),
        ("runc", "--version"),
        ("docker-registry", "--version"),
        ("skopeo", "--version"),
    ):
        with contextlib.suppress(OSError):
            out = subprocess.run([tool, flag], capture_output=True, text=True, check=False)
            found[tool] = out.stdout.strip().splitlines()[0] if out.stdout.strip() else ""
    return found
