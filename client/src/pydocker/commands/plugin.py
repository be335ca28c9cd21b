"""``plugin ls``: every plugin and driver of the daemon, with its status."""

from __future__ import annotations

import json
from typing import Any

import click

from pydocker.api import APIClient
from pydocker.cli import pass_client
from pydocker.commands.system import parse_filter_flags
from pydocker.formatting import render_template, table

__all__ = ["plugin"]

_REASON_WIDTH = 50


@click.group()
def plugin() -> None:
    """Manage plugins."""


@plugin.command("ls")
@click.option("-q", "--quiet", is_flag=True, help="Only display plugin names.")
@click.option("--no-trunc", is_flag=True, help="Don't truncate output.")
@click.option(
    "-f",
    "--filter",
    "filters",
    multiple=True,
    help="Filter (kind=storage, status=ok, enabled=true).",
)
@click.option("--format", "template", help="Format the output with a template.")
@pass_client
def ls(
    client: APIClient, quiet: bool, no_trunc: bool, filters: tuple[str, ...], template: str | None
) -> None:
    """List plugins and drivers: kind, name, plugin, version, status and reason."""
    params = {"filters": json.dumps(parse_filter_flags(filters))} if filters else None
    items: list[dict[str, Any]] = client.get_json("/plugins", params=params)
    if quiet:
        for item in items:
            click.echo(item.get("Name", ""))
        return
    if template:
        for item in items:
            click.echo(render_template(template, item))
        return
    rows = []
    for item in items:
        reason = item.get("Reason") or ""
        if not no_trunc and len(reason) > _REASON_WIDTH:
            reason = reason[: _REASON_WIDTH - 1] + "…"
        rows.append(
            [
                item.get("Kind", ""),
                item.get("Driver") or item.get("Name", ""),
                item.get("Plugin", ""),
                item.get("Version", ""),
                item.get("Status", ""),
                reason,
            ]
        )
    click.echo(table(["KIND", "NAME", "PLUGIN", "VERSION", "STATUS", "REASON"], rows))


plugin.add_command(ls, "list")
