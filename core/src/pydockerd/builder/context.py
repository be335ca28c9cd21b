"""The build context: the tar a client sends with ``POST /build``, unpacked into a directory.

The docker CLI sends the context uncompressed (``--compress``: gzip), already filtered by
its ``.dockerignore``. Two quirks of real clients are handled here: ``docker build -f -``
sends a tar whose last member lacks its padding and the archive its end blocks (Python's
``tarfile`` calls that "unexpected end of data"), and ``docker build - < Dockerfile`` may
send a bare Dockerfile instead of a tar.
"""

from __future__ import annotations

import tarfile
from pathlib import Path

from pydockerd.archive import decompressed, is_tar_header
from pydockerd.errors import InvalidParameter
from pydockerd.fsutil import resolve_in_root

__all__ = ["read_dockerfile", "unpack_context"]

DEFAULT_DOCKERFILE = "Dockerfile"


def unpack_context(upload: Path, directory: Path) -> None:
    """Unpack the spooled request body ``upload`` (a tar, maybe compressed, or a bare
    Dockerfile) into ``directory``. Members are extracted with the ``data`` filter: nothing
    lands outside the directory, device files and setuid bits are refused or dropped.

    :raises InvalidParameter: the body is neither a tar nor a Dockerfile.
    """
    with upload.open("rb") as f:
        head = f.read(512)
    if is_tar_header(head):
        # docker build -f - truncates its tar: pad the last member and add the end blocks
        size = upload.stat().st_size
        with upload.open("ab") as f:
            f.write(b"\0" * (-size % 512) + b"\0" * 1024)
        with tarfile.open(upload, mode="r:") as tar:
            _extract(tar, directory)
        return
    with upload.open("rb") as raw:
        head = decompressed(raw).read(512)
    if is_tar_header(head):  # compressed (docker build --compress)
        with upload.open("rb") as raw, tarfile.open(fileobj=decompressed(raw), mode="r|") as tar:
            _extract(tar, directory)
        return
    with upload.open("rb") as raw:
        text = decompressed(raw).read()
    if b"\0" in text:
        raise InvalidParameter("the build context is neither a tar archive nor a Dockerfile")
    (directory / DEFAULT_DOCKERFILE).write_bytes(text)


def _extract(tar: tarfile.TarFile, directory: Path) -> None:
    try:
        tar.extractall(directory, filter="data")
    except (tarfile.TarError, OSError) as e:
        raise InvalidParameter(f"invalid build context: {e}") from None


def read_dockerfile(context: Path, name: str) -> bytes:
    """The Dockerfile ``name`` (a path inside the context) as bytes; ``Dockerfile`` falls
    back to ``dockerfile``, as Docker's does.

    :raises InvalidParameter: Docker's ``Cannot locate specified Dockerfile: <name>``.
    """
    candidates = [name or DEFAULT_DOCKERFILE]
    if not name or name == DEFAULT_DOCKERFILE:
        candidates.append(DEFAULT_DOCKERFILE.lower())
    for candidate in candidates:
        path = resolve_in_root(context, candidate.lstrip("/"))
        if path.is_file():
            return path.read_bytes()
    raise InvalidParameter(f"Cannot locate specified Dockerfile: {name or DEFAULT_DOCKERFILE}")
