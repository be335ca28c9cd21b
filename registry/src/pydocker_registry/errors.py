"""The OCI Distribution error codes and the one exception the API raises with them.

Every error response has the spec's body ``{"errors": [{"code", "message", "detail"}]}``.
Handlers and the layers below them raise :class:`RegistryError` (one or several errors of
one status); the app's middleware turns it into the response, in one place.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

__all__ = ["Code", "ErrorItem", "RegistryError"]


class Code(Enum):
    """An error code of the spec (the last ones are distribution's), with its message and
    the status the reference registry answers it with."""

    BLOB_UNKNOWN = ("blob unknown to registry", 404)
    BLOB_UPLOAD_INVALID = ("blob upload invalid", 400)
    BLOB_UPLOAD_UNKNOWN = ("blob upload unknown to registry", 404)
    DIGEST_INVALID = ("provided digest did not match uploaded content", 400)
    MANIFEST_BLOB_UNKNOWN = ("manifest references a manifest or blob unknown to registry", 400)
    MANIFEST_INVALID = ("manifest invalid", 400)
    MANIFEST_UNKNOWN = ("manifest unknown to registry", 404)
    NAME_INVALID = ("invalid repository name", 400)
    NAME_UNKNOWN = ("repository name not known to registry", 404)
    SIZE_INVALID = ("provided length did not match content length", 400)
    UNAUTHORIZED = ("authentication required", 401)
    DENIED = ("requested access to the resource is denied", 403)
    UNSUPPORTED = ("the operation is unsupported", 405)
    TOOMANYREQUESTS = ("too many requests", 429)
    # The reference registry's own codes, where the spec names none.
    RANGE_INVALID = ("requested range not satisfiable", 416)
    PAGINATION_NUMBER_INVALID = ("invalid number of results requested", 400)
    UNKNOWN = ("unknown error", 500)

    @property
    def message(self) -> str:
        return self.value[0]

    @property
    def status(self) -> int:
        return self.value[1]


@dataclass(frozen=True)
class ErrorItem:
    """One entry of the ``errors`` list."""

    code: str
    message: str
    detail: Any = None

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.detail is not None:
            body["detail"] = self.detail
        return body


@dataclass
class RegistryError(Exception):
    """A request failed with ``status`` and these ``items`` (most often one).

    Build it with :meth:`of`; ``status`` defaults to the code's own (the 416 of a bad
    upload range is a ``BLOB_UPLOAD_INVALID`` with another status, for example).
    """

    status: int
    items: list[ErrorItem] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(
        cls,
        code: Code,
        message: str | None = None,
        detail: Any = None,
        *,
        status: int | None = None,
    ) -> RegistryError:
        item = ErrorItem(code.name, message or code.message, detail)
        return cls(status or code.status, [item])

    def __str__(self) -> str:
        return "; ".join(f"{i.code}: {i.message}" for i in self.items)

    def to_json(self) -> dict[str, Any]:
        return {"errors": [i.to_json() for i in self.items]}
