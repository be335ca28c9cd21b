"""The json-file driver's ``--log-opt`` options: which exist, how their values parse, and the
messages Docker gives for bad ones (its ``jsonfilelog`` driver, ``go-units`` and ``strconv``)."""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass

from pydockerd.plugin import InvalidParameter, LogContext

__all__ = [
    "OPTIONS",
    "Rotation",
    "extra_attributes",
    "go_quote",
    "parse_bool",
    "parse_int",
    "parse_size",
    "render_tag",
    "rotation",
    "validate",
]

OPTIONS = ("max-size", "max-file", "compress", "labels", "labels-regex", "env", "env-regex", "tag")
"""Every option Docker's json-file driver accepts."""

UNLIMITED = -1

_SIZE = re.compile(r"(\d+(?:\.\d+)?) ?([kmgtp])?i?b?", re.IGNORECASE)
_UNITS = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12, "p": 10**15}
_INT = re.compile(r"[+-]?[0-9]+")
_TRUE = ("1", "t", "T", "TRUE", "true", "True")
_FALSE = ("0", "f", "F", "FALSE", "false", "False")
_TAG_FIELD = re.compile(r"\{\{\s*\.([A-Za-z]\w*)\s*\}\}")
_TAG_FIELDS = ("ID", "FullID", "Name", "ImageName", "DaemonName", "Hostname")


def go_quote(text: str) -> str:
    """``text`` as Go's ``%q`` shows it (close enough: JSON's escapes)."""
    return json.dumps(text, ensure_ascii=False)


def parse_size(text: str) -> int:
    """A size as Docker's ``units.FromHumanSize`` reads it: decimal units (``10m`` is
    10,000,000 bytes), ``k``/``m``/``g``/``t``/``p``, case-insensitive, optional ``b``."""
    match = _SIZE.fullmatch(text)
    if match is None:
        raise InvalidParameter(f"invalid size: '{text}'")
    return int(float(match.group(1)) * _UNITS[(match.group(2) or "").lower()])


def parse_int(text: str) -> int:
    """An integer as Go's ``strconv.Atoi`` reads it, with its messages."""
    if not _INT.fullmatch(text):
        raise InvalidParameter(f"strconv.Atoi: parsing {go_quote(text)}: invalid syntax")
    value = int(text)
    if not -(2**63) <= value < 2**63:
        raise InvalidParameter(f"strconv.Atoi: parsing {go_quote(text)}: value out of range")
    return value


def parse_bool(text: str) -> bool:
    """A boolean as Go's ``strconv.ParseBool`` reads it, with its message."""
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise InvalidParameter(f"strconv.ParseBool: parsing {go_quote(text)}: invalid syntax")


@dataclass(frozen=True)
class Rotation:
    """When a log file is rotated and how many are kept.

    :ivar max_size: bytes a file may hold before the next record goes to a new one;
        :data:`UNLIMITED` never rotates.
    :ivar max_file: files kept, the one being written included (``<id>-json.log`` and
        ``.1`` up to ``.<max_file - 1>``).
    :ivar compress: gzip the rotated files (``.1.gz``, ...).
    """

    max_size: int
    max_file: int
    compress: bool


def rotation(options: Mapping[str, str], max_size: int, max_file: int, compress: bool) -> Rotation:
    """The rotation a container gets: its ``max-size``, ``max-file`` and ``compress``
    options, each defaulting to the driver's configuration (``max_size``, ...).

    :raises InvalidParameter: a bad value, with Docker's message.
    """
    if "max-size" in options:
        max_size = parse_size(options["max-size"])
        if max_size <= 0:
            raise InvalidParameter("max-size must be a positive number")
    if "max-file" in options:
        max_file = parse_int(options["max-file"])
        if max_file < 1:
            raise InvalidParameter("max-file cannot be less than 1")
    if "compress" in options:
        compress = parse_bool(options["compress"])
    if compress and (max_file == 1 or max_size == UNLIMITED):
        raise InvalidParameter(
            "compress cannot be true when max-file is less than 2 or max-size is not set"
        )
    return Rotation(max_size, max_file, compress)


def _regex(pattern: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as e:
        raise InvalidParameter(f"error parsing regexp: {e}: `{pattern}`") from None


def _keys(option: str | None) -> list[str]:
    return [key for key in (option or "").split(",") if key]


def extra_attributes(
    options: Mapping[str, str], labels: Mapping[str, str], env: Mapping[str, str]
) -> dict[str, str]:
    """The ``attrs`` of every line: the container labels named by ``labels`` or matching
    ``labels-regex``, then the environment variables named by ``env`` or matching
    ``env-regex`` (a variable wins over a label of the same name), as Docker's
    ``logger.Info.ExtraAttributes``."""
    attrs = {key: labels[key] for key in _keys(options.get("labels")) if key in labels}
    if options.get("labels-regex"):
        pattern = _regex(options["labels-regex"])
        attrs.update({k: v for k, v in labels.items() if pattern.search(k)})
    attrs.update({key: env[key] for key in _keys(options.get("env")) if key in env})
    if options.get("env-regex"):
        pattern = _regex(options["env-regex"])
        attrs.update({k: v for k, v in env.items() if pattern.search(k)})
    return attrs


def _tag_fields(template: str) -> list[str]:
    """The fields a ``tag`` template uses; only ``{{.Field}}`` of :data:`_TAG_FIELDS`."""
    fields = _TAG_FIELD.findall(template)
    rest = _TAG_FIELD.sub("", template)
    if "{{" in rest or "}}" in rest:
        raise InvalidParameter(
            f"tag {go_quote(template)}: pydockerd's json-file driver understands only "
            f"{{{{.Field}}}} templates, with the fields {', '.join(_TAG_FIELDS)}"
        )
    for name in fields:
        if name not in _TAG_FIELDS:
            raise InvalidParameter(
                f'template: log-tag:1: executing "log-tag" at <.{name}>: '
                f"can't evaluate field {name} (pydockerd knows {', '.join(_TAG_FIELDS)})"
            )
    return fields


def render_tag(template: str, context: LogContext) -> str:
    """The ``tag`` option's template filled in for the container (``{{.ID}}``: the first 12
    characters of its ID, ``{{.Name}}`` its name, ...)."""
    _tag_fields(template)
    values = {
        "ID": context.container_id[:12],
        "FullID": context.container_id,
        "Name": context.container_name.lstrip("/"),
        "ImageName": context.image_name,
        "DaemonName": "pydockerd",
        "Hostname": socket.gethostname(),
    }
    return _TAG_FIELD.sub(lambda m: values[m.group(1)], template)


def validate(options: Mapping[str, str], max_size: int, max_file: int, compress: bool) -> Rotation:
    """Check a container's options against Docker's rules; its rotation.

    :raises InvalidParameter: an unknown option (``unknown log opt 'x' for json-file log
        driver``) or a bad value.
    """
    for key in options:
        if key not in OPTIONS:
            raise InvalidParameter(f"unknown log opt '{key}' for json-file log driver")
    policy = rotation(options, max_size, max_file, compress)
    for key in ("labels-regex", "env-regex"):
        if options.get(key):
            _regex(options[key])
    if options.get("tag"):
        _tag_fields(options["tag"])
    return policy
