"""The REST side against a hostile server: a scripted raw-socket HTTP server on 127.0.0.1.

Each test scripts what the server writes on the socket, byte for byte: a token echoed in the
reason phrase or the request id, chunked bodies that break, a body dripped one byte at a time,
huge and gzip-bomb bodies, endless pagination cursors, poison JSON. The client must answer each
with one of its own errors (issue 10, items 1-6 and 9), and no frame of the exception it raises
may hold the token in a local.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import logging
import math
import socket
import sys
import threading
import time
import traceback
import tracemalloc
import zlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests

from signalwire_chat import (
    APIError,
    AuthenticationError,
    ChatClient,
    DecodeError,
    InvalidArgumentError,
    PageLimitError,
    RateLimitError,
    RequestTimeoutError,
    ResponseTooLargeError,
    ServerError,
    SubscriberTokenSource,
    TransportError,
    mint_guest_token,
    mint_subscriber_token,
    refresh_subscriber_token,
)
from signalwire_chat._pages import MAX_RAW_PAGES_PER_STEP

# Parts of 16+ characters, as in a real JWE, so echoing one part alone is also caught.
TOKEN = (
    "eyJhbGciOiJIUzI1NiJ9"
    ".eyJzdWIiOiJob3N0aWxlLXRlc3QtdG9rZW4ifQ"
    ".c2VjcmV0LXNpZ25hdHVyZS1vZi10aGUtdG9rZW4"
)
SIGNATURE = TOKEN.split(".")[2]
ROOM = "0b6e2f4a-5c1d-4e8f-9a7b-3c2d1e0f4a5b"  # address ids are UUIDs


def chat(index: int, **fields: Any) -> dict[str, Any]:
    return {
        "id": f"m{index}",
        "conversation_id": ROOM,
        "user_id": "u",
        "ts": 1_700_000_000.0 + index,
        "type": "message",
        "subtype": "chat",
        "text": f"hello {index}",
        "details": {},
        **fields,
    }


# --- the scripted raw-socket server ---------------------------------------------------------


class Request:
    def __init__(self, method: str, path: str, headers: dict[str, str], body: bytes) -> None:
        self.method = method
        self.path = path
        self.headers = headers
        self.body = body


Handler = Callable[["Conn", Request], bool]  # returns whether to keep the connection open


class Conn:
    """One accepted connection, as the handler sees it."""

    def __init__(self, sock: socket.socket, server: RawServer) -> None:
        self.sock = sock
        self.server = server

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def respond(
        self,
        status: int,
        body: bytes | Any = b"",
        *,
        reason: str = "OK",
        headers: dict[str, str] | None = None,
    ) -> None:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        head = [f"HTTP/1.1 {status} {reason}", f"Content-Length: {len(raw)}"]
        head += [f"{k}: {v}" for k, v in (headers or {"Content-Type": "application/json"}).items()]
        self.send(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + raw)

    def drip(self, data: bytes, every: float) -> None:
        """Send ``data`` one byte at a time until done, the peer leaves or the test ends."""
        for index in range(len(data)):
            if self.server.stop.wait(every):
                return
            try:
                self.sock.sendall(data[index : index + 1])
            except OSError:
                return
        self.server.drip_finished.set()


class RawServer:
    """Accepts on 127.0.0.1:0; each request is handed to ``handler`` with the raw socket."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.requests: list[Request] = []
        self.connections = 0
        self.stop = threading.Event()
        self.drip_finished = threading.Event()
        self.lock = threading.Lock()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.threads: list[threading.Thread] = []
        self.accepting = threading.Thread(target=self._accept, name="test-hostile-accept")

    def __enter__(self) -> RawServer:
        self.accepting.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()
        self.accepting.join(5)
        for thread in list(self.threads):
            thread.join(5)

    def _accept(self) -> None:
        while not self.stop.is_set():
            try:
                sock, _ = self.listener.accept()
            except OSError:
                return
            with self.lock:
                self.connections += 1
            thread = threading.Thread(target=self._serve, args=(sock,), name="test-hostile-conn")
            self.threads.append(thread)
            thread.start()

    def _serve(self, sock: socket.socket) -> None:
        sock.settimeout(10)
        buffer = b""
        try:
            while not self.stop.is_set():
                while b"\r\n\r\n" not in buffer:
                    data = sock.recv(65536)
                    if not data:
                        return
                    buffer += data
                head, buffer = buffer.split(b"\r\n\r\n", 1)
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                headers = dict(line.split(": ", 1) for line in lines[1:])
                length = int(headers.get("Content-Length", "0"))
                while len(buffer) < length:
                    buffer += sock.recv(65536)
                body, buffer = buffer[:length], buffer[length:]
                request = Request(method, path, headers, body)
                with self.lock:
                    self.requests.append(request)
                if not self.handler(Conn(sock, self), request):
                    return
        except OSError:
            return
        finally:
            sock.close()


