"""The realtime side: one websocket per hub, subscriptions, dispatch, reconnect, backfill."""

from __future__ import annotations

from ._hub import CredentialsLike, RealtimeHub
from ._options import ConnectionState, RealtimeOptions
from ._subscriptions import Subscription

__all__ = ["ConnectionState", "CredentialsLike", "RealtimeHub", "RealtimeOptions", "Subscription"]
