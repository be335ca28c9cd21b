"""The docker CLI's config file and the registry credentials kept with it.

The file is docker's own, ``$DOCKER_CONFIG/config.json`` (``~/.docker/config.json`` by
default), so ``docker`` and ``pydocker`` share logins. Credentials live in its ``auths``
map (``{"auth": base64("user:password")}``, or an ``identitytoken``), unless the file names
a credential helper for the registry (``credHelpers``) or for all of them (``credsStore``):
then ``docker-credential-<name>`` keeps them, spoken to with its ``get``/``store``/``erase``
protocol, and ``auths`` holds an empty entry. Every other key of the file is kept as it is.

Registries are keyed as docker keys them: Docker Hub (``docker.io``, ``index.docker.io``,
``registry-1.docker.io``, ``https://index.docker.io/v1/``) as :data:`HUB_KEY`, any other by
its ``host[:port]`` (``https://127.0.0.1:5000/v2/`` → ``127.0.0.1:5000``).
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from pydocker.errors import PydockerError
from pydocker.formatting import go_marshal

__all__ = [
    "EMPTY_AUTH",
    "HUB_KEY",
    "AuthConfig",
    "ConfigFile",
    "config_path",
    "hostname",
    "registry_auth",
    "server_key",
]

HUB_KEY = "https://index.docker.io/v1/"
"""Docker Hub's key in ``auths`` (docker's ``IndexServer``)."""
_HUB_HOSTS = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io"})
EMPTY_AUTH = "e30="
"""``{}`` in base64url: no credentials."""
_IDENTITY_USER = "<token>"
"""The user name a credential helper stores an identity token under."""
_NOT_FOUND = "credentials not found in native keychain"

log = logging.getLogger("pydocker")


def config_path(environ: Mapping[str, str] = os.environ) -> Path:
    """``$DOCKER_CONFIG/config.json``, else ``~/.docker/config.json``."""
    directory = environ.get("DOCKER_CONFIG") or str(Path.home() / ".docker")
    return Path(directory) / "config.json"


def hostname(address: str) -> str:
    """docker's ``ConvertToHostname``: ``https://host:5000/v2/`` → ``host:5000``; an
    address without a scheme loses everything from its first ``/``."""
    if "://" in address:
        netloc = address.split("://", 1)[1].split("/", 1)[0].rpartition("@")[2].rstrip(":")
        if netloc.startswith("[") and netloc.endswith("]"):
            netloc = netloc[1:-1]
        if netloc:
            return netloc
    return address.split("/", 1)[0]


def server_key(address: str | None) -> str:
    """The key a registry's credentials are kept under: :data:`HUB_KEY` for Docker Hub (and
    no address at all), ``host[:port]`` for any other."""
    if not address:
        return HUB_KEY
    host = hostname(address)
    return HUB_KEY if host in _HUB_HOSTS else host


@dataclass(frozen=True)
class AuthConfig:
    """The Engine API's ``AuthConfig``, the body of ``POST /auth`` and, encoded, the
    ``X-Registry-Auth`` header."""

    username: str = ""
    password: str = ""
    server_address: str = ""
    identity_token: str = ""
    registry_token: str = ""

    def to_json(self) -> dict[str, str]:
        """The JSON object, in Go's field order and without the empty fields."""
        fields = {
            "username": self.username,
            "password": self.password,
            "serveraddress": self.server_address,
            "identitytoken": self.identity_token,
            "registrytoken": self.registry_token,
        }
        return {key: value for key, value in fields.items() if value}

    def encode(self) -> str:
        """base64url (with padding) of the JSON, as ``X-Registry-Auth`` carries it."""
        return base64.urlsafe_b64encode(go_marshal(self.to_json()).encode()).decode()


