"""The auth modes on their own: htpasswd files, Basic auth, bearer tokens, the access policy
and the token server, served by a small aiohttp app that asks the authorizer for the scopes
in its query (as the API does) and renders AccessDenied as the spec says."""

from __future__ import annotations

import base64
import os
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import jwt
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from pydocker_registry.access import Access, AccessDenied, Authorizer
from pydocker_registry.auth import (
    USER,
    AccessPolicy,
    AuthError,
    Htpasswd,
    HtpasswdAuthorizer,
    TokenAuthorizer,
    TokenIssuer,
    add_token_routes,
    generate_key,
    load_private_key,
    parse_basic,
    parse_scopes,
    set_password,
)
from pydocker_registry.config import AccessRule, RegistrySettings
from pydocker_registry.server import build
from pydocker_registry.testing import self_signed_certificate

Client = Callable[[web.Application], Awaitable[TestClient[Any, Any]]]


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def guarded_app(authorizer: Authorizer) -> web.Application:
    """``GET /check?scope=repository:a/x:pull`` → 200, or the spec's error for AccessDenied."""

    async def check(request: web.Request) -> web.Response:
        access = parse_scopes(request.query.getall("scope", []))
        try:
            await authorizer.authorize(request, access)
        except AccessDenied as e:
            body = {"errors": [{"code": e.code, "message": str(e), "detail": None}]}
            headers = {"WWW-Authenticate": e.challenge} if e.challenge else {}
            return web.json_response(body, status=e.status, headers=headers)
        return web.json_response({"user": request.get(USER)})

    app = web.Application()
    app.router.add_get("/check", check)
    return app


@pytest.fixture
def htpasswd_file(tmp_path: Path) -> Path:
    path = tmp_path / "htpasswd"
    set_password(path, "alice", "wonderland", rounds=4)
    set_password(path, "bob", "builder", rounds=4)
    return path


# --- htpasswd ---------------------------------------------------------------------------


async def test_htpasswd_verifies_bcrypt_entries(htpasswd_file: Path) -> None:
    users = Htpasswd(htpasswd_file)
    assert sorted(users.users()) == ["alice", "bob"]
    assert await users.verify("alice", "wonderland")
    assert await users.verify("alice", "wonderland")  # the remembered pair
    assert not await users.verify("alice", "builder")
    assert not await users.verify("carol", "wonderland")


def test_set_password_updates_in_place_and_keeps_others(htpasswd_file: Path) -> None:
    before = htpasswd_file.read_text().splitlines()
    assert set_password(htpasswd_file, "alice", "new", rounds=4) is False
    after = htpasswd_file.read_text().splitlines()
    assert len(after) == 2
    assert after[1] == before[1]  # bob untouched
    assert after[0].startswith("alice:$2b$04$")
    assert after[0] != before[0]
    assert htpasswd_file.stat().st_mode & 0o777 == 0o600
    with pytest.raises(AuthError, match="invalid user name"):
        set_password(htpasswd_file, "a:b", "x", rounds=4)


def test_htpasswd_refuses_entries_that_are_not_bcrypt(tmp_path: Path) -> None:
    path = tmp_path / "htpasswd"
    path.write_text(
        "# users\nalice:$2y$04$abcdefghijklmnopqrstuu5QUN0IpiMvRWl4ZPJkXG0wTfUNrI4G\n"
        "bob:$apr1$salt$hash\n"
    )
    with pytest.raises(AuthError, match=r"htpasswd:3: the entry of 'bob' is not bcrypt"):
        Htpasswd(path)
    path.write_text("no colon here\n")
    with pytest.raises(AuthError, match="not USER:HASH"):
        Htpasswd(path)
    with pytest.raises(AuthError, match="No such file"):
        Htpasswd(tmp_path / "missing")


async def test_htpasswd_is_read_again_when_it_changes(htpasswd_file: Path) -> None:
    users = Htpasswd(htpasswd_file)
    assert await users.verify("bob", "builder")
    set_password(htpasswd_file, "bob", "rebuilt", rounds=4)
    set_password(htpasswd_file, "carol", "singer", rounds=4)
    assert not await users.verify("bob", "builder")
    assert await users.verify("bob", "rebuilt")
    assert await users.verify("carol", "singer")
    # A broken edit keeps the users in force.
    with htpasswd_file.open("w") as f:
        f.write("carol:plain-text\n")
    os.utime(htpasswd_file, ns=(time.time_ns(), time.time_ns() + 10**9))
    assert await users.verify("carol", "singer")


