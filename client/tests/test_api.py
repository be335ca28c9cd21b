from __future__ import annotations

import socket
from pathlib import Path

import pytest
from pydocker.api import DEFAULT_HOST, APIClient, negotiate, resolve_host
from pydocker.errors import CannotConnect, InvalidHost


def test_host_flag_wins_over_both_variables() -> None:
    env = {"PYDOCKER_HOST": "unix:///p.sock", "DOCKER_HOST": "unix:///d.sock"}
    assert resolve_host("tcp://127.0.0.1:1", env) == "tcp://127.0.0.1:1"


def test_pydocker_host_wins_over_docker_host() -> None:
    env = {"PYDOCKER_HOST": "unix:///p.sock", "DOCKER_HOST": "unix:///d.sock"}
    assert resolve_host(None, env) == "unix:///p.sock"
    assert resolve_host(None, {"DOCKER_HOST": "unix:///d.sock"}) == "unix:///d.sock"


def test_default_host() -> None:
    assert resolve_host(None, {}) == DEFAULT_HOST == "unix:///run/pydockerd.sock"


@pytest.mark.parametrize(
    ("server", "spoken"),
    [
        ("1.47", "1.47"),
        ("1.43", "1.43"),
        ("1.50", "1.47"),
        ("1.100", "1.47"),
        (None, "1.24"),
        ("garbage", "1.24"),
    ],
)
def test_negotiation_caps_at_our_version(server: str | None, spoken: str) -> None:
    assert negotiate(server) == spoken


def test_unsupported_scheme_is_refused() -> None:
    with pytest.raises(InvalidHost, match="invalid bind address format"):
        APIClient("ssh://somewhere")


def test_missing_socket_cannot_connect(tmp_path: Path) -> None:
    client = APIClient(f"unix://{tmp_path}/none.sock")
    with pytest.raises(CannotConnect, match="Cannot connect to the pydockerd daemon at unix://"):
        client.get("/version")


def test_socket_nobody_accepts_cannot_connect(tmp_path: Path) -> None:
    path = tmp_path / "bound.sock"
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(path))  # bound, never listening: connect() is refused
        client = APIClient(f"unix://{path}")
        with pytest.raises(CannotConnect):
            client.get("/info")
