"""The image commands, printed as docker 28 prints them: ``images``, ``inspect``, ``tag``,
``rmi``, ``history``, ``save``, ``load``, ``import``, the ``image`` group (``ls``,
``inspect``, ``tag``, ``rm``, ``history``, ``save``, ``load``, ``import``, ``prune``) and
``system df``."""

from __future__ import annotations

import os
import re
import stat
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import click

from pydocker.api import APIClient
from pydocker.commands import system as system_commands
from pydocker.commands.common import (
    Filters,
    add_commands,
    inspect_command,
    inspect_each,
    number,
    os_error,
    print_lines,
    print_prune_report,
    prune_filter_option,
    prune_report,
    render,
)
from pydocker.errors import DaemonError, InvalidArgument, PydockerError
from pydocker.formatting import (
    Template,
    columns,
    decimal_size,
    ellipsis,
    go_time,
    short_id,
    time_ago,
)
from pydocker.jsonmessage import display_json_messages
from pydocker.options import (
    GoCommand,
    filter_option,
    filters_param,
    format_option,
    pass_client,
)

__all__ = [
    "COMMANDS",
    "ReferenceError",
    "familiar_name",
    "image_rows",
    "is_image_id",
    "normalize_reference",
    "split_target",
]

_CHUNK = 64 * 1024
_HISTORY_EPOCH = 946684800  # 2000-01-01T00:00:00Z: older history entries show no age
_CREATED_BY_WIDTH = 45


# -- references (distribution/reference, as far as the CLI needs it) ---------------------

_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|[-]+)"
_PATH_COMPONENT = rf"{_ALNUM}(?:{_SEPARATOR}{_ALNUM})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
_REFERENCE = re.compile(
    rf"(?P<name>(?:{_DOMAIN}/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*)"
    rf"(?::(?P<tag>{_TAG}))?(?:@(?P<digest>{_DIGEST}))?"
)
_HEX_ID = re.compile(r"(?:sha256:)?[a-f0-9]{64}")
_DEFAULT_DOMAIN = "docker.io"
_NAME_TOTAL_LENGTH_MAX = 255


class ReferenceError(InvalidArgument):
    """An image reference docker's parser refuses (``invalid reference format``)."""


def normalize_reference(text: str) -> tuple[str, str | None, str | None]:
    """``ParseNormalizedNamed``: ``busybox:1`` → ``("docker.io/library/busybox", "1",
    None)``; the name is fully qualified, tag and digest are ``None`` when absent.

    :raises ReferenceError: not a valid reference, with docker's message.
    """
    if _HEX_ID.fullmatch(text):
        raise ReferenceError(
            f"invalid repository name ({text}), cannot specify 64-byte hexadecimal strings"
        )
    slash = text.find("/")
    first = text[:slash]
    if slash == -1 or (
        not any(c in first for c in ".:") and first != "localhost" and first.lower() == first
    ):
        domain, remainder = _DEFAULT_DOMAIN, text
    else:
        domain, remainder = first, text[slash + 1 :]
    if domain == "index.docker.io":
        domain = _DEFAULT_DOMAIN
    if domain == _DEFAULT_DOMAIN and "/" not in remainder:
        remainder = f"library/{remainder}"
    remote = remainder.split(":", 1)[0]
    if remote.lower() != remote:
        raise ReferenceError(
            f"invalid reference format: repository name ({remote}) must be lowercase"
        )
    match = _REFERENCE.fullmatch(f"{domain}/{remainder}")
    if match is None:
        raise ReferenceError("invalid reference format")
    if len(match["name"]) > _NAME_TOTAL_LENGTH_MAX:
        raise ReferenceError(
            f"repository name must not be more than {_NAME_TOTAL_LENGTH_MAX} characters"
        )
    return match["name"], match["tag"], match["digest"]


def familiar_name(name: str) -> str:
    """``docker.io/library/busybox`` → ``busybox``; ``docker.io/me/x`` → ``me/x``."""
    if not name.startswith(f"{_DEFAULT_DOMAIN}/"):
        return name
    path = name[len(_DEFAULT_DOMAIN) + 1 :]
    short = path.removeprefix("library/")
    return short if short and "/" not in short else path


