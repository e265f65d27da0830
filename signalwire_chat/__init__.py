"""signalwire_chat: a synchronous client for the chat namespace of SignalWire's Call Fabric."""

import logging
import typing as _typing

from ._backend import (
    SubscriberToken,
    SubscriberTokenSource,
    mint_subscriber_token,
    refresh_subscriber_token,
)
from ._client import ChatClient
from ._health import ClientHealth
from ._hooks import (
    CallEvent,
    CatchUpFinishedEvent,
    CatchUpStartedEvent,
    DuplicateDroppedEvent,
    Hooks,
    RequestEvent,
    ResponseEvent,
    SlowCallbackEvent,
    StateChangeEvent,
)
from ._logfmt import KeyValueFormatter
from ._pages import ChatPage, Page
from ._version import __version__
from .checkpoints import Checkpoint, CheckpointStore, SqliteCheckpointStore
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
    "mint_subscriber_token",
    "refresh_subscriber_token",
]

if _typing.TYPE_CHECKING:
    from ._realtime import ConnectionState, RealtimeOptions, Subscription

# The realtime side (and websocket-client under it) loads on first use: a process that
# only calls REST, such as a web worker, never pays for it.
_REALTIME_NAMES = frozenset({"ConnectionState", "RealtimeOptions", "Subscription"})


def __getattr__(name: str) -> _typing.Any:
    if name in _REALTIME_NAMES:
        from . import _realtime

        value = getattr(_realtime, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | _REALTIME_NAMES)


logging.getLogger(__name__).addHandler(logging.NullHandler())
