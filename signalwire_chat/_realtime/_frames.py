"""Websocket (RFC 6455) framing and the JSON-RPC messages of the relay protocol.

The handshake, TLS and proxies are websocket-client's job (see ``_connection``);
after the handshake the connection reads and writes frames itself with the code
below, because websocket-client's ``recv()`` costs two small ``recv`` system calls
and several Python objects per frame, masks every outgoing frame with a fresh
``os.urandom(4)`` call and sends each one with its own ``send``. Here a large
``recv`` fills a buffer that may hold hundreds of frames, parsing is a few slices
per frame, mask keys come from a pool filled by one ``os.urandom`` call per 1,024
keys, and the acknowledgements of one read are sent with one ``sendall``.
"""

from __future__ import annotations

import json
import os
import struct
from json.encoder import encode_basestring_ascii
from typing import Any

__all__ = [
    "OP_BINARY",
    "OP_CLOSE",
    "OP_CONT",
    "OP_PING",
    "OP_PONG",
    "OP_TEXT",
    "FrameReader",
    "MaskPool",
    "ProtocolViolation",
    "ack",
    "close_frame",
    "connect_request",
    "encode_frame",
    "mask",
    "ping_result",
    "reauthenticate_request",
    "request",
]

OP_CONT = 0x0
OP_TEXT = 0x1
OP_BINARY = 0x2
OP_CLOSE = 0x8
OP_PING = 0x9
OP_PONG = 0xA

_CONTROL = frozenset((OP_CLOSE, OP_PING, OP_PONG))
_DATA = frozenset((OP_CONT, OP_TEXT, OP_BINARY))
_PACK_16 = struct.Struct("!H")
_PACK_64 = struct.Struct("!Q")

#: The largest message accepted from the relay (a chat event is a few KB).
MAX_MESSAGE = 16 * 1024 * 1024


class ProtocolViolation(Exception):
    """The peer broke RFC 6455; the connection must be dropped."""


class MaskPool:
    """Mask keys for client frames, four random bytes each, drawn from a pooled ``os.urandom``."""

    __slots__ = ("_buf", "_pos", "_size")

    def __init__(self, keys_per_fill: int = 1024) -> None:
        self._size = 4 * keys_per_fill
        self._buf = b""
        self._pos = self._size

    def take(self) -> bytes:
        """Return the next unused 4-byte key."""
        pos = self._pos
        if pos >= self._size:
            self._buf = os.urandom(self._size)
            pos = 0
        self._pos = pos + 4
        return self._buf[pos : pos + 4]


def mask(key: bytes, data: bytes) -> bytes:
    """XOR ``data`` with the repeated 4-byte ``key`` (masking and unmasking are the same)."""
    n = len(data)
    if not n:
        return data
    stream = (key * ((n >> 2) + 1))[:n]
    return (int.from_bytes(data, "little") ^ int.from_bytes(stream, "little")).to_bytes(n, "little")


def encode_frame(payload: bytes, key: bytes, opcode: int = OP_TEXT) -> bytes:
    """Encode one final, masked client frame."""
    n = len(payload)
    if n < 126:
        header = bytes((0x80 | opcode, 0x80 | n))
    elif n < 65536:
        header = bytes((0x80 | opcode, 0x80 | 126)) + _PACK_16.pack(n)
    else:
        header = bytes((0x80 | opcode, 0x80 | 127)) + _PACK_64.pack(n)
    return header + key + mask(key, payload)


def close_frame(key: bytes, code: int = 1000) -> bytes:
    """Encode a masked close frame with a status code and no reason."""
    return encode_frame(_PACK_16.pack(code), key, OP_CLOSE)


class FrameReader:
    """Turns bytes read from the socket into complete messages.

    ``feed`` returns ``(opcode, payload)`` pairs: text and binary messages
    (fragments joined) and control frames (ping, pong, close) as they come,
    interleaved where they were sent.
    """

    __slots__ = ("_buf", "_frag_len", "_frag_op", "_frags")

    def __init__(self) -> None:
        self._buf = b""
        self._frag_op: int | None = None
        self._frags: list[bytes] = []
        self._frag_len = 0

    @property
    def buffered(self) -> int:
        """Bytes received and not yet part of a complete frame."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        """Add ``data`` and return every message it completes.

        Raises:
            ProtocolViolation: a masked server frame, reserved bits, a bad
                opcode, a fragmented or oversized control frame, a message over
                ``MAX_MESSAGE``, or fragments out of sequence.
        """
        buf = self._buf + data if self._buf else data
        end = len(buf)
        pos = 0
        out: list[tuple[int, bytes]] = []
        append = out.append
        while end - pos >= 2:
            b0 = buf[pos]
            b1 = buf[pos + 1]
            length = b1 & 0x7F
            if length < 126:
                start = pos + 2
            elif length == 126:
                if end - pos < 4:
                    break
                length = (buf[pos + 2] << 8) | buf[pos + 3]
                start = pos + 4
            else:
                if end - pos < 10:
                    break
                length = _PACK_64.unpack_from(buf, pos + 2)[0]
                start = pos + 10
            if b1 & 0x80 or b0 & 0x70:
                raise ProtocolViolation("masked frame or reserved bits from the server")
            if length > MAX_MESSAGE:
                raise ProtocolViolation("frame too large")
            stop = start + length
            if stop > end:
                break
            payload = buf[start:stop]
            pos = stop
            if b0 == 0x81:  # the common case: a final text frame
                if self._frag_op is not None:
                    raise ProtocolViolation("new message inside a fragmented one")
                append((OP_TEXT, payload))
                continue
            self._frame(b0 & 0x80, b0 & 0x0F, payload, append)
        self._buf = buf[pos:] if pos < end else b""
        return out

    def _frame(self, fin: int, opcode: int, payload: bytes, append: Any) -> None:
        if opcode in _CONTROL:
            if not fin or len(payload) > 125:
                raise ProtocolViolation("fragmented or oversized control frame")
            append((opcode, payload))
            return
        if opcode not in _DATA:
            raise ProtocolViolation(f"unknown opcode {opcode}")
        if opcode == OP_CONT:
            if self._frag_op is None:
                raise ProtocolViolation("continuation without a first fragment")
            self._frags.append(payload)
            self._frag_len += len(payload)
            if self._frag_len > MAX_MESSAGE:
                raise ProtocolViolation("message too large")
            if fin:
                append((self._frag_op, b"".join(self._frags)))
                self._frag_op = None
                self._frags = []
                self._frag_len = 0
            return
        if self._frag_op is not None:
            raise ProtocolViolation("new message inside a fragmented one")
        if fin:
            append((opcode, payload))
        else:
            self._frag_op = opcode
            self._frags = [payload]
            self._frag_len = len(payload)


# --- JSON-RPC -----------------------------------------------------------------

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
