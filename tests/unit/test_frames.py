"""RFC 6455 framing and the relay JSON-RPC messages, as the realtime side builds and parses them."""

from __future__ import annotations

import os
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websocket import ABNF

from signalwire_chat._realtime import RealtimeOptions, _frames
from signalwire_chat._realtime._frames import (
    OP_BINARY,
    OP_CLOSE,
    OP_CONT,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    FrameReader,
    MaskPool,
    ProtocolViolation,
)
from signalwire_chat.errors import InvalidArgumentError, InvalidArgumentTypeError, RealtimeError

#: SIGNALWIRE_HYPOTHESIS_EXAMPLES=5000 for a deeper run than the suite's.
PROPERTY = settings(
    max_examples=int(os.environ.get("SIGNALWIRE_HYPOTHESIS_EXAMPLES", "150")),
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def server_frame(payload: bytes, opcode: int = OP_TEXT, fin: bool = True) -> bytes:
    """An unmasked server frame, built by websocket-client (an independent encoder)."""
    frame = ABNF(fin=int(fin), opcode=opcode, mask_value=False, data=payload)
    return frame.format()


def raw_frame(b0: int, payload: bytes, *, length: int | None = None, form: int = 0) -> bytes:
    """A frame built by hand, to say what a correct encoder never would.

    ``form`` forces the length encoding (7, 16 or 64 bits); ``length`` lies about the size.
    """
    n = len(payload) if length is None else length
    if form == 16 or (not form and 126 <= n < 65536):
        head = bytes((b0, 126)) + struct.pack("!H", n)
    elif form == 64 or (not form and n >= 65536):
        head = bytes((b0, 127)) + struct.pack("!Q", n)
    else:
        head = bytes((b0, n))
    return head + payload


def feed_in_pieces(reader: FrameReader, data: bytes, size: int) -> list[tuple[int, object]]:
    out: list[tuple[int, object]] = []
    for start in range(0, len(data), size):
        out.extend(reader.feed(data[start : start + size]))
    return out


def violation_of(data: bytes, **caps: int) -> ProtocolViolation:
    with pytest.raises(ProtocolViolation) as info:
        FrameReader(**caps).feed(data)
    return info.value


# --- well-formed streams ----------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 1, 125, 126, 127, 65535, 65536, 200_000])
def test_lengths_7_16_and_64_bit(size: int) -> None:
    payload = os.urandom(size)
    reader = FrameReader()
    assert reader.feed(server_frame(payload, OP_BINARY)) == [(OP_BINARY, payload)]
    assert reader.buffered == 0


def test_text_comes_decoded() -> None:
    text = '{"text":"h\u00e9llo \u2603 \U0001f600"}'
    assert FrameReader().feed(server_frame(text.encode())) == [(OP_TEXT, text)]


def test_frames_split_at_every_byte_boundary() -> None:
    frames = ['{"a":1}', "x" * 300, "y" * 70_000]
    data = b"".join(server_frame(p.encode()) for p in frames)
    for cut in (1, 2, 3, 9, 10, 11, 300, 70_000):
        out = feed_in_pieces(FrameReader(), data, cut)
        assert [p for _op, p in out] == frames


def test_many_frames_in_one_read() -> None:
    data = b"".join(server_frame(f"m{i}".encode()) for i in range(1000))
    out = FrameReader().feed(data)
    assert [p for _op, p in out] == [f"m{i}" for i in range(1000)]


def test_fragmented_message_with_control_frames_in_between() -> None:
    data = (
        server_frame(b"hel", OP_TEXT, fin=False)
        + server_frame(b"p1", OP_PING)
        + server_frame(b"lo ", OP_CONT, fin=False)
        + server_frame(b"", OP_PONG)
        + server_frame(b"world", OP_CONT, fin=True)
    )
    out = FrameReader().feed(data)
    assert out == [(OP_PING, b"p1"), (OP_PONG, b""), (OP_TEXT, "hello world")]


def test_a_character_split_across_fragments_is_valid() -> None:
    snowman = "\u2603".encode()  # three bytes
    data = (
        server_frame(snowman[:1], OP_TEXT, fin=False)
        + server_frame(snowman[1:2], OP_CONT, fin=False)
        + server_frame(snowman[2:], OP_CONT)
    )
    assert FrameReader().feed(data) == [(OP_TEXT, "\u2603")]


def test_fragmented_binary_and_empty_fragments() -> None:
    data = (
        server_frame(b"", OP_BINARY, fin=False)
        + server_frame(b"ab", OP_CONT, fin=False)
        + server_frame(b"", OP_CONT, fin=False)
        + server_frame(b"c", OP_CONT)
    )
    assert FrameReader().feed(data) == [(OP_BINARY, b"abc")]


@pytest.mark.parametrize("code", [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012,
                                  1013, 1014, 3000, 3999, 4000, 4999])  # fmt: skip
def test_valid_close_codes_are_read(code: int) -> None:
    payload = struct.pack("!H", code) + "bye \u00e9".encode()
    reader = FrameReader()
    assert reader.feed(server_frame(payload, OP_CLOSE)) == [(OP_CLOSE, payload)]
    assert _frames.close_code(payload) == code
    assert reader.closed


def test_close_without_code_and_nothing_read_after_close() -> None:
    reader = FrameReader()
    data = server_frame(b"", OP_CLOSE) + server_frame(b'{"late":1}') + b"\xff\xff garbage"
    assert reader.feed(data) == [(OP_CLOSE, b"")]
    assert _frames.close_code(b"") is None
    assert reader.feed(server_frame(b"more")) == []


# --- refused streams --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (ABNF(fin=1, opcode=OP_TEXT, mask_value=True, data=b"masked").format(), 1002),
        (bytes((0x80 | 0x40 | OP_TEXT, 1)) + b"x", 1002),  # RSV1 (compression not negotiated)
        (bytes((0x80 | 0x20 | OP_BINARY, 1)) + b"x", 1002),  # RSV2
        (bytes((0x80 | 0x10 | OP_PING, 0)), 1002),  # RSV3
        (bytes((0x83, 1)) + b"x", 1002),  # reserved data opcode
        (bytes((0x8B, 0)), 1002),  # reserved control opcode
        (server_frame(b"p", OP_PING, fin=False), 1002),  # fragmented control frame
        (server_frame(b"c", OP_CONT), 1002),  # continuation without a start
        (raw_frame(0x89, b"x" * 126), 1002),  # control frame over 125
        (raw_frame(0x8A, b"x" * 126), 1002),  # pong over 125
        (raw_frame(0x88, b"\x03\xe8" + b"x" * 124), 1002),  # close over 125
        (server_frame(b"a", OP_TEXT, fin=False) + server_frame(b"b"), 1002),  # new mid-fragment
        (server_frame(b"a", OP_TEXT, fin=False) + server_frame(b"b", OP_BINARY), 1002),
        (raw_frame(0x81, b"short", form=16), 1002),  # 16-bit length for 5 bytes
        (raw_frame(0x82, b"x" * 300, form=64), 1002),  # 64-bit length for 300 bytes
        (bytes((0x82, 127)) + struct.pack("!Q", 1 << 63), 1002),  # length's top bit set
        (server_frame(b"\x03", OP_CLOSE), 1002),  # a one-byte close payload
        (server_frame(b"\xc3\x28"), 1007),  # bad UTF-8
        (server_frame(b"\xed\xa0\x80"), 1007),  # an encoded surrogate is not UTF-8
        (server_frame(b"ok\xf0\x9f"), 1007),  # truncated sequence at the end
        (server_frame(b"\x03\xe8\xff", OP_CLOSE), 1007),  # close reason not UTF-8
    ],
)
def test_protocol_violations_are_refused_with_the_right_code(data: bytes, code: int) -> None:
    violation = violation_of(data)
    assert violation.close_code == code
    assert isinstance(violation, RealtimeError)
    assert isinstance(violation, ValueError)


