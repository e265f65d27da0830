"""safe_text, the one gate for text from the service on its way to a person's terminal."""

from __future__ import annotations

import unicodedata

from hypothesis import given
from hypothesis import strategies as st

from signalwire_chat._display import safe_text

BIDI = set("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def _acts(ch: str) -> bool:
    """What a terminal may act on rather than show (the reference, written naively)."""
    return unicodedata.category(ch) in ("Cc", "Cs", "Zl", "Zp") or ch in BIDI


@given(st.text(st.characters(codec=None, categories=None), max_size=60))
def test_nothing_a_terminal_acts_on_gets_through_and_it_is_idempotent(text: str) -> None:
    shown = safe_text(text)
    assert not any(_acts(ch) for ch in shown)
    assert safe_text(shown) == shown
    if not any(_acts(ch) for ch in text):
        assert shown == text  # ordinary text, backslashes and emoji included, is untouched


def test_escapes_read_as_repr_writes_them() -> None:
    assert safe_text("a\x1b]0;t\x07\x9b\u202e\u2028\r\n\ud800 \\ é 😀") == (
        "a\\x1b]0;t\\x07\\x9b\\u202e\\u2028\\r\\n\\ud800 \\ é 😀"
    )
