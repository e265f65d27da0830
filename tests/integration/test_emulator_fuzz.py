"""Fuzzing the emulator over loopback (hypothesis): REST bodies, paths, queries, headers, frames.

Whatever arrives, the emulator answers below 500 (a fabric error body for a 4xx under
``/api/``), the relay answers on the websocket (never an HTTP page written into it), no
socket is left open on the server side, and it still serves normally afterwards. A few
hundred examples per test keep each under a minute on a loaded machine.
"""

from __future__ import annotations

import base64
import json
import os
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
import requests
import websocket
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_emulator_hardening import _server_side_sockets

from signalwire_chat.emulator import Emulator, EmulatorAddress, EmulatorSubscriber

TIMEOUT = 10.0
# aiohttp refuses a request line of more than 8,190 bytes itself, with a plain-text 400,
# before the emulator sees the request (how it counts varies: anything near that length).
LONG_URL = 4000
FUZZ = settings(
    max_examples=int(os.environ.get("EMU_FUZZ_EXAMPLES", "150")),
    deadline=None,  # a loaded machine; the bound is the example count
    database=None,  # no .hypothesis directory in the work tree
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


class World:
    """One emulator with a subscriber, a room and a group, shared by a test's examples."""

    def __init__(self, emu: Emulator) -> None:
        self.emu = emu
        self.alice: EmulatorSubscriber = emu.create_subscriber("alice@example.com")
        self.bob: EmulatorSubscriber = emu.create_subscriber("bob@example.com")
        self.room: EmulatorAddress = emu.create_room("fuzz")
        self.group = emu.join_group(self.alice, [self.bob.address_id])
        emu.send_as(self.alice, self.room.id, "hello")
        self.session = requests.Session()

    def ids(self) -> list[str]:
        return [self.alice.address_id, self.bob.address_id, self.room.id, self.group]


@pytest.fixture
def world(emulator_factory: Any) -> Iterator[World]:
    # A relay socket that never authenticates is closed after auth_timeout.
    emu = emulator_factory(auth_timeout=1.0)
    made = World(emu)
    yield made
    made.session.close()
    # No server-side socket outlives its client, and the emulator still serves.
    _wait_no_server_sockets(emu)
    info = requests.get(
        f"{emu.rest_url}/api/fabric/subscriber/info",
        headers={"Authorization": f"Bearer {made.alice.token}"},
        timeout=TIMEOUT,
    )
    assert info.status_code == 200


def _wait_no_server_sockets(emu: Emulator) -> None:
    if not os.path.exists("/proc/net/tcp"):
        return
    deadline = time.monotonic() + TIMEOUT
    while _server_side_sockets(emu.port) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert _server_side_sockets(emu.port) == []


# -- strategies -----------------------------------------------------------------------------

TEXT = st.text(st.characters(codec="utf-8"), max_size=40)
JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=False, allow_infinity=False)
    | TEXT,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(TEXT, children, max_size=4),
    max_leaves=12,
)
FIELDS = (
    "conversation_id",
    "group_id",
    "text",
    "metadata",
    "details",
    "from_fabric_address_id",
    "from_address_id",
    "fabric_address_ids",
    "reference",
    "refresh_token",
    "name",
    "display_name",
    "expire_at",
    "scope",
)
ROUTES = (
    "/",
    "/api/fabric/subscribers/tokens",
    "/api/fabric/subscribers/tokens/refresh",
    "/api/fabric/resources/video_rooms",
    "/api/fabric/subscriber/info",
    "/api/fabric/addresses",
    "/api/fabric/addresses/{id}",
    "/api/fabric/conversations",
    "/api/fabric/conversations/join",
    "/api/fabric/conversations/{id}/messages",
    "/api/fabric/messages",
    "/api/{text}",
    "/{text}",
)
# Printable ASCII without leading or trailing blanks (requests refuses those itself).
HEADER_VALUE = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=30).map(
    str.strip
)
QUERY_KEYS = ("page_size", "page_token", "type", "sort_by", "sort_order", "display_name", "name")


