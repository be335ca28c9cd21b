"""Output as the docker CLI prints it: aligned columns, sizes, event lines, ``--format``.

``--format`` takes a small subset of Go templates, enough for what people script against
docker: ``{{.Field}}``, ``{{.A.B}}``, ``{{.}}``, ``{{json .}}`` / ``{{json .A}}``, a method
with a string argument (``{{.Label "com.example"}}``), ``{{range .A}}...{{end}}`` (over a
list, or a map's values: ``{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}``),
the trim markers ``{{-`` and ``-}}``, the ``table`` prefix (a header row and aligned
columns), and the shorthand ``json`` for ``{{json .}}``. Anything else in ``{{ }}`` is
refused with a :class:`~pydocker.errors.TemplateError` rather than printed back wrongly.

Listing commands render :class:`Row` objects: the display strings of docker's formatter
contexts, plus their methods (``Label``).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone, tzinfo
from typing import Any

from pydocker.errors import TemplateError

__all__ = [
    "Row",
    "Template",
    "column_widths",
    "columns",
    "decimal_size",
    "ellipsis",
    "event_line",
    "go_indent",
    "go_marshal",
    "go_time",
    "go_time_string",
    "go_value",
    "human_duration",
    "human_size",
    "rfc3339_nano",
    "short_id",
    "table",
    "table_lines",
    "time_ago",
]

_ACTION = re.compile(r"\{\{(-\s)?(.*?)(\s-)?\}\}", re.DOTALL)
_PATH = r"\.(?:[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)?"
_STRING = r'"(?:[^"\\]|\\.)*"'
_FIELD = re.compile(rf"(?:(json)\s+)?({_PATH})((?:\s+{_STRING})*)")
_ARGUMENT = re.compile(_STRING)
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_HTML_ESCAPES = (
    ("<", "\\u003c"),
    (">", "\\u003e"),
    ("&", "\\u0026"),
    ("\u2028", "\\u2028"),
    ("\u2029", "\\u2029"),
)
_SHORT_ID = 12
_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?"
    r"(?:([Zz])|([+-])(\d{2}):(\d{2}))"
)


class Row(dict[str, Any]):
    """One item of a listing as docker's formatter context shows it: field name → display
    string, and methods (callables taking string arguments, such as ``Label``).
    ``{{json .}}`` prints it as docker's ``MarshalJSON`` does: without the methods, and
    with ``<``, ``>`` and ``&`` escaped."""


def _go_escape(text: str) -> str:
    """What Go's ``json.Marshal`` escapes and Python's ``json`` does not."""
    for char, escaped in _HTML_ESCAPES:
        text = text.replace(char, escaped)
    return text


def go_marshal(value: Any) -> str:
    """``value`` as Go's ``json.Marshal`` writes it: compact, UTF-8 kept, ``<``, ``>`` and
    ``&`` escaped (what docker prints for objects it decodes and encodes again)."""
    return _go_escape(json.dumps(value, separators=(",", ":"), ensure_ascii=False))


def go_indent(raw: str, indent: str = "    ") -> str:
    """Go's ``json.Indent`` of JSON text, as docker's inspect prints what the daemon sent:
    an element a line, ``indent`` a level, ``": "`` after keys, ``{}`` and ``[]`` kept
    empty, and everything else (strings with their escapes, numbers) as written."""
    out: list[str] = []
    depth = 0
    in_string = escaped = opened = False
    for char in raw:
        if in_string:
            out.append(char)
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
            continue
        if char in " \t\r\n":
            continue
        just_opened, opened = opened, False
        if char in "]}":
            depth -= 1
            if not just_opened:
                out.append("\n" + indent * depth)
            out.append(char)
            continue
        if just_opened:
            out.append("\n" + indent * depth)
        if char in "{[":
            depth += 1
            opened = True
            out.append(char)
        elif char == ",":
            out.append(",\n" + indent * depth)
        elif char == ":":
            out.append(": ")
        else:
            in_string = char == '"'
            out.append(char)
    return "".join(out)


def short_id(object_id: str) -> str:
    """docker's ``TruncateID``: drop the algorithm, keep 12 characters."""
    return object_id.split(":", 1)[-1][:_SHORT_ID]


def go_time(seconds: float) -> str:
    """``time.Unix(s, 0).String()`` in local time: ``2024-01-02 15:04:05 +0100 CET``."""
    moment = datetime.fromtimestamp(seconds).astimezone()
    return f"{moment:%Y-%m-%d %H:%M:%S %z %Z}"


def _offset_text(offset: timedelta, separator: str = "") -> str:
    """A zone offset as Go prints it: ``+0100`` (``-07:00`` with ``separator=":"``)."""
    minutes = int(abs(offset).total_seconds()) // 60
    sign = "-" if offset < timedelta(0) else "+"
    return f"{sign}{minutes // 60:02d}{separator}{minutes % 60:02d}"


