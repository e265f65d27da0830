"""The Redis Streams bridge: its throughput against the realtime callback rate, and failover time.

    .venv/bin/python benchmarks/bridge.py [--quick] [--json] [--feed direct|rest] [--rate R]
        [--before PATH] [--window S]... [--count N] [--repeats N] [--no-failover]
        [--profile DIR] [--switch S]... [--event-window N] [--redis-core C]

The emulator runs in its own process pinned to core 0, redis-server in its own. Each consumer is
a process of its own pinned to core 1. The feed (``--feed``):

- ``direct`` (the default): the emulator's process is a driver that runs an
  :class:`~signalwire_chat.emulator.Emulator` and, on the go, posts the burst with
  :meth:`~signalwire_chat.emulator.Emulator.send_many` (a batch of posts at a time on the
  emulator's loop, no HTTP): each message is stored and reaches the consumer as a relay event
  over its websocket, exactly as a REST post's does. This feed (about 9,000 messages/s on a
  2-core machine) is about 10x the REST feed of e7094f4; a bare callback subscription keeps up
  with it, so a bridge below the callback's rate is bound by itself, not by the feed.
  ``--rate R`` paces it: R/100 messages every 1/100 s on the schedule from the go (a late
  chunk is sent at once), so a consumer is measured at a rate it may keep up with; the rate
  printed is the one measured.
- ``rest``: ``python -m signalwire_chat.emulator`` and sender processes (also on core 0)
  posting the messages over keep-alive HTTP connections, the request bodies encoded before the
  clock starts; the emulator accepting posts bounds this feed (about 1,000 messages/s).

For each repeat, in turn (A B [C] A B [C] ...), the same burst of N messages is consumed by

- A: ``client.subscribe(target, callback)`` with a callback that only counts (the baseline);
- B: a :class:`StreamBridge` that appends each message with its checkpoint to a Redis Stream;
- C (with ``--before PATH``): the same bridge, of the library at PATH (e.g. an unpacked
  ``git archive main``), so the ratio before a change and after it come from one run;
- with ``--window S`` (repeatable): ours again with ``batch_window=S``.

Each consumer counts what it handled and reports its wall time (from the go to the last message
handled) and its CPU time (``time.process_time``: every thread of its process). Printed per
participant: messages/s and CPU per message; the ratios B/A (and C/A) say what the bridge costs
on top of a bare subscription. With the direct feed, the feed's own rate (messages stored and
published per second, from the go to the last one posted) is printed too. Failover: two bridge
processes (TTL 1 s); the leader is SIGKILLed and the time until a message sent right after the
kill is in the stream is measured (median of the repeats); the lease TTL bounds it.

Tokens reach the processes through their environment (``BENCH_TOKEN``), never their argv.
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
import time
from pathlib import Path
from typing import Any

import redis

from signalwire_chat.pytest_plugin import RedisServer

ROOT = Path(__file__).resolve().parent.parent
SERVER_CORE, CLIENT_CORE = 0, min(1, (os.cpu_count() or 1) - 1)
#: Sender processes and the connections of each: enough that the emulator, not the senders,
#: bounds the feed.
SENDERS, CONNECTIONS = 2, 4

_SENDER = r"""
import http.client, json, os, sys, threading
from urllib.parse import urlsplit
token = os.environ["BENCH_TOKEN"]
rest, group, me, first, count, step, tag, connections = sys.argv[1:9]
first, count, step, connections = int(first), int(count), int(step), int(connections)
url = urlsplit(rest)
headers = {"Authorization": "Bearer " + token, "Content-Type": "application/json"}
numbers = list(range(first, count, step))
bodies = [
    json.dumps({"group_id": group, "from_fabric_address_id": me, "text": f"{tag} {i}"}).encode()
    for i in numbers
]
def send(k):
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=60)
    for body in bodies[k::connections]:
        conn.request("POST", "/api/fabric/messages", body, headers)
        reply = conn.getresponse()
        reply.read()
        assert reply.status < 300, reply.status
    conn.close()
