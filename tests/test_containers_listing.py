"""``GET /containers/json`` reads the networks once for all the containers it lists
(``ContainerService.attachments_of``), and says of each container's networks what its
inspect says: on the default bridge, on a user-defined network with an alias, on both,
and on none."""

from __future__ import annotations

import json
import subprocess
from typing import Any

import pytest
from pydockerd.testing.daemon import DaemonProcess

from tests.helpers import DOCKER

pytestmark = pytest.mark.privileged

FIELDS = ("NetworkID", "EndpointID", "Gateway", "IPAddress", "MacAddress")


def ok(engine: DaemonProcess, *args: str) -> str:
    done = subprocess.run(
        [DOCKER, *args], env=engine.env, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, f"docker {' '.join(args)}: {done.stderr}"
    return done.stdout


def _networks(settings: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: {f: n.get(f) for f in FIELDS} for name, n in settings["Networks"].items()}


def test_the_listing_shows_each_containers_networks_as_inspect_does(
    engine: DaemonProcess,
) -> None:
    ok(engine, "network", "create", "listnet")
    names = ["l-default", "l-user", "l-both", "l-none"]
    try:
        ok(engine, "run", "-d", "--name", "l-default", "busybox", "sleep", "1000")
        ok(engine, "run", "-d", "--name", "l-user", "--network", "listnet",
           "--network-alias", "lu", "busybox", "sleep", "1000")  # fmt: skip
        ok(engine, "run", "-d", "--name", "l-both", "busybox", "sleep", "1000")
        ok(engine, "network", "connect", "listnet", "l-both")
        ok(engine, "run", "-d", "--name", "l-none", "--network", "none", "busybox", "sleep", "1000")
        listed = {c["Names"][0].lstrip("/"): c for c in engine.get_json("/containers/json")}
        expected = {"l-default": {"bridge"}, "l-user": {"listnet"},
                    "l-both": {"bridge", "listnet"}, "l-none": {"none"}}  # fmt: skip
        for name in names:
            inspected = json.loads(ok(engine, "inspect", name))[0]["NetworkSettings"]
            assert set(listed[name]["NetworkSettings"]["Networks"]) == expected[name]
            assert _networks(listed[name]["NetworkSettings"]) == _networks(inspected), name
        addresses = [
            n["IPAddress"]
            for c in listed.values()
            for n in c["NetworkSettings"]["Networks"].values()
            if n["IPAddress"]
        ]
        assert len(addresses) == len(set(addresses)) == 4  # each its own, none mixed up
        system = engine.get_json("/system/df")
        by_name = {c["Names"][0].lstrip("/"): c for c in system["Containers"]}
        for name in names:
            assert by_name[name]["NetworkSettings"] == listed[name]["NetworkSettings"]
    finally:
        ok(engine, "rm", "-f", *names)
        ok(engine, "network", "rm", "listnet")
