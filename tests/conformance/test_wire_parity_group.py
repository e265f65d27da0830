"""Our client's group-dialect traffic against the official group clients', recorded by the emulator.

The same user steps are run, one client after another, against one emulator and under the same
subscriber's token, by ``@signalwire/js`` 4.0.0-beta.12, by ``@signalwire/client`` 0.0.1 and by
``signalwire_chat.ChatClient`` (the group dialect, its default): connect, join the group of another
subscriber's address, read its history, send (with and without ``metadata``/``details``), receive
the pushed event, answer a server ping, close. The recordings must agree on the subscriber/info
call, paths, bodies, headers, connect parameters, event acknowledgements and ping answers; every
deliberate difference is asserted as such and explained in tests/conformance/README.md ("group
dialect"). The last two tests show the clients exchanging live messages with ours both ways.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from signalwire_chat.emulator import Emulator, EmulatorSubscriber

from ._common import UUID4, WAIT, Entry, answers, is_ping_answer, wait_connected, wait_recorded
from .conftest import (
    CLIENT_001_DIR,
    JS_V4_DIR,
    OfficialClient,
    _require_installed,
    harness_config,
    obs_is,
)

pytestmark = pytest.mark.conformance

EXTRAS = {"metadata": {"lang": "en"}, "details": {"thread": "t1"}}
# Connect parameters only v4 sends: device binding (dpop_token) and subscriptions the chat
# namespace does not use; none of them is needed with a plain SAT (protocol-group.md §2).
V4_ONLY_CONNECT = {"agent", "dpop_token", "contexts", "eventing", "topics"}
SIDES = ("v4", "c001", "ours")
# A group id that is not one path segment unless it is percent-encoded (group ids are opaque).
AWKWARD_GROUP = "no/such?group#id"


class Recorded:
    """The three recordings (one emulator, Alice's token) and the ids to read them with."""

    def __init__(self, alice: EmulatorSubscriber, bob: EmulatorSubscriber, group_id: str) -> None:
        self.alice = alice.address_id
        self.bob = bob.address_id
        self.group_id = group_id
        self.sides: dict[str, list[Entry]] = {}
        self.ours_received: list[Any] = []

    def http(self, side: str) -> list[Entry]:
        return [e for e in self.sides[side] if e["kind"] == "http"]

    def calls(self, side: str, method: str, path: str) -> list[Entry]:
        return [e for e in self.http(side) if (e["method"], e["path"]) == (method, path)]

    def frames(self, side: str, kind: str) -> list[dict[str, Any]]:
        return [e["frame"] for e in self.sides[side] if e["kind"] == kind]

    @property
    def history_path(self) -> str:
        return f"/api/fabric/conversations/{self.group_id}/messages"


def _run_official(
    emu: Emulator, node: str, harness: Path, token: str, log: Path, steps: Callable[..., None]
) -> list[Entry]:
    """Run one official client through `steps(client, rec)` while the emulator records."""
    with emu.recording() as rec:
        client = OfficialClient(node, harness_config(emu, token), log, harness=harness)
        try:
            client.wait_ready()
            steps(client, rec)
            wait_recorded(rec, is_ping_answer(rec), "an answer to a server ping")
        finally:
            client.close()
        wait_recorded(rec, lambda e: e["kind"] == "ws_close", "the socket closing")
    strays = [o for o in client.observations if o.get("obs") == "unexpected_url"]
    assert not strays, f"the official client reached for unexpected hosts: {strays}"
    return rec.entries()


def _text_messages_hold(address_id: str, text: str) -> Callable[[dict[str, Any]], bool]:
    def match(obs: dict[str, Any]) -> bool:
        return (
            obs.get("obs") == "text_messages"
            and obs["address_id"] == address_id
            and text in [v["text"] for v in obs["values"]]
        )

    return match


def run_ours(emu: Emulator, token: str, bob_address: str, received: list[Any]) -> list[Entry]:
    from signalwire_chat import APIError, ChatClient, Group

    arrived = threading.Event()

    def on_message(message: Any) -> None:
        received.append(message)
        arrived.set()

    with emu.recording() as rec:
        with ChatClient(token, rest_url=emu.rest_url, relay_url=emu.relay_url) as ours:
            assert ours.dialect == "group"
            handle = ours.subscribe(bob_address, on_message)  # subscriber/info + join
            wait_connected(ours)
            ours.get_messages(bob_address)  # the default chat page (10)
            ours.send_message(bob_address, "parity")
            assert arrived.wait(WAIT), "our subscriber never received its own message"
            ours.send_message(bob_address, "extras", **EXTRAS)
            ours.get_messages(bob_address, page_size=3)
            ours.get_messages(bob_address, page_size=50)
            with pytest.raises(APIError):
                ours.get_messages(Group(id=AWKWARD_GROUP), page_size=3)
            wait_recorded(rec, is_ping_answer(rec), "an answer to a server ping")
            handle.cancel()
        wait_recorded(rec, lambda e: e["kind"] == "ws_close", "the socket closing")
    return rec.entries()


@pytest.fixture(scope="module")
def recorded(node_binary: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Recorded]:
    _require_installed(CLIENT_001_DIR, "@signalwire/client")
    _require_installed(JS_V4_DIR, "@signalwire/js")
    logs = tmp_path_factory.mktemp("parity-group")
    # A fast ping so that each run sees one within a fraction of a second.
    with Emulator(ping_interval=0.3) as emu:
        alice = emu.create_subscriber("alice@example.com", display_name="Alice")
        bob = emu.create_subscriber("bob@example.com", display_name="Bob")
        rec = Recorded(alice, bob, emu.group_id_for(alice.address_id, bob.address_id))

        def v4_steps(client: OfficialClient, _rec: Any) -> None:
            client.call("open_messages", address_id=bob.address_id)  # join + history
            mark = len(client.observations)
            assert client.call("send_text", address_id=bob.address_id, text="parity") == {
                "sent": True
            }
            # The collection grows only from the pushed event (v4 does not re-fetch).
            client.wait_for(
                _text_messages_hold(bob.address_id, "parity"), start=mark, what="the event"
            )

        def c001_steps(client: OfficialClient, _rec: Any) -> None:
            # First what our client sends ([dest, me]), then the destination only.
            joined = client.call(
                "join",
                from_address_id=alice.address_id,
                address_ids=[bob.address_id, alice.address_id],
            )
            again = client.call(
                "join", from_address_id=alice.address_id, address_ids=[bob.address_id]
            )
            assert joined["group_id"] == again["group_id"] == rec.group_id
            client.call("subscribe", group_id=rec.group_id)
            mark = len(client.observations)
            send = {"group_id": rec.group_id, "from_address_id": alice.address_id}
            client.call("send", text="parity", **send)
            client.wait_for(obs_is("message"), start=mark, what="the pushed event")
            client.call("send", text="extras", **send, **EXTRAS)
            client.call("get_messages", group_id=rec.group_id, page_size=3)
            refused = client.call_raw("get_messages", group_id=AWKWARD_GROUP, page_size=3)
            assert not refused["ok"]

        rec.sides["v4"] = _run_official(
            emu, node_binary, JS_V4_DIR / "harness.cjs", alice.token, logs / "v4.log", v4_steps
        )
        rec.sides["c001"] = _run_official(
            emu,
            node_binary,
            CLIENT_001_DIR / "harness.mjs",
            alice.token,
            logs / "c001.log",
            c001_steps,
        )
        rec.sides["ours"] = run_ours(emu, alice.token, bob.address_id, rec.ours_received)
        yield rec


# -- REST ------------------------------------------------------------------------------------------


def test_subscriber_info_call_matches_v4(recorded: Recorded) -> None:
    # Both look up "my address" first, the same way; 0.0.1 is given it by its caller.
    for side in ("v4", "ours"):
        first = recorded.http(side)[0]
        assert (first["method"], first["path"], first["query"], first["body"]) == (
            "GET",
            "/api/fabric/subscriber/info",
            {},
            None,
        ), side
        assert first["status"] == 200
        assert {k.lower(): v for k, v in first["headers"].items()}["accept"] == "application/json"
    assert len(recorded.calls("ours", "GET", "/api/fabric/subscriber/info")) == 1
    assert not recorded.calls("c001", "GET", "/api/fabric/subscriber/info")


def test_join_body_matches_v4(recorded: Recorded) -> None:
    (v4,) = recorded.calls("v4", "POST", "/api/fabric/conversations/join")
    (ours,) = recorded.calls("ours", "POST", "/api/fabric/conversations/join")
    expected = {
        "from_fabric_address_id": recorded.alice,
        "fabric_address_ids": [recorded.bob, recorded.alice],
    }
    assert v4["body"] == ours["body"] == expected
    assert v4["query"] == ours["query"] == {}
    assert v4["response"]["group_id"] == ours["response"]["group_id"] == recorded.group_id


def test_join_body_of_client_001_is_what_its_caller_passes(recorded: Recorded) -> None:
    full, dest_only = recorded.calls("c001", "POST", "/api/fabric/conversations/join")
    (ours,) = recorded.calls("ours", "POST", "/api/fabric/conversations/join")
    # Given what our client sends, 0.0.1 sends the same body ...
    assert full["body"] == ours["body"]
    # ... and given the destination alone, it sends that; the service's set is the same.
    assert dest_only["body"] == {
        "from_fabric_address_id": recorded.alice,
        "fabric_address_ids": [recorded.bob],
    }
    assert full["response"]["group_id"] == dest_only["response"]["group_id"] == recorded.group_id


def _sends(recorded: Recorded, side: str) -> list[dict[str, Any]]:
    entries = recorded.calls(side, "POST", "/api/fabric/messages")
    assert all(e["query"] == {} and e["status"] == 201 for e in entries), side
    return [e["body"] for e in entries]


def test_send_body_matches_v4(recorded: Recorded) -> None:
    (v4,) = _sends(recorded, "v4")
    ours = _sends(recorded, "ours")[0]
    assert (
        v4
        == ours
        == {
            "group_id": recorded.group_id,
            "from_fabric_address_id": recorded.alice,
            "text": "parity",
        }
    )


def test_send_body_of_client_001_spells_the_sender_from_address_id(recorded: Recorded) -> None:
    c001 = _sends(recorded, "c001")
    ours = _sends(recorded, "ours")
    assert len(c001) == len(ours) == 2

    def respelled(body: dict[str, Any]) -> dict[str, Any]:
        body = dict(body)
        body["from_fabric_address_id"] = body.pop("from_address_id")
        return body

    for theirs, mine in zip(c001, ours, strict=True):
        assert "from_fabric_address_id" not in theirs
        assert theirs["from_address_id"] == recorded.alice
        assert respelled(theirs) == mine
    # Both send metadata and details when given (v4 has no way to).
    assert {k: ours[1][k] for k in EXTRAS} == {k: c001[1][k] for k in EXTRAS} == EXTRAS


def test_history_path_is_the_group_and_the_raw_page_size_is_documented(
    recorded: Recorded,
) -> None:
    path = recorded.history_path
    (v4,) = recorded.calls("v4", "GET", path)
    (c001,) = recorded.calls("c001", "GET", path)
    anchor, *ours = recorded.calls("ours", "GET", path)
    # subscribe() reads where the subscription starts (the history's newest id): an
    # iteration's first raw page.
    assert anchor["query"] == {"page_size": ["100"]}
    assert [e["query"] for e in ours] == [
        {"page_size": ["100"]},  # get_messages(): chat page 10
        {"page_size": ["100"]},  # page_size=3
        {"page_size": ["201"]},  # page_size=50
    ]
    # v4 always asks for 100: the same as ours up to a chat page of 24 ...
    assert v4["query"] == {"page_size": ["100"]}
    assert v4["query"] == ours[0]["query"]
    # ... and 0.0.1 asks for the chat page itself; ours asks for a larger raw page
    # (max(100, 4 * page_size + 1), at most 1000) and still returns the chat page it was asked.
    assert c001["query"] == {"page_size": ["3"]}
    assert int(ours[1]["query"]["page_size"][0]) > 3
    assert all(e["status"] == 200 for e in (v4, c001, *ours))


def test_our_rest_calls_are_those_of_the_steps_and_no_more(recorded: Recorded) -> None:
    # One lookup of my address and one join for everything; no address lookups of senders
    # (v4 and 0.0.1 look each sender up for its display name; our messages carry the ids).
    assert [(e["method"], e["path"]) for e in recorded.http("ours")] == [
        ("GET", "/api/fabric/subscriber/info"),
        ("POST", "/api/fabric/conversations/join"),
        ("GET", recorded.history_path),  # subscribe(): where the subscription starts
        ("GET", recorded.history_path),
        ("POST", "/api/fabric/messages"),
        ("POST", "/api/fabric/messages"),
        ("GET", recorded.history_path),
        ("GET", recorded.history_path),
        ("GET", f"/api/fabric/conversations/{AWKWARD_GROUP}/messages"),
    ]
    assert ("GET", f"/api/fabric/addresses/{recorded.bob}") in [
        (e["method"], e["path"]) for e in recorded.http("v4")
    ]
    assert ("GET", f"/api/fabric/addresses/{recorded.alice}") in [
        (e["method"], e["path"]) for e in recorded.http("c001")
    ]


def test_group_id_is_one_path_segment_only_in_ours(recorded: Recorded) -> None:
    # 0.0.1 pastes the group id into the path: "/" and "?" change the request. (v4 does not
    # encode it either, protocol-group.md 1b H; its group ids come only from join answers.)
    c001 = recorded.http("c001")[-1]
    assert c001["path"] == "/api/fabric/conversations/no/such"
    assert c001["query"] == {"group": [""]}  # "#id/messages?page_size=3" became a fragment
    # Ours percent-encodes it: one segment (the recorded path is the decoded one), query intact.
    ours = recorded.http("ours")[-1]
    assert ours["path"] == f"/api/fabric/conversations/{AWKWARD_GROUP}/messages"
    assert ours["query"] == {"page_size": ["100"]}
    assert ours["status"] >= 400


def test_rest_headers(recorded: Recorded) -> None:
    accept = {}
    for side in SIDES:
        for entry in recorded.http(side):
            headers = {k.lower(): v for k, v in entry["headers"].items()}
            assert headers["authorization"] == "Bearer <redacted>", side
            if entry["body"] is None:
                assert "content-type" not in headers, (side, entry["path"])
            else:
                assert headers["content-type"] == "application/json", (side, entry["path"])
            accept.setdefault(side, set()).add(headers.get("accept"))
    # v4 and ours ask for JSON on every request; 0.0.1 takes anything (Node's fetch default).
    assert accept == {"v4": {"application/json"}, "ours": {"application/json"}, "c001": {"*/*"}}
    # The rest are transport defaults: Node's fetch, and ours.
    for side in SIDES:
        headers = {k.lower(): v for k, v in recorded.http(side)[0]["headers"].items()}
        if side == "ours":
            assert headers["user-agent"].startswith("signalwire-chat-python/")
            assert headers["accept-encoding"] == "identity"
        else:
            assert headers["user-agent"] == "node", side
            assert "gzip" in headers["accept-encoding"], side


# -- realtime --------------------------------------------------------------------------------------


def test_socket_open_matches(recorded: Recorded) -> None:
    for side in SIDES:
        (opened,) = [e for e in recorded.sides[side] if e["kind"] == "ws_open"]
        headers = {k.lower() for k in opened["headers"]}
        assert opened["path"] == "/", side
        assert "sec-websocket-protocol" not in headers, side
        assert "authorization" not in headers, side
        offered = {k.lower(): v for k, v in opened["headers"].items()}.get(
            "sec-websocket-extensions", ""
        )
        # The official clients (the ws package) offer compression; ours offers nothing.
        assert offered.startswith("permessage-deflate") is (side != "ours"), (side, offered)


def test_connect_params_match_apart_from_v4s_additions(recorded: Recorded) -> None:
    connects = {side: recorded.frames(side, "ws_recv")[0] for side in SIDES}
    for side, frame in connects.items():
        assert frame["jsonrpc"] == "2.0", side
        assert frame["method"] == "signalwire.connect", side
        assert UUID4.match(frame["id"]), (side, frame["id"])
    v4, c001, ours = (connects[side]["params"] for side in SIDES)
    assert v4["agent"] == "signalwire-js/4.0.0"
    assert c001["agent"] == "@signalwire/js/client/0.0.1"
    assert ours["agent"].startswith("signalwire-chat-python/")
    assert isinstance(v4["dpop_token"], str)
    assert (v4["contexts"], v4["eventing"], v4["topics"]) == ([], [], [])

    def without(params: dict[str, Any], keys: set[str]) -> dict[str, Any]:
        return {k: v for k, v in params.items() if k not in keys}

    assert without(ours, {"agent"}) == without(v4, V4_ONLY_CONNECT) == without(c001, {"agent"})
    assert without(ours, {"agent"}) == {
        "version": {"major": 4, "minor": 0, "revision": 0},
        "event_acks": True,
        "authentication": {"jwt_token": "<redacted>"},
    }


def test_event_acknowledgements_match(recorded: Recorded) -> None:
    for side in SIDES:
        pairs = answers(recorded, side, "signalwire.event")
        types = [event["params"]["event_type"] for event, _ in pairs]
        assert types[0] == "signalwire.authorization.state", side
        assert "conversation.message" in types, side
        for event, answer in pairs:
            assert answer == {"jsonrpc": "2.0", "id": event["id"], "result": {}}, side
        # Every pushed message names this group and the session's protocol.
        for event, _ in pairs:
            if event["params"]["event_type"] == "conversation.message":
                assert event["params"]["params"]["group_id"] == recorded.group_id
    # Ours delivered its own message once, as its author.
    (mine,) = [m for m in recorded.ours_received if m.text == "parity"]
    assert (mine.group_id, mine.from_address_id, mine.is_author) == (
        recorded.group_id,
        recorded.alice,
        True,
    )


def test_ping_answers(recorded: Recorded) -> None:
    for side in SIDES:
        pairs = [(p, a) for p, a in answers(recorded, side, "signalwire.ping") if a is not None]
        assert pairs, side  # the socket may close before the last ping is answered
        for ping, answer in pairs:
            assert set(answer) == {"jsonrpc", "id", "result"}, side
            assert (answer["jsonrpc"], answer["id"]) == ("2.0", ping["id"]), side
            assert set(answer["result"]) == {"timestamp"}, side
            stamp = answer["result"]["timestamp"]
            assert isinstance(stamp, (int, float)), side
            assert not isinstance(stamp, bool), side
            if side != "v4":
                # 0.0.1 and ours echo the server's timestamp, as 3.28 does.
                assert stamp == ping["params"]["timestamp"], side
    # v4 answers with its own clock (milliseconds), not an echo; the emulator accepts both.
    v4 = [(p, a) for p, a in answers(recorded, "v4", "signalwire.ping") if a is not None]
    assert any(a["result"]["timestamp"] != p["params"]["timestamp"] for p, a in v4)


def test_requests_of_the_client_after_connect(recorded: Recorded) -> None:
    # Neither 0.0.1 nor ours sends a request of its own after connect (subscriptions are
    # client-side filters); v4 announces presence with subscriber.online, which chat does not need.
    sent = {
        side: [f["method"] for f in recorded.frames(side, "ws_recv") if "method" in f]
        for side in SIDES
    }
    assert sent["ours"] == sent["c001"] == ["signalwire.connect"]
    assert sent["v4"] == ["signalwire.connect", "subscriber.online"]
    # v4 opens the socket before it joins; ours joins in subscribe() and reads where the
    # subscription starts, before the socket opens.
    kinds = {
        side: [e["kind"] for e in recorded.sides[side] if e["kind"] in ("http", "ws_open")]
        for side in ("v4", "ours")
    }
    assert kinds["v4"][:2] == ["http", "ws_open"]  # subscriber/info, then the socket
    # subscriber/info, join, the history's newest id, then the socket
    assert kinds["ours"][:4] == ["http", "http", "http", "ws_open"]


# -- live messages between the official clients and ours -------------------------------------------


class Inbox:
    """What our subscriber received, with a deadline-bound wait."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self.messages: list[Any] = []

    def __call__(self, message: Any) -> None:
        with self._cond:
            self.messages.append(message)
            self._cond.notify_all()

    def wait_text(self, text: str) -> Any:
        with self._cond:
            found = self._cond.wait_for(
                lambda: [m for m in self.messages if m.text == text], timeout=WAIT
            )
            assert found, f"our subscriber never received {text!r}; got {self.messages}"
            (message,) = found
            return message


def test_client_001_and_ours_exchange_live_messages(
    signalwire_emulator: Any, client_001: Any
) -> None:
    emu = signalwire_emulator
    alice = emu.create_subscriber("alice@example.com", display_name="Alice")
    bob = emu.create_subscriber("bob@example.com", display_name="Bob")
    theirs: OfficialClient = client_001(emu, bob.token)
    group_id = theirs.call("join", from_address_id=bob.address_id, address_ids=[alice.address_id])[
        "group_id"
    ]
    theirs.call("subscribe", group_id=group_id)
    inbox = Inbox()
    with emu.client_for(alice) as ours, ours.subscribe(bob.address_id, inbox):
        wait_connected(ours)
        mark = len(theirs.observations)
        ours.send_message(bob.address_id, "from python", **EXTRAS)
        _, obs = theirs.wait_for(obs_is("message"), start=mark, what="our message")
        message = obs["message"]
        assert (message["text"], message["group_id"]) == ("from python", group_id)
        assert message["from_address_id"] == alice.address_id
        assert message["user_name"] == "Alice"  # 0.0.1 looked our address up
        assert (message["metadata"], message["details"]) == (
            EXTRAS["metadata"],
            EXTRAS["details"],
        )

        sent = theirs.call(
            "send", group_id=group_id, from_address_id=bob.address_id, text="from 0.0.1"
        )
        received = inbox.wait_text("from 0.0.1")
        assert received.id == sent["id"]
        assert (received.group_id, received.from_address_id) == (group_id, bob.address_id)
        assert received.is_author is False
        assert inbox.wait_text("from python").is_author is True
    assert [m.text for m in inbox.messages] == ["from python", "from 0.0.1"]


def test_js_v4_and_ours_exchange_live_messages(signalwire_emulator: Any, js_v4: Any) -> None:
    emu = signalwire_emulator
    alice = emu.create_subscriber("alice@example.com", display_name="Alice")
    bob = emu.create_subscriber("bob@example.com", display_name="Bob")
    theirs: OfficialClient = js_v4(emu, bob.token)
    theirs.call("open_messages", address_id=alice.address_id)  # join [alice, bob] + history
    group_id = emu.group_id_for(alice.address_id, bob.address_id)
    inbox = Inbox()
    with emu.client_for(alice) as ours, ours.subscribe(bob.address_id, inbox):
        wait_connected(ours)
        mark = len(theirs.observations)
        sent = ours.send_message(bob.address_id, "from python")
        _, obs = theirs.wait_for(
            _text_messages_hold(alice.address_id, "from python"), start=mark, what="ours"
        )
        (value,) = [v for v in obs["values"] if v["text"] == "from python"]
        assert sent.message is not None
        assert value["id"] == sent.message.id

        assert theirs.call("send_text", address_id=alice.address_id, text="from v4") == {
            "sent": True
        }
        received = inbox.wait_text("from v4")
        assert (received.group_id, received.from_address_id) == (group_id, bob.address_id)
        assert received.is_author is False
    assert [m.text for m in inbox.messages] == ["from python", "from v4"]
