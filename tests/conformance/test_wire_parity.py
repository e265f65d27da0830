"""Our client's wire traffic against the official client's, both recorded by the emulator.

The same user steps (connect, subscribe, join, send twice, one page of history, one pushed event,
one server ping) are run once with the official @signalwire/js 3.28.0 client and once with
signalwire_chat.ChatClient, under the same subscriber's token. The recordings must agree on paths,
query parameters, bodies, connect parameters (apart from `agent` and request ids), event
acknowledgements and ping answers. Deliberate differences are asserted as such and explained in
tests/conformance/README.md.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from signalwire_chat.emulator import Emulator

from ._common import (
    UUID4,
    WAIT,
    Entry,
    answers,
    is_ping_answer,
    wait_connected,
    wait_recorded,
)
from .conftest import OfficialClient, harness_config, obs_is

pytestmark = pytest.mark.conformance

EXTRAS = {"metadata": {"lang": "en"}, "details": {"thread": "t1"}}
# An address id that is not one path segment unless it is percent-encoded.
AWKWARD_ID = "no/such?address#id"


class Recorded:
    """The two recordings and what the test needs to read them."""

    def __init__(self, room_id: str, official: list[Entry], ours: list[Entry]) -> None:
        self.room_id = room_id
        self.official = official
        # Our subscribe() first reads the newest message id of the room's history (the anchor
        # of its catch-up reads; the official client has none): compared on its own below.
        first_http = next(i for i, e in enumerate(ours) if e["kind"] == "http")
        self.anchor_read = ours[first_http]
        self.ours = ours[:first_http] + ours[first_http + 1 :]

    def http(self, side: str) -> list[Entry]:
        return [e for e in getattr(self, side) if e["kind"] == "http"]

    def frames(self, side: str, kind: str) -> list[dict[str, Any]]:
        return [e["frame"] for e in getattr(self, side) if e["kind"] == kind]


def run_official(emu: Emulator, token: str, room_id: str, node: str, log: Path) -> list[Entry]:
    with emu.recording() as rec:
        client = OfficialClient(node, harness_config(emu, token), log)
        try:
            client.wait_ready()
            client.call("subscribe", address_id=room_id)
            client.call("join", address_id=room_id)
            mark = len(client.observations)
            client.call("send", address_id=room_id, text="parity")
            client.wait_for(obs_is("message"), start=mark, what="the pushed event")
            client.call("send", address_id=room_id, text="extras", **EXTRAS)
            client.call("get_messages", address_id=room_id, page_size=3)
            refused = client.call_raw("get_messages", address_id=AWKWARD_ID, page_size=3)
            assert not refused["ok"]
            wait_recorded(rec, is_ping_answer(rec), "an answer to a server ping")
        finally:
            client.close()
        wait_recorded(rec, lambda e: e["kind"] == "ws_close", "the socket closing")
    return rec.entries()


def run_ours(emu: Emulator, token: str, room_id: str) -> list[Entry]:
    from signalwire_chat import ChatClient, InvalidArgumentError

    received = threading.Event()
    with emu.recording() as rec:
        with ChatClient(
            token, rest_url=emu.rest_url, relay_url=emu.relay_url, dialect="address"
        ) as ours:
            handle = ours.subscribe(room_id, lambda message: received.set())
            # subscribe() returns before the socket is up; the official SignalWire() resolves
            # only once connected. Wait for the same point before sending.
            wait_connected(ours)
            ours.join(room_id)
            ours.send_message(room_id, "parity")
            assert received.wait(WAIT), "our subscriber never received its own message"
            ours.send_message(room_id, "extras", **EXTRAS)
            ours.get_messages(room_id, page_size=3)
            with pytest.raises(InvalidArgumentError):  # refused before any request
                ours.get_messages(AWKWARD_ID, page_size=3)
            wait_recorded(rec, is_ping_answer(rec), "an answer to a server ping")
            handle.cancel()
        wait_recorded(rec, lambda e: e["kind"] == "ws_close", "the socket closing")
    return rec.entries()


@pytest.fixture(scope="module")
def recorded(node_binary: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Recorded]:
    # A fast ping so that each run sees one within a fraction of a second.
    with Emulator(ping_interval=0.3) as emu:
        alice = emu.create_subscriber("alice@example.com")
        room = emu.create_room("parity")
        log = tmp_path_factory.mktemp("parity") / "node.log"
        official = run_official(emu, alice.token, room.id, node_binary, log)
        ours = run_ours(emu, alice.token, room.id)
        yield Recorded(room.id, official, ours)


def rest_calls(recorded: Recorded, side: str) -> list[tuple[str, str, dict[str, Any], Any]]:
    calls = []
    for entry in recorded.http(side):
        path = entry["path"].replace(recorded.room_id, "{address_id}")
        body = entry["body"]
        if isinstance(body, dict) and body.get("conversation_id") == recorded.room_id:
            body = {**body, "conversation_id": "{address_id}"}
        calls.append((entry["method"], path, entry["query"], body))
    return calls


def test_rest_paths_and_bodies_match(recorded: Recorded) -> None:
    official = rest_calls(recorded, "official")
    ours = rest_calls(recorded, "ours")
    assert [(m, p) for m, p, _, _ in official[:4]] == [
        ("POST", "/api/fabric/conversations/join"),
        ("POST", "/api/fabric/messages"),
        ("POST", "/api/fabric/messages"),
        ("GET", "/api/fabric/conversations/{address_id}/messages"),
    ]
    assert [(m, p) for m, p, _, _ in ours[:4]] == [(m, p) for m, p, _, _ in official[:4]]
    join, send = official[:2]
    assert join[3] == {"conversation_id": "{address_id}"}
    assert send[3] == {"conversation_id": "{address_id}", "text": "parity"}
    # Same bodies for the same calls without extras.
    assert ours[0][3] == join[3]
    assert ours[1][3] == send[3]
    # Join and send carry no query string in either client.
    assert [q for _, _, q, _ in official[:3]] == [{}, {}, {}]
    assert [q for _, _, q, _ in ours[:3]] == [{}, {}, {}]


def test_our_subscribe_reads_where_the_history_stands_once(recorded: Recorded) -> None:
    read = recorded.anchor_read
    assert read["method"] == "GET"
    assert read["path"] == f"/api/fabric/conversations/{recorded.room_id}/messages"


def test_send_extras_are_our_addition(recorded: Recorded) -> None:
    official_extras = rest_calls(recorded, "official")[2][3]
    ours_extras = rest_calls(recorded, "ours")[2][3]
    # 3.28.0 drops metadata and details; we send what the reference page documents.
    assert official_extras == {"conversation_id": "{address_id}", "text": "extras"}
    assert ours_extras == {"conversation_id": "{address_id}", "text": "extras", **EXTRAS}


def test_history_query_differs_only_in_raw_page_size(recorded: Recorded) -> None:
    official_query = rest_calls(recorded, "official")[3][2]
    ours_query = rest_calls(recorded, "ours")[3][2]
    assert official_query == {"page_size": ["3"]}
    # Ours asks for larger raw pages (documented): same parameter, never a smaller value.
    assert set(ours_query) == {"page_size"}
    assert int(ours_query["page_size"][0]) >= 3


def test_an_id_that_is_no_address_id_changes_the_request_only_in_theirs(
    recorded: Recorded,
) -> None:
    # The official client pastes the id into the path: "/" and "?" change the request.
    official = recorded.http("official")[4]
    assert official["path"] == "/api/fabric/conversations/no/such"
    assert official["query"] == {"address": [""]}  # "#id/messages?page_size=3" became a fragment
    # Ours refuses it before any request (address ids are UUIDs); ids it does send, such as
    # a group's, are percent-encoded into one path segment (tests/unit/test_http.py).
    assert not [e for e in recorded.http("ours") if "no/such" in e["path"]]
    assert len(recorded.http("ours")) == len(recorded.http("official")) - 1


def test_rest_auth_and_content_type_headers_match(recorded: Recorded) -> None:
    for side in ("official", "ours"):
        for entry in recorded.http(side):
            headers = {k.lower(): v for k, v in entry["headers"].items()}
            assert headers["authorization"] == "Bearer <redacted>", side
            if entry["body"] is None:
                assert "content-type" not in headers, (side, entry["path"])
            else:
                assert headers["content-type"] == "application/json", (side, entry["path"])


def test_socket_open_matches(recorded: Recorded) -> None:
    for side in ("official", "ours"):
        (opened,) = [e for e in getattr(recorded, side) if e["kind"] == "ws_open"]
        headers = {k.lower() for k in opened["headers"]}
        assert opened["path"] == "/", side
        assert "sec-websocket-protocol" not in headers, side
        assert "authorization" not in headers, side


def test_connect_params_match_apart_from_agent(recorded: Recorded) -> None:
    official = recorded.frames("official", "ws_recv")[0]
    ours = recorded.frames("ours", "ws_recv")[0]
    for frame in (official, ours):
        assert frame["jsonrpc"] == "2.0"
        assert frame["method"] == "signalwire.connect"
        assert UUID4.match(frame["id"]), frame["id"]
    assert official["params"]["agent"] == "@signalwire/js/browser/3.28.0"
    assert ours["params"]["agent"].startswith("signalwire-chat-python/")

    def without_agent(params: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in params.items() if k != "agent"}

    assert without_agent(ours["params"]) == without_agent(official["params"])
    assert set(ours) == set(official)


def test_event_acknowledgements_match(recorded: Recorded) -> None:
    shapes = {}
    for side in ("official", "ours"):
        pairs = answers(recorded, side, "signalwire.event")
        event_types = {event["params"]["event_type"] for event, _ in pairs}
        assert {"signalwire.authorization.state", "conversation.message"} <= event_types, side
        for event, answer in pairs:
            assert answer == {"jsonrpc": "2.0", "id": event["id"], "result": {}}, side
        shapes[side] = sorted(answer.keys() for _, answer in pairs if answer is not None)
    assert shapes["ours"][0] == shapes["official"][0]


def test_ping_answers_match(recorded: Recorded) -> None:
    for side in ("official", "ours"):
        answered = [(ping, answer) for ping, answer in answers(recorded, side, "signalwire.ping")]
        assert any(answer is not None for _, answer in answered), side
        for ping, answer in answered:
            if answer is None:  # the socket closed before this one could be answered
                continue
            assert answer == {
                "jsonrpc": "2.0",
                "id": ping["id"],
                "result": {"timestamp": ping["params"]["timestamp"]},
            }, side


def test_client_sends_nothing_but_answers_after_connect(recorded: Recorded) -> None:
    # Neither client sends a request of its own after connect in this run (no subscribe RPC,
    # no goodbye on close): subscriptions are client-side filters.
    for side in ("official", "ours"):
        requests = [f["method"] for f in recorded.frames(side, "ws_recv") if "method" in f]
        assert requests == ["signalwire.connect"], side


def test_disconnect_answers_match(emulator_factory: Any, official_client: Any) -> None:
    """When the SAT expires the server sends signalwire.disconnect; both answer alike."""
    from signalwire_chat import ChatClient

    emu = emulator_factory(token_ttl=3.0)
    alice = emu.create_subscriber("alice@example.com")
    room = emu.create_room("expiring")
    with emu.recording() as rec:
        client: OfficialClient = official_client(emu, alice.token)
        with ChatClient(
            alice.token, rest_url=emu.rest_url, relay_url=emu.relay_url, dialect="address"
        ) as ours:
            handle = ours.subscribe(room.id, lambda message: None)
            wait_connected(ours)

            def answered(conn: int) -> Callable[[Entry], bool]:
                def match(entry: Entry) -> bool:
                    if entry["kind"] != "ws_recv" or entry["conn"] != conn:
                        return False
                    asked = {
                        e["frame"]["id"]
                        for e in rec.entries("ws_send")
                        if e["conn"] == conn and e["frame"].get("method") == "signalwire.disconnect"
                    }
                    return entry["frame"].get("id") in asked

                return match

            conns = sorted({e["conn"] for e in rec.entries("ws_open")})
            assert len(conns) == 2
            answers = [wait_recorded(rec, answered(c), f"an answer on socket {c}") for c in conns]
            handle.cancel()
        # The server closed the socket: the SDK's disconnect() would wait for nothing.
        client.close(disconnect=False)
    for answer in answers:
        assert set(answer["frame"]) == {"jsonrpc", "id", "result"}
        assert answer["frame"]["result"] == {}
