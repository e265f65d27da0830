"""The emulator's group dialect (protocol-group.md §2) over loopback HTTP and websockets.

REST is driven with requests and the relay with raw JSON-RPC frames (websocket-client),
never with the client library, so these tests pin the emulator's own contract.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import websocket

from signalwire_chat.emulator import Emulator, EmulatorSubscriber
from signalwire_chat.emulator._store import Store

TIMEOUT = 10.0
WAIT = 5.0
JOIN = "/api/fabric/conversations/join"
SEND = "/api/fabric/messages"
NOT_MINE = "from_fabric_address_id_does_not_match_subscriber"
GROUP_MESSAGE_FIELDS = {
    "id",
    "type",
    "subtype",
    "kind",
    "hidden",
    "group_id",
    "from_fabric_address_id",
    "from_address_id",
    "ts",
    "metadata",
    "details",
    "text",
    "conversation_name",
    "user_name",
}


class Api:
    """requests, as one subscriber of one emulator."""

    def __init__(self, emu: Emulator, who: EmulatorSubscriber) -> None:
        self.emu = emu
        self.who = who
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {who.token}"

    def get(self, path: str, **params: Any) -> requests.Response:
        url = path if path.startswith("http") else self.emu.rest_url + path
        return self.session.get(url, params=params, timeout=TIMEOUT)

    def post(self, path: str, body: Any) -> requests.Response:
        return self.session.post(self.emu.rest_url + path, json=body, timeout=TIMEOUT)

    def join(self, *others: str, include_me: bool = True) -> requests.Response:
        ids = [*others, self.who.address_id] if include_me else list(others)
        return self.post(
            JOIN, {"from_fabric_address_id": self.who.address_id, "fabric_address_ids": ids}
        )

    def group(self, *others: str) -> str:
        reply = self.join(*others)
        assert reply.status_code == 200, reply.text
        return str(reply.json()["group_id"])

    def send(self, group_id: str, text: str, **extra: Any) -> requests.Response:
        body = {"group_id": group_id, "from_fabric_address_id": self.who.address_id, "text": text}
        return self.post(SEND, {**body, **extra})

    def history(self, key: str, **params: Any) -> requests.Response:
        return self.get(f"/api/fabric/conversations/{key}/messages", **params)


def error_of(reply: requests.Response, status: int) -> dict[str, Any]:
    assert reply.status_code == status, reply.text
    (error,) = reply.json()["errors"]
    return dict(error)


def texts(reply: requests.Response) -> list[str]:
    assert reply.status_code == 200, reply.text
    return [m["text"] for m in reply.json()["data"]]


@pytest.fixture
def emu(emulator_factory: Any) -> Emulator:
    return emulator_factory(ping_interval=None)  # type: ignore[no-any-return]


@pytest.fixture
def people(emu: Emulator) -> dict[str, EmulatorSubscriber]:
    return {
        name: emu.create_subscriber(f"{name}@example.com", display_name=name.title())
        for name in ("alice", "bob", "carol")
    }


@pytest.fixture
def apis(emu: Emulator, people: dict[str, EmulatorSubscriber]) -> Iterator[dict[str, Api]]:
    made = {name: Api(emu, who) for name, who in people.items()}
    yield made
    for api in made.values():
        api.session.close()


# -- join -----------------------------------------------------------------------------------------


def test_join_gives_one_group_per_set_whoever_joins_and_however_it_is_spelled(
    emu: Emulator, people: dict[str, EmulatorSubscriber], apis: dict[str, Api]
) -> None:
    alice, bob = people["alice"], people["bob"]
    reply = apis["alice"].join(bob.address_id)
    assert reply.status_code == 200
    body = reply.json()
    assert set(body) == {"group_id", "fabric_address_ids", "from_fabric_address_id"}
    assert body["from_fabric_address_id"] == alice.address_id
    assert sorted(body["fabric_address_ids"]) == sorted([alice.address_id, bob.address_id])
    group_id = body["group_id"]
    # v4 sends [dest, me]; 0.0.1 may send [dest] only; duplicates and order do not matter.
    assert apis["alice"].group(bob.address_id) == group_id
    assert apis["alice"].join(bob.address_id, include_me=False).json()["group_id"] == group_id
    assert apis["alice"].join(bob.address_id, bob.address_id).json()["group_id"] == group_id
    assert apis["bob"].group(alice.address_id) == group_id
    assert emu.group_id_for(bob.address_id, alice.address_id) == group_id
    assert emu.group_id_for(alice.address_id, bob.address_id, bob.address_id) == group_id
    # A different set is a different group.
    assert apis["alice"].group(people["carol"].address_id) != group_id
    three = apis["alice"].group(bob.address_id, people["carol"].address_id)
    assert three not in (group_id, apis["alice"].group(people["carol"].address_id))


def test_join_refusals(
    emu: Emulator, people: dict[str, EmulatorSubscriber], apis: dict[str, Api]
) -> None:
    alice, bob = people["alice"], people["bob"]
    api = apis["alice"]
    # A self-join: the set has one address.
    error = error_of(api.join(alice.address_id), 422)
    assert error["attribute"] == "fabric_address_ids"
    error = error_of(api.post(JOIN, {"from_fabric_address_id": alice.address_id}), 422)
    assert (error["code"], error["attribute"]) == (
        "missing_required_parameter",
        "fabric_address_ids",
    )
    error = error_of(api.post(JOIN, {"fabric_address_ids": [bob.address_id]}), 422)
    assert (error["code"], error["attribute"]) == (
        "missing_required_parameter",
        "from_fabric_address_id",
    )
    for bad_ids in ([], bob.address_id, [7], [""], [None], [{"id": bob.address_id}]):
        body = {"from_fabric_address_id": alice.address_id, "fabric_address_ids": bad_ids}
        assert error_of(api.post(JOIN, body), 422)["attribute"] == "fabric_address_ids"
    body = {"from_fabric_address_id": 5, "fabric_address_ids": [bob.address_id]}
    assert error_of(api.post(JOIN, body), 422)["attribute"] == "from_fabric_address_id"
    # From an address that is not the caller's.
    body = {
        "from_fabric_address_id": bob.address_id,
        "fabric_address_ids": [people["carol"].address_id],
    }
    error = error_of(api.post(JOIN, body), 403)
    assert (error["code"], error["attribute"]) == (NOT_MINE, "from_fabric_address_id")
    # An unknown address.
    error_of(api.join(str(uuid.uuid4())), 404)
    # Nothing of the above created a group or a membership.
    assert emu.store.pair_group(alice.id, bob.address_id) is None
    # The address dialect is untouched: {conversation_id}, and an empty body asks for it.
    room = emu.create_room("lobby")
    assert api.post(JOIN, {"conversation_id": room.id}).json() == {
        "table": {"conversation_id": room.id}
    }
    assert error_of(api.post(JOIN, {}), 422)["attribute"] == "conversation_id"


def test_a_room_has_one_group_that_grows_with_each_join(
    emu: Emulator, people: dict[str, EmulatorSubscriber], apis: dict[str, Api]
) -> None:
    room = emu.create_room("lobby", display_name="Lobby")
    first = apis["alice"].join(room.id).json()
    assert emu.group_id_for(room.id, people["bob"].address_id) == first["group_id"]
    second = apis["bob"].join(room.id).json()
    assert second["group_id"] == first["group_id"]
    assert set(second["fabric_address_ids"]) == {
        room.id,
        people["alice"].address_id,
        people["bob"].address_id,
    }
    group_id = first["group_id"]
    assert apis["bob"].send(group_id, "hi room").status_code == 201
    assert texts(apis["alice"].history(group_id)) == ["hi room"]
    # The room's address resolves to its group for a member, and is refused to others.
    assert texts(apis["bob"].history(room.id)) == ["hi room"]
    error_of(apis["carol"].history(group_id), 403)
    error_of(apis["carol"].history(room.id), 403)
    (listed,) = [
        c
        for c in apis["alice"].get("/api/fabric/conversations").json()["data"]
        if c.get("group_id")
    ]
    assert listed["name"] == "Lobby"
    other = emu.create_room("other")
    error_of(apis["alice"].join(room.id, other.id), 422)


# -- send -----------------------------------------------------------------------------------------


def test_send_to_a_group_answers_the_message_object(
    emu: Emulator, people: dict[str, EmulatorSubscriber], apis: dict[str, Api]
) -> None:
    alice, bob = people["alice"], people["bob"]
    group_id = apis["alice"].group(bob.address_id)
    reply = apis["alice"].send(group_id, "hello bob", metadata={"m": 1}, details={"d": [1]})
    assert reply.status_code == 201
    message = reply.json()
    assert set(message) == GROUP_MESSAGE_FIELDS
    assert message["group_id"] == group_id
    assert message["from_fabric_address_id"] == message["from_address_id"] == alice.address_id
    assert "user_id" not in message  # the official types name the sender by address only
    assert message["user_name"] == "Alice"
    assert message["conversation_name"]
    assert (message["type"], message["subtype"], message["hidden"]) == ("message", "chat", False)
    assert isinstance(message["ts"], float)
    assert (message["metadata"], message["details"], message["text"]) == (
        {"m": 1},
        {"d": [1]},
        "hello bob",
    )
    uuid.UUID(message["id"])
    # What the history answers is the same object.
    assert apis["bob"].history(group_id).json()["data"] == [message]
    assert emu.messages(group_id) == [message]


def test_send_accepts_the_0_0_1_spelling_and_prefers_the_current_one(
    people: dict[str, EmulatorSubscriber], apis: dict[str, Api]
) -> None:
    alice, bob = people["alice"], people["bob"]
    api = apis["alice"]
    group_id = api.group(bob.address_id)
    old = api.post(
        SEND, {"group_id": group_id, "text": "0.0.1", "from_address_id": alice.address_id}
    )
    assert old.status_code == 201, old.text
    assert old.json()["from_fabric_address_id"] == alice.address_id
    both = {
        "group_id": group_id,
        "text": "both",
        "from_fabric_address_id": alice.address_id,
        "from_address_id": bob.address_id,
    }
    assert api.post(SEND, both).status_code == 201
    both["from_fabric_address_id"], both["from_address_id"] = bob.address_id, alice.address_id
    assert error_of(api.post(SEND, both), 403)["code"] == NOT_MINE


def test_send_refusals(
    emu: Emulator, people: dict[str, EmulatorSubscriber], apis: dict[str, Api]
) -> None:
    alice, bob, carol = people["alice"], people["bob"], people["carol"]
    group_id = apis["alice"].group(bob.address_id)
    api = apis["alice"]
    error_of(api.send(str(uuid.uuid4()), "nowhere"), 404)
    error_of(api.send(bob.address_id, "an address is no group"), 404)
    # Carol is no member; speaking as her own address does not help.
    error = error_of(apis["carol"].send(group_id, "let me in"), 403)
    assert error["attribute"] == "group_id"
    body = {"group_id": group_id, "from_fabric_address_id": bob.address_id, "text": "as bob"}
    assert error_of(api.post(SEND, body), 403)["code"] == NOT_MINE
    error = error_of(api.post(SEND, {"group_id": group_id, "text": "who?"}), 422)
    assert error["attribute"] == "from_fabric_address_id"
    for field, value in (
        ("text", ""),
        ("text", 5),
        ("metadata", [1]),
        ("details", "x"),
        ("group_id", 3),
    ):
        body = {"group_id": group_id, "from_fabric_address_id": alice.address_id, "text": "t"}
        error = error_of(api.post(SEND, {**body, field: value}), 422)
        assert error["attribute"] == field
    assert (
        error_of(
            api.post(SEND, {"group_id": group_id, "from_fabric_address_id": alice.address_id}), 422
        )["attribute"]
        == "text"
    )
    assert emu.messages(group_id) == []
    assert carol.id not in emu.store.member_ids(group_id)


# -- history and listings -------------------------------------------------------------------------


def test_group_history_pages_both_ways(
    people: dict[str, EmulatorSubscriber], apis: dict[str, Api]
) -> None:
    group_id = apis["alice"].group(people["bob"].address_id)
    for n in range(7):
        apis["alice" if n % 2 else "bob"].send(group_id, f"m{n}")
    first = apis["bob"].history(group_id, page_size=3)
    assert texts(first) == ["m6", "m5", "m4"]
    second = apis["bob"].get(first.json()["links"]["next"])
    assert texts(second) == ["m3", "m2", "m1"]
    third = apis["bob"].get(second.json()["links"]["next"])
    assert texts(third) == ["m0"]
    assert "next" not in third.json()["links"]
    back = apis["bob"].get(third.json()["links"]["prev"])
    assert texts(back) == ["m3", "m2", "m1"]
    assert texts(apis["bob"].get(back.json()["links"]["prev"])) == ["m6", "m5", "m4"]


def test_history_by_a_bare_address_id(
    emu: Emulator, people: dict[str, EmulatorSubscriber], apis: dict[str, Api]
) -> None:
    alice, bob, carol = people["alice"], people["bob"], people["carol"]
    # No relation yet: a known address is refused, an unknown one is not found.
    error_of(apis["alice"].history(bob.address_id), 403)
    error_of(apis["alice"].history(str(uuid.uuid4())), 404)
    group_id = apis["alice"].group(bob.address_id)
    apis["alice"].send(group_id, "in the group")
    apis["alice"].group(bob.address_id, carol.address_id)  # a group of three is no 1:1
    # Alice's 1:1 group with Bob, from either side.
    assert texts(apis["alice"].history(bob.address_id)) == ["in the group"]
    assert texts(apis["bob"].history(alice.address_id)) == ["in the group"]
    error_of(apis["carol"].history(bob.address_id), 403)
    # Writing to Bob's own address (a 3.28 client) does not let Alice read his inbox:
    # her history by his address id is still their 1:1 group.
    address_send = apis["alice"].post(
        SEND, {"conversation_id": bob.address_id, "text": "address dialect"}
    )
    assert address_send.status_code == 201
    assert texts(apis["alice"].history(bob.address_id)) == ["in the group"]
    # Bob's own address is his address-dialect inbox, as before.
    assert texts(apis["bob"].history(bob.address_id)) == ["address dialect"]


def test_all_my_messages_and_conversations_include_groups(
    emu: Emulator, people: dict[str, EmulatorSubscriber], apis: dict[str, Api]
) -> None:
    alice, bob = people["alice"], people["bob"]
    with_bob = apis["alice"].group(bob.address_id)
    with_carol = apis["carol"].group(alice.address_id)
    apis["bob"].send(with_bob, "from bob")
    apis["carol"].send(with_carol, "from carol")
    apis["alice"].send(with_bob, "to bob")
    room = emu.create_room("lobby")
    apis["alice"].post(SEND, {"conversation_id": room.id, "text": "address dialect"})
    assert texts(apis["alice"].get("/api/fabric/messages")) == [
        "address dialect",
        "to bob",
        "from carol",
        "from bob",
    ]
    assert texts(apis["bob"].get("/api/fabric/messages")) == ["to bob", "from bob"]
    listed = apis["alice"].get("/api/fabric/conversations").json()["data"]
    groups = {c["group_id"]: c for c in listed if "group_id" in c}
    assert set(groups) == {with_bob, with_carol}
    item = groups[with_bob]
    assert set(item) == {
        "id",
        "group_id",
        "from_fabric_address_id",
        "from_address_id",
        "name",
        "created_at",
        "last_message_at",
        "metadata",
    }
    assert item["from_fabric_address_id"] == alice.address_id
    assert item["name"]
    assert isinstance(item["created_at"], int)
    assert isinstance(item["last_message_at"], int)
    # Most recent first; address-dialect rows keep their shape.
    assert [c["id"] for c in listed][:2] == [room.id, with_bob]
    assert "group_id" not in listed[0]
    assert bob.id in emu.store.member_ids(with_bob)


# -- credentials ----------------------------------------------------------------------------------


def test_token_mint_accepts_v4_fields_and_info_lists_the_primary_address_first(
    emu: Emulator,
) -> None:
    body = {
        "reference": "dave@example.com",
        "fingerprint": "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs",
        "scope": "sat:refresh",
        "application_id": str(uuid.uuid4()),
        "expire_at": 4_000_000_000,
    }
    auth = (emu.project_id, emu.api_token)
    url = emu.rest_url + "/api/fabric/subscribers/tokens"
    reply = requests.post(url, json=body, auth=auth, timeout=TIMEOUT)
    assert reply.status_code == 201, reply.text
    token = reply.json()["token"]
    info = requests.get(
        emu.rest_url + "/api/fabric/subscriber/info",
        headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
        timeout=TIMEOUT,
    ).json()
    assert info["fabric_addresses"][0]["id"] == emu.store.address_ids_of(info["id"])[0]
    for field, value in (("scope", 3), ("fingerprint", ["x"]), ("application_id", {})):
        bad = requests.post(url, json={**body, field: value}, auth=auth, timeout=TIMEOUT)
        assert error_of(bad, 422)["attribute"] == field


# -- Python helpers -------------------------------------------------------------------------------


def test_group_helpers(
    emu: Emulator, people: dict[str, EmulatorSubscriber], apis: dict[str, Api]
) -> None:
    alice, bob, carol = people["alice"], people["bob"], people["carol"]
    expected = emu.group_id_for(alice.address_id, bob.address_id)
    assert not emu.store.is_group(expected)  # pure: nothing was created
    with pytest.raises(ValueError, match="two"):
        emu.group_id_for(alice.address_id, alice.address_id)
    with pytest.raises(KeyError):
        emu.group_id_for(alice.address_id, str(uuid.uuid4()))
    assert emu.join_group(alice, [bob.address_id]) == expected
    assert emu.join_group(bob.id, [alice.address_id], from_address_id=bob.address_id) == expected
    assert apis["alice"].group(bob.address_id) == expected
    with pytest.raises(PermissionError):
        emu.join_group(alice, [carol.address_id], from_address_id=bob.address_id)
    with pytest.raises(ValueError, match="own address"):
        emu.join_group(alice, [alice.address_id])
    with pytest.raises(KeyError):
        emu.join_group(alice, [str(uuid.uuid4())])

    # send_as speaks the group dialect by default, as the current official clients do.
    sent = emu.send_as(carol, alice.address_id, "from carol", metadata={"k": 1})
    assert sent["group_id"] == emu.group_id_for(carol.address_id, alice.address_id)
    assert sent["from_fabric_address_id"] == carol.address_id
    assert sent["metadata"] == {"k": 1}
    direct = emu.send_as(bob, None, "direct", group_id=expected)
    assert direct["group_id"] == expected
    with pytest.raises(PermissionError):
        emu.send_as(carol, None, "not mine", group_id=expected)
    with pytest.raises(ValueError, match="own address"):
        emu.send_as(alice, alice.address_id, "to myself")
    old = emu.send_as(alice, bob.address_id, "address dialect", dialect="address")
    assert old["conversation_id"] == bob.address_id
    assert "group_id" not in old

    # add_message: a log by default, into a group or an address conversation.
    log = emu.add_message(expected, kind="call_started", details={"status": "started"})
    assert (log["subtype"], log["group_id"], log["text"]) == ("log", expected, None)
    assert log["from_fabric_address_id"] == alice.address_id  # the group's creator, not None
    assert [m["text"] for m in emu.messages(expected)] == ["direct", None]
    assert [m["text"] for m in emu.messages(bob.address_id)] == ["address dialect"]
    with pytest.raises(KeyError):
        emu.add_message(str(uuid.uuid4()))

    edited = emu.edit_message(direct["id"], text="direct, edited", metadata={"e": 1})
    assert edited == {**direct, "text": "direct, edited", "metadata": {"e": 1}}
    assert emu.messages(expected)[0] == edited
    with pytest.raises(KeyError):
        emu.edit_message(str(uuid.uuid4()), text="x")


def test_an_older_database_gains_the_group_columns(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    conn.executescript(
        """
        CREATE TABLE conversations (seq INTEGER PRIMARY KEY AUTOINCREMENT,
            address_id TEXT NOT NULL UNIQUE, created_at REAL NOT NULL,
            last_message_at REAL NOT NULL, last_message_seq INTEGER NOT NULL DEFAULT 0);
        CREATE TABLE members (address_id TEXT NOT NULL, subscriber_id TEXT NOT NULL,
            joined_at REAL NOT NULL, PRIMARY KEY (address_id, subscriber_id));
        CREATE TABLE messages (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE,
            conversation_id TEXT NOT NULL, user_id TEXT NOT NULL, from_address_id TEXT,
            ts REAL NOT NULL, text TEXT, details TEXT NOT NULL, metadata TEXT NOT NULL,
            type TEXT NOT NULL, subtype TEXT NOT NULL, kind TEXT);
        INSERT INTO messages (id, conversation_id, user_id, ts, text, details, metadata, type,
            subtype) VALUES ('m1', 'c1', 'u1', 1.5, 'kept', '{}', '{}', 'message', 'chat');
        """
    )
    conn.commit()
    conn.close()
    store = Store(str(path))
    try:
        (message,) = store.all_messages("c1")
        assert message["text"] == "kept"
        assert message["conversation_id"] == "c1"
    finally:
        store.close()


# -- realtime -------------------------------------------------------------------------------------


class Peer:
    """A raw JSON-RPC websocket peer."""

    def __init__(self, url: str) -> None:
        self.ws = websocket.create_connection(url, timeout=WAIT)

    def send(self, frame: dict[str, Any]) -> None:
        self.ws.send(json.dumps(frame))

    def recv(self, timeout: float = WAIT) -> dict[str, Any]:
        self.ws.settimeout(timeout)
        frame: dict[str, Any] = json.loads(self.ws.recv())
        return frame

    def request(self, method: str, params: dict[str, Any]) -> str:
        rid = str(uuid.uuid4())
        self.send({"jsonrpc": "2.0", "id": rid, "method": method, "params": params})
        return rid

    def answer_to(self, rid: str) -> dict[str, Any]:
        while True:
            frame = self.recv()
            if frame.get("id") == rid and "method" not in frame:
                return frame

    def connect(self, token: str, **extra: Any) -> str:
        """Connect as v4 does; take the authorization state event; return the protocol."""
        params = {
            "version": {"major": 4, "minor": 0, "revision": 0},
            "event_acks": True,
            "agent": "signalwire-js/4.0.0",
            "authentication": {"jwt_token": token},
            **extra,
        }
        answer = self.answer_to(self.request("signalwire.connect", params))
        protocol = str(answer["result"]["protocol"])
        state = self.event()
        assert state["params"]["event_type"] == "signalwire.authorization.state"
        assert protocol in state["params"]["event_channel"]
        assert isinstance(state["params"]["timestamp"], float)
        return protocol

    def event(self) -> dict[str, Any]:
        """The next event (acknowledged); pings are answered with our own clock, as v4 does."""
        while True:
            frame = self.recv()
            if frame.get("method") == "signalwire.ping":
                self.send({"jsonrpc": "2.0", "id": frame["id"], "result": {"timestamp": 1.0}})
                continue
            if frame.get("method") == "signalwire.event":
                self.send({"jsonrpc": "2.0", "id": frame["id"], "result": {}})
                return frame

    def barrier(self) -> list[dict[str, Any]]:
        """Ping the server; return the events that arrived before its answer."""
        rid = self.request("signalwire.ping", {"timestamp": 2.5})
        seen = []
        while True:
            frame = self.recv()
            if frame.get("id") == rid and "result" in frame:
                return seen
            if frame.get("method") == "signalwire.event":
                seen.append(frame)

    def close(self) -> None:
        self.ws.close(timeout=1)
        self.ws.shutdown()


@pytest.fixture
def sockets(emu: Emulator, people: dict[str, EmulatorSubscriber]) -> Iterator[dict[str, Any]]:
    opened: dict[str, Any] = {}
    for name, who in people.items():
        peer = Peer(emu.relay_url)
        dpop = "eyJ0eXAiOiJkcG9wK2p3dCJ9.e30.sig"
        protocol = peer.connect(who.token, contexts=[], eventing=[], topics=[], dpop_token=dpop)
        opened[name] = (peer, protocol)
    yield opened
    for peer, _ in opened.values():
        peer.close()


def test_group_events_reach_the_members_with_their_channel_and_authorship(
    emu: Emulator,
    people: dict[str, EmulatorSubscriber],
    apis: dict[str, Api],
    sockets: dict[str, Any],
) -> None:
    alice, bob = people["alice"], people["bob"]
    group_id = apis["alice"].group(bob.address_id)
    message = apis["alice"].send(group_id, "live").json()
    for name, author in (("alice", True), ("bob", False)):
        peer, protocol = sockets[name]
        envelope = peer.event()["params"]
        assert envelope["event_type"] == "conversation.message"
        assert protocol in envelope["event_channel"]
        assert envelope["is_author"] is author
        assert isinstance(envelope["timestamp"], float)
        assert envelope["params"] == message
    assert sockets["carol"][0].barrier() == []

    edited = emu.edit_message(message["id"], text="live, edited")
    for name in ("alice", "bob"):
        peer, protocol = sockets[name]
        envelope = peer.event()["params"]
        assert envelope["event_type"] == "conversation.message.updated"
        assert protocol in envelope["event_channel"]
        assert envelope["params"] == edited
        assert envelope["params"]["id"] == message["id"]
    assert texts(apis["bob"].history(group_id)) == ["live, edited"]
    assert sockets["carol"][0].barrier() == []

    # The address dialect's events also carry the session's channel and authorship.
    room = emu.create_room("lobby")
    emu.join(bob, room.id)
    emu.send_as(alice, room.id, "address dialect", dialect="address")
    envelope = sockets["bob"][0].event()["params"]
    assert envelope["params"]["conversation_id"] == room.id
    assert sockets["bob"][1] in envelope["event_channel"]
    assert envelope["is_author"] is False


def test_presence_and_reauthenticate_with_v4_extras(
    emu: Emulator, people: dict[str, EmulatorSubscriber], sockets: dict[str, Any]
) -> None:
    peer, protocol = sockets["alice"]
    for method in ("subscriber.online", "subscriber.offline"):
        answer = peer.answer_to(peer.request(method, {}))
        assert answer["result"] == {"code": "200", "message": "OK"}
    fresh = emu.mint_token(people["alice"])
    params = {
        "authentication": {"project": emu.project_id, "jwt_token": fresh},
        "dpop_token": "x.y.z",
    }
    answer = peer.answer_to(peer.request("signalwire.reauthenticate", params))
    assert answer["result"]["protocol"] == protocol


def test_ping_answers_that_do_not_echo_are_accepted(
    emulator_factory: Any, people: dict[str, EmulatorSubscriber]
) -> None:
    emu: Emulator = emulator_factory(ping_interval=0.05)
    alice = emu.create_subscriber("alice@example.com")
    bob = emu.create_subscriber("bob@example.com")
    peer = Peer(emu.relay_url)
    try:
        peer.connect(alice.token)
        pings = 0
        while pings < 3:  # each answered with another timestamp (Peer.event does)
            frame = peer.recv()
            if frame.get("method") == "signalwire.ping":
                peer.send({"jsonrpc": "2.0", "id": frame["id"], "result": {"timestamp": 1.0}})
                pings += 1
        emu.send_as(bob, alice.address_id, "still here")
        assert peer.event()["params"]["params"]["text"] == "still here"
    finally:
        peer.close()


# -- the store's kept reads ----------------------------------------------------------------------
# A sent message is checked (the sender, the group, its membership), stored and published to
# the group's members: those directory reads repeat for every message and change only when
# someone joins, a subscriber is renamed, a room is made. The store keeps them in memory until
# the next write that could change them; both sides are pinned: the statements sqlite runs per
# message, and every change seen by the very next request.


class _Statements:
    """Counts what sqlite runs on the emulator's connection (its trace callback)."""

    def __init__(self, emu: Emulator) -> None:
        self._conn = emu.store._conn  # the statements are what is measured
        self.seen: list[str] = []

    def __enter__(self) -> list[str]:
        self._conn.set_trace_callback(self.seen.append)
        return self.seen

    def __exit__(self, *exc: object) -> None:
        self._conn.set_trace_callback(None)


