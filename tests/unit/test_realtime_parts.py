"""Pure parts of the realtime side: back-off, expiry parsing, error classes, options, dispatch."""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator

import pytest
from _realtime_helpers import Owner, chat_wire
from hypothesis import given, settings
from hypothesis import strategies as st

from signalwire_chat._backoff import Backoff, ReconnectPolicy
from signalwire_chat._realtime import RealtimeOptions, _actions
from signalwire_chat._realtime._connection import is_auth_error, parse_expires_at
from signalwire_chat._realtime._dispatcher import Dispatcher
from signalwire_chat._realtime._hub import _Core
from signalwire_chat._realtime._routes import Routes
from signalwire_chat._realtime._subscriptions import Route, Subscription
from signalwire_chat.errors import CallbackError, InvalidArgumentError, InvalidArgumentTypeError


def test_backoff_first_retry_at_once_then_jittered_exponential_with_a_cap() -> None:
    backoff = Backoff(cap=4.0, base=0.5, rng=random.Random(1))
    delays = [backoff.next_delay() for _ in range(50)]
    assert delays[0] == 0.0
    assert all(0.0 <= d <= 4.0 for d in delays)
    for attempt, delay in enumerate(delays[1:5], start=1):
        assert delay <= 0.5 * 2 ** (attempt - 1)
    assert len(set(delays[10:])) > 30  # jittered, not a fixed schedule
    # At least half of each ceiling: attempts never come faster than one per cap/2.
    for attempt, delay in enumerate(delays[1:], start=1):
        assert delay >= min(4.0, 0.5 * 2 ** (attempt - 1)) / 2
    backoff.reset()
    assert backoff.next_delay() == 0.0


def _policy(**kwargs: float) -> ReconnectPolicy:
    return ReconnectPolicy(cap=30.0, healthy_after=5.0, rng=random.Random(7), **kwargs)  # type: ignore[arg-type]


def test_short_sessions_keep_the_delay_growing_to_the_cap() -> None:
    policy = _policy()
    delays = []
    for _ in range(12):  # a relay that ends every session 10 ms after accepting it
        assert policy.session_ended(lasted=0.01, events=0) is False
        delays.append(policy.next_delay())
    assert delays[0] == 0.0  # one drop: reconnect at once
    assert all(later >= 15.0 for later in delays[8:])  # at the cap: <= 4 connects a minute
    assert sum(delays[1:]) > 90.0  # eleven reconnects cost minutes, not milliseconds


def test_a_healthy_session_makes_the_next_reconnect_immediate() -> None:
    for lasted, events in ((5.0, 0), (0.01, 1), (3600.0, 1000)):
        policy = _policy()
        for _ in range(6):
            policy.session_ended(lasted=0.01, events=0)
            policy.next_delay()
        assert policy.next_delay() > 0.0  # backing off
        assert policy.session_ended(lasted=lasted, events=events) is True
        assert policy.next_delay() == 0.0, (lasted, events)


def test_healthy_after_comes_from_the_ping_timeout_and_is_bounded() -> None:
    assert ReconnectPolicy.for_relay(30.0, ping_timeout=1.5).healthy_after == 0.75
    assert ReconnectPolicy.for_relay(30.0, ping_timeout=15.0).healthy_after == 5.0
    assert ReconnectPolicy.for_relay(30.0, ping_timeout=600.0).healthy_after == 5.0
    assert ReconnectPolicy.for_relay(7.0, ping_timeout=15.0).backoff.cap == 7.0


def test_a_streak_of_short_sessions_is_reported_once_until_a_healthy_one() -> None:
    policy = _policy()
    reports = []
    for _ in range(10):
        policy.session_ended(lasted=0.0, events=0)
        reports.append(policy.take_streak_report())
    assert reports == [None, None, 3] + [None] * 7
    policy.session_ended(lasted=0.0, events=2)  # healthy: the streak ends, re-armed
    assert policy.take_streak_report() is None
    again = []
    for _ in range(3):
        policy.session_ended(lasted=0.0, events=0)
        again.append(policy.take_streak_report())
    assert again == [None, None, 3]


