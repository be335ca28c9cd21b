"""RegistrySettings: defaults, the TOML file, the environment, flags, and the messages of a
configuration that cannot be used."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from pydocker_registry import config
from pydocker_registry.config import (
    DEFAULT_STORAGE_ROOT,
    ConfigError,
    RegistrySettings,
    load_settings,
    split_addr,
)

EXAMPLE = Path(__file__).resolve().parents[2] / "etc" / "pydocker-registry" / "config.toml"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No PYDOCKER_REGISTRY_* of the caller's, and no /etc file of the host's."""
    for name in list(os.environ):
        if name.startswith("PYDOCKER_REGISTRY_"):
            monkeypatch.delenv(name)
    monkeypatch.setattr(config, "DEFAULT_CONFIG_FILE", tmp_path / "absent.toml")


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


def problems(path: Path | None = None, **overrides: object) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_settings(path, dict(overrides))
    return caught.value.problems


def test_defaults() -> None:
    settings = load_settings()
    assert settings.addr == "0.0.0.0:5000"
    assert settings.storage.backend == "filesystem"
    assert settings.storage.options == {"root": str(DEFAULT_STORAGE_ROOT)}
    assert settings.auth.mode == "none"
    assert settings.delete_enabled is False
    assert settings.tls.enabled is False
    assert settings.gc.grace_seconds == 3600
    assert settings.log_level == "info"


def test_file_environment_and_flags_in_that_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(
        tmp_path,
        """
addr = "127.0.0.1:6000"
log_level = "DEBUG"
delete_enabled = true
[storage]
backend = "filesystem"
[storage.options]
root = "/srv/registry"
[auth]
mode = "htpasswd"
[auth.htpasswd]
path = "/etc/pydocker-registry/htpasswd"
read_only_users = ["ci"]
""",
    )
    settings = load_settings(path)
    assert settings.addr == "127.0.0.1:6000"
    assert settings.log_level == "debug"
    assert settings.delete_enabled is True
    assert settings.storage.options == {"root": "/srv/registry"}
    assert settings.auth.htpasswd.path == Path("/etc/pydocker-registry/htpasswd")
    assert settings.auth.htpasswd.read_only_users == ["ci"]

    monkeypatch.setenv("PYDOCKER_REGISTRY_ADDR", "127.0.0.1:7000")
    monkeypatch.setenv("PYDOCKER_REGISTRY_AUTH__HTPASSWD__REALM", "from env")
    monkeypatch.setenv("PYDOCKER_REGISTRY_STORAGE__OPTIONS__ROOT", "/from/env")
    monkeypatch.setenv("PYDOCKER_REGISTRY_GC__GRACE_SECONDS", "60")
    settings = load_settings(path)
    assert settings.addr == "127.0.0.1:7000"
    assert settings.auth.htpasswd.realm == "from env"
    assert settings.auth.htpasswd.path == Path("/etc/pydocker-registry/htpasswd")  # file
    assert settings.storage.options == {"root": "/from/env"}
    assert settings.gc.grace_seconds == 60

    settings = load_settings(path, {"addr": "127.0.0.1:8000", "log_level": None})
    assert settings.addr == "127.0.0.1:8000"
    assert settings.log_level == "debug"


def test_token_rules_from_the_file(tmp_path: Path) -> None:
    key = tmp_path / "token.key"
    path = write(
        tmp_path,
        f"""
[auth]
mode = "token"
[auth.token]
private_key = "{key}"
service = "registry.test"
[[auth.token.rules]]
accounts = ["alice"]
repositories = ["a/*"]
actions = ["pull", "push"]
[[auth.token.rules]]
accounts = ["*"]
repositories = ["b/*"]
actions = ["pull"]
catalog = true
""",
    )
    token = load_settings(path).auth.token
    assert token.private_key == key
    assert token.server is True
    assert token.realm == ""
    assert [(r.accounts, r.repositories, r.actions, r.catalog) for r in token.rules] == [
        (["alice"], ["a/*"], ["pull", "push"], False),
        (["*"], ["b/*"], ["pull"], True),
    ]


