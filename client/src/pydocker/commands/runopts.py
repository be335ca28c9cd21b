"""The flags of ``create`` and ``run``, and the create body docker's CLI builds from them.

Two kinds of refusal, as docker's: a flag value its parser rejects is a usage error
(:class:`~pydocker.options.FlagError`, ``invalid argument "1x" for "-m, --memory" flag: ...``,
status 125, with the usage); a combination :func:`build` rejects is a :class:`ConfigError`,
which the commands report as ``pydocker: <message>`` and ``Run '... --help'`` (status 125).

:func:`build` returns the body of ``POST /containers/create`` with docker's fields, in the
order, and with the empty values (``null``, ``[]``, ``{}``) docker 28 sends.
"""

from __future__ import annotations

import csv
import ipaddress
import os
import platform as host_platform
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, TypeVar

import click

from pydocker.commands.common import kv_map, os_error
from pydocker.commands.netopts import (
    Attachment,
    ConfigError,
    canonical_ip,
    endpoints_config,
    parse_attachment,
    ports,
    validate_link,
)
from pydocker.options import (
    Checked,
    FlagError,
    GoInt,
    go_parse_int,
    parse_go_bool,
    repeated_option,
)

__all__ = [
    "PULL_POLICIES",
    "ConfigError",
    "ContainerConfig",
    "build",
    "container_options",
    "env_option",
    "normalize_platform",
    "parse_env_file",
    "parse_ram",
    "validate_label",
]

F = TypeVar("F", bound=Callable[..., Any])
PULL_POLICIES = ("always", "missing", "never")
_WHITESPACE = " \t"
_GO_FLOAT = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_BINARY_UNITS = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}
_ULIMITS = {
    "core",
    "cpu",
    "data",
    "fsize",
    "locks",
    "memlock",
    "msgqueue",
    "nice",
    "nofile",
    "nproc",
    "rss",
    "rtprio",
    "rttime",
    "sigpending",
    "stack",
}
_SYSCTLS = {
    "kernel.msgmax",
    "kernel.msgmnb",
    "kernel.msgmni",
    "kernel.sem",
    "kernel.shmall",
    "kernel.shmmax",
    "kernel.shmmni",
    "kernel.shm_rmid_forced",
}
_SYSCTL_PREFIXES = ("net.", "fs.mqueue.")
_ARCHES = {
    "x86_64": "amd64",
    "x86-64": "amd64",
    "amd64": "amd64",
    "aarch64": "arm64",
    "arm64": "arm64",
    "i386": "386",
    "i686": "386",
    "386": "386",
    "armhf": "arm",
    "armel": "arm",
    "arm": "arm",
}


# -- values the flag parser checks (pflag Set errors) -------------------------------------


def parse_ram(text: str) -> int:
    """go-units ``RAMInBytes``: ``64m``, ``1.5g``, ``512k``, ``1GiB``, bytes by default.

    :raises ValueError: docker's message (``invalid suffix: 'x'``).
    """
    separator = max(text.rfind(c) for c in "0123456789. ")
    if separator == -1:
        raise ValueError(f"invalid size: '{text}'")
    if text[separator] == " ":
        number, suffix = text[:separator], text[separator + 1 :]
    else:
        number, suffix = text[: separator + 1], text[separator + 1 :]
    if not _GO_FLOAT.fullmatch(number):
        raise ValueError(f'strconv.ParseFloat: parsing "{number}": invalid syntax')
    size = float(number)
    if size < 0:
        raise ValueError(f"invalid size: '{text}'")
    if not suffix:
        return int(size)
    lowered = suffix.lower()
    if len(lowered) <= 3:
        if lowered == "b":
            return int(size)
        multiplier = _BINARY_UNITS.get(lowered[0])
        if multiplier is not None and lowered[1:] in ("", "b", "ib"):
            return int(size * multiplier)
    raise ValueError(f"invalid suffix: '{lowered}'")


def _memory_swap(text: str) -> int:
    return -1 if text == "-1" else parse_ram(text)


