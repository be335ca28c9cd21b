"""``version``, ``info`` and ``events``, printed as ``docker version|info|events`` print."""

from __future__ import annotations

import platform
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

import click

from pydocker import __version__
from pydocker.api import MAX_API_VERSION, APIClient
from pydocker.errors import PydockerError
from pydocker.formatting import Template, columns, event_line, go_value, human_size
from pydocker.options import (
    State,
    filter_option,
    filters_param,
    format_option,
    parse_time,
    pass_client,
    pass_state,
)

__all__ = ["COMMANDS", "client_version", "info_lines", "version_lines"]

_GO_ARCH = {
    "x86_64": "amd64",
    "amd64": "amd64",
    "aarch64": "arm64",
    "arm64": "arm64",
    "armv7l": "arm",
    "armv6l": "arm",
    "i386": "386",
    "i686": "386",
}


def _go_arch() -> str:
    """This machine's architecture in Go's words (``amd64``), as docker prints it."""
    machine = platform.machine()
    return _GO_ARCH.get(machine.lower(), machine)


def _text(value: Any) -> str:
    """A field as Go's ``Println`` shows it; missing fields print as nothing."""
    return "" if value is None else go_value(value)


# -- version ----------------------------------------------------------------------------


def client_version(api_version: str = MAX_API_VERSION) -> dict[str, Any]:
    """The ``Client`` half of ``version``: also what ``{{.Client.X}}`` templates see."""
    return {
        "Version": __version__,
        "ApiVersion": api_version,
        "DefaultAPIVersion": MAX_API_VERSION,
        "PythonVersion": platform.python_version(),
        "Os": platform.system().lower(),
        "Arch": _go_arch(),
    }


def _ansic(build_time: str) -> str:
    """An RFC 3339 build time as docker shows it (Go's ANSIC layout, in the time's own
    offset): ``Sun Nov 22 18:54:07 2026``; anything else unchanged."""
    try:
        moment = datetime.fromisoformat(build_time)
    except (TypeError, ValueError):
        return build_time
    if "T" not in build_time or moment.tzinfo is None:
        return build_time
    return f"{moment:%a %b} {moment.day:2d} {moment:%H:%M:%S %Y}"


def _server_components(server: dict[str, Any]) -> list[dict[str, Any]]:
    """``Components`` with the Engine's build time reformatted; an Engine made from the
    top-level fields when the daemon lists none (docker does the same)."""
    components = [dict(c) for c in server.get("Components") or [] if isinstance(c, dict)]
    engine = next((c for c in components if c.get("Name") == "Engine"), None)
    if engine is None:
        engine = {
            "Name": "Engine",
            "Version": server.get("Version", ""),
            "Details": {
                key: _text(server.get(key))
                for key in (
                    "ApiVersion",
                    "MinAPIVersion",
                    "GitCommit",
                    "GoVersion",
                    "Os",
                    "Arch",
                    "BuildTime",
                    "Experimental",
                )
            },
        }
        components.append(engine)
    details = dict(engine.get("Details") or {})
    if isinstance(details.get("BuildTime"), str):
        details["BuildTime"] = _ansic(details["BuildTime"])
    engine["Details"] = details
    return components


def _aligned(indent: str, pairs: Iterable[tuple[str, Any]]) -> list[str]:
    """``label: value`` lines aligned as docker's version template (tabwriter, 20 wide)."""
    return columns([[f"{indent}{label}:", _text(value)] for label, value in pairs], 20, 1)


def _runtime_label(version: str) -> str:
    """pydockerd reports its Python in Docker's ``GoVersion`` field; a Docker daemon, Go."""
    return "Go version" if version.startswith("go") else "Python version"


