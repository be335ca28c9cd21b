"""Device rules on cgroup v2: an eBPF ``BPF_PROG_TYPE_CGROUP_DEVICE`` program, as runc's
``devicefilter`` builds it.

cgroup v2 has no ``devices.allow``; the kernel asks the programs attached to a process's
cgroup whether it may open or ``mknod`` a device. The program here loads the request (type,
access, major, minor) and compares it with each allow rule in turn: a match returns 1
(allowed), no match 0 (``EPERM``).
"""

from __future__ import annotations

import ctypes
import os
import platform
import struct
from collections.abc import Iterable
from dataclasses import dataclass

from pydockerd.plugin import linux

__all__ = ["DeviceRule", "attach_device_filter", "device_program", "on_cgroup2"]

_BPF_SYSCALL = {"x86_64": 321, "aarch64": 280, "armv7l": 386, "ppc64le": 361, "s390x": 351}
_BPF_PROG_LOAD = 5
_BPF_PROG_ATTACH = 8
_BPF_PROG_TYPE_CGROUP_DEVICE = 15
_BPF_CGROUP_DEVICE = 6
_BPF_F_ALLOW_MULTI = 2
_ATTR_SIZE = 128

# bpf_cgroup_dev_ctx: access_type (access << 16 | type), major, minor
_TYPES = {"b": 1, "c": 2}
_ACCESS = {"m": 1, "r": 2, "w": 4}

_R0, _R1, _R2, _R3, _R4, _R5 = range(6)
_LDX_W = 0x61  # dst = *(u32 *)(src + off)
_AND32_K = 0x54
_RSH32_K = 0x74
_MOV32_X = 0xBC
_MOV64_K = 0xB7
_JNE_K = 0x55  # if dst != imm: pc += off
_EXIT = 0x95

_CGROUP2_SUPER_MAGIC = 0x63677270
_STATFS_SIZE = 256  # struct statfs is 120 bytes on 64-bit Linux; f_type comes first


def on_cgroup2(path: str) -> bool:
    """Whether ``path`` is on a cgroup2 filesystem (``statfs`` type)."""
    buffer = ctypes.create_string_buffer(_STATFS_SIZE)
    if linux.libc.statfs(os.fsencode(path), buffer) != 0:
        return False
    return ctypes.c_long.from_buffer(buffer).value == _CGROUP2_SUPER_MAGIC


@dataclass(frozen=True)
class DeviceRule:
    """One allow rule: ``c 1:3 rwm``, ``c 136:* rwm``, ``b *:* m``."""

    type: str
    major: int | None
    minor: int | None
    access: str

    @classmethod
    def parse(cls, text: str) -> DeviceRule:
        kind, numbers, access = text.split()
        major, minor = numbers.split(":")
        return cls(
            kind,
            None if major == "*" else int(major),
            None if minor == "*" else int(minor),
            access,
        )


def _insn(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    return struct.pack("<BBhi", code, (src << 4) | dst, off, imm)


def _rule_block(rule: DeviceRule) -> list[bytes]:
    """Instructions that return 1 when the request matches ``rule``; a mismatch jumps past
    them, to the next rule."""
    items: list[bytes | tuple[int, int]] = []  # an instruction, or (register, value) of a jump
    if rule.type in _TYPES:
        items.append((_R2, _TYPES[rule.type]))
    allowed = sum(bit for letter, bit in _ACCESS.items() if letter in rule.access)
    if allowed != 7:  # every access bit asked for must be allowed: (access & ~allowed) == 0
        items += [_insn(_MOV32_X, _R1, _R3), _insn(_AND32_K, _R1, imm=~allowed & 0xFFFF)]
        items.append((_R1, 0))
    if rule.major is not None:
        items.append((_R4, rule.major))
    if rule.minor is not None:
        items.append((_R5, rule.minor))
    items += [_insn(_MOV64_K, _R0, imm=1), _insn(_EXIT)]
    end = len(items)
    return [
        _insn(_JNE_K, item[0], off=end - index - 1, imm=item[1])
        if isinstance(item, tuple)
        else item
        for index, item in enumerate(items)
    ]


def device_program(rules: Iterable[DeviceRule]) -> bytes:
    """The program allowing exactly ``rules``."""
    program = [
        _insn(_LDX_W, _R2, _R1, 0),
        _insn(_AND32_K, _R2, imm=0xFFFF),  # type
        _insn(_LDX_W, _R3, _R1, 0),
        _insn(_RSH32_K, _R3, imm=16),  # access
        _insn(_LDX_W, _R4, _R1, 4),  # major
        _insn(_LDX_W, _R5, _R1, 8),  # minor
    ]
    for rule in rules:
        program += _rule_block(rule)
    program += [_insn(_MOV64_K, _R0, imm=0), _insn(_EXIT)]
    return b"".join(program)


def _bpf(command: int, attr: bytes) -> int:
    number = _BPF_SYSCALL.get(platform.machine())
    if number is None:
        raise OSError(38, f"bpf(2): unknown system call number on {platform.machine()}")
    buffer = ctypes.create_string_buffer(attr.ljust(_ATTR_SIZE, b"\0"), _ATTR_SIZE)
    return linux.syscall(number, command, buffer, _ATTR_SIZE)


def attach_device_filter(cgroup_dir: str, rules: Iterable[DeviceRule]) -> None:
    """Load the program for ``rules`` and attach it to the cgroup v2 directory
    ``cgroup_dir`` (it stays attached until the cgroup is removed).

    :raises OSError: the kernel refused (the file name says which step).
    """
    code = device_program(rules)
    instructions = ctypes.create_string_buffer(code, len(code))
    license_ = ctypes.create_string_buffer(b"Apache-2.0\0")  # the kernel accepts any text here
    load = struct.pack(
        "<IIQQIIQ",
        _BPF_PROG_TYPE_CGROUP_DEVICE,
        len(code) // 8,
        ctypes.addressof(instructions),
        ctypes.addressof(license_),
        0,
        0,
        0,
    )
    try:
        program = _bpf(_BPF_PROG_LOAD, load)
    except OSError as e:
        raise OSError(
            e.errno, e.strerror, f"bpf(BPF_PROG_LOAD) of the device filter for {cgroup_dir}"
        ) from None
    try:
        directory = os.open(cgroup_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            attach = struct.pack(
                "<IIII", directory, program, _BPF_CGROUP_DEVICE, _BPF_F_ALLOW_MULTI
            )
            _bpf(_BPF_PROG_ATTACH, attach)
        except OSError as e:
            raise OSError(e.errno, e.strerror, f"bpf(BPF_PROG_ATTACH) to {cgroup_dir}") from None
        finally:
            os.close(directory)
    finally:
        os.close(program)
