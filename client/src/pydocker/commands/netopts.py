"""The networking flags of ``create`` and ``run``, as docker 28 reads them: ``--network``
(a name, or ``name=...,alias=...,ip=...`` for each network), ``--network-alias``, ``--ip``,
``--ip6``, ``--mac-address``, ``--link``, ``--link-local-ip``, ``-p/--publish`` (short and
``target=...,published=...`` syntax) and ``--expose``; and docker's ``EndpointSettings``,
which ``network connect`` sends too."""

from __future__ import annotations

import csv
import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from pydocker.options import go_parse_int

__all__ = [
    "Attachment",
    "ConfigError",
    "IPAddress",
    "canonical_ip",
    "endpoint_settings",
    "endpoints_config",
    "go_parse_ip",
    "parse_attachment",
    "ports",
    "validate_link",
    "validate_mac",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_BUILTIN_NETWORKS = {"default", "bridge", "host", "none"}
_LONG_SYNTAX = re.compile(r"\w+=\w+(,\w+=\w+)*", re.ASCII)
_HEX_PAIRS = r"[0-9A-Fa-f]{2}"
_MAC = re.compile(
    rf"(?:{_HEX_PAIRS}(?::{_HEX_PAIRS}){{5}}|{_HEX_PAIRS}(?::{_HEX_PAIRS}){{7}}"
    rf"|{_HEX_PAIRS}(?::{_HEX_PAIRS}){{19}}"
    rf"|{_HEX_PAIRS}(?:-{_HEX_PAIRS}){{5}}|{_HEX_PAIRS}(?:-{_HEX_PAIRS}){{7}}"
    rf"|{_HEX_PAIRS}(?:-{_HEX_PAIRS}){{19}}"
    r"|[0-9A-Fa-f]{4}(?:\.[0-9A-Fa-f]{4}){2}|[0-9A-Fa-f]{4}(?:\.[0-9A-Fa-f]{4}){3}"
    r"|[0-9A-Fa-f]{4}(?:\.[0-9A-Fa-f]{4}){9})"
)


class ConfigError(Exception):
    """A set of flags docker's ``parse`` refuses; ``str()`` is its message."""


# -- addresses and links --------------------------------------------------------------------


def go_parse_ip(text: str) -> IPAddress | None:
    """``net.ParseIP``: an address (no zone), an IPv4-mapped one as IPv4; ``None`` if not."""
    if "%" in text:
        return None
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def canonical_ip(text: str) -> str:
    """``net.ParseIP(...).String()``: the address in canonical form.

    :raises ValueError: not an address (an IPv6 zone, ``%eth0``, is not one either).
    """
    address = go_parse_ip(text.strip())
    if address is None:
        raise ValueError(f"not an IP address: {text}")
    return str(address)


def validate_link(text: str) -> str:
    """``opts.ValidateLink``: ``name`` or ``name:alias``."""
    if not text:
        raise ValueError("empty string specified for links")
    if text.count(":") > 1:
        raise ValueError(f"bad format for links: {text}")
    return text


def validate_mac(text: str) -> bool:
    """Whether ``net.ParseMAC`` reads ``text`` (blanks around it allowed)."""
    return _MAC.fullmatch(text.strip()) is not None


# -- networks -------------------------------------------------------------------------------


def endpoint_settings(
    *,
    ipam: dict[str, Any] | None = None,
    links: list[str] | None = None,
    aliases: list[str] | None = None,
    driver_opts: dict[str, str] | None = None,
    gw_priority: int = 0,
    mac_address: str = "",
) -> dict[str, Any]:
    """An ``EndpointSettings`` as docker's CLI marshals it, every empty field included
    (``create`` sends ``null`` where ``network connect`` sends ``{}`` or ``[]``)."""
    return {
        "IPAMConfig": ipam,
        "Links": links,
        "Aliases": aliases,
        "MacAddress": mac_address,
        "DriverOpts": driver_opts,
        "GwPriority": gw_priority,
        "NetworkID": "",
        "EndpointID": "",
        "Gateway": "",
        "IPAddress": "",
        "IPPrefixLen": 0,
        "IPv6Gateway": "",
        "GlobalIPv6Address": "",
        "GlobalIPv6PrefixLen": 0,
        "DNSNames": None,
    }


@dataclass
class Attachment:
    """One ``--network`` as docker's ``NetworkAttachmentOpts`` holds it."""

    target: str
    aliases: list[str] = field(default_factory=list)
    links: list[str] = field(default_factory=list)
    ipv4: str = ""
    ipv6: str = ""
    mac: str = ""
    link_local_ips: list[str] = field(default_factory=list)
    driver_opts: dict[str, str] = field(default_factory=dict)
    gw_priority: int = 0

    @property
    def user_defined(self) -> bool:
        """``NetworkMode.IsUserDefined``: not default, bridge, host, none or container:."""
        return self.target not in _BUILTIN_NETWORKS and not self.target.startswith("container:")


def _set_field(attachment: Attachment, item: str) -> None:
    key, separator, value = item.lower().partition("=")
    if not separator or not key:
        raise ValueError(f"invalid field {item}")
    key, value = key.strip(), value.strip()
    if key == "name":
        attachment.target = value
    elif key == "alias":
        attachment.aliases.append(value)
    elif key == "ip":
        attachment.ipv4 = value
    elif key == "ip6":
        attachment.ipv6 = value
    elif key == "mac-address":
        attachment.mac = value
    elif key == "link-local-ip":
        attachment.link_local_ips.append(value)
    elif key == "driver-opt":
        option, equals, setting = value.partition("=")
        if not equals or not option:
            raise ValueError("invalid key value pair format in driver options")
        attachment.driver_opts[option.strip()] = setting.strip()
    elif key == "gw-priority":
        try:
            attachment.gw_priority = go_parse_int(value)
        except ValueError as e:
            reason = str(e).rsplit(": ", 1)[-1]
            raise ValueError(f"invalid gw-priority ({value}): {reason}") from None
    else:
        raise ValueError(f"invalid field key {key}")


def parse_attachment(text: str) -> Attachment:
    """docker's ``NetworkOpt.Set``: a name, or (when ``text`` holds ``word=word``) CSV
    fields ``name=``, ``alias=``, ``ip=``, ``ip6=``, ``mac-address=``, ``link-local-ip=``,
    ``driver-opt=`` and ``gw-priority=``, read in lower case as docker reads them.

    :raises ValueError: docker's message, for a flag error.
    """
    if not _LONG_SYNTAX.search(text):
        return Attachment(text)
    try:
        fields = next(csv.reader([text], strict=True), [])
    except csv.Error as e:
        raise ValueError(str(e)) from None
    attachment = Attachment("")
    for item in fields:
        _set_field(attachment, item)
    if not attachment.target:
        raise ValueError("network name/id is not specified")
    return attachment


@dataclass(frozen=True)
class _Flags:
    """The flags that apply to the first network (docker's ``applyContainerOptions``)."""

    aliases: Sequence[str]
    links: Sequence[str]
    ipv4: str
    ipv6: str
    mac: str
    link_local_ips: Sequence[str]


def _apply(attachment: Attachment, flags: _Flags) -> None:
    conflicts = [
        (attachment.aliases, flags.aliases, "--network-alias", "per-network alias"),
        (attachment.ipv4, flags.ipv4, "--ip", "per-network IPv4 address"),
        (attachment.ipv6, flags.ipv6, "--ip6", "per-network IPv6 address"),
        (attachment.mac, flags.mac, "--mac-address", "per-network MAC address"),
        (
            attachment.link_local_ips,
            flags.link_local_ips,
            "--link-local-ip",
            "per-network link-local IP addresses",
        ),
    ]
    for own, given, flag, what in conflicts:
        if own and given:
            raise ConfigError(f"conflicting options: cannot specify both {flag} and {what}")
    if flags.aliases:
        attachment.aliases = list(flags.aliases)
    if attachment.user_defined and flags.links:  # a legacy link on the default bridge
        attachment.links = list(flags.links)
    attachment.ipv4 = flags.ipv4 or attachment.ipv4
    attachment.ipv6 = flags.ipv6 or attachment.ipv6
    attachment.mac = flags.mac or attachment.mac
    attachment.link_local_ips = list(flags.link_local_ips) or attachment.link_local_ips


def _endpoint(attachment: Attachment) -> dict[str, Any] | None:
    """docker's ``parseNetworkAttachmentOpt``: the endpoint, ``None`` when it is empty."""
    if not attachment.target.strip():
        raise ConfigError("no name set for network")
    if not attachment.user_defined and attachment.aliases:
        raise ConfigError("network-scoped aliases are only supported for user-defined networks")
    if attachment.mac and not validate_mac(attachment.mac):
        raise ConfigError(f"{attachment.mac} is not a valid mac address")
    ipam = {
        key: value
        for key, value in (
            ("IPv4Address", attachment.ipv4),
            ("IPv6Address", attachment.ipv6),
            ("LinkLocalIPs", attachment.link_local_ips),
        )
        if value
    }
    empty = not (ipam or attachment.links or attachment.aliases or attachment.driver_opts)
    if empty and not attachment.mac and not attachment.gw_priority:
        return None
    return endpoint_settings(
        ipam=ipam or None,
        links=attachment.links or None,
        aliases=attachment.aliases or None,
        driver_opts=attachment.driver_opts or None,
        gw_priority=attachment.gw_priority,
        mac_address=attachment.mac,
    )


def endpoints_config(
    attachments: Sequence[Attachment],
    *,
    aliases: Sequence[str] = (),
    links: Sequence[str] = (),
    ipv4: str = "",
    ipv6: str = "",
    mac: str = "",
    link_local_ips: Sequence[str] = (),
) -> dict[str, Any]:
    """docker's ``parseNetworkOpts``: ``EndpointsConfig`` for the ``--network`` values,
    the other flags applying to the first (``default`` when there is none). The first
    network's endpoint is left out when it is the only one and has no settings; the
    networks are sorted by name, as Go marshals them.

    :raises ConfigError: a combination docker refuses, in its words.
    """
    flags = _Flags(aliases, links, ipv4, ipv6, mac, link_local_ips)
    if not attachments:
        attachment = Attachment("default")
        _apply(attachment, flags)
        return {"default": _endpoint(attachment) or endpoint_settings()}
    endpoints: dict[str, Any] = {}
    for index, given in enumerate(attachments):
        attachment = replace(given)
        if index == 0:
            _apply(attachment, flags)
        endpoint = _endpoint(attachment)
        if attachment.target in endpoints:
            raise ConfigError(f'network "{attachment.target}" is specified multiple times')
        if index == 0 and len(attachments) == 1 and endpoint is None:
            continue
        endpoints[attachment.target] = endpoint or endpoint_settings()
    if len({a.user_defined for a in attachments}) > 1:
        raise ConfigError(
            "conflicting options: cannot attach both user-defined and non-user-defined "
            "network-modes"
        )
    return dict(sorted(endpoints.items()))  # as Go marshals a map


# -- ports ----------------------------------------------------------------------------------


def _port_range(text: str) -> tuple[int, int]:
    """``nat.ParsePortRange``: ``80`` or ``8000-8010``."""
    if not text:
        raise ValueError("empty string specified for ports")
    start_text, dash, end_text = text.partition("-")
    start = go_parse_int(start_text, 16, signed=False)
    end = go_parse_int(end_text, 16, signed=False) if dash else start
    if end < start:
        raise ValueError(f"invalid range specified for port: {text}")
    return start, end


def _split_proto(text: str) -> tuple[str, str]:
    """``nat.SplitProtoPort``: ``80/udp`` → ``("udp", "80")``; tcp by default."""
    parts = text.split("/")
    if not text or not parts[0]:
        return "", ""
    if len(parts) == 1 or not parts[1]:
        return "tcp", parts[0]
    return parts[1], parts[0]


def _publish(spec: str) -> list[tuple[str, dict[str, str]]]:
    """``nat.ParsePortSpec``: ``[ip:][host[-end]:]container[-end][/proto]``, one
    ``(port/proto, binding)`` per container port."""
    parts = spec.split(":")
    container = parts[-1]
    ip, host = "", ""
    if len(parts) == 2:
        host = parts[0]
    elif len(parts) >= 3:
        ip, host = ":".join(parts[:-2]), parts[-2]
    proto, container = _split_proto(container)
    if ip.startswith("["):
        ip = ip[1 : ip.index("]")] if "]" in ip else ip
    if ip:
        try:
            canonical_ip(ip)
        except ValueError:
            raise ConfigError(f"invalid IP address: {ip}") from None
    if not container:
        raise ConfigError(f"no port specified: {spec}<empty>")
    try:
        start, end = _port_range(container)
    except ValueError:
        raise ConfigError(f"invalid containerPort: {container}") from None
    host_start = host_end = 0
    if host:
        try:
            host_start, host_end = _port_range(host)
        except ValueError:
            raise ConfigError(f"invalid hostPort: {host}") from None
        if end - start != host_end - host_start and end != start:
            raise ConfigError(
                f"invalid ranges specified for container and host Ports: {container} and {host}"
            )
    proto = proto.lower()
    if proto not in ("tcp", "udp", "sctp"):
        raise ConfigError(f"invalid proto: {proto}")
    count = end - start + 1
    mappings = []
    for offset in range(count):
        host_port = ""
        if host:
            host_port = str(host_start + offset)
            if count == 1 and host_start != host_end:
                host_port += f"-{host_end}"
        mappings.append((f"{start + offset}/{proto}", {"HostIp": ip, "HostPort": host_port}))
    return mappings


def _standard_notation(spec: str) -> str:
    """docker's ``convertToStandardNotation``: ``target=80,published=8080,protocol=udp``
    is ``8080:80/udp`` (other keys, ``mode``, ``host_ip``, are ignored as docker does)."""
    if "=" not in spec:
        return spec
    params = {"protocol": "tcp"}
    for param in spec.split(","):
        key, separator, value = param.partition("=")
        if not separator or not key:
            raise ConfigError(
                f"invalid publish opts format (should be name=value but got '{param}')"
            )
        params[key] = value
    return f"{params.get('published', '')}:{params.get('target', '')}/{params['protocol']}"


def ports(
    publish: Sequence[str], expose: Sequence[str]
) -> tuple[dict[str, Any], dict[str, list[dict[str, str]]]]:
    """``ExposedPorts`` and ``PortBindings`` from ``-p`` (short and long syntax) and
    ``--expose``, keys sorted.

    :raises ConfigError: a spec docker refuses, in its words.
    """
    exposed: dict[str, Any] = {}
    bindings: dict[str, list[dict[str, str]]] = {}
    for spec in [_standard_notation(spec) for spec in publish]:
        for port, binding in _publish(spec):
            exposed[port] = {}
            bindings.setdefault(port, []).append(binding)
    for item in expose:
        if ":" in item:
            raise ConfigError(f"invalid port format for --expose: {item}")
        proto, port = _split_proto(item)
        try:
            start, end = _port_range(port)
        except ValueError as e:
            raise ConfigError(f"invalid range format for --expose: {item}, error: {e}") from None
        for number in range(start, end + 1):
            exposed.setdefault(f"{number}/{proto}", {})
    return dict(sorted(exposed.items())), dict(sorted(bindings.items()))
