"""The realtime side: one websocket per hub, subscriptions, dispatch, reconnect, backfill.

Modules, from the wire up: ``_frames`` (RFC 6455 framing), ``_websocket`` (an open
websocket: answers pings and closes, yields text messages), ``_jsonrpc`` (the JSON-RPC codec),
``_protocol`` (the relay session, sans-IO; its typed actions in ``_actions``), ``_routes`` (the
hub's routing table), ``_connection`` (the connection thread: the I/O loop), ``_dispatcher``
(callbacks and the slow-callback watchdog),
``_subscriptions`` (handles, duplicate filtering, backfill), ``_interactive`` (callbacks
from notebook cells), ``_stream`` (the blocking iterator), ``_hub`` (``RealtimeHub``; its
docstring describes the threads, the flow control, the no-gap guarantee and what
``subscribe()`` waits for), ``_options``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._route import Route, RouteKind
from ._hub import RealtimeHub, run_detached
from ._options import ConnectionState, RealtimeOptions
from ._subscriptions import Subscription

if TYPE_CHECKING:
    from ._hub import CredentialsLike  # noqa: F401 - for the checker (a Protocol)

__all__ = [
    "ConnectionState",
    "RealtimeHub",
    "RealtimeOptions",
    "Route",
    "RouteKind",
    "Subscription",
    "run_detached",
]