print("ready", flush=True)
sys.stdin.readline()
workers = [threading.Thread(target=send, args=(k,)) for k in range(connections)]
for w in workers: w.start()
for w in workers: w.join()
"""

# A consumer: the bare callback subscription or the bridge, of the library on its sys.path.
_CONSUMER = r"""
import json, os, sys, threading, time
from signalwire_chat import ChatClient, Group, RealtimeOptions
token = os.environ["BENCH_TOKEN"]
kind, rest, relay, group, count, url, tag, window = sys.argv[1:9]
count = int(count)
options = {"batch_window": float(window)} if window else {}
if os.environ.get("BENCH_SWITCH"):  # an experiment of the benchmark's, not the library's
    sys.setswitchinterval(float(os.environ["BENCH_SWITCH"]))
profile = os.environ.get("BENCH_PROFILE")
if profile:  # a profiler per thread the client starts (cProfile sees its own thread only)
    import cProfile, pstats
    profilers = []
    def _profile_thread(*_args):
        profiler = cProfile.Profile()
        profilers.append(profiler)
        profiler.enable()
    threading.setprofile(_profile_thread)
client = ChatClient(token, rest_url=rest, relay_url=relay,
                    realtime=RealtimeOptions(queue_size=1000))
if kind == "callback":
    seen = [0]
    def on_message(message):
        seen[0] += 1
    client.subscribe(Group(id=group), on_message)
    handled = lambda: seen[0]
else:
    from signalwire_chat.bridge import StreamBridge
    live = threading.Event()
    bridge = StreamBridge(client, url, stream=f"bench:{tag}", name=f"bench-{tag}",
                          targets=[Group(id=group)], on_leading=lambda token: live.set(),
                          **options)
    thread = threading.Thread(target=bridge.run)
    thread.start()
    assert live.wait(30), "the bridge did not lead"
    handled = lambda: bridge.appended
import signalwire_chat
print("ready", signalwire_chat.__file__, flush=True)
sys.stdin.readline()
cpu0, wall0 = time.process_time(), time.perf_counter()
while handled() < count:
    time.sleep(0.01)
wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
if profile:
    threading.setprofile(None)
    stats = pstats.Stats(*profilers)
    stats.dump_stats(f"{profile}/{kind}-{tag}.pstats")
print(json.dumps({"wall": wall, "cpu": cpu}), flush=True)
if kind != "callback":
    bridge.close()
    thread.join(10)
client.close()
"""

_BRIDGE = r"""
import os, sys, signal
from signalwire_chat import ChatClient, Group
from signalwire_chat.bridge import StreamBridge
token = os.environ["BENCH_TOKEN"]
rest, relay, url, group = sys.argv[1:5]
client = ChatClient(token, rest_url=rest, relay_url=relay)
bridge = StreamBridge(client, url, stream="bench:failover", name="failover",
                      targets=[Group(id=group)], ttl=1.0, retry_interval=0.05)
