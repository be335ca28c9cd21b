"""The end-to-end tests' own helpers (no daemon)."""

from __future__ import annotations

import os

import pytest

from tests.helpers import Terminal


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
