"""The emulator against careless and hostile peers (issue 10, items 11 and 12), over real sockets.

Junk page sizes and page tokens, metadata past the client's limits, a relay frame nested too
deep for the parser, sockets that never authenticate or never finish their headers, a relay
drop followed at once by a restart, a close with a held request, and who may join whose
conversation in the address dialect.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import websocket
from test_emulator_rest import Api, assert_fabric_error

from signalwire_chat import RealtimeOptions
from signalwire_chat.emulator import Emulator, EmulatorSubscriber

TIMEOUT = 10.0
LISTINGS = (
    "/api/fabric/messages",
    "/api/fabric/conversations",
    "/api/fabric/addresses",
    "/api/fabric/conversations/{room}/messages",
)


@pytest.fixture
def carol(emu: Emulator) -> EmulatorSubscriber:
    return emu.create_subscriber("carol@example.com", display_name="Carol")


@pytest.fixture
def apis(
    emu: Emulator, alice: EmulatorSubscriber, bob: EmulatorSubscriber, carol: EmulatorSubscriber
) -> Iterator[dict[str, Api]]:
    made = {
        "alice": Api(emu, alice.token),
        "bob": Api(emu, bob.token),
        "carol": Api(emu, carol.token),
    }
    yield made
    for api in made.values():
        api.close()


def _token(data: Any) -> str:
    raw = json.dumps(data, separators=(",", ":")) if not isinstance(data, str) else data
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


# -- item 11: junk queries get a 4xx fabric error, never a 500 --------------------------------


@pytest.mark.parametrize(
    "size",
    ["²", "9" * 5000, "١٢", "0000001", " 5", "+5", "5 ", "1_0"],
    ids=[
        "superscript",
        "5000-digits",
        "arabic-indic",
        "seven-digits",
        "space",
        "plus",
        "trail",
        "underscore",
    ],
)
def test_junk_page_sizes_are_422(emu: Emulator, apis: dict[str, Api], size: str) -> None:
    room = emu.create_room(f"sizes-{uuid.uuid4().hex[:8]}")
    api = apis["alice"]
    api.send(room.id, "x")
    for path in LISTINGS:
        response = api.get(path.format(room=room.id), params={"page_size": size})
        assert_fabric_error(response, 422, "page_size")


def test_a_plain_page_size_still_works(emu: Emulator, apis: dict[str, Api]) -> None:
    room = emu.create_room("plain-sizes")
    for i in range(3):
        apis["alice"].send(room.id, f"m{i}")
    page = apis["alice"].history(room.id, page_size="02").json()
    assert [m["text"] for m in page["data"]] == ["m2", "m1"]


@pytest.mark.parametrize(
    "token",
    [
        _token(["messages", "next", 1, 10**30]),
        _token(["messages", "next", 10**30, 1]),
        _token(["messages", "next", 1, -1]),
        _token('["messages","next",NaN,1]'),
        _token('["messages","next",Infinity,1]'),
        _token(["messages", "next", "x" * 300, 1]),
        _token("[" * 700 + "]" * 700),
        _token(["messages", "next", [[[[1]]]], 1]),
        _token(["messages", "next", 1, 1]) + "A" * 1100,
    ],
    ids=[
        "huge-seq",
        "huge-sort",
        "negative-seq",
        "nan",
        "infinity",
        "long-sort",
        "deep",
        "nested-sort",
        "too-long",
    ],
)
def test_junk_page_tokens_are_422(emu: Emulator, apis: dict[str, Api], token: str) -> None:
    api = apis["alice"]
    response = api.get("/api/fabric/messages", params={"page_token": token})
    assert_fabric_error(response, 422, "page_token")
    # The emulator still answers normally afterwards.
    assert api.get("/api/fabric/messages").status_code == 200


def _nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {"leaf": 1}
    for _ in range(depth - 1):
        value = {"k": value}
    return value


@pytest.mark.parametrize("field", ["metadata", "details"])
def test_metadata_past_the_clients_limits_is_422_in_both_dialects(
    emu: Emulator,
    apis: dict[str, Api],
    alice: EmulatorSubscriber,
    bob: EmulatorSubscriber,
    field: str,
) -> None:
    api = apis["alice"]
    room = emu.create_room(f"limits-{field}")
    group = emu.join_group(alice, [bob.address_id])
    bodies = {
        "address": {"conversation_id": room.id, "text": "x"},
        "group": {"group_id": group, "from_fabric_address_id": alice.address_id, "text": "x"},
    }
    at_limit = {"a": "x" * (16 * 1024 - len('{"a":""}'))}
    for name, body in bodies.items():
        ok = api.post("/api/fabric/messages", {**body, field: _nested(32)})
        assert ok.status_code == 201, name
        assert api.post("/api/fabric/messages", {**body, field: at_limit}).status_code == 201
        too_deep = api.post("/api/fabric/messages", {**body, field: _nested(33)})
        assert_fabric_error(too_deep, 422, field)
        too_big = api.post("/api/fabric/messages", {**body, field: {"a": "x" * 16 * 1024}})
        assert_fabric_error(too_big, 422, field)
        # Non-ASCII text counts in UTF-8 bytes, as the client counts it.
        wide = api.post("/api/fabric/messages", {**body, field: {"a": "é" * 8200}})
        assert_fabric_error(wide, 422, field)


# -- item 11: the relay answers a frame too deep to parse on the websocket --------------------


def _relay(emu: Emulator) -> websocket.WebSocket:
    return websocket.create_connection(emu.relay_url, timeout=TIMEOUT)


def _connect_frame(token: str, rid: str = "c1") -> str:
    return json.dumps(
        {
            "jsonrpc": "2.0",
            "id": rid,
            "method": "signalwire.connect",
            "params": {"event_acks": True, "authentication": {"jwt_token": token}},
        }
    )


_ACKED = ("signalwire.event", "signalwire.ping")


def _frames(ws: websocket.WebSocket, deadline: float = TIMEOUT) -> Iterator[dict[str, Any]]:
    """Every frame until the deadline, in order; events and pings are acknowledged first."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        ws.settimeout(max(0.05, end - time.monotonic()))
        frame = json.loads(ws.recv())
        if frame.get("method") in _ACKED:
            ws.send(json.dumps({"jsonrpc": "2.0", "id": frame["id"], "result": {}}))
        yield frame