signal.signal(signal.SIGTERM, lambda *a: bridge.close())
print("ready", bridge.lease.owner, flush=True)
bridge.run()
client.close()
"""


# The direct feed: an emulator in this process; "burst N TAG" readies N texts ("ready"), "go"
# posts them with send_many and answers the seconds it took. With a rate (argv[1], messages/s,
# 0: as fast as it can), a chunk of 1/100 s worth at a time, sleeping to the schedule.
_DRIVER = r"""
import json, sys, time
from signalwire_chat.emulator import Emulator
rate = float(sys.argv[1]) if len(sys.argv) > 1 else 0.0
event_window = int(sys.argv[2]) if len(sys.argv) > 2 else 100
chunk = max(1, round(rate / 100)) if rate else 0
with Emulator(event_window=event_window) as emu:
    listener = emu.create_subscriber("listener@bench.test")
    sender = emu.create_subscriber("sender@bench.test")
    group = emu.join_group(listener, [sender.address_id])
    info = {"rest_url": emu.rest_url, "relay_url": emu.relay_url, "group": group,
            "listener": listener.token, "sender": sender.token, "sender_address": sender.address_id}
    print(json.dumps(info), flush=True)
    texts = []
    for line in sys.stdin:
        word, *rest = line.split()
        if word == "burst":
            texts = [f"{rest[1]} {i}" for i in range(int(rest[0]))]
            print("ready", flush=True)
        elif word == "go":
            start = time.perf_counter()
            if not chunk:
                emu.send_many(sender, None, texts, group_id=group)
            else:
                for first in range(0, len(texts), chunk):
                    delay = start + first / rate - time.perf_counter()
                    if delay > 0:
                        time.sleep(delay)
                    emu.send_many(sender, None, texts[first:first + chunk], group_id=group)
            print(json.dumps({"seconds": time.perf_counter() - start}), flush=True)
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
    """The emulator, a listener and a sender in one group, and the feed that sends bursts.

    ``feed``: "direct" (a driver process posting with ``Emulator.send_many``) or "rest" (the
    emulator's command line and sender processes posting over HTTP). ``rate``: the direct
    feed's pace in messages/s (0: as fast as it can). ``event_window``: the emulator's
    most unacknowledged relay events per session (the service's 100 by default).
    """

    def __init__(self, feed: str = "direct", rate: float = 0.0, event_window: int = 100) -> None:
        self.feed = feed
        if feed == "direct":
            command = ["-c", _DRIVER, str(rate), str(event_window)]
        else:
            command = ["-m", "signalwire_chat.emulator", "--port", "0"]
        self.proc = subprocess.Popen(
            [sys.executable, *command],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            cwd=ROOT,
            preexec_fn=lambda: _pin(SERVER_CORE),
        )
        assert self.proc.stdout is not None
        info = json.loads(self.proc.stdout.readline())
        self.rest, self.relay = info["rest_url"], info["relay_url"]
        if feed == "direct":
            self.listener, self.sender = info["listener"], info["sender"]
            self.group, self.sender_address = info["group"], info["sender_address"]
        else:
            self._join_over_rest(info)

    def _join_over_rest(self, info: dict[str, Any]) -> None:
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
        self.sender_address = addresses[1]

    def feed_ready(self, count: int, tag: str) -> list[subprocess.Popen[str]]:
        """The processes that send a burst of ``count``, ready: write "go" to their stdin."""
        if self.feed == "direct":
            assert self.proc.stdin is not None
            assert self.proc.stdout is not None
            self.proc.stdin.write(f"burst {count} {tag}\n")
            self.proc.stdin.flush()
            assert self.proc.stdout.readline().strip() == "ready"
            return [self.proc]
        procs = []
        for first in range(SENDERS):
            args = [self.rest, self.group, self.sender_address, str(first)]
            args += [str(count), str(SENDERS), tag, str(CONNECTIONS)]
            proc = subprocess.Popen(
                [sys.executable, "-c", _SENDER, *args],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                env=dict(os.environ, BENCH_TOKEN=self.sender),
                preexec_fn=lambda: _pin(SERVER_CORE),  # core 1 stays the consumer's alone
            )
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == "ready"
            procs.append(proc)
        return procs

    def feed_done(self, procs: list[subprocess.Popen[str]]) -> float | None:
        """Wait until the burst is all accepted; the direct feed's seconds, from its go."""
        if self.feed == "direct":
            assert self.proc.stdout is not None
            return float(json.loads(self.proc.stdout.readline())["seconds"])
        for proc in procs:
            proc.wait(60)
            _close(proc)
        return None

    def send(self, count: int, tag: str) -> None:
        """Send ``count`` messages and wait until they are all accepted."""
        procs = self.feed_ready(count, tag)
        _go(procs)
        self.feed_done(procs)

    def close(self) -> None:
        _close(self.proc)  # the driver closes its emulator and ends at the end of its stdin
        if self.feed == "rest":
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


def _go(procs: list[subprocess.Popen[str]]) -> None:
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()


def _close(proc: subprocess.Popen[str]) -> None:
    for pipe in (proc.stdin, proc.stdout):
        if pipe is not None:
            pipe.close()


