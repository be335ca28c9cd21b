"""The bridge driver against the network-driver conformance suite, and what only it does: its
nftables table (NAT, isolation, internal networks) rebuilt whole and never duplicated, the
network options it honours, and the names and devices it refuses to touch."""

from __future__ import annotations

import re
import secrets
from functools import partial
from pathlib import Path

import pytest
from pydockerd.plugin import (
    Conflict,
    EndpointConfig,
    InvalidParameter,
    NetworkConfig,
    NetworkDriver,
    NotFound,
)
from pydockerd.testing.drivers import make_driver
from pydockerd.testing.network import (
    HOST,
    NetworkDriverSuite,
    NetworkLab,
    host_link,
    host_links,
    network_lab,
    nft_ruleset,
    run,
)
from pydockerd_network_bridge.driver import (
    OPT_ICC,
    OPT_MASQUERADE,
    OPT_MTU,
    BridgeConfig,
    BridgeDriver,
)
from pydockerd_network_bridge.firewall import TABLE_COMMENT, Firewall, find_nft
from pydockerd_network_bridge.links import host_end_name


def table_of(driver: NetworkDriver) -> str:
    assert isinstance(driver, BridgeDriver)
    return driver.config.firewall_table


def firewall_of(driver: NetworkDriver) -> Firewall:
    nft = find_nft()
    assert nft is not None, "nft is installed (apt install nftables)"
    return Firewall(table_of(driver), nft)


async def listing(driver: NetworkDriver) -> str | None:
    return await firewall_of(driver).listing()


def rules(text: str | None) -> list[str]:
    """The rule lines of a table's listing (no chain headers, sets or comments)."""
    assert text is not None, "the table exists"
    skip = ("table ", "chain ", "set ", "type ", "elements", "comment", "}", '"')
    lines = (line.strip() for line in text.splitlines())
    return [line for line in lines if line and not line.startswith(skip)]


