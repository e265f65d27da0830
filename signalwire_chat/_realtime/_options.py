"""Options and connection states of the realtime hub."""

from __future__ import annotations

import functools
from typing import Any

import attrs

from .._state import ConnectionState  # re-exported: its home was here
from .._validate import check_seconds
from ..errors import InvalidArgumentError, InvalidArgumentTypeError
from ..models import _compared, _listed
from ._frames import MAX_FRAGMENTS, MAX_MESSAGE_SIZE

__all__ = ["ConnectionState", "RealtimeOptions"]

#: How many delivered message ids a subscription remembers by default: more than a resume
#: redelivers (the relay's window is 100) or a backfill overlaps; about 0.5 MB of uuid ids.
RECENT_IDS = 4096


def _positive(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    check_seconds(value, attribute.name)


def _positive_int(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidArgumentTypeError(
            f"{attribute.name} must be an int, not {type(value).__name__}"
        )
    if value < 1:
        raise InvalidArgumentError(f"{attribute.name} must be at least 1")


# Not slotted (attrs builds a slotted class twice), and attrs' equality, hash and repr come from
# the models' shared functions rather than being generated and compiled for this class.
@_listed
@functools.partial(_compared, hashed=True)
@attrs.frozen(kw_only=True, slots=False, eq=False, unsafe_hash=False, repr=False)
class RealtimeOptions:
    """Tuning of the realtime connection; the defaults suit most programs.

    Attributes:
        ping_timeout: Seconds without any frame from the relay after which the
            connection is deemed dead, closed and made again.
        reconnect_max_delay: Cap, in seconds, of the exponential back-off between
            reconnect attempts (the first retry is immediate; full jitter).
        queue_size: How many received messages may wait for the callbacks. When
            the queue is full the hub stops acknowledging events, so the relay
            pauses the flow: memory stays bounded and nothing is dropped.
        slow_callback_after: Seconds after which a running callback is reported
            as slow (``SlowCallbackError`` to ``on_error``, once per call).
        connect_timeout: Seconds allowed for the TCP, TLS and websocket handshakes
            and for the answer to ``signalwire.connect``.
        close_timeout: Seconds ``close()`` waits, by default, for the threads to end.
        refresh_margin: With a token source, seconds before the token expires at
            which a fresh one is fetched and sent with ``signalwire.reauthenticate``.
        recent_ids: How many delivered message ids each subscription remembers
            to drop duplicates (redeliveries after a resume, backfill overlap).
        backfill_limit: The most history messages read per subscription after a
            reconnect; beyond that the gap is reported as ``MessagesMayBeMissingError``.
        max_message_size: The largest websocket message, in bytes, accepted from the
            relay (16 MiB; a chat event is a few KB). A bigger one is refused from its
            header: the connection is closed with code 1009 and made again.
        max_fragments: The most frames one websocket message may span (4,096, empty
            continuation frames included); beyond that the connection is closed with
            code 1009 and made again.
    """

    ping_timeout: float = attrs.field(default=15.0, validator=_positive)
    reconnect_max_delay: float = attrs.field(default=30.0, validator=_positive)
    queue_size: int = attrs.field(default=1000, validator=_positive_int)
    slow_callback_after: float = attrs.field(default=10.0, validator=_positive)
    connect_timeout: float = attrs.field(default=10.0, validator=_positive)
    close_timeout: float = attrs.field(default=2.0, validator=_positive)
    refresh_margin: float = attrs.field(default=60.0, validator=_positive)
    recent_ids: int = attrs.field(default=RECENT_IDS, validator=_positive_int)
    backfill_limit: int = attrs.field(default=10_000, validator=_positive_int)
    max_message_size: int = attrs.field(default=MAX_MESSAGE_SIZE, validator=_positive_int)
    max_fragments: int = attrs.field(default=MAX_FRAGMENTS, validator=_positive_int)
