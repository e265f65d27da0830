"""server_text: a printable text skips the control-character substitution, and nothing else
changes (the request id of every traced call goes through it)."""

from __future__ import annotations

import re

from hypothesis import example, given
from hypothesis import strategies as st

from signalwire_chat._redact import TEXT_KEEP, SecretForms, redact, server_text

SECRET = "eyJhbGciOiJkaXIifQ.c2VjcmV0LXBhcnQtb25lLWxvbmc.QUJDREVGR0hJSktMTU5PUA"
#: What every character of a server text must not be once cleaned: C0 and C1 controls, DEL,
#: the Unicode line and paragraph separators, the bidirectional controls and lone surrogates
#: (each becomes "?").
CONTROL = re.compile(
    r"[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069\ud800-\udfff]"
)


def reference(value: str, secrets: tuple[str, ...]) -> str | None:
    """The cleaning as documented, written the plain way: redact, substitute, cap."""
    if not value:
        return None
    text = CONTROL.sub("?", redact(value, secrets))
    return text if len(text) <= TEXT_KEEP else text[: TEXT_KEEP - 3] + "..."


PIECES = st.one_of(
    st.text(max_size=12),
    st.sampled_from(["\n", "\r", "\t", "\x00", "\x7f", "\x85", "\u2028", "\u2029", "\u202e"]),
    st.sampled_from(["\u2066", "\u061c", "\u200f", "\ud800", "\udfff", "\u200d", "\u00ad"]),
    st.sampled_from([SECRET, "c2VjcmV0LXBhcnQtb25lLWxvbmc", "\u00a0", "\u200b", "x" * 199]),
)


@given(st.lists(PIECES, max_size=24).map("".join))
@example("0f3c1c0e-4a3b-4c1e-9d7a-1b2c3d4e5f60")
@example(f"id {SECRET}\n")
@example("a\u2028b\x85c\u00a0d")
def test_server_text_is_the_documented_cleaning(value: str) -> None:
    secrets = (SECRET,)
    expected = reference(value, secrets)
    assert server_text(value, secrets) == expected
    assert server_text(value, SecretForms(secrets)) == expected
    if expected is not None:
        assert not CONTROL.search(expected)
        assert SECRET not in expected


def test_control_characters_are_still_replaced_and_the_text_capped() -> None:
    assert server_text("req\r\nX-Injected: 1", ()) == "req??X-Injected: 1"
    # A bidi override reorders what a terminal shows; a lone surrogate makes printing or
    # logging the error fail to encode. Both go; a joiner, which does neither, stays.
    cleaned = server_text("file \u202etxt.exe\u202c of \ud800 \u200d", ())
    assert cleaned == "file ?txt.exe? of ? \u200d"
    assert cleaned.encode("utf-8")
    assert server_text("a\u2028b\x85c", ()) == "a?b?c"
    assert server_text("x" * 500, ()) == "x" * (TEXT_KEEP - 3) + "..."
    assert server_text(f"id={SECRET}", (SECRET,)) == "id=[redacted]"
    assert server_text("", ()) is None
    assert server_text(None, ()) is None
