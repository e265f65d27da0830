"""``to_dict()`` of the message models: the converter's dict, built without it when it can be.

The Redis bridge makes one per message, so the message models build it themselves; these
tests hold that to exactly what the converter's ``unstructure`` gives (keys, order, types, deep
copies), over random messages, and check that plain JSON values never reach cattrs.
"""

from __future__ import annotations

import math
import types
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from signalwire_chat import ConversationChatMessage, ConversationMessage, _convert
from signalwire_chat.models import EMPTY

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=6)  # any code point, lone surrogates included
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=12,
)
# What a caller may put in a model built by hand: the converter turns these into other types
# (a tuple into a list, a MappingProxyType into a dict) or keeps them (a set).
odd_values = st.recursive(
    scalars | st.frozensets(st.integers(), max_size=2),
    lambda inner: (
        st.tuples(inner, inner)
        | st.lists(inner, max_size=2)
        | st.dictionaries(st.text(max_size=3) | st.integers(), inner, max_size=2).map(
            types.MappingProxyType
        )
        | st.dictionaries(st.text(max_size=3), inner, max_size=2)
    ),
    max_leaves=6,
)
json_objects = st.dictionaries(st.text(max_size=8), json_values, max_size=4)
odd_objects = st.dictionaries(st.text(max_size=4), odd_values, max_size=3)
optional_text = st.none() | st.text(max_size=12)
optional_bool = st.none() | st.booleans()


@st.composite
def messages(draw: st.DrawFn, objects: st.SearchStrategy[Any] = json_objects) -> Any:
    chat = draw(st.booleans())
    cls = ConversationChatMessage if chat else ConversationMessage
    fields: dict[str, Any] = {
        "id": draw(st.text(min_size=1, max_size=12)),
        "ts": draw(st.floats(allow_nan=False) | st.integers(min_value=0, max_value=2**40)),
        "subtype": "chat" if chat else draw(st.sampled_from(["log", "chat", "💬"])),
        "text": draw(st.text(max_size=30) if chat else optional_text),
    }
    for name in ("group_id", "conversation_id", "user_id", "from_address_id", "address_id"):
        fields[name] = draw(optional_text)
    for name in ("kind", "user_name", "conversation_name"):
        fields[name] = draw(optional_text)
    fields["is_author"] = draw(optional_bool)
    fields["hidden"] = draw(optional_bool)
    fields["type"] = draw(st.sampled_from(["message", "ünïcode"]))
    fields["details"] = draw(st.just(EMPTY) | objects)
    fields["metadata"] = draw(st.none() | st.just(EMPTY) | objects)
    # Unknown wire fields, some spelled as known ones (the known field wins).
    fields["extra"] = draw(
        st.just(EMPTY)
        | objects
        | st.dictionaries(st.sampled_from(["id", "text", "brand_new", "ts"]), json_values)
    )
    fields["delivery"] = draw(st.sampled_from([None, "live", "catch_up"]))
    return cls(**fields)


def shape(value: Any) -> Any:
    """``value`` with every dict's key order and every leaf's exact type made comparable."""
    if type(value) is dict:
        return ["dict", [(shape(k), shape(v)) for k, v in value.items()]]
    if type(value) in (list, tuple):
        return [type(value).__name__, [shape(v) for v in value]]
    if type(value) is float and math.isnan(value):
        return ["float", "nan"]
    return [type(value).__name__, repr(value)]


def containers(value: Any) -> list[Any]:
    """Every dict and list inside ``value`` (itself included)."""
    if isinstance(value, dict):
        return [value, *(c for v in value.values() for c in containers(v))]
    if isinstance(value, (list, tuple)):
        return [value, *(c for v in value for c in containers(v))]
    return []


def _same_as_the_converter(message: Any) -> None:
    ours, theirs = message.to_dict(), _convert.unstructure(message)
    assert ours == theirs
    assert shape(ours) == shape(theirs)  # the same key order and the same types, all the way
    # A copy: nothing of the model is handed out (changing the dict leaves the model as it is).
    inside = {
        id(c)
        for name in ("details", "metadata", "extra")
        for c in containers(getattr(message, name))
    }
    assert not any(id(c) in inside for c in containers(ours))


@settings(max_examples=300, deadline=None)
@given(messages())
def test_to_dict_is_the_converters_dict_for_json_values(message: Any) -> None:
    _same_as_the_converter(message)


@settings(max_examples=200, deadline=None)
@given(messages(odd_objects))
def test_to_dict_is_the_converters_dict_for_values_json_does_not_have(message: Any) -> None:
    _same_as_the_converter(message)


def test_a_message_of_json_values_is_exported_without_the_converter(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    message = ConversationChatMessage(
        id="m1",
        ts=1.5,
        subtype="chat",
        text='héllo "x" \ud800',
        metadata={"a": [1, {"b": None}]},
        extra={"new": True, "id": "not this one"},
    )
    expected = _convert.unstructure(message)

    def refused(model: Any) -> Any:
        raise AssertionError("the converter was called")

    monkeypatch.setattr(_convert, "unstructure", refused)
    assert message.to_dict() == expected
    assert list(message.to_dict()) == list(expected)
    assert message.to_dict()["id"] == "m1"  # a known field wins over an unknown one


def test_values_the_fast_path_does_not_take_go_to_the_converter() -> None:
    message = ConversationMessage(
        id="m1",
        ts=1,
        subtype="log",
        details=types.MappingProxyType({"k": (1, 2)}),
        metadata={"s": frozenset({3})},
    )
    exported = message.to_dict()
    assert exported["details"] == {"k": [1, 2]}  # as the converter makes it
    assert exported["metadata"] == {"s": frozenset({3})}
    assert exported == _convert.unstructure(message)