def _nano_cpus(text: str) -> int:
    try:
        cpus = Fraction(text)
    except (ValueError, ZeroDivisionError):
        raise ValueError(f"failed to parse {text} as a rational number") from None
    nano = cpus * 1_000_000_000
    if nano.denominator != 1:
        raise ValueError("value is too precise")
    return int(nano)


def _env(text: str) -> str:
    """``opts.ValidateEnv``: ``KEY`` alone takes the value from our environment, if set."""
    key, separator, _ = text.partition("=")
    if not key:
        raise ValueError(f"invalid environment variable: {text}")
    if separator:
        return text
    value = os.environ.get(key)
    return text if value is None else f"{key}={value}"


def validate_label(text: str) -> str:
    """``opts.ValidateLabel``: ``KEY[=VALUE]`` with a key that is neither empty nor holds
    blanks once leading blanks are dropped; the text is kept as it was written."""
    key = text.partition("=")[0].lstrip(_WHITESPACE)
    if not key:
        raise ValueError(f"invalid label '{text}': empty name")
    if any(c in key for c in _WHITESPACE):
        raise ValueError(f"label '{key}' contains whitespaces")
    return text


def _attach(text: str) -> str:
    lowered = text.lower()
    if lowered not in ("stdin", "stdout", "stderr"):
        raise ValueError("valid streams are STDIN, STDOUT and STDERR")
    return lowered


def _dns(text: str) -> str:
    try:
        return canonical_ip(text)
    except ValueError:
        raise ValueError(f"IP address is not correctly formatted: {text}") from None


def _extra_host(text: str) -> str:
    """``opts.ValidateExtraHost``: ``host:ip`` or ``host=ip`` (IPv6 in brackets or not, or
    ``host-gateway``), sent as ``host:ip``."""
    name, separator, address = text.partition("=")
    if not separator:
        name, separator, address = text.partition(":")
    if not separator or not name or ":" in name:
        raise ValueError(f'bad format for add-host: "{text}"')
    if address != "host-gateway":
        if len(address) > 2 and address[0] == "[" and address[-1] == "]":
            address = address[1:-1]
        try:
            canonical_ip(address)
        except ValueError:
            raise ValueError(f'invalid IP address in add-host: "{address}"') from None
    return f"{name}:{address}"


def _sysctl(text: str) -> str:
    key, separator, _ = text.partition("=")
    allowed = key in _SYSCTLS or key.startswith(_SYSCTL_PREFIXES)
    if not separator or not key or not allowed:
        raise ValueError(f"sysctl '{text}' is not allowed")
    return text


def _ulimit(text: str) -> dict[str, Any]:
    """go-units ``ParseUlimit``: ``nofile=1024[:2048]``."""
    name, separator, values = text.partition("=")
    if not separator:
        raise ValueError(f"invalid ulimit argument: {text}")
    if name not in _ULIMITS:
        raise ValueError(f"invalid ulimit type: {name}")
    limits = values.split(":")
    if len(limits) > 2:
        raise ValueError(
            f"too many limit value arguments - {values}, can only have up to two, `soft[:hard]`"
        )
    hard = go_parse_int(limits[1]) if len(limits) == 2 else None
    soft = go_parse_int(limits[0])
    hard = soft if hard is None else hard
    if hard != -1 and soft > hard:
        raise ValueError(
            f"ulimit soft limit must be less than or equal to hard limit: {soft} > {hard}"
        )
    return {"Name": name, "Hard": hard, "Soft": soft}


def _mount(text: str) -> dict[str, Any]:
    """``--mount type=bind,src=/a,dst=/b,readonly``, as docker's ``MountOpt`` reads it."""
    try:
        fields = next(csv.reader([text]), [])
    except csv.Error as e:
        raise ValueError(str(e)) from None
    mount = _Mount()
    for item in fields:
        key, separator, value = item.partition("=")
        key = key.lower()
        if not separator:
            mount.flag(key, item)
        else:
            mount.set(key, value, item)
    return mount.body()


