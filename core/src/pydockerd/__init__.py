"""pydockerd: a container engine daemon speaking the Docker Engine API."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("pydockerd")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0"

API_VERSION = "1.47"
"""The Engine API version pydockerd speaks (and the highest it accepts in a path)."""
MIN_API_VERSION = "1.24"
"""The oldest Engine API version it accepts in a path, as moby."""

__all__ = ["API_VERSION", "MIN_API_VERSION", "__version__"]