def _is_answer(frame: dict[str, Any], rid: str | None) -> bool:
    return frame.get("method") not in _ACKED and frame.get("id") == rid


def _recv_json(
    ws: websocket.WebSocket, rid: str | None, deadline: float = TIMEOUT
) -> dict[str, Any]:
    for frame in _frames(ws, deadline):
        if _is_answer(frame, rid):
            return dict(frame)
    raise AssertionError(f"no answer with id {rid!r} in time")


@pytest.mark.parametrize(
    "frame",
    [
        "[" * 100_000,
        '{"a":' * 50_000 + "1" + "}" * 50_000,
        '{"jsonrpc":"2.0","id":"p","method":"signalwire.ping","params":{"x":'
        + "[" * 20_000
        + "]" * 20_000
        + "}}",
    ],
    ids=["arrays", "objects", "deep-params"],
)
def test_a_deeply_nested_relay_frame_is_a_parse_error_on_the_websocket(
    emu: Emulator, alice: EmulatorSubscriber, frame: str
) -> None:
    ws = _relay(emu)
    try:
        ws.send(frame)
        answer = _recv_json(ws, None)
        assert answer["error"]["code"] == -32700
        assert "nested" in answer["error"]["message"]
        # The socket is still a websocket, served as before.
        ws.send(_connect_frame(alice.token))
        assert "protocol" in _recv_json(ws, "c1")["result"]
        ws.send(
            json.dumps({"jsonrpc": "2.0", "id": "p2", "method": "signalwire.ping", "params": {}})
        )
        assert "timestamp" in _recv_json(ws, "p2")["result"]
    finally:
        _close(ws)


# -- item 11: silent sockets are closed --------------------------------------------------------


