"""Configuration: file, environment and flags, and errors that name the key."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydockerd.errors import ConfigError
from pydockerd.settings import load_settings


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("PYDOCKERD_"):
            monkeypatch.delenv(name)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "daemon.toml"
    path.write_text(text)
    return path


def test_defaults_without_a_file(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, ""))
    assert settings.hosts == ["unix:///run/pydockerd.sock"]
    assert settings.data_root == Path("/var/lib/pydockerd")
    assert settings.storage_driver == ""
    assert settings.tls.enabled is False


def test_precedence_flags_over_environment_over_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = write(
        tmp_path, 'storage_driver = "a"\nlog_level = "error"\ngroup = "g"\n[tls]\nkey = "/k.pem"\n'
    )
    monkeypatch.setenv("PYDOCKERD_STORAGE_DRIVER", "b")
    monkeypatch.setenv("PYDOCKERD_LOG_LEVEL", "warn")
    monkeypatch.setenv("PYDOCKERD_TLS__CERT", "/c.pem")
    monkeypatch.setenv("PYDOCKERD_DISABLE_PLUGINS", "x, y")
    settings = load_settings(config, {"storage_driver": "c", "group": None})
    assert settings.storage_driver == "c"  # flag
    assert settings.log_level == "warning"  # environment, alias of warn
    assert settings.group == "g"  # file (a None flag is "not given")
    assert (settings.tls.cert, settings.tls.key) == (Path("/c.pem"), Path("/k.pem"))
    assert settings.disable_plugins == ["x", "y"]


def test_unknown_key_names_it_the_file_and_a_suggestion(tmp_path: Path) -> None:
    config = write(tmp_path, "data_rot = '/x'\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(config)
    message = str(caught.value)
    assert message.startswith(f"invalid configuration ({config}): unknown key 'data_rot'")
    assert "did you mean 'data_root'?" in message
    assert "known keys: allow_insecure_tcp, data_root," in message


def test_unknown_nested_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"unknown key 'tls.certificate'.*known keys: cacert"):
        load_settings(write(tmp_path, "[tls]\ncertificate = '/x'\n"))


def test_bad_value_names_the_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"event_history: .*greater than or equal to 0"):
        load_settings(write(tmp_path, "event_history = -1\n"))


def test_named_file_must_exist_but_the_default_may_be_missing(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "missing.toml")


def test_broken_toml_is_reported(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_settings(write(tmp_path, "this is = not = toml\n"))
