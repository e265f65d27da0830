"""The web chat of the Flask and Django examples: the page, the visitor's token and the bot.

A visitor opens ``/chat``. The page (``web_chat.html``) asks ``POST /chat/token`` for a guest
token that may reach the support address only, then chats through SignalWire's official
browser client, ``@signalwire/client`` 0.0.1 (its UMD build): the SDK takes the REST and relay
hosts from the token, as it does against the real service. The support bot, our
:class:`~signalwire_chat.ChatClient` speaking as the support subscriber, answers every
message. Run the bot as a process of its own, never in each web worker (every worker would
answer)::

    SIGNALWIRE_SPACE_URL=... SIGNALWIRE_PROJECT_ID=... SIGNALWIRE_API_TOKEN=... \\
        SIGNALWIRE_BOT=support@example.com python web_chat.py

Settings (the web apps' too): ``SIGNALWIRE_CLIENT_JS`` says where the page loads the official
client from: a URL (a CDN) or the path of ``dist/index.umd.js`` of the npm package, which the
app then serves itself at ``/chat/signalwire-client.js``. The npm package is never copied
into this repository.
"""

from __future__ import annotations

import html
import json
import logging
import os
import string
import sys
import threading
import time
from pathlib import Path
from typing import Any

from signalwire_chat import (
    ChatClient,
    ConversationChatMessage,
    Group,
    SubscriberTokenSource,
    Subscription,
    mint_guest_token,
)

logger = logging.getLogger("web_chat")

PAGE = Path(__file__).with_name("web_chat.html")
#: The page's own URLs (the same in the Flask and the Django app).
PAGE_PATH = "/chat"
TOKEN_PATH = "/chat/token"  # noqa: S105 - a URL path, not a secret
CLIENT_JS_PATH = "/chat/signalwire-client.js"
#: The official browser client from a CDN, when ``SIGNALWIRE_CLIENT_JS`` is not set.
DEFAULT_CLIENT_JS = "https://unpkg.com/@signalwire/client@0.0.1/dist/index.umd.js"
#: How long a visitor's guest token lives: the page is reloaded well within it.
GUEST_TOKEN_SECONDS = 3600
#: The name visitors see on the bot's answers (the support subscriber's display name).
BOT_DISPLAY_NAME = "Support"


def client_js_file(setting: str) -> Path | None:
    """The file the app serves at ``CLIENT_JS_PATH``, or None when the page loads a URL."""
    if not setting or setting.startswith(("https://", "http://")):
        return None
    return Path(setting)


def render_page(client_js: str) -> str:
    """The chat page, loading the official client from ``client_js`` (a URL or a file)."""
    if client_js_file(client_js) is not None:
        source = CLIENT_JS_PATH
    else:
        source = client_js or DEFAULT_CLIENT_JS
    # In a <script> block: JSON, with "<" escaped so that no "</script>" can close it.
    token_url = json.dumps(TOKEN_PATH).replace("<", "\\u003c")
    template = string.Template(PAGE.read_text(encoding="utf-8"))
    return template.substitute(sdk_url=html.escape(source, quote=True), token_url=token_url)


def guest_token(
    space_url: str, project_id: str, api_token: str, support_address_id: str
) -> dict[str, str]:
    """What ``POST /chat/token`` answers an anonymous visitor: a guest token (allowed to reach
    the support address only, for an hour) and that address.

    The endpoint is public: in production put it behind your rate limiting (or a captcha),
    as each call creates a guest.
    """
    sat = mint_guest_token(
        space_url,
        project_id,
        api_token,
        [support_address_id],
        expire_at=int(time.time()) + GUEST_TOKEN_SECONDS,
    )
    return {"token": sat.token, "support_address_id": support_address_id}


def reply_to(text: str) -> str:
    """The bot's answer to a visitor's message."""
    return f"Thanks! You said: {text}"


class SupportBot:
    """Answers, as the support subscriber, every message a visitor writes to it.

    Its subscription covers every conversation of the support subscriber (each visitor's
    group with the support address); the client delivers each message once and in order,
    across reconnects, and the callback runs on the client's dispatcher thread.

    Args:
        client: A client speaking as the support subscriber (its address is the support
            address the guest tokens allow).
    """

    def __init__(self, client: ChatClient) -> None:
        self._client = client
        self._me: str | None = None
        self._subscription: Subscription | None = None

    def start(self) -> SupportBot:
        """Subscribe; messages written from now on are answered."""
        self._me = self._client.my_address_id()
        self._subscription = self._client.subscribe_inbox(self._answer, self._failed)
        return self

    def _answer(self, message: ConversationChatMessage) -> None:
        if message.from_address_id == self._me or message.group_id is None:
            return  # our own answers come back too
        self._client.send_message(Group(id=message.group_id), reply_to(message.text))

    def _failed(self, error: BaseException) -> None:
        logger.warning("support bot: %s", error)

    def close(self) -> None:
        """Stop answering (the client stays open). Idempotent."""
        subscription, self._subscription = self._subscription, None
        if subscription is not None:
            subscription.cancel()


def main(environ: Any = os.environ) -> int:
    """Run the support bot until Ctrl-C or SIGTERM-turned-KeyboardInterrupt."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    source = SubscriberTokenSource(
        environ["SIGNALWIRE_SPACE_URL"],
        environ["SIGNALWIRE_PROJECT_ID"],
        environ["SIGNALWIRE_API_TOKEN"],
        environ.get("SIGNALWIRE_BOT") or "support@example.com",
        display_name=BOT_DISPLAY_NAME,
    )
    urls = {
        "rest_url": environ.get("SIGNALWIRE_REST_URL") or None,
        "relay_url": environ.get("SIGNALWIRE_RELAY_URL") or None,
    }
    with source, ChatClient(source, **urls) as client:
        bot = SupportBot(client).start()
        logger.info("answering visitors of address %s", client.my_address_id())
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            return 130
        finally:
            bot.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
