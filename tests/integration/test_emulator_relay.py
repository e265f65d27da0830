"""The emulator's relay hub over real loopback websockets, driven with raw JSON-RPC frames."""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
import websocket
from aiohttp import web

from signalwire_chat.emulator._relay import RelayConfig, RelayHub
from signalwire_chat.emulator._tokens import InvalidTokenError, SatClaims

PROJECT = "11111111-2222-3333-4444-555555555555"
ALICE = "aaaaaaaa-0000-0000-0000-000000000001"
BOB = "bbbbbbbb-0000-0000-0000-000000000002"
WAIT = 5.0


class RelayServer:
    """A RelayHub on its own aiohttp app and event loop thread, bound to 127.0.0.1:0."""

    def __init__(
        self, config: RelayConfig, record: Callable[[dict[str, Any]], None] | None = None
    ) -> None:
        self.config = config
        self._record_fn = record
        # Whether the record callable wants entries now (None: always).
        self.recording: Callable[[], bool] | None = None
        self.tokens: dict[str, SatClaims] = {}
        self.records: list[dict[str, Any]] = []
        self.hub: RelayHub | None = None
        self.url = ""
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="relay-test-server")
        self._runner: web.AppRunner | None = None

    def verify(self, token: str) -> SatClaims:
        claims = self.tokens.get(token)
        if claims is None:
            raise InvalidTokenError("unknown token")
        if claims.exp <= time.time():
            raise InvalidTokenError("token expired")
        return claims

    def mint(self, subscriber: str = ALICE, ttl: float = 3600.0) -> tuple[str, SatClaims]:
        now = time.time()
        claims = SatClaims(
            subscriber_id=subscriber,
            project_id=PROJECT,
            jti=str(uuid.uuid4()),
            exp=now + ttl,
            iat=now,
        )
        token = f"tok-{uuid.uuid4()}"
        self.tokens[token] = claims
        return token, claims

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._start())
        self._ready.set()
        self._loop.run_forever()

    async def _start(self) -> None:
        record = self._record_fn or self.records.append
        wants = {} if self.recording is None else {"recording": self.recording}
        self.hub = RelayHub(verify_token=self.verify, config=self.config, record=record, **wants)
        app = web.Application()
        app.router.add_get("/", self.hub.handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"ws://127.0.0.1:{port}/"

    def __enter__(self) -> RelayServer:
        self._thread.start()
        assert self._ready.wait(WAIT), "relay server did not start"
        return self

    def run(self, coro: Any) -> Any:
        """Run a coroutine on the server loop and return its result."""
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(WAIT * 3)

    def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run a plain function on the server loop (hub methods are loop-thread only)."""

        async def wrapper() -> Any:
            return fn(*args)

        return self.run(wrapper())

    def other_tasks(self) -> list[asyncio.Task[Any]]:
        async def collect() -> list[asyncio.Task[Any]]:
            me = asyncio.current_task()
            return [t for t in asyncio.all_tasks() if t is not me]

        return self.run(collect())

    def stop(self) -> None:
        if self._loop.is_closed():
            return
        assert self.hub is not None
        assert self._runner is not None
        self.run(self.hub.close())
        self.run(self._runner.cleanup())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(WAIT)
        self._loop.close()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class Peer:
    """A raw JSON-RPC websocket peer (websocket-client, synchronous)."""

    def __init__(self, url: str) -> None:
        self.ws = websocket.create_connection(url, timeout=WAIT)
        self.pings_answered = 0

    def send(self, frame: Any) -> None:
        self.ws.send(frame if isinstance(frame, str) else json.dumps(frame))

    def recv(self, timeout: float = WAIT) -> dict[str, Any]:
        self.ws.settimeout(timeout)
        text = self.ws.recv()
        assert text, "socket closed while a frame was expected"
        frame: dict[str, Any] = json.loads(text)
        return frame

    def recv_app(self, timeout: float = WAIT) -> dict[str, Any]:
        """Receive the next frame that is not a server ping (those are answered)."""
        while True:
            frame = self.recv(timeout)
            if frame.get("method") == "signalwire.ping":
                self.send({"jsonrpc": "2.0", "id": frame["id"], "result": frame["params"]})
                self.pings_answered += 1
                continue
            return frame

    def request(self, method: str, params: dict[str, Any]) -> str:
        rid = str(uuid.uuid4())
        self.send({"jsonrpc": "2.0", "id": rid, "method": method, "params": params})
        return rid

    def connect(self, token: str, **extra: Any) -> dict[str, Any]:
        params = {
            "version": {"major": 4, "minor": 0, "revision": 0},
            "event_acks": True,
            "agent": "test/1.0",
            "authentication": {"jwt_token": token},
            **extra,
        }
        rid = self.request("signalwire.connect", params)
        answer = self.recv_app()
        assert answer["id"] == rid
        return answer

    def connect_ok(self, token: str, **extra: Any) -> tuple[dict[str, Any], str]:
        """Connect, check the result, take the authorization.state event; return (result, state)."""
        answer = self.connect(token, **extra)
        assert "result" in answer, answer
        state = self.recv_app()
        assert state["method"] == "signalwire.event"
        assert state["params"]["event_type"] == "signalwire.authorization.state"
        self.ack(state)
        return answer["result"], state["params"]["params"]["authorization_state"]

    def ack(self, frame: dict[str, Any]) -> None:
        self.send({"jsonrpc": "2.0", "id": frame["id"], "result": {}})

    def barrier(self) -> list[dict[str, Any]]:
        """Ping the server; return every other frame that arrived before the answer."""
        rid = self.request("signalwire.ping", {"timestamp": 1.5})
        before = []
        while True:
            frame = self.recv_app()
            if frame.get("id") == rid and "result" in frame:
                assert frame["result"] == {"timestamp": 1.5}
                return before
            before.append(frame)

    def drain(self, quiet: float) -> list[dict[str, Any]]:
        """Return every frame that arrives until none has for `quiet` seconds."""
        frames = []
        while True:
            try:
                frames.append(self.recv(timeout=quiet))
            except websocket.WebSocketTimeoutException:
                return frames

    def expect_close(self, timeout: float = WAIT) -> int | None:
        """Wait for the server to end the socket; return its close code (None: no close frame)."""
        self.ws.settimeout(timeout)
        try:
            while True:
                opcode, data = self.ws.recv_data(control_frame=True)
                if opcode == websocket.ABNF.OPCODE_CLOSE:
                    return int.from_bytes(data[:2], "big") if len(data) >= 2 else 1005
        except (websocket.WebSocketConnectionClosedException, ConnectionError):
            return None

    def close(self) -> None:
        self.ws.close(timeout=1)
        self.ws.shutdown()  # close() leaves the socket open when the server closed first


def event(n: int, conversation: str = "cccccccc-0000-0000-0000-00000000c001") -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "conversation_id": conversation,
        "user_id": ALICE,
        "ts": time.time(),
        "text": f"message {n}",
        "details": {},
        "type": "message",
        "subtype": "chat",
        "user_name": "Alice",
        "conversation_name": "General",
        "hidden": False,
    }


def wait_for(predicate: Callable[[], Any], timeout: float = WAIT) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.01)


@pytest.fixture
def make_server() -> Iterator[Callable[..., RelayServer]]:
    servers: list[RelayServer] = []

    def make(record: Callable[[dict[str, Any]], None] | None = None, **config: Any) -> RelayServer:
        config.setdefault("ping_interval", None)
        server = RelayServer(RelayConfig(**config), record).__enter__()
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()


@pytest.fixture
def server(make_server: Callable[..., RelayServer]) -> RelayServer:
    return make_server()


@pytest.fixture
def peers() -> Iterator[list[Peer]]:
    opened: list[Peer] = []
    yield opened
    for peer in opened:
        peer.close()


def open_peer(server: RelayServer, peers: list[Peer]) -> Peer:
    peer = Peer(server.url)
    peers.append(peer)
    return peer


def publish(server: RelayServer, subscribers: list[str], params: dict[str, Any]) -> None:
    assert server.hub is not None
    server.call(server.hub.publish, subscribers, params)


# ---------------------------------------------------------------------------- connect


def test_connect_result_has_the_fields_clients_use(server: RelayServer, peers: list[Peer]) -> None:
    token, claims = server.mint()
    peer = open_peer(server, peers)
    result, state = peer.connect_ok(token)
    assert result["protocol"].startswith(f"signalwire_{claims.jti}_")
    assert len(result["protocol"].split("_")) == 4
    auth = result["authorization"]
    assert auth["jti"] == claims.jti
    assert auth["project_id"] == PROJECT
    fabric = auth["fabric_subscriber"]
    assert fabric["expires_at"] == int(claims.exp)
    assert isinstance(fabric["expires_at"], int)
    assert fabric["subscriber_id"] == ALICE
    assert fabric["project_id"] == PROJECT
    assert {"version", "application_id", "space_id"} <= fabric.keys()
    assert ALICE in result["identity"]
    assert result["ice_servers"]
    assert result["ice_servers"][0]["urls"]
    assert isinstance(state, str)
    assert len(state) >= 16
    assert server.call(lambda: server.hub.live_sessions) == 1  # type: ignore[union-attr]


def test_each_connect_gets_a_fresh_authorization_state(
    server: RelayServer, peers: list[Peer]
) -> None:
    token, _ = server.mint()
    _, first = open_peer(server, peers).connect_ok(token)
    _, second = open_peer(server, peers).connect_ok(token)
    assert first != second


def test_refused_token_gets_an_error_and_the_socket_is_closed(
    server: RelayServer, peers: list[Peer]
) -> None:
    peer = open_peer(server, peers)
    answer = peer.connect("not-a-token")
    assert answer["error"]["code"] == -32002
    assert "not-a-token" not in json.dumps(answer)
    assert peer.expect_close() == 1008
    assert server.call(lambda: server.hub.live_sessions) == 0  # type: ignore[union-attr]


def test_expired_token_is_refused(server: RelayServer, peers: list[Peer]) -> None:
    token, _ = server.mint(ttl=-1.0)
    peer = open_peer(server, peers)
    assert peer.connect(token)["error"]["code"] == -32002
    assert peer.expect_close() == 1008


def test_a_request_before_connect_is_refused_and_closes(
    server: RelayServer, peers: list[Peer]
) -> None:
    peer = open_peer(server, peers)
    rid = peer.request("signalwire.ping", {"timestamp": 1.0})
    answer = peer.recv()
    assert answer["id"] == rid
    assert answer["error"]["code"] == -32002
    assert peer.expect_close() == 1008


def test_refuse_connects_refuses_exactly_count_and_counts_attempts(
    server: RelayServer, peers: list[Peer]
) -> None:
    hub = server.hub
    assert hub is not None
    token, _ = server.mint()
    server.call(hub.refuse_connects, 2, -32002, "Requester validation failed")
    for _ in range(2):
        peer = open_peer(server, peers)
        answer = peer.connect(token)
        assert answer["error"] == {"code": -32002, "message": "Requester validation failed"}
        assert peer.expect_close() == 1008
    open_peer(server, peers).connect_ok(token)
    open_peer(server, peers).connect("bad")
    assert server.call(lambda: hub.connect_attempts) == 4


def test_second_connect_on_one_socket_is_an_error_but_keeps_the_socket(
    server: RelayServer, peers: list[Peer]
) -> None:
    token, _ = server.mint()
    peer = open_peer(server, peers)
    peer.connect_ok(token)
    assert peer.connect(token)["error"]["code"] == -32600
    assert peer.barrier() == []


# ---------------------------------------------------------------------------- bad frames


def test_malformed_frames_are_answered_and_the_socket_survives(
    server: RelayServer, peers: list[Peer]
) -> None:
    token, _ = server.mint()
    peer = open_peer(server, peers)
    peer.connect_ok(token)
    peer.send("{not json")
    assert peer.recv() == {
        "jsonrpc": "2.0",
        "id": None,
        "error": {"code": -32700, "message": "Parse error"},
    }
    peer.send("[1, 2]")
    assert peer.recv()["error"]["code"] == -32600
    peer.send('"text"')
    assert peer.recv()["error"]["code"] == -32600
    peer.ws.send_binary(b"\xff\xfe")
    assert peer.recv()["error"]["code"] == -32700
    peer.send({"jsonrpc": "2.0", "method": "signalwire.ping"})
    assert peer.recv()["error"]["code"] == -32600
    rid = peer.request("no.such.method", {})
    answer = peer.recv()
    assert answer["id"] == rid
    assert answer["error"]["code"] == -32601
    peer.send({"jsonrpc": "2.0", "id": "p1", "method": "signalwire.ping", "params": [1]})
    assert peer.recv()["error"]["code"] == -32602
    # An answer to nothing is ignored.
    peer.send({"jsonrpc": "2.0", "id": "nobody-asked", "result": {}})
    assert peer.barrier() == []


# ---------------------------------------------------------------------------- pings


def test_server_pings_at_the_interval_and_accepts_answers(
    make_server: Callable[..., RelayServer], peers: list[Peer]
) -> None:
    server = make_server(ping_interval=0.2)
    token, _ = server.mint()
    peer = open_peer(server, peers)
    peer.connect_ok(token)
    stamps = []
    arrivals = []
    for _ in range(3):
        frame = peer.recv()
        assert frame["method"] == "signalwire.ping"
        assert frame["jsonrpc"] == "2.0"
        uuid.UUID(frame["id"])
        stamps.append(frame["params"]["timestamp"])
        arrivals.append(time.monotonic())
        peer.send({"jsonrpc": "2.0", "id": frame["id"], "result": frame["params"]})
    assert stamps == sorted(stamps)
    assert abs(stamps[-1] - time.time()) < 5
    gaps = [b - a for a, b in itertools.pairwise(arrivals)]
    assert all(0.1 < gap < 1.0 for gap in gaps), gaps


def test_set_ping_interval_stops_and_restarts_pings(
    make_server: Callable[..., RelayServer], peers: list[Peer]
) -> None:
    server = make_server(ping_interval=0.2)
    hub = server.hub
    assert hub is not None
    token, _ = server.mint()
    peer = open_peer(server, peers)
    peer.connect_ok(token)
    assert peer.recv()["method"] == "signalwire.ping"
    server.call(hub.set_ping_interval, None)
    peer.barrier()  # a ping already on its way is flushed out here
    with pytest.raises(websocket.WebSocketTimeoutException):
        peer.recv(timeout=0.6)
    server.call(hub.set_ping_interval, 0.1)
    assert peer.recv()["method"] == "signalwire.ping"
    with pytest.raises(ValueError, match="positive"):
        server.call(hub.set_ping_interval, 0)


def test_client_ping_is_answered_with_its_timestamp(server: RelayServer, peers: list[Peer]) -> None:
    token, _ = server.mint()
    peer = open_peer(server, peers)
    peer.connect_ok(token)
    rid = peer.request("signalwire.ping", {"timestamp": 1234.5})
    assert peer.recv() == {"jsonrpc": "2.0", "id": rid, "result": {"timestamp": 1234.5}}


# ---------------------------------------------------------------------------- events


def test_event_reaches_every_session_of_each_member_only(
    server: RelayServer, peers: list[Peer]
) -> None:
    alice_token, _ = server.mint(ALICE)
    bob_token, _ = server.mint(BOB)
    alice1 = open_peer(server, peers)
    alice1.connect_ok(alice_token)
    alice2 = open_peer(server, peers)
    alice2.connect_ok(alice_token)
    bob = open_peer(server, peers)
    bob.connect_ok(bob_token)
    message = event(1)
    publish(server, [ALICE, ALICE, "nobody"], message)
    ids = set()
    for peer in (alice1, alice2):
        frame = peer.recv()
        assert frame["jsonrpc"] == "2.0"
        assert frame["method"] == "signalwire.event"
        uuid.UUID(frame["id"])
        ids.add(frame["id"])
        params = frame["params"]
        assert params["event_type"] == "conversation.message"
        assert isinstance(params["event_channel"], str)
        assert params["event_channel"]
        assert isinstance(params["timestamp"], float)
        assert params["params"] == message
        peer.ack(frame)
        assert peer.barrier() == []  # exactly once
    assert len(ids) == 2
    assert bob.barrier() == []


def test_events_name_each_sessions_protocol_authorship_and_type(
    server: RelayServer, peers: list[Peer]
) -> None:
    # v4 drops every event whose event_channel does not contain its session's protocol.
    sessions = []
    for who in (ALICE, ALICE, BOB):
        token, _ = server.mint(who)
        peer = open_peer(server, peers)
        result, _ = peer.connect_ok(token)
        sessions.append((peer, result["protocol"], who == ALICE))
    message = event(1)  # from ALICE
    publish(server, [ALICE, BOB], message)
    hub = server.hub
    assert hub is not None
    server.call(lambda: hub.publish([BOB], message, event_type="conversation.message.updated"))
    for peer, protocol, author in sessions:
        frame = peer.recv()
        params = frame["params"]
        assert protocol in params["event_channel"]
        assert params["event_type"] == "conversation.message"
        assert params["is_author"] is author
        assert params["params"] == message
        peer.ack(frame)
    _, protocol, _ = sessions[2]
    updated = sessions[2][0].recv()
    assert updated["params"]["event_type"] == "conversation.message.updated"
    assert protocol in updated["params"]["event_channel"]
    assert updated["params"]["is_author"] is False
    for peer, _, _ in sessions[:2]:
        assert peer.barrier() == []


def test_events_of_consecutive_turns_leave_in_one_write_in_order(
    server: RelayServer, peers: list[Peer]
) -> None:
    # A burst of sends is handled over several turns of the loop; what a socket is given
    # in one turn waits for the next before it is written, so the burst costs fewer writes.
    token, _ = server.mint(ALICE)
    peer = open_peer(server, peers)
    peer.connect_ok(token)
    hub = server.hub
    assert hub is not None

    async def two_turns() -> list[int]:
        (conn,) = hub._conns.values()  # what waits to be written is what is tested
        hub.publish([ALICE], event(1))
        waiting = [len(conn.pending)]
        await asyncio.sleep(0)  # the loop's next turn
        hub.publish([ALICE], event(2))
        waiting.append(len(conn.pending))
        return waiting

    assert server.run(two_turns()) == [1, 2]
    frames = [peer.recv(), peer.recv()]
    assert [f["params"]["params"]["text"] for f in frames] == ["message 1", "message 2"]
    for frame in frames:
        peer.ack(frame)
    assert peer.barrier() == []  # exactly once


def test_acks_are_tracked_per_session(server: RelayServer, peers: list[Peer]) -> None:
    hub = server.hub
    assert hub is not None
    token, _ = server.mint()
    peer = open_peer(server, peers)
    peer.connect_ok(token)
    for n in range(3):
        publish(server, [ALICE], event(n))
    frames = [peer.recv() for _ in range(3)]
    assert [f["params"]["params"]["text"] for f in frames] == [f"message {n}" for n in range(3)]
    assert server.call(hub.sessions)[0].unacked == 3
    peer.ack(frames[1])
    peer.send({"jsonrpc": "2.0", "id": frames[0]["id"], "error": {"code": 1, "message": "x"}})
    peer.barrier()
    assert server.call(hub.sessions)[0].unacked == 2
    peer.ack(frames[0])
    peer.ack(frames[2])
    peer.barrier()
    assert server.call(hub.sessions)[0].unacked == 0


def test_window_holds_back_events_until_acks_arrive(
    make_server: Callable[..., RelayServer], peers: list[Peer]
) -> None:
    server = make_server(event_window=5)
    hub = server.hub
    assert hub is not None
    token, _ = server.mint()
    peer = open_peer(server, peers)
    peer.connect_ok(token)
    for n in range(12):
        publish(server, [ALICE], event(n))
    got = [peer.recv() for _ in range(5)]
    assert peer.barrier() == []  # exactly event_window arrived
    (info,) = server.call(hub.sessions)
    assert (info.unacked, info.queued) == (5, 7)
    peer.ack(got[0])
    got.append(peer.recv())
    assert peer.barrier() == []  # one ack, one more
    peer.ack(got[1])
    peer.ack(got[2])
    got += [peer.recv(), peer.recv()]
    assert peer.barrier() == []
    for frame in got[3:]:
        peer.ack(frame)
    while len(got) < 12:
        frame = peer.recv()
        got.append(frame)
        peer.ack(frame)
    texts = [f["params"]["params"]["text"] for f in got]
    assert texts == [f"message {n}" for n in range(12)]
    peer.barrier()
    (info,) = server.call(hub.sessions)
    assert (info.unacked, info.queued) == (0, 0)


def test_a_client_without_event_acks_is_not_held_back(
    make_server: Callable[..., RelayServer], peers: list[Peer]
) -> None:
    server = make_server(event_window=2)
    hub = server.hub
    assert hub is not None
    token, _ = server.mint()
    peer = open_peer(server, peers)
    peer.connect_ok(token, event_acks=False)
    for n in range(5):
        publish(server, [ALICE], event(n))
    assert [peer.recv()["params"]["params"]["text"] for _ in range(5)] == [
        f"message {n}" for n in range(5)
    ]
    (info,) = server.call(hub.sessions)
    assert (info.unacked, info.queued) == (0, 0)


def test_a_consumer_that_stops_keeping_up_is_dropped(
    make_server: Callable[..., RelayServer], peers: list[Peer]
) -> None:
    server = make_server(event_window=2, queue_limit=3)
    hub = server.hub
    assert hub is not None
    token, _ = server.mint()
    peer = open_peer(server, peers)
    result, _ = peer.connect_ok(token)
    for n in range(6):
        publish(server, [ALICE], event(n))
    assert [peer.recv()["params"]["params"]["text"] for _ in range(2)] == ["message 0", "message 1"]
    assert peer.expect_close() == 1013
    wait_for(lambda: server.call(hub.sessions) == [])
    again = open_peer(server, peers)
    assert again.connect_ok(token, protocol=result["protocol"])[0]["protocol"] != result["protocol"]


# ---------------------------------------------------------------------------- resume


def test_resume_replays_unacked_events_in_order_and_skips_the_gap(
    server: RelayServer, peers: list[Peer]
) -> None:
    hub = server.hub
    assert hub is not None
    token, _ = server.mint()
    first = open_peer(server, peers)
    result, state = first.connect_ok(token)
    for n in range(3):
        publish(server, [ALICE], event(n))
    frames = [first.recv() for _ in range(3)]
    first.ack(frames[0])
    first.barrier()
    first.close()
    wait_for(lambda: server.call(lambda: hub.live_sessions) == 0)
    publish(server, [ALICE], event(99))  # no socket: not kept
    second = open_peer(server, peers)
    token2, claims2 = server.mint()
    answer = second.connect(token2, protocol=result["protocol"], authorization_state=state)
    assert answer["result"]["protocol"] == result["protocol"]
    assert answer["result"]["authorization"]["jti"] == claims2.jti
    state_event = second.recv()
    assert state_event["params"]["event_type"] == "signalwire.authorization.state"
    replayed = [second.recv(), second.recv()]
    assert [f["id"] for f in replayed] == [frames[1]["id"], frames[2]["id"]]
    assert replayed[0]["params"] == frames[1]["params"]
    assert result["protocol"] in replayed[0]["params"]["event_channel"]
    publish(server, [ALICE], event(4))
    fresh = second.recv()
    assert fresh["params"]["params"]["text"] == "message 4"
    assert second.barrier() == []
    for frame in (*replayed, fresh):
        second.ack(frame)
    second.barrier()
    assert server.call(hub.sessions)[0].unacked == 0


def test_resume_after_drop_all(server: RelayServer, peers: list[Peer]) -> None:
    hub = server.hub
    assert hub is not None
    token, _ = server.mint()
    first = open_peer(server, peers)
    result, _ = first.connect_ok(token)
    publish(server, [ALICE], event(1))
    sent = first.recv()
    server.run(hub.drop_all())
    assert first.expect_close() is None  # no close frame: a network drop
    assert server.call(lambda: hub.live_sessions) == 0
    closes = [r for r in server.records if r["kind"] == "ws_close"]
    assert closes
    assert closes[-1]["close_code"] == 1006
    second = open_peer(server, peers)
    assert (
        second.connect_ok(token, protocol=result["protocol"])[0]["protocol"] == result["protocol"]
    )
    assert second.recv()["id"] == sent["id"]


def test_unknown_foreign_or_expired_protocol_starts_a_new_session(
    make_server: Callable[..., RelayServer], peers: list[Peer]
) -> None:
    server = make_server(resume_window=0.3)
    hub = server.hub
    assert hub is not None
    alice_token, _ = server.mint(ALICE)
    bob_token, _ = server.mint(BOB)
    peer = open_peer(server, peers)
    result, _ = peer.connect_ok(alice_token)
    publish(server, [ALICE], event(1))
    peer.recv()
    peer.close()
    wait_for(lambda: server.call(lambda: hub.live_sessions) == 0)

    bob = open_peer(server, peers)
    bob_result, _ = bob.connect_ok(bob_token, protocol=result["protocol"])
    assert bob_result["protocol"] != result["protocol"]
    assert bob.barrier() == []  # nothing of Alice's replayed to Bob

    unknown = open_peer(server, peers)
    assert unknown.connect_ok(alice_token, protocol="signalwire_x_y_z")[0]["protocol"] not in (
        result["protocol"],
        "signalwire_x_y_z",
    )

    wait_for(lambda: result["protocol"] not in {s.protocol for s in server.call(hub.sessions)})
    late = open_peer(server, peers)
    late_result, _ = late.connect_ok(alice_token, protocol=result["protocol"])
    assert late_result["protocol"] != result["protocol"]
    assert late.barrier() == []


def test_resume_takes_over_a_session_still_attached(server: RelayServer, peers: list[Peer]) -> None:
    hub = server.hub
    assert hub is not None
    token, _ = server.mint()
    old = open_peer(server, peers)
    result, _ = old.connect_ok(token)
    publish(server, [ALICE], event(1))
    sent = old.recv()
    new = open_peer(server, peers)
    assert new.connect_ok(token, protocol=result["protocol"])[0]["protocol"] == result["protocol"]
    assert new.recv()["id"] == sent["id"]
    assert old.expect_close() is None
    assert server.call(lambda: hub.live_sessions) == 1


# ---------------------------------------------------------------------------- tokens


def test_reauthenticate_replaces_the_authorization(server: RelayServer, peers: list[Peer]) -> None:
    token, _ = server.mint(ttl=1.0)
    peer = open_peer(server, peers)
    peer.connect_ok(token)
    fresh, claims = server.mint(ttl=3600)
    rid = peer.request(
        "signalwire.reauthenticate", {"authentication": {"project": PROJECT, "jwt_token": fresh}}
    )
    answer = peer.recv()
    assert answer["id"] == rid
    auth = answer["result"]["authorization"]
    assert auth["jti"] == claims.jti
    assert auth["fabric_subscriber"]["expires_at"] == int(claims.exp)
    # Past the first token's expiry, no disconnect comes.
    with pytest.raises(websocket.WebSocketTimeoutException):
        peer.recv(timeout=1.5)
    assert peer.barrier() == []


@pytest.mark.parametrize("kind", ["unknown", "other-subscriber", "wrong-project", "missing"])
def test_bad_reauthenticate_is_an_error_and_keeps_the_socket(
    server: RelayServer, peers: list[Peer], kind: str
) -> None:
    token, _ = server.mint()
    peer = open_peer(server, peers)
    peer.connect_ok(token)
    bob_token, _ = server.mint(BOB)
    authentication: dict[str, Any] = {
        "unknown": {"project": PROJECT, "jwt_token": "nope"},
        "other-subscriber": {"project": PROJECT, "jwt_token": bob_token},
        "wrong-project": {"project": "another", "jwt_token": server.mint()[0]},
        "missing": {"project": PROJECT},
    }[kind]
    rid = peer.request("signalwire.reauthenticate", {"authentication": authentication})
    answer = peer.recv()
    assert answer["id"] == rid
    assert answer["error"]["code"] == -32002
    assert peer.barrier() == []


def test_expiry_sends_disconnect_then_closes_and_session_resumes(
    server: RelayServer, peers: list[Peer]
) -> None:
    token, _ = server.mint(ttl=0.5)
    peer = open_peer(server, peers)
    result, _ = peer.connect_ok(token)
    frame = peer.recv()
    assert frame["method"] == "signalwire.disconnect"
    assert frame["params"] == {}
    peer.ack(frame)
    assert peer.expect_close() == 1000
    fresh, _ = server.mint()
    again = open_peer(server, peers)
    assert again.connect_ok(fresh, protocol=result["protocol"])[0]["protocol"] == result["protocol"]


def test_expiry_closes_even_without_an_answer(server: RelayServer, peers: list[Peer]) -> None:
    token, _ = server.mint(ttl=0.3)
    peer = open_peer(server, peers)
    peer.connect_ok(token)
    assert peer.recv()["method"] == "signalwire.disconnect"
    assert peer.expect_close() == 1000


# ---------------------------------------------------------------------------- faults


def test_half_open_silences_open_sockets_and_spares_new_ones(
    make_server: Callable[..., RelayServer], peers: list[Peer]
) -> None:
    server = make_server(ping_interval=0.1)
    hub = server.hub
    assert hub is not None
    token, _ = server.mint()
    old = open_peer(server, peers)
    old.connect_ok(token)
    assert old.recv()["method"] == "signalwire.ping"
    server.call(hub.set_half_open, True)
    rid = old.request("signalwire.ping", {"timestamp": 7.0})
    publish(server, [ALICE], event(1))
    # Only what was already on the wire when the socket went silent may still arrive.
    early = old.drain(0.6)
    assert all(f.get("method") == "signalwire.ping" for f in early), early
    with pytest.raises(websocket.WebSocketTimeoutException):
        old.recv(timeout=0.5)  # no pings, no answers, no events
    new = open_peer(server, peers)
    new.connect_ok(token)
    publish(server, [ALICE], event(2))
    assert new.recv_app()["params"]["params"]["text"] == "message 2"
    server.call(hub.set_half_open, False)
    held = []
    while not any(f.get("id") == rid for f in held):
        held.append(old.recv_app())
    texts = [f["params"]["params"]["text"] for f in held if f.get("method") == "signalwire.event"]
    assert texts[:1] == ["message 1"]


def test_close_ends_every_socket_and_task(
    make_server: Callable[..., RelayServer], peers: list[Peer]
) -> None:
    server = make_server(ping_interval=0.1)
    hub = server.hub
    assert hub is not None
    token, _ = server.mint(ttl=30)
    live = open_peer(server, peers)
    live.connect_ok(token)
    silent = open_peer(server, peers)
    silent.connect_ok(token)
    server.call(hub.set_half_open, True)
    idle = open_peer(server, peers)  # never connects
    live2 = open_peer(server, peers)
    live2.connect_ok(token)
    publish(server, [ALICE], event(1))
    assert live2.recv_app()["method"] == "signalwire.event"
    started = time.monotonic()
    server.run(hub.close())
    assert time.monotonic() - started < 5
    assert live2.expect_close() == 1001
    assert silent.expect_close() is None
    assert idle.expect_close() == 1001
    assert server.call(lambda: hub.open_sockets) == 0
    assert server.call(hub.sessions) == []
    wait_for(lambda: server.other_tasks() == [])
    server.run(hub.close())  # idempotent
    publish(server, [ALICE], event(2))  # a no-op once closed


def test_record_sees_opens_frames_and_closes(server: RelayServer, peers: list[Peer]) -> None:
    token, _ = server.mint()
    peer = open_peer(server, peers)
    peer.connect_ok(token)
    peer.close()
    wait_for(lambda: any(r["kind"] == "ws_close" for r in server.records))
    kinds = [r["kind"] for r in server.records]
    assert kinds[0] == "ws_open"
    assert server.records[0]["path"] == "/"
    assert "Upgrade" in server.records[0]["headers"]
    assert kinds[-1] == "ws_close"
    recv = [r["frame"] for r in server.records if r["kind"] == "ws_recv"]
    sent = [r["frame"] for r in server.records if r["kind"] == "ws_send"]
    assert recv[0]["method"] == "signalwire.connect"
    assert "result" in sent[0]
    assert sent[1]["method"] == "signalwire.event"
    assert token not in json.dumps([r for r in server.records if r["kind"] != "ws_recv"])
    assert {r["conn"] for r in server.records} == {1}


def test_frames_are_recorded_only_while_a_recording_is_wanted(peers: list[Peer]) -> None:
    # Building an entry for every frame cost time on every event of a fan-out, for nobody.
    wanted = threading.Event()
    server = RelayServer(RelayConfig(ping_interval=None))
    server.recording = wanted.is_set
    server.__enter__()
    try:
        token, _ = server.mint()
        peer = open_peer(server, peers)
        peer.connect_ok(token)
        publish(server, [ALICE], event(1))
        assert peer.recv()["params"]["params"]["text"] == "message 1"
        assert [r for r in server.records if r["kind"] in ("ws_send", "ws_recv")] == []
        wanted.set()
        publish(server, [ALICE], event(2))
        second = peer.recv()
        assert second["params"]["params"]["text"] == "message 2"
        peer.ack(second)
        wait_for(lambda: any(r["kind"] == "ws_recv" for r in server.records))
        assert [r["frame"]["id"] for r in server.records if r["kind"] == "ws_recv"] == [
            second["id"]
        ]
        sent = [r["frame"] for r in server.records if r["kind"] == "ws_send"]
        assert [f["params"]["params"]["text"] for f in sent] == ["message 2"]
    finally:
        server.stop()


def test_a_failing_record_callable_does_not_break_the_relay(
    make_server: Callable[..., RelayServer], peers: list[Peer], caplog: pytest.LogCaptureFixture
) -> None:
    def broken(entry: dict[str, Any]) -> None:
        raise RuntimeError("recorder is broken")

    server = make_server(record=broken)
    token, _ = server.mint()
    peer = open_peer(server, peers)
    peer.connect_ok(token)
    publish(server, [ALICE], event(1))
    assert peer.recv()["params"]["params"]["text"] == "message 1"
    assert "record callable failed" in caplog.text


def test_plain_get_is_told_to_upgrade(server: RelayServer) -> None:
    import urllib.request

    url = server.url.replace("ws://", "http://")
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(url, timeout=WAIT)
    assert info.value.code == 426
    info.value.close()


# ---------------------------------------------------------------------------- through the Emulator


@pytest.fixture
def emu(emulator_factory: Callable[..., Any]) -> Any:
    return emulator_factory(ping_interval=None)


def rest_send(emu: Any, token: str, address_id: str, text: str) -> None:
    reply = requests.post(
        f"{emu.rest_url}/api/fabric/messages",
        json={"conversation_id": address_id, "text": text},
        headers={"Authorization": f"Bearer {token}"},
        timeout=WAIT,
    )
    assert reply.status_code < 300, reply.text


def test_rest_send_reaches_every_member_over_the_relay(emu: Any, peers: list[Peer]) -> None:
    alice = emu.create_subscriber("alice@example.com", display_name="Alice")
    bob = emu.create_subscriber("bob@example.com")
    carol = emu.create_subscriber("carol@example.com")
    room = emu.create_room("lobby", display_name="Lobby")
    emu.join(bob, room.id)
    sockets = {}
    for who in (alice, bob, carol):
        sockets[who.id] = Peer(emu.relay_url)
        peers.append(sockets[who.id])
        sockets[who.id].connect_ok(who.token)
    rest_send(emu, alice.token, room.id, "hello lobby")
    (stored,) = emu.messages(room.id)
    for who in (alice, bob):
        frame = sockets[who.id].recv_app()
        assert frame["method"] == "signalwire.event"
        event_params = frame["params"]
        assert event_params["event_type"] == "conversation.message"
        message = event_params["params"]
        assert message["id"] == stored["id"]
        assert message["text"] == "hello lobby"
        assert message["conversation_id"] == room.id
        assert message["subtype"] == "chat"
        assert message["user_id"] == alice.id
        assert message["user_name"] == "Alice"
        assert message["conversation_name"]
        assert message["hidden"] is False
        sockets[who.id].ack(frame)
    assert sockets[carol.id].barrier() == []  # not a member
    assert emu.hub is not None


def test_emulator_fault_hooks_drive_the_relay(emu: Any, peers: list[Peer]) -> None:
    alice = emu.create_subscriber()
    first = Peer(emu.relay_url)
    peers.append(first)
    result, _ = first.connect_ok(alice.token)
    rest_send(emu, alice.token, alice.address_id, "one")
    unacked = first.recv_app()
    emu.drop_connections()
    assert first.expect_close() is None
    emu.refuse_connects(1)
    refused = Peer(emu.relay_url)
    peers.append(refused)
    assert refused.connect(alice.token)["error"]["code"] == -32002
    assert refused.expect_close() == 1008
    second = Peer(emu.relay_url)
    peers.append(second)
    assert (
        second.connect_ok(alice.token, protocol=result["protocol"])[0]["protocol"]
        == (result["protocol"])
    )
    assert second.recv_app()["id"] == unacked["id"]
    assert emu.connect_attempts == 3
    emu.set_ping_interval(0.1)
    assert second.recv()["method"] == "signalwire.ping"
    with emu.half_open():
        second.drain(0.5)
        with pytest.raises(websocket.WebSocketTimeoutException):
            second.recv(timeout=0.4)
    assert second.recv()["method"] == "signalwire.ping"


def test_real_token_expiry_ends_with_a_disconnect(emu: Any, peers: list[Peer]) -> None:
    alice = emu.create_subscriber()
    peer = Peer(emu.relay_url)
    peers.append(peer)
    result, _ = peer.connect_ok(emu.mint_token(alice, ttl=0.6))
    frame = peer.recv_app()
    assert frame["method"] == "signalwire.disconnect"
    peer.ack(frame)
    assert peer.expect_close() == 1000
    again = Peer(emu.relay_url)
    peers.append(again)
    assert again.connect(emu.mint_token(alice, ttl=-1))["error"]["code"] == -32002
    again = Peer(emu.relay_url)
    peers.append(again)
    assert (
        again.connect_ok(alice.token, protocol=result["protocol"])[0]["protocol"]
        == (result["protocol"])
    )


def test_emulator_stop_closes_relay_sockets_going_away(emu: Any, peers: list[Peer]) -> None:
    alice = emu.create_subscriber()
    peer = Peer(emu.relay_url)
    peers.append(peer)
    result, _ = peer.connect_ok(alice.token)
    emu.stop()
    assert peer.expect_close() == 1001
    emu.start()
    again = Peer(emu.relay_url)
    peers.append(again)
    # A restarted service has lost its sessions: a new protocol, nothing replayed.
    assert (
        again.connect_ok(alice.token, protocol=result["protocol"])[0]["protocol"]
        != (result["protocol"])
    )


def test_emulator_recording_has_the_relay_frames_redacted(emu: Any, peers: list[Peer]) -> None:
    alice = emu.create_subscriber()
    with emu.recording() as rec:
        peer = Peer(emu.relay_url)
        peers.append(peer)
        peer.connect_ok(alice.token)
        peer.close()
        wait_for(lambda: any(e["kind"] == "ws_close" for e in list(rec)))
    entries = list(rec)
    assert [e["kind"] for e in entries][:2] == ["ws_open", "ws_recv"]
    assert alice.token not in json.dumps(entries)
    connect = entries[1]["frame"]
    assert connect["method"] == "signalwire.connect"
