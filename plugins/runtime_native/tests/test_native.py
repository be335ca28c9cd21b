"""What only the native runtime promises, checked on real containers: its cgroups and their
removal, the devices cgroup, namespaces it joins, the parent-death signal, the state a later
supervisor cleans up, nothing left on the host, and its speed."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydockerd.plugin import (
    Conflict,
    MountSpec,
    NotFound,
    Resources,
    StartError,
    Stdio,
    SystemError,
)
from pydockerd.testing.drivers import make_driver, mount_points
from pydockerd.testing.runtime import (
    DOCKER_MOUNTS,
    DOCKER_PRIVILEGED_MOUNTS,
    Supervisor,
    host_block_device,
    supervised,
)
from pydockerd_runtime_native.driver import NativeConfig, NativeRuntime

pytestmark = pytest.mark.privileged

CGROUP = Path("/sys/fs/cgroup")
UNIFIED = CGROUP / "unified"
V1_CONTROLLERS = ("memory", "cpu", "cpuacct", "pids", "freezer", "devices", "blkio")


def cgroup_dirs(path: str) -> list[Path]:
    """The directories of cgroup ``path`` that exist, in every hierarchy."""
    return [d / path for d in CGROUP.iterdir() if (d / path).is_dir()]


def host_mounts_below(root: Path) -> list[Path]:
    real = Path(os.path.realpath(root))
    return [p for p in mount_points() if p == real or real in p.parents]


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


async def wait_until(check: object, what: str, seconds: float = 10.0) -> None:
    assert callable(check)
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, f"timed out: {what}"
        await asyncio.sleep(0.01)


async def started(supervisor: Supervisor, *args: str, **changes: object) -> tuple[str, int]:
    spec = supervisor.spec(*args, **changes)  # type: ignore[arg-type]
    process = await supervisor.create(spec)
    await supervisor.start(spec.id)
    return spec.id, process.pid


# --------------------------------------------------------------------------------------
# cgroups


async def test_limits_are_written_and_everything_goes_with_delete(
    supervisor: Supervisor, runtime: NativeRuntime
) -> None:
    resources = Resources(
        memory=64 << 20, memory_swap=64 << 20, cpu_quota=50_000, cpu_period=100_000,
        cpu_shares=512, pids_limit=50,
    )  # fmt: skip
    spec = supervisor.spec("sleep", "1000", resources=resources)
    process = await supervisor.create(spec)
    await supervisor.start(spec.id)
    path = spec.cgroup_path

    def read(controller: str, name: str) -> str:
        return (CGROUP / controller / path / name).read_text().strip()

    assert read("memory", "memory.limit_in_bytes") == str(64 << 20)
    assert read("cpu", "cpu.cfs_quota_us") == "50000"
    assert read("cpu", "cpu.cfs_period_us") == "100000"
    assert read("cpu", "cpu.shares") == "512"
    assert read("pids", "pids.max") == "50"
    assert "a *:* rwm" not in read("devices", "devices.list")
    for controller in V1_CONTROLLERS:
        assert read(controller, "cgroup.procs").split() == [str(process.pid)], controller
    state = json.loads((runtime.context.run_dir / f"{spec.id}.json").read_text())
    assert state["pid"] == process.pid
    assert state["cgroup"]["path"] == path
    assert [p.name for p in runtime.context.run_dir.iterdir()] == [f"{spec.id}.json"], "no tmp"

    await supervisor.delete(spec.id)
    assert not alive(process.pid)
    assert cgroup_dirs(path) == []
    assert cgroup_dirs(supervisor.cgroup_parent) == [], "the test's parent goes too"
    assert not (runtime.context.run_dir / f"{spec.id}.json").exists()
    assert host_mounts_below(supervisor.root) == [], "container mounts never reach the host"


def command(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except FileNotFoundError:
        return ""


async def test_stats(supervisor: Supervisor) -> None:
    container, _ = await started(
        supervisor,
        "sh",
        "-c",
        "dd if=/dev/zero of=/tmp/f bs=1M count=4; dd if=/dev/zero of=/dev/null bs=1M count=2000;"
        " i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; exec sleep 1000",
        resources=Resources(memory=256 << 20, pids_limit=10),
    )
    procs = CGROUP / "pids" / supervisor.cgroup_parent / container / "cgroup.procs"
    await wait_until(
        lambda: [command(int(p)) for p in procs.read_text().split()] == ["sleep"],
        "the work is done",
        30,
    )
    stats = await supervisor.runtime.stats(container)
    assert stats.cpu_total > 0
    assert sum(stats.cpu_percpu) == pytest.approx(stats.cpu_total, rel=0.1)
    assert stats.cpu_user + stats.cpu_system > 0
    assert stats.memory_usage > 0
    assert stats.memory_max_usage >= stats.memory_usage
    assert stats.memory_limit == 256 << 20
    assert "cache" in stats.memory_stat or "file" in stats.memory_stat
    assert stats.pids_current >= 1
    assert stats.pids_limit == 10
    unlimited = await supervisor.runtime.stats((await started(supervisor, "sleep", "1000"))[0])
    assert (unlimited.memory_limit, unlimited.pids_limit) == (0, 0)


async def test_a_cgroup_namespace_and_the_cgroup_filesystem(supervisor: Supervisor) -> None:
    cgroupfs = MountSpec("/sys/fs/cgroup", "cgroup", "cgroup", ("ro", "nosuid", "noexec", "nodev"))
    result = await supervisor.run(
        "sh",
        "-c",
        "cat /proc/self/cgroup; ls /sys/fs/cgroup; cat /sys/fs/cgroup/pids/pids.max;"
        " mkdir /sys/fs/cgroup/pids/x || echo RO",
        mounts=(*DOCKER_MOUNTS, cgroupfs),
        resources=Resources(pids_limit=77),
    )
    lines = result.stdout.splitlines()
    memberships = [line for line in lines if line.count(":") >= 2]
    assert memberships
    assert all(line.endswith(":/") for line in memberships), "the container's cgroup is its root"
    assert set(V1_CONTROLLERS) <= set(lines)
    assert "77" in lines, "pids.max of the container's own cgroup"
    assert lines[-1] == "RO"


@pytest.mark.parametrize("privileged", [False, True])
async def test_sys_and_the_cgroup_filesystem_writable_only_when_privileged(
    supervisor: Supervisor, privileged: bool
) -> None:
    mounts = DOCKER_PRIVILEGED_MOUNTS if privileged else DOCKER_MOUNTS
    result = await supervisor.run("cat", "/proc/self/mounts", mounts=mounts)
    found: dict[str, str] = {}
    for line in result.stdout.splitlines():
        _, point, _, options, *_ = line.split()
        if point == "/sys" or point.startswith("/sys/fs/cgroup"):
            found[point] = options.split(",")[0]
    assert {"/sys", "/sys/fs/cgroup"} <= set(found), found
    assert set(found.values()) == {"rw" if privileged else "ro"}, found


async def test_a_missing_program_leaves_no_cgroup_state_or_process(
    supervisor: Supervisor, runtime: NativeRuntime
) -> None:
    spec = supervisor.spec("nosuchcmd")
    before = children()
    with pytest.raises(StartError, match="executable file not found"):
        await supervisor.create(spec)
    assert cgroup_dirs(spec.cgroup_path) == []
    assert cgroup_dirs(supervisor.cgroup_parent) == []
    assert files(runtime.context.run_dir) == []
    assert children() == before, "the forked process was killed and reaped"


def children() -> set[int]:
    """The pids whose parent is this process (zombies included)."""
    found = set()
    for proc in Path("/proc").iterdir():
        with contextlib.suppress(OSError, IndexError, ValueError):
            if int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1]) == os.getpid():
                found.add(int(proc.name))
    return found


def files(directory: Path) -> list[Path]:
    return list(directory.iterdir())


async def test_a_setup_failure_says_what_and_where(supervisor: Supervisor) -> None:
    bind = MountSpec("/data", "bind", "/nonexistent/source", ("rbind",))
    with pytest.raises(StartError, match=r"mount /nonexistent/source to /data: stat .*no such"):
        await supervisor.create(supervisor.spec("true", mounts=(*DOCKER_MOUNTS, bind)))
    assert cgroup_dirs(supervisor.cgroup_parent) == []
    with pytest.raises(StartError, match="open network namespace /nonexistent"):
        await supervisor.create(
            supervisor.spec("true", namespaces={"mount": "", "network": "/nonexistent"})
        )


# --------------------------------------------------------------------------------------
# namespaces and what the process inherits


@pytest.fixture
def network_namespace() -> Iterator[str]:
    """A network namespace of our own (held by a process), with a veth pair in it."""
    holder = subprocess.Popen(
        [
            "unshare",
            "--net",
            "sh",
            "-c",
            "ip link add probe0 type veth peer name probe1 && echo ready; exec sleep 1000",
        ],
        stdout=subprocess.PIPE,
    )
    assert holder.stdout is not None
    assert holder.stdout.readline() == b"ready\n"
    try:
        yield f"/proc/{holder.pid}/ns/net"
    finally:
        holder.kill()
        holder.wait()


def namespace_of(path: str) -> str:
    """``net:[inode]``: what ``readlink`` of a namespace file says."""
    return str(Path(path).readlink())


async def test_joining_a_network_namespace(supervisor: Supervisor, network_namespace: str) -> None:
    namespaces = {"pid": "", "mount": "", "uts": "", "ipc": "", "network": network_namespace}
    result = await supervisor.run(
        "sh", "-c", "readlink /proc/self/ns/net; ls /sys/class/net", namespaces=namespaces
    )
    link, *interfaces = result.stdout.split()
    assert link == namespace_of(network_namespace)
    assert sorted(interfaces) == ["lo", "probe0", "probe1"]


async def test_the_host_network_when_not_asked_for_one(supervisor: Supervisor) -> None:
    namespaces = {"pid": "", "mount": "", "uts": "", "ipc": ""}
    result = await supervisor.run("readlink", "/proc/self/ns/net", namespaces=namespaces)
    assert result.stdout.strip() == namespace_of("/proc/self/ns/net")


def sysctl(key: str) -> str:
    return Path("/proc/sys", key).read_text().strip()


async def test_sysctls(supervisor: Supervisor) -> None:
    host_ttl = sysctl("net/ipv4/ip_default_ttl")
    wanted = "42" if host_ttl != "42" else "43"
    result = await supervisor.run(
        "cat", "/proc/sys/net/ipv4/ip_default_ttl", "/proc/sys/kernel/domainname",
        sysctls={"net.ipv4.ip_default_ttl": wanted}, domainname="example.org",
    )  # fmt: skip
    assert result.stdout.split() == [wanted, "example.org"], result
    assert sysctl("net/ipv4/ip_default_ttl") == host_ttl, "the host's is not changed"


async def test_only_stdio_is_inherited_and_signals_are_default(supervisor: Supervisor) -> None:
    """No descriptor of the supervisor, no ignored or blocked signal (Python ignores
    SIGPIPE; the runtime blocks every signal around its fork)."""
    fds = await supervisor.run("ls", "/proc/self/fd")
    assert fds.stdout.split() == ["0", "1", "2", "3"], fds  # 3: ls's own directory
    status = await supervisor.run("grep", "-E", "Sig(Ign|Blk)", "/proc/self/status")
    assert status.stdout.split("\n")[:2] == [
        "SigBlk:\t0000000000000000",
        "SigIgn:\t0000000000000000",
    ]


async def test_a_symlink_in_the_image_cannot_lead_a_mount_outside(
    supervisor: Supervisor, runtime_dir: Path
) -> None:
    outside = runtime_dir / "outside"
    outside.mkdir()
    (supervisor.root / "escape").symlink_to(f"/../../../../{outside}")
    source = runtime_dir / "data"
    source.mkdir()
    (source / "f").write_text("data\n")
    bind = MountSpec("/escape/sub", "bind", str(source), ("rbind",))
    result = await supervisor.run("cat", f"{outside}/sub/f", mounts=(*DOCKER_MOUNTS, bind))
    assert result.stdout == "data\n"
    assert list(outside.iterdir()) == [], "nothing was made or mounted outside the root"
    assert (supervisor.root / str(outside).lstrip("/") / "sub").is_dir()


# --------------------------------------------------------------------------------------
# lifecycle details


async def test_conflicts(supervisor: Supervisor) -> None:
    spec = supervisor.spec("sleep", "1000")
    await supervisor.create(spec)
    with pytest.raises(Conflict, match="exists already"):
        await supervisor.create(spec)
    await supervisor.start(spec.id)
    with pytest.raises(Conflict, match="started already"):
        await supervisor.start(spec.id)
    await supervisor.runtime.pause(spec.id)
    with pytest.raises(Conflict, match="is paused"):
        await supervisor.exec(spec.id, "true")
    await supervisor.runtime.resume(spec.id)
    with pytest.raises(NotFound):
        await supervisor.start("f" * 64)
    with pytest.raises(NotFound):
        await supervisor.runtime.kill("../escape", signal.SIGKILL)


async def test_exec_shares_the_cgroup_and_a_terminal(supervisor: Supervisor) -> None:
    container, pid = await started(supervisor, "sleep", "1000")
    inside = await supervisor.exec(
        container, "sh", "-c", "cat /proc/self/cgroup; tty; stty size", terminal=True,
        console_size=(24, 80),
    )  # fmt: skip
    assert await inside.wait() == 0
    out = (await inside.output())[0].decode().replace("\r", "")
    assert "memory:/\n" in out
    assert out.rstrip().endswith("24 80")
    assert pid in await supervisor.runtime.processes(container)


async def test_exec_details(supervisor: Supervisor) -> None:
    container, _ = await started(supervisor, "sleep", "1000")
    with pytest.raises(StartError, match=r'chdir to cwd \("/nowhere"\).*no such file or directory'):
        await supervisor.exec(container, "true", cwd="/nowhere")
    user = await supervisor.exec(container, "grep", "Cap[EP]", "/proc/self/status", uid=1000)
    assert await user.wait() == 0
    assert (await user.output())[0].split() == [b"CapPrm:", b"0" * 16, b"CapEff:", b"0" * 16]
    in_tmp = await supervisor.exec(container, "pwd", cwd="/tmp")
    assert await in_tmp.wait() == 0
    assert (await in_tmp.output())[0] == b"/tmp\n"


async def test_forking_off_the_main_thread_is_refused(supervisor: Supervisor) -> None:
    spec = supervisor.spec("true")
    with pytest.raises(SystemError, match="main thread only"):
        await asyncio.to_thread(asyncio.run, supervisor.runtime.create(spec, Stdio(0, 1, 2)))
    assert cgroup_dirs(supervisor.cgroup_parent) == []


def test_a_new_supervisor_cleans_up_after_a_dead_one(runtime_dir: Path, busybox_root: Path) -> None:
    """The process that made a container dies: the container dies with it (parent-death
    signal), and a new runtime instance deletes its cgroup from the state file."""
    parent = f"pydockerd-test-{os.getpid()}-orphan"
    container_id = f"{os.getpid():x}".rjust(64, "e")
    script = f"""