def version_lines(client: dict[str, Any], server: dict[str, Any] | None) -> list[str]:
    """The default output of ``version``: the Client section, and the Server's when known."""
    api = client["ApiVersion"]
    if api != client["DefaultAPIVersion"]:
        api = f"{api} (downgraded from {client['DefaultAPIVersion']})"
    lines = ["Client:"]
    lines += _aligned(
        " ",
        [
            ("Version", client["Version"]),
            ("API version", api),
            ("Python version", client["PythonVersion"]),
            ("OS/Arch", f"{client['Os']}/{client['Arch']}"),
        ],
    )
    if server is None:
        return lines
    name = _text((server.get("Platform") or {}).get("Name"))
    lines += ["", f"Server: {name}" if name else "Server:"]
    for component in server.get("Components") or []:
        details = component.get("Details") or {}
        lines.append(f" {_text(component.get('Name'))}:")
        if component.get("Name") == "Engine":
            runtime = _text(details.get("GoVersion"))
            pairs = [
                ("Version", component.get("Version")),
                (
                    "API version",
                    f"{_text(details.get('ApiVersion'))} "
                    f"(minimum version {_text(details.get('MinAPIVersion'))})",
                ),
                (_runtime_label(runtime), runtime),
                ("Git commit", details.get("GitCommit")),
                ("Built", details.get("BuildTime")),
                ("OS/Arch", f"{_text(details.get('Os'))}/{_text(details.get('Arch'))}"),
                ("Experimental", details.get("Experimental")),
            ]
        else:
            pairs = [("Version", component.get("Version"))]
            pairs += [(key, details[key]) for key in sorted(details)]
        lines += _aligned("  ", pairs)
    return lines


@click.command()
@format_option(short=True, error_prefix="Template parsing error")
@pass_state
def version(state: State, template: Template | None) -> None:
    """Show the pydocker and pydockerd version information."""
    server: dict[str, Any] | None = None
    failure: PydockerError | None = None
    api_version = MAX_API_VERSION
    try:
        server = state.client.get("/version")
        api_version = state.client.api_version
    except PydockerError as e:  # docker still prints the Client section, then the error
        failure = e
    if server is not None:
        server = {**server, "Components": _server_components(server)}
    client = client_version(api_version)
    if template is not None:
        click.echo(template.render({"Client": client, "Server": server}))
    else:
        click.echo("\n".join(version_lines(client, server)))
    if failure is not None:
        raise failure


# -- info -------------------------------------------------------------------------------


def _nonempty(label: str, value: Any) -> list[str]:
    text = _text(value)
    return [f"{label} {text}"] if text else []


def _pairs(value: Any) -> list[tuple[str, str]]:
    """``[[key, value], ...]`` (DriverStatus, SystemStatus), skipping malformed entries."""
    if not isinstance(value, list):
        return []
    return [
        (_text(p[0]), _text(p[1])) for p in value if isinstance(p, list | tuple) and len(p) == 2
    ]


def _plugin_lines(plugins: Any) -> list[str]:
    """One line per kind of the ``Plugins`` map, kinds sorted, empty kinds left out."""
    if not isinstance(plugins, dict):
        return []
    return [
        f"  {kind}: {' '.join(_text(name) for name in names)}"
        for kind, names in sorted(plugins.items())
        if isinstance(names, list) and names
    ]


def _security_lines(options: Any) -> list[str]:
    """``name=seccomp,profile=builtin`` entries as docker lists them."""
    if not isinstance(options, list) or not options:
        return []
    lines = [" Security Options:"]
    for option in options:
        fields = dict(part.partition("=")[::2] for part in str(option).split(","))
        lines.append(f"  {fields.get('name') or option}")
        if "profile" in fields:
            lines.append(f"   Profile: {fields['profile']}")
    return lines


def _registry_lines(config: Any) -> list[str]:
    if not isinstance(config, dict):
        return []
    indexes = config.get("IndexConfigs") or {}
    insecure = [
        _text(index.get("Name"))
        for index in (indexes.values() if isinstance(indexes, dict) else [])
        if isinstance(index, dict) and not index.get("Secure", True)
    ]
    insecure += [_text(cidr) for cidr in config.get("InsecureRegistryCIDRs") or []]
    mirrors = [_text(mirror) for mirror in config.get("Mirrors") or []]
    lines = [" Insecure Registries:", *(f"  {r}" for r in insecure)] if insecure else []
    if mirrors:
        lines += [" Registry Mirrors:", *(f"  {m}" for m in mirrors)]
    return lines