def split_target(target: str) -> tuple[str, str]:
    """What ``docker tag`` sends for TARGET: the normalized repository and its tag,
    ``latest`` when none is given (``TagNameOnly``).

    :raises ReferenceError: an invalid reference, or one with a digest.
    """
    try:
        name, tag, digest = normalize_reference(target)
    except ReferenceError as e:
        raise ReferenceError(
            f'Error parsing reference: "{target}" is not a valid repository/tag: {e}'
        ) from None
    if digest is not None:
        raise ReferenceError("refusing to create a tag with a digest reference")
    return name, tag or "latest"


def is_image_id(text: str) -> bool:
    """A full image ID (``sha256:<64 hex>`` or the 64 hex digits), which ``ParseAnyReference``
    takes for a digest rather than a name: it cannot be pulled."""
    return _HEX_ID.fullmatch(text) is not None


def _check_source(source: str) -> None:
    """``ParseAnyReference``: an image ID, or a reference."""
    if is_image_id(source):
        return
    try:
        normalize_reference(source)
    except ReferenceError as e:
        raise ReferenceError(
            f'Error parsing reference: "{source}" is not a valid repository/tag: {e}'
        ) from None


# -- shared output helpers --------------------------------------------------------------


def _rfc3339(seconds: float) -> str:
    """``time.Unix(s, 0).Format(time.RFC3339)`` in local time."""
    moment = datetime.fromtimestamp(int(seconds)).astimezone()
    text = moment.isoformat()
    return text[:-6] + "Z" if moment.utcoffset() is not None and text.endswith("+00:00") else text


# -- images -----------------------------------------------------------------------------

_IMAGE_TITLES = {
    "ID": "IMAGE ID",
    "Repository": "REPOSITORY",
    "Tag": "TAG",
    "Digest": "DIGEST",
    "CreatedSince": "CREATED",
    "CreatedAt": "CREATED AT",
    "Size": "SIZE",
    "Containers": "CONTAINERS",
    "VirtualSize": "SIZE",
    "SharedSize": "SHARED SIZE",
    "UniqueSize": "UNIQUE SIZE",
}
_IMAGES_TABLE = Template.parse(
    "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
)
_IMAGES_DIGEST_TABLE = Template.parse(
    "table {{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
)
_DIGEST_COLUMN = Template.parse("\t{{.Digest}}")
_QUIET = Template.parse("{{.ID}}")


def _is_dangling(image: dict[str, Any]) -> bool:
    tags = image.get("RepoTags") or []
    digests = image.get("RepoDigests") or []
    if not tags and not digests:
        return True
    return tags == ["<none>:<none>"] and digests == ["<none>@<none>"]


def _image_fields(
    image: dict[str, Any], repo: str, tag: str, digest: str, *, trunc: bool, now: float
) -> dict[str, str]:
    """What a template sees for one row, keyed as docker's image context (sorted, as
    ``{{json .}}`` prints them)."""
    image_id = str(image.get("Id") or "")
    created = number(image.get("Created"))
    size = number(image.get("Size"))
    shared = number(image.get("SharedSize"), -1)
    containers = number(image.get("Containers"), -1)
    return {
        "Containers": "N/A" if containers == -1 else str(containers),
        "CreatedAt": go_time(created),
        "CreatedSince": time_ago(created, now),
        "Digest": digest,
        "ID": short_id(image_id) if trunc else image_id,
        "Repository": repo,
        "SharedSize": "N/A" if shared == -1 else decimal_size(shared, 4),
        "Size": decimal_size(size),
        "Tag": tag,
        "UniqueSize": "N/A" if size == -1 or shared == -1 else decimal_size(size - shared, 4),
        "VirtualSize": decimal_size(size, 4),
    }


