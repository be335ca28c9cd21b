"""The end-to-end tests' own helpers (no daemon)."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import pytest

from tests.helpers import Terminal, leftovers


def test_a_terminal_whose_command_cannot_run_exits_127() -> None:
    """The forked child never goes on running the tests when exec fails."""
    with Terminal(["/no/such/command"], dict(os.environ)) as term:
        term.expect("No such file or directory")
        assert term.wait() == 127
    assert term.fd == -1


def test_leaving_a_terminal_kills_and_reaps_its_command() -> None:
    with (
        pytest.raises(AssertionError, match="timed out waiting for 'never'"),
        Terminal(["sleep", "60"], dict(os.environ)) as term,
    ):
        term.expect("never", timeout=0.3)
    assert term.fd == -1, "the terminal is closed"
    with pytest.raises(ChildProcessError):
        os.waitpid(term.pid, os.WNOHANG)  # reaped already


def test_leftovers_finds_cgroups_of_v1_and_v2_and_their_processes(tmp_path: Path) -> None:
    container_id = secrets.token_hex(32)
    v2 = tmp_path / "parent" / container_id  # cgroup v2 mounted on the root
    (v2 / "sub").mkdir(parents=True)
    (tmp_path / "parent" / "cgroup.procs").write_text("")
    (v2 / "cgroup.procs").write_text("4242\n")
    (v2 / "sub" / "cgroup.procs").write_text("4243\n4244\n")
    v1 = tmp_path / "memory" / "parent" / container_id
    v1.mkdir(parents=True)
    (v1 / "cgroup.procs").write_text("")
    (tmp_path / "memory" / "parent" / "other").mkdir()
    assert sorted(leftovers(container_id, "parent", tmp_path)) == sorted(
        [
            f"cgroup {v1}",
            f"cgroup {v2}",
            f"process 4242 in {v2}",
            f"process 4243 in {v2 / 'sub'}",
            f"process 4244 in {v2 / 'sub'}",
        ]
    )
    assert leftovers(secrets.token_hex(32), "parent", tmp_path) == []