@dataclass
class _Mount:
    type: str = "volume"
    source: str = ""
    target: str = ""
    read_only: bool = False
    consistency: str = ""
    bind: dict[str, Any] | None = None
    volume: dict[str, Any] | None = None
    tmpfs: dict[str, Any] | None = None

    def _volume(self) -> dict[str, Any]:
        if self.volume is None:
            self.volume = {"NoCopy": False, "Labels": {}, "Subpath": "", "DriverConfig": {}}
        return self.volume

    def _bind(self) -> dict[str, Any]:
        if self.bind is None:
            self.bind = {}
        return self.bind

    def _tmpfs(self) -> dict[str, Any]:
        if self.tmpfs is None:
            self.tmpfs = {}
        return self.tmpfs

    def flag(self, key: str, item: str) -> None:
        if key in ("readonly", "ro"):
            self.read_only = True
        elif key == "volume-nocopy":
            self._volume()["NoCopy"] = True
        elif key == "bind-nonrecursive":
            self._bind()["NonRecursive"] = True
        else:
            raise ValueError(f"invalid field '{item}' must be a key=value pair")

    def set(self, key: str, value: str, item: str) -> None:
        if key == "type":
            self.type = value.lower()
        elif key in ("source", "src"):
            self.source = (
                str(Path(value).absolute()) if value.startswith("./") or value == "." else value
            )
        elif key in ("target", "dst", "destination"):
            self.target = value
        elif key in ("readonly", "ro"):
            self.read_only = _bool_field(key, value)
        elif key == "consistency":
            self.consistency = value.lower()
        elif key == "bind-propagation":
            self._bind()["Propagation"] = value.lower()
        elif key == "bind-nonrecursive":
            self._bind()["NonRecursive"] = _bool_field(key, value)
        elif key == "volume-subpath":
            self._volume()["Subpath"] = value
        elif key == "volume-nocopy":
            self._volume()["NoCopy"] = _bool_field(key, value)
        elif key == "volume-label":
            _set_pair(self._volume()["Labels"], value)
        elif key == "volume-driver":
            self._volume()["DriverConfig"]["Name"] = value
        elif key == "volume-opt":
            _set_pair(self._volume()["DriverConfig"].setdefault("Options", {}), value)
        elif key == "tmpfs-size":
            try:
                self._tmpfs()["SizeBytes"] = parse_ram(value)
            except ValueError:
                raise ValueError(f"invalid value for {key}: {value}") from None
        elif key == "tmpfs-mode":
            try:
                self._tmpfs()["Mode"] = go_parse_int(value, 32, 8, signed=False)
            except ValueError:
                raise ValueError(f"invalid value for {key}: {value}") from None
        else:
            raise ValueError(f"unexpected key '{key}' in '{item}'")

    def body(self) -> dict[str, Any]:
        if not self.type:
            raise ValueError("type is required")
        if not self.target:
            raise ValueError("target is required")
        for options, kind in ((self.volume, "volume"), (self.bind, "bind"), (self.tmpfs, "tmpfs")):
            if options is not None and self.type != kind:
                raise ValueError(f"cannot mix '{kind}-*' options with mount type '{self.type}'")
        body: dict[str, Any] = {"Type": self.type}
        if self.source:
            body["Source"] = self.source
        body["Target"] = self.target
        if self.read_only:
            body["ReadOnly"] = True
        if self.consistency:
            body["Consistency"] = self.consistency
        if self.bind:
            body["BindOptions"] = self.bind
        if self.volume is not None:
            body["VolumeOptions"] = {
                k: v for k, v in self.volume.items() if v or k == "DriverConfig"
            }
        if self.tmpfs:
            body["TmpfsOptions"] = self.tmpfs
        return body


def _bool_field(key: str, value: str) -> bool:
    try:
        return parse_go_bool(value, key)
    except FlagError:
        raise ValueError(f"invalid value for {key}: {value}") from None


def _set_pair(target: dict[str, str], value: str) -> None:
    key, _, item = value.partition("=")
    if key:
        target[key] = item


_MEMORY = Checked("bytes", parse_ram)
_MEMORY_SWAP = Checked("bytes", _memory_swap)


