"""RealtimeHub refuses bad arguments before anything starts (no socket, no thread)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

from signalwire_chat._auth import Credentials
from signalwire_chat._realtime import ConnectionState, RealtimeHub, RealtimeOptions, Route
from signalwire_chat.errors import (
    ClientClosedError,
    InvalidArgumentError,
    InvalidArgumentTypeError,
)
from signalwire_chat.models import ConversationChatMessage

TOKEN = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJodWIifQ.c2lnbmF0dXJl"
URL = "ws://127.0.0.1:9/"  # never dialled: every call here is refused before that


def _history(route: Route) -> Iterator[ConversationChatMessage]:
    return iter(())


def _hub(**kwargs: Any) -> RealtimeHub:
    return RealtimeHub(
        relay_url=URL,
        credentials=Credentials(TOKEN),
        agent="test/1",
        history=_history,
        options=kwargs.pop("options", RealtimeOptions()),
        **kwargs,
    )


def _own_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("signalwire-chat")]


def test_the_constructor_checks_its_options_and_listener() -> None:
    with pytest.raises(InvalidArgumentTypeError, match="RealtimeOptions"):
        _hub(options={"ping_timeout": 5})
    with pytest.raises(InvalidArgumentTypeError, match="on_state_change"):
        _hub(on_state_change="print")


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda hub: hub.subscribe("addr", "not callable"), "on_message"),
        (lambda hub: hub.subscribe("addr", print, on_error=42), "on_error"),
        (lambda hub: hub.subscribe("addr", print, on_update="x"), "on_update"),
        (lambda hub: hub.stream("addr", timeout=True), "timeout"),
        (lambda hub: hub.stream("addr", timeout="5"), "timeout"),
        (lambda hub: hub.stream("addr", timeout=0), "timeout must be positive"),
        (lambda hub: hub.stream("addr", timeout=float("nan")), "timeout must be positive"),
        (lambda hub: hub.add_state_listener(None), "state listener"),
    ],
)
def test_bad_arguments_are_refused_and_nothing_starts(call: Any, match: str) -> None:
    with _hub() as hub:
        with pytest.raises(InvalidArgumentError, match=match):
            call(hub)
        assert hub.state is ConnectionState.IDLE
        assert hub.subscriptions == ()
        assert not hub.running
        assert _own_threads() == []


def test_a_closed_hub_refuses_subscriptions_and_says_so() -> None:
    states: list[ConnectionState] = []
    hub = _hub(on_state_change=states.append)
    assert repr(hub) == f"<RealtimeHub {URL!r} IDLE>"
    assert hub.forked_away == 0
    with hub:
        pass
    assert states == [ConnectionState.CLOSED]
    assert repr(hub) == f"<RealtimeHub {URL!r} CLOSED>"
    with pytest.raises(ClientClosedError):
        hub.subscribe("addr", print)
    with pytest.raises(ClientClosedError):
        hub.stream("addr", timeout=1)
    hub.close()  # idempotent
    assert states == [ConnectionState.CLOSED]
