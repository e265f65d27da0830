"""Relay load server: just enough of the relay protocol to keep one client as busy as it can be.

Run as a process of its own (pinned to the core the clients do not use). It listens on two ports:

- ``stream``: after ``signalwire.connect`` it pushes ``conversation.message`` events as fast as a
  window of ``--window`` unacknowledged events allows (topped up a tenth of the window at a
  time), and counts the acknowledgements.
- ``stream`` with the path ``/groups/N`` (spread mode): the same, each event in one of N groups
  in turn (group ``i`` is ``spread_group_id(i)``), for a client that holds N subscriptions.
- ``paced``: one event at a time; the next goes ``--gap-ms`` after the acknowledgement of the last.
  The message's ``ts`` is the send time (``time.time()``), so the receiver measures the latency.

Frames come from a pre-encoded template of fixed length (the frame header is computed once).
Any token is accepted. A plain HTTP request (no upgrade) gets canned, empty REST answers, so a
client that looks at REST while subscribing still works. Prints one JSON line with the URLs, then
serves until its standard input closes.
"""

from __future__ import annotations

import argparse
import json
import re
import socket
import sys
import threading
import time
import uuid

import _bench
import _wsproto

ADDRESS = _bench.ADDRESS_ID.encode()
SUBSCRIBER = _bench.SUBSCRIBER_ID.encode()
GROUP = _bench.GROUP_ID.encode()
#: Every session's protocol, so the pre-encoded events' channel names it (the group dialect's
#: clients drop events whose channel does not name their session).
PROTOCOL = "signalwire_bench_channel"

#: The spread mode's groups: number ``i`` is SPREAD_GROUP_PREFIX followed by ``i`` in 12 digits.
SPREAD_GROUP_PREFIX = b"99999999-0000-4000-8000-"


def _template(group: bytes) -> bytes:
    """Return an event's bytes with %-slots: rpc id, timestamp, message id, [group,] ts, text."""
    return (
        b'{"jsonrpc":"2.0","id":"00000000-0000-4000-8000-%012d","method":"signalwire.event",'
        b'"params":{"event_type":"conversation.message","event_channel":"signalwire_bench_channel",'
        b'"timestamp":%s,"is_author":false,"params":{"id":"10000000-0000-4000-8000-%012d",'
        b'"group_id":"'
        + group
        + b'","conversation_id":"'
        + ADDRESS
        + b'","user_id":"'
        + SUBSCRIBER
        + b'","from_fabric_address_id":"aaaaaaaa-0000-4000-8000-00000000a001"'
        + b',"from_address_id":"aaaaaaaa-0000-4000-8000-00000000a001","address_id":"'
        + ADDRESS
        + b'","ts":%s,"details":{},"metadata":{},"type":"message","subtype":"chat","kind":null,'
        b'"text":"benchmark message number %012d","conversation_name":"Bench room",'
        b'"hidden":false,"user_name":"Bench Sender"}}}'
    )


EVENT_TEMPLATE = _template(GROUP)
#: The same event in one of many groups (the group number is the fourth slot).
SPREAD_TEMPLATE = _template(SPREAD_GROUP_PREFIX + b"%012d")
EVENT_ID = "00000000-0000-4000-8000-%012d"
SAMPLE = EVENT_TEMPLATE % (0, b"%.6f" % time.time(), 0, b"%.6f" % time.time(), 0)
EVENT_HEADER = _wsproto.frame_header(_wsproto.OP_TEXT, len(SAMPLE))


def event_frame(seq: int, groups: int | None = None) -> bytes:
    """Return the whole frame of event number ``seq``, stamped with the time of the call.

    With ``groups``, the event goes to group number ``seq % groups`` of the spread mode.
    """
    now = b"%.6f" % time.time()
    if groups is None:
        payload = EVENT_TEMPLATE % (seq, now, seq, now, seq)
    else:
        payload = SPREAD_TEMPLATE % (seq, now, seq, seq % groups, now, seq)
    assert len(payload) == len(SAMPLE)
    return EVENT_HEADER + payload


def spread_group_id(index: int) -> str:
    """Return the id of group number ``index`` of the spread mode."""
    return (SPREAD_GROUP_PREFIX + b"%012d" % index).decode()