env_option = repeated_option(
    "-e",
    "--env",
    metavar="KEY=VALUE",
    type=Checked("env", _env),
    help="Set environment variables.",
)
"""``-e/--env KEY[=VALUE]``, also ``exec``'s."""

_COMMON_OPTIONS: list[Callable[[F], F]] = [
    repeated_option(
        "-a",
        "--attach",
        metavar="STREAM",
        type=Checked("stream", _attach),
        help="Attach to STDIN, STDOUT or STDERR.",
    ),
    repeated_option(
        "--add-host",
        metavar="HOST:IP",
        type=Checked("host", _extra_host),
        help="Add a custom host-to-IP mapping (host:ip).",
    ),
    repeated_option("--cap-add", metavar="CAP", help="Add Linux capabilities."),
    repeated_option("--cap-drop", metavar="CAP", help="Drop Linux capabilities."),
    click.option("--cgroup-parent", default="", help="Optional parent cgroup for the container."),
    click.option(
        "--cidfile", default="", metavar="FILE", help="Write the container ID to the file."
    ),
    click.option("--cpu-period", type=GoInt(), default=0, help="Limit CPU CFS period."),
    click.option("--cpu-quota", type=GoInt(), default=0, help="Limit CPU CFS quota."),
    click.option(
        "-c", "--cpu-shares", type=GoInt(), default=0, help="CPU shares (relative weight)."
    ),
    click.option("--cpus", type=Checked("decimal", _nano_cpus), default=0, help="Number of CPUs."),
    click.option("--cpuset-cpus", default="", help="CPUs in which to allow execution (0-3, 0,1)."),
    click.option("--cpuset-mems", default="", help="MEMs in which to allow execution (0-3, 0,1)."),
    repeated_option(
        "--dns", metavar="IP", type=Checked("ip", _dns), help="Set custom DNS servers."
    ),
    repeated_option("--dns-option", metavar="OPTION", help="Set DNS options."),
    repeated_option("--dns-search", metavar="DOMAIN", help="Set custom DNS search domains."),
    click.option("--domainname", default="", help="Container NIS domain name."),
    click.option(
        "--entrypoint", default=None, help="Overwrite the default ENTRYPOINT of the image."
    ),
    env_option,
    repeated_option("--env-file", metavar="FILE", help="Read in a file of environment variables."),
    repeated_option("--expose", metavar="PORT", help="Expose a port or a range of ports."),
    repeated_option("--group-add", metavar="GROUP", help="Add additional groups to join."),
    click.option("-h", "--hostname", default="", help="Container host name."),
    click.option(
        "--init",
        is_flag=True,
        default=None,
        help="Run an init inside the container that forwards signals and reaps processes.",
    ),
    click.option("-i", "--interactive", is_flag=True, help="Keep STDIN open even if not attached."),
    click.option("--ip", default="", help="IPv4 address (e.g., 172.30.100.104)."),
    click.option("--ip6", default="", help="IPv6 address (e.g., 2001:db8::33)."),
    click.option("--ipc", default="", help="IPC mode to use."),
    repeated_option(
        "-l",
        "--label",
        metavar="KEY=VALUE",
        type=Checked("label", validate_label),
        help="Set meta data on a container.",
    ),
    repeated_option(
        "--label-file", metavar="FILE", help="Read in a line delimited file of labels."
    ),
    repeated_option(
        "--link",
        metavar="CONTAINER[:ALIAS]",
        type=Checked("link", validate_link),
        help="Add link to another container.",
    ),
    repeated_option(
        "--link-local-ip", metavar="IP", help="Container IPv4/IPv6 link-local addresses."
    ),
    click.option("--log-driver", default="", help="Logging driver for the container."),
    repeated_option("--log-opt", metavar="KEY=VALUE", help="Log driver options."),
    click.option(
        "--mac-address", default="", help="Container MAC address (e.g., 92:d0:c6:0a:29:33)."
    ),
    click.option("-m", "--memory", type=_MEMORY, default=0, help="Memory limit."),
    click.option("--memory-reservation", type=_MEMORY, default=0, help="Memory soft limit."),
    click.option(
        "--memory-swap",
        type=_MEMORY_SWAP,
        default=0,
        help="Swap limit equal to memory plus swap: '-1' to enable unlimited swap.",
    ),
    repeated_option(
        "--mount",
        metavar="MOUNT",
        type=Checked("mount", _mount),
        help="Attach a filesystem mount to the container.",
    ),
    click.option("--name", default="", help="Assign a name to the container."),
    repeated_option(
        "--network",
        metavar="NETWORK",
        type=Checked("network", parse_attachment),
        help="Connect a container to a network (a name, or name=...,alias=...,ip=...).",
    ),
    repeated_option(
        "--network-alias", metavar="ALIAS", help="Add network-scoped alias for the container."
    ),
    click.option("--oom-score-adj", type=GoInt(), default=0, help="Tune host's OOM preferences."),
    click.option("--pid", default="", help="PID namespace to use."),
    click.option(
        "--pids-limit",
        type=GoInt(),
        default=0,
        help="Tune container pids limit (set -1 for unlimited).",
    ),
    click.option(
        "--platform", default="", help="Set platform if server is multi-platform capable."
    ),
    click.option("--privileged", is_flag=True, help="Give extended privileges to this container."),
    repeated_option(
        "-p", "--publish", metavar="PORT", help="Publish a container's port(s) to the host."
    ),
    click.option(
        "-P", "--publish-all", is_flag=True, help="Publish all exposed ports to random ports."
    ),
    click.option(
        "--pull",
        default="missing",
        show_default=True,
        help='Pull image before creating ("always", "missing", "never").',
    ),
    click.option("-q", "--quiet", is_flag=True, help="Suppress the pull output."),
    click.option(
        "--read-only", is_flag=True, help="Mount the container's root filesystem as read only."
    ),
    click.option(
        "--restart",
        default="no",
        show_default=True,
        help="Restart policy to apply when a container exits (no, always, on-failure[:N], "
        "unless-stopped).",
    ),
    click.option(
        "--rm",
        is_flag=True,
        help="Automatically remove the container and its associated anonymous volumes when "
        "it exits.",
    ),
    click.option("--runtime", default="", help="Runtime to use for this container."),
    repeated_option("--security-opt", metavar="OPTION", help="Security Options."),
    click.option("--shm-size", type=_MEMORY, default=0, help="Size of /dev/shm."),
    click.option("--stop-signal", default="", help="Signal to stop the container."),
    click.option(
        "--stop-timeout",
        type=GoInt(),
        default=None,
        help="Timeout (in seconds) to stop a container.",
    ),
    repeated_option(
        "--sysctl",
        metavar="KEY=VALUE",
        type=Checked("sysctl", _sysctl),
        help="Sysctl options.",
    ),
    repeated_option("--tmpfs", metavar="PATH[:OPTIONS]", help="Mount a tmpfs directory."),
    click.option("-t", "--tty", is_flag=True, help="Allocate a pseudo-TTY."),
    repeated_option(
        "--ulimit",
        metavar="NAME=SOFT[:HARD]",
        type=Checked("ulimit", _ulimit),
        help="Ulimit options.",
    ),
    click.option(
        "-u", "--user", default="", help="Username or UID (format: <name|uid>[:<group|gid>])."
    ),
    click.option("--userns", default="", help="User namespace to use."),
    click.option("--uts", default="", help="UTS namespace to use."),
    repeated_option("-v", "--volume", metavar="[SRC:]DST[:OPTS]", help="Bind mount a volume."),
    click.option("-w", "--workdir", default="", help="Working directory inside the container."),
]


