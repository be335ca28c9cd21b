"""The container commands, as docker 28 runs them: ``create``, ``run``, ``start``,
``attach``, ``exec``, ``logs``, ``wait``, ``stop``, ``kill``, ``restart``, ``rm``, ``pause``,
``unpause``, ``rename``, ``top``, ``port``, ``container inspect`` and ``container prune``, and
the ``container`` group (with ``ps``/``ls`` and ``stats`` from their own modules).

Exit statuses follow docker's: ``run`` exits with the container's status (125 when the
daemon fails it, 126/127 when the command cannot be run), ``start -a``, ``attach`` and
``exec`` too; the others exit 1 on an error from the daemon.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import IO, Any

import click

from pydocker.api import APIClient
from pydocker.commands import ps as ps_module
from pydocker.commands import stats as stats_module
from pydocker.commands.common import (
    Filters,
    QueryFlag,
    add_commands,
    for_each,
    inspect_command,
    join_host_port,
    natural_key,
    number,
    print_lines,
    print_prune_report,
    prune_filter_option,
    prune_report,
)
from pydocker.commands.image import (
    familiar_name,
    is_image_id,
    normalize_reference,
)
from pydocker.commands.runopts import (
    ConfigError,
    ContainerConfig,
    build,
    container_options,
    env_option,
    parse_env_file,
)
from pydocker.commands.streams import Attach, ExitWaiter, Session
from pydocker.config import registry_auth
from pydocker.errors import DaemonError, InvalidArgument, PydockerError, ReportedError
from pydocker.formatting import columns
from pydocker.hijack import copy_output
from pydocker.jsonmessage import display_json_messages
from pydocker.options import (
    GoCommand,
    GoInt,
    go_parse_int,
    parse_time,
    pass_client,
)
from pydocker.terminal import is_terminal, terminal_size

__all__ = ["COMMANDS", "create_container", "start_error_status"]

_NOT_A_TTY = "the input device is not a TTY"
_DETACHED = "read escape sequence"
_INTERSPERSED = {"allow_interspersed_args": False}
_RUN_CONTEXT = {**_INTERSPERSED, "help_option_names": ["--help"]}
_PRUNE_WARNING = (
    "WARNING! This will remove all stopped containers.\nAre you sure you want to continue?"
)


def start_error_status(message: str) -> int:
    """docker's ``toStatusError``: 127 when the command was not found, 126 when it could
    not be run, 125 for anything else."""
    if "executable file not found" in message or "no such file or directory" in message:
        return 127
    if "permission denied" in message or "is a directory" in message:
        return 126
    return 125


def _command_path() -> str:
    return click.get_current_context().command_path


def _exit(status: int) -> None:
    if status != 0:
        raise click.exceptions.Exit(status)


# -- create -------------------------------------------------------------------------------


def _image_reference(image: str) -> tuple[str, str] | None:
    """``(fromImage, tag)`` to pull ``image`` by (``docker.io/library/busybox``,
    ``latest``), or ``None`` for an image ID, which cannot be pulled.

    :raises ReferenceError: not a valid reference.
    """
    if is_image_id(image):
        return None
    name, tag, digest = normalize_reference(image)
    return name, digest or tag or "latest"


def _pull(client: APIClient, reference: tuple[str, str], cfg: ContainerConfig) -> None:
    """``POST /images/create`` with the registry's stored credentials, its progress on
    stderr as ``pull`` shows it."""
    params = {"fromImage": reference[0], "tag": reference[1]}
    if cfg.platform:
        params["platform"] = cfg.platform
    messages = client.stream_json(
        "/images/create",
        params,
        method="POST",
        headers={"X-Registry-Auth": registry_auth(reference[0])},
    )
    display_json_messages(messages, None if cfg.quiet else sys.stderr)


class _CIDFile:
    """``--cidfile``: refused when it exists, created empty before the create, removed
    again unless the ID was written to it."""

    def __init__(self, path: str) -> None:
        self._path = Path(path) if path else None
        self._written = False
        self._handle: IO[str] | None = None
        if self._path is None:
            return
        if self._path.exists():
            raise PydockerError(
                "container ID file found, make sure the other container isn't running or "
                f"delete {path}"
            )
        try:
            self._handle = self._path.open("w")
        except OSError as e:
            raise PydockerError(f"failed to create the container ID file: {e}") from None

    def write(self, container_id: str) -> None:
        if self._handle is not None:
            self._handle.write(container_id)
            self._written = True

    def close(self) -> None:
        if self._handle is None or self._path is None:
            return
        self._handle.close()
        if not self._written:
            self._path.unlink(missing_ok=True)


def create_container(client: APIClient, cfg: ContainerConfig) -> str:
    """docker's ``createContainer``: pull first with ``--pull always``; create; on a 404
    with ``--pull missing`` print ``Unable to find image '...' locally``, pull and create
    again; print the daemon's warnings. The new container's ID.

    :raises PydockerError: the daemon's error, or a reference or ``--cidfile`` problem.
    """
    for warning in cfg.warnings:
        click.echo(warning, err=True)
    cid_file = _CIDFile(cfg.host_config["ContainerIDFile"])
    try:
        reference = _image_reference(cfg.body["Image"])
        if cfg.pull == "always" and reference is not None:
            _pull(client, reference, cfg)
        size = terminal_size(sys.stdout)
        cfg.host_config["ConsoleSize"] = list(size) if size else [0, 0]
        try:
            created = client.post("/containers/create", params=cfg.params, json=cfg.body)
        except DaemonError as e:
            if e.status != 404 or reference is None or cfg.pull != "missing":
                raise
            if not cfg.quiet:
                name, tag = reference
                separator = "@" if ":" in tag else ":"
                click.echo(
                    f"Unable to find image '{familiar_name(name)}{separator}{tag}' locally",
                    err=True,
                )
            _pull(client, reference, cfg)
            created = client.post("/containers/create", params=cfg.params, json=cfg.body)
        for warning in (created or {}).get("Warnings") or []:
            click.echo(f"WARNING: {warning}", err=True)
        container_id = str((created or {}).get("Id") or "")
        cid_file.write(container_id)
        return container_id
    finally:
        cid_file.close()


def _configure(values: dict[str, Any], image: str, args: tuple[str, ...]) -> ContainerConfig:
    try:
        return build(values, image, args)
    except ConfigError as e:
        raise ReportedError(str(e), _command_path()) from None


@click.command("create", cls=GoCommand, context_settings=_RUN_CONTEXT, options_metavar="[OPTIONS]")
@click.argument("image")
@click.argument("args", nargs=-1, type=click.UNPROCESSED, metavar="[COMMAND] [ARG...]")
@container_options
@pass_client
def create(client: APIClient, /, image: str, args: tuple[str, ...], **values: Any) -> None:
    """Create a new container; prints its ID."""
    cfg = _configure(values, image, args)
    click.echo(create_container(client, cfg))


# -- run ----------------------------------------------------------------------------------


def _wait_status(waiter: ExitWaiter) -> int:
    """The container's status for ``run`` and ``start -a``: 125 when waiting failed."""
    try:
        result = waiter.result()
    except PydockerError as e:
        click.echo(f"error waiting for container: {e}", err=True)
        return 125
    if result.error is not None:
        click.echo(f"Error waiting for container: {result.error}", err=True)
        return 125
    return result.status