def groups_of(target: str) -> int | None:
    """Return N for a handshake target ``/groups/N`` (the spread mode), else None."""
    match = re.fullmatch(r"/groups/([1-9][0-9]{0,5})", target)
    return int(match.group(1)) if match else None


def connect_result(request_id: str) -> bytes:
    """Return the frame answering a ``signalwire.connect`` request."""
    jti = str(uuid.uuid4())
    result = {
        "identity": f"fabric.{_bench.SUBSCRIBER_ID}@bench.test",
        "authorization": {
            "jti": jti,
            "project_id": "11111111-2222-4333-8444-555555555555",
            "fabric_subscriber": {
                "version": 1,
                "expires_at": int(time.time()) + 7200,
                "subscriber_id": _bench.SUBSCRIBER_ID,
                "project_id": "11111111-2222-4333-8444-555555555555",
            },
        },
        "protocol": PROTOCOL,
        "ice_servers": [],
    }
    body = {"jsonrpc": "2.0", "id": request_id, "result": result}
    return _wsproto.server_frame(json.dumps(body).encode())


AUTH_STATE_ID = "auth-state-0000"
AUTH_STATE = _wsproto.server_frame(
    json.dumps(
        {
            "jsonrpc": "2.0",
            "id": AUTH_STATE_ID,
            "method": "signalwire.event",
            "params": {
                "event_type": "signalwire.authorization.state",
                "event_channel": "signalwire_bench_channel",
                "timestamp": time.time(),
                "params": {"authorization_state": "bench-authorization-state"},
            },
        }
    ).encode()
)


COMPACT_ACK = re.compile(rb'\{"jsonrpc":"2\.0","id":"([^"\\]+)","result":\{\}\}')