def image_rows(
    images: list[dict[str, Any]],
    *,
    digests: bool = False,
    need_digest: bool = False,
    trunc: bool = True,
    now: float | None = None,
) -> list[dict[str, str]]:
    """One row per repository and tag, as docker's image formatter lays them out (rows of
    one image keep the daemon's order, where docker's follow Go's map order)."""
    moment = time.time() if now is None else now
    rows: list[dict[str, str]] = []
    for image in images:
        if _is_dangling(image):
            rows.append(_image_fields(image, "<none>", "<none>", "<none>", trunc=trunc, now=moment))
            continue
        repo_tags: dict[str, list[str]] = {}
        repo_digests: dict[str, list[str]] = {}
        for text in image.get("RepoTags") or []:
            try:
                name, tag, _ = normalize_reference(str(text))
            except ReferenceError:
                continue
            if tag is not None:
                repo_tags.setdefault(familiar_name(name), []).append(tag)
        for text in image.get("RepoDigests") or []:
            try:
                name, _, digest = normalize_reference(str(text))
            except ReferenceError:
                continue
            if digest is not None:
                repo_digests.setdefault(familiar_name(name), []).append(digest)
        for repo, tags in repo_tags.items():
            repo_digest_list = repo_digests.pop(repo, [])
            if not (digests or need_digest):
                repo_digest_list = []
            for tag in tags:
                for digest in repo_digest_list or ["<none>"]:
                    rows.append(_image_fields(image, repo, tag, digest, trunc=trunc, now=moment))
        for repo, digest_list in repo_digests.items():
            for digest in digest_list if digests else [""]:
                rows.append(_image_fields(image, repo, "<none>", digest, trunc=trunc, now=moment))
    return rows


@click.command()
@click.argument("repository", required=False)
@click.option("-a", "--all", "show_all", is_flag=True, help="Show all images.")
@click.option("-q", "--quiet", is_flag=True, help="Only show image IDs.")
@click.option("--digests", is_flag=True, help="Show digests.")
@click.option("--no-trunc", is_flag=True, help="Don't truncate output.")
@filter_option("Filter output (dangling=true, label=k=v, reference=name, before=, since=).")
@format_option(error_status=1)
@pass_client
def images(
    client: APIClient,
    *,
    repository: str | None,
    show_all: bool,
    quiet: bool,
    digests: bool,
    no_trunc: bool,
    filters: Filters,
    template: Template | None,
) -> None:
    """List images: REPOSITORY[:TAG] keeps only the matching ones."""
    if repository:
        filters.setdefault("reference", {})[repository] = True
    params: dict[str, str] = {"all": "1"} if show_all else {}
    params.update(filters_param(filters))
    items: list[dict[str, Any]] = client.get("/images/json", params=params)
    chosen = template
    if chosen is None or chosen.is_default_table:
        chosen = _QUIET if quiet else _IMAGES_DIGEST_TABLE if digests else _IMAGES_TABLE
    elif chosen.is_table and digests and not _uses(chosen, "Digest"):
        chosen = Template((*chosen.parts, *_DIGEST_COLUMN.parts), is_table=True)
    rows = image_rows(
        items, digests=digests, need_digest=_uses(chosen, "Digest"), trunc=not no_trunc
    )
    render(chosen, chosen, rows, _IMAGE_TITLES)


def _uses(template: Template, field: str) -> bool:
    return any(not isinstance(p, str) and p.path == f".{field}" for p in template.parts)


# -- inspect ----------------------------------------------------------------------------


image_inspect = inspect_command("image", "/images/{}/json")

_OBJECT_PATHS = {
    "container": "/containers/{}/json",
    "image": "/images/{}/json",
    "network": "/networks/{}",
    "volume": "/volumes/{}",
    "plugin": "/plugins/{}/json",
    "node": "/nodes/{}",
    "service": "/services/{}",
    "task": "/tasks/{}",
    "secret": "/secrets/{}",
    "config": "/configs/{}",
}
_AUTODETECT = ("container", "image", "network", "volume", "plugin")


def _skippable(error: DaemonError) -> bool:
    return error.status in (404, 501) or "invalid reference format" in error.message


