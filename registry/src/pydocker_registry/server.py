"""From settings to a running registry: storage, the auth mode, the app, TLS, the listener.

:func:`build` makes the parts (each fault it finds is a :class:`~.config.ConfigError`
problem, which is what ``validate`` prints); :func:`serve` runs them until SIGTERM/SIGINT.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.typedefs import Handler
from loguru import logger

from pydocker_registry.access import AllowAll, Authorizer
from pydocker_registry.auth import (
    USER,
    AccessPolicy,
    AuthError,
    Htpasswd,
    HtpasswdAuthorizer,
    TokenAuthorizer,
    TokenIssuer,
    add_token_routes,
    load_private_key,
    load_public_key,
)
from pydocker_registry.config import ConfigError, RegistrySettings, split_addr
from pydocker_registry.storage import StorageBackend, open_storage

__all__ = ["AccessLogger", "Parts", "build", "check_settings", "make_ssl_context", "serve"]


class AccessLogger(AbstractAccessLogger):
    """One loguru line per request: client, request line, status, size, seconds, user."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        user = request.get(USER, "-")
        logger.bind(access=True).info(
            '{} {} "{} {} HTTP/{}.{}" {} {} {:.3f}s',
            request.remote or "-",
            user,
            request.method,
            request.path_qs,
            request.version.major,
            request.version.minor,
            response.status,
            response.body_length,
            time,
        )


class _InFlight:
    """Counts requests whose handlers run. aiohttp's own shutdown stops reading from every
    connection at once, which leaves an upload whose body is still arriving stuck until
    the timeout; so :func:`serve` first stops listening and waits for this count to drop."""

    def __init__(self) -> None:
        self.count = 0
        self._idle = asyncio.Event()
        self._idle.set()

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        self.count += 1
        self._idle.clear()
        try:
            return await handler(request)
        finally:
            self.count -= 1
            if not self.count:
                self._idle.set()

    async def idle(self) -> None:
        """Return once no handler runs."""
        await self._idle.wait()


@dataclass
class Parts:
    """What :func:`build` made: close :attr:`storage` when done."""

    storage: StorageBackend
    authorizer: Authorizer
    ssl_context: ssl.SSLContext | None
    add_routes: list[Callable[[web.Application], None]] = field(default_factory=list)

    def app(self, settings: RegistrySettings) -> web.Application:
        from pydocker_registry.app import make_app

        app: web.Application = make_app(
            self.storage, self.authorizer, delete_enabled=settings.delete_enabled
        )
        for add in self.add_routes:
            add(app)
        return app


def make_ssl_context(settings: RegistrySettings) -> ssl.SSLContext | None:
    """The server's TLS context (TLS 1.2 or newer), or None when TLS is not configured."""
    tls = settings.tls
    if tls.certificate is None or tls.key is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(tls.certificate, tls.key)
    return context


def _authorizer(
    settings: RegistrySettings, add_routes: list[Callable[[web.Application], None]]
) -> Authorizer:
    auth = settings.auth
    if auth.mode == "none":
        return AllowAll()
    htpasswd = Htpasswd(auth.htpasswd.path) if auth.htpasswd.path is not None else None
    if auth.mode == "htpasswd":
        assert htpasswd is not None  # AuthSettings checks that the path is set
        return HtpasswdAuthorizer(htpasswd, auth.htpasswd.realm, auth.htpasswd.read_only_users)
    token = auth.token
    private = load_private_key(token.private_key) if token.private_key else None
    keys = [load_public_key(path) for path in token.public_keys]
    if private is not None and (token.server or not keys):
        keys.append(private.public_key())  # what the built-in token server signs must pass
    if token.server and private is not None:
        issuer = TokenIssuer(
            private,
            issuer=token.issuer,
            service=token.service,
            expiration=token.expiration,
            refresh_expiration=token.refresh_expiration,
        )
        policy = AccessPolicy(token.rules)
        add_routes.append(lambda app: add_token_routes(app, issuer, policy, htpasswd))
    return TokenAuthorizer(keys, realm=token.realm, service=token.service, issuer=token.issuer)


def build(settings: RegistrySettings) -> Parts:
    """Open the storage, load the auth files and keys, read the TLS files.

    :raises ConfigError: every part that failed, one problem each.
    """
    problems: list[str] = []
    add_routes: list[Callable[[web.Application], None]] = []
    authorizer: Authorizer = AllowAll()
    ssl_context = None
    storage: StorageBackend | None = None
    try:
        authorizer = _authorizer(settings, add_routes)
    except AuthError as e:
        problems.append(f"auth: {e}")
    try:
        ssl_context = make_ssl_context(settings)
    except (OSError, ssl.SSLError) as e:
        problems.append(f"tls: cannot load {settings.tls.certificate} / {settings.tls.key}: {e}")
    try:
        storage = open_storage(settings.storage.backend, dict(settings.storage.options))
    except (ValueError, OSError) as e:
        problems.append(f"storage: {e}")
    if problems or storage is None:
        if storage is not None:
            _close_soon(storage)
        raise ConfigError(problems)
    return Parts(storage, authorizer, ssl_context, add_routes)


def _close_soon(storage: StorageBackend) -> None:
    with contextlib.suppress(Exception):
        asyncio.run(storage.close())


def check_settings(settings: RegistrySettings) -> list[str]:
    """The problems :func:`build` finds (an empty list: the configuration is usable)."""
    try:
        parts = build(settings)
    except ConfigError as e:
        return e.problems
    _close_soon(parts.storage)
    return []


def _notify_systemd(state: str) -> None:
    """sd_notify(3) without libsystemd: a datagram to ``$NOTIFY_SOCKET``, if set."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return
    if address.startswith("@"):
        address = "\0" + address[1:]
    with (
        contextlib.suppress(OSError),
        socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock,
    ):
        sock.sendto(state.encode(), address)


async def serve(settings: RegistrySettings, parts: Parts) -> None:
    """Serve until SIGTERM or SIGINT, then let requests in flight finish (at most
    ``shutdown_timeout`` seconds) and close the storage."""
    host, port = split_addr(settings.addr)
    app = parts.app(settings)
    in_flight = _InFlight()
    app.middlewares.insert(0, in_flight.middleware)
    runner = web.AppRunner(
        app, access_log_class=AccessLogger, shutdown_timeout=settings.shutdown_timeout
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port, ssl_context=parts.ssl_context)
        await site.start()
        scheme = "https" if parts.ssl_context else "http"
        for address in runner.addresses:
            shown = f"[{address[0]}]" if ":" in address[0] else address[0]
            logger.info(
                "pydocker-registry listening on {}://{}:{} (auth: {})",
                scheme,
                shown,
                address[1],
                settings.auth.mode,
            )
        _notify_systemd("READY=1")
        await stop.wait()
        _notify_systemd("STOPPING=1")
        logger.info("stopping: finishing {} requests in flight", in_flight.count)
        await site.stop()  # no new connections
        try:
            async with asyncio.timeout(settings.shutdown_timeout):
                await in_flight.idle()
        except TimeoutError:
            logger.warning("{} requests still running: cut off", in_flight.count)
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
        await runner.cleanup()
        await parts.storage.close()
    logger.info("stopped")
