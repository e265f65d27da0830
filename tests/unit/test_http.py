"""REST transport against a real scripted HTTP server on loopback: errors, retries, links,
percent-encoding, redaction. The server answers from a script and records every request."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from _loopback import Server, closed_port_url, reply

from signalwire_chat import (
    APIError,
    AuthenticationError,
    BadRequestError,
    ChatClient,
    ClientClosedError,
    ConnectError,
    DecodeError,
    Group,
    InvalidArgumentError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    RequestTimeoutError,
    ServerError,
    UnsafeLinkError,
    ValidationError,
)

# Address ids are UUIDs: the client refuses anything else before a request.
ROOM = "0b6e2f4a-5c1d-4e8f-9a7b-3c2d1e0f4a5b"
ME = "1c7f3a5b-6d2e-4f9a-8b8c-4d3e2f1a5b6c"


TOKEN = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJzZWNyZXQtdG9rZW4ifQ.c2VjcmV0LXNpZ25hdHVyZQ"
TOKEN2 = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJuZXctdG9rZW4ifQ.bmV3LXNpZ25hdHVyZQ"
CHAT = {
    "id": "m1",
    "conversation_id": ROOM,
    "user_id": "u",
    "ts": 1.5,
    "type": "message",
    "subtype": "chat",
    "text": "hi",
    "details": {},
}


@pytest.fixture
def server() -> Iterator[Server]:
    with Server() as srv:
        yield srv


@pytest.fixture
def sleeps() -> list[float]:
    return []


def _client_of(server: Server, sleeps: list[float], **options: Any) -> ChatClient:
    """A client of the scripted server whose retry waits are recorded, not slept."""
    return ChatClient(
        TOKEN, rest_url=server.url, relay_url="ws://127.0.0.1:1/", _sleep=sleeps.append, **options
    )


@pytest.fixture
def client(server: Server, sleeps: list[float]) -> Iterator[ChatClient]:
    # The HTTP layer is the same in both dialects; these scripts answer the address dialect.
    with _client_of(server, sleeps, dialect="address") as c:
        yield c


@pytest.fixture
def group_client(server: Server, sleeps: list[float]) -> Iterator[ChatClient]:
    with _client_of(server, sleeps, from_address_id=ME) as c:
        yield c


# --- error mapping ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, BadRequestError),
        (401, AuthenticationError),
        (403, PermissionDeniedError),
        (404, NotFoundError),
        (422, ValidationError),
        (500, ServerError),
        (418, APIError),
    ],
)
def test_status_mapping_with_fabric_body(
    server: Server, client: ChatClient, status: int, cls: type[APIError]
) -> None:
    body = {
        "errors": [
            {
                "type": "validation_error",
                "code": "missing_required_parameter",
                "message": "text is required",
                "attribute": "text",
                "url": "https://docs",
            }
        ]
    }
    server.script.append(reply(status, body, {"X-Request-ID": "req-123"}))
    with pytest.raises(cls) as info:
        client.send_message(ROOM, "hello")
    err = info.value
    assert type(err) is cls
    assert err.status == status
    assert err.code == "missing_required_parameter"
    assert err.message == "text is required"
    assert err.request_id == "req-123"
    assert err.errors[0].attribute == "text"
    assert err.method == "POST"
    assert "req-123" in str(err)


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        # the first header of the list wins, whatever the order and the case on the wire
        ({"x-correlation-id": "corr-1", "X-REQUEST-ID": "req-1"}, "req-1"),
        ({"Request-Id": "plain-1", "X-Trace-Id": "trace-1"}, "plain-1"),
        # a blank first choice falls to the next one
        ({"X-Request-Id": "", "X-Amzn-RequestId": "amzn-1"}, "amzn-1"),
        ({"Content-Language": "en"}, None),
    ],
)
def test_request_id_header_precedence(
    server: Server, client: ChatClient, headers: dict[str, str], expected: str | None
) -> None:
    server.script.append(reply(404, {"errors": []}, headers))
    with pytest.raises(NotFoundError) as info:
        client.send_message(ROOM, "hello")
    assert info.value.request_id == expected


def test_html_502_body_does_not_crash(server: Server, client: ChatClient) -> None:
    html = b"<html><body><h1>502 Bad Gateway</h1></body></html>"
    server.script.append(reply(502, html, {"Content-Type": "text/html"}))
    with pytest.raises(ServerError) as info:
        client.send_message(ROOM, "hello")
    assert info.value.status == 502
    assert "non-JSON" in info.value.message
    assert info.value.body is not None
    assert "Bad Gateway" in info.value.body


def test_empty_error_body(server: Server, client: ChatClient) -> None:
    server.script.append(reply(503, b""))
    with pytest.raises(ServerError) as info:
        client.join(ROOM)
    assert info.value.status == 503
    assert info.value.errors == []


def test_non_json_success_body_is_a_decode_error(server: Server, client: ChatClient) -> None:
    server.script.append(reply(200, b"<html>", {"Content-Type": "text/html"}))
    with pytest.raises(DecodeError):
        client.get_subscriber_info()


def test_token_is_redacted_from_error_bodies(server: Server, client: ChatClient) -> None:
    server.script.append(reply(400, {"errors": [{"message": f"bad token {TOKEN}"}]}))
    with pytest.raises(BadRequestError) as info:
        client.join(ROOM)
    assert TOKEN not in str(info.value)
    assert TOKEN not in (info.value.body or "")
    assert TOKEN not in info.value.message


# --- retries ---------------------------------------------------------------------------------


def test_get_retries_502_503_504(server: Server, client: ChatClient, sleeps: list[float]) -> None:
    server.script += [reply(502, b"<html>"), reply(503), reply(504)]
    server.default = reply(200, {"id": "s"})
    assert client.get_subscriber_info().id == "s"
    assert len(server.requests) == 4
    assert len(sleeps) == 3
    assert all(0 <= s <= 8.0 for s in sleeps)


def test_get_gives_up_after_max_retries(server: Server, sleeps: list[float]) -> None:
    server.default = reply(503)
    with _client_of(server, sleeps, max_retries=2) as c, pytest.raises(ServerError):
        c.get_subscriber_info()
    assert len(server.requests) == 3


def test_post_is_not_retried_on_5xx(server: Server, client: ChatClient) -> None:
    server.script.append(reply(503))
    with pytest.raises(ServerError):
        client.send_message(ROOM, "hello")
    assert len(server.requests) == 1


def test_post_is_retried_on_429_honouring_retry_after(
    server: Server, client: ChatClient, sleeps: list[float]
) -> None:
    server.script.append(reply(429, {"errors": []}, {"Retry-After": "2"}))
    server.default = reply(201, {"table": {"conversation_id": ROOM, "text": "hello"}})
    result = client.send_message(ROOM, "hello")
    assert result.text == "hello"
    assert len(server.requests) == 2
    assert sleeps == [2.0]


def test_retry_after_is_capped(server: Server, client: ChatClient, sleeps: list[float]) -> None:
    server.script.append(reply(429, None, {"Retry-After": "86400"}))
    server.default = reply(200, {"id": "s"})
    client.get_subscriber_info()
    assert sleeps == [30.0]


def test_429_exhausted_is_a_rate_limit_error(server: Server, sleeps: list[float]) -> None:
    server.default = reply(429, None, {"Retry-After": "1"})
    with _client_of(server, sleeps, max_retries=1) as c, pytest.raises(RateLimitError) as info:
        c.get_subscriber_info()
    assert info.value.retry_after == 1.0
    assert len(server.requests) == 2


def test_post_is_retried_when_the_connection_is_refused(sleeps: list[float]) -> None:
    url = closed_port_url()
    client = ChatClient(TOKEN, rest_url=url, relay_url="ws://127.0.0.1:1/", _sleep=sleeps.append)
    with client, pytest.raises(ConnectError):
        client.send_message(ROOM, "hello")
    assert len(sleeps) == 3  # retried: the request surely never left


def test_read_timeout_get_retried_post_not(server: Server, sleeps: list[float]) -> None:
    gate = threading.Event()
    original = server.httpd.RequestHandlerClass.handle_any  # type: ignore[attr-defined]

    def slow(self: Any) -> None:
        gate.wait(5)
        original(self)

    server.httpd.RequestHandlerClass.do_POST = slow  # type: ignore[attr-defined]
    try:
        with _client_of(server, sleeps, timeout=(1.0, 0.2), dialect="address") as c:
            with pytest.raises(RequestTimeoutError):
                c.send_message(ROOM, "hello")
            assert sleeps == []  # a POST that may have been received is never resent
    finally:
        gate.set()


def test_close_interrupts_a_retry_wait(server: Server) -> None:
    server.default = reply(429, None, {"Retry-After": "20"})
    client = ChatClient(TOKEN, rest_url=server.url, relay_url="ws://127.0.0.1:1/")
    errors: list[BaseException] = []
    done = threading.Event()

    def call() -> None:
        try:
            client.get_subscriber_info()
        except BaseException as exc:
            errors.append(exc)
        done.set()

    thread = threading.Thread(target=call)
    thread.start()
    deadline = time.monotonic() + 5
    while not server.requests and time.monotonic() < deadline:
        time.sleep(0.01)
    started = time.monotonic()
    client.close()
    assert done.wait(5)
    thread.join(5)
    assert time.monotonic() - started < 2
    assert isinstance(errors[0], ClientClosedError)


def _held_before_sending(
    monkeypatch: pytest.MonkeyPatch,
) -> tuple[threading.Event, threading.Event]:
    """A fault: each request stops just before it is sent until ``gate`` is set (``at_gate``
    says one got there), as a thread the scheduler leaves there would."""
    from signalwire_chat._http import HttpTransport

    gate, at_gate = threading.Event(), threading.Event()
    original = HttpTransport._send_once

    def held(self: HttpTransport, *args: Any, **kwargs: Any) -> Any:
        at_gate.set()
        assert gate.wait(10)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(HttpTransport, "_send_once", held)
    return gate, at_gate


def test_a_call_that_had_not_sent_when_close_came_sends_nothing_after_it(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    server.default = reply(200, {"id": "s"})
    client = ChatClient(TOKEN, rest_url=server.url, relay_url="ws://127.0.0.1:1/")
    assert client.get_subscriber_info().id == "s"  # the pool is open
    gate, at_gate = _held_before_sending(monkeypatch)
    outcome: list[Any] = []
    thread = threading.Thread(target=lambda: outcome.append(_outcome(client.get_subscriber_info)))
    thread.start()
    try:
        assert at_gate.wait(10)
        client.close()
    finally:
        gate.set()
    thread.join(10)
    assert [type(x) for x in outcome] == [ClientClosedError]
    assert len(server.requests) == 1  # nothing went out after close()


def test_a_call_whose_request_went_out_before_close_gets_its_answer(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The other side: close() coming after the request went out does not break it."""
    from signalwire_chat import _http

    server.default = reply(200, {"id": "s"})
    client = ChatClient(TOKEN, rest_url=server.url, relay_url="ws://127.0.0.1:1/")
    answered = threading.Event()
    original = _http._urlopen

    def slow_answer(*args: Any, **kwargs: Any) -> Any:
        response = original(*args, **kwargs)
        answered.set()
        time.sleep(0.3)  # close() comes now, between the answer's headers and its body
        return response

    monkeypatch.setattr(_http, "_urlopen", slow_answer)
    outcome: list[Any] = []
    thread = threading.Thread(target=lambda: outcome.append(_outcome(client.get_subscriber_info)))
    thread.start()
    assert answered.wait(10)
    client.close()
    thread.join(10)
    assert [getattr(x, "id", x) for x in outcome] == ["s"]
    assert len(server.requests) == 1


