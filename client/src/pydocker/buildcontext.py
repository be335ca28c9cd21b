"""The build context ``pydocker build`` sends, made as the docker CLI's legacy builder
makes it.

- A directory becomes an uncompressed tar, streamed as it is read (nothing is held in
  memory but a chunk): entries in lexical order, directories before what they hold, each
  file with its mode, its mtime (whole seconds), uid and gid 0 and no user or group name
  (``archive.TarWithOptions`` with ``ChownOpts`` 0:0), symlinks as symlinks, hard links as
  links to the first name, ``security.capability`` kept. ``.dockerignore`` is applied
  (:mod:`pydocker.dockerignore`), but the Dockerfile and ``.dockerignore`` themselves are
  always sent. An excluded directory that an exception reaches into is walked but not sent
  itself, as moby does.
- ``-`` reads stdin: an archive (tar, gzip, bzip2, xz, zstd) is sent as it is; anything else
  is a Dockerfile, sent in a tar of its own as ``Dockerfile``.
- A Dockerfile read from stdin (``-f -``) or from outside the context directory is added to
  the tar as ``.dockerfile.<20 hex digits>``, and that name is appended to the
  ``.dockerignore`` sent (made if there is none), so that the daemon keeps it out of
  ``COPY . .``.
- An ``http(s)://`` URL is downloaded and read as stdin would be; a git URL is cloned
  (``git clone``; ``#ref:subdir`` as docker reads it) and read as a directory.
"""

from __future__ import annotations

import os
import secrets
import shutil
import stat
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from pydocker.dockerignore import PatternMatcher, read_dockerignore, trim_build_files
from pydocker.errors import PydockerError

__all__ = [
    "DEFAULT_DOCKERFILE",
    "BuildContext",
    "ContextError",
    "context_from_directory",
    "context_from_reader",
    "context_from_url",
    "is_archive",
    "is_git_url",
    "is_url",
]

DEFAULT_DOCKERFILE = "Dockerfile"
_BLOCK = 512
_CHUNK = 64 * 1024
_NUL = b"\0"
_MAGIC = (
    b"\x1f\x8b\x08",  # gzip
    b"BZh",  # bzip2
    b"\xfd7zXZ\x00",  # xz
    b"\x28\xb5\x2f\xfd",  # zstd
)
_CAPABILITY = "security.capability"


class ContextError(PydockerError):
    """The context cannot be prepared: docker's ``unable to prepare context: ...``."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"unable to prepare context: {reason}")


@dataclass
class BuildContext:
    """What ``POST /build`` carries: the body, and the Dockerfile's name inside it (empty:
    the daemon's default)."""

    body: Iterable[bytes]
    dockerfile: str
    cleanup: list[Callable[[], None]] = field(default_factory=list)

    def close(self) -> None:
        for action in self.cleanup:
            action()


# -- detecting -------------------------------------------------------------------------


def is_url(text: str) -> bool:
    return text.startswith(("http://", "https://"))


def is_git_url(text: str) -> bool:
    """moby's ``urlutil.IsGitURL``."""
    if is_url(text) and (text.split("#", 1)[0].endswith(".git")):
        return True
    return text.startswith(("git://", "github.com/", "git@"))


def is_archive(header: bytes) -> bool:
    """Whether the first bytes of a stream are compressed, or a tar header."""
    if header.startswith(_MAGIC):
        return True
    if len(header) < _BLOCK:
        return False
    try:
        tarfile.TarInfo.frombuf(header[:_BLOCK], "utf-8", "surrogateescape")
    except tarfile.HeaderError:
        return False
    return True


# -- writing a tar ---------------------------------------------------------------------


def _header_bytes(info: tarfile.TarInfo) -> bytes:
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


def _padding(size: int) -> bytes:
    return _NUL * (-size % _BLOCK)


def _member(info: tarfile.TarInfo, data: bytes = b"") -> Iterator[bytes]:
    info.size = len(data)
    yield _header_bytes(info)
    if data:
        yield data + _padding(len(data))


