"""The walls: the client never loads aiohttp; the emulator never imports the client.

Importing ``signalwire_chat.emulator`` runs the parent package's ``__init__`` (Python
always does), so the second wall is checked on the source: no emulator module imports
a client module.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import signalwire_chat.emulator as emulator_package

EMULATOR_DIR = Path(emulator_package.__file__).parent
# What the emulator may import from its own distribution: itself only.
ALLOWED_PREFIX = "signalwire_chat.emulator"


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )


def test_importing_the_client_does_not_load_aiohttp_or_the_emulator() -> None:
    proc = run_python(
        "import sys, signalwire_chat\n"
        "names = ('aiohttp', 'joserfc', 'signalwire_chat.emulator')\n"
        "bad = [m for m in names if m in sys.modules]\n"
        "print(bad)\n"
        "sys.exit(1 if bad else 0)\n"
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_no_emulator_module_imports_the_client() -> None:
    offenders = []
    for path in sorted(EMULATOR_DIR.glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                if node.level >= 2 or (
                    node.level == 0
                    and (node.module or "").startswith("signalwire_chat")
                    and not (node.module or "").startswith(ALLOWED_PREFIX)
                ):
                    offenders.append(f"{path.name}:{node.lineno}")
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.startswith("signalwire_chat") and not alias.name.startswith(
                        ALLOWED_PREFIX
                    ):
                        offenders.append(f"{path.name}:{node.lineno}")
    assert offenders == []