@click.command("inspect")
@click.argument("names", nargs=-1, required=True, metavar="NAME|ID...")
@format_option(short=True, error_status=64)
@click.option(
    "-s", "--size", is_flag=True, help="Display total file sizes if the type is container."
)
@click.option("--type", "object_type", metavar="TYPE", help="Only inspect objects of this type.")
@pass_client
def inspect(
    client: APIClient,
    names: tuple[str, ...],
    template: Template | None,
    size: bool,
    object_type: str | None,
) -> None:
    """Return low-level information on pydockerd objects: containers, images, networks,
    volumes and plugins are tried in that order."""
    if object_type and object_type not in _OBJECT_PATHS:
        raise InvalidArgument(f'"{object_type}" is not a valid value for --type')
    kinds = (object_type,) if object_type else _AUTODETECT

    def lookup(name: str) -> tuple[Any, str]:
        for kind in kinds:
            params = {"size": "1"} if size and kind == "container" else None
            try:
                return client.get_raw(_OBJECT_PATHS[kind].format(name), params)
            except DaemonError as e:
                if object_type or not _skippable(e):
                    raise
        raise InvalidArgument(f"Error: No such object: {name}")

    inspect_each(names, template, lookup)


# -- tag --------------------------------------------------------------------------------


@click.command("tag")
@click.argument("source", metavar="SOURCE_IMAGE[:TAG]")
@click.argument("target", metavar="TARGET_IMAGE[:TAG]")
@pass_client
def tag(client: APIClient, source: str, target: str) -> None:
    """Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE."""
    _check_source(source)
    repo, tag_name = split_target(target)
    client.post(f"/images/{source}/tag", params={"repo": repo, "tag": tag_name})


# -- rmi --------------------------------------------------------------------------------


@click.command("rmi")
@click.argument("names", nargs=-1, required=True, metavar="IMAGE...")
@click.option("-f", "--force", is_flag=True, help="Force removal of the image.")
@click.option("--no-prune", is_flag=True, help="Do not delete untagged parents.")
@pass_client
def rmi(client: APIClient, names: tuple[str, ...], force: bool, no_prune: bool) -> None:
    """Remove one or more images; the others are still removed when one fails."""
    params = {}
    if force:
        params["force"] = "1"
    if no_prune:
        params["noprune"] = "1"
    failures: list[DaemonError] = []
    for name in names:
        try:
            items = _decode_list(client.request("DELETE", f"/images/{name}", params=params))
        except DaemonError as e:
            failures.append(e)
            continue
        for item in items:
            if item.get("Deleted"):
                click.echo(f"Deleted: {item['Deleted']}")
            else:
                click.echo(f"Untagged: {item.get('Untagged', '')}")
    if not failures:
        return
    message = "\n".join(str(e) for e in failures)
    if force and all(e.status == 404 for e in failures):
        click.echo(message, err=True)  # docker reports them, and succeeds
        return
    raise PydockerError(message)


def _decode_list(response: Any) -> list[dict[str, Any]]:
    try:
        body = response.json() if response.content else []
    except ValueError:
        return []
    return [item for item in body if isinstance(item, dict)] if isinstance(body, list) else []


# -- history ----------------------------------------------------------------------------

_HISTORY_TITLES = {
    "ID": "IMAGE",
    "CreatedSince": "CREATED",
    "CreatedAt": "CREATED AT",
    "CreatedBy": "CREATED BY",
    "Size": "SIZE",
    "Comment": "COMMENT",
}
_HISTORY_TABLE = Template.parse(
    "table {{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}"
)
_HISTORY_RAW_TABLE = Template.parse(
    "table {{.ID}}\t{{.CreatedAt}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}"
)


def history_rows(
    entries: list[dict[str, Any]], *, human: bool, trunc: bool, now: float | None = None
) -> list[dict[str, str]]:
    """What a template sees for each layer, as docker's history context shows it."""
    moment = time.time() if now is None else now
    rows = []
    for entry in entries:
        entry_id = str(entry.get("Id") or "")
        created = number(entry.get("Created"))
        created_at = _rfc3339(created)
        if not human:
            since = created_at
        elif created <= _HISTORY_EPOCH:
            since = ""
        else:
            since = time_ago(created, moment)
        created_by = str(entry.get("CreatedBy") or "").replace("\t", " ")
        size = number(entry.get("Size"))
        rows.append(
            {
                "Comment": str(entry.get("Comment") or ""),
                "CreatedAt": created_at,
                "CreatedBy": ellipsis(created_by, _CREATED_BY_WIDTH) if trunc else created_by,
                "CreatedSince": since,
                "ID": short_id(entry_id) if trunc else entry_id,
                "Size": decimal_size(size) if human else str(size),
            }
        )
    return rows