@pytest.mark.parametrize("code", [0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000,
                                  65535])  # fmt: skip
def test_close_codes_that_may_not_be_sent_are_refused(code: int) -> None:
    violation = violation_of(server_frame(struct.pack("!H", code), OP_CLOSE))
    assert violation.close_code == 1002
    assert str(code) in str(violation)


def test_bad_utf8_is_refused_at_the_fragment_that_carries_it() -> None:
    reader = FrameReader()
    assert reader.feed(server_frame(b"fine ", OP_TEXT, fin=False)) == []
    with pytest.raises(ProtocolViolation) as info:
        reader.feed(server_frame(b"\xff", OP_CONT, fin=False))  # not final: refused at once
    assert info.value.close_code == 1007


def test_truncated_utf8_at_the_last_fragment_is_refused() -> None:
    data = server_frame(b"ok", OP_TEXT, fin=False) + server_frame(b"\xe2\x98", OP_CONT)
    assert violation_of(data).close_code == 1007


def test_messages_before_a_violation_are_kept_and_the_reader_stays_failed() -> None:
    reader = FrameReader()
    data = server_frame(b'{"n":1}') + server_frame(b"p", OP_PING) + bytes((0x83, 0))
    with pytest.raises(ProtocolViolation) as info:
        reader.feed(data)
    assert info.value.messages == [(OP_TEXT, '{"n":1}'), (OP_PING, b"p")]
    with pytest.raises(ProtocolViolation) as again:
        reader.feed(server_frame(b'{"n":2}'))
    assert again.value.messages == []
    assert again.value.close_code == 1002


