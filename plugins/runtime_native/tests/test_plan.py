"""What the parent works out before forking (no kernel needed)."""

from __future__ import annotations

import stat

import pytest
from pydockerd.plugin import (
    DEFAULT_CAPABILITIES,
    ContainerSpec,
    Device,
    MountFlag,
    MountSpec,
    ProcessSpec,
    StartError,
)
from pydockerd_runtime_native import syscalls as sc
from pydockerd_runtime_native.plan import plan_init, plan_process


def test_capabilities() -> None:
    plan = plan_process(ProcessSpec(args=("x",)))
    mask = sum(1 << sc.CAPABILITIES[name] for name in DEFAULT_CAPABILITIES)
    assert plan.capabilities == mask
    assert all(not mask >> n & 1 for n in plan.bounding_drop)
    assert len(plan.bounding_drop) == sc.last_capability() + 1 - len(DEFAULT_CAPABILITIES)
    assert plan_process(ProcessSpec(args=("x",), uid=1000)).capabilities == 0
    added = plan_process(ProcessSpec(args=("x",), capabilities=("CAP_NET_ADMIN",)))
    assert added.capabilities == 1 << sc.CAPABILITIES["CAP_NET_ADMIN"]
    with pytest.raises(StartError, match="unknown capability 'CAP_FLY'"):
        plan_process(ProcessSpec(args=("x",), capabilities=("CAP_FLY",)))
    with pytest.raises(StartError, match="unknown capability 'net_admin'"):
        # the spec's list is final (the daemon canonicalised --cap-add): names are CAP_*
        plan_process(ProcessSpec(args=("x",), capabilities=("net_admin",)))
    with pytest.raises(StartError, match="no command specified"):
        plan_process(ProcessSpec(args=()))


def test_search_path() -> None:
    plan = plan_process(ProcessSpec(args=("x",), env=("PATH=/a::/b", "HOME=/")))
    assert plan.search_path == ("/a", ".", "/b")
    assert plan_process(ProcessSpec(args=("x",))).search_path == ()


def spec(**changes: object) -> ContainerSpec:
    values: dict[str, object] = {
        "id": "c",
        "root": "/",
        "process": ProcessSpec(args=("x",)),
        "namespaces": {"mount": "", "pid": "", "uts": "", "network": "/run/netns/x"},
        **changes,
    }
    return ContainerSpec(**values)  # type: ignore[arg-type]


def test_init_plan() -> None:
    plan = plan_init(
        spec(
            hostname="h",
            mounts=(
                MountSpec("/data", "bind", "/src", ("rbind", "ro")),
                MountSpec("/tmp", "tmpfs", "tmpfs", ("nodev", "size=1m")),
            ),
            devices=(Device("/dev/sda", "b", 8, 0, 0o660),),
        ),
        (),
    )
    assert plan.unshare_flags == sc.CLONE_NEWNS | sc.CLONE_NEWUTS, "pid: the parent; net: joined"
    assert plan.hostname == "h"
    assert not plan.loopback, "a joined network namespace is its owner's"
    bind, tmpfs = plan.mounts
    assert (bind.kind, bind.remount_flags) == ("bind", MountFlag.RDONLY)
    assert (tmpfs.kind, tmpfs.flags, tmpfs.data) == ("fs", MountFlag.NODEV, "size=1m")
    (device,) = plan.devices
    assert device.mode == stat.S_IFBLK | 0o660


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"namespaces": {"pid": ""}}, "a container needs a new mount namespace"),
        ({"namespaces": {"mount": "", "time": ""}}, "unknown namespace type 'time'"),
        ({"mounts": (MountSpec("data", "bind", "/src"),)}, "'data' is not an absolute path"),
        ({"devices": (Device("/dev/x", "p", 1, 1),)}, "unknown type 'p'"),
    ],
)
def test_init_plan_refusals(changes: dict[str, object], message: str) -> None:
    with pytest.raises(StartError, match=message):
        plan_init(spec(**changes), ())
