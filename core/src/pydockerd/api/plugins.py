"""``GET /plugins``: every plugin and driver with its status.

Each item is Docker's ``Plugin`` object (so ``docker plugin ls`` lists them: NAME, DESCRIPTION,
ENABLED) plus pydockerd's fields at the top level, which Docker's clients ignore: ``Kind``,
``Driver``, ``Plugin``, ``Package``, ``Version``, ``Status`` (ok/skip/error/disabled),
``Reason``.
"""

from __future__ import annotations

import hashlib
from typing import Any

from aiohttp import web

from pydockerd.api.keys import DAEMON
from pydockerd.api.params import parse_filters
from pydockerd.api.responses import json_response
from pydockerd.errors import NotFound
from pydockerd.manager import ComponentStatus

__all__ = ["ROUTES", "plugin_object"]

_FILTERS = ("kind", "status", "enabled", "capability")


def plugin_object(row: ComponentStatus) -> dict[str, Any]:
    """One ``plugin ls`` row in Docker's Plugin shape, with pydockerd's fields."""
    name = row.qualified_name if row.kind != "plugin" else row.name
    description = row.description or (f"{row.kind} driver" if row.kind != "plugin" else "plugin")
    if row.reason:
        description += f" ({row.status}: {row.reason})"
    # Docker encodes interface types as "<prefix>.<capability>/<version>" strings.
    interface_types = (
        [f"pydockerd.{row.kind}/{row.interface.rsplit('.', 1)[-1]}"] if row.interface else []
    )
    return {
        "Id": hashlib.sha256(f"{row.plugin.name}:{name}".encode()).hexdigest(),
        "Name": name,
        "Enabled": row.status == "ok",
        "PluginReference": row.plugin.package,
        "Settings": {"Mounts": [], "Env": [], "Args": [], "Devices": []},
        "Config": {
            "Description": description,
            "Documentation": "",
            "Interface": {"Types": interface_types, "Socket": ""},
            "Entrypoint": [],
            "WorkDir": "",
            "Network": {"Type": ""},
            "Linux": {"Capabilities": [], "AllowAllDevices": False, "Devices": []},
            "PropagatedMount": "",
            "Mounts": [],
            "Env": [],
            "Args": {"Name": "", "Description": "", "Settable": [], "Value": []},
        },
        "Kind": row.kind,
        "Driver": row.name if row.kind != "plugin" else "",
        "Plugin": row.plugin.name,
        "Package": row.plugin.package,
        "Version": row.plugin.version,
        "Status": row.status,
        "Reason": row.reason,
        "Capabilities": sorted(row.capabilities),
    }


def _matches(item: dict[str, Any], filters: dict[str, set[str]]) -> bool:
    checks = {
        "kind": {item["Kind"]},
        "status": {item["Status"]},
        "enabled": {str(item["Enabled"]).lower()},
        "capability": {item["Kind"], *item["Capabilities"]},
    }
    return all(values & checks[key] for key, values in filters.items())


async def list_plugins(request: web.Request) -> web.StreamResponse:
    filters = parse_filters(request.query.get("filters"), _FILTERS)
    items = [plugin_object(row) for row in request.app[DAEMON].manager.components]
    return json_response([item for item in items if _matches(item, filters)])


async def inspect_plugin(request: web.Request) -> web.StreamResponse:
    wanted = request.match_info["name"]
    for row in request.app[DAEMON].manager.components:
        item = plugin_object(row)
        by_id_prefix = len(wanted) >= 3 and item["Id"].startswith(wanted)
        if wanted in (item["Name"], item["Id"]) or by_id_prefix:
            return json_response(item)
    raise NotFound(f'plugin "{wanted}" not found')


ROUTES = [
    ("GET", "/plugins", list_plugins),
    ("GET", "/plugins/{name:.+}/json", inspect_plugin),
]