@click.command("history", cls=GoCommand)
@click.argument("name", metavar="IMAGE")
@click.option(
    "-H",
    "--human/--no-human",
    default=True,
    help="Print sizes and dates in human readable format (default; -H=false for raw).",
)
@click.option("-q", "--quiet", is_flag=True, help="Only show image IDs.")
@click.option("--no-trunc", is_flag=True, help="Don't truncate output.")
@format_option(error_status=1)
@pass_client
def history(
    client: APIClient,
    *,
    name: str,
    human: bool,
    quiet: bool,
    no_trunc: bool,
    template: Template | None,
) -> None:
    """Show the history of an image: one line per layer, newest first."""
    entries: list[dict[str, Any]] = client.get(f"/images/{name}/history")
    default = _QUIET if quiet else _HISTORY_TABLE if human else _HISTORY_RAW_TABLE
    rows = history_rows(entries, human=human, trunc=not no_trunc)
    render(template, default, rows, _HISTORY_TITLES)


# -- save -------------------------------------------------------------------------------


def _open_output(path: str) -> tuple[IO[bytes], Path]:
    """A temporary file beside ``path`` (docker's atomic writer), after the same checks."""
    target = Path(path)
    directory = target.parent
    if str(directory) not in ("", ".", ".."):
        try:
            mode = directory.stat().st_mode
        except OSError as e:
            reason = os_error("stat", str(directory), e)
            raise InvalidArgument(f"failed to save image: invalid output path: {reason}") from None
        if not stat.S_ISDIR(mode):
            raise InvalidArgument(
                f"failed to save image: invalid output path: stat {directory}: not a directory"
            )
    if target.is_symlink() or (target.exists() and not target.is_file()):
        kind = "symlink" if target.is_symlink() else "directory" if target.is_dir() else "special"
        raise InvalidArgument(f"failed to save image: cannot write to a {kind} file")
    handle = tempfile.NamedTemporaryFile(  # noqa: SIM115 - renamed or removed by the caller
        dir=directory.resolve(), prefix=f".tmp-{target.name}", delete=False
    )
    return handle, Path(handle.name)


@click.command("save")
@click.argument("names", nargs=-1, required=True, metavar="IMAGE...")
@click.option("-o", "--output", metavar="FILE", help="Write to a file, instead of STDOUT.")
@pass_client
def save(client: APIClient, names: tuple[str, ...], output: str | None) -> None:
    """Save one or more images to a tar archive (streamed to STDOUT by default)."""
    params = [("names", name) for name in names]
    if not output:
        if sys.stdout.isatty():
            raise InvalidArgument(
                "cowardly refusing to save to a terminal. Use the -o flag or redirect"
            )
        stream = sys.stdout.buffer
        for chunk in client.stream_bytes("/images/get", params):
            stream.write(chunk)
        stream.flush()
        return
    handle, temporary = _open_output(output)
    try:
        with handle:
            for chunk in client.stream_bytes("/images/get", params):
                handle.write(chunk)
            handle.flush()
            os.fsync(handle.fileno())
        temporary.chmod(0o600)
        temporary.replace(output)
    finally:
        temporary.unlink(missing_ok=True)


# -- load / import ----------------------------------------------------------------------


def _chunks(stream: IO[bytes]) -> Iterator[bytes]:
    while chunk := stream.read(_CHUNK):
        yield chunk


def _file_chunks(path: str) -> Iterator[bytes]:
    """The file, read as it is sent; opened now so that a missing file fails first."""
    try:
        handle = Path(path).open("rb")  # noqa: SIM115 - closed by the generator
    except OSError as e:
        raise InvalidArgument(os_error("open", path, e)) from None

    def read() -> Iterator[bytes]:
        with handle:
            yield from _chunks(handle)

    return read()


