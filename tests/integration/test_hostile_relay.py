"""The realtime client against a hostile relay: a scripted raw-socket websocket server.

The server does the opening handshake by hand, answers ``signalwire.connect``, then sends what a
broken or malicious relay might: frames no encoder of ours would make are written byte by byte.
The client's own frames are read back with wsproto (an independent RFC 6455 implementation), so
every test also checks that what the client sends is a valid websocket stream. History (read
after a reconnect) comes from a real emulator.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import logging
import queue
import socket
import struct
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pytest
from test_realtime_support import FAST, Collector, Setup, setup_fixture, wait_until
from wsproto.frame_protocol import FrameProtocol, Opcode

from signalwire_chat._auth import Credentials
from signalwire_chat._realtime import ConnectionState, RealtimeHub, RealtimeOptions, Route
from signalwire_chat.errors import RealtimeAuthenticationError

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
WAIT = 10.0


def frame(payload: bytes, opcode: int = OP_TEXT, *, fin: bool = True) -> bytes:
    """An unmasked server frame (the length in its shortest form)."""
    b0 = (0x80 if fin else 0) | opcode
    n = len(payload)
    if n < 126:
        return bytes((b0, n)) + payload
    if n < 65536:
        return bytes((b0, 126)) + struct.pack("!H", n) + payload
    return bytes((b0, 127)) + struct.pack("!Q", n) + payload


def text(obj: Any) -> bytes:
    return frame(json.dumps(obj, separators=(",", ":")).encode())


class Peer:
    """One accepted connection, past the handshake and the answer to ``signalwire.connect``."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._proto = FrameProtocol(client=False, extensions=[])
        self._frames: list[tuple[int, bytes]] = []
        self._parts: list[bytes] = []
        self._first: int | None = None
        self.closed_by_client = False

    def handshake(self) -> None:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError("the client left during the handshake")
            data += chunk
        head, _, rest = data.partition(b"\r\n\r\n")
        headers = {}
        for line in head.decode("latin-1").split("\r\n")[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        accept = base64.b64encode(
            hashlib.sha1(headers["sec-websocket-key"].encode() + GUID).digest()
        )
        self.sock.sendall(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n"
        )
        self._feed(rest)

    def answer_connect(self, error: dict[str, Any] | None = None) -> None:
        request = self.next_json()
        assert request["method"] == "signalwire.connect"
        if error is not None:
            self.send(text({"jsonrpc": "2.0", "id": request["id"], "error": error}))
            return
        self.protocol = f"signalwire_hostile_{uuid.uuid4()}"
        self.send(
            text(
                {
                    "jsonrpc": "2.0",
                    "id": request["id"],
                    "result": {
                        "protocol": self.protocol,
                        "authorization": {"jti": "j", "project_id": "p"},
                    },
                }
            )
        )

    def _feed(self, data: bytes) -> None:
        self._proto.receive_bytes(data)
        for f in self._proto.received_frames():  # raises if the client breaks RFC 6455
            if f.opcode.iscontrol():
                if f.opcode is Opcode.CLOSE:
                    code, _reason = f.payload  # type: ignore[misc]
                    self._frames.append((OP_CLOSE, struct.pack("!H", code)))
                else:
                    self._frames.append((int(f.opcode), bytes(f.payload)))  # type: ignore[arg-type]
                continue
            if self._first is None:
                self._first = int(f.opcode)
            payload = f.payload
            self._parts.append(payload.encode() if isinstance(payload, str) else bytes(payload))  # type: ignore[union-attr]
            if f.message_finished:
                self._frames.append((self._first, b"".join(self._parts)))
                self._parts, self._first = [], None

    def next_frame(self, timeout: float = WAIT) -> tuple[int, bytes] | None:
        """The next message or control frame from the client; None when it closed the TCP."""
        deadline = time.monotonic() + timeout
        while not self._frames:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("nothing from the client")
            self.sock.settimeout(remaining)
            try:
                data = self.sock.recv(65536)
            except ConnectionResetError:
                data = b""
            if not data:
                self.closed_by_client = True
                return None
            self._feed(data)
        return self._frames.pop(0)

    def next_json(self, timeout: float = WAIT) -> dict[str, Any]:
        """The next JSON-RPC message from the client (pongs are skipped)."""
        while True:
            got = self.next_frame(timeout)
            assert got is not None, "the client closed the connection"
            opcode, payload = got
            if opcode == OP_TEXT:
                return dict(json.loads(payload))
            assert opcode == OP_PONG, f"unexpected frame {opcode:#x}"

    def close_code(self, timeout: float = WAIT) -> int:
        """Read until the client's close frame; its code."""
        while True:
            got = self.next_frame(timeout)
            assert got is not None, "the client closed the TCP connection without a close frame"
            if got[0] == OP_CLOSE:
                return int(struct.unpack("!H", got[1])[0])

    def gone(self, timeout: float = WAIT) -> bool:
        """Whether the client closes the TCP connection (after what it still sends)."""
        while not self.closed_by_client:
            if self.next_frame(timeout) is None:
                return True
        return True

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)


