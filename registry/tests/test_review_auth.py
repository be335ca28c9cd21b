"""Review fixes of the auth modes: each test failed before its fix."""

from __future__ import annotations

from pathlib import Path

import bcrypt
import pytest
from pydocker_registry.auth import AuthError, Htpasswd, HtpasswdAuthorizer, set_password

from .test_auth import Client, basic, guarded_app

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
