"""Docker image references: parsing, normalisation and familiar forms.

Follows the grammar of ``github.com/distribution/reference`` as the Docker daemon uses it
(``ParseNormalizedNamed``, ``ParseDockerRef``, ``FamiliarString``, ``TagNameOnly``)::

    reference        := name [ ":" tag ] [ "@" digest ]
    name             := [domain "/"] path-component ["/" path-component]*
    domain           := host [":" port-number]
    host             := domain-name | "[" IPv6address "]"
    domain-component := /([a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])/
    path-component   := /[a-z0-9]+/ [separator /[a-z0-9]+/]*
    separator        := /[_.]|__|[-]+/
    tag              := /[\\w][\\w.-]{0,127}/
    digest           := algorithm ":" hex   (sha256, sha384 or sha512, lowercase hex)

Familiar names are normalised as Docker does: ``busybox`` is
``docker.io/library/busybox:latest``; ``user/app`` is ``docker.io/user/app:latest``; the
first component is a registry when it contains ``.`` or ``:``, is ``localhost``, or has an
uppercase letter, and is followed by ``/``; ``index.docker.io`` is ``docker.io``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pydockerd.errors import InvalidParameter

__all__ = [
    "DEFAULT_DOMAIN",
    "DEFAULT_TAG",
    "NAME_TOTAL_LENGTH_MAX",
    "Reference",
    "looks_like_id",
    "parse_reference",
    "parse_repository_tag",
]

DEFAULT_DOMAIN = "docker.io"
"""The registry of unqualified names (Docker Hub)."""
LEGACY_DEFAULT_DOMAIN = "index.docker.io"
OFFICIAL_REPO_PREFIX = "library/"
DEFAULT_TAG = "latest"
NAME_TOTAL_LENGTH_MAX = 255
"""The longest repository path accepted (``library/busybox`` counts 15)."""

# The grammar, piece by piece (ASCII only: Go's \w and [[:xdigit:]] are ASCII).
_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|-+)"
_PATH_COMPONENT = rf"{_ALNUM}(?:{_SEPARATOR}{_ALNUM})*"
_REMOTE_NAME = rf"{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN_NAME = rf"{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*"
_IPV6 = r"\[[a-fA-F0-9:]+\]"
_DOMAIN_AND_PORT = rf"(?:{_DOMAIN_NAME}|{_IPV6})(?::[0-9]+)?"
_TAG = r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"

# All used with fullmatch (Python's "$" would accept a trailing newline).
_REFERENCE_RE = re.compile(
    rf"((?:{_DOMAIN_AND_PORT}/)?{_REMOTE_NAME})(?::({_TAG}))?(?:@({_DIGEST}))?"
)
_NAME_RE = re.compile(rf"(?:({_DOMAIN_AND_PORT})/)?({_REMOTE_NAME})")
_TAG_RE = re.compile(_TAG)
_IDENTIFIER_RE = re.compile(r"[a-f0-9]{64}")
_ID_PREFIX_RE = re.compile(r"(?:sha256:)?[a-f0-9]{1,64}")
_DIGEST_ALGORITHM_RE = re.compile(r"[a-z0-9]+(?:[.+_-][a-z0-9]+)*")
_LOWER_HEX_RE = re.compile(r"[a-f0-9]+")

# Digest algorithms Docker accepts, with the length of their hex encoding.
_DIGEST_HEX_LENGTH = {"sha256": 64, "sha384": 96, "sha512": 128}

_INVALID_FORMAT = "invalid reference format"


@dataclass(frozen=True)
class Reference:
    """A normalised image reference: registry domain, repository path, tag and/or digest."""

    domain: str
    path: str
    tag: str | None
    digest: str | None

    @property
    def name(self) -> str:
        """The full repository name: ``docker.io/library/busybox``."""
        return f"{self.domain}/{self.path}" if self.domain else self.path

    @property
    def familiar_name(self) -> str:
        """The name as Docker shows it: ``busybox``, ``user/app``, ``localhost:5000/x``."""
        if self.domain != DEFAULT_DOMAIN:
            return self.name
        if self.path.startswith(OFFICIAL_REPO_PREFIX):
            rest = self.path[len(OFFICIAL_REPO_PREFIX) :]
            if "/" not in rest:
                return rest
        return self.path

    def _with_suffix(self, name: str) -> str:
        text = name
        if self.tag is not None:
            text += f":{self.tag}"
        if self.digest is not None:
            text += f"@{self.digest}"
        return text

    def __str__(self) -> str:
        """The full normalised form: ``docker.io/library/busybox:latest``."""
        return self._with_suffix(self.name)

    def familiar(self) -> str:
        """The familiar form: ``busybox:latest``, ``localhost:5000/x:v1``."""
        return self._with_suffix(self.familiar_name)

    def with_tag(self, tag: str) -> Reference:
        """This repository with ``tag`` and no digest; ``InvalidParameter`` for a bad tag."""
        _check_tag(tag)
        return Reference(self.domain, self.path, tag, None)


def _check_tag(tag: str) -> None:
    if not _TAG_RE.fullmatch(tag):
        raise InvalidParameter("invalid tag format")


def _check_digest(digest: str) -> None:
    """Validate ``digest`` as go-digest's ``Parse`` does, with its messages."""
    algorithm, _, encoded = digest.partition(":")
    length = _DIGEST_HEX_LENGTH.get(algorithm)
    if length is None:
        if _DIGEST_ALGORITHM_RE.fullmatch(algorithm):
            raise InvalidParameter("unsupported digest algorithm")
        raise InvalidParameter("invalid checksum digest format")
    if len(encoded) != length:
        raise InvalidParameter("invalid checksum digest length")
    if not _LOWER_HEX_RE.fullmatch(encoded):
        raise InvalidParameter("invalid checksum digest format")


