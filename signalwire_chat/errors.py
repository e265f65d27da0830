"""The exceptions signalwire_chat raises, one tree under :class:`ChatError`.

Each exception also subclasses the builtin whose meaning it shares, so generic
handlers keep working (``except ValueError``, ``except TimeoutError``)::

    ChatError
    ├── ClientClosedError (RuntimeError)      the client was used after close()
    ├── InvalidArgumentError (ValueError)     bad input, refused before anything was sent
    │   └── InvalidArgumentTypeError (TypeError)
    ├── TokenError (ValueError)               a token whose header cannot be read, no host to use
    ├── NoAddressError (LookupError)          the subscriber has no address to send from
    ├── InsecureURLError (ValueError)         http:// or ws:// to a non-loopback host without opt-in
    ├── TransportError                        the request did not complete at the network level
    │   ├── ConnectError (ConnectionError)    could not connect; the request surely was not sent
    │   └── RequestTimeoutError (TimeoutError)
    ├── DecodeError (ValueError)              a response body that is not what the protocol says
    │   └── ResponseTooLargeError             a body larger than max_response_bytes
    ├── UnsafeLinkError                       a pagination link to another origin, or a link cycle
    │   └── PageLimitError                    more raw pages than allowed walked in one step
    ├── APIError                              the service answered with an error status
    │   ├── BadRequestError                   400
    │   ├── AuthenticationError               401 (and a refused realtime connect)
    │   ├── PermissionDeniedError             403
    │   ├── NotFoundError                     404
    │   ├── ValidationError                   422, with the fabric ``errors`` list
    │   ├── RateLimitError                    429, with ``retry_after``
    │   └── ServerError                       5xx
    ├── RealtimeError                         the realtime (websocket) side
    │   ├── RealtimeAuthenticationError (AuthenticationError)  connect or reauthenticate refused
    │   ├── RealtimeConnectError (ConnectionError)  relay unreachable, or it refused the socket
    │   ├── MessagesMayBeMissingError         a gap after a reconnect could not be backfilled
    │   │   └── CheckpointNotFoundError       a checkpoint's message is not in the history
    │   ├── SlowCallbackError                 a callback has been running for too long
    │   └── CallbackError                     a user callback raised (the original is __cause__)
    └── StoreError                            a checkpoint store or the lease's Redis failed
        ├── StoreUnavailableError (ConnectionError)  the store could not be reached in time
        ├── CorruptCheckpointError (ValueError)      a stored checkpoint that is not one of ours
        ├── FencedWriteError (PermissionError)       refused: the fencing token is not current
        └── LeaseTimeoutError (TimeoutError)         the lease was not acquired in time

No exception message, ``repr`` or attribute ever contains the token.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = [
    "APIError",
    "AuthenticationError",
    "BadRequestError",
    "CallbackError",
    "ChatError",
    "CheckpointNotFoundError",
    "ClientClosedError",
    "ConnectError",
    "CorruptCheckpointError",
    "DecodeError",
    "FabricErrorDetail",
    "FencedWriteError",
    "InsecureURLError",
    "InvalidArgumentError",
    "InvalidArgumentTypeError",
    "LeaseTimeoutError",
    "MessagesMayBeMissingError",
    "NoAddressError",
    "NotFoundError",
    "PageLimitError",
    "PermissionDeniedError",
    "RateLimitError",
    "RealtimeAuthenticationError",
    "RealtimeConnectError",
    "RealtimeError",
    "RequestTimeoutError",
    "ResponseTooLargeError",
    "ServerError",
    "SlowCallbackError",
    "StoreError",
    "StoreUnavailableError",
    "TokenError",
    "TokenUnavailableError",
    "TransportError",
    "UnsafeLinkError",
    "ValidationError",
]


class ChatError(Exception):
    """The root of every exception this library raises.

    Every one pickles and copies with its attributes (a worker process of a
    ``ProcessPoolExecutor`` or a task queue sends it back to its parent that way), though most
    take keyword-only arguments that the default pickling of exceptions would not pass.
    """

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_error, (type(self), self.args, dict(self.__dict__)))


class ClientClosedError(ChatError, RuntimeError):
    """The client (or a subscription) was used after it was closed."""


class InvalidArgumentError(ChatError, ValueError):
    """An argument was refused before anything was sent."""


class InvalidArgumentTypeError(InvalidArgumentError, TypeError):
    """An argument of the wrong type was refused before anything was sent."""


class TokenError(ChatError, ValueError):
    """The token cannot be used: its header is unreadable and no host was given."""


class NoAddressError(ChatError, LookupError):
    """The subscriber has no fabric address, so the group dialect has nothing to speak as.

    Raised before any chat request; pass ``from_address_id=`` to :class:`ChatClient`, or give
    the subscriber an address.
    """


class InsecureURLError(ChatError, ValueError):
    """A plain http:// or ws:// URL to a host that is not loopback, without opting in."""


