"""The parts that need no registry: challenges, platform matching, the token cache."""

from __future__ import annotations

import time

import pytest
from pydockerd.plugin import InvalidParameter, RegistryCredentials
from pydockerd_registry_distribution.auth import Challenge, Token, TokenCache, parse_challenges
from pydockerd_registry_distribution.platforms import choose


def test_challenges() -> None:
    header = (
        'Bearer realm="https://auth.example/token",service="registry.example",'
        'scope="repository:a/b:pull,push", Basic realm="x, \\"y\\""'
    )
    assert parse_challenges([header, "Negotiate abc==", 'DIGEST realm=r, nonce="n"']) == [
        Challenge(
            "bearer",
            {
                "realm": "https://auth.example/token",
                "service": "registry.example",
                "scope": "repository:a/b:pull,push",
            },
        ),
        Challenge("basic", {"realm": 'x, "y"'}),
        Challenge("negotiate", {}),
        Challenge("digest", {"realm": "r", "nonce": "n"}),
    ]
    assert parse_challenges(["", "   "]) == []
    assert parse_challenges(["Basic"]) == [Challenge("basic", {})]


def entry(digest: str, os_: str, arch: str, variant: str = "", **annotations: str) -> dict:
    platform = {"os": os_, "architecture": arch} | ({"variant": variant} if variant else {})
    item: dict = {"mediaType": "m", "digest": digest, "size": 1, "platform": platform}
    if annotations:
        item["annotations"] = annotations
    return item


INDEX = {
    "manifests": [
        entry(
            "sha256:att",
            "unknown",
            "unknown",
            **{"vnd.docker.reference.type": "attestation-manifest"},
        ),
        entry("sha256:arm5", "linux", "arm", "v5"),
        entry("sha256:arm7", "linux", "arm", "v7"),
        entry("sha256:arm64", "linux", "arm64"),
        entry("sha256:amd64v3", "linux", "amd64", "v3"),
        entry("sha256:amd64", "linux", "amd64"),
        entry("sha256:win", "windows", "amd64"),
    ]
}


@pytest.mark.parametrize(
    ("platform", "digest"),
    [
        ("linux/amd64", "sha256:amd64"),
        ("linux/x86_64", "sha256:amd64"),
        ("linux/arm64", "sha256:arm64"),
        ("linux/arm64/v8", "sha256:arm64"),
        ("linux/aarch64", "sha256:arm64"),
        ("linux/arm/v7", "sha256:arm7"),
        ("linux/arm", "sha256:arm7"),
        ("linux/arm/v6", "sha256:arm5"),
        ("windows/amd64", "sha256:win"),
    ],
)
def test_platforms(platform: str, digest: str) -> None:
    assert choose(INDEX, platform).digest == digest


def test_no_platform() -> None:
    with pytest.raises(InvalidParameter) as caught:
        choose({"manifests": INDEX["manifests"][:1]}, "linux/amd64")
    assert str(caught.value) == "no matching manifest for linux/amd64 in the manifest list entries"
    with pytest.raises(InvalidParameter, match="invalid platform"):
        choose(INDEX, "linux")


def test_token_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    cache = TokenCache()
    challenge = Challenge("bearer", {"realm": "r", "service": "s"})
    alice = RegistryCredentials("alice", "x")
    key = cache.key(challenge, ["repository:a:pull"], alice)
    assert key != cache.key(challenge, ["repository:a:pull"], RegistryCredentials("bob", "x"))
    assert key != cache.key(challenge, ["repository:a:pull,push"], alice)
    cache.put(key, Token("t", expires_in=300))
    assert cache.get(key) == "t"
    now = time.monotonic()
    monkeypatch.setattr(time, "monotonic", lambda: now + 299)
    assert cache.get(key) is None
    cache.put(key, Token("short", expires_in=5))  # lasts 60 s at least
    monkeypatch.setattr(time, "monotonic", lambda: now + 299 + 50)
    assert cache.get(key) == "short"