def _start_and_wait(
    client: APIClient,
    container_id: str,
    attach: Attach | None,
    *,
    auto_remove: bool,
    forward_signals: bool,
    start_failed: Callable[[PydockerError], BaseException],
) -> None:
    """What ``run`` and ``start -a`` do once the container exists: forward signals (when
    asked), attach the streams (``None``: detached, the container's ID is printed), watch
    for the exit, ``/start``, keep a tty at the terminal's size, and exit with the
    container's status. A start that fails ends the streams, is reported by
    ``start_failed`` (before an auto-removed container is waited for) and raises what it
    returns."""
    with Session(client) as session, ExitStack() as stack:
        if forward_signals:
            session.forward_signals(container_id)
        if attach is None:
            click.echo(container_id)
        else:
            conn = client.hijack(f"/containers/{container_id}/attach", attach.params)
            session.stream(conn, attach)
        waiter = ExitWaiter(client, container_id, "removed" if auto_remove else "next-exit")
        stack.callback(waiter.close)
        try:
            client.post(f"/containers/{container_id}/start")
        except PydockerError as e:
            session.stop()
            failure = start_failed(e)
            if auto_remove:
                _wait_status(waiter)
            raise failure from None
        if attach is None:
            return
        if attach.tty and is_terminal(sys.stdout):
            session.monitor_size(f"/containers/{container_id}/resize")
        if session.finish():
            return
        status = _wait_status(waiter)
    _exit(status)


