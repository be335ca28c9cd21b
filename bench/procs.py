"""Processes and their memory, from /proc.

Memory is PSS (proportional set size, ``/proc/<pid>/smaps_rollup``): a page shared by *k*
processes counts 1/*k* in each, so a hundred shims or a daemon and its supervisor sharing
one interpreter are not counted a hundred or two times over. RSS is kept beside it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Memory", "children", "cmdline", "memory", "pid_namespace", "tree"]


@dataclass(frozen=True)
class Memory:
    """PSS and RSS in bytes, summed over ``pids``."""

    pss: int
    rss: int
    pids: tuple[int, ...]


def _parents() -> dict[int, int]:
    found: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        found[int(entry.name)] = int(stat.rpartition(")")[2].split()[1])
    return found


def children(pid: int, parents: dict[int, int] | None = None) -> list[int]:
    """Every descendant of ``pid`` (``parents``: a :func:`_parents` table read already)."""
    parents = _parents() if parents is None else parents
    kids_of: dict[int, list[int]] = {}
    for child, parent in parents.items():
        kids_of.setdefault(parent, []).append(child)
    found: list[int] = []
    todo = [pid]
    while todo:
        kids = kids_of.get(todo.pop(), [])
        found += kids
        todo += kids
    return found


def pid_namespace(pid: int) -> str:
    try:
        return str(Path(f"/proc/{pid}/ns/pid").readlink())
    except OSError:
        return ""


def tree(roots: Iterable[int]) -> list[int]:
    """``roots`` and their descendants that live in the host's pid namespace (this
    process's): the engine's own processes, not the containers' (which each have their own
    pid namespace, in both engines)."""
    host = pid_namespace(os.getpid())
    parents = _parents()  # one look at /proc, however many roots (500 shims)
    found: list[int] = []
    for root in roots:
        for pid in [root, *children(root, parents)]:
            if pid not in found and pid_namespace(pid) == host:
                found.append(pid)
    return found


def cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def _rollup(pid: int) -> tuple[int, int]:
    pss = rss = 0
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return 0, 0
    for line in text.splitlines():
        name, _, value = line.partition(":")
        if name == "Pss":
            pss = int(value.split()[0]) * 1024
        elif name == "Rss":
            rss = int(value.split()[0]) * 1024
    return pss, rss


def memory(pids: Iterable[int]) -> Memory:
    """PSS and RSS summed over ``pids`` (a process gone meanwhile counts 0)."""
    chosen = tuple(pids)
    pss = rss = 0
    for pid in chosen:
        one_pss, one_rss = _rollup(pid)
        pss += one_pss
        rss += one_rss
    return Memory(pss, rss, chosen)
