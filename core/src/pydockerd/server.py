"""Serving the API: listeners (unix, tcp, systemd sockets), readiness, signals, shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import grp
import ipaddress
import os
import signal
import socket
import ssl
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web
from loguru import logger

from pydockerd.api.app import create_app
from pydockerd.daemon import Daemon
from pydockerd.errors import ConfigError
from pydockerd.log import configure_logging
from pydockerd.settings import DaemonSettings, load_settings

__all__ = ["Host", "parse_host", "run", "sd_notify"]

_SD_LISTEN_FDS_START = 3


@dataclass(frozen=True)
class Host:
    """A parsed ``-H`` value."""

    scheme: str  # "unix", "tcp" or "fd"
    address: str  # socket path, "host:port", or "" / fd number
    host: str = ""
    port: int = 0


def parse_host(value: str) -> Host:
    """Parse ``unix:///path``, ``/path``, ``tcp://host:port`` or ``fd://`` as dockerd does.

    :raises ConfigError: an unknown scheme, a relative unix path, or a tcp host without port.
    """
    if value.startswith("/"):
        value = "unix://" + value
    parts = urlsplit(value)
    if parts.scheme == "unix":
        path = parts.netloc + parts.path
        if not path.startswith("/"):
            raise ConfigError(f"invalid host {value!r}: the unix socket path must be absolute")
        return Host("unix", path)
    if parts.scheme == "tcp":
        try:
            port = parts.port
        except ValueError as e:  # not a number, or out of range
            raise ConfigError(f"invalid host {value!r}: {e}") from None
        if port is None:
            raise ConfigError(f"invalid host {value!r}: tcp:// needs a port (tcp://HOST:PORT)")
        host = parts.hostname or "127.0.0.1"
        return Host("tcp", f"{host}:{port}", host=host, port=port)
    if parts.scheme == "fd":
        return Host("fd", parts.netloc)
    raise ConfigError(f"invalid host {value!r}: use unix://PATH, tcp://HOST:PORT or fd://")


def sd_notify(state: str) -> bool:
    """Send ``state`` (``READY=1``, ``STOPPING=1``) to systemd's ``$NOTIFY_SOCKET``, if any."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(state.encode())
    except OSError as e:
        logger.warning("cannot notify systemd at {}: {}", address, e)
        return False
    return True


def _systemd_sockets() -> list[socket.socket]:
    """The sockets systemd passed us (socket activation), per ``sd_listen_fds(3)``."""
    if os.environ.get("LISTEN_PID") != str(os.getpid()):
        return []
    count = int(os.environ.get("LISTEN_FDS", "0"))
    for name in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
        os.environ.pop(name, None)
    return [
        socket.socket(fileno=fd) for fd in range(_SD_LISTEN_FDS_START, _SD_LISTEN_FDS_START + count)
    ]


def _unix_socket(path: Path, group: str) -> socket.socket:
    """Bind ``path`` (mode 0660, owned by ``group`` when it exists), replacing a stale socket.

    :raises ConfigError: another process is serving on ``path``.
    """
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
    if path.exists() or path.is_symlink():
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            try:
                probe.connect(str(path))
            except OSError:
                path.unlink()  # nobody listens: left over from a crash
            else:
                raise ConfigError(f"{path} is in use by another process (is a daemon running?)")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_umask = os.umask(0o177)
    try:
        sock.bind(str(path))
    finally:
        os.umask(old_umask)
    try:
        gid = grp.getgrnam(group).gr_gid
    except KeyError:
        gid = 0
        logger.warning("group {!r} does not exist; {} is owned by root:root", group, path)
    os.chown(path, 0 if os.geteuid() == 0 else -1, gid if os.geteuid() == 0 else -1)
    path.chmod(0o660)
    return sock


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def _tls_context(settings: DaemonSettings) -> ssl.SSLContext | None:
    tls = settings.tls
    if not tls.enabled:
        if tls.verify:
            raise ConfigError("tls.verify needs tls.cert and tls.key")
        return None
    assert tls.cert is not None
    assert tls.key is not None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(tls.cert, tls.key)
        if tls.verify:
            if tls.cacert is None:
                raise ConfigError("tls.verify needs tls.cacert to check client certificates")
            context.load_verify_locations(tls.cacert)
            context.verify_mode = ssl.CERT_REQUIRED
    except (OSError, ssl.SSLError) as e:
        raise ConfigError(f"cannot load TLS files: {e}") from e
    return context


