"""The ``network`` commands, as docker 28 runs them: ``create``, ``ls``, ``inspect``,
``rm``, ``prune``, ``connect`` and ``disconnect``.

``create`` pairs ``--subnet``, ``--ip-range``, ``--gateway`` and ``--aux-address`` into
``IPAM.Config`` entries as docker's ``createIPAMConfig`` does, refusing (status 1, in
docker's words) what it refuses before anything is sent. ``rm`` tries every network named,
prints each one removed and ends with docker's ``exit status 1`` when one failed.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

import click

from pydocker.api import APIClient
from pydocker.commands.common import (
    Filters,
    QueryFlag,
    add_commands,
    confirm,
    inspect_command,
    kv_map,
    label_fields,
    natural_key,
    prune_filter_option,
    prune_report,
    render,
)
from pydocker.commands.netopts import IPAddress, endpoint_settings, go_parse_ip, validate_link
from pydocker.commands.runopts import validate_label
from pydocker.errors import DaemonError, InvalidArgument, PydockerError
from pydocker.formatting import Row, Template, go_time_string, short_id
from pydocker.options import (
    Checked,
    DockerCommand,
    GoInt,
    filter_option,
    filters_param,
    format_option,
    pass_client,
    repeated_option,
)

__all__ = ["COMMANDS", "ipam_config", "network_rows"]

F = TypeVar("F", bound=Callable[..., Any])
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_TITLES = {
    "ID": "NETWORK ID",
    "Name": "NAME",
    "Driver": "DRIVER",
    "Scope": "SCOPE",
    "IPv4": "IPV4",
    "IPv6": "IPV6",
    "Internal": "INTERNAL",
    "Labels": "LABELS",
    "CreatedAt": "CREATED AT",
}
_TABLE = Template.parse("table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}")
_QUIET = Template.parse("{{.ID}}")
_RAW = Template.parse(
    "network_id: {{.ID}}\nname: {{.Name}}\ndriver: {{.Driver}}\nscope: {{.Scope}}\n"
)
_RAW_QUIET = Template.parse("network_id: {{.ID}}")
_PRUNE_WARNING = (
    "WARNING! This will remove all custom networks not used by at least one container."
    "\nAre you sure you want to continue?"
)
_INGRESS_WARNING = (
    "WARNING! Before removing the routing-mesh network, make sure all the nodes in your "
    "swarm run the same docker engine version. Otherwise, removal may not be effective and "
    "functionality of newly create ingress networks will be impaired.\nAre you sure you "
    "want to continue?"
)


# -- values ---------------------------------------------------------------------------------


def _parse_cidr(text: str) -> tuple[IPAddress, IPNetwork]:
    """``net.ParseCIDR``: the address and its network.

    :raises ValueError: ``invalid CIDR address: <text>``.
    """
    address, slash, length = text.partition("/")
    found = go_parse_ip(address)
    bits = 32 if isinstance(found, ipaddress.IPv4Address) else 128
    if found is None or not slash or not length.isdigit() or int(length) > bits:
        raise ValueError(f"invalid CIDR address: {text}")
    return found, ipaddress.ip_network(f"{found}/{length}", strict=False)


def _subnet_matches(subnet: str, data: str) -> bool:
    """docker's ``subnetMatches``: whether ``data`` (an address, or a CIDR's address) is
    in ``subnet``.

    :raises InvalidArgument: ``subnet``, or ``data`` with a ``/``, is not a CIDR.
    """
    try:
        _, network = _parse_cidr(subnet)
    except ValueError as e:
        raise InvalidArgument(f"invalid subnet: {e}") from None
    if "/" in data:
        try:
            address: IPAddress | None = _parse_cidr(data)[0]
        except ValueError as e:
            raise InvalidArgument(str(e)) from None
    else:
        address = go_parse_ip(data)
    return address is not None and address.version == network.version and address in network


def _assign(
    configs: dict[str, dict[str, Any]],
    subnets: Sequence[str],
    values: Sequence[str],
    key: str,
    what: str,
) -> None:
    """Put each ip-range or gateway in ``values`` into the config of the subnet holding it;
    ``what`` names it in docker's errors (``range``, ``gateway``)."""
    plural = {"range": "ranges", "gateway": "gateways"}[what]
    preposition = {"range": "on", "gateway": "for"}[what]
    for value in values:
        if what == "range":  # docker checks it first (ipam_config ensures there is a subnet)
            try:
                _parse_cidr(value)
            except ValueError as e:
                raise InvalidArgument(str(e)) from None
        matched = False
        for subnet in subnets:
            if not _subnet_matches(subnet, value):
                continue
            if configs[subnet][key]:
                raise InvalidArgument(
                    f"cannot configure multiple {plural} ({value}, {configs[subnet][key]}) "
                    f"{preposition} the same subnet ({subnet})"
                )
            configs[subnet][key] = value
            matched = True
        if not matched:
            raise InvalidArgument(f"no matching subnet for {what} {value}")