@click.command("run", cls=GoCommand, context_settings=_RUN_CONTEXT, options_metavar="[OPTIONS]")
@click.argument("image")
@click.argument("args", nargs=-1, type=click.UNPROCESSED, metavar="[COMMAND] [ARG...]")
@container_options
@click.option(
    "-d", "--detach", is_flag=True, help="Run container in background and print container ID."
)
@click.option("--detach-keys", default="", help="Override the key sequence for detaching.")
@click.option(
    "--sig-proxy/--no-sig-proxy",
    default=True,
    help="Proxy received signals to the process (default true).",
)
@pass_client
def run(
    client: APIClient,
    /,
    *,
    image: str,
    args: tuple[str, ...],
    detach: bool,
    detach_keys: str,
    sig_proxy: bool,
    **values: Any,
) -> None:
    """Create and run a new container from an image."""
    cfg = _configure(values, image, args)
    body = cfg.body
    if detach:
        if values["attach"]:
            raise PydockerError("conflicting options: cannot specify both --attach and --detach")
        cfg.detach()
    elif body["AttachStdin"] and cfg.tty and not is_terminal(sys.stdin):
        raise PydockerError(_NOT_A_TTY)
    try:
        container_id = create_container(client, cfg)
    except PydockerError as e:
        raise ReportedError(str(e), _command_path(), start_error_status(str(e))) from None
    attach = Attach(
        stdin=body["AttachStdin"],
        stdout=body["AttachStdout"],
        stderr=body["AttachStderr"],
        tty=cfg.tty,
        detach_keys=detach_keys,
    )

    def start_failed(error: PydockerError) -> BaseException:
        click.echo(ReportedError(str(error), _command_path()), err=True)
        return click.exceptions.Exit(start_error_status(str(error)))

    _start_and_wait(
        client,
        container_id,
        attach if cfg.attached else None,
        auto_remove=cfg.host_config["AutoRemove"],
        forward_signals=sig_proxy,
        start_failed=start_failed,
    )


# -- start / attach -----------------------------------------------------------------------


def _running(client: APIClient, container: str) -> dict[str, Any]:
    """``inspectContainerAndCheckState``: the container, which must be running."""
    info: dict[str, Any] = client.get(f"/containers/{container}/json")
    state = info.get("State") or {}
    if not state.get("Running"):
        raise PydockerError("You cannot attach to a stopped container, start it first")
    if state.get("Paused"):
        raise PydockerError("You cannot attach to a paused container, unpause it first")
    if state.get("Restarting"):
        raise PydockerError("You cannot attach to a restarting container, wait until it is running")
    return info


def _start_attached(client: APIClient, container: str, interactive: bool, detach_keys: str) -> None:
    info: dict[str, Any] = client.get(f"/containers/{container}/json")
    config = info.get("Config") or {}
    container_id = str(info.get("Id") or container)
    tty = bool(config.get("Tty"))
    attach = Attach(
        stdin=interactive and bool(config.get("OpenStdin")), tty=tty, detach_keys=detach_keys
    )
    _start_and_wait(
        client,
        container_id,
        attach,
        auto_remove=bool((info.get("HostConfig") or {}).get("AutoRemove")),
        forward_signals=not tty,
        start_failed=lambda error: error,  # raised as it is, after the wait
    )