@pytest.fixture
def serve() -> Iterator[Callable[[Handler], RawServer]]:
    servers: list[RawServer] = []

    def start(handler: Handler) -> RawServer:
        server = RawServer(handler).__enter__()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.__exit__()


def client_for(server: RawServer, **options: Any) -> ChatClient:
    options.setdefault("max_retries", 2)
    options.setdefault("_sleep", lambda _delay: None)
    # The scripted answers are the address dialect's: one request per call, no join first.
    options.setdefault("dialect", "address")
    return ChatClient(TOKEN, rest_url=server.url, relay_url="ws://127.0.0.1:1/", **options)


def page(data: list[Any], next_link: str | None = None) -> dict[str, Any]:
    return {"data": data, "links": {"next": next_link} if next_link else {}}


# --- the token never leaves in an error: frames, messages, logs (items 2 and 9) ------------


def _exceptions(exc: BaseException) -> Iterator[BaseException]:
    """The exception and everything it chains, suppressed context included."""
    seen: set[int] = set()
    todo = [exc]
    while todo:
        current = todo.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        todo += [e for e in (current.__cause__, current.__context__) if e is not None]


def assert_no_token_anywhere(exc: BaseException, secret: str = SIGNATURE) -> None:
    """No message, no traceback local (by repr), no captured-locals rendering holds the token
    (or ``secret``).

    Frames of this test module are skipped: the test itself holds the token, as a caller does.
    """
    for current in _exceptions(exc):
        for text in (str(current), repr(current)):
            assert secret not in text
        frames = [
            (frame, line)
            for frame, line in traceback.walk_tb(current.__traceback__)
            if frame.f_code.co_filename != __file__
        ]
        for frame, _line in frames:
            for name, value in frame.f_locals.items():
                shown = repr(value)  # must work: no half-built object in any frame
                assert secret not in shown, f"{frame.f_code.co_name}: local {name!r}"
                if isinstance(value, (dict, list, tuple, str, bytes)):
                    assert secret not in str(value), f"{frame.f_code.co_name}: local {name!r}"
        rendered = "".join(
            traceback.StackSummary.extract(iter(frames), capture_locals=True).format()
        )
        assert secret not in rendered


@pytest.mark.parametrize(
    "echo",
    [
        {"reason": f"Bearer {TOKEN}"},
        {"reason": f"bad signature {SIGNATURE}"},
        {"headers": {"X-Request-Id": TOKEN, "Content-Type": "text/plain"}},
        {"headers": {"Request-Id": f"id-{SIGNATURE}", "Content-Type": f"text/{SIGNATURE}"}},
        {"body": {"errors": [{"code": "x", "message": f"token {TOKEN} refused"}]}},
        {"body": {"message": f"Authorization: Bearer {TOKEN}"}},
        {"body": f"<html>{TOKEN}</html>".encode()},
    ],
)
def test_token_echoed_by_the_server_is_redacted(
    serve: Callable[[Handler], RawServer], caplog: pytest.LogCaptureFixture, echo: dict[str, Any]
) -> None:
    def handler(conn: Conn, request: Request) -> bool:
        conn.respond(
            401,
            echo.get("body", b""),
            reason=echo.get("reason", "Unauthorized"),
            headers=echo.get("headers"),
        )
        return True

    server = serve(handler)
    caplog.set_level(logging.DEBUG, logger="signalwire_chat")
    with client_for(server) as client, pytest.raises(AuthenticationError) as info:
        client.get_messages(ROOM)
    assert server.requests[0].headers["Authorization"] == f"Bearer {TOKEN}"  # it was sent
    assert SIGNATURE not in str(info.value)
    for attribute in ("message", "request_id", "body", "url"):
        assert SIGNATURE not in str(getattr(info.value, attribute))
    assert all(SIGNATURE not in str(e.message) for e in info.value.errors)
    assert "[redacted]" in str(vars(info.value))
    assert_no_token_anywhere(info.value)
    assert all(SIGNATURE not in record.getMessage() for record in caplog.records)