def container_options(command: F) -> F:
    """The flags ``create`` and ``run`` share."""
    for option in reversed(_COMMON_OPTIONS):
        command = option(command)
    return command


# -- files of key=value lines -------------------------------------------------------------


def parse_env_file(path: str, lookup: Callable[[str], str | None] | None = None) -> list[str]:
    """docker's ``parseKeyValueFile``: ``KEY=VALUE`` lines (the value kept as written),
    blank lines and ``#`` comments skipped; a bare ``KEY`` takes ``lookup(KEY)`` and is
    dropped when that is ``None`` (always, without ``lookup``: label files).

    :raises ConfigError: the file cannot be read, or a line has no usable key.
    """
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise ConfigError(os_error("open", path, e)) from None
    lines: list[str] = []
    for number, raw in enumerate(data.removeprefix(b"\xef\xbb\xbf").split(b"\n"), start=1):
        content = raw.removesuffix(b"\r")
        try:
            line = content.decode("utf-8").lstrip()
        except UnicodeDecodeError:
            raise ConfigError(
                f"env file {path} contains invalid utf8 bytes at line {number}: {list(content)}"
            ) from None
        if not line or line.startswith("#"):
            continue
        variable, separator, value = line.partition("=")
        variable = variable.lstrip(_WHITESPACE)
        if any(c in variable for c in _WHITESPACE):
            raise ConfigError(
                f"poorly formatted environment: variable '{variable}' contains whitespaces"
            )
        if not variable:
            raise ConfigError(f"poorly formatted environment: no variable name on line '{line}'")
        if separator:
            lines.append(f"{variable}={value}")
        elif lookup is not None and (found := lookup(variable.strip())) is not None:
            lines.append(f"{variable.strip()}={found}")
    return lines


