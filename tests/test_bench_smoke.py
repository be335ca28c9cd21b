"""The benchmark harness (``bench/``, ``make bench``) runs on its tiny setting, prints its
table and writes its JSON with every figure, and leaves nothing behind: not when it ends,
not when it is interrupted.

It runs against pydockerd alone when the peers (dockerd, containerd, runc) are not
installed, so CI needs no ``apt-get install docker.io``; it compares when they are. It
never installs anything (``--peers auto``). Nothing here looks at a timing.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pydockerd.testing.daemon import cgroup_dirs

REPO = Path(__file__).resolve().parent.parent

pytestmark = [
    pytest.mark.privileged,
    pytest.mark.skipif(os.geteuid() != 0, reason="the bench needs root"),
]

FIGURES = [
    "run-rm",
    "run-rm-pydocker",
    "run-d",
    "idle-memory",
    "memory-per-container",
    "ps-2",
    "pull",
    "push",
    "skopeo-copy",
    "build-cold",
    "build-warm",
]


def _bench(*args: str) -> list[str]:
    return [sys.executable, "-m", "bench", "--tiny", "--peers", "auto", *args]


def _resources(stderr: str) -> tuple[Path, dict[str, list[str]]]:
    work = re.search(r"^bench: work directory (\S+)$", stderr, re.MULTILINE)
    assert work, stderr
    found = re.search(r"^bench: resources (.+)$", stderr, re.MULTILINE)
    return Path(work.group(1)), json.loads(found.group(1)) if found else {}


def _left_behind(work: Path, resources: dict[str, list[str]]) -> list[str]:
    """What is still on the host of a bench run: its directories, mounts, processes,
    bridges, nft tables and cgroups."""
    left = [f"dir {d}" for d in [str(work), *resources.get("dirs", [])] if Path(d).exists()]
    mounts = Path("/proc/self/mountinfo").read_text().splitlines()
    left += [f"mount {line.split()[4]}" for line in mounts if str(work) in line]
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                argv = (entry / "cmdline").read_bytes().decode(errors="replace")
            except OSError:
                continue
            if str(work) in argv:
                left.append(f"process {entry.name}: {argv.replace(chr(0), ' ')[:200]}")
    for bridge in resources.get("bridges", []):
        shown = subprocess.run(
            ["ip", "link", "show", "dev", bridge], capture_output=True, check=False
        )
        if shown.returncode == 0:
            left.append(f"link {bridge}")
    if shutil.which("nft"):
        for table in resources.get("nft_tables", []):
            listed = subprocess.run(
                ["nft", "list", "table", "ip", table], capture_output=True, check=False
            )
            if listed.returncode == 0:
                left.append(f"nft table {table}")
    for parent in resources.get("cgroups", []):
        left += [f"cgroup {d}" for d in cgroup_dirs(parent)]
    return left


def test_tiny_run_prints_the_table_writes_the_json_and_leaves_nothing(tmp_path: Path) -> None:
    done = subprocess.run(
        _bench("--results", str(tmp_path)),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    work, resources = _resources(done.stderr)
    assert resources.get("bridges"), done.stderr  # pydockerd's, at least
    table = done.stdout.splitlines()
    assert table[0].split()[:2] == ["figure", "unit"], done.stdout
    assert [line.split()[0] for line in table[2 : 2 + len(FIGURES)]] == FIGURES, done.stdout
    (path,) = tmp_path.glob("*.json")
    assert f"raw runs: {path}" in done.stdout
    document = json.loads(path.read_text())
    figures = {f["name"]: f for f in document["figures"]}
    assert list(figures) == FIGURES
    for name, figure in figures.items():
        assert not figure["error"], (name, figure["error"])
        if figure["skipped"]:
            continue
        assert len(figure["runs"][figure["ours"]]) == 1, name  # --tiny: one run a side
    compared = "docker" in document["engines"]
    assert (figures["run-rm"]["ratio"] is not None) == compared
    assert document["work_dir"] == str(work)
    assert _left_behind(work, resources) == []


def test_an_interrupted_run_leaves_nothing(tmp_path: Path) -> None:
    bench = subprocess.Popen(
        _bench("--results", str(tmp_path), "--figures", "run,memory"),
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert bench.stderr is not None
    stderr = ""
    try:
        deadline = time.monotonic() + 60
        while "bench: run-d:" not in stderr and time.monotonic() < deadline:
            line = bench.stderr.readline()
            if not line:
                break
            stderr += line
        assert "bench: run-d:" in stderr, stderr
        bench.send_signal(signal.SIGINT)  # Ctrl-C, with a container running or about to
        out, rest = bench.communicate(timeout=90)
    finally:
        if bench.poll() is None:
            bench.kill()
            bench.wait()
    stderr += rest
    assert bench.returncode == 130, out + stderr
    assert "interrupted" in stderr
    assert list(tmp_path.iterdir()) == []  # no JSON of a cut run
    work, resources = _resources(stderr)
    assert _left_behind(work, resources) == []