def test_parse_basic() -> None:
    assert parse_basic(basic("u", "p:w")["Authorization"]) == ("u", "p:w")
    assert parse_basic("basic " + base64.b64encode(b"u:").decode()) == ("u", "")
    assert parse_basic("Basic !!!") is None
    assert parse_basic("Basic " + base64.b64encode(b"nocolon").decode()) is None
    assert parse_basic("Bearer abc") is None
    assert parse_basic("") is None


async def test_htpasswd_authorizer_over_http(aiohttp_client: Client, htpasswd_file: Path) -> None:
    authorizer = HtpasswdAuthorizer(Htpasswd(htpasswd_file), 'my "realm"', ["bob"])
    client = await aiohttp_client(guarded_app(authorizer))
    push = {"scope": "repository:a/x:pull,push"}

    response = await client.get("/check", params=push)
    assert response.status == 401
    assert response.headers["WWW-Authenticate"] == 'Basic realm="my \\"realm\\""'
    assert (await response.json())["errors"][0]["code"] == "UNAUTHORIZED"

    response = await client.get("/check", params=push, headers=basic("alice", "wrong"))
    assert response.status == 401
    assert response.headers["WWW-Authenticate"].startswith("Basic ")

    response = await client.get("/check", params=push, headers=basic("alice", "wonderland"))
    assert response.status == 200
    assert (await response.json())["user"] == "alice"

    # bob is read-only: he may pull (and reach /v2/), not push.
    assert (await client.get("/check", headers=basic("bob", "builder"))).status == 200
    pull = {"scope": "repository:a/x:pull"}
    assert (await client.get("/check", params=pull, headers=basic("bob", "builder"))).status == 200
    response = await client.get("/check", params=push, headers=basic("bob", "builder"))
    assert response.status == 403
    assert (await response.json())["errors"][0]["code"] == "DENIED"


# --- scopes and the policy --------------------------------------------------------------


def test_parse_scopes() -> None:
    assert parse_scopes(["repository:a/b:pull,push registry:catalog:*"]) == [
        Access("repository", "a/b", frozenset({"pull", "push"})),
        Access("registry", "catalog", frozenset({"*"})),
    ]
    assert parse_scopes(["repository:localhost:5000/x:pull"]) == [
        Access("repository", "localhost:5000/x", frozenset({"pull"}))
    ]
    assert parse_scopes(["nonsense", "repository::pull", "user:x:pull", ""]) == []


POLICY = AccessPolicy(
    [
        AccessRule(accounts=["alice"], repositories=["a/*"], actions=["pull", "push"]),
        AccessRule(accounts=["alice"], repositories=["b/*"], actions=["pull"]),
        AccessRule(accounts=["admin"], repositories=["*"], actions=["*"], catalog=True),
        AccessRule(accounts=["*"], repositories=["shared/*"], actions=["pull"]),
        AccessRule(accounts=["anonymous"], repositories=["public/*"], actions=["pull"]),
    ]
)


def access(scope: str) -> Access:
    (item,) = parse_scopes([scope])
    return item


@pytest.mark.parametrize(
    ("account", "scope", "granted"),
    [
        ("alice", "repository:a/app:pull,push", {"pull", "push"}),
        ("alice", "repository:a/deep/app:push", {"push"}),
        ("alice", "repository:b/app:pull,push", {"pull"}),
        ("alice", "repository:a/app:delete", set()),
        ("alice", "repository:c/app:pull", set()),
        ("alice", "repository:shared/x:pull", {"pull"}),
        ("alice", "repository:public/x:pull", set()),
        ("alice", "registry:catalog:*", set()),
        ("admin", "repository:any/thing:*", {"pull", "push", "delete"}),
        ("admin", "registry:catalog:*", {"*"}),
        ("anonymous", "repository:public/x:pull,push", {"pull"}),
        ("anonymous", "repository:shared/x:pull", set()),
    ],
)
def test_policy(account: str, scope: str, granted: set[str]) -> None:
    assert POLICY.allowed(account, access(scope)) == granted


