"""A flood of unreadable relay messages logs a few WARNINGs, then a count (issue 21.9)."""

from __future__ import annotations

import json
import logging

import pytest

from signalwire_chat._realtime._actions import Send
from signalwire_chat._realtime._protocol import RelayProtocol
from signalwire_chat._realtime._ratelog import RateLimitedLog
from signalwire_chat._realtime._routes import Routes

TOKEN = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJyYXRlbG9nIn0.c2VjcmV0LXNpZ25hdHVyZQ"
PROTOCOL_LOGGER = "signalwire_chat._realtime._protocol"


class _Clock:
    """A settable monotonic clock (the only thing mocked here)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _connected() -> RelayProtocol:
    protocol = RelayProtocol(Routes(), "test/1")
    protocol.connect(TOKEN, reconnect=False)
    accept = {"jsonrpc": "2.0", "id": protocol.connect_id, "result": {"protocol": "p"}}
    protocol.receive([json.dumps(accept).encode()], 10)
    return protocol


def _skipped(caplog: pytest.LogCaptureFixture, level: int) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == PROTOCOL_LOGGER and r.levelno == level]


def test_a_flood_of_non_json_messages_logs_a_bounded_number_of_warnings(
    caplog: pytest.LogCaptureFixture,
) -> None:
    protocol = _connected()
    caplog.set_level(logging.DEBUG, logger="signalwire_chat")
    for _ in range(10):  # ten reads of a hundred unreadable messages each
        protocol.receive([b"not json %d" % n for n in range(100)], 10)
    warnings = _skipped(caplog, logging.WARNING)
    assert len(warnings) == 5
    assert all("skipped a message from the relay" in r.getMessage() for r in warnings)
    assert "counted, not logged" in warnings[-1].getMessage()
    # Nothing is lost for whoever debugs: every one of them is there at DEBUG.
    assert len(_skipped(caplog, logging.DEBUG)) == 995


def test_each_conversation_has_its_own_budget(caplog: pytest.LogCaptureFixture) -> None:
    flooded, quiet = _connected(), _connected()
    caplog.set_level(logging.WARNING, logger="signalwire_chat")
    flooded.receive([b"{" for _ in range(50)], 10)
    caplog.clear()
    quiet.receive([b"[1, 2"], 10)
    assert len(_skipped(caplog, logging.WARNING)) == 1


def test_a_good_message_after_the_flood_is_still_delivered() -> None:
    protocol = _connected()
    event = {
        "jsonrpc": "2.0",
        "id": "e1",
        "method": "signalwire.event",
        "params": {
            "event_type": "conversation.message",
            "event_channel": "signalwire_p",
            "params": {"id": "m1", "group_id": "g", "text": "hi", "ts": 1.0},
        },
    }
    flood = [b"\xff\xfe" for _ in range(1000)]
    actions = protocol.receive([*flood, json.dumps(event).encode()], 10)
    sent = [json.loads(p)["id"] for a in actions if type(a) is Send for p in a.payloads]
    assert sent == ["e1"]  # acknowledged (nothing routes it here, so nothing is delivered)


def _records(caplog: pytest.LogCaptureFixture) -> list[tuple[int, str]]:
    return [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "ratelog.test"]


def test_the_count_of_held_back_records_is_logged_when_the_window_passes(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = _Clock()
    log = RateLimitedLog(logging.getLogger("ratelog.test"), burst=3, per=60.0, clock=clock)
    caplog.set_level(logging.INFO, logger="ratelog.test")
    for n in range(1000):
        log.log("bad frame %d", n)
    assert _records(caplog) == [
        (logging.WARNING, "bad frame 0"),
        (logging.WARNING, "bad frame 1"),
        (logging.WARNING, "bad frame 2 (further ones in the next 60 s are counted, not logged)"),
    ]
    caplog.clear()
    clock.now += 61.0
    log.log("bad frame %d", 1000)
    assert _records(caplog) == [
        (logging.WARNING, "997 more records like 'bad frame %d' were not logged in the last 61 s"),
        (logging.WARNING, "bad frame 1000"),
    ]


def test_a_trickle_below_the_limit_is_logged_in_full(caplog: pytest.LogCaptureFixture) -> None:
    clock = _Clock()
    log = RateLimitedLog(logging.getLogger("ratelog.test"), burst=3, per=60.0, clock=clock)
    caplog.set_level(logging.INFO, logger="ratelog.test")
    for n in range(10):
        log.log("bad frame %d", n)
        clock.now += 30.0  # two a minute, under three a minute
    assert [m for _level, m in _records(caplog)] == [f"bad frame {n}" for n in range(10)]
