"""Review fixes of the configuration: each test failed before its fix."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydocker_registry.config import ConfigError, load_settings


@pytest.mark.parametrize(
    ("variable", "value", "field"),
    [
        ("PYDOCKER_REGISTRY_AUTH__HTPASSWD__READ_ONLY_USERS", "alice", "auth"),
        ("PYDOCKER_REGISTRY_STORAGE__OPTIONS", "{bad", "storage"),
    ],
)
def test_a_list_or_table_variable_that_is_not_json_is_a_problem_not_a_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, variable: str, value: str, field: str
) -> None:
    config = tmp_path / "config.toml"
    config.write_text("")
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as caught:
        load_settings(config)
    [problem] = caught.value.problems
    assert problem.startswith(f"{variable}: {field}: lists and tables are written as JSON")
    monkeypatch.setenv(variable, '["alice"]' if "USERS" in variable else '{"root": "/srv/r"}')
    load_settings(config)
