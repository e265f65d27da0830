"""A chat page's caption shows a hostile conversation name escaped once, as its rows do.

The caption quoted the already escaped name with ``repr``, which escaped the escapes again:
the rows showed ``\\x1b`` and the caption ``\\\\x1b`` for the same character.
"""

from __future__ import annotations

from IPython.lib.pretty import pretty
from test_display_and_plugin import _caption

from signalwire_chat.emulator import Emulator

NAME = "Room\x1b[2J\u2067"


def test_the_caption_escapes_a_hostile_name_once(signalwire_emulator: Emulator) -> None:
    emu = signalwire_emulator
    alice = emu.create_subscriber("alice@example.com", display_name="Alice")
    room = emu.create_room("hostile", display_name=NAME)
    emu.send_as(alice, room.id, "one")
    with emu.client_for(alice) as client:
        page = client.get_messages(room.id)
        shown, _ = _caption(page._repr_html_())
        assert (
            shown == "ChatPage(1 messages of 'Room\\x1b[2J\\u2067', has_next=False, has_prev=False)"
        )
        assert pretty(page).startswith("ChatPage(1 messages of 'Room\\x1b[2J\\u2067', ")
        assert "\x1b" not in pretty(page)
