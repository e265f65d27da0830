"""The frame layer alone: our reader, wsproto and websocket-client's ``_abnf``, fed the same bytes.

    .venv/bin/python benchmarks/frames.py [--quick] [--core N]

Prints one JSON line: CPU seconds (user + system, this process) of each reader for each workload,
the median of the repeats, the readers alternating. Every reader turns the bytes into complete
messages with text validated as UTF-8, as the client needs them:
- ``events``: chat events of about 700 bytes, one frame each, in 256 KiB reads (per event);
- ``big_16k`` / ``big_256k``: one 16 MiB text message in 16 KiB / 256 KiB reads;
- ``fragmented``: one 16 MiB text message in 4,096 fragments of 4 KiB, in 256 KiB reads.
wsproto or websocket-client missing: their figures are null.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import _bench
import _wsproto

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from signalwire_chat._realtime._frames import FrameReader

MiB = 1024 * 1024
FULL = {"repeats": 5, "events": 20_000, "big": 16 * MiB}
QUICK = {"repeats": 1, "events": 2_000, "big": 4 * MiB}


def event_frames(count: int) -> bytes:
    template = {
        "jsonrpc": "2.0",
        "id": "8cd04d6d-f35c-4afa-892a-68f87b898ce7",
        "method": "signalwire.event",
        "params": {
            "event_type": "conversation.message",
            "event_channel": "bench",
            "timestamp": 1795616962.2924523,
            "params": {
                "id": "a4f06073-3667-4331-9ef4-2d265d32b344",
                "conversation_id": _bench.ADDRESS_ID,
                "user_id": _bench.SUBSCRIBER_ID,
                "ts": 1795616962.1917086,
                "details": {},
                "metadata": {"n": 0},
                "type": "message",
                "subtype": "chat",
                "text": "hello, caf\u00e9 \u2603",
                "conversation_name": "bench conversation",
                "hidden": False,
                "user_name": "Bench Sender",
            },
        },
    }
    one = _wsproto.server_frame(json.dumps(template, ensure_ascii=False).encode())
    return one * count


def big_message(size: int, fragment: int | None = None) -> bytes:
    body = ('{"text":"' + "\u00e9a" * ((size - 12) // 3) + '"}').encode()
    if fragment is None:
        return _wsproto.server_frame(body)
    pieces = [body[i : i + fragment] for i in range(0, len(body), fragment)]
    out = [_wsproto.server_frame(pieces[0], _wsproto.OP_TEXT, fin=len(pieces) == 1)]
    out += [
        _wsproto.server_frame(p, _wsproto.OP_CONT, fin=i == len(pieces) - 1)
        for i, p in enumerate(pieces)
        if i
    ]
    return b"".join(out)


def chunks(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


# --- the readers: each takes the reads, returns how many messages came out --------------------


def ours(reads: list[bytes]) -> int:
    reader = FrameReader(max_message_size=64 * MiB)
    count = 0
    for data in reads:
        count += len(reader.feed(data))
    return count


def wsproto_reader(reads: list[bytes]) -> int:
    from wsproto.frame_protocol import FrameProtocol

    proto = FrameProtocol(client=True, extensions=[])
    count = 0
    parts: list[Any] = []
    for data in reads:
        proto.receive_bytes(data)
        for f in proto.received_frames():
            parts.append(f.payload)
            if f.message_finished:
                "".join(parts)  # the message the caller needs
                parts = []
                count += 1
    return count


def abnf_reader(reads: list[bytes]) -> int:
    from websocket._abnf import continuous_frame, frame_buffer

    pending = iter(reads)
    current = memoryview(b"")

    def recv(bufsize: int) -> bytes:
        # A socket whose reads end where ours do.
        nonlocal current
        while not current:
            current = memoryview(next(pending))
        piece, current = current[:bufsize], current[bufsize:]
        return bytes(piece)

    buffer = frame_buffer(recv, skip_utf8_validation=False)
    cont = continuous_frame(fire_cont_frame=False, skip_utf8_validation=False)
    count = 0
    while True:
        try:
            f = buffer.recv_frame()
        except StopIteration:  # the reads are used up
            return count
        cont.validate(f)
        cont.add(f)
        if cont.is_fire(f):
            _opcode, done = cont.extract(f)
            done.data.decode()
            count += 1


READERS: dict[str, Callable[[list[bytes]], int]] = {
    "ours": ours,
    "wsproto": wsproto_reader,
    "websocket-client": abnf_reader,
}


def available(name: str) -> bool:
    try:
        if name == "wsproto":
            import wsproto  # noqa: F401
        elif name == "websocket-client":
            import websocket._abnf  # noqa: F401
    except ImportError:
        return False
    return True


def workloads(counts: dict[str, int]) -> Iterator[tuple[str, list[bytes], int]]:
    yield "events", chunks(event_frames(counts["events"]), 256 * 1024), counts["events"]
    big = big_message(counts["big"])
    yield "big_16k", chunks(big, 16 * 1024), 1
    yield "big_256k", chunks(big, 256 * 1024), 1
    yield "fragmented", chunks(big_message(counts["big"], 4096), 256 * 1024), 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--core", type=int, default=None)
    parser.add_argument("--only", default=",".join(READERS))
    args = parser.parse_args()
    if args.core is not None:
        _bench.pin(args.core)
    counts = QUICK if args.quick else FULL
    names = [n for n in args.only.split(",") if n in READERS]
    result: dict[str, Any] = {"big_bytes": counts["big"], "event_count": counts["events"]}
    for work, reads, expected in workloads(counts):
        times: dict[str, list[float]] = {n: [] for n in names if available(n)}
        for _ in range(counts["repeats"]):
            for name in times:
                started = _bench.cpu_seconds()
                got = READERS[name](reads)
                cpu = _bench.cpu_seconds() - started
                if got != expected:
                    raise SystemExit(f"{name} on {work}: {got} messages, expected {expected}")
                times[name].append(cpu)
        result[work] = {n: (_bench.median(t) if t else None) for n, t in times.items()}
        for name in names:
            result[work].setdefault(name, None)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