@click.command("load")
@click.option("-i", "--input", "input_path", metavar="FILE", help="Read from tar archive file.")
@click.option("-q", "--quiet", is_flag=True, help="Suppress the load output.")
@pass_client
def load(client: APIClient, input_path: str | None, quiet: bool) -> None:
    """Load an image from a tar archive or STDIN."""
    if input_path:
        body = _file_chunks(input_path)
    else:
        if sys.stdin.isatty():
            raise InvalidArgument("requested load from stdin, but stdin is empty")
        body = _chunks(sys.stdin.buffer)
    params = {"quiet": "1"} if quiet or not sys.stdout.isatty() else {}
    messages = client.upload_json_stream(
        "/images/load", body, list(params.items()), content_type="application/x-tar"
    )
    display_json_messages(messages, sys.stdout)


@click.command("import")
@click.argument("source", metavar="file|URL|-")
@click.argument("reference", required=False, metavar="[REPOSITORY[:TAG]]")
@click.option(
    "-c", "--change", "changes", multiple=True, help="Apply Dockerfile instruction to the image."
)
@click.option("-m", "--message", default="", help="Set commit message for imported image.")
@click.option("--platform", default="", help="Set platform (ignored: one platform only).")
@pass_client
def import_(
    client: APIClient,
    *,
    source: str,
    reference: str | None,
    changes: tuple[str, ...],
    message: str,
    platform: str,
) -> None:
    """Import the contents from a tarball to create a filesystem image."""
    del platform
    if reference:
        normalize_reference(reference)
    body: Iterable[bytes] | None
    if source == "-":
        body, from_src = _chunks(sys.stdin.buffer), "-"
    elif source.startswith(("http://", "https://")):
        body, from_src = None, source
    else:
        body, from_src = _file_chunks(source), "-"
    params = [("changes", change) for change in changes]
    params.append(("fromSrc", from_src))
    if message:
        params.append(("message", message))
    if reference:
        params.append(("repo", reference))
    messages = client.upload_json_stream("/images/create", body, params)
    display_json_messages(messages, sys.stdout)


# -- prune ------------------------------------------------------------------------------

_DANGLING_WARNING = (
    "WARNING! This will remove all dangling images.\nAre you sure you want to continue?"
)
_ALL_WARNING = (
    "WARNING! This will remove all images without at least one container associated to "
    "them.\nAre you sure you want to continue?"
)


@click.command("prune")
@click.option("-a", "--all", "prune_all", is_flag=True, help="Remove all unused images.")
@click.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation.")
@prune_filter_option
@pass_client
def prune(client: APIClient, prune_all: bool, force: bool, filters: Filters) -> None:
    """Remove unused images: dangling ones, or with -a all without a container."""
    filters.setdefault("dangling", {})["false" if prune_all else "true"] = True
    warning = _ALL_WARNING if prune_all else _DANGLING_WARNING
    report = prune_report(client, "/images/prune", warning, filters, force=force)
    if report is None:
        return  # docker: cancelled, status 0
    deleted = report.get("ImagesDeleted") or []
    lines = [
        f"untagged: {item['Untagged']}"
        if item.get("Untagged")
        else f"deleted: {item.get('Deleted', '')}"
        for item in deleted
    ]
    print_prune_report("Images", lines, number(report.get("SpaceReclaimed")))


# -- system df --------------------------------------------------------------------------

_DF_TITLES = {
    "Type": "TYPE",
    "TotalCount": "TOTAL",
    "Active": "ACTIVE",
    "Size": "SIZE",
    "Reclaimable": "RECLAIMABLE",
}
_DF_TABLE = Template.parse(
    "table {{.Type}}\t{{.TotalCount}}\t{{.Active}}\t{{.Size}}\t{{.Reclaimable}}"
)
_ACTIVE_STATES = ("running", "paused", "restarting")


def _with_percent(reclaimable: int, total: int) -> str:
    size = decimal_size(reclaimable, 4)
    return f"{size} ({reclaimable * 100 // total}%)" if total > 0 else size


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _df_row(kind: str, total: int, active: int, size: str, reclaimable: str) -> dict[str, str]:
    return {
        "Active": str(active),
        "Reclaimable": reclaimable,
        "Size": size,
        "TotalCount": str(total),
        "Type": kind,
    }