def consume(
    world: World,
    kind: str,
    url: str,
    count: int,
    tag: str,
    path: str | None = None,
    window: str = "",
    profile: str | None = None,
    switch: str = "",
) -> tuple[float, float, float | None]:
    """One burst of ``count`` messages through a consumer process of ``kind``.

    ``path``: the library to import (another checkout); ours by default. ``window``: the
    bridge's ``batch_window`` ("": its default). ``profile``: a directory where the consumer
    writes the cProfile stats of its threads (``<kind>-<tag>.pstats``). ``switch``: the
    consumer's ``sys.setswitchinterval`` (an experiment: how long the GIL is held before
    another thread gets it; "": Python's 5 ms). Returns the
    consumer's (wall seconds, CPU seconds) from the go to its last message handled, and the
    direct feed's seconds.
    """
    library = path or str(ROOT)
    env = dict(os.environ, PYTHONPATH=library, BENCH_TOKEN=world.listener)
    if profile:
        env["BENCH_PROFILE"] = profile
    if switch:
        env["BENCH_SWITCH"] = switch
    args = [kind, world.rest, world.relay, world.group, str(count), url, tag, window]
    consumer = subprocess.Popen(
        [sys.executable, "-c", _CONSUMER, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        cwd=library,  # "-c" puts the working directory first on sys.path
        preexec_fn=lambda: _pin(CLIENT_CORE),
    )
    try:
        assert consumer.stdout is not None
        word, imported = [*consumer.stdout.readline().split(), "", ""][:2]
        assert word == "ready", f"{kind} consumer failed"
        assert Path(imported).is_relative_to(library), f"{imported} is not of {library}"
        feed = world.feed_ready(count, tag)
        _go([consumer, *feed])
        fed = world.feed_done(feed)
        result = json.loads(consumer.stdout.readline())
        consumer.wait(30)
    finally:
        if consumer.poll() is None:
            consumer.kill()
            consumer.wait(10)
        _close(consumer)
    return float(result["wall"]), float(result["cpu"]), fed


def failover(world: World, url: str, repeats: int) -> list[float]:
    """Seconds from SIGKILL of the leader to the next message in the stream."""
    args = [world.rest, world.relay, url, world.group]
    env = dict(os.environ, BENCH_TOKEN=world.listener)
    procs: dict[str, subprocess.Popen[str]] = {}

    def start() -> None:
        proc = subprocess.Popen(
            [sys.executable, "-c", _BRIDGE, *args], stdout=subprocess.PIPE, text=True, env=env
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
            world.send(1, f"warm{i}")
            before = r.xlen("bench:failover")
            while r.xlen("bench:failover") == before and time.monotonic() < deadline:
                time.sleep(0.01)
            before = r.xlen("bench:failover")
            leader.kill()
            killed = time.monotonic()
            leader.wait(10)
            world.send(1, f"after{i}")
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


Run = tuple[float, float, float | None]


def _rates(runs: list[Run], count: int) -> tuple[float, float]:
    """(messages/s, CPU microseconds per message): medians of the repeats."""
    wall = statistics.median(w for w, _, _ in runs)
    cpu = statistics.median(c for _, c, _ in runs)
    return count / wall, cpu / count * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", action="store_true", help="one JSON line instead of text")
    parser.add_argument(
        "--before", metavar="PATH", help="also run the bridge of the library at PATH"
    )
    parser.add_argument("--count", type=int, help="messages per burst")
    parser.add_argument("--repeats", type=int, help="bursts per participant")
    parser.add_argument("--no-failover", action="store_true", help="skip the failover measure")
    parser.add_argument(
        "--feed",
        choices=("direct", "rest"),
        default="direct",
        help="post with Emulator.send_many (default) or over REST from sender processes",
    )
    parser.add_argument(
        "--switch",
        action="append",
        default=[],
        metavar="S",
        help="also run ours with sys.setswitchinterval(S) in the consumer (a GIL experiment)",
    )
    parser.add_argument(
        "--event-window",
        type=int,
        default=100,
        metavar="N",
        help="the direct feed's emulator lets N relay events be unacknowledged (default 100)",
    )
    parser.add_argument(
        "--redis-core",
        type=int,
        metavar="C",
        help="pin redis-server to core C (default: the emulator's core 0, as this process)",
    )
    parser.add_argument(
        "--profile",
        metavar="DIR",
        help="cProfile every consumer's threads, the stats written to DIR (slows them down)",
    )
    parser.add_argument(
        "--rate",
        type=float,
        default=0.0,
        metavar="R",
        help="pace the direct feed at R messages/s (default: as fast as it can)",
    )
    parser.add_argument(
        "--window", action="append", default=[], help="also run ours with this batch_window"
    )
    args = parser.parse_args()
    count, repeats = (300, 1) if args.quick else (5000, 3)
    count, repeats = args.count or count, args.repeats or repeats
    participants: dict[str, tuple[str, str | None, str, str]] = {
        "callback": ("callback", None, "", ""),
        "bridge": ("bridge", None, "", ""),
    }
    for window in args.window:
        participants[f"bridge@{window}s"] = ("bridge", None, window, "")
    for switch in args.switch:
        participants[f"bridge~{switch}s"] = ("bridge", None, "", switch)
    if args.before:
        participants["before"] = ("bridge", str(Path(args.before).resolve()), "", "")
    _pin(SERVER_CORE)  # this process only waits; the consumers have core 1 to themselves
    if (args.rate or args.event_window != 100) and args.feed != "direct":
        parser.error("--rate and --event-window are the direct feed's")
    world = World(args.feed, args.rate, args.event_window)
    server = RedisServer(persistence=False).start()
    if args.redis_core is not None and server.pid is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(server.pid, {args.redis_core})
    runs: dict[str, list[Run]] = {name: [] for name in participants}
    try:
        for i in range(repeats):
            for name, (kind, path, window, switch) in participants.items():
                tag = f"{name}-{i}"
                runs[name].append(
                    consume(world, kind, server.url, count, tag, path, window, args.profile, switch)
                )
        takeovers = [] if args.no_failover else failover(world, server.url, 1 if args.quick else 3)
    finally:
        server.close()
        world.close()
    result: dict[str, Any] = {"messages": count, "feed": args.feed, "rate": args.rate}
    fed = [f for name in participants for _, _, f in runs[name] if f is not None]
    if fed:
        result["feed_per_s"] = count / statistics.median(fed)
    base_rate, base_cpu = _rates(runs["callback"], count)
    for name in participants:
        rate, cpu = _rates(runs[name], count)
        result[f"{name}_per_s"], result[f"{name}_cpu_us"] = rate, cpu
        if name != "callback":
            result[f"{name}_throughput_ratio"] = rate / base_rate
            result[f"{name}_cpu_ratio"] = cpu / base_cpu
    if takeovers:
        result["failover_s"] = statistics.median(takeovers)
        result["failover_ttl_s"] = 1.0
    if args.json:
        print(json.dumps(result))
        return 0
    paced = f" paced at {args.rate:,.0f}/s" if args.rate else ""
    print(f"{count} messages x {repeats}, feed {args.feed}{paced}", end="")
    print(f" ({result['feed_per_s']:,.0f} messages/s posted)" if fed else "")
    print(f"  callback: {base_rate:,.0f}/s ({base_cpu:.0f} us CPU each)")
    for name in participants:
        if name != "callback":
            print(
                f"  {name}: {result[f'{name}_per_s']:,.0f}/s ({result[f'{name}_cpu_us']:.0f} us "
                f"CPU each): throughput {result[f'{name}_throughput_ratio']:.2f}x, "
                f"CPU {result[f'{name}_cpu_ratio']:.2f}x of the callback"
            )
    if takeovers:
        print(f"failover (TTL 1 s): median {result['failover_s']:.2f} s kill -> next entry")
    return 0


if __name__ == "__main__":
    sys.exit(main())
