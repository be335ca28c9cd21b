"""Choosing an image from an index for a platform, the way containerd's platform matcher
does: architectures and variants normalised (``x86_64`` is ``amd64``, which has no variant;
``aarch64`` is ``arm64``, whose default variant is ``v8``), an exact variant first and then
older compatible ones (``arm/v7`` runs ``v6`` and ``v5``), attestation manifests ignored."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydockerd.plugin import Descriptor, InvalidParameter

__all__ = ["choose", "normalize"]

_ARCH = {"x86_64": "amd64", "x86-64": "amd64", "aarch64": "arm64", "armhf": "arm", "i686": "386"}
_DEFAULT_VARIANT = {"arm64": "v8", "arm": "v7"}
_OLDER = {"arm": ["v8", "v7", "v6", "v5"], "arm64": ["v9", "v8"]}


def normalize(os_: str, arch: str, variant: str) -> tuple[str, str, str]:
    os_, arch, variant = os_.lower(), arch.lower(), variant.lower()
    arch = _ARCH.get(arch, arch)
    if arch == "amd64" and variant in ("", "v1"):
        variant = ""
    if arch == "arm64" and variant == "8":
        variant = "v8"
    return os_, arch, variant or _DEFAULT_VARIANT.get(arch, "")


def parse(platform: str) -> tuple[str, str, str]:
    parts = platform.split("/")
    if len(parts) < 2 or len(parts) > 3 or not all(parts):
        raise InvalidParameter(f"invalid platform {platform!r}: use os/arch[/variant]")
    return normalize(parts[0], parts[1], parts[2] if len(parts) == 3 else "")


def _acceptable(arch: str, variant: str) -> list[str]:
    """Variants ``arch``/``variant`` can run, best first."""
    older = _OLDER.get(arch)
    if older and variant in older:
        return older[older.index(variant) :]
    return [variant]


def choose(index: dict[str, Any], platform: str) -> Descriptor:
    """The entry of ``index`` (an OCI index or Docker manifest list, decoded) for
    ``platform``.

    :raises InvalidParameter: none matches (Docker's text), or the index is malformed.
    """
    want_os, want_arch, want_variant = parse(platform)
    ranked: list[tuple[int, int, Descriptor]] = []
    entries: Sequence[Any] = index.get("manifests") or ()
    accepted = _acceptable(want_arch, want_variant)
    for position, entry in enumerate(entries):
        try:
            descriptor = Descriptor.from_json(entry)
        except ValueError as e:
            raise InvalidParameter(f"invalid manifest list entry: {e}") from None
        annotations = descriptor.annotations or {}
        if annotations.get("vnd.docker.reference.type") == "attestation-manifest":
            continue
        got = descriptor.platform or {}
        os_, arch, variant = normalize(
            str(got.get("os", "")), str(got.get("architecture", "")), str(got.get("variant", ""))
        )
        if (os_, arch) == (want_os, want_arch) and variant in accepted:
            ranked.append((accepted.index(variant), position, descriptor))
    if not ranked:
        raise InvalidParameter(f"no matching manifest for {platform} in the manifest list entries")
    return min(ranked, key=lambda r: (r[0], r[1]))[2]