Script = Callable[[Peer, int], None]
_Relay = TypeVar("_Relay", bound="ScriptedRelay")


class ScriptedRelay:
    """A TCP server on 127.0.0.1:0 handing each connection (and its number) to ``script``, run
    on a thread of its own; what a script raises is kept in ``errors``."""

    def __init__(self, script: Script, *, rcvbuf: int | None = None) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        if rcvbuf is not None:  # inherited by the accepted sockets
            self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.url = f"ws://127.0.0.1:{self._listener.getsockname()[1]}/"
        self.script = script
        #: Every connection accepted, in order.
        self.peers: queue.Queue[Peer] = queue.Queue()
        self.errors: list[BaseException] = []
        self._socks: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()
        self._accept = threading.Thread(target=self._serve, name="scripted-relay", daemon=True)

    def __enter__(self: _Relay) -> _Relay:
        self._accept.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        # Wake accept() with a connection of our own.
        with socket.create_connection(self._listener.getsockname(), timeout=WAIT):
            pass
        self._accept.join(WAIT)
        self._listener.close()
        for sock in self._socks:
            sock.close()
        for thread in self._threads:
            thread.join(WAIT)
        assert not self._accept.is_alive()

    def _serve(self) -> None:
        count = 0
        while True:
            sock, _ = self._listener.accept()
            if self._stop.is_set():
                sock.close()
                return
            sock.settimeout(WAIT)
            self._socks.append(sock)
            count += 1
            peer = Peer(sock)
            self.peers.put(peer)
            thread = threading.Thread(
                target=self._run, args=(peer, count), name="scripted-peer", daemon=True
            )
            self._threads.append(thread)
            thread.start()

    def _run(self, peer: Peer, number: int) -> None:
        try:
            self.script(peer, number)
        except Exception as exc:
            if not self._stop.is_set():
                self.errors.append(exc)

    def next_peer(self, timeout: float = WAIT) -> Peer:
        return self.peers.get(timeout=timeout)


class HostileRelay(ScriptedRelay):
    """A scripted relay whose every connection is handshaken, its connect answered, then handed
    to the test (``next_peer``), which scripts what the relay sends."""

    def __init__(self) -> None:
        super().__init__(self._greet)
        self._greeted: queue.Queue[Peer] = queue.Queue()
        #: When set, every signalwire.connect is answered with this JSON-RPC error.
        self.connect_error: dict[str, Any] | None = None

    def _greet(self, peer: Peer, number: int) -> None:
        peer.handshake()
        peer.answer_connect(self.connect_error)
        self._greeted.put(peer)

    def next_peer(self, timeout: float = WAIT) -> Peer:
        return self._greeted.get(timeout=timeout)

    @property
    def waiting(self) -> int:
        """Connections greeted and not taken by the test yet."""
        return self._greeted.qsize()


# The scripted events name the room's conversation: the address dialect's routing.
setup = setup_fixture("address")


@pytest.fixture
def relay() -> Iterator[HostileRelay]:
    with HostileRelay() as server:
        yield server
    assert server.errors == []


def make_hub(
    setup: Setup, relay: HostileRelay, *, drop_stale: bool = False, **options: Any
) -> RealtimeHub:
    history = setup.client(setup.me.token)
    return RealtimeHub(
        relay_url=relay.url,
        credentials=Credentials(setup.me.token),
        agent="signalwire-chat-python/hostile-test",
        history=history._rest.history,
        options=RealtimeOptions(**{**FAST, "ping_timeout": 30.0, **options}),
        drop_stale=drop_stale,
    )


def event(setup: Setup, body: str, *, event_id: str | None = None, **inner: Any) -> dict[str, Any]:
    params = {
        "id": str(uuid.uuid4()),
        "conversation_id": setup.room.id,
        "user_id": setup.other.id,
        "from_address_id": setup.other.id,
        "ts": time.time(),
        "details": {},
        "metadata": {},
        "type": "message",
        "subtype": "chat",
        "kind": None,
        "text": body,
        "conversation_name": "hostile",
        "hidden": False,
        "user_name": "Mallory",
        "address_id": setup.room.id,
        **inner,
    }
    return {
        "jsonrpc": "2.0",
        "id": event_id or str(uuid.uuid4()),
        "method": "signalwire.event",
        "params": {
            "event_type": "conversation.message",
            "event_channel": "hostile",
            "timestamp": time.time(),
            "params": params,
        },
    }


