"""Websocket frames for the unit tests: server frames built by hand, client frames read back."""

from __future__ import annotations

import struct

from signalwire_chat._realtime._frames import OP_TEXT, mask


def server(payload: bytes, opcode: int = OP_TEXT) -> bytes:
    """A final, unmasked server frame of under 64 KiB."""
    n = len(payload)
    if n < 126:
        return bytes((0x80 | opcode, n)) + payload
    return bytes((0x80 | opcode, 126)) + struct.pack("!H", n) + payload


def client_frames(data: bytes) -> list[tuple[int, bytes]]:
    """Unmask the client's frames (each final, masked, under 64 KiB)."""
    out = []
    pos = 0
    while pos < len(data):
        b0, b1 = data[pos], data[pos + 1]
        assert b0 & 0x80  # final, as a client sends
        assert b1 & 0x80  # masked, as a client must send
        n = b1 & 0x7F
        pos += 2
        if n == 126:
            n = struct.unpack_from("!H", data, pos)[0]
            pos += 2
        key = data[pos : pos + 4]
        out.append((b0 & 0x0F, mask(key, data[pos + 4 : pos + 4 + n])))
        pos += 4 + n
    return out
