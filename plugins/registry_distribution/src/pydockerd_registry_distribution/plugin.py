"""Entry point of the ``distribution`` registry transport."""

from __future__ import annotations