# -- the body -----------------------------------------------------------------------------


def normalize_platform(text: str) -> str:
    """``platforms.Normalize``: ``linux`` → ``linux/amd64`` (this machine's architecture),
    ``linux/x86_64`` → ``linux/amd64``, ``linux/arm64/v8`` → ``linux/arm64``."""
    parts = text.lower().split("/")
    os_name = parts[0]
    arch = parts[1] if len(parts) > 1 else host_platform.machine().lower()
    variant = parts[2] if len(parts) > 2 else ""
    arch = _ARCHES.get(arch, arch)
    if arch == "arm64" and variant == "v8":
        variant = ""
    return "/".join(p for p in (os_name, arch, variant) if p)


def _capabilities(names: Iterable[str]) -> list[str] | None:
    """``NormalizeCapabilities``: upper case, ``CAP_`` prefixed (``ALL`` kept), no
    duplicates; ``None`` (JSON null) for none."""
    normalized: list[str] = []
    for name in names:
        cap = name.strip().upper()
        if not cap:
            continue
        if cap != "ALL" and not cap.startswith("CAP_"):
            cap = f"CAP_{cap}"
        if cap not in normalized:
            normalized.append(cap)
    return normalized or None


def _restart_policy(text: str) -> dict[str, Any]:
    name, colon, count = text.partition(":")
    if colon and not name:
        raise ConfigError("invalid restart policy format: no policy provided before colon")
    retries = 0
    if count:
        try:
            retries = go_parse_int(count)  # strconv.Atoi
        except ValueError:
            raise ConfigError(
                "invalid restart policy format: maximum retry count must be an integer"
            ) from None
    return {"Name": name, "MaximumRetryCount": retries}


def _volumes(specs: Sequence[str]) -> tuple[list[str] | None, dict[str, Any]]:
    """``Binds`` (``-v src:dst[:opts]``, a relative ``./src`` made absolute) and the
    anonymous ``Volumes`` (``-v /dst``)."""
    binds: list[str] = []
    anonymous: dict[str, Any] = {}
    for spec in dict.fromkeys(specs):
        if not spec:
            raise ConfigError("invalid empty volume spec")
        source, separator, rest = spec.partition(":")
        if not separator or not source:
            anonymous[spec] = {}
        elif source.startswith(".") and not Path(source).is_absolute():
            binds.append(f"{Path(source).absolute()}:{rest}")
        else:
            binds.append(spec)
    return binds or None, anonymous