def test_parse_expires_at_accepts_numbers_and_iso_strings() -> None:
    assert parse_expires_at(1795620562) == 1795620562.0
    assert parse_expires_at(1795620562.5) == 1795620562.5
    assert parse_expires_at("1795620562") == 1795620562.0
    assert parse_expires_at("2026-11-21T10:00:00Z") == 1795255200.0
    assert parse_expires_at("2026-11-21T10:00:00+00:00") == 1795255200.0
    assert parse_expires_at("2026-11-21T10:00:00") == 1795255200.0  # no zone: UTC
    assert parse_expires_at("not a date") is None
    assert parse_expires_at(None) is None
    assert parse_expires_at(True) is None


def test_auth_errors_are_recognised() -> None:
    assert is_auth_error({"code": -32002, "message": "Authentication failed"})
    assert is_auth_error({"code": -32000, "message": "Requester validation failed"})
    assert not is_auth_error({"code": -32603, "message": "Internal error"})
    assert not is_auth_error("nonsense")


@pytest.mark.parametrize(
    ("field", "value", "error"),
    [
        ("ping_timeout", 0, InvalidArgumentError),
        ("ping_timeout", float("inf"), InvalidArgumentError),
        ("ping_timeout", "15", InvalidArgumentTypeError),
        ("queue_size", 0, InvalidArgumentError),
        ("queue_size", 1.5, InvalidArgumentTypeError),
        ("queue_size", True, InvalidArgumentTypeError),
        ("reconnect_max_delay", -1, InvalidArgumentError),
    ],
)
def test_options_are_validated(field: str, value: object, error: type[Exception]) -> None:
    with pytest.raises(error):
        RealtimeOptions(**{field: value})


def test_options_defaults() -> None:
    options = RealtimeOptions()
    assert options.ping_timeout == 15.0
    assert options.queue_size == 1000
    assert options.reconnect_max_delay == 30.0


def test_dispatcher_delivers_in_order_drops_duplicates_and_survives_raising_callbacks() -> None:
    dispatcher = Dispatcher(queue_size=10)
    got: list[str] = []
    errors: list[BaseException] = []
    done = threading.Event()

    def on_message(message) -> None:
        if message.text == "t3":
            raise RuntimeError("boom")
        got.append(message.text)
        if message.text == "t9":
            done.set()

    sub = Subscription(Owner(), Route.address("conv"), on_message, errors.append, recent_ids=100)
    dispatcher.start()
    try:
        items = [((sub,), chat_wire(i), False) for i in range(10)]
        dispatcher.put_messages(items[:6] + items[2:4] + items[6:])  # t2, t3 redelivered
        assert done.wait(5)
        assert got == ["t0", "t1", "t2", "t4", "t5", "t6", "t7", "t8", "t9"]
        assert len(errors) == 1
        assert isinstance(errors[0], CallbackError)
        assert isinstance(errors[0].__cause__, RuntimeError)
        assert dispatcher.pending() == 0
        assert sub.last_id == "id9"
    finally:
        dispatcher.stop()
        dispatcher.thread.join(5)


def test_recent_ids_are_bounded() -> None:
    sub = Subscription(Owner(), Route.address("conv"), lambda m: None, None, recent_ids=5)
    dispatcher = Dispatcher(queue_size=10)
    for i in range(20):
        sub._deliver_wire(chat_wire(i), dispatcher)
    assert len(sub._recent) == 5
    assert sub._recent == {f"id{i}" for i in range(15, 20)}


def test_backfill_delivers_the_gap_oldest_first_and_stops_at_the_last_delivered() -> None:
    from signalwire_chat._convert import structure_chat_message

    got: list[str] = []
    sub = Subscription(
        Owner(), Route.address("conv"), lambda m: got.append(m.text), None, recent_ids=100
    )
    dispatcher = Dispatcher(queue_size=10)
    for i in range(3):
        sub._deliver_wire(chat_wire(i), dispatcher)
    history = [structure_chat_message(chat_wire(i)) for i in reversed(range(8))]  # newest first
    consumed: list[str] = []

    def lazy(route: Route):
        assert route == Route.address("conv")
        for message in history:
            consumed.append(message.id)
            yield message

    sub._backfill(lazy, dispatcher, limit=100)
    assert got == [f"t{i}" for i in range(8)]
    assert consumed[-1] == "id2"  # stopped at the last delivered message


