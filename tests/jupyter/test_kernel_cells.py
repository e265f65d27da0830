"""The re-run rule in a real ipykernel, driven through jupyter_client as front ends drive it.

JupyterLab and Notebook 7 put the cell's id in the execute request's metadata
(``metadata.cellId``); nbclient and IPython send none. Each request below is one cell run.
The kernel imports this checkout's package (PYTHONPATH) and reaches the emulator this test
started.
"""

from __future__ import annotations

import ast
import os
import queue
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _cells import SETUP_CELL, chat_env

from signalwire_chat.emulator import Emulator

jupyter_client = pytest.importorskip("jupyter_client")
pytest.importorskip("ipykernel")

_REQUEST_SECONDS = 60.0

_CELL = """
def show(msg):
    seen.append(({tag!r}, msg.text))

sub = client.subscribe(room, show)
"""

_LIVE = (
    "print(sorted(str(s.callback_name) for s in client.subscriptions), len(client.subscriptions))"
)


class Kernel:
    """A started python3 kernel and its client; ``run`` sends one cell's execute request."""

    def __init__(self, manager: Any, client: Any) -> None:
        self.manager = manager
        self.client = client

    def run(self, code: str, cell_id: str | None = None) -> str:
        """Run ``code`` as a cell (with JupyterLab's ``metadata.cellId`` when given).

        Returns:
            What the cell printed.

        Raises:
            AssertionError: the cell raised (with the kernel's traceback).
        """
        content = {
            "code": code,
            "silent": False,
            "store_history": True,
            "user_expressions": {},
            "allow_stdin": False,
            "stop_on_error": True,
        }
        msg = self.client.session.msg("execute_request", content)
        if cell_id is not None:
            msg["metadata"]["cellId"] = cell_id
        self.client.shell_channel.send(msg)
        msg_id = msg["header"]["msg_id"]
        deadline = time.monotonic() + _REQUEST_SECONDS
        printed: list[str] = []
        errors: list[str] = []
        idle = False
        while not idle:
            try:
                out = self.client.get_iopub_msg(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                pytest.fail(f"no answer to the cell within {_REQUEST_SECONDS:.0f} s: {code!r}")
            if out["parent_header"].get("msg_id") != msg_id:
                continue
            kind, body = out["msg_type"], out["content"]
            if kind == "stream":
                printed.append(body["text"])
            elif kind == "error":
                errors.append("\n".join(body["traceback"]))
            idle = kind == "status" and body["execution_state"] == "idle"
        reply = self.client.get_shell_msg(timeout=_REQUEST_SECONDS)
        while reply["parent_header"].get("msg_id") != msg_id:  # wait_for_ready's leftovers
            reply = self.client.get_shell_msg(timeout=_REQUEST_SECONDS)
        assert reply["content"]["status"] == "ok", "\n".join(errors)
        return "".join(printed)

    def live(self) -> tuple[list[str], int]:
        """The live subscriptions' callback names, and how many there are."""
        text = self.run(_LIVE)
        names, count = text.rsplit(" ", 1)
        return ast.literal_eval(names), int(count)

    def seen_once(self, count: int) -> list[tuple[str, str]]:
        """What the kernel's callbacks received, once ``count`` deliveries arrived."""
        wait = (
            "import time\n"
            "deadline = time.monotonic() + 20\n"
            f"while len(seen) < {count} and time.monotonic() < deadline:\n"
            "    time.sleep(0.02)\n"
            "time.sleep(0.3)\n"  # room for a double delivery to show up
            "print(sorted(seen))"
        )
        return [tuple(pair) for pair in ast.literal_eval(self.run(wait))]


@pytest.fixture
def kernel(
    emu: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, jupyter_env: dict[str, str]
) -> Iterator[Kernel]:
    """A python3 kernel whose ChatClient is bob, a member of the room alice writes to."""
    for name, value in jupyter_env.items():
        monkeypatch.setenv(name, value)  # the connection file goes to the runtime dir
    chat, alice, room = chat_env(emu)
    env = {**os.environ, **chat}
    manager = jupyter_client.KernelManager(kernel_name="python3")
    manager.start_kernel(env=env, cwd=str(tmp_path))
    client = manager.client()
    client.start_channels()
    try:
        client.wait_for_ready(timeout=_REQUEST_SECONDS)
        made = Kernel(manager, client)
        made.run(SETUP_CELL)
        made.alice, made.room = alice, room  # type: ignore[attr-defined]
        yield made
        made.run("client.close()")
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)
        assert not manager.is_alive()


def _send(kernel: Kernel, emu: Emulator, text: str) -> None:
    emu.send_as(kernel.alice, kernel.room, text)  # type: ignore[attr-defined]


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_with_cell_ids_the_cell_alone_decides(kernel: Kernel, emu: Emulator) -> None:
    kernel.run(_CELL.format(tag="a"), cell_id="cell-a")
    kernel.run(_CELL.format(tag="b"), cell_id="cell-b")
    # Two cells whose callbacks share a name: both live.
    assert kernel.live() == (["show", "show"], 2)
    # Cell a, edited and re-run: replaces its own subscription only.
    kernel.run(_CELL.format(tag="a, edited"), cell_id="cell-a")
    assert kernel.live() == (["show", "show"], 2)
    _send(kernel, emu, "after the re-run")
    assert kernel.seen_once(2) == [("a, edited", "after the re-run"), ("b", "after the re-run")]


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_without_cell_ids_the_same_code_run_again_replaces(kernel: Kernel, emu: Emulator) -> None:
    kernel.run(_CELL.format(tag="a"))
    kernel.run(_CELL.format(tag="b"))
    # Another cell (other code) whose callback has the same name: both live.
    assert kernel.live() == (["show", "show"], 2)
    # Cell a run again, as nbclient re-runs it: the same code replaces its subscription.
    kernel.run(_CELL.format(tag="a"))
    assert kernel.live() == (["show", "show"], 2)
    _send(kernel, emu, "once each")
    assert kernel.seen_once(2) == [("a", "once each"), ("b", "once each")]
