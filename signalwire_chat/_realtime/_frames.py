"""Websocket (RFC 6455) framing: the frame reader and the encoders of client frames.

The handshake, TLS and proxies are websocket-client's job (see ``_connection``); after the
handshake the connection reads and writes frames itself with the code below.

Why a reader of our own. Three candidates were fed the same bytes in one process, each
returning complete messages with text checked as UTF-8 (``python benchmarks/frames.py``: CPU
of one pinned core, median of 5, on a shared 2-core machine; ``make bench`` reports the ratios)::

    workload                                ours      wsproto 1.3   websocket-client 1.9 _abnf
    700-byte events, 256 KiB reads          2.5 us    19.4 us       275 us       (per event)
    16 MiB message, 16 KiB reads            48 ms     68 ms         7.3 s
    16 MiB message, 256 KiB reads           44 ms     46 ms         7.2 s
    16 MiB in 4,096 fragments of 4 KiB      59 ms     117 ms        14.8 s

The reader this module had before re-joined its buffer on every read: 2.1 s for the 16 MiB
message in 16 KiB reads (0.2 s in 256 KiB reads).

- websocket-client's ``_abnf`` pulls each frame with two ``recv`` calls through a callback,
  validates UTF-8 with a pure-Python state machine unless the optional ``wsaccel`` is
  installed, joins fragments with ``bytes +=`` (quadratic in the fragment count) and caps
  neither the message size nor the fragment count.
- wsproto (sans-IO, well kept) gets every RFC 6455 rule right and is linear, but it too has no
  message-size or fragment cap (a caller must count while joining the partial frames it
  yields), and it costs a generator step, a NamedTuple and a bytearray per frame.
- The reader below enforces the same RFC rules as wsproto (a property test in
  ``tests/unit/test_frames.py`` compares the two on random and corrupted streams), adds the
  caps, and keeps the common case (a final, unfragmented text frame) to a few slices and one
  strict UTF-8 decode. wsproto would add some 17 us of CPU per event to a client that spends
  about 45 us on one in all, so it is not a dependency (only of the tests).

Linear in the bytes received: the reads that hold a frame that is not complete are kept as
they came, with their total; the frame's header says how many bytes it needs, and nothing is
parsed again until they are there. They are then joined once (a growing ``bytearray``, copied
at each reallocation, made 16 KiB reads cost 1.7x what 256 KiB reads cost; joined once, 1.1x),
and a big payload is sliced out of a ``memoryview``, so it is copied once more, into the
message. Mask keys come from a pool filled by
one ``os.urandom`` call per 1,024 keys, and the acknowledgements of one read (up to 32 at a
time) are masked with one XOR (:func:`encode_frames`) and sent with one ``sendall``.

Rules enforced on server frames (the ``close_code`` of the :class:`ProtocolViolation` is what
the client answers with): a masked frame, reserved bits (no extension is negotiated), a
reserved opcode, a length not in its shortest form, a fragmented control frame or one over
125 bytes, a continuation without a first fragment, a new message inside a fragmented one, a
close frame of one byte or with a code that may not be sent: 1002. Text that is not UTF-8
(checked incrementally across fragments), a close reason that is not UTF-8: 1007. A message
over ``max_message_size`` (refused from its header, before its payload is buffered) or of more
than ``max_fragments`` frames (empty continuations included): 1009.
"""

from __future__ import annotations

import codecs
import os
import struct
from collections.abc import Callable
from typing import Any

from ..errors import RealtimeError

__all__ = [
    "MAX_FRAGMENTS",
    "MAX_MESSAGE_SIZE",
    "OP_BINARY",
    "OP_CLOSE",
    "OP_CONT",
    "OP_PING",
    "OP_PONG",
    "OP_TEXT",
    "FrameReader",
    "MaskPool",
    "Message",
    "ProtocolViolation",
    "close_code",
    "close_frame",
    "encode_frame",
    "encode_frames",
    "encode_frames_keyed",
    "is_valid_close_code",
    "mask",
]

