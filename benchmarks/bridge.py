"""The Redis Streams bridge: its throughput against the realtime callback rate, and failover time.

    .venv/bin/python benchmarks/bridge.py [--quick] [--json]

An emulator runs in its own process pinned to core 0, redis-server in its own; the consumer
(this process) is pinned to core 1 and a sender process posts the messages. For each repeat, in
turn (A B A B ...), the same burst of N messages is consumed by

- A: ``client.subscribe(target, callback)`` with a callback that only counts (the baseline);
- B: a :class:`StreamBridge` that appends each message with its checkpoint to a Redis Stream.

Printed per participant: messages/s (first send to last handled) and the consumer's CPU per
message; the ratios B/A say what the bridge costs on top of a bare subscription. Failover: two
bridge processes (TTL 1 s); the leader is SIGKILLed and the time until a message sent right
after the kill is in the stream is measured (median of the repeats); the lease TTL bounds it.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import redis

from signalwire_chat import ChatClient, Group, RealtimeOptions
from signalwire_chat.bridge import StreamBridge
from signalwire_chat.pytest_plugin import RedisServer

ROOT = Path(__file__).resolve().parent.parent
SERVER_CORE, CLIENT_CORE = 0, min(1, (os.cpu_count() or 1) - 1)

_SENDER = r"""
import sys, threading
from signalwire_chat import ChatClient, Group
token, rest, relay, group, count, tag = sys.argv[1:7]
count, threads = int(count), 4
with ChatClient(token, rest_url=rest, relay_url=relay) as client:
    target = Group(id=group)
    client.my_address_id()  # looked up before the clock starts
    print("ready", flush=True)
    sys.stdin.readline()
    def send(k):
        for i in range(k, count, threads):
            client.send_message(target, f"{tag} {i}")
    workers = [threading.Thread(target=send, args=(k,)) for k in range(threads)]
    for w in workers: w.start()
    for w in workers: w.join()
"""

_BRIDGE = r"""
import sys, signal
from signalwire_chat import ChatClient, Group
from signalwire_chat.bridge import StreamBridge
token, rest, relay, url, group = sys.argv[1:6]
client = ChatClient(token, rest_url=rest, relay_url=relay)
bridge = StreamBridge(client, url, stream="bench:failover", name="failover",
                      targets=[Group(id=group)], ttl=1.0, retry_interval=0.05)
