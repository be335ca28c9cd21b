"""The daemon ↔ supervisor protocol, over the supervisor's unix socket.

Two kinds of connections:

**Control** (one per daemon, long-lived). Each side writes JSON objects, one per line.
The daemon sends requests ``{"seq": 7, "op": "kill", "id": "<container>", ...}``; the
supervisor answers each with ``{"seq": 7, "ok": true, "result": ...}`` or ``{"seq": 7, "ok":
false, "error": "...", "category": "NotFound"}`` (an error class of :mod:`pydockerd.errors`,
or ``StartError``), in any order, and pushes events ``{"event": "exit", ...}`` whenever a
container or exec process ends (see :class:`pydockerd.supervisor.server.Supervisor`).

**Stream** (one per attach or exec). The daemon writes one JSON line (``{"op": "attach", ...}``
or ``{"op": "exec", ...}``), the supervisor answers one JSON line, and from then on the
connection carries raw bytes: the daemon's are the process's stdin (a half-close is stdin's
end), the supervisor's are :func:`frame` d output: ``[stream:u8][0][0][0][length:u32 BE]``
then the payload, the Engine API's multiplexed framing, with stream 1 stdout, 2 stderr and
:data:`EXIT_STREAM` for the last frame of an exec (its payload ``{"exit_code": n}``). The
supervisor closes the connection when the output has ended.
"""

from __future__ import annotations

import asyncio
import json
import struct
from typing import Any

__all__ = [
    "EXIT_STREAM",
    "HEADER",
    "STDERR",
    "STDOUT",
    "frame",
    "read_frame",
    "read_message",
    "write_message",
]

STDOUT = 1
STDERR = 2
EXIT_STREAM = 255
HEADER = struct.Struct(">BxxxL")
_LINE_LIMIT = 16 * 1024 * 1024  # a container spec with many mounts is still far below this


def frame(stream: int, payload: bytes) -> bytes:
    """One frame of the multiplexed stream."""
    return HEADER.pack(stream, len(payload)) + payload


async def read_frame(reader: asyncio.StreamReader) -> tuple[int, bytes] | None:
    """The next ``(stream, payload)``, or ``None`` at the end of the connection."""
    try:
        header = await reader.readexactly(HEADER.size)
        stream, length = HEADER.unpack(header)
        return stream, await reader.readexactly(length)
    except asyncio.IncompleteReadError:
        return None


def encode(message: dict[str, Any]) -> bytes:
    return json.dumps(message, separators=(",", ":")).encode() + b"\n"


def write_message(writer: asyncio.StreamWriter, message: dict[str, Any]) -> None:
    writer.write(encode(message))


async def read_message(reader: asyncio.StreamReader) -> dict[str, Any] | None:
    """The next JSON line, or ``None`` at the end of the connection."""
    line = await reader.readline()
    if not line:
        return None
    message = json.loads(line)
    if not isinstance(message, dict):
        raise ValueError(f"expected a JSON object, got {line[:80]!r}")
    return message


def stream_limit() -> int:
    """The reader limit both ends use (lines may be long: specs, snapshots)."""
    return _LINE_LIMIT
