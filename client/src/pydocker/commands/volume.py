"""The ``volume`` commands, printed as docker 28 prints them: ``create``, ``ls``,
``inspect``, ``rm`` and ``prune``."""

from __future__ import annotations

from typing import Any

import click

from pydocker.api import APIClient
from pydocker.commands.common import (
    Filters,
    for_each,
    inspect_command,
    kv_map,
    label_fields,
    natural_key,
    number,
    print_prune_report,
    prune_filter_option,
    prune_report,
    render,
)
from pydocker.formatting import Row, Template, decimal_size
from pydocker.options import filter_option, filters_param, format_option, pass_client

__all__ = ["COMMANDS", "volume_rows"]

_TITLES = {
    "Name": "VOLUME NAME",
    "Driver": "DRIVER",
    "Scope": "SCOPE",
    "Mountpoint": "MOUNTPOINT",
    "Labels": "LABELS",
    "Links": "LINKS",
    "Size": "SIZE",
    "Group": "GROUP",
    "Availability": "AVAILABILITY",
    "Status": "STATUS",
}
_TABLE = Template.parse("table {{.Driver}}\t{{.Name}}")
_QUIET = Template.parse("{{.Name}}")
_ANONYMOUS_WARNING = (
    "WARNING! This will remove anonymous local volumes not used by at least one container."
    "\nAre you sure you want to continue?"
)
_ALL_WARNING = (
    "WARNING! This will remove all local volumes not used by at least one container."
    "\nAre you sure you want to continue?"
)


def volume_rows(volumes: list[dict[str, Any]]) -> list[Row]:
    """What a template sees for each volume, as docker's volume context shows it."""
    rows = []
    for volume in volumes:
        usage = volume.get("UsageData")
        size = number(usage.get("Size"), -1) if isinstance(usage, dict) else -1
        rows.append(
            Row(
                Availability="N/A",
                Driver=str(volume.get("Driver") or ""),
                Group="N/A",
                Links=str(number(usage.get("RefCount"))) if isinstance(usage, dict) else "N/A",
                Mountpoint=str(volume.get("Mountpoint") or ""),
                Name=str(volume.get("Name") or ""),
                Scope=str(volume.get("Scope") or ""),
                Size="N/A" if size == -1 else decimal_size(size, 4),
                Status="N/A",
                **label_fields(volume.get("Labels")),
            )
        )
    return rows


@click.group("volume")
def volume() -> None:
    """Manage volumes."""


@volume.command("create")
@click.argument("name", required=False, metavar="[VOLUME]")
@click.option("-d", "--driver", default="local", show_default=True, help="Volume driver name.")
@click.option("--label", multiple=True, metavar="KEY=VALUE", help="Set metadata for a volume.")
@click.option(
    "-o", "--opt", multiple=True, metavar="KEY=VALUE", help="Set driver specific options."
)
@pass_client
def create(
    client: APIClient, name: str | None, driver: str, label: tuple[str, ...], opt: tuple[str, ...]
) -> None:
    """Create a volume (the daemon names it when no name is given); prints its name."""
    body: dict[str, Any] = {"Driver": driver}
    if opt:
        body["DriverOpts"] = kv_map(opt)
    if label:
        body["Labels"] = kv_map(label)
    if name:
        body["Name"] = name
    created = client.post("/volumes/create", json=body) or {}
    click.echo(str(created.get("Name") or ""))


@volume.command("ls")
@click.option("-q", "--quiet", is_flag=True, help="Only display volume names.")
@filter_option('Provide filter values (e.g. "dangling=true", "driver=local", "label=k=v").')
@format_option(error_status=1)
@pass_client
def ls(client: APIClient, quiet: bool, filters: Filters, template: Template | None) -> None:
    """List volumes."""
    listing = client.get("/volumes", params=filters_param(filters)) or {}
    volumes = sorted(listing.get("Volumes") or [], key=lambda v: natural_key(str(v.get("Name"))))
    chosen = _QUIET if quiet else template
    render(chosen, _TABLE, volume_rows(volumes), _TITLES)


volume.add_command(ls, "list")


volume.add_command(inspect_command("volume", "/volumes/{}", raw=False))


@volume.command("rm")
@click.argument("names", nargs=-1, required=True, metavar="VOLUME...")
@click.option("-f", "--force", is_flag=True, help="Force the removal of one or more volumes.")
@pass_client
def rm(client: APIClient, names: tuple[str, ...], force: bool) -> None:
    """Remove one or more volumes. You cannot remove a volume that is in use by a container."""
    params = {"force": "1"} if force else None
    for_each(names, lambda name: client.request("DELETE", f"/volumes/{name}", params=params))


volume.add_command(rm, "remove")


@volume.command("prune")
@click.option(
    "-a",
    "--all",
    "prune_all",
    is_flag=True,
    help="Remove all unused volumes, not just anonymous ones.",
)
@click.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation.")
@prune_filter_option
@pass_client
def prune(client: APIClient, prune_all: bool, force: bool, filters: Filters) -> None:
    """Remove unused local volumes (anonymous ones only, unless -a)."""
    if prune_all:
        filters.setdefault("all", {})["true"] = True
    warning = _ALL_WARNING if prune_all else _ANONYMOUS_WARNING
    report = prune_report(client, "/volumes/prune", warning, filters, force=force)
    if report is None:
        return
    deleted = [str(name) for name in report.get("VolumesDeleted") or []]
    print_prune_report("Volumes", deleted, number(report.get("SpaceReclaimed")))


COMMANDS = [volume]
