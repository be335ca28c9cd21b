"""The table of medians and the JSON of every run."""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.figures import Figure, Settings

__all__ = ["table", "write_json"]


def _number(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    return f"{value:.3f}" if unit == "s" else f"{value:.2f}"


def table(figures: Sequence[Figure]) -> str:
    """Medians of each side, the ratio ours/peer, the goal and pass/miss: plain text."""
    head = ("figure", "unit", "ours", "median", "peer", "median", "ratio", "goal", "result")
    rows = [head]
    for f in figures:
        ratio = f.ratio
        rows.append(
            (
                f.name,
                f.unit,
                f.ours,
                _number(f.median(f.ours), f.unit),
                f.peer,
                _number(f.median(f.peer), f.unit),
                "-" if ratio is None else f"{ratio:.2f}",
                f"<= {f.goal:g}",
                f.result,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    errors = [f"{f.name}: {f.error}" for f in figures if f.error]
    return "\n".join([*lines, "", *errors] if errors else lines)


def write_json(
    path: Path, figures: Sequence[Figure], settings: Settings, extra: dict[str, Any]
) -> Path:
    """Every raw run, the settings and the machine, as JSON at ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {
            "kernel": platform.release(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_average": os.getloadavg(),
        },
        "settings": {
            "runs": settings.runs,
            "ps_counts": list(settings.ps_counts),
            "memory_containers": settings.memory_containers,
            "image_mib": settings.image_mib,
            "layers": settings.layers,
            "build_steps": settings.build_steps,
        },
        **extra,
        "figures": [f.as_json() for f in figures],
    }
    path.write_text(json.dumps(document, indent=2) + "\n")
    return path