def _zone_name(moment: datetime) -> str:
    """The zone Go's ``time.Parse`` gives a time with an offset: the local zone's name when
    the local zone had that offset at that moment, else the offset itself (``+0100``)."""
    offset = moment.utcoffset() or timedelta(0)
    try:
        local = moment.astimezone()
    except (OverflowError, OSError, ValueError):  # outside the platform's time range
        local = None
    if local is not None and local.utcoffset() == offset and local.tzname():
        return str(local.tzname())
    return _offset_text(offset)


def go_time_string(text: str) -> str:
    """An RFC 3339 time from the daemon as Go's ``time.Time.String()`` prints it once
    decoded: ``2016-10-19 06:21:00.416543526 +0000 UTC`` (the fraction without trailing
    zeros; ``Z`` is UTC; another offset takes the local zone's name if the local zone has
    that offset then, else prints as ``+0100 +0100``). A missing or malformed time is Go's
    zero time."""
    zero = "0001-01-01 00:00:00 +0000 UTC"
    match = _RFC3339.fullmatch(text or "")
    if match is None:
        return zero
    year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
    clock = f"{year:04d}-{month:02d}-{day:02d} {hour:02d}:{minute:02d}:{second:02d}"
    fraction = (match.group(7) or "").rstrip("0")
    if fraction:
        clock += f".{fraction}"
    if match.group(8):
        return f"{clock} +0000 UTC"
    sign = -1 if match.group(9) == "-" else 1
    offset = sign * timedelta(hours=int(match.group(10)), minutes=int(match.group(11)))
    try:
        moment = datetime(year, month, day, hour, minute, second, tzinfo=timezone(offset))
    except ValueError:
        return zero
    return f"{clock} {_offset_text(offset)} {_zone_name(moment)}"


def time_ago(moment: float, now: float | None = None) -> str:
    """How long ago ``moment`` (unix seconds) was, as docker words it: ``3 hours ago``."""
    return human_duration((time.time() if now is None else now) - moment) + " ago"


def go_value(value: Any) -> str:
    """``value`` as Go's ``fmt`` prints it with ``%v``: ``true``, ``[a b]``, ``map[k:v]``."""
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 1e21 else repr(value)
    if isinstance(value, list | tuple):
        return "[" + " ".join(go_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{go_value(value[k])}" for k in sorted(value)) + "]"
    return str(value)


def _to_json(value: Any) -> str:
    """docker's ``json`` template function: compact, no HTML escaping, UTF-8 kept; a
    :class:`Row` as its ``MarshalJSON`` writes it."""
    if isinstance(value, Row):
        return go_marshal({key: value[key] for key in sorted(value) if not callable(value[key])})
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _lookup(value: Any, path: str) -> Any:
    for part in filter(None, path.split(".")):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def _header(path: str) -> str:
    """A column title from a field path, as docker titles them: ``.PluginReference`` →
    ``PLUGIN REFERENCE``."""
    last = path.rsplit(".", 1)[-1]
    return _CAMEL.sub(" ", last).upper()


@dataclass(frozen=True)
class _Field:
    path: str
    as_json: bool
    args: tuple[str, ...] = ()

    def render(self, value: Any) -> str:
        found = _lookup(value, self.path)
        if callable(found):
            found = found(*self.args)
        elif self.args:
            found = None
        if self.as_json:
            return _to_json(found)
        return "<no value>" if found is None else go_value(found)

    @property
    def header(self) -> str:
        """The column title: the field's name in capitals; for ``{{.Label "a.b-c"}}`` the
        label's last part, dashes and underscores as blanks (``b c``), as docker titles
        it."""
        if self.args:
            return re.sub(r"[-_]", " ", self.args[0].rsplit(".", 1)[-1])
        return _header(self.path)


@dataclass(frozen=True)
class _Range:
    """``{{range .Field}}body{{end}}``: the body once per element, ``.`` the element (a
    map's values in the order of their keys, as Go ranges over a map); nothing for an
    empty or missing value."""

    field: _Field
    body: tuple[_Part, ...]

    @property
    def path(self) -> str:
        return self.field.path

    def items(self, value: Any) -> list[Any]:
        found = _lookup(value, self.field.path)
        if isinstance(found, list | tuple):
            return list(found)
        if isinstance(found, dict) and not isinstance(found, Row):
            return [found[key] for key in sorted(found)]
        return []


_Part = str | _Field | _Range


