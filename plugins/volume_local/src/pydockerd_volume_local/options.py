"""The local driver's ``-o`` options (``type``, ``device``, ``o``, ``size``), checked as
moby's local driver checks them, and turned into mount(2) calls as ``moby/sys/mount`` does.
"""

from __future__ import annotations

import functools
import json
import operator
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydockerd.plugin import (
    MNT_DETACH,
    InvalidParameter,
    Mount,
    MountFlag,
    SystemError,
    mount,
    parse_mount_options,
    unmount,
)

__all__ = ["MountOptions", "check_name", "parse_flags"]

VALID = ("type", "device", "o", "size")
REQUIRED = {"type": ("device",), "device": ("type",), "o": ("device", "type")}
"""An option and those it needs, in the order they are checked."""

_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]+")
_NAME_CHARS = "[a-zA-Z0-9][a-zA-Z0-9_.-]"
_NAME_MAX = 255
_SIZE = re.compile(r"(\d+(?:\.\d+)?) ?([kmgtp])?i?b?", re.IGNORECASE)


def _quote(text: str) -> str:
    """``text`` as Go's ``%q`` shows it (close enough: JSON's escapes)."""
    return json.dumps(text, ensure_ascii=False)


def check_name(name: str) -> str:
    """``name`` if it is a valid volume name, safe as one path component; else
    :class:`InvalidParameter` with Docker's message."""
    if len(name) == 1:
        raise InvalidParameter(
            "volume name is too short, names should be at least two alphanumeric characters"
        )
    if not _NAME.fullmatch(name) or len(name) > _NAME_MAX:
        raise InvalidParameter(
            f"{_quote(name)} includes invalid characters for a local volume name, only "
            f"{_quote(_NAME_CHARS)} are allowed. If you intended to pass a host directory, "
            "use absolute path"
        )
    return name


def _ram_bytes(text: str) -> int:
    """A size as Docker's ``units.RAMInBytes`` reads it (binary units: ``1k`` is 1024)."""
    match = _SIZE.fullmatch(text)
    if match is None:
        raise InvalidParameter(f"invalid size: '{text}'")
    power = " kmgtp".index((match.group(2) or " ").lower())
    return int(float(match.group(1)) * 1024**power)


def parse_flags(options: str) -> tuple[int, str]:
    """``o`` as mount flags (propagation included) and the filesystem's own options, as
    ``moby/sys/mount``: the options it knows (``ro``, ``bind``, ``nosuid``, ...) become
    flags, the rest is data."""
    parsed = parse_mount_options(options.split(","))
    return functools.reduce(operator.or_, parsed.propagation, parsed.flags), parsed.data


def _option(options: str, key: str) -> str:
    """The value of ``key=value`` in a comma-separated ``o``, or ``""``."""
    for option in options.split(","):
        name, _, value = option.partition("=")
        if name == key:
            return value
    return ""


@dataclass(frozen=True)
class MountOptions:
    """What a volume's options say to mount on its ``_data``; stored as Docker stores it
    (``opts.json``: ``{"MountType": ..., "MountOpts": ..., "MountDevice": ..., "Quota":
    {"Size": 0}}``)."""

    type: str = ""
    device: str = ""
    options: str = ""

    @classmethod
    def parse(cls, options: Mapping[str, str]) -> MountOptions:
        """Check ``docker volume create -o`` values as Docker's local driver does.

        :raises InvalidParameter: an unknown option (``invalid option: "x"``), a missing one
            (``missing required option: "device"``), a quota (no quota support here), a port
            in a CIFS URL.
        """
        for key in options:
            if key not in VALID:
                raise InvalidParameter(f"invalid option: {_quote(key)}")
        if options.get("type") == "cifs" and options.get("device"):
            try:
                port = urlsplit(options["device"]).port
            except ValueError as e:
                raise InvalidParameter(f"error parsing mount device url: {e}") from None
            if port is not None:
                raise InvalidParameter(
                    "port not allowed in CIFS device URL, include 'port' in 'o='"
                )
        if "size" in options and _ram_bytes(options["size"]) > 0:
            raise InvalidParameter("quota size requested but no quota support")
        for key, needed in REQUIRED.items():
            if key in options:
                for other in needed:
                    if other not in options:
                        raise InvalidParameter(f"missing required option: {_quote(other)}")
        return cls(options.get("type", ""), options.get("device", ""), options.get("o", ""))

    @property
    def needs_mount(self) -> bool:
        return bool(self.type or self.device)

    def to_json(self) -> bytes:
        return json.dumps(
            {
                "MountType": self.type,
                "MountOpts": self.options,
                "MountDevice": self.device,
                "Quota": {"Size": 0},
            }
        ).encode()

    @classmethod
    def load(cls, path: Path) -> MountOptions:
        """The options stored at ``path`` (``opts.json``); none when it does not exist."""
        try:
            stored: Any = json.loads(path.read_bytes())
        except FileNotFoundError:
            return cls()
        except ValueError as e:
            raise SystemError(f"error while unmarshaling volume options {path}: {e}") from None
        if not isinstance(stored, dict):
            raise SystemError(f"error while unmarshaling volume options {path}: not an object")
        return cls(
            str(stored.get("MountType") or ""),
            str(stored.get("MountDevice") or ""),
            str(stored.get("MountOpts") or ""),
        )

    def _resolved(self) -> str:
        """``o`` with an NFS server's host name in ``addr=`` resolved to an address (the kernel
        needs one), as Docker does."""
        address = _option(self.options, "addr")
        if self.type != "nfs" or not address:
            return self.options
        try:
            socket.inet_pton(socket.AF_INET, address)
            return self.options
        except OSError:
            pass
        try:
            resolved = socket.getaddrinfo(address, None)[0][4][0]
        except OSError as e:
            raise SystemError(
                f"error resolving passed in network volume address {address}: {e}"
            ) from None
        return self.options.replace(f"addr={address}", f"addr={resolved}", 1)

    def mount_on(self, target: Path) -> None:
        """Mount what the options describe on ``target``, as ``moby/sys/mount.Mount``: the
        mount itself, then a propagation change and a read-only remount of a bind when asked.

        :raises SystemError: the kernel refused (a password in ``o`` is masked).
        """
        if not self.device:
            raise SystemError("missing device in volume options")
        flags, data = parse_flags(self._resolved())
        propagation = MountFlag.propagation()
        bind_ro = MountFlag.BIND | MountFlag.RDONLY
        made = False
        try:
            if not flags & MountFlag.REMOUNT or data:
                description = Mount(self.type, self.device, (data,) if data else ())
                mount(description, target, flags & ~propagation)
                made = True
            if flags & propagation:
                kept = propagation | MountFlag.REC | MountFlag.SILENT
                mount(Mount("", ""), target, flags & kept)
            if flags & bind_ro == bind_ro:
                mount(Mount("", ""), target, (flags & ~propagation) | MountFlag.REMOUNT)
        except SystemError as e:
            if made:  # no half-made mount: the next container tries again
                unmount(target, MNT_DETACH)
            message = f"failed to mount local volume: {e}"
            password = _option(self.options, "password")
            if password:
                message = message.replace(f"password={password}", "password=********")
            raise SystemError(message) from None