def _outcome(call: Any) -> Any:
    try:
        return call()
    except Exception as exc:  # the outcome is the test's to check
        return exc


def test_401_with_a_token_source_refreshes_once(server: Server) -> None:
    tokens = iter([TOKEN, TOKEN2, TOKEN2])
    server.script.append(reply(401, {"errors": [{"code": "unauthorized"}]}))
    server.default = reply(200, {"id": "s"})
    with ChatClient(lambda: next(tokens), rest_url=server.url, relay_url="ws://127.0.0.1:1/") as c:
        assert c.get_subscriber_info().id == "s"
    auths = [r["headers"]["Authorization"] for r in server.requests]
    assert auths == [f"Bearer {TOKEN}", f"Bearer {TOKEN2}"]


def test_401_twice_gives_up(server: Server) -> None:
    tokens = iter([TOKEN, TOKEN2, TOKEN])
    server.default = reply(401)
    client = ChatClient(lambda: next(tokens), rest_url=server.url, relay_url="ws://127.0.0.1:1/")
    with client, pytest.raises(AuthenticationError):
        client.get_subscriber_info()
    assert len(server.requests) == 2


# --- links -----------------------------------------------------------------------------------


def test_relative_links_resolve_against_the_base(server: Server, client: ChatClient) -> None:
    server.script += [
        reply(
            200,
            {
                "data": [CHAT],
                "links": {"next": f"/api/fabric/conversations/{ROOM}/messages?page_token=2"},
            },
        ),
        reply(200, {"data": [{**CHAT, "id": "m2"}], "links": {}}),
    ]
    assert [m.id for m in client.iter_messages(ROOM)] == ["m1", "m2"]
    assert server.requests[1]["path"] == f"/api/fabric/conversations/{ROOM}/messages?page_token=2"


