"""Talking to the daemon: host addresses, version negotiation, requests and JSON streams.

:class:`APIClient` is all the commands use. It negotiates the API version lazily, the way the
docker CLI does (``HEAD /_ping``, read ``Api-Version``, cap it at :data:`MAX_API_VERSION`),
then sends every request under ``/v{version}/``. Daemon errors become
:class:`~pydocker.errors.DaemonError`, connection failures
:class:`~pydocker.errors.CannotConnect`; the CLI prints both as docker does.
"""

from __future__ import annotations

import errno
import json
import logging
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx

from pydocker import __version__
from pydocker.errors import (
    CannotConnect,
    ConnectionFailed,
    DaemonError,
    InvalidHost,
    PydockerError,
)
from pydocker.hijack import Hijacked, open_hijacked

__all__ = [
    "DEFAULT_HOST",
    "FALLBACK_API_VERSION",
    "MAX_API_VERSION",
    "APIClient",
    "CannotConnect",
    "DaemonError",
    "Host",
    "Params",
    "QueryItems",
    "negotiate",
    "parse_host",
    "resolve_host",
]

DEFAULT_SOCKET = "/run/pydockerd.sock"
DEFAULT_HOST = f"unix://{DEFAULT_SOCKET}"
DEFAULT_TCP_PORT = 2375
DEFAULT_TLS_PORT = 2376
MAX_API_VERSION = "1.47"
"""The newest Engine API version this client speaks."""
FALLBACK_API_VERSION = "1.24"
"""What a daemon that sends no ``Api-Version`` header is taken to speak (docker's rule)."""

Params = Mapping[str, str] | None
"""Query parameters, already rendered as strings."""
QueryItems = Sequence[tuple[str, str]] | None
"""Query parameters as pairs, for a key given more than once (``names=a&names=b``)."""

log = logging.getLogger("pydocker")


def resolve_host(flag: str | None, environ: Mapping[str, str] = os.environ) -> str:
    """The daemon's address: ``-H``, then ``PYDOCKER_HOST``, then ``DOCKER_HOST``, else
    :data:`DEFAULT_HOST`. Empty values count as unset."""
    return flag or environ.get("PYDOCKER_HOST") or environ.get("DOCKER_HOST") or DEFAULT_HOST


@dataclass(frozen=True)
class Host:
    """A parsed daemon address."""

    url: str
    """The address as the user gave it; error messages quote it."""
    base_url: str
    """What HTTP requests are sent to (``http://localhost`` on a unix socket)."""
    socket_path: str | None = None
    """The unix socket, or ``None`` for TCP."""


def parse_host(url: str) -> Host:
    """Parse ``unix:///path``, ``tcp://host[:port]``, ``http(s)://host[:port]`` or a bare
    ``host:port`` (TCP, as docker reads it). ``unix://`` alone is the default socket; TCP
    defaults to port 2375 (2376 for https).

    :raises InvalidHost: any other scheme, or a malformed address.
    """
    scheme, separator, rest = url.partition("://")
    if not separator:
        scheme, rest = "tcp", url
    scheme = scheme.lower()
    if scheme == "unix":
        return Host(url, "http://localhost", rest or DEFAULT_SOCKET)
    if scheme not in ("tcp", "http", "https") or not rest:
        raise InvalidHost(url)
    try:
        parts = urlsplit(f"//{rest}")
        port = parts.port
    except ValueError:
        raise InvalidHost(url) from None
    if parts.query or parts.fragment or parts.username is not None:
        raise InvalidHost(url)
    hostname = parts.hostname or "localhost"
    if ":" in hostname:  # an IPv6 literal
        hostname = f"[{hostname}]"
    if port is None:
        port = DEFAULT_TLS_PORT if scheme == "https" else DEFAULT_TCP_PORT
    protocol = "https" if scheme == "https" else "http"
    return Host(url, f"{protocol}://{hostname}:{port}{parts.path.rstrip('/')}")


def _version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


def negotiate(server_version: str | None) -> str:
    """The version to speak: the server's, capped at :data:`MAX_API_VERSION`;
    :data:`FALLBACK_API_VERSION` when the server does not say (or says nonsense)."""
    if not server_version:
        return FALLBACK_API_VERSION
    try:
        if _version_tuple(server_version) > _version_tuple(MAX_API_VERSION):
            return MAX_API_VERSION
    except ValueError:
        return FALLBACK_API_VERSION
    return server_version


