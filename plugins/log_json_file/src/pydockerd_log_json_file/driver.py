"""The json-file log driver: Docker's default log format, with bounded rotation."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

from pydantic import field_validator, model_validator
from pydockerd.plugin import (
    DriverConfig,
    InvalidParameter,
    LogContext,
    LogDriver,
    LogQuery,
    LogRecord,
)

from pydockerd_log_json_file.jsonlog import LineEncoder, encode_attrs
from pydockerd_log_json_file.options import (
    UNLIMITED,
    Rotation,
    extra_attributes,
    parse_size,
    render_tag,
    validate,
)
from pydockerd_log_json_file.reader import read_log
from pydockerd_log_json_file.writer import JsonFileWriter

__all__ = ["JsonFileConfig", "JsonFileDriver", "log_path"]


def log_path(context: LogContext) -> Path:
    """``<log_dir>/<container id>-json.log``, Docker's name."""
    return context.log_dir / f"{context.container_id}-json.log"


class JsonFileConfig(DriverConfig):
    """``[plugins."log.json-file"]`` of daemon.toml: the rotation of every container whose
    ``--log-opt`` does not say otherwise. Unlike Docker's default (one file that grows
    forever), logs are bounded: 5 files of 20 MB at most."""

    max_size: str = "20m"
    """Size of a file before it is rotated, in Docker's units (``k``, ``m``, ``g``: powers
    of 1000); ``"-1"`` never rotates."""
    max_file: int = 5
    """Files kept per container, the one being written included."""
    compress: bool = False
    """Gzip rotated files."""

    @field_validator("max_size")
    @classmethod
    def _size(cls, value: str) -> str:
        if value != str(UNLIMITED):
            try:
                if parse_size(value) <= 0:
                    raise InvalidParameter("max-size must be a positive number")
            except InvalidParameter as e:
                raise ValueError(str(e)) from None
        return value

    @field_validator("max_file")
    @classmethod
    def _files(cls, value: int) -> int:
        if value < 1:
            raise ValueError("max-file cannot be less than 1")
        return value

    @model_validator(mode="after")
    def _compression(self) -> JsonFileConfig:
        try:
            self.rotation({})
        except InvalidParameter as e:
            raise ValueError(str(e)) from None
        return self

    def rotation(self, options: Mapping[str, str]) -> Rotation:
        """The rotation of a container with ``options`` (validated, with Docker's messages)."""
        size = UNLIMITED if self.max_size == str(UNLIMITED) else parse_size(self.max_size)
        return validate(options, size, self.max_file, self.compress)


class JsonFileDriver(LogDriver):
    """Writes ``<id>-json.log`` as Docker does, rotated to ``.1``, ``.2``, ... (``.gz`` with
    ``compress``), and reads it back with since/until, tail and follow."""

    name = "json-file"
    Config = JsonFileConfig
    description = "Docker's json-file format, rotated (5 files of 20 MB by default)"

    @property
    def config(self) -> JsonFileConfig:
        config = self.context.config
        assert isinstance(config, JsonFileConfig)
        return config

    def validate_options(self, options: Mapping[str, str]) -> None:
        self.config.rotation(options)

    def writer(self, context: LogContext) -> JsonFileWriter:
        policy = self.config.rotation(context.options)
        attrs = extra_attributes(context.options, context.labels, context.env)
        if context.options.get("tag"):
            attrs["tag"] = render_tag(context.options["tag"], context)
        encoder = LineEncoder(encode_attrs(attrs) if attrs else b"")
        return JsonFileWriter(log_path(context), policy, encoder, self.context.logger)

    def read(
        self, context: LogContext, query: LogQuery, stopped: asyncio.Event
    ) -> AsyncIterator[LogRecord]:
        return read_log(log_path(context), query, stopped)
