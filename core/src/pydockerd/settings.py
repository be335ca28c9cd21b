"""The daemon's configuration: daemon.toml, ``PYDOCKERD_*`` variables and command-line flags.

Precedence, highest first: command-line flags, environment (``PYDOCKERD_DATA_ROOT``,
``PYDOCKERD_TLS__CERT`` for nested keys), the TOML file (``/etc/pydockerd/daemon.toml`` or
``--config-file``), the defaults below. An unknown key anywhere is an error that names it.
``pydockerd config default`` prints every setting at its default (``etc/pydockerd/daemon.toml``
is that output, kept true by a test).
"""

from __future__ import annotations

import difflib
import ipaddress
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from pydockerd.errors import ConfigError

__all__ = [
    "DEFAULT_CONFIG_FILE",
    "DaemonSettings",
    "NetworkSettings",
    "RegistrySettings",
    "TLSSettings",
    "load_settings",
]

DEFAULT_CONFIG_FILE = Path("/etc/pydockerd/daemon.toml")

LogLevel = Literal["debug", "info", "warning", "error"]


def _split_commas(value: Any) -> Any:
    """Environment variables give lists as ``a,b,c``; TOML gives real lists."""
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


class TLSSettings(BaseModel):
    """TLS for ``tcp://`` listeners; with ``verify`` clients must present a certificate."""

    model_config = ConfigDict(extra="forbid")

    cert: Path | None = Field(None, description="server certificate (PEM)")
    key: Path | None = Field(None, description="server private key (PEM)")
    cacert: Path | None = Field(None, description="CA that client certificates must chain to")
    verify: bool = Field(False, description="require and verify client certificates")

    @field_validator("cert", "key", "cacert", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        return None if value == "" else value

    @property
    def enabled(self) -> bool:
        return self.cert is not None and self.key is not None


class NetworkSettings(BaseModel):
    """Networks: the default one, where user-defined ones get addresses, container DNS."""

    model_config = ConfigDict(extra="forbid")

    default_bridge: str = Field(
        "pydocker0", description='device of the default network "bridge" (at most 15 chars)'
    )
    default_subnet: str = Field("10.210.0.0/16", description='subnet of the network "bridge"')
    address_pool: str = Field(
        "10.211.0.0/16", description="user-defined networks get subnets from here"
    )
    pool_prefix_length: int = Field(
        24, ge=8, le=30, description="prefix length of a subnet taken from address_pool"
    )
    bridge_prefix: str = Field(
        "pdbr-", description="device of a user-defined network: this and its ID's first chars"
    )
    dns_upstreams: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="where container DNS sends names it does not know; empty: the host's",
    )

    @field_validator("default_bridge")
    @classmethod
    def _device_name(cls, value: str) -> str:
        if not 0 < len(value) <= 15 or "/" in value or " " in value:
            raise ValueError("a device name has 1 to 15 characters, no '/' or space")
        return value

    @field_validator("bridge_prefix")
    @classmethod
    def _short_prefix(cls, value: str) -> str:
        if not 0 < len(value) <= 7 or "/" in value or " " in value:
            raise ValueError("at most 7 characters, no '/' or space (8 of the ID follow)")
        return value

    @field_validator("default_subnet", "address_pool")
    @classmethod
    def _subnet(cls, value: str) -> str:
        ipaddress.ip_network(value)  # ValueError says what is wrong
        return value

    @field_validator("dns_upstreams", mode="before")
    @classmethod
    def _upstreams_from_commas(cls, value: Any) -> Any:
        return _split_commas(value)


