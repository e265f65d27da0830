"""Models and the strict converter: shapes from the wire, strictness, unknown fields kept."""

from __future__ import annotations

import copy
import datetime as dt
import linecache
import pickle
import random
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping
from typing import Any

import attrs
import pytest

from signalwire_chat import (
    Address,
    AddressChannels,
    Conversation,
    ConversationChatMessage,
    ConversationMessage,
    DecodeError,
    JoinResult,
    SubscriberInfo,
)
from signalwire_chat._convert import (
    _build_fast,
    _precise,
    converter,
    decoder,
    decoder_source,
    precise_source,
    structure,
    structure_chat_message,
    structure_join_result,
    structure_message,
    structure_send_result,
)
from signalwire_chat.models import EMPTY

CHAT: dict[str, Any] = {
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
# A chat message as the group dialect carries it (protocol-group.md, the event payload).
GROUP_CHAT: dict[str, Any] = {
    "id": "6f1d3c2e-0000-4000-8000-000000000001",
    "type": "message",
    "subtype": "chat",
    "kind": None,
    "hidden": False,
    "group_id": "a0bc8a30-0000-4000-8000-0000000000aa",
    "from_fabric_address_id": "aaaaaaaa-0000-0000-0000-00000000a001",
    "from_address_id": "aaaaaaaa-0000-0000-0000-00000000a001",
    "ts": 1708192187.6779745,
    "metadata": {},
    "details": {},
    "text": "hi",
    "conversation_name": "Alice",
    "user_name": "Bob",
}


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
    msg = structure_message({**CHAT, "channel_id": "g1", "extra": {"x": 1}})
    assert msg.extra == {"channel_id": "g1", "extra": {"x": 1}}
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


@pytest.mark.parametrize("field", ["id", "ts", "subtype", "text"])
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


def test_models_are_frozen_hashable_and_have_short_reprs() -> None:
    msg = structure_message(CHAT)
    with pytest.raises(AttributeError):
        msg.text = "x"  # type: ignore[misc]
    assert hash(msg) == hash(structure_message(CHAT))
    assert msg == structure_message(CHAT)
    assert "details" not in repr(msg)  # defaults are left out
    assert "text='hello'" in repr(msg)


# --- the generated fast decoders against the precise ones ------------------------------------
#
# Every model has a fast decoder (generated source, the well-formed case only) that hands any
# object it cannot take as is to the precise decoder. The tests below build fast decoders whose
# fallback is recorded, so they show which path decided, and compare both paths on the same
# inputs: equal models when valid, the same error (message and field path) when not.

ADDRESS = {
    "id": "a",
    "name": "alice",
    "type": "subscriber",
    "display_name": "Alice",
    "channels": {"audio": "/private/alice?channel=audio", "video": None},
    "locked": False,
    "created_at": "2024-01-01T00:00:00Z",
}
SUBSCRIBER = {"id": "s", "email": "a@b.c", "fabric_addresses": [ADDRESS], "app_settings": {}}
CONVERSATION = {"id": "c", "address_id": "c", "name": "general", "created_at": 1}
MODELS: tuple[type, ...] = (
    ConversationMessage,
    ConversationChatMessage,
    Conversation,
    Address,
    AddressChannels,
    SubscriberInfo,
    JoinResult,
)


class _Recorded:
    """A fast decoder of ``cls`` whose fallbacks to the precise decoder are counted."""

    def __init__(self, cls: type) -> None:
        self.fallbacks = 0
        precise: Callable[[Any], Any] = _precise(cls)

        def recorded(obj: Any) -> Any:
            self.fallbacks += 1
            return precise(obj)

        self.precise = precise
        self.fast: Callable[[Any], Any] = _build_fast(cls, recorded)


def _outcome(decode: Callable[[Any], Any], obj: Any) -> tuple[str, Any]:
    try:
        return ("ok", decode(obj))
    except DecodeError as exc:
        return ("error", (exc.message, exc.field))


def _varied_valid(rng: random.Random) -> list[tuple[type, dict[str, Any]]]:
    """Valid wire objects: optional fields present, null or missing; ints for floats; extras."""
    samples: list[tuple[type, dict[str, Any]]] = []
    optional_message = [
        "type",
        "user_id",
        "from_address_id",
        "address_id",
        "details",
        "metadata",
        "kind",
        "user_name",
        "conversation_name",
        "hidden",
    ]
    for number in range(300):
        raw: dict[str, Any] = {
            "id": f"m-{number}",
            "conversation_id": "c\u00e9",
            "ts": rng.choice([1708192187.25 + number, 1708192187 + number, 0, 0.0, -1]),
            "subtype": rng.choice(["chat", "log", ""]),
        }
        for key in optional_message:
            choice = rng.random()
            if choice < 0.3:
                continue  # missing
            if choice < 0.5 and key not in ("type", "details"):
                raw[key] = None
            elif key == "hidden":
                raw[key] = rng.choice([True, False])
            elif key in ("details", "metadata"):
                raw[key] = rng.choice([{}, {"a": [1, None]}, {"nested": {"x": "y"}}])
            else:
                raw[key] = f"{key}-{number}"
        raw["text"] = rng.choice([None, "", "hello \U0001f600"])
        if rng.random() < 0.3:
            raw["group_id"] = "g"
        if rng.random() < 0.1:
            raw["extra"] = {"x": 1}
        keys = list(raw)
        rng.shuffle(keys)
        raw = {key: raw[key] for key in keys}
        samples.append((ConversationMessage, raw))
        if type(raw["text"]) is str:
            samples.append((ConversationChatMessage, raw))
    samples += [
        (Address, ADDRESS),
        (Address, {"id": "a", "name": "n", "type": "room"}),
        (Address, {**ADDRESS, "channels": {}, "fax": 1}),
        (AddressChannels, {}),
        (AddressChannels, {"audio": None, "messaging": "/m", "fax": "x"}),
        (SubscriberInfo, SUBSCRIBER),
        (SubscriberInfo, {"id": "s", "fabric_addresses": []}),
        (SubscriberInfo, {"id": "s", "fabric_addresses": [ADDRESS, ADDRESS], "new": [1]}),
        (Conversation, CONVERSATION),
        (Conversation, {"id": "c", "metadata": {"k": "v"}, "last_message_at": None}),
        (JoinResult, {}),
        (JoinResult, {"conversation_id": "c", "more": True}),
        (JoinResult, {"group_id": "g", "fabric_address_ids": ["a", "b"], "from_address_id": "a"}),
        (Conversation, {"group_id": "g", "from_fabric_address_id": "a", "name": "n"}),
        (ConversationChatMessage, GROUP_CHAT),
        (ConversationChatMessage, {**GROUP_CHAT, "from_fabric_address_id": None}),
        (ConversationChatMessage, {k: v for k, v in GROUP_CHAT.items() if "from" not in k}),
    ]
    return samples


def test_fast_and_precise_decoders_give_equal_models_on_varied_inputs() -> None:
    rng = random.Random(20261125)
    recorded: dict[type, _Recorded] = {cls: _Recorded(cls) for cls in MODELS}
    for cls, raw in _varied_valid(rng):
        decode = recorded[cls]
        fast: Any = decode.fast(raw)
        precise: Any = decode.precise(raw)
        assert dict(fast.extra) == dict(precise.extra)
        assert type(fast) is type(precise) is cls
        assert fast == precise, raw
        assert repr(fast) == repr(precise)
        assert type(getattr(fast, "ts", 0.0)) is float
    # Every valid object above was taken by the fast path: none needed the fallback.
    assert {cls.__name__: r.fallbacks for cls, r in recorded.items()} == {
        cls.__name__: 0 for cls in MODELS
    }


# (model, wire object, the field the error must name)
INVALID: list[tuple[type, Any, str | None]] = [
    # strings are strings: 1 is not "1"
    (ConversationMessage, {**LOG, "id": 5}, "id"),
    (ConversationMessage, {**LOG, "user_id": ["x"]}, "user_id"),
    (ConversationMessage, {**LOG, "type": None}, "type"),
    (ConversationChatMessage, {**CHAT, "text": 1}, "text"),
    (ConversationChatMessage, {**CHAT, "text": None}, "text"),
    # a wire "false" is not False; bool is not an int
    (ConversationMessage, {**LOG, "hidden": "false"}, "hidden"),
    (ConversationMessage, {**LOG, "hidden": 0}, "hidden"),
    (Address, {**ADDRESS, "locked": 1}, "locked"),
    (Address, {**ADDRESS, "locked": None}, "locked"),
    (Conversation, {**CONVERSATION, "created_at": True}, "created_at"),
    (Conversation, {**CONVERSATION, "created_at": 1.5}, "created_at"),
    (Conversation, {**CONVERSATION, "created_at": "1"}, "created_at"),
    # ints are accepted for floats, nothing else is
    (ConversationMessage, {**LOG, "ts": True}, "ts"),
    (ConversationMessage, {**LOG, "ts": "1708192187.5"}, "ts"),
    (ConversationMessage, {**LOG, "ts": None}, "ts"),
    # every float is a time: no NaN, infinity, 1e300, nor an int too large for a float
    (ConversationMessage, {**LOG, "ts": float("nan")}, "ts"),
    (ConversationMessage, {**LOG, "ts": float("-inf")}, "ts"),
    (ConversationMessage, {**LOG, "ts": 1e300}, "ts"),
    (ConversationMessage, {**LOG, "ts": 10**400}, "ts"),
    # JSON has no infinity: a number Python's json read as one (1e999) goes no further
    (ConversationMessage, {**LOG, "metadata": {"n": [float("inf")]}}, "metadata"),
    (ConversationMessage, {**LOG, "details": {"n": float("-inf")}}, "details"),
    (ConversationChatMessage, {**CHAT, "unknown": {"n": float("inf")}}, "unknown"),
    (ConversationChatMessage, {**CHAT, "unknown": float("inf")}, "unknown"),
    # objects are objects
    (ConversationMessage, {**LOG, "details": []}, "details"),
    (ConversationMessage, {**LOG, "details": None}, "details"),
    (ConversationMessage, {**LOG, "metadata": "x"}, "metadata"),
    # nested paths
    (Address, {**ADDRESS, "channels": None}, "channels"),
    (Address, {**ADDRESS, "channels": {"audio": 5}}, "channels.audio"),
    (SubscriberInfo, {**SUBSCRIBER, "fabric_addresses": {}}, "fabric_addresses"),
    (SubscriberInfo, {**SUBSCRIBER, "fabric_addresses": [ADDRESS, 7]}, "fabric_addresses[1]"),
    (
        SubscriberInfo,
        {**SUBSCRIBER, "fabric_addresses": [ADDRESS, {**ADDRESS, "locked": 1}]},
        "fabric_addresses[1].locked",
    ),
    (
        SubscriberInfo,
        {**SUBSCRIBER, "fabric_addresses": [{**ADDRESS, "channels": {"video": False}}]},
        "fabric_addresses[0].channels.video",
    ),
    # not an object at all
    (ConversationMessage, [LOG], None),
    (ConversationMessage, None, None),
    (AddressChannels, "audio", None),
]
# a missing required field is named
INVALID += [
    (ConversationChatMessage, {k: v for k, v in CHAT.items() if k != field}, field)
    for field in ("id", "ts", "subtype", "text")
]
INVALID += [(Address, {k: v for k, v in ADDRESS.items() if k != "name"}, "name")]
INVALID += [(SubscriberInfo, {"fabric_addresses": []}, "id")]
INVALID += [(SubscriberInfo, {**SUBSCRIBER, "fabric_addresses": [{"id": "a", "name": "n"}]}, None)]


@pytest.mark.parametrize(("cls", "raw", "field"), INVALID)
def test_every_strictness_rule_holds_on_the_fast_path_and_the_fallback(
    cls: type, raw: Any, field: str | None
) -> None:
    decode = _Recorded(cls)
    fast = _outcome(decode.fast, raw)
    assert decode.fallbacks == 1  # the fast path saw the problem and handed over
    precise = _outcome(decode.precise, raw)
    assert fast == precise
    assert fast[0] == "error"
    message, named = fast[1]
    if field is not None:
        assert named == field
        assert repr(field) in message
    # and through the public entry points, which use the fast decoders
    with pytest.raises(DecodeError) as info:
        structure(raw, cls)
    assert info.value.field == named


def test_missing_nested_required_field_names_the_path() -> None:
    raw = {**SUBSCRIBER, "fabric_addresses": [{"id": "a", "name": "n"}]}
    with pytest.raises(DecodeError) as info:
        structure(raw, SubscriberInfo)
    assert info.value.field == "fabric_addresses[0].type"


def test_fast_path_keeps_unknown_fields_and_widens_int_to_float() -> None:
    decode = _Recorded(ConversationChatMessage)
    msg = decode.fast({**CHAT, "ts": 1708192187, "channel_id": "g", "extra": {"x": 1}})
    assert decode.fallbacks == 0
    assert msg.ts == 1708192187.0
    assert type(msg.ts) is float
    assert msg.extra == {"channel_id": "g", "extra": {"x": 1}}
    assert decode.fast(CHAT).extra == {}


def test_chat_subtype_selects_the_chat_class() -> None:
    assert type(structure_message(CHAT)) is ConversationChatMessage
    assert type(structure_message({**CHAT, "subtype": "log"})) is ConversationMessage
    assert type(structure_message({**CHAT, "subtype": "chat "})) is ConversationMessage
    assert type(structure_chat_message(CHAT)) is ConversationChatMessage
    with pytest.raises(DecodeError) as info:
        structure_message({**CHAT, "text": None})  # a chat message must have text
    assert info.value.field == "text"


def test_decoders_are_built_once_and_safely_from_many_threads() -> None:
    # The fast decoders are built lazily; racing first uses must all get the same function.
    start = threading.Barrier(8)
    got: list[Callable[[Any], Any]] = []

    def first_use() -> None:
        start.wait(timeout=10)
        got.append(decoder(JoinResult))

    threads = [threading.Thread(target=first_use) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert len(got) == 8
    assert all(hook is got[0] for hook in got)
    assert decoder(JoinResult) is got[0]


def test_generated_source_is_readable_and_shown_in_tracebacks() -> None:
    source = decoder_source(ConversationChatMessage)
    assert source.startswith("def decode_ConversationChatMessage(obj, _type=None, *, delivery=")
    # The hook's shortcut inlined; the hook itself (the rule) called only when it fails.
    assert "v = d['hidden']\n" in source
    assert "if not (v is None or type(v) is bool):" in source
    assert "d['hidden'] = H_hidden(v, T_hidden)" in source
    compile(source, "<test>", "exec")
    hook = decoder(ConversationChatMessage)
    assert linecache.getline(hook.__code__.co_filename, 1).startswith("def decode_")


def test_the_precise_decoders_are_cattrs_generated_with_the_strict_hooks() -> None:
    source = precise_source(ConversationChatMessage)
    assert source.startswith("def structure_ConversationChatMessage(o")
    assert "o['from_fabric_address_id']" in source  # the first wire spelling of the sender
    compile(source, "<test>", "exec")
    # cattrs looks up the hooks registered on the converter: the strict ones.
    assert converter.get_structure_hook(str | None)(None, str | None) is None
    with pytest.raises(DecodeError):
        converter.get_structure_hook(bool | None)("false", bool | None)
    with pytest.raises(DecodeError):
        converter.get_structure_hook(tuple[str, ...])("ab", tuple[str, ...])  # not iterated
    # A model's hook is its (fast) decoder, which cattrs calls with the type as well.
    assert converter.get_structure_hook(Address) is decoder(Address)
    assert decoder(Address)(ADDRESS, Address) == _precise(Address)(ADDRESS)


@attrs.frozen(kw_only=True)
class _Odd:
    """A test-only model with the field kinds the public models do not use (yet)."""

    anything: Any
    maybe_anything: Any = None
    ratio: float | None = None
    weight: float = 1
    label: str = None  # type: ignore[assignment]  # a default the strict check refuses
    count: int = 0
    channels: AddressChannels | None = None
    addresses: tuple[Address, ...] | None = None
    extra: Mapping[str, Any] = EMPTY


def test_field_kinds_unused_by_the_public_models_agree_on_both_paths() -> None:
    decode = _Recorded(_Odd)
    valid = [
        {"anything": None},
        {"anything": [1, {"a": None}], "maybe_anything": "x", "ratio": None, "weight": 2},
        {"anything": 0, "ratio": 3, "label": "l", "count": -5, "channels": None},
        {"anything": 0, "ratio": 0.5, "channels": {"audio": "/a"}, "addresses": [ADDRESS]},
        {"anything": 0, "addresses": None, "new": 1},
    ]
    for raw in valid:
        fast, precise = _outcome(decode.fast, raw), _outcome(decode.precise, raw)
        assert fast == precise
        assert fast[0] == "ok"
    assert decode.fallbacks == 0
    assert _outcome(decode.fast, {"anything": 1})[1].label is None  # the default, untouched
    assert type(_outcome(decode.fast, {"anything": 1, "weight": 2})[1].weight) is float
    invalid = [
        ({}, "anything"),
        ({"anything": 1, "ratio": True}, "ratio"),
        ({"anything": 1, "weight": None}, "weight"),
        ({"anything": 1, "label": None}, "label"),
        ({"anything": 1, "label": 5}, "label"),
        ({"anything": 1, "count": False}, "count"),
        ({"anything": 1, "channels": {"audio": 1}}, "channels.audio"),
        ({"anything": 1, "addresses": [ADDRESS, {**ADDRESS, "id": 2}]}, "addresses[1].id"),
        ({"anything": 1, "addresses": "a"}, "addresses"),
    ]
    for raw, field in invalid:
        before = decode.fallbacks
        fast, precise = _outcome(decode.fast, raw), _outcome(decode.precise, raw)
        assert decode.fallbacks == before + 1
        assert fast == precise
        assert fast[0] == "error"
        assert fast[1][1] == field


def test_import_builds_no_decoder_and_leaves_html_out() -> None:
    # Decoders are built on first use, and html is only for notebooks (Page._repr_html_).
    code = (
        "import sys, signalwire_chat, signalwire_chat._convert as c; "
        "print(len(c._FAST), len(c._PLANS), 'html' in sys.modules)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=True
    )
    assert done.stdout.split() == ["0", "0", "False"]


@attrs.frozen(kw_only=True, slots=False)
class _Checked:
    """A dict-backed model whose __init__ does more than store: it must still be called."""

    name: str = attrs.field(validator=attrs.validators.min_len(2))
    extra: Mapping[str, Any] = EMPTY


@attrs.frozen(kw_only=True, slots=False)
class _PostInit:
    name: str
    extra: Mapping[str, Any] = EMPTY

    def __attrs_post_init__(self) -> None:
        object.__setattr__(self, "name", self.name.upper())


def test_fast_path_stores_fields_directly_only_where_init_would_do_nothing_more() -> None:
    # The public models: the instance dict is filled in one step, and the result is the
    # same object, field for field, as calling the class.
    assert "SETATTR(inst, '__dict__', d)" in decoder_source(ConversationChatMessage)
    built = decoder(ConversationChatMessage)(dict(CHAT))
    called = ConversationChatMessage(
        **{f.name: getattr(built, f.name) for f in attrs.fields(ConversationChatMessage)}
    )
    assert built == called
    assert vars(built) == vars(called)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        built.text = "changed"  # type: ignore[misc]
    # A validator or a post-init hook means the class must be called.
    assert "return cls(**d)" in decoder_source(_Checked)
    with pytest.raises(ValueError, match="name"):
        decoder(_Checked)({"name": "x"})
    with pytest.raises(DecodeError, match=r"_Checked: .*name"):
        _precise(_Checked)({"name": "x"})
    assert "return cls(**d)" in decoder_source(_PostInit)
    assert decoder(_PostInit)({"name": "ab"}).name == "AB"
    # A slotted class has no instance dict to fill.
    assert "return cls(**d)" in decoder_source(_Odd)


@pytest.mark.parametrize(
    ("raw", "cls"),
    [
        (CHAT, ConversationChatMessage),
        ({**CHAT, "subtype": "log", "kind": "call_started", "text": None}, ConversationMessage),
        (ADDRESS, Address),
        (SUBSCRIBER, SubscriberInfo),
        (CONVERSATION, Conversation),
        ({**CHAT, "brand_new_field": {"nested": [1, 2]}}, ConversationChatMessage),
    ],
)
def test_models_pickle_and_deep_copy(raw: dict[str, Any], cls: type) -> None:
    # Messages go through multiprocessing queues and caches: they must survive the trip.
    model = structure(raw, cls)
    for copied in (pickle.loads(pickle.dumps(model)), copy.deepcopy(model)):
        assert copied == model
        assert type(copied) is type(model)
        assert copied.extra == model.extra


def test_the_shared_empty_default_survives_pickling_as_itself() -> None:
    bare = structure({k: v for k, v in CHAT.items() if k != "details"}, ConversationChatMessage)
    assert bare.details is EMPTY
    assert pickle.loads(pickle.dumps(bare)).details is EMPTY
    assert pickle.loads(pickle.dumps(EMPTY)) is EMPTY
    assert EMPTY == {}
    assert repr(EMPTY) == "{}"


def test_group_dialect_message_fields() -> None:
    msg = structure_message(GROUP_CHAT)
    assert isinstance(msg, ConversationChatMessage)
    assert msg.group_id == GROUP_CHAT["group_id"]
    assert msg.conversation_id is None
    assert msg.from_address_id == GROUP_CHAT["from_fabric_address_id"]
    assert msg.extra == {}  # both sender spellings are known fields
    assert msg.is_author is None  # history pages do not say


def test_sender_is_read_from_either_spelling_the_newer_winning() -> None:
    only_new = {k: v for k, v in GROUP_CHAT.items() if k != "from_address_id"}
    only_old = {k: v for k, v in GROUP_CHAT.items() if k != "from_fabric_address_id"}
    assert structure_message(only_new).from_address_id == GROUP_CHAT["from_fabric_address_id"]
    assert structure_message(only_old).from_address_id == GROUP_CHAT["from_address_id"]
    both = {**GROUP_CHAT, "from_fabric_address_id": "new", "from_address_id": "old"}
    assert structure_message(both).from_address_id == "new"
    assert _precise(ConversationChatMessage)(both).from_address_id == "new"
    with pytest.raises(DecodeError) as info:
        structure_message({**only_new, "from_fabric_address_id": 7})
    assert info.value.field == "from_fabric_address_id"


def test_is_author_is_strict() -> None:
    assert structure_message({**GROUP_CHAT, "is_author": True}).is_author is True
    with pytest.raises(DecodeError) as info:
        structure_message({**GROUP_CHAT, "is_author": "true"})
    assert info.value.field == "is_author"


def test_group_conversation_takes_its_id_from_group_id() -> None:
    conv = structure({"group_id": "g", "from_fabric_address_id": "a", "name": "n"}, Conversation)
    assert (conv.id, conv.group_id, conv.from_address_id) == ("g", "g", "a")
    assert conv.group is not None
    assert conv.group.id == "g"
    assert structure({"id": "c", "address_id": "x"}, Conversation).group is None
    with pytest.raises(DecodeError) as info:
        structure({"name": "n"}, Conversation)
    assert info.value.field == "id"


def test_join_and_send_results_of_the_group_dialect() -> None:
    joined = structure_join_result(
        {"group_id": "g", "fabric_address_ids": ["b", "a"], "from_fabric_address_id": "a"}
    )
    assert joined.group is not None
    assert (joined.group.id, joined.group.address_ids, joined.group.from_address_id) == (
        "g",
        ("b", "a"),
        "a",
    )
    with pytest.raises(DecodeError) as info:
        structure_join_result({"group_id": "g", "fabric_address_ids": ["b", 1]})
    assert info.value.field == "fabric_address_ids[1]"
    sent = structure_send_result({"group_id": "g", "text": "t", "from_fabric_address_id": "a"})
    assert (sent.group_id, sent.text, sent.from_address_id, sent.message) == ("g", "t", "a", None)
    full = structure_send_result(GROUP_CHAT)
    assert full.message is not None
    assert full.message.group_id == GROUP_CHAT["group_id"]
    with pytest.raises(DecodeError):
        structure_send_result({"group_id": 5, "text": "t"})
