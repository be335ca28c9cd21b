"""The runtime conformance suite: what every :class:`~pydockerd.plugin.Runtime` must do,
checked with real containers on the real kernel, through the :class:`Runtime` interface only.

Use it from a runtime package's tests by deriving a ``Test*`` class from :class:`RuntimeSuite`
and naming the runtime class; pytest (with pytest-asyncio in ``asyncio_mode = "auto"``) runs
every ``test_*`` method against it::

    # my_runtime/tests/test_conformance.py
    from pydockerd.testing.runtime import RuntimeSuite
    from my_runtime.driver import MyRuntime

    class TestMyRuntimeConformance(RuntimeSuite):
        runtime_class = MyRuntime

A runtime that needs a configuration provides the ``runtime`` fixture itself, built with
:func:`~pydockerd.testing.drivers.make_driver`.

The suite plays the supervisor (:class:`Supervisor`): it makes each process's stdio (pipes,
or a pseudo-terminal), calls ``create`` and ``start`` on the event loop's thread, reaps the
pids it is given with ``waitpid`` and keeps their exit statuses, and calls ``delete`` once a
container's first process has exited. Containers run a root filesystem made from Debian's
static busybox (:func:`make_busybox_root`, package ``busybox-static``) with the mounts,
devices and namespaces the daemon gives every container (:func:`container_spec`). Each
test's containers live in a cgroup parent of their own (``pydockerd-test-<pid>-<n>``), so
tests may run in parallel; whatever a test leaves is killed and deleted afterwards, even
when it fails.

The tests need root.

What the suite checks:

1. output through stdout and stderr pipes, input through stdin; exit codes; a missing
   program's words (``executable file not found``), ``permission denied`` and
   ``is a directory`` from ``create``, with nothing left behind; an ``execve`` failure at
   ``start`` (``no such file or directory``, exit 127);
2. the first process is PID 1 and sees only its container's processes; the host name, the
   environment (exactly the spec's), the working directory (created when missing), the
   user and groups are the spec's;
3. only a loopback interface, up; masked paths empty, read-only paths read-only;
   capabilities (Docker's set, a dropped one gone from the bounding set); no_new_privs;
   Docker's device nodes, and no access to a host block device through a node made inside;
4. a read-only root with a writable tmpfs; read-only and read-write binds;
5. ``kill`` of the first process and of every process; ``delete`` of a running container,
   of a created-but-not-started one, of an unknown one, twice;
6. ``exec``: same namespaces, same root, its own exit code, ``StartError`` for a missing
   program;
7. ``pause``/``resume`` stop and restart a counting process; ``processes`` and ``stats``;
8. a memory limit ends in the OOM killer (SIGKILL, ``oom_killed``); a pids limit holds;
9. a terminal: ``tty`` and ``stty size`` of ``console_size``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import pytest

from pydockerd.containers.runspec import DEFAULT_PATH, default_mounts
from pydockerd.plugin import (
    ALL_CAPABILITIES,
    DEFAULT_CAPABILITIES,
    DEFAULT_DEVICES,
    DEFAULT_MASKED_PATHS,
    DEFAULT_READONLY_PATHS,
    ContainerSpec,
    MountSpec,
    NotFound,
    ProcessSpec,
    Resources,
    Runtime,
    StartError,
    Stdio,
)
from pydockerd.testing.drivers import make_driver

__all__ = [
    "BUSYBOX",
    "DOCKER_MOUNTS",
    "DOCKER_NAMESPACES",
    "DOCKER_PRIVILEGED_MOUNTS",
    "Process",
    "Result",
    "RuntimeSuite",
    "Supervisor",
    "capability_mask",
    "container_spec",
    "host_block_device",
    "make_busybox_root",
    "runtime_directory",
    "supervised",
]

R = TypeVar("R", bound=Runtime)

BUSYBOX = "/bin/busybox"
"""Debian's static busybox (``apt-get install busybox-static``)."""

_ENV = (f"PATH={DEFAULT_PATH}", "HOME=/root")

DOCKER_MOUNTS = tuple(default_mounts(64 << 20, privileged=False))
"""The mounts every Docker container starts with (the daemon's own list)."""