signal.signal(signal.SIGTERM, lambda *a: bridge.close())
print("ready", bridge.lease.owner, flush=True)
bridge.run()
client.close()
"""


def _pin(core: int) -> None:
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {core})


def _post(rest: str, auth: str, path: str, body: dict[str, Any] | None = None) -> Any:
    import urllib.request

    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        rest + path,
        data=data,
        method="POST" if body is not None else "GET",
        headers={"Authorization": auth, "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as reply:
        return json.loads(reply.read())


class World:
    """The emulator process, a listener and a sender in one group."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "signalwire_chat.emulator", "--port", "0"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            cwd=ROOT,
            preexec_fn=lambda: _pin(SERVER_CORE),
        )
        assert self.proc.stdout is not None
        info = json.loads(self.proc.stdout.readline())
        self.rest, self.relay = info["rest_url"], info["relay_url"]
        basic = base64.b64encode(f"{info['project_id']}:{info['api_token']}".encode()).decode()
        tokens = [
            _post(self.rest, f"Basic {basic}", "/api/fabric/subscribers/tokens", {"reference": r})[
                "token"
            ]
            for r in ("listener@bench.test", "sender@bench.test")
        ]
        self.listener, self.sender = tokens
        addresses = [
            _post(self.rest, f"Bearer {t}", "/api/fabric/subscriber/info")["fabric_addresses"][0][
                "id"
            ]
            for t in tokens
        ]
        joined = _post(
            self.rest,
            f"Bearer {self.listener}",
            "/api/fabric/conversations/join",
            {"from_fabric_address_id": addresses[0], "fabric_address_ids": addresses},
        )
        self.group = joined["group_id"]

    def sender_ready(self, count: int, tag: str) -> subprocess.Popen[str]:
        """A sender process, ready: write a line to its stdin and it sends ``count``."""
        proc = subprocess.Popen(
            [
                sys.executable,
                "-c",
                _SENDER,
                self.sender,
                self.rest,
                self.relay,
                self.group,
                str(count),
                tag,
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            preexec_fn=lambda: _pin(SERVER_CORE),
        )
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        return proc

    def send(self, count: int, tag: str) -> subprocess.Popen[str]:
        proc = self.sender_ready(count, tag)
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.close()
        return proc

    def client(self) -> ChatClient:
        return ChatClient(
            self.listener,
            rest_url=self.rest,
            relay_url=self.relay,
            realtime=RealtimeOptions(queue_size=1000),
        )

    def close(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(10)


def _burst(world: World, count: int, tag: str, done: Any) -> tuple[float, float]:
    """Send ``count`` messages; return (wall seconds, consumer CPU seconds) until ``done()``."""
    sender = world.sender_ready(count, tag)
    assert sender.stdin is not None
    cpu0, wall0 = time.process_time(), time.perf_counter()
    sender.stdin.write("go\n")
    sender.stdin.close()
    while not done():
        time.sleep(0.01)
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    sender.wait(60)
    return wall, cpu


def run_callback(world: World, count: int, tag: str) -> tuple[float, float]:
    seen = [0]
    with world.client() as client:
        client.subscribe(
            Group(id=world.group),
            lambda m: seen.__setitem__(0, seen[0] + 1),
        )
        return _burst(world, count, tag, lambda: seen[0] >= count)


def run_bridge(world: World, url: str, count: int, tag: str) -> tuple[float, float]:
    with world.client() as client:
        live = threading.Event()
        bridge = StreamBridge(
            client,
            url,
            stream=f"bench:{tag}",
            name=f"bench-{tag}",
            targets=[Group(id=world.group)],
            on_leading=lambda token: live.set(),
        )
        thread = threading.Thread(target=bridge.run)
        thread.start()
        try:
            assert live.wait(30), "the bridge did not lead"
            return _burst(world, count, tag, lambda: bridge.appended >= count)
        finally:
            bridge.close()
            thread.join(10)


def failover(world: World, url: str, repeats: int) -> list[float]:
    """Seconds from SIGKILL of the leader to the next message in the stream."""
    args = [world.listener, world.rest, world.relay, url, world.group]
    procs: dict[str, subprocess.Popen[str]] = {}

    def start() -> None:
        proc = subprocess.Popen(
            [sys.executable, "-c", _BRIDGE, *args], stdout=subprocess.PIPE, text=True
        )
        assert proc.stdout is not None
        procs[proc.stdout.readline().split()[1]] = proc

    r = redis.Redis.from_url(url)
    times = []
    try:
        start()
        start()
        for i in range(repeats):
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                value = r.get("signalwire-chat:lease:bridge:failover")
                if value is not None and value.decode().split()[1] in procs:
                    break
                time.sleep(0.01)
            leader = procs.pop(value.decode().split()[1])
            world.send(1, f"warm{i}").wait(30)
            before = r.xlen("bench:failover")
            while r.xlen("bench:failover") == before and time.monotonic() < deadline:
                time.sleep(0.01)
            before = r.xlen("bench:failover")
            leader.kill()
            killed = time.monotonic()
            leader.wait(10)
            world.send(1, f"after{i}").wait(30)
            while r.xlen("bench:failover") == before and time.monotonic() < killed + 30:
                time.sleep(0.005)
            times.append(time.monotonic() - killed)
            start()  # back to two
    finally:
        for proc in procs.values():
            proc.kill()
            proc.wait(10)
        r.close()
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", action="store_true", help="one JSON line instead of text")
    args = parser.parse_args()
    count, repeats = (300, 1) if args.quick else (5000, 3)
    _pin(CLIENT_CORE)
    world = World()
    server = RedisServer(persistence=False).start()
    try:
        callback: list[tuple[float, float]] = []
        bridged: list[tuple[float, float]] = []
        for i in range(repeats):
            callback.append(run_callback(world, count, f"cb{i}"))
            bridged.append(run_bridge(world, server.url, count, f"br{i}"))
        takeovers = failover(world, server.url, 1 if args.quick else 3)
    finally:
        server.close()
        world.close()
    cb_wall = statistics.median(w for w, _ in callback)
    br_wall = statistics.median(w for w, _ in bridged)
    cb_cpu = statistics.median(c for _, c in callback) / count
    br_cpu = statistics.median(c for _, c in bridged) / count
    result = {
        "messages": count,
        "callback_per_s": count / cb_wall,
        "bridge_per_s": count / br_wall,
        "throughput_ratio": (count / br_wall) / (count / cb_wall),
        "callback_cpu_us": cb_cpu * 1e6,
        "bridge_cpu_us": br_cpu * 1e6,
        "cpu_ratio": br_cpu / cb_cpu if cb_cpu else None,
        "failover_s": statistics.median(takeovers),
        "failover_ttl_s": 1.0,
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(
            f"{count} messages: callback {result['callback_per_s']:,.0f}/s "
            f"({result['callback_cpu_us']:.0f} us CPU each), "
            f"bridge {result['bridge_per_s']:,.0f}/s "
            f"({result['bridge_cpu_us']:.0f} us CPU each): throughput "
            f"{result['throughput_ratio']:.2f}x, CPU {result['cpu_ratio']:.2f}x of the callback"
        )
        print(f"failover (TTL 1 s): median {result['failover_s']:.2f} s kill -> next entry")
    return 0


if __name__ == "__main__":
    sys.exit(main())