# --- caps ---------------------------------------------------------------------------------------


def test_an_oversized_message_is_refused_from_its_header_alone() -> None:
    reader = FrameReader(max_message_size=1000)
    assert reader.feed(server_frame(b"x" * 1000)) == [(OP_TEXT, "x" * 1000)]
    header_only = bytes((0x82, 127)) + struct.pack("!Q", 1 << 40)
    with pytest.raises(ProtocolViolation) as info:
        FrameReader().feed(header_only)  # the default cap, nothing of the payload sent
    assert info.value.close_code == 1009
    assert violation_of(raw_frame(0x81, b"x" * 1001), max_message_size=1000).close_code == 1009


def test_the_size_cap_counts_every_fragment() -> None:
    data = server_frame(b"x" * 600, OP_TEXT, fin=False) + server_frame(b"y" * 600, OP_CONT)
    assert violation_of(data, max_message_size=1000).close_code == 1009
    assert FrameReader(max_message_size=1200).feed(data) == [(OP_TEXT, "x" * 600 + "y" * 600)]


def test_endless_empty_continuations_are_capped() -> None:
    reader = FrameReader(max_fragments=10)
    assert reader.feed(server_frame(b"a", OP_TEXT, fin=False)) == []
    empty = server_frame(b"", OP_CONT, fin=False)
    assert reader.feed(empty * 9) == []
    with pytest.raises(ProtocolViolation) as info:
        reader.feed(empty)
    assert info.value.close_code == 1009


def test_a_message_at_the_fragment_cap_is_accepted() -> None:
    data = server_frame(b"a", OP_TEXT, fin=False)
    data += server_frame(b"b", OP_CONT, fin=False) * 8 + server_frame(b"c", OP_CONT)
    assert FrameReader(max_fragments=10).feed(data) == [(OP_TEXT, "a" + "b" * 8 + "c")]


def test_an_incomplete_frame_is_not_parsed_again_until_it_can_be_complete() -> None:
    """Linear reading: small reads of a big frame only append; one parse at the end."""
    payload = b"z" * (1 << 20)
    data = server_frame(payload, OP_BINARY) + server_frame(b"next")
    reader = FrameReader()
    calls = 0
    parse = FrameReader._parse

    def counting(self: FrameReader, buf: bytes, out: list[_frames.Message]) -> int:
        nonlocal calls
        calls += 1
        return parse(self, buf, out)

    FrameReader._parse = counting  # type: ignore[method-assign]
    try:
        out = feed_in_pieces(reader, data, 4096)
    finally:
        FrameReader._parse = parse  # type: ignore[method-assign]
    assert out == [(OP_BINARY, payload), (OP_TEXT, "next")]
    # The first piece (header seen), the piece completing the frame, and the last frame.
    assert calls <= 3
    assert reader.buffered == 0


# --- properties ---------------------------------------------------------------------------------

control_payloads = st.binary(max_size=125)
texts = st.text(max_size=300)
binaries = st.binary(max_size=300)


