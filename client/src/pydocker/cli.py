"""The ``pydocker`` command: global options, error reporting, and the subcommands."""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

import click

from pydocker import __version__
from pydocker.api import APIClient, CannotConnect, DaemonError, resolve_host

__all__ = ["FlagError", "main", "pass_client"]

F = TypeVar("F", bound=Callable[..., Any])


class FlagError(click.ClickException):
    """A flag's value is malformed: docker's message shape and exit status 125."""

    exit_code = 125

    def __init__(self, value: str, flag: str, reason: str) -> None:
        super().__init__(f'invalid argument "{value}" for "{flag}" flag: {reason}')

    def show(self, file: Any = None) -> None:
        click.echo(self.format_message(), err=True)


class Context:
    """What every subcommand gets: the host, and a client made on first use."""

    def __init__(self, host: str) -> None:
        self.host = host
        self._client: APIClient | None = None

    @property
    def client(self) -> APIClient:
        if self._client is None:
            self._client = APIClient(self.host)
        return self._client


def pass_client(func: F) -> F:
    """Give a command the :class:`APIClient`, and turn daemon errors into docker's messages
    and exit status 1."""

    @click.pass_obj
    @wraps(func)
    def wrapper(ctx: Context, *args: Any, **kwargs: Any) -> Any:
        try:
            return func(ctx.client, *args, **kwargs)
        except (CannotConnect, DaemonError) as e:
            click.echo(str(e), err=True)
            sys.exit(1)

    return wrapper  # type: ignore[return-value]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "-H",
    "--host",
    metavar="URL",
    help="Daemon socket: unix:///path or tcp://host:port "
    "[env: PYDOCKER_HOST, DOCKER_HOST; default unix:///run/pydockerd.sock]",
)
@click.option(
    "-l",
    "--log-level",
    type=click.Choice(["debug", "info", "warn", "error", "fatal"]),
    default="info",
    help="Logging level.",
)
@click.version_option(__version__, "-v", "--version", message="pydocker version %(version)s")
@click.pass_context
def main(ctx: click.Context, host: str | None, log_level: str) -> None:
    """pydocker: the client of the pydockerd container engine."""
    ctx.obj = Context(resolve_host(host))


def _register() -> None:
    from pydocker.commands import plugin, system

    for command in (*system.COMMANDS, plugin.plugin):
        main.add_command(command)


_register()
