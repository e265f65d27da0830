"""The emulator's own capacity: events per second it fans out to many subscribed sockets.

Runs in the client process (clients.py case ``fanout``) against an emulator started by run.py on
the other core. N subscribers get tokens, subscriber 0 joins the group of all their addresses
(the group dialect: a group chat of N), and each opens a relay socket, read by one selector loop
that acknowledges every event without decoding it (its id is cut from the head the emulator
writes; one mask per batch of acks), so that the reader stays well under its core and the
emulator is what is measured; SENDERS threads post messages to that group as subscriber 0 over
keep-alive connections, enough to keep the emulator busy. Reported: events delivered to all
sockets per second of wall time, messages accepted per second, the reader's share of its core,
and the emulator's CPU per message (from /proc, given its pid), which a shared machine disturbs
less than wall time.
"""

from __future__ import annotations

import base64
import json
import os
import selectors
import socket
import threading
import time
from typing import Any
from urllib.parse import urlsplit

import _bench
import _wsproto

# Sender threads by default; params "senders" overrides (more keep a faster emulator busy).
SENDERS = 8
# How the emulator writes the head of every event request, and where its id starts.
_EVENT_HEAD = b'{"jsonrpc":"2.0","id":"'
_ID_AT = len(_EVENT_HEAD)
_CHAT_EVENT = b'"event_type":"conversation.message",'
_ACK_HEAD = b'{"jsonrpc":"2.0","id":"'
_ACK_TAIL = b'","result":{}}'


class RelaySocket:
    """A raw relay connection that acknowledges events without decoding them as JSON."""

    def __init__(self, relay_url: str, token: str) -> None:
        split = urlsplit(relay_url)
        self.sock = socket.create_connection((split.hostname, split.port), timeout=30)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.reader = _wsproto.FrameReader()
        rest = _wsproto.client_handshake(self.sock, split.netloc, split.path or "/")
        connect = _bench.connect_request(
            token, request_id="fanout-connect", agent="bench-fanout/1.0"
        )
        self.sock.sendall(_wsproto.client_frame(connect.encode()))
        self.pending = self.reader.feed(rest)
        while not any(b'"fanout-connect"' in payload for _, payload in self.pending):
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("relay closed before the connect result")
            self.pending += self.reader.feed(data)
        for _, payload in self.pending:
            if b'"fanout-connect"' in payload and b'"error"' in payload:
                raise RuntimeError(f"connect refused: {payload[:200]!r}")
        self.sock.setblocking(False)

    def drain(self) -> int:
        """Read what is there, acknowledge every request; return the chat events seen.

        An event is acknowledged without decoding it: its id is cut from the head the
        emulator writes (``{"jsonrpc":"2.0","id":"...``) and the acks of one read share
        one random mask. Anything else (a ping) is decoded as JSON. This keeps the reader
        well under a core at twice today's event rate, so the emulator is what is measured.
        """
        messages = self.pending
        self.pending = []
        try:
            data = self.sock.recv(262144)
        except BlockingIOError:
            data = b""
        if data:
            messages += self.reader.feed(data)
        events = 0
        acks = []
        for opcode, payload in messages:
            if opcode != _wsproto.OP_TEXT:
                continue
            if payload.startswith(_EVENT_HEAD):
                end = payload.index(b'"', _ID_AT)
                acks.append(b"".join((_ACK_HEAD, payload[_ID_AT:end], _ACK_TAIL)))
                events += _CHAT_EVENT in payload
            elif b'"method"' in payload:
                frame = json.loads(payload)
                result = frame["params"] if frame["method"] == "signalwire.ping" else {}
                answer = {"jsonrpc": "2.0", "id": frame["id"], "result": result}
                acks.append(json.dumps(answer).encode())
        if acks:
            mask = os.urandom(4)
            out = b"".join(
                _wsproto.frame_header(_wsproto.OP_TEXT, len(ack), masked=True)
                + mask
                + _wsproto.unmask(ack, mask)
                for ack in acks
            )
            self.sock.setblocking(True)
            self.sock.sendall(out)
            self.sock.setblocking(False)
        return events

    def close(self) -> None:
        self.sock.close()