def _file_data(path: str, size: int) -> Iterator[bytes]:
    """``size`` bytes of the file, read as they are sent (zeros if it shrank meanwhile)."""
    try:
        handle = Path(path).open("rb")  # noqa: SIM115 - closed below
    except OSError as e:
        raise PydockerError(f"error reading {path}: {e.strerror}") from None
    left = size
    with handle:
        while left > 0:
            chunk = handle.read(min(_CHUNK, left))
            if not chunk:
                break
            left -= len(chunk)
            yield chunk
    if left:
        yield _NUL * left
    yield _padding(size)


def _regular(
    name: str, mode: int, data: bytes, *, owner: tuple[int, int] = (0, 0)
) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.mode = mode
    info.mtime = int(time.time())
    info.uid, info.gid = owner
    info.uname = info.gname = ""
    info.size = len(data)
    return info


@dataclass
class _Entry:
    path: str
    name: str


class _Walker:
    """The entries of a context directory, in the order moby's walk visits them, with
    the readability checks of docker's ``ValidateContextDirectory``."""

    def __init__(self, root: str, matcher: PatternMatcher) -> None:
        self.root = root
        self.matcher = matcher

    def entries(self) -> list[_Entry]:
        found: list[_Entry] = []
        self._visit(self.root, "", found)
        return found

    def _visit(self, directory: str, prefix: str, found: list[_Entry]) -> None:
        try:
            children = sorted(os.scandir(directory), key=lambda e: e.name)
        except PermissionError:
            raise PydockerError(f"error checking context: can't stat '{directory}'") from None
        except FileNotFoundError:
            return
        for child in children:
            name = f"{prefix}{child.name}"
            is_dir = child.is_dir(follow_symlinks=False)
            if self.matcher.matches(name):
                if is_dir and self.matcher.exclusions and self.matcher.exception_below(name):
                    self._visit(child.path, f"{name}/", found)  # not sent itself
                continue
            if child.is_file(follow_symlinks=False):
                self._check_readable(child.path)
            found.append(_Entry(child.path, name))
            if is_dir:
                self._visit(child.path, f"{name}/", found)

    @staticmethod
    def _check_readable(path: str) -> None:
        try:
            descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)
        except PermissionError:
            raise PydockerError(
                f"error checking context: no permission to read from '{path}'"
            ) from None
        except OSError:
            return
        os.close(descriptor)


def _entry_header(
    entry: _Entry, status: os.stat_result, links: dict[tuple[int, int], str]
) -> tarfile.TarInfo | None:
    """The tar header of one entry; ``None`` for what a tar cannot hold (sockets)."""
    mode = status.st_mode
    info = tarfile.TarInfo(entry.name)
    info.mode = stat.S_IMODE(mode)
    info.mtime = int(status.st_mtime)
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    if stat.S_ISDIR(mode):
        info.type, info.name = tarfile.DIRTYPE, f"{entry.name}/"
    elif stat.S_ISLNK(mode):
        info.type, info.linkname = tarfile.SYMTYPE, str(Path(entry.path).readlink())
    elif stat.S_ISREG(mode):
        key = (status.st_dev, status.st_ino)
        if status.st_nlink > 1 and key in links:
            info.type, info.linkname = tarfile.LNKTYPE, links[key]
        else:
            if status.st_nlink > 1:
                links[key] = entry.name
            info.type, info.size = tarfile.REGTYPE, status.st_size
    elif stat.S_ISFIFO(mode):
        info.type = tarfile.FIFOTYPE
    elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        info.type = tarfile.CHRTYPE if stat.S_ISCHR(mode) else tarfile.BLKTYPE
        info.devmajor, info.devminor = os.major(status.st_rdev), os.minor(status.st_rdev)
    else:
        return None
    try:
        capability = os.getxattr(entry.path, _CAPABILITY, follow_symlinks=False)
    except OSError:
        capability = b""
    if capability:
        info.pax_headers = {
            f"SCHILY.xattr.{_CAPABILITY}": capability.decode("utf-8", "surrogateescape")
        }
    return info