@pytest.mark.parametrize(
    "link",
    [
        "https://evil.example/api/fabric/messages?page_token=2",
        "//evil.example/api",
        "http://127.0.0.2:1/x",
        "http://user@127.0.0.1/x",
    ],
)
def test_links_to_other_origins_are_refused(server: Server, client: ChatClient, link: str) -> None:
    server.script.append(reply(200, {"data": [CHAT], "links": {"next": link}}))
    with pytest.raises(UnsafeLinkError):
        list(client.iter_messages(ROOM))
    assert len(server.requests) == 1  # the token never went anywhere else


def test_link_cycle_stops(server: Server, client: ChatClient) -> None:
    loop = {"next": "/api/fabric/conversations?page_token=A"}
    server.default = reply(200, {"data": [{"id": "c"}], "links": loop})
    page = client.get_conversations()
    with pytest.raises(UnsafeLinkError):
        list(page.iter_items())
    assert len(server.requests) <= 3


def test_generic_page_navigation(server: Server, client: ChatClient) -> None:
    server.script += [
        reply(200, {"data": [{"id": "c1"}], "links": {"next": "/p2"}}),
        reply(200, {"data": [{"id": "c2"}], "links": {"prev": "/p1"}}),
        reply(200, {"data": [{"id": "c1"}], "links": {"next": "/p2"}}),
    ]
    first = client.get_conversations(page_size=1)
    assert first.has_next
    assert not first.has_prev
    second = first.next_page()
    assert second is not None
    assert [c.id for c in second] == ["c2"]
    assert second.next_page() is None
    back = second.prev_page()
    assert back is not None
    assert [c.id for c in back.data] == ["c1"]
    assert "Page(1 items" in repr(first)
    assert "<table>" in first._repr_html_()


