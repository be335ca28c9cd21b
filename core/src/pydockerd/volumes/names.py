"""What a volume may be named: one check for ``docker volume create`` and for a ``-v`` or
``--mount`` that names a volume (a module of its own, light enough for both)."""

from __future__ import annotations

import re

from pydockerd.errors import InvalidParameter

__all__ = ["check_volume_name"]

_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]+")


def check_volume_name(name: str) -> str:
    """``name`` if it is a valid volume name.

    :raises InvalidParameter: Docker's ``create <name>: "<name>" includes invalid
        characters for a local volume name...``.
    """
    if not _NAME.fullmatch(name):
        raise InvalidParameter(
            f'create {name}: "{name}" includes invalid characters for a local volume name, '
            'only "[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to pass a host '
            "directory, use absolute path"
        )
    return name
