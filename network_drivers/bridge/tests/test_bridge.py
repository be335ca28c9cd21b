"""The bridge driver: registration through its real entry point, its probe for real (netlink
as root; a skip for a user who may not create links, or without nft), and what it refuses
before touching the kernel (configuration, networks, endpoints)."""

from __future__ import annotations

import importlib.metadata
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from ipaddress import IPv4Interface
from pathlib import Path

import pytest
from pydantic import ValidationError
from pydockerd.plugin import EndpointConfig, InvalidParameter, NetworkConfig, NetworkDriver
from pydockerd.testing.drivers import (
    driver_context,
    make_driver,
    probe_as_user,
    register_from_entry_point,
)
from pydockerd_network_bridge import driver as driver_module
from pydockerd_network_bridge.driver import BridgeConfig, BridgeDriver
from pydockerd_network_bridge.firewall import BridgeRules, ruleset
from pydockerd_network_bridge.links import bridge_mac, host_end_name

NOBODY = 65534


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="pdb-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def files_in(directory: Path) -> list[Path]:
    return list(directory.iterdir())


def probe_as(uid: int, directory: Path) -> str:
    return probe_as_user(BridgeDriver, driver_context(directory), uid)


def test_the_entry_point_is_installed() -> None:
    (ep,) = [e for e in importlib.metadata.entry_points(group="pydockerd") if e.name == "bridge"]
    assert ep.value == "pydockerd_network_bridge.plugin"
    assert ep.dist is not None
    assert ep.dist.name == "pydockerd-network-bridge"


def test_loading_the_entry_point_registers_the_driver() -> None:
    registry = register_from_entry_point("bridge", NetworkDriver)
    assert registry.names() == ["bridge"]
    assert registry.get("bridge") is BridgeDriver
    assert BridgeDriver.qualified_name() == "network.bridge"
    assert BridgeDriver.interface == "pydockerd.network.v1"


@pytest.mark.privileged
async def test_probe_passes_as_root(short_tmp: Path) -> None:
    assert os.geteuid() == 0, "privileged tests run as root"
    context = driver_context(short_tmp)
    await BridgeDriver.probe(context)
    assert files_in(short_tmp) == [], "the probe touches no file"


@pytest.mark.privileged
def test_probe_skips_without_root(short_tmp: Path) -> None:
    assert probe_as(NOBODY, short_tmp) == (
        "skip: creating bridges and veth pairs needs root (CAP_NET_ADMIN)"
    )
    assert probe_as(0, short_tmp) == "ok", "the same probe in the same way, as root"


# -- configuration and names (no privilege needed)


@pytest.mark.parametrize("table", ["nat", "filter", "1abc", "a-b", "", "x" * 33, "a b"])
def test_config_refuses_table_names_it_must_not_own(table: str) -> None:
    with pytest.raises(ValidationError):
        BridgeConfig(firewall_table=table)


def test_config_defaults() -> None:
    config = BridgeConfig()
    assert (config.firewall_table, config.firewall, config.ip_forward, config.mtu) == (
        "pydockerd",
        True,
        True,
        None,
    )
    with pytest.raises(ValidationError):
        BridgeConfig(mtu=10)
    with pytest.raises(ValidationError):
        BridgeConfig.model_validate({"unknown": 1})


def test_host_end_names_come_from_the_endpoint_id() -> None:
    assert host_end_name("0123456789abcdef" * 4) == "veth0123456789a"
    hashed = host_end_name("not-hex")
    assert len(hashed) == 15
    assert hashed.startswith("veth")
    assert hashed == host_end_name("not-hex"), "stable"


def test_bridge_macs_are_stable_and_locally_administered() -> None:
    mac = bridge_mac("pydocker0")
    assert mac == bridge_mac("pydocker0")
    assert mac != bridge_mac("pydocker1")
    first = int(mac.split(":")[0], 16)
    assert first & 0x02, "locally administered"
    assert not first & 0x01, "unicast"


