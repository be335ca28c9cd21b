"""pydocker: the command-line client of the pydockerd container engine."""

from __future__ import annotations

__version__ = "0.1.0"
"""The distribution's version, written here rather than read with ``importlib.metadata``
(whose import costs every command about 40 ms); a test checks that it matches the
installed metadata (``client/pyproject.toml``)."""

__all__ = ["__version__"]
