"""The pydocker-registry command in-process: --version, validate, htpasswd, keygen, gc."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import bcrypt
import pytest
from click.testing import CliRunner
from pydocker_registry import __version__
from pydocker_registry.auth import Htpasswd, generate_key, set_password
from pydocker_registry.cli import main
from pydocker_registry.testing import self_signed_certificate, write_config


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    for name in list(os.environ):
        if name.startswith("PYDOCKER_REGISTRY_"):
            monkeypatch.delenv(name)
    return CliRunner()


def test_version_is_the_installed_distribution_version(runner: CliRunner) -> None:
    result = runner.invoke(main, ["--version"])
    assert result.exit_code == 0
    assert result.output == f"pydocker-registry version {__version__}\n"
    assert __version__ != "0.0.0"


def test_validate_accepts_a_usable_configuration(runner: CliRunner, tmp_path: Path) -> None:
    set_password(tmp_path / "htpasswd", "alice", "pw", rounds=4)
    generate_key(tmp_path / "token.key")
    certificate, key = self_signed_certificate(tmp_path)
    config = write_config(
        tmp_path,
        f"""
[tls]
certificate = "{certificate}"
key = "{key}"
[auth]
mode = "token"
[auth.htpasswd]
path = "{tmp_path / "htpasswd"}"
[auth.token]
private_key = "{tmp_path / "token.key"}"
[[auth.token.rules]]
accounts = ["alice"]
repositories = ["alice/*"]
actions = ["*"]
""",
    )
    result = runner.invoke(main, ["validate", "--config", str(config)])
    assert (result.exit_code, result.output) == (0, "configuration OK\n")


def test_validate_lists_every_problem_on_its_own_line(runner: CliRunner, tmp_path: Path) -> None:
    (tmp_path / "htpasswd").write_text("alice:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\n")
    config = tmp_path / "config.toml"
    config.write_text(
        f"""
[storage]
backend = "nosuchbackend"
[tls]
certificate = "{tmp_path / "missing-cert.pem"}"
key = "{tmp_path / "missing-key.pem"}"
[auth]
mode = "htpasswd"
[auth.htpasswd]
path = "{tmp_path / "htpasswd"}"
"""
    )
    result = runner.invoke(main, ["validate", "--config", str(config)])
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert len(lines) == 3, result.output
    assert lines[0].startswith("auth: htpasswd file ")
    assert "the entry of 'alice' is not bcrypt" in lines[0]
    assert lines[1].startswith(f"tls: cannot load {tmp_path / 'missing-cert.pem'}")
    assert lines[2].startswith("storage: unknown storage backend 'nosuchbackend' (installed: ")


def test_validate_missing_files_and_keys(runner: CliRunner, tmp_path: Path) -> None:
    (tmp_path / "bad.key").write_text("not a key\n")
    config = write_config(
        tmp_path,
        f"""
[auth]
mode = "token"
[auth.htpasswd]
path = "{tmp_path / "no-htpasswd"}"
[auth.token]
private_key = "{tmp_path / "bad.key"}"
""",
    )
    result = runner.invoke(main, ["validate", "--config", str(config)])
    assert result.exit_code == 1
    assert result.output.startswith(f"auth: htpasswd file {tmp_path / 'no-htpasswd'}: ")
    assert len(result.output.splitlines()) == 1
    (tmp_path / "no-htpasswd").write_text("")
    result = runner.invoke(main, ["validate", "--config", str(config)])
    assert result.output.startswith(f"auth: token key {tmp_path / 'bad.key'}: ")


def test_validate_reports_configuration_errors(runner: CliRunner, tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('addr = "nowhere"\nlisten = 1\n[auth]\nmode = "htpasswd"\n')
    result = runner.invoke(main, ["validate", "--config", str(config)])
    assert result.exit_code == 1
    assert sorted(result.output.splitlines()) == sorted(
        [
            f"{config}: addr: 'nowhere' is not HOST:PORT (a port from 0 to 65535)",
            f'{config}: auth: mode "htpasswd" needs htpasswd.path',
            f"{config}: unknown key 'listen'",
        ]
    )
    result = runner.invoke(
        main, ["validate", "--config", str(config)], env={"PYDOCKER_REGISTRY_TLS__KEY": "/k"}
    )
    assert "PYDOCKER_REGISTRY_TLS__KEY: tls: tls needs both" in result.output
    result = runner.invoke(main, ["validate", "--config", str(tmp_path / "none.toml")])
    assert (result.exit_code, result.output) == (
        1,
        f"config file {tmp_path}/none.toml does not exist\n",
    )


def test_htpasswd_writes_and_updates_bcrypt_entries(runner: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / "htpasswd"
    add = ["htpasswd", "--file", str(path), "--cost", "4"]
    result = runner.invoke(main, [*add, "alice"], input="secret\n")
    assert (result.exit_code, result.output) == (0, f"added alice in {path}\n")
    result = runner.invoke(main, [*add, "bob"], input="other\n")
    assert result.exit_code == 0
    result = runner.invoke(main, [*add, "alice"], input="changed\n")
    assert (result.exit_code, result.output) == (0, f"updated alice in {path}\n")
    entries = dict(line.split(":", 1) for line in path.read_text().splitlines())
    assert sorted(entries) == ["alice", "bob"]
    assert bcrypt.checkpw(b"changed", entries["alice"].encode())
    users = Htpasswd(path)
    assert asyncio.run(users.verify("bob", "other"))


def test_htpasswd_takes_the_file_from_the_configuration(runner: CliRunner, tmp_path: Path) -> None:
    config = write_config(tmp_path, f'[auth.htpasswd]\npath = "{tmp_path / "users"}"\n')
    args = ["htpasswd", "--config", str(config), "--cost", "4", "carol"]
    result = runner.invoke(main, args, input="pw\n")
    assert result.exit_code == 0
    assert (tmp_path / "users").read_text().startswith("carol:$2b$04$")
    result = runner.invoke(main, ["htpasswd", "--config", str(write_config(tmp_path, "")), "x"])
    assert (result.exit_code, result.output) == (
        1,
        "no htpasswd file: pass --file or set auth.htpasswd.path\n",
    )
    result = runner.invoke(main, ["htpasswd", "--file", str(tmp_path / "u"), "x"], input="\n")
    assert (result.exit_code, result.output) == (1, "empty password\n")
    result = runner.invoke(main, ["htpasswd", "--file", str(tmp_path / "u"), "a:b"], input="p\n")
    assert result.exit_code == 1
    assert "invalid user name" in result.output


def test_keygen(runner: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / "token.key"
    result = runner.invoke(main, ["keygen", str(path)])
    assert (result.exit_code, result.output) == (0, f"wrote {path}\n")
    assert path.read_text().startswith("-----BEGIN PRIVATE KEY-----")
    result = runner.invoke(main, ["keygen", str(path)])
    assert result.exit_code == 1
    assert "exists" in result.output
