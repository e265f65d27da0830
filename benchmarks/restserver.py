"""Minimal fast REST server for the send and history benches (asyncio, HTTP/1.1 keep-alive).

It answers the fabric calls the benches make, in the group dialect of protocol-group.md:
``POST /api/fabric/conversations/join`` (the group of the addresses: ``GROUP_ID`` for the
bench conversation, a name-based id for any other set), ``POST /api/fabric/messages`` (201,
``{group_id, text, from_fabric_address_id}``), ``GET
/api/fabric/conversations/{group}/messages?page_size=N[&page_token=K]`` (pages of a fixed
history, newest first, with absolute ``links``) and ``GET /api/fabric/subscriber/info``.
A missing bearer token gets 401. Prints one JSON line with its URL, serves until stdin closes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import uuid
from urllib.parse import parse_qs, urlsplit

import _bench

HISTORY_PATH = f"/api/fabric/conversations/{_bench.GROUP_ID}/messages"


def history(count: int) -> list[bytes]:
    """Return ``count`` encoded chat messages, newest first."""
    messages = []
    for number in range(count, 0, -1):
        message = {
            "id": f"20000000-0000-4000-8000-{number:012d}",
            "group_id": _bench.GROUP_ID,
            "user_id": _bench.SUBSCRIBER_ID,
            "from_fabric_address_id": _bench.MY_ADDRESS_ID,
            "from_address_id": _bench.MY_ADDRESS_ID,
            "ts": 1_708_192_187.6779745 + number,
            "details": {},
            "metadata": {},
            "type": "message",
            "subtype": "chat",
            "kind": None,
            "text": f"history message number {number}",
        }
        messages.append(json.dumps(message, separators=(",", ":")).encode())
    return messages


class Fabric:
    """The request handler: pure function of (method, target, headers, body) to a response."""

    def __init__(self, base_url: str, messages: list[bytes]) -> None:
        self.base_url = base_url
        self.messages = messages
        self.pages: dict[tuple[int, int], bytes] = {}

    def respond(self, method: str, target: str, headers: dict[str, str], body: bytes) -> bytes:
        """Return the whole HTTP response to one request."""
        if not headers.get("authorization", "").startswith("Bearer "):
            return response(401, b'{"errors":[{"type":"authentication_error","message":"no"}]}')
        url = urlsplit(target)
        if method == "POST" and url.path == "/api/fabric/messages":
            sent = json.loads(body)
            answer = {
                "group_id": sent["group_id"],
                "text": sent["text"],
                "from_fabric_address_id": sent["from_fabric_address_id"],
            }
            return response(201, json.dumps(answer).encode())
        if method == "POST" and url.path == "/api/fabric/conversations/join":
            sent = json.loads(body)
            members = sorted({*sent["fabric_address_ids"], sent["from_fabric_address_id"]})
            if members == sorted({_bench.ADDRESS_ID, _bench.MY_ADDRESS_ID}):
                group_id = _bench.GROUP_ID
            else:
                group_id = str(uuid.uuid5(uuid.NAMESPACE_URL, ",".join(members)))
            answer = {"group_id": group_id, **sent}
            return response(200, json.dumps(answer).encode())
        if method == "GET" and url.path == HISTORY_PATH:
            query = parse_qs(url.query)
            size = int(query.get("page_size", ["10"])[0])
            start = int(query.get("page_token", ["0"])[0])
            return response(200, self.page(size, start))
        if method == "GET" and url.path == "/api/fabric/subscriber/info":
            address = {"id": _bench.MY_ADDRESS_ID, "name": "bench", "type": "subscriber"}
            info = {"id": _bench.SUBSCRIBER_ID, "fabric_addresses": [address]}
            return response(200, json.dumps(info).encode())
        return response(404, b'{"errors":[{"type":"not_found","message":"not found"}]}')

    def page(self, size: int, start: int) -> bytes:
        """Return the encoded page of ``size`` messages starting at ``start`` (cached)."""
        key = (size, start)
        if key not in self.pages:
            link = f"{self.base_url}{HISTORY_PATH}?page_size={size}"
            links = {"first": link, "self": f"{link}&page_token={start}"}
            if start + size < len(self.messages):
                links["next"] = f"{link}&page_token={start + size}"
            if start > 0:
                links["prev"] = f"{link}&page_token={max(0, start - size)}"
            data = b",".join(self.messages[start : start + size])
            self.pages[key] = (
                b'{"data":[' + data + b'],"links":' + json.dumps(links).encode() + b"}"
            )
        return self.pages[key]


REASONS = {200: b"OK", 201: b"Created", 401: b"Unauthorized", 404: b"Not Found"}


def response(status: int, body: bytes) -> bytes:
    """Return an HTTP/1.1 keep-alive response with a JSON body and a request id.

    Every answer carries an ``X-Request-Id`` (a fresh UUID), as the emulator's and the
    service's do: a client reads it on every call when hooks are on, so a bench server
    without one would hide that cost.
    """
    return (
        b"HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
        b"X-Request-Id: %s\r\n\r\n"
        % (status, REASONS[status], len(body), str(uuid.uuid4()).encode())
        + body
    )


class HttpProtocol(asyncio.Protocol):
    """Parses pipelined keep-alive requests from one connection."""

    def __init__(self, fabric: Fabric) -> None:
        self.fabric = fabric
        self.buf = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            lines = self.buf[:end].decode("latin-1").split("\r\n")
            method, target, _ = lines[0].split(" ", 2)
            headers = {}
            for line in lines[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            length = int(headers.get("content-length", "0"))
            if len(self.buf) < end + 4 + length:
                return
            body = self.buf[end + 4 : end + 4 + length]
            self.buf = self.buf[end + 4 + length :]
            assert self.transport is not None
            self.transport.write(self.fabric.respond(method, target, headers, body))


async def serve(args: argparse.Namespace) -> None:
    """Listen, print the URL, serve until stdin closes."""
    loop = asyncio.get_running_loop()
    holder: list[Fabric] = []
    server = await loop.create_server(lambda: HttpProtocol(holder[0]), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    base_url = f"http://127.0.0.1:{port}"
    holder.append(Fabric(base_url, history(args.messages)))
    print(json.dumps({"rest_url": base_url}), flush=True)
    await loop.run_in_executor(None, sys.stdin.read)
    server.close()


def main() -> None:
    """Parse options and serve."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--core", type=int, default=None, help="pin to this core")
    parser.add_argument("--messages", type=int, default=10_000, help="history length")
    args = parser.parse_args()
    if args.core is not None:
        _bench.pin(args.core)
    asyncio.run(serve(args))


if __name__ == "__main__":
    main()