@dataclass
class ContainerConfig:
    """What ``create`` and ``run`` send: the create body and its query."""

    body: dict[str, Any]
    name: str = ""
    platform: str = ""
    pull: str = "missing"
    quiet: bool = False
    warnings: list[str] = field(default_factory=list)

    @property
    def host_config(self) -> dict[str, Any]:
        host_config: dict[str, Any] = self.body["HostConfig"]
        return host_config

    @property
    def tty(self) -> bool:
        return bool(self.body["Tty"])

    @property
    def attached(self) -> bool:
        return any(self.body[f"Attach{s}"] for s in ("Stdin", "Stdout", "Stderr"))

    @property
    def params(self) -> dict[str, str]:
        """The query of ``POST /containers/create``."""
        params = {"name": self.name} if self.name else {}
        if self.platform:
            params["platform"] = self.platform
        return params

    def detach(self) -> None:
        """``run -d``: nothing attached."""
        for stream in ("Stdin", "Stdout", "Stderr"):
            self.body[f"Attach{stream}"] = False
        self.body["StdinOnce"] = False


def _localhost_dns(servers: Sequence[str]) -> list[str]:
    """docker's ``warnOnLocalhostDNS``."""
    return [
        f"WARNING: Localhost DNS ({server}) may fail in containers."
        for server in servers
        if ipaddress.ip_address(server).is_loopback
    ]


def build(values: Mapping[str, Any], image: str, args: Sequence[str]) -> ContainerConfig:
    """The create body for ``image`` and ``args`` under the flags in ``values`` (click's
    parameters of :func:`container_options`).

    :raises ConfigError: a combination docker refuses, in its words.
    """
    pull = values["pull"]
    if pull not in (*PULL_POLICIES, ""):
        raise ConfigError(
            f'invalid pull option: \'{pull}\': must be one of "always", "missing" or "never"'
        )
    attach = set(values["attach"])
    attach_stdin = "stdin" in attach or values["interactive"]
    attach_stdout = "stdout" in attach or not attach
    attach_stderr = "stderr" in attach or not attach

    env_files = [
        line for path in values["env_file"] for line in parse_env_file(path, os.environ.get)
    ]
    env = env_files + list(values["env"]) if env_files or values["env"] else None
    labels = [line for path in values["label_file"] for line in parse_env_file(path)]
    labels += values["label"]
    exposed, bindings = ports(values["publish"], values["expose"])
    binds, anonymous = _volumes(values["volume"])
    tmpfs = {}
    for item in values["tmpfs"]:
        target, _, options = item.partition(":")
        tmpfs[target] = options
    restart = _restart_policy(values["restart"])
    if values["rm"] and restart["Name"] not in ("", "no"):
        raise ConfigError("conflicting options: cannot specify both --restart and --rm")
    log_options = kv_map(values["log_opt"])
    if values["log_driver"] == "none" and values["log_opt"]:
        raise ConfigError("invalid logging opts for driver none")
    networks: list[Attachment] = list(values["network"])
    endpoints = endpoints_config(
        networks,
        aliases=values["network_alias"],
        links=values["link"],
        ipv4=values["ip"],
        ipv6=values["ip6"],
        mac=values["mac_address"],
        link_local_ips=values["link_local_ip"],
    )
    entrypoint = values["entrypoint"]

    config: dict[str, Any] = {
        "Hostname": values["hostname"],
        "Domainname": values["domainname"],
        "User": values["user"],
        "AttachStdin": attach_stdin,
        "AttachStdout": attach_stdout,
        "AttachStderr": attach_stderr,
    }
    if exposed:
        config["ExposedPorts"] = exposed
    config |= {
        "Tty": values["tty"],
        "OpenStdin": values["interactive"],
        "StdinOnce": values["interactive"] and attach_stdin,
        "Env": env,
        "Cmd": list(args) or None,
        "Image": image,
        "Volumes": anonymous,
        "WorkingDir": values["workdir"],
        "Entrypoint": None if entrypoint is None else [entrypoint],
        "OnBuild": None,
        "Labels": kv_map(labels),
    }
    if values["stop_signal"]:
        config["StopSignal"] = values["stop_signal"]
    if values["stop_timeout"] is not None:
        config["StopTimeout"] = values["stop_timeout"]
    config["HostConfig"] = _host_config(
        values,
        binds=binds,
        bindings=bindings,
        restart=restart,
        log_options=log_options,
        tmpfs=tmpfs,
        networks=networks,
    )
    config["NetworkingConfig"] = {"EndpointsConfig": endpoints}
    return ContainerConfig(
        config,
        name=values["name"],
        platform=normalize_platform(values["platform"]) if values["platform"] else "",
        pull=pull or "missing",
        quiet=values["quiet"],
        warnings=_localhost_dns(values["dns"]),
    )


