"""What the REST transport keeps of requests' behaviour: proxies (the environment's and a
caller's session's), ``NO_PROXY``, a caller's mounted adapter, hooks and cookies; and that the
client's own session, once open, spends nothing in requests per call (it sends straight to the
urllib3 pool of its own adapter). Against the scripted loopback server."""

from __future__ import annotations

import socket
import sys
from collections.abc import Iterator
from types import FrameType
from typing import Any

import pytest
import requests
import requests.adapters
from _loopback import Server, closed_port_url, reply

from signalwire_chat import ChatClient, Hooks, RequestTimeoutError, TransportError
from signalwire_chat._redact import SecretForms, redact

ROOM = "0b6e2f4a-5c1d-4e8f-9a7b-3c2d1e0f4a5b"
TOKEN = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJzZWNyZXQtdG9rZW4ifQ.c2VjcmV0LXNpZ25hdHVyZQ"
SENT = {"table": {"conversation_id": ROOM, "text": "hi"}}
PROXY_VARIABLES = ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY",
                   "all_proxy", "NO_PROXY", "no_proxy")  # fmt: skip


@pytest.fixture
def server() -> Iterator[Server]:
    with Server() as srv:
        srv.default = reply(201, SENT)
        yield srv


@pytest.fixture
def no_proxy_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def _client(rest_url: str, **options: Any) -> ChatClient:
    return ChatClient(
        TOKEN,
        rest_url=rest_url,
        relay_url="ws://127.0.0.1:1/",
        dialect="address",
        max_retries=0,
        **options,
    )


def test_the_environments_proxy_carries_the_rest_calls(
    server: Server, no_proxy_env: pytest.MonkeyPatch
) -> None:
    # The REST host does not listen: only a request through the proxy can be answered.
    rest_url = closed_port_url()
    no_proxy_env.setenv("HTTP_PROXY", server.url)
    with _client(rest_url) as client:
        client.send_message(ROOM, "hi")
        client.send_message(ROOM, "hi")
    assert [r["path"] for r in server.requests] == [f"{rest_url}/api/fabric/messages"] * 2
    assert server.requests[0]["headers"]["Authorization"] == f"Bearer {TOKEN}"


def test_no_proxy_sends_directly(server: Server, no_proxy_env: pytest.MonkeyPatch) -> None:
    no_proxy_env.setenv("HTTP_PROXY", closed_port_url())  # would refuse the call
    no_proxy_env.setenv("NO_PROXY", "127.0.0.1")
    with _client(server.url) as client:
        client.send_message(ROOM, "hi")
    assert [r["path"] for r in server.requests] == ["/api/fabric/messages"]


def test_the_environment_is_read_when_the_first_call_is_made(
    server: Server, no_proxy_env: pytest.MonkeyPatch
) -> None:
    """Proxies (and the CA bundle) are read once per client, at its first call: a variable
    set later does not reroute it (a new client reads it)."""
    with _client(server.url) as client:
        client.send_message(ROOM, "hi")
        no_proxy_env.setenv("HTTP_PROXY", closed_port_url())
        client.send_message(ROOM, "hi")
    assert [r["path"] for r in server.requests] == ["/api/fabric/messages"] * 2
    with _client(server.url) as later, pytest.raises(TransportError):
        later.send_message(ROOM, "hi")


def test_a_callers_session_proxies_carry_the_rest_calls(
    server: Server, no_proxy_env: pytest.MonkeyPatch
) -> None:
    rest_url = closed_port_url()
    with requests.Session() as session:
        session.proxies = {"http": server.url}
        with _client(rest_url, session=session) as client:
            client.send_message(ROOM, "hi")
    assert [r["path"] for r in server.requests] == [f"{rest_url}/api/fabric/messages"]


class _Tagging(requests.adapters.HTTPAdapter):
    """A caller's adapter: it adds a header to every request it sends."""

    def add_headers(self, request: Any, **kwargs: Any) -> None:
        request.headers["X-Via"] = "the caller's adapter"


def test_a_callers_mounted_adapter_response_hooks_and_cookie_jar_are_kept(
    server: Server, no_proxy_env: pytest.MonkeyPatch
) -> None:
    server.default = reply(201, SENT, {"Set-Cookie": "affinity=n1; Path=/"})
    seen: list[int] = []
    with requests.Session() as session:
        session.mount(server.url, _Tagging())
        session.hooks["response"].append(
            lambda response, **kwargs: seen.append(response.status_code)
        )
        with _client(server.url, session=session) as client:
            client.send_message(ROOM, "hi")
            client.send_message(ROOM, "hi")
        assert session.cookies.get("affinity") == "n1"
    assert seen == [201, 201]
    assert [r["headers"].get("X-Via") for r in server.requests] == ["the caller's adapter"] * 2


def _called_during(action: Any) -> list[tuple[str, str, str]]:
    """(module, file, function) of every Python function called on this thread by ``action``."""
    called: list[tuple[str, str, str]] = []

    def profile(frame: FrameType, event: str, arg: object) -> None:
        if event == "call":
            code = frame.f_code
            module = str(frame.f_globals.get("__name__", ""))
            called.append((module, code.co_filename, code.co_name))

    sys.setprofile(profile)
    try:
        action()
    finally:
        sys.setprofile(None)
    return called