def test_each_problem_names_its_key_and_source(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(
        tmp_path,
        """
adress = "x"
addr = "localhost"
[tls]
certificate = "/etc/cert.pem"
[auth]
mode = "ldap"
""",
    )
    found = problems(path)
    assert f"{path}: unknown key 'adress'" in found
    assert any(p.startswith(f"{path}: addr: ") and "HOST:PORT" in p for p in found)
    assert f"{path}: tls: tls needs both certificate and key, or neither" in found
    assert any(p.startswith(f"{path}: auth.mode: ") and "'htpasswd'" in p for p in found)
    assert len(found) == 4

    monkeypatch.setenv("PYDOCKER_REGISTRY_GC__GRACE_SECONDS", "-1")
    monkeypatch.setenv("PYDOCKER_REGISTRY_TLS__KEY", "/etc/key.pem")
    found = problems(None, addr="nonsense")
    assert any(
        p.startswith("PYDOCKER_REGISTRY_GC__GRACE_SECONDS: gc.grace_seconds: ") for p in found
    )
    assert (
        "PYDOCKER_REGISTRY_TLS__KEY: tls: tls needs both certificate and key, or neither" in found
    )
    assert any(p.startswith("--addr: addr: ") for p in found)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[auth]\nmode = "htpasswd"', 'mode "htpasswd" needs htpasswd.path'),
        ('[auth]\nmode = "token"', "token server (token.server) needs token.private_key"),
        ('[auth]\nmode = "token"\n[auth.token]\nserver = false', "token.realm is needed"),
        (
            '[auth]\nmode = "token"\n[auth.token]\nserver = false\nrealm = "https://a/t"',
            "needs token.public_keys or token.private_key",
        ),
        (
            '[[auth.token.rules]]\naccounts = ["a"]\nrepositories = ["x"]\nactions = ["pul"]',
            "unknown actions ['pul']",
        ),
        ('[[auth.token.rules]]\nrepositories = ["x"]\nactions = ["pull"]', "Field required"),
        ("[storage]\nroot = '/x'", "unknown key 'storage.root'"),
        ('log_level = "loud"', "log_level: Input should be"),
    ],
)
def test_invalid_combinations(tmp_path: Path, text: str, message: str) -> None:
    found = problems(write(tmp_path, text))
    assert any(message in p for p in found), found


def test_files_that_cannot_be_read(tmp_path: Path) -> None:
    assert problems(tmp_path / "missing.toml") == [
        f"config file {tmp_path / 'missing.toml'} does not exist"
    ]
    (found,) = problems(write(tmp_path, "addr = "))
    assert found.startswith(f"cannot read config file {tmp_path / 'config.toml'}: ")


def test_other_backends_get_no_filesystem_root(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, '[storage]\nbackend = "s3"\n'))
    assert settings.storage.options == {}


@pytest.mark.parametrize(
    ("addr", "expected"),
    [
        ("0.0.0.0:5000", ("0.0.0.0", 5000)),
        (":5000", ("0.0.0.0", 5000)),
        ("[::1]:443", ("::1", 443)),
        ("localhost:0", ("localhost", 0)),
    ],
)
def test_split_addr(addr: str, expected: tuple[str, int]) -> None:
    assert split_addr(addr) == expected


@pytest.mark.parametrize("addr", ["5000", "host:", "host:70000", "::1:5000", "[nope]:1"])
def test_split_addr_refuses(addr: str) -> None:
    with pytest.raises(ValueError):
        split_addr(addr)


def test_the_example_config_is_the_defaults_and_every_key_in_it_is_real(tmp_path: Path) -> None:
    """etc/pydocker-registry/config.toml: commented out it is the defaults; with each
    commented setting (``#key = value``, ``#[table]``) uncommented it still loads."""
    text = EXAMPLE.read_text()
    assert load_settings(EXAMPLE) == RegistrySettings()
    uncommented = re.sub(r"(?m)^#(?=\[|[a-z_]+ = )", "", text)
    assert uncommented != text
    settings = load_settings(write(tmp_path, uncommented))
    shown = set(re.findall(r"(?m)^#([a-z_]+) = ", text)) - {"root"}
    documented = {
        *RegistrySettings.model_fields,
        *config.StorageSettings.model_fields,
        *config.AuthSettings.model_fields,
        *config.HtpasswdSettings.model_fields,
        *config.TokenSettings.model_fields,
        *config.AccessRule.model_fields,
        *config.TLSSettings.model_fields,
        *config.GcSettings.model_fields,
    }
    assert shown <= documented
    tables = {"storage", "options", "auth", "tls", "gc", "htpasswd", "token", "rules"}
    missing = documented - shown - tables
    assert not missing, f"not in the example: {missing}"
    assert settings.auth.token.rules
