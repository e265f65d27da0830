"""Just enough RFC 6455 for the bench processes: handshakes, frame encoding and a frame parser."""

from __future__ import annotations

import base64
import hashlib
import os
import socket
import struct

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


def accept_key(key: bytes) -> bytes:
    """Return the Sec-WebSocket-Accept value for a client's Sec-WebSocket-Key."""
    return base64.b64encode(hashlib.sha1(key.strip() + GUID).digest())


def frame_header(opcode: int, length: int, *, masked: bool = False, fin: bool = True) -> bytes:
    """Return the header of one frame (final unless ``fin`` is false) of ``length`` bytes."""
    first = (0x80 if fin else 0) | opcode
    mask_bit = 0x80 if masked else 0
    if length < 126:
        return struct.pack("!BB", first, mask_bit | length)
    if length < 65536:
        return struct.pack("!BBH", first, mask_bit | 126, length)
    return struct.pack("!BBQ", first, mask_bit | 127, length)


def server_frame(payload: bytes, opcode: int = OP_TEXT, *, fin: bool = True) -> bytes:
    """Return an unmasked (server to client) frame, final unless ``fin`` is false."""
    return frame_header(opcode, len(payload), fin=fin) + payload


def client_frame(payload: bytes, opcode: int = OP_TEXT) -> bytes:
    """Return a masked (client to server) frame with a random mask."""
    mask = os.urandom(4)
    return frame_header(opcode, len(payload), masked=True) + mask + unmask(payload, mask)


def unmask(payload: bytes, mask: bytes) -> bytes:
    """Apply (or remove) a 4-byte WebSocket mask with one big-integer XOR."""
    length = len(payload)
    if not length:
        return payload
    key = (mask * (length // 4 + 1))[:length]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(key, "big")).to_bytes(length, "big")


class FrameReader:
    """Incremental parser: feed bytes, take whole messages (opcode, payload) out."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._parts: list[bytes] = []
        self._part_op = OP_TEXT

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        """Add received bytes; return every message now complete, in order."""
        buf = self._buf
        buf += data
        out: list[tuple[int, bytes]] = []
        pos = 0
        end = len(buf)
        while end - pos >= 2:
            b0 = buf[pos]
            b1 = buf[pos + 1]
            length = b1 & 0x7F
            head = 2
            if length == 126:
                if end - pos < 4:
                    break
                length = (buf[pos + 2] << 8) | buf[pos + 3]
                head = 4
            elif length == 127:
                if end - pos < 10:
                    break
                length = int.from_bytes(buf[pos + 2 : pos + 10], "big")
                head = 10
            masked = b1 & 0x80
            if masked:
                head += 4
            if end - pos < head + length:
                break
            payload = bytes(buf[pos + head : pos + head + length])
            if masked:
                payload = unmask(payload, bytes(buf[pos + head - 4 : pos + head]))
            pos += head + length
            opcode = b0 & 0x0F
            if opcode == OP_CONT or not b0 & 0x80:
                # Fragmented message: keep the parts until the final one.
                if opcode != OP_CONT:
                    self._part_op = opcode
                self._parts.append(payload)
                if b0 & 0x80:
                    out.append((self._part_op, b"".join(self._parts)))
                    self._parts = []
                continue
            out.append((opcode, payload))
        del buf[:pos]
        return out


def read_http_head(sock: socket.socket, pending: bytes = b"") -> tuple[bytes, bytes]:
    """Read from ``sock`` until the end of an HTTP head; return (head, bytes after it)."""
    data = pending
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("peer closed during the HTTP head")
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    return head, rest


def parse_headers(head: bytes) -> tuple[str, str, dict[str, str]]:
    """Return (method, target, lower-cased headers) of an HTTP request head."""
    lines = head.decode("latin-1").split("\r\n")
    method, target, _ = lines[0].split(" ", 2)
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return method, target, headers


def server_handshake_response(headers: dict[str, str]) -> bytes:
    """Return the 101 response accepting a WebSocket upgrade (no extension, no subprotocol)."""
    key = accept_key(headers["sec-websocket-key"].encode())
    return (
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: " + key + b"\r\n\r\n"
    )


def client_handshake(sock: socket.socket, host: str, path: str = "/") -> bytes:
    """Perform the client side of the opening handshake; return bytes read past the head."""
    key = base64.b64encode(os.urandom(16))
    request = (
        f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key.decode()}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    ).encode()
    sock.sendall(request)
    head, rest = read_http_head(sock)
    status = head.split(b"\r\n", 1)[0]
    if b" 101 " not in status + b" ":
        raise ConnectionError(f"handshake refused: {status!r}")
    return rest