def _cell_origin(filename: str, module: str = "__main__", src: str | None = None) -> object:
    """What cell_origin says of ``show``, asked by the code compiled as ``filename``."""
    from signalwire_chat._realtime._interactive import cell_origin

    namespace: dict[str, object] = {"__name__": module, "cell_origin": cell_origin}
    source = src or "def show(message):\n    return message\n"
    exec(compile(source + "origin = cell_origin(show)\n", filename, "exec"), namespace)
    return namespace["origin"]


def test_cell_origin_recognises_ipython_and_ipykernel_cells_only() -> None:
    from signalwire_chat._realtime._interactive import cell_origin

    # No cell id (no kernel here): the cell is known by its code's hash, in its file name.
    assert _cell_origin("<ipython-input-3-1a2b>") == (("ipython", "code", "1a2b"), None)
    assert _cell_origin("/tmp/ipykernel_1234/123456.py") == (
        ("/tmp/ipykernel_1234", "code", "123456"),
        None,
    )
    assert _cell_origin("C:\\Temp\\ipykernel_99\\42.py") is not None
    # Not a cell: a script's __main__, a module, a notebook-looking name in a module.
    assert _cell_origin("/home/me/script.py") is None
    assert _cell_origin("<stdin>") is None
    assert _cell_origin("<ipython-input-3-1a2b>", module="mymod") is None
    assert _cell_origin("/tmp/ipykernel_1234/notes.py") is None
    assert _cell_origin("<ipython-input-3-1a2b>", src="show = print\n") is None
    assert cell_origin(lambda m: m) is None  # defined in this test module
    # A cell's callback, but no cell running in this thread (a thread, a script's call).
    namespace: dict[str, object] = {"__name__": "__main__"}
    exec(compile("def show(m):\n    return m\n", "<ipython-input-4-ab>", "exec"), namespace)
    assert cell_origin(namespace["show"]) is None


def test_cell_origin_of_bound_methods_uses_the_function() -> None:
    src = (
        "class Printer:\n"
        "    def show(self, message):\n"
        "        return message\n"
        "show = Printer().show\n"
    )
    assert _cell_origin("<ipython-input-7-ff>", src=src) == (("ipython", "code", "ff"), None)


def test_subscription_repr_names_the_address_state_and_callback() -> None:
    def show(message: object) -> None:
        return None

    sub = Subscription(Owner(), Route.address("room-1"), show, None, recent_ids=10)
    text = repr(sub)
    assert "room-1" in text
    assert "active" in text
    assert "show" in text
    sub.cancel()
    assert "cancelled" in repr(sub)
    assert "callback=" in repr(Subscription(Owner(), Route.address("r"), print, None, recent_ids=1))


def test_backfill_before_any_delivery_stops_at_the_subscribe_time_anchor_whatever_the_ts() -> None:
    from signalwire_chat._convert import structure_chat_message
    from signalwire_chat._realtime._subscriptions import Anchor

    got: list[str] = []
    sub = Subscription(
        Owner(), Route.address("conv"), lambda m: got.append(m.text), None, recent_ids=100
    )

    def at(i: int, ts: float) -> object:
        return structure_chat_message({**chat_wire(i), "ts": ts})

    # The service's clock stepped back after the anchor: ts must not decide anything.
    history = [at(3, 5.0), at(2, 1.0), at(1, 10.0), at(0, 100.0)]
    sub.anchor = Anchor.read(lambda _r: iter(history[2:]), sub.route)
    assert sub.anchor.message_id == history[2].id  # type: ignore[attr-defined]
    sub._backfill(lambda _a: iter(history), Dispatcher(queue_size=10), limit=100)
    assert got == ["t2", "t3"]


