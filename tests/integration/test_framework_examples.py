"""examples/flask_app.py and examples/django_app/ against the emulator, with each framework's
test client, and the Flask app under a real gunicorn (``--preload``, two forked workers)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests

from signalwire_chat import (
    ChatClient,
    RateLimitError,
    ServerError,
    TokenError,
    TokenUnavailableError,
)
from signalwire_chat.emulator import Emulator

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
DJANGO_DIR = EXAMPLES / "django_app"
TIMEOUT = 30.0

for folder in (EXAMPLES, DJANGO_DIR):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

from http_errors import http_error  # noqa: E402 - from the examples folder


def settings_for(emu: Emulator, **overrides: str) -> dict[str, str]:
    settings = {
        "SIGNALWIRE_SPACE_URL": emu.space_url,
        "SIGNALWIRE_PROJECT_ID": emu.project_id,
        "SIGNALWIRE_API_TOKEN": emu.api_token,
        "SIGNALWIRE_BOT": "bot@example.com",
        "SIGNALWIRE_REST_URL": emu.rest_url,
        "SIGNALWIRE_RELAY_URL": emu.relay_url,
    }
    settings.update(overrides)
    return settings


def test_the_error_mapping() -> None:
    limited = RateLimitError("slow down", status=429, retry_after=2.5)
    assert http_error(limited) == (
        429,
        {"Retry-After": "3"},
        {"error": "RateLimitError", "detail": "too many requests; retry later"},
    )
    failing = ServerError("boom", status=500, url="http://internal.example/api")
    status, headers, body = http_error(failing)
    assert (status, headers) == (503, {})
    assert "internal.example" not in str(body)  # upstream URLs stay on the server
    # A token source that cannot mint for now (its endpoint down) passes as the service does.
    assert http_error(TokenUnavailableError("token endpoint: 502"))[0] == 503
    assert http_error(TokenError("refused"))[0] == 502  # one that will not pass is ours


# --- Flask ----------------------------------------------------------------------------------


@pytest.fixture
def flask_app(signalwire_emulator: Emulator) -> Iterator[Any]:
    from flask_app import create_app

    app = create_app(settings_for(signalwire_emulator))
    yield app
    app.extensions["signalwire_chat"].close()
    app.extensions["signalwire_chat_token_source"].close()


def test_flask_mints_a_token_for_the_browser(signalwire_emulator: Emulator, flask_app: Any) -> None:
    web = flask_app.test_client()
    answer = web.post("/token", headers={"X-User-Email": "carol@example.com"})
    assert answer.status_code == 200
    token = answer.get_json()["token"]
    with ChatClient(
        token, rest_url=signalwire_emulator.rest_url, relay_url=signalwire_emulator.relay_url
    ) as client:
        assert client.get_subscriber_info().email == "carol@example.com"
    refused = web.post("/token")
    assert refused.status_code == 400
    assert refused.get_json()["error"] == "InvalidArgumentError"


def test_flask_sends_and_maps_errors(signalwire_emulator: Emulator, flask_app: Any) -> None:
    emu = signalwire_emulator
    room = emu.create_room("lobby")
    web = flask_app.test_client()
    sent = web.post("/messages", json={"address_id": room.id, "text": "from flask"})
    assert sent.status_code == 201
    answer = sent.get_json()
    stored = emu.messages(room.id)
    assert [m["text"] for m in stored] == ["from flask"]
    assert answer == {"group_id": stored[0]["group_id"], "text": "from flask"}

    assert web.post("/messages", json={"address_id": room.id}).status_code == 400
    missing = web.post("/messages", json={"address_id": str(uuid.uuid4()), "text": "x"})
    assert missing.status_code == 404
    not_an_id = web.post("/messages", json={"address_id": "no-such-room", "text": "x"})
    assert not_an_id.status_code == 400  # refused before any request
    emu.fail_next(503, method="POST", path_prefix="/api/fabric/messages")
    failing = web.post("/messages", json={"address_id": room.id, "text": "x"})
    assert failing.status_code == 503
    assert failing.get_json()["error"] == "ServerError"

    health = web.get("/health")
    assert health.status_code == 200
    body = health.get_json()
    assert body["status"] == "ok"
    assert body["realtime"]["state"] == "idle"
    assert body["realtime"]["reconnects"] == 0
    assert body["realtime"]["queue_depth"] == 0
    assert body["rest"]["failures"] == {"ServerError": 1, "NotFoundError": 1}
    assert body["rest"]["last_error"] == "ServerError"
    assert room.id not in health.get_data(as_text=True)
    flask_app.extensions["signalwire_chat"].close()
    closed = web.get("/health")
    assert closed.status_code == 503
    assert closed.get_json()["realtime"]["state"] == "closed"


def test_flask_with_wrong_project_credentials_answers_502(signalwire_emulator: Emulator) -> None:
    from flask_app import create_app

    # The app checks its credentials at start: a wrong API token fails there, not later.
    with pytest.raises(Exception, match="401"):
        create_app(settings_for(signalwire_emulator, SIGNALWIRE_API_TOKEN="wrong"))


def check_chat_page(emu: Emulator, get: Any, post: Any, bundle: Path) -> None:
    """The web chat's three URLs, through a framework's test client (``get``/``post`` return
    (status, content type, body bytes))."""
    status, kind, page = get("/chat")
    assert status == 200
    assert kind.startswith("text/html")
    text = page.decode()
    assert '<script src="/chat/signalwire-client.js"></script>' in text
    assert 'const TOKEN_URL = "/chat/token"' in text
    status, kind, served = get("/chat/signalwire-client.js")
    assert (status, kind.split(";")[0]) == (200, "text/javascript")
    assert served == bundle.read_bytes()
    status, _, body = post("/chat/token")
    assert status == 200
    answer = json.loads(body)
    # A guest token (no login needed), allowed to reach the bot's address only.
    bot_address = emu.store.get_address(answer["support_address_id"])
    assert bot_address is not None
    assert bot_address["name"] == "bot"
    claims = emu.tokens.verify_sat(answer["token"])
    assert claims.allowed_addresses == (answer["support_address_id"],)
    assert emu.api_token not in text + body.decode()


def test_flask_web_chat_page_and_guest_token(signalwire_emulator: Emulator, tmp_path: Path) -> None:
    from flask_app import create_app

    emu = signalwire_emulator
    bundle = tmp_path / "index.umd.js"
    bundle.write_text("/* the official client */\n", encoding="utf-8")
    app = create_app(settings_for(emu, SIGNALWIRE_CLIENT_JS=str(bundle)))
    try:
        web = app.test_client()

        def get(path: str) -> tuple[int, str, bytes]:
            answer = web.get(path)
            try:
                return answer.status_code, answer.content_type, answer.get_data()
            finally:
                answer.close()  # a file response holds the file open until then

        def post(path: str) -> tuple[int, str, bytes]:
            answer = web.post(path)
            return answer.status_code, answer.content_type, answer.get_data()

        check_chat_page(emu, get, post, bundle)
    finally:
        app.extensions["signalwire_chat"].close()
        app.extensions["signalwire_chat_token_source"].close()
    # By default the page loads the client from a CDN, and the app serves no file.
    cdn = create_app(settings_for(emu, SIGNALWIRE_CLIENT_JS='https://cdn.example/"x".js'))
    try:
        web = cdn.test_client()
        assert '<script src="https://cdn.example/&quot;x&quot;.js">' in web.get("/chat").text
        assert web.get("/chat/signalwire-client.js").status_code == 404
    finally:
        cdn.extensions["signalwire_chat"].close()
        cdn.extensions["signalwire_chat_token_source"].close()


@pytest.mark.slow
def test_the_support_bot_runs_as_a_process_of_its_own(signalwire_emulator: Emulator) -> None:
    """``python examples/web_chat.py``: it answers a guest, and Ctrl-C ends it (exit 130)."""
    from signalwire_chat import mint_guest_token

    emu = signalwire_emulator
    env = {**os.environ, **settings_for(emu, SIGNALWIRE_BOT="support@example.com")}
    proc = subprocess.Popen(
        [sys.executable, str(EXAMPLES / "web_chat.py")],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    log: list[str] = []
    answering = threading.Event()

    def read() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            log.append(line)
            if "answering visitors of address" in line:
                answering.set()

    reader = threading.Thread(target=read)
    reader.start()
    try:
        assert answering.wait(TIMEOUT), "".join(log)
        support = log[-1].rsplit(" ", 1)[-1].strip()
        guest = mint_guest_token(emu.space_url, emu.project_id, emu.api_token, [support])
        with ChatClient(guest.token, rest_url=emu.rest_url, relay_url=emu.relay_url) as client:
            stream = client.stream_messages(support, timeout=TIMEOUT)
            client.send_message(support, "Is anyone there?")
            texts = [next(stream).text, next(stream).text]
            stream.close()
        assert texts == ["Is anyone there?", "Thanks! You said: Is anyone there?"]
        proc.send_signal(signal.SIGINT)
        assert proc.wait(TIMEOUT) == 130, "".join(log)
    finally:
        _reap(proc, reader)
    assert "Traceback" not in "".join(log)
    assert emu.api_token not in "".join(log)


# --- Django ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def django_ready() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatsite.settings")
    import django

    django.setup()


def django_settings(emu: Emulator, **overrides: str) -> dict[str, str]:
    flat = settings_for(emu, **overrides)
    return {key.removeprefix("SIGNALWIRE_"): value for key, value in flat.items()}


def test_django_mints_sends_and_maps_errors(
    django_ready: None, signalwire_emulator: Emulator
) -> None:
    from django.test import Client, override_settings

    emu = signalwire_emulator
    room = emu.create_room("lobby")
    with override_settings(SIGNALWIRE=django_settings(emu)):
        web = Client()
        answer = web.post("/token", headers={"X-User-Email": "dan@example.com"})
        assert answer.status_code == 200
        assert answer.json()["token"].count(".") == 4  # a compact JWE
        sent = web.post(
            "/messages", {"address_id": room.id, "text": "from django"}, "application/json"
        )
        assert sent.status_code == 201
        assert [m["text"] for m in emu.messages(room.id)] == ["from django"]
        missing = web.post(
            "/messages",
            {"address_id": str(uuid.uuid4()), "text": "x"},
            content_type="application/json",
        )
        assert missing.status_code == 404
        not_an_id = web.post(
            "/messages", {"address_id": "nope", "text": "x"}, content_type="application/json"
        )
        assert not_an_id.status_code == 400
        assert web.post("/messages", "[]", content_type="application/json").status_code == 400
        assert web.get("/messages").status_code == 405
        health = web.get("/health")
        assert health.status_code == 200
        assert health.json()["rest"]["failures"] == {"NotFoundError": 1}
        assert web.post("/health").status_code == 405
    with override_settings(SIGNALWIRE=django_settings(emu, SIGNALWIRE_API_TOKEN="wrong")):
        refused = Client().post("/token", headers={"X-User-Email": "dan@example.com"})
        assert refused.status_code == 502
        assert "wrong" not in refused.content.decode()
        sending = Client().post(
            "/messages", {"address_id": room.id, "text": "x"}, content_type="application/json"
        )
        assert sending.status_code == 502  # the bot's token cannot be minted
    # The last override's client is closed when settings change back.
    from chatsite import chat

    chat.reset()


def test_django_web_chat_page_and_guest_token(
    django_ready: None, signalwire_emulator: Emulator, tmp_path: Path
) -> None:
    from django.test import Client, override_settings

    emu = signalwire_emulator
    bundle = tmp_path / "index.umd.js"
    bundle.write_text("/* the official client */\n", encoding="utf-8")
    settings = django_settings(emu, SIGNALWIRE_CLIENT_JS=str(bundle))
    with override_settings(SIGNALWIRE=settings):
        web = Client()

        def get(path: str) -> tuple[int, str, bytes]:
            answer = web.get(path)
            content = b"".join(answer.streaming_content) if answer.streaming else answer.content
            return answer.status_code, answer["Content-Type"], content

        def post(path: str) -> tuple[int, str, bytes]:
            answer = web.post(path)
            return answer.status_code, answer["Content-Type"], answer.content

        check_chat_page(emu, get, post, bundle)
        assert web.post("/chat").status_code == 405
        assert web.get("/chat/token").status_code == 405
    with override_settings(SIGNALWIRE={**settings, "CLIENT_JS": ""}):
        assert Client().get("/chat/signalwire-client.js").status_code == 404
    from chatsite import chat

    chat.reset()


# --- gunicorn: preload, fork, many workers ----------------------------------------------------


def _reap(proc: subprocess.Popen[str], reader: threading.Thread) -> None:
    """End a child that is still running, then its log reader, and close its stderr."""
    if proc.poll() is None:
        proc.kill()
        proc.wait(TIMEOUT)
    reader.join(TIMEOUT)
    if proc.stderr is not None:
        proc.stderr.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.mark.slow
def test_gunicorn_preload_with_forked_workers_sends_each_message_once(
    signalwire_emulator: Emulator,
) -> None:
    emu = signalwire_emulator
    room = emu.create_room("lobby")
    port = free_port()
    env = {**os.environ, **settings_for(emu)}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "--preload",
            "--workers",
            "2",
            "--threads",
            "4",
            "--bind",
            f"127.0.0.1:{port}",
            "flask_app:create_app()",
        ],
        cwd=EXAMPLES,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    booted = threading.Event()
    log: list[str] = []

    def read() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            log.append(line)
            if sum("Booting worker" in entry for entry in log) >= 2:
                booted.set()

    reader = threading.Thread(target=read)
    reader.start()
    try:
        assert booted.wait(TIMEOUT), "".join(log)
        url = f"http://127.0.0.1:{port}/messages"

        def send(i: int) -> int:
            deadline = time.monotonic() + TIMEOUT
            while True:  # the workers may still be binding their listeners' first accept
                try:
                    answer = requests.post(
                        url, json={"address_id": room.id, "text": f"m{i}"}, timeout=TIMEOUT
                    )
                    return answer.status_code
                except requests.ConnectionError:
                    if time.monotonic() > deadline:
                        raise

        with ThreadPoolExecutor(max_workers=8) as pool:
            codes = list(pool.map(send, range(60)))
        assert codes == [201] * 60, "".join(log)
        texts = sorted(m["text"] for m in emu.messages(room.id))
        assert texts == sorted(f"m{i}" for i in range(60))  # each exactly once
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(TIMEOUT)
        finally:
            _reap(proc, reader)
    assert proc.returncode == 0, "".join(log)
    assert "Traceback" not in "".join(log)
