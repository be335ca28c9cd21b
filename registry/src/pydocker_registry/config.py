"""The registry's configuration: a TOML file, ``PYDOCKER_REGISTRY_*`` variables, flags.

Precedence, highest first: command-line flags (``--addr``), the environment
(``PYDOCKER_REGISTRY_ADDR``; nested keys with ``__``: ``PYDOCKER_REGISTRY_AUTH__MODE``,
``PYDOCKER_REGISTRY_STORAGE__OPTIONS__ROOT``), the TOML file
(``/etc/pydocker-registry/config.toml`` or ``--config``), the defaults below. An unknown key
anywhere is an error. ``etc/pydocker-registry/config.toml`` shows every key, commented.

:func:`load_settings` only checks the shape and values; whether the files it names exist and
the storage backend opens is :func:`pydocker_registry.server.check_settings`'s business.
"""

from __future__ import annotations

import contextvars
import ipaddress
import os
import re
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    InitSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

__all__ = [
    "DEFAULT_CONFIG_FILE",
    "DEFAULT_STORAGE_ROOT",
    "ENV_PREFIX",
    "AccessRule",
    "AuthSettings",
    "ConfigError",
    "GcSettings",
    "HtpasswdSettings",
    "RegistrySettings",
    "StorageSettings",
    "TLSSettings",
    "TokenSettings",
    "load_settings",
    "split_addr",
]

DEFAULT_CONFIG_FILE = Path("/etc/pydocker-registry/config.toml")
DEFAULT_STORAGE_ROOT = Path("/var/lib/pydocker-registry")
ENV_PREFIX = "PYDOCKER_REGISTRY_"
ACTIONS = frozenset({"pull", "push", "delete", "*"})