def ipam_config(
    subnets: Sequence[str],
    ip_ranges: Sequence[str],
    gateways: Sequence[str],
    aux_addresses: dict[str, str],
) -> list[dict[str, Any]]:
    """docker's ``createIPAMConfig``: one entry per subnet with the ip-range, gateway and
    auxiliary addresses inside it, in the order the subnets were given.

    :raises InvalidArgument: what docker refuses, in its words.
    """
    if len(subnets) < len(ip_ranges) or len(subnets) < len(gateways):
        raise InvalidArgument("every ip-range or gateway must have a corresponding subnet")
    configs: dict[str, dict[str, Any]] = {}
    for subnet in subnets:
        for known in configs:
            inside = _subnet_matches(subnet, known)
            around = _subnet_matches(known, subnet)
            if inside or around:
                raise InvalidArgument("multiple overlapping subnet configuration is not supported")
        configs[subnet] = {"Subnet": subnet, "IPRange": "", "Gateway": "", "AuxiliaryAddresses": {}}
    _assign(configs, subnets, ip_ranges, "IPRange", "range")
    _assign(configs, subnets, gateways, "Gateway", "gateway")
    for name, address in aux_addresses.items():
        matched = False
        for subnet in subnets:
            if _subnet_matches(subnet, address):
                configs[subnet]["AuxiliaryAddresses"][name] = address
                matched = True
        if not matched:
            raise InvalidArgument(f"no matching subnet for aux-address {address}")
    return [{k: v for k, v in c.items() if v or k == "Subnet"} for c in configs.values()]


def network_rows(networks: Iterable[dict[str, Any]], *, trunc: bool = True) -> list[Row]:
    """What a template sees for each network, as docker's network context shows it."""
    rows = []
    for network in networks:
        network_id = str(network.get("Id") or "")
        rows.append(
            Row(
                CreatedAt=go_time_string(str(network.get("Created") or "")),
                Driver=str(network.get("Driver") or ""),
                ID=short_id(network_id) if trunc else network_id,
                IPv4=_go_bool(network.get("EnableIPv4")),
                IPv6=_go_bool(network.get("EnableIPv6")),
                Internal=_go_bool(network.get("Internal")),
                Name=str(network.get("Name") or ""),
                Scope=str(network.get("Scope") or ""),
                **label_fields(network.get("Labels")),
            )
        )
    return rows


def _go_bool(value: Any) -> str:
    return "true" if value is True else "false"


# -- the commands ---------------------------------------------------------------------------


@click.group("network")
def network() -> None:
    """Manage networks."""