def test_no_network_means_no_table() -> None:
    assert ruleset("pdt", []) == "table ip pdt\ndelete table ip pdt\n"


def test_the_ruleset_replaces_the_table_in_one_script() -> None:
    script = ruleset("pdt", [BridgeRules("br1", IPv4Interface("10.1.0.1/16"))])
    assert script.startswith("table ip pdt\ndelete table ip pdt\ntable ip pdt {\n")
    assert 'oifname != "br1" ip saddr 10.1.0.0/16 masquerade' in script
    internal = ruleset("pdt", [BridgeRules("br1", IPv4Interface("10.1.0.1/16"), internal=True)])
    assert "masquerade" not in internal
    assert "postrouting" not in internal, "no empty chain"
    assert 'iifname "br1" ip daddr != 10.1.0.1 drop' in internal


def network(**changes: object) -> NetworkConfig:
    fields: dict[str, object] = {
        "id": "ab" * 32,
        "name": "n",
        "subnet": "10.99.0.0/24",
        "gateway": "10.99.0.1",
        "device": "pdunit0",
    }
    fields.update(changes)
    return NetworkConfig(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"subnet": "fd00::/64", "gateway": "fd00::1"}, "IPv4 only"),
        ({"gateway": "10.98.0.1"}, "not a host of"),
        ({"gateway": "10.99.0.0"}, "not a host of"),
        ({"subnet": "nonsense"}, "does not appear to be"),
        ({"device": ""}, "not a device name"),
        ({"device": "x" * 16}, "not a device name"),
        ({"device": "br*"}, "not a device name"),
        ({"device": 'a"b'}, "not a device name"),
    ],
)
async def test_bad_networks_are_refused(
    short_tmp: Path, changes: dict[str, object], message: str
) -> None:
    driver = make_driver(BridgeDriver, short_tmp)
    with pytest.raises(InvalidParameter, match=re.escape(message)):
        await driver.create_network(network(**changes))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"address": "10.99.1.2/24"}, "not in the network's subnet"),
        ({"address": "10.99.0.2/16"}, "not in the network's subnet"),
        ({"address": "fd00::2/64"}, "bad IPv4 address 'fd00::2/64'"),
        ({"mac": "02:42:zz:00:00:01"}, "bad MAC"),
        ({"interface": "a/b"}, "not a device name"),
        ({"gateway": "nope"}, "bad gateway 'nope'"),
    ],
)
async def test_bad_endpoints_are_refused(
    short_tmp: Path, changes: dict[str, object], message: str
) -> None:
    fields: dict[str, object] = {
        "id": "cd" * 32,
        "network_id": "ab" * 32,
        "container_id": "ef" * 32,
        "address": "10.99.0.2/24",
        "gateway": "10.99.0.1",
        "mac": "02:42:0a:63:00:02",
    }
    fields.update(changes)
    endpoint = EndpointConfig(**fields)  # type: ignore[arg-type]
    driver = make_driver(BridgeDriver, short_tmp)
    with pytest.raises(InvalidParameter, match=re.escape(message)):
        await driver.join(network(), endpoint, Path("/proc/self/ns/net"))


# -- probe variants


@pytest.mark.privileged
def test_probe_without_nft_says_what_to_install(
    short_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(driver_module, "find_nft", lambda: None)
    assert probe_as(0, short_tmp).startswith("skip: nft is not installed (apt install nftables)")
    context = driver_context(short_tmp, BridgeConfig(firewall=False))
    assert probe_as_user(BridgeDriver, context, 0) == "ok", "not needed without the firewall"


@pytest.mark.privileged
def test_probe_refuses_a_table_name_nft_does_not_take(short_tmp: Path) -> None:
    context = driver_context(short_tmp, BridgeConfig(firewall_table="ip"))
    assert probe_as_user(BridgeDriver, context, 0).startswith(
        "error: InvalidParameter: firewall_table 'ip' is not a name nft accepts"
    )
