"""Pages and subscriptions as notebooks show them, and the pytest plugin as users get it."""

from __future__ import annotations

import html
import re
import subprocess
import sys
import threading
from importlib import metadata
from pathlib import Path

import pytest
from IPython.lib.pretty import pretty

from signalwire_chat import ChatClient, ConversationChatMessage
from signalwire_chat.emulator import Emulator

TIMEOUT = 10.0


def test_a_chat_page_is_an_html_table_of_time_sender_and_text(
    signalwire_emulator: Emulator,
) -> None:
    emu = signalwire_emulator
    alice = emu.create_subscriber("alice@example.com", display_name="Alice")
    room = emu.create_room("lobby")
    for i in range(3):
        emu.send_as(alice, room.id, f"note {i}")
    with emu.client_for(alice) as client:
        page = client.get_messages(room.id, page_size=2)
        html = page._repr_html_()
        assert "note 2" in html
        assert "note 1" in html
        assert "note 0" not in html
        assert "<th style='text-align:left'>time</th>" in html
        assert "ChatPage(2 messages" in html  # the caption says what it is
        assert "ConversationChatMessage(" not in html
        conversations = client.get_conversations()
        assert "lobby" in conversations._repr_html_()
        addresses = client.get_addresses()
        assert "Alice" in addresses._repr_html_()


def test_a_live_subscription_displays_its_state_and_count(signalwire_emulator: Emulator) -> None:
    emu = signalwire_emulator
    alice = emu.create_subscriber("alice@example.com")
    room = emu.create_room("lobby")
    emu.join(alice, room.id)
    got = threading.Event()
    seen: list[ConversationChatMessage] = []

    def show(message: ConversationChatMessage) -> None:
        seen.append(message)
        if len(seen) == 2:
            got.set()

    with emu.client_for(alice) as client:
        sub = client.subscribe(room.id, show)
        assert "active" in sub._repr_html_()
        assert "0 delivered" in sub._repr_html_()
        emu.send_as(alice, room.id, "one")
        emu.send_as(alice, room.id, "two")
        assert got.wait(TIMEOUT)
        assert sub.delivered == 2
        assert "2 delivered" in sub._repr_html_()
        assert "active (connected)" in sub._repr_html_()
        assert "show" in sub._repr_html_()
        sub.cancel()
        assert "cancelled" in sub._repr_html_()


def _caption(table: str) -> tuple[str, str]:
    """The caption's shown text and its title attribute (empty when it has none)."""
    found = re.search(
        r"<caption style='text-align:left'(?: title='([^']*)')?>([^<]*)</caption>", table
    )
    assert found is not None, table
    return html.unescape(found.group(2)), html.unescape(found.group(1) or "")


def _follows_cell(table: str) -> tuple[str, str]:
    """The first cell of a subscription's table: shown text and title."""
    found = re.search(
        r"<tbody><tr><td style='text-align:left'(?: title='([^']*)')?>([^<]*)</td>", table
    )
    assert found is not None, table
    return html.unescape(found.group(2)), html.unescape(found.group(1) or "")


def test_a_chat_page_shows_the_conversation_name_with_its_ids_in_the_title(
    signalwire_emulator: Emulator,
) -> None:
    emu = signalwire_emulator
    alice = emu.create_subscriber("alice@example.com", display_name="Alice")
    room = emu.create_room("lobby", display_name="The Lobby")
    for text in ("one", "two"):
        emu.send_as(alice, room.id, text)
    with emu.client_for(alice) as client:
        page = client.get_messages(room.id)
        shown, title = _caption(page._repr_html_())
        assert shown == "ChatPage(2 messages of 'The Lobby', has_next=False, has_prev=False)"
        assert title == f"{room.id} group {page.group_id}"
        assert pretty(page).startswith("ChatPage(2 messages of 'The Lobby', ")
        assert room.id not in pretty(page)
        assert repr(page) == (  # the repr keeps the id, for logs and debugging
            f"ChatPage(2 messages of {room.id!r}, has_next=False, has_prev=False)"
        )


