"""The ``pydockerd`` command: dockerd's flag names where dockerd has them."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import click

from pydockerd import API_VERSION, __version__
from pydockerd.errors import ConfigError
from pydockerd.settings import default_toml, load_settings

__all__ = ["main"]


@click.group(
    invoke_without_command=True,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.option(
    "-H",
    "--host",
    "hosts",
    multiple=True,
    metavar="URL",
    help="Where to listen: unix://PATH, tcp://HOST:PORT, fd:// (repeatable).",
)
@click.option("--data-root", type=click.Path(path_type=Path), help="Root of persistent state.")
@click.option("--exec-root", type=click.Path(path_type=Path), help="Root of runtime state.")
@click.option("-s", "--storage-driver", help="Storage driver by name (overlay, vfs, ...).")
@click.option(
    "--config-file",
    type=click.Path(path_type=Path),
    help="Config file [default: /etc/pydockerd/daemon.toml].",
)
@click.option(
    "-l", "--log-level", type=click.Choice(["debug", "info", "warn", "warning", "error", "fatal"])
)
@click.option("--log-format", type=click.Choice(["text", "json"]))
@click.option("-D", "--debug", is_flag=True, help="Same as --log-level debug.")
@click.option("-G", "--group", help="Group owning the unix socket.")
@click.option("--tlscert", type=click.Path(path_type=Path), help="TLS certificate for tcp://.")
@click.option("--tlskey", type=click.Path(path_type=Path), help="TLS key for tcp://.")
@click.option("--tlscacert", type=click.Path(path_type=Path), help="CA for client certificates.")
@click.option("--tlsverify", is_flag=True, help="Require client certificates.")
@click.option(
    "--allow-insecure-tcp", is_flag=True, help="Allow tcp:// without TLS on non-loopback addresses."
)
@click.option(
    "--validate",
    is_flag=True,
    help="Load the configuration and plugins, probe drivers, print the result, exit.",
)
@click.version_option(
    __version__, "-v", "--version", message=f"pydockerd version %(version)s, API {API_VERSION}"
)
@click.pass_context
def main(
    ctx: click.Context,
    hosts: tuple[str, ...],
    data_root: Path | None,
    exec_root: Path | None,
    storage_driver: str | None,
    config_file: Path | None,
    log_level: str | None,
    log_format: str | None,
    debug: bool,
    group: str | None,
    tlscert: Path | None,
    tlskey: Path | None,
    tlscacert: Path | None,
    tlsverify: bool,
    allow_insecure_tcp: bool,
    validate: bool,
) -> None:
    """pydockerd: the container engine daemon (Docker Engine API)."""
    if ctx.invoked_subcommand is not None:
        return
    tls = {
        k: v
        for k, v in (
            ("cert", tlscert),
            ("key", tlskey),
            ("cacert", tlscacert),
            ("verify", tlsverify or None),
        )
        if v is not None
    }
    overrides: dict[str, Any] = {
        "hosts": list(hosts) or None,
        "data_root": data_root,
        "exec_root": exec_root,
        "storage_driver": storage_driver,
        "log_level": "debug" if debug else log_level,
        "log_format": log_format,
        "group": group,
        "tls": tls or None,
        "allow_insecure_tcp": allow_insecure_tcp or None,
    }
    if validate:
        sys.exit(_validate(config_file, overrides))
    from pydockerd.server import run

    sys.exit(run(config_file, overrides))


def _validate(config_file: Path | None, overrides: dict[str, Any]) -> int:
    """Print the configuration's verdict and every plugin's status; 0 when all is well."""
    from pydockerd.daemon import Daemon
    from pydockerd.log import configure_logging

    configure_logging("warning", "text")
    try:
        settings = load_settings(config_file, overrides)
        daemon = Daemon(settings)
        asyncio.run(daemon.initialize(validate_only=True))
    except ConfigError as e:
        click.echo(f"configuration invalid: {e}", err=True)
        return 1
    rows = daemon.manager.components
    width = max((len(f"{r.kind}.{r.name}") for r in rows), default=10)
    for row in rows:
        reason = f"  {row.reason}" if row.reason else ""
        click.echo(f"{row.kind + '.' + row.name:<{width}}  {row.status:<8}{reason}")
    storage = daemon.storage
    assert storage is not None
    click.echo(f"storage driver: {storage.component.name} ({storage.rule})")
    errors = [r for r in rows if r.status == "error"]
    if errors:
        click.echo(f"configuration OK, but {len(errors)} plugin(s) failed", err=True)
        return 1
    click.echo("configuration OK")
    return 0


@main.group()
def config() -> None:
    """Configuration helpers."""


@config.command("default")
def config_default() -> None:
    """Print daemon.toml with every setting at its default."""
    click.echo(default_toml(), nl=False)


if __name__ == "__main__":
    main()
