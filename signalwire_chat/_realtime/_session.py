"""One socket's relay session, without I/O: bytes and the time in, actions out.

:class:`RelaySession` puts the layers of one socket together: the websocket layer
(``_websocket``: frames, control frames), the relay protocol (``_protocol``: the JSON-RPC
conversation), the session's clocks (``_timers``) and the flow control's hold queue. The I/O
loop (``_connection._Loop``) polls, reads, hands the bytes to :meth:`RelaySession.receive`
with the time and the dispatcher's room, writes and delivers what comes back, waits until
:meth:`RelaySession.next_deadline` and then asks :meth:`RelaySession.handle_timer`. Nothing
here opens a socket, starts a thread or reads a clock.

Flow control: a chat message the dispatcher has no room for is held here with its ack (so the
relay's window of unacknowledged events stops it); :meth:`RelaySession.release` hands them over
as room appears. Should the relay ignore its window, :attr:`RelaySession.reading` turns False
once ``hold_limit`` messages are held (the loop stops reading the socket: TCP pushes back), and
True again when there is room.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ._actions import Accepted, Action, Deliver, Ended, Hold, Write
from ._frames import MaskPool
from ._protocol import RelayProtocol, SessionState
from ._timers import Due, SessionTimers
from ._websocket import WebSocketConnection, WebSocketState

if TYPE_CHECKING:
    from ._dispatcher import Item
    from ._options import RealtimeOptions

__all__ = ["RecentProofs", "RelaySession"]


class RecentProofs:
    """The chat messages that proved a session healthy lately (one per session, bounded).

    Kept across the sockets of one connection thread (only that thread touches it). A
    message counts as proof once: the same message (id and kind) brought again by a later
    session, a redelivery the subscriptions drop as a duplicate, does not reset the back-off.
    """

    __slots__ = ("_keys", "_order")

    def __init__(self, size: int = 256) -> None:
        self._keys: set[tuple[str, bool]] = set()
        self._order: deque[tuple[str, bool]] = deque(maxlen=size)

    def first_time(self, item: Item) -> bool:
        """Whether ``item`` is a message no earlier proof was; remembered if so."""
        message_id = item[1].get("id")
        if type(message_id) is not str:
            return False  # no message a subscription delivers
        key = (message_id, item[2])
        if key in self._keys:
            return False
        order = self._order
        if len(order) == order.maxlen:
            self._keys.discard(order[0])
        order.append(key)
        self._keys.add(key)
        return True


class RelaySession:
    """One socket's session with the relay (the protocol state outlives it, across sockets).

    Args:
        relay: The relay conversation, kept across sockets (resumption state).
        now: When the socket opened (monotonic seconds).
        options: Timeouts and caps.
        masks: Mask keys for the frames sent.
    """

    __slots__ = ("_proofs", "events", "held", "hold_limit", "link", "reading", "relay", "timers")

    def __init__(
        self,
        relay: RelayProtocol,
        *,
        now: float,
        options: RealtimeOptions,
        masks: MaskPool | None = None,
        proofs: RecentProofs | None = None,
    ) -> None:
        self.relay = relay
        self._proofs = proofs
        self.link = WebSocketConnection(
            max_message_size=options.max_message_size,
            max_fragments=options.max_fragments,
            masks=masks,
        )
        self.timers = SessionTimers(
            now,
            connect_timeout=options.connect_timeout,
            ping_timeout=options.ping_timeout,
            close_timeout=options.close_timeout,
        )
        #: Chat messages held back for lack of room, each with its ack, oldest first.
        self.held: deque[tuple[bytes, Item]] = deque()
        self.hold_limit = max(options.queue_size, 1000)
        #: Whether the loop should read the socket (False: too much held back).
        self.reading = True
        #: Chat messages this session brought (delivered or held): a fact for the reconnect
        #: policy, which decides whether the session was healthy. With ``proofs``, counting
        #: starts at the first message no earlier session already counted on: a relay that
        #: sends the same old message again on every session and drops it proves nothing.
        self.events = 0

    def connect(self, token: str, *, reconnect: bool, secrets: Sequence[str] = ()) -> bytes:
        """The first frame to write: ``signalwire.connect``."""
        return self.link.send([self.relay.connect(token, reconnect=reconnect, secrets=secrets)])

    def send(self, payloads: list[bytes]) -> bytes:
        """Text frames carrying ``payloads``."""
        return self.link.send(payloads)

    @property
    def connected_at(self) -> float | None:
        """When the relay accepted this socket's connect, if it did."""
        return self.timers.connected_at

    def receive(self, data: bytes, now: float, room: int) -> list[Action]:
        """What to do about ``data``, read at ``now`` while the dispatcher has ``room``.

        The relay protocol's actions, in order, less the held messages (kept here), then
        the websocket layer's answers (:class:`Write`) and, when the socket's session is
        over, :class:`Ended`. After a disconnect nothing is answered or delivered.
        """
        timers = self.timers
        timers.received(now)
        relay = self.relay
        if relay.muted:
            return []
        link = self.link
        actions = relay.receive(link.receive(data), room, holding=bool(self.held))
        if actions:
            actions = self._keep_held(actions, now)
        violation = link.violation
        if relay.state is SessionState.MUTED:  # the relay asked to go in this read
            # Nothing more is answered, the relay's close included; a violation still ends it.
            timers.muted(now)
        else:
            control = link.data_to_send()
            if control:
                actions.append(Write(control))
            if link.state is WebSocketState.CLOSED:
                actions.append(Ended("socket closed by the relay"))
        if violation is not None:
            actions.append(Ended(f"protocol violation: {violation.reason}", violation.close_code))
        if self.held and len(self.held) >= self.hold_limit and self.reading:
            self.reading = False  # the relay ignores the window: stop reading for now
        return actions

    def _keep_held(self, actions: list[Action], now: float) -> list[Action]:
        out: list[Action] = []
        for action in actions:
            match action:
                case Hold(ack=ack, item=item):
                    self.held.append((ack, item))
                    self._count((item,))
                    continue
                case Deliver(items=items):
                    self._count(items)
                case Accepted():
                    self.timers.accepted(now)
            out.append(action)
        return out

    def _count(self, items: Sequence[Item]) -> None:
        proofs = self._proofs
        if self.events or proofs is None:
            self.events += len(items)
            return
        for index, item in enumerate(items):
            if proofs.first_time(item):
                self.events += len(items) - index
                return

    def release(self, room: int, now: float) -> tuple[list[Item], list[bytes]]:
        """Up to ``room`` held messages to hand over now, and their acks to send."""
        held = self.held
        released = [held.popleft() for _ in range(min(room, len(held)))]
        if not self.reading and len(held) < self.hold_limit:
            self.reading = True
            self.timers.last_rx = now  # not reading was our choice, not the relay's silence
        return [item for _ack, item in released], [ack for ack, _item in released]

    def next_deadline(self) -> float:
        """When :meth:`handle_timer` next has something to do (monotonic seconds)."""
        return self.timers.next_deadline(self.reading)

    def handle_timer(self, now: float) -> list[Due]:
        """What the session's clocks say is due at ``now``."""
        return self.timers.handle_timer(now, self.reading)
