"""The realtime side: one websocket per hub, subscriptions, dispatch, reconnect, backfill.

Modules: ``_frames`` (RFC 6455 framing and the JSON-RPC messages), ``_connection`` (the
connection thread), ``_dispatcher`` (callbacks and the slow-callback watchdog),
``_subscriptions`` (handles, duplicate filtering, backfill), ``_interactive`` (callbacks
from notebook cells), ``_stream`` (the blocking iterator), ``_hub`` (``RealtimeHub``; its
docstring describes the threads, the flow control, the no-gap guarantee and what
``subscribe()`` waits for), ``_options``.
"""

from __future__ import annotations

from ._hub import CredentialsLike, RealtimeHub, run_detached
from ._options import ConnectionState, RealtimeOptions
from ._subscriptions import Route, Subscription

__all__ = [
    "ConnectionState",
    "CredentialsLike",
    "RealtimeHub",
    "RealtimeOptions",
    "Route",
    "Subscription",
    "run_detached",
]