class TestBridgeConformance(NetworkDriverSuite):
    driver_class = BridgeDriver

    def driver_config(self, token: str) -> BridgeConfig:
        return BridgeConfig(firewall_table=f"pdt_{token}")

    async def assert_nothing_left(self, lab: NetworkLab) -> None:
        await super().assert_nothing_left(lab)
        assert await listing(lab.driver) is None, "no table once every network is deleted"

    async def force_cleanup(self, driver: NetworkDriver) -> None:
        if await listing(driver) is not None:
            await firewall_of(driver).run("delete", "table", "ip", table_of(driver))

    # -- the table

    async def test_the_table_holds_nat_isolation_and_internal_rules(self, lab: NetworkLab) -> None:
        plain, internal = await lab.create(), await lab.create(internal=True)
        text = await listing(lab.driver)
        assert text is not None
        assert f'comment "{TABLE_COMMENT}"' in text
        assert re.search(rf'elements = {{ "{plain.device}",\s+"{internal.device}" }}', text) or (
            re.search(rf'elements = {{ "{internal.device}",\s+"{plain.device}" }}', text)
        )
        p, i = f'"{plain.device}"', f'"{internal.device}"'
        expected = [
            f"iifname {p} oifname {p} accept",
            f"iifname {i} oifname {i} accept",
            "iifname @bridges oifname @bridges drop",
            f"oifname {p} ct state established,related accept",
            f"iifname {p} accept",
            f"oifname {p} drop",
            f"iifname {i} drop",
            f"oifname {i} drop",
            f"iifname {i} ip daddr != {internal.gateway} drop",
            f"oifname != {p} ip saddr {plain.subnet} masquerade",
        ]
        found = rules(text)
        assert [r for r in expected if r not in found] == []
        masquerading = [r for r in found if "masquerade" in r]
        assert masquerading == [f"oifname != {p} ip saddr {plain.subnet} masquerade"], (
            "masquerade for the non-internal network only"
        )
        assert "policy drop" not in text, "no chain drops what no rule names"

    async def test_every_rule_is_about_the_drivers_bridges(self, lab: NetworkLab) -> None:
        """Traffic that does not enter or leave a bridge of the driver (or come from its
        subnets, for NAT) matches no rule: the host's other forwarding stays as it was."""
        networks = [await lab.create(), await lab.create(internal=True)]
        ours = "|".join(re.escape(f'"{n.device}"') for n in networks)
        subnets = "|".join(re.escape(n.subnet) for n in networks)
        scoped = re.compile(rf"(iifname|oifname) ({ours}|@bridges)|ip saddr ({subnets}) ")
        found = rules(await listing(lab.driver))
        assert [r for r in found if not scoped.search(r)] == []

    async def test_a_new_instance_rebuilds_the_same_table(self, lab: NetworkLab) -> None:
        networks = [
            await lab.create(),
            await lab.create(internal=True),
            await lab.create(options={OPT_MASQUERADE: "false"}),
        ]
        before = await listing(lab.driver)
        driver = lab.restart()
        for network in networks:
            await driver.create_network(network)
        assert await listing(driver) == before, "the same rules, none twice"
        for network in reversed(networks):
            await driver.create_network(network)
        assert await listing(driver) == before
        assert (await nft_ruleset()).count(f"table ip {table_of(driver)} ") == 1

    async def test_deleting_a_network_keeps_the_others_rules(self, lab: NetworkLab) -> None:
        doomed, kept = await lab.create(), await lab.create()
        await lab.driver.delete_network(doomed)
        found = rules(await listing(lab.driver))
        assert [r for r in found if doomed.device in r or doomed.subnet in r] == []
        assert f'oifname != "{kept.device}" ip saddr {kept.subnet} masquerade' in found

    async def test_a_foreign_table_of_that_name_is_never_replaced(self, lab: NetworkLab) -> None:
        table = table_of(lab.driver)
        await run("nft", "add", "table", "ip", table)
        try:
            with pytest.raises(Conflict, match="not the bridge driver's"):
                await lab.create()
            assert await listing(lab.driver) == f"table ip {table} {{\n}}\n"
        finally:
            await run("nft", "delete", "table", "ip", table)

    # -- devices

    async def test_a_device_that_is_not_a_bridge_is_a_conflict(self, lab: NetworkLab) -> None:
        network = await lab.network()
        await run("ip", "link", "add", network.device, "type", "veth")
        with pytest.raises(Conflict, match="not a bridge"):
            await lab.driver.create_network(network)
        assert await listing(lab.driver) is None, "the rules went back as they were"
        await lab.driver.delete_network(network)
        assert await host_link(network.device) is not None, "not ours: delete leaves it"
        await run("ip", "link", "del", network.device)

    async def test_an_existing_bridge_is_taken_as_it_is(self, lab: NetworkLab) -> None:
        network = await lab.network()
        await run("ip", "link", "add", network.device, "type", "bridge")
        await lab.driver.create_network(network)
        link = await host_link(network.device)
        assert link is not None
        assert "UP" in link["flags"]
        assert [a["local"] for a in link["addr_info"] if a["family"] == "inet"] == [network.gateway]

    async def test_two_networks_cannot_share_a_bridge(self, lab: NetworkLab) -> None:
        first = await lab.create()
        second = await lab.network()
        clash = NetworkConfig(
            id=second.id, name=second.name, subnet=second.subnet, gateway=second.gateway,
            device=first.device,
        )  # fmt: skip
        with pytest.raises(Conflict, match="another network"):
            await lab.driver.create_network(clash)

    async def test_join_needs_the_bridge_and_a_namespace_of_its_own(self, lab: NetworkLab) -> None:
        network = await lab.network()
        container = await lab.container()
        endpoint = lab.endpoint(network, container)
        with pytest.raises(NotFound, match="does not exist"):
            await lab.driver.join(network, endpoint, container.netns)
        await lab.driver.create_network(network)
        with pytest.raises(InvalidParameter, match="daemon's own"):
            await lab.driver.join(network, endpoint, Path("/proc/self/ns/net"))
        with pytest.raises(NotFound, match="is gone"):
            await lab.driver.join(network, endpoint, Path("/proc/0/ns/net"))
        names = {link["ifname"] for link in (await host_links()).values()}
        assert host_end_name(endpoint.id) not in names, "nothing made"

    async def test_an_interface_name_taken_in_the_container(self, lab: NetworkLab) -> None:
        network = await lab.create()
        container = await lab.container()
        await run(*container.argv("ip", "link", "add", "eth0", "type", "veth"))
        endpoint = lab.endpoint(network, container)
        with pytest.raises(Conflict, match="already has an interface"):
            await lab.driver.join(network, endpoint, container.netns)
        names = {link["ifname"] for link in (await host_links()).values()}
        assert host_end_name(endpoint.id) not in names

    async def test_a_host_end_of_another_container_is_a_conflict(self, lab: NetworkLab) -> None:
        network = await lab.create()
        one, two = await lab.container(), await lab.container()
        endpoint = await lab.join(network, one)
        other = lab.endpoint(network, two)
        same_id = EndpointConfig(
            id=endpoint.id, network_id=network.id, container_id=other.container_id,
            address=other.address, gateway=other.gateway, mac=other.mac,
        )  # fmt: skip
        with pytest.raises(Conflict, match="connected to another container"):
            await lab.driver.join(network, same_id, two.netns)
        assert sorted(await two.links()) == ["lo"]
        assert await lab.reaches(one, HOST, network.gateway), "the first one is untouched"

    async def test_leave_leaves_a_veth_on_another_bridge(self, lab: NetworkLab) -> None:
        mine, other = await lab.create(), await lab.create()
        endpoint = lab.endpoint(mine, await lab.container())
        name = host_end_name(endpoint.id)
        await run("ip", "link", "add", name, "master", other.device, "type", "veth")
        try:
            await lab.driver.leave(mine, endpoint, None)
            assert await host_link(name) is not None, "not on this network's bridge: not ours"
        finally:
            await run("ip", "link", "del", name)

    # -- options

    async def test_without_masquerade_the_outside_sees_the_container(self, lab: NetworkLab) -> None:
        network = await lab.create(options={OPT_MASQUERADE: "false"})
        container = await lab.container()
        address = self.address(await lab.join(network, container))
        assert not [r for r in rules(await listing(lab.driver)) if "masquerade" in r]
        answering = await lab.outside(route_back=True)
        assert await lab.reaches(container, answering, answering.address) == address
        silent = await lab.outside(route_back=False)
        assert await lab.reaches(container, silent, silent.address) is None, "no NAT"

    async def test_without_icc_containers_of_a_network_do_not_meet(self, lab: NetworkLab) -> None:
        network = await lab.create(options={OPT_ICC: "false"})
        one, two = await lab.container(), await lab.container()
        await lab.join(network, one)
        b = self.address(await lab.join(network, two))
        assert await lab.reaches(one, two, b) is None
        assert await lab.reaches(one, HOST, network.gateway), "the gateway still answers"

    async def test_mtu_from_the_config_and_from_an_option(self, suite_dir: Path) -> None:
        token = secrets.token_hex(3)
        config = BridgeConfig(firewall_table=f"pdt_{token}", mtu=1400)
        make = partial(make_driver, BridgeDriver, suite_dir / "mtu", config)
        async with network_lab(make, token, self.force_cleanup) as lab:
            configured = await lab.create()
            optioned = await lab.create(options={OPT_MTU: "1300"})
            container = await lab.container()
            await lab.join(configured, container)
            await lab.join(optioned, container, interface="eth1", default_route=False)
            links = await container.links()
            assert (links["eth0"]["mtu"], links["eth1"]["mtu"]) == (1400, 1300)
            for network, mtu in ((configured, 1400), (optioned, 1300)):
                bridge = await host_link(network.device)
                assert bridge is not None
                assert bridge["mtu"] == mtu
            ends = await host_links()
            assert sorted(ends[i]["mtu"] for i in lab.host_ends) == [1300, 1400]

    async def test_without_firewall_there_is_no_table(self, suite_dir: Path) -> None:
        token = secrets.token_hex(3)
        config = BridgeConfig(firewall_table=f"pdt_{token}", firewall=False)
        make = partial(make_driver, BridgeDriver, suite_dir / "nofw", config)
        async with network_lab(make, token) as lab:
            network = await lab.create()
            one, two = await lab.container(), await lab.container()
            await lab.join(network, one)
            b = self.address(await lab.join(network, two))
            assert await lab.reaches(one, two, b)
            assert await listing(lab.driver) is None
            assert f"pdt_{token}" not in await nft_ruleset()

    @pytest.mark.parametrize(
        ("options", "message"),
        [
            ({OPT_MTU: "9"}, "want 68 to 65535"),
            ({OPT_MTU: "big"}, "want 68 to 65535"),
            ({OPT_MASQUERADE: "maybe"}, "want true or false"),
        ],
    )
    async def test_bad_options_are_refused_before_anything_is_made(
        self, lab: NetworkLab, options: dict[str, str], message: str
    ) -> None:
        network = await lab.network(options=options)
        with pytest.raises(InvalidParameter, match=message):
            await lab.driver.create_network(network)
        assert await host_link(network.device) is None
        assert await listing(lab.driver) is None

    async def test_an_endpoint_outside_the_subnet_is_refused(self, lab: NetworkLab) -> None:
        network = await lab.create()
        container = await lab.container()
        good = lab.endpoint(network, container)
        stray = EndpointConfig(
            id=good.id, network_id=good.network_id, container_id=good.container_id,
            address="192.0.2.77/24", gateway=good.gateway, mac=good.mac,
        )  # fmt: skip
        with pytest.raises(InvalidParameter, match="not in the network's subnet"):
            await lab.driver.join(network, stray, container.netns)
        assert sorted(await container.links()) == ["lo"]
