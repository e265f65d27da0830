"""iter_messages against the requests loop, in CPU instructions (valgrind), which do not vary.

    .venv/bin/python benchmarks/iter_instructions.py [--messages N] [--decode-only]

The iter row of ``run.py`` times CPU on a shared machine, where a 5% change drowns in the
noise; an instruction count does not move. ``restserver.py`` serves a history of ``N`` chat
messages (10,000, as in ``run.py``); for each reader a child process under
``valgrind --tool=cachegrind`` reads the whole history 2 and then 3 times (the workloads of
``clients.py``: ``iter_messages`` with ``page_size=100``, and a ``requests`` loop on
``links.next`` that calls ``.json()`` on each page); the difference of the two counts is one
read, start-up and warm-up cancelled out. Printed: instructions per read and per message, and
the ratio ours / requests (the figure the iter row's target is about).

``--decode-only`` counts instead one decoder alone on the bench's message (10,000 decodes):
``decoder(ConversationChatMessage)``, and cattrs' generated function without detailed
validation (the cattrs-only candidate of issue 17), each after the pre-step that gathers
unknown keys.

Needs valgrind; takes a few minutes (valgrind runs Python ~50x slower).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from typing import Any

import _bench

READERS = ("requests", "ours")


def child(reader: str, reads: int, rest_url: str, messages: int) -> None:
    """Read the whole history ``reads`` times with ``reader`` (runs under valgrind)."""
    import clients

    params: dict[str, Any] = {
        "rest_url": rest_url,
        "relay_url": "ws://127.0.0.1:9/x",
        "token": _bench.bench_token("relay.bench.test"),
        "page_size": 100,
        "messages": messages,
        "warmup": reads - 1,
        "count": 1,
    }
    {"requests": clients.iter_requests, "ours": clients.iter_ours}[reader](params)


def decode_child(candidate: str, decodes: int) -> None:
    """Decode the bench's message ``decodes`` times with ``candidate`` (runs under valgrind)."""
    import restserver

    from signalwire_chat import _convert
    from signalwire_chat.models import ConversationChatMessage

    message = json.loads(restserver.history(1)[0])
    decode = (cattrs_only if candidate == "cattrs" else _convert.decoder)(ConversationChatMessage)
    for _ in range(100 + decodes):
        decode(message)


def cattrs_only(cls: type) -> Any:
    """cattrs' generated function for ``cls`` on the package's converter, detailed validation
    off, after a pre-step gathering unknown keys into ``extra`` and reading the sender from
    either spelling: what a cattrs-only happy path costs."""
    import attrs
    from cattrs.gen import make_dict_structure_fn, override

    from signalwire_chat._convert import converter

    known: set[str] = set()
    overrides: dict[str, Any] = {"extra": override(struct_hook=lambda value, _type: value)}
    aliases = []
    for field in attrs.fields(cls):
        if field.name in ("extra", "delivery"):
            continue
        keys = field.metadata.get("wire_keys", (field.name,))
        known.update(keys)
        if keys[0] != field.name:
            overrides[field.name] = override(rename=keys[0])
        if len(keys) > 1:
            aliases.append((keys[0], keys[1:]))
    structure = make_dict_structure_fn(
        cls,
        converter,
        _cattrs_forbid_extra_keys=False,
        _cattrs_detailed_validation=False,
        **overrides,
    )

    def decode(obj: dict[str, Any]) -> Any:
        if not known.issuperset(obj):
            extra = {k: v for k, v in obj.items() if k not in known}
            obj = {k: v for k, v in obj.items() if k in known}
            obj["extra"] = extra
        for first, others in aliases:
            if first not in obj:
                for other in others:
                    if other in obj:
                        obj = {**obj, first: obj[other]}
                        break
        return structure(obj)

    return decode


def count(argv: list[str]) -> int:
    """Instructions of one child run (valgrind's ``I refs``)."""
    return _bench.instructions([sys.executable, __file__, *argv])


def decode_only() -> int:
    per = {}
    for candidate in ("ours", "cattrs"):
        start = count(["--decode-child", candidate, "0"])
        end = count(["--decode-child", candidate, "10000"])
        per[candidate] = (end - start) / 10_000
        print(f"{candidate}: {per[candidate]:,.0f} instructions per decode", file=sys.stderr)
    print("| decoder | instructions per message |")
    print("|---|---|")
    for candidate, value in per.items():
        print(f"| {candidate} | {value:,.0f} |")
    print(f"ratio cattrs-only / ours: {per['cattrs'] / per['ours']:.2f}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--decode-only", action="store_true")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    parser.add_argument("--decode-child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], int(args.child[1]), args.child[2], int(args.child[3]))
        return 0
    if args.decode_child:
        decode_child(args.decode_child[0], int(args.decode_child[1]))
        return 0
    if shutil.which("valgrind") is None:
        print("valgrind is not on PATH (apt-get install valgrind)", file=sys.stderr)
        return 3
    if args.decode_only:
        return decode_only()
    per_read = {}
    with _bench.rest_server("--messages", str(args.messages)) as rest_url:
        for reader in READERS:
            runs = [
                count(["--child", reader, str(reads), rest_url, str(args.messages)])
                for reads in (2, 3)
            ]
            per_read[reader] = runs[1] - runs[0]
            print(f"{reader}: {per_read[reader]:,} instructions per read", file=sys.stderr)
    print(f"| reader | instructions per read of {args.messages:,} | per message |")
    print("|---|---|---|")
    for reader, value in per_read.items():
        print(f"| {reader} | {value:,} | {value / args.messages:,.0f} |")
    print(f"ratio ours / requests: {per_read['ours'] / per_read['requests']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