@click.command("start", cls=GoCommand)
@click.argument("containers", nargs=-1, required=True, metavar="CONTAINER...")
@click.option("-a", "--attach", is_flag=True, help="Attach STDOUT/STDERR and forward signals.")
@click.option("--detach-keys", default="", help="Override the key sequence for detaching.")
@click.option("-i", "--interactive", is_flag=True, help="Attach container's STDIN.")
@pass_client
def start(
    client: APIClient,
    containers: tuple[str, ...],
    attach: bool,
    detach_keys: str,
    interactive: bool,
) -> None:
    """Start one or more stopped containers."""
    if attach or interactive:
        if len(containers) > 1:
            raise PydockerError("you cannot start and attach multiple containers at once")
        _start_attached(client, containers[0], interactive, detach_keys)
        return
    failed = []
    for container in containers:
        try:
            client.post(f"/containers/{container}/start")
        except DaemonError as e:
            click.echo(str(e), err=True)
            failed.append(container)
            continue
        click.echo(container)
    if failed:
        raise PydockerError(f"Error: failed to start containers: {', '.join(failed)}")


@click.command("attach", cls=GoCommand)
@click.argument("container")
@click.option("--detach-keys", default="", help="Override the key sequence for detaching.")
@click.option("--no-stdin", is_flag=True, help="Do not attach STDIN.")
@click.option(
    "--sig-proxy/--no-sig-proxy",
    default=True,
    help="Proxy all received signals to the process (default true).",
)
@pass_client
def attach(
    client: APIClient, container: str, detach_keys: str, no_stdin: bool, sig_proxy: bool
) -> None:
    """Attach local standard input, output, and error streams to a running container."""
    waiter = ExitWaiter(client, container, None)
    try:
        info = _running(client, container)
        config = info.get("Config") or {}
        tty = bool(config.get("Tty"))
        if not no_stdin and tty and not is_terminal(sys.stdin):
            raise PydockerError(_NOT_A_TTY)
        streams = Attach(
            stdin=not no_stdin and bool(config.get("OpenStdin")),
            tty=tty,
            detach_keys=detach_keys,
        )
        with Session(client) as session:
            if sig_proxy and not tty:
                session.forward_signals(container)
            session.stream(
                client.hijack(f"/containers/{container}/attach", streams.params), streams
            )
            _running(client, container)
            if tty and is_terminal(sys.stdout):
                path = f"/containers/{container}/resize"
                rows, columns = terminal_size(sys.stdout) or (0, 0)
                if (rows, columns) != (0, 0):  # a size change redraws the prompt, as docker's
                    with contextlib.suppress(PydockerError):  # docker logs it at debug level
                        session.resize(path, rows + 1, columns + 1)
                session.monitor_size(path)
            if session.finish():
                raise PydockerError(_DETACHED)
        result = waiter.result()
    finally:
        waiter.close()
    if result.error is not None:
        raise PydockerError(result.error)
    _exit(result.status)


# -- exec ---------------------------------------------------------------------------------