def _host_config(
    values: Mapping[str, Any],
    *,
    binds: list[str] | None,
    bindings: dict[str, list[dict[str, str]]],
    restart: dict[str, Any],
    log_options: dict[str, str],
    tmpfs: dict[str, str],
    networks: list[Attachment],
) -> dict[str, Any]:
    host: dict[str, Any] = {
        "Binds": binds,
        "ContainerIDFile": values["cidfile"],
        "LogConfig": {"Type": values["log_driver"], "Config": log_options},
        "NetworkMode": networks[0].target if networks else "default",
        "PortBindings": bindings,
        "RestartPolicy": restart,
        "AutoRemove": values["rm"],
        "VolumeDriver": "",
        "VolumesFrom": None,
        "ConsoleSize": [0, 0],
        "CapAdd": _capabilities(values["cap_add"]),
        "CapDrop": _capabilities(values["cap_drop"]),
        "CgroupnsMode": "",
        "Dns": list(values["dns"]),
        "DnsOptions": list(values["dns_option"]),
        "DnsSearch": list(values["dns_search"]),
        "ExtraHosts": list(values["add_host"]) or None,
        "GroupAdd": list(values["group_add"]) or None,
        "IpcMode": values["ipc"],
        "Cgroup": "",
        "Links": list(values["link"]) or None,
        "OomScoreAdj": values["oom_score_adj"],
        "PidMode": values["pid"],
        "Privileged": values["privileged"],
        "PublishAllPorts": values["publish_all"],
        "ReadonlyRootfs": values["read_only"],
        "SecurityOpt": list(values["security_opt"]) or None,
    }
    if tmpfs:
        host["Tmpfs"] = tmpfs
    host |= {
        "UTSMode": values["uts"],
        "UsernsMode": values["userns"],
        "ShmSize": values["shm_size"],
    }
    if values["sysctl"]:
        host["Sysctls"] = kv_map(values["sysctl"])
    if values["runtime"]:
        host["Runtime"] = values["runtime"]
    ulimits = {limit["Name"]: limit for limit in values["ulimit"]}
    host |= {
        "Isolation": "",
        "CpuShares": values["cpu_shares"],
        "Memory": values["memory"],
        "NanoCpus": values["cpus"],
        "CgroupParent": values["cgroup_parent"],
        "BlkioWeight": 0,
        "BlkioWeightDevice": [],
        "BlkioDeviceReadBps": [],
        "BlkioDeviceWriteBps": [],
        "BlkioDeviceReadIOps": [],
        "BlkioDeviceWriteIOps": [],
        "CpuPeriod": values["cpu_period"],
        "CpuQuota": values["cpu_quota"],
        "CpuRealtimePeriod": 0,
        "CpuRealtimeRuntime": 0,
        "CpusetCpus": values["cpuset_cpus"],
        "CpusetMems": values["cpuset_mems"],
        "Devices": [],
        "DeviceCgroupRules": None,
        "DeviceRequests": None,
        "MemoryReservation": values["memory_reservation"],
        "MemorySwap": values["memory_swap"],
        "MemorySwappiness": -1,
        "OomKillDisable": False,
        "PidsLimit": values["pids_limit"],
        "Ulimits": [ulimits[name] for name in sorted(ulimits)],
        "CpuCount": 0,
        "CpuPercent": 0,
        "IOMaximumIOps": 0,
        "IOMaximumBandwidth": 0,
    }
    if values["mount"]:
        host["Mounts"] = list(values["mount"])
    host |= {"MaskedPaths": None, "ReadonlyPaths": None}
    if values["init"] is not None:
        host["Init"] = values["init"]
    return host
