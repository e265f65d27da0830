"""The relay's JSON-RPC codec: decoding a message, encoding requests, acks and answers.

No state and no I/O: the relay session (``_protocol``) decides what to say, this module says
it in bytes. The common replies (an event's ack) are built from constant pieces rather than
through ``json.dumps``: one is sent for every event.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from json.encoder import encode_basestring_ascii
from typing import Any

__all__ = [
    "MAX_JSON_DEPTH",
    "BadMessage",
    "ack",
    "connect_request",
    "decode_message",
    "method_not_found",
    "new_rpc_id",
    "ping_result",
    "reauthenticate_request",
    "request",
]

#: The deepest nesting of objects and arrays accepted in one JSON-RPC message (an event is
#: about five levels deep plus the message's own metadata).
MAX_JSON_DEPTH = 64


class BadMessage(ValueError):
    """A text message that is not a usable JSON-RPC object (it is skipped, not fatal).

    Attributes:
        rpc_id: The message's ``id`` when the message could be parsed and had a usable one
            (a string or an integer), else ``None``.
        method: The message's ``method`` when it could be parsed and had a string one.
    """

    def __init__(
        self, reason: str, rpc_id: str | int | None = None, method: str | None = None
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.rpc_id = rpc_id
        self.method = method


class _NotJsonConstant(Exception):
    """``NaN``, ``Infinity`` or ``-Infinity`` met by the scanner (Python's json takes them)."""


def _refuse_constant(name: str) -> Any:
    raise _NotJsonConstant(name)


#: The decoder of a relay message: ``json.loads``'s, but refusing NaN and the infinities, which
#: are not JSON (as the REST side refuses them): passed on, they would reach the JSON a user
#: writes out (``tail --json``, the Redis bridge's entries) and break every strict reader.
_DECODER = json.JSONDecoder(parse_constant=_refuse_constant)
#: Its C scanner (the one ``json.loads`` ends in): ``(value, end)`` of the JSON value at an
#: index. (Set in ``__init__``: typeshed lacks it.)
_scan_once: Callable[[str, int], tuple[Any, int]]
_scan_once = _DECODER.scan_once  # type: ignore[attr-defined]


def decode_message(payload: str | bytes, max_depth: int = MAX_JSON_DEPTH) -> dict[str, Any]:
    """Parse one JSON-RPC message on its own.

    Raises:
        BadMessage: not JSON (NaN and the infinities included), not a JSON object, or nested
            deeper than ``max_depth``; the reason never quotes the payload.
    """
    if not isinstance(payload, str):
        try:
            payload = payload.decode()
        except UnicodeDecodeError:
            raise BadMessage("not UTF-8") from None
    try:
        # The C scanner json.loads ends in, called directly: the same parse without its two
        # regex scans for surrounding whitespace (some 2 us of an event's ~45). Anything but
        # one JSON value filling the payload (whitespace around it, a BOM, extra data, no
        # value at all) goes to json.loads, which accepts or refuses it in its own words.
        try:
            msg, end = _scan_once(payload, 0)
        except StopIteration:
            end = -1
        if end != len(payload):
            msg = _DECODER.decode(payload)
    except _NotJsonConstant as exc:
        raise _constant_refused(payload, str(exc)) from None
    except RecursionError:
        raise BadMessage(f"nested deeper than {max_depth} levels") from None
    except ValueError as exc:
        where = f" at offset {exc.pos}" if isinstance(exc, json.JSONDecodeError) else ""
        raise BadMessage(f"not JSON{where}") from None
    if type(msg) is not dict:
        raise BadMessage(f"a JSON {type(msg).__name__}, not an object")
    # Nesting needs one opening bracket per level: most messages are cleared by one count
    # (an event has no array: ``in`` is a memchr, a count reads every character).
    opening = payload.count("{")
    if "[" in payload:
        opening += payload.count("[")
    if opening > max_depth and _too_deep(msg, max_depth):
        rpc_id = msg.get("id")
        method = msg.get("method")
        raise BadMessage(
            f"nested deeper than {max_depth} levels",
            rpc_id if type(rpc_id) is str or type(rpc_id) is int else None,
            method if type(method) is str else None,
        )
    return msg


def _constant_refused(payload: str, name: str) -> BadMessage:
    """The refusal of a message holding ``name`` (NaN, an infinity), with its id and method.

    They are read again leniently, so that an event is still acknowledged (else the relay
    would send it again on every resume); a rare path, off the hot one.
    """
    try:
        msg = json.loads(payload)
    except (ValueError, RecursionError):
        msg = None
    rpc_id = msg.get("id") if type(msg) is dict else None
    method = msg.get("method") if type(msg) is dict else None
    return BadMessage(
        f"holds {name}, which is not JSON",
        rpc_id if type(rpc_id) is str or type(rpc_id) is int else None,
        method if type(method) is str else None,
    )


def _too_deep(obj: Any, limit: int) -> bool:
    stack: list[tuple[Any, int]] = [(obj, 1)]
    while stack:
        node, depth = stack.pop()
        children = node.values() if type(node) is dict else node
        for child in children:
            if type(child) is dict or type(child) is list:
                if depth >= limit:
                    return True
                stack.append((child, depth + 1))
    return False


_ACK_HEAD = b'{"jsonrpc":"2.0","id":'
_ACK_TAIL = b',"result":{}}'


def new_rpc_id() -> str:
    """A random uuid4-shaped request id, as the official client sends.

    Made from ``os.urandom`` directly: the ``uuid`` module would cost the package import
    more than the three requests a connection makes with it.
    """
    raw = bytearray(os.urandom(16))
    raw[6] = (raw[6] & 0x0F) | 0x40  # version 4
    raw[8] = (raw[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _json_id(rpc_id: Any) -> bytes:
    if isinstance(rpc_id, str):
        return encode_basestring_ascii(rpc_id).encode("ascii")
    return json.dumps(rpc_id).encode("ascii")


def ack(rpc_id: Any) -> bytes:
    """The JSON of ``{"jsonrpc":"2.0","id":<rpc_id>,"result":{}}``."""
    if type(rpc_id) is str:  # every event's: without a call more
        return _ACK_HEAD + encode_basestring_ascii(rpc_id).encode("ascii") + _ACK_TAIL
    return _ACK_HEAD + _json_id(rpc_id) + _ACK_TAIL


def ping_result(rpc_id: Any, timestamp: Any) -> bytes:
    """The answer to a server ``signalwire.ping``, echoing its timestamp."""
    return json.dumps(
        {"jsonrpc": "2.0", "id": rpc_id, "result": {"timestamp": timestamp}},
        separators=(",", ":"),
    ).encode("utf-8")


def request(rpc_id: str, method: str, params: dict[str, Any]) -> bytes:
    """A JSON-RPC request."""
    return json.dumps(
        {"jsonrpc": "2.0", "id": rpc_id, "method": method, "params": params},
        separators=(",", ":"),
    ).encode("utf-8")


def connect_request(
    rpc_id: str,
    *,
    token: str,
    agent: str,
    protocol: str | None = None,
    authorization_state: str | None = None,
) -> bytes:
    """``signalwire.connect``, with ``protocol`` and ``authorization_state`` when resuming."""
    params: dict[str, Any] = {
        "version": {"major": 4, "minor": 0, "revision": 0},
        "event_acks": True,
        "agent": agent,
        "authentication": {"jwt_token": token},
    }
    if protocol is not None:
        params["protocol"] = protocol
    if authorization_state is not None:
        params["authorization_state"] = authorization_state
    return request(rpc_id, "signalwire.connect", params)


def reauthenticate_request(rpc_id: str, *, project: str | None, token: str) -> bytes:
    """``signalwire.reauthenticate`` with a fresh token."""
    return request(
        rpc_id,
        "signalwire.reauthenticate",
        {"authentication": {"project": project, "jwt_token": token}},
    )


def method_not_found(rpc_id: Any) -> bytes:
    """The error answer to a request for a method this client does not serve."""
    return json.dumps(
        {"jsonrpc": "2.0", "id": rpc_id, "error": {"code": -32601, "message": "Method not found"}}
    ).encode()