@click.command("exec", cls=GoCommand, context_settings=_INTERSPERSED)
@click.argument("container")
@click.argument(
    "command", nargs=-1, required=True, type=click.UNPROCESSED, metavar="COMMAND [ARG...]"
)
@click.option("-d", "--detach", is_flag=True, help="Detached mode: run command in the background.")
@click.option("--detach-keys", default="", help="Override the key sequence for detaching.")
@env_option
@click.option(
    "--env-file", multiple=True, metavar="FILE", help="Read in a file of environment variables."
)
@click.option("-i", "--interactive", is_flag=True, help="Keep STDIN open even if not attached.")
@click.option("--privileged", is_flag=True, help="Give extended privileges to the command.")
@click.option("-t", "--tty", is_flag=True, help="Allocate a pseudo-TTY.")
@click.option(
    "-u", "--user", default="", help='Username or UID (format: "<name|uid>[:<group|gid>]").'
)
@click.option("-w", "--workdir", default="", help="Working directory inside the container.")
@pass_client
def exec_(
    client: APIClient,
    *,
    container: str,
    command: tuple[str, ...],
    detach: bool,
    detach_keys: str,
    env: tuple[str, ...],
    env_file: tuple[str, ...],
    interactive: bool,
    privileged: bool,
    tty: bool,
    user: str,
    workdir: str,
) -> None:
    """Execute a command in a running container; its exit status is exec's."""
    try:
        from_files = [line for path in env_file for line in parse_env_file(path, os.environ.get)]
    except ConfigError as e:
        raise InvalidArgument(str(e)) from None
    body: dict[str, Any] = {"User": user, "Privileged": privileged, "Tty": tty}
    console = list(terminal_size(sys.stdout) or (0, 0))
    if tty:
        body["ConsoleSize"] = console
    streams = Attach(
        stdin=interactive and not detach, stdout=not detach, stderr=not detach, tty=tty
    )
    body |= {
        "AttachStdin": streams.stdin,
        "AttachStderr": streams.stderr,
        "AttachStdout": streams.stdout,
        "Detach": detach,
        "DetachKeys": detach_keys,
        "Env": from_files + list(env) if from_files or env else None,
        "WorkingDir": workdir,
        "Cmd": list(command),
    }
    client.get(f"/containers/{container}/json")
    if not detach and streams.stdin and tty and not is_terminal(sys.stdin):
        raise PydockerError(_NOT_A_TTY)
    created = client.post(f"/containers/{container}/exec", json=body)
    exec_id = str((created or {}).get("Id") or "")
    if not exec_id:
        raise PydockerError("exec ID empty")
    start_body: dict[str, Any] = {"Detach": detach, "Tty": tty}
    if tty:
        start_body["ConsoleSize"] = console
    if detach:
        client.post(f"/exec/{exec_id}/start", json=start_body)
        return
    with Session(client) as session:
        session.stream(client.hijack(f"/exec/{exec_id}/start", body=start_body), streams)
        if tty and is_terminal(sys.stdin):
            session.monitor_size(f"/exec/{exec_id}/resize")
        if session.finish():
            raise PydockerError(_DETACHED)
    inspected = client.get(f"/exec/{exec_id}/json")
    _exit(number((inspected or {}).get("ExitCode")))


# -- logs / wait --------------------------------------------------------------------------


@click.command("logs", cls=GoCommand)
@click.argument("container")
@click.option("--details", is_flag=True, help="Show extra details provided to logs.")
@click.option("-f", "--follow", is_flag=True, help="Follow log output.")
@click.option(
    "--since",
    default="",
    help='Show logs since timestamp (e.g. "2013-01-02T13:23:37Z") or relative (e.g. "42m").',
)
@click.option(
    "-n",
    "--tail",
    default="all",
    help='Number of lines to show from the end of the logs (default "all").',
)
@click.option("-t", "--timestamps", is_flag=True, help="Show timestamps.")
@click.option("--until", default="", help="Show logs before a timestamp or relative time.")
@pass_client
def logs(
    client: APIClient,
    *,
    container: str,
    details: bool,
    follow: bool,
    since: str,
    tail: str,
    timestamps: bool,
    until: str,
) -> None:
    """Fetch the logs of a container (stdout and stderr apart unless it has a tty)."""
    info: dict[str, Any] = client.get(f"/containers/{container}/json")
    params: list[tuple[str, str]] = [("details", "1")] if details else []
    if follow:
        params.append(("follow", "1"))
    if since:
        params.append(("since", parse_time(since)))
    params += [("stderr", "1"), ("stdout", "1")]
    if tail:
        params.append(("tail", tail))
    if timestamps:
        params.append(("timestamps", "1"))
    if until:
        params.append(("until", parse_time(until)))
    chunks = client.stream_bytes(f"/containers/{info.get('Id') or container}/logs", params)
    tty = bool((info.get("Config") or {}).get("Tty"))
    copy_output(chunks, tty=tty, stdout=sys.stdout.buffer, stderr=sys.stderr.buffer)


