"""Decoding one chat message: cattrs' own generated structure function against ours.

The question of issue 10 ("cattrs does the decoding"): can ``cattrs.gen.make_dict_structure_fn``
with strict primitive hooks (the same checks as ours: exact types, int widened to float, objects
for the mapping fields) and an ``extra`` collector replace the fast decoder of ``_convert`` and
keep ``iter_messages`` at or below 0.85x a plain requests loop? This measures the per-message
cost of both in the same process, on the message shape the service sends today (group dialect),
and prints what the difference would add to reading the 10,000-message history of the
``iter_messages`` bench.

    .venv/bin/python benchmarks/decode_cattrs.py
"""

from __future__ import annotations

import statistics
import timeit
import typing
from collections.abc import Mapping
from typing import Any

import attrs
import cattrs
from cattrs.gen import make_dict_structure_fn, override

from signalwire_chat._convert import decoder
from signalwire_chat.errors import DecodeError
from signalwire_chat.models import ConversationChatMessage

MESSAGE: dict[str, Any] = {
    "id": "6f1d3c2e-0000-4000-8000-000000000001",
    "type": "message",
    "subtype": "chat",
    "kind": None,
    "hidden": False,
    "group_id": "a0bc8a30-0000-4000-8000-0000000000aa",
    "from_fabric_address_id": "aaaaaaaa-0000-0000-0000-00000000a001",
    "from_address_id": "aaaaaaaa-0000-0000-0000-00000000a001",
    "user_id": "cecbe021-ff86-4ac6-bdf3-399ca477ad6f",
    "ts": 1708192187.6779745,
    "metadata": {},
    "details": {},
    "text": "history message number 1",
    "conversation_name": "Alice",
    "user_name": "Bob",
}


def _strict(kind: type, name: str) -> Any:
    def hook(value: Any, _type: Any) -> Any:
        if type(value) is kind:
            return value
        raise DecodeError(f"expected {name}")

    return hook


def _float(value: Any, _type: Any) -> float:
    if type(value) is float:
        return value  # type: ignore[no-any-return]
    if type(value) is int:
        return float(value)
    raise DecodeError("expected a number")


def cattrs_decoder() -> Any:
    """The cattrs way: a converter with strict hooks, a generated function, an extra collector."""
    conv = cattrs.Converter(detailed_validation=False, forbid_extra_keys=False)
    conv.register_structure_hook(str, _strict(str, "a string"))
    conv.register_structure_hook(bool, _strict(bool, "a boolean"))
    conv.register_structure_hook(int, _strict(int, "an integer"))
    conv.register_structure_hook(float, _float)
    conv.register_structure_hook_func(
        lambda t: typing.get_origin(t) in (Mapping, dict), _strict(dict, "an object")
    )
    cls = ConversationChatMessage
    structure = make_dict_structure_fn(
        cls,
        conv,
        _cattrs_forbid_extra_keys=False,
        from_address_id=override(rename="from_fabric_address_id"),
        extra=override(omit=True),
    )
    known = frozenset(f.name for f in attrs.fields(cls)) | {"from_fabric_address_id"}

    def decode(obj: dict[str, Any]) -> Any:
        message = structure(obj, cls)
        if not known.issuperset(obj):
            message = attrs.evolve(message, extra={k: v for k, v in obj.items() if k not in known})
        return message

    return decode


def per_call_us(fn: Any, number: int = 50_000, repeat: int = 7) -> float:
    times = timeit.repeat(lambda: fn(MESSAGE), number=number, repeat=repeat)
    return statistics.median(times) / number * 1e6


def main() -> None:
    ours = decoder(ConversationChatMessage)
    theirs = cattrs_decoder()
    assert ours(MESSAGE) == theirs(MESSAGE)  # the same model, field for field
    ours_us = per_call_us(ours)
    cattrs_us = per_call_us(theirs)
    print(f"ours (generated fast decoder): {ours_us:.2f} us/message")
    print(f"cattrs make_dict_structure_fn: {cattrs_us:.2f} us/message")
    print(f"ratio cattrs/ours: {cattrs_us / ours_us:.2f}")
    extra_ms = (cattrs_us - ours_us) * 10_000 / 1000
    print(f"10,000 messages (the iter_messages bench): +{extra_ms:.1f} ms of CPU with cattrs")


if __name__ == "__main__":
    main()
