"""Dockerfile instructions applied to an image config: ``docker import --change`` and
``docker commit --change`` (CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, ONBUILD, STOPSIGNAL, USER,
VOLUME, WORKDIR)."""

from __future__ import annotations

import json
import shlex
from typing import Any

from pydockerd.errors import InvalidParameter

__all__ = ["apply_changes"]

_ALLOWED = (
    "CMD",
    "ENTRYPOINT",
    "ENV",
    "EXPOSE",
    "LABEL",
    "ONBUILD",
    "STOPSIGNAL",
    "USER",
    "VOLUME",
    "WORKDIR",
)


def _exec_form(rest: str) -> list[str]:
    """``["a", "b"]`` as a list; anything else is the shell form ``/bin/sh -c rest``."""
    if rest.startswith("["):
        try:
            value = json.loads(rest)
        except json.JSONDecodeError:
            value = None
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return value
    return ["/bin/sh", "-c", rest]


def _pairs(instruction: str, rest: str) -> list[tuple[str, str]]:
    """``k=v k2="v 2"``, or the old form ``k v with spaces`` (one pair)."""
    words = shlex.split(rest)
    if not words:
        raise InvalidParameter(f"{instruction} requires at least one argument")
    if "=" not in words[0]:
        key, _, value = rest.strip().partition(" ")
        if not value.strip():
            raise InvalidParameter(f"{instruction} must have two arguments")
        return [(key, value.strip())]
    pairs = []
    for word in words:
        key, separator, value = word.partition("=")
        if not separator or not key:
            raise InvalidParameter(f"{instruction} names can not be blank")
        pairs.append((key, value))
    return pairs


def apply_changes(config: dict[str, Any], changes: list[str]) -> dict[str, Any]:
    """``config`` (the image config's ``config`` object) with ``changes`` applied.

    :raises InvalidParameter: an unknown or malformed instruction (Docker's words).
    """
    result = dict(config)
    for change in changes:
        text = change.strip()
        if not text:
            continue
        instruction, _, rest = text.partition(" ")
        instruction = instruction.upper()
        rest = rest.strip()
        if instruction not in _ALLOWED:
            raise InvalidParameter(f"{instruction.lower()} is not a valid change command")
        if instruction == "CMD":
            result["Cmd"] = _exec_form(rest)
        elif instruction == "ENTRYPOINT":
            result["Entrypoint"] = _exec_form(rest)
        elif instruction == "ENV":
            env = list(result.get("Env") or [])
            for key, value in _pairs("ENV", rest):
                env = [e for e in env if e.partition("=")[0] != key] + [f"{key}={value}"]
            result["Env"] = env
        elif instruction == "LABEL":
            labels = dict(result.get("Labels") or {})
            labels.update(_pairs("LABEL", rest))
            result["Labels"] = labels
        elif instruction == "EXPOSE":
            ports = dict(result.get("ExposedPorts") or {})
            for port in rest.split():
                ports[port if "/" in port else f"{port}/tcp"] = {}
            result["ExposedPorts"] = ports
        elif instruction == "VOLUME":
            volumes = dict(result.get("Volumes") or {})
            for path in _exec_form(rest) if rest.startswith("[") else rest.split():
                volumes[path] = {}
            result["Volumes"] = volumes
        elif instruction == "ONBUILD":
            result["OnBuild"] = [*(result.get("OnBuild") or []), rest]
        else:
            field = {"STOPSIGNAL": "StopSignal", "USER": "User", "WORKDIR": "WorkingDir"}
            result[field[instruction]] = rest
    return result
