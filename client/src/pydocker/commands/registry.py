"""The registry commands, as docker 28 runs them: ``pull``, ``push``, ``login``, ``logout``
(and ``image pull``/``image push``).

Credentials come from, and go to, docker's own config file (:mod:`pydocker.config`); the
daemon only ever sees them in ``X-Registry-Auth`` (pull, push) and ``POST /auth`` (login).
Errors a stream reports are printed as they are (``manifest unknown``), errors of the
request itself as ``Error response from daemon: ...``; both exit 1.
"""

from __future__ import annotations

import itertools
import os
import sys
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import click

from pydocker.api import APIClient
from pydocker.commands.image import familiar_name, normalize_reference
from pydocker.config import HUB_KEY, AuthConfig, ConfigFile, registry_auth, server_key
from pydocker.errors import DaemonError, InvalidArgument, PydockerError
from pydocker.jsonmessage import display_json_messages
from pydocker.options import DockerCommand, parse_go_bool, pass_client
from pydocker.terminal import is_terminal, no_echo

__all__ = ["COMMANDS", "login", "logout", "pull", "push"]

_REGISTER_SUGGEST = (
    "Log in with your Docker ID or email address to push and pull images from Docker Hub. "
    "If you don't have a Docker ID, head over to https://hub.docker.com/ to create one."
)
_PAT_SUGGEST = (
    "You can log in with your password or a Personal Access Token (PAT). Using a "
    "limited-scope PAT grants better security and is required for organizations using "
    "SSO. Learn more at https://docs.docker.com/go/access-tokens/"
)
_INSECURE_FLAG_WARNING = "WARNING! Using --password via the CLI is insecure. Use --password-stdin."
_NOT_A_TTY = "Error: Cannot perform an interactive login from a non TTY device"
_ALL_TAGS_WITH_TAG = "tag can't be used with --all-tags/-a"

F = TypeVar("F", bound=Callable[..., Any])


def _reference_text(name: str, tag: str | None, digest: str | None) -> str:
    """``reference.String()``: ``docker.io/library/busybox:latest``."""
    return name + (f":{tag}" if tag else "") + (f"@{digest}" if digest else "")


def _target(text: str, all_tags: bool, quiet: bool) -> tuple[str, str | None, str | None]:
    """The reference to pull or push, with docker's default tag: ``latest`` (said on
    stdout unless ``quiet``) when neither a tag nor a digest is given, none with ``-a``.

    :raises PydockerError: an invalid reference, or a tag with ``-a``.
    """
    name, tag, digest = normalize_reference(text)
    name_only = tag is None and digest is None
    if all_tags and not name_only:
        raise InvalidArgument(_ALL_TAGS_WITH_TAG)
    if not all_tags and name_only:
        tag = "latest"
        if not quiet:
            click.echo("Using default tag: latest")
    return name, tag, digest


def _stdout_or_nothing(quiet: bool) -> Any:
    return None if quiet else sys.stdout


# -- pull / push ------------------------------------------------------------------------


def _transfer_options(all_tags: str, trust: str) -> Callable[[F], F]:
    """``-a/--all-tags``, ``-q/--quiet`` and ``--disable-content-trust`` (accepted, always
    on: content trust is not supported), as pull and push have them."""

    def decorate(command: F) -> F:
        for option in reversed(
            (
                click.option("-a", "--all-tags", is_flag=True, help=all_tags),
                click.option("-q", "--quiet", is_flag=True, help="Suppress verbose output."),
                click.option(
                    "--disable-content-trust",
                    is_flag=True,
                    default=True,
                    help=f"Skip image {trust} (always: content trust is not supported).",
                ),
            )
        ):
            command = option(command)
        return command

    return decorate