@click.command("wait")
@click.argument("containers", nargs=-1, required=True, metavar="CONTAINER...")
@pass_client
def wait(client: APIClient, containers: tuple[str, ...]) -> None:
    """Block until one or more containers stop, then print their exit codes."""
    failures = []
    for container in containers:
        try:
            result = ExitWaiter(client, container, None).result()
        except PydockerError as e:
            failures.append(str(e))
            continue
        click.echo(str(result.status))
    if failures:
        raise PydockerError("\n".join(failures))


# -- stop / kill / restart / rm / pause / unpause -----------------------------------------


def _stop_params(signal: str, timeout: int | None) -> dict[str, str]:
    params = {"signal": signal} if signal else {}
    if timeout is not None:
        params["t"] = str(timeout)
    return params


def _stop_command(action: str, summary: str) -> click.Command:
    """``stop`` and ``restart``: ``-s`` signal, ``-t`` seconds before the kill."""

    @click.command(action, cls=GoCommand, help=summary)
    @click.argument("containers", nargs=-1, required=True, metavar="CONTAINER...")
    @click.option("-s", "--signal", default="", help="Signal to send to the container.")
    @click.option(
        "-t",
        "--timeout",
        type=GoInt(),
        default=None,
        help="Seconds to wait before killing the container.",
    )
    @pass_client
    def command(
        client: APIClient, containers: tuple[str, ...], signal: str, timeout: int | None
    ) -> None:
        params = _stop_params(signal, timeout)
        for_each(containers, lambda c: client.post(f"/containers/{c}/{action}", params=params))

    return command


stop = _stop_command("stop", "Stop one or more running containers.")
restart = _stop_command("restart", "Restart one or more containers.")


@click.command("kill")
@click.argument("containers", nargs=-1, required=True, metavar="CONTAINER...")
@click.option("-s", "--signal", default="", help="Signal to send to the container.")
@pass_client
def kill(client: APIClient, containers: tuple[str, ...], signal: str) -> None:
    """Kill one or more running containers."""
    params = {"signal": signal} if signal else {}
    for_each(containers, lambda c: client.post(f"/containers/{c}/kill", params=params))


def _state_command(action: str, summary: str) -> click.Command:
    """``pause`` and ``unpause``."""

    @click.command(action, help=summary)
    @click.argument("containers", nargs=-1, required=True, metavar="CONTAINER...")
    @pass_client
    def command(client: APIClient, containers: tuple[str, ...]) -> None:
        for_each(containers, lambda c: client.post(f"/containers/{c}/{action}"))

    return command


pause = _state_command("pause", "Pause all processes within one or more containers.")
unpause = _state_command("unpause", "Unpause all processes within one or more containers.")


@click.command("rm", cls=GoCommand)
@click.argument("containers", nargs=-1, required=True, metavar="CONTAINER...")
@click.option(
    "-f", "--force", is_flag=True, help="Force the removal of a running container (uses SIGKILL)."
)
@click.option("-l", "--link", is_flag=True, help="Remove the specified link.")
@click.option(
    "-v", "--volumes", is_flag=True, help="Remove anonymous volumes associated with the container."
)
@pass_client
def rm(
    client: APIClient, containers: tuple[str, ...], force: bool, link: bool, volumes: bool
) -> None:
    """Remove one or more containers."""
    params = {name: "1" for name, on in (("force", force), ("link", link), ("v", volumes)) if on}

    def remove(container: str) -> None:
        name = container.strip("/")
        if not name:
            raise PydockerError("Container name cannot be empty")
        client.request("DELETE", f"/containers/{name}", params=params)

    def missing(error: PydockerError) -> bool:
        return force and isinstance(error, DaemonError) and error.status == 404

    for_each(containers, remove, forgive=missing)


# -- rename / top / port / inspect / prune ------------------------------------------------


@click.command("rename")
@click.argument("container")
@click.argument("new_name", metavar="NEW_NAME")
@pass_client
def rename(client: APIClient, container: str, new_name: str) -> None:
    """Rename a container."""
    old, new = container.strip(), new_name.strip()
    if not old or not new:
        raise PydockerError("Error: Neither old nor new names may be empty")
    try:
        client.post(f"/containers/{old}/rename", params={"name": new})
    except DaemonError as e:
        click.echo(str(e), err=True)
        raise PydockerError(f"Error: failed to rename container named {old}") from None


