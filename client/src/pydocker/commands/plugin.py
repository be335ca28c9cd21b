"""``plugin ls``: every plugin and driver of the daemon, with its status."""

from __future__ import annotations

from typing import Any

import click

from pydocker.api import APIClient
from pydocker.formatting import Template, ellipsis, table
from pydocker.options import filter_option, filters_param, format_option, pass_client

__all__ = ["COMMANDS"]

_REASON_WIDTH = 50


@click.group()
def plugin() -> None:
    """Manage plugins."""


@plugin.command("ls")
@click.option("-q", "--quiet", is_flag=True, help="Only display plugin names.")
@click.option("--no-trunc", is_flag=True, help="Don't truncate output.")
@filter_option("Filter (kind=storage, status=ok, enabled=true).")
@format_option()
@pass_client
def ls(
    client: APIClient,
    quiet: bool,
    no_trunc: bool,
    filters: dict[str, dict[str, bool]],
    template: Template | None,
) -> None:
    """List plugins and drivers: kind, name, plugin, version, status and reason."""
    items: list[dict[str, Any]] = client.get("/plugins", params=filters_param(filters))
    if quiet:
        for item in items:
            click.echo(item.get("Name", ""))
        return
    if template is not None and not template.is_default_table:
        for line in template.render_all(items):
            click.echo(line)
        return
    rows = []
    for item in items:
        reason = item.get("Reason") or ""
        if not no_trunc:
            reason = ellipsis(reason, _REASON_WIDTH)
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

COMMANDS = [plugin]
