"""Errors of pydockerd, by category.

Code anywhere in the daemon (core or plugin) raises a *category*, never an HTTP error; the
API middleware maps each category to Docker's status code and ``{"message": ...}`` body, in
one place (:data:`STATUS_BY_CATEGORY`).

Tree::

    PydockerdError                 500, base of everything below
    ├── InvalidParameter           400  bad input: malformed reference, bad filter, bad flag
    ├── Unauthorized               401  registry credentials missing or wrong
    ├── Forbidden                  403  an authorization plugin said no
    ├── NotFound                   404  no such container / image / network / volume / exec
    ├── Conflict                   409  name in use, image in use, container running
    ├── NotModified                304  container already started / stopped
    ├── Unavailable                503  a subsystem is not ready or shutting down
    ├── NotImplementedByDaemon     501  endpoint or option pydockerd does not implement yet
    ├── SystemError                500  the host failed us (mount, netlink, cgroup)
    ├── DriverNotSupported         a driver cannot run on this host ("skip", not "error")
    └── ConfigError                configuration is invalid (daemon refuses to start)
        └── PluginLoadError        a plugin could not be imported or registered
"""

from __future__ import annotations

__all__ = [
    "STATUS_BY_CATEGORY",
    "ConfigError",
    "Conflict",
    "DriverNotSupported",
    "Forbidden",
    "InvalidParameter",
    "NotFound",
    "NotImplementedByDaemon",
    "NotModified",
    "PluginLoadError",
    "PydockerdError",
    "SystemError",
    "Unauthorized",
    "Unavailable",
    "status_for",
]


class PydockerdError(Exception):
    """Base of every error pydockerd raises on purpose; its text is shown to the user."""

    @property
    def message(self) -> str:
        return str(self)


class InvalidParameter(PydockerdError):
    """The request is malformed or names something impossible (HTTP 400)."""


class Unauthorized(PydockerdError):
    """Credentials are missing or were refused (HTTP 401)."""


class Forbidden(PydockerdError):
    """An authorization plugin denied the request (HTTP 403)."""


class NotFound(PydockerdError):
    """The named object does not exist (HTTP 404)."""


class Conflict(PydockerdError):
    """The request conflicts with the current state (HTTP 409)."""


class NotModified(PydockerdError):
    """Nothing to do: the object is already in the requested state (HTTP 304)."""


class Unavailable(PydockerdError):
    """A subsystem is not ready, or the daemon is shutting down (HTTP 503)."""


class NotImplementedByDaemon(PydockerdError):
    """pydockerd does not implement this endpoint or option yet (HTTP 501)."""


class SystemError(PydockerdError):
    """The host failed an operation (mount, netlink, cgroup write) (HTTP 500)."""


class DriverNotSupported(PydockerdError):
    """Raised by a driver's ``probe`` when it cannot run on this host.

    The plugin is then listed with status ``skip`` and this text as the reason; it is not an
    error unless the operator asked for that driver by name.
    """


class ConfigError(PydockerdError):
    """The daemon's configuration is invalid; the daemon refuses to start."""


class PluginLoadError(ConfigError):
    """A plugin could not be imported, registered or configured."""


STATUS_BY_CATEGORY: dict[type[BaseException], int] = {
    InvalidParameter: 400,
    Unauthorized: 401,
    Forbidden: 403,
    NotFound: 404,
    Conflict: 409,
    NotModified: 304,
    Unavailable: 503,
    NotImplementedByDaemon: 501,
    SystemError: 500,
}


def status_for(error: BaseException) -> int:
    """The HTTP status for ``error``: its nearest category in the tree, else 500."""
    for cls in type(error).__mro__:
        status = STATUS_BY_CATEGORY.get(cls)
        if status is not None:
            return status
    return 500