def test_server_text_is_cleaned_and_capped(serve: Callable[[Handler], RawServer]) -> None:
    def handler(conn: Conn, request: Request) -> bool:
        conn.respond(
            503,
            reason="Down\x1b[2J" + "x" * 5000,
            headers={"X-Request-Id": "id\x00\x07" + "y" * 5000},
        )
        return True

    with client_for(serve(handler), max_retries=0) as client, pytest.raises(ServerError) as info:
        client.get_messages(ROOM)
    error = info.value
    assert error.request_id is not None
    assert error.request_id.startswith("id??")
    assert len(error.request_id) <= 200
    assert "\x1b" not in error.message
    assert len(error.message) < 300


# --- errors while reading the body: translated, retried for GET, not for POST (item 3) -----


def _broken_chunked(conn: Conn, request: Request) -> bool:
    conn.send(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        b'5\r\n{"dat\r\nzz-not-a-chunk-size\r\n'
    )
    return False


def _cut_short(conn: Conn, request: Request) -> bool:
    conn.send(b'HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n{"data": [')
    return False


@pytest.mark.parametrize("broken", [_broken_chunked, _cut_short])
def test_a_broken_body_is_translated_and_a_get_retried(
    serve: Callable[[Handler], RawServer], broken: Handler
) -> None:
    answers = [broken, broken]

    def handler(conn: Conn, request: Request) -> bool:
        if answers:
            return answers.pop(0)(conn, request)
        conn.respond(200, page([chat(1)]))
        return True

    server = serve(handler)
    with client_for(server) as client:
        messages = client.get_messages(ROOM)
    assert [m.id for m in messages] == ["m1"]
    assert len(server.requests) == 3  # two broken bodies, retried by the GET rules


@pytest.mark.parametrize("broken", [_broken_chunked, _cut_short])
def test_a_broken_body_fails_with_our_error_and_a_post_is_not_repeated(
    serve: Callable[[Handler], RawServer], broken: Handler
) -> None:
    server = serve(broken)
    with client_for(server) as client:
        with pytest.raises(TransportError) as info:
            client.get_messages(ROOM)
        assert len(server.requests) == 3
        assert_no_token_anywhere(info.value)
        with pytest.raises(TransportError):
            client.send_message(ROOM, "once")
    assert [r.method for r in server.requests].count("POST") == 1


_DRIPPED_BODY = json.dumps(page([chat(i) for i in range(200)])).encode()


@pytest.mark.parametrize(
    ("head", "dripped"),
    [
        pytest.param(
            b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(_DRIPPED_BODY),
            _DRIPPED_BODY,
            id="body",
        ),
        pytest.param(
            b"HTTP/1.1 200 OK\r\n",
            b"X-Slow: " + b"a" * 20_000 + b"\r\nContent-Length: 2\r\n\r\n{}",
            id="headers",
        ),
    ],
)
def test_a_dripping_response_is_cut_off_at_the_deadline(
    serve: Callable[[Handler], RawServer], head: bytes, dripped: bytes
) -> None:
    def handler(conn: Conn, request: Request) -> bool:
        conn.send(head)
        conn.drip(dripped, every=0.01)  # each byte well within the read timeout
        return False

    server = serve(handler)
    with (
        client_for(server, timeout=(3, 3), deadline=1.0) as client,
        pytest.raises(RequestTimeoutError, match="deadline") as info,
    ):
        client.get_messages(ROOM)
    assert not server.drip_finished.is_set()  # cut off, not waited out
    assert len(server.requests) == 1  # a deadline is not retried
    assert_no_token_anywhere(info.value)


