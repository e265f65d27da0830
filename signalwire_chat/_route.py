"""What a subscription or a history read follows: a :class:`Route`, of a :class:`RouteKind`.

A leaf module (it imports nothing of the package), so both halves of the client use it
without loading each other: the REST side reads a route's history, the realtime side routes
live events by it. The wires (``_dialects``) make routes; every other module asks a route's
``kind``, never which message field a dialect names its conversations by.
"""

from __future__ import annotations

import enum
from typing import Any

__all__ = ["Route", "RouteKind"]


class RouteKind(enum.Enum):
    """The kind of conversation a route follows; the value is the message field naming it."""

    #: A group of the group dialect (``group_id``).
    GROUP = "group_id"
    #: A conversation of the address dialect (``conversation_id``, the address's own id).
    ADDRESS = "conversation_id"
    #: Every chat message of every conversation of the subscriber.
    INBOX = "inbox"

    @property
    def field(self) -> str | None:
        """The message field that names the conversation (None for the inbox)."""
        return None if self is RouteKind.INBOX else self.value

    @property
    def label(self) -> str:
        """``"group"``, ``"address"`` or ``"inbox"``: the kind in checkpoints and logs."""
        return _LABELS[self]


_LABELS = {RouteKind.GROUP: "group", RouteKind.ADDRESS: "address", RouteKind.INBOX: "inbox"}


class Route:
    """What a subscription follows: which live events are its, and which history fills its gaps.

    ``kind`` says what it follows and ``value`` names it (the group id, or the address's
    conversation id); an *inbox* route takes every chat message of every conversation the
    subscriber belongs to. ``address_id`` is the address the user subscribed to, when it was
    one (for the repr, logs and errors).
    """

    __slots__ = ("address_id", "field", "grouped", "kind", "value")

    def __init__(self, kind: RouteKind, value: str | None, address_id: str | None = None):
        self.kind = kind
        self.value = value
        self.address_id = address_id
        #: The message field that names the conversation (None for the inbox).
        self.field = kind.field
        #: Whether it follows a group (whose own history's messages may carry no group id).
        self.grouped = kind is RouteKind.GROUP

    @classmethod
    def address(cls, address_id: str) -> Route:
        """The conversation of ``address_id`` in the address dialect."""
        return cls(RouteKind.ADDRESS, address_id, address_id)

    @classmethod
    def group(cls, group_id: str, address_id: str | None = None) -> Route:
        """The group ``group_id`` (reached from ``address_id``, if given)."""
        return cls(RouteKind.GROUP, group_id, address_id)

    @classmethod
    def inbox(cls) -> Route:
        """Every chat message of every conversation of the subscriber."""
        return cls(RouteKind.INBOX, None)

    @property
    def is_inbox(self) -> bool:
        """Whether this route takes every conversation."""
        return self.kind is RouteKind.INBOX

    def matches(self, message: Any) -> bool:
        """Whether a history message belongs to this route."""
        if self.field is None:
            return True
        value = getattr(message, self.field)
        # A group-dialect message without group_id came from the group's own history.
        return value == self.value or (value is None and self.grouped)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Route):
            return NotImplemented
        return (self.kind, self.value) == (other.kind, other.value)

    def __hash__(self) -> int:
        return hash((self.kind, self.value))

    def __str__(self) -> str:
        if self.is_inbox:
            return "the inbox"
        if self.grouped:
            if self.address_id is not None:
                return f"{self.address_id} (group {self.value})"
            return f"group {self.value}"
        return str(self.value)

    def __repr__(self) -> str:
        return f"Route({self.kind}, {self.value!r}, {self.address_id!r})"