@click.command("pull", cls=DockerCommand)
@click.argument("name", metavar="NAME[:TAG|@DIGEST]")
@_transfer_options("Download all tagged images in the repository.", "verification")
@click.option(
    "--platform",
    default=lambda: os.environ.get("DOCKER_DEFAULT_PLATFORM", ""),
    metavar="PLATFORM",
    help="Set platform if server is multi-platform capable [env: DOCKER_DEFAULT_PLATFORM].",
)
@pass_client
def pull(
    client: APIClient,
    *,
    name: str,
    all_tags: bool,
    platform: str,
    quiet: bool,
    disable_content_trust: bool,
) -> None:
    """Download an image from a registry."""
    del disable_content_trust
    repository, tag, digest = _target(name, all_tags, quiet)
    params = {"fromImage": repository}
    if platform:
        params["platform"] = platform.lower()
    if not all_tags:
        params["tag"] = digest or tag or "latest"
    messages = client.stream_json(
        "/images/create",
        params,
        method="POST",
        headers={"X-Registry-Auth": registry_auth(repository)},
    )
    display_json_messages(messages, _stdout_or_nothing(quiet))
    click.echo(_reference_text(repository, tag, digest))


def _first_then_rest(messages: Iterator[Any]) -> Iterator[Any]:
    """Wait for the first message, so that an error status raises here, not later."""
    try:
        first = next(messages)
    except StopIteration:
        return iter(())
    return itertools.chain([first], messages)


def _push_messages(
    client: APIClient, path: str, params: dict[str, str], repository: str
) -> Iterator[Any]:
    """``POST /images/{name}/push``; after a 401, on a terminal, docker's ``Login prior to
    push:`` prompt and one more try with what was typed (which is not stored)."""
    config = ConfigFile.load()
    headers = {"X-Registry-Auth": registry_auth(repository, config)}
    try:
        return _first_then_rest(client.stream_json(path, params, method="POST", headers=headers))
    except DaemonError as e:
        if e.status != 401 or not is_terminal(sys.stdin):
            raise
    key = server_key(repository.split("/", 1)[0])
    click.echo("\nLogin prior to push:")
    try:
        stored = config.credentials(key)
    except PydockerError as e:
        click.echo(f"Unable to retrieve stored credentials for {key}, error: {e}.", err=True)
        stored = AuthConfig()
    headers["X-Registry-Auth"] = _prompt_credentials("", "", stored.username, key).encode()
    return client.stream_json(path, params, method="POST", headers=headers)


@click.command("push", cls=DockerCommand)
@click.argument("name", metavar="NAME[:TAG]")
@_transfer_options("Push all tags of an image to the repository.", "signing")
@pass_client
def push(
    client: APIClient, name: str, all_tags: bool, quiet: bool, disable_content_trust: bool
) -> None:
    """Upload an image to a registry."""
    del disable_content_trust
    repository, tag, digest = _target(name, all_tags, quiet)
    if digest is not None:
        raise InvalidArgument("cannot push a digest reference")
    params = {} if all_tags or tag is None else {"tag": tag}
    path = f"/images/{familiar_name(repository)}/push"
    messages = _push_messages(client, path, params, repository)
    display_json_messages(messages, _stdout_or_nothing(quiet))
    if quiet:
        click.echo(_reference_text(repository, tag, None))


# -- login / logout ---------------------------------------------------------------------


def _read_line(prompt: str) -> str:
    """docker's ``prompt.ReadInput``: ``prompt`` on stdout, a line of stdin, trimmed."""
    click.echo(prompt, nl=False)
    sys.stdout.flush()
    return sys.stdin.readline().strip()


def _hints_enabled() -> bool:
    value = os.environ.get("DOCKER_CLI_HINTS", "")
    try:
        return parse_go_bool(value, "DOCKER_CLI_HINTS") if value else True
    except click.UsageError:
        return True


def _prompt_credentials(
    username: str, password: str, default_username: str, key: str
) -> AuthConfig:
    """docker's ``PromptUserForCredentials``: ask for what is missing, the user name with
    the stored one as its default, the password without echo.

    :raises PydockerError: an empty answer.
    """
    username = username.strip()
    if not username:
        if key == HUB_KEY:
            click.echo(_REGISTER_SUGGEST)
            if _hints_enabled():
                click.echo(_PAT_SUGGEST)
                click.echo()
        default = default_username.strip()
        username = _read_line(f"Username ({default}): " if default else "Username: ") or default
        if not username:
            raise PydockerError("error: username is required")
    if not password.strip():
        with no_echo(sys.stdin):
            password = _read_line("Password: ")
        click.echo()
        if not password:
            raise PydockerError("error: password is required")
    return AuthConfig(username, password, server_address=key)


