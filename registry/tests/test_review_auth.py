"""Review fixes of the auth modes: each test failed before its fix."""

from __future__ import annotations

from pathlib import Path

import bcrypt
import pytest
from pydocker_registry.auth import (
    AuthError,
    Htpasswd,
    HtpasswdAuthorizer,
    generate_key,
    set_password,
)
from pydocker_registry.config import RegistrySettings
from pydocker_registry.server import build
from pydocker_registry.testing import self_signed_certificate

from .test_auth import Client, basic, bearer, guarded_app

LONG = "p" * 72 + "-and-more"


async def test_passwords_over_72_bytes_are_401_not_500(
    aiohttp_client: Client, tmp_path: Path
) -> None:
    # an entry as Apache's htpasswd (or bcrypt < 5) writes it: the first 72 bytes count
    path = tmp_path / "htpasswd"
    hashed = bcrypt.hashpw(LONG.encode()[:72], bcrypt.gensalt(4)).decode()
    path.write_text(f"alice:{hashed}\n")
    users = Htpasswd(path)
    assert await users.verify("alice", LONG)
    assert not await users.verify("alice", "q" * 100)
    assert not await users.verify("nobody", "q" * 100)
    client = await aiohttp_client(guarded_app(HtpasswdAuthorizer(users, "r")))
    response = await client.get("/check", headers=basic("mallory", "x" * 200))
    assert response.status == 401
    response = await client.get("/check", headers=basic("alice", "x" * 200))
    assert response.status == 401
    assert (await client.get("/check", headers=basic("alice", LONG))).status == 200


def test_set_password_refuses_what_bcrypt_would_cut(tmp_path: Path) -> None:
    with pytest.raises(AuthError, match="72 bytes"):
        set_password(tmp_path / "htpasswd", "alice", LONG, rounds=4)


async def test_the_built_in_token_servers_tokens_pass_beside_other_public_keys(
    aiohttp_client: Client, tmp_path: Path
) -> None:
    # e.g. while moving from an outside token server: its key listed, ours serving /token
    outside, _ = self_signed_certificate(tmp_path)
    key = tmp_path / "token.key"
    generate_key(key)
    settings = RegistrySettings(
        storage={"options": {"root": str(tmp_path / "data")}},
        auth={"mode": "token", "token": {"private_key": str(key), "public_keys": [str(outside)]}},
    )
    parts = build(settings)
    try:
        client = await aiohttp_client(parts.app(settings))
        token = (await (await client.get("/token")).json())["token"]
        assert (await client.get("/v2/", headers=bearer(token))).status == 200
    finally:
        await parts.storage.close()
