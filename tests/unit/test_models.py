"""Models and the strict converter: shapes from the wire, strictness, unknown fields kept."""

from __future__ import annotations

import datetime as dt

import pytest

from signalwire_chat import (
    Address,
    Conversation,
    ConversationChatMessage,
    ConversationMessage,
    DecodeError,
    SubscriberInfo,
)
from signalwire_chat._convert import (
    converter,
    is_chat_for,
    structure,
    structure_join_result,
    structure_message,
    structure_send_result,
)

CHAT = {
    "id": "3c114417-5cc0-4d03-a30f-c90659028d73",
    "conversation_id": "9dbe9e94-c797-461e-b5a3-af6d095deaf4",
    "user_id": "cecbe021-ff86-4ac6-bdf3-399ca477ad6f",
    "from_address_id": "aaaaaaaa-0000-0000-0000-00000000a001",
    "ts": 1708192187.6779745,
    "details": {},
    "metadata": {},
    "type": "message",
    "subtype": "chat",
    "kind": None,
    "text": "hello",
}
LOG = {**CHAT, "id": "log-1", "subtype": "log", "kind": "call_ended", "text": None}


def test_chat_message_from_the_reference_example() -> None:
    msg = structure_message(CHAT)
    assert isinstance(msg, ConversationChatMessage)
    assert msg.text == "hello"
    assert msg.ts == 1708192187.6779745
    assert msg.datetime == dt.datetime.fromtimestamp(1708192187.6779745, tz=dt.timezone.utc)
    assert msg.datetime.tzinfo is dt.timezone.utc
    assert msg.is_chat


def test_non_chat_message_is_a_plain_message() -> None:
    msg = structure_message(LOG)
    assert type(msg) is ConversationMessage
    assert msg.kind == "call_ended"
    assert msg.text is None


def test_unknown_fields_are_kept_in_extra() -> None:
    msg = structure_message({**CHAT, "group_id": "g1", "extra": {"x": 1}})
    assert msg.extra == {"group_id": "g1", "extra": {"x": 1}}
    assert structure_message(CHAT).extra == {}


def test_int_timestamp_is_accepted_as_float() -> None:
    msg = structure_message({**CHAT, "ts": 1708192187})
    assert msg.ts == 1708192187.0
    assert type(msg.ts) is float


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("ts", "1708192187.5"),
        ("ts", True),
        ("text", 1),
        ("hidden", "false"),
        ("hidden", 0),
        ("id", 5),
        ("details", []),
        ("user_id", ["x"]),
    ],
)
def test_strict_primitives_name_the_field(field: str, value: object) -> None:
    with pytest.raises(DecodeError) as info:
        structure_message({**CHAT, field: value})
    assert info.value.field == field
    assert field in str(info.value)


@pytest.mark.parametrize("field", ["id", "conversation_id", "ts", "subtype", "text"])
def test_missing_required_field_is_named(field: str) -> None:
    raw = dict(CHAT)
    del raw[field]
    with pytest.raises(DecodeError) as info:
        structure_message(raw)
    assert info.value.field == field


def test_converter_primitive_hooks_are_strict() -> None:
    with pytest.raises(DecodeError):
        converter.structure("false", bool)
    with pytest.raises(DecodeError):
        converter.structure(1, str)
    with pytest.raises(DecodeError):
        converter.structure(1.5, int)
    assert converter.structure(2, float) == 2.0


def test_nested_error_path() -> None:
    raw = {"id": "s", "fabric_addresses": [{"id": "a", "name": "n", "type": "room", "locked": 1}]}
    with pytest.raises(DecodeError) as info:
        structure(raw, SubscriberInfo)
    assert info.value.field == "fabric_addresses[0].locked"


def test_subscriber_info_and_addresses() -> None:
    info = structure(
        {
            "id": "s",
            "email": "a@b.c",
            "fabric_addresses": [
                {
                    "id": "a",
                    "name": "alice",
                    "display_name": "Alice",
                    "type": "subscriber",
                    "channels": {"audio": "/private/alice?channel=audio", "fax": "x"},
                    "locked": False,
                    "created_at": "2024-01-01T00:00:00Z",
                }
            ],
            "app_settings": {"scopes": ["a"]},
            "new": 1,
        },
        SubscriberInfo,
    )
    assert info.fabric_addresses[0].channels.audio == "/private/alice?channel=audio"
    assert info.fabric_addresses[0].channels.extra == {"fax": "x"}
    assert info.extra == {"new": 1}
    assert isinstance(info.fabric_addresses[0], Address)


def test_conversation() -> None:
    conv = structure(
        {"id": "c", "address_id": "c", "name": "general", "created_at": 1, "last_message_at": 2},
        Conversation,
    )
    assert conv.last_message_datetime == dt.datetime.fromtimestamp(2, tz=dt.timezone.utc)
    with pytest.raises(DecodeError):
        structure({"id": "c", "created_at": "1"}, Conversation)


def test_send_result_accepts_table_and_plain_message() -> None:
    table = structure_send_result({"table": {"conversation_id": "c", "text": "hi"}})
    assert (table.conversation_id, table.text, table.message) == ("c", "hi", None)
    plain = structure_send_result(CHAT)
    assert plain.conversation_id == CHAT["conversation_id"]
    assert isinstance(plain.message, ConversationChatMessage)
    with pytest.raises(DecodeError):
        structure_send_result([1])
    with pytest.raises(DecodeError):
        structure_send_result({"table": {"conversation_id": 5}})


def test_join_result_shapes() -> None:
    assert structure_join_result({"table": {"conversation_id": "c"}}).conversation_id == "c"
    assert structure_join_result(None).conversation_id is None


def test_is_chat_for() -> None:
    assert is_chat_for(CHAT, CHAT["conversation_id"])
    assert not is_chat_for(CHAT, "other")
    assert not is_chat_for(LOG, CHAT["conversation_id"])
    assert not is_chat_for("junk", "x")


def test_models_are_frozen_hashable_and_have_short_reprs() -> None:
    msg = structure_message(CHAT)
    with pytest.raises(AttributeError):
        msg.text = "x"  # type: ignore[misc]
    assert hash(msg) == hash(structure_message(CHAT))
    assert msg == structure_message(CHAT)
    assert "details" not in repr(msg)  # defaults are left out
    assert "text='hello'" in repr(msg)