def _split_docker_domain(text: str) -> tuple[str, str]:
    """Split ``text`` into a registry domain and the rest, defaulting to Docker Hub."""
    first, slash, rest = text.partition("/")
    if not slash:
        return DEFAULT_DOMAIN, OFFICIAL_REPO_PREFIX + text
    if first == LEGACY_DEFAULT_DOMAIN:
        domain, remainder = DEFAULT_DOMAIN, rest
    elif first == "localhost" or "." in first or ":" in first or first.lower() != first:
        domain, remainder = first, rest
    else:
        domain, remainder = DEFAULT_DOMAIN, text
    if domain == DEFAULT_DOMAIN and "/" not in remainder:
        remainder = OFFICIAL_REPO_PREFIX + remainder
    return domain, remainder


def parse_reference(text: str, *, default_tag: bool = True) -> Reference:
    """Parse and normalise an image reference as Docker does.

    ``default_tag`` adds the tag ``latest`` when neither a tag nor a digest is given.
    Raises ``InvalidParameter`` with Docker's message when ``text`` is not a reference.
    """
    if _IDENTIFIER_RE.fullmatch(text):
        raise InvalidParameter(
            f"invalid repository name ({text}), cannot specify 64-byte hexadecimal strings"
        )
    domain, remainder = _split_docker_domain(text)
    remote = remainder.partition(":")[0]
    if remote.lower() != remote:
        raise InvalidParameter(f"{_INVALID_FORMAT}: repository name ({remote}) must be lowercase")

    full = f"{domain}/{remainder}"
    match = _REFERENCE_RE.fullmatch(full)
    if match is None:
        lowered = full.lower()
        if lowered != full and _REFERENCE_RE.fullmatch(lowered):
            raise InvalidParameter("repository name must be lowercase")
        raise InvalidParameter(_INVALID_FORMAT)
    name, tag, digest = match.group(1, 2, 3)
    name_match = _NAME_RE.fullmatch(name)
    assert name_match is not None  # the reference pattern embeds the name pattern
    parsed_domain, path = name_match.group(1, 2)
    if len(path) > NAME_TOTAL_LENGTH_MAX:
        raise InvalidParameter(
            f"repository name must not be more than {NAME_TOTAL_LENGTH_MAX} characters"
        )
    if digest is not None:
        _check_digest(digest)
    if tag is None and digest is None and default_tag:
        tag = DEFAULT_TAG
    return Reference(parsed_domain or "", path, tag, digest)


def parse_repository_tag(repo: str, tag: str | None) -> Reference:
    """The reference named by the ``repo`` and ``tag`` parameters of tag and import.

    ``repo`` may carry a tag itself, which a non-empty ``tag`` replaces; the tag defaults to
    ``latest``. A digest in ``repo`` is refused.
    """
    ref = parse_reference(repo, default_tag=False)
    if ref.digest is not None:
        raise InvalidParameter("refusing to create a tag with a digest reference")
    if tag:
        return ref.with_tag(tag)
    return ref.with_tag(ref.tag or DEFAULT_TAG)


def looks_like_id(text: str) -> bool:
    """Whether ``text`` could be an image ID or ID prefix: ``sha256:<hex>`` or bare hex."""
    return _ID_PREFIX_RE.fullmatch(text) is not None
