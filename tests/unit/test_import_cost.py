"""What `import signalwire_chat` (with the realtime side, as after a first subscribe) builds.

The import row of the benchmark holds it to 1.10x the import of its dependencies. Helpers that a
first subscribe and its first message never use (notebook displays, notebook cell detection)
load on first use, and still work then; the converter is built at the first model read; the
models' equality is attrs' own, built without generating code per class.
"""

from __future__ import annotations

import itertools
import json
import pickle
import re
import subprocess
import sys
from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from signalwire_chat import models
from signalwire_chat._realtime._interactive import _cell_file
from signalwire_chat._redact import server_text
from signalwire_chat._validate import check_str, looks_like_uuid, token_problem
from signalwire_chat.errors import InvalidArgumentError

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
    assert "signalwire_chat._realtime._stream" not in loaded  # ChatClient.stream() loads it


def test_the_import_leaves_the_converter_to_the_first_model_read() -> None:
    code = (
        "import signalwire_chat, signalwire_chat._realtime\n"
        "import signalwire_chat._convert as c\n"
        "print(c._CONVERTER is None)\n"
        "m = signalwire_chat.Address(id='a1', name='lobby', type='room', display_name='L')\n"
        "d = c.unstructure(m)\n"
        "print(c._CONVERTER is not None, d['id'], c.structure(d, type(m)) == m)\n"
    )
    assert _run(code).split() == ["True", "True", "a1", "True"]


def test_threads_racing_to_the_first_read_share_one_converter() -> None:
    code = (
        "import threading, signalwire_chat._convert as c\n"
        "seen = []\n"
        "start = threading.Barrier(8)\n"
        "def read():\n"
        "    start.wait()\n"
        "    seen.append(c._converter())\n"
        "threads = [threading.Thread(target=read) for _ in range(8)]\n"
        "for t in threads: t.start()\n"
        "for t in threads: t.join()\n"
        "print(len(seen), len({id(x) for x in seen}), c.converter is seen[0])\n"
    )
    assert _run(code).split() == ["8", "1", "True"]


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


# --- shape checks without regexes: the same answers as the regexes they replace -------------

# The regexes these checks were, kept here as the oracle.
_TOKEN = re.compile(r"[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]*){2}(?:(?:\.[A-Za-z0-9_-]*){2})?")
_UUID = re.compile(r"[0-9A-Fa-f]{8}-(?:[0-9A-Fa-f]{4}-){3}[0-9A-Fa-f]{12}")
_SURROGATE = re.compile("[\ud800-\udfff]")
_CONTROL = re.compile(
    r"[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069\ud800-\udfff]"
)

# Text drawn mostly from the characters that matter to each check, and any other.
_TOKENISH = st.text(st.sampled_from("aZ09_-.=+/ \n\x00é"), max_size=12) | st.text(max_size=8)
_UUIDISH = st.text(st.sampled_from("09afAFgG-x \n٣"), max_size=40) | st.builds(
    lambda u, i, c: u[:i] + c + u[i + 1 :],
    st.uuids().map(str),
    st.integers(0, 35),
    st.sampled_from("-0aFg\n٣é"),
)
_ANY = st.text(st.characters(codec=None, exclude_categories=()), max_size=12)


@given(_TOKENISH)
def test_the_token_shape_is_the_regex_s(token: str) -> None:
    assert (token_problem(token, "token") is None) is bool(_TOKEN.fullmatch(token))


@given(_UUIDISH)
def test_the_uuid_shape_is_the_regex_s(value: str) -> None:
    assert looks_like_uuid(value) is bool(_UUID.fullmatch(value))


def test_the_uuid_shape_on_edges() -> None:
    good = "0123abcd-ABCD-4ef0-8a9b-0123456789aF"
    assert looks_like_uuid(good)
    for bad in (good + "\n", " " + good, good.replace("-", "", 1) + "0", good[:-1] + "٣", ""):
        assert not looks_like_uuid(bad), bad
        assert not _UUID.fullmatch(bad)


@given(_ANY)
def test_a_lone_surrogate_is_refused_as_the_regex_says(text: str) -> None:
    value = "x" + text
    if _SURROGATE.search(value):
        with pytest.raises(InvalidArgumentError, match="lone surrogate"):
            check_str(value, "text")
    else:
        assert check_str(value, "text") == value


@given(_ANY)
def test_server_text_replaces_what_the_regex_replaced(text: str) -> None:
    assert server_text(text, (), 10_000) == (_CONTROL.sub("?", text) or None)


def test_cell_file_names_still_recognised() -> None:
    assert _cell_file("<ipython-input-3-1a2b>") == ("ipython", "1a2b")
    assert _cell_file("/tmp/ipykernel_1234/27353.py") == ("/tmp/ipykernel_1234", "27353")
    assert _cell_file("<ipython-input-3-1a2b>x") is None
    assert _cell_file("/home/me/bot.py") is None
    assert _cell_file("<stdin>") is None


def test_a_script_s_subscription_compiles_no_notebook_regex() -> None:
    # cell_origin runs at every subscribe; a callback of a script's __main__ reaches the file
    # name test, which compiles the cell regexes only for a name that can be a cell.
    code = (
        "import re\n"
        "import signalwire_chat._realtime._interactive as i\n"
        "def on_message(m): pass\n"
        "print(i.cell_origin(on_message), any('ipy' in repr(k) for k in re._cache))\n"
    )
    assert _run(code).split() == ["None", "False"]


def test_the_import_compiles_few_regexes() -> None:
    # sre compiles in Python: the import compiled eleven, some 14M instructions of the 95M it
    # added to its dependencies; what a first subscribe needs is now tested with str methods.
    code = (
        "import re, requests, websocket, attrs, cattrs\n"
        "before = set(re._cache)\n"
        "import signalwire_chat, signalwire_chat._realtime\n"
        "print(len(set(re._cache) - before))\n"
    )
    assert int(_run(code)) <= 3


def test_realtime_options_compare_and_hash_by_every_field() -> None:
    from signalwire_chat import RealtimeOptions

    base = RealtimeOptions()
    assert base == RealtimeOptions()
    assert hash(base) == hash(RealtimeOptions())
    assert {base: 1}[RealtimeOptions()] == 1
    for field in attrs.fields(RealtimeOptions):
        changed = attrs.evolve(base, **{field.name: getattr(base, field.name) + 1})
        assert changed != base, field.name
        assert (changed == base) is False, field.name
        assert changed == attrs.evolve(changed)
        assert hash(changed) == hash(attrs.evolve(changed))
    assert base.__eq__(object()) is NotImplemented
    # attrs' repr: every field, in order, as name=repr(value).
    shown = attrs.evolve(base, queue_size=7, ping_timeout=2.5)
    names = [f.name for f in attrs.fields(RealtimeOptions)]
    fields = ", ".join(f"{name}={getattr(shown, name)!r}" for name in names)
    assert repr(shown) == f"RealtimeOptions({fields})"
    assert "queue_size=7, " in repr(shown)
    assert pickle.loads(pickle.dumps(base)) == base
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        base.queue_size = 5  # type: ignore[misc]
