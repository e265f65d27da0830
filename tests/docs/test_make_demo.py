"""`make demo` sets up what the README's next steps need: the emulator and the command line."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_demo_installs_the_cli_extra_the_readme_uses_next(tmp_path: Path) -> None:
    # make's own plan for a fresh venv (--dry-run: nothing is installed; a real install needs
    # the package index and half a minute, so the suite asks make what it would run).
    plan = subprocess.run(
        ["make", "--dry-run", "--always-make", "-C", str(ROOT), f"VENV={tmp_path}", "demo"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    [install] = [
        line for line in plan.stdout.splitlines() if "pip install" in line and "-e" in line
    ]
    found = re.search(r"-e '\.\[([a-z,]+)\]'", install)
    assert found is not None, install
    assert {"emulator", "cli"} <= set(found.group(1).split(","))
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "signalwire-chat history" in readme  # the README's CLI example after `make demo`
