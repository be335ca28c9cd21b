"""``build`` (also ``image build`` and ``builder build``) and ``builder prune``, as docker
28's legacy builder (``DOCKER_BUILDKIT=0``) runs them.

``build`` prepares the context (:mod:`pydocker.buildcontext`), prints ``Sending build
context to Docker daemon  <size>`` while it is sent, streams ``POST /build`` with docker's
query and ``X-Registry-Config`` (every stored credential), and shows the daemon's messages
as docker does. One addition: how long each step took, measured from the arrival of its
``Step N/M`` line to the next one (or to the end), on stderr, so that stdout stays what
docker prints (``| tail -1`` still finds ``Successfully tagged ...``)::

    Step 2/3 : RUN make
     ---> Running in 0123456789ab
     ...
     ---> 3f0a1c2b4d5e
     ---> done in 2.31s              (stderr, dim on a terminal)

A failing step ends the build with the daemon's message on stderr and its ``code`` as the
exit status (1 when there is none), as docker does.
"""

from __future__ import annotations

import base64
import os
import re
import sys
import time
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from io import StringIO
from pathlib import Path
from typing import IO, Any

import click

from pydocker.api import APIClient
from pydocker.buildcontext import (
    BuildContext,
    ContextError,
    context_from_directory,
    context_from_reader,
    context_from_url,
    is_git_url,
    is_url,
)
from pydocker.commands.common import Filters, confirm, kv_map, number, prune_filter_option
from pydocker.commands.image import ReferenceError, normalize_reference
from pydocker.commands.runopts import (
    _env,
    _extra_host,
    _memory_swap,
    _ulimit,
    parse_ram,
    validate_label,
)
from pydocker.config import ConfigFile
from pydocker.errors import DaemonError, InvalidArgument, PydockerError
from pydocker.formatting import decimal_size, go_marshal
from pydocker.jsonmessage import StreamError, display_json_messages, progress_bar
from pydocker.options import (
    Checked,
    DockerCommand,
    GoInt,
    filters_param,
    pass_client,
    repeated_option,
)
from pydocker.terminal import is_terminal

__all__ = ["COMMANDS", "StepTimer", "build", "build_query", "builder", "registry_config"]

_SENDING = "Sending build context to Docker daemon"
_STDIN_CONFLICT = "invalid argument: can't use stdin for both build context and dockerfile"
_STEP = re.compile(r"Step \d+/\d+ : ")
_UPDATE_BYTES = 512 * 1024
_UPDATE_SECONDS = 0.1
_DIM, _RESET = "\x1b[2m", "\x1b[0m"
_DANGLING_WARNING = (
    "WARNING! This will remove all dangling build cache. Are you sure you want to continue?"
)
_ALL_WARNING = "WARNING! This will remove all build cache. Are you sure you want to continue?"


def _tag(text: str) -> str:
    """docker's ``validateTag``: a reference its parser takes, kept as written."""
    try:
        normalize_reference(text)
    except ReferenceError as e:
        raise ValueError(str(e)) from None
    return text


# -- the request -----------------------------------------------------------------------


def build_query(options: Mapping[str, Any], dockerfile: str) -> list[tuple[str, str]]:
    """``POST /build``'s query as docker 28 sends it: only what is set, keys sorted as Go
    encodes ``url.Values``, ``t`` once per tag."""
    pairs: list[tuple[str, str]] = [("t", tag) for tag in options["tags"]]
    pairs += [("securityopt", item) for item in options["security_opt"]]
    pairs += [("extrahosts", item) for item in options["add_hosts"]]
    flags = {
        "q": options["quiet"],
        "nocache": options["no_cache"],
        "forcerm": options["force_rm"],
        "pull": options["pull"],
        "squash": options["squash"],
    }
    pairs += [(key, "1") for key, on in flags.items() if on]
    if not options["rm"]:
        pairs.append(("rm", "0"))  # the daemon removes them by default
    texts = {
        "isolation": "" if options["isolation"].lower() == "default" else options["isolation"],
        "cpusetcpus": options["cpuset_cpus"],
        "cpusetmems": options["cpuset_mems"],
        "cgroupparent": options["cgroup_parent"],
        "dockerfile": dockerfile,
        "target": options["target"],
        "platform": options["platform"].lower(),
    }
    if options["network"] not in ("", "default"):
        texts["networkmode"] = options["network"]
    pairs += [(key, value) for key, value in texts.items() if value]
    numbers = {
        "cpushares": options["cpu_shares"],
        "cpuquota": options["cpu_quota"],
        "cpuperiod": options["cpu_period"],
        "memory": options["memory"],
        "memswap": options["memory_swap"],
        "shmsize": options["shm_size"],
    }
    pairs += [(key, str(value)) for key, value in numbers.items() if value]
    args: dict[str, str | None] = {}
    for item in options["build_args"]:
        key, separator, value = item.partition("=")
        args[key] = value if separator else None  # null: the daemon's environment decides
    documents: dict[str, Any] = {
        "buildargs": dict(sorted(args.items())),
        "labels": kv_map(options["labels"]),
        "cachefrom": list(options["cache_from"]),
        "ulimits": sorted(options["ulimits"], key=lambda u: str(u["Name"])),
    }
    pairs += [(key, go_marshal(value)) for key, value in documents.items() if value]
    pairs.append(("version", "1"))
    return sorted(pairs, key=lambda pair: pair[0])


