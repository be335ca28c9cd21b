"""Configuration: defaults, daemon.toml, ``PYDOCKERD_*`` variables and flags, and errors that
name the key and where it came from."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from pydockerd import settings as settings_module
from pydockerd.errors import ConfigError
from pydockerd.settings import DaemonSettings, TLSSettings, default_toml, load_settings


@pytest.fixture(autouse=True)
def no_host_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """The default config file is a missing file of the test's own, never the host's
    /etc/pydockerd/daemon.toml."""
    missing = tmp_path / "etc" / "daemon.toml"
    monkeypatch.setattr(settings_module, "DEFAULT_CONFIG_FILE", missing)
    return missing


def write(tmp_path: Path, text: str, name: str = "daemon.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# --------------------------------------------------------------------------------------
# defaults, file, environment


def test_defaults() -> None:
    settings = load_settings()
    assert settings.hosts == ["unix:///run/pydockerd.sock"]
    assert settings.data_root == Path("/var/lib/pydockerd")
    assert settings.exec_root == Path("/run/pydockerd")
    assert settings.storage_driver == ""
    assert settings.group == "pydockerd"
    assert settings.allow_insecure_tcp is False
    assert settings.tls == TLSSettings()
    assert settings.tls.enabled is False
    assert (settings.log_level, settings.log_format) == ("info", "text")
    assert settings.disable_plugins == []
    assert settings.trace_hooks is False
    assert settings.event_history == 1024
    assert settings.shutdown_timeout == 15.0
    assert settings.plugins == {}


def test_values_from_the_file(tmp_path: Path) -> None:
    config = write(
        tmp_path,
        """