def _directory_tar(entries: list[_Entry], dockerfile: tuple[str, bytes] | None) -> Iterator[bytes]:
    """The tar of ``entries``; with ``dockerfile`` (its name and text) that file added
    and its name appended to ``.dockerignore``."""
    links: dict[tuple[int, int], str] = {}
    ignore_seen = False
    for entry in entries:
        try:
            status = os.lstat(entry.path)
        except FileNotFoundError:
            continue  # gone since the walk
        info = _entry_header(entry, status, links)
        if info is None:
            continue
        if dockerfile is not None and entry.name == ".dockerignore" and info.isreg():
            ignore_seen = True
            text = Path(entry.path).read_bytes() + b"\n" + dockerfile[0].encode() + b"\n"
            yield from _member(info, text)
            continue
        yield _header_bytes(info)
        if info.type == tarfile.REGTYPE and info.size:
            yield from _file_data(entry.path, info.size)
    if dockerfile is not None:
        name, text = dockerfile
        yield from _member(_regular(name, 0o600, text), text)
        if not ignore_seen:
            ignore = f".dockerignore\n{name}\n".encode()
            yield from _member(_regular(".dockerignore", 0o600, ignore), ignore)
    yield _NUL * (2 * _BLOCK)


# -- the kinds of context --------------------------------------------------------------


def _absolute(path: str) -> str:
    """Go's ``filepath.Abs``: joined to the current directory and cleaned (``..`` is
    not resolved through symlinks)."""
    return os.path.normpath(Path(path).absolute())


def _eval_symlinks(path: str, what: str) -> str:
    """Go's ``filepath.EvalSymlinks`` of an absolute path.

    :raises ContextError: it does not exist, with docker's words for ``what``.
    """
    try:
        return str(Path(path).resolve(strict=True))
    except OSError as e:
        raise ContextError(
            f"unable to evaluate symlinks in {what} path: lstat {path}: "
            f"{(e.strerror or str(e)).lower()}"
        ) from None


def _resolve_directory(given: str) -> str:
    """docker's ``ResolveAndValidateContextPath``: absolute, symlinks followed, a
    directory."""
    resolved = _eval_symlinks(_absolute(given), "context")
    if not Path(resolved).is_dir():
        raise ContextError(f"context must be a directory: {resolved}")
    return resolved


def _dockerfile_path(context: str, given: str) -> str:
    """docker's ``getDockerfileRelPath``: the Dockerfile relative to the context (it may
    start with ``../``). ``-f`` is relative to the current directory; without it,
    ``Dockerfile`` in the context, or ``dockerfile`` if only that exists."""
    if given:
        candidate = _absolute(given)
    else:
        candidate = f"{context}/{DEFAULT_DOCKERFILE}"
        lower = f"{context}/{DEFAULT_DOCKERFILE.lower()}"
        if not os.path.lexists(candidate) and os.path.lexists(lower):
            candidate = lower
    return os.path.relpath(_eval_symlinks(candidate, "Dockerfile"), context)


def _read_ignore(context: str) -> list[str]:
    try:
        text = Path(context, ".dockerignore").read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return []
    except OSError as e:
        raise PydockerError(f"error reading .dockerignore: {e.strerror}") from None
    return read_dockerignore(text)


def _dockerfile_name() -> str:
    return f".dockerfile.{secrets.token_hex(10)}"


def context_from_directory(
    directory: str, dockerfile: str, stdin_dockerfile: bytes | None = None
) -> BuildContext:
    """The tar of a context directory. ``dockerfile`` is ``-f``'s value (``""`` for the
    default, ``-`` for ``stdin_dockerfile``, the text read from stdin).

    :raises ContextError: the directory or the Dockerfile cannot be used.
    :raises PydockerError: a file of the context cannot be read.
    """
    context = _resolve_directory(directory)
    relative = "-" if dockerfile == "-" else _dockerfile_path(context, dockerfile)
    injected: tuple[str, bytes] | None = None
    if relative == "-":
        injected = (_dockerfile_name(), stdin_dockerfile or b"")
    elif relative.startswith("../"):
        try:
            text = Path(dockerfile).read_bytes()
        except OSError as e:
            raise PydockerError(
                f"unable to open Dockerfile: open {dockerfile}: {(e.strerror or '').lower()}"
            ) from None
        injected = (_dockerfile_name(), text)
    patterns = trim_build_files(_read_ignore(context), relative, relative == "-")
    entries = _Walker(context, PatternMatcher(patterns)).entries()
    name = injected[0] if injected else relative
    return BuildContext(_directory_tar(entries, injected), name)