# --- tokens -----------------------------------------------------------------------------


@pytest.fixture(params=["ES256", "RS256"])
def signing_key(request: pytest.FixtureRequest) -> ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey:
    if request.param == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def make_authorizer(key: Any, realm: str = "") -> TokenAuthorizer:
    return TokenAuthorizer([key.public_key()], realm=realm, service="reg", issuer="iss")


async def test_bearer_challenge_names_realm_service_and_scopes(aiohttp_client: Client) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    client = await aiohttp_client(guarded_app(make_authorizer(key, "https://auth.example/t")))
    response = await client.get(
        "/check", params=[("scope", "repository:a/x:pull,push"), ("scope", "repository:b/y:pull")]
    )
    assert response.status == 401
    assert response.headers["WWW-Authenticate"] == (
        'Bearer realm="https://auth.example/t",service="reg",'
        'scope="repository:a/x:pull,push repository:b/y:pull"'
    )
    # GET /v2/ needs no scope; an empty realm is this server's /token.
    client = await aiohttp_client(guarded_app(make_authorizer(key)))
    response = await client.get("/check")
    assert response.headers["WWW-Authenticate"] == (
        f'Bearer realm="http://{client.host}:{client.port}/token",service="reg"'
    )


async def test_bearer_token_grants_its_access(aiohttp_client: Client, signing_key: Any) -> None:
    issuer = TokenIssuer(signing_key, issuer="iss", service="reg")
    client = await aiohttp_client(guarded_app(make_authorizer(signing_key)))
    token = issuer.issue("alice", [access("repository:a/x:pull,push")])["token"]
    assert jwt.get_unverified_header(token)["alg"] == issuer.algorithm

    response = await client.get(
        "/check", params={"scope": "repository:a/x:push"}, headers=bearer(token)
    )
    assert response.status == 200
    assert (await response.json())["user"] == "alice"
    assert (await client.get("/check", headers=bearer(token))).status == 200

    response = await client.get(
        "/check", params={"scope": "repository:b/x:pull"}, headers=bearer(token)
    )
    assert response.status == 401
    assert (await response.json())["errors"][0]["code"] == "DENIED"
    assert 'error="insufficient_scope"' in response.headers["WWW-Authenticate"]
    assert 'scope="repository:b/x:pull"' in response.headers["WWW-Authenticate"]


def claims(**changes: Any) -> dict[str, Any]:
    now = int(time.time())
    base: dict[str, Any] = {
        "iss": "iss",
        "sub": "alice",
        "aud": "reg",
        "exp": now + 300,
        "nbf": now,
        "iat": now,
        "access": [{"type": "repository", "name": "a/x", "actions": ["pull"]}],
    }
    base.update(changes)
    return {name: value for name, value in base.items() if value is not None}


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"iss": "someone-else"}, "issuer"),
        ({"aud": "other-service"}, "audience"),
        ({"exp": int(time.time()) - 600}, "expired"),
        ({"nbf": int(time.time()) + 600}, "not yet valid"),
        ({"exp": None}, "exp"),
        ({"aud": None}, "aud"),
    ],
)
async def test_bad_tokens_are_refused(
    aiohttp_client: Client, change: dict[str, Any], reason: str
) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    client = await aiohttp_client(guarded_app(make_authorizer(key)))
    token = jwt.encode(claims(**change), key, algorithm="ES256")
    response = await client.get(
        "/check", params={"scope": "repository:a/x:pull"}, headers=bearer(token)
    )
    assert response.status == 401
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]
    assert reason in (await response.json())["errors"][0]["message"].lower()
    # The same claims, unchanged, pass.
    good = jwt.encode(claims(), key, algorithm="ES256")
    response = await client.get(
        "/check", params={"scope": "repository:a/x:pull"}, headers=bearer(good)
    )
    assert response.status == 200