OP_CONT = 0x0
OP_TEXT = 0x1
OP_BINARY = 0x2
OP_CLOSE = 0x8
OP_PING = 0x9
OP_PONG = 0xA

_PACK_16 = struct.Struct("!H")
_PACK_64 = struct.Struct("!Q")

#: The largest message accepted from the relay by default. A chat event is a few KB; the
#: bound keeps a hostile or broken relay from making the client buffer without limit.
MAX_MESSAGE_SIZE = 16 * 1024 * 1024
#: The most frames one message may span by default (4,096 frames of 4 KiB, a common server
#: write buffer, carry a message of the default maximum size).
MAX_FRAGMENTS = 4096

CLOSE_NORMAL = 1000
CLOSE_PROTOCOL_ERROR = 1002
CLOSE_INVALID_DATA = 1007
CLOSE_TOO_BIG = 1009

#: A complete message: ``(OP_TEXT, str)`` (valid UTF-8, decoded), ``(OP_BINARY, bytes)``, or
#: a control frame ``(OP_PING | OP_PONG | OP_CLOSE, bytes)`` (a close payload is validated).
Message = tuple[int, str | bytes]


class ProtocolViolation(RealtimeError, ValueError):
    """The relay broke RFC 6455; the connection must be closed with ``close_code``.

    Attributes:
        close_code: The status code to close the connection with (1002, 1007 or 1009).
        messages: The complete messages that came before the fault in the same ``feed``;
            they are valid and should be handled before the connection is closed.
    """

    def __init__(self, reason: str, close_code: int = CLOSE_PROTOCOL_ERROR) -> None:
        super().__init__(reason)
        self.reason = reason
        self.close_code = close_code
        self.messages: list[Message] = []


def is_valid_close_code(code: int) -> bool:
    """Whether a peer may send ``code`` in a close frame.

    1000-1003 and 1007-1014 (RFC 6455 section 7.4.1 and the IANA registry: 1012 service
    restart, 1013 try again later, 1014 bad gateway, which servers send on a restart),
    3000-4999 (libraries and applications). Never 1004-1006, 1015 or anything else.
    """
    return 1000 <= code <= 1003 or 1007 <= code <= 1014 or 3000 <= code <= 4999


def close_code(payload: bytes) -> int | None:
    """The status code of a (validated) close frame payload; None when it has none."""
    return _PACK_16.unpack_from(payload)[0] if len(payload) >= 2 else None


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

    def take_many(self, count: int) -> bytes:
        """The next ``count`` unused keys, joined.

        The same bytes as ``count`` calls of :meth:`take` would give, in one slice mostly.
        """
        parts: list[bytes] = []
        while count > 0:
            pos = self._pos
            if pos >= self._size:
                self._buf = os.urandom(self._size)
                pos = 0
            end = min(pos + 4 * count, self._size)
            parts.append(self._buf[pos:end])
            count -= (end - pos) >> 2
            self._pos = end
        return parts[0] if len(parts) == 1 else b"".join(parts)


def mask(key: bytes, data: bytes) -> bytes:
    """XOR ``data`` with the repeated 4-byte ``key`` (masking and unmasking are the same)."""
    return mask_with(_key_stream(key, len(data)), data)


def _key_stream(key: bytes, n: int) -> bytes:
    """The 4-byte ``key`` repeated to ``n`` bytes."""
    return (key * ((n >> 2) + 1))[:n]


def _masked_header(opcode: int, n: int) -> bytes:
    """The header of a final, masked client frame of ``n`` payload bytes (the key follows)."""
    if n < 126:
        return bytes((0x80 | opcode, 0x80 | n))
    if n < 65536:
        return bytes((0x80 | opcode, 0x80 | 126)) + _PACK_16.pack(n)
    return bytes((0x80 | opcode, 0x80 | 127)) + _PACK_64.pack(n)


#: The headers of final, masked text frames of 0 to 125 payload bytes (an ack's size).
_SMALL_TEXT_HEADERS = [bytes((0x80 | OP_TEXT, 0x80 | n)) for n in range(126)]