def _decode_auth(text: str) -> tuple[str, str]:
    """An ``auth`` field: base64 of ``user:password``.

    :raises PydockerError: not that (docker refuses the whole file).
    """
    try:
        decoded = base64.b64decode(text, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise PydockerError("Invalid auth configuration file") from None
    username, separator, password = decoded.partition(":")
    if not separator or not username:
        raise PydockerError("Invalid auth configuration file")
    return username, password.strip("\x00")


def _run_helper(helper: str, action: str, data: str) -> str:
    """``docker-credential-<helper> <action>`` with ``data`` on its stdin: its stdout.

    :raises PydockerError: it cannot be run, or fails (with its output, as docker says it).
    """
    program = f"docker-credential-{helper}"
    verb = {"get": "getting", "store": "storing", "erase": "erasing", "list": "listing"}[action]
    try:
        done = subprocess.run(
            [program, action], input=data, capture_output=True, text=True, check=False
        )
    except OSError:
        reason, output = f'exec: "{program}": executable file not found in $PATH', ""
    else:
        if done.returncode == 0:
            return done.stdout
        reason, output = f"exit status {done.returncode}", done.stdout.strip()
        if action == "get" and _NOT_FOUND in output:
            return ""
    raise PydockerError(f"error {verb} credentials - err: {reason}, out: `{output}`")


class ConfigFile:
    """The config file as read from ``path``: a JSON object whose ``auths``, ``credsStore``
    and ``credHelpers`` this class understands and whose other keys it keeps."""

    def __init__(self, path: Path, data: dict[str, Any], *, broken: bool = False) -> None:
        self.path = path
        self.data = data
        self._broken = broken

    @classmethod
    def load(cls, path: Path | None = None) -> ConfigFile:
        """The file at ``path`` (:func:`config_path` by default); empty when it does not
        exist. A file that is not a JSON object is reported on stderr and read as empty,
        as docker does, but is never written over (:meth:`save` refuses)."""
        path = path or config_path()
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return cls(path, {})
        except OSError as e:
            raise PydockerError(f"Error loading config file: {path}: {e.strerror}") from None
        try:
            data = json.loads(text) if text.strip() else {}
        except ValueError as e:
            data = e
        if not isinstance(data, dict):
            click.echo(f"WARNING: Error loading config file: {path}: {data}", err=True)
            return cls(path, {}, broken=True)
        return cls(path, data)

    @property
    def auths(self) -> dict[str, Any]:
        found = self.data.get("auths")
        if not isinstance(found, dict):
            found = self.data["auths"] = {}
        return found

    def helper(self, key: str) -> str:
        """The credential helper that keeps ``key``'s credentials; ``""`` for the file."""
        helpers = self.data.get("credHelpers")
        if isinstance(helpers, dict) and isinstance(helpers.get(key), str):
            return str(helpers[key])
        store = self.data.get("credsStore")
        return store if isinstance(store, str) else ""

    def _entry(self, key: str) -> tuple[str, dict[str, Any]] | None:
        """``auths``' entry for ``key``: under that key, or else under one that names the
        same registry (``https://host:5000``, ``index.docker.io``)."""
        if isinstance(self.auths.get(key), dict):
            return key, self.auths[key]
        for stored, entry in self.auths.items():
            if isinstance(entry, dict) and server_key(stored) == key:
                return stored, entry
        return None

    def credentials(self, key: str) -> AuthConfig:
        """What is stored for the registry ``key``; an empty config when nothing is.

        :raises PydockerError: the helper fails, or the file's entry is malformed.
        """
        helper = self.helper(key)
        if helper:
            found = _run_helper(helper, "get", key)
            if not found:
                return AuthConfig()
            try:
                reply = json.loads(found)
            except ValueError:
                raise PydockerError(f"error getting credentials - out: `{found.strip()}`") from None
            if not isinstance(reply, dict):
                return AuthConfig()
            user, secret = str(reply.get("Username") or ""), str(reply.get("Secret") or "")
            if user == _IDENTITY_USER:
                return AuthConfig(server_address=key, identity_token=secret)
            return AuthConfig(user, secret, server_address=key)
        entry = self._entry(key)
        if entry is None:
            return AuthConfig()
        stored, fields = entry
        username, password = str(fields.get("username") or ""), str(fields.get("password") or "")
        if fields.get("auth"):
            username, password = _decode_auth(str(fields["auth"]))
        return AuthConfig(
            username,
            password,
            server_address=stored,
            identity_token=str(fields.get("identitytoken") or ""),
            registry_token=str(fields.get("registrytoken") or ""),
        )

    def all_credentials(self) -> dict[str, AuthConfig]:
        """docker's ``GetAllCredentials`` (what ``build`` sends in ``X-Registry-Config``):
        the credentials of every registry the file knows, in ``auths``, in the
        ``credsStore`` helper (its ``list``) and in ``credHelpers``, keyed as stored. A
        registry whose helper fails is left out."""
        keys = list(self.auths)
        store = self.data.get("credsStore")
        if isinstance(store, str) and store:
            try:
                listed = json.loads(_run_helper(store, "list", "") or "{}")
            except (PydockerError, ValueError) as e:
                log.debug("credentials store %s cannot list: %s", store, e)
                listed = {}
            keys += [str(key) for key in listed] if isinstance(listed, dict) else []
        helpers = self.data.get("credHelpers")
        keys += [str(key) for key in helpers] if isinstance(helpers, dict) else []
        found: dict[str, AuthConfig] = {}
        for key in dict.fromkeys(keys):
            try:
                auth = self.credentials(key)
            except PydockerError as e:
                log.debug("no credentials for %s: %s", key, e)
                continue
            found[key] = AuthConfig(
                auth.username, auth.password, key, auth.identity_token, auth.registry_token
            )
        return found

    def store(self, auth: AuthConfig) -> None:
        """Keep ``auth`` for its ``server_address`` (in the helper, or in ``auths``) and
        save the file.

        :raises PydockerError: the helper fails, or the file cannot be written.
        """
        key = auth.server_address
        entry: dict[str, str] = {}
        helper = self.helper(key)
        if helper:
            user, secret = auth.username, auth.password
            if auth.identity_token:
                user, secret = _IDENTITY_USER, auth.identity_token
            payload = {"ServerURL": key, "Username": user, "Secret": secret}
            _run_helper(helper, "store", json.dumps(payload))
        else:
            if auth.username or auth.password:
                pair = f"{auth.username}:{auth.password}".encode()
                entry["auth"] = base64.b64encode(pair).decode()
            if auth.identity_token:
                entry["identitytoken"] = auth.identity_token
            if auth.registry_token:
                entry["registrytoken"] = auth.registry_token
        self.auths[key] = entry
        self.save()

    def erase(self, key: str) -> None:
        """Forget the credentials stored under exactly ``key`` (in its helper too).

        :raises PydockerError: the helper fails, or the file cannot be written.
        """
        helper = self.helper(key)
        if helper:
            _run_helper(helper, "erase", key)
        if key in self.auths:
            del self.auths[key]
            self.save()

    def stored_keys(self, key: str) -> list[str]:
        """The keys of ``auths`` that name the registry ``key``."""
        return [stored for stored in self.auths if server_key(stored) == key]

    def save(self) -> None:
        """Write the file atomically (a temporary file renamed over it; through a link to
        its target), mode 0600, its directory made 0700 if missing.

        :raises PydockerError: it cannot be written.
        """
        if self._broken:
            raise PydockerError(f"refusing to overwrite {self.path}: it is not valid JSON")
        target = Path(os.path.realpath(self.path))
        try:
            target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=target.name)
        except OSError as e:
            raise PydockerError(f"Error saving {self.path}: {e.strerror}") from None
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                out.write(json.dumps(self.data, indent="\t", ensure_ascii=False))
                out.flush()
                os.fsync(out.fileno())
            Path(temporary).chmod(0o600)
            Path(temporary).replace(target)
        except OSError as e:
            raise PydockerError(f"Error saving {self.path}: {e.strerror}") from None
        finally:
            Path(temporary).unlink(missing_ok=True)


def registry_auth(name: str, config: ConfigFile | None = None) -> str:
    """``X-Registry-Auth`` for pulling or pushing the fully qualified repository ``name``
    (``docker.io/library/busybox``): the credentials stored for its registry, or
    :data:`EMPTY_AUTH`. A helper that fails gives no credentials, as in docker."""
    config = config or ConfigFile.load()
    key = server_key(name.split("/", 1)[0])
    try:
        found = config.credentials(key)
    except PydockerError as e:
        log.debug("no credentials for %s: %s", key, e)
        found = AuthConfig()
    return found.encode()
