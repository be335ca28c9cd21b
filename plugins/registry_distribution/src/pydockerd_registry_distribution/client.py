"""One endpoint of one repository, for the length of one operation: requests with the auth
flow, retries (connection errors, 5xx, 429 with ``Retry-After``) and redirects that never
carry credentials to another host; and the registry's errors in Docker's words."""

from __future__ import annotations

import asyncio
import email.utils
import json
import os
import random
import socket
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import aiohttp
from pydockerd.plugin import (
    Forbidden,
    InvalidParameter,
    NotFound,
    PydockerdError,
    RegistryCredentials,
    RegistryEndpoint,
    Unauthorized,
    Unavailable,
)
from yarl import URL

from pydockerd_registry_distribution.auth import (
    Challenge,
    TokenCache,
    basic_header,
    fetch_token,
    parse_challenges,
)

if TYPE_CHECKING:
    from pydockerd_registry_distribution.transport import Config

__all__ = ["Body", "RegistryError", "Session", "Unreachable", "describe"]

Body = Callable[[], Any]
"""Makes a request body afresh for each attempt (bytes, or an async iterator of bytes)."""

_REDIRECTS = (301, 302, 303, 307, 308)
_NETWORK_ERRORS = (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, TimeoutError)


class Unreachable(Unavailable):
    """An endpoint could not be reached at all (refused, DNS, TLS, timeout)."""


def describe(error: BaseException) -> str:
    """An exception as a short cause: ``connection refused``, ``timeout``, ..."""
    if isinstance(error, aiohttp.ClientSSLError):
        if "WRONG_VERSION_NUMBER" in str(error.os_error):  # a plain HTTP server
            return "http: server gave HTTP response to HTTPS client"  # Go's words
        return f"TLS: {error.os_error}"
    if isinstance(error, aiohttp.ClientConnectorError):
        inner = error.os_error
        if isinstance(inner, socket.gaierror):
            return f"lookup {error.host}: {inner.strerror}"
        if inner.errno and inner.errno > 0:
            return os.strerror(inner.errno).lower()
        return str(inner) or type(inner).__name__
    if isinstance(error, TimeoutError):
        return "timeout"
    return str(error) or type(error).__name__


@dataclass(frozen=True)
class RegistryError:
    """A registry's error answer: its status, its JSON error codes, and Docker's text for
    them (``manifest unknown: manifest unknown``)."""

    status: int
    codes: frozenset[str]
    cause: str

    @classmethod
    async def read(cls, resp: aiohttp.ClientResponse) -> RegistryError:
        body = await resp.content.read(64 * 1024) if resp.method != "HEAD" else b""
        codes: list[str] = []
        texts: list[str] = []
        try:
            data = json.loads(body)
            for item in data.get("errors") or ():
                code = str(item.get("code") or "UNKNOWN")
                codes.append(code)
                texts.append(f"{code.lower().replace('_', ' ')}: {item.get('message') or ''}")
        except (ValueError, AttributeError, TypeError):
            pass
        if not texts:
            reason = {401: "unauthorized: authentication required", 404: "not found"}
            status = f"{resp.status} {resp.reason or ''}".strip()
            if resp.status == 429 or resp.status >= 500:  # Go's UnexpectedHTTPStatusError
                status = f"received unexpected HTTP status: {status}"
            texts.append(reason.get(resp.status) or status)
        return cls(resp.status, frozenset(codes), "; ".join(t.rstrip(": ") for t in texts))

    @property
    def unauthorized(self) -> bool:
        return self.status == 401 or "UNAUTHORIZED" in self.codes

    @property
    def denied(self) -> bool:
        return self.status == 403 or "DENIED" in self.codes

    @property
    def not_found(self) -> bool:
        return self.status == 404 or bool(
            self.codes & {"MANIFEST_UNKNOWN", "NAME_UNKNOWN", "BLOB_UNKNOWN"}
        )

    def exception(self, text: str | None = None) -> PydockerdError:
        """The matching daemon error, with ``text`` (default: the cause)."""
        text = text or self.cause
        if self.unauthorized:
            return Unauthorized(text)
        if self.denied:
            return Forbidden(text)
        if self.not_found:
            return NotFound(text)
        if self.status == 429 or self.status >= 500:
            return Unavailable(text)
        return InvalidParameter(text)