def encode_frame(payload: bytes, key: bytes, opcode: int = OP_TEXT) -> bytes:
    """Encode one final, masked client frame."""
    return _masked_header(opcode, len(payload)) + key + mask(key, payload)


def encode_frames(payloads: list[bytes], take: Callable[[], bytes]) -> bytes:
    """Encode final, masked client text frames, each with its own key from ``take``.

    The same bytes as joining :func:`encode_frame` of each payload with the keys ``take``
    gives in turn (see :func:`encode_frames_keyed`).
    """
    if len(payloads) == 1:
        return encode_frame(payloads[0], take())
    return encode_frames_keyed(payloads, b"".join([take() for _ in payloads]))


def encode_frames_keyed(payloads: list[bytes], keys: bytes) -> bytes:
    """Encode final, masked client text frames; frame ``i`` has key ``keys[4i:4i+4]``.

    Masked with one XOR over the batch: the acknowledgements of one read (tens of short
    frames) cost about half what framing them one at a time costs. (An event's ack is some
    70 bytes: its header is a constant of a table.)
    """
    streams: list[bytes] = []
    i = 0
    for payload in payloads:
        n = len(payload)
        streams.append((keys[i : i + 4] * ((n >> 2) + 1))[:n])
        i += 4
    masked = mask_with(b"".join(streams), b"".join(payloads))
    out: list[bytes] = []
    append = out.append
    pos = i = 0
    for payload in payloads:
        n = len(payload)
        end = pos + n
        append(_SMALL_TEXT_HEADERS[n] if n < 126 else _masked_header(OP_TEXT, n))
        append(keys[i : i + 4])
        append(masked[pos:end])
        pos = end
        i += 4
    return b"".join(out)


def mask_with(stream: bytes, data: bytes) -> bytes:
    """XOR ``data`` with a key stream of the same length."""
    n = len(data)
    if not n:
        return data
    return (int.from_bytes(data, "little") ^ int.from_bytes(stream, "little")).to_bytes(n, "little")


def close_frame(key: bytes, code: int = 1000) -> bytes:
    """Encode a masked close frame with a status code and no reason."""
    return encode_frame(_PACK_16.pack(code), key, OP_CLOSE)


