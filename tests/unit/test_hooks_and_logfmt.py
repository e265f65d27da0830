"""Pure parts of observability: path templates, the hook registry's isolation, the formatter."""

from __future__ import annotations

import logging
import sys

import pytest

from signalwire_chat import Hooks, InvalidArgumentTypeError, KeyValueFormatter
from signalwire_chat._health import RestCounters
from signalwire_chat._hooks import HookRegistry, normalise_hooks, path_template
from signalwire_chat._route import Route

BASE = "https://fabric.example.com"


@pytest.mark.parametrize(
    ("url", "template"),
    [
        (f"{BASE}/api/fabric/subscriber/info", "/api/fabric/subscriber/info"),
        (f"{BASE}/api/fabric/addresses?page_size=50&name=bob", "/api/fabric/addresses"),
        (f"{BASE}/api/fabric/addresses/4b0c-secret-id", "/api/fabric/addresses/{id}"),
        (f"{BASE}/api/fabric/conversations/join", "/api/fabric/conversations/join"),
        (
            f"{BASE}/api/fabric/conversations/a%2Fb%3Fc/messages?page_token=xyz",
            "/api/fabric/conversations/{id}/messages",
        ),
        (f"{BASE}/api/fabric/messages", "/api/fabric/messages"),
        (f"{BASE}/api/fabric/messages/", "/api/fabric/messages"),
        (f"{BASE}/api/fabric/subscribers/tokens/refresh", "/api/fabric/subscribers/tokens/refresh"),
        # a link a server chose, with a path the client does not know: nothing of it is kept
        (f"{BASE}/api/fabric/conversations/id/messages/extra-secret", "/{unknown}"),
        (f"{BASE}/tokens/eyJhbGciOi.secret", "/{unknown}"),
        ("http://[::1", "/{unknown}"),
    ],
)
def test_path_template(url: str, template: str) -> None:
    assert path_template(url) == template


def test_path_template_strips_the_base_path() -> None:
    url = "https://proxy.example.com/signalwire/api/fabric/conversations/x/messages"
    assert path_template(url, "/signalwire") == "/api/fabric/conversations/{id}/messages"
    assert path_template(url) == "/{unknown}"


def test_hooks_are_checked() -> None:
    with pytest.raises(InvalidArgumentTypeError):
        Hooks(on_response=42)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentTypeError):
        normalise_hooks({"on_call": print})
    hooks = Hooks()
    assert normalise_hooks(None) == ()
    assert normalise_hooks(hooks) == (hooks,)
    assert normalise_hooks([hooks, hooks]) == (hooks, hooks)


def test_emit_isolates_failing_hooks(caplog: pytest.LogCaptureFixture) -> None:
    got: list[object] = []

    def bad(event: object) -> None:
        raise ValueError("boom")

    registry = HookRegistry([Hooks(on_call=bad), Hooks(on_call=got.append)], RestCounters())
    with caplog.at_level(logging.DEBUG, logger="signalwire_chat._hooks"):
        registry.emit(registry.on_call, "first")
        registry.emit(registry.on_call, "second")
    assert got == ["first", "second"]
    levels = [r.levelno for r in caplog.records]
    assert levels == [logging.WARNING, logging.DEBUG]


def _record(msg: str, *args: object, **extra: object) -> logging.LogRecord:
    record = logging.LogRecord("signalwire_chat._http", logging.INFO, __file__, 1, msg, args, None)
    for key, value in extra.items():
        setattr(record, key, value)
    return record


def test_key_value_formatter_one_line_quoted() -> None:
    line = KeyValueFormatter().format(
        _record('GET %s answered %d; "retry"\nnext', "/api/fabric/messages", 503, attempt=2)
    )
    assert "\n" not in line
    assert " level=INFO logger=signalwire_chat._http thread=MainThread " in line
    assert 'msg="GET /api/fabric/messages answered 503; \\"retry\\"\\nnext"' in line
    assert line.endswith(" attempt=2")
    assert line.startswith("time=")
    assert line.split()[0].endswith("Z")


