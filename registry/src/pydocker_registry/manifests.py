"""Names, digests and manifests: the spec's grammar and what a pushed manifest must satisfy.

:func:`parse_manifest` checks that a body is the JSON of the type its Content-Type claims
(OCI image manifest or index, Docker schema 2 manifest or manifest list) and returns what the
registry needs from it: the blobs and manifests it references, its subject, and how it shows
in the referrers API.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any

from pydocker_registry.errors import Code, RegistryError

__all__ = [
    "DOCKER_LIST",
    "DOCKER_MANIFEST",
    "IMAGE_MANIFEST_TYPES",
    "INDEX_TYPES",
    "MAX_MANIFEST_SIZE",
    "OCI_INDEX",
    "OCI_MANIFEST",
    "Descriptor",
    "Manifest",
    "check_digest",
    "check_name",
    "is_digest",
    "is_tag",
    "new_hasher",
    "parse_manifest",
    "platform_manifest",
    "referrer_descriptor",
]

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
IMAGE_MANIFEST_TYPES = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})
INDEX_TYPES = frozenset({OCI_INDEX, DOCKER_LIST})
MAX_MANIFEST_SIZE = 4 << 20
"""The spec asks registries to accept manifests of at least 4 MiB; bigger ones get 413."""

# Layers a registry does not hold: they carry their own download URLs.
_FOREIGN_LAYER_TYPES = frozenset(
    {
        "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
        "application/vnd.oci.image.layer.nondistributable.v1.tar",
        "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
        "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
    }
)

_NAME = re.compile(
    r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*"
)
_TAG = re.compile(r"[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}")
_DIGESTS = {"sha256": re.compile(r"[a-f0-9]{64}"), "sha512": re.compile(r"[a-f0-9]{128}")}
_ANY_DIGEST = re.compile(r"[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+")
MAX_NAME_LENGTH = 255


def check_name(name: str) -> str:
    """The repository name, or NAME_INVALID (the spec's regular expression, 255 characters)."""
    if len(name) > MAX_NAME_LENGTH or not _NAME.fullmatch(name):
        raise RegistryError.of(Code.NAME_INVALID, detail={"name": name})
    return name


def is_tag(reference: str) -> bool:
    return _TAG.fullmatch(reference) is not None


def is_digest(reference: str) -> bool:
    """Whether the reference has a digest's shape (``alg:encoded``), supported or not."""
    return _ANY_DIGEST.fullmatch(reference) is not None


def check_digest(digest: str) -> str:
    """The digest if it is a sha256 or sha512 one in canonical form, else DIGEST_INVALID."""
    alg, _, encoded = digest.partition(":")
    pattern = _DIGESTS.get(alg)
    if pattern is None or not pattern.fullmatch(encoded):
        raise RegistryError.of(
            Code.DIGEST_INVALID, f"invalid or unsupported digest {digest!r}", {"digest": digest}
        )
    return digest


def new_hasher(digest: str) -> hashlib._Hash:
    """A fresh hash object of the digest's algorithm (the digest is already checked)."""
    return hashlib.new(digest.partition(":")[0])


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: str
    size: int


@dataclass
class Manifest:
    """What the registry needs from a valid manifest."""

    media_type: str
    blobs: list[Descriptor] = field(default_factory=list)
    """Config and layers the repository must hold (foreign layers excluded)."""
    references: list[Descriptor] = field(default_factory=list)
    """Config and every layer, foreign ones too: what garbage collection keeps when the
    registry holds it (a client may push a non-distributable layer all the same)."""
    children: list[Descriptor] = field(default_factory=list)
    """Manifests an index lists; the repository must hold them."""
    subject: Descriptor | None = None
    artifact_type: str | None = None
    annotations: dict[str, str] | None = None


def _invalid(message: str) -> RegistryError:
    return RegistryError.of(Code.MANIFEST_INVALID, message)


def _descriptor(value: Any, where: str) -> Descriptor:
    if not isinstance(value, dict):
        raise _invalid(f"{where}: a descriptor must be an object")
    media_type, digest, size = value.get("mediaType"), value.get("digest"), value.get("size")
    if not isinstance(media_type, str) or not media_type:
        raise _invalid(f"{where}: mediaType must be a non-empty string")
    if not isinstance(digest, str) or not is_digest(digest):
        raise _invalid(f"{where}: digest {digest!r} is not a digest")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise _invalid(f"{where}: size must be a non-negative integer")
    return Descriptor(media_type, digest, size)


def _descriptors(body: dict[str, Any], key: str) -> list[Any]:
    value = body.get(key)
    if not isinstance(value, list):
        raise _invalid(f"{key} must be a list")
    return value


def parse_manifest(data: bytes, content_type: str | None) -> Manifest:
    """Validate a pushed manifest against the type it claims (its Content-Type, else its
    ``mediaType`` field). Raises MANIFEST_INVALID."""
    try:
        body = json.loads(data)
    except (ValueError, UnicodeDecodeError) as e:
        raise _invalid(f"not JSON: {e}") from None
    if not isinstance(body, dict):
        raise _invalid("a manifest must be a JSON object")
    declared = body.get("mediaType")
    if declared is not None and not isinstance(declared, str):
        raise _invalid("mediaType must be a string")
    media_type = (content_type or "").partition(";")[0].strip() or declared
    if not media_type:
        raise _invalid("no Content-Type and no mediaType: the manifest's type is unknown")
    if declared is not None and declared != media_type:
        raise _invalid(f"mediaType {declared!r} is not the Content-Type {media_type!r}")
    if body.get("schemaVersion") != 2:
        raise _invalid("schemaVersion must be 2")
    if media_type in IMAGE_MANIFEST_TYPES:
        manifest = _image_manifest(body, media_type)
    elif media_type in INDEX_TYPES:
        if "config" in body or "layers" in body:
            raise _invalid(f"{media_type} has no config or layers: is it an image manifest?")
        children = [
            _descriptor(d, f"manifests[{i}]") for i, d in enumerate(_descriptors(body, "manifests"))
        ]
        manifest = Manifest(media_type, children=children)
    else:
        raise _invalid(f"unsupported manifest type {media_type!r}")
    if "subject" in body:
        manifest.subject = _descriptor(body["subject"], "subject")
    artifact_type = body.get("artifactType")
    if artifact_type is not None and not isinstance(artifact_type, str):
        raise _invalid("artifactType must be a string")
    manifest.artifact_type = artifact_type or manifest.artifact_type
    annotations = body.get("annotations")
    if annotations is not None:
        if not isinstance(annotations, dict) or not all(
            isinstance(v, str) for v in annotations.values()
        ):
            raise _invalid("annotations must map strings to strings")
        manifest.annotations = annotations
    return manifest


def _image_manifest(body: dict[str, Any], media_type: str) -> Manifest:
    if "manifests" in body:
        raise _invalid(f"{media_type} has no manifests list: is it an index?")
    config = _descriptor(body.get("config"), "config")
    blobs, references = [config], [config]
    for i, value in enumerate(_descriptors(body, "layers")):
        layer = _descriptor(value, f"layers[{i}]")
        references.append(layer)
        if layer.media_type not in _FOREIGN_LAYER_TYPES and not value.get("urls"):
            blobs.append(layer)
    manifest = Manifest(media_type, blobs=blobs, references=references)
    manifest.artifact_type = config.media_type  # replaced by artifactType when it is set
    return manifest


def platform_manifest(data: bytes, os: str, architecture: str) -> str | None:
    """The digest of the first manifest a stored (valid) index lists for ``os``/``architecture``,
    or None."""
    for entry in json.loads(data).get("manifests", []):
        platform = entry.get("platform")
        if isinstance(platform, dict) and (platform.get("os"), platform.get("architecture")) == (
            os,
            architecture,
        ):
            digest = entry.get("digest")
            return digest if isinstance(digest, str) else None
    return None


def referrer_descriptor(manifest: Manifest, digest: str, size: int) -> dict[str, Any]:
    """The manifest as an entry of a referrers index: ``artifactType`` is the manifest's own
    or else its config's media type."""
    entry: dict[str, Any] = {"mediaType": manifest.media_type, "digest": digest, "size": size}
    if manifest.artifact_type:
        entry["artifactType"] = manifest.artifact_type
    if manifest.annotations:
        entry["annotations"] = manifest.annotations
    return entry
