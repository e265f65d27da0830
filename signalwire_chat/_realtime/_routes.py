"""The hub's routing table: which subscriptions want a chat message, looked up by key.

The hub owns it (it adds and removes routes as subscriptions come and go); the relay session
only asks :meth:`Routes.lookup` about each chat message, and never sees a subscription.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._subscriptions import Subscription

__all__ = ["Routes"]


class Routes:
    """Which subscriptions want which chat messages (copy-on-write: replaced, never mutated).

    ``groups`` maps a ``group_id`` (group dialect) and ``conversations`` a
    ``conversation_id`` (address dialect) to its subscriptions; ``inbox`` takes every chat
    message. ``drop_stale``: drop events whose ``event_channel`` does not name this session
    (the group dialect's rule, as SignalWire's v4 client applies it).
    """

    __slots__ = ("conversations", "drop_stale", "groups", "inbox")

    def __init__(self, *, drop_stale: bool = False) -> None:
        self.groups: dict[str, tuple[Subscription, ...]] = {}
        self.conversations: dict[str, tuple[Subscription, ...]] = {}
        self.inbox: tuple[Subscription, ...] = ()
        self.drop_stale = drop_stale

    def clear(self) -> None:
        """Route nothing any more."""
        self.groups, self.conversations, self.inbox = {}, {}, ()

    def lookup(self, message: dict[str, Any]) -> tuple[Subscription, ...]:
        """The subscriptions a live chat message goes to (values of a wrong type match none)."""
        subs: tuple[Subscription, ...] = ()
        if self.groups:
            key = message.get("group_id")
            if type(key) is str:
                subs = self.groups.get(key, ())
        if self.conversations:
            key = message.get("conversation_id")
            if type(key) is str:
                more = self.conversations.get(key)
                if more:
                    subs = subs + more if subs else more
        if self.inbox:
            subs = subs + self.inbox if subs else self.inbox
        return subs