class ConfigError(Exception):
    """The configuration cannot be used; :attr:`problems` holds one message per fault."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def _blank_is_none(value: Any) -> Any:
    return None if value == "" else value


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StorageSettings(_Section):
    """Where blobs and manifests live: a backend by name and its own options."""

    backend: str = Field("filesystem", description="storage backend (entry point name)")
    options: dict[str, Any] = Field(
        default_factory=dict,
        description=f"the backend's options; filesystem: root (default {DEFAULT_STORAGE_ROOT})",
    )

    @model_validator(mode="after")
    def _filesystem_root(self) -> StorageSettings:
        if self.backend == "filesystem":
            self.options.setdefault("root", str(DEFAULT_STORAGE_ROOT))
        return self


class TLSSettings(_Section):
    """HTTPS: both files, or neither (plain HTTP)."""

    certificate: Path | None = Field(None, description="server certificate chain (PEM)")
    key: Path | None = Field(None, description="the certificate's private key (PEM)")

    _blank = field_validator("certificate", "key", mode="before")(_blank_is_none)

    @model_validator(mode="after")
    def _both_or_neither(self) -> TLSSettings:
        if (self.certificate is None) != (self.key is None):
            raise ValueError("tls needs both certificate and key, or neither")
        return self

    @property
    def enabled(self) -> bool:
        return self.certificate is not None


class HtpasswdSettings(_Section):
    """Users and bcrypt passwords (``pydocker-registry htpasswd USER`` writes entries)."""

    path: Path | None = Field(
        None, description="htpasswd file of bcrypt entries, re-read when it changes"
    )
    realm: str = Field("pydocker-registry", description="realm of the Basic challenge")
    read_only_users: list[str] = Field(
        default_factory=list, description="htpasswd mode: users who may only pull"
    )

    _blank = field_validator("path", mode="before")(_blank_is_none)


class AccessRule(_Section):
    """Token mode: who may do what on which repositories. Rules add up."""

    accounts: list[str] = Field(
        description='user names; "*" any authenticated user, "anonymous" no credentials'
    )
    repositories: list[str] = Field(
        default_factory=list, description='repository globs ("a/*"; * also matches /)'
    )
    actions: list[str] = Field(description='"pull", "push", "delete" or "*"')
    catalog: bool = Field(False, description="also grant the catalog (registry:catalog:*)")

    @field_validator("actions")
    @classmethod
    def _known_actions(cls, value: list[str]) -> list[str]:
        unknown = sorted(set(value) - ACTIONS)
        if unknown:
            raise ValueError(f"unknown actions {unknown}; known: pull, push, delete, *")
        return value


class TokenSettings(_Section):
    """Bearer tokens (distribution's token auth), and the token server built in."""

    realm: str = Field(
        "", description="URL clients get tokens from; empty: this server's own /token"
    )
    service: str = Field("pydocker-registry", description="the tokens' audience (aud)")
    issuer: str = Field("pydocker-registry", description="the tokens' issuer (iss)")
    private_key: Path | None = Field(
        None,
        description="PEM key (EC P-256: ES256, RSA: RS256) that signs tokens; "
        "`pydocker-registry keygen PATH` makes one",
    )
    public_keys: list[Path] = Field(
        default_factory=list,
        description="PEM public keys or certificates that verify tokens, besides the "
        "private key's own (which verifies when server is on, or when this is empty)",
    )
    server: bool = Field(True, description="serve GET/POST /token here (needs private_key)")
    expiration: int = Field(300, gt=0, description="seconds a token is valid")
    refresh_expiration: int = Field(
        90 * 24 * 3600, gt=0, description="seconds a refresh (identity) token is valid"
    )
    rules: list[AccessRule] = Field(
        default_factory=list, description="access policy of the token server"
    )

    _blank = field_validator("private_key", mode="before")(_blank_is_none)


class AuthSettings(_Section):
    """Who may pull and push: nobody checked, htpasswd users, or bearer tokens."""

    mode: Literal["none", "htpasswd", "token"] = Field(
        "none", description='"none", "htpasswd" or "token"'
    )
    htpasswd: HtpasswdSettings = Field(default_factory=HtpasswdSettings)
    token: TokenSettings = Field(default_factory=TokenSettings)

    @model_validator(mode="after")
    def _mode_needs(self) -> AuthSettings:
        if self.mode == "htpasswd" and self.htpasswd.path is None:
            raise ValueError('mode "htpasswd" needs htpasswd.path')
        if self.mode == "token":
            token = self.token
            if token.server and token.private_key is None:
                raise ValueError("the built-in token server (token.server) needs token.private_key")
            if not token.server and not token.realm:
                raise ValueError("without the built-in token server, token.realm is needed")
            if token.private_key is None and not token.public_keys:
                raise ValueError("token mode needs token.public_keys or token.private_key")
        return self


class GcSettings(_Section):
    """Garbage collection (``pydocker-registry gc``)."""

    grace_seconds: int = Field(
        3600, ge=0, description="blobs younger than this are kept (uploads in flight)"
    )


class RegistrySettings(BaseSettings):
    """Every setting of pydocker-registry; the descriptions are config.toml's comments."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
        validate_default=True,
    )

    addr: str = Field("0.0.0.0:5000", description="HOST:PORT to listen on ([::]:5000 for IPv6)")
    delete_enabled: bool = Field(
        False, description="allow DELETE of manifests and blobs (off, as in distribution)"
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        "info", description="debug, info, warning or error"
    )
    shutdown_timeout: float = Field(
        10.0, gt=0, description="seconds requests in flight get to finish on SIGTERM"
    )
    storage: StorageSettings = Field(default_factory=StorageSettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    tls: TLSSettings = Field(default_factory=TLSSettings)
    gc: GcSettings = Field(default_factory=GcSettings)

    @field_validator("addr")
    @classmethod
    def _addr(cls, value: str) -> str:
        split_addr(value)
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        file_source = InitSettingsSource(settings_cls, init_kwargs=_file_data.get() or {})
        return (init_settings, env_settings, file_source)


_file_data: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "pydocker_registry_config_file", default=None
)


def split_addr(addr: str) -> tuple[str, int]:
    """``HOST:PORT`` → (host, port); ``:5000`` and ``[::]:5000`` too. Raises ValueError."""
    host, sep, port_text = addr.rpartition(":")
    if not sep or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ValueError(f"{addr!r} is not HOST:PORT (a port from 0 to 65535)")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        ipaddress.IPv6Address(host)
    elif ":" in host:
        raise ValueError(f"{addr!r}: an IPv6 host goes in brackets: [{host}]:{port_text}")
    return host or "0.0.0.0", int(port_text)


def _read_file(path: Path, required: bool) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text())
    except FileNotFoundError:
        if required:
            raise ConfigError([f"config file {path} does not exist"]) from None
        return {}
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise ConfigError([f"cannot read config file {path}: {e}"]) from e


def _where(loc: tuple[int | str, ...], path: Path, flags: dict[str, Any]) -> str:
    """Which source gave the value at ``loc``: a flag, a variable, or the file."""
    if loc and loc[0] in flags:
        return f"--{str(loc[0]).replace('_', '-')}"
    for depth in range(len(loc), 0, -1):
        name = ENV_PREFIX + "__".join(str(part) for part in loc[:depth]).upper()
        if name in os.environ:
            return name
        below = sorted(var for var in os.environ if var.startswith(name + "__"))
        if below:
            return " or ".join(below)
    return str(path)


def _problems(error: ValidationError, path: Path, flags: dict[str, Any]) -> list[str]:
    problems = []
    for item in error.errors():
        loc = item["loc"]
        key = ".".join(str(part) for part in loc) or "(top level)"
        source = _where(loc, path, flags)
        if item["type"] == "extra_forbidden":
            problems.append(f"{source}: unknown key {key!r}")
        else:
            message = item["msg"].removeprefix("Value error, ")
            problems.append(f"{source}: {key}: {message}")
    return problems


def load_settings(
    config_file: Path | None = None, overrides: dict[str, Any] | None = None
) -> RegistrySettings:
    """Read the configuration: ``overrides`` (flags; ``None`` values skipped) over the
    environment over the TOML file over the defaults.

    :param config_file: the TOML file; ``None`` means :data:`DEFAULT_CONFIG_FILE`, which may
        be missing (a file named explicitly must exist).
    :raises ConfigError: one problem per wrong key, each naming its key and source.
    """
    path = config_file or DEFAULT_CONFIG_FILE
    data = _read_file(path, required=config_file is not None)
    flags = {key: value for key, value in (overrides or {}).items() if value is not None}
    token = _file_data.set(data)
    try:
        return RegistrySettings(**flags)
    except ValidationError as e:
        raise ConfigError(_problems(e, path, flags)) from None
    except SettingsError as e:
        # A list or table variable that is not JSON: pydantic-settings names only the field.
        match = re.search(r'field "(\w+)"', str(e))
        field = match[1] if match else ""
        source = _where((field,), path, flags) if field else f"{ENV_PREFIX}*"
        cause = f": {e.__cause__}" if e.__cause__ else ""
        raise ConfigError(
            [f"{source}: {field or 'a value'}: lists and tables are written as JSON{cause}"]
        ) from None
    finally:
        _file_data.reset(token)