def registry_config(config: ConfigFile | None = None) -> str:
    """``X-Registry-Config``: base64url of ``{registry: AuthConfig}`` for every stored
    credential (``e30=``, ``{}``, without any)."""
    found = (config or ConfigFile.load()).all_credentials()
    document = {key: found[key].to_json() for key in sorted(found)}
    return base64.urlsafe_b64encode(go_marshal(document).encode()).decode()


# -- what is shown ---------------------------------------------------------------------


def _progress(
    body: Iterable[bytes], out: IO[str], terminal: bool, clock: Callable[[], float] = time.monotonic
) -> Iterator[bytes]:
    """``body`` as it is sent, with docker's ``Sending build context to Docker daemon
    <size>``: redrawn (``\\r``) as it grows on a terminal, written once at the end elsewhere."""
    sent = shown = 0
    last = clock()

    def line(size: int) -> str:
        return f"{_SENDING} {progress_bar({'current': size}, 0)}\r"

    for chunk in body:
        sent += len(chunk)
        if terminal and sent - shown > _UPDATE_BYTES and clock() - last >= _UPDATE_SECONDS:
            out.write(line(sent))
            out.flush()
            shown, last = sent, clock()
        yield chunk
    out.write(line(sent) + "\r\n")
    out.flush()


def _seconds(duration: float) -> str:
    if duration < 60:
        return f"{duration:.2f}s"
    minutes, seconds = divmod(duration, 60)
    return f"{int(minutes)}m{seconds:04.1f}s"


class StepTimer:
    """Times the steps of a build stream it passes through: a step lasts from its
    ``Step N/M`` message to the next one, the result (``aux``, ``Successfully built``), an
    error or the end of the stream; each is reported on ``out`` as soon as it ends, after
    the step's own output, and the whole build at the end."""

    def __init__(self, out: IO[str], clock: Callable[[], float] = time.monotonic) -> None:
        self.out = out
        self.clock = clock
        self.durations: list[tuple[str, float]] = []
        self._step: tuple[str, float] | None = None
        self._start: float | None = None
        self._dim = is_terminal(out) and not os.environ.get("NO_COLOR")

    def _say(self, text: str) -> None:
        self.out.write(f"{_DIM}{text}{_RESET}\n" if self._dim else f"{text}\n")
        self.out.flush()

    def _finish(self, now: float, verb: str = "done in") -> None:
        if self._step is None:
            return
        title, started = self._step
        self._step = None
        self.durations.append((title, now - started))
        self._say(f" ---> {verb} {_seconds(now - started)}")

    def watch(self, messages: Iterable[Any]) -> Iterator[Any]:
        for message in messages:
            now = self.clock()
            if self._start is None:
                self._start = now
            if isinstance(message, Mapping):
                text = message.get("stream")
                if isinstance(text, str) and _STEP.match(text):
                    self._finish(now)
                    self._step = (text.strip(), now)
                elif message.get("errorDetail") is not None:
                    self._finish(now, "failed after")
                elif message.get("aux") is not None or (
                    isinstance(text, str) and text.startswith("Successfully built ")
                ):
                    self._finish(now)
            yield message
        end = self.clock()
        self._finish(end)
        if self.durations and self._start is not None:
            steps = len(self.durations)
            self._say(
                f"Build took {_seconds(end - self._start)} ({steps} step{'s' * (steps != 1)})"
            )


# -- build -----------------------------------------------------------------------------


def _gzip(body: Iterable[bytes]) -> Iterator[bytes]:
    """``--compress``: the context gzipped as it is sent."""
    compressor = zlib.compressobj(wbits=31)
    for chunk in body:
        if packed := compressor.compress(chunk):
            yield packed
    yield compressor.flush()