def info_lines(info: dict[str, Any]) -> list[str]:
    """The Server section of ``info`` (without its title), shaped as ``docker info``'s.
    Missing or malformed fields are left out rather than fatal."""
    lines = [
        f" Containers: {_text(info.get('Containers', 0))}",
        f"  Running: {_text(info.get('ContainersRunning', 0))}",
        f"  Paused: {_text(info.get('ContainersPaused', 0))}",
        f"  Stopped: {_text(info.get('ContainersStopped', 0))}",
        f" Images: {_text(info.get('Images', 0))}",
        *_nonempty(" Server Version:", info.get("ServerVersion")),
        *_nonempty(" Storage Driver:", info.get("Driver")),
        *(f"  {key}: {value}" for key, value in _pairs(info.get("DriverStatus"))),
        *(f" {key}: {value}" for key, value in _pairs(info.get("SystemStatus"))),
        *_nonempty(" Logging Driver:", info.get("LoggingDriver")),
        *_nonempty(" Cgroup Driver:", info.get("CgroupDriver")),
        *_nonempty(" Cgroup Version:", info.get("CgroupVersion")),
        " Plugins:",
        *_plugin_lines(info.get("Plugins")),
    ]
    runtimes = info.get("Runtimes")
    if isinstance(runtimes, dict) and runtimes:
        lines += [
            f" Runtimes: {' '.join(sorted(runtimes))}",
            f" Default Runtime: {_text(info.get('DefaultRuntime'))}",
        ]
    lines += _security_lines(info.get("SecurityOptions"))
    lines += [
        *_nonempty(" Kernel Version:", info.get("KernelVersion")),
        *_nonempty(" Operating System:", info.get("OperatingSystem")),
        *_nonempty(" OSType:", info.get("OSType")),
        *_nonempty(" Architecture:", info.get("Architecture")),
        f" CPUs: {_text(info.get('NCPU', 0))}",
        f" Total Memory: {human_size(_number(info.get('MemTotal')))}",
        *_nonempty(" Name:", info.get("Name")),
        *_nonempty(" ID:", info.get("ID")),
        f" Docker Root Dir: {_text(info.get('DockerRootDir'))}",
        f" Debug Mode: {_text(bool(info.get('Debug')))}",
    ]
    if info.get("Debug"):
        lines += [
            f"  File Descriptors: {_text(info.get('NFd'))}",
            f"  Tasks: {_text(info.get('NGoroutines'))}",
            f"  System Time: {_text(info.get('SystemTime'))}",
            f"  EventsListeners: {_text(info.get('NEventsListener'))}",
        ]
    lines += [
        *_nonempty(" HTTP Proxy:", info.get("HttpProxy")),
        *_nonempty(" HTTPS Proxy:", info.get("HttpsProxy")),
        *_nonempty(" No Proxy:", info.get("NoProxy")),
    ]
    labels = info.get("Labels")
    if isinstance(labels, list) and labels:
        lines += [" Labels:", *(f"  {_text(label)}" for label in labels)]
    lines.append(f" Experimental: {_text(bool(info.get('ExperimentalBuild')))}")
    lines += _registry_lines(info.get("RegistryConfig"))
    lines += [f" Live Restore Enabled: {_text(bool(info.get('LiveRestoreEnabled')))}", ""]
    return lines


def _number(value: Any) -> float:
    return float(value) if isinstance(value, int | float) else 0.0


@click.command()
@format_option(short=True)
@pass_state
def info(state: State, template: Template | None) -> None:
    """Display system-wide information: the daemon, its drivers and plugins."""
    client = {"Version": __version__, "Debug": state.debug}
    if template is not None:
        body = state.client.get("/info")
        click.echo(template.render({**body, "ClientInfo": client}))
        return
    click.echo(f"Client:\n Version:    {__version__}\n Debug Mode: {_text(state.debug)}")
    click.echo("\nServer:")
    body = state.client.get("/info")  # failing here, docker has printed the same so far
    click.echo("\n".join(info_lines(body)))
    for warning in body.get("Warnings") or []:
        text = _text(warning)
        click.echo(text if text.startswith("WARNING") else f"WARNING: {text}", err=True)


# -- events -----------------------------------------------------------------------------


def _time_option(name: str, help_text: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def callback(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
        return parse_time(value) if value else None

    return click.option(name, metavar="TIME", callback=callback, help=help_text)


@click.command()
@_time_option(
    "--since",
    "Show events created since this time: unix seconds, RFC 3339, or a duration (10m) before now.",
)
@_time_option("--until", "Stream events until this time (same forms as --since).")
@filter_option("Filter output (type=daemon, event=reload, container=ID, label=k=v, ...).")
@format_option(error_prefix="Error parsing format")
@pass_client
def events(
    client: APIClient,
    since: str | None,
    until: str | None,
    filters: dict[str, dict[str, bool]],
    template: Template | None,
) -> None:
    """Get real-time events from the daemon, until --until or Ctrl-C."""
    params = filters_param(filters)
    if since:
        params["since"] = since
    if until:
        params["until"] = until
    for event in client.stream_json("/events", params=params):
        click.echo(template.render(event) if template else event_line(event))


COMMANDS = [version, info, events]
