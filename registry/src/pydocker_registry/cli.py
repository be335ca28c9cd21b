"""The ``pydocker-registry`` command: ``serve``, ``gc``, ``validate``, ``htpasswd``, ``keygen``.

Every command that reads the configuration takes ``--config PATH`` (default
``/etc/pydocker-registry/config.toml``, which may be missing) and the ``PYDOCKER_REGISTRY_*``
environment. A configuration that cannot be used exits 1 with one problem per line.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click
from loguru import logger

from pydocker_registry import __version__
from pydocker_registry.auth import AuthError, generate_key, set_password
from pydocker_registry.config import ConfigError, RegistrySettings, load_settings

if TYPE_CHECKING:
    from pydocker_registry.gc import GcReport

__all__ = ["main"]

_config_option = click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="TOML configuration (default /etc/pydocker-registry/config.toml)",
)


class _InterceptHandler(logging.Handler):
    """Sends the standard library's records (aiohttp's) to loguru."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            level: str | int = logger.level(record.levelname).name
        except ValueError:
            level = record.levelno
        logger.opt(depth=6, exception=record.exc_info).log(level, record.getMessage())


def _setup_logging(level: str) -> None:
    logger.remove()
    logger.add(
        sys.stderr,
        level=level.upper(),
        format="{time:YYYY-MM-DDTHH:mm:ss.SSSZ} {level: <7} {message}",
        backtrace=False,
        diagnose=False,
    )
    logging.basicConfig(handlers=[_InterceptHandler()], level=0, force=True)
    logging.getLogger("aiohttp.access").disabled = True  # AccessLogger writes those lines


def _fail(problems: list[str]) -> NoReturn:
    for problem in problems:
        click.echo(problem, err=True)
    sys.exit(1)


def _settings(config_file: Path | None, **overrides: Any) -> RegistrySettings:
    try:
        return load_settings(config_file, overrides)
    except ConfigError as e:
        _fail(e.problems)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(
    __version__, "-v", "--version", message="pydocker-registry version %(version)s"
)
def main() -> None:
    """pydocker-registry: an image registry (OCI Distribution API)."""


@main.command()
@_config_option
@click.option("--addr", default=None, help="HOST:PORT to listen on (overrides addr)")
@click.option("--log-level", default=None, help="debug, info, warning or error")
def serve(config_file: Path | None, addr: str | None, log_level: str | None) -> None:
    """Serve the registry until SIGTERM or SIGINT."""
    from pydocker_registry.server import build, serve

    settings = _settings(config_file, addr=addr, log_level=log_level)
    _setup_logging(settings.log_level)
    try:
        parts = build(settings)
    except ConfigError as e:
        _fail(e.problems)
    asyncio.run(serve(settings, parts))


@main.command()
@_config_option
def validate(config_file: Path | None) -> None:
    """Check the configuration and what it names (files, keys, storage); exit 1 if unusable."""
    from pydocker_registry.server import check_settings

    settings = _settings(config_file)
    problems = check_settings(settings)
    if problems:
        _fail(problems)
    click.echo("configuration OK")


@main.command()
@_config_option
@click.option("--dry-run", is_flag=True, help="only print what would be removed")
@click.option("--delete-untagged", is_flag=True, help="also remove manifests no tag names")
def gc(config_file: Path | None, dry_run: bool, delete_untagged: bool) -> None:
    """Remove blobs nothing refers to (and, with --delete-untagged, manifests no tag names),
    and stale uploads. Blobs younger than gc.grace_seconds are kept, so it may run while
    the registry serves (see pydocker_registry.gc)."""
    settings = _settings(config_file)
    _setup_logging(settings.log_level)
    report = asyncio.run(_gc(settings, dry_run=dry_run, delete_untagged=delete_untagged))
    verb = "would remove" if dry_run else "removed"
    for kind, items in (
        ("manifest", report.removed_manifests),
        ("blob", report.removed_blobs),
        ("upload", report.removed_uploads),
        ("temporary", report.removed_temporaries),
    ):
        for item in items:
            click.echo(f"{verb} {kind} {item}")
    click.echo(
        f"{verb} {len(report.removed_blobs)} blobs, {len(report.removed_manifests)} manifests, "
        f"{len(report.removed_uploads)} uploads; {report.bytes_freed} bytes "
        f"{'would be ' if dry_run else ''}freed; kept {len(report.kept_blobs)} blobs"
    )


async def _gc(settings: RegistrySettings, *, dry_run: bool, delete_untagged: bool) -> GcReport:
    from pydocker_registry.gc import collect_garbage
    from pydocker_registry.storage import open_storage

    try:
        storage = open_storage(settings.storage.backend, dict(settings.storage.options))
    except (ValueError, OSError) as e:
        _fail([f"storage: {e}"])
    try:
        return await collect_garbage(
            storage,
            dry_run=dry_run,
            grace_seconds=settings.gc.grace_seconds,
            delete_untagged=delete_untagged,
        )
    finally:
        await storage.close()


@main.command()
@_config_option
@click.option(
    "--file",
    "path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="htpasswd file (default: auth.htpasswd.path of the configuration)",
)
@click.option("--cost", default=12, show_default=True, type=click.IntRange(4, 16))
@click.argument("user")
def htpasswd(config_file: Path | None, path: Path | None, cost: int, user: str) -> None:
    """Set USER's password (bcrypt) in the htpasswd file, adding USER if new.

    The password is the first line of standard input, or asked for on a terminal.
    """
    if path is None:
        path = _settings(config_file).auth.htpasswd.path
        if path is None:
            _fail(["no htpasswd file: pass --file or set auth.htpasswd.path"])
    if sys.stdin.isatty():
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        _fail(["empty password"])
    try:
        new = set_password(path, user, password, rounds=cost)
    except (AuthError, OSError) as e:
        _fail([str(e)])
    click.echo(f"{'added' if new else 'updated'} {user} in {path}")


@main.command()
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
def keygen(path: Path) -> None:
    """Write a new EC P-256 private key (PEM, mode 0600) to sign tokens (auth.token.private_key)."""
    try:
        generate_key(path)
    except (AuthError, OSError) as e:
        _fail([str(e)])
    click.echo(f"wrote {path}")


if __name__ == "__main__":
    main()
