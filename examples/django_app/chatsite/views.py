"""The views (token, send, health, the web chat) and the mapping of our exceptions to HTTP.

The error mapping is ``http_errors``; the web chat (its page, the visitor's guest token and
the bot) is ``web_chat``, shared with the Flask example.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import Any

import web_chat
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.http import require_GET, require_POST
from health_check import health_answer
from http_errors import http_error

from signalwire_chat import ChatError, InvalidArgumentError, mint_subscriber_token

from . import chat

View = Callable[..., JsonResponse]


def chat_errors(view: View) -> View:
    """Answer a ChatError raised by ``view`` with the status of the shared mapping."""

    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> JsonResponse:
        try:
            return view(request, *args, **kwargs)
        except ChatError as exc:
            status, headers, body = http_error(exc)
            response = JsonResponse(body, status=status)
            for name, value in headers.items():
                response[name] = value
            return response

    return wrapper


def current_user_email(request: HttpRequest) -> str:
    """Who is asking: ``request.user.email`` in a real project (with auth); a header here."""
    email = request.headers.get("X-User-Email", "").strip()
    if not email:
        raise InvalidArgumentError("log in first (X-User-Email header)")
    return email


@require_POST
@chat_errors
def token(request: HttpRequest) -> JsonResponse:
    """A subscriber token for the logged-in user's browser."""
    cfg = chat.config()
    sat = mint_subscriber_token(
        cfg["SPACE_URL"],
        cfg["PROJECT_ID"],
        cfg["API_TOKEN"],
        current_user_email(request),
        deadline=5,  # a page waits for its token: never the default 120 s
    )
    return JsonResponse({"token": sat.token})


@require_POST
@chat_errors
def send(request: HttpRequest) -> JsonResponse:
    """Send the JSON body's ``text`` to ``address_id`` as the bot."""
    try:
        body = json.loads(request.body or b"{}")
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    result = chat.client().send_message(body.get("address_id"), body.get("text"))
    return JsonResponse({"group_id": result.group_id, "text": result.text}, status=201)


@require_GET
def health(request: HttpRequest) -> JsonResponse:
    """The client's health, for a load balancer: cheap, sends nothing."""
    status, body = health_answer(chat.client().health())
    return JsonResponse(body, status=status)


@require_GET
def chat_page(request: HttpRequest) -> HttpResponse:
    """The web chat page (anonymous: a visitor needs no account)."""
    return HttpResponse(web_chat.render_page(chat.config().get("CLIENT_JS", "")))


@require_POST
@chat_errors
def chat_token(request: HttpRequest) -> JsonResponse:
    """A guest token for the page: it may reach the support address (the bot's) only."""
    cfg = chat.config()
    support = chat.client().my_address_id()
    return JsonResponse(
        web_chat.guest_token(cfg["SPACE_URL"], cfg["PROJECT_ID"], cfg["API_TOKEN"], support)
    )


@require_GET
def chat_client_js(request: HttpRequest) -> FileResponse:
    """The official browser client, when the settings name its installed file."""
    path = web_chat.client_js_file(chat.config().get("CLIENT_JS", ""))
    if path is None:
        raise Http404("the page loads the official client from a URL")
    return FileResponse(path.open("rb"), content_type="text/javascript")