@contextlib.contextmanager
def subscribed(
    setup: Setup, relay: HostileRelay, target: Any = None, **options: Any
) -> Iterator[tuple[RealtimeHub, Collector, Peer]]:
    """A hub (``make_hub(setup, relay, **options)``) subscribed to ``target`` (the room by
    default) and connected; the peer that greeted it; closed after."""
    hub = make_hub(setup, relay, **options)
    try:
        got = Collector()
        hub.subscribe(setup.room.id if target is None else target, got.on_message, got.on_error)
        peer = relay.next_peer()
        assert wait_until(lambda: hub.state is ConnectionState.CONNECTED)
        yield hub, got, peer
    finally:
        hub.close()


def deliver_and_ack(setup: Setup, peer: Peer, got: Collector, body: str, count: int) -> None:
    """Send one good event; it is acknowledged and reaches the callback."""
    ev = event(setup, body)
    peer.send(text(ev))
    assert peer.next_json() == {"jsonrpc": "2.0", "id": ev["id"], "result": {}}
    assert got.wait_for(count)[-1] == body


def test_a_ping_payload_is_echoed_and_never_obeyed(
    setup: Setup, relay: HostileRelay, caplog: pytest.LogCaptureFixture
) -> None:
    with subscribed(setup, relay) as (hub, got, peer):
        deliver_and_ack(setup, peer, got, "first", 1)
        caplog.clear()
        with caplog.at_level(logging.DEBUG, logger="signalwire_chat"):
            rpc = json.dumps({"jsonrpc": "2.0", "id": "d1", "method": "signalwire.disconnect"})
            peer.send(frame(rpc.encode(), OP_PING))
            assert peer.next_frame() == (OP_PONG, rpc.encode())
            for _ in range(3):
                peer.send(frame(b"", OP_PING))
                assert peer.next_frame() == (OP_PONG, b"")
            # Still the same connection, still delivering: the ping was not a disconnect.
            deliver_and_ack(setup, peer, got, "second", 2)
        noisy = [r for r in caplog.records if r.levelno > logging.DEBUG]
        assert noisy == []
        assert relay.waiting == 0
        assert hub.state is ConnectionState.CONNECTED


@pytest.mark.parametrize(
    ("bad", "code"),
    [
        (frame(b"x" * 126, OP_PING), 1002),  # oversized control frame
        (frame(b"p", OP_PING, fin=False), 1002),  # fragmented control frame
        (bytes((0xC1, 1)) + b"x", 1002),  # RSV1 without an extension
        (bytes((0x83, 0)), 1002),  # reserved opcode
        (frame(b'{"text":"\xff\xfe"}'), 1007),  # text that is not UTF-8
        (frame(struct.pack("!H", 1005), OP_CLOSE), 1002),  # a close code that may not be sent
        (frame(struct.pack("!H", 999), OP_CLOSE), 1002),
        (frame(struct.pack("!H", 1000) + b"\xc0", OP_CLOSE), 1007),  # reason not UTF-8
    ],
    ids=[
        "big-ping",
        "fragmented-ping",
        "rsv1",
        "opcode-3",
        "bad-utf8",
        "close-1005",
        "close-999",
        "close-reason",
    ],
)
def test_a_protocol_violation_closes_with_the_right_code_and_reconnects(
    setup: Setup, relay: HostileRelay, bad: bytes, code: int
) -> None:
    with subscribed(setup, relay) as (hub, got, peer):
        ev = event(setup, "before the fault")
        peer.send(text(ev) + bad)  # one write: the good event comes first and is kept
        assert peer.next_json()["id"] == ev["id"]
        assert peer.close_code() == code
        assert peer.gone()
        again = relay.next_peer()  # the client reconnects by itself
        assert wait_until(lambda: hub.state is ConnectionState.CONNECTED)
        deliver_and_ack(setup, again, got, "after", 2)
        assert got.texts == ["before the fault", "after"]
        assert got.errors == []


