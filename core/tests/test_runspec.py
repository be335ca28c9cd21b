"""From configuration to spec: users from the image's own passwd/group (never the host's,
whatever symlinks the image holds), the environment, /etc files, mount order."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydockerd.containers.config import MountPoint
from pydockerd.containers.runspec import (
    DEFAULT_PATH,
    ExecUser,
    build_spec,
    container_env,
    etc_files,
    process_env,
    resolve_user,
    user_mounts,
)
from pydockerd.errors import InvalidParameter
from pydockerd.spec import ContainerSpec


@pytest.fixture
def rootfs(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "passwd").write_text(
        "root:x:0:0:root:/root:/bin/sh\n"
        "app:x:1000:1000:app:/home/app:/bin/sh\n"
        "# a comment\n"
        "nobody:x:65534:65534::/nonexistent:/bin/false\n"
    )
    (root / "etc" / "group").write_text(
        "root:x:0:\napp:x:1000:\nwheel:x:10:app,root\naudio:x:29:app\n"
    )
    return root


def test_user_by_name_gets_its_groups_and_home(rootfs: Path) -> None:
    assert resolve_user(rootfs, "app") == ExecUser(1000, 1000, (10, 29), "/home/app")
    assert resolve_user(rootfs, "") == ExecUser(0, 0, (10,), "/root")


def test_user_by_number_and_group_override(rootfs: Path) -> None:
    assert resolve_user(rootfs, "1000:audio") == ExecUser(1000, 29, (), "/home/app")
    assert resolve_user(rootfs, "4242") == ExecUser(4242, 0, (), "/")  # not in passwd: allowed
    assert resolve_user(rootfs, "4242:4343") == ExecUser(4242, 4343, (), "/")
    assert resolve_user(rootfs, "nobody", ["wheel", "77"]).additional_gids == (10, 77)


def test_unknown_user_or_group_gets_dockers_message(rootfs: Path) -> None:
    with pytest.raises(InvalidParameter, match="unable to find user ghost: no matching entries"):
        resolve_user(rootfs, "ghost")
    with pytest.raises(InvalidParameter, match="unable to find group ghosts: no matching entries"):
        resolve_user(rootfs, "app:ghosts")


def test_passwd_is_read_inside_the_image_even_through_hostile_symlinks(tmp_path: Path) -> None:
    outside = tmp_path / "host-etc"
    outside.mkdir()
    (outside / "passwd").write_text("root:x:0:0::/:/bin/sh\nsecret:x:7:7::/:/bin/sh\n")
    root = tmp_path / "root"
    root.mkdir()
    (root / "etc").symlink_to(f"../../{outside.name}")  # relative: climbs above the root
    with pytest.raises(InvalidParameter, match="unable to find user secret"):
        resolve_user(root, "secret")
    (root / "etc").unlink()
    (root / "etc").symlink_to(str(outside))  # absolute: means <root>/<outside>, not the host's
    with pytest.raises(InvalidParameter, match="unable to find user secret"):
        resolve_user(root, "secret")


def test_environment_as_moby_builds_it() -> None:
    env = container_env({"Hostname": "h1", "Tty": True, "Env": ["PATH=/opt", "A=1"]})
    assert env == ["PATH=/opt", "HOSTNAME=h1", "TERM=xterm", "A=1"]
    assert container_env({"Hostname": "h2"}) == [f"PATH={DEFAULT_PATH}", "HOSTNAME=h2"]
    user = ExecUser(1, 1, (), "/home/u")
    assert process_env(["A=1"], user) == ("A=1", "HOME=/home/u")
    assert process_env(["HOME=/x"], user) == ("HOME=/x",)


def test_etc_files(tmp_path: Path) -> None:
    host = tmp_path / "host-resolv.conf"
    host.write_text(
        "# generated\nnameserver 127.0.0.53\nnameserver 10.0.0.2\nsearch example\noptions ndots:2\n"
    )
    etc_files(tmp_path, "box", extra_hosts=["db:10.1.1.1"], host_resolv=host)
    assert (tmp_path / "hostname").read_text() == "box\n"
    hosts = (tmp_path / "hosts").read_text()
    assert hosts.startswith("127.0.0.1\tlocalhost\n")
    assert hosts.endswith("10.1.1.1\tdb\n")
    assert (tmp_path / "resolv.conf").read_text() == (
        "nameserver 10.0.0.2\nsearch example\noptions ndots:2\n"  # loopback servers dropped
    )
    etc_files(tmp_path, "box", dns=["10.9.9.9"], dns_search=["a.b"], host_resolv=host)
    assert (tmp_path / "resolv.conf").read_text() == (
        "options ndots:2\nnameserver 10.9.9.9\nsearch a.b\n"
    )
    etc_files(tmp_path, "box", host_network=True, host_resolv=host)
    assert "nameserver 127.0.0.53" in (tmp_path / "resolv.conf").read_text()
    with pytest.raises(InvalidParameter, match="--add-host"):
        etc_files(tmp_path, "box", extra_hosts=["nocolon"], host_resolv=host)


def test_user_mounts_parents_first(tmp_path: Path) -> None:
    points = [
        MountPoint(type="bind", destination="/a/b/c", source="/src/c"),
        MountPoint(type="volume", destination="/a", name="v"),
        MountPoint(type="tmpfs", destination="/a/b", tmpfs_options=("size=1m", "exec"), rw=False),
    ]
    specs = user_mounts(points, {"/a": "/volumes/v/_data"})
    assert [m.destination for m in specs] == ["/a", "/a/b", "/a/b/c"]
    assert specs[0].source == "/volumes/v/_data"
    assert specs[0].options == ("rbind", "rprivate")
    assert specs[1].options == ("nosuid", "nodev", "size=1m", "exec", "ro")  # exec drops noexec
    assert specs[2].type == "bind"


def test_build_spec(tmp_path: Path) -> None:
    spec = build_spec(
        container_id="c" * 64,
        root=tmp_path,
        config={"Cmd": ["sleep", "1"], "Entrypoint": ["/bin/x"], "Hostname": "h", "Tty": False},
        host={"NanoCpus": 1_500_000_000, "Memory": 10**8, "PidsLimit": -1, "ReadonlyRootfs": True},
        directory=tmp_path / "c",
        mounts=[],
        namespaces={"pid": ""},
        cgroup_path="parent/c",
        user=ExecUser(0, 0, (), "/root"),
    )
    assert spec.process.args == ("/bin/x", "sleep", "1")
    assert (spec.resources.cpu_quota, spec.resources.cpu_period) == (150000, 100000)
    assert spec.resources.pids_limit == 0  # -1: unlimited
    assert spec.readonly_root
    destinations = [m.destination for m in spec.mounts]
    assert destinations[:7] == [
        "/proc",
        "/dev",
        "/dev/pts",
        "/sys",
        "/sys/fs/cgroup",
        "/dev/mqueue",
        "/dev/shm",
    ]
    assert destinations[7:] == ["/etc/resolv.conf", "/etc/hostname", "/etc/hosts"]
    assert all("ro" in m.options for m in spec.mounts[7:])  # read-only root: /etc files too
    assert ContainerSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec


@pytest.mark.parametrize("privileged", [False, True])
def test_sys_and_cgroups_are_writable_only_when_privileged(
    tmp_path: Path, privileged: bool
) -> None:
    """As Docker: /sys and /sys/fs/cgroup read-only, read-write with --privileged."""
    spec = build_spec(
        container_id="c" * 64,
        root=tmp_path,
        config={"Cmd": ["true"]},
        host={"Privileged": privileged},
        directory=tmp_path / "c",
        mounts=[],
        namespaces={"pid": ""},
        cgroup_path="parent/c",
        user=ExecUser(0, 0, (), "/root"),
    )
    options = {m.destination: m.options for m in spec.mounts}
    wanted, unwanted = ("rw", "ro") if privileged else ("ro", "rw")
    for destination in ("/sys", "/sys/fs/cgroup"):
        assert wanted in options[destination], destination
        assert unwanted not in options[destination], destination