def _os_errno(error: BaseException) -> int | None:
    """The errno of the OS error at the root of an httpx exception, if there is one."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno is not None:
            return seen.errno
        seen = seen.__cause__ or seen.__context__
    if "Permission denied" in str(error):  # httpcore keeps only the text of the OSError
        return errno.EACCES
    return None


class APIClient:
    """A connection to one daemon.

    :param host: the daemon's address (see :func:`parse_host`).
    :param version: an API version to speak without asking the daemon; by default the first
        request pings the daemon and negotiates.
    :param timeout: seconds to wait for a reply (streams wait forever between messages).
    :param transport: an httpx transport to use instead of the network (tests).
    :raises InvalidHost: ``host`` cannot be parsed.
    """

    def __init__(
        self,
        host: str | Host,
        *,
        version: str | None = None,
        timeout: float | None = 60.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.host = host if isinstance(host, Host) else parse_host(host)
        if transport is None:
            transport = httpx.HTTPTransport(uds=self.host.socket_path)
        self._timeout = timeout
        self._http = httpx.Client(
            transport=transport,
            base_url=self.host.base_url,
            timeout=timeout,
            headers={"User-Agent": f"pydocker/{__version__}"},
        )
        self._version = version

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> APIClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- version negotiation ------------------------------------------------------------

    def ping(self) -> httpx.Response:
        """``HEAD /_ping`` (unversioned); ``GET`` when HEAD answers neither 200 nor 500, as
        the docker CLI does."""
        response = self._send("HEAD", "/_ping")
        if response.status_code not in (200, 500):
            response = self._send("GET", "/_ping")
        return response

    @property
    def api_version(self) -> str:
        """The negotiated API version (pings the daemon the first time)."""
        if self._version is None:
            self._version = negotiate(self.ping().headers.get("Api-Version"))
            log.debug("API version %s negotiated with %s", self._version, self.host.url)
        return self._version

    def url(self, path: str) -> str:
        """``path`` under the negotiated version prefix: ``/info`` → ``/v1.47/info``."""
        return f"/v{self.api_version}{path}"

    # -- requests -----------------------------------------------------------------------

    def request(
        self, method: str, path: str, *, params: Params = None, json: Any = None
    ) -> httpx.Response:
        """Send a request to a versioned path and return the (successful) response.

        :raises DaemonError: the daemon answered with a status of 400 or more.
        :raises CannotConnect: nobody answers.
        :raises ConnectionFailed: the exchange broke off.
        """
        response = self._send(method, self.url(path), params=params, json=json)
        _check(response)
        return response

    def get(self, path: str, params: Params = None) -> Any:
        """``GET`` a versioned path and decode its JSON body."""
        return _decode(self.request("GET", path, params=params))

    def get_raw(self, path: str, params: Params = None) -> tuple[Any, str]:
        """``GET`` a versioned path: its decoded JSON and the body as the daemon wrote it
        (what docker's ``...WithRaw`` calls return, and its inspect prints)."""
        response = self.request("GET", path, params=params)
        return _decode(response), response.text

    def post(self, path: str, params: Params = None, json: Any = None) -> Any:
        """``POST`` to a versioned path (with an optional JSON body) and decode the JSON
        reply; ``None`` when the reply has no body (204)."""
        response = self.request("POST", path, params=params, json=json)
        return _decode(response) if response.content else None

    @contextmanager
    def _streaming(
        self, method: str, path: str, *, write_timeout: bool = True, **kwargs: Any
    ) -> Iterator[httpx.Response]:
        """A request whose reply is read as it arrives, with no read timeout (and no write
        timeout for uploads): an error reply raises before the body is read, and a broken
        connection, at any point, raises docker's message."""
        url = self.url(path)
        log.debug("%s %s (stream)", method, url)
        timeout = httpx.Timeout(
            self._timeout, read=None, write=self._timeout if write_timeout else None
        )
        try:
            with self._http.stream(method, url, timeout=timeout, **kwargs) as response:
                if response.status_code >= 400:
                    response.read()
                    _check(response)
                yield response
        except httpx.TransportError as e:
            raise self._failure(e, method, url) from e

    @contextmanager
    def stream(
        self, method: str, path: str, *, params: Params = None, json: Any = None
    ) -> Iterator[httpx.Response]:
        """A request whose reply is read as it arrives, without a read timeout: the context
        is entered once the response headers are in (``/containers/{id}/wait`` answers its
        headers at once and its body when the container exits).

        :raises DaemonError: an error status, before the context is entered.
        """
        with self._streaming(method, path, params=params, json=json) as response:
            yield response

    def hijack(self, path: str, params: QueryItems = None, body: Any = None) -> Hijacked:
        """``POST`` to a versioned path and take over the connection once the daemon has
        switched it to raw bytes (attach, exec start); see :mod:`pydocker.hijack`."""
        target = self.url(path)
        if params:
            target += "?" + urlencode(list(params))
        headers = {"User-Agent": f"pydocker/{__version__}"}
        if body is None:
            payload = b""
            headers["Content-Type"] = "text/plain"
        else:
            payload = json.dumps(body, separators=(",", ":")).encode()
            headers["Content-Type"] = "application/json"
        log.debug("POST %s (hijack)", target)
        return open_hijacked(
            self.host.url,
            self.host.base_url,
            self.host.socket_path,
            target,
            headers=headers,
            body=payload,
            timeout=self._timeout,
        )

    @staticmethod
    def json_values(response: httpx.Response) -> Iterator[Any]:
        """The JSON values of a streamed reply, as they arrive."""
        decoder = _JSONStreamDecoder()
        for chunk in response.iter_text():
            yield from decoder.feed(chunk)
        decoder.close()

    def stream_json(
        self,
        path: str,
        params: Params = None,
        *,
        method: str = "GET",
        json: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> Iterator[Any]:
        """Send a request whose reply is a stream of JSON values (one per line, or simply
        concatenated, as moby writes them) and yield each value as it arrives. The stream
        has no read timeout: it lasts until the daemon ends it."""
        with self._streaming(method, path, params=params, json=json, headers=headers) as response:
            yield from self.json_values(response)

    def stream_bytes(
        self, path: str, params: QueryItems = None, *, method: str = "GET"
    ) -> Iterator[bytes]:
        """Send a request whose reply is raw bytes (``/images/get``) and yield the body in
        chunks as it arrives, with no read timeout. Nothing is yielded for an error reply:
        it raises :class:`DaemonError` before the first chunk."""
        with self._streaming(method, path, params=tuple(params or ())) as response:
            yield from response.iter_bytes()

    def upload_json_stream(
        self,
        path: str,
        body: Iterable[bytes] | None,
        params: QueryItems = None,
        *,
        content_type: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Iterator[Any]:
        """``POST`` ``body`` (an iterable of chunks, sent as it is read, chunked) to a
        versioned path whose reply is a stream of JSON values (``/images/load``,
        ``/images/create?fromSrc=-``, ``/build``), and yield each value as it arrives."""
        headers = dict(headers or {})
        if content_type:
            headers["Content-Type"] = content_type
        with self._streaming(
            "POST",
            path,
            write_timeout=False,
            params=tuple(params or ()),
            content=body,
            headers=headers,
        ) as response:
            yield from self.json_values(response)

    def _send(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        log.debug("%s %s", method, url)
        try:
            response = self._http.request(method, url, **kwargs)
        except httpx.TransportError as e:
            raise self._failure(e, method, url) from e
        log.debug("%s %s -> %s", method, url, response.status_code)
        return response

    def _failure(self, error: httpx.TransportError, method: str, url: str) -> PydockerError:
        if isinstance(error, httpx.ConnectError | httpx.ConnectTimeout):
            denied = _os_errno(error) == errno.EACCES
            return CannotConnect(self.host.url, permission_denied=denied)
        detail = str(error) or type(error).__name__
        return ConnectionFailed(f"error during connect: {method} {url}: {detail}")


def _check(response: httpx.Response) -> None:
    """Raise Docker's error shape, ``{"message": ...}``, as :class:`DaemonError`."""
    if response.status_code < 400:
        return
    try:
        body = response.json()
        message = body["message"] if isinstance(body, dict) else None
    except (ValueError, KeyError):
        message = None
    if not isinstance(message, str):
        message = response.text.strip() or f"{response.status_code} {response.reason_phrase}"
    raise DaemonError(response.status_code, message)


def _decode(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError as e:
        raise ConnectionFailed(
            f"error decoding the daemon's reply to {response.request.url.path}: {e}"
        ) from None


class _JSONStreamDecoder:
    """Split a stream of text into JSON values, whatever the chunk boundaries."""

    def __init__(self) -> None:
        self._buffer = ""
        self._decoder = json.JSONDecoder()

    def feed(self, chunk: str) -> Iterator[Any]:
        self._buffer += chunk
        while True:
            self._buffer = self._buffer.lstrip()
            if not self._buffer:
                return
            try:
                value, end = self._decoder.raw_decode(self._buffer)
            except json.JSONDecodeError:
                return  # incomplete: wait for the next chunk
            self._buffer = self._buffer[end:]
            yield value

    def close(self) -> None:
        """The stream ended: anything left over is a broken value."""
        if self._buffer.strip():
            raise ConnectionFailed(
                f"error decoding the daemon's stream: unexpected end in {self._buffer[:80]!r}"
            )