def test_no_retry_wait_runs_past_the_deadline(serve: Callable[[Handler], RawServer]) -> None:
    waits: list[float] = []

    def handler(conn: Conn, request: Request) -> bool:
        conn.respond(429, {"message": "slow down"}, headers={"Retry-After": "25"})
        return True

    server = serve(handler)
    with (
        ChatClient(
            TOKEN, rest_url=server.url, max_retries=5, deadline=10.0, _sleep=waits.append
        ) as client,
        pytest.raises(RateLimitError),
    ):
        client.get_messages(ROOM)
    assert waits == []  # a 25 s wait would end past the 10 s deadline: the 429 is raised
    assert len(server.requests) == 1


# --- size: a cap on the decoded body, enforced while reading (item 4) ----------------------


def _peak_while(fn: Callable[[], Any]) -> tuple[BaseException | None, int]:
    tracemalloc.start()
    try:
        try:
            fn()
        except Exception as exc:
            return exc, tracemalloc.get_traced_memory()[1]
        return None, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_a_huge_body_stops_at_the_cap(serve: Callable[[Handler], RawServer]) -> None:
    def handler(conn: Conn, request: Request) -> bool:
        conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: 104857600\r\n\r\n")
        block = b" " * 65536
        try:
            for _ in range(1600):  # 100 MiB, unless the client leaves first
                conn.send(block)
        except OSError:
            pass
        return False

    server = serve(handler)
    with client_for(server, max_response_bytes=1024 * 1024) as client:
        error, peak = _peak_while(lambda: client.get_messages(ROOM))
    assert isinstance(error, ResponseTooLargeError)
    assert error.limit == 1024 * 1024
    assert peak < 8 * 1024 * 1024
    assert len(server.requests) == 1  # too large is not retried


