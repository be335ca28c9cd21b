"""Networks and endpoints on disk: one SQLite database (WAL), every change one transaction.

A network is recorded once its driver made it; an endpoint (a running container's address on
a network) is recorded before the driver connects the container, and goes when the container
stops, so that after a crash the daemon knows every address in use.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydockerd.dbutil import transaction

__all__ = ["EndpointRecord", "NetworkRecord", "NetworkStore"]


@dataclass
class NetworkRecord:
    id: str
    name: str
    driver: str
    created: str
    subnet: str = ""
    gateway: str = ""
    ip_range: str = ""
    internal: bool = False
    attachable: bool = False
    device: str = ""
    options: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    ipam_options: dict[str, str] = field(default_factory=dict)
    user_subnet: bool = False
    """Whether the subnet was given (``--subnet``), which ``--ip`` needs, as in Docker."""


@dataclass
class EndpointRecord:
    id: str
    network_id: str
    container_id: str
    address: str
    """With the prefix length: ``10.210.0.2/16``."""
    mac: str
    interface: str
    aliases: list[str] = field(default_factory=list)


_NETWORK_FIELDS = (
    "id",
    "name",
    "driver",
    "created",
    "subnet",
    "gateway",
    "ip_range",
    "internal",
    "attachable",
    "device",
    "options",
    "labels",
    "ipam_options",
    "user_subnet",
)
_ENDPOINT_FIELDS = ("id", "network_id", "container_id", "address", "mac", "interface", "aliases")
_JSON_FIELDS = frozenset({"options", "labels", "ipam_options", "aliases"})
_BOOL_FIELDS = frozenset({"internal", "attachable", "user_subnet"})


def _row(record: Any, fields: tuple[str, ...]) -> tuple[Any, ...]:
    return tuple(
        json.dumps(getattr(record, name)) if name in _JSON_FIELDS else getattr(record, name)
        for name in fields
    )


def _decode(fields: tuple[str, ...], row: tuple[Any, ...]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name, raw in zip(fields, row, strict=True):
        if name in _JSON_FIELDS:
            values[name] = json.loads(raw)
        else:
            values[name] = bool(raw) if name in _BOOL_FIELDS else raw
    return values


class NetworkStore:
    """``<data-root>/networks/networks.db``."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._db = sqlite3.connect(path, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.executescript(
            """
            CREATE TABLE IF NOT EXISTS networks (
                id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, driver TEXT NOT NULL,
                created TEXT NOT NULL, subnet TEXT NOT NULL, gateway TEXT NOT NULL,
                ip_range TEXT NOT NULL, internal INTEGER NOT NULL, attachable INTEGER NOT NULL,
                device TEXT NOT NULL, options TEXT NOT NULL, labels TEXT NOT NULL,
                ipam_options TEXT NOT NULL, user_subnet INTEGER NOT NULL);
            CREATE TABLE IF NOT EXISTS endpoints (
                id TEXT PRIMARY KEY,
                network_id TEXT NOT NULL REFERENCES networks(id),
                container_id TEXT NOT NULL, address TEXT NOT NULL, mac TEXT NOT NULL,
                interface TEXT NOT NULL, aliases TEXT NOT NULL,
                UNIQUE (network_id, address), UNIQUE (network_id, container_id));
            """
        )

    def close(self) -> None:
        self._db.close()

    def networks(self) -> list[NetworkRecord]:
        rows = self._db.execute(
            f"SELECT {', '.join(_NETWORK_FIELDS)} FROM networks ORDER BY created, name"  # noqa: S608
        ).fetchall()
        return [NetworkRecord(**_decode(_NETWORK_FIELDS, row)) for row in rows]

    def network(self, network_id: str) -> NetworkRecord | None:
        row = self._db.execute(
            f"SELECT {', '.join(_NETWORK_FIELDS)} FROM networks WHERE id = ?",  # noqa: S608
            (network_id,),
        ).fetchone()
        return NetworkRecord(**_decode(_NETWORK_FIELDS, row)) if row else None

    def add_network(self, network: NetworkRecord) -> None:
        marks = ", ".join("?" * len(_NETWORK_FIELDS))
        self._db.execute(f"INSERT INTO networks VALUES ({marks})", _row(network, _NETWORK_FIELDS))  # noqa: S608

    def delete_network(self, network_id: str) -> None:
        with transaction(self._db):
            self._db.execute("DELETE FROM endpoints WHERE network_id = ?", (network_id,))
            self._db.execute("DELETE FROM networks WHERE id = ?", (network_id,))

    def endpoints(
        self, *, network_id: str | None = None, container_id: str | None = None
    ) -> list[EndpointRecord]:
        query = f"SELECT {', '.join(_ENDPOINT_FIELDS)} FROM endpoints"  # noqa: S608
        clauses, args = [], []
        if network_id is not None:
            clauses.append("network_id = ?")
            args.append(network_id)
        if container_id is not None:
            clauses.append("container_id = ?")
            args.append(container_id)
        if clauses:
            query += " WHERE " + " AND ".join(clauses)
        rows = self._db.execute(query + " ORDER BY interface", args).fetchall()
        return [EndpointRecord(**_decode(_ENDPOINT_FIELDS, row)) for row in rows]

    def add_endpoint(self, endpoint: EndpointRecord) -> None:
        """:raises sqlite3.IntegrityError: the address, or the container, is taken on the
        network (two allocations raced)."""
        marks = ", ".join("?" * len(_ENDPOINT_FIELDS))
        self._db.execute(
            f"INSERT INTO endpoints VALUES ({marks})",  # noqa: S608
            _row(endpoint, _ENDPOINT_FIELDS),
        )

    def delete_endpoint(self, endpoint_id: str) -> None:
        self._db.execute("DELETE FROM endpoints WHERE id = ?", (endpoint_id,))
