"""A batch's entries reach Redis once each, as they are, and come back from the stream unchanged.

``RedisCheckpointStore.save_and_append_many`` sends a batch's strings end to end with their
sizes (one argument each), not as one JSON array of them: the entries' own JSON (the bridge's
``message`` field) is not encoded a second time. Against a real redis-server: what Redis
received (``INFO stats``) is the strings' bytes and little more, and every string (quotes,
backslashes, NUL, multi-byte, empty values) reads back byte for byte, in order, with the last
entry's checkpoint.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import redis

from signalwire_chat import Checkpoint, InvalidArgumentError
from signalwire_chat.pytest_plugin import RedisServer
from signalwire_chat.redis import RedisCheckpointStore, RedisLease

STREAM = "payload:stream"
#: Text that JSON escapes heavily: a second encoding of it would double its size.
NOISY = json.dumps({"text": '"quoted" \\ back\\slash "' * 200, "emoji": "💬 ünï"})


@pytest.fixture
def store(redis_server: RedisServer) -> Iterator[RedisCheckpointStore]:
    with (
        RedisLease(redis_server.url, name="payload", ttl=30) as lease,
        RedisCheckpointStore(redis_server.url, lease=lease) as checkpoints,
    ):
        lease.acquire(5)
        yield checkpoints


def _received(url: str) -> int:
    with redis.Redis.from_url(url, socket_timeout=5) as r:
        return int(r.info("stats")["total_net_input_bytes"])


def _entry(n: int, message: str) -> tuple[Checkpoint, dict[str, str]]:
    checkpoint = Checkpoint(route="group:g1", message_id=f"m{n}", ts=1000.0 + n)
    return checkpoint, {"id": f"m{n}", "route": "group:g1", "message": message}


def test_a_batch_sends_each_entry_once_not_escaped_again(
    redis_server: RedisServer, store: RedisCheckpointStore
) -> None:
    store.save_and_append_many("k", [_entry(0, "{}")], stream=STREAM)  # the script is loaded
    entries = [_entry(n, NOISY) for n in range(1, 21)]
    strings = sum(len(text.encode()) for checkpoint, fields in entries for text in fields.values())
    before = _received(redis_server.url)
    store.save_and_append_many("k", entries, stream=STREAM)
    sent = _received(redis_server.url) - before
    # The strings, the checkpoints (~60 bytes each), the names, the sizes and the command's
    # framing: well under 1.2x the strings. A JSON array of the strings was ~1.4x here.
    assert strings < sent < 1.2 * strings, (sent, strings)


def test_every_string_reads_back_byte_for_byte_in_order(
    redis_server: RedisServer, store: RedisCheckpointStore
) -> None:
    values = [NOISY, "", "\x00nul\x00", "tab\tnew\nline", "ü" * 300, "𝄞 four bytes", "{}"]
    entries = [
        (
            Checkpoint(route="inbox", message_id=f"m{n}", ts=float(n)),
            {"id": f"m{n}", "é": value, "message": value[::-1]},
        )
        for n, value in enumerate(values)
    ]
    store.save_and_append_many("k", entries, stream=STREAM)
    with redis.Redis.from_url(redis_server.url, socket_timeout=5) as r:
        read = [
            {name.decode(): value.decode() for name, value in fields.items()}
            for _, fields in r.xrange(STREAM)
        ]
    assert read == [fields for _, fields in entries]
    assert [list(fields) for fields in read] == [["id", "é", "message"]] * len(values)
    assert store.load("k") == entries[-1][0]


def test_text_utf8_cannot_carry_sends_nothing(
    redis_server: RedisServer, store: RedisCheckpointStore
) -> None:
    entries = [_entry(1, "fine"), _entry(2, "lone \ud800 surrogate")]
    with pytest.raises(InvalidArgumentError, match="UTF-8"):
        store.save_and_append_many("k", entries, stream=STREAM)
    with redis.Redis.from_url(redis_server.url, socket_timeout=5) as r:
        assert r.xlen(STREAM) == 0
    assert store.load("k") is None
