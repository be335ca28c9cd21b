"""The auth modes: HTTP Basic against an htpasswd file, and bearer tokens with the token
server that issues them (distribution's "token" auth).

Token mode, as Docker clients do it: a request without a token gets 401 and
``WWW-Authenticate: Bearer realm="…/token",service="…",scope="repository:a/b:pull,push"``;
the client asks the realm for a token (``GET /token?service=&scope=`` with Basic credentials,
or anonymously, or ``POST /token`` with an OAuth2 password or refresh-token grant), gets a JWT
whose ``access`` claim lists what the policy grants, and retries with
``Authorization: Bearer <JWT>``. The registry checks the signature, ``iss``, ``aud``
(= service), ``exp`` and ``nbf``, and that the claim covers what the request needs.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import fnmatch
import hashlib
import json
import os
import secrets
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import bcrypt
import jwt
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from loguru import logger

from pydocker_registry.access import Access, AccessDenied
from pydocker_registry.config import AccessRule

__all__ = [
    "ANONYMOUS",
    "USER",
    "AccessPolicy",
    "AuthError",
    "Htpasswd",
    "HtpasswdAuthorizer",
    "TokenAuthorizer",
    "TokenIssuer",
    "add_token_routes",
    "generate_key",
    "load_private_key",
    "load_public_key",
    "parse_basic",
    "parse_scopes",
    "set_password",
]

ANONYMOUS = "anonymous"
USER = web.RequestKey("user", str)
"""The account an authorizer let in (for the access log): ``request[USER]``."""
_BCRYPT_PREFIXES = ("$2a$", "$2b$", "$2y$")
_ALL_ACTIONS = frozenset({"pull", "push", "delete"})
_LEEWAY_SECONDS = 60  # clock skew allowed on exp/nbf, as distribution allows
_BCRYPT_MAX = 72
"""bcrypt uses a password's first 72 bytes; bcrypt 5 raises for longer ones instead."""


class AuthError(Exception):
    """An auth file or key cannot be used (the message names the file and the fault)."""


# --- htpasswd ---------------------------------------------------------------------------


def _parse_htpasswd(text: str, source: Path) -> dict[str, bytes]:
    entries: dict[str, bytes] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        user, sep, hashed = line.partition(":")
        if not sep or not user:
            raise AuthError(f"{source}:{number}: not USER:HASH")
        if not hashed.startswith(_BCRYPT_PREFIXES):
            raise AuthError(
                f"{source}:{number}: the entry of {user!r} is not bcrypt ($2y$, $2b$ or $2a$); "
                "only bcrypt is supported (pydocker-registry htpasswd writes such entries)"
            )
        entries[user] = hashed.encode()
    return entries


