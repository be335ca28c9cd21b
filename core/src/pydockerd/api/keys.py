"""Typed keys of the API application's state."""

from __future__ import annotations

from aiohttp import web

from pydockerd.daemon import Daemon

__all__ = ["DAEMON"]

DAEMON = web.AppKey("daemon", Daemon)
"""The :class:`~pydockerd.daemon.Daemon` an application serves."""