@st.composite
def streams(draw: st.DrawFn) -> tuple[bytes, list[tuple[int, object]]]:
    """A valid stream of messages (some fragmented, with control frames between the fragments)
    and the messages a reader must return for it."""
    data, expected, _shapes = draw(shaped_streams())
    return data, expected


@st.composite
def shaped_streams(
    draw: st.DrawFn,
) -> tuple[bytes, list[tuple[int, object]], list[tuple[int, int]]]:
    """As ``streams``, with the (bytes, frames) of each data message."""
    data = b""
    expected: list[tuple[int, object]] = []
    shapes: list[tuple[int, int]] = []
    for _ in range(draw(st.integers(0, 8))):
        kind = draw(st.sampled_from(["text", "binary", "ping", "pong"]))
        if kind in ("ping", "pong"):
            payload = draw(control_payloads)
            opcode = OP_PING if kind == "ping" else OP_PONG
            data += server_frame(payload, opcode)
            expected.append((opcode, payload))
            continue
        if kind == "text":
            value: object = draw(texts)
            raw = str(value).encode()
            opcode = OP_TEXT
        else:
            raw = draw(binaries)
            value, opcode = raw, OP_BINARY
        cuts = sorted(draw(st.lists(st.integers(0, len(raw)), max_size=4)))
        pieces = [raw[a:b] for a, b in zip([0, *cuts], [*cuts, len(raw)], strict=True)]
        controls: list[tuple[int, object]] = []
        for i, piece in enumerate(pieces):
            last = i == len(pieces) - 1
            data += server_frame(piece, opcode if i == 0 else OP_CONT, fin=last)
            if not last and draw(st.booleans()):
                ping = draw(control_payloads)
                data += server_frame(ping, OP_PING)
                controls.append((OP_PING, ping))
        expected.extend(controls)
        expected.append((opcode, value))
        shapes.append((len(raw), len(pieces)))
    if draw(st.booleans()):
        close = struct.pack("!H", draw(st.sampled_from([1000, 1001, 1011, 4000])))
        data += server_frame(close, OP_CLOSE)
        expected.append((OP_CLOSE, close))
    return data, expected, shapes


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]


@PROPERTY
@given(streams(), st.lists(st.integers(0, 1 << 20), max_size=30))
def test_any_split_of_the_stream_gives_the_same_messages(
    stream: tuple[bytes, list[tuple[int, object]]], cuts: list[int]
) -> None:
    data, expected = stream
    reader = FrameReader()
    out: list[tuple[int, object]] = []
    for piece in split(data, cuts):
        out.extend(reader.feed(piece))
    assert out == expected
    assert reader.buffered == 0


@PROPERTY
@given(
    shaped_streams(),
    st.integers(1, 400),
    st.integers(1, 6),
    st.lists(st.integers(0, 1 << 20), max_size=10),
)
def test_caps_refuse_exactly_the_messages_over_them(
    stream: tuple[bytes, list[tuple[int, object]], list[tuple[int, int]]],
    max_size: int,
    max_fragments: int,
    cuts: list[int],
) -> None:
    data, expected, shapes = stream
    over = any(size > max_size or frames > max_fragments for size, frames in shapes)
    reader = FrameReader(max_message_size=max_size, max_fragments=max_fragments)
    out: list[tuple[int, object]] = []
    code = None
    try:
        for piece in split(data, cuts):
            out.extend(reader.feed(piece))
    except ProtocolViolation as exc:
        out.extend(exc.messages)
        code = exc.close_code
    if over:
        assert code == 1009
        assert out == expected[: len(out)]
        assert len(out) < len(expected)
    else:
        assert code is None
        assert out == expected


@pytest.mark.parametrize(
    ("option", "value", "error"),
    [
        ("max_message_size", 0, InvalidArgumentError),
        ("max_message_size", 1.5, InvalidArgumentTypeError),
        ("max_fragments", 0, InvalidArgumentError),
        ("max_fragments", True, InvalidArgumentTypeError),
    ],
)
def test_cap_options_are_checked(option: str, value: object, error: type[Exception]) -> None:
    with pytest.raises(error):
        RealtimeOptions(**{option: value})  # type: ignore[arg-type]


