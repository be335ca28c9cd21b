"""The cgroup v2 device filter: the eBPF program, and what it lets a process open for real."""

from __future__ import annotations

import os
import struct
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydockerd.testing.runtime import host_block_device
from pydockerd_runtime_native.cgroups import DEFAULT_DEVICE_RULES
from pydockerd_runtime_native.devices import (
    DeviceRule,
    attach_device_filter,
    device_program,
    on_cgroup2,
)

UNIFIED = Path("/sys/fs/cgroup/unified")


def test_rules() -> None:
    assert DeviceRule.parse("c 136:* rwm") == DeviceRule("c", 136, None, "rwm")
    assert DeviceRule.parse("b *:* m") == DeviceRule("b", None, None, "m")


def instructions(code: bytes) -> list[tuple[int, int, int, int]]:
    return [struct.unpack("<BBhi", code[i : i + 8]) for i in range(0, len(code), 8)]


def test_the_program() -> None:
    program = instructions(device_program([DeviceRule.parse("c 1:3 rwm")]))
    prologue, rule, epilogue = program[:6], program[6:-2], program[-2:]
    assert [code for code, *_ in prologue] == [0x61, 0x54, 0x61, 0x74, 0x61, 0x61]
    # type, major, minor: three jumps past the rule's "return 1"
    assert [(code, off, imm) for code, _, off, imm in rule] == [
        (0x55, 4, 2),
        (0x55, 3, 1),
        (0x55, 2, 3),
        (0xB7, 0, 1),
        (0x95, 0, 0),
    ]
    assert [(code, imm) for code, _, _, imm in epilogue] == [(0xB7, 0), (0x95, 0)]
    mknod_only = instructions(device_program([DeviceRule.parse("b *:* m")]))[6:-2]
    assert [code for code, *_ in mknod_only] == [0x55, 0xBC, 0x54, 0x55, 0xB7, 0x95]
    assert mknod_only[2][3] == ~1 & 0xFFFF, "any access but mknod is a mismatch"


def test_on_cgroup2(tmp_path: Path) -> None:
    assert not on_cgroup2(str(tmp_path))
    assert not on_cgroup2(str(tmp_path / "missing"))
    if (UNIFIED / "cgroup.procs").exists():
        assert on_cgroup2(str(UNIFIED))


@pytest.fixture
def cgroup() -> Iterator[Path]:
    if not (UNIFIED / "cgroup.procs").exists():
        pytest.skip("no cgroup2 mount here")
    path = UNIFIED / f"pydockerd-test-{os.getpid()}-devices"
    path.mkdir()
    try:
        yield path
    finally:
        deadline = time.monotonic() + 5
        while (path / "cgroup.procs").read_text().strip() and time.monotonic() < deadline:
            time.sleep(0.01)
        path.rmdir()


def opens_in(cgroup: Path, paths: list[str]) -> list[str]:
    """What a child process in ``cgroup`` gets opening each of ``paths``."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            (cgroup / "cgroup.procs").write_text("0")
            results = []
            for path in paths:
                try:
                    os.close(os.open(path, os.O_RDONLY | os.O_NONBLOCK))
                    results.append("ok")
                except OSError as e:
                    results.append(e.strerror or "")
            os.write(write_end, "\n".join(results).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end) as pipe:
        answer = pipe.read().split("\n")
    os.waitpid(pid, 0)
    return answer


def host_block_node() -> str:
    major, minor = host_block_device()
    uevent = Path(f"/sys/dev/block/{major}:{minor}/uevent").read_text().splitlines()
    return "/dev/" + next(line[8:] for line in uevent if line.startswith("DEVNAME="))


@pytest.mark.privileged
def test_the_filter_for_real(cgroup: Path) -> None:
    disk = host_block_node()
    assert opens_in(cgroup, ["/dev/null", disk]) == ["ok", "ok"], "no filter yet"
    attach_device_filter(str(cgroup), [DeviceRule.parse(r) for r in DEFAULT_DEVICE_RULES])
    assert opens_in(cgroup, ["/dev/null", "/dev/zero", "/dev/urandom", disk, "/dev/kmsg"]) == [
        "ok",
        "ok",
        "ok",
        "Operation not permitted",
        "Operation not permitted",
    ]


@pytest.mark.privileged
def test_attaching_to_something_else_fails(tmp_path: Path) -> None:
    with pytest.raises(OSError, match=r"BPF_PROG_ATTACH"):
        attach_device_filter(str(tmp_path), [])
