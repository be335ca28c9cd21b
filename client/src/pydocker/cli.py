"""The ``pydocker`` command: global options, and docker's exit statuses in one place.

Exit statuses, as the docker CLI's:

- 0 success; 1 an error from the daemon or the connection (``Error response from daemon:
  ...``, ``Cannot connect to the pydockerd daemon at ...``) or an unusable flag value;
- 125 a usage error: unknown flag, missing value, malformed ``--filter``
  (docker's ``FlagErrorFunc`` returns 125 for every command);
- 64 a ``--format`` template that does not parse (``version``, ``info``, ``events``);
- 130 interrupted by Ctrl-C (docker 28 exits 130 when ``events`` is interrupted).
"""

from __future__ import annotations

import importlib
import logging
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click

from pydocker import __version__
from pydocker.api import parse_host, resolve_host
from pydocker.errors import PydockerError
from pydocker.options import State

__all__ = ["main"]

USAGE_ERROR_STATUS = 125
INTERRUPTED_STATUS = 130
COMMAND_MODULES = {
    **dict.fromkeys(("version", "info", "events"), "system"),
    "plugin": "plugin",
    **dict.fromkeys(
        ("image", "images", "inspect", "tag", "rmi", "history", "save", "load", "import"),
        "image",
    ),
    "system": "image",
    **dict.fromkeys(("pull", "push", "login", "logout"), "registry"),
    **dict.fromkeys(("build", "builder"), "build"),
    **dict.fromkeys(
        (
            "container", "create", "run", "start", "attach", "exec", "logs", "wait", "stop",
            "kill", "restart", "rm", "pause", "unpause", "rename", "top", "port", "ps", "stats",
        ),
        "container",
    ),
    "volume": "volume",
    "network": "network",
}  # fmt: skip
"""Each top-level command and the module of ``pydocker.commands`` whose ``COMMANDS`` has it:
a command's module is imported when the command is looked up, so ``run`` does not import
``build``'s (and everything else's) code."""
LOG_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "error": logging.ERROR,
    "fatal": logging.CRITICAL,
}


def _show_usage_error(error: click.UsageError) -> None:
    """docker's shape: the problem, the usage line, and where to find help."""
    lines = [error.format_message()]
    if error.ctx is not None:
        usage = error.ctx.get_usage().replace("Usage: ", "Usage:  ", 1)
        lines += ["", usage, "", f"Run '{error.ctx.command_path} --help' for more information"]
    click.echo("\n".join(lines), err=True)


@contextmanager
def _exit_statuses() -> Iterator[None]:
    """Turn expected failures into a message on stderr and docker's exit status."""
    try:
        yield
    except click.UsageError as e:
        _show_usage_error(e)
        raise click.exceptions.Exit(USAGE_ERROR_STATUS) from None
    except PydockerError as e:
        click.echo(str(e), err=True)
        raise click.exceptions.Exit(e.exit_status) from None
    except KeyboardInterrupt:
        raise click.exceptions.Exit(INTERRUPTED_STATUS) from None


class _RootGroup(click.Group):
    """The root command; every subcommand's parsing and running happen inside its
    :meth:`invoke`, so the statuses are decided here for all of them."""

    def main(self, *args: Any, **kwargs: Any) -> Any:
        # Like the Go CLI, take Ctrl-C even when started with SIGINT ignored (a background
        # job of a non-interactive shell), so `events` always stops with status 130.
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, signal.default_int_handler)
        return super().main(*args, **kwargs)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *COMMAND_MODULES})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in COMMAND_MODULES:
            _load_commands(self, COMMAND_MODULES[cmd_name])
        return self.commands.get(cmd_name)

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: click.Context | None = None,
        **extra: Any,
    ) -> click.Context:
        with _exit_statuses():
            return super().make_context(info_name, args, parent, **extra)

    def invoke(self, ctx: click.Context) -> Any:
        with _exit_statuses():
            return super().invoke(ctx)


class _StderrHandler(logging.Handler):
    """Log records to whatever stderr is at the time (click's test runner swaps it)."""

    def emit(self, record: logging.LogRecord) -> None:
        click.echo(self.format(record), err=True)


def _configure_logging(level: str) -> None:
    logger = logging.getLogger("pydocker")
    logger.setLevel(LOG_LEVELS[level])
    logger.propagate = False
    if not any(isinstance(h, _StderrHandler) for h in logger.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
        logger.addHandler(handler)


@click.group(
    cls=_RootGroup,
    invoke_without_command=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.option(
    "-H",
    "--host",
    metavar="URL",
    help="Daemon socket to connect to: unix:///path or tcp://host:port "
    "[env: PYDOCKER_HOST, then DOCKER_HOST; default unix:///run/pydockerd.sock]",
)
@click.option(
    "-l",
    "--log-level",
    type=click.Choice(list(LOG_LEVELS)),
    default="info",
    show_default=True,
    help="Set the logging level (debug shows every request).",
)
@click.version_option(__version__, "-v", "--version", message="pydocker version %(version)s")
@click.pass_context
def main(ctx: click.Context, host: str | None, log_level: str) -> None:
    """A client for the pydockerd container engine, with docker's commands."""
    if ctx.invoked_subcommand is None:  # docker prints its help and exits 0
        click.echo(ctx.get_help())
        ctx.exit(0)
    _configure_logging(log_level)
    address = resolve_host(host)
    parse_host(address)  # an unusable address fails before any command runs
    state = State(address, log_level)
    ctx.obj = state
    ctx.call_on_close(state.close)


def _load_commands(group: click.Group, module_name: str) -> None:
    """Import ``pydocker.commands.<module_name>`` and add its commands to ``group``;
    ``image`` also gets ``image pull``, ``image push`` and ``image build`` from theirs."""
    module = importlib.import_module(f"pydocker.commands.{module_name}")
    for command in module.COMMANDS:
        group.commands.setdefault(str(command.name), command)
    if module_name == "image":
        from pydocker.commands import build, registry

        for command in (registry.pull, registry.push, build.build):
            module.image.commands.setdefault(str(command.name), command)
