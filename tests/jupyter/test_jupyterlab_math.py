"""Other people's text in a notebook's HTML tables is shown as text, never typeset as TeX.

JupyterLab runs MathJax over every HTML output: ``$...$``, ``\\(...\\)`` and ``$$...$$`` in a
message would be typeset, so "$5 ... $10" loses its dollars and a stranger's
``$\\href{...}{...}$`` becomes a link in the table. A real JupyterLab, in headless Chromium.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from test_jupyterlab import Page, _login

TEXT = r"pay $5 now or $\href{https://evil.example/}{\text{verify here}}$ and $$x^2$$ \(y\)"
NAME = r"$\color{red}{\text{Admin}}$"

_CELL = f"""\
from signalwire_chat import ConversationChatMessage
from signalwire_chat._convert import structure
message = structure(
    {{"id": "m1", "ts": 1796165694.0, "type": "message", "subtype": "chat",
     "from_address_id": "a1", "user_name": {NAME!r}, "text": {TEXT!r}}},
    ConversationChatMessage,
)
message
"""


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_a_message_table_is_never_typeset_as_tex(chromium: Any, jupyterlab: Any) -> None:
    notebook = {
        "cells": [
            {
                "cell_type": "code",
                "id": "math",
                "metadata": {},
                "execution_count": None,
                "outputs": [],
                "source": _CELL,
            }
        ],
        "metadata": {
            "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    (jupyterlab.root / "math.ipynb").write_text(json.dumps(notebook))
    _login(chromium, jupyterlab, "lab/tree/math.ipynb")
    page = Page(chromium)
    page.until(lambda _d: len(page.code_cells()) == 1, "the notebook did not open")
    page.kernel_ready(jupyterlab)
    page.run(0)
    cell = page.code_cells()[0]
    page.until(
        lambda _d: "<table>" in "".join(o.get_attribute("innerHTML") for o in page.outputs(cell)),
        "no table shown",
    )
    time.sleep(3)  # MathJax typesets after the output is attached
    inner = "".join(o.get_attribute("innerHTML") for o in page.outputs(cell))
    assert "mjx-container" not in inner, inner
    assert "evil.example" not in "".join(
        a.get_attribute("href") or "" for a in cell.find_elements(page.by.CSS_SELECTOR, "a")
    )
    shown = page.output_text(cell)
    assert "pay $5 now or $\\href{https://evil.example/}" in shown, shown
    assert "$\\color{red}{\\text{Admin}}$" in shown, shown
