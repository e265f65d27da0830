"""The process's one ChatClient, made on first use and shared by every request thread.

Pre-fork servers (gunicorn, uWSGI) may make it in the master: the client notices the fork and
opens fresh connections in each worker. It is remade when ``settings.SIGNALWIRE`` changes
(tests use ``override_settings``).
"""

from __future__ import annotations

import atexit
import threading
from typing import Any

from django.conf import settings
from django.core.signals import setting_changed

from signalwire_chat import ChatClient, SubscriberTokenSource

_lock = threading.Lock()
_client: ChatClient | None = None
_source: SubscriberTokenSource | None = None


def config() -> dict[str, str]:
    """The SignalWire settings."""
    value: dict[str, str] = settings.SIGNALWIRE
    return value


def client() -> ChatClient:
    """The shared client, sending as the bot subscriber."""
    global _client, _source
    with _lock:
        if _client is None:
            cfg = config()
            _source = SubscriberTokenSource(
                cfg["SPACE_URL"], cfg["PROJECT_ID"], cfg["API_TOKEN"], cfg["BOT"]
            )
            _client = ChatClient(
                _source, rest_url=cfg["REST_URL"] or None, relay_url=cfg["RELAY_URL"] or None
            )
        return _client


def reset(**_: Any) -> None:
    """Close the shared client and its token source; the next use makes new ones."""
    global _client, _source
    with _lock:
        old, _client = _client, None
        source, _source = _source, None
    if old is not None:
        old.close()
    if source is not None:
        source.close()  # the client does not close the source it was given


def _on_setting_changed(*, setting: str, **_: Any) -> None:
    if setting == "SIGNALWIRE":
        reset()


setting_changed.connect(_on_setting_changed)
atexit.register(reset)
