"""Pull, push and login: ``POST /images/create?fromImage=``, ``POST /images/{name}/push`` and
``POST /auth``. The work is :class:`pydockerd.images.transfer.Transfers`'."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from pydockerd.api.keys import DAEMON
from pydockerd.api.params import json_body
from pydockerd.api.responses import json_response, progress_stream
from pydockerd.errors import InvalidParameter, Unavailable
from pydockerd.images.reference import parse_reference
from pydockerd.images.transfer import Transfers, credentials_from_json, decode_registry_auth

__all__ = ["ROUTES", "pull_image"]

_PLATFORM_PARTS = (2, 3)  # os/arch or os/arch/variant


def _transfers(request: web.Request) -> Transfers:
    transfers = request.app[DAEMON].transfers
    if transfers is None:
        raise Unavailable(
            "no registry transport is available: pulling and pushing need one "
            "(see `pydocker plugin ls`)"
        )
    return transfers


def _platform(value: str) -> str:
    if not value:
        return ""
    parts = value.strip().lower().split("/")
    if len(parts) not in _PLATFORM_PARTS or not all(parts):
        raise InvalidParameter(f'invalid platform "{value}": give os/arch[/variant]')
    return "/".join(parts)


async def pull_image(request: web.Request) -> web.StreamResponse:
    """``POST /images/create?fromImage=<name>&tag=<tag or digest>``; no ``tag`` and no tag
    in the name: every tag (``docker pull -a``)."""
    transfers = _transfers(request)
    query = request.query
    name, tag = query.get("fromImage", ""), query.get("tag", "")
    if not name:
        raise InvalidParameter("fromImage must not be empty")
    platform = _platform(query.get("platform", ""))
    credentials = decode_registry_auth(request.headers.get("X-Registry-Auth"))
    ref = parse_reference(name, default_tag=False)
    if tag:
        ref = parse_reference(f"{ref.name}@{tag}" if ":" in tag else f"{ref.name}:{tag}")
    if ref.tag is None and ref.digest is None:

        async def pull(report: Any) -> None:
            await transfers.pull_all_tags(ref, credentials, report, platform=platform)

    else:

        async def pull(report: Any) -> None:
            await transfers.pull(ref, credentials, report, platform=platform)

    return await progress_stream(request, pull)


async def push_image(request: web.Request) -> web.StreamResponse:
    """``POST /images/{name}/push?tag=``; no tag in either: every tag of the repository."""
    transfers = _transfers(request)
    name, tag = request.match_info["name"], request.query.get("tag", "")
    credentials = decode_registry_auth(request.headers.get("X-Registry-Auth"))
    ref = parse_reference(name, default_tag=False)
    if tag:
        ref = ref.with_tag(tag)
    all_tags = ref.tag is None and ref.digest is None

    async def push(report: Any) -> None:
        await transfers.push(ref, credentials, report, all_tags=all_tags)

    return await progress_stream(request, push)


async def login(request: web.Request) -> web.Response:
    """``POST /auth``: check credentials with the registry (``docker login``)."""
    transfers = _transfers(request)
    body = await json_body(request)
    server = str(body.get("serveraddress") or body.get("ServerAddress") or "")
    token = await transfers.login(server, credentials_from_json(body))
    return json_response({"Status": "Login Succeeded", "IdentityToken": token})


ROUTES = [
    ("POST", "/auth", login),
    ("POST", "/images/{name:.+}/push", push_image),
]