def df_rows(usage: dict[str, Any]) -> list[dict[str, str]]:
    """The four summary rows of ``system df``, computed from ``GET /system/df`` as docker
    28 computes them."""
    images_ = _dicts(usage.get("Images"))
    layers = number(usage.get("LayersSize"))
    used = 0
    for image in images_:
        if number(image.get("Containers")) != 0:
            size, shared = number(image.get("Size"), -1), number(image.get("SharedSize"), -1)
            if size != -1 and shared != -1:
                used += size - shared
    image_active = sum(1 for i in images_ if number(i.get("Containers")) > 0)

    containers = _dicts(usage.get("Containers"))
    container_total = sum(number(c.get("SizeRw")) for c in containers)
    live = [c for c in containers if any(s in str(c.get("State", "")) for s in _ACTIVE_STATES)]
    container_reclaimable = container_total - sum(number(c.get("SizeRw")) for c in live)

    volumes = [v.get("UsageData") or {} for v in _dicts(usage.get("Volumes"))]
    sized = [v for v in volumes if number(v.get("Size"), -1) != -1]
    volume_total = sum(number(v.get("Size")) for v in sized)
    volume_reclaimable = sum(number(v.get("Size")) for v in sized if number(v.get("RefCount")) == 0)
    volume_active = sum(1 for v in volumes if number(v.get("RefCount")) > 0)

    cache = _dicts(usage.get("BuildCache"))
    builder = sum(number(r.get("Size")) for r in cache if not r.get("Shared"))
    in_use = sum(number(r.get("Size")) for r in cache if r.get("InUse") and not r.get("Shared"))
    return [
        _df_row(
            "Images",
            len(images_),
            image_active,
            decimal_size(layers, 4),
            _with_percent(layers - used, layers),
        ),
        _df_row(
            "Containers",
            len(containers),
            len(live),
            decimal_size(container_total, 4),
            _with_percent(container_reclaimable, container_total),
        ),
        _df_row(
            "Local Volumes",
            len(volumes),
            volume_active,
            decimal_size(volume_total, 4),
            _with_percent(volume_reclaimable, volume_total),
        ),
        _df_row(
            "Build Cache",
            len(cache),
            sum(1 for r in cache if r.get("InUse")),
            decimal_size(builder, 4),
            decimal_size(builder - in_use, 4),
        ),
    ]


def _parse_rfc3339(text: Any) -> float | None:
    if not isinstance(text, str) or not text:
        return None
    cleaned = re.sub(r"(\.\d{6})\d+", r"\1", text.replace("Z", "+00:00"))
    try:
        return datetime.fromisoformat(cleaned).timestamp()
    except ValueError:
        return None