hosts = ["unix:///tmp/a.sock", "tcp://127.0.0.1:2375"]
data_root = "/srv/pd"
storage_driver = "vfs"
disable_plugins = ["bridge"]
event_history = 5
[tls]
cert = "/c.pem"
key = "/k.pem"
[plugins."storage.overlay"]
mount_program = "x"
""",
    )
    settings = load_settings(config)
    assert settings.hosts == ["unix:///tmp/a.sock", "tcp://127.0.0.1:2375"]
    assert settings.data_root == Path("/srv/pd")
    assert settings.storage_driver == "vfs"
    assert settings.disable_plugins == ["bridge"]
    assert settings.event_history == 5
    assert settings.tls.enabled
    assert (settings.tls.cert, settings.tls.key) == (Path("/c.pem"), Path("/k.pem"))
    assert settings.plugins == {"storage.overlay": {"mount_program": "x"}}


def test_environment_values(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYDOCKERD_DATA_ROOT", "/env/data")
    monkeypatch.setenv("PYDOCKERD_TLS__CERT", "/env/cert.pem")
    monkeypatch.setenv("PYDOCKERD_DISABLE_PLUGINS", "a, b,,c")
    monkeypatch.setenv("PYDOCKERD_HOSTS", "unix:///tmp/x.sock,tcp://127.0.0.1:2376")
    monkeypatch.setenv("PYDOCKERD_TRACE_HOOKS", "1")
    settings = load_settings(write(tmp_path, ""))
    assert settings.data_root == Path("/env/data")
    assert settings.tls.cert == Path("/env/cert.pem")
    assert settings.tls.key is None
    assert settings.disable_plugins == ["a", "b", "c"]
    assert settings.hosts == ["unix:///tmp/x.sock", "tcp://127.0.0.1:2376"]
    assert settings.trace_hooks is True


def test_precedence_flags_over_environment_over_file_over_defaults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = write(
        tmp_path,
        'storage_driver = "file"\ngroup = "file"\nlog_format = "json"\n'
        '[tls]\ncert = "/file/cert.pem"\nkey = "/file/key.pem"\n',
    )
    monkeypatch.setenv("PYDOCKERD_STORAGE_DRIVER", "env")
    monkeypatch.setenv("PYDOCKERD_GROUP", "env")
    monkeypatch.setenv("PYDOCKERD_TLS__CERT", "/env/cert.pem")
    settings = load_settings(
        config, {"storage_driver": "flag", "group": None, "tls": {"key": "/flag/key.pem"}}
    )
    assert settings.storage_driver == "flag"  # flag over environment over file
    assert settings.group == "env"  # a None flag is "not given": environment over file
    assert settings.log_format == "json"  # file over default
    assert settings.log_level == "info"  # default
    # nested keys merge one by one: cert from the environment, key from the flag
    assert (settings.tls.cert, settings.tls.key) == (Path("/env/cert.pem"), Path("/flag/key.pem"))


@pytest.mark.parametrize(
    ("given", "level"),
    [("warn", "warning"), ("WARN", "warning"), ("fatal", "error"), ("Debug", "debug")],
)
def test_log_level_aliases(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, given: str, level: str
) -> None:
    assert load_settings(write(tmp_path, f'log_level = "{given}"\n')).log_level == level
    monkeypatch.setenv("PYDOCKERD_LOG_LEVEL", given)
    assert load_settings().log_level == level
    monkeypatch.delenv("PYDOCKERD_LOG_LEVEL")
    assert load_settings(None, {"log_level": given}).log_level == level


def test_empty_tls_path_means_unset(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, '[tls]\ncert = ""\nkey = ""\n'))
    assert settings.tls.cert is None
    assert not settings.tls.enabled


# --------------------------------------------------------------------------------------
# errors


def test_unknown_key_names_the_key_the_file_a_suggestion_and_the_known_keys(
    tmp_path: Path,
) -> None:
    config = write(tmp_path, "data_rot = '/x'\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(config)
    message = str(caught.value)
    assert message.startswith(f"invalid configuration ({config}): unknown key 'data_rot'")
    assert "did you mean 'data_root'?" in message
    known = re.search(r"known keys: ([^)]*)\)", message)
    assert known is not None
    assert known.group(1).split(", ") == sorted(DaemonSettings.model_fields)


def test_unknown_key_without_a_close_match_has_no_suggestion(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(write(tmp_path, "zzzzzz = 1\n"))
    assert "unknown key 'zzzzzz' (known keys: allow_insecure_tcp, " in str(caught.value)
    assert "did you mean" not in str(caught.value)


def test_unknown_nested_key(tmp_path: Path) -> None:
    config = write(tmp_path, "[tls]\ncrt = '/x'\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(config)
    assert str(caught.value) == (
        f"invalid configuration ({config}): unknown key 'tls.crt'; did you mean "
        "'cert'? (known keys: cacert, cert, key, verify)"
    )


def test_invalid_value_names_the_key_and_the_value(tmp_path: Path) -> None:
    config = write(tmp_path, "event_history = -1\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(config)
    message = str(caught.value)
    assert message.startswith(f"invalid configuration ({config}): event_history: ")
    assert "greater than or equal to 0" in message
    assert "(got -1)" in message


def test_invalid_environment_value_names_the_environment_not_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = write(tmp_path, 'group = "docker"\n')
    monkeypatch.setenv("PYDOCKERD_EVENT_HISTORY", "lots")
    with pytest.raises(ConfigError) as caught:
        load_settings(config)
    message = str(caught.value)
    assert message.startswith("invalid configuration (environment or flags): event_history:")
    assert str(config) not in message


def test_unknown_nested_environment_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYDOCKERD_TLS__CERTIFICATE", "/x")
    with pytest.raises(ConfigError, match=r"\(environment or flags\): unknown key 'tls.certif"):
        load_settings()


def test_invalid_flag_value_names_the_key() -> None:
    with pytest.raises(ConfigError, match=r"\(environment or flags\): log_level: .*'loud'"):
        load_settings(None, {"log_level": "loud"})


def test_no_hosts_at_all_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"hosts: .*at least one host"):
        load_settings(write(tmp_path, "hosts = []\n"))


def test_a_named_config_file_must_exist(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    with pytest.raises(ConfigError, match=f"config file {missing} does not exist"):
        load_settings(missing)


def test_the_default_config_file_may_be_missing(no_host_config: Path) -> None:
    assert not no_host_config.exists()
    assert load_settings(None).data_root == Path("/var/lib/pydockerd")


def test_the_default_config_file_is_read_when_present(no_host_config: Path) -> None:
    no_host_config.parent.mkdir()
    no_host_config.write_text('storage_driver = "vfs"\n')
    assert load_settings(None).storage_driver == "vfs"


def test_broken_toml_is_reported_with_the_file(tmp_path: Path) -> None:
    config = write(tmp_path, "this is = not = toml\n")
    with pytest.raises(ConfigError, match=f"cannot read config file {config}: "):
        load_settings(config)


# --------------------------------------------------------------------------------------
# config default


def _setting_lines(text: str) -> list[str]:
    """The commented-out settings (``# key = value``) and tables (``# [name]``), uncommented."""
    return [line[2:] for line in text.splitlines() if re.match(r"^# (\w+ = |\[\w+\]$)", line)]


def test_default_toml_lines() -> None:
    text = default_toml()
    lines = text.splitlines()
    assert text.endswith("\n")
    assert lines[0] == "# pydockerd daemon configuration (/etc/pydockerd/daemon.toml)."
    assert all(line == "" or line.startswith("#") for line in lines), "everything commented"
    for expected in (
        '# hosts = ["unix:///run/pydockerd.sock"]',
        '# data_root = "/var/lib/pydockerd"',
        '# exec_root = "/run/pydockerd"',
        '# storage_driver = ""',
        "# allow_insecure_tcp = false",
        '# log_level = "info"',
        "# disable_plugins = []",
        "# event_history = 1024",
        "# shutdown_timeout = 15.0",
        "# [tls]",
        '# cert = ""  # unset by default',
        "# verify = false",
        '# [plugins."storage.overlay"]',
    ):
        assert expected in lines, expected
    # every setting is there, with its description on the line above
    for name, field in DaemonSettings.model_fields.items():
        if name in ("tls", "network", "registries", "plugins"):
            assert f"# [{name}" in text, name  # a table
            continue
        index = next(i for i, line in enumerate(lines) if line.startswith(f"# {name} = "))
        assert lines[index - 1] == f"# {field.description}"


def test_default_toml_uncommented_loads_as_the_defaults(tmp_path: Path) -> None:
    uncommented = "\n".join(_setting_lines(default_toml())) + "\n"
    tomllib.loads(uncommented)  # valid TOML
    settings = load_settings(write(tmp_path, uncommented))
    assert settings == load_settings(None)