def test_a_group_message_runs_the_write_and_one_read_back_once_its_checks_were_read(
    emu: Emulator, people: dict[str, EmulatorSubscriber], apis: dict[str, Api]
) -> None:
    bob = people["bob"]
    group_id = apis["alice"].group(bob.address_id)
    assert apis["alice"].send(group_id, "first").status_code == 201
    with _Statements(emu) as seen:
        reply = apis["alice"].send(group_id, "second")
    assert reply.status_code == 201, reply.text
    # BEGIN, the thread's conversation ensured, the message, the conversation's last
    # message, COMMIT, and the row read back (for the answer and the event alike).
    # The caller, the group and its members are not read again: 14 statements before.
    assert len(seen) <= 6, seen
    assert sum("FROM messages m" in sql for sql in seen) == 1, seen
    assert reply.json()["text"] == "second"
    assert reply.json()["user_name"] == "Alice"
    assert [m["text"] for m in emu.messages(group_id)] == ["first", "second"]


def test_a_join_is_seen_by_the_next_send(
    emu: Emulator, people: dict[str, EmulatorSubscriber], apis: dict[str, Api]
) -> None:
    alice, carol = people["alice"], people["carol"]
    room = emu.create_room("lobby", display_name="Lobby")
    group_id = apis["alice"].group(room.id)
    assert apis["alice"].send(group_id, "before").status_code == 201
    # Carol is not a member: refused, and that answer was read (and kept) ...
    assert apis["carol"].send(group_id, "knock").status_code == 403
    assert emu.store.member_ids(group_id) == [alice.id]
    # ... until she joins: then her send goes through and she is in the audience.
    assert apis["carol"].join(room.id).status_code == 200
    assert emu.store.member_ids(group_id) == [alice.id, carol.id]
    reply = apis["carol"].send(group_id, "in")
    assert reply.status_code == 201, reply.text
    assert [m["text"] for m in emu.messages(group_id)] == ["before", "in"]