def _unreadable_at_subscribe(got: list[str], errors: list[BaseException]) -> Subscription:
    from signalwire_chat._realtime._subscriptions import Anchor
    from signalwire_chat.errors import ConnectError

    sub = Subscription(
        Owner(), Route.address("conv"), lambda m: got.append(m.text), errors.append, recent_ids=10
    )

    def down(_route: Route) -> Iterator[object]:
        raise ConnectError("down")

    sub.anchor = Anchor.read(down, sub.route)  # type: ignore[arg-type]
    assert not sub.anchor.known
    return sub


@pytest.mark.parametrize("client_clock_off_by", [-3600.0, -5.0, 0.0, 5.0, 3600.0])
def test_backfill_without_a_readable_history_at_subscribe_stops_at_the_service_time(
    client_clock_off_by: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The service's time of subscribing bounds the read; this machine's wall clock is ignored."""
    import time as real_time

    from signalwire_chat._convert import structure_chat_message
    from signalwire_chat._realtime import _subscriptions

    skewed = type(
        "Clock",
        (),
        {
            "time": staticmethod(lambda: real_time.time() + client_clock_off_by),
            "monotonic": staticmethod(real_time.monotonic),
        },
    )
    monkeypatch.setattr(_subscriptions, "time", skewed)
    got: list[str] = []
    errors: list[BaseException] = []
    sub = _unreadable_at_subscribe(got, errors)
    server_then = 1_000_000.0  # the service's clock when subscribe() ran
    asked: list[float] = []

    def server_time(moment: float) -> float:
        asked.append(moment)
        return server_then + (moment - sub.anchor.since)

    allowance = _subscriptions.SERVER_CLOCK_ALLOWANCE
    history = [
        structure_chat_message({**chat_wire(3), "ts": server_then + 30.0}),
        structure_chat_message({**chat_wire(2), "ts": server_then + 0.1}),
        structure_chat_message({**chat_wire(1), "ts": server_then - allowance + 0.1}),
        structure_chat_message({**chat_wire(0), "ts": server_then - allowance - 0.1}),
    ]
    sub._backfill(
        lambda _a: iter(history), Dispatcher(queue_size=10), limit=10, server_time=server_time
    )
    assert got == ["t1", "t2", "t3"]  # t1: within the allowance for the service's nodes
    assert asked == [sub.anchor.since]
    assert errors == []


def test_backfill_without_an_anchor_or_a_service_time_reports_the_gap() -> None:
    from signalwire_chat._convert import structure_chat_message
    from signalwire_chat.errors import MessagesMayBeMissingError

    got: list[str] = []
    errors: list[BaseException] = []
    sub = _unreadable_at_subscribe(got, errors)
    history = [structure_chat_message({**chat_wire(1), "ts": 1.0})]
    sub._backfill(lambda _a: iter(history), Dispatcher(queue_size=10), limit=10)
    sub._backfill(
        lambda _a: iter(history), Dispatcher(queue_size=10), limit=10, server_time=lambda _m: None
    )
    assert got == []  # nothing guessed from this machine's clock
    assert [type(e) for e in errors] == [MessagesMayBeMissingError] * 2
    assert "between subscribe() and the first connect" in str(errors[0])


def test_a_first_backfill_refused_as_not_a_member_is_not_a_gap() -> None:
    from signalwire_chat.errors import MessagesMayBeMissingError, PermissionDeniedError

    errors: list[BaseException] = []
    sub = Subscription(Owner(), Route.address("conv"), lambda m: None, errors.append, recent_ids=10)

    def denied(_address: str):
        raise PermissionDeniedError("not a member", status=403, method="GET", url="u")
        yield  # pragma: no cover - a generator

    sub._backfill(denied, Dispatcher(queue_size=10), limit=10, first=True)
    assert errors == []
    sub._backfill(denied, Dispatcher(queue_size=10), limit=10)  # after a reconnect: a gap
    assert len(errors) == 1
    assert isinstance(errors[0], MessagesMayBeMissingError)


def test_no_wire_key_can_say_how_a_message_was_delivered() -> None:
    from signalwire_chat._convert import structure_chat_message, unstructure

    wire = {**chat_wire(1), "_delivery": "catch_up", "delivery": "catch_up"}
    message = structure_chat_message(wire)
    assert message.delivery is None  # a REST read, whatever the wire says
    assert message.extra["_delivery"] == "catch_up"  # kept as an unknown key, nothing more

    got: list[object] = []
    sub = Subscription(Owner(), Route.address("conv"), got.append, None, recent_ids=10)
    sub._deliver_wire(chat_wire(2), Dispatcher(queue_size=10))
    live = got[0]
    assert live.delivery == "live"  # type: ignore[attr-defined]
    assert "_delivery" not in unstructure(live)
    assert "delivery" not in unstructure(live)
    assert live == structure_chat_message(chat_wire(2))  # equality ignores it


class _RouteOwner:
    """What ``_Core._reroute`` touches of the hub: its routes."""

    def __init__(self) -> None:
        self.routes = Routes()


class _Routed:
    def __init__(self, route: Route) -> None:
        self.route = route


_ROUTES = [Route.group("g1"), Route.group("g2"), Route.address("a1"), Route.group("a1")]
_ROUTES.append(Route.inbox())


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.integers(0, len(_ROUTES) - 1), st.integers(0, 7))))
def test_routes_follow_every_subscribe_and_cancel_in_order(
    steps: list[tuple[bool, int, int]],
) -> None:
    """The hub updates one route per subscribe or cancel; the routes always equal what a
    rebuild from the live subscriptions (in the order they were made) would give."""
    owner = _RouteOwner()
    live: list[_Routed] = []
    for add, which, pick in steps:
        # What the connection thread may be reading meanwhile: it must never change.
        seen = (owner.routes.groups, owner.routes.conversations, owner.routes.inbox)
        copies = (dict(seen[0]), dict(seen[1]), seen[2])
        if add or not live:
            sub = _Routed(_ROUTES[which])
            live.append(sub)
            _Core._reroute(owner, sub, add=True)  # type: ignore[arg-type]
        else:
            sub = live.pop(pick % len(live))
            _Core._reroute(owner, sub, add=False)  # type: ignore[arg-type]
        assert seen == copies
        expected: dict[tuple[str | None, str | None], list[_Routed]] = {}
        for one in live:
            expected.setdefault((one.route.field, one.route.value), []).append(one)
        assert owner.routes.inbox == tuple(expected.pop((None, None), []))
        assert owner.routes.groups == {
            value: tuple(subs) for (field, value), subs in expected.items() if field == "group_id"
        }
        assert owner.routes.conversations == {
            value: tuple(subs)
            for (field, value), subs in expected.items()
            if field == "conversation_id"
        }


def test_actions_are_frozen_values_equal_only_within_their_class() -> None:
    # The I/O loop matches actions by class and tests compare lists of them: an action must
    # never equal one of another class with the same fields, nor change once made.
    assert _actions.Send([b"a"]) == _actions.Send([b"a"])
    assert _actions.Send([b"a"]) != _actions.Send([b"b"])
    assert _actions.Send([b"a"]) != _actions.Deliver([b"a"])  # type: ignore[list-item]
    assert _actions.Accepted() == _actions.ACCEPTED
    assert _actions.Accepted() != _actions.MUTE
    assert _actions.Ended("gone") == _actions.Ended("gone", None) != _actions.Ended("gone", 1002)
    assert hash(_actions.Reauthenticated()) == hash(_actions.REAUTHENTICATED)
    assert repr(_actions.Broken("refused")) == "Broken(reason='refused')"
    ended = _actions.Ended("gone", 1002)
    with pytest.raises(AttributeError):
        ended.reason = "other"  # type: ignore[misc]
    with pytest.raises(AttributeError):
        del ended.close_code  # type: ignore[misc]
    with pytest.raises(AttributeError):
        ended.extra = 1  # type: ignore[attr-defined]
    assert (ended.reason, ended.close_code) == ("gone", 1002)
