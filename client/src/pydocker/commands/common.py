"""What several command modules do alike: printing listings and inspected objects, the
prune prompt, and running one request per named object as docker does (every one is
tried; the errors are reported together at the end)."""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import click

from pydocker.api import APIClient
from pydocker.errors import DaemonError, InvalidArgument, PydockerError
from pydocker.formatting import Template, decimal_size, go_indent, go_marshal, table_lines
from pydocker.options import (
    DockerCommand,
    filters_param,
    format_option,
    parse_filters,
    pass_client,
)

__all__ = [
    "Filters",
    "QueryFlag",
    "add_commands",
    "confirm",
    "for_each",
    "inspect_command",
    "inspect_each",
    "join_host_port",
    "kv_map",
    "label_fields",
    "natural_key",
    "number",
    "os_error",
    "print_lines",
    "print_prune_report",
    "prune_filter_option",
    "prune_report",
    "render",
    "render_lines",
]

Filters = dict[str, dict[str, bool]]


def number(value: Any, default: int = 0) -> int:
    """An integer field of a daemon reply; ``default`` when it is missing or not a number."""
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else default


def kv_map(items: Iterable[str]) -> dict[str, str]:
    """``KEY=VALUE`` strings as a map (docker's ``ConvertKVStringsToMap``: a bare ``KEY``
    maps to ``""``, the last value wins), keys sorted as Go marshals a map."""
    result: dict[str, str] = {}
    for item in items:
        key, _, value = item.partition("=")
        result[key] = value
    return dict(sorted(result.items()))


def natural_key(text: str) -> list[tuple[int, int, str]]:
    """A sort key for ``sortorder.NaturalLess``: runs of digits compare as numbers."""
    parts = (part for part in re.split(r"(\d+)", text) if part)
    return [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in parts]


def join_host_port(host: str, port: int | str) -> str:
    """``net.JoinHostPort``: an IPv6 host in brackets (``[::]:8080``)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def label_fields(labels: Mapping[str, str] | None) -> dict[str, Any]:
    """The ``Labels`` field (``a=1,b=2``) and the ``Label "a"`` method of docker's
    formatter contexts."""
    found = dict(labels or {})
    return {
        "Labels": ",".join(f"{key}={value}" for key, value in sorted(found.items())),
        "Label": lambda name: str(found.get(name, "")),
    }


def print_lines(lines: Iterable[str]) -> None:
    for line in lines:
        click.echo(line)


def render_lines(
    template: Template | None,
    default: Template,
    items: Sequence[Any],
    titles: dict[str, str],
) -> list[str]:
    """The lines of ``items`` in the command's own table, or through the user's template."""
    chosen = default if template is None or template.is_default_table else template
    if chosen.is_table:
        return table_lines(chosen, items, titles)
    return [chosen.render(item) for item in items]


def render(
    template: Template | None,
    default: Template,
    items: Sequence[Any],
    titles: dict[str, str],
) -> None:
    """Print ``items`` with the command's own table, or the user's template."""
    print_lines(render_lines(template, default, items, titles))


def os_error(op: str, path: str, error: OSError) -> str:
    """An OS error in Go's words: ``open x: no such file or directory``."""
    reason = error.strerror or str(error)
    return f"{op} {path}: {reason[:1].lower()}{reason[1:]}"


def inspect_each(
    names: Sequence[str],
    template: Template | None,
    lookup: Callable[[str], tuple[Any, str]],
) -> None:
    """docker's ``inspect.Inspect``: every element found is printed (the daemon's JSON,
    indented, in an array; or each decoded element through the template), then the
    errors of the others, one a line; status 1. ``lookup`` gives an element decoded and
    as the daemon wrote it (:meth:`~pydocker.api.APIClient.get_raw`)."""
    elements: list[tuple[Any, str]] = []
    failures: list[str] = []
    for name in names:
        try:
            elements.append(lookup(name))
        except (DaemonError, InvalidArgument) as e:
            failures.append(str(e))
    if template is None:
        click.echo(go_indent("[" + ",".join(raw for _, raw in elements) + "]"))
    elif not elements:
        click.echo("")
    else:
        print_lines(template.render(value) for value, _ in elements)
    if failures:
        raise PydockerError("\n".join(failures))