def test_cap_options_default_to_the_documented_values() -> None:
    options = RealtimeOptions()
    assert options.max_message_size == 16 * 1024 * 1024
    assert options.max_fragments == 4096


@st.composite
def corrupted(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(streams())[0])
    for _ in range(draw(st.integers(1, 6))):
        action = draw(st.sampled_from(["flip", "insert", "delete", "set"]))
        at = draw(st.integers(0, len(data)))
        if action == "insert" or not data:
            data[at:at] = draw(st.binary(min_size=1, max_size=12))
        elif action == "delete":
            del data[min(at, len(data) - 1)]
        elif action == "flip":
            data[min(at, len(data) - 1)] ^= 1 << draw(st.integers(0, 7))
        else:
            data[min(at, len(data) - 1)] = draw(st.integers(0, 255))
    return bytes(data)


@PROPERTY
@given(corrupted(), st.lists(st.integers(0, 1 << 20), max_size=20))
def test_corruption_never_raises_anything_but_a_protocol_violation(
    data: bytes, cuts: list[int]
) -> None:
    reader = FrameReader(max_message_size=4096, max_fragments=16)
    code = None
    try:
        for piece in split(data, cuts):
            for opcode, payload in reader.feed(piece):
                assert opcode in (OP_TEXT, OP_BINARY, OP_PING, OP_PONG, OP_CLOSE)
                assert isinstance(payload, str if opcode == OP_TEXT else bytes)
    except ProtocolViolation as exc:
        code = exc.close_code
    assert code in (None, 1002, 1007, 1009)


def wsproto_outcome(data: bytes) -> tuple[list[tuple[int, object]], bool, bool]:
    """What wsproto (the reference implementation) makes of the same bytes, as our_outcome."""
    from wsproto.frame_protocol import FrameProtocol, Opcode, ParseFailed

    proto = FrameProtocol(client=True, extensions=[])
    proto.receive_bytes(data)
    out: list[tuple[int, object]] = []
    parts: list[object] = []
    first: int | None = None
    try:
        for frame in proto.received_frames():
            opcode = int(frame.opcode)
            if frame.opcode.iscontrol():
                if frame.opcode is Opcode.CLOSE:
                    code, reason = frame.payload  # type: ignore[misc]
                    body = b"" if code == 1005 else struct.pack("!H", code) + reason.encode()
                    out.append((OP_CLOSE, body))
                else:
                    out.append((opcode, bytes(frame.payload)))  # type: ignore[arg-type]
                continue
            if first is None:
                first = opcode
            parts.append(frame.payload)
            if frame.message_finished:
                if first == OP_TEXT:
                    out.append((OP_TEXT, "".join(parts)))  # type: ignore[arg-type]
                else:
                    out.append((first, b"".join(bytes(p) for p in parts)))  # type: ignore[arg-type]
                parts, first = [], None
    except ParseFailed:
        return out, True, False
    decoder = proto._frame_decoder
    return out, False, decoder.header is not None or len(decoder.buffer) > 0


def our_outcome(data: bytes) -> tuple[list[tuple[int, object]], bool, bool]:
    """(messages, violation found, an incomplete frame left over)."""
    reader = FrameReader()
    try:
        return list(reader.feed(data)), False, reader.buffered > 0
    except ProtocolViolation as exc:
        return list(exc.messages), True, False


@PROPERTY
@given(st.one_of(corrupted(), streams().map(lambda s: s[0])))
def test_same_verdict_and_messages_as_wsproto(data: bytes) -> None:
    pytest.importorskip("wsproto")
    messages, failed, incomplete = our_outcome(data)
    # 1014 (bad gateway) is in the IANA registry; wsproto's list stops at 1013.
    last = messages[-1] if messages else (0, b"")
    if last[0] == OP_CLOSE and _frames.close_code(last[1]) == 1014:  # type: ignore[arg-type]
        return
    theirs, their_failed, their_incomplete = wsproto_outcome(data)
    assert messages == theirs
    # On a stream that ends inside a frame, one may have refused it already: wsproto checks
    # the UTF-8 of a text frame as its bytes come, we check it when the frame is complete;
    # we refuse a continuation without a start from its header, wsproto from its payload.
    assert failed == their_failed or (incomplete and their_failed) or (their_incomplete and failed)


