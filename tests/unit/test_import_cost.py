"""What `import signalwire_chat` (with the realtime side, as after a first subscribe) builds.

The import row of the benchmark holds it to 1.10x the import of its dependencies. Helpers that a
first subscribe and its first message never use (notebook displays, notebook cell detection)
load on first use, and still work then; the models' equality is attrs' own, built without
generating code per class.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from typing import Any

import attrs
import pytest

from signalwire_chat import models

_LOADED = """
import json, sys
import signalwire_chat, signalwire_chat._realtime
print(json.dumps(sorted(m for m in sys.modules if m.startswith("signalwire_chat"))))
"""


def _run(code: str) -> str:
    """The output of ``code`` run by a fresh interpreter."""
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    return done.stdout


def _loaded_by_import() -> set[str]:
    return set(json.loads(_run(_LOADED)))


def test_the_import_leaves_notebook_helpers_to_first_use() -> None:
    loaded = _loaded_by_import()
    assert "signalwire_chat._realtime._hub" in loaded  # the realtime side is loaded
    assert "signalwire_chat._display" not in loaded


def test_a_model_still_shows_itself_in_a_notebook() -> None:
    code = (
        "import sys, signalwire_chat as s\n"
        "a = s.Address(id='a1', name='lobby', type='room', display_name='Lobby')\n"
        "print('signalwire_chat._display' in sys.modules)\n"
        "html = a._repr_html_()\n"
        "class P:\n"
        "    def text(self, t): print(t)\n"
        "a._repr_pretty_(P(), False)\n"
        "print('signalwire_chat._display' in sys.modules, 'Lobby' in html)\n"
    )
    assert _run(code).splitlines() == ["False", "Address(Lobby, lobby, room, a1)", "True True"]


# --- equality: attrs' semantics -----------------------------------------------------------------

_SAMPLES: dict[type, dict[str, Any]] = {
    models.ConversationMessage: {"id": "m1", "ts": 1.5, "subtype": "log"},
    models.ConversationChatMessage: {"id": "m1", "ts": 1.5, "subtype": "chat", "text": "hi"},
    models.Conversation: {"id": "c1"},
    models.AddressChannels: {},
    models.Address: {"id": "a1", "name": "n", "type": "room"},
    models.SubscriberInfo: {"id": "s1"},
    models.Group: {"id": "g1"},
    models.SendResult: {},
    models.JoinResult: {},
}


class _Odd:
    """A value unequal to everything, itself included (as NaN is)."""

    def __eq__(self, other: object) -> bool:
        return False

    __hash__ = object.__hash__


@pytest.mark.parametrize("cls", list(_SAMPLES), ids=lambda c: c.__name__)
def test_equality_compares_each_compared_field(cls: type) -> None:
    base = cls(**_SAMPLES[cls])
    assert base == cls(**_SAMPLES[cls])
    assert (base != cls(**_SAMPLES[cls])) is False
    for field in attrs.fields(cls):
        changed = attrs.evolve(base, **{field.name: _Odd()})
        # A field attrs compares makes them differ; one it leaves out (delivery) does not.
        assert (changed == base) is (not field.eq), field.name
        assert (changed != base) is field.eq, field.name
        # attrs compares with ==, never by identity: a value unequal to itself is unequal.
        assert (changed == attrs.evolve(changed)) is (not field.eq), field.name


@pytest.mark.parametrize(("left", "right"), list(itertools.permutations(_SAMPLES, 2)))
def test_models_of_other_classes_are_never_equal(left: type, right: type) -> None:
    a, b = left(**_SAMPLES[left]), right(**_SAMPLES[right])
    assert a.__eq__(b) is NotImplemented
    assert a.__ne__(b) is NotImplemented
    assert a != b


def test_a_chat_message_is_not_equal_to_the_same_message_of_the_base_class() -> None:
    fields = _SAMPLES[models.ConversationChatMessage]
    chat = models.ConversationChatMessage(**fields)
    assert chat != models.ConversationMessage(**fields)
    assert chat == models.ConversationChatMessage(**fields)
    assert hash(chat) == hash(models.ConversationChatMessage(**fields))