def _render(parts: Sequence[_Part], value: Any) -> str:
    return "".join(
        part
        if isinstance(part, str)
        else "".join(_render(part.body, item) for item in part.items(value))
        if isinstance(part, _Range)
        else part.render(value)
        for part in parts
    )


def _join(parts: Sequence[_Part], field_text: Callable[[_Field], str]) -> str:
    return "".join(
        part
        if isinstance(part, str)
        else _join(part.body, field_text)
        if isinstance(part, _Range)
        else field_text(part)
        for part in parts
    )


def _unsupported(action: str) -> TemplateError:
    return TemplateError(
        f"template: unsupported action {{{{{action}}}}}: this client supports {{{{.Field}}}}, "
        '{{.A.B}}, {{.}}, {{json .Field}}, {{.Method "arg"}} and {{range .Field}}...{{end}}'
    )


def _field(action: str) -> _Field:
    found = _FIELD.fullmatch(action)
    if found is None:
        raise _unsupported(action)
    args = tuple(json.loads(arg) for arg in _ARGUMENT.findall(found.group(3)))
    return _Field(found.group(2), bool(found.group(1)), args)


@dataclass(frozen=True)
class Template:
    """A parsed ``--format`` value. Render it with :meth:`render`, or for a ``table``
    template print :meth:`header` first and align the rows with :func:`table`."""

    parts: tuple[_Part, ...]
    is_table: bool = False

    @classmethod
    def parse(cls, text: str) -> Template:
        """Parse a template; ``\\t`` and ``\\n`` escapes become tabs and newlines.

        :raises TemplateError: an unclosed ``{{`` or ``range``, an ``end`` without one, or
            an action outside the subset.
        """
        if text == "json":
            text = "{{json .}}"
        is_table = text.startswith("table")
        if is_table:
            text = text[len("table") :].strip(" ")
        text = text.replace("\\t", "\t").replace("\\n", "\n")
        blocks: list[tuple[_Field | None, list[_Part]]] = [(None, [])]
        position, trim_next = 0, False
        for match in _ACTION.finditer(text):
            literal = text[position : match.start()]
            if trim_next:
                literal = literal.lstrip()
            if match.group(1):
                literal = literal.rstrip()
            blocks[-1][1].append(literal)
            action = match.group(2).strip()
            line = text[: match.start()].count("\n") + 1
            if action.startswith("range "):
                blocks.append((_field(action[len("range ") :].strip()), []))
            elif action == "end":
                ranged, body = blocks.pop() if len(blocks) > 1 else (None, [])
                if ranged is None:
                    raise TemplateError(f"template: :{line}: unexpected {{{{end}}}}")
                blocks[-1][1].append(_Range(ranged, tuple(p for p in body if p != "")))
            else:
                blocks[-1][1].append(_field(action))
            position, trim_next = match.end(), bool(match.group(3))
        rest = text[position:]
        if "{{" in rest:
            line = text[: position + rest.index("{{")].count("\n") + 1
            raise TemplateError(f"template: :{line}: unclosed action")
        if len(blocks) > 1:
            raise TemplateError(f"template: :{text.count(chr(10)) + 1}: unexpected EOF")
        parts = blocks[0][1]
        parts.append(rest.lstrip() if trim_next else rest)
        return cls(tuple(p for p in parts if p != ""), is_table)

    @property
    def is_default_table(self) -> bool:
        """Just ``table``: the command's own table."""
        return self.is_table and not self.parts

    @property
    def is_raw(self) -> bool:
        """Just ``raw``: the command's ``key: value`` lines (docker's raw format)."""
        return not self.is_table and self.parts == ("raw",)

    def render(self, value: Any) -> str:
        return _render(self.parts, value)

    def header(self) -> str:
        """The header row of a ``table`` template: each field's name, in capitals."""
        return self._join(lambda field: field.header)

    def _join(self, field_text: Callable[[_Field], str]) -> str:
        return _join(self.parts, field_text)

    def render_all(self, items: Sequence[Any]) -> list[str]:
        """The lines for ``items``: one per item, aligned under a header for ``table``."""
        if not self.is_table:
            return [self.render(item) for item in items]
        rows = [self.header().split("\t"), *(self.render(i).split("\t") for i in items)]
        return columns(rows)


def column_widths(rows: Sequence[Sequence[str]], minwidth: int = 10, padding: int = 3) -> list[int]:
    """The width of each padded column (every cell but the last of a row), as Go's
    ``tabwriter`` computes it with docker's settings: the widest cell plus ``padding``, and
    at least ``minwidth``."""
    widths: list[int] = []
    for row in rows:
        for index, cell in enumerate(row[:-1]):
            width = max(len(cell) + padding, minwidth)
            if index == len(widths):
                widths.append(width)
            else:
                widths[index] = max(widths[index], width)
    return widths