def _authenticate(client: APIClient, config: ConfigFile, auth: AuthConfig) -> str:
    """``POST /auth``; store what worked (the identity token instead of the password when
    the daemon returns one). The daemon's status, ``Login Succeeded``."""
    reply = client.post("/auth", json=auth.to_json()) or {}
    token = str(reply.get("IdentityToken") or "")
    if token:
        auth = AuthConfig(auth.username, "", auth.server_address, identity_token=token)
    try:
        config.store(auth)
    except PydockerError as e:
        raise PydockerError(f"Error saving credentials: {e}") from None
    return str(reply.get("Status") or "")


def _stored_login(client: APIClient, config: ConfigFile, key: str) -> str | None:
    """docker's first try: the stored user name and password, if there are both. The
    status, or ``None`` when they did not work (said on stderr)."""
    try:
        stored = config.credentials(key)
    except PydockerError:
        return None
    if not (stored.username and stored.password):
        return None
    click.echo(f"Authenticating with existing credentials... [Username: {stored.username}]")
    click.echo(
        "To login with a different account, run 'pydocker logout' followed by 'pydocker login'\n"
    )
    try:
        return _authenticate(client, config, AuthConfig(stored.username, stored.password, key))
    except DaemonError as e:
        if e.status == 401:
            click.echo("Stored credentials invalid or expired", err=True)
        else:
            click.echo(f"Login did not succeed, error: {e}", err=True)
    return None


@click.command("login", cls=DockerCommand)
@click.argument("server", required=False, metavar="[SERVER]")
@click.option("-u", "--username", default="", help="Username.")
@click.option("-p", "--password", default="", help="Password or personal access token.")
@click.option("--password-stdin", is_flag=True, help="Take the password from stdin.")
@pass_client
def login(
    client: APIClient, server: str | None, username: str, password: str, password_stdin: bool
) -> None:
    """Authenticate to a registry (Docker Hub if no server is given) and keep the
    credentials in the docker config file."""
    if password:
        click.echo(_INSECURE_FLAG_WARNING, err=True)
        if password_stdin:
            raise InvalidArgument("--password and --password-stdin are mutually exclusive")
    if password_stdin:
        if not username:
            raise InvalidArgument("Must provide --username with --password-stdin")
        password = sys.stdin.read().removesuffix("\n").removesuffix("\r")
    key = server_key(server)
    config = ConfigFile.load()
    status = None
    if not username and not password:
        status = _stored_login(client, config, key)
    if status is None:
        if (not username or not password) and not is_terminal(sys.stdin):
            raise PydockerError(_NOT_A_TTY)
        default = ""
        if not username:
            try:
                default = config.credentials(key).username
            except PydockerError:
                default = ""
        auth = _prompt_credentials(username, password, default, key)
        status = _authenticate(client, config, auth)
    if status:
        click.echo(status)


@click.command("logout", cls=DockerCommand)
@click.argument("server", required=False, metavar="[SERVER]")
def logout(server: str | None) -> None:
    """Log out from a registry (Docker Hub if no server is given): forget its
    credentials, under every key that names it."""
    key = server_key(server)
    config = ConfigFile.load()
    candidates = [key]
    if key != HUB_KEY:
        candidates += [f"http://{key}", f"https://{key}"]
    candidates += [k for k in config.stored_keys(key) if k not in candidates]
    click.echo(f"Removing login credentials for {key}")
    errors: dict[str, PydockerError] = {}
    for candidate in candidates:
        try:
            config.erase(candidate)
        except PydockerError as e:
            errors[candidate] = e
    if len(errors) == len(candidates):
        click.echo("WARNING: could not erase credentials:", err=True)
        for candidate, error in errors.items():
            click.echo(f"{candidate}: {error}", err=True)


COMMANDS = [pull, push, login, logout]
"""Registered on the root; ``pull`` and ``push`` also in the ``image`` group."""
