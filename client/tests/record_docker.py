"""Record what the real docker CLI sends, into ``data/``: run ``python -m
client.tests.record_docker`` from the repository with docker at /usr/local/bin/docker.

Each recording is a request body docker 28 sent to the fake Engine API for a command line;
the network tests compare pydocker's bodies with them key for key, in order. For ``build``
it is the query, the context tar's members and what docker printed.
"""

from __future__ import annotations

import io
import json
import re
import shlex
import subprocess
import tarfile
import tempfile
from pathlib import Path
from typing import Any

from client.tests.fakeengine import FakeDaemon, Recorded, serve

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


BUILD = [
    ("build ctx", ""),
    ("build -f ctx/docker/app.Dockerfile ctx", ""),
    ("build -f other/Dockerfile ctx", ""),
    ("build -f - ctx", "FROM stdin\n"),
    ("build -", "FROM busybox\nRUN true\n"),
    (
        "build -t a -t b:1 --build-arg X=1 --build-arg NOPE_UNSET --build-arg E= --label l=1"
        " --label k --target t --no-cache --pull --rm=false --force-rm --network host"
        " --platform Linux/amd64 --add-host db:10.0.0.2 --shm-size 64m -m 1g --memory-swap -1"
        " --cpu-shares 512 --cpu-period 1000 --cpu-quota 500 --cpuset-cpus 0 --cpuset-mems 0"
        " --cgroup-parent cg --ulimit nofile=1024:2048 --ulimit nproc=10 --cache-from x,y"
        " --security-opt seccomp=unconfined --isolation default -q ctx",
        "",
    ),
]
"""``build`` command lines (run in the directory :func:`build_project` fills) and stdin."""
BUILD_STREAM = (
    b'{"stream":"Step 1/1 : FROM busybox\\n"}\r\n'
    b'{"aux":{"ID":"sha256:' + b"a" * 64 + b'"}}\r\n'
    b'{"stream":"Successfully built aaaaaaaaaaaa\\n"}\r\n'
)
_RANDOM_NAME = re.compile(r"\.dockerfile\.[0-9a-f]{20}")


def build_project(root: Path) -> None:
    """A context ``root/ctx`` whose ``.dockerignore`` exercises moby's rules, and a
    Dockerfile outside it, ``root/other/Dockerfile``."""
    context = root / "ctx"
    for directory in ("src/tmp", "build/keep", "docker", "empty"):
        (context / directory).mkdir(parents=True, exist_ok=True)
    files = {
        "Dockerfile": "FROM busybox\nCOPY . /app\n",
        "README.md": "read me\n",
        "NOTES.md": "notes\n",
        "src/main.py": "print('hi')\n",
        "src/notes.md": "deep\n",
        "src/tmp/cache": "junk\n",
        "build/keep/me.txt": "kept\n",
        "build/other.txt": "gone\n",
        "docker/app.Dockerfile": "FROM scratch\n",
        "run.sh": "#!/bin/sh\n",
        ".dockerignore": "# comment\n*.md\n!README.md\n**/tmp\nbuild\n!build/keep/me.txt\n"
        "docker\n./run2.sh\nDockerfile\n",
    }
    for name, text in files.items():
        (context / name).write_text(text)
    (context / "run.sh").chmod(0o755)
    (context / "src").chmod(0o750)
    (context / "link").symlink_to("README.md")
    (context / "hard").hardlink_to(context / "run.sh")
    (context / "run2.sh").write_text("excluded\n")
    (root / "other").mkdir()
    (root / "other" / "Dockerfile").write_text("FROM outside\n")


def build_request(request: Recorded) -> dict[str, Any]:
    """What a ``POST /build`` carried, comparable across runs: the query, and each tar
    member's name, mode, owner, type, link and size (``.dockerignore`` and injected
    Dockerfiles with their text), the injected name made ``.dockerfile.RANDOM``."""

    def plain(text: str) -> str:
        return _RANDOM_NAME.sub(".dockerfile.RANDOM", text)

    members: list[list[Any]] = []
    body = request.body  # docker truncates a tar it injected a Dockerfile into: pad it
    body += b"\0" * (-len(body) % 512) + b"\0" * 1024
    with tarfile.open(fileobj=io.BytesIO(body)) as archive:
        for member in archive.getmembers():
            row: list[Any] = [plain(member.name), member.mode, member.uid, member.gid]
            row += [member.uname, member.gname, member.type.decode(), member.linkname]
            row.append(member.size)
            if member.name == ".dockerignore" or member.name.startswith(".dockerfile."):
                handle = archive.extractfile(member)
                row.append(plain(handle.read().decode()) if handle else "")
            members.append(row)
    query = [[key, plain(value)] for key, value in request.query]
    return {"query": query, "members": members}


def _builds(fake: FakeDaemon) -> dict[str, Any]:
    recorded: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as directory:
        build_project(Path(directory))
        for command, stdin in BUILD:
            start = len(fake.requests)
            done = subprocess.run(
                [DOCKER, "-H", fake.host, *shlex.split(command)],
                input=stdin.encode(),
                capture_output=True,
                check=True,
                cwd=directory,
                env={
                    "HOME": directory,
                    "PATH": "/usr/bin:/bin",
                    "DOCKER_BUILDKIT": "0",
                    "DOCKER_CONFIG": f"{directory}/config",
                },
            )
            sent = [r for r in fake.requests[start:] if r.path == "/build"]
            recorded[command] = {**build_request(sent[-1]), "stdout": done.stdout.decode()}
    return recorded


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
        fake.reply("POST", "/build", BUILD_STREAM, content_type="application/json")
        recordings = {
            "docker-build.json": _builds(fake),
            "docker-network-create.json": _bodies(fake, NETWORK_CREATE),
            "docker-network-connect.json": _bodies(fake, NETWORK_CONNECT),
            "docker-create-networking.json": _bodies(fake, CONTAINER_CREATE),
        }
    for name, bodies in recordings.items():
        (DATA / name).write_text(json.dumps(bodies, indent=2) + "\n")


if __name__ == "__main__":
    main()
