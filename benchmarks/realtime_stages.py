"""Where one realtime event's CPU goes: each stage of our client alone, in one thread.

    .venv/bin/python benchmarks/realtime_stages.py [--events N] [--stages a,b] [--instructions]

The stages run on the load server's own event bytes (``loadserver.event_frame``), without a
socket or a thread, in the order an event meets them:

- ``reader``: the frame reader (RFC 6455 checks, text checked as UTF-8), on the frames in
  the load server's writes;
- ``json``: the C scanner ``decode_message`` ends in, alone (``json.loads`` for scale);
- ``decode_message``: the JSON-RPC message parsed and checked (the nesting pre-check too);
- ``receive``: ``RelayProtocol.receive`` on a read's messages (routing, acknowledgements,
  the hand-over actions);
- ``structure``: the typed decode of the chat message (``ConversationChatMessage``);
- ``pipeline``: ``receive`` and then the dispatcher's delivery to a no-op callback (the
  duplicate check, the decode, the hand-over), all of it but the reader, the socket and the
  threads.

Printed: CPU microseconds per event of each stage (user + system, the fastest of 5 rounds).
With ``--instructions``, valgrind's instruction count per event instead (each stage run for
N and 2N events in a child process, the difference over N), which does not move with the
load of a shared machine. ``realtime_instructions.py`` counts the whole client (``ours``) the
same way: what it has beyond ``reader`` + ``pipeline`` is the socket and the two threads.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
from collections import deque
from collections.abc import Callable
from pathlib import Path

import _bench
import loadserver

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from signalwire_chat._convert import decoder
from signalwire_chat._realtime import _jsonrpc
from signalwire_chat._realtime._actions import Deliver
from signalwire_chat._realtime._dispatcher import Dispatcher
from signalwire_chat._realtime._frames import FrameReader
from signalwire_chat._realtime._protocol import RelayProtocol, SessionState
from signalwire_chat._realtime._routes import Routes
from signalwire_chat._realtime._subscriptions import Subscription
from signalwire_chat._route import Route
from signalwire_chat.models import ConversationChatMessage

STAGES = ("reader", "json", "decode_message", "receive", "structure", "pipeline")
READ = 100  # events per read handed to RelayProtocol.receive (the relay's window)


class _Owner:
    def _cancel(self, sub: Subscription) -> None:
        pass


def _connected_protocol() -> RelayProtocol:
    """The relay protocol of an accepted session, its routes sending the group to one no-op."""
    routes = Routes(drop_stale=True)
    group = _bench.GROUP_ID
    sub = Subscription(_Owner(), Route.group(group), lambda _message: None, None, recent_ids=4096)
    routes.groups = {group: (sub,)}
    protocol = RelayProtocol(routes, "bench/1")
    protocol.protocol = loadserver.PROTOCOL
    protocol.state = SessionState.CONNECTED
    return protocol


def stage(name: str, events: int) -> Callable[[], None]:
    """The function running ``name`` over ``events`` events (set up before it is returned).

    Each loop is written out: a helper calling a function per event would add its call.
    """
    frames = [loadserver.event_frame(seq) for seq in range(events)]
    texts = [frame[len(loadserver.EVENT_HEADER) :].decode() for frame in frames]
    reads = [texts[i : i + READ] for i in range(0, events, READ)]
    protocol = _connected_protocol()
    dispatcher = Dispatcher(queue_size=10**9)  # its thread is never started
    messages = [json.loads(text)["params"]["params"] for text in texts]
    for message in messages:
        message["is_author"] = False  # as RelayProtocol adds it from the envelope
    data = b"".join(frames)
    writes = [data[i : i + 65536] for i in range(0, len(data), 65536)]

    def reader() -> None:
        feed = FrameReader().feed
        for write in writes:
            feed(write)

    def scan() -> None:
        scan_once = _jsonrpc._scan_once
        for text in texts:
            scan_once(text, 0)

    def loads() -> None:
        for text in texts:
            json.loads(text)

    def decode_message() -> None:
        decode = _jsonrpc.decode_message
        for text in texts:
            decode(text)

    def receive() -> None:
        for read in reads:
            protocol.receive(read, 10**9)

    def structure() -> None:
        decode = decoder(ConversationChatMessage)
        for message in messages:
            decode(message, delivery="live")

    def pipeline() -> None:
        for read in reads:
            for action in protocol.receive(read, 10**9):
                if type(action) is Deliver:
                    dispatcher.put_messages(action.items, wake=False)
            batch, dispatcher._items = dispatcher._items, deque()
            dispatcher._drain(batch)

    stages: dict[str, Callable[[], None]] = {
        "reader": reader,
        "json": scan,
        "json.loads": loads,
        "decode_message": decode_message,
        "receive": receive,
        "structure": structure,
        "pipeline": pipeline,
    }
    if name not in stages:
        raise SystemExit(f"unknown stage {name!r}; one of {', '.join(stages)}")
    return stages[name]


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def timed(name: str, events: int, rounds: int = 5) -> float:
    """CPU microseconds per event of a stage, the fastest of ``rounds`` (fresh state each)."""
    best = float("inf")
    for _ in range(rounds):
        run = stage(name, events)
        started = cpu()
        run()
        best = min(best, cpu() - started)
    return best / events * 1e6


def counted(name: str, events: int) -> float:
    """Instructions per event of a stage (valgrind, N and 2N events in child processes)."""
    runs = [
        _bench.instructions([sys.executable, __file__, "--child", name, str(n)])
        for n in (events, 2 * events)
    ]
    setup = [
        _bench.instructions([sys.executable, __file__, "--child", f"setup:{name}", str(n)])
        for n in (events, 2 * events)
    ]
    return ((runs[1] - runs[0]) - (setup[1] - setup[0])) / events


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--stages", default=",".join((*STAGES, "json.loads")))
    parser.add_argument("--instructions", action="store_true")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        name, events = args.child
        if name.startswith("setup:"):
            stage(name[len("setup:") :], int(events))
        else:
            stage(name, int(events))()
        return 0
    unit = "instructions" if args.instructions else "us CPU"
    print(f"| stage | {unit} per event |")
    print("|---|---|")
    for name in args.stages.split(","):
        if args.instructions:
            print(f"| {name} | {counted(name, min(args.events, 4_000)):,.0f} |", flush=True)
        else:
            print(f"| {name} | {timed(name, args.events):.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
