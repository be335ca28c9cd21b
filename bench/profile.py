"""Where a figure's time goes: py-spy on an isolated pydockerd (daemon and supervisor) while
a command runs in a loop, or on a client command itself.

    uv run python -m bench.profile daemon -n 20 -- docker run --rm busybox true
    uv run python -m bench.profile client -n 10 -- pydocker run --rm busybox true
    uv run python -m bench.profile daemon -n 50 --containers 100 -- docker ps

``daemon`` samples the daemon and the supervisor (one py-spy each, attached by pid) while
the command runs ``-n`` times against them; ``client`` runs the command itself under
py-spy, ``-n`` times. Each prints the functions with the most samples, inclusive (the
function or what it calls) and self (the function itself), and keeps the collapsed stacks
(``--out``, for flamegraph.pl or speedscope). Samples are of the GIL-holding thread only
(``--gil``): where Python spends CPU, not where it waits.
"""

from __future__ import annotations

import argparse
import collections
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.engines import DOCKER_CLI, Pydockerd

__all__ = ["main", "summarize"]

REPO = Path(__file__).resolve().parent.parent
PY_SPY = str(Path(sys.executable).parent / "py-spy")
_SPY_DAEMON = [PY_SPY, "record", "--gil", "--rate", "200", "--format", "raw"]


def summarize(collapsed: Path, top: int = 25) -> str:
    """The ``top`` functions by inclusive and by self samples of a py-spy ``raw`` file."""
    inclusive: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        samples = int(count)
        total += samples
        frames = [_function(frame) for frame in stack.split(";")]
        for frame in set(frames):
            inclusive[frame] += samples
        own[frames[-1]] += samples
    lines = [f"{collapsed.name}: {total} samples"]
    for title, counter in (("inclusive", inclusive), ("self", own)):
        lines.append(f"  top {title}:")
        lines += [
            f"    {100 * n / max(total, 1):5.1f}%  {frame}" for frame, n in counter.most_common(top)
        ]
    return "\n".join(lines)


def _function(frame: str) -> str:
    """``name (/long/path/pkg/mod.py:12)`` → ``name (pkg/mod.py)``: a function, any line."""
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").rpartition(":")[0] or where.rstrip(")")
    return f"{name} ({'/'.join(Path(path).parts[-2:])})"


def _client(argv: list[str], runs: int, env: dict[str, str], out: Path) -> None:
    for i in range(runs):
        raw = out / f"client-{i}.txt"
        subprocess.run(
            [PY_SPY, "record", "-r", "1000", "-f", "raw", "-o", str(raw), "--", *argv],
            env=env,
            check=True,
            capture_output=True,
        )
    merged = out / "client.txt"
    merged.write_text("".join(p.read_text() for p in sorted(out.glob("client-*.txt"))))
    print(summarize(merged))


def _daemon(engine: Pydockerd, argv: list[str], runs: int, out: Path) -> None:
    subprocess.run([DOCKER_CLI, "run", "--rm", "busybox", "true"], env=engine.env, check=True)
    pids = {"daemon": engine.daemon.process.pid, "supervisor": engine.daemon.supervisor_pid()}
    spies = [
        subprocess.Popen(
            [*_SPY_DAEMON, "--pid", str(pid), "-o", str(out / f"{name}.txt")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for name, pid in pids.items()
        if pid is not None
    ]
    time.sleep(1)
    start = time.perf_counter()
    for _ in range(runs):
        subprocess.run(argv, env=engine.env, check=True, capture_output=True)
    wall = time.perf_counter() - start
    for spy in spies:
        spy.send_signal(2)
        spy.wait(30)
    print(f"{runs} runs of {' '.join(argv)}: {wall / runs:.3f} s each")
    for name in pids:
        if (out / f"{name}.txt").exists():
            print(summarize(out / f"{name}.txt"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__)
    parser.add_argument("where", choices=("daemon", "client"))
    parser.add_argument("-n", "--runs", type=int, default=20)
    parser.add_argument("--out", type=Path, help="keep the collapsed stacks here")
    parser.add_argument(
        "--containers", type=int, default=0, help="start this many sleeping containers first"
    )
    parser.add_argument("command", nargs="+")
    args = parser.parse_args(argv)
    command = [DOCKER_CLI if args.command[0] == "docker" else args.command[0], *args.command[1:]]
    if command[0] == "pydocker":
        command[0] = str(Path(sys.executable).parent / "pydocker")
    work = Path(tempfile.mkdtemp(prefix="pdprof-", dir="/tmp"))
    out = args.out or work / "stacks"
    out.mkdir(parents=True, exist_ok=True)
    engine = Pydockerd(work / "pd")
    try:
        busybox = work / "busybox.tar"
        subprocess.run(
            [sys.executable, str(REPO / "scripts" / "make-busybox-image"), str(busybox)],
            check=True,
            capture_output=True,
        )
        status, body = engine.request("POST", "/images/load?quiet=1", busybox.read_bytes())
        if status != 200:
            raise RuntimeError(body.decode(errors="replace"))
        for _ in range(args.containers):
            spec = {"Image": "busybox", "Cmd": ["sleep", "100000"]}
            created = engine.request("POST", "/containers/create", spec)[1]
            engine.request("POST", f"/containers/{json.loads(created)['Id']}/start")
        if args.where == "daemon":
            _daemon(engine, command, args.runs, out)
        else:
            _client(command, args.runs, engine.env, out)
    finally:
        engine.cleanup()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