def _close_code(ws: websocket.WebSocket, deadline: float) -> int:
    """Read until the server's close frame; return its code."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        ws.settimeout(max(0.05, end - time.monotonic()))
        opcode, frame = ws.recv_data_frame(True)
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            return int.from_bytes(frame.data[:2], "big")
    raise AssertionError("the server did not close the socket in time")


def test_a_relay_socket_that_never_authenticates_is_closed(emulator_factory: Any) -> None:
    emu = emulator_factory(auth_timeout=0.3, ping_interval=0.2)
    sub = emu.create_subscriber()
    silent = _relay(emu)
    authenticated = _relay(emu)
    try:
        authenticated.send(_connect_frame(sub.token))
        assert "result" in _recv_json(authenticated, "c1")
        assert _close_code(silent, TIMEOUT) == 1008
        # The authenticated socket outlives the deadline: it still answers after it.
        for n in range(3):
            ping = {"jsonrpc": "2.0", "id": f"p{n}", "method": "signalwire.ping", "params": {}}
            authenticated.send(json.dumps(ping))
            assert "result" in _recv_json(authenticated, f"p{n}")
        assert emu.hub.live_sessions == 1
        assert emu.hub.open_sockets == 1
    finally:
        _close(silent)
        _close(authenticated)


def test_a_socket_that_stops_answering_pings_is_dropped_and_one_that_answers_stays(
    emulator_factory: Any,
) -> None:
    # A dead peer (its TCP still open) held its socket and session forever.
    emu = emulator_factory(ping_interval=0.2, ping_timeout=2.0)
    sub = emu.create_subscriber()
    deaf, answering = _relay(emu), _relay(emu)
    try:
        deaf.send(_connect_frame(sub.token, "d1"))
        assert "result" in _recv_json(deaf, "d1")
        answering.send(_connect_frame(sub.token, "a1"))
        assert "result" in _recv_json(answering, "a1")
        # The deaf socket reads what it is sent but never sends a byte.
        deaf_code: list[int] = []
        reader = threading.Thread(target=lambda: deaf_code.append(_close_code(deaf, TIMEOUT)))
        reader.start()
        pings = 0
        for frame in _frames(answering, 3 * TIMEOUT):  # answers every ping it reads
            pings += frame.get("method") == "signalwire.ping"
            # Stay until the deaf one is gone and this one has outlived several timeouts.
            if not reader.is_alive() and pings >= 15:
                break
        reader.join(TIMEOUT)
        assert deaf_code == [1001]
        assert pings >= 15
        # The answering socket is still served; the deaf one's session stays resumable.
        answering.send(json.dumps({"jsonrpc": "2.0", "id": "p", "method": "signalwire.ping"}))
        assert "result" in _recv_json(answering, "p")
        assert emu.hub.live_sessions == 1
        assert sorted(s.connected for s in emu.hub.sessions()) == [False, True]
    finally:
        _close(deaf)
        _close(answering)


def test_ping_timeout_must_be_positive() -> None:
    with pytest.raises(ValueError, match="ping_timeout"):
        Emulator(ping_timeout=0)


def _close(ws: websocket.WebSocket) -> None:
    ws.close()
    ws.shutdown()  # close() leaves the socket open once the server has closed first


def _raw(emu: Emulator) -> socket.socket:
    sock = socket.create_connection((emu.host, emu.port), timeout=TIMEOUT)
    sock.settimeout(TIMEOUT)
    return sock


def _read_until_closed(sock: socket.socket) -> bytes:
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except ConnectionResetError:
        pass
    return data


@pytest.mark.parametrize(
    "start", [b"", b"GET /api/fabric/messages HTTP/1.1\r\nHost: x\r\n", b"GET / HT"]
)
def test_a_socket_that_never_finishes_its_headers_is_closed(
    emulator_factory: Any, start: bytes
) -> None:
    emu = emulator_factory(idle_timeout=0.5)
    with _raw(emu) as sock:
        sock.sendall(start)
        # Closed by the server, with nothing (or nothing but an error) written: recv ends.
        assert b" 200 " not in _read_until_closed(sock)


def test_a_body_that_never_arrives_is_408(emulator_factory: Any) -> None:
    emu = emulator_factory(idle_timeout=0.5)
    sub = emu.create_subscriber()
    with _raw(emu) as sock:
        sock.sendall(
            b"POST /api/fabric/messages HTTP/1.1\r\nHost: x\r\n"
            b"Authorization: Bearer " + sub.token.encode() + b"\r\n"
            b'Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"conv'
        )
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = sock.recv(65536)
            assert chunk, answer
            answer += chunk
        head, _, body = answer.partition(b"\r\n\r\n")
        length = int(
            next(
                line for line in head.lower().split(b"\r\n") if line.startswith(b"content-length:")
            ).split(b":")[1]
        )
        while len(body) < length:
            chunk = sock.recv(65536)
            assert chunk, body
            body += chunk
    assert head.startswith(b"HTTP/1.1 408 ")
    assert json.loads(body)["errors"][0]["code"] == "request_timeout"


# -- item 11: drop_connections() then at once stop()/start() ----------------------------------


def _server_side_sockets(port: int) -> list[str]:
    """States of the open sockets (not the listener) on the emulator's port, from /proc/net.

    A socket the process has closed keeps a kernel entry for a while (FIN_WAIT, TIME_WAIT)
    with inode 0; one still open in some process has its inode.
    """
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if int(local.rsplit(":", 1)[1], 16) == port and state != "0A" and inode != "0":
                found.append(state)
    return found


@pytest.mark.skipif(not os.path.exists("/proc/net/tcp"), reason="reads Linux's /proc/net/tcp")
def test_drop_then_restart_at_once_leaks_no_socket_and_the_client_is_back_promptly(
    emu: Emulator, alice: EmulatorSubscriber, bob: EmulatorSubscriber
) -> None:
    room = emu.create_room("restarts")
    got: list[str] = []
    arrived = threading.Condition()

    def on_message(message: Any) -> None:
        with arrived:
            got.append(message.text)
            arrived.notify_all()

    options = RealtimeOptions(reconnect_max_delay=0.5, connect_timeout=10.0)
    with emu.client_for(alice, realtime=options) as client:
        client.subscribe(room.id, on_message)
        for round_ in range(40):
            emu.drop_connections()
            emu.stop()
            # Nothing the server accepted is left open once stop() returns.
            assert _server_side_sockets(emu.port) == [], round_
            emu.start()
            text = f"round {round_}"
            emu.send_as(bob, room.id, text)
            with arrived:
                # A reconnect stuck on a socket the stopped server never answered took
                # the client's whole connect timeout (10 s); a prompt one is well under.
                assert arrived.wait_for(lambda: text in got, timeout=5.0), round_  # noqa: B023
    assert got == [f"round {n}" for n in range(40)]


# -- item 11: closing with a held request pending is quiet ------------------------------------


_QUIET_CLOSE = """
import json, sys, threading, time
import requests, websocket
from signalwire_chat.emulator import Emulator