DOCKER_PRIVILEGED_MOUNTS = tuple(default_mounts(64 << 20, privileged=True))
"""The same for ``--privileged``: ``/sys`` and ``/sys/fs/cgroup`` read-write."""

DOCKER_NAMESPACES = {"pid": "", "mount": "", "uts": "", "ipc": "", "network": "", "cgroup": ""}
"""A new namespace of every type (``--network none``)."""

_USERS = """root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
user:x:1000:1000:user:/home/user:/bin/sh
nobody:x:65534:65534:nobody:/home:/bin/false
"""
_GROUPS = """root:x:0:
daemon:x:1:
user:x:1000:
staff:x:50:user
nogroup:x:65534:
"""
_DIRECTORIES = ("bin", "dev", "etc", "home", "proc", "root", "sys", "tmp", "usr", "var")
_counter = itertools.count()
WAIT_SECONDS = 30.0
"""How long the suite waits for a process to exit or for its output."""
_applets: list[str] = []


def make_busybox_root(directory: Path, busybox: str = BUSYBOX) -> Path:
    """A root filesystem in ``directory`` (created): ``/bin/busybox`` with a symlink per
    applet, ``/etc/passwd`` and ``/etc/group`` (root, user 1000, nobody), the usual empty
    directories."""
    if not Path(busybox).is_file():
        pytest.skip(f"{busybox} is missing: apt-get install busybox-static")
    if not _applets:
        listing = subprocess.run([busybox, "--list"], capture_output=True, text=True, check=True)
        _applets.extend(name for name in listing.stdout.split() if name != "busybox")
    for name in _DIRECTORIES:
        (directory / name).mkdir(parents=True, exist_ok=True)
    (directory / "tmp").chmod(0o1777)
    shutil.copy2(busybox, directory / "bin/busybox")
    for applet in _applets:
        (directory / "bin" / applet).symlink_to("busybox")
    (directory / "etc/passwd").write_text(_USERS)
    (directory / "etc/group").write_text(_GROUPS)
    return directory


def container_spec(
    root: Path,
    *args: str,
    cgroup_parent: str,
    process: dict[str, Any] | None = None,
    **changes: Any,
) -> ContainerSpec:
    """A spec as the daemon makes one for ``docker run --network none <image> <args>``;
    ``process`` changes :class:`ProcessSpec` fields, ``changes`` :class:`ContainerSpec`
    ones. The container's ID is fresh, its cgroup ``<cgroup_parent>/<id>``."""
    container_id = changes.pop("id", None) or f"{os.getpid():x}{next(_counter):04x}".rjust(64, "0")
    proc = ProcessSpec(**{"args": args, "env": _ENV, **(process or {})})
    values: dict[str, Any] = {
        "id": container_id,
        "root": str(root),
        "process": proc,
        "hostname": "box",
        "mounts": DOCKER_MOUNTS,
        "devices": DEFAULT_DEVICES,
        "namespaces": dict(DOCKER_NAMESPACES),
        "cgroup_path": f"{cgroup_parent}/{container_id}",
    }
    return ContainerSpec(**{**values, **changes})


def capability_mask(names: tuple[str, ...]) -> int:
    """The bit mask ``/proc/<pid>/status`` shows for ``names`` (``CAP_*``): bit n is
    capability n, the position of its name in :data:`ALL_CAPABILITIES`."""
    return sum(1 << ALL_CAPABILITIES.index(name) for name in names)


# --------------------------------------------------------------------------------------
# a supervisor


async def _read_all(fd: int) -> bytes:
    """Everything from ``fd`` until end-of-file (EIO on a pty whose other side closed);
    ``fd`` is closed afterwards."""
    loop = asyncio.get_running_loop()
    os.set_blocking(fd, False)
    chunks: list[bytes] = []
    done: asyncio.Future[None] = loop.create_future()

    def readable() -> None:
        while not done.done():
            try:
                data = os.read(fd, 65536)
            except BlockingIOError:
                return
            except OSError:  # EIO: the terminal's last user closed it
                data = b""
            if not data:
                done.set_result(None)
                return
            chunks.append(data)

    loop.add_reader(fd, readable)
    try:
        await done
    finally:
        loop.remove_reader(fd)
        os.close(fd)
    return b"".join(chunks)


