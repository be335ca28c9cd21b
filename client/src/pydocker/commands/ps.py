"""``ps`` (``container ls``): containers as docker's container formatter shows them."""

from __future__ import annotations

import time
from typing import Any

import click

from pydocker.api import APIClient
from pydocker.commands.common import Filters, join_host_port, label_fields, number, render
from pydocker.commands.image import ReferenceError, familiar_name, normalize_reference
from pydocker.formatting import (
    Row,
    Template,
    decimal_size,
    ellipsis,
    go_time,
    short_id,
    time_ago,
)
from pydocker.options import (
    GoCommand,
    GoInt,
    filter_option,
    filters_param,
    format_option,
    pass_client,
)

__all__ = ["all_containers_option", "container_rows", "displayable_ports", "ps"]

_COMMAND_WIDTH = 20
_MOUNT_WIDTH = 15
_TITLES = {
    "ID": "CONTAINER ID",
    "Image": "IMAGE",
    "Command": "COMMAND",
    "CreatedAt": "CREATED AT",
    "RunningFor": "CREATED",
    "Ports": "PORTS",
    "State": "STATE",
    "Status": "STATUS",
    "Size": "SIZE",
    "Names": "NAMES",
    "Labels": "LABELS",
    "Mounts": "MOUNTS",
    "LocalVolumes": "LOCAL VOLUMES",
    "Networks": "NETWORKS",
    "Platform": "PLATFORM",
}
_TABLE = (
    "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}"
)
_DEFAULT = Template.parse(_TABLE)
_DEFAULT_WITH_SIZE = Template.parse(_TABLE + "\t{{.Size}}")
_QUIET = Template.parse("{{.ID}}")


def _go_quote(text: str) -> str:
    """Go's ``strconv.Quote`` for the text docker quotes (commands)."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    for char, code in (("\n", "\\n"), ("\t", "\\t"), ("\r", "\\r")):
        escaped = escaped.replace(char, code)
    return f'"{escaped}"'


def _port_key(port: dict[str, Any]) -> tuple[int, str, int, str]:
    return (
        number(port.get("PrivatePort")),
        str(port.get("IP") or ""),
        number(port.get("PublicPort")),
        str(port.get("Type") or ""),
    )


def _port_group(key: str, first: int, last: int) -> str:
    ip, _, kind = key.rpartition("/") if "/" in key else ("", "", key)
    ports = str(first) if first == last else f"{first}-{last}"
    if ip:
        ports = f"{join_host_port(ip, ports)}->{ports}"
    return f"{ports}/{kind}"


def displayable_ports(ports: list[dict[str, Any]]) -> str:
    """docker's ``DisplayablePorts``: consecutive ports grouped into ranges
    (``443-444/tcp``, ``0.0.0.0:53->53/udp``), other mappings after them
    (``0.0.0.0:8080->80/tcp``, ``[::]:8080->80/tcp``)."""
    groups: dict[str, list[int]] = {}
    result: list[str] = []
    mappings: list[str] = []
    for port in sorted(ports, key=_port_key):
        private, public = number(port.get("PrivatePort")), number(port.get("PublicPort"))
        ip, kind = str(port.get("IP") or ""), str(port.get("Type") or "")
        key = kind
        if ip:
            if public != private:
                mappings.append(f"{join_host_port(ip, public)}->{private}/{kind}")
                continue
            key = f"{ip}/{kind}"
        group = groups.get(key)
        if group is None:
            groups[key] = [private, private]
        elif private == group[1] + 1:
            group[1] = private
        else:
            result.append(_port_group(key, *group))
            groups[key] = [private, private]
    result += [_port_group(key, first, last) for key, (first, last) in groups.items()]
    return ", ".join(result + mappings)


def _image(container: dict[str, Any], trunc: bool) -> str:
    image = str(container.get("Image") or "")
    if not image:
        return "<no image>"
    if not trunc:
        return image
    image_id = str(container.get("ImageID") or "")
    if short_id(image_id) == short_id(image) and image_id:
        return short_id(image)
    try:
        name, tag, _ = normalize_reference(image)
    except ReferenceError:
        return image
    return familiar_name(name) + (f":{tag}" if tag else "")


def _names(container: dict[str, Any], trunc: bool) -> str:
    names = [str(n).removeprefix("/") for n in container.get("Names") or []]
    if trunc:
        names = next(([n] for n in names if "/" not in n), [])
    return ",".join(names)


def _mounts(container: dict[str, Any], trunc: bool) -> str:
    shown = []
    for mount in container.get("Mounts") or []:
        name = str(mount.get("Name") or mount.get("Source") or "")
        shown.append(ellipsis(name, _MOUNT_WIDTH) if trunc else name)
    return ",".join(shown)


def _size(container: dict[str, Any]) -> str:
    writable = decimal_size(number(container.get("SizeRw")))
    root = number(container.get("SizeRootFs"))
    return f"{writable} (virtual {decimal_size(root)})" if root > 0 else writable


def container_rows(
    containers: list[dict[str, Any]], *, trunc: bool = True, now: float | None = None
) -> list[Row]:
    """What a template sees for each container, as docker's container context shows it."""
    moment = time.time() if now is None else now
    rows = []
    for container in containers:
        command = str(container.get("Command") or "")
        created = number(container.get("Created"))
        networks = (container.get("NetworkSettings") or {}).get("Networks") or {}
        mounts = container.get("Mounts") or []
        container_id = str(container.get("Id") or "")
        rows.append(
            Row(
                Command=_go_quote(ellipsis(command, _COMMAND_WIDTH) if trunc else command),
                CreatedAt=go_time(created),
                ID=short_id(container_id) if trunc else container_id,
                Image=_image(container, trunc),
                LocalVolumes=str(sum(1 for m in mounts if m.get("Driver") == "local")),
                Mounts=_mounts(container, trunc),
                Names=_names(container, trunc),
                Networks=",".join(sorted(networks)),
                Platform=None,
                Ports=displayable_ports(container.get("Ports") or []),
                RunningFor=time_ago(created, moment),
                Size=_size(container),
                State=str(container.get("State") or ""),
                Status=str(container.get("Status") or ""),
                **label_fields(container.get("Labels")),
            )
        )
    return rows


