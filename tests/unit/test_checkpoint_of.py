"""``Checkpoint.of``: the checkpoint the constructor makes, or the error it raises, every time.

The bridge makes one per message, so ``of`` checks the usual case itself and remembers the
routes the validator passed; these tests hold it to the constructor, valid or not, first call
or later.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from signalwire_chat import Checkpoint, ConversationChatMessage, InvalidArgumentError

routes = st.sampled_from(["inbox", "group:g1", "address:a1", "group:", "Inbox", "group:\x00"]) | (
    st.builds(lambda kind, name: f"{kind}:{name}", st.sampled_from(["group", "address"]), st.text())
)
ids = st.text(max_size=300) | st.sampled_from(["m1", "m\n1", ""])
stamps = st.floats() | st.integers(-(2**60), 2**60) | st.booleans()


def _outcome(make: Any) -> Any:
    try:
        made = make()
    except InvalidArgumentError as exc:
        return ("refused", str(exc))
    return ("made", type(made), made.route, made.message_id, repr(made.ts), type(made.ts))


def _message(message_id: str, ts: Any) -> Any:
    # Built by hand, as a caller may: attrs does not check the types.
    return ConversationChatMessage(id=message_id, ts=ts, subtype="chat", text="t")


@settings(max_examples=400, deadline=None)
@given(route=routes, message_id=ids, ts=stamps)
def test_of_is_the_constructor(route: str, message_id: str, ts: Any) -> None:
    message = _message(message_id, ts)
    expected = _outcome(lambda: Checkpoint(route=route, message_id=message_id, ts=ts))
    for _ in range(2):  # the second time, a valid route is one it remembers
        assert _outcome(lambda: Checkpoint.of(message, route=route)) == expected


@pytest.mark.parametrize("ts", [math.nan, math.inf, True, "1.0", None])
def test_a_bad_ts_is_refused_on_a_known_route(ts: Any) -> None:
    Checkpoint.of(_message("m1", 1.0), route="group:known")
    with pytest.raises(InvalidArgumentError, match="ts"):
        Checkpoint.of(_message("m2", ts), route="group:known")


def test_an_int_ts_becomes_a_float_and_the_result_is_frozen() -> None:
    checkpoint = Checkpoint.of(_message("m1", 5), route="inbox")
    assert checkpoint == Checkpoint(route="inbox", message_id="m1", ts=5.0)
    assert type(checkpoint.ts) is float
    again = Checkpoint.of(_message("m1", 5.0), route="inbox")
    assert again == checkpoint
    assert hash(again) == hash(checkpoint)
    with pytest.raises(AttributeError):
        again.ts = 6.0  # type: ignore[misc]
