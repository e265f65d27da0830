"""Loopback endpoints the unit tests share: a scripted HTTP server and ports nothing listens on.

Imported by the test modules of this folder as ``_loopback`` (pytest puts the folder of a test
module without ``__init__.py`` on ``sys.path``).
"""

from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from signalwire_chat import ChatClient

Reply = tuple[int, dict[str, str], bytes]


def reply(status: int, body: Any = None, headers: dict[str, str] | None = None) -> Reply:
    """A scripted answer: ``body`` as raw bytes, nothing (None), or any other value as JSON."""
    if isinstance(body, bytes):
        raw = body
    elif body is None:
        raw = b""
    else:
        raw = json.dumps(body).encode()
    return status, dict(headers or {}), raw


class Server:
    """A scripted HTTP server: answers queued replies in order, then a default.

    Every request is recorded (method, path, headers, body) before it is answered.
    """

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.script: list[Reply] = []
        self.default: Reply = reply(200, {"data": [], "links": {}})
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def handle_any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                with outer.lock:
                    outer.requests.append(
                        {
                            "method": self.command,
                            "path": self.path,
                            "headers": dict(self.headers),
                            "body": body,
                        }
                    )
                    status, headers, raw = outer.script.pop(0) if outer.script else outer.default
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                if "Content-Type" not in headers:
                    self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            do_GET = handle_any
            do_POST = handle_any

        class Quiet(ThreadingHTTPServer):
            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # a client that timed out and left is expected in some tests

        self.httpd = Quiet(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, name="test-http-server"
        )

    def __enter__(self) -> Server:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


def closed_port() -> int:
    """A loopback port that was free a moment ago: nothing listens on it."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return int(port)


def closed_port_url() -> str:
    """``http://127.0.0.1:<closed_port()>``: a request sent there is refused."""
    return f"http://127.0.0.1:{closed_port()}"


def offline_client(token: str) -> ChatClient:
    """A client whose REST and relay URLs lead nowhere, with no retries.

    A call that got out would raise ConnectError; a test that expects our refusal of bad input
    therefore also checks that nothing was sent.
    """
    return ChatClient(
        token, rest_url=closed_port_url(), relay_url="ws://127.0.0.1:1/", max_retries=0
    )
