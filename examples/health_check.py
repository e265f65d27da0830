"""A health endpoint's answer from ``ChatClient.health()``, shared by the Flask and Django apps.

``health()`` sends nothing and takes a lock for a few integers, so a load balancer may call
the endpoint as often as it likes. The answer holds counts and states only: no token, no id.
"""

from __future__ import annotations

from typing import Any

from signalwire_chat import ClientHealth

#: Realtime states in which this process cannot serve: the relay refused the credentials for
#: good, or the client was closed.
UNHEALTHY_STATES = frozenset({"failed", "closed"})


def health_answer(health: ClientHealth) -> tuple[int, dict[str, Any]]:
    """The HTTP status (200 or 503) and JSON body of a health check."""
    state = health.connection_state.value
    status = 503 if state in UNHEALTHY_STATES else 200
    body = {
        "status": "ok" if status == 200 else "unavailable",
        "realtime": {
            "state": state,
            "since": health.connection_state_since,
            "reason": health.connection_state_reason,
            "reconnects": health.reconnects,
            "delivered": health.messages_delivered,
            "from_catch_up": health.messages_from_catch_up,
            "queue_depth": health.queue_depth,
            "last_event_at": health.last_event_at,
            "token_expires_at": health.token_expires_at,
        },
        "rest": {
            "calls": health.rest_calls,
            "failed": health.rest_calls_failed,
            "retries": health.rest_retries,
            "failures": dict(health.rest_failures),
            "last_error": health.last_error,
            "last_error_at": health.last_error_at,
        },
    }
    return status, body