@pytest.mark.parametrize("code", [1000, 1001, 1012, 4000])
def test_a_valid_close_is_echoed_and_the_client_reconnects(
    setup: Setup, relay: HostileRelay, code: int
) -> None:
    with subscribed(setup, relay) as (_hub, got, peer):
        peer.send(frame(struct.pack("!H", code) + b"bye", OP_CLOSE))
        assert peer.close_code() == code
        assert peer.gone()
        again = relay.next_peer()
        deliver_and_ack(setup, again, got, "after", 1)


def test_a_big_message_in_small_writes_is_delivered_and_pings_are_answered_meanwhile(
    setup: Setup, relay: HostileRelay
) -> None:
    with subscribed(setup, relay) as (_hub, got, peer):
        body = "b" * (4 * 1024 * 1024)
        ev = event(setup, body)
        raw = json.dumps(ev, separators=(",", ":")).encode()
        half = len(raw) // 2
        data = frame(raw[:half], OP_TEXT, fin=False) + frame(b"mid", OP_PING)
        data += frame(raw[half:], OP_CONT)
        pong_at = data.index(frame(b"mid", OP_PING)) + len(frame(b"mid", OP_PING))
        for start in range(0, pong_at, 16 * 1024):
            peer.send(data[start : min(start + 16 * 1024, pong_at)])
        # Half a message is buffered; the ping that follows it is answered at once.
        assert peer.next_frame() == (OP_PONG, b"mid")
        for start in range(pong_at, len(data), 16 * 1024):
            peer.send(data[start : start + 16 * 1024])
        assert peer.next_json() == {"jsonrpc": "2.0", "id": ev["id"], "result": {}}
        assert got.wait_for(1) == [body]
        assert relay.waiting == 0


def test_a_message_over_the_cap_is_refused_from_its_header(
    setup: Setup, relay: HostileRelay
) -> None:
    with subscribed(setup, relay, max_message_size=1024 * 1024) as (hub, _got, peer):
        peer.send(bytes((0x81, 127)) + struct.pack("!Q", 8 * 1024 * 1024))  # no payload sent
        assert peer.close_code() == 1009
        assert peer.gone()
        relay.next_peer()
        assert wait_until(lambda: hub.state is ConnectionState.CONNECTED)


def test_endless_empty_continuations_are_cut_off(setup: Setup, relay: HostileRelay) -> None:
    with subscribed(setup, relay, max_fragments=100) as (hub, _got, peer):
        peer.send(frame(b'{"jsonrpc":', OP_TEXT, fin=False))
        sent = 0
        code = None
        while sent < 10_000:
            peer.send(frame(b"", OP_CONT, fin=False) * 10)
            sent += 10
            try:
                got = peer.next_frame(timeout=0.05)
            except TimeoutError:
                continue
            assert got is not None
            assert got[0] == OP_CLOSE
            code = struct.unpack("!H", got[1])[0]
            break
        assert code == 1009
        assert sent <= 200
        relay.next_peer()
        assert wait_until(lambda: hub.state is ConnectionState.CONNECTED)


def test_malformed_messages_do_not_cost_the_good_ones_of_the_same_read(
    setup: Setup, relay: HostileRelay, caplog: pytest.LogCaptureFixture
) -> None:
    with subscribed(setup, relay) as (_hub, got, peer):
        deep_id = str(uuid.uuid4())
        deep = event(setup, "deep", event_id=deep_id)
        nest: Any = 1
        for _ in range(100):
            nest = {"n": nest}
        deep["params"]["params"]["metadata"] = nest
        listed = event(setup, "listed", conversation_id=[setup.room.id])
        very_deep = '{"jsonrpc":"2.0","id":"vd","method":"signalwire.event","params":'
        very_deep += "[" * 100_000 + "]" * 100_000 + "}"
        good = event(setup, "good")
        batch = (
            text(deep)
            + frame(very_deep.encode())
            + frame(b'{"jsonrpc": "2.0", "method": "signalwire.event", "id": "x"')  # cut short
            + frame(b"[1, 2, 3]")
            + frame(b"")
            + text(listed)
            + text(good)
        )
        peer.send(batch)  # one TCP write
        acked = {peer.next_json()["id"] for _ in range(3)}
        # The parseable events are acknowledged (else the relay would send them again on every
        # resume); the unreadable ones cannot be.
        assert acked == {deep_id, listed["id"], good["id"]}
        assert got.wait_for(1) == ["good"]
        deliver_and_ack(setup, peer, got, "next", 2)
        assert got.texts == ["good", "next"]
        assert relay.waiting == 0  # no reconnect
        secret = setup.me.token
        assert all(secret not in r.getMessage() for r in caplog.records)