@dataclass
class Process:
    """A process the supervisor holds: its pid, output being read, and its exit."""

    pid: int
    stdout: asyncio.Task[bytes]
    stderr: asyncio.Task[bytes] | None
    stdin: int | None
    exited: asyncio.Future[int]

    async def wait(self) -> int:
        """The exit code: the process's, or minus the signal that ended it (at most
        :data:`WAIT_SECONDS`)."""
        async with asyncio.timeout(WAIT_SECONDS):
            return os.waitstatus_to_exitcode(await self.exited)

    async def output(self) -> tuple[bytes, bytes]:
        """All of stdout and stderr (with a terminal, everything is stdout)."""
        async with asyncio.timeout(WAIT_SECONDS):
            out = await self.stdout
            err = await self.stderr if self.stderr is not None else b""
        return out, err

    def write(self, data: bytes) -> None:
        assert self.stdin is not None, "the process has no stdin pipe"
        os.write(self.stdin, data)

    def close_stdin(self) -> None:
        if self.stdin is not None:
            os.close(self.stdin)
            self.stdin = None


@dataclass(frozen=True)
class Result:
    exit_code: int
    stdout: str
    stderr: str


@dataclass
class Supervisor:
    """What the suite does in place of pydockerd's supervisor: the stdio, the calls on the
    event loop's thread, the reaping (a pidfd per pid, then ``waitpid``) and the clean-up."""

    runtime: Runtime
    root: Path
    cgroup_parent: str = field(
        default_factory=lambda: f"pydockerd-test-{os.getpid()}-{next(_counter)}"
    )
    containers: dict[str, Process] = field(default_factory=dict)
    processes: list[Process] = field(default_factory=list)

    def spec(
        self, *args: str, process: dict[str, Any] | None = None, **changes: Any
    ) -> ContainerSpec:
        """:func:`container_spec` in this supervisor's root and cgroup parent."""
        return container_spec(
            self.root, *args, cgroup_parent=self.cgroup_parent, process=process, **changes
        )

    def _watch(self, pid: int) -> asyncio.Future[int]:
        loop = asyncio.get_running_loop()
        exited: asyncio.Future[int] = loop.create_future()
        pidfd = os.pidfd_open(pid)

        def reap() -> None:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                loop.remove_reader(pidfd)
                os.close(pidfd)
                exited.set_result(status)

        loop.add_reader(pidfd, reap)
        reap()
        return exited

    async def _launch(
        self, start: Callable[[Stdio], Awaitable[int]], *, terminal: bool, stdin: bool
    ) -> Process:
        """Make stdio, call ``start(stdio)`` for the pid, watch it."""
        loop = asyncio.get_running_loop()
        if terminal:
            master, slave = os.openpty()
            os.set_inheritable(master, False)
            stdio, close = Stdio(slave, slave, slave), [slave]
            readers: list[int] = [os.dup(master)]
            writer: int | None = master
        else:
            out_r, out_w = os.pipe2(os.O_CLOEXEC)
            err_r, err_w = os.pipe2(os.O_CLOEXEC)
            if stdin:
                in_r, writer = os.pipe2(os.O_CLOEXEC)
            else:
                in_r, writer = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC), None
            stdio, close, readers = Stdio(in_r, out_w, err_w), [in_r, out_w, err_w], [out_r, err_r]
        try:
            pid = await start(stdio)
        except BaseException:
            for fd in [*readers, *([writer] if writer is not None else [])]:
                os.close(fd)
            raise
        finally:
            for fd in close:
                os.close(fd)
        tasks = [loop.create_task(_read_all(fd)) for fd in readers]
        process = Process(
            pid, tasks[0], tasks[1] if len(tasks) > 1 else None, writer, self._watch(pid)
        )
        self.processes.append(process)
        return process

    async def create(self, spec: ContainerSpec, *, stdin: bool = False) -> Process:
        """``runtime.create`` with fresh stdio (a pty when ``spec.process.terminal``)."""

        async def create(stdio: Stdio) -> int:
            return await self.runtime.create(spec, stdio)

        process = await self._launch(create, terminal=spec.process.terminal, stdin=stdin)
        self.containers[spec.id] = process
        return process

    async def start(self, container_id: str) -> None:
        await self.runtime.start(container_id)

    async def exec(
        self, container_id: str, *args: str, stdin: bool = False, **changes: Any
    ) -> Process:
        """``runtime.exec`` of ``args`` (``changes``: :class:`ProcessSpec` fields)."""
        spec = ProcessSpec(**{"args": args, "env": _ENV, **changes})

        async def run(stdio: Stdio) -> int:
            return await self.runtime.exec(container_id, spec, stdio)

        return await self._launch(run, terminal=spec.terminal, stdin=stdin)

    async def run(
        self,
        *args: str,
        input: bytes | None = None,
        process: dict[str, Any] | None = None,
        **changes: Any,
    ) -> Result:
        """Create, start, feed ``input``, wait, delete: ``docker run --rm``."""
        spec = self.spec(*args, process=process, **changes)
        proc = await self.create(spec, stdin=input is not None)
        try:
            await self.start(spec.id)
            if input is not None:
                proc.write(input)
                proc.close_stdin()
            code = await proc.wait()
            out, err = await proc.output()
        finally:
            await self.delete(spec.id)
        return Result(code, out.decode(errors="replace"), err.decode(errors="replace"))

    async def delete(self, container_id: str) -> None:
        """``runtime.delete``, then wait until the first process is reaped."""
        await self.runtime.delete(container_id)
        process = self.containers.pop(container_id, None)
        if process is not None:
            with contextlib.suppress(TimeoutError):
                await process.wait()
            process.close_stdin()

    async def close(self) -> None:
        """Delete every container left, reap every process, close every pipe."""
        for container_id in list(self.containers):
            with contextlib.suppress(Exception):
                await self.delete(container_id)
        for process in self.processes:
            if not process.exited.done():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, signal.SIGKILL)
            with contextlib.suppress(Exception):
                await process.wait()
            with contextlib.suppress(Exception):
                await process.output()
            process.close_stdin()