def columns(rows: Sequence[Sequence[str]], minwidth: int = 10, padding: int = 3) -> list[str]:
    """Rows of cells as aligned lines (see :func:`column_widths`); the last cell of a row
    is not padded, and trailing blanks are dropped."""
    widths = column_widths(rows, minwidth, padding)
    lines = []
    for row in rows:
        padded = "".join(cell.ljust(w) for cell, w in zip(row[:-1], widths, strict=False))
        lines.append((padded + row[-1]).rstrip() if row else "")
    return lines


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A docker table: a header row and left-aligned columns, 3 blanks apart at least."""
    return "\n".join(columns([headers, *rows]))


def ellipsis(text: str, width: int) -> str:
    """``text`` cut to ``width`` characters, the last one an ellipsis (docker's ``Ellipsis``)."""
    if len(text) <= width:
        return text
    if width <= 1:
        return text[:width]
    return text[: width - 1] + "…"


def human_size(size: float) -> str:
    """Bytes in binary units as docker prints memory: ``23.54GiB`` (``%.4g``)."""
    units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"]
    unit = 0
    while size >= 1024 and unit < len(units) - 1:
        size /= 1024
        unit += 1
    return f"{size:.4g}{units[unit]}"


def rfc3339_nano(nanos: int, tz: tzinfo | None = None) -> str:
    """Nanoseconds since the epoch as docker prints event times: RFC 3339 with nine
    fractional digits, in ``tz`` (local time by default), ``Z`` for a zero offset."""
    seconds, fraction = divmod(nanos, 1_000_000_000)
    moment = datetime.fromtimestamp(seconds, tz) if tz else datetime.fromtimestamp(seconds)
    moment = moment.astimezone(tz)
    offset = moment.utcoffset() or timedelta(0)
    zone = "Z" if offset == timedelta(0) else _offset_text(offset, ":")
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{fraction:09d}{zone}"


def event_line(event: dict[str, Any], tz: tzinfo | None = None) -> str:
    """One event as ``docker events`` prints it:
    ``<time> <Type> <Action> <Actor.ID> (key=value, ...)``, attributes sorted by key; the
    time from ``timeNano`` (else ``time``) in local time, or ``tz``."""
    nanos = event.get("timeNano") or int(event.get("time") or 0) * 1_000_000_000
    stamp = f"{rfc3339_nano(int(nanos), tz)} " if nanos else ""
    actor = event.get("Actor") or {}
    attributes = actor.get("Attributes") or {}
    line = f"{stamp}{event.get('Type', '')} {event.get('Action', '')} {actor.get('ID', '')}"
    if attributes:
        line += " (" + ", ".join(f"{k}={attributes[k]}" for k in sorted(attributes)) + ")"
    return line


def human_duration(seconds: float) -> str:
    """A duration as docker words it (go-units ``HumanDuration``): ``Less than a second``,
    ``1 second``, ``N seconds``, ``About a minute``, ``N minutes``, ``About an hour``,
    ``N hours`` (under 48), ``N days`` (under 2 weeks), ``N weeks`` (under 2 months of 30
    days), ``N months`` (under 2 years of 365 days), ``N years``. Whole units are truncated,
    but hours are rounded to the nearest."""
    whole_seconds = int(seconds)
    if whole_seconds < 1:
        return "Less than a second"
    if whole_seconds == 1:
        return "1 second"
    if whole_seconds < 60:
        return f"{whole_seconds} seconds"
    minutes = int(seconds / 60)
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = int(seconds / 3600 + 0.5)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{int(seconds / 3600) // 24 // 365} years"


def decimal_size(size: float, precision: int = 3) -> str:
    """Bytes in decimal units as docker prints image sizes (go-units
    ``HumanSizeWithPrecision``, ``%.<precision>g``): ``4.26MB``, ``1.2kB``, ``0B``. With
    ``precision=4`` this is go-units ``HumanSize`` (``Total reclaimed space``, ``system df``)."""
    units = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"]
    unit = 0
    value = float(size)
    while value >= 1000 and unit < len(units) - 1:
        value /= 1000
        unit += 1
    return f"{value:.{precision}g}{units[unit]}"


def table_lines(template: Template, items: Sequence[Any], titles: dict[str, str]) -> list[str]:
    """The lines of a ``table`` template over ``items``, headed as docker heads them: each
    field's title from ``titles`` (keyed by field name, ``ID`` → ``IMAGE ID``), otherwise
    derived from the name as :meth:`Template.header` does."""

    def title(field: _Field) -> str:
        if field.args:
            return field.header
        return titles.get(field.path.lstrip("."), field.header)

    rows = [template._join(title).split("\t"), *(template.render(i).split("\t") for i in items)]
    return columns(rows)