async def open_sites(runner: web.AppRunner, settings: DaemonSettings) -> list[Path]:
    """Start a site for every ``hosts`` entry; return the unix socket paths we created."""
    created: list[Path] = []
    tls = _tls_context(settings)
    for value in settings.hosts:
        host = parse_host(value)
        site: web.BaseSite
        if host.scheme == "unix":
            path = Path(host.address)
            site = web.SockSite(runner, _unix_socket(path, settings.group))
            created.append(path)
            await site.start()
        elif host.scheme == "tcp":
            if tls is None and not _is_loopback(host.host) and not settings.allow_insecure_tcp:
                raise ConfigError(
                    f"refusing to serve {value} without TLS on a non-loopback address: anyone "
                    "who reaches it controls the host. Configure [tls], use 127.0.0.1, or set "
                    "allow_insecure_tcp = true"
                )
            await web.TCPSite(runner, host.host, host.port, ssl_context=tls).start()
        else:
            sockets = _systemd_sockets()
            if not sockets:
                raise ConfigError(f"{value}: no sockets were passed by systemd (LISTEN_FDS)")
            for sock in sockets:
                await web.SockSite(runner, sock).start()
        logger.info("API listening on {}", value)
    return created


class Server:
    """One daemon process: the :class:`Daemon`, its API, and its signal handling."""

    def __init__(
        self, config_file: Path | None, overrides: dict[str, Any], settings: DaemonSettings
    ) -> None:
        self.config_file = config_file
        self.overrides = overrides
        self.settings = settings
        self.daemon = Daemon(settings)
        self.stopping = asyncio.Event()

    def reload(self) -> None:
        """SIGHUP: re-read the configuration, apply what can change live (logging)."""
        try:
            new = load_settings(self.config_file, self.overrides)
        except ConfigError as e:
            logger.error("reload failed, keeping the running configuration: {}", e)
            return
        configure_logging(new.log_level, new.log_format)
        live = {"log_level", "log_format"}
        changed = sorted(
            k
            for k in DaemonSettings.model_fields
            if k not in live and getattr(new, k) != getattr(self.settings, k)
        )
        if changed:
            logger.warning("reload: {} changed; restart the daemon to apply", ", ".join(changed))
        self.settings = self.daemon.settings = self.settings.model_copy(
            update={k: getattr(new, k) for k in live}
        )
        self.daemon.emit(
            "daemon",
            "reload",
            self.daemon.id,
            name=socket.gethostname(),
            **{"log-level": new.log_level, "log-format": new.log_format},
        )
        logger.info("configuration reloaded")

    async def run(self, extra_plugins: Iterable[tuple[str, ModuleType | str]] = ()) -> None:
        loop = asyncio.get_running_loop()
        await self.daemon.initialize(extra_plugins=extra_plugins)
        runner = web.AppRunner(
            create_app(self.daemon),
            handle_signals=False,
            access_log=None,
            shutdown_timeout=self.settings.shutdown_timeout,
        )
        await runner.setup()
        sockets: list[Path] = []
        try:
            sockets = await open_sites(runner, self.settings)
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, self.stopping.set)
            loop.add_signal_handler(signal.SIGHUP, self.reload)
            sd_notify(f"READY=1\nSTATUS=serving the Engine API\nMAINPID={os.getpid()}")
            logger.info("pydockerd {} ready (pid {})", self.daemon.version, os.getpid())
            await self.stopping.wait()
            logger.info("shutting down")
            sd_notify("STOPPING=1")
        finally:
            await self.daemon.events.close()
            self.daemon.end_long_lived()
            await runner.cleanup()
            for path in sockets:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
            await self.daemon.close()
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                loop.remove_signal_handler(sig)
        logger.info("stopped")


def run(config_file: Path | None, overrides: dict[str, Any]) -> int:
    """Load the configuration, serve until SIGTERM; the process's exit status."""
    try:
        settings = load_settings(config_file, overrides)
    except ConfigError as e:
        configure_logging("info", "text")
        logger.error("failed to start daemon: {}", e)
        return 1
    configure_logging(settings.log_level, settings.log_format)
    try:
        asyncio.run(Server(config_file, overrides, settings).run())
    except ConfigError as e:
        logger.error("failed to start daemon: {}", e)
        return 1
    return 0
