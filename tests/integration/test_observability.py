"""Hooks and health against the emulator: what a production user sees of the client's REST work."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator

import pytest

from signalwire_chat import (
    CallEvent,
    ChatClient,
    ClientHealth,
    ConnectError,
    ConnectionState,
    DecodeError,
    Hooks,
    RequestEvent,
    ResponseEvent,
    ServerError,
    StateChangeEvent,
)
from signalwire_chat.emulator import Emulator

TEXT = "observability secret text 7d1f"


class Recorder:
    """Every REST event, in order, from any thread."""

    def __init__(self) -> None:
        self.events: list[RequestEvent | ResponseEvent | CallEvent] = []
        self.states: list[StateChangeEvent] = []
        self.lock = threading.Lock()
        self.connected = threading.Event()

    def add(self, event: RequestEvent | ResponseEvent | CallEvent) -> None:
        with self.lock:
            self.events.append(event)

    def state(self, event: StateChangeEvent) -> None:
        self.states.append(event)
        if event.state is ConnectionState.CONNECTED:
            self.connected.set()

    def hooks(self) -> Hooks:
        return Hooks(
            on_request=self.add,
            on_response=self.add,
            on_call=self.add,
            on_state_change=self.state,
        )

    def of(self, kind: type) -> list:  # type: ignore[type-arg]
        return [e for e in self.events if isinstance(e, kind)]


@pytest.fixture
def setup(signalwire_emulator: Emulator) -> Iterator[tuple[Emulator, ChatClient, str, Recorder]]:
    emu = signalwire_emulator
    sub = emu.create_subscriber()
    room = emu.create_room("obs")
    rec = Recorder()
    with ChatClient(
        sub.token,
        rest_url=emu.rest_url,
        relay_url=emu.relay_url,
        hooks=rec.hooks(),
        _sleep=lambda _: None,
    ) as client:
        yield emu, client, room.id, rec


def test_send_reports_request_response_and_call_with_templates(
    setup: tuple[Emulator, ChatClient, str, Recorder],
) -> None:
    _emu, client, room, rec = setup
    client.send_message(room, TEXT, metadata={"order": 42})

    paths = [(e.method, e.path) for e in rec.of(CallEvent)]
    # subscriber/info (my address), the join, the send: ids never appear, only templates.
    assert paths == [
        ("GET", "/api/fabric/subscriber/info"),
        ("POST", "/api/fabric/conversations/join"),
        ("POST", "/api/fabric/messages"),
    ]
    send = rec.of(CallEvent)[-1]
    assert send.status == 201
    assert send.error is None
    assert send.attempts == 1
    assert send.duration > 0
    assert send.request_id  # the emulator's X-Request-Id
    assert send.server_address == "127.0.0.1"
    # the three kinds of events of one call, in order, tied by its number
    of_send = [e for e in rec.events if e.call == send.call]
    assert [type(e) for e in of_send] == [RequestEvent, ResponseEvent, CallEvent]
    assert of_send[1].retry_in is None
    assert of_send[1].status == 201
    for event in rec.events:
        assert room not in repr(event)
        assert TEXT not in repr(event)


def test_page_walk_with_a_503_retry_reports_each_attempt(
    setup: tuple[Emulator, ChatClient, str, Recorder],
) -> None:
    emu, client, room, rec = setup
    for i in range(5):
        client.send_message(room, f"{TEXT} {i}")
    rec.events.clear()
    emu.fail_next(503, method="GET", path_prefix="/api/fabric/conversations/")

    texts = [m.text for m in client.iter_messages(room, page_size=2)]

    assert len(texts) == 5
    calls = rec.of(CallEvent)
    assert {c.path for c in calls} == {"/api/fabric/conversations/{id}/messages"}
    first = calls[0]
    assert first.attempts == 2
    assert first.status == 200
    assert first.error is None
    responses = [e for e in rec.of(ResponseEvent) if e.call == first.call]
    assert [(r.attempt, r.status, r.error) for r in responses] == [
        (1, 503, "ServerError"),
        (2, 200, None),
    ]
    assert responses[0].retry_in is not None
    assert responses[1].retry_in is None
    # on_call alone tells the story: the retried attempt, as on_response saw it
    assert first.retries == (responses[0],)
    assert responses[0].at <= responses[1].at
    assert all(c.retries == () for c in calls[1:])

    health = client.health()
    assert health.rest_retries == 1
    assert health.rest_failures == {"ServerError": 1}
    assert health.last_error == "ServerError"
    assert health.last_error_at is not None


def test_on_call_alone_gets_the_retried_attempts(signalwire_emulator: Emulator) -> None:
    emu = signalwire_emulator
    sub = emu.create_subscriber()
    room = emu.create_room("obs-call-only")
    calls: list[CallEvent] = []
    with ChatClient(
        sub.token,
        rest_url=emu.rest_url,
        relay_url=emu.relay_url,
        hooks=Hooks(on_call=calls.append),
        _sleep=lambda _: None,
    ) as client:
        client.send_message(room.id, TEXT)
        calls.clear()
        emu.fail_next(502, method="GET", path_prefix="/api/fabric/conversations/")
        client.get_messages(room.id)
    [call] = calls
    assert call.attempts == 2
    [retry] = call.retries
    assert (retry.attempt, retry.status, retry.error) == (1, 502, "ServerError")
    assert retry.retry_in is not None
    assert retry.retry_in >= 0
    assert retry.path == "/api/fabric/conversations/{id}/messages"


def test_health_counts_calls_failures_and_is_frozen(
    setup: tuple[Emulator, ChatClient, str, Recorder],
) -> None:
    emu, client, room, rec = setup
    before = client.health()
    assert isinstance(before, ClientHealth)
    assert before.rest_calls == 0
    assert before.last_error is None
    assert before.connection_state is ConnectionState.IDLE
    assert before.connection_state_since <= time.time()
    assert before.messages_delivered == 0
    assert before.reconnects == 0
    assert before.queue_depth == 0
    assert before.connection_state_reason is None
    assert before.token_expires_at is None  # known from the relay's answer only

    client.send_message(room, TEXT)
    emu.fail_next(503, method="POST", path_prefix="/api/fabric/messages")
    with pytest.raises(ServerError):
        client.send_message(room, TEXT)  # a POST is not retried on 503

    after = client.health()
    assert after.rest_calls == 4  # info, join, send, failed send
    assert after.rest_calls_failed == 1
    assert after.rest_attempts == 4
    assert after.rest_retries == 0
    assert after.rest_failures == {"ServerError": 1}
    with pytest.raises(AttributeError):
        after.rest_calls = 0  # type: ignore[misc]
    with pytest.raises(TypeError):
        after.rest_failures["x"] = 1  # type: ignore[index]
    assert before.rest_calls == 0  # a snapshot, not a view
    failed = rec.of(CallEvent)[-1]
    assert failed.error == "ServerError"
    assert failed.status == 503


def test_health_follows_the_realtime_state(
    setup: tuple[Emulator, ChatClient, str, Recorder],
) -> None:
    _emu, client, room, rec = setup
    with client.subscribe(room, lambda m: None):
        assert rec.connected.wait(10)
        health = client.health()
        assert health.connection_state is ConnectionState.CONNECTED
        assert health.connected
        assert rec.states[-1].state is ConnectionState.CONNECTED
        assert rec.states[-1].reason == "connect accepted"
        assert health.connection_state_reason == "connect accepted"
        assert health.connection_state_since == rec.states[-1].at
    client.close()
    assert client.health().connection_state is ConnectionState.CLOSED


def test_a_failing_hook_is_logged_and_never_breaks_the_client(
    signalwire_emulator: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    emu = signalwire_emulator
    sub = emu.create_subscriber()
    room = emu.create_room("obs").id
    seen: list[CallEvent] = []

    def broken(event: object) -> None:
        raise RuntimeError("hook bug")

    hooks = [
        Hooks(on_request=broken, on_response=broken, on_call=broken),
        Hooks(on_call=seen.append),
    ]
    with (
        caplog.at_level(logging.DEBUG, logger="signalwire_chat._hooks"),
        ChatClient(
            sub.token, rest_url=emu.rest_url, relay_url=emu.relay_url, hooks=hooks
        ) as client,
    ):
        result = client.send_message(room, TEXT)
        client.send_message(room, TEXT)
    assert result.text == TEXT
    assert len(seen) == 4  # the hook after the broken one still ran
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1  # once per broken callback; its later failures at DEBUG
    assert all("hook" in r.getMessage() and r.exc_info for r in warnings)
    assert sub.token not in caplog.text


def test_hooks_argument_is_checked() -> None:
    from signalwire_chat import InvalidArgumentTypeError

    with pytest.raises(InvalidArgumentTypeError):
        Hooks(on_call="not callable")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentTypeError):
        ChatClient("a.b.c", rest_url="https://x.test", hooks=[print])  # type: ignore[list-item]


def test_a_401_refresh_is_a_resend_and_a_bad_body_a_failure(signalwire_emulator: Emulator) -> None:
    emu = signalwire_emulator
    sub = emu.create_subscriber()
    rec = Recorder()
    with ChatClient(
        lambda: emu.mint_token(sub.id),
        rest_url=emu.rest_url,
        relay_url=emu.relay_url,
        hooks=rec.hooks(),
    ) as client:
        emu.fail_next(401, method="GET", path_prefix="/api/fabric/subscriber")
        client.get_subscriber_info()
        responses = rec.of(ResponseEvent)
        assert [(r.status, r.error, r.retry_in) for r in responses] == [
            (401, "AuthenticationError", 0.0),
            (200, None, None),
        ]
        [call] = rec.of(CallEvent)
        assert call.attempts == 2
        assert call.error is None
        health = client.health()
        assert health.rest_retries == 1
        assert health.rest_attempts == 2
        assert health.rest_failures == {"AuthenticationError": 1}

        # A 200 whose body is not JSON: the attempt succeeded, the call failed.
        emu.fail_next(200, method="GET", path_prefix="/api/fabric/subscriber", body="<html>")
        with pytest.raises(DecodeError):
            client.get_subscriber_info()
        assert rec.of(CallEvent)[-1].error == "DecodeError"
        health = client.health()
        assert health.rest_calls_failed == 1
        assert health.rest_failures == {"AuthenticationError": 1, "DecodeError": 1}
        assert health.last_error == "DecodeError"


@pytest.mark.parametrize(
    ("rest_url", "port"),
    [("https://127.0.0.1", 443), ("http://127.0.0.1", 80), ("http://127.0.0.1:9", 9)],
)
def test_a_call_names_its_port_also_when_the_url_does_not(
    signalwire_emulator: Emulator, rest_url: str, port: int
) -> None:
    # OpenTelemetry's HTTP client spans require server.port: SignalWire's own URLs name none.
    # Nothing listens on these ports of loopback: the call is refused, and still reported.
    sub = signalwire_emulator.create_subscriber()
    calls: list[CallEvent] = []
    with (
        ChatClient(
            sub.token,
            rest_url=rest_url,
            relay_url="ws://127.0.0.1:9/",
            hooks=Hooks(on_call=calls.append),
            _sleep=lambda _: None,
        ) as client,
        pytest.raises(ConnectError),
    ):
        client.get_conversations()
    assert [(c.server_address, c.server_port) for c in calls] == [("127.0.0.1", port)]
