"""Checkpoints and the sqlite store: validation, round trips, fencing, corrupt rows refused."""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from signalwire_chat import (
    Checkpoint,
    CheckpointStore,
    ClientClosedError,
    CorruptCheckpointError,
    FencedWriteError,
    InvalidArgumentError,
    SqliteCheckpointStore,
)
from signalwire_chat.checkpoints import _decode, _encode
from signalwire_chat.models import ConversationMessage


def _cp(n: int, route: str = "inbox") -> Checkpoint:
    return Checkpoint(route=route, message_id=f"m-{n}", ts=1700000000.0 + n)


@pytest.fixture
def store(tmp_path: Path) -> SqliteCheckpointStore:
    with SqliteCheckpointStore(tmp_path / "sub" / "checkpoints.db") as opened:
        yield opened


@pytest.mark.parametrize("route", ["inbox", "group:g-1", "address:a b c"])
def test_valid_routes(route: str) -> None:
    assert Checkpoint(route=route, message_id="m", ts=1).ts == 1.0


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("route", "outbox"),
        ("route", "group:"),
        ("route", "group:a\nb"),
        ("route", 3),
        ("message_id", ""),
        ("message_id", "a\x00b"),
        ("message_id", "x" * 257),
        ("ts", float("nan")),
        ("ts", float("inf")),
        ("ts", True),
        ("ts", "1.5"),
    ],
)
def test_bad_fields_are_refused(field: str, value: object) -> None:
    fields: dict[str, object] = {"route": "inbox", "message_id": "m", "ts": 1.0}
    fields[field] = value
    with pytest.raises(InvalidArgumentError, match=field):
        Checkpoint(**fields)  # type: ignore[arg-type]


def test_of_a_message() -> None:
    message = ConversationMessage(
        id="m-9", ts=12.5, conversation_id="c", type="message", subtype="chat"
    )
    assert Checkpoint.of(message, route="group:c") == Checkpoint(
        route="group:c", message_id="m-9", ts=12.5
    )


def test_round_trip_and_reopen(store: SqliteCheckpointStore) -> None:
    assert isinstance(store, CheckpointStore)
    assert store.load("bot:inbox") is None
    store.save("bot:inbox", _cp(1))
    store.save("bot:inbox", _cp(2))
    store.save("bot:group", _cp(7, "group:g"))
    store.close()
    with SqliteCheckpointStore(store.path) as again:
        assert again.load("bot:inbox") == _cp(2)
        assert again.load("bot:group") == _cp(7, "group:g")
        again.delete("bot:inbox")
        assert again.load("bot:inbox") is None


def test_fencing_refuses_an_older_token(store: SqliteCheckpointStore) -> None:
    store.save("k", _cp(1), fencing_token=3)
    store.save("k", _cp(2), fencing_token=3)
    store.save("k", _cp(3), fencing_token=5)  # a later holder
    with pytest.raises(FencedWriteError) as info:
        store.save("k", _cp(99), fencing_token=4)  # the former holder, resumed
    assert info.value.fencing_token == 4
    assert isinstance(info.value, PermissionError)
    assert store.load("k") == _cp(3)
    store.save("k", _cp(4))  # no token: not fenced, and the highest token is kept
    with pytest.raises(FencedWriteError):
        store.save("k", _cp(5), fencing_token=4)
    assert store.load("k") == _cp(4)


@pytest.mark.parametrize("token", [-1, True, 1.0, "3", 2**63])
def test_bad_tokens_and_keys(store: SqliteCheckpointStore, token: object) -> None:
    with pytest.raises(InvalidArgumentError):
        store.save("k", _cp(1), fencing_token=token)  # type: ignore[arg-type]
    for key in ("", "a\nb", "k" * 513, 5):
        with pytest.raises(InvalidArgumentError):
            store.load(key)  # type: ignore[arg-type]
    assert store.load("k") is None


@pytest.mark.parametrize(
    "body",
    [
        "not json",
        "[]",
        '{"route": "inbox", "message_id": "m"}',
        '{"route": "inbox", "message_id": "m", "ts": "1"}',
        '{"route": "x", "message_id": "m", "ts": 1}',
        '{"route": "inbox", "message_id": "m", "ts": 1, "extra": 1}',
    ],
)
def test_a_corrupt_row_is_reported(store: SqliteCheckpointStore, body: str) -> None:
    # (sqlite3's own with block commits but does not close: closing() does both here.)
    with closing(sqlite3.connect(store.path)) as db, db:
        db.execute(
            "INSERT INTO checkpoints (key, body, fencing_token, saved_at) VALUES ('k', ?, NULL, 0)",
            (body,),
        )
    with pytest.raises(CorruptCheckpointError) as info:
        store.load("k")
    assert info.value.key == "k"


def test_closed_store_is_an_error(store: SqliteCheckpointStore) -> None:
    store.close()
    store.close()
    with pytest.raises(ClientClosedError):
        store.load("k")


def test_importing_the_package_does_not_load_redis() -> None:
    import subprocess
    import sys

    code = "import sys, signalwire_chat; assert 'redis' not in sys.modules, 'redis loaded'"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


_printable = st.text(
    st.characters(blacklist_categories=("Cs", "Cc", "Cf", "Zl", "Zp", "Co", "Cn")),
    min_size=1,
    max_size=40,
).filter(str.isprintable)


@settings(max_examples=300, deadline=None, database=None)
@given(
    route=st.one_of(st.just("inbox"), _printable.map(lambda s: "group:" + s)),
    message_id=_printable,
    ts=st.floats(min_value=0, max_value=1e12, allow_nan=False, allow_infinity=False),
)
def test_a_checkpoint_is_stored_as_json_dumps_writes_it(
    route: str, message_id: str, ts: float
) -> None:
    checkpoint = Checkpoint(route=route, message_id=message_id, ts=ts)
    body = {"route": route, "message_id": message_id, "ts": ts}
    assert _encode(checkpoint) == json.dumps(body, separators=(",", ":"))
    assert _decode("k", _encode(checkpoint)) == checkpoint