def _gzip_of_zeros(size: int) -> bytes:
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)  # 31: a gzip container
    block = b"\0" * (1024 * 1024)
    out = [packer.compress(block) for _ in range(size // len(block))]
    return b"".join([*out, packer.flush()])


def test_a_gzip_bomb_is_cut_off_while_inflating(serve: Callable[[Handler], RawServer]) -> None:
    bomb = _gzip_of_zeros(512 * 1024 * 1024)  # 512 MiB in about 500 KB
    assert len(bomb) < 1024 * 1024

    def handler(conn: Conn, request: Request) -> bool:
        # Compressed although the client asked for identity, as a hostile server would.
        conn.respond(200, bomb, headers={"Content-Encoding": "gzip"})
        return False

    server = serve(handler)
    with client_for(server, max_response_bytes=1024 * 1024) as client:
        error, peak = _peak_while(lambda: client.get_messages(ROOM))
    assert isinstance(error, ResponseTooLargeError), error
    assert peak < 16 * 1024 * 1024


def test_a_small_gzip_body_is_read(serve: Callable[[Handler], RawServer]) -> None:
    def handler(conn: Conn, request: Request) -> bool:
        body = gzip.compress(json.dumps(page([chat(1)])).encode())
        conn.respond(200, body, headers={"Content-Encoding": "gzip"})
        return True

    with client_for(serve(handler)) as client:
        assert [m.id for m in client.get_messages(ROOM)] == ["m1"]


# --- poison JSON: nesting, NaN, huge numbers (items 5 and 8) -------------------------------


def _nested_json(depth: int) -> str:
    return '{"a":' * (depth - 1) + "{}" + "}" * (depth - 1)


def _at_stack_depth(headroom: int, fn: Callable[[], Any]) -> Any:
    """Call ``fn`` with only about ``headroom`` frames left, as in a deep web framework stack."""
    depth = 0
    frame = sys._getframe()
    while frame is not None:
        depth += 1
        frame = frame.f_back  # type: ignore[assignment]
    target = sys.getrecursionlimit() - headroom

    def dive(level: int) -> Any:
        return fn() if level >= target else dive(level + 1)

    return dive(depth)


def _serving(body: bytes) -> Handler:
    def handler(conn: Conn, request: Request) -> bool:
        conn.respond(200, body)
        return True

    return handler


def test_a_poison_message_is_a_decode_error_even_from_a_deep_stack(
    serve: Callable[[Handler], RawServer],
) -> None:
    def poison(depth: int) -> bytes:
        body = json.dumps(page([chat(1)]))
        return body.replace('"details": {}', f'"metadata": {_nested_json(depth)}').encode()

    with client_for(serve(_serving(poison(100)))) as client:
        with pytest.raises(DecodeError, match="deeper than 32") as info:
            client.get_messages(ROOM)
        assert info.value.field == "data[0].metadata"
        with pytest.raises(DecodeError) as deep:
            _at_stack_depth(150, lambda: client.get_messages(ROOM))
        assert_no_token_anywhere(deep.value)
    with client_for(serve(_serving(poison(960)))) as client, pytest.raises(DecodeError):
        _at_stack_depth(150, lambda: client.get_messages(ROOM))


def test_json_too_deep_for_the_parser_is_a_decode_error(
    serve: Callable[[Handler], RawServer],
) -> None:
    body = ('{"data": [' + "[" * 100_000 + "]" * 100_000 + "]}").encode()
    with client_for(serve(_serving(body))) as client, pytest.raises(DecodeError, match="deep"):
        client.get_messages(ROOM)


@pytest.mark.parametrize("ts", ["NaN", "Infinity", "-Infinity", "1e300", "-1e300", "1e400"])
def test_timestamps_that_are_not_times_are_refused(
    serve: Callable[[Handler], RawServer], ts: str
) -> None:
    body = json.dumps(page([chat(1)])).replace('"ts": 1700000001.0', f'"ts": {ts}')
    assert ts in body
    with client_for(serve(_serving(body.encode()))) as client, pytest.raises(DecodeError):
        client.get_messages(ROOM)


def test_an_integer_of_5000_digits_is_a_decode_error(
    serve: Callable[[Handler], RawServer],
) -> None:
    body = json.dumps(page([chat(1)])).replace('"ts": 1700000001.0', '"ts": ' + "9" * 5000)
    with client_for(serve(_serving(body.encode()))) as client, pytest.raises(DecodeError):
        client.get_messages(ROOM)


# --- endless pagination (item 6) -----------------------------------------------------------


def _endless(item: Callable[[int], Any]) -> Handler:
    def handler(conn: Conn, request: Request) -> bool:
        n = len(conn.server.requests)
        conn.respond(200, page([item(n)], f"/api/fabric/next?cursor={n}"))
        return True

    return handler


def test_endless_cursors_without_chat_messages_stop_get_messages(
    serve: Callable[[Handler], RawServer],
) -> None:
    server = serve(_endless(lambda n: {**chat(n), "subtype": "log"}))
    with client_for(server) as client, pytest.raises(PageLimitError) as info:
        client.get_messages(ROOM)
    assert len(server.requests) == MAX_RAW_PAGES_PER_STEP
    assert info.value.limit == MAX_RAW_PAGES_PER_STEP


def test_endless_cursors_stop_each_iteration_step(serve: Callable[[Handler], RawServer]) -> None:
    # Chat messages of another conversation: nothing for this address, ever.
    server = serve(_endless(lambda n: {**chat(n), "conversation_id": "other"}))
    with client_for(server) as client:
        messages = client.iter_messages(ROOM)
        with pytest.raises(PageLimitError):
            next(messages)
    assert len(server.requests) == MAX_RAW_PAGES_PER_STEP


def test_a_real_long_history_is_not_cut(serve: Callable[[Handler], RawServer]) -> None:
    # One chat message per raw page: every step makes progress, so iteration goes on.
    count = MAX_RAW_PAGES_PER_STEP + 20

    def handler(conn: Conn, request: Request) -> bool:
        n = len(conn.server.requests)
        link = f"/api/fabric/next?cursor={n}" if n < count else None
        conn.respond(200, page([chat(n)], link))
        return True

    with client_for(serve(handler)) as client:
        assert len(list(client.iter_messages(ROOM))) == count


def test_endless_empty_generic_pages_stop(serve: Callable[[Handler], RawServer]) -> None:
    def handler(conn: Conn, request: Request) -> bool:
        n = len(conn.server.requests)
        conn.respond(200, page([], f"/api/fabric/conversations?cursor={n}"))
        return True

    server = serve(handler)
    with client_for(server) as client, pytest.raises(PageLimitError):
        list(client.get_conversations().iter_items())
    assert len(server.requests) == MAX_RAW_PAGES_PER_STEP


# --- tracebacks: no token in frame locals, every repr works (item 9) -----------------------


def test_locals_of_a_failed_get_messages_are_safe_to_capture(
    serve: Callable[[Handler], RawServer],
) -> None:
    def handler(conn: Conn, request: Request) -> bool:
        conn.respond(500, {"message": "boom"})
        return True

    with client_for(serve(handler), max_retries=0) as client:
        for call in (
            lambda: client.get_messages(ROOM),
            lambda: next(client.iter_messages(ROOM)),
            lambda: client.send_message(ROOM, "hi"),
            lambda: client.get_subscriber_info(),
        ):
            with pytest.raises(ServerError) as info:
                call()
            assert_no_token_anywhere(info.value)


def test_locals_of_a_network_failure_are_safe_to_capture() -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    sock.close()
    with (
        ChatClient(TOKEN, rest_url=url, max_retries=0) as client,
        pytest.raises(TransportError) as info,
    ):
        client.get_messages(ROOM)
    assert_no_token_anywhere(info.value)


# --- the backend helpers go through the same transport -------------------------------------


API_TOKEN = "PT-project-api-token-0123456789abcdef"


def test_backend_helpers_redact_and_pool(serve: Callable[[Handler], RawServer]) -> None:
    minted: list[int] = []

    def handler(conn: Conn, request: Request) -> bool:
        if request.path.endswith("/tokens") and not minted:
            minted.append(1)
            conn.respond(401, {"message": f"bad key {API_TOKEN}"}, reason=API_TOKEN)
            return True
        conn.respond(200, {"token": TOKEN, "refresh_token": "r" * 20})
        return True

    server = serve(handler)
    with pytest.raises(AuthenticationError) as info:
        mint_subscriber_token(server.url, "project", API_TOKEN, "alice@example.test")
    assert API_TOKEN not in str(info.value)
    assert API_TOKEN not in str(vars(info.value))
    with SubscriberTokenSource(server.url, "project", API_TOKEN, "alice@example.test") as source:
        assert source() == TOKEN
        assert source() == TOKEN  # a refresh, on the same pooled connection
    assert [r.path for r in server.requests][-2:] == [
        "/api/fabric/subscribers/tokens",
        "/api/fabric/subscribers/tokens/refresh",
    ]
    assert server.connections == 2  # one for the one-off mint, one for the source's two calls


@pytest.mark.parametrize(
    "bad",
    [{"timeout": -1}, {"rest_url": "ftp://x"}, {"dialect": "nope"}, {"from_address_id": 5}],
)
def test_a_refused_argument_leaves_the_token_in_no_traceback_local(bad: dict[str, Any]) -> None:
    # The token was a local of ChatClient.__init__'s frame (and the half-built client's repr
    # raised there): an error tracker recording a settings mistake recorded the token too.
    with pytest.raises(InvalidArgumentError) as info:
        ChatClient(TOKEN, **bad)
    assert_no_token_anywhere(info.value)


PASSWORD = "subscriber-pa55word-0123456789"
REFRESH = "refresh-token-0123456789abcdefghij"


@pytest.mark.parametrize("status", [401, 500])
def test_a_failed_mint_or_refresh_leaves_no_credential_in_traceback_locals(
    serve: Callable[[Handler], RawServer], status: int
) -> None:
    # Error trackers (Sentry and the like) record the locals of every frame of a traceback:
    # the request body (a password, a refresh token) and the API token must be in none.
    failing = [False]

    def handler(conn: Conn, request: Request) -> bool:
        if failing[0]:
            conn.respond(status, {"message": "no"}, headers={"Retry-After": "0"})
        else:
            conn.respond(200, {"token": TOKEN, "refresh_token": REFRESH})
        return True

    server = serve(handler)
    failing[0] = True
    with pytest.raises(APIError) as minted:
        mint_subscriber_token(server.url, "p", API_TOKEN, "a@b.c", password=PASSWORD, timeout=2)
    with pytest.raises(APIError) as refreshed:
        refresh_subscriber_token(server.url, "p", API_TOKEN, REFRESH, timeout=2)
    failing[0] = False
    with SubscriberTokenSource(
        server.url, "p", API_TOKEN, "a@b.c", password=PASSWORD, timeout=2
    ) as source:
        assert source() == TOKEN
        failing[0] = True
        with pytest.raises(APIError) as by_source:
            source()  # a refresh refused or failed, then a mint that fails
    for info in (minted, refreshed, by_source):
        for secret in (API_TOKEN, PASSWORD, REFRESH):
            assert_no_token_anywhere(info.value, secret)


def test_backend_helpers_retry_a_429(serve: Callable[[Handler], RawServer]) -> None:
    answers = [429]

    def handler(conn: Conn, request: Request) -> bool:
        if answers:
            conn.respond(answers.pop(), {"message": "later"}, headers={"Retry-After": "0"})
        else:
            conn.respond(200, {"token": TOKEN})
        return True

    server = serve(handler)
    assert mint_subscriber_token(server.url, "p", API_TOKEN, "a@b.c").token == TOKEN
    assert len(server.requests) == 2


def test_a_token_request_keeps_to_its_deadline_and_retries(
    serve: Callable[[Handler], RawServer],
) -> None:
    # A web handler minting for its page cannot wait out a Retry-After of 30 s three times:
    # with a deadline of 2 s the 429 is raised at once, its retry_after passed on.
    def handler(conn: Conn, request: Request) -> bool:
        conn.respond(429, {"message": "later"}, headers={"Retry-After": "30"})
        return True

    server = serve(handler)
    started = time.monotonic()
    with pytest.raises(RateLimitError) as info:
        mint_subscriber_token(server.url, "p", API_TOKEN, "a@b.c", deadline=2.0)
    assert time.monotonic() - started < 1.5
    assert info.value.retry_after == 30
    assert len(server.requests) == 1
    with (
        SubscriberTokenSource(server.url, "p", API_TOKEN, "a@b.c", deadline=2.0) as source,
        pytest.raises(RateLimitError),
    ):
        source()
    assert time.monotonic() - started < 3.0


def test_a_token_request_retries_as_told(serve: Callable[[Handler], RawServer]) -> None:
    answers = [429, 429]  # refused unprocessed: safe to send again, though a POST

    def handler(conn: Conn, request: Request) -> bool:
        if answers:
            conn.respond(answers.pop(), {"message": "busy"}, headers={"Retry-After": "0"})
        else:
            conn.respond(200, {"token": TOKEN})
        return True

    server = serve(handler)
    with pytest.raises(RateLimitError):
        mint_guest_token(server.url, "p", API_TOKEN, [ROOM], max_retries=0)
    assert len(server.requests) == 1
    # The other side: by default it is retried, and the call succeeds.
    assert mint_guest_token(server.url, "p", API_TOKEN, [ROOM]).token == TOKEN
    assert len(server.requests) == 3


@pytest.mark.parametrize(
    "bad", [{"deadline": -1}, {"deadline": math.inf}, {"max_retries": 21}, {"max_retries": "3"}]
)
def test_a_bad_token_request_option_is_refused_before_anything_is_sent(
    serve: Callable[[Handler], RawServer], bad: dict[str, Any]
) -> None:
    server = serve(lambda conn, request: False)
    with pytest.raises(InvalidArgumentError):
        mint_subscriber_token(server.url, "p", API_TOKEN, "a@b.c", **bad)
    with pytest.raises(InvalidArgumentError):
        SubscriberTokenSource(server.url, "p", API_TOKEN, "a@b.c", **bad)
    assert not server.requests


def test_the_cap_holds_through_a_callers_session(serve: Callable[[Handler], RawServer]) -> None:
    def handler(conn: Conn, request: Request) -> bool:
        conn.respond(200, b" " * (3 * 1024 * 1024))
        return True

    server = serve(handler)
    with requests.Session() as session:
        with client_for(server, session=session, max_response_bytes=1024 * 1024) as client:
            error, _peak = _peak_while(lambda: client.get_messages(ROOM))
        assert isinstance(error, ResponseTooLargeError)