class TokenUnavailableError(ChatError, ConnectionError):
    """The token source failed for a reason that may pass (5xx, network, timeout, a bug).

    Only a refusal of the project's credentials (401/403 from the token endpoint) is
    final, and is raised as :class:`AuthenticationError`. This one is transient: the
    realtime side keeps retrying with back-off (telling ``on_error`` once per outage)
    and resumes delivery, nothing lost, when the source recovers; a REST call raises it.
    The source's own exception is ``__cause__``.
    """


class TransportError(ChatError):
    """The request did not complete at the network level.

    Attributes:
        method: The HTTP method, or ``None`` for the websocket.
        url: The URL without its query string.
    """

    def __init__(self, message: str, *, method: str | None = None, url: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.method = method
        self.url = url


class ConnectError(TransportError, ConnectionError):
    """The connection could not be made; the request was surely not sent."""


class RequestTimeoutError(TransportError, TimeoutError):
    """The request or connection timed out."""


class DecodeError(ChatError, ValueError):
    """A response body did not have the shape the protocol gives it.

    Attributes:
        field: The dotted path of the offending field, when one is known.
    """

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class ResponseTooLargeError(DecodeError):
    """A response body grew past ``max_response_bytes`` (decoded); reading stopped there.

    Attributes:
        limit: The cap in bytes.
    """

    def __init__(self, message: str, *, limit: int) -> None:
        super().__init__(message)
        self.limit = limit


class UnsafeLinkError(ChatError):
    """A pagination link names another origin than the REST base, or the links loop."""


class PageLimitError(UnsafeLinkError):
    """One call or iteration step walked more raw pages than allowed without being done.

    A server that hands out fresh ``next`` cursors with no chat messages of the address would
    otherwise keep the call going forever.

    Attributes:
        limit: The number of raw pages walked.
    """

    def __init__(self, message: str, *, limit: int) -> None:
        super().__init__(message)
        self.limit = limit


class FabricErrorDetail:
    """One entry of a fabric error body's ``errors`` list.

    Attributes:
        type: E.g. ``"validation_error"``.
        code: E.g. ``"missing_required_parameter"``.
        message: The service's human-readable message.
        attribute: The request attribute concerned, if any.
        url: A documentation URL, if any.
    """

    __slots__ = ("attribute", "code", "message", "type", "url")

    def __init__(
        self,
        *,
        type: str | None = None,
        code: str | None = None,
        message: str | None = None,
        attribute: str | None = None,
        url: str | None = None,
    ) -> None:
        self.type = type
        self.code = code
        self.message = message
        self.attribute = attribute
        self.url = url

    @classmethod
    def from_wire(cls, obj: Mapping[str, Any]) -> FabricErrorDetail:
        """Build one from a wire dict, keeping only string-valued known fields."""

        def text(key: str) -> str | None:
            value = obj.get(key)
            return value if isinstance(value, str) else None

        return cls(
            type=text("type"),
            code=text("code"),
            message=text("message"),
            attribute=text("attribute"),
            url=text("url"),
        )

    def __repr__(self) -> str:
        return (
            f"FabricErrorDetail(type={self.type!r}, code={self.code!r}, "
            f"message={self.message!r}, attribute={self.attribute!r})"
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, FabricErrorDetail):
            return NotImplemented
        return all(getattr(self, name) == getattr(other, name) for name in self.__slots__)

    __hash__ = None  # type: ignore[assignment]


class APIError(ChatError):
    """The service answered with an error status.

    Attributes:
        status: The HTTP status code.
        message: A readable summary (the service's own message when it sent one).
        code: The first fabric error code, if the body had one.
        errors: Every entry of the fabric ``errors`` list (empty for other bodies).
        request_id: The service's request id header, if it sent one.
        method: The HTTP method of the failed request.
        url: The URL of the failed request, without its query string.
        body: Up to 2,000 characters of the raw response body, for diagnosis.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int,
        errors: Sequence[FabricErrorDetail] = (),
        request_id: str | None = None,
        method: str | None = None,
        url: str | None = None,
        body: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.errors = list(errors)
        self.code = next((e.code for e in self.errors if e.code), None)
        self.request_id = request_id
        self.method = method
        self.url = url
        self.body = body

    def __str__(self) -> str:
        parts = [f"{self.status}"]
        if self.code:
            parts.append(self.code)
        text = f"[{' '.join(parts)}] {self.message}"
        if self.method and self.url:
            text += f" ({self.method} {self.url})"
        if self.request_id:
            text += f" request_id={self.request_id}"
        return text


class BadRequestError(APIError):
    """400: the service could not understand the request."""


class AuthenticationError(APIError):
    """401: the token is missing, malformed, expired or revoked."""


class PermissionDeniedError(APIError):
    """403: the subscriber may not do this (e.g. read a conversation it is not a member of)."""


class NotFoundError(APIError):
    """404: no such address, conversation or route."""


class ValidationError(APIError):
    """422: the request was understood but refused; see ``errors`` for each field."""


class RateLimitError(APIError):
    """429: too many requests.

    Attributes:
        retry_after: Seconds the service asked to wait, if it said.
    """

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class ServerError(APIError):
    """5xx: the service, or a proxy in front of it, failed."""


class RealtimeError(ChatError):
    """A failure on the realtime (websocket) side."""


class RealtimeAuthenticationError(RealtimeError, AuthenticationError):
    """The relay refused ``signalwire.connect`` or ``signalwire.reauthenticate``.

    The client stops reconnecting after this (unless a token source can give a
    fresh token), so a bad token never turns into a reconnect storm.

    Attributes:
        rpc_code: The JSON-RPC error code, e.g. -32002.
    """

    def __init__(self, message: str, *, rpc_code: int | None = None) -> None:
        AuthenticationError.__init__(self, message, status=401)
        self.rpc_code = rpc_code

    def __str__(self) -> str:
        code = f" (rpc code {self.rpc_code})" if self.rpc_code is not None else ""
        return f"realtime authentication failed: {self.message}{code}"


class RealtimeConnectError(RealtimeError, ConnectionError):
    """The relay could not be reached, or refused the websocket.

    Raised from ``subscribe()`` when the very first connect fails for a reason that
    will not pass by waiting (the host name does not resolve, the connection is
    refused, TLS fails, the HTTP upgrade is refused with a 4xx): a wrong ``relay_url``
    is never mistaken for a quiet room. Any later failure, and any transient one
    (timeouts, a 5xx upgrade answer, a dropped socket), is passed to ``on_error``
    once per outage while the client keeps reconnecting (``connection_state`` says
    ``RECONNECTING``). The cause is ``__cause__``.

    Attributes:
        permanent: Whether the client gave up (True only for a first-connect failure).
    """

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.permanent = permanent


class MessagesMayBeMissingError(RealtimeError):
    """After a reconnect, the history since the last delivered message could not be fetched.

    Attributes:
        address_id: The subscription's address (``None`` for a group or the inbox).
        last_message_id: The id of the last message delivered before the gap, if any.
    """

    def __init__(
        self, message: str, *, address_id: str | None, last_message_id: str | None = None
    ) -> None:
        super().__init__(message)
        self.address_id = address_id
        self.last_message_id = last_message_id


class CheckpointNotFoundError(MessagesMayBeMissingError):
    """A subscription's checkpoint names a message its history does not hold.

    The message is older than the history the service keeps, was deleted, or belongs to
    another conversation. The catch-up then delivers the messages newer than the
    checkpoint's ``ts`` that the history still holds; messages between the checkpoint
    and the oldest of those may be missing.

    Attributes:
        address_id: The subscription's address (``None`` for a group or the inbox).
        last_message_id: The checkpoint's message id.
        checkpoint_key: The key the checkpoint is stored under.
    """

    def __init__(
        self, message: str, *, address_id: str | None, last_message_id: str, checkpoint_key: str
    ) -> None:
        super().__init__(message, address_id=address_id, last_message_id=last_message_id)
        self.checkpoint_key = checkpoint_key


class SlowCallbackError(RealtimeError):
    """A callback has been running longer than the configured threshold.

    Attributes:
        address_id: The address of the subscription whose callback is slow (``None`` for a
            group or the inbox).
        elapsed: Seconds it had been running when reported.
    """

    def __init__(self, message: str, *, address_id: str | None, elapsed: float) -> None:
        super().__init__(message)
        self.address_id = address_id
        self.elapsed = elapsed


class CallbackError(RealtimeError):
    """A user callback raised; the original exception is ``__cause__``.

    Attributes:
        address_id: The address of the subscription whose callback raised (``None`` for a
            group or the inbox).
    """

    def __init__(self, message: str, *, address_id: str | None) -> None:
        super().__init__(message)
        self.address_id = address_id


class StoreError(ChatError):
    """A checkpoint store, or the Redis behind the lease, failed or refused a write."""


class StoreUnavailableError(StoreError, ConnectionError):
    """The store could not be reached, or did not answer in time (the original is ``__cause__``)."""


class CorruptCheckpointError(StoreError, ValueError):
    """What the store holds under a key is not a checkpoint this library wrote.

    Attributes:
        key: The checkpoint key.
    """

    def __init__(self, message: str, *, key: str) -> None:
        super().__init__(message)
        self.key = key


class FencedWriteError(StoreError, PermissionError):
    """A write was refused because its fencing token is no longer the current one.

    The lease was lost (expired, taken over, or Redis lost it), so this process must stop
    acting as the holder: nothing was written.

    Attributes:
        fencing_token: The token the refused write carried (``None`` when it had none).
    """

    def __init__(self, message: str, *, fencing_token: int | None) -> None:
        super().__init__(message)
        self.fencing_token = fencing_token


class LeaseTimeoutError(StoreError, TimeoutError):
    """``acquire(timeout=...)`` did not get the lease within the timeout."""


def _rebuild_error(cls: type[ChatError], args: tuple[Any, ...], state: dict[str, Any]) -> ChatError:
    """An unpickled error: made without ``__init__`` (each class has its own arguments)."""
    exc = cls.__new__(cls, *args)
    exc.args = args  # OSError's __new__ (ConnectError, timeouts) may leave them otherwise
    exc.__dict__.update(state)
    return exc


def _led_by(action: str, exc: ChatError) -> ChatError:
    """``exc`` again, of the same class, its message led by what the caller asked for.

    For the requests a call makes on its own (the subscriber lookup, the group join): the
    caller reads first what failed for them (``cannot read the history of '...'``), then the
    request that failed, which ``exc`` names. Every attribute is kept; ``exc`` itself is not
    changed (other threads waiting on the same lookup raise it too).
    """
    if isinstance(exc, NotFoundError) and exc.method == "POST":
        cause = "no such address"  # the join names the addresses: one of them is unknown
    elif isinstance(exc, (APIError, TransportError)):
        cause = exc.message
    else:
        cause = str(exc)
    text = f"{action}: {cause}"
    led = type(exc).__new__(type(exc), text)  # not __init__: each class has its own arguments
    led.__dict__.update(exc.__dict__)
    led.args = (text,)  # set here: OSError's __new__ (ConnectError, timeouts) leaves it empty
    if isinstance(led, (APIError, TransportError)):
        led.message = text  # APIError's str adds the status and the request after it
    return led
