"""From a container's configuration to the :class:`~pydockerd.spec.ContainerSpec` a runtime
runs: the user resolved in the image's ``/etc/passwd``, the environment, the files Docker
bind-mounts (``/etc/hosts``, ``/etc/hostname``, ``/etc/resolv.conf``) and every mount in
Docker's order."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from pydockerd.containers.config import MountPoint, capabilities
from pydockerd.errors import InvalidParameter
from pydockerd.fsutil import resolve_in_root
from pydockerd.spec import (
    DEFAULT_DEVICES,
    DEFAULT_MASKED_PATHS,
    DEFAULT_READONLY_PATHS,
    ContainerSpec,
    MountSpec,
    ProcessSpec,
    Resources,
)

__all__ = [
    "DEFAULT_PATH",
    "ExecUser",
    "build_spec",
    "container_env",
    "default_mounts",
    "etc_files",
    "process_env",
    "resolve_user",
    "user_mounts",
]

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
"""``PATH`` when neither the image nor the request sets one (Docker's)."""

_HOSTS_HEAD = """127.0.0.1\tlocalhost
::1\tlocalhost ip6-localhost ip6-loopback
fe00::\tip6-localnet
ff00::\tip6-mcastprefix
ff02::1\tip6-allnodes
ff02::2\tip6-allrouters
"""


@dataclass(frozen=True)
class ExecUser:
    uid: int
    gid: int
    additional_gids: tuple[int, ...]
    home: str


def _entries(root: Path, path: str) -> list[list[str]]:
    """The colon-separated records of ``path`` inside the image (none if it is missing)."""
    try:
        text = resolve_in_root(root, path).read_text(errors="replace")
    except OSError:
        return []
    return [line.split(":") for line in text.splitlines() if line and not line.startswith("#")]


def _group_id(groups: list[list[str]], wanted: str) -> int:
    for entry in groups:
        if len(entry) >= 3 and entry[0] == wanted:
            return int(entry[2])
    if wanted.isdigit():
        return int(wanted)
    raise InvalidParameter(f"unable to find group {wanted}: no matching entries in group file")


def resolve_user(root: Path, user: str, group_add: Sequence[str] = ()) -> ExecUser:
    """``User`` (``name``, ``uid``, ``name:group``, ``uid:gid``) as numbers, read from the
    container's ``/etc/passwd`` and ``/etc/group`` as Docker reads them.

    :raises InvalidParameter: Docker's ``unable to find user x: no matching entries in
        passwd file`` (and the same for groups).
    """
    name, _, group = (user or "0").partition(":")
    passwd = _entries(root, "/etc/passwd")
    groups = _entries(root, "/etc/group")
    entry = next((e for e in passwd if len(e) >= 7 and name in (e[0], e[2])), None)
    if entry is None and not name.isdigit():
        raise InvalidParameter(f"unable to find user {name}: no matching entries in passwd file")
    uid = int(entry[2]) if entry else int(name)
    gid = int(entry[3]) if entry else 0
    home = entry[5] if entry else "/"
    if group:
        gid = _group_id(groups, group)
    additional: list[int] = []
    if entry is not None and not group:
        for record in groups:
            if len(record) >= 4 and entry[0] in record[3].split(","):
                additional.append(int(record[2]))
    additional.extend(_group_id(groups, g) for g in group_add)
    return ExecUser(uid, gid, tuple(dict.fromkeys(additional)), home or "/")


def replace_or_append(env: list[str], overrides: Iterable[str]) -> list[str]:
    result = list(env)
    for item in overrides:
        key = item.split("=", 1)[0]
        for i, existing in enumerate(result):
            if existing.split("=", 1)[0] == key:
                result[i] = item
                break
        else:
            result.append(item)
    return result


def container_env(config: Mapping[str, Any]) -> list[str]:
    """The first process's environment: ``PATH``, ``HOSTNAME`` and (with a tty) ``TERM``,
    overridden by the configuration's ``Env``, as moby builds it."""
    base = [f"PATH={DEFAULT_PATH}", f"HOSTNAME={config.get('Hostname', '')}"]
    if config.get("Tty"):
        base.append("TERM=xterm")
    return replace_or_append(base, config.get("Env") or [])


def process_env(env: Sequence[str], user: ExecUser) -> tuple[str, ...]:
    """``env`` with ``HOME`` added from the user's passwd entry when it lacks one."""
    if any(item.startswith("HOME=") for item in env):
        return tuple(env)
    return (*env, f"HOME={user.home}")


def etc_files(
    directory: Path,
    hostname: str,
    *,
    own_addresses: Sequence[str] = (),
    extra_hosts: Sequence[str] = (),
    dns: Sequence[str] = (),
    dns_search: Sequence[str] = (),
    dns_options: Sequence[str] = (),
    host_network: bool = False,
    host_resolv: Path = Path("/etc/resolv.conf"),
) -> None:
    """Write the container's ``hosts`` (with its own addresses), ``hostname`` and
    ``resolv.conf`` into ``directory``, in place (they are bind-mounted into a running
    container: a new file would not be seen).

    ``resolv.conf`` is the host's, without the loopback name servers the container could not
    reach from its own network namespace (on the host network it is the host's as it is);
    ``--dns``, ``--dns-search`` and ``--dns-option`` replace the host's entries. Unlike
    Docker, no public name server is ever added in place of the host's.
    """
    (directory / "hostname").write_text(f"{hostname}\n")
    hosts = _HOSTS_HEAD
    for address in own_addresses:
        hosts += f"{address}\t{hostname}\n"
    for entry in extra_hosts:
        name, _, address = entry.rpartition(":")
        if not name:
            raise InvalidParameter(f"invalid argument {entry!r} for --add-host: expected host:ip")
        hosts += f"{address}\t{name}\n"
    (directory / "hosts").write_text(hosts)
    try:
        host_lines = host_resolv.read_text().splitlines()
    except OSError:
        host_lines = []
    lines: list[str] = []
    for line in host_lines:
        words = line.split()
        if not words or words[0].startswith(("#", ";")):
            continue
        if words[0] == "nameserver" and (dns or (not host_network and _loopback(words[1:]))):
            continue
        if words[0] in ("search", "domain") and dns_search:
            continue
        if words[0] == "options" and dns_options:
            continue
        lines.append(line)
    lines += [f"nameserver {server}" for server in dns]
    if dns_search:
        lines.append("search " + " ".join(dns_search))
    if dns_options:
        lines.append("options " + " ".join(dns_options))
    (directory / "resolv.conf").write_text("\n".join(lines) + ("\n" if lines else ""))


def _loopback(words: Sequence[str]) -> bool:
    try:
        return bool(words) and ipaddress.ip_address(words[0].split("%")[0]).is_loopback
    except ValueError:
        return False


def default_mounts(shm_size: int, *, privileged: bool) -> list[MountSpec]:
    """The mounts every Docker container has, before anything else; ``/sys`` and
    ``/sys/fs/cgroup`` are writable for a privileged container only, as Docker's."""
    sys_mode = "rw" if privileged else "ro"
    return [
        MountSpec("/proc", "proc", "proc", ("nosuid", "noexec", "nodev")),
        MountSpec("/dev", "tmpfs", "tmpfs", ("nosuid", "strictatime", "mode=755", "size=65536k")),
        MountSpec(
            "/dev/pts",
            "devpts",
            "devpts",
            ("nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"),
        ),
        MountSpec("/sys", "sysfs", "sysfs", ("nosuid", "noexec", "nodev", sys_mode)),
        MountSpec("/sys/fs/cgroup", "cgroup", "cgroup", ("nosuid", "noexec", "nodev", sys_mode)),
        MountSpec("/dev/mqueue", "mqueue", "mqueue", ("nosuid", "noexec", "nodev")),
        MountSpec(
            "/dev/shm",  # noqa: S108 - the container's own /dev/shm
            "tmpfs",
            "shm",
            ("nosuid", "noexec", "nodev", "mode=1777", f"size={max(shm_size, 4096) // 1024}k"),
        ),
    ]


def _depth(path: str) -> int:
    return len(PurePosixPath(path).parts)


def user_mounts(points: Sequence[MountPoint], sources: Mapping[str, str]) -> list[MountSpec]:
    """The container's binds, volumes and tmpfs mounts, parents before children (moby's
    order). ``sources`` gives each volume's host path by destination."""
    specs = []
    for point in sorted(points, key=lambda p: _depth(p.destination)):
        ro = () if point.rw else ("ro",)
        if point.type == "tmpfs":
            options = [o for o in point.tmpfs_options if o not in ("ro", "rw")]
            flags = [f for f in ("nosuid", "nodev", "noexec") if f[2:] not in options]
            specs.append(MountSpec(point.destination, "tmpfs", "tmpfs", (*flags, *options, *ro)))
            continue
        source = sources[point.destination] if point.type == "volume" else point.source
        propagation = point.propagation or "rprivate"
        specs.append(MountSpec(point.destination, "bind", source, ("rbind", propagation, *ro)))
    return specs


def build_spec(
    *,
    container_id: str,
    root: Path,
    config: Mapping[str, Any],
    host: Mapping[str, Any],
    directory: Path,
    mounts: Sequence[MountSpec],
    namespaces: dict[str, str],
    cgroup_path: str,
    user: ExecUser,
) -> ContainerSpec:
    """The spec of the container's first process and everything around it."""
    etc_options = ("rbind", "rprivate", *(("ro",) if host.get("ReadonlyRootfs") else ()))
    privileged = bool(host.get("Privileged"))
    all_mounts = [
        *default_mounts(int(host.get("ShmSize") or 67108864), privileged=privileged),
        *(
            MountSpec(f"/etc/{name}", "bind", str(directory / name), etc_options)
            for name in ("resolv.conf", "hostname", "hosts")
        ),
        *mounts,
    ]
    nano = int(host.get("NanoCpus") or 0)
    period = int(host.get("CpuPeriod") or 0) or (100_000 if nano else 0)
    quota = int(host.get("CpuQuota") or 0) or (nano * period // 10**9 if nano else 0)
    pids = host.get("PidsLimit")
    console = host.get("ConsoleSize") or [0, 0]
    argv = [*(config.get("Entrypoint") or []), *(config.get("Cmd") or [])]
    return ContainerSpec(
        id=container_id,
        root=str(root),
        process=ProcessSpec(
            args=tuple(argv),
            env=process_env(container_env(config), user),
            cwd=config.get("WorkingDir") or "/",
            uid=user.uid,
            gid=user.gid,
            additional_gids=user.additional_gids,
            terminal=bool(config.get("Tty")),
            capabilities=capabilities(host),
            no_new_privileges=not privileged,
            console_size=(int(console[0]), int(console[1])) if console[0] and console[1] else None,
        ),
        readonly_root=bool(host.get("ReadonlyRootfs")),
        hostname=str(config.get("Hostname") or ""),
        domainname=str(config.get("Domainname") or ""),
        mounts=tuple(all_mounts),
        devices=DEFAULT_DEVICES,
        masked_paths=() if privileged else DEFAULT_MASKED_PATHS,
        readonly_paths=() if privileged else DEFAULT_READONLY_PATHS,
        namespaces=namespaces,
        cgroup_path=cgroup_path,
        resources=Resources(
            memory=int(host.get("Memory") or 0),
            memory_swap=int(host.get("MemorySwap") or 0),
            cpu_quota=quota,
            cpu_period=period,
            cpu_shares=int(host.get("CpuShares") or 0),
            pids_limit=int(pids) if pids and int(pids) > 0 else 0,
        ),
        sysctls=dict(host.get("Sysctls") or {}),
    )