@dataclass
class Session:
    """Talks to one endpoint about one repository with one set of scopes."""

    http: aiohttp.ClientSession
    config: Config
    tokens: TokenCache
    registry: str
    endpoint: RegistryEndpoint
    credentials: RegistryCredentials
    scopes: Sequence[str]
    challenges: list[Challenge] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.endpoint.url.rstrip("/")

    def unreachable(self, error: BaseException) -> Unreachable:
        return Unreachable(f"cannot reach registry {self.registry} ({self.url}): {describe(error)}")

    async def ping(self) -> aiohttp.ClientResponse:
        """``GET /v2/`` once, no retries; keeps the challenges of a 401. The response is
        read and released.

        :raises Unreachable: no answer (refused, DNS, TLS, timeout).
        """
        try:
            async with self.http.get(
                self.url + "/v2/", ssl=self.endpoint.tls_verify, allow_redirects=True
            ) as resp:
                await resp.read()
        except _NETWORK_ERRORS as e:
            raise self.unreachable(e) from e
        if resp.status == 401:
            self.challenges = parse_challenges(resp.headers.getall("WWW-Authenticate", []))
        return resp

    def _token_key(self, challenge: Challenge) -> tuple[str, ...]:
        return self.tokens.key(challenge, self.scopes, self.credentials)

    async def authorization(self, *, fresh: bool = False) -> str | None:
        """The ``Authorization`` header for this endpoint: the registry token, a bearer
        token for the scopes (from the cache unless ``fresh``), Basic, or none."""
        creds = self.credentials
        if creds.registry_token:
            return f"Bearer {creds.registry_token}"
        for challenge in self.challenges:
            if challenge.scheme == "bearer":
                key = self._token_key(challenge)
                cached = None if fresh else self.tokens.get(key)
                if cached is None:
                    token = await fetch_token(
                        self.http, challenge, self.scopes, creds, ssl=self.endpoint.tls_verify
                    )
                    self.tokens.put(key, token)
                    cached = token.token
                return f"Bearer {cached}"
        for challenge in self.challenges:
            if challenge.scheme == "basic" and creds.username:
                return basic_header(creds.username, creds.password)
        return None

    def _same_origin(self, url: URL) -> bool:
        return url.origin() == URL(self.url).origin()

    async def _send_once(
        self, method: str, url: URL, headers: Mapping[str, str], body: Body | None
    ) -> aiohttp.ClientResponse:
        """One request with auth (answering one 401 with a fresh token) and redirects; the
        credentials only go to the endpoint's own origin."""
        fresh = False
        while True:
            resp = await self._raw(method, url, headers, body, fresh=fresh)
            if resp.status == 401 and not fresh and not self.credentials.registry_token:
                challenges = parse_challenges(resp.headers.getall("WWW-Authenticate", []))
                if any(c.scheme in ("bearer", "basic") for c in challenges):
                    resp.release()
                    for old in self.challenges:
                        self.tokens.forget(self._token_key(old))
                    self.challenges, fresh = challenges, True
                    continue
            break
        for _ in range(10):
            if resp.status not in _REDIRECTS or "Location" not in resp.headers:
                return resp
            resp.release()
            url = url.join(URL(resp.headers["Location"], encoded=True))
            if resp.status == 303:
                method, body = "GET", None
            resp = await self._raw(method, url, headers, body)
        return resp

    async def _raw(
        self,
        method: str,
        url: URL,
        headers: Mapping[str, str],
        body: Body | None,
        *,
        fresh: bool = False,
    ) -> aiohttp.ClientResponse:
        """One HTTP exchange, no redirects followed; ``Authorization`` only for the
        endpoint's own origin."""
        sent = {k: v for k, v in headers.items() if k.lower() != "authorization"}
        if self._same_origin(url) and (auth := await self.authorization(fresh=fresh)):
            sent["Authorization"] = auth
        return await self.http.request(
            method,
            url,
            headers=sent,
            data=body() if body else None,
            allow_redirects=False,
            ssl=self.endpoint.tls_verify,
        )

    def delay(self, attempt: int) -> float:
        """Exponential backoff with jitter for retry number ``attempt`` (1, 2, ...)."""
        base = self.config.retry_base_delay * 2.0 ** (attempt - 1)
        jitter: float = random.uniform(0.5, 1.5)  # noqa: S311
        return min(self.config.retry_max_delay, base) * jitter

    def _retry_after(self, resp: aiohttp.ClientResponse, attempt: int) -> float:
        value = resp.headers.get("Retry-After", "")
        seconds: float | None = None
        if value.isdigit():
            seconds = float(value)
        elif value:
            try:
                seconds = email.utils.parsedate_to_datetime(value).timestamp() - time.time()
            except (TypeError, ValueError):
                seconds = None
        if seconds is None:
            return self.delay(attempt)
        return min(max(seconds, 0.0), self.config.retry_max_delay)

    @asynccontextmanager
    async def request(
        self,
        method: str,
        url: str | URL,
        *,
        headers: Mapping[str, str] | None = None,
        body: Body | None = None,
        retries: bool = True,
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """A response to ``method url`` (a path is joined to the endpoint), released after
        the block; connection errors, 5xx and 429 are retried ``max_download_attempts``
        times in all when ``retries``.

        :raises Unreachable: the last attempt found no server.
        """
        target = url if isinstance(url, URL) else URL(url, encoded=True)
        if not target.is_absolute():
            target = URL(self.url).join(target)
        attempts = self.config.max_download_attempts if retries else 1
        attempt = 0
        while True:
            attempt += 1
            try:
                resp = await self._send_once(method, target, headers or {}, body)
            except _NETWORK_ERRORS as e:
                if attempt >= attempts:
                    raise self.unreachable(e) from e
                await asyncio.sleep(self.delay(attempt))
                continue
            if (resp.status >= 500 or resp.status == 429) and attempt < attempts:
                wait = self._retry_after(resp, attempt)
                resp.release()
                await asyncio.sleep(wait)
                continue
            break
        try:
            yield resp
        finally:
            resp.release()