def _chunks(first: bytes, stream: IO[bytes]) -> Iterator[bytes]:
    if first:
        yield first
    while chunk := stream.read(_CHUNK):
        yield chunk


def _read_header(stream: IO[bytes]) -> bytes:
    """The first two blocks of ``stream`` (fewer at its end)."""
    header = b""
    while len(header) < 2 * _BLOCK:
        chunk = stream.read(2 * _BLOCK - len(header))
        if not chunk:
            break
        header += chunk
    return header


def context_from_reader(stream: IO[bytes], dockerfile: str) -> BuildContext:
    """docker's ``GetContextFromReader``: an archive is sent as it is (``dockerfile``
    names the Dockerfile in it); a Dockerfile becomes a tar that holds only it.

    :raises ContextError: a Dockerfile, and ``-f`` names another one.
    """
    header = _read_header(stream)
    if is_archive(header):
        return BuildContext(_chunks(header, stream), dockerfile)
    if dockerfile == "-":
        raise ContextError("build context is not an archive")
    if dockerfile:
        raise ContextError(
            "ambiguous Dockerfile source: both stdin and flag correspond to Dockerfiles"
        )
    text = header + stream.read()
    umask = os.umask(0)
    os.umask(umask)
    info = _regular(DEFAULT_DOCKERFILE, 0o666 & ~umask, text, owner=(os.getuid(), os.getgid()))
    return BuildContext(iter([*_member(info, text), _NUL * (2 * _BLOCK)]), DEFAULT_DOCKERFILE)


def context_from_url(url: str, dockerfile: str) -> BuildContext:
    """A remote context: downloaded (an archive or a Dockerfile), or for a git URL cloned
    into a temporary directory that :meth:`BuildContext.close` removes.

    :raises ContextError: the download or the clone failed.
    """
    if is_git_url(url):
        return _git_context(url, dockerfile)
    import io

    import httpx

    try:
        response = httpx.get(url, follow_redirects=True, timeout=300)
    except httpx.HTTPError as e:
        raise ContextError(f"unable to download remote context {url}: {e}") from None
    if response.status_code >= 400:
        raise ContextError(
            f"unable to download remote context {url}: failed to GET {url} with status "
            f"{response.status_code} {response.reason_phrase}: {response.text.strip()}"
        )
    return context_from_reader(io.BytesIO(response.content), dockerfile)


def _git_context(url: str, dockerfile: str) -> BuildContext:
    remote, _, fragment = url.partition("#")
    ref, _, subdirectory = fragment.partition(":")
    if remote.startswith("github.com/"):
        remote = f"https://{remote}"
    if shutil.which("git") is None:
        raise ContextError(
            "unable to find 'git': exec: \"git\": executable file not found in $PATH"
        )
    checkout = tempfile.mkdtemp(prefix="docker-build-git")
    command = ["git", "clone", "--recurse-submodules", "--depth", "1"]
    if ref:
        command += ["--branch", ref]
    done = subprocess.run(
        [*command, "--", remote, checkout], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        shutil.rmtree(checkout, ignore_errors=True)
        raise ContextError(
            "unable to 'git clone' to temporary context directory: error fetching: "
            f"{done.stderr.strip()}: exit status {done.returncode}"
        )
    directory = Path(checkout, subdirectory)
    try:  # -f is relative to the repository's directory here, not to ours
        context = context_from_directory(
            str(directory), str(directory / dockerfile) if dockerfile else ""
        )
    except PydockerError:
        shutil.rmtree(checkout, ignore_errors=True)
        raise
    if context.dockerfile.startswith("../"):
        shutil.rmtree(checkout, ignore_errors=True)
        raise ContextError(f"the Dockerfile ({dockerfile}) must be within the build context")
    context.cleanup.append(lambda: shutil.rmtree(checkout, ignore_errors=True))
    return context