def _uses_size(template: Template) -> bool:
    return any(not isinstance(p, str) and p.path == ".Size" for p in template.parts)


all_containers_option = click.option(
    "-a",
    "--all",
    "show_all",
    is_flag=True,
    help="Show all containers (default shows just running).",
)
"""``-a/--all`` of ``ps`` and ``stats``."""


@click.command("ps", cls=GoCommand)
@all_containers_option
@filter_option("Filter output based on conditions provided (status=, name=, label=, ...).")
@format_option(error_prefix="failed to parse template", error_status=1)
@click.option(
    "-n",
    "--last",
    type=GoInt(),
    default=-1,
    help="Show n last created containers (includes all states).",
)
@click.option(
    "-l", "--latest", is_flag=True, help="Show the latest created container (includes all states)."
)
@click.option("--no-trunc", is_flag=True, help="Don't truncate output.")
@click.option("-q", "--quiet", is_flag=True, help="Only display container IDs.")
@click.option("-s", "--size", is_flag=True, help="Display total file sizes.")
@pass_client
def ps(
    client: APIClient,
    *,
    show_all: bool,
    filters: Filters,
    template: Template | None,
    last: int,
    latest: bool,
    no_trunc: bool,
    quiet: bool,
    size: bool,
) -> None:
    """List containers."""
    limit = 1 if latest and last == -1 else last
    custom = template is not None and not template.is_default_table
    if custom and not quiet and template is not None and _uses_size(template):
        size = True
    params = {"all": "1"} if show_all else {}
    if limit > 0:
        params["limit"] = str(limit)
    if size:
        params["size"] = "1"
    params.update(filters_param(filters))
    containers: list[dict[str, Any]] = client.get("/containers/json", params=params)
    if quiet:
        chosen = _QUIET
    elif custom and template is not None:
        chosen = template
    else:
        chosen = _DEFAULT_WITH_SIZE if size else _DEFAULT
    render(chosen, chosen, container_rows(containers, trunc=not no_trunc), _TITLES)
