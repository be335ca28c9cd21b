"""The bridge driver's firewall: one nftables table of its own, rebuilt whole.

The table (family ``ip``, named by ``firewall_table``) is written from the set of networks
the driver instance knows, and replaced in one ``nft -f -`` transaction: the kernel swaps the
old table for the new one atomically, so no packet ever sees half a ruleset, and deleting the
table is the whole clean-up. Every rule names one of the driver's bridges (``iifname`` /
``oifname``; NAT also its subnet), so traffic that does not enter or leave them is never
touched.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from ipaddress import IPv4Interface

from pydockerd.plugin import Conflict, DriverNotSupported, InvalidParameter, SystemError

__all__ = ["TABLE_COMMENT", "BridgeRules", "Firewall", "find_nft", "ruleset"]

TABLE_COMMENT = "pydockerd network.bridge: rebuilt by the daemon, do not edit"
"""Marks the table as the driver's: a table of that name without it is never replaced."""

_NFT_TIMEOUT = 30.0
_EXTRA_PATH = "/usr/sbin:/sbin"


@dataclass(frozen=True)
class BridgeRules:
    """What the firewall needs to know of one network."""

    device: str
    gateway: IPv4Interface
    """The bridge's address with the subnet's prefix length (``10.210.0.1/16``)."""
    internal: bool = False
    masquerade: bool = True
    icc: bool = True
    """Inter-container communication on the bridge (``enable_icc``)."""


def ruleset(table: str, bridges: Iterable[BridgeRules]) -> str:
    """The nft script that replaces ``table`` with the rules of ``bridges``; with no bridges,
    one that only deletes it (and does nothing if it is not there).

    The ``forward`` chain, in order: traffic within one bridge is accepted (it reaches the
    chain when ``br_netfilter`` passes bridged frames to iptables/nftables); traffic between
    two of the driver's bridges is dropped (isolation); an internal network's traffic to or
    from anywhere else is dropped; other networks get replies and DNAT'ed traffic in,
    everything out, and nothing else in. ``input`` keeps an internal network's containers
    from every host address but their gateway's; ``postrouting`` masquerades what leaves a
    non-internal network through any other device.
    """
    bridges = sorted(bridges, key=lambda b: b.device)
    script = [f"table ip {table}", f"delete table ip {table}"]
    if not bridges:
        return "\n".join(script) + "\n"
    names = ", ".join(f'"{b.device}"' for b in bridges)
    forward = [
        f'iifname "{b.device}" oifname "{b.device}" {"accept" if b.icc else "drop"}'
        for b in bridges
    ]
    forward.append("iifname @bridges oifname @bridges drop")
    inputs: list[str] = []
    nat: list[str] = []
    for b in bridges:
        dev = f'"{b.device}"'
        if b.internal:
            forward += [f"iifname {dev} drop", f"oifname {dev} drop"]
            inputs.append(f"iifname {dev} ip daddr != {b.gateway.ip} drop")
            continue
        forward += [
            f"oifname {dev} ct state established,related accept",
            f"oifname {dev} ct status dnat accept",
            f"iifname {dev} accept",
            f"oifname {dev} drop",
        ]
        if b.masquerade:
            nat.append(f"oifname != {dev} ip saddr {b.gateway.network} masquerade")
    script += [
        f"table ip {table} {{",
        f'\tcomment "{TABLE_COMMENT}"',
        "\tset bridges {",
        "\t\ttype ifname",
        f"\t\telements = {{ {names} }}",
        "\t}",
        *_chain("forward", "filter hook forward priority filter", forward),
        *_chain("input", "filter hook input priority filter", inputs),
        *_chain("postrouting", "nat hook postrouting priority srcnat", nat),
        "}",
    ]
    return "\n".join(script) + "\n"


def _chain(name: str, hook: str, rules: list[str]) -> list[str]:
    if not rules:
        return []
    return [
        f"\tchain {name} {{",
        f"\t\ttype {hook}; policy accept;",
        *(f"\t\t{rule}" for rule in rules),
        "\t}",
    ]


