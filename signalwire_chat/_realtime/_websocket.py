"""The client side of an open websocket, without I/O: frames in, messages out (wsproto's split).

:class:`WebSocketConnection` sits on the frame reader (``_frames``) and answers the control
frames itself: a ping is echoed in a pong, a close is answered with its code; the relay
session above it only ever sees complete text messages. The bytes it wants sent (pongs, the
close answer) wait in :meth:`data_to_send` until the I/O loop writes them; the encoders of the
frames the session sends (:meth:`send`, :meth:`close`) are here too, so no other layer deals in
opcodes or mask keys.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Sequence

from ._frames import (
    MAX_FRAGMENTS,
    MAX_MESSAGE_SIZE,
    OP_BINARY,
    OP_CLOSE,
    OP_PING,
    OP_PONG,
    FrameReader,
    MaskPool,
    ProtocolViolation,
    close_code,
    close_frame,
    encode_frame,
    encode_frames_keyed,
)

__all__ = ["WebSocketConnection", "WebSocketState"]

logger = logging.getLogger(__name__)


class WebSocketState(enum.Enum):
    """Where the websocket is, as far as its frames say."""

    #: Messages flow both ways.
    OPEN = "open"
    #: The relay closed it (and was answered): nothing more is read.
    CLOSED = "closed"
    #: The relay broke RFC 6455 (see :attr:`WebSocketConnection.violation`): close with its code.
    FAILED = "failed"


class WebSocketConnection:
    """One open websocket's frames, client side: fed bytes, it returns text messages.

    Args:
        max_message_size: The largest message accepted (bigger: a 1009 violation).
        max_fragments: The most frames one message may span.
        masks: Where mask keys come from (one pool per connection thread).
    """

    __slots__ = ("_masks", "_out", "_reader", "close_code", "state", "violation")

    def __init__(
        self,
        *,
        max_message_size: int = MAX_MESSAGE_SIZE,
        max_fragments: int = MAX_FRAGMENTS,
        masks: MaskPool | None = None,
    ) -> None:
        self._reader = FrameReader(max_message_size=max_message_size, max_fragments=max_fragments)
        self._masks = masks if masks is not None else MaskPool()
        self._out: list[bytes] = []
        self.state = WebSocketState.OPEN
        #: The code of the relay's close frame (1000 when it carried none), once it came.
        self.close_code: int | None = None
        #: How the relay broke the protocol, once it did.
        self.violation: ProtocolViolation | None = None

    def receive(self, data: bytes) -> list[str | bytes]:
        """The complete messages ``data`` finishes, in order (text as ``str``).

        Control frames are answered here (see :meth:`data_to_send`). After a close or a
        violation nothing more is read; the messages that came before it are returned.
        """
        if self.state is not WebSocketState.OPEN:
            return []
        try:
            frames: Sequence[tuple[int, str | bytes]] = self._reader.feed(data)
        except ProtocolViolation as exc:
            frames = exc.messages
            self.violation = exc
            self.state = WebSocketState.FAILED
        messages = [payload for opcode, payload in frames if opcode <= OP_BINARY]
        if len(messages) != len(frames):
            self._control(frames)
        return messages

    def _control(self, frames: Sequence[tuple[int, str | bytes]]) -> None:
        take = self._masks.take
        for opcode, payload in frames:
            if opcode == OP_PING:
                # A ping's payload is opaque (RFC 6455 5.5.2): echoed, never parsed.
                assert isinstance(payload, bytes)
                self._out.append(encode_frame(payload, take(), OP_PONG))
            elif opcode == OP_CLOSE:
                assert isinstance(payload, bytes)
                # The reader checked the code; a close without one is answered with 1000.
                code = close_code(payload) or 1000
                logger.info("realtime: the relay closed the websocket (code %s)", code)
                self.close_code = code
                self.state = WebSocketState.CLOSED
                self._out.append(close_frame(take(), code))

    def data_to_send(self) -> bytes:
        """The frames this layer answered with (pongs, a close), to write now; then none."""
        if not self._out:
            return b""
        out = b"".join(self._out)
        self._out.clear()
        return out

    def send(self, payloads: list[bytes]) -> bytes:
        """Text frames carrying ``payloads``, framed and masked as one write."""
        if len(payloads) == 1:
            return encode_frame(payloads[0], self._masks.take())
        return encode_frames_keyed(payloads, self._masks.take_many(len(payloads)))

    def close(self, code: int = 1000) -> bytes:
        """A close frame with ``code`` (for the client's own goodbye)."""
        return close_frame(self._masks.take(), code)
