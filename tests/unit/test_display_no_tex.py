"""Notebook tables of other people's text are marked for MathJax to leave alone.

JupyterLab and Notebook run MathJax over every HTML output, so ``$\\color{red}{Admin}$`` as a
display name would show a red "Admin" and "$5 ... $10" would lose its dollars (the browser
test ``tests/jupyter/test_jupyterlab_math.py`` shows it). Escaping the HTML does not help:
MathJax reads text nodes. Every table is wrapped in an element of the classes MathJax skips.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from signalwire_chat import ConversationChatMessage
from signalwire_chat._convert import structure
from signalwire_chat._display import html_table

NAME = r"$\color{red}{\text{Admin}}$"
TEXT = r"pay $5 now or $\href{https://evil.example/}{here}$"
MESSAGE: dict[str, Any] = {
    "id": "m1",
    "ts": 1796165694.0,
    "type": "message",
    "subtype": "chat",
    "from_address_id": "a1",
    "user_name": NAME,
    "text": TEXT,
}

_WRAPPED = re.compile(r"<div class='([^']*)'><table>.*</table></div>", re.DOTALL)


def _skipped_by_mathjax(html: str) -> bool:
    match = _WRAPPED.fullmatch(html)
    if match is None:
        return False
    classes = match.group(1).split()
    return "mathjax_ignore" in classes and "tex2jax_ignore" in classes


def test_html_table_is_inside_what_mathjax_2_and_3_skip() -> None:
    assert _skipped_by_mathjax(html_table(("text",), [[TEXT]], caption=NAME))


@pytest.mark.parametrize("shown", ["message", "model fields"])
def test_a_message_with_tex_in_its_name_and_text_is_not_typeset(shown: str) -> None:
    message = structure(MESSAGE, ConversationChatMessage)
    html = message._repr_html_()
    if shown == "model fields":
        from signalwire_chat import SendResult  # a model shown as its fields

        html = structure(
            {"id": "m1", "conversation_id": "c", "text": TEXT}, SendResult
        )._repr_html_()
    assert _skipped_by_mathjax(html), html
