"""RealtimeHub: subscriptions over one shared websocket (skeleton; being implemented)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Callable, Optional, Protocol

from ._options import ConnectionState, RealtimeOptions

if TYPE_CHECKING:
    from ..models import ConversationChatMessage

__all__ = ["CredentialsLike", "RealtimeHub", "Subscription"]


class CredentialsLike(Protocol):
    """What the hub needs of ``signalwire_chat._auth.Credentials``."""

    @property
    def token(self) -> str:
        """The current token."""

    @property
    def can_refresh(self) -> bool:
        """Whether :meth:`refresh` can give a fresh token."""

    def refresh(self, stale: Optional[str] = None) -> str:
        """Return a fresh token (raises ``AuthenticationError``)."""


class Subscription:
    """A handle on one subscription; cancel it to stop delivery."""

    @property
    def address_id(self) -> str:
        """The address (conversation) this subscription follows."""
        raise NotImplementedError

    @property
    def active(self) -> bool:
        """False once cancelled or once the hub is closed."""
        raise NotImplementedError

    def cancel(self) -> None:
        """Stop delivery; idempotent, safe from any thread, callbacks included."""
        raise NotImplementedError

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.cancel()


class RealtimeHub:
    """Subscriptions to conversations over one websocket."""

    def __init__(
        self,
        *,
        relay_url: str,
        credentials: CredentialsLike,
        agent: str,
        history: Callable[[str], Iterator[ConversationChatMessage]],
        options: RealtimeOptions,
        on_state_change: Optional[Callable[[ConnectionState], None]] = None,
        sslopt: Optional[dict[str, Any]] = None,
    ) -> None:
        raise NotImplementedError

    def subscribe(
        self,
        address_id: str,
        on_message: Callable[[ConversationChatMessage], None],
        on_error: Optional[Callable[[BaseException], None]] = None,
    ) -> Subscription:
        """Deliver every chat message of ``address_id`` to ``on_message``."""
        raise NotImplementedError

    def stream(
        self, address_id: str, *, timeout: Optional[float] = None
    ) -> Iterator[ConversationChatMessage]:
        """Yield every chat message of ``address_id`` as it arrives."""
        raise NotImplementedError

    @property
    def state(self) -> ConnectionState:
        """The connection's current state."""
        raise NotImplementedError

    def add_state_listener(self, cb: Callable[[ConnectionState], None]) -> Callable[[], None]:
        """Call ``cb`` on every state change; returns a function that removes it."""
        raise NotImplementedError

    def close(self, timeout: float = 2.0) -> None:
        """Stop everything and join the threads; idempotent."""
        raise NotImplementedError