async def test_tokens_of_other_keys_and_algorithms_are_refused(aiohttp_client: Client) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    client = await aiohttp_client(guarded_app(make_authorizer(key)))
    stranger = ec.generate_private_key(ec.SECP256R1())
    forged = [
        jwt.encode(claims(), stranger, algorithm="ES256"),
        jwt.encode(claims(), "a-shared-secret-of-32-bytes-or-more", algorithm="HS256"),
        jwt.encode(claims(), None, algorithm="none"),
        "not.a.jwt",
    ]
    for token in forged:
        response = await client.get(
            "/check", params={"scope": "repository:a/x:pull"}, headers=bearer(token)
        )
        assert response.status == 401, token
        assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]


def test_keys_load_and_generate(tmp_path: Path) -> None:
    path = tmp_path / "token.key"
    generate_key(path)
    assert path.stat().st_mode & 0o777 == 0o600
    key = load_private_key(path)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    with pytest.raises(AuthError, match="exists"):
        generate_key(path)
    (tmp_path / "junk.key").write_text("-----BEGIN PRIVATE KEY-----\nxx\n")
    with pytest.raises(AuthError, match=r"junk\.key"):
        load_private_key(tmp_path / "junk.key")


# --- the token server -------------------------------------------------------------------


@pytest.fixture
async def token_client(
    aiohttp_client: Client, htpasswd_file: Path
) -> tuple[TestClient[Any, Any], TokenIssuer]:
    key = ec.generate_private_key(ec.SECP256R1())
    issuer = TokenIssuer(key, issuer="iss", service="reg", expiration=120)
    app = guarded_app(make_authorizer(key))
    add_token_routes(app, issuer, POLICY, Htpasswd(htpasswd_file))
    return await aiohttp_client(app), issuer


def token_access(body: dict[str, Any], issuer: TokenIssuer) -> list[dict[str, Any]]:
    decoded = jwt.decode(
        body["token"], issuer.key.public_key(), algorithms=["ES256"], audience="reg"
    )
    result: list[dict[str, Any]] = decoded["access"]
    return result


async def test_token_server_get(token_client: tuple[TestClient[Any, Any], TokenIssuer]) -> None:
    client, issuer = token_client
    scopes = [
        ("service", "reg"),
        ("scope", "repository:a/x:pull,push"),
        ("scope", "repository:b/x:pull,push"),
    ]
    response = await client.get("/token", params=scopes, headers=basic("alice", "wonderland"))
    assert response.status == 200
    body = await response.json()
    assert body["token"] == body["access_token"]
    assert body["expires_in"] == 120
    assert body["issued_at"].endswith("Z")
    assert "refresh_token" not in body
    assert token_access(body, issuer) == [
        {"type": "repository", "name": "a/x", "actions": ["pull", "push"]},
        {"type": "repository", "name": "b/x", "actions": ["pull"]},
    ]
    # The token is what the registry asks for: a/x push passes, b/x push does not.
    push_a = {"scope": "repository:a/x:push"}
    push_b = {"scope": "repository:b/x:push"}
    assert (await client.get("/check", params=push_a, headers=bearer(body["token"]))).status == 200
    assert (await client.get("/check", params=push_b, headers=bearer(body["token"]))).status == 401

    # Anonymous: only what rules for "anonymous" grant.
    response = await client.get(
        "/token", params={"scope": "repository:public/p:pull,push repository:a/x:pull"}
    )
    body = await response.json()
    assert token_access(body, issuer) == [
        {"type": "repository", "name": "public/p", "actions": ["pull"]}
    ]
    assert jwt.decode(body["token"], options={"verify_signature": False})["sub"] == ""

    response = await client.get("/token", headers=basic("alice", "wrong"))
    assert response.status == 401
    assert (await response.json())["error"] == "invalid_grant"
    response = await client.get(
        "/token", params={"account": "bob"}, headers=basic("alice", "wonderland")
    )
    assert response.status == 400
    assert (await client.get("/token", params={"service": "other"})).status == 400


