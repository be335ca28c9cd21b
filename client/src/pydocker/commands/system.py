"""``version``, ``info`` and ``events``."""

from __future__ import annotations

import platform
import re
import sys
import time
from datetime import datetime
from typing import Any

import click

from pydocker import __version__
from pydocker.api import MAX_API_VERSION, APIClient, CannotConnect, DaemonError
from pydocker.cli import FlagError, pass_client
from pydocker.formatting import event_line, human_size, render_template

__all__ = ["COMMANDS"]

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def _client_section() -> dict[str, Any]:
    return {
        "Version": __version__,
        "ApiVersion": MAX_API_VERSION,
        "PythonVersion": platform.python_version(),
        "Os": "linux",
        "Arch": platform.machine(),
    }


@click.command()
@click.option("-f", "--format", "template", help="Format the output with a template.")
@click.pass_obj
def version(ctx: Any, template: str | None) -> None:
    """Show the client's and the daemon's version."""
    client_info = _client_section()
    try:
        server: dict[str, Any] | None = ctx.client.get_json("/version")
        client_info["ApiVersion"] = ctx.client.api_version
        error = None
    except (CannotConnect, DaemonError) as e:
        server, error = None, e
    if template:
        click.echo(render_template(template, {"Client": client_info, "Server": server}))
    else:
        click.echo("Client:")
        for label, value in (
            ("Version", client_info["Version"]),
            ("API version", client_info["ApiVersion"]),
            ("Python version", client_info["PythonVersion"]),
            ("OS/Arch", f"{client_info['Os']}/{client_info['Arch']}"),
        ):
            click.echo(f" {label + ':':<19}{value}")
        if server is not None:
            click.echo("")
            click.echo(f"Server: {(server.get('Platform') or {}).get('Name', '')}")
            for component in server.get("Components") or []:
                details = component.get("Details") or {}
                click.echo(f" {component.get('Name', '')}:")
                api = (
                    f"{details.get('ApiVersion', '')} (minimum version "
                    f"{details.get('MinAPIVersion', '')})"
                )
                for label, value in (
                    ("Version", component.get("Version", "")),
                    ("API version", api),
                    ("Go version", details.get("GoVersion", "")),
                    ("Git commit", details.get("GitCommit", "")),
                    ("Built", details.get("BuildTime", "")),
                    ("OS/Arch", f"{details.get('Os', '')}/{details.get('Arch', '')}"),
                    ("Experimental", details.get("Experimental", "")),
                ):
                    click.echo(f"  {label + ':':<18}{value}")
    if error is not None:
        click.echo(str(error), err=True)
        sys.exit(1)


def _info_lines(info: dict[str, Any]) -> list[str]:
    lines = [
        f" Containers: {info.get('Containers', 0)}",
        f"  Running: {info.get('ContainersRunning', 0)}",
        f"  Paused: {info.get('ContainersPaused', 0)}",
        f"  Stopped: {info.get('ContainersStopped', 0)}",
        f" Images: {info.get('Images', 0)}",
        f" Server Version: {info.get('ServerVersion', '')}",
        f" Storage Driver: {info.get('Driver', '')}",
    ]
    lines += [
        f"  {pair[0]}: {pair[1]}"
        for pair in info.get("DriverStatus") or []
        if isinstance(pair, list) and len(pair) == 2
    ]
    lines += [
        f" Logging Driver: {info.get('LoggingDriver', '')}",
        f" Cgroup Driver: {info.get('CgroupDriver', '')}",
        f" Cgroup Version: {info.get('CgroupVersion', '')}",
        " Plugins:",
    ]
    plugins = info.get("Plugins") or {}
    lines += [f"  {kind}: {' '.join(plugins[kind])}" for kind in sorted(plugins) if plugins[kind]]
    lines += [
        f" Kernel Version: {info.get('KernelVersion', '')}",
        f" Operating System: {info.get('OperatingSystem', '')}",
        f" OSType: {info.get('OSType', '')}",
        f" Architecture: {info.get('Architecture', '')}",
        f" CPUs: {info.get('NCPU', '')}",
        f" Total Memory: {human_size(info.get('MemTotal') or 0)}",
        f" Name: {info.get('Name', '')}",
        f" ID: {info.get('ID', '')}",
        f" Docker Root Dir: {info.get('DockerRootDir', '')}",
        f" Debug Mode: {str(bool(info.get('Debug'))).lower()}",
    ]
    return lines


@click.command()
@click.option("-f", "--format", "template", help="Format the output with a template.")
@pass_client
def info(client: APIClient, template: str | None) -> None:
    """Show system-wide information from the daemon."""
    body = client.get_json("/info")
    if template:
        click.echo(render_template(template, body))
        return
    click.echo("Client:")
    click.echo(f" Version:    {__version__}")
    click.echo("")
    click.echo("Server:")
    for line in _info_lines(body):
        click.echo(line)
    for warning in body.get("Warnings") or []:
        click.echo(f"WARNING: {warning}", err=True)


def parse_time(value: str, now: float | None = None) -> str:
    """A ``--since``/``--until`` value as the unix timestamp the API takes: unix seconds
    as given, an RFC 3339 time, or a Go duration (``10m``, ``1h30m``) meaning that long ago."""
    now = time.time() if now is None else now
    if re.fullmatch(r"\d+(\.\d+)?", value):
        return value
    if _DURATION.fullmatch(value.replace(" ", "")) or re.fullmatch(
        r"(\d+(?:\.\d+)?(ns|us|µs|ms|s|m|h))+", value
    ):
        seconds = sum(float(n) * _UNIT_SECONDS[u] for n, u in _DURATION.findall(value))
        return f"{now - seconds:.9f}"
    try:
        return f"{datetime.fromisoformat(value.replace('Z', '+00:00')).timestamp():.9f}"
    except ValueError:
        raise FlagError(
            value, "--since/--until", "not a unix timestamp, an RFC 3339 time or a duration"
        ) from None


def parse_filter_flags(values: tuple[str, ...]) -> dict[str, dict[str, bool]]:
    """``-f key=value`` flags → the API's map form ``{"key": {"value": true}}``."""
    filters: dict[str, dict[str, bool]] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise FlagError(item, "-f, --filter", "bad format of filter (expected name=value)")
        filters.setdefault(key.strip().lower(), {})[value] = True
    return filters


@click.command()
@click.option("--since", help="Show events created since this time.")
@click.option("--until", help="Stream events until this time.")
@click.option("-f", "--filter", "filters", multiple=True, help="Filter (key=value).")
@click.option("--format", "template", help="Format the output with a template.")
@pass_client
def events(
    client: APIClient,
    since: str | None,
    until: str | None,
    filters: tuple[str, ...],
    template: str | None,
) -> None:
    """Get real-time events from the daemon."""
    import json

    params = {}
    if since:
        params["since"] = parse_time(since)
    if until:
        params["until"] = parse_time(until)
    if filters:
        params["filters"] = json.dumps(parse_filter_flags(filters))
    try:
        for event in client.stream_json("/events", params=params):
            click.echo(render_template(template, event) if template else event_line(event))
    except KeyboardInterrupt:
        pass


COMMANDS = [version, info, events]