# --- frames we send -----------------------------------------------------------------------------


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


def test_frames_encoded_in_a_batch_equal_frames_encoded_one_at_a_time() -> None:
    sizes = [0, 1, 3, 4, 5, 73, 125, 126, 127, 4096, 65535, 65536, 70_000]
    payloads = [os.urandom(n) for n in sizes]
    keys = [os.urandom(4) for _ in sizes]
    one_by_one = b"".join(_frames.encode_frame(p, k) for p, k in zip(payloads, keys, strict=True))
    assert _frames.encode_frames(payloads, iter(keys).__next__) == one_by_one
    for count in (1, 2):  # the single-frame shortcut, and the smallest batch
        expected = b"".join(
            _frames.encode_frame(p, k) for p, k in zip(payloads[:count], keys, strict=False)
        )
        assert _frames.encode_frames(payloads[:count], iter(keys).__next__) == expected


@PROPERTY
@given(st.lists(st.integers(min_value=0, max_value=9), max_size=12))
def test_keys_taken_many_at_a_time_are_the_keys_taken_one_at_a_time(counts: list[int]) -> None:
    """A pool of 4 keys per fill, drawn in runs that cross refills: the same key sequence."""
    seed = iter(range(1_000_000))
    fills: list[bytes] = []

    def urandom(n: int) -> bytes:
        fills.append(bytes(next(seed) % 256 for _ in range(n)))
        return fills[-1]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_frames.os, "urandom", urandom)
        pool = MaskPool(keys_per_fill=4)
        many = [pool.take_many(count) for count in counts]
        fills_many = list(fills)
        fills.clear()
        seed = iter(range(1_000_000))
        pool = MaskPool(keys_per_fill=4)
        one_by_one = [b"".join(pool.take() for _ in range(count)) for count in counts]
    assert many == one_by_one
    assert fills == fills_many  # as many os.urandom calls, the same bytes


def test_the_websocket_layer_sends_a_batch_as_frames_encoded_one_at_a_time() -> None:
    from signalwire_chat._realtime._websocket import WebSocketConnection

    payloads = [b'{"jsonrpc":"2.0","id":"%d","result":{}}' % i for i in range(40)]
    payloads.append(os.urandom(300))  # an ack is short; a longer frame takes another header
    link = WebSocketConnection(masks=MaskPool(keys_per_fill=8))
    data = link.send(payloads)
    expected = []
    keys = set()
    pos = 0
    for payload in payloads:
        head = 2 if len(payload) < 126 else 4
        key = data[pos + head : pos + head + 4]
        keys.add(key)
        frame = _frames.encode_frame(payload, key)
        expected.append(frame)
        pos += len(frame)
    assert data == b"".join(expected)
    assert len(keys) > 30  # a fresh key per frame


@PROPERTY
@given(st.lists(st.binary(max_size=300), min_size=1, max_size=20))
def test_a_batch_reads_back_as_its_payloads(payloads: list[bytes]) -> None:
    """Each frame of a batch unmasks, with its own key, to its payload (websocket-client's mask)."""
    pool = MaskPool(keys_per_fill=4)
    data = _frames.encode_frames(payloads, pool.take)
    pos = 0
    seen_keys = []
    for payload in payloads:
        assert data[pos] == 0x81
        length = data[pos + 1] & 0x7F
        pos += 2
        if length == 126:
            length = struct.unpack("!H", data[pos : pos + 2])[0]
            pos += 2
        key = data[pos : pos + 4]
        seen_keys.append(key)
        body = data[pos + 4 : pos + 4 + length]
        assert ABNF.mask(key, body) == payload
        pos += 4 + length
    assert pos == len(data)
    assert len(set(seen_keys)) == len(seen_keys)  # a fresh key for each frame


def test_close_frame_carries_the_code() -> None:
    key = b"\x01\x02\x03\x04"
    frame = _frames.close_frame(key, 1000)
    assert frame[0] == 0x80 | OP_CLOSE
    assert _frames.mask(key, frame[6:]) == struct.pack("!H", 1000)