def df_verbose_lines(usage: dict[str, Any], now: float | None = None) -> list[str]:
    """``system df -v``: a table for each kind of object, as docker prints them."""
    moment = time.time() if now is None else now
    lines = ["Images space usage:", ""]
    image_table = [
        [
            "REPOSITORY",
            "TAG",
            "IMAGE ID",
            "CREATED",
            "SIZE",
            "SHARED SIZE",
            "UNIQUE SIZE",
            "CONTAINERS",
        ]
    ]
    for image in _dicts(usage.get("Images")):
        repo = tag_name = "<none>"
        tags = image.get("RepoTags") or []
        if tags and not _is_dangling(image):
            try:
                name, found_tag, _ = normalize_reference(str(tags[0]))
            except ReferenceError:
                continue
            if found_tag is not None:
                repo, tag_name = familiar_name(name), found_tag
        row = _image_fields(image, repo, tag_name, "", trunc=True, now=moment)
        image_table.append(
            [
                repo,
                tag_name,
                row["ID"],
                row["CreatedSince"],
                row["Size"],
                row["SharedSize"],
                row["UniqueSize"],
                row["Containers"],
            ]
        )
    lines += columns(image_table)
    lines += ["", "Containers space usage:", ""]
    container_table = [
        ["CONTAINER ID", "IMAGE", "COMMAND", "LOCAL VOLUMES", "SIZE", "CREATED", "STATUS", "NAMES"]
    ]
    for container in _dicts(usage.get("Containers")):
        image_name = str(container.get("Image") or "")
        if image_name.startswith("sha256:"):
            image_name = short_id(image_name)
        image_name = image_name.split("@", 1)[0] or "<no image>"
        mounts = container.get("Mounts") or []
        volumes = sum(1 for m in mounts if isinstance(m, dict) and m.get("Type") == "volume")
        names = [str(n).lstrip("/") for n in container.get("Names") or []]
        names = [n for n in names if "/" not in n][:1] or names[:1]
        container_table.append(
            [
                short_id(str(container.get("Id") or "")),
                image_name,
                f'"{ellipsis(str(container.get("Command") or ""), 20)}"',
                str(volumes),
                decimal_size(number(container.get("SizeRw"))),
                time_ago(number(container.get("Created")), moment),
                str(container.get("Status") or ""),
                ",".join(names),
            ]
        )
    lines += columns(container_table)
    lines += ["", "Local Volumes space usage:", ""]
    volume_table = [["VOLUME NAME", "LINKS", "SIZE"]]
    for volume in _dicts(usage.get("Volumes")):
        data = volume.get("UsageData") or {}
        refs, size = number(data.get("RefCount"), -1), number(data.get("Size"), -1)
        volume_table.append(
            [
                str(volume.get("Name") or ""),
                "N/A" if refs == -1 else str(refs),
                "N/A" if size == -1 else decimal_size(size, 4),
            ]
        )
    lines += columns(volume_table)
    cache = _dicts(usage.get("BuildCache"))
    builder = sum(number(r.get("Size")) for r in cache if not r.get("Shared"))
    lines += ["", f"Build cache usage: {decimal_size(builder, 4)}", ""]
    cache_table = [["CACHE ID", "CACHE TYPE", "SIZE", "CREATED", "LAST USED", "USAGE", "SHARED"]]

    def last_used(record: dict[str, Any]) -> tuple[int, float]:
        stamp = _parse_rfc3339(record.get("LastUsedAt"))
        return (0, 0.0) if stamp is None else (1, stamp)

    for record in sorted(cache, key=last_used):
        record_id = short_id(str(record.get("ID") or ""))
        created = _parse_rfc3339(record.get("CreatedAt"))
        used_at = _parse_rfc3339(record.get("LastUsedAt"))
        cache_table.append(
            [
                record_id + ("*" if record.get("InUse") else ""),
                str(record.get("Type") or ""),
                decimal_size(number(record.get("Size"))),
                "" if created is None else time_ago(created, moment),
                "" if used_at is None else time_ago(used_at, moment),
                str(number(record.get("UsageCount"))),
                "true" if record.get("Shared") else "false",
            ]
        )
    lines += columns(cache_table)
    return lines


@click.command("df")
@click.option("-v", "--verbose", is_flag=True, help="Show detailed information on space usage.")
@format_option(error_status=1)
@pass_client
def df(client: APIClient, verbose: bool, template: Template | None) -> None:
    """Show pydockerd disk usage: images, containers, local volumes and build cache."""
    usage: dict[str, Any] = client.get("/system/df")
    if verbose:
        if template is None or template.is_default_table:
            print_lines(df_verbose_lines(usage))
        else:
            click.echo(template.render(usage))
        return
    render(template, _DF_TABLE, df_rows(usage), _DF_TITLES)


# -- groups -----------------------------------------------------------------------------


@click.group("image")
def image() -> None:
    """Manage images."""


add_commands(
    image,
    [
        (images, ("ls", "list")),
        (image_inspect, ("inspect",)),
        (tag, ("tag",)),
        (rmi, ("rm", "remove", "rmi")),
        (history, ("history",)),
        (save, ("save",)),
        (load, ("load",)),
        (import_, ("import",)),
        (prune, ("prune",)),
    ],
)


@click.group("system")
def system() -> None:
    """Manage pydockerd: disk usage, information, events."""


system.add_command(df, "df")
system.add_command(system_commands.info, "info")
system.add_command(system_commands.events, "events")

COMMANDS = [image, images, inspect, tag, rmi, history, save, load, import_, system]
"""Registered on the root under their command names (``import_`` as ``import``)."""