def _prepare(context: str, dockerfile: str) -> BuildContext:
    """The context the arguments name, as docker's ``RunBuild`` picks it."""
    if context == "-":
        return context_from_reader(sys.stdin.buffer, dockerfile)
    stdin_dockerfile = sys.stdin.buffer.read() if dockerfile == "-" else None
    if Path(context).exists():
        return context_from_directory(context, dockerfile, stdin_dockerfile)
    if is_git_url(context) or is_url(context):
        return context_from_url(context, dockerfile)
    raise ContextError(f'path "{context}" not found')


def _remove_iidfile(path: str) -> None:
    try:
        Path(path).unlink()
    except FileNotFoundError:
        pass
    except OSError as e:
        raise PydockerError(f"Removing image ID file: remove {path}: {e.strerror}") from None


_BUILD_OPTIONS: list[Callable[[Any], Any]] = [
    repeated_option(
        "--add-host",
        "add_hosts",
        metavar="HOST:IP",
        type=Checked("host", _extra_host),
        help="Add a custom host-to-IP mapping (host:ip).",
    ),
    repeated_option(
        "--build-arg",
        "build_args",
        metavar="KEY[=VALUE]",
        type=Checked("env", _env),
        help="Set build-time variables (KEY alone takes its value from the environment).",
    ),
    repeated_option(
        "--cache-from", slice_=True, metavar="IMAGE", help="Images to consider as cache sources."
    ),
    click.option("--cgroup-parent", default="", help="Parent cgroup for the RUN instructions."),
    click.option("--compress", is_flag=True, help="Compress the build context using gzip."),
    click.option("--cpu-period", type=GoInt(), default=0, help="Limit the CPU CFS period."),
    click.option("--cpu-quota", type=GoInt(), default=0, help="Limit the CPU CFS quota."),
    click.option(
        "-c", "--cpu-shares", type=GoInt(), default=0, help="CPU shares (relative weight)."
    ),
    click.option("--cpuset-cpus", default="", help="CPUs in which to allow execution (0-3, 0,1)."),
    click.option("--cpuset-mems", default="", help="MEMs in which to allow execution (0-3, 0,1)."),
    click.option(
        "--disable-content-trust",
        is_flag=True,
        default=True,
        help="Skip image verification (always: content trust is not supported).",
    ),
    click.option(
        "-f",
        "--file",
        "dockerfile",
        default="",
        metavar="PATH",
        help="Name of the Dockerfile (default PATH/Dockerfile; '-' reads it from stdin).",
    ),
    click.option("--force-rm", is_flag=True, help="Always remove intermediate containers."),
    click.option("--iidfile", default="", metavar="FILE", help="Write the image ID to the file."),
    click.option("--isolation", default="", help="Container isolation technology."),
    repeated_option(
        "--label",
        "labels",
        metavar="KEY=VALUE",
        type=Checked("label", validate_label),
        help="Set metadata for an image.",
    ),
    click.option(
        "-m", "--memory", type=Checked("bytes", parse_ram), default=0, help="Memory limit."
    ),
    click.option(
        "--memory-swap",
        type=Checked("bytes", _memory_swap),
        default=0,
        help="Swap limit equal to memory plus swap: -1 to enable unlimited swap.",
    ),
    click.option(
        "--network",
        default="default",
        help="Set the networking mode for the RUN instructions during build.",
    ),
    click.option("--no-cache", is_flag=True, help="Do not use cache when building the image."),
    click.option(
        "--platform",
        default=lambda: os.environ.get("DOCKER_DEFAULT_PLATFORM", ""),
        metavar="PLATFORM",
        help="Set platform if server is multi-platform capable [env: DOCKER_DEFAULT_PLATFORM].",
    ),
    click.option(
        "--pull", is_flag=True, help="Always attempt to pull a newer version of the image."
    ),
    click.option(
        "-q",
        "--quiet",
        is_flag=True,
        help="Suppress the build output and print image ID on success.",
    ),
    click.option(
        "--rm/--no-rm",
        default=True,
        help="Remove intermediate containers after a successful build (default true).",
    ),
    repeated_option("--security-opt", slice_=True, metavar="OPTION", help="Security options."),
    click.option(
        "--shm-size", type=Checked("bytes", parse_ram), default=0, help='Size of "/dev/shm".'
    ),
    click.option(
        "--squash", is_flag=True, help="Squash newly built layers into a single new layer."
    ),
    repeated_option(
        "-t",
        "--tag",
        "tags",
        metavar="NAME[:TAG]",
        type=Checked("tag", _tag),
        help='Name and optionally a tag in the "name:tag" format.',
    ),
    click.option("--target", default="", help="Set the target build stage to build."),
    repeated_option(
        "--ulimit",
        "ulimits",
        metavar="ULIMIT",
        type=Checked("ulimit", _ulimit),
        help="Ulimit options.",
    ),
]


