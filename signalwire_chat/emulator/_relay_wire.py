"""The relay's wire pieces: JSON-RPC error codes, close codes, frame ids and frame text.

Shared by the socket layer (:mod:`._relay_socket`), the per-connection protocol
(:mod:`._relay_session`) and the hub's fan-out (:mod:`._relay`). Nothing here does I/O.
"""

from __future__ import annotations

import itertools
import json
import secrets
import struct
import uuid
from collections.abc import Callable
from typing import Any

from aiohttp import WSCloseCode

AUTHENTICATION_FAILED = -32002
PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603

CLOSE_AUTH_FAILED = int(WSCloseCode.POLICY_VIOLATION)
CLOSE_SLOW_CONSUMER = int(WSCloseCode.TRY_AGAIN_LATER)
CLOSE_GOING_AWAY = int(WSCloseCode.GOING_AWAY)

# An event frame is these pieces around its id and its (shared) encoded params (the
# fan-out in _relay.py splices them itself).
EVENT_HEAD = '{"jsonrpc":"2.0","id":"'
EVENT_MID = '","method":"signalwire.event","params":'
_PACK_LEN2 = struct.Struct("!BBH").pack
_PACK_LEN3 = struct.Struct("!BBQ").pack
_FIN_TEXT = 0x81


def dumps(obj: Any) -> str:
    """Compact JSON, as every frame of the relay is written."""
    return json.dumps(obj, separators=(",", ":"))


def new_id() -> str:
    """A random uuid4 string."""
    return str(uuid.uuid4())


def channel(protocol: str) -> str:
    """The ``event_channel`` of a session's events: it contains the session's protocol.

    The v4 client drops every event whose channel does not contain its ``protocol``.
    """
    return f"signalwire.{protocol}"


def event_frame(event_id: str, params_json: str) -> str:
    """The text of a ``signalwire.event`` request with this id and these encoded params."""
    return "".join((EVENT_HEAD, event_id, EVENT_MID, params_json, "}"))


def text_frames(texts: list[str]) -> bytes:
    """RFC 6455 text frames of these texts, in order, as a server sends them.

    Final, unmasked, uncompressed: the same bytes aiohttp's writer produces for
    ``send_str`` on a socket without compression (section 5.2: 7-bit length, or 126 and a
    16-bit one, or 127 and 64 bits). One loop for the batch a socket writes at once.
    """
    parts: list[bytes] = []
    append = parts.append
    for text in texts:
        payload = text.encode("utf-8")
        size = len(payload)
        if size < 126:
            append(bytes((_FIN_TEXT, size)))
        elif size < 65536:
            append(_PACK_LEN2(_FIN_TEXT, 126, size))
        else:
            append(_PACK_LEN3(_FIN_TEXT, 127, size))
        append(payload)
    return b"".join(parts)


class FrameIds:
    """Unique uuid4-shaped ids for the server's frames, cheaper than ``uuid.uuid4()``.

    A random uuid4 prefix per hub plus a 48-bit counter (starting at a random value below
    2**47, so 2**47 frames fit before it needs a 13th digit) in the last group: unique
    within a hub and unlikely to repeat across hubs, at a fraction of the cost of reading
    the OS's randomness for every event of a fan-out.

    ``next_id`` is the bound ``__next__`` of a C iterator (no Python frame per id), for
    the fan-out's loop; calling the object does the same.
    """

    def __init__(self) -> None:
        prefix = str(uuid.uuid4())[:24]  # hex digits and dashes: no braces to escape
        ids = map((prefix + "{:012x}").format, itertools.count(secrets.randbits(47)))
        self.next_id: Callable[[], str] = ids.__next__

    def __call__(self) -> str:
        return self.next_id()