# --- encoding and headers --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address_id", "segment"),
    [
        ("../../admin", "..%2F..%2Fadmin"),
        ("a/b", "a%2Fb"),
        ("a?x=1", "a%3Fx%3D1"),
        ("a#frag", "a%23frag"),
        ("100%", "100%25"),
        ("é", "%C3%A9"),
    ],
)
def test_a_group_id_is_one_path_segment(
    server: Server, client: ChatClient, group_client: ChatClient, address_id: str, segment: str
) -> None:
    # Address ids are UUIDs, so these are refused before any request; group ids are opaque
    # and go into the path, always as one segment.
    with pytest.raises(InvalidArgumentError, match="not an address id"):
        client.get_messages(address_id)
    assert server.requests == []
    group_client.get_messages(Group(id=address_id))
    path = server.requests[0]["path"]
    assert path.startswith(f"/api/fabric/conversations/{segment}/messages?page_size=")


def test_send_body_and_headers(server: Server, client: ChatClient) -> None:
    server.default = reply(201, {"table": {"conversation_id": ROOM, "text": "hé"}})
    client.send_message(ROOM, "hé")
    client.send_message(ROOM, "x", metadata={"a": 1}, details={"b": [True]})
    first, second = server.requests
    assert json.loads(first["body"]) == {"conversation_id": ROOM, "text": "hé"}
    assert json.loads(second["body"]) == {
        "conversation_id": ROOM,
        "text": "x",
        "metadata": {"a": 1},
        "details": {"b": [True]},
    }
    assert first["headers"]["Content-Type"] == "application/json"
    assert first["headers"]["Authorization"] == f"Bearer {TOKEN}"
    assert first["path"] == "/api/fabric/messages"


def test_join_request(server: Server, client: ChatClient) -> None:
    server.default = reply(200, {"table": {"conversation_id": ROOM}})
    assert client.join(ROOM).conversation_id == ROOM
    assert server.requests[0]["path"] == "/api/fabric/conversations/join"
    assert json.loads(server.requests[0]["body"]) == {"conversation_id": ROOM}


# --- redaction -------------------------------------------------------------------------------


