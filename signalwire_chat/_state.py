"""The realtime connection's states: a module of its own, so reading them loads nothing else.

``ChatClient.health()`` and ``connection_state`` report a :class:`ConnectionState` before any
subscription was made; keeping the enum out of the realtime package means they never load
websocket-client (and the connection machinery) for that.
"""

from __future__ import annotations

import enum

__all__ = ["ConnectionState"]


class ConnectionState(enum.Enum):
    """Where the realtime connection stands.

    ``IDLE``: no subscription, no socket. ``CONNECTING``: the first connect of a
    run is in progress. ``CONNECTED``: the relay accepted ``signalwire.connect``.
    ``RECONNECTING``: the socket was lost and a new one is being made.
    ``CLOSED``: the hub was closed. ``FAILED``: the relay refused the credentials
    and no fresh token could be had; the hub no longer reconnects.
    """

    IDLE = "idle"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    RECONNECTING = "reconnecting"
    CLOSED = "closed"
    FAILED = "failed"
