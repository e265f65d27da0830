"""A Flask app: mint a subscriber token for the browser, send as a bot, map errors to HTTP,
and a web chat page where an anonymous visitor talks to the support bot (``web_chat.py``).

Run it under gunicorn's pre-fork model (the client is created once, before the fork; each
worker then opens its own connections):

    SIGNALWIRE_SPACE_URL=... SIGNALWIRE_PROJECT_ID=... SIGNALWIRE_API_TOKEN=... \\
        gunicorn --preload --workers 4 --bind 127.0.0.1:8000 'flask_app:create_app()'

Settings (a mapping given to ``create_app``, or the environment): ``SIGNALWIRE_SPACE_URL``,
``SIGNALWIRE_PROJECT_ID``, ``SIGNALWIRE_API_TOKEN`` (the project credentials, which never
leave the server), ``SIGNALWIRE_BOT`` (the reference the server sends as; its address is
the support address of the web chat), ``SIGNALWIRE_CLIENT_JS`` (where the chat page loads
the official browser client from, see ``web_chat.py``), and, to point at the emulator,
``SIGNALWIRE_REST_URL`` / ``SIGNALWIRE_RELAY_URL``.
"""

from __future__ import annotations

import atexit
import os
from collections.abc import Mapping
from typing import Any

import web_chat
from flask import Flask, Response, jsonify, request, send_file
from health_check import health_answer
from http_errors import http_error

from signalwire_chat import (
    ChatClient,
    ChatError,
    InvalidArgumentError,
    SubscriberTokenSource,
    mint_subscriber_token,
)

KEYS = (
    "SIGNALWIRE_SPACE_URL",
    "SIGNALWIRE_PROJECT_ID",
    "SIGNALWIRE_API_TOKEN",
    "SIGNALWIRE_BOT",
    "SIGNALWIRE_CLIENT_JS",
    "SIGNALWIRE_REST_URL",
    "SIGNALWIRE_RELAY_URL",
)


def current_user_email() -> str:
    """Who is asking. A real app takes this from its session after login; the example trusts
    a header so that it stays short. Never mint tokens for unauthenticated callers."""
    email = request.headers.get("X-User-Email", "").strip()
    if not email:
        raise InvalidArgumentError("log in first (X-User-Email header)")
    return email


def create_app(settings: Mapping[str, str] | None = None) -> Flask:
    """Build the app; its one ChatClient is shared by every request thread of the process."""
    config = dict(settings) if settings is not None else {k: os.environ.get(k, "") for k in KEYS}
    space = config["SIGNALWIRE_SPACE_URL"]
    project, api_token = config["SIGNALWIRE_PROJECT_ID"], config["SIGNALWIRE_API_TOKEN"]
    urls = {
        "rest_url": config.get("SIGNALWIRE_REST_URL") or None,
        "relay_url": config.get("SIGNALWIRE_RELAY_URL") or None,
    }
    bot = SubscriberTokenSource(
        space, project, api_token, config.get("SIGNALWIRE_BOT") or "bot@example.com"
    )
    client = ChatClient(bot, **urls)
    atexit.register(bot.close)  # the client does not close the source it was given
    atexit.register(client.close)
    # Fail at start, not at the first request, if the credentials are wrong. Under
    # `gunicorn --preload` this runs in the master, before the fork: each worker then
    # opens connections of its own (the client notices the fork).
    client.get_subscriber_info()

    app = Flask(__name__)
    app.extensions["signalwire_chat"] = client
    app.extensions["signalwire_chat_token_source"] = bot

    @app.errorhandler(ChatError)
    def chat_error(exc: ChatError) -> Any:
        status, headers, body = http_error(exc)
        return jsonify(body), status, headers

    @app.post("/token")
    def token() -> Any:
        """A subscriber token for the logged-in user's browser."""
        sat = mint_subscriber_token(space, project, api_token, current_user_email(), deadline=5)
        return jsonify({"token": sat.token})

    @app.post("/messages")
    def send() -> Any:
        """Send the JSON body's ``text`` to ``address_id`` as the bot."""
        body = request.get_json(silent=True) or {}
        result = client.send_message(body.get("address_id"), body.get("text"))
        return jsonify({"group_id": result.group_id, "text": result.text}), 201

    client_js = config.get("SIGNALWIRE_CLIENT_JS") or ""

    @app.get(web_chat.PAGE_PATH)
    def chat_page() -> Any:
        """The web chat page (anonymous: a visitor needs no account)."""
        return Response(web_chat.render_page(client_js), mimetype="text/html")

    @app.post(web_chat.TOKEN_PATH)
    def chat_token() -> Any:
        """A guest token for the page: it may reach the support address (the bot's) only."""
        return jsonify(web_chat.guest_token(space, project, api_token, client.my_address_id()))

    @app.get(web_chat.CLIENT_JS_PATH)
    def chat_client_js() -> Any:
        """The official browser client, when the settings name its installed file."""
        path = web_chat.client_js_file(client_js)
        if path is None:
            return jsonify({"error": "NotFound"}), 404
        return send_file(path, mimetype="text/javascript", max_age=3600)

    @app.get("/health")
    def health() -> Any:
        """The client's health, for a load balancer: cheap, sends nothing."""
        status, body = health_answer(client.health())
        return jsonify(body), status

    return app