def find_nft() -> str | None:
    """The ``nft`` program: on ``PATH``, or in ``/usr/sbin`` (a daemon's ``PATH`` may lack it)."""
    path = os.environ.get("PATH", "")
    return shutil.which("nft", path=f"{path}:{_EXTRA_PATH}" if path else _EXTRA_PATH)


class Firewall:
    """The driver instance's table: :meth:`apply` rebuilds it, :meth:`check` is the probe's."""

    def __init__(self, table: str, nft: str) -> None:
        self.table = table
        self.nft = nft
        self._owned = False
        """Whether this instance checked (or made) the table: it is then known to be ours."""

    async def apply(self, bridges: Iterable[BridgeRules]) -> None:
        """Replace the table with the rules of ``bridges`` (none: delete it).

        :raises Conflict: a table of that name exists and is not the driver's.
        :raises SystemError: nft failed.
        """
        if not self._owned:
            await self._check_owner()
        await self.run("-f", "-", script=ruleset(self.table, bridges))
        self._owned = True

    async def listing(self) -> str | None:
        """``nft list table``'s text, or ``None`` when there is no such table."""
        code, out, err = await self._exec("list", "table", "ip", self.table)
        if code == 0:
            return out
        if "No such file or directory" in err:
            return None
        raise SystemError(f"nft list table ip {self.table}: {err.strip()}")

    async def check(self) -> None:
        """For the probe: nft talks to the kernel, the table name is one nft accepts, and the
        kernel takes every kind of rule the driver writes (checked with ``nft -c``, which
        changes nothing).

        :raises DriverNotSupported: nft or the kernel's nf_tables cannot do it.
        :raises InvalidParameter: nft refuses the table's name.
        """
        code, _, err = await self._exec("list", "tables")
        if code != 0:
            raise DriverNotSupported(
                f"nft cannot use the kernel's nf_tables ({err.strip()}); load it "
                "(modprobe nf_tables) or set firewall = false"
            )
        code, _, err = await self._exec("-c", "-f", "-", script=f"table ip {self.table} {{ }}\n")
        if code != 0:
            raise InvalidParameter(
                f"firewall_table {self.table!r} is not a name nft accepts: {err.strip()}"
            )
        sample = BridgeRules("pdprobe0", IPv4Interface("10.255.255.1/30"))
        internal = BridgeRules("pdprobe1", IPv4Interface("10.255.255.5/30"), internal=True)
        code, _, err = await self._exec(
            "-c", "-f", "-", script=ruleset(self.table, [sample, internal])
        )
        if code != 0:
            raise DriverNotSupported(
                "the kernel's nf_tables lacks what the bridge driver needs (filter, nat and "
                f"masquerade, conntrack): {err.strip()}"
            )

    async def run(self, *args: str, script: str | None = None) -> str:
        """Run nft with ``args`` (and ``script`` on its standard input); its output.

        :raises SystemError: it failed.
        """
        code, out, err = await self._exec(*args, script=script)
        if code != 0:
            raise SystemError(f"nft {' '.join(args)} failed: {err.strip()}")
        return out

    async def _check_owner(self) -> None:
        text = await self.listing()
        if text is not None and f'comment "{TABLE_COMMENT}"' not in text:
            raise Conflict(
                f"nftables table ip {self.table} exists and is not the bridge driver's; "
                "choose another firewall_table"
            )

    async def _exec(self, *args: str, script: str | None = None) -> tuple[int, str, str]:
        try:
            process = await asyncio.create_subprocess_exec(
                self.nft,
                *args,
                stdin=asyncio.subprocess.PIPE if script is not None else asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
        except OSError as e:
            raise SystemError(f"cannot run {self.nft}: {e}") from e
        try:
            out, err = await asyncio.wait_for(
                process.communicate(script.encode() if script is not None else None),
                _NFT_TIMEOUT,
            )
        except TimeoutError:
            process.kill()
            await process.wait()
            raise SystemError(f"nft {' '.join(args)} took more than {_NFT_TIMEOUT:.0f}s") from None
        assert process.returncode is not None
        return process.returncode, out.decode(errors="replace"), err.decode(errors="replace")