def test_a_rename_is_seen_by_the_next_request(
    emu: Emulator, people: dict[str, EmulatorSubscriber], apis: dict[str, Api]
) -> None:
    bob = people["bob"]
    assert apis["alice"].get("/api/fabric/subscriber/info").json()["display_name"] == "Alice"
    group_id = apis["alice"].group(bob.address_id)
    assert apis["alice"].send(group_id, "one").json()["user_name"] == "Alice"
    emu.create_subscriber("alice@example.com", display_name="Alicia")
    assert apis["alice"].get("/api/fabric/subscriber/info").json()["display_name"] == "Alicia"
    assert apis["alice"].send(group_id, "two").json()["user_name"] == "Alicia"


def test_kept_reads_are_bounded_and_copies(
    emu: Emulator, people: dict[str, EmulatorSubscriber]
) -> None:
    store = emu.store
    alice = people["alice"]
    # Ids in requests are anyone's to choose: unknown ones fill no unbounded memory.
    for index in range(5000):
        assert not store.is_group(f"nope-{index}")
    assert len(store._lookups) <= 4096  # the bound is what is tested
    # A caller that changes what it was given changes nothing kept.
    first = store.member_ids(alice.address_id)
    first.append("intruder")
    assert "intruder" not in store.member_ids(alice.address_id)
    subscriber = store.get_subscriber(alice.id)
    assert subscriber is not None
    subscriber["fabric_addresses"].clear()
    again = store.get_subscriber(alice.id)
    assert again is not None
    assert again["fabric_addresses"]


def test_the_address_dialect_keeps_its_reads_until_a_send_makes_a_new_member(
    emu: Emulator, people: dict[str, EmulatorSubscriber], apis: dict[str, Api]
) -> None:
    alice, carol = people["alice"], people["carol"]
    room = emu.create_room("lobby")

    def send(name: str, text: str) -> requests.Response:
        return apis[name].post(SEND, {"conversation_id": room.id, "text": text})

    assert apis["alice"].post(JOIN, {"conversation_id": room.id}).status_code == 200
    assert send("alice", "first").status_code == 201
    with _Statements(emu) as seen:
        assert send("alice", "second").status_code == 201
    # The sender's membership is written (and found already there): the members read
    # for the event come from memory.
    assert not [sql for sql in seen if "FROM members" in sql], seen
    assert emu.store.member_ids(room.id) == [alice.id]
    # Carol's first send to the room makes her a member: seen at once.
    assert send("carol", "hello").status_code == 201
    assert emu.store.member_ids(room.id) == [alice.id, carol.id]
    assert emu.store.is_member(room.id, carol.id)
