"""What the relay session asks of the I/O around it: typed, frozen actions (h11's events).

The relay protocol (``_protocol``) and the session around it (``_session``) return a list of
these, in order, and the I/O loop (``_connection``) carries each out: it matches on the class,
never on a string. Each class is slotted and frozen; the ones without fields are compared by
class (``Accepted() == Accepted()``), and the protocol hands out one shared instance of each.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import RealtimeAuthenticationError

if TYPE_CHECKING:
    from ._dispatcher import Item

__all__ = [
    "ACCEPTED",
    "MUTE",
    "REAUTHENTICATED",
    "Accepted",
    "Action",
    "Broken",
    "Deliver",
    "Ended",
    "Hold",
    "Mute",
    "Reauthenticated",
    "Refused",
    "Send",
    "Write",
]


@dataclass(frozen=True, slots=True)
class Send:
    """Text payloads (JSON-RPC replies and requests), framed and sent at once, in order."""

    payloads: list[bytes]


@dataclass(frozen=True, slots=True)
class Deliver:
    """Chat messages to hand to the dispatcher now (their acks follow in a :class:`Send`)."""

    items: list[Item]


@dataclass(frozen=True, slots=True)
class Hold:
    """A chat message held back for lack of room, with the ack to send once it is handed over."""

    ack: bytes
    item: Item


@dataclass(frozen=True, slots=True)
class Accepted:
    """The relay accepted ``signalwire.connect``: queue the catch-up reads now.

    Now, before the live events that follow the answer in the same read.
    """


@dataclass(frozen=True, slots=True)
class Reauthenticated:
    """The relay accepted ``signalwire.reauthenticate``: the new token is in force."""


@dataclass(frozen=True, slots=True)
class Mute:
    """The relay asked us to go (``signalwire.disconnect``): answer nothing more, then close."""


@dataclass(frozen=True, slots=True)
class Refused:
    """The relay refused the credentials: the session ends, and so may the connection."""

    error: RealtimeAuthenticationError


@dataclass(frozen=True, slots=True)
class Broken:
    """The connect failed otherwise: end this socket and reconnect."""

    reason: str


@dataclass(frozen=True, slots=True)
class Write:
    """Frames the websocket layer answered with (pongs, a close): write them as they are."""

    data: bytes


@dataclass(frozen=True, slots=True)
class Ended:
    """The socket's session is over (the relay closed it, or broke the websocket protocol).

    ``close_code``: close with it first (a violation: 1002, 1007 or 1009), or None.
    """

    reason: str
    close_code: int | None = None


ACCEPTED = Accepted()
REAUTHENTICATED = Reauthenticated()
MUTE = Mute()

#: Everything the relay session may ask for.
Action = (
    Send | Deliver | Hold | Accepted | Reauthenticated | Mute | Refused | Broken | Write | Ended
)