class RegistrySettings(BaseModel):
    """Pulls and pushes: which transport, which registries may be plain HTTP, mirrors."""

    model_config = ConfigDict(extra="forbid")

    transport: str = Field(
        "distribution", description="registry transport by name (the plugin that pulls and pushes)"
    )
    insecure: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="registries reached without TLS verification, then plain HTTP: "
        "host[:port] or a CIDR; 127.0.0.0/8 and localhost always are",
    )
    mirrors: dict[str, list[str]] = Field(
        default_factory=dict,
        description='pull-through mirrors tried before a registry: "docker.io" = ["https://m"]',
    )

    @field_validator("insecure", mode="before")
    @classmethod
    def _insecure_from_commas(cls, value: Any) -> Any:
        return _split_commas(value)

    @field_validator("insecure")
    @classmethod
    def _host_or_cidr(cls, value: list[str]) -> list[str]:
        for item in value:
            if "/" in item:
                ipaddress.ip_network(item, strict=False)
            elif not item or "://" in item or " " in item:
                raise ValueError(f"{item!r}: give host[:port] or a CIDR, without a scheme")
        return value

    @field_validator("mirrors")
    @classmethod
    def _mirror_urls(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        for registry, urls in value.items():
            for url in urls:
                if not url.startswith(("https://", "http://")):
                    raise ValueError(f"mirror {url!r} of {registry}: give an http(s):// URL")
        return {registry: [url.rstrip("/") for url in urls] for registry, urls in value.items()}


class DaemonSettings(BaseSettings):
    """Every setting of the daemon. Field descriptions become daemon.toml's comments."""

    model_config = SettingsConfigDict(
        env_prefix="PYDOCKERD_",
        env_nested_delimiter="__",
        extra="forbid",
        validate_default=True,
    )

    hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["unix:///run/pydockerd.sock"],
        description="where the API listens: unix://PATH, tcp://HOST:PORT, fd:// (systemd)",
    )
    data_root: Path = Field(
        Path("/var/lib/pydockerd"), description="images, containers, volumes, driver state"
    )
    exec_root: Path = Field(Path("/run/pydockerd"), description="pid file and runtime state")
    storage_driver: str = Field(
        "",
        description='storage driver by name ("overlay", "vfs"); empty: chosen by the daemon',
    )
    default_runtime: str = Field(
        "native", description="runtime of containers that name none (HostConfig.Runtime)"
    )
    log_driver: str = Field(
        "json-file", description="log driver of containers that name none (--log-driver)"
    )
    cgroup_parent: str = Field(
        "pydockerd", description="cgroup under which each container gets its own (<parent>/<id>)"
    )
    stop_timeout: int = Field(
        10, ge=-1, description="seconds stop waits before SIGKILL, unless the container says"
    )
    supervisor_idle_timeout: float = Field(
        60.0, ge=0, description="seconds the supervisor lingers with no container before it exits"
    )
    group: str = Field(
        "pydockerd",
        description="group owning the unix socket (mode 0660); root if it does not exist",
    )
    allow_insecure_tcp: bool = Field(
        False, description="allow tcp:// without TLS on addresses other than loopback"
    )
    tls: TLSSettings = Field(default_factory=TLSSettings, description="TLS for tcp:// hosts")
    network: NetworkSettings = Field(
        default_factory=NetworkSettings, description="networks and container DNS"
    )
    registries: RegistrySettings = Field(
        default_factory=RegistrySettings, description="pulling and pushing images"
    )
    log_level: LogLevel = Field("info", description="debug, info, warning or error")
    log_format: Literal["text", "json"] = Field(
        "text", description="text or json (one object a line)"
    )
    disable_plugins: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="plugins (entry-point names) not to load"
    )
    trace_hooks: bool = Field(False, description="log every hook call with its duration")
    event_history: int = Field(
        1024, ge=0, description="events kept in memory for GET /events?since="
    )
    shutdown_timeout: float = Field(
        15.0, gt=0, description="seconds to wait for API requests to finish on SIGTERM"
    )
    plugins: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description='per-driver options: [plugins."storage.overlay"], checked by the driver',
    )

    @field_validator("hosts", "disable_plugins", mode="before")
    @classmethod
    def _lists_from_commas(cls, value: Any) -> Any:
        return _split_commas(value)

    @field_validator("log_level", mode="before")
    @classmethod
    def _log_level_alias(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = value.lower()
            return {"warn": "warning", "fatal": "error"}.get(value, value)
        return value

    @field_validator("hosts")
    @classmethod
    def _at_least_one_host(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("at least one host is needed")
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The TOML file is passed in by load_settings as init data of lower priority.
        return (init_settings, env_settings)


class _FileOnlySettings(DaemonSettings):
    """:class:`DaemonSettings` from its init data alone: a ``BaseSettings`` validated with
    ``model_validate`` still reads the environment, whose errors would then name the file."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)


def _read_toml(path: Path, required: bool) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        if required:
            raise ConfigError(f"config file {path} does not exist") from None
        return {}
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise ConfigError(f"cannot read config file {path}: {e}") from e


def _describe(error: ValidationError, source: str) -> str:
    """One message per wrong key, naming the key and what is allowed."""
    lines = []
    for item in error.errors():
        key = ".".join(str(part) for part in item["loc"])
        if item["type"] == "extra_forbidden":
            model_keys = _known_keys(item["loc"])
            close = difflib.get_close_matches(str(item["loc"][-1]), model_keys, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            lines.append(f"unknown key {key!r}{hint} (known keys: {', '.join(sorted(model_keys))})")
        else:
            lines.append(f"{key}: {item['msg']} (got {item.get('input')!r})")
    return f"invalid configuration ({source}): " + "; ".join(lines)


def _known_keys(loc: tuple[int | str, ...]) -> list[str]:
    model: type[BaseModel] = DaemonSettings
    for part in loc[:-1]:
        field = model.model_fields.get(str(part))
        annotation = field.annotation if field else None
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            model = annotation
        else:
            return []
    return list(model.model_fields)


def load_settings(
    config_file: Path | None = None, overrides: dict[str, Any] | None = None
) -> DaemonSettings:
    """Read the configuration: ``overrides`` (flags) over environment over TOML over defaults.

    :param config_file: the TOML file; ``None`` means :data:`DEFAULT_CONFIG_FILE`, which may be
        missing (an explicitly named file must exist).
    :raises ConfigError: unreadable file, unknown key, or an invalid value; the message names
        the key and the file.
    """
    path = config_file or DEFAULT_CONFIG_FILE
    file_data = _read_toml(path, required=config_file is not None)
    flags = {key: value for key, value in (overrides or {}).items() if value is not None}
    try:
        # Validate the file on its own first, so its errors name the file.
        _FileOnlySettings.model_validate(file_data)
    except ValidationError as e:
        raise ConfigError(_describe(e, str(path))) from None
    try:
        from_env = DaemonSettings().model_dump(exclude_unset=True)
        return DaemonSettings(**_deep_merge(_deep_merge(file_data, from_env), flags))
    except ValidationError as e:
        raise ConfigError(_describe(e, "environment or flags")) from None


def _deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def default_toml() -> str:
    """daemon.toml with every setting commented out at its default, and its description."""
    lines = [
        "# pydockerd daemon configuration (/etc/pydockerd/daemon.toml).",
        "# Every setting is shown commented out at its default. Each can also be set with an",
        "# environment variable: PYDOCKERD_<KEY> (nested: PYDOCKERD_TLS__CERT), and most with",
        "# a flag of the same name (pydockerd --help). Flags win over the environment, which",
        "# wins over this file.",
        "",
    ]
    defaults = DaemonSettings.model_construct()
    tables: list[str] = []
    for name, field in DaemonSettings.model_fields.items():
        value = getattr(defaults, name)
        if isinstance(value, BaseModel):
            tables.append("")
            tables.append(f"# {field.description}")
            tables.append(f"# [{name}]")
            for sub, subfield in type(value).model_fields.items():
                tables.append(f"# {subfield.description}")
                tables.append(f"# {sub} = {_toml_value(getattr(value, sub))}")
            continue
        if name == "plugins":
            tables.append("")
            tables.append(f"# {field.description}; for example:")
            tables.append('# [plugins."storage.overlay"]')
            continue
        lines.append(f"# {field.description}")
        lines.append(f"# {name} = {_toml_value(value)}")
    return "\n".join(lines + tables) + "\n"


def _toml_value(value: Any) -> str:
    if value is None:
        return '""  # unset by default'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    if isinstance(value, dict):
        items = (f"{_toml_value(str(key))} = {_toml_value(item)}" for key, item in value.items())
        return "{" + ", ".join(items) + "}"
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'
