"""Output as the docker CLI prints it: tables, sizes, Go-template-like ``--format``."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

__all__ = ["event_line", "human_size", "render_template", "table"]

_FIELD = re.compile(r"\{\{\s*(json\s+)?\.([A-Za-z0-9_.]*)\s*\}\}")


def _lookup(value: Any, path: str) -> Any:
    for part in filter(None, path.split(".")):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def _render_value(value: Any, as_json: bool) -> str:
    if as_json:
        return json.dumps(value)
    if value is None:
        return "<no value>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value)
    return str(value)


def render_template(template: str, value: Any) -> str:
    """A small subset of Go templates: ``{{.A.B}}``, ``{{json .}}``, ``{{json .A}}``.

    ``\\t`` and ``\\n`` escapes in the template are honoured, as the docker CLI does.
    """
    template = template.replace("\\t", "\t").replace("\\n", "\n")
    return _FIELD.sub(
        lambda m: _render_value(_lookup(value, m.group(2)), bool(m.group(1))), template
    )


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], padding: int = 3) -> str:
    """Left-aligned columns separated by at least ``padding`` spaces (Go's tabwriter)."""
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]
    lines = []
    for row in [list(headers), *rows]:
        cells = [cell.ljust(width) for cell, width in zip(row[:-1], widths, strict=False)]
        lines.append((" " * padding).join([*cells, row[-1]]).rstrip())
    return "\n".join(lines)


def human_size(size: float) -> str:
    """Bytes in binary units as docker prints memory (``23.54GiB``)."""
    units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"]
    unit = 0
    while size >= 1024 and unit < len(units) - 1:
        size /= 1024
        unit += 1
    return f"{size:.4g}{units[unit]}"


def event_line(event: dict[str, Any]) -> str:
    """``<RFC3339Nano time> <type> <action> <actor id> (k=v, ...)`` as ``docker events``."""
    nanos = int(event.get("timeNano") or int(event.get("time", 0)) * 1_000_000_000)
    moment = datetime.fromtimestamp(nanos // 1_000_000_000, UTC)
    stamp = moment.strftime("%Y-%m-%dT%H:%M:%S") + f".{nanos % 1_000_000_000:09d}Z"
    actor = event.get("Actor") or {}
    attributes = actor.get("Attributes") or {}
    line = f"{stamp} {event.get('Type', '')} {event.get('Action', '')} {actor.get('ID', '')}"
    if attributes:
        line += " (" + ", ".join(f"{k}={attributes[k]}" for k in sorted(attributes)) + ")"
    return line
