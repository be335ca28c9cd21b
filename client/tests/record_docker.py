"""Record what the real docker CLI sends, into ``data/``: run ``python -m
client.tests.record_docker`` from the repository with docker at /usr/local/bin/docker.

Each recording is a request body docker 28 sent to the fake Engine API for a command line;
the network tests compare pydocker's bodies with them key for key, in order.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from client.tests.fakeengine import FakeDaemon, serve

DOCKER = "/usr/local/bin/docker"
DATA = Path(__file__).parent / "data"

NETWORK_CREATE = [
    "network create n1",
    "network create -d bridge --subnet 10.1.0.0/16 --gateway 10.1.0.1 --ip-range 10.1.1.0/24"
    " --internal --attachable --label a=b --label c -o com.docker.network.bridge.name=br9"
    " --ipam-driver default --ipam-opt x=y --ipv6 --aux-address host1=10.1.0.5 --scope local n2",
    "network create --subnet 10.1.0.0/16 --subnet fd00::/64 --gateway fd00::1"
    " --gateway 10.1.0.1 n3",
    "network create --config-only --subnet 10.2.0.0/16 n4",
    "network create --config-from n4 n5",
    "network create --ipv4=false --ipv6 n6",
    "network create --ingress --internal=false -o novalue --subnet 10.1.0.5/16 n7",
    "network create --subnet 10.1.0.0/16 --aux-address a=10.1.0.2 --aux-address b=10.1.0.3"
    " --aux-address a=10.1.0.4 --label ' a=b' n8",
]
NETWORK_CONNECT = [
    "network connect web box",
    "network connect --alias a1 --alias a2,a3 --ip 172.20.0.9 --ip6 fd00::9 --link other:o"
    " --link x --link-local-ip 169.254.1.1,fe80::1 --driver-opt k=v --driver-opt ' k2 = v2 '"
    " --gw-priority 5 web box",
    "network disconnect web box",
    "network disconnect -f web box",
]
CONTAINER_CREATE = [
    "create --network mynet --network-alias web --network-alias www --ip 10.0.0.5 busybox",
    "create --network mynet --network other busybox",
    "create --network mynet --network-alias a --network other busybox",
    "create --network bridge --ip 172.17.0.9 busybox",
    "create --network host -p 80:80 busybox",
    "create -p 8080-8081:80-81 -p 127.0.0.1:9090:90 -p 8080:80/udp -p 80 -p [::1]:7000:7000"
    " -p 127.0.0.1::81 -p 6000-6010:60 busybox",
    "create -P --expose 80 --expose 90-91/udp --expose 7000/sctp busybox",
    "create --dns 1.1.1.1 --dns 127.0.0.1 --dns-search example.com --dns-option ndots:2 busybox",
    "create --network Name=MyNet,Alias=X,alias=y,ip=10.0.0.3,ip6=fd00::3,driver-opt=K=V"
    ",mac-address=02:42:AC:11:00:02,link-local-ip=169.254.1.1,gw-priority=3 busybox",
    "create --network name=a --network name=b,alias=q busybox",
    "create --network mynet --network name=b,alias=q busybox",
    "create --network name=host busybox",
    "create --network 'name= mynet ,alias= a' busybox",
    "create --network mynet --ip6 fd00::5 --mac-address 02-42-AC-11-00-02 --link a:b --link c"
    " --link-local-ip 169.254.1.1 --link-local-ip fe80::1 --network other busybox",
    "create --ip6 fd00::5 --mac-address 02:42:ac:11:00:02 --link a:b busybox",
    "create --network bridge --link a busybox",
    "create --publish target=80,published=8080,protocol=udp --publish target=81,mode=host"
    " --publish target=82,published=8082-8083,host_ip=127.0.0.1 -p 9090:90 busybox",
]


def _bodies(fake: FakeDaemon, commands: list[str]) -> dict[str, Any]:
    recorded: dict[str, Any] = {}
    for command in commands:
        start = len(fake.requests)
        subprocess.run(
            [DOCKER, "-H", fake.host, *shlex.split(command)],
            capture_output=True,
            check=True,
            env={"HOME": tempfile.gettempdir(), "PATH": "/usr/bin:/bin"},
        )
        sent = [r for r in fake.requests[start:] if r.method == "POST"]
        recorded[command] = sent[-1].json()
    return recorded


def main() -> None:
    with tempfile.TemporaryDirectory() as directory, serve(Path(directory)) as fake:
        fake.reply("POST", "/networks/create", {"Id": "n" * 64, "Warning": ""}, status=201)
        fake.reply("POST", "/networks/web/connect", b"", status=200)
        fake.reply("POST", "/networks/web/disconnect", b"", status=200)
        fake.reply("POST", "/containers/create", {"Id": "c" * 64, "Warnings": []}, status=201)
        recordings = {
            "docker-network-create.json": _bodies(fake, NETWORK_CREATE),
            "docker-network-connect.json": _bodies(fake, NETWORK_CONNECT),
            "docker-create-networking.json": _bodies(fake, CONTAINER_CREATE),
        }
    for name, bodies in recordings.items():
        (DATA / name).write_text(json.dumps(bodies, indent=2) + "\n")


if __name__ == "__main__":
    main()