class RelayConnection:
    """One client socket: handshake, connect, then events under a window of unacked ones."""

    def __init__(self, sock: socket.socket, window: int, gap: float) -> None:
        self.sock = sock
        self.window = window
        self.gap = gap
        self.reader = _wsproto.FrameReader()
        self.outstanding: set[str] = set()
        self.seq = 0
        self.acks = 0
        self.groups: int | None = None

    def run(self) -> None:
        """Serve until the client closes; never raise."""
        try:
            self._run()
        except OSError:
            pass
        finally:
            self.sock.close()

    def _run(self) -> None:
        head, rest = _wsproto.read_http_head(self.sock)
        method, target, headers = _wsproto.parse_headers(head)
        if headers.get("upgrade", "").lower() != "websocket":
            serve_plain_http(self.sock, method, target, rest)
            return
        self.groups = groups_of(target)
        self.sock.sendall(_wsproto.server_handshake_response(headers))
        pending = self.reader.feed(rest)
        while not pending:
            data = self.sock.recv(65536)
            if not data:
                return
            pending = self.reader.feed(data)
        _opcode, payload = pending.pop(0)
        request = json.loads(payload)
        if request.get("method") != "signalwire.connect":
            return
        self.sock.sendall(connect_result(request["id"]) + AUTH_STATE)
        self.outstanding.add(AUTH_STATE_ID)
        if not self._handle(pending):
            return
        paced = self.window == 1
        # Top the window up in batches (a tenth of it): fewer, larger writes keep this process
        # far from being the bottleneck when a client acknowledges events one frame at a time.
        batch = max(1, self.window // 10)
        while True:
            free = self.window - len(self.outstanding)
            if free >= batch:
                if paced and self.seq:
                    time.sleep(self.gap)
                self._send_events(free)
            data = self.sock.recv(262144)
            if not data or not self._handle(self.reader.feed(data)):
                return

    def _send_events(self, count: int) -> None:
        frames = []
        for _ in range(count):
            self.seq += 1
            frames.append(event_frame(self.seq, self.groups))
            self.outstanding.add(EVENT_ID % self.seq)
        self.sock.sendall(b"".join(frames))

    def _handle(self, messages: list[tuple[int, bytes]]) -> bool:
        """Process client messages; return False when the connection is over."""
        for opcode, payload in messages:
            if opcode == _wsproto.OP_TEXT:
                ack = COMPACT_ACK.fullmatch(payload)
                if ack is not None:  # the common case, without a JSON decode
                    try:
                        self.outstanding.remove(ack.group(1).decode())
                    except KeyError:
                        continue
                    self.acks += 1
                    continue
                frame = json.loads(payload)
                if "method" in frame:
                    self._answer(frame)
                else:
                    try:
                        self.outstanding.remove(frame["id"])
                    except KeyError:
                        continue
                    self.acks += 1
            elif opcode == _wsproto.OP_CLOSE:
                self.sock.sendall(_wsproto.server_frame(payload[:2], _wsproto.OP_CLOSE))
                return False
            elif opcode == _wsproto.OP_PING:
                self.sock.sendall(_wsproto.server_frame(payload, _wsproto.OP_PONG))
        return True

    def _answer(self, frame: dict[str, object]) -> None:
        result: dict[str, object] = {}
        params = frame.get("params")
        if frame["method"] == "signalwire.ping" and isinstance(params, dict):
            result = {"timestamp": params.get("timestamp", time.time())}
        body = {"jsonrpc": "2.0", "id": frame.get("id"), "result": result}
        self.sock.sendall(_wsproto.server_frame(json.dumps(body).encode()))


SUBSCRIBER_INFO = json.dumps(
    {
        "id": _bench.SUBSCRIBER_ID,
        "email": "bench@bench.test",
        "fabric_addresses": [
            {
                "id": _bench.ADDRESS_ID,
                "name": "bench",
                "display_name": "Bench",
                "type": "subscriber",
                "resource_id": _bench.SUBSCRIBER_ID,
                "channels": {"messaging": "/public/bench?channel=messaging"},
                "locked": False,
                "created_at": "2026-01-01T00:00:00Z",
            }
        ],
    }
).encode()
EMPTY_PAGE = b'{"data":[],"links":{}}'


def serve_plain_http(sock: socket.socket, method: str, target: str, pending: bytes) -> None:
    """Answer keep-alive REST requests with canned empty bodies."""
    while True:
        body = SUBSCRIBER_INFO if target.startswith("/api/fabric/subscriber/info") else EMPTY_PAGE
        status = b"201 Created" if method == "POST" else b"200 OK"
        sock.sendall(
            b"HTTP/1.1 " + status + b"\r\nContent-Type: application/json\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
        )
        head, pending = _wsproto.read_http_head(sock, pending)
        method, target, headers = _wsproto.parse_headers(head)
        length = int(headers.get("content-length", "0"))
        while len(pending) < length:
            chunk = sock.recv(65536)
            if not chunk:
                return
            pending += chunk
        pending = pending[length:]


def listen() -> socket.socket:
    """Return a listening socket on 127.0.0.1, port 0."""
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", 0))
    server.listen(128)
    return server


def accept_loop(server: socket.socket, window: int, gap: float) -> None:
    """Serve each accepted client on a thread of its own."""
    while True:
        try:
            sock, _ = server.accept()
        except OSError:
            return
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        connection = RelayConnection(sock, window, gap)
        threading.Thread(target=connection.run, daemon=True).start()


def main() -> None:
    """Parse options, listen, print the URLs, serve until stdin closes."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--core", type=int, default=None, help="pin to this core")
    parser.add_argument("--window", type=int, default=100, help="unacked events in flight")
    parser.add_argument("--gap-ms", type=float, default=1.0, help="paced: pause after each ack")
    args = parser.parse_args()
    if args.core is not None:
        _bench.pin(args.core)
    stream, paced = listen(), listen()
    for server, window in ((stream, args.window), (paced, 1)):
        thread = threading.Thread(
            target=accept_loop, args=(server, window, args.gap_ms / 1000), daemon=True
        )
        thread.start()
    stream_port = stream.getsockname()[1]
    urls = {
        "stream_url": f"ws://127.0.0.1:{stream_port}/",
        "paced_url": f"ws://127.0.0.1:{paced.getsockname()[1]}/",
        "http_url": f"http://127.0.0.1:{stream_port}",
    }
    print(json.dumps(urls), flush=True)
    sys.stdin.read()


if __name__ == "__main__":
    main()
