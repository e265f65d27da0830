"""One decoder: the fast path follows the converter's hooks, and ``delivery`` is a real field.

The fast decoder of a model is built from the hooks registered on the one converter: where a
hook declares a shortcut (a test true only of values it returns unchanged) the test is
inlined, and otherwise, or when the test fails, the hook itself is called. These tests check
each shortcut against its hook on hostile values, that a hook registered on the converter is
what the fast path applies, and that how a subscription got a message is carried by the
message itself (a field set when it is built), never written into an existing instance.
"""

from __future__ import annotations

import copy
import math
import pickle
from collections.abc import Mapping
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from signalwire_chat import ConversationChatMessage, DecodeError
from signalwire_chat._convert import (
    _SHORTCUTS,
    FLOAT_MAX,
    FLOAT_MIN,
    _passes,
    converter,
    decoder,
    structure_chat_message,
    unstructure,
)
from signalwire_chat._validate import MAX_JSON_DEPTH
from signalwire_chat.models import EMPTY, _delivered

WIRE: dict[str, Any] = {
    "id": "6f1d3c2e-0000-4000-8000-000000000001",
    "group_id": "a0bc8a30-0000-4000-8000-0000000000aa",
    "from_fabric_address_id": "aaaaaaaa-0000-0000-0000-00000000a001",
    "ts": 1708192187.6779745,
    "type": "message",
    "subtype": "chat",
    "details": {},
    "metadata": {},
    "text": "hi",
}

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=5)
)
json_like = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=10,
)
EDGES = [None, True, False, 0, 1, -1, 2**80, 0.0, -0.0, math.nan, math.inf, -math.inf, 1e300]
EDGES += [FLOAT_MIN, FLOAT_MAX, "", "x", [], [1], {}, {"a": 1}, {"a": {"b": [1]}}, EMPTY]


def _check_shortcuts(value: Any) -> None:
    # Resolve the hooks the models use, so that the shortcuts of the optional wrappers exist.
    for model in (ConversationChatMessage,):
        decoder(model)
    for hook, shortcut in list(_SHORTCUTS.items()):
        if not _passes(shortcut, value):
            continue
        try:
            result = hook(value, None)
        except DecodeError:
            pytest.fail(f"{shortcut!r} takes {value!r}, which its hook {hook.__name__} refuses")
        assert result is value, f"{hook.__name__} changes {value!r}, which {shortcut!r} takes"


@pytest.mark.parametrize("value", EDGES, ids=repr)
def test_each_shortcut_takes_only_values_its_hook_returns_unchanged(value: Any) -> None:
    _check_shortcuts(value)


@settings(max_examples=300, deadline=None, database=None)
@given(value=json_like)
def test_each_shortcut_agrees_with_its_hook_on_any_json(value: Any) -> None:
    _check_shortcuts(value)


def test_the_shortcuts_cover_the_strict_hooks_of_every_primitive() -> None:
    for tp in (str, int, float, bool, str | None, int | None, float | None, bool | None):
        assert converter.get_structure_hook(tp) in _SHORTCUTS
    assert converter.get_structure_hook(Mapping[str, Any]) in _SHORTCUTS
    assert converter.get_structure_hook(Any) in _SHORTCUTS


class _Celsius(float):
    """A type only this test registers a hook for."""


def _celsius(value: Any, _type: Any = None) -> _Celsius:
    if type(value) is not str or not value.endswith("C"):
        raise DecodeError(f"expected a temperature like '21C', got {value!r}")
    return _Celsius(value[:-1])


converter.register_structure_hook(_Celsius, _celsius)


@attrs.frozen(kw_only=True, slots=False)
class _Reading:
    where: str
    temperature: _Celsius
    extra: Mapping[str, Any] = EMPTY


def test_the_fast_path_applies_the_hook_registered_on_the_converter() -> None:
    # One set of rules: what the converter says of a type is what the fast path does.
    reading = decoder(_Reading)({"where": "lab", "temperature": "21C", "new": 1})
    assert reading.temperature == 21.0
    assert type(reading.temperature) is _Celsius
    assert reading.extra == {"new": 1}
    assert converter.structure({"where": "lab", "temperature": "3C"}, _Reading).temperature == 3.0
    with pytest.raises(DecodeError) as info:
        decoder(_Reading)({"where": "lab", "temperature": 21})
    assert info.value.field == "temperature"
    assert "expected a temperature like '21C', got 21" in info.value.message


def test_delivery_is_a_field_set_when_the_message_is_built() -> None:
    field = attrs.fields_dict(ConversationChatMessage)["delivery"]
    assert field.default is None
    live = structure_chat_message(WIRE, delivery="live")
    assert live.delivery == "live"
    rest = structure_chat_message(WIRE)
    assert rest.delivery is None
    assert live == rest  # equality ignores it
    assert hash(live) == hash(rest)
    assert "delivery" not in repr(live)
    assert "delivery" not in unstructure(live)
    built = ConversationChatMessage(id="m", ts=1.0, subtype="chat", text="t", delivery="catch_up")
    assert built.delivery == "catch_up"
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        live.delivery = "catch_up"  # type: ignore[misc]


def test_delivery_survives_copies_and_evolve() -> None:
    live = structure_chat_message(WIRE, delivery="live")
    assert attrs.evolve(live, text="edited").delivery == "live"
    assert pickle.loads(pickle.dumps(live)).delivery == "live"
    assert copy.deepcopy(live).delivery == "live"


def test_a_catch_up_message_is_a_copy_and_the_read_one_is_untouched() -> None:
    read = structure_chat_message(WIRE)
    caught_up = _delivered(read, "catch_up")
    assert caught_up.delivery == "catch_up"
    assert read.delivery is None
    assert caught_up is not read
    assert caught_up == read


def test_a_wire_key_named_delivery_is_an_unknown_field_on_the_fast_and_detailed_paths() -> None:
    wire = {**WIRE, "delivery": "live"}
    assert structure_chat_message(wire).delivery is None
    assert structure_chat_message(wire).extra == {"delivery": "live"}
    # An int where a float is expected is widened by the hook, delivery still set.
    widened = structure_chat_message({**wire, "ts": 1708192187}, delivery="live")
    assert (widened.delivery, type(widened.ts)) == ("live", float)
    # The detailed path (an object nested deeper than allowed, in details) too.
    deep: Any = 1
    for _ in range(MAX_JSON_DEPTH + 1):
        deep = [deep]
    with pytest.raises(DecodeError) as info:
        structure_chat_message({**wire, "details": {"a": deep}}, delivery="live")
    assert info.value.field == "details"
