"""Errors the CLI reports as one line on stderr and a non-zero exit status.

Every expected failure is a :class:`PydockerError`; the command line turns it into its
message and ``exit_status`` in one place (``pydocker.cli``), so no traceback reaches a user::

    PydockerError              base: ``str(error)`` is the message, ``exit_status`` the status
    ├── InvalidHost            -H / PYDOCKER_HOST / DOCKER_HOST is not an address we can use
    ├── CannotConnect          nobody answers at the address (missing socket, refused, timeout)
    ├── ConnectionFailed       the connection broke mid-request, or the reply is not HTTP/JSON
    ├── DaemonError            the daemon answered with an error status and ``{"message": ...}``
    ├── InvalidArgument        a flag value the command cannot use (``--since yesterday``)
    ├── ReportedError          ``run``/``create``'s ``pydocker: <message>`` + where the help is
    └── TemplateError          a ``--format`` template that does not parse

Malformed flags (``-f nonsense``) are click usage errors instead: exit status 125, as docker.
"""

from __future__ import annotations

__all__ = [
    "CannotConnect",
    "ConnectionFailed",
    "DaemonError",
    "InvalidArgument",
    "InvalidHost",
    "PydockerError",
    "ReportedError",
    "TemplateError",
]


class PydockerError(Exception):
    """Base class: ``str(error)`` is what the user reads, ``exit_status`` how the CLI exits."""

    exit_status: int = 1


class InvalidHost(PydockerError):
    """The daemon address cannot be parsed (docker's "invalid bind address format")."""

    def __init__(self, host: str) -> None:
        super().__init__(
            f"Failed to initialize: unable to resolve daemon endpoint: "
            f"invalid bind address format: {host}"
        )
        self.host = host


class CannotConnect(PydockerError):
    """No daemon answers at ``host``."""

    def __init__(self, host: str, *, permission_denied: bool = False) -> None:
        if permission_denied:
            message = (
                "permission denied while trying to connect to the pydockerd daemon socket "
                f"at {host}"
            )
        else:
            message = f"Cannot connect to the pydockerd daemon at {host}. Is the daemon running?"
        super().__init__(message)
        self.host = host


class ConnectionFailed(PydockerError):
    """The daemon was reached but the exchange failed (reset, timeout, garbled reply)."""


class DaemonError(PydockerError):
    """The daemon answered ``status`` with Docker's error body ``{"message": message}``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"Error response from daemon: {message}")
        self.status = status
        self.message = message


class InvalidArgument(PydockerError):
    """A flag's value is well-formed for the parser but means nothing to the command."""


class ReportedError(PydockerError):
    """docker's ``reportError``: ``docker: <message>``, a blank line and ``Run 'docker run
    --help' for more information``, as ``run`` reports every failure and ``create`` the
    flags it refuses; the status is 125 unless the failure says otherwise (126, 127)."""

    def __init__(self, message: str, command_path: str, exit_status: int = 125) -> None:
        program = command_path.split(" ", 1)[0]
        super().__init__(
            f"{program}: {message}\n\nRun '{command_path} --help' for more information"
        )
        self.message = message
        self.exit_status = exit_status


class TemplateError(PydockerError):
    """A ``--format`` template that cannot be parsed. Docker exits 64 for most commands."""

    def __init__(self, message: str, exit_status: int = 64) -> None:
        super().__init__(message)
        self.exit_status = exit_status
