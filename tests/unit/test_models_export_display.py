"""Models as JSON-ready dicts (``to_dict``) and as people see them in notebooks."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest

from signalwire_chat import (
    Address,
    Conversation,
    ConversationChatMessage,
    ConversationMessage,
    JoinResult,
    SendResult,
    SubscriberInfo,
)
from signalwire_chat._convert import structure, structure_send_result

TS = 1_796_165_694.25
MESSAGE = {
    "id": "m1",
    "conversation_id": "room",
    "ts": TS,
    "subtype": "chat",
    "type": "message",
    "user_id": "u1",
    "from_address_id": "a1",
    "text": "hello <b>world</b>",
    "metadata": {"order": 42},
    "details": {"k": [1, 2]},
    "user_name": "Alice",
    "brand_new_field": {"x": True},
}
ADDRESS = {
    "id": "a1",
    "name": "alice",
    "type": "subscriber",
    "display_name": "Alice",
    "channels": {"audio": "/private/alice?channel=audio", "smoke": "/s"},
    "created_at": "2026-12-01T22:54:43Z",
}
SUBSCRIBER = {"id": "s1", "email": "alice@example.com", "fabric_addresses": [ADDRESS]}
CONVERSATION = {"id": "c1", "address_id": "room", "name": "Lobby", "last_message_at": 1796165694}

CASES: list[tuple[dict[str, Any], type]] = [
    (MESSAGE, ConversationChatMessage),
    ({**MESSAGE, "subtype": "log", "text": None, "kind": "call_started"}, ConversationMessage),
    (ADDRESS, Address),
    (SUBSCRIBER, SubscriberInfo),
    (CONVERSATION, Conversation),
    ({"conversation_id": "room", "odd": 1}, JoinResult),
]


@pytest.mark.parametrize(("wire", "cls"), CASES)
def test_to_dict_is_json_ready_and_structures_back_to_an_equal_model(
    wire: dict[str, Any], cls: type
) -> None:
    model = structure(wire, cls)
    exported = model.to_dict()
    assert json.loads(json.dumps(exported)) == exported  # plain JSON types only
    assert structure(exported, cls) == model
    for key, value in wire.items():  # every wire field is there, unknown ones included
        if isinstance(value, dict) and key == "channels":
            continue
        if isinstance(value, list):
            assert len(exported[key]) == len(value)
        else:
            assert exported[key] == value


def test_to_dict_keeps_unknown_fields_of_nested_models() -> None:
    info = structure(SUBSCRIBER, SubscriberInfo)
    exported = info.to_dict()
    assert exported["fabric_addresses"][0]["channels"]["smoke"] == "/s"
    assert "extra" not in exported
    assert "extra" not in exported["fabric_addresses"][0]


def test_send_result_to_dict() -> None:
    result = structure_send_result({"table": {"conversation_id": "room", "text": "hi"}})
    assert result.to_dict() == {
        "group_id": None,
        "conversation_id": "room",
        "text": "hi",
        "from_address_id": None,
        "message": None,
    }
    full = structure_send_result(MESSAGE)
    assert isinstance(full, SendResult)
    assert full.to_dict()["message"]["id"] == "m1"


def local(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts).astimezone().strftime("%Y-%m-%d %H:%M:%S")


def test_a_message_displays_time_sender_and_text_not_a_repr() -> None:
    message = structure(MESSAGE, ConversationChatMessage)
    html = message._repr_html_()
    assert local(TS) in html
    assert "Alice" in html
    assert "hello &lt;b&gt;world&lt;/b&gt;" in html  # escaped, never raw markup
    assert str(TS) not in html
    assert "ConversationChatMessage(" not in html

    class Printer:
        def __init__(self) -> None:
            self.out: list[str] = []

        def text(self, value: str) -> None:
            self.out.append(value)

    printer = Printer()
    message._repr_pretty_(printer, False)
    line = "".join(printer.out)
    assert line == f"ConversationChatMessage({local(TS)} Alice: hello <b>world</b>)"


def test_sender_falls_back_to_the_address_then_the_user() -> None:
    no_name = structure({**MESSAGE, "user_name": None}, ConversationChatMessage)
    assert "a1" in no_name._repr_html_()
    bare = structure(
        {
            "id": "m",
            "conversation_id": "c",
            "ts": TS,
            "subtype": "chat",
            "text": "t",
            "user_id": "u9",
        },
        ConversationChatMessage,
    )
    assert "u9" in bare._repr_html_()


def test_conversation_address_and_subscriber_tables() -> None:
    conversation = structure(CONVERSATION, Conversation)
    assert "Lobby" in conversation._repr_html_()
    assert local(1796165694) in conversation._repr_html_()
    address = structure(ADDRESS, Address)
    assert "<th style='text-align:left'>display name</th>" in address._repr_html_()
    info = structure(SUBSCRIBER, SubscriberInfo)
    html = info._repr_html_()
    assert "alice@example.com" in html
    assert "Address(Alice, alice, subscriber, a1)" in html


def test_long_and_multiline_text_is_cut_to_one_line() -> None:
    message = structure(
        {**MESSAGE, "text": "line one\nline two " + "x" * 500}, ConversationChatMessage
    )
    html = message._repr_html_()
    assert "line one line two" in html
    assert "…" in html
    assert "x" * 300 not in html


@pytest.mark.parametrize(("wire", "cls"), CASES)
def test_ipython_shows_each_model_as_its_own_one_line_display(
    wire: dict[str, Any], cls: type
) -> None:
    # IPython's printer walks the class's MRO and takes the first class that defines
    # __repr__ or _repr_pretty_: a model's own __repr__ must not hide the one-line display.
    pretty = pytest.importorskip("IPython.lib.pretty").pretty
    model = structure(wire, cls)
    printer_out: list[str] = []

    class Printer:
        def text(self, value: str) -> None:
            printer_out.append(value)

    model._repr_pretty_(Printer(), False)
    assert pretty(model) == "".join(printer_out)


def test_ipython_shows_a_message_as_time_sender_and_text() -> None:
    pretty = pytest.importorskip("IPython.lib.pretty").pretty
    message = structure(MESSAGE, ConversationChatMessage)
    line = f"ConversationChatMessage({local(TS)} Alice: hello <b>world</b>)"
    assert pretty(message) == line
    assert pretty((message,)) == f"({line},)"  # page.data, a tuple, in a terminal
