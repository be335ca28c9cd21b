"""Who may do what: the seam between the API (which knows what a request needs) and the
auth modes (which know who is asking).

The API turns each request into the :class:`Access` it needs (``repository:library/app:pull``)
and calls :meth:`Authorizer.authorize`; an auth mode answers by returning, or by raising
:class:`AccessDenied`, which the API turns into the spec's error body and, for 401, the
``WWW-Authenticate`` challenge.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from aiohttp import web

__all__ = ["Access", "AccessDenied", "AllowAll", "Authorizer"]


@dataclass(frozen=True)
class Access:
    """One resource and the actions a request needs on it, as token scopes spell them:
    ``repository:<name>:pull,push`` or ``registry:catalog:*``."""

    type: Literal["repository", "registry"]
    name: str
    actions: frozenset[str]

    def scope(self) -> str:
        return f"{self.type}:{self.name}:{','.join(sorted(self.actions))}"


class AccessDenied(Exception):
    """The request may not proceed.

    :ivar status: 401 (no or bad credentials: the client should authenticate and retry) or
        403 (authenticated, but not allowed).
    :ivar code: the spec's error code: ``UNAUTHORIZED`` or ``DENIED``.
    :ivar challenge: the ``WWW-Authenticate`` value sent with a 401.
    """

    def __init__(
        self, message: str, *, status: int = 401, code: str = "UNAUTHORIZED", challenge: str = ""
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.challenge = challenge


class Authorizer(Protocol):
    """An auth mode: decides whether a request may have the access it needs."""

    async def authorize(self, request: web.Request, access: Sequence[Access]) -> None:
        """Return when allowed; raise :class:`AccessDenied` otherwise. ``access`` is empty
        for ``GET /v2/``, which only checks that the caller is authenticated."""


class AllowAll:
    """No authentication: every request is allowed (the default, as the reference registry)."""

    async def authorize(self, request: web.Request, access: Sequence[Access]) -> None:
        return None