import asyncio, sys
from pathlib import Path
from pydockerd.testing.drivers import make_driver
from pydockerd.testing.runtime import Supervisor
from pydockerd_runtime_native.driver import NativeRuntime

async def main():
    runtime = make_driver(NativeRuntime, Path({str(runtime_dir / "runtime")!r}))
    supervisor = Supervisor(runtime, Path({str(busybox_root)!r}), cgroup_parent={parent!r})
    spec = supervisor.spec("sleep", "1000", id={container_id!r})
    process = await supervisor.create(spec)
    await supervisor.start(spec.id)
    print(process.pid, flush=True)
    await asyncio.sleep(1000)

asyncio.run(main())
"""
    creator = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE)
    try:
        assert creator.stdout is not None
        pid = int(creator.stdout.readline())
        assert alive(pid)
        creator.kill()
        creator.wait()
        deadline = time.monotonic() + 10
        while alive(pid):
            assert time.monotonic() < deadline, "the container did not die with its parent"
            time.sleep(0.01)
    finally:
        if creator.poll() is None:
            creator.kill()
            creator.wait()
        later = make_driver(NativeRuntime, runtime_dir / "runtime")

        async def clean_up() -> None:
            await later.kill(container_id, signal.SIGKILL, all_processes=True)  # from disk
            await later.delete(container_id)

        asyncio.run(clean_up())
    assert cgroup_dirs(f"{parent}/{container_id}") == []
    assert cgroup_dirs(parent) == []
    assert files(runtime_dir / "runtime/run") == []


# --------------------------------------------------------------------------------------
# cgroup v2, on this host's cgroup2 mount


@pytest.mark.skipif(not (UNIFIED / "cgroup.procs").exists(), reason="no cgroup2 mount here")
async def test_a_container_on_cgroup_v2(runtime_dir: Path, busybox_root: Path) -> None:
    config = NativeConfig(cgroup_version="2", cgroup_root=str(UNIFIED))
    runtime = make_driver(NativeRuntime, runtime_dir / "v2", config)
    async with supervised(runtime, busybox_root) as supervisor:
        container, pid = await started(supervisor, "sleep", "1000")
        spec_path = UNIFIED / supervisor.cgroup_parent / container
        assert (spec_path / "cgroup.procs").read_text().split() == [str(pid)]
        await runtime.pause(container)
        assert "frozen 1" in (spec_path / "cgroup.events").read_text()
        await runtime.resume(container)
        assert (await runtime.stats(container)).cpu_total >= 0
        assert await runtime.processes(container) == [pid]
        major, minor = host_block_device()
        inside = await supervisor.exec(
            container, "sh", "-c", f"mknod /tmp/disk b {major} {minor}; head -c 1 /tmp/disk"
        )
        assert await inside.wait() != 0
        assert b"Operation not permitted" in (await inside.output())[1], "the eBPF device filter"
        await runtime.kill(container, signal.SIGKILL, all_processes=True)
        await wait_until(lambda: not alive(pid), "cgroup.kill")
        await supervisor.delete(container)
        assert not (UNIFIED / supervisor.cgroup_parent).exists()
        if "memory" not in (UNIFIED / "cgroup.controllers").read_text().split():
            with pytest.raises(StartError, match=r"create cgroup .*memory\.max"):
                await supervisor.create(
                    supervisor.spec("true", resources=Resources(memory=1 << 26))
                )
            assert not (UNIFIED / supervisor.cgroup_parent).exists()
