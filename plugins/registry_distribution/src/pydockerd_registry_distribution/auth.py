"""Registry authentication: ``WWW-Authenticate`` challenges, and bearer tokens from a token
server (distribution's token spec: ``GET <realm>?service=&scope=`` with Basic credentials, or
the OAuth2 ``POST`` with ``grant_type=password``/``refresh_token``), cached until they expire.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import aiohttp
from pydockerd.plugin import RegistryCredentials, Unauthorized, Unavailable

__all__ = ["Challenge", "Token", "TokenCache", "basic_header", "fetch_token", "parse_challenges"]

_TOKEN = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"  # noqa: S105 (RFC 9110's token, not a secret)
_SCHEME = re.compile(rf"[\s,]*({_TOKEN})(?=\s|,|$)(?!\s*=)")
_PARAM = re.compile(rf'[\s,]*({_TOKEN})\s*=\s*(?:"((?:[^"\\]|\\.)*)"|({_TOKEN}))')
_TOKEN68 = re.compile(r"\s*[A-Za-z0-9._~+/-]+=*\s*(?=,|$)")
_ESCAPE = re.compile(r"\\(.)")

DEFAULT_EXPIRY = 60
"""Seconds a token without ``expires_in`` lasts (the token spec's default, docker's floor)."""
CLIENT_ID = "pydockerd"


@dataclass(frozen=True)
class Challenge:
    """One challenge of a ``WWW-Authenticate`` header: its scheme (lowercase) and params
    (names lowercase)."""

    scheme: str
    params: Mapping[str, str]


def parse_challenges(headers: Iterable[str]) -> list[Challenge]:
    """Every challenge in the ``WWW-Authenticate`` headers (RFC 9110 §11.6.1: several per
    header, quoted values with commas and escapes); malformed text is skipped."""
    found: list[Challenge] = []
    for header in headers:
        pos = 0
        while pos < len(header):
            scheme = _SCHEME.match(header, pos)
            if scheme is None:
                break
            pos = scheme.end()
            params: dict[str, str] = {}
            token68 = _TOKEN68.match(header, pos)
            if token68 and not _PARAM.match(header, pos):
                pos = token68.end()
            while param := _PARAM.match(header, pos):
                quoted, plain = param.group(2), param.group(3)
                value = _ESCAPE.sub(r"\1", quoted) if quoted is not None else plain
                params[param.group(1).lower()] = value
                pos = param.end()
            found.append(Challenge(scheme.group(1).lower(), params))
    return found


def basic_header(username: str, password: str) -> str:
    raw = f"{username}:{password}".encode()
    return "Basic " + base64.b64encode(raw).decode("ascii")


@dataclass(frozen=True)
class Token:
    """A token server's answer: the bearer token, how long it lasts, and the refresh token
    (an identity token) when one was asked for and given."""

    token: str
    expires_in: float = DEFAULT_EXPIRY
    refresh_token: str = ""


class TokenCache:
    """Bearer tokens by (realm, service, scopes, credentials), until shortly before they
    expire."""

    def __init__(self) -> None:
        self._tokens: dict[tuple[str, ...], tuple[str, float]] = {}

    @staticmethod
    def key(
        challenge: Challenge, scopes: Sequence[str], creds: RegistryCredentials
    ) -> tuple[str, ...]:
        who = hashlib.sha256(
            f"{creds.username}\0{creds.password}\0{creds.identity_token}".encode()
        ).hexdigest()
        return (
            challenge.params.get("realm", ""),
            challenge.params.get("service", ""),
            who,
            *sorted(scopes),
        )

    def get(self, key: tuple[str, ...]) -> str | None:
        entry = self._tokens.get(key)
        if entry is None or entry[1] <= time.monotonic():
            self._tokens.pop(key, None)
            return None
        return entry[0]

    def put(self, key: tuple[str, ...], token: Token) -> None:
        lifetime = max(token.expires_in, DEFAULT_EXPIRY)
        self._tokens[key] = (token.token, time.monotonic() + lifetime - min(10, lifetime / 10))

    def forget(self, key: tuple[str, ...]) -> None:
        self._tokens.pop(key, None)


def _message(body: bytes) -> str:
    """A token server's or registry's error text from its JSON body (``details``,
    ``errors[].message``, ``message``, ``error_description``), else the text itself."""
    try:
        data = json.loads(body)
    except ValueError:
        return body.decode("utf-8", "replace").strip()
    if isinstance(data, dict):
        if isinstance(data.get("errors"), list) and data["errors"]:
            first = data["errors"][0]
            if isinstance(first, dict):
                return str(first.get("message") or first.get("code") or "")
        for key in ("details", "message", "error_description", "error"):
            if data.get(key):
                return str(data[key])
    return body.decode("utf-8", "replace").strip()


async def fetch_token(
    http: aiohttp.ClientSession,
    challenge: Challenge,
    scopes: Sequence[str],
    creds: RegistryCredentials,
    *,
    offline: bool = False,
    ssl: bool = True,
) -> Token:
    """A token for ``scopes`` from the challenge's realm.

    With an identity token: the OAuth2 ``refresh_token`` grant. With ``offline`` (login) and a
    username: the ``password`` grant with ``access_type=offline``, falling back to ``GET`` when
    the server does not take ``POST`` (404/405). Otherwise ``GET`` with Basic credentials when
    there are some (anonymous when not).

    :raises Unauthorized: the token server refused the credentials.
    :raises Unavailable: it could not be reached or answered nonsense.
    """
    realm = challenge.params.get("realm", "")
    if not realm.startswith(("https://", "http://")):
        raise Unavailable(f"the registry's token realm {realm!r} is not an http(s) URL")
    service = challenge.params.get("service", "")
    try:
        if creds.identity_token or (offline and creds.username):
            form = {"client_id": CLIENT_ID, "scope": " ".join(scopes)}
            if service:
                form["service"] = service
            if creds.identity_token:
                form |= {"grant_type": "refresh_token", "refresh_token": creds.identity_token}
            else:
                form |= {
                    "grant_type": "password",
                    "username": creds.username,
                    "password": creds.password,
                    "access_type": "offline",
                }
            async with http.post(realm, data=form, ssl=ssl) as resp:
                body = await resp.read()
                status = resp.status
            if status not in (404, 405) or creds.identity_token:
                return _token(status, body, realm)
        query: list[tuple[str, str]] = []
        if service:
            query.append(("service", service))
        query += [("scope", scope) for scope in scopes]
        headers = {}
        if creds.username:
            headers["Authorization"] = basic_header(creds.username, creds.password)
            query.append(("account", creds.username))
            if offline:
                query += [("offline_token", "true"), ("client_id", CLIENT_ID)]
        async with http.get(realm, params=query, headers=headers, ssl=ssl) as resp:
            return _token(resp.status, await resp.read(), realm)
    except (aiohttp.ClientError, TimeoutError) as e:
        raise Unavailable(f"cannot reach the token server {realm}: {e or type(e).__name__}") from e


def _token(status: int, body: bytes, realm: str) -> Token:
    if status in (401, 403):
        raise Unauthorized(f"unauthorized: {_message(body) or 'authentication required'}")
    if status != 200:
        raise Unavailable(
            f"token server {realm} answered {status}: {_message(body)[:200] or 'no message'}"
        )
    try:
        data = json.loads(body)
        token = str(data.get("token") or data.get("access_token") or "")
        expires = float(data.get("expires_in") or DEFAULT_EXPIRY)
    except (ValueError, AttributeError, TypeError):
        token, expires = "", 0
    if not token:
        raise Unavailable(f"token server {realm} answered without a token")
    return Token(token, expires, str(data.get("refresh_token") or ""))
