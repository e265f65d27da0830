"""The realtime side: one websocket per hub, subscriptions, dispatch, reconnect, backfill."""

from __future__ import annotations

from ._hub import RealtimeHub, Subscription
from ._options import ConnectionState, RealtimeOptions

__all__ = ["ConnectionState", "RealtimeHub", "RealtimeOptions", "Subscription"]