@contextlib.contextmanager
def runtime_directory() -> Iterator[Path]:
    """A fresh short directory under /tmp (skips the test without root), removed afterwards
    whatever happened."""
    if os.geteuid() != 0:
        pytest.skip("containers need root")
    path = Path(tempfile.mkdtemp(prefix="pdr-", dir="/tmp"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@contextlib.asynccontextmanager
async def supervised(runtime: Runtime, root: Path) -> AsyncIterator[Supervisor]:
    """A :class:`Supervisor` of ``runtime`` in ``root`` that deletes every container and
    reaps every process at the end, whatever happened."""
    supervisor = Supervisor(runtime, root)
    try:
        yield supervisor
    finally:
        await supervisor.close()


# --------------------------------------------------------------------------------------
# the suite


def _status(text: str, field_name: str) -> str:
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key == field_name:
            return value.strip()
    raise AssertionError(f"{field_name} missing from:\n{text}")


def _alive(pid: int) -> bool:
    """Whether ``pid`` exists and is not a zombie."""
    try:
        return _status(Path(f"/proc/{pid}/status").read_text(), "State")[0] != "Z"
    except FileNotFoundError:
        return False


async def _until(check: Callable[[], bool]) -> None:
    """Poll ``check`` (state outside this process: no event to wait for) until it is true."""
    async with asyncio.timeout(WAIT_SECONDS):
        while not check():  # noqa: ASYNC110
            await asyncio.sleep(0.01)


def host_block_device() -> tuple[int, int]:
    """(major, minor) of a block device this host's root may open, for checking that a
    container may not; skips the test when there is none."""
    for entry in sorted(Path("/sys/dev/block").iterdir()):
        fields = dict(
            line.partition("=")[::2] for line in (entry / "uevent").read_text().splitlines()
        )
        node = f"/dev/{fields.get('DEVNAME', '')}"
        try:
            os.close(os.open(node, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC))
        except OSError:
            continue
        major, minor = entry.name.split(":")
        return int(major), int(minor)
    pytest.skip("this host has no block device its root may open")


def _present(paths: tuple[str, ...]) -> list[str]:
    """The ``paths`` this host has."""
    return [p for p in paths if Path(p).exists()]


class RuntimeSuite:
    """The conformance tests; derive a ``Test*`` class that sets :attr:`runtime_class` (or
    provides the ``runtime`` fixture)."""

    runtime_class: ClassVar[type[Runtime]]

    # -- fixtures

    @pytest.fixture
    def runtime_dir(self) -> Iterator[Path]:
        """A fresh short directory under /tmp, removed afterwards."""
        with runtime_directory() as path:
            yield path

    @pytest.fixture
    def busybox_root(self, runtime_dir: Path) -> Path:
        return make_busybox_root(runtime_dir / "rootfs")

    @pytest.fixture
    def runtime(self, runtime_dir: Path) -> Runtime:
        """The runtime under test; override it for runtimes that need a configuration."""
        if not hasattr(self, "runtime_class"):
            pytest.fail(f"{type(self).__name__}: set runtime_class or a runtime fixture")
        return make_driver(self.runtime_class, runtime_dir / "runtime")

    @pytest.fixture
    async def supervisor(self, runtime: Runtime, busybox_root: Path) -> AsyncIterator[Supervisor]:
        """A supervisor whose containers are all deleted and reaped afterwards."""
        async with supervised(runtime, busybox_root) as supervisor:
            yield supervisor

    # -- 1. stdio, exit codes, errors

    async def test_output_and_exit_code(self, supervisor: Supervisor) -> None:
        result = await supervisor.run("sh", "-c", "echo out; echo err >&2; exit 3")
        assert result == Result(3, "out\n", "err\n")
        assert (await supervisor.run("true")).exit_code == 0

    async def test_stdin(self, supervisor: Supervisor) -> None:
        result = await supervisor.run("cat", input=b"to the container\n")
        assert result == Result(0, "to the container\n", "")

    async def test_missing_program_fails_create_and_leaves_nothing(
        self, supervisor: Supervisor
    ) -> None:
        spec = supervisor.spec("nosuchcmd")
        with pytest.raises(StartError, match='exec: "nosuchcmd": executable file not found in'):
            await supervisor.create(spec)
        with pytest.raises(NotFound):
            await supervisor.runtime.processes(spec.id)
        await supervisor.runtime.delete(spec.id)  # nothing to delete: not an error
        # nothing is left of it: the same ID works
        again = dataclasses.replace(spec, process=dataclasses.replace(spec.process, args=("true",)))
        process = await supervisor.create(again)
        await supervisor.start(again.id)
        assert await process.wait() == 0

    @pytest.mark.parametrize(
        ("program", "words"),
        [
            ("/nosuch", "no such file or directory"),
            ("/etc/passwd", "permission denied"),
            ("/etc", "is a directory"),
        ],
    )
    async def test_unrunnable_programs_use_the_words_clients_look_for(
        self, supervisor: Supervisor, program: str, words: str
    ) -> None:
        with pytest.raises(StartError, match=words):
            await supervisor.create(supervisor.spec(program))

    async def test_an_execve_failure_at_start(self, supervisor: Supervisor) -> None:
        """A script whose interpreter is missing passes the search, and fails in execve."""
        (supervisor.root / "bin/broken").write_text("#!/no/interpreter\n")
        (supervisor.root / "bin/broken").chmod(0o755)
        spec = supervisor.spec("broken")
        process = await supervisor.create(spec)
        with pytest.raises(StartError, match="no such file or directory"):
            await supervisor.start(spec.id)
        assert await process.wait() == 127

    # -- 2. the process and its identity

    async def test_pid_1_and_only_its_own_processes(self, supervisor: Supervisor) -> None:
        result = await supervisor.run("sh", "-c", "echo $$; ps -o pid,comm; exit 0")
        lines = result.stdout.split("\n")
        assert lines[0] == "1"
        processes = sorted(line.split()[1] for line in lines[2:] if line.strip())
        assert processes == ["ps", "sh"], result.stdout

    async def test_hostname_env_and_cwd(self, supervisor: Supervisor) -> None:
        result = await supervisor.run(
            "sh",
            "-c",
            "hostname; pwd; env | sort",
            hostname="spec-host",
            process={"cwd": "/does/not/exist", "env": ("PATH=/bin", "ONE=1", "TWO=two words")},
        )
        host, cwd, *env = result.stdout.splitlines()
        assert (host, cwd) == ("spec-host", "/does/not/exist")
        assert sorted(env) == [
            "ONE=1",
            "PATH=/bin",
            "PWD=/does/not/exist",
            "SHLVL=1",
            "TWO=two words",
        ]

    async def test_user_and_groups(self, supervisor: Supervisor) -> None:
        result = await supervisor.run(
            "sh",
            "-c",
            "id -u; id -g; id -G",
            process={"uid": 1000, "gid": 1000, "additional_gids": (50, 1000)},
        )
        assert result.stdout.split("\n")[:3] == ["1000", "1000", "1000 50"]

    # -- 3. isolation

    async def test_only_loopback_and_it_is_up(self, supervisor: Supervisor) -> None:
        result = await supervisor.run(
            "cat", "/sys/class/net/lo/operstate", "/sys/class/net/lo/flags"
        )
        assert result.exit_code == 0, result.stderr
        assert int(result.stdout.split()[1], 16) & 1, "IFF_UP"
        listing = await supervisor.run("ls", "/sys/class/net")
        assert listing.stdout.split() == ["lo"]
        links = (await supervisor.run("ip", "-o", "link")).stdout.splitlines()
        assert len(links) == 1, links
        assert links[0].startswith("1: lo: <LOOPBACK,UP,LOWER_UP>"), links

    async def test_masked_and_readonly_paths(self, supervisor: Supervisor) -> None:
        """Of Docker's lists, the paths this kernel has (the container's /proc and /sys show
        the host's kernel)."""
        masked = _present(DEFAULT_MASKED_PATHS)
        readonly = _present(DEFAULT_READONLY_PATHS)
        assert masked, "this kernel has none of the masked paths"
        script = (
            f"for p in {' '.join(masked)}; do"
            " if [ -d $p ]; then echo $p $(ls -A $p | wc -l); else echo $p $(wc -c < $p); fi;"
            " done; cat /proc/self/mountinfo"
        )
        result = await supervisor.run("sh", "-c", script)
        lines = result.stdout.splitlines()
        sizes = dict(line.split() for line in lines[: len(masked)])
        assert sizes == dict.fromkeys(masked, "0"), result
        options = {line.split()[4]: line.split()[5].split(",") for line in lines[len(masked) :]}
        for path in readonly:
            assert "ro" in options.get(path, ()), f"{path} is not a read-only mount: {result}"
        assert "ro" in options["/sys"]

    async def test_capabilities_and_no_new_privileges(self, supervisor: Supervisor) -> None:
        everything = capability_mask(DEFAULT_CAPABILITIES)
        status = (await supervisor.run("cat", "/proc/self/status")).stdout
        assert int(_status(status, "CapEff"), 16) == everything
        assert int(_status(status, "CapPrm"), 16) == everything
        assert int(_status(status, "CapBnd"), 16) == everything
        assert int(_status(status, "CapAmb"), 16) == 0
        assert _status(status, "NoNewPrivs") == "1"
        fewer = tuple(c for c in DEFAULT_CAPABILITIES if c != "CAP_NET_RAW")
        status = (
            await supervisor.run(
                "cat",
                "/proc/self/status",
                process={"capabilities": fewer, "no_new_privileges": False},
            )
        ).stdout
        assert int(_status(status, "CapBnd"), 16) == capability_mask(fewer)
        assert _status(status, "NoNewPrivs") == "0"
        user = (await supervisor.run("cat", "/proc/self/status", process={"uid": 1000})).stdout
        assert int(_status(user, "CapEff"), 16) == 0, "a user other than root has none (Docker)"
        assert int(_status(user, "CapBnd"), 16) == everything

    async def test_devices(self, supervisor: Supervisor) -> None:
        """Docker's devices are there and usable; a node the container makes for a block
        device of the host (which the host may open) cannot be opened."""
        major, minor = host_block_device()
        result = await supervisor.run(
            "sh",
            "-c",
            "for d in null zero full random urandom tty; do [ -c /dev/$d ] && echo $d; done;"
            " head -c 3 /dev/zero | wc -c; echo x > /dev/null && echo null-ok;"
            f" mknod /tmp/disk b {major} {minor} && echo made; head -c 1 /tmp/disk",
        )
        assert result.stdout.split() == [
            *("null", "zero", "full", "random", "urandom", "tty"),
            *("3", "null-ok", "made"),
        ], result
        assert "Operation not permitted" in result.stderr, result

    # -- 4. filesystems

    async def test_readonly_root_and_a_writable_tmpfs(self, supervisor: Supervisor) -> None:
        tmpfs = MountSpec("/scratch", "tmpfs", "tmpfs", ("nosuid", "nodev"))
        result = await supervisor.run(
            "sh",
            "-c",
            "touch /file || echo ROOT-RO; touch /scratch/file && echo TMPFS-RW",
            readonly_root=True,
            mounts=(*DOCKER_MOUNTS, tmpfs),
        )
        assert result.stdout.split() == ["ROOT-RO", "TMPFS-RW"], result
        assert not (supervisor.root / "file").exists()

    async def test_binds_read_only_and_read_write(
        self, supervisor: Supervisor, runtime_dir: Path
    ) -> None:
        (runtime_dir / "rw").mkdir()
        (runtime_dir / "ro").mkdir()
        (runtime_dir / "ro/hello").write_text("hello\n")
        (runtime_dir / "file.txt").write_text("a file\n")
        binds = (
            MountSpec("/data/rw", "bind", str(runtime_dir / "rw"), ("rbind", "rprivate")),
            MountSpec("/data/ro", "bind", str(runtime_dir / "ro"), ("rbind", "rprivate", "ro")),
            MountSpec("/etc/one.txt", "bind", str(runtime_dir / "file.txt"), ("rbind", "ro")),
        )
        result = await supervisor.run(
            "sh",
            "-c",
            "echo written > /data/rw/out; cat /data/ro/hello /etc/one.txt;"
            " touch /data/ro/new || echo RO",
            mounts=(*DOCKER_MOUNTS, *binds),
        )
        assert result.stdout.split("\n")[:3] == ["hello", "a file", "RO"], result
        assert (runtime_dir / "rw/out").read_text() == "written\n"
        assert not (runtime_dir / "ro/new").exists()

    # -- 5. kill and delete

    async def test_kill_the_first_process(self, supervisor: Supervisor) -> None:
        spec = supervisor.spec("sleep", "1000")
        process = await supervisor.create(spec)
        await supervisor.start(spec.id)
        await supervisor.runtime.kill(spec.id, signal.SIGKILL)
        assert await process.wait() == -signal.SIGKILL
        await supervisor.runtime.kill(spec.id, signal.SIGTERM)  # nothing left: not an error

    async def test_kill_every_process(self, supervisor: Supervisor) -> None:
        spec = supervisor.spec("sh", "-c", "trap '' TERM; sleep 1000 & sleep 1000 & wait")
        process = await supervisor.create(spec)
        await supervisor.start(spec.id)
        async with asyncio.timeout(WAIT_SECONDS):
            while len(await supervisor.runtime.processes(spec.id)) < 3:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
        await supervisor.runtime.kill(spec.id, signal.SIGKILL, all_processes=True)
        assert await process.wait() == -signal.SIGKILL

    async def test_delete_kills_and_forgets(self, supervisor: Supervisor) -> None:
        spec = supervisor.spec("sleep", "1000")
        process = await supervisor.create(spec)
        await supervisor.start(spec.id)
        await supervisor.runtime.delete(spec.id)
        assert await process.wait() == -signal.SIGKILL
        with pytest.raises(NotFound):
            await supervisor.runtime.processes(spec.id)
        await supervisor.runtime.delete(spec.id)  # twice
        await supervisor.runtime.delete("0" * 64)  # unknown

    async def test_delete_a_created_container(self, supervisor: Supervisor) -> None:
        spec = supervisor.spec("sh", "-c", "echo STARTED")
        process = await supervisor.create(spec)
        assert _alive(process.pid)
        await supervisor.runtime.delete(spec.id)
        assert await process.wait() != 0
        out, _ = await process.output()
        assert b"STARTED" not in out

    # -- 6. exec

    async def test_exec_joins_the_container(self, supervisor: Supervisor) -> None:
        spec = supervisor.spec("sleep", "1000", hostname="exec-host")
        await supervisor.create(spec)
        await supervisor.start(spec.id)
        inside = await supervisor.exec(
            spec.id,
            "sh",
            "-c",
            "hostname; cat /proc/1/cmdline | tr '\\0' ' '; echo; ls /sys/class/net; exit 7",
        )
        assert await inside.wait() == 7
        out, err = await inside.output()
        assert out.decode().split("\n")[:3] == ["exec-host", "sleep 1000 ", "lo"], err
        assert inside.pid in await supervisor.runtime.processes(spec.id) or not _alive(inside.pid)
        user = await supervisor.exec(spec.id, "id", "-u", uid=1000, gid=1000)
        assert await user.wait() == 0
        assert (await user.output())[0] == b"1000\n"
        with pytest.raises(StartError, match='exec: "nosuchcmd": executable file not found'):
            await supervisor.exec(spec.id, "nosuchcmd")

    # -- 7. freezer and counters

    async def test_pause_and_resume(self, supervisor: Supervisor, runtime_dir: Path) -> None:
        counter = runtime_dir / "counter"
        counter.mkdir()
        bind = MountSpec("/counter", "bind", str(counter), ("rbind",))
        spec = supervisor.spec(
            "sh",
            "-c",
            "i=0; while true; do i=$((i+1)); echo $i > /counter/n; done",
            mounts=(*DOCKER_MOUNTS, bind),
        )
        await supervisor.create(spec)
        await supervisor.start(spec.id)
        await _until((counter / "n").exists)

        def count() -> int:
            text = (counter / "n").read_text().strip()
            return int(text) if text else -1

        await supervisor.runtime.pause(spec.id)
        frozen = count()
        await asyncio.sleep(0.2)
        assert count() == frozen, "a paused container does not run"
        await supervisor.runtime.resume(spec.id)
        await _until(lambda: count() > frozen + 10)

    async def test_processes_and_stats(self, supervisor: Supervisor) -> None:
        spec = supervisor.spec(
            "sh", "-c", "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; sleep 1000"
        )
        process = await supervisor.create(spec)
        await supervisor.start(spec.id)
        await asyncio.sleep(0.3)
        assert process.pid in await supervisor.runtime.processes(spec.id)
        stats = await supervisor.runtime.stats(spec.id)
        assert stats.cpu_total > 0
        assert stats.memory_usage > 0
        assert stats.pids_current >= 1
        assert not await supervisor.runtime.oom_killed(spec.id)

    # -- 8. limits

    async def test_memory_limit_and_the_oom_killer(self, supervisor: Supervisor) -> None:
        limit = 16 * 1024 * 1024
        spec = supervisor.spec(
            "dd",
            "if=/dev/zero",
            "of=/dev/null",
            "bs=64M",
            "count=1",
            resources=Resources(memory=limit, memory_swap=limit),
        )
        process = await supervisor.create(spec)
        await supervisor.start(spec.id)
        assert await process.wait() == -signal.SIGKILL
        assert await supervisor.runtime.oom_killed(spec.id)

    async def test_pids_limit(self, supervisor: Supervisor) -> None:
        result = await supervisor.run(
            "sh",
            "-c",
            "for i in 1 2 3 4 5 6 7 8; do sleep 5 & done; echo done",
            resources=Resources(pids_limit=4),
        )
        assert (
            "can't fork" in result.stderr or "Resource temporarily unavailable" in result.stderr
        ), result

    # -- 9. a terminal

    async def test_terminal(self, supervisor: Supervisor) -> None:
        result = await supervisor.run(
            "sh",
            "-c",
            "tty >/dev/null && echo TTY; stty size",
            process={"terminal": True, "console_size": (31, 97)},
        )
        assert result.exit_code == 0
        assert result.stdout.split() == ["TTY", "31", "97"], result