@pytest.mark.parametrize(
    ("char", "escaped"),
    [
        ("\v", "\\x0b"),
        ("\f", "\\x0c"),
        ("\x1c", "\\x1c"),
        ("\x1e", "\\x1e"),
        ("\x1b", "\\x1b"),
        ("\x00", "\\x00"),
        ("\x7f", "\\x7f"),
        ("\x85", "\\x85"),
        ("\u2028", "\\u2028"),
        ("\u2029", "\\u2029"),
    ],
)
def test_key_value_formatter_escapes_every_line_break_and_control(char: str, escaped: str) -> None:
    # A value from outside (a server's error text) holding any of these must not split the
    # line for a log shipper (str.splitlines breaks at all of the line breaks here) nor reach
    # a terminal raw (ESC).
    line = KeyValueFormatter().format(_record("before%safter", char, detail=f"x{char}y"))
    assert line.splitlines() == [line]
    assert not any(ch.isprintable() is False and ch != " " for ch in line)
    assert f'msg="before{escaped}after"' in line
    assert f'detail="x{escaped}y"' in line


def test_key_value_formatter_leaves_printable_text_alone() -> None:
    line = KeyValueFormatter().format(_record("caf\u00e9 \u2014 \u65e5\u672c", extra="a b"))
    assert 'msg="caf\u00e9 \u2014 \u65e5\u672c"' in line
    assert 'extra="a b"' in line


def test_key_value_formatter_exceptions_and_no_thread() -> None:
    try:
        raise RuntimeError("bad = thing")
    except RuntimeError:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    line = KeyValueFormatter(include_thread=False).format(record)
    assert "thread=" not in line
    assert "\n" not in line
    assert " exc_type=RuntimeError exc=" in line
    assert "bad = thing" in line


def test_the_library_sets_no_handler_or_level() -> None:
    logger = logging.getLogger("signalwire_chat")
    assert logger.level == logging.NOTSET
    assert all(isinstance(h, logging.NullHandler) for h in logger.handlers)


# --- the realtime counters ------------------------------------------------------------------


def test_realtime_stats_count_reconnects_keep_ten_reasons_and_emit_in_order() -> None:
    from signalwire_chat import ConnectionState, StateChangeEvent
    from signalwire_chat._rtstats import MAX_REASONS, RealtimeStats

    seen: list[StateChangeEvent] = []

    def broken(event: object) -> None:
        raise RuntimeError("hook bug")

    registry = HookRegistry(
        normalise_hooks([Hooks(on_state_change=broken), Hooks(on_state_change=seen.append)]),
        RestCounters(),
    )
    stats = RealtimeStats(registry)
    stats.state_changed(ConnectionState.CONNECTING)
    stats.state_changed(ConnectionState.CONNECTED)
    for i in range(12):
        stats.state_changed(ConnectionState.RECONNECTING, f"cause {i}")
        stats.state_changed(ConnectionState.CONNECTED)
    assert seen == []  # nothing is called where the state changes (the connection thread)
    stats.flush()
    assert [(e.previous, e.state) for e in seen[:2]] == [
        (None, ConnectionState.CONNECTING),
        (ConnectionState.CONNECTING, ConnectionState.CONNECTED),
    ]
    assert [e.reason for e in seen[:4]] == [
        "first subscription",
        "connect accepted",
        "cause 0",
        "connect accepted",
    ]
    assert len(seen) == 26
    stats.flush()
    assert len(seen) == 26  # each change once
    assert stats.reconnects == 12
    assert stats.reconnect_reasons() == tuple(f"cause {i}" for i in range(2, 12))
    assert len(stats.reconnect_reasons()) == MAX_REASONS
    assert stats.queue_depth() == 0  # no dispatcher watched


def test_realtime_stats_without_hooks_count_and_call_nothing() -> None:
    from signalwire_chat import ConnectionState
    from signalwire_chat._rtstats import RealtimeStats, target_kind

    stats = RealtimeStats()
    assert not stats.timed
    stats.state_changed(ConnectionState.RECONNECTING, "ping timeout")
    stats.flush()
    assert stats.reconnect_reasons() == ("ping timeout",)

    routes = (Route.group("g1"), Route.address("a1"), Route.inbox())
    assert [target_kind(route) for route in routes] == [
        "group",
        "conversation",
        "inbox",
    ]
