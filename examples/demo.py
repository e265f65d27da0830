"""The README's main job: a chat session against the embedded emulator, no network needed.

Two subscribers and a room are created through the wire API alone (project
credentials mint subscriber tokens, exactly as a Django/Flask backend would),
Bob subscribes to the room and prints messages live as Alice sends them, and
the room's history is then read page by page in both directions.
"""

from __future__ import annotations

import sys
import threading
import time

from signalwire_chat import ChatClient, ConversationChatMessage, mint_subscriber_token
from signalwire_chat.emulator import Emulator


def main() -> int:
    """Run the demo and return the process exit code."""
    with Emulator() as emu:
        print(f"emulator listening: rest {emu.rest_url}  relay {emu.relay_url}")

        # A backend holding project credentials mints subscriber tokens.
        alice_token = mint_subscriber_token(
            emu.rest_url, emu.project_id, emu.api_token, "alice@example.com", display_name="Alice"
        )
        bob_token = mint_subscriber_token(
            emu.rest_url, emu.project_id, emu.api_token, "bob@example.com", display_name="Bob"
        )
        room = emu.create_room("lobby", display_name="The Lobby")
        print(f"created subscribers alice and bob, and room {room.name!r} ({room.id})")

        urls = {"rest_url": emu.rest_url, "relay_url": emu.relay_url}
        with (
            ChatClient(alice_token.token, **urls) as alice,
            ChatClient(bob_token.token, **urls) as bob,
        ):
            me = bob.get_subscriber_info()
            print(f"bob is {me.display_name!r}, address {me.fabric_addresses[0].id}")

            bob.join(room.id)
            print("bob joined the room without sending anything")

            texts = [f"message {i} from alice" for i in range(1, 8)]
            received: list[ConversationChatMessage] = []
            all_in = threading.Event()

            def on_message(msg: ConversationChatMessage) -> None:
                received.append(msg)
                print(f"  live -> bob got {msg.text!r} at {msg.datetime:%H:%M:%S.%f}")
                if len(received) == len(texts):
                    all_in.set()

            # The room's one chat thread: a group of the group dialect, which the clients
            # speak by default (join, send and read by group_id under the address API).
            thread = emu.group_id_for(room.id, me.fabric_addresses[0].id)
            with bob.subscribe(room.id, on_message):
                for i, text in enumerate(texts):
                    alice.send_message(room.id, text, metadata={"seq": i})
                    if i % 3 == 1:
                        # Non-chat entries (call logs) share the conversation; the
                        # chat API filters them out, live and in history alike.
                        emu.add_message(thread, subtype="log", kind="call_started")
                if not all_in.wait(timeout=10):
                    print(f"only {len(received)} of {len(texts)} messages arrived live")
                    return 1
            if [m.text for m in received] != texts:
                print(f"out of order or duplicated: {[m.text for m in received]}")
                return 1
            print(f"bob received all {len(received)} messages live, once each, in order")
            logs = sum(1 for m in emu.messages(room.id) if m.get("subtype") != "chat")
            print(
                f"({logs} call-log entries filtered out: a conversation also holds non-chat\n"
                f" entries such as 'call started' events; the emulator added {logs} here, and\n"
                " the chat API skips them, live and in history, so you see only chat messages)"
            )

            print("history, 3 chat messages a page, newest first:")
            page = alice.get_messages(room.id, page_size=3)
            number = 1
            pages = [page]
            while True:
                print(f"  page {number}: {[m.text for m in page.data]}")
                nxt = page.next_page()
                if nxt is None:
                    break
                page, number = nxt, number + 1
                pages.append(page)
            print("and back again with prev_page():")
            while page.has_prev:
                prev = page.prev_page()
                assert prev is not None
                page, number = prev, number - 1
                print(f"  page {number}: {[m.text for m in page.data]}")
            total = sum(1 for _ in alice.iter_messages(room.id))
            print(f"iter_messages walked {total} chat messages in all")
    print("done: every thread stopped, every socket closed")
    return 0


if __name__ == "__main__":
    started = time.monotonic()
    code = main()
    print(f"({time.monotonic() - started:.1f} s)")
    sys.exit(code)
