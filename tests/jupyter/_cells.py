"""What the kernel and IPython tests share: the set-up cell and the environment it reads.

The subscriber's token reaches the child process in its environment, never in argv or in
a cell's code.
"""

from __future__ import annotations

from typing import Any

from signalwire_chat.emulator import Emulator

#: The first cell: bob's ChatClient on the emulator, the room, and lists the cells fill.
SETUP_CELL = """
import os
from signalwire_chat import ChatClient

client = ChatClient(
    os.environ["SWC_TEST_TOKEN"],
    rest_url=os.environ["SWC_TEST_REST_URL"],
    relay_url=os.environ["SWC_TEST_RELAY_URL"],
)
room = os.environ["SWC_TEST_ROOM"]
seen = []
made = []
"""


def chat_env(emu: Emulator) -> tuple[dict[str, str], Any, str]:
    """``(environment for SETUP_CELL, alice, room id)``: bob listens in the room alice writes to."""
    alice = emu.create_subscriber("alice@example.com", display_name="Alice")
    bob = emu.create_subscriber("bob@example.com", display_name="Bob")
    room = emu.create_room("lobby")
    emu.join(bob, room.id)
    env = {
        "SWC_TEST_TOKEN": bob.token,
        "SWC_TEST_REST_URL": emu.rest_url,
        "SWC_TEST_RELAY_URL": emu.relay_url,
        "SWC_TEST_ROOM": room.id,
    }
    return env, alice, room.id