@click.command("create", cls=DockerCommand)
@click.argument("name", metavar="NETWORK")
@click.option("--attachable", is_flag=True, help="Enable manual container attachment.")
@click.option(
    "--aux-address",
    multiple=True,
    metavar="KEY=IP",
    help="Auxiliary IPv4 or IPv6 addresses used by Network driver.",
)
@click.option(
    "--config-from",
    default="",
    metavar="NETWORK",
    help="The network from which to copy the configuration.",
)
@click.option("--config-only", is_flag=True, help="Create a configuration only network.")
@click.option(
    "-d", "--driver", default="bridge", show_default=True, help="Driver to manage the Network."
)
@repeated_option(
    "--gateway", slice_=True, metavar="IP", help="IPv4 or IPv6 Gateway for the master subnet."
)
@click.option("--ingress", is_flag=True, help="Create swarm routing-mesh network.")
@click.option("--internal", is_flag=True, help="Restrict external access to the network.")
@repeated_option(
    "--ip-range", slice_=True, metavar="CIDR", help="Allocate container ip from a sub-range."
)
@click.option(
    "--ipam-driver", default="default", show_default=True, help="IP Address Management Driver."
)
@repeated_option("--ipam-opt", metavar="KEY=VALUE", help="Set IPAM driver specific options.")
@click.option(
    "--ipv4/--no-ipv4",
    default=None,
    help="Enable or disable IPv4 address assignment (default true).",
)
@click.option("--ipv6/--no-ipv6", default=None, help="Enable or disable IPv6 address assignment.")
@repeated_option(
    "--label",
    metavar="KEY=VALUE",
    type=Checked("label", validate_label),
    help="Set metadata on a network.",
)
@repeated_option("-o", "--opt", metavar="KEY=VALUE", help="Set driver specific options.")
@click.option("--scope", default="", help="Control the network's scope.")
@repeated_option(
    "--subnet",
    slice_=True,
    metavar="CIDR",
    help="Subnet in CIDR format that represents a network segment.",
)
@pass_client
def create(
    client: APIClient,
    *,
    name: str,
    attachable: bool,
    aux_address: tuple[str, ...],
    config_from: str,
    config_only: bool,
    driver: str,
    gateway: list[str],
    ingress: bool,
    internal: bool,
    ip_range: list[str],
    ipam_driver: str,
    ipam_opt: tuple[str, ...],
    ipv4: bool | None,
    ipv6: bool | None,
    label: tuple[str, ...],
    opt: tuple[str, ...],
    scope: str,
    subnet: list[str],
) -> None:
    """Create a network; prints its ID."""
    configs = ipam_config(subnet, ip_range, gateway, kv_map(aux_address))
    body: dict[str, Any] = {"Driver": driver, "Scope": scope}
    if ipv4 is not None:
        body["EnableIPv4"] = ipv4
    if ipv6 is not None:
        body["EnableIPv6"] = ipv6
    body |= {
        "IPAM": {"Driver": ipam_driver, "Options": kv_map(ipam_opt), "Config": configs},
        "Internal": internal,
        "Attachable": attachable,
        "Ingress": ingress,
        "ConfigOnly": config_only,
        "ConfigFrom": {"Network": config_from} if config_from else None,
        "Options": kv_map(opt),
        "Labels": kv_map(label),
        "Name": name,
    }
    created = client.post("/networks/create", json=body) or {}
    click.echo(str(created.get("Id") or ""))


@click.command("ls", cls=DockerCommand)
@filter_option('Provide filter values (e.g. "driver=bridge").')
@format_option(error_status=1)
@click.option("--no-trunc", is_flag=True, help="Do not truncate the output.")
@click.option("-q", "--quiet", is_flag=True, help="Only display network IDs.")
@pass_client
def ls(
    client: APIClient, filters: Filters, template: Template | None, no_trunc: bool, quiet: bool
) -> None:
    """List networks."""
    networks = client.get("/networks", params=filters_param(filters)) or []
    networks.sort(key=lambda n: natural_key(str(n.get("Name") or "")))
    if template is None or template.is_default_table:
        chosen = _QUIET if quiet else _TABLE
    elif template.is_raw:
        chosen = _RAW_QUIET if quiet else _RAW
    else:
        chosen = template
    render(chosen, chosen, network_rows(networks, trunc=not no_trunc), _TITLES)


inspect = inspect_command(
    "network",
    "/networks/{}",
    QueryFlag("-v", "--verbose", "Verbose output for diagnostics.", "verbose", "true"),
)