async def test_token_server_oauth2_and_refresh_tokens(
    token_client: tuple[TestClient[Any, Any], TokenIssuer],
) -> None:
    client, issuer = token_client
    # docker login: GET with offline_token=true returns a refresh (identity) token.
    response = await client.get(
        "/token",
        params={"service": "reg", "offline_token": "true", "client_id": "docker"},
        headers=basic("alice", "wonderland"),
    )
    refresh = (await response.json())["refresh_token"]

    form = {
        "grant_type": "refresh_token",
        "refresh_token": refresh,
        "client_id": "docker",
        "service": "reg",
        "scope": "repository:a/x:push repository:b/x:push",
    }
    response = await client.post("/token", data=form)
    assert response.status == 200
    body = await response.json()
    assert body["refresh_token"]
    assert body["scope"] == "repository:a/x:push"
    assert token_access(body, issuer) == [
        {"type": "repository", "name": "a/x", "actions": ["push"]}
    ]

    form = {
        "grant_type": "password",
        "username": "alice",
        "password": "wonderland",
        "client_id": "skopeo",
        "access_type": "offline",
        "scope": "repository:b/x:pull",
    }
    body = await (await client.post("/token", data=form)).json()
    assert "refresh_token" in body
    assert token_access(body, issuer)[0]["actions"] == ["pull"]
    del form["access_type"]
    assert "refresh_token" not in await (await client.post("/token", data=form)).json()

    refused = [
        {**form, "password": "wrong"},
        {"grant_type": "refresh_token", "refresh_token": body["token"], "client_id": "x"},
        {"grant_type": "refresh_token", "refresh_token": "garbage", "client_id": "x"},
    ]
    for data in refused:
        assert (await client.post("/token", data=data)).status == 401, data
    response = await client.post(
        "/token", data={"grant_type": "client_credentials", "client_id": "x"}
    )
    assert (await response.json())["error"] == "unsupported_grant_type"
    response = await client.post("/token", data={**form, "client_id": ""})
    assert response.status == 400


async def test_token_server_without_htpasswd_only_issues_anonymous_tokens(
    aiohttp_client: Client,
) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    issuer = TokenIssuer(key, issuer="iss", service="reg")
    app = web.Application()
    add_token_routes(app, issuer, POLICY, None)
    client = await aiohttp_client(app)
    assert (await client.get("/token", headers=basic("alice", "wonderland"))).status == 401
    response = await client.get("/token", params={"scope": "repository:public/x:pull"})
    assert token_access(await response.json(), issuer)[0]["name"] == "public/x"


def test_authorizers_satisfy_the_protocol(htpasswd_file: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    authorizers: Sequence[Authorizer] = [
        HtpasswdAuthorizer(Htpasswd(htpasswd_file), "r"),
        make_authorizer(key),
    ]
    assert len(authorizers) == 2


async def test_an_outside_token_server_through_the_app(
    aiohttp_client: Client, tmp_path: Path
) -> None:
    """server = false: tokens signed elsewhere, verified with that server's certificate;
    the registry serves no /token of its own."""
    certificate, key_file = self_signed_certificate(tmp_path)
    settings = RegistrySettings(
        storage={"options": {"root": str(tmp_path / "data")}},
        auth={
            "mode": "token",
            "token": {
                "server": False,
                "realm": "https://auth.example/token",
                "public_keys": [str(certificate)],
                "service": "reg",
                "issuer": "iss",
            },
        },
    )
    parts = build(settings)
    try:
        client = await aiohttp_client(parts.app(settings))
        response = await client.get("/v2/")
        assert response.status == 401
        assert response.headers["WWW-Authenticate"] == (
            'Bearer realm="https://auth.example/token",service="reg"'
        )
        assert (await client.get("/token")).status == 404
        outside = TokenIssuer(load_private_key(key_file), issuer="iss", service="reg")
        token = outside.issue("alice", [access("repository:a/x:pull")])["token"]
        response = await client.get("/v2/a/x/tags/list", headers=bearer(token))
        assert response.status == 404  # allowed; the repository does not exist
        assert (await response.json())["errors"][0]["code"] == "NAME_UNKNOWN"
        response = await client.put("/v2/a/x/manifests/v1", headers=bearer(token), data=b"{}")
        assert response.status == 401
        assert 'scope="repository:a/x:pull,push"' in response.headers["WWW-Authenticate"]
    finally:
        await parts.storage.close()