@st.composite
def rest_requests(draw: st.DrawFn, world: World) -> dict[str, Any]:
    route = draw(st.sampled_from(ROUTES))
    segment = draw(st.sampled_from(world.ids()) | TEXT)
    path = route.replace("{id}", quote(segment, safe="")).replace("{text}", quote(segment))
    query = draw(
        st.dictionaries(
            st.sampled_from(QUERY_KEYS) | TEXT,
            TEXT | st.integers(min_value=-(10**6), max_value=10**4000).map(str),
            max_size=3,
        )
    )
    if draw(st.booleans()):
        token = base64.urlsafe_b64encode(json.dumps(draw(JSON)).encode()).decode().rstrip("=")
        query["page_token"] = token
    auth = draw(
        st.sampled_from(["bearer", "basic", "none", "junk", "expired"]),
    )
    headers = {
        "bearer": {"Authorization": f"Bearer {world.alice.token}"},
        "basic": {
            "Authorization": "Basic "
            + base64.b64encode(f"{world.emu.project_id}:{world.emu.api_token}".encode()).decode()
        },
        "none": {},
        # Stripped like every header value: requests itself refuses leading or trailing blanks.
        "junk": {"Authorization": draw(HEADER_VALUE)},
        "expired": {"Authorization": f"Bearer {world.emu.mint_token(world.alice, ttl=-10)}"},
    }[auth]
    headers["Content-Type"] = draw(
        st.sampled_from(["application/json", "text/plain", "application/json; charset=latin-1", ""])
    )
    for name, value in draw(
        st.dictionaries(
            st.sampled_from(["X-Fuzz", "Accept", "Accept-Encoding", "X-Request-Id", "Origin"]),
            HEADER_VALUE,
            max_size=2,
        )
    ).items():
        headers[name] = value
    # Each answer must end its connection: a server-side socket left open afterwards is
    # then the emulator's leak, whatever the client does with its own end.
    headers["Connection"] = "close"
    kind = draw(st.sampled_from(["none", "json", "fields", "bytes"]))
    body: bytes | None
    if kind == "none":
        body = None
    elif kind == "json":
        body = json.dumps(draw(JSON)).encode()
    elif kind == "fields":
        fields = draw(st.dictionaries(st.sampled_from(FIELDS), JSON | st.sampled_from(world.ids())))
        body = json.dumps(fields).encode()
    else:
        body = draw(st.binary(max_size=200))
    method = draw(st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"]))
    return {"method": method, "path": path, "query": query, "headers": headers, "body": body}


# -- REST ------------------------------------------------------------------------------------


@FUZZ
@given(data=st.data())
def test_any_rest_request_gets_an_answer_below_500(world: World, data: st.DataObject) -> None:
    request = data.draw(rest_requests(world))
    response = world.session.request(
        request["method"],
        world.emu.rest_url + request["path"],
        params=request["query"],
        headers=request["headers"],
        data=request["body"],
        timeout=TIMEOUT,
        allow_redirects=False,
    )
    assert response.status_code < 500, (request, response.text[:300])
    plain = response.headers.get("Content-Type", "").startswith("text/plain")
    if response.status_code == 400 and plain and len(response.request.path_url) > LONG_URL:
        return  # aiohttp's own request-line limit answered, before the emulator
    fabric_path = request["path"].startswith("/api/")
    if response.status_code >= 400 and fabric_path and request["method"] != "HEAD":
        (error,) = response.json()["errors"]
        assert error["message"]
        assert error["type"]


# -- relay -----------------------------------------------------------------------------------

RPC_METHODS = (
    "signalwire.connect",
    "signalwire.ping",
    "signalwire.reauthenticate",
    "signalwire.event",
    "subscriber.online",
    "subscriber.offline",
    "conversation.subscribe",
)


@st.composite
def relay_frames(draw: st.DrawFn) -> str:
    kind = draw(st.sampled_from(["text", "json", "rpc", "answer", "deep"]))
    if kind == "text":
        return str(draw(TEXT))
    if kind == "json":
        return json.dumps(draw(JSON))
    if kind == "deep":
        depth = draw(st.integers(min_value=500, max_value=20_000))
        return draw(st.sampled_from(["[", '{"a":'])) * depth
    frame: dict[str, Any] = {
        "jsonrpc": draw(st.sampled_from(["2.0", "1.0", None])),
        "id": draw(st.none() | st.integers() | TEXT | st.booleans()),
    }
    if kind == "rpc":
        frame["method"] = draw(st.sampled_from(RPC_METHODS) | TEXT)
        frame["params"] = draw(JSON)
    else:
        frame[draw(st.sampled_from(["result", "error"]))] = draw(JSON)
    return json.dumps(frame)


def _answer(ws: websocket.WebSocket, rid: str) -> dict[str, Any]:
    end = time.monotonic() + TIMEOUT
    while time.monotonic() < end:
        ws.settimeout(max(0.05, end - time.monotonic()))
        frame = json.loads(ws.recv())
        if frame.get("method") in ("signalwire.event", "signalwire.ping"):
            ws.send(json.dumps({"jsonrpc": "2.0", "id": frame["id"], "result": {}}))
        elif frame.get("id") == rid:
            return dict(frame)
    raise AssertionError(f"no answer to {rid} in time")


@FUZZ
@given(frames=st.lists(relay_frames(), min_size=1, max_size=4))
def test_any_relay_frames_are_answered_on_the_websocket(world: World, frames: list[str]) -> None:
    ws = websocket.create_connection(world.emu.relay_url, timeout=TIMEOUT)
    try:
        connect = {
            "jsonrpc": "2.0",
            "id": "connect",
            "method": "signalwire.connect",
            "params": {"event_acks": True, "authentication": {"jwt_token": world.alice.token}},
        }
        ws.send(json.dumps(connect))
        assert "result" in _answer(ws, "connect")
        for frame in frames:
            ws.send(frame)
        # Whatever came before, the socket is still a websocket served by the relay.
        ws.send(json.dumps({"jsonrpc": "2.0", "id": "probe", "method": "signalwire.ping"}))
        assert "result" in _answer(ws, "probe")
    finally:
        ws.close()
        ws.shutdown()
    assert world.emu.hub.open_sockets <= 1  # this one, until the server sees its close