class FrameReader:
    """Turns the bytes read from the socket into complete messages (sans-IO).

    ``feed`` returns :data:`Message` pairs: text and binary messages (fragments joined) and
    control frames (ping, pong, close) as they come, interleaved where they were sent. After
    a close frame nothing more is read; after a violation every ``feed`` raises it again.
    """

    __slots__ = (
        "_closed",
        "_decoder",
        "_failed",
        "_frag_count",
        "_frag_len",
        "_frag_op",
        "_frags",
        "_have",
        "_max_fragments",
        "_max_message",
        "_need",
        "_pending",
    )

    def __init__(
        self, *, max_message_size: int = MAX_MESSAGE_SIZE, max_fragments: int = MAX_FRAGMENTS
    ) -> None:
        self._max_message = max_message_size
        self._max_fragments = max_fragments
        #: The reads holding a frame that is not complete yet, from its first byte on.
        self._pending: list[bytes] = []
        #: How many bytes they hold, and how many the frame needs before parsing is worth
        #: trying again.
        self._have = 0
        self._need = 0
        self._frag_op: int | None = None
        self._frags: list[Any] = []
        self._frag_len = 0
        self._frag_count = 0
        self._decoder: codecs.IncrementalDecoder | None = None
        self._failed: ProtocolViolation | None = None
        self._closed = False

    @property
    def buffered(self) -> int:
        """Bytes received and not yet part of a complete frame."""
        return self._have if self._pending else 0

    @property
    def closed(self) -> bool:
        """Whether a close frame was read (what follows it is ignored)."""
        return self._closed

    def feed(self, data: bytes) -> list[Message]:
        """Add ``data`` and return every message it completes, in order.

        Raises:
            ProtocolViolation: the stream broke RFC 6455 or a cap; its ``messages`` are
                the complete messages before the fault.
        """
        if self._failed is not None:
            raise self._fail(self._failed.reason, self._failed.close_code, [])
        if self._closed:
            return []
        out: list[Message] = []
        pending = self._pending
        if pending:
            pending.append(data)
            self._have += len(data)
            if self._have < self._need:
                return out  # the frame cannot be complete yet: no parsing
            data = b"".join(pending)  # each byte joins once
            pending.clear()
        # Big payloads are sliced out of a view, so they are copied once, into the message.
        with memoryview(data) as view:
            try:
                pos = self._parse(view if len(data) > _VIEW_FROM else data, out)
            except ProtocolViolation as exc:
                raise self._fail(exc.reason, exc.close_code, out) from None
            if pos < len(data):
                # The start of a frame that is not complete: at most one read's worth.
                pending.append(bytes(view[pos:]))
                self._have = len(data) - pos
        return out

    def _fail(self, reason: str, code: int, out: list[Message]) -> ProtocolViolation:
        self._pending = []
        self._frags = []
        violation = ProtocolViolation(reason, code)
        violation.messages = out
        self._failed = violation
        return violation

    def _parse(self, buf: bytes | memoryview, out: list[Message]) -> int:
        """Parse the complete frames of ``buf`` into ``out``; return the bytes consumed.

        Runs of the common frame go through :meth:`_texts`; any other frame is checked and
        handled here. After a close frame everything is consumed: nothing that follows it
        is read.
        """
        end = len(buf)
        pos = 0
        append = out.append
        while True:
            if self._frag_op is None:
                pos = self._texts(buf, pos, append)
                if self._need:
                    return pos
            avail = end - pos
            if avail < 2:
                self._need = 2
                return pos
            b0 = buf[pos]
            b1 = buf[pos + 1]
            length = b1 & 0x7F
            start = pos + 2
            if length >= 126:
                start = pos + (4 if length == 126 else 10)
                length = self._extended_length(buf, pos, avail, length)
                if length < 0:
                    return pos
            self._check_header(b0, b1, length)
            stop = start + length
            if stop > end:
                self._need = stop - pos
                return pos
            self._frame(b0, buf[start:stop], append)
            pos = stop
            if self._closed:
                return end

    def _texts(self, buf: bytes | memoryview, pos: int, append: Callable[[Message], None]) -> int:
        """Parse the common frames from ``pos`` on; return where the run stopped.

        The common frame: final, unmasked, text, under 64 KiB, with no extension bit, outside
        a fragmented message (the caller checks that): the hot path of every event. Where
        the run stops, ``_need`` is the bytes the frame there needs (it is not complete),
        or 0 when it is another kind of frame, for :meth:`_parse`.
        """
        end = len(buf)
        max_message = self._max_message
        while True:
            avail = end - pos
            if avail < 2:
                self._need = 2
                return pos
            if buf[pos] != 0x81:
                self._need = 0
                return pos
            length = buf[pos + 1]  # below 0x80: no mask bit
            if length < 126:
                start = pos + 2
            elif length == 126:
                if avail < 4:
                    self._need = 4
                    return pos
                length = (buf[pos + 2] << 8) | buf[pos + 3]
                if length < 126:
                    raise ProtocolViolation("frame length not in its shortest form")
                start = pos + 4
            else:
                self._need = 0  # masked, or a 64-bit length
                return pos
            if length > max_message:
                raise ProtocolViolation("message too big", CLOSE_TOO_BIG)
            stop = start + length
            if stop > end:
                self._need = stop - pos
                return pos
            try:
                append((OP_TEXT, str(buf[start:stop], "utf-8")))
            except UnicodeDecodeError:
                raise ProtocolViolation("text that is not UTF-8", CLOSE_INVALID_DATA) from None
            pos = stop

    def _extended_length(self, buf: bytes | memoryview, pos: int, avail: int, code: int) -> int:
        """The payload length of a frame whose 7-bit length is ``code`` (126 or 127).

        -1 when the ``avail`` bytes at ``pos`` do not hold the whole header yet (``_need``
        then says how many do).
        """
        if code == 126:
            if avail < 4:
                self._need = 4
                return -1
            length = (buf[pos + 2] << 8) | buf[pos + 3]
            if length < 126:
                raise ProtocolViolation("frame length not in its shortest form")
            return length
        if avail < 10:
            self._need = 10
            return -1
        length = _PACK_64.unpack_from(buf, pos + 2)[0]
        if length < 65536 or length >> 63:
            raise ProtocolViolation("frame length not in its shortest form or over 2**63")
        return int(length)

    def _check_header(self, b0: int, b1: int, length: int) -> None:
        """Refuse a frame from its header alone, before its payload is buffered."""
        if b1 & 0x80:
            raise ProtocolViolation("masked frame from the server")
        if b0 & 0x70:
            raise ProtocolViolation("reserved bits set (no extension was negotiated)")
        opcode = b0 & 0x0F
        if opcode >= 0x8:
            if opcode > OP_PONG:
                raise ProtocolViolation(f"reserved opcode {opcode:#x}")
            if not b0 & 0x80:
                raise ProtocolViolation("fragmented control frame")
            if length > 125:
                raise ProtocolViolation("control frame over 125 bytes")
            return
        if opcode > OP_BINARY:
            raise ProtocolViolation(f"reserved opcode {opcode:#x}")
        if opcode == OP_CONT:
            if self._frag_op is None:
                raise ProtocolViolation("continuation frame without a first fragment")
            if self._frag_count >= self._max_fragments:
                raise ProtocolViolation("message of too many fragments", CLOSE_TOO_BIG)
            if self._frag_len + length > self._max_message:
                raise ProtocolViolation("message too big", CLOSE_TOO_BIG)
            return
        if self._frag_op is not None:
            raise ProtocolViolation("new message inside a fragmented one")
        if length > self._max_message:
            raise ProtocolViolation("message too big", CLOSE_TOO_BIG)

    def _frame(self, b0: int, payload: bytes | memoryview, append: Any) -> None:
        """Handle one complete frame whose header passed ``_check_header``."""
        opcode = b0 & 0x0F
        fin = b0 & 0x80
        if opcode >= 0x8:
            data = bytes(payload)
            if opcode == OP_CLOSE:
                _check_close(data)
                self._closed = True
            append((opcode, data))
            return
        if opcode != OP_CONT:
            if fin:
                append((opcode, _text(payload) if opcode == OP_TEXT else bytes(payload)))
                return
            self._frag_op = opcode
            self._frag_count = 0
            self._frag_len = 0
            self._frags = []
            self._decoder = _UTF8() if opcode == OP_TEXT else None
        self._frag_count += 1
        self._frag_len += len(payload)
        decoder = self._decoder
        if decoder is not None:
            try:
                self._frags.append(decoder.decode(payload, bool(fin)))
            except UnicodeDecodeError:
                raise ProtocolViolation("text that is not UTF-8", CLOSE_INVALID_DATA) from None
        elif payload:
            self._frags.append(bytes(payload))
        if fin:
            joined: str | bytes = (
                "".join(self._frags) if decoder is not None else b"".join(self._frags)
            )
            append((self._frag_op, joined))
            self._frag_op = None
            self._frags = []
            self._decoder = None


_UTF8 = codecs.getincrementaldecoder("utf-8")
#: Reads longer than this are parsed through a memoryview (slicing a view copies nothing;
#: for small reads, slicing the bytes is faster than making the view's slices).
_VIEW_FROM = 1 << 20


def _text(payload: bytes | memoryview) -> str:
    try:
        return str(payload, "utf-8")
    except UnicodeDecodeError:
        raise ProtocolViolation("text that is not UTF-8", CLOSE_INVALID_DATA) from None


def _check_close(payload: bytes) -> None:
    if len(payload) == 1:
        raise ProtocolViolation("close frame with a one-byte payload")
    if payload:
        code = _PACK_16.unpack_from(payload)[0]
        if not is_valid_close_code(code):
            raise ProtocolViolation(f"close code {code} may not be sent")
        try:
            payload[2:].decode()
        except UnicodeDecodeError:
            raise ProtocolViolation("close reason that is not UTF-8", CLOSE_INVALID_DATA) from None
