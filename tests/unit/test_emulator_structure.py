"""The emulator by concern: no class grows back into a god object.

The admin helpers, the fault controls, the store, the relay hub, its sessions and its
sockets each live in a class of their own; a class past about 400 lines is the sign that
a second concern moved in.
"""

from __future__ import annotations

import ast
from pathlib import Path

import signalwire_chat.emulator

EMULATOR = Path(signalwire_chat.emulator.__file__).parent
MAX_CLASS_LINES = 420


def _class_sizes() -> dict[str, int]:
    sizes = {}
    for path in sorted(EMULATOR.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef):
                assert node.end_lineno is not None
                sizes[f"{path.name}:{node.name}"] = node.end_lineno - node.lineno + 1
    return sizes


def test_no_emulator_class_is_over_about_400_lines() -> None:
    sizes = _class_sizes()
    assert {"__init__.py:Emulator", "_relay.py:RelayHub", "_store.py:Store"} <= sizes.keys()
    large = {name: n for name, n in sizes.items() if n > MAX_CLASS_LINES}
    assert large == {}


def test_the_emulator_keeps_its_public_methods_wherever_they_live() -> None:
    emulator = signalwire_chat.emulator.Emulator
    for name in (
        "create_subscriber",
        "mint_token",
        "send_as",
        "messages",
        "fail_next",
        "drop_connections",
        "half_open",
        "expire_tokens",
        "recording",
        "client_for",
    ):
        assert callable(getattr(emulator, name)), name