class Htpasswd:
    """An htpasswd file of bcrypt entries, read again whenever its mtime, size or inode
    changes. A change that does not parse keeps the entries in force (and is logged)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp: tuple[int, int, int] | None = None
        self._entries: dict[str, bytes] = {}
        self._verified: set[bytes] = set()
        self._decoy_hash: bytes | None = None
        self._refresh(initial=True)

    def _refresh(self, *, initial: bool = False) -> None:
        try:
            info = self.path.stat()
            stamp = (info.st_mtime_ns, info.st_size, info.st_ino)
            if stamp == self._stamp:
                return
            entries = _parse_htpasswd(self.path.read_text(), self.path)
        except (OSError, UnicodeDecodeError, AuthError) as e:
            if initial:
                raise AuthError(f"htpasswd file {self.path}: {e}") from e
            kept = len(self._entries)
            logger.warning("htpasswd {} not reloaded, keeping {} users: {}", self.path, kept, e)
            return
        if not initial:
            logger.info("htpasswd file {} reloaded: {} users", self.path, len(entries))
        self._stamp, self._entries, self._verified = stamp, entries, set()
        self._decoy_hash = None

    def _decoy(self) -> bytes:
        """A hash of the cost most entries have, for unknown users."""
        if self._decoy_hash is None:
            costs = [int(hashed[4:6]) for hashed in self._entries.values() if hashed[4:6].isdigit()]
            cost = max(set(costs), key=costs.count) if costs else 12
            self._decoy_hash = bcrypt.hashpw(secrets.token_bytes(16), bcrypt.gensalt(cost))
        return self._decoy_hash

    def users(self) -> list[str]:
        self._refresh()
        return list(self._entries)

    async def verify(self, user: str, password: str) -> bool:
        """Whether ``password`` is ``user``'s. bcrypt runs in a thread; a pair already
        verified against the current file is remembered (clients send Basic credentials with
        every request)."""
        self._refresh()
        hashed = self._entries.get(user)
        # What every bcrypt (Apache's, Go's, bcrypt < 5) compares: the first 72 bytes.
        secret = password.encode()[:_BCRYPT_MAX]
        if hashed is None:
            # As slow as a wrong password, so that timing does not tell who exists.
            await asyncio.to_thread(lambda: bcrypt.checkpw(secret, self._decoy()))
            return False
        memo = hashlib.sha256(b"\0".join([user.encode(), password.encode(), hashed])).digest()
        if memo in self._verified:
            return True
        ok = await asyncio.to_thread(bcrypt.checkpw, secret, hashed)
        if ok:
            self._verified.add(memo)
        return ok


def set_password(path: Path, user: str, password: str, *, rounds: int = 12) -> bool:
    """Write ``user``'s bcrypt entry into the htpasswd file at ``path`` (created with mode
    0600 when missing), keeping every other line. Returns whether the user is new."""
    if not user or ":" in user or any(ch.isspace() for ch in user):
        raise AuthError(f"invalid user name {user!r}: no ':' or white space, not empty")
    if len(password.encode()) > _BCRYPT_MAX:
        raise AuthError(f"the password is longer than {_BCRYPT_MAX} bytes, all bcrypt uses")
    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds)).decode()
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        lines = []
    entry, new = f"{user}:{hashed}", True
    for index, line in enumerate(lines):
        if line.partition(":")[0] == user:
            lines[index], new = entry, False
            break
    else:
        lines.append(entry)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write("\n".join(lines) + "\n")
            f.flush()
            os.fsync(f.fileno())
        if path.exists():
            temporary.chmod(path.stat().st_mode & 0o777)
        temporary.replace(path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
    return new


def parse_basic(header: str) -> tuple[str, str] | None:
    """``Basic base64(user:password)`` → (user, password); anything else → None."""
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else None


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


class HtpasswdAuthorizer:
    """HTTP Basic against an :class:`Htpasswd` file. Every user may pull, push and delete,
    except ``read_only_users``, who may only pull (and list the catalog)."""

    def __init__(self, htpasswd: Htpasswd, realm: str, read_only_users: Iterable[str] = ()) -> None:
        self.htpasswd = htpasswd
        self.challenge = f"Basic realm={_quote(realm)}"
        self.read_only_users = frozenset(read_only_users)

    async def authorize(self, request: web.Request, access: Sequence[Access]) -> None:
        credentials = parse_basic(request.headers.get("Authorization", ""))
        if credentials is None:
            raise AccessDenied("authentication required", challenge=self.challenge)
        user, password = credentials
        if not await self.htpasswd.verify(user, password):
            logger.info("htpasswd: wrong credentials for {!r}", user)
            raise AccessDenied("invalid username or password", challenge=self.challenge)
        if user in self.read_only_users:
            for item in access:
                if item.type == "repository" and item.actions - {"pull"}:
                    raise AccessDenied(f"{user} may only pull", status=403, code="DENIED")
        request[USER] = user


# --- keys -------------------------------------------------------------------------------

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
PublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey


def _algorithm(key: PrivateKey | PublicKey) -> str:
    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        if key.curve.name != "secp256r1":
            raise AuthError(f"EC key on {key.curve.name}: only P-256 (ES256) is supported")
        return "ES256"
    return "RS256"


def _read_key(path: Path, what: str, load: Callable[[bytes], Any]) -> Any:
    try:
        key: Any = load(path.read_bytes())
    except (OSError, ValueError, TypeError) as e:
        raise AuthError(f"{what} {path}: {e}") from e
    if not isinstance(key, PrivateKey | PublicKey):
        raise AuthError(f"{what} {path}: an EC P-256 or RSA key is needed")
    try:
        _algorithm(key)
    except AuthError as e:
        raise AuthError(f"{what} {path}: {e}") from None
    return key


def load_private_key(path: Path) -> PrivateKey:
    """A PEM private key (EC P-256 or RSA), unencrypted."""
    key: PrivateKey = _read_key(
        path, "token key", lambda data: serialization.load_pem_private_key(data, None)
    )
    return key


def _load_public(data: bytes) -> Any:
    if b"BEGIN CERTIFICATE" in data:
        return x509.load_pem_x509_certificate(data).public_key()
    return serialization.load_pem_public_key(data)


def load_public_key(path: Path) -> PublicKey:
    """A PEM public key or certificate (its key) that verifies tokens."""
    key: PublicKey = _read_key(path, "token public key", _load_public)
    return key


def generate_key(path: Path) -> None:
    """A new EC P-256 private key, PEM, at ``path`` (mode 0600); refuses to overwrite."""
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise AuthError(f"{path} exists; not overwriting a key") from None
    with os.fdopen(fd, "wb") as f:
        f.write(pem)


def _key_id(key: PublicKey) -> str:
    """The JWK thumbprint (RFC 7638) of ``key``: names the key in the token header."""
    jwk = json.loads(jwt.algorithms.get_default_algorithms()[_algorithm(key)].to_jwk(key))
    members = ("crv", "kty", "x", "y") if jwk["kty"] == "EC" else ("e", "kty", "n")
    canonical = json.dumps({name: jwk[name] for name in members}, separators=(",", ":"))
    digest = hashlib.sha256(canonical.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


# --- scopes and policy ------------------------------------------------------------------


def parse_scopes(values: Iterable[str]) -> list[Access]:
    """``repository:a/b:pull,push`` (several per value, space-separated) → Access. The name
    may hold colons (``repository:host:5000/x:pull``): type is up to the first colon,
    actions after the last. Malformed scopes are skipped, as distribution's server does."""
    found = []
    for value in values:
        for scope in value.split():
            kind, _, rest = scope.partition(":")
            name, _, actions = rest.rpartition(":")
            if kind in ("repository", "registry") and name and actions:
                found.append(
                    Access(kind, name, frozenset(a for a in actions.split(",") if a))  # type: ignore[arg-type]
                )
    return found


