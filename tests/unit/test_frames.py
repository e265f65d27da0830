"""RFC 6455 framing and the relay JSON-RPC messages, as the realtime side builds and parses them."""

from __future__ import annotations

import json
import os
import struct

import pytest
from websocket import ABNF

from signalwire_chat._realtime import _frames
from signalwire_chat._realtime._frames import (
    OP_CLOSE,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    FrameReader,
    MaskPool,
    ProtocolViolation,
)


def server_frame(payload: bytes, opcode: int = OP_TEXT, fin: bool = True) -> bytes:
    """An unmasked server frame, built by websocket-client (an independent encoder)."""
    frame = ABNF(fin=int(fin), opcode=opcode, mask_value=False, data=payload)
    return frame.format()


@pytest.mark.parametrize("size", [0, 1, 125, 126, 127, 65535, 65536, 200_000])
def test_lengths_7_16_and_64_bit(size: int) -> None:
    payload = os.urandom(size)
    reader = FrameReader()
    assert reader.feed(server_frame(payload, 0x2)) == [(0x2, payload)]
    assert reader.buffered == 0


def test_frames_split_at_every_byte_boundary() -> None:
    frames = [b'{"a":1}', b"x" * 300, b"y" * 70_000]
    data = b"".join(server_frame(p) for p in frames)
    for cut in (1, 2, 3, 9, 10, 11, 300, 70_000):
        reader = FrameReader()
        out = []
        for start in range(0, len(data), cut):
            out.extend(reader.feed(data[start : start + cut]))
        assert [p for _op, p in out] == frames


def test_many_frames_in_one_read() -> None:
    data = b"".join(server_frame(f"m{i}".encode()) for i in range(1000))
    out = FrameReader().feed(data)
    assert [p for _op, p in out] == [f"m{i}".encode() for i in range(1000)]


def test_fragmented_message_with_control_frames_in_between() -> None:
    data = (
        server_frame(b"hel", OP_TEXT, fin=False)
        + server_frame(b"p1", OP_PING)
        + server_frame(b"lo ", 0x0, fin=False)
        + server_frame(b"", OP_PONG)
        + server_frame(b"world", 0x0, fin=True)
    )
    out = FrameReader().feed(data)
    assert out == [(OP_PING, b"p1"), (OP_PONG, b""), (OP_TEXT, b"hello world")]


@pytest.mark.parametrize(
    "data",
    [
        ABNF(
            fin=1, opcode=OP_TEXT, mask_value=True, data=b"masked"
        ).format(),  # masked server frame
        bytes((0x80 | 0x40 | OP_TEXT, 1)) + b"x",  # reserved bit (compression not negotiated)
        bytes((0x83, 1)) + b"x",  # unknown opcode
        server_frame(b"p", OP_PING, fin=False),  # fragmented control frame
        server_frame(b"c", 0x0),  # continuation without a start
        bytes((0x89, 126)) + struct.pack("!H", 126) + b"x" * 126,  # control frame over 125
        server_frame(b"a", OP_TEXT, fin=False) + server_frame(b"b"),  # new message mid-fragment
    ],
)
def test_protocol_violations_are_refused(data: bytes) -> None:
    with pytest.raises(ProtocolViolation):
        FrameReader().feed(data)


def test_client_frames_are_masked_and_decode_with_websocket_client() -> None:
    pool = MaskPool(keys_per_fill=4)
    keys = {pool.take() for _ in range(64)}
    assert all(len(k) == 4 for k in keys)
    assert len(keys) > 32  # fresh keys, not one key reused
    for size in (0, 5, 125, 126, 65536):
        payload = os.urandom(size)
        key = pool.take()
        frame = _frames.encode_frame(payload, key)
        assert frame[0] == 0x81
        assert frame[1] & 0x80  # the mask bit
        # Parse it back by hand and unmask with websocket-client's own routine.
        length = frame[1] & 0x7F
        offset = 2
        if length == 126:
            length = struct.unpack("!H", frame[2:4])[0]
            offset = 4
        elif length == 127:
            length = struct.unpack("!Q", frame[2:10])[0]
            offset = 10
        assert frame[offset : offset + 4] == key
        body = frame[offset + 4 :]
        assert len(body) == length
        assert ABNF.mask(key, body) == payload


def test_close_frame_carries_the_code() -> None:
    key = b"\x01\x02\x03\x04"
    frame = _frames.close_frame(key, 1000)
    assert frame[0] == 0x80 | OP_CLOSE
    assert _frames.mask(key, frame[6:]) == struct.pack("!H", 1000)


def test_ack_and_ping_result_shapes() -> None:
    assert json.loads(_frames.ack("abc-1")) == {"jsonrpc": "2.0", "id": "abc-1", "result": {}}
    assert json.loads(_frames.ack('we"ird\\')) == {
        "jsonrpc": "2.0",
        "id": 'we"ird\\',
        "result": {},
    }
    assert json.loads(_frames.ack(7))["id"] == 7
    assert json.loads(_frames.ping_result("p", 1795616962.3734279)) == {
        "jsonrpc": "2.0",
        "id": "p",
        "result": {"timestamp": 1795616962.3734279},
    }


def test_connect_request_matches_the_protocol() -> None:
    first = json.loads(_frames.connect_request("id1", token="T", agent="lib/1.0"))
    assert first == {
        "jsonrpc": "2.0",
        "id": "id1",
        "method": "signalwire.connect",
        "params": {
            "version": {"major": 4, "minor": 0, "revision": 0},
            "event_acks": True,
            "agent": "lib/1.0",
            "authentication": {"jwt_token": "T"},
        },
    }
    again = json.loads(
        _frames.connect_request(
            "id2", token="T", agent="lib/1.0", protocol="signalwire_x", authorization_state="st"
        )
    )
    assert again["params"]["protocol"] == "signalwire_x"
    assert again["params"]["authorization_state"] == "st"


def test_reauthenticate_request() -> None:
    msg = json.loads(_frames.reauthenticate_request("r", project="p1", token="T2"))
    assert msg["method"] == "signalwire.reauthenticate"
    assert msg["params"] == {"authentication": {"project": "p1", "jwt_token": "T2"}}


def test_rpc_ids_are_random_uuid4_strings() -> None:
    import uuid

    ids = {_frames.new_rpc_id() for _ in range(1000)}
    assert len(ids) == 1000
    for rpc_id in list(ids)[:50]:
        parsed = uuid.UUID(rpc_id)
        assert str(parsed) == rpc_id
        assert parsed.version == 4
        assert parsed.variant == uuid.RFC_4122