@click.command("top", context_settings=_INTERSPERSED)
@click.argument("container")
@click.argument("ps_args", nargs=-1, type=click.UNPROCESSED, metavar="[ps OPTIONS]")
@pass_client
def top(client: APIClient, container: str, ps_args: tuple[str, ...]) -> None:
    """Display the running processes of a container."""
    params = {"ps_args": " ".join(ps_args)} if ps_args else None
    listing = client.get(f"/containers/{container}/top", params=params) or {}
    rows = [[str(t) for t in listing.get("Titles") or []]]
    rows += [[str(cell) for cell in process] for process in listing.get("Processes") or []]
    print_lines(columns(rows, minwidth=20, padding=3))


def _host_port(binding: dict[str, Any]) -> str:
    return join_host_port(str(binding.get("HostIp") or ""), str(binding.get("HostPort") or ""))


@click.command("port")
@click.argument("container")
@click.argument("private_port", required=False, metavar="[PRIVATE_PORT[/PROTO]]")
@pass_client
def port(client: APIClient, container: str, private_port: str | None) -> None:
    """List port mappings or a specific mapping for the container."""
    info: dict[str, Any] = client.get(f"/containers/{container}/json")
    ports: dict[str, Any] = (info.get("NetworkSettings") or {}).get("Ports") or {}
    if private_port:
        number_text, _, proto = private_port.partition("/")
        try:
            go_parse_int(number_text, 16, signed=False)
        except ValueError as e:
            raise PydockerError(f"Error: invalid port ({number_text}): {e}") from None
        frontends = ports.get(f"{number_text}/{proto or 'tcp'}") or []
        if not frontends:
            raise PydockerError(f"Error: No public port '{private_port}' published for {container}")
        lines = [_host_port(frontend) for frontend in frontends]
    else:
        lines = [
            f"{private} -> {_host_port(frontend)}"
            for private, frontends in ports.items()
            for frontend in frontends or []
        ]
    print_lines(sorted(lines, key=natural_key))


container_inspect = inspect_command(
    "container",
    "/containers/{}/json",
    QueryFlag("-s", "--size", "Display total file sizes.", "size", "1"),
)


@click.command("prune")
@click.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation.")
@prune_filter_option
@pass_client
def prune(client: APIClient, force: bool, filters: Filters) -> None:
    """Remove all stopped containers."""
    report = prune_report(client, "/containers/prune", _PRUNE_WARNING, filters, force=force)
    if report is None:
        return
    deleted = [str(c) for c in report.get("ContainersDeleted") or []]
    print_prune_report("Containers", deleted, number(report.get("SpaceReclaimed")))


# -- the group ----------------------------------------------------------------------------


@click.group("container")
def container() -> None:
    """Manage containers."""


add_commands(
    container,
    [
        (attach, ("attach",)),
        (create, ("create",)),
        (exec_, ("exec",)),
        (container_inspect, ("inspect",)),
        (kill, ("kill",)),
        (logs, ("logs",)),
        (ps_module.ps, ("ls", "list", "ps")),
        (pause, ("pause",)),
        (port, ("port",)),
        (prune, ("prune",)),
        (rename, ("rename",)),
        (restart, ("restart",)),
        (rm, ("rm", "remove")),
        (run, ("run",)),
        (start, ("start",)),
        (stats_module.stats, ("stats",)),
        (stop, ("stop",)),
        (top, ("top",)),
        (unpause, ("unpause",)),
        (wait, ("wait",)),
    ],
)

COMMANDS = [
    container,
    create,
    run,
    start,
    attach,
    exec_,
    logs,
    wait,
    stop,
    kill,
    restart,
    rm,
    pause,
    unpause,
    rename,
    top,
    port,
    ps_module.ps,
    stats_module.stats,
]
"""Registered on the root under their command names (``exec_`` as ``exec``)."""