class AccessPolicy:
    """The token server's rules: an account gets the union of what every rule naming it
    (or ``*`` for any authenticated account) grants; ``anonymous`` is the account of a
    request without credentials."""

    def __init__(self, rules: Sequence[AccessRule]) -> None:
        self.rules = list(rules)

    def _applies(self, rule: AccessRule, account: str) -> bool:
        return account in rule.accounts or (account != ANONYMOUS and "*" in rule.accounts)

    def allowed(self, account: str, item: Access) -> frozenset[str]:
        """The actions of ``item`` that ``account`` may have."""
        rules = [rule for rule in self.rules if self._applies(rule, account)]
        if item.type == "registry":
            catalog = item.name == "catalog" and any(rule.catalog for rule in rules)
            return item.actions if catalog else frozenset()
        granted: set[str] = set()
        for rule in rules:
            if any(fnmatch.fnmatchcase(item.name, glob) for glob in rule.repositories):
                granted |= _ALL_ACTIONS if "*" in rule.actions else set(rule.actions)
        wanted = _ALL_ACTIONS if "*" in item.actions else item.actions
        return frozenset(wanted & granted)

    def grant(self, account: str, requested: Sequence[Access]) -> list[Access]:
        """What a token for ``account`` may carry of ``requested`` (nothing is not an error:
        the registry then refuses the request)."""
        granted = []
        for item in requested:
            actions = self.allowed(account, item)
            if actions:
                granted.append(Access(item.type, item.name, actions))
        return granted


# --- tokens -----------------------------------------------------------------------------