def _with_build_options(command: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed(_BUILD_OPTIONS):
        command = option(command)
    return command


def _show(messages: Iterator[Any], out: IO[str], terminal: bool, timer: StepTimer | None) -> str:
    """Display the daemon's messages; the image ID its ``aux`` message gave."""
    found: list[str] = []

    def aux(message: Mapping[str, Any]) -> None:
        result = message.get("aux")
        if isinstance(result, Mapping) and isinstance(result.get("ID"), str):
            found.append(result["ID"])
        else:
            click.echo(f"Failed to parse aux message: {result!r}", err=True, nl=False)

    stream: Iterable[Any] = timer.watch(messages) if timer is not None else messages
    display_json_messages(stream, out, terminal=terminal, aux=aux)
    return found[-1] if found else ""


def _run_build(client: APIClient, context_arg: str, options: dict[str, Any]) -> None:
    dockerfile: str = options["dockerfile"]
    quiet: bool = options["quiet"]
    if dockerfile == "-" and context_arg == "-":
        raise InvalidArgument(_STDIN_CONFLICT)
    terminal = is_terminal(sys.stdout)
    progress_buffer, output_buffer = StringIO(), StringIO()
    progress: IO[str] = progress_buffer if quiet else sys.stdout
    output: IO[str] = output_buffer if quiet else sys.stdout
    iidfile: str = options["iidfile"]
    if iidfile:
        _remove_iidfile(iidfile)
    context = _prepare(context_arg, dockerfile)
    try:
        body: Iterable[bytes] = context.body
        if options["compress"]:
            body = _gzip(body)
        body = _progress(body, progress, terminal)
        messages = client.upload_json_stream(
            "/build",
            body,
            build_query(options, context.dockerfile),
            content_type="application/x-tar",
            headers={"X-Registry-Config": registry_config()},
        )
        timer = None if quiet else StepTimer(sys.stderr)
        try:
            image_id = _show(messages, output, terminal, timer)
        except StreamError as e:
            if quiet:
                click.echo(
                    progress_buffer.getvalue() + output_buffer.getvalue(), err=True, nl=False
                )
            failure = PydockerError(str(e))
            failure.exit_status = e.code or 1
            raise failure from None
        except DaemonError:
            if quiet:
                click.echo(progress_buffer.getvalue(), err=True, nl=False)
            raise
    finally:
        context.close()
    if quiet:
        image_id = output_buffer.getvalue()  # docker's ID is the text, newline and all
        click.echo(image_id, nl=False)
    if iidfile:
        if not image_id:
            raise PydockerError(f"Server did not provide an image ID. Cannot write {iidfile}")
        try:
            Path(iidfile).write_text(image_id, encoding="utf-8")
        except OSError as e:
            raise PydockerError(f"open {iidfile}: {e.strerror}") from None


@click.command("build", cls=DockerCommand)
@click.argument("context", metavar="PATH | URL | -")
@_with_build_options
@pass_client
def build(client: APIClient, /, context: str, **options: Any) -> None:
    """Build an image from a Dockerfile (docker's legacy builder protocol)."""
    _run_build(client, context, options)


# -- builder prune ---------------------------------------------------------------------


@click.command("prune", cls=DockerCommand)
@click.option(
    "-a",
    "--all",
    "prune_all",
    is_flag=True,
    help="Remove all unused build cache, not just dangling ones.",
)
@click.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation.")
@prune_filter_option
@click.option(
    "--keep-storage",
    type=Checked("bytes", parse_ram),
    default=0,
    help="Amount of disk space to keep for cache.",
)
@pass_client
def prune(
    client: APIClient, prune_all: bool, force: bool, filters: Filters, keep_storage: int
) -> None:
    """Remove build cache."""
    if not force and not confirm(_ALL_WARNING if prune_all else _DANGLING_WARNING):
        return  # docker: "builder prune has been cancelled", status 0
    params = {"filters": filters_param(filters).get("filters", "")}  # docker sends it empty
    if prune_all:
        params["all"] = "1"
    if keep_storage:
        params["keep-storage"] = str(keep_storage)
    report: dict[str, Any] = client.post("/build/prune", params=dict(sorted(params.items()))) or {}
    deleted = [str(item) for item in report.get("CachesDeleted") or []]
    if deleted:
        click.echo("Deleted build cache objects:\n" + "".join(f"{d}\n" for d in deleted))
    click.echo(f"Total reclaimed space: {decimal_size(number(report.get('SpaceReclaimed')), 4)}")


@click.group("builder")
def builder() -> None:
    """Manage builds: build images, prune the build cache."""


builder.add_command(build, "build")
builder.add_command(prune, "prune")

COMMANDS = [build, builder]
"""Registered on the root; ``build`` also in the ``image`` group."""