def process_cpu_seconds(pid: int | None) -> float:
    """User + system CPU time of another process (the emulator), from /proc; 0 when unknown."""
    if pid is None:
        return 0.0
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            fields = stat.read().rpartition(")")[2].split()
    except OSError:
        return 0.0
    # After the command: state is field 3, utime and stime are fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run(p: dict[str, Any]) -> dict[str, Any]:
    """Measure fan-out; p holds the emulator's JSON line plus subscribers and messages."""
    basic = base64.b64encode(f"{p['project_id']}:{p['api_token']}".encode()).decode()
    project = _bench.Rest(p["rest_url"], f"Basic {basic}")
    tokens = []
    for index in range(p["subscribers"]):
        reply = project.call(
            "POST", "/api/fabric/subscribers/tokens", {"reference": f"fanout{index}@bench.test"}
        )
        tokens.append(reply["token"])
    addresses = [
        _bench.Rest(p["rest_url"], f"Bearer {token}").call("GET", "/api/fabric/subscriber/info")[
            "fabric_addresses"
        ][0]["id"]
        for token in tokens
    ]
    owner = _bench.Rest(p["rest_url"], f"Bearer {tokens[0]}")
    joined = owner.call(
        "POST",
        "/api/fabric/conversations/join",
        {"from_fabric_address_id": addresses[0], "fabric_address_ids": addresses},
    )
    message = {"group_id": joined["group_id"], "from_fabric_address_id": addresses[0]}
    sockets = [RelaySocket(p["relay_url"], token) for token in tokens]
    selector = selectors.DefaultSelector()
    for relay in sockets:
        selector.register(relay.sock, selectors.EVENT_READ, relay)

    def receive(expected: int, deadline: float) -> None:
        seen = 0
        while seen < expected:
            if time.monotonic() > deadline:
                raise TimeoutError(f"fan-out: {seen} of {expected} events arrived")
            for key, _ in selector.select(timeout=1.0):
                seen += key.data.drain()

    def send(count: int) -> tuple[float, list[threading.Thread], list[BaseException]]:
        """Start posting ``count`` messages from SENDERS threads; return the start time."""
        errors: list[BaseException] = []
        senders = p.get("senders", SENDERS)
        per_thread = [count // senders + (i < count % senders) for i in range(senders)]

        def post(n: int) -> None:
            rest = _bench.Rest(p["rest_url"], f"Bearer {tokens[0]}")
            try:
                for i in range(n):
                    rest.call(
                        "POST",
                        "/api/fabric/messages",
                        {**message, "text": f"f{i}"},
                    )
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=post, args=(n,)) for n in per_thread]
        start = time.perf_counter()
        for thread in threads:
            thread.start()
        return start, threads, errors

    try:
        subscribers = len(sockets)
        start, threads, errors = send(p["warmup"])
        receive(p["warmup"] * subscribers, time.monotonic() + p["deadline"])
        for thread in threads:
            thread.join()
        cpu_start = _bench.cpu_seconds()
        server_start = process_cpu_seconds(p.get("pid"))
        start, threads, errors = send(p["messages"])
        receive(p["messages"] * subscribers, time.monotonic() + p["deadline"])
        wall = time.perf_counter() - start
        cpu = _bench.cpu_seconds() - cpu_start
        server_cpu = process_cpu_seconds(p.get("pid")) - server_start
        for thread in threads:
            thread.join()
        if errors:
            raise RuntimeError(f"sender failed: {errors[0]!r}")
    finally:
        for relay in sockets:
            relay.close()
    events = p["messages"] * subscribers
    return {
        "per_s": events / wall,
        "messages_per_s": p["messages"] / wall,
        "client_cpu_share": cpu / wall,
        # The emulator's CPU per message accepted and fanned out: what bounds its rate on
        # a core of its own, and steadier than wall time on a shared machine.
        "server_cpu_per_message_ms": server_cpu * 1000 / p["messages"],
        "server_cpu_share": server_cpu / wall,
        "count": events,
    }