def _rfc3339(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class TokenIssuer:
    """Signs access tokens (and refresh tokens, for ``docker login``'s identity token)."""

    def __init__(
        self,
        key: PrivateKey,
        *,
        issuer: str,
        service: str,
        expiration: int = 300,
        refresh_expiration: int = 90 * 24 * 3600,
    ) -> None:
        self.key = key
        self.algorithm = _algorithm(key)
        self.key_id = _key_id(key.public_key())
        self.issuer, self.service = issuer, service
        self.expiration, self.refresh_expiration = expiration, refresh_expiration

    def _sign(self, claims: dict[str, Any]) -> str:
        headers = {"kid": self.key_id, "typ": "JWT"}
        return jwt.encode(claims, self.key, algorithm=self.algorithm, headers=headers)

    def issue(self, account: str, access: Sequence[Access]) -> dict[str, Any]:
        """The token server's answer: ``token`` (and ``access_token``, the same), with its
        lifetime and issue time."""
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "sub": "" if account == ANONYMOUS else account,
            "aud": self.service,
            "exp": now + self.expiration,
            "nbf": now,
            "iat": now,
            "jti": secrets.token_hex(16),
            "access": [
                {"type": item.type, "name": item.name, "actions": sorted(item.actions)}
                for item in access
            ],
        }
        token = self._sign(claims)
        return {
            "token": token,
            "access_token": token,
            "expires_in": self.expiration,
            "issued_at": _rfc3339(now),
        }

    def refresh_token(self, account: str) -> str:
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "sub": account,
            "aud": self._refresh_audience,
            "exp": now + self.refresh_expiration,
            "iat": now,
            "jti": secrets.token_hex(16),
        }
        return self._sign(claims)

    @property
    def _refresh_audience(self) -> str:
        return f"{self.service}#refresh"

    def account_of_refresh_token(self, token: str) -> str | None:
        """The account a refresh token of ours stands for, or None if it is not one."""
        try:
            claims = jwt.decode(
                token,
                self.key.public_key(),
                algorithms=[self.algorithm],
                audience=self._refresh_audience,
                issuer=self.issuer,
                leeway=_LEEWAY_SECONDS,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except jwt.PyJWTError:
            return None
        subject = claims["sub"]
        return subject if isinstance(subject, str) and subject else None


class TokenAuthorizer:
    """Accepts ``Authorization: Bearer <JWT>`` signed by one of ``keys``, for ``service``,
    from ``issuer``, whose ``access`` claim covers the request; 401 with a Bearer challenge
    otherwise. An empty ``realm`` points clients at this server's own ``/token``."""

    def __init__(self, keys: Sequence[PublicKey], *, realm: str, service: str, issuer: str) -> None:
        if not keys:
            raise AuthError("token mode needs at least one public key")
        self.keys = {_key_id(key): key for key in keys}
        self.realm, self.service, self.issuer = realm, service, issuer

    def _challenge(self, request: web.Request, access: Sequence[Access], error: str = "") -> str:
        realm = self.realm or f"{request.scheme}://{request.host}/token"
        parts = [f"Bearer realm={_quote(realm)}", f"service={_quote(self.service)}"]
        if access:
            parts.append(f"scope={_quote(' '.join(item.scope() for item in access))}")
        if error:
            parts.append(f"error={_quote(error)}")
        return ",".join(parts)

    def _claims(self, token: str) -> dict[str, Any]:
        try:
            kid = jwt.get_unverified_header(token).get("kid")
        except jwt.PyJWTError as e:
            raise ValueError(f"malformed token: {e}") from e
        candidates = [self.keys[kid]] if kid in self.keys else list(self.keys.values())
        last: Exception = ValueError("no key")
        for key in candidates:
            try:
                claims: dict[str, Any] = jwt.decode(
                    token,
                    key,
                    algorithms=[_algorithm(key)],
                    audience=self.service,
                    issuer=self.issuer,
                    leeway=_LEEWAY_SECONDS,
                    options={"require": ["exp", "iss", "aud"]},
                )
                return claims
            except jwt.InvalidSignatureError as e:
                last = e
            except jwt.PyJWTError as e:
                raise ValueError(str(e)) from e
        raise ValueError(f"token not signed by a trusted key ({last})")

    async def authorize(self, request: web.Request, access: Sequence[Access]) -> None:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise AccessDenied(
                "authentication required", challenge=self._challenge(request, access)
            )
        try:
            claims = self._claims(token.strip())
        except ValueError as e:
            logger.info("token rejected: {}", e)
            raise AccessDenied(
                f"invalid token: {e}",
                challenge=self._challenge(request, access, "invalid_token"),
            ) from None
        granted: dict[tuple[str, str], set[str]] = {}
        for entry in claims.get("access") or []:
            if isinstance(entry, dict) and isinstance(entry.get("actions"), list):
                key = (str(entry.get("type")), str(entry.get("name")))
                granted.setdefault(key, set()).update(str(a) for a in entry["actions"])
        for item in access:
            have = granted.get((item.type, item.name), set())
            if "*" not in have and not item.actions <= have:
                raise AccessDenied(
                    "requested access to the resource is denied",
                    code="DENIED",
                    challenge=self._challenge(request, access, "insufficient_scope"),
                )
        request[USER] = str(claims.get("sub") or ANONYMOUS)


# --- the token server -------------------------------------------------------------------


@dataclass
class _TokenServer:
    issuer: TokenIssuer
    policy: AccessPolicy
    htpasswd: Htpasswd | None

    def _oauth_error(self, status: int, error: str, description: str) -> web.Response:
        body = {"error": error, "error_description": description}
        return web.json_response(body, status=status)

    def _unauthorized(self, description: str) -> web.Response:
        response = self._oauth_error(401, "invalid_grant", description)
        response.headers["WWW-Authenticate"] = 'Basic realm="pydocker-registry token server"'
        return response

    async def _login(self, user: str, password: str) -> bool:
        return self.htpasswd is not None and await self.htpasswd.verify(user, password)

    def _answer(self, account: str, scopes: list[str], offline: bool, service: str) -> web.Response:
        if service and service != self.issuer.service:
            return self._oauth_error(400, "invalid_request", f"unknown service {service!r}")
        requested = parse_scopes(scopes)
        granted = self.policy.grant(account, requested)
        logger.info(
            "token for {}: asked {} granted {}",
            account,
            [item.scope() for item in requested],
            [item.scope() for item in granted],
        )
        body = self.issuer.issue(account, granted)
        body["scope"] = " ".join(item.scope() for item in granted)
        if offline and account != ANONYMOUS:
            body["refresh_token"] = self.issuer.refresh_token(account)
        return web.json_response(body)

    async def get(self, request: web.Request) -> web.Response:
        """``GET /token?service=&scope=&account=&offline_token=``, Basic credentials or none."""
        query = request.query
        header = request.headers.get("Authorization", "")
        account = ANONYMOUS
        if header:
            credentials = parse_basic(header)
            if credentials is None or not await self._login(*credentials):
                return self._unauthorized("invalid username or password")
            account = credentials[0]
            claimed = query.get("account")
            if claimed and claimed != account:
                return self._oauth_error(400, "invalid_request", "account is not the user")
        offline = query.get("offline_token", "").lower() == "true"
        return self._answer(account, query.getall("scope", []), offline, query.get("service", ""))

    async def post(self, request: web.Request) -> web.Response:
        """OAuth2: ``grant_type=password`` (username, password) or ``refresh_token``."""
        form = await request.post()
        field = {name: str(form.get(name, "")) for name in form}
        grant = field.get("grant_type", "")
        if not field.get("client_id"):
            return self._oauth_error(400, "invalid_request", "client_id is required")
        if grant == "password":
            account = field.get("username", "")
            if not account or not await self._login(account, field.get("password", "")):
                return self._unauthorized("invalid username or password")
            refresh = field.get("access_type") == "offline"
        elif grant == "refresh_token":
            found = self.issuer.account_of_refresh_token(field.get("refresh_token", ""))
            if found is None or (self.htpasswd and found not in self.htpasswd.users()):
                return self._unauthorized("invalid refresh token")
            account, refresh = found, True
        else:
            return self._oauth_error(400, "unsupported_grant_type", f"grant_type {grant!r}")
        return self._answer(account, [field.get("scope", "")], refresh, field.get("service", ""))


def add_token_routes(
    app: web.Application,
    issuer: TokenIssuer,
    policy: AccessPolicy,
    htpasswd: Htpasswd | None,
    path: str = "/token",
) -> None:
    """Serve the token server at ``path`` (GET and POST) in ``app``. Without ``htpasswd``
    only anonymous tokens are issued."""
    server = _TokenServer(issuer, policy, htpasswd)
    app.router.add_get(path, server.get)
    app.router.add_post(path, server.post)