def test_the_clients_own_session_sends_without_requests_per_call(
    server: Server, no_proxy_env: pytest.MonkeyPatch
) -> None:
    """Once its session is open, a call goes straight to urllib3's pool: none of requests'
    per-request work (URL parsing, proxy choice, CA bundle checks, a Response and its cookie
    jar) runs, which was 25% of a send's instructions."""
    with _client(server.url) as client:
        client.send_message(ROOM, "hi")
        modules = {m for m, _, _ in _called_during(lambda: client.send_message(ROOM, "hi"))}
    assert "urllib3.connectionpool" in modules
    assert sorted(m for m in modules if m == "requests" or m.startswith("requests.")) == []
    assert len(server.requests) == 2


@pytest.mark.parametrize("own_session", [True, False])
@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"X-Request-Id": "a", "Request-Id": "b"}, "a"),
        ({"X-Correlation-Id": "c", "X-Amzn-RequestId": "d"}, "d"),
        ({"X-Request-Id": "", "X-Trace-Id": "t"}, "t"),
        ({"x-request-id": f"id {TOKEN} \x1b[2J"}, "id [redacted] ?[2J"),
        ({"X-Request-Id": "id " + TOKEN.split(".")[1]}, "id [redacted]"),
        ({}, None),
    ],
)
def test_the_hooks_get_the_request_id_of_a_success_cleaned_whichever_session(
    server: Server,
    no_proxy_env: pytest.MonkeyPatch,
    own_session: bool,
    headers: dict[str, str],
    expected: str | None,
) -> None:
    server.default = reply(201, SENT, headers)
    calls: list[Any] = []
    hooks = Hooks(on_call=calls.append)
    with requests.Session() as session:
        options: dict[str, Any] = {} if own_session else {"session": session}
        with _client(server.url, hooks=hooks, **options) as client:
            client.send_message(ROOM, "hi")
    assert [call.request_id for call in calls] == [expected]


def test_the_secret_forms_never_show_the_secrets() -> None:
    forms = SecretForms([TOKEN])
    assert TOKEN in forms
    assert TOKEN not in repr(forms)
    assert TOKEN not in str(forms)
    assert redact(f"a {TOKEN} b", forms) == "a [redacted] b"


@pytest.fixture
def unanswered_port() -> Iterator[int]:
    """A loopback port whose listener never accepts and whose backlog is full: a connect to
    it gets no answer (the kernel drops the SYN), so it times out."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = int(listener.getsockname()[1])
    fillers = []
    for _ in range(3):
        filler = socket.socket()
        filler.setblocking(False)
        filler.connect_ex(("127.0.0.1", port))
        fillers.append(filler)
    try:
        yield port
    finally:
        for filler in fillers:
            filler.close()
        listener.close()


@pytest.mark.parametrize("own_session", [True, False])
def test_a_connect_timeout_is_a_request_timeout_and_a_post_is_sent_again(
    unanswered_port: int, no_proxy_env: pytest.MonkeyPatch, own_session: bool
) -> None:
    """The same error, and the same retry (the request surely never left), whether urllib3's
    failure comes straight from our pool or wrapped by requests (a caller's session)."""
    sleeps: list[float] = []
    with requests.Session() as session:
        options: dict[str, Any] = {} if own_session else {"session": session}
        with (
            ChatClient(
                TOKEN,
                rest_url=f"http://127.0.0.1:{unanswered_port}",
                relay_url="ws://127.0.0.1:1/",
                dialect="address",
                max_retries=1,
                timeout=(0.3, 5.0),
                _sleep=sleeps.append,
                **options,
            ) as client,
            pytest.raises(RequestTimeoutError) as info,
        ):
            client.send_message(ROOM, "hi")
    assert str(info.value).startswith("connecting to http://127.0.0.1:")
    assert str(info.value).endswith("timed out")
    assert len(sleeps) == 1  # sent again once: it never reached the server


def _read1_calls_during(action: Any) -> int:
    """How many times urllib3's ``HTTPResponse.read1`` ran (on this thread) during ``action``."""
    return sum(name == "read1" and "urllib3" in file for _, file, name in _called_during(action))


@pytest.mark.parametrize("own_session", [True, False])
def test_a_body_of_known_length_is_read_without_a_last_empty_read(
    server: Server, no_proxy_env: pytest.MonkeyPatch, own_session: bool
) -> None:
    """Once its Content-Length is read, the body is whole: no read that returns nothing."""
    with requests.Session() as session:
        options: dict[str, Any] = {} if own_session else {"session": session}
        with _client(server.url, **options) as client:
            client.send_message(ROOM, "hi")
            calls = _read1_calls_during(lambda: client.send_message(ROOM, "hi"))
            server.default = reply(201, SENT, {"Content-Encoding": "identity"})
            encoded = _read1_calls_during(lambda: client.send_message(ROOM, "hi"))
    assert calls == 1
    assert encoded == 2  # an encoded body is read to its end (the decoder may hold some)