def test_a_chat_page_whose_messages_name_nothing_shows_the_id_it_was_asked_for(
    signalwire_emulator: Emulator,
) -> None:
    emu = signalwire_emulator
    alice = emu.create_subscriber("alice@example.com", display_name="Alice")
    room = emu.create_room("lobby", display_name="The Lobby")
    with emu.client_for(alice) as client:
        page = client.get_messages(room.id)  # no message: nothing says the name
        shown, title = _caption(page._repr_html_())
        assert shown == f"ChatPage(0 messages of {room.id!r}, has_next=False, has_prev=False)"
        assert title == f"group {page.group_id}"  # the group id is not in the way
        assert f"group {page.group_id}" not in pretty(page)


def test_a_subscription_shows_the_address_then_the_name_its_messages_give(
    signalwire_emulator: Emulator,
) -> None:
    emu = signalwire_emulator
    alice = emu.create_subscriber("alice@example.com", display_name="Alice")
    room = emu.create_room("lobby", display_name="The Lobby")
    got = threading.Event()
    with emu.client_for(alice) as client:
        sub = client.subscribe(room.id, lambda message: got.set())
        group = f"group {sub.group_id}"
        # Before any message the name is not known: the address it was given, no group id.
        assert _follows_cell(sub._repr_html_()) == (room.id, group)
        assert pretty(sub).startswith(f"Subscription({room.id} active")
        emu.send_as(alice, room.id, "hello")
        assert got.wait(TIMEOUT)
        assert _follows_cell(sub._repr_html_()) == ("The Lobby", f"{room.id} {group}")
        assert pretty(sub).startswith("Subscription(The Lobby active")
        sub.cancel()


def test_client_for_points_a_client_at_the_emulator(signalwire_emulator: Emulator) -> None:
    emu = signalwire_emulator
    alice = emu.create_subscriber("alice@example.com")
    with emu.client_for(alice, timeout=5) as client:
        assert isinstance(client, ChatClient)
        assert client.rest_url == emu.rest_url
        assert client.get_subscriber_info().id == alice.id
    with emu.client_for(alice.id) as client:  # by id: a fresh token is minted
        assert client.get_subscriber_info().email == "alice@example.com"
    with pytest.raises(KeyError):
        emu.client_for("no-such-subscriber")


def test_the_plugin_is_a_pytest11_entry_point(pytestconfig: pytest.Config) -> None:
    points = metadata.entry_points(group="pytest11")
    assert "signalwire_chat.pytest_plugin" in {p.value for p in points}
    # This suite's conftest.py lists no pytest_plugins: the entry point loaded it.
    assert pytestconfig.pluginmanager.get_plugin("signalwire_chat.pytest_plugin") is not None


def test_a_project_without_conftest_gets_the_fixtures_and_a_shared_session_emulator(
    tmp_path: Path,
) -> None:
    (tmp_path / "test_user.py").write_text(
        "from signalwire_chat import ChatClient\n"
        "\n"
        "def test_send(signalwire_emulator):\n"
        "    alice = signalwire_emulator.create_subscriber('alice@example.com')\n"
        "    room = signalwire_emulator.create_room('lobby')\n"
        "    with signalwire_emulator.client_for(alice) as client:\n"
        "        client.send_message(room.id, 'hi')\n"
        "    assert [m['text'] for m in signalwire_emulator.messages(room.id)] == ['hi']\n"
        "\n"
        "PORTS = []\n"
        "\n"
        "def test_shared_1(signalwire_emulator_session):\n"
        "    PORTS.append(signalwire_emulator_session.port)\n"
        "    sub = signalwire_emulator_session.create_subscriber()\n"
        "    with signalwire_emulator_session.client_for(sub) as client:\n"
        "        assert client.get_subscriber_info().id == sub.id\n"
        "\n"
        "def test_shared_2(signalwire_emulator_session):\n"
        "    assert signalwire_emulator_session.running\n"
        "    assert PORTS == [signalwire_emulator_session.port]  # the same emulator\n"
    )
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "3 passed" in proc.stdout
