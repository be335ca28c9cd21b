"""Docker's rules for a create request: the config merge, HostConfig checks with moby's
messages, mounts, signals and capabilities."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
from pydockerd.containers.config import (
    MountPoint,
    RestartPolicy,
    capabilities,
    command_of,
    container_config,
    host_capabilities,
    host_config,
    merge_image_config,
    mount_points,
    parse_signal,
    restart_policy,
)
from pydockerd.errors import InvalidParameter
from pydockerd.mounts import MountFlag, parse_mount_options
from pydockerd.spec import ALL_CAPABILITIES, DEFAULT_CAPABILITIES

IMAGE = {
    "User": "daemon",
    "Env": ["PATH=/usr/bin", "LANG=C"],
    "Cmd": ["sh"],
    "Entrypoint": None,
    "WorkingDir": "/srv",
    "Labels": {"from": "image", "both": "image"},
    "ExposedPorts": {"80/tcp": {}},
    "Volumes": {"/data": {}},
    "StopSignal": "SIGQUIT",
}


def test_request_fields_win_and_image_fields_fill_in() -> None:
    merged = merge_image_config(
        {"Env": ["LANG=en", "X=1"], "Labels": {"both": "request"}, "ExposedPorts": {"53/udp": {}}},
        IMAGE,
    )
    assert merged["Env"] == ["LANG=en", "X=1", "PATH=/usr/bin"]
    assert merged["Labels"] == {"from": "image", "both": "request"}
    assert merged["ExposedPorts"] == {"80/tcp": {}, "53/udp": {}}
    assert (merged["User"], merged["WorkingDir"], merged["Cmd"]) == ("daemon", "/srv", ["sh"])
    assert merged["Volumes"] == {"/data": {}}
    assert merged["StopSignal"] == "SIGQUIT"


def test_an_entrypoint_of_the_request_drops_the_images_cmd() -> None:
    image = {**IMAGE, "Entrypoint": ["/entry"], "Cmd": ["--default"]}
    assert command_of(merge_image_config({"Cmd": ["x"]}, image)) == ("/entry", ["x"])
    assert command_of(merge_image_config({}, image)) == ("/entry", ["--default"])
    merged = merge_image_config({"Entrypoint": ["/other"]}, image)
    assert command_of(merged) == ("/other", [])


def test_empty_entrypoint_clears_it_and_needs_a_command() -> None:
    image = {**IMAGE, "Entrypoint": ["/entry"], "Cmd": ["--default"]}
    assert command_of(merge_image_config({"Entrypoint": [""], "Cmd": ["echo"]}, image)) == (
        "echo",
        [],
    )
    with pytest.raises(InvalidParameter, match="No command specified"):
        command_of(merge_image_config({"Entrypoint": [""]}, image))


def test_container_config_has_every_field_and_accepts_string_commands() -> None:
    config = container_config({"Image": "busybox", "Cmd": "true", "Env": None}, IMAGE)
    assert config["Cmd"] == ["true"]
    assert config["Image"] == "busybox"
    assert {"Hostname", "Tty", "OpenStdin", "StdinOnce", "AttachStdout", "OnBuild"} <= set(config)
    with pytest.raises(InvalidParameter, match="invalid Env"):
        container_config({"Env": ["A=1", 2]}, IMAGE)
    with pytest.raises(InvalidParameter, match="invalid Cmd"):
        container_config({"Cmd": [1]}, IMAGE)


def test_env_entries_without_a_value_are_dropped() -> None:
    assert container_config({"Env": ["A=1", "LONELY"]}, {})["Env"] == ["A=1"]


@pytest.mark.parametrize(
    ("policy", "message"),
    [
        ({"Name": "sometimes"}, "unknown policy 'sometimes'"),
        ({"Name": "always", "MaximumRetryCount": 2}, "can only be used with 'on-failure'"),
        ({"Name": "on-failure", "MaximumRetryCount": -1}, "must be a positive integer"),
    ],
)
def test_bad_restart_policies(policy: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidParameter, match=message):
        restart_policy({"RestartPolicy": policy})


def test_restart_policy_decisions() -> None:
    assert not RestartPolicy("no").restarts_after(1, 0, False)
    assert RestartPolicy("always").restarts_after(0, 5, False)
    assert not RestartPolicy("always").restarts_after(0, 5, True)  # stopped by hand
    assert RestartPolicy("unless-stopped").restarts_after(0, 0, False)
    on_failure = RestartPolicy("on-failure", 2)
    assert not on_failure.restarts_after(0, 0, False)
    assert on_failure.restarts_after(3, 1, False)
    assert not on_failure.restarts_after(3, 2, False)
    assert RestartPolicy("on-failure").restarts_after(1, 1000, False)


@pytest.mark.parametrize(
    ("host", "message"),
    [
        ({"Memory": 1024}, "Minimum memory limit allowed is 6MB"),
        ({"MemorySwap": 10**8}, "You should always set the Memory limit when using Memoryswap"),
        ({"Memory": 10**8, "MemorySwap": 10**7}, "Minimum memoryswap limit should be larger"),
        ({"NanoCpus": 3 * 10**9}, "Range of CPUs is from 0.01 to 2.00, as there are only 2 CPUs"),
        ({"NanoCpus": 10**9, "CpuPeriod": 1000}, "Nano CPUs and CPU Period cannot both be set"),
        ({"NanoCpus": 10**9, "CpuQuota": 1000}, "Nano CPUs and CPU Quota cannot both be set"),
        ({"AutoRemove": True, "RestartPolicy": {"Name": "always"}}, "with restart policy"),
        ({"CapAdd": ["NOT_A_CAP"]}, 'unknown capability: "CAP_NOT_A_CAP"'),
        ({"Memory": "lots"}, "invalid Memory"),
    ],
)
def test_bad_host_configs_get_mobys_messages(host: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidParameter, match=message):
        host_config(host, cpus=2)


def test_host_config_defaults() -> None:
    host = host_config({"NetworkMode": "default"}, cpus=2)
    assert host["NetworkMode"] == "bridge"
    assert host["RestartPolicy"] == {"Name": "no", "MaximumRetryCount": 0}
    assert host["LogConfig"] == {"Type": "", "Config": {}}
    assert host["ShmSize"] == 64 * 1024 * 1024


def test_capabilities() -> None:
    assert capabilities({}) == tuple(c for c in ALL_CAPABILITIES if c in DEFAULT_CAPABILITIES)
    added = capabilities({"CapAdd": ["net_admin"], "CapDrop": ["CAP_CHOWN"]})
    assert "CAP_NET_ADMIN" in added
    assert "CAP_CHOWN" not in added
    assert capabilities({"CapDrop": ["ALL"], "CapAdd": ["KILL"]}) == ("CAP_KILL",)
    assert capabilities({"CapAdd": ["ALL"]}) == host_capabilities()
    assert capabilities({"Privileged": True}) == host_capabilities()
    assert set(host_capabilities()) <= set(ALL_CAPABILITIES)
    assert "CAP_SYS_ADMIN" in host_capabilities()  # root, here


@pytest.mark.parametrize(
    ("value", "number"),
    [("9", 9), ("KILL", 9), ("SIGKILL", 9), ("sigterm", 15), ("hup", 1), ("RTMIN+2", None)],
)
def test_signals_by_name_or_number(value: str, number: int | None) -> None:
    expected = number if number is not None else int(signal.SIGRTMIN) + 2
    assert parse_signal(value) == expected


@pytest.mark.parametrize("value", ["SIGNOPE", "0", "999", ""])
def test_bad_signals(value: str) -> None:
    with pytest.raises(InvalidParameter, match="Invalid signal"):
        parse_signal(value)


def test_mounts_from_binds_mounts_tmpfs_and_volumes(tmp_path: Path) -> None:
    host = {
        "Binds": [f"{tmp_path}:/host:ro,rslave", "named:/named:nocopy", "/anon"],
        "Mounts": [
            {"Type": "tmpfs", "Target": "/run", "TmpfsOptions": {"SizeBytes": 1024, "Mode": 0o700}},
            {"Type": "volume", "Source": "", "Target": "/v2", "VolumeOptions": {"NoCopy": True}},
        ],
        "Tmpfs": {"/tmp": "size=1m,exec"},
    }
    points = {p.destination: p for p in mount_points({"Volumes": {"/data": {}}}, host, "local")}
    assert points["/host"] == MountPoint(
        type="bind",
        destination="/host",
        source=str(tmp_path),
        rw=False,
        mode="ro,rslave",
        propagation="rslave",
        create_source=True,
    )
    assert (points["/named"].name, points["/named"].nocopy, points["/named"].anonymous) == (
        "named",
        True,
        False,
    )
    assert points["/anon"].anonymous
    assert points["/run"].tmpfs_options == ("size=1024", "mode=700")
    assert points["/v2"].anonymous
    assert points["/v2"].nocopy
    assert points["/tmp"].tmpfs_options == ("size=1m", "exec")
    assert points["/data"].anonymous  # the image's VOLUME


def test_a_request_mount_replaces_an_image_volume_at_the_same_place(tmp_path: Path) -> None:
    points = mount_points({"Volumes": {"/data": {}}}, {"Binds": [f"{tmp_path}:/data"]}, "local")
    assert [(p.type, p.destination) for p in points] == [("bind", "/data")]


@pytest.mark.parametrize(
    ("host", "message"),
    [
        ({"Binds": ["/a:/x", "/b:/x"]}, "Duplicate mount point: /x"),
        ({"Binds": ["/a:relative"]}, "mount path must be absolute"),
        ({"Binds": ["/a:/x:bogus"]}, "invalid mode: bogus"),
        ({"Binds": ["/a:/x:ro,rw"]}, "invalid mode: ro,rw"),
        ({"Binds": ["a:b:c:d"]}, "invalid volume specification"),
        ({"Binds": ["bad$name:/x"]}, "includes invalid characters for a local volume name"),
        ({"Mounts": [{"Type": "bind", "Source": "/no/such/path", "Target": "/x"}]},
         'invalid mount config for type "bind": bind source path does not exist: /no/such/path'),
        ({"Mounts": [{"Type": "bind", "Target": "/x"}]}, "field Source must not be empty"),
        ({"Mounts": [{"Type": "tmpfs", "Source": "x", "Target": "/x"}]},
         "field Source must not be specified"),
        ({"Mounts": [{"Type": "nfs", "Target": "/x"}]}, "mount type unknown"),
        ({"Mounts": [{"Type": "volume"}]}, "field Target must not be empty"),
    ],
)  # fmt: skip
def test_bad_mounts(host: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidParameter, match=message.replace("(", r"\(").replace("$", r"\$")):
        mount_points({}, host, "local")


def test_mount_points_round_trip_and_api_shape(tmp_path: Path) -> None:
    point = mount_points({}, {"Binds": ["vol:/v:ro"]}, "local")[0]
    assert MountPoint.from_dict(point.to_dict()) == point
    assert point.to_api() == {
        "Type": "volume",
        "Name": "vol",
        "Source": "",
        "Destination": "/v",
        "Mode": "ro",
        "RW": False,
        "Propagation": "",
        "Driver": "local",
    }


def test_mount_options_split_as_mount8_does() -> None:
    parsed = parse_mount_options(
        ("rbind", "ro", "nosuid", "rprivate", "mode=755", "size=65536k", "rw", "ro")
    )
    assert parsed.flags == MountFlag.BIND | MountFlag.REC | MountFlag.RDONLY | MountFlag.NOSUID
    assert parsed.propagation == (MountFlag.PRIVATE | MountFlag.REC,)
    assert parsed.data == "mode=755,size=65536k"
    assert parse_mount_options(("rw",)).flags == 0
    assert MountFlag.propagation() & MountFlag.SLAVE