@dataclass(frozen=True)
class QueryFlag:
    """A boolean flag that adds ``name=value`` to the query (``inspect -s``: ``size=1``)."""

    short: str
    long: str
    help: str
    name: str
    value: str


def inspect_command(
    kind: str, path: str, flag: QueryFlag | None = None, *, raw: bool = True
) -> click.Command:
    """``<kind> inspect [-f FORMAT] NAME...``: ``GET path`` (``{}`` is the name) for each,
    with ``flag``'s query when it is given. The JSON printed is the daemon's text
    (``raw``), or for the kinds docker decodes and encodes again (volumes), Go's
    encoding of it. Its arguments are counted as docker counts them."""

    def command(
        client: APIClient, names: tuple[str, ...], template: Template | None, switch: bool = False
    ) -> None:
        params = {flag.name: flag.value} if flag is not None and switch else None

        def lookup(name: str) -> tuple[Any, str]:
            value, text = client.get_raw(path.format(name), params)
            return value, text if raw else go_marshal(value)

        inspect_each(names, template, lookup)

    decorated = pass_client(command)
    if flag is not None:
        decorated = click.option(flag.short, flag.long, "switch", is_flag=True, help=flag.help)(
            decorated
        )
    decorated = format_option(short=True, error_status=64)(decorated)
    metavar = f"{kind.upper()} [{kind.upper()}...]"
    decorated = click.argument("names", nargs=-1, required=True, metavar=metavar)(decorated)
    summary = f"Display detailed information on one or more {kind}s."
    return click.command("inspect", cls=DockerCommand, help=summary)(decorated)


def add_commands(
    group: click.Group, commands: Iterable[tuple[click.Command, tuple[str, ...]]]
) -> None:
    """Register each command of a group under each of its names (``ls``, ``list``)."""
    for command, names in commands:
        for name in names:
            group.add_command(command, name)


def for_each(
    names: Sequence[str],
    action: Callable[[str], object],
    *,
    echo: bool = True,
    forgive: Callable[[PydockerError], bool] | None = None,
) -> None:
    """Apply ``action`` to every name; print each name that succeeded (``echo``), then fail
    with all the errors, one a line, as docker's ``stop``, ``kill``, ``rm`` ... do. An
    error ``forgive`` accepts is printed at once and does not fail the command
    (``rm -f`` of a missing container)."""
    failures: list[str] = []
    for name in names:
        try:
            action(name)
        except PydockerError as e:
            if forgive is not None and forgive(e):
                click.echo(str(e), err=True)
                continue
            failures.append(str(e))
            continue
        if echo:
            click.echo(name)
    if failures:
        raise PydockerError("\n".join(failures))


def print_prune_report(title: str, deleted: Sequence[str], reclaimed: int) -> None:
    """What the prune commands print: ``Deleted <title>:``, a line per item and a blank
    line (when anything went), then ``Total reclaimed space: <size>``."""
    if deleted:
        click.echo(f"Deleted {title}:\n" + "".join(f"{line}\n" for line in deleted))
    click.echo(f"Total reclaimed space: {decimal_size(reclaimed if deleted else 0, 4)}")


def confirm(message: str) -> bool:
    """docker's prompt: the question on stdout, ``y`` or ``Y`` on stdin to go on."""
    click.echo(f"{message} [y/N] ", nl=False)
    answer = sys.stdin.readline()
    return answer.strip().lower() == "y"


def prune_report(
    client: APIClient, path: str, warning: str, filters: Filters, *, force: bool
) -> dict[str, Any] | None:
    """docker's prune: ``warning`` asked (unless ``force``), then ``POST path`` with the
    filters; the daemon's report, or ``None`` when the answer was no (docker exits 0)."""
    if not force and not confirm(warning):
        return None
    report: dict[str, Any] = client.post(path, params=filters_param(filters)) or {}
    return report


def _prune_filters(ctx: click.Context, param: click.Parameter, value: tuple[str, ...]) -> Filters:
    return parse_filters(value, "--filter")


prune_filter_option = click.option(
    "--filter",
    "filters",
    multiple=True,
    metavar="FILTER",
    callback=_prune_filters,
    help='Provide filter values (e.g. "until=<timestamp>", "label=<key>=<value>").',
)
"""``--filter`` of the prune commands (no ``-f``: that is ``--force`` there)."""
