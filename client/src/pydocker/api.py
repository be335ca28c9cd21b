"""Talking to the daemon: host resolution, version negotiation, requests, JSON streams."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import urlsplit

import httpx

__all__ = [
    "DEFAULT_HOST",
    "MAX_API_VERSION",
    "APIClient",
    "CannotConnect",
    "DaemonError",
    "resolve_host",
]

DEFAULT_HOST = "unix:///run/pydockerd.sock"
MAX_API_VERSION = "1.47"
"""The newest Engine API version this client speaks."""
_FALLBACK_API_VERSION = "1.24"


class CannotConnect(Exception):
    """No daemon answers at the host."""

    def __init__(self, host: str) -> None:
        super().__init__(
            f"Cannot connect to the pydockerd daemon at {host}. Is the daemon running?"
        )


class DaemonError(Exception):
    """The daemon answered with an error status; ``message`` is its ``{"message"}``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"Error response from daemon: {message}")
        self.status = status
        self.message = message


def resolve_host(flag: str | None, environ: Mapping[str, str] = os.environ) -> str:
    """The daemon's address: ``-H``, then ``PYDOCKER_HOST``, then ``DOCKER_HOST``, else
    :data:`DEFAULT_HOST`."""
    return flag or environ.get("PYDOCKER_HOST") or environ.get("DOCKER_HOST") or DEFAULT_HOST


def _version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


def negotiate(server_version: str | None) -> str:
    """The version to speak: the server's, capped at ours; 1.24 when it does not say."""
    if not server_version:
        return _FALLBACK_API_VERSION
    try:
        if _version_tuple(server_version) > _version_tuple(MAX_API_VERSION):
            return MAX_API_VERSION
    except ValueError:
        return _FALLBACK_API_VERSION
    return server_version


def _transport(host: str) -> tuple[httpx.HTTPTransport, str]:
    """An httpx transport and base URL for ``unix://PATH`` or ``tcp://HOST:PORT``."""
    parts = urlsplit(host)
    if parts.scheme == "unix":
        return httpx.HTTPTransport(uds=parts.netloc + parts.path), "http://localhost"
    if parts.scheme in ("tcp", "http"):
        return httpx.HTTPTransport(), f"http://{parts.netloc}"
    if parts.scheme == "https":
        return httpx.HTTPTransport(), f"https://{parts.netloc}"
    raise ValueError(f"unsupported host {host!r}: use unix://PATH or tcp://HOST:PORT")


class APIClient:
    """A connection to one daemon. Versioned paths are used after the first ping."""

    def __init__(self, host: str, timeout: float | None = 60.0) -> None:
        self.host = host
        transport, base_url = _transport(host)
        self._http = httpx.Client(
            transport=transport,
            base_url=base_url,
            timeout=timeout,
            headers={"User-Agent": "pydocker"},
        )
        self._version: str | None = None

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> APIClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def api_version(self) -> str:
        if self._version is None:
            response = self._send("HEAD", "/_ping")
            self._version = negotiate(response.headers.get("Api-Version"))
        return self._version

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            return self._http.request(method, path, **kwargs)
        except (httpx.ConnectError, httpx.RemoteProtocolError, FileNotFoundError) as e:
            raise CannotConnect(self.host) from e

    def _url(self, path: str) -> str:
        return f"/v{self.api_version}{path}"

    @staticmethod
    def _check(response: httpx.Response) -> None:
        if response.status_code >= 400:
            try:
                message = response.json().get("message", response.text)
            except (ValueError, AttributeError):
                message = response.text.strip() or response.reason_phrase
            raise DaemonError(response.status_code, message)

    def get_json(self, path: str, params: Mapping[str, str] | None = None) -> Any:
        """``GET`` a versioned path and decode its JSON body."""
        response = self._send("GET", self._url(path), params=params)
        self._check(response)
        return response.json()

    def stream_json(self, path: str, params: Mapping[str, str] | None = None) -> Iterator[Any]:
        """``GET`` a versioned path whose body is a stream of JSON values, one per line."""
        url = self._url(path)
        try:
            with self._http.stream("GET", url, params=params, timeout=None) as response:
                if response.status_code >= 400:
                    response.read()
                    self._check(response)
                for line in response.iter_lines():
                    if line.strip():
                        yield json.loads(line)
        except (httpx.ConnectError, FileNotFoundError) as e:
            raise CannotConnect(self.host) from e