def test_a_flood_of_non_json_frames_logs_a_few_warnings_and_delivery_goes_on(
    setup: Setup, relay: HostileRelay, caplog: pytest.LogCaptureFixture
) -> None:
    # One WARNING per frame drowned the application's log (issue 21.9).
    caplog.set_level(logging.WARNING, logger="signalwire_chat")
    with subscribed(setup, relay) as (_hub, got, peer):
        flood = b"".join(frame(b"<html>%d</html>" % n) for n in range(2000))
        peer.send(flood)
        deliver_and_ack(setup, peer, got, "after the flood", 1)
        assert relay.waiting == 0  # no reconnect
    skipped = [r for r in caplog.records if "skipped a message" in r.getMessage()]
    assert 1 <= len(skipped) <= 5
    assert "counted, not logged" in skipped[-1].getMessage()


def test_group_events_of_another_session_are_dropped_and_odd_values_route_nowhere(
    setup: Setup, relay: HostileRelay
) -> None:
    with subscribed(setup, relay, Route.group("g-1"), drop_stale=True) as (_hub, got, peer):
        own = f"signalwire.{peer.protocol}"
        cases = [
            ("stale", {"group_id": "g-1"}, "signalwire.signalwire_an_older_session"),
            ("list group", {"group_id": ["g-1"]}, own),
            ("other group", {"group_id": "g-2"}, own),
            ("dict group", {"group_id": {"g-1": 1}}, own),
            ("fresh", {"group_id": "g-1", "is_author": "yes"}, own),
        ]
        for body, inner, channel in cases:
            ev = event(setup, body, **inner)
            ev["params"]["event_channel"] = channel
            ev["params"]["is_author"] = True
            peer.send(text(ev))
            # Every event is acknowledged, whatever becomes of it.
            assert peer.next_json() == {"jsonrpc": "2.0", "id": ev["id"], "result": {}}
        assert got.wait_for(1) == ["fresh"]
        # The envelope's is_author (a bool) wins over a wrong-typed one inside.
        assert got.messages[0].is_author is True
        assert not wait_until(lambda: len(got.messages) > 1, timeout=0.3)
        assert got.errors == []


def test_an_event_whose_message_id_is_not_a_string_does_not_stop_delivery(
    setup: Setup, relay: HostileRelay
) -> None:
    with subscribed(setup, relay) as (hub, got, peer):
        bad = event(setup, "bad id", id=["not", "a", "string"])
        bad["params"]["timestamp"] = "1700000000.5"  # v4's types say a string: accepted
        peer.send(text(bad))
        assert peer.next_json() == {"jsonrpc": "2.0", "id": bad["id"], "result": {}}
        deliver_and_ack(setup, peer, got, "after the bad one", 1)
        assert [type(e).__name__ for e in got.errors] == ["DecodeError"]
        assert hub.state is ConnectionState.CONNECTED
        deliver_and_ack(setup, peer, got, "and still alive", 2)


def test_an_event_type_that_is_not_a_string_is_acked_and_skipped(
    setup: Setup, relay: HostileRelay
) -> None:
    # Found by the protocol's property test: a list-valued event_type did not even hash, the
    # read raised, the client reconnected, and a relay that redelivers it looped forever.
    with subscribed(setup, relay) as (_hub, got, peer):
        for odd in ([], {"conversation.message": 1}, 7, None):
            ev = event(setup, f"odd {odd!r}")
            ev["params"]["event_type"] = odd
            peer.send(text(ev))
            assert peer.next_json() == {"jsonrpc": "2.0", "id": ev["id"], "result": {}}
        deliver_and_ack(setup, peer, got, "after the odd ones", 1)
        assert got.texts == ["after the odd ones"]
        assert relay.waiting == 0  # no reconnect
        assert got.errors == []


def test_a_connect_refusal_echoing_the_token_is_redacted(
    setup: Setup, relay: HostileRelay, caplog: pytest.LogCaptureFixture
) -> None:
    token = setup.me.token
    relay.connect_error = {"code": -32002, "message": f"invalid token {token}\x1b[2J" + "x" * 5000}
    hub = make_hub(setup, relay)
    caplog.set_level(logging.DEBUG)
    try:
        with pytest.raises(RealtimeAuthenticationError) as raised:
            hub.subscribe(setup.target, Collector().on_message)
        error = raised.value
        assert error.rpc_code == -32002
        assert "[redacted]" in str(error)
        assert "\x1b" not in str(error)
        assert len(str(error)) < 1000
    finally:
        hub.close()
    for piece in (str(error), repr(error), caplog.text):
        assert token not in piece
        assert token.split(".")[0] not in piece  # not even its header