def test_token_never_logged_even_at_debug(
    server: Server, client: ChatClient, caplog: pytest.LogCaptureFixture
) -> None:
    server.script += [reply(503), reply(200, {"id": "s"}), reply(401, {"errors": []})]
    with caplog.at_level(logging.DEBUG):
        logging.getLogger("urllib3").setLevel(logging.DEBUG)
        try:
            client.get_subscriber_info()
            with pytest.raises(AuthenticationError) as info:
                client.send_message(ROOM, "hello")
        finally:
            logging.getLogger("urllib3").setLevel(logging.NOTSET)
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert any(r.name.startswith("urllib3") for r in caplog.records)
    assert any(r.name.startswith("signalwire_chat") for r in caplog.records)
    for secret in (TOKEN, TOKEN.split(".")[1], TOKEN.split(".")[2]):
        assert secret not in text
        assert secret not in str(info.value)
        assert secret not in repr(info.value)
    assert TOKEN not in repr(client)


# --- the group dialect's requests ------------------------------------------------------------

JOINED = {"group_id": "g/1", "fabric_address_ids": [ROOM, ME], "from_fabric_address_id": ME}


def test_group_send_joins_once_then_sends_by_group(
    server: Server, group_client: ChatClient
) -> None:
    server.script = [reply(200, JOINED), reply(201, {"group_id": "g/1", "text": "a"})]
    server.default = reply(201, {"group_id": "g/1", "text": "b", "from_fabric_address_id": ME})
    first = group_client.send_message(ROOM, "a")
    second = group_client.send_message(ROOM, "b", metadata={"k": 1})
    assert (first.group_id, second.from_address_id) == ("g/1", ME)
    join, send_a, send_b = server.requests
    assert join["path"] == "/api/fabric/conversations/join"
    assert json.loads(join["body"]) == {
        "from_fabric_address_id": ME,
        "fabric_address_ids": [ROOM, ME],
    }
    assert json.loads(send_a["body"]) == {
        "group_id": "g/1",
        "from_fabric_address_id": ME,
        "text": "a",
    }
    assert json.loads(send_b["body"])["metadata"] == {"k": 1}
    assert send_b["path"] == "/api/fabric/messages"


def test_group_history_path_is_one_encoded_segment(
    server: Server, group_client: ChatClient
) -> None:
    server.script = [reply(200, JOINED)]
    page = group_client.get_messages(ROOM, page_size=3)
    assert page.group_id == "g/1"
    assert page.address_id == ROOM
    assert server.requests[1]["path"].startswith("/api/fabric/conversations/g%2F1/messages?")


def test_join_is_retried_like_a_get_but_a_send_is_not(
    server: Server, group_client: ChatClient, sleeps: list[float]
) -> None:
    server.script = [reply(503, {}), reply(200, JOINED), reply(503, {})]
    with pytest.raises(ServerError):
        group_client.send_message(ROOM, "once")
    paths = [r["path"] for r in server.requests]
    assert paths == [
        "/api/fabric/conversations/join",
        "/api/fabric/conversations/join",
        "/api/fabric/messages",
    ]
    assert len(sleeps) == 1  # the one retry, of the join


def test_a_404_on_send_forgets_the_cached_group(server: Server, group_client: ChatClient) -> None:
    server.script = [reply(200, JOINED), reply(404, {}), reply(200, JOINED)]
    server.default = reply(201, {"group_id": "g/1", "text": "x"})
    with pytest.raises(NotFoundError):
        group_client.send_message(ROOM, "x")
    group_client.send_message(ROOM, "x")
    paths = [r["path"].rsplit("/", 1)[-1] for r in server.requests]
    assert paths == ["join", "messages", "join", "messages"]


def test_group_dialect_refuses_my_own_address_before_sending(
    server: Server, group_client: ChatClient
) -> None:
    for call in (
        lambda: group_client.join(ME),
        lambda: group_client.send_message(ME, "hi"),
        lambda: group_client.get_messages(ME),
        lambda: group_client.join_group([ME]),
    ):
        with pytest.raises(InvalidArgumentError, match="own address"):
            call()
    assert server.requests == []


def test_a_join_answer_without_group_id_is_a_decode_error(
    server: Server, group_client: ChatClient
) -> None:
    server.script = [reply(200, {"table": {"conversation_id": ROOM}})]
    with pytest.raises(DecodeError, match="group_id"):
        group_client.join(ROOM)
