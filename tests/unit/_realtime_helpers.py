"""What the realtime unit tests share: a chat message on the wire, decoded, and a hub stand-in.

Imported by the test modules of this folder as ``_realtime_helpers`` (pytest puts the folder of a
test module without ``__init__.py`` on ``sys.path``).
"""

from __future__ import annotations

from typing import Any

from signalwire_chat._convert import structure_chat_message
from signalwire_chat._realtime._subscriptions import Subscription
from signalwire_chat.models import ConversationChatMessage


def chat_wire(i: int, conversation: str = "conv", **extra: Any) -> dict[str, Any]:
    """The i-th chat message of a conversation as the relay sends it (``extra`` overrides keys)."""
    wire: dict[str, Any] = {
        "id": f"id{i}",
        "conversation_id": conversation,
        "user_id": "u",
        "ts": 1000.0 + i,
        "text": f"t{i}",
        "type": "message",
        "subtype": "chat",
        "details": {},
        "user_name": "Alice",
    }
    wire.update(extra)
    return wire


def chat_message(i: int, conversation: str = "conv", **extra: Any) -> ConversationChatMessage:
    """``chat_wire(i, ...)`` decoded by the client's converter."""
    return structure_chat_message(chat_wire(i, conversation, **extra))


class Owner:
    """The hub as a subscription sees it: ``_cancel``, which records what it was given."""

    def __init__(self) -> None:
        self.cancelled: list[Subscription] = []

    def _cancel(self, sub: Subscription) -> None:
        self.cancelled.append(sub)
