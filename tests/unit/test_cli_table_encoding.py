"""A table on a terminal that is not UTF-8 keeps its borders in line.

What the stream cannot encode is written as ``\\xe9`` or ``\\u6f22`` (several columns), so rich
must measure that, not the one or two columns of the character, or every row holding one
pushes its right border out.
"""

from __future__ import annotations

import io

import pytest

from signalwire_chat import ConversationChatMessage
from signalwire_chat._convert import structure
from signalwire_chat.cli._output import Output


def _message(text: str, name: str) -> ConversationChatMessage:
    wire = {
        "id": f"m-{text}",
        "ts": 1796165694.0,
        "type": "message",
        "subtype": "chat",
        "from_address_id": "a1",
        "user_name": name,
        "text": text,
    }
    return structure(wire, ConversationChatMessage)


@pytest.mark.parametrize("encoding", ["ascii", "latin-1", "cp1252"])
def test_rows_with_characters_the_terminal_cannot_show_stay_aligned(
    encoding: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "100")
    raw = io.BytesIO()
    stdout = io.TextIOWrapper(raw, encoding=encoding, errors="backslashreplace")
    out = Output(as_json=False, stdout=stdout)
    out.table(
        [
            _message("naïve café 漢字 \U0001f600 end", "Zoë"),
            _message("plain", "Bob"),
        ],
        title="chat of café",
    )
    stdout.flush()
    lines = raw.getvalue().decode(encoding).splitlines()[1:]  # the title is not boxed
    assert len({len(line) for line in lines}) == 1, "\n".join(lines)
    shown = "\n".join(lines)
    assert "\\u6f22\\u5b57" in shown  # still shown escaped, as the guide says
