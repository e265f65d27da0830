"""signalwire_chat: a synchronous client for the chat namespace of SignalWire's Call Fabric."""

import logging
import typing as _typing

from ._client import ChatClient
from ._pages import ChatPage, Page
from ._version import __version__
from .errors import (
    APIError,
    AuthenticationError,
    BadRequestError,
    CallbackError,
    ChatError,
    CheckpointNotFoundError,
    ClientClosedError,
    ConnectError,
    CorruptCheckpointError,
    DecodeError,
    FabricErrorDetail,
    FencedWriteError,
    InsecureURLError,
    InvalidArgumentError,
    InvalidArgumentTypeError,
    LeaseTimeoutError,
    MessagesMayBeMissingError,
    NoAddressError,
    NotFoundError,
    PageLimitError,
    PermissionDeniedError,
    RateLimitError,
    RealtimeAuthenticationError,
    RealtimeConnectError,
    RealtimeError,
    RequestTimeoutError,
    ResponseTooLargeError,
    ServerError,
    SlowCallbackError,
    StoreError,
    StoreUnavailableError,
    TokenError,
    TokenUnavailableError,
    TransportError,
    UnsafeLinkError,
    ValidationError,
)
from .models import (
    Address,
    AddressChannels,
    Conversation,
    ConversationChatMessage,
    ConversationMessage,
    Group,
    JoinResult,
    SendResult,
    SubscriberInfo,
)

__all__ = [
    "APIError",
    "Address",
    "AddressChannels",
    "AuthenticationError",
    "BadRequestError",
    "CallEvent",
    "CallbackError",
    "CatchUpFinishedEvent",
    "CatchUpStartedEvent",
    "ChatClient",
    "ChatError",
    "ChatPage",
    "Checkpoint",
    "CheckpointHandler",
    "CheckpointNotFoundError",
    "CheckpointStore",
    "ClientClosedError",
    "ClientHealth",
    "ConnectError",
    "ConnectionState",
    "Conversation",
    "ConversationChatMessage",
    "ConversationMessage",
    "CorruptCheckpointError",
    "DecodeError",
    "DeliveredEvent",
    "DuplicateDroppedEvent",
    "FabricErrorDetail",
    "FencedWriteError",
    "Group",
    "Hooks",
    "InsecureURLError",
    "InvalidArgumentError",
    "InvalidArgumentTypeError",
    "JoinResult",
    "KeyValueFormatter",
    "LeaseTimeoutError",
    "MessagesMayBeMissingError",
    "NoAddressError",
    "NotFoundError",
    "Page",
    "PageLimitError",
    "PermissionDeniedError",
    "RateLimitError",
    "RealtimeAuthenticationError",
    "RealtimeConnectError",
    "RealtimeError",
    "RealtimeOptions",
    "RequestEvent",
    "RequestTimeoutError",
    "ResponseEvent",
    "ResponseTooLargeError",
    "SendResult",
    "ServerError",
    "SlowCallbackError",
    "SlowCallbackEvent",
    "SqliteCheckpointStore",
    "StateChangeEvent",
    "StoreError",
    "StoreUnavailableError",
    "SubscriberInfo",
    "SubscriberToken",
    "SubscriberTokenSource",
    "Subscription",
    "TokenError",
    "TokenUnavailableError",
    "TransportError",
    "UnsafeLinkError",
    "ValidationError",
    "__version__",
    "mint_guest_token",
    "mint_invite_token",
    "mint_subscriber_token",
    "refresh_subscriber_token",
]

if _typing.TYPE_CHECKING:
    from ._backend import (
        SubscriberToken,
        SubscriberTokenSource,
        mint_guest_token,
        mint_invite_token,
        mint_subscriber_token,
        refresh_subscriber_token,
    )
    from ._health import ClientHealth
    from ._hooks import (
        CallEvent,
        CatchUpFinishedEvent,
        CatchUpStartedEvent,
        DeliveredEvent,
        DuplicateDroppedEvent,
        Hooks,
        RequestEvent,
        ResponseEvent,
        SlowCallbackEvent,
        StateChangeEvent,
    )
    from ._logfmt import KeyValueFormatter
    from ._realtime import RealtimeOptions, Subscription
    from ._state import ConnectionState
    from .checkpoints import Checkpoint, CheckpointHandler, CheckpointStore, SqliteCheckpointStore

# Names whose modules load on first use, by module. The realtime side (and websocket-client
# under it) is for subscriptions only: a process that only calls REST, such as a web worker,
# never pays for it. The hooks, health, log format and checkpoint modules are not needed by
# `import signalwire_chat` either (their import took `import signalwire_chat` from 1.03x to
# 1.23x of its dependencies' import time); a client loads the first two when it is made. The
# token minting helpers are a backend's, not a chat client's.
_LAZY: dict[str, str] = {
    "CallEvent": "._hooks",
    "CatchUpFinishedEvent": "._hooks",
    "CatchUpStartedEvent": "._hooks",
    "Checkpoint": ".checkpoints",
    "CheckpointHandler": ".checkpoints",
    "CheckpointStore": ".checkpoints",
    "ClientHealth": "._health",
    "ConnectionState": "._state",
    "DeliveredEvent": "._hooks",
    "DuplicateDroppedEvent": "._hooks",
    "Hooks": "._hooks",
    "KeyValueFormatter": "._logfmt",
    "RealtimeOptions": "._realtime",
    "RequestEvent": "._hooks",
    "ResponseEvent": "._hooks",
    "SlowCallbackEvent": "._hooks",
    "SqliteCheckpointStore": ".checkpoints",
    "StateChangeEvent": "._hooks",
    "SubscriberToken": "._backend",
    "SubscriberTokenSource": "._backend",
    "Subscription": "._realtime",
    "mint_guest_token": "._backend",
    "mint_invite_token": "._backend",
    "mint_subscriber_token": "._backend",
    "refresh_subscriber_token": "._backend",
}


def __getattr__(name: str) -> _typing.Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


logging.getLogger(__name__).addHandler(logging.NullHandler())
