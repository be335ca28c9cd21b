"""pydocker-registry: an image registry speaking the OCI Distribution API (issue 6)."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("pydocker-registry")
except PackageNotFoundError:
    __version__ = "0.0.0"

__all__ = ["__version__"]