emu = Emulator().start()
sub = emu.create_subscriber()
emu.delay_next(30, times=2)
emu.delay_next(30, path_prefix="/", times=1)

def rest():
    try:
        requests.get(emu.rest_url + "/api/fabric/subscriber/info",
                     headers={"Authorization": "Bearer " + sub.token}, timeout=20)
    except requests.RequestException:
        pass

def relay():
    try:
        websocket.create_connection(emu.relay_url, timeout=20)
    except (OSError, websocket.WebSocketException):
        pass

threads = [threading.Thread(target=f) for f in (rest, rest, relay)]
for t in threads:
    t.start()
deadline = time.monotonic() + 10
while emu._faults._rules and time.monotonic() < deadline:  # every held request arrived
    time.sleep(0.01)
assert not emu._faults._rules
emu.close()
for t in threads:
    t.join(10)
import gc; gc.collect()
print("closed", flush=True)
"""


def test_closing_with_a_delayed_request_pending_prints_nothing(tmp_path: Path) -> None:
    script = tmp_path / "quiet_close.py"
    script.write_text(_QUIET_CLOSE)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHONASYNCIO")}
    env["PYTHONWARNINGS"] = "always"
    done = subprocess.run(
        [sys.executable, "-W", "always", str(script)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "closed\n"
    assert "Task was destroyed" not in done.stderr
    assert done.stderr == ""


# -- item 12: who may join whose conversation (address dialect) --------------------------------


def test_only_the_owner_joins_a_subscribers_own_address(
    emu: Emulator,
    apis: dict[str, Api],
    alice: EmulatorSubscriber,
    bob: EmulatorSubscriber,
    carol: EmulatorSubscriber,
) -> None:
    join = "/api/fabric/conversations/join"
    # Carol writes to Bob's own address: delivered to Bob's inbox.
    assert apis["carol"].send(bob.address_id, "for bob only").status_code == 201
    # Alice cannot join it, so she cannot read what Carol wrote.
    error = assert_fabric_error(
        apis["alice"].post(join, {"conversation_id": bob.address_id}), 403, "conversation_id"
    )
    assert "owner" in error["message"]
    assert_fabric_error(apis["alice"].history(bob.address_id), 403)
    assert apis["alice"].get("/api/fabric/messages").json()["data"] == []
    # Writing to it made Carol no member either.
    assert_fabric_error(apis["carol"].history(bob.address_id), 403)
    assert apis["carol"].get("/api/fabric/messages").json()["data"] == []
    # Bob joins his own address (harmless), reads his inbox.
    assert apis["bob"].post(join, {"conversation_id": bob.address_id}).status_code == 200
    assert [m["text"] for m in apis["bob"].history(bob.address_id).json()["data"]] == [
        "for bob only"
    ]
    assert emu.store.member_ids(bob.address_id) == [bob.id]
    # The test helper follows the same rule; rooms stay open to everyone.
    with pytest.raises(PermissionError):
        emu.join(alice, bob.address_id)
    room = emu.create_room("open")
    assert apis["alice"].post(join, {"conversation_id": room.id}).status_code == 200
    emu.join(carol, room.id)
    assert set(emu.store.member_ids(room.id)) == {alice.id, carol.id}


def test_a_message_to_someones_address_reaches_only_the_owner_over_the_relay(
    emu: Emulator, alice: EmulatorSubscriber, bob: EmulatorSubscriber, carol: EmulatorSubscriber
) -> None:
    sockets = {}
    try:
        for who in (alice, bob, carol):
            ws = _relay(emu)
            sockets[who.id] = ws
            ws.send(_connect_frame(who.token))
            assert "result" in _recv_json(ws, "c1")
        emu.send_as(carol, bob.address_id, "hello bob", dialect="address")
        emu.send_as(carol, bob.address_id, "marker", dialect="address")
        events = _events_until(sockets[bob.id], "marker")
        assert events == ["hello bob", "marker"]
        # Alice (a stranger) and Carol (the writer) get nothing of Bob's inbox.
        sockets[alice.id].send(
            json.dumps({"jsonrpc": "2.0", "id": "p", "method": "signalwire.ping", "params": {}})
        )
        sockets[carol.id].send(
            json.dumps({"jsonrpc": "2.0", "id": "p", "method": "signalwire.ping", "params": {}})
        )
        for who in (alice, carol):
            assert _events_until(sockets[who.id], None, rid="p") == []
    finally:
        for ws in sockets.values():
            _close(ws)


def _events_until(ws: websocket.WebSocket, text: str | None, rid: str | None = None) -> list[str]:
    """Texts of conversation events, until one with ``text`` or the answer ``rid``."""
    texts = []
    for frame in _frames(ws):
        if frame.get("method") == "signalwire.event" and frame["params"]["event_type"].startswith(
            "conversation."
        ):
            texts.append(frame["params"]["params"]["text"])
            if texts[-1] == text:
                return texts
        elif rid is not None and _is_answer(frame, rid):
            return texts
    raise AssertionError("no end marker in time")


def _stop_while_connecting(emu: Emulator) -> list[socket.socket]:
    """Call stop() while another thread opens connections as fast as it can."""
    stop_now = threading.Event()
    streaming = threading.Event()
    opened: list[socket.socket] = []

    def hammer() -> None:
        while not stop_now.is_set():
            try:
                opened.append(socket.create_connection((emu.host, emu.port), timeout=0.2))
            except OSError:
                return  # the listener is gone
            streaming.set()

    thread = threading.Thread(target=hammer)
    thread.start()
    try:
        assert streaming.wait(TIMEOUT)
        emu.stop()
    finally:
        stop_now.set()
        thread.join(TIMEOUT)
    return opened


@pytest.mark.skipif(not os.path.exists("/proc/net/tcp"), reason="reads Linux's /proc/net/tcp")
def test_connections_arriving_during_stop_are_all_closed(emu: Emulator) -> None:
    """A stop() racing a stream of new connections leaves none of them open."""
    for round_ in range(40):
        opened = _stop_while_connecting(emu)
        try:
            assert _server_side_sockets(emu.port) == [], round_
        finally:
            for sock in opened:
                sock.close()
        emu.start()
