"""Container cgroups for real: v1 on this host's hierarchies, v2 on its cgroup2 mount (which
holds no limiting controller on a hybrid host) and, for the limit files, on a directory tree
shaped like a cgroup2 filesystem; and the mountinfo reader the layout is found with."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
from pydockerd.plugin import (
    DEFAULT_DEVICES,
    Device,
    Mount,
    Resources,
    mount,
    mounted,
    mountinfo,
    mounts_under,
    unmount,
)
from pydockerd.testing.drivers import mount_safe_directory
from pydockerd_runtime_native.cgroups import (
    DEFAULT_DEVICE_RULES,
    Cgroup,
    CgroupUnavailable,
    CgroupV1,
    CgroupV2,
    Layout,
    cpu_weight,
    device_allow_rules,
    split_path,
)

V1 = Path("/sys/fs/cgroup/memory/cgroup.procs").exists()
UNIFIED = Path("/sys/fs/cgroup/unified")


def leftovers(parent: str) -> list[Path]:
    return [p for p in Path("/sys/fs/cgroup").glob(f"*/{parent}") if p.exists()]


def release(cgroup: Cgroup) -> None:
    """Whatever a test left: thawed, killed, removed."""
    if cgroup.exists():
        cgroup.set_frozen(False)
        cgroup.signal_all(signal.SIGKILL)
        deadline = time.monotonic() + 10
        while cgroup.procs() and time.monotonic() < deadline:
            time.sleep(0.01)
    cgroup.remove()


def freeze(cgroup: Cgroup) -> None:
    cgroup.set_frozen(True)
    deadline = time.monotonic() + 5
    while not cgroup.frozen():
        assert time.monotonic() < deadline, "not frozen after 5 s"
        time.sleep(0.01)


def test_cpu_weight_as_runc_converts_shares() -> None:
    assert [cpu_weight(s) for s in (0, 2, 1024, 262144, 10**7)] == [0, 1, 39, 10000, 10000]


def test_paths() -> None:
    assert split_path("/pydockerd//abc/") == ("pydockerd", "abc")
    for bad in ("", "/", "a/../b", "./a"):
        with pytest.raises(ValueError, match="invalid cgroup path"):
            split_path(bad)


def test_device_rules_each_once() -> None:
    """A spec's devices are Docker's default nodes, which the default rules allow already."""
    assert device_allow_rules(DEFAULT_DEVICES) == DEFAULT_DEVICE_RULES
    fuse = Device("/dev/fuse", "c", 10, 229)
    assert device_allow_rules([*DEFAULT_DEVICES, fuse, fuse]) == (
        *DEFAULT_DEVICE_RULES,
        "c 10:229 rwm",
    )


def test_layout_errors(tmp_path: Path) -> None:
    with pytest.raises(CgroupUnavailable, match=r"controllers not mounted .*memory, cpu, pids"):
        Layout.detect("1", str(tmp_path))
    with pytest.raises(CgroupUnavailable, match="no cgroup v2 hierarchy at"):
        Layout.detect("2", str(tmp_path))
    layout = Layout.detect("2", str(UNIFIED)) if UNIFIED.exists() else None
    if layout is not None:
        assert layout.device_filter, "a real cgroup2 mount gets the device program"
        assert Layout.from_dict(layout.to_dict()) == layout


# --------------------------------------------------------------------------------------
# v1


pytestmark_v1 = pytest.mark.skipif(not V1, reason="no cgroup v1 hierarchies here")


@pytestmark_v1
@pytest.mark.privileged
def test_v1_auto_detected_on_a_hybrid_host() -> None:
    layout = Layout.detect()
    assert layout.version == "1"
    assert layout.mounts["memory"] == "/sys/fs/cgroup/memory"
    assert ("memory", "cgroup", "memory") in layout.container_mounts()


@pytestmark_v1
@pytest.mark.privileged
def test_v1_limits_processes_and_removal(parent: str, sleeper: int) -> None:
    cgroup = Layout.detect("1").cgroup(f"{parent}/c1")
    assert isinstance(cgroup, CgroupV1)
    resources = Resources(
        memory=64 << 20,
        memory_swap=128 << 20,
        cpu_quota=50_000,
        cpu_period=200_000,
        cpu_shares=512,
        pids_limit=42,
    )
    cgroup.create(resources, [Device("/dev/fuse", "c", 10, 229)])
    try:
        base = Path("/sys/fs/cgroup")
        path = f"{parent}/c1"

        def read(controller: str, name: str) -> str:
            return (base / controller / path / name).read_text().strip()

        assert read("memory", "memory.limit_in_bytes") == str(64 << 20)
        if (base / "memory" / path / "memory.memsw.limit_in_bytes").exists():
            assert read("memory", "memory.memsw.limit_in_bytes") == str(128 << 20)
        assert read("cpu", "cpu.cfs_quota_us") == "50000"
        assert read("cpu", "cpu.cfs_period_us") == "200000"
        assert read("cpu", "cpu.shares") == "512"
        assert read("pids", "pids.max") == "42"
        rules = read("devices", "devices.list").splitlines()
        assert sorted(rules) == sorted([*DEFAULT_DEVICE_RULES, "c 10:229 rwm"])

        cgroup.add(sleeper)
        assert cgroup.procs() == [sleeper]
        for controller in ("memory", "cpu", "cpuacct", "pids", "freezer", "devices", "blkio"):
            assert str(sleeper) in read(controller, "cgroup.procs").split(), controller
        freeze(cgroup)
        stats = cgroup.stats()
        assert (stats.memory_limit, stats.pids_limit, stats.pids_current) == (64 << 20, 42, 1)
        cgroup.signal_all(signal.SIGKILL)  # thaws to let it die
        os.waitpid(sleeper, 0)
        assert not cgroup.frozen()
        assert not cgroup.oom_killed()
    finally:
        release(cgroup)
    assert not cgroup.exists()
    assert leftovers(parent) == [], "the parent went with its last child"


@pytestmark_v1
@pytest.mark.privileged
def test_v1_a_refused_limit_leaves_nothing(parent: str) -> None:
    cgroup = Layout.detect("1").cgroup(f"{parent}/c1")
    with pytest.raises(OSError, match=r"memory\.memsw\.limit_in_bytes|Invalid argument"):
        cgroup.create(Resources(memory=64 << 20, memory_swap=16 << 20), [])
    assert leftovers(parent) == []


@pytestmark_v1
@pytest.mark.privileged
def test_v1_busy_parent_stays(parent: str) -> None:
    layout = Layout.detect("1")
    first, second = layout.cgroup(f"{parent}/a"), layout.cgroup(f"{parent}/b")
    first.create(Resources(), [])
    second.create(Resources(), [])
    first.remove()
    assert leftovers(parent), "b still needs the parent"
    second.remove()
    assert leftovers(parent) == []


# --------------------------------------------------------------------------------------
# v2, real (the freezer, cgroup.procs and cgroup.kill are the core's, no controller needed)


@pytest.mark.skipif(not (UNIFIED / "cgroup.procs").exists(), reason="no cgroup2 mount")
@pytest.mark.privileged
def test_v2_for_real(parent: str, sleeper: int) -> None:
    cgroup = Layout.detect("2", str(UNIFIED)).cgroup(f"{parent}/c1")
    assert isinstance(cgroup, CgroupV2)
    cgroup.create(Resources(), [])
    try:
        assert (UNIFIED / parent / "c1").is_dir()
        cgroup.add(sleeper)
        assert cgroup.procs() == [sleeper]
        freeze(cgroup)
        cgroup.set_frozen(False)
        assert cgroup.stats().cpu_total >= 0
        cgroup.signal_all(signal.SIGKILL)  # cgroup.kill
        _, status = os.waitpid(sleeper, 0)
        assert os.WTERMSIG(status) == signal.SIGKILL
        assert not cgroup.oom_killed()
    finally:
        release(cgroup)
    assert not (UNIFIED / parent).exists()


@pytest.mark.skipif(not (UNIFIED / "cgroup.procs").exists(), reason="no cgroup2 mount")
@pytest.mark.privileged
def test_v2_a_missing_controller_is_an_error_and_leaves_nothing(parent: str) -> None:
    """On a hybrid host the memory controller is bound to v1: no memory.max."""
    cgroup = Layout.detect("2", str(UNIFIED)).cgroup(f"{parent}/c1")
    if "memory" in (UNIFIED / "cgroup.controllers").read_text().split():
        pytest.skip("this cgroup2 mount has the memory controller")
    with pytest.raises(FileNotFoundError, match=r"memory\.max"):
        cgroup.create(Resources(memory=64 << 20), [])
    assert not (UNIFIED / parent).exists()


# --------------------------------------------------------------------------------------
# v2, on a tree shaped like cgroupfs


_V2_LEAF = {
    "cgroup.procs": "",
    "cgroup.freeze": "0",
    "cgroup.events": "populated 1\nfrozen 0\n",
    "memory.max": "max",
    "memory.swap.max": "max",
    "memory.current": "4096000",
    "memory.peak": "8192000",
    "memory.stat": "anon 1000\nfile 2000\n",
    "memory.events": "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n",
    "cpu.max": "max 100000",
    "cpu.weight": "100",
    "cpu.stat": "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\n"
    "nr_periods 10\nnr_throttled 2\nthrottled_usec 300\n",
    "pids.max": "max",
    "pids.current": "3",
    "io.stat": "8:0 rbytes=100 wbytes=200 rios=1 wios=2 dbytes=0 dios=0\n"
    "8:16 rbytes=1 wbytes=2 rios=1 wios=1 dbytes=0 dios=0\n",
}


def fake_v2(root: Path, path: str) -> Path:
    """What the kernel would make: cgroup.controllers/subtree_control at every level, the
    interface files in the leaf."""
    current = root
    for part in ["", *path.split("/")]:
        current = current / part if part else current
        current.mkdir(exist_ok=True)
        (current / "cgroup.controllers").write_text("cpuset cpu io memory pids\n")
        (current / "cgroup.subtree_control").write_text("")
    for name, text in _V2_LEAF.items():
        (current / name).write_text(text)
    return current


def test_v2_limit_files_and_counters(tmp_path: Path) -> None:
    leaf = fake_v2(tmp_path, "pydockerd/c1")
    cgroup: Cgroup = Layout("2", {"": str(tmp_path)}, device_filter=False).cgroup("pydockerd/c1")
    cgroup.create(
        Resources(
            memory=64 << 20,
            memory_swap=96 << 20,
            cpu_quota=50_000,
            cpu_period=0,
            cpu_shares=1024,
            pids_limit=42,
        ),
        [],
    )
    assert (tmp_path / "cgroup.subtree_control").read_text() == "+cpu +memory +pids +io"
    assert (tmp_path / "pydockerd/cgroup.subtree_control").read_text() == "+cpu +memory +pids +io"
    assert (leaf / "cgroup.subtree_control").read_text() == "", "the leaf holds processes"
    assert (leaf / "memory.max").read_text() == str(64 << 20)
    assert (leaf / "memory.swap.max").read_text() == str(32 << 20)
    assert (leaf / "cpu.max").read_text() == "50000 100000"
    assert (leaf / "cpu.weight").read_text() == "39"
    assert (leaf / "pids.max").read_text() == "42"
    cgroup.add(1234)
    assert (leaf / "cgroup.procs").read_text() == "1234"
    cgroup.set_frozen(True)
    assert (leaf / "cgroup.freeze").read_text() == "1"
    assert cgroup.oom_killed()
    stats = cgroup.stats()
    assert (stats.cpu_total, stats.cpu_user, stats.cpu_system) == (1_500_000, 1_000_000, 500_000)
    assert (stats.periods, stats.throttled_periods, stats.throttled_time) == (10, 2, 300_000)
    assert (stats.memory_usage, stats.memory_max_usage, stats.memory_limit) == (
        4096000,
        8192000,
        64 << 20,
    )
    assert stats.memory_stat == {"anon": 1000, "file": 2000}
    assert (stats.pids_current, stats.pids_limit) == (3, 42)
    assert (stats.io_read_bytes, stats.io_write_bytes) == (101, 202)


def test_v2_unlimited_swap_and_no_quota(tmp_path: Path) -> None:
    leaf = fake_v2(tmp_path, "p/c")
    Layout("2", {"": str(tmp_path)}, device_filter=False).cgroup("p/c").create(
        Resources(memory=1 << 30, memory_swap=-1, cpu_period=50_000), []
    )
    assert (leaf / "memory.swap.max").read_text() == "max"
    assert (leaf / "cpu.max").read_text() == "max 50000"
    assert (leaf / "pids.max").read_text() == "max", "untouched"


@pytest.mark.privileged
def test_mountinfo_undoes_every_escape() -> None:
    """Layout.detect reads the hierarchies through pydockerd.plugin.mountinfo: a mount point
    with a space, a tab, a newline or a backslash reads back as it is."""
    with mount_safe_directory() as base:
        target = base / "a b\tc\nd\\e"
        target.mkdir()
        mount(Mount("tmpfs", "src\\with space", ("size=64k",)), target)
        found = [m for m in mountinfo() if m.mount_point == str(target)]
        assert [(m.fstype, m.source, m.root) for m in found] == [("tmpfs", "src\\with space", "/")]
        assert "size=64k" in found[0].super_options
        assert mounted(target)
        assert mounts_under(base) == [target]
        unmount(target)
        assert mounts_under(base) == []