@click.command("rm", cls=DockerCommand)
@click.argument("names", nargs=-1, required=True, metavar="NETWORK [NETWORK...]")
@click.option("-f", "--force", is_flag=True, help="Do not error if the network does not exist.")
@pass_client
def rm(client: APIClient, names: tuple[str, ...], force: bool) -> None:
    """Remove one or more networks."""
    failed = False
    for name in names:
        try:
            ingress = bool((client.get(f"/networks/{name}") or {}).get("Ingress"))
        except PydockerError:
            ingress = False
        if ingress and not confirm(_INGRESS_WARNING):
            continue
        try:
            client.request("DELETE", f"/networks/{name}")
        except PydockerError as e:
            if not (force and isinstance(e, DaemonError) and e.status == 404):
                click.echo(str(e), err=True)
                failed = True
            continue
        click.echo(name)
    if failed:
        raise PydockerError("exit status 1")


@click.command("prune", cls=DockerCommand)
@click.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation.")
@prune_filter_option
@pass_client
def prune(client: APIClient, force: bool, filters: Filters) -> None:
    """Remove all unused networks."""
    report = prune_report(client, "/networks/prune", _PRUNE_WARNING, filters, force=force)
    if report is None:
        return
    deleted = [str(name) for name in report.get("NetworksDeleted") or []]
    if deleted:
        click.echo("Deleted Networks:\n" + "".join(f"{name}\n" for name in deleted))


def _driver_options(items: Sequence[str]) -> dict[str, str]:
    """docker's ``convertDriverOpt``: ``key=value`` pairs, both sides trimmed."""
    options: dict[str, str] = {}
    for item in items:
        key, separator, value = item.partition("=")
        if not separator or not key.strip():
            raise InvalidArgument("invalid key/value pair format in driver options")
        options[key.strip()] = value.strip()
    return options


@click.command("connect", cls=DockerCommand)
@click.argument("network_name", metavar="NETWORK")
@click.argument("container")
@repeated_option(
    "--alias", slice_=True, metavar="ALIAS", help="Add network-scoped alias for the container."
)
@repeated_option(
    "--driver-opt", slice_=True, metavar="KEY=VALUE", help="driver options for the network."
)
@click.option(
    "--gw-priority",
    type=GoInt(),
    default=0,
    help="Highest gw-priority provides the default gateway. Accepts positive and negative values.",
)
@click.option("--ip", default="", help='IPv4 address (e.g., "172.30.100.104").')
@click.option("--ip6", default="", help='IPv6 address (e.g., "2001:db8::33").')
@repeated_option(
    "--link",
    metavar="CONTAINER[:ALIAS]",
    type=Checked("link", validate_link),
    help="Add link to another container.",
)
@repeated_option(
    "--link-local-ip",
    slice_=True,
    metavar="IP",
    help="Add a link-local address for the container.",
)
@pass_client
def connect(
    client: APIClient,
    *,
    network_name: str,
    container: str,
    alias: list[str],
    driver_opt: list[str],
    gw_priority: int,
    ip: str,
    ip6: str,
    link: tuple[str, ...],
    link_local_ip: list[str],
) -> None:
    """Connect a container to a network."""
    ipam: dict[str, Any] = {}
    if ip:
        ipam["IPv4Address"] = ip
    if ip6:
        ipam["IPv6Address"] = ip6
    if link_local_ip:
        ipam["LinkLocalIPs"] = link_local_ip
    endpoint = endpoint_settings(
        ipam=ipam,
        links=list(link) or None,
        aliases=alias,
        driver_opts=_driver_options(driver_opt),
        gw_priority=gw_priority,
    )
    body = {"Container": container, "EndpointConfig": endpoint}
    client.post(f"/networks/{network_name}/connect", json=body)


@click.command("disconnect", cls=DockerCommand)
@click.argument("network_name", metavar="NETWORK")
@click.argument("container")
@click.option(
    "-f", "--force", is_flag=True, help="Force the container to disconnect from a network."
)
@pass_client
def disconnect(client: APIClient, network_name: str, container: str, force: bool) -> None:
    """Disconnect a container from a network."""
    body = {"Container": container, "Force": force}
    client.post(f"/networks/{network_name}/disconnect", json=body)


add_commands(
    network,
    [
        (connect, ("connect",)),
        (create, ("create",)),
        (disconnect, ("disconnect",)),
        (inspect, ("inspect",)),
        (ls, ("ls", "list")),
        (prune, ("prune",)),
        (rm, ("rm", "remove")),
    ],
)

COMMANDS = [network]
