"""What the relay session asks of the I/O around it: typed, frozen actions (h11's events).

The relay protocol (``_protocol``) and the session around it (``_session``) return a list of
these, in order, and the I/O loop (``_connection``) carries each out: it matches on the class,
never on a string. Each class is slotted and frozen, and equal to another only of its own class
with equal fields; the ones without fields are compared by class (``Accepted() == Accepted()``),
and the protocol hands out one shared instance of each.

They are plain classes over one small base, not dataclasses: generating ten frozen, slotted
dataclasses took about 5 ms of the import of the realtime side (``python -X importtime``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

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


class _Action:
    """Frozen and slotted; equal to an action of the same class with equal fields."""

    __slots__ = ()

    def _set(self, **fields: Any) -> None:
        for name, value in fields.items():
            object.__setattr__(self, name, value)

    def _fields(self) -> tuple[str, ...]:
        names: tuple[str, ...] = type(self).__slots__
        return names

    def _values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in self._fields())

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"{type(self).__name__} is frozen: cannot set {name!r}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{type(self).__name__} is frozen: cannot delete {name!r}")

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        assert isinstance(other, _Action)
        return self._values() == other._values()

    def __hash__(self) -> int:
        return hash((type(self), self._values()))

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._fields())
        return f"{type(self).__name__}({fields})"


class Send(_Action):
    """Text payloads (JSON-RPC replies and requests), framed and sent at once, in order."""

    __slots__ = ("payloads",)
    payloads: list[bytes]

    def __init__(self, payloads: list[bytes]) -> None:
        self._set(payloads=payloads)


class Deliver(_Action):
    """Chat messages to hand to the dispatcher now (their acks follow in a :class:`Send`)."""

    __slots__ = ("items",)
    items: list[Item]

    def __init__(self, items: list[Item]) -> None:
        self._set(items=items)


class Hold(_Action):
    """A chat message held back for lack of room, with the ack to send once it is handed over."""

    __slots__ = ("ack", "item")
    ack: bytes
    item: Item

    def __init__(self, ack: bytes, item: Item) -> None:
        self._set(ack=ack, item=item)


class Accepted(_Action):
    """The relay accepted ``signalwire.connect``: queue the catch-up reads now.

    Now, before the live events that follow the answer in the same read.
    """

    __slots__ = ()


class Reauthenticated(_Action):
    """The relay accepted ``signalwire.reauthenticate``: the new token is in force."""

    __slots__ = ()


class Mute(_Action):
    """The relay asked us to go (``signalwire.disconnect``): answer nothing more, then close."""

    __slots__ = ()


class Refused(_Action):
    """The relay refused the credentials: the session ends, and so may the connection."""

    __slots__ = ("error",)
    error: RealtimeAuthenticationError

    def __init__(self, error: RealtimeAuthenticationError) -> None:
        self._set(error=error)


class Broken(_Action):
    """The connect failed otherwise: end this socket and reconnect."""

    __slots__ = ("reason",)
    reason: str

    def __init__(self, reason: str) -> None:
        self._set(reason=reason)


class Write(_Action):
    """Frames the websocket layer answered with (pongs, a close): write them as they are."""

    __slots__ = ("data",)
    data: bytes

    def __init__(self, data: bytes) -> None:
        self._set(data=data)


class Ended(_Action):
    """The socket's session is over (the relay closed it, or broke the websocket protocol).

    ``close_code``: close with it first (a violation: 1002, 1007 or 1009), or None.
    """

    __slots__ = ("close_code", "reason")
    reason: str
    close_code: int | None

    def __init__(self, reason: str, close_code: int | None = None) -> None:
        self._set(reason=reason, close_code=close_code)


ACCEPTED = Accepted()
REAUTHENTICATED = Reauthenticated()
MUTE = Mute()

#: Everything the relay session may ask for.
Action = (
    Send | Deliver | Hold | Accepted | Reauthenticated | Mute | Refused | Broken | Write | Ended
)
