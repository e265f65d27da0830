"""The fault controls of the emulator: REST failures and delays, and relay faults.

Mixed into :class:`~signalwire_chat.emulator.Emulator`. REST faults are rules the app
consults per request (:class:`._app.RestFaults`); relay faults are calls into the running
hub on its loop (:mod:`._relay_faults` for events, :class:`._relay.RelayHub` for sockets).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from ._admin import EmulatorSubscriber, subscriber_id_of
from ._app import FaultRule, RestFaults

if TYPE_CHECKING:
    from ._app import EmulatorState
    from ._relay import RelayHub

__all__ = ["FaultControls", "HalfOpen"]

_T = TypeVar("_T")


class HalfOpen:
    """Returned by :meth:`~signalwire_chat.emulator.Emulator.half_open`.

    As a context manager, it undoes the half-open state on exit.
    """

    def __init__(self, controls: FaultControls) -> None:
        self._controls = controls

    def __enter__(self) -> HalfOpen:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._controls.running:
            self._controls.half_open(False)


class FaultControls:
    """REST and relay fault injection, mixed into the Emulator.

    What it needs from the emulator: the pending REST fault rules (``_faults``), the
    stored ping interval (``_ping_interval``, kept across restarts), the state, and
    calls into the running hub on the loop thread (the ``_with_*`` methods).
    """

    _faults: RestFaults
    _ping_interval: float | None

    @property
    def running(self) -> bool:  # pragma: no cover - the Emulator's
        """True while serving."""
        raise NotImplementedError

    def _open_state(self) -> EmulatorState:  # pragma: no cover - the Emulator's
        raise NotImplementedError

    def _with_hub(self, fn: Callable[[RelayHub], _T]) -> _T:  # pragma: no cover
        """Run ``fn(hub)`` on the loop; RuntimeError when the relay is not running."""
        raise NotImplementedError

    def _with_hub_async(
        self, fn: Callable[[RelayHub], Awaitable[_T]], *, timeout: float
    ) -> _T:  # pragma: no cover
        """Await ``fn(hub)`` on the loop; RuntimeError when the relay is not running."""
        raise NotImplementedError

    def _with_live_hub(self, fn: Callable[[RelayHub], object]) -> None:  # pragma: no cover
        """Run ``fn(hub)`` on the loop when the relay is running; else do nothing."""
        raise NotImplementedError

    def fail_next(
        self,
        status: int,
        *,
        method: str | None = None,
        path_prefix: str | None = None,
        times: int = 1,
        body: str | bytes | dict[str, Any] | list[Any] | None = None,
        headers: Mapping[str, str] | None = None,
        delay: float = 0.0,
    ) -> None:
        """Answer the next matching REST requests with an error instead of handling them.

        Args:
            status: The HTTP status to answer.
            method: Only requests with this method (any when None).
            path_prefix: Only paths starting with it; None matches every ``/api/`` path
                (give ``"/"`` to fail the websocket handshake too).
            times: How many requests it applies to.
            body: None for a fabric error body; a str or bytes is sent raw (HTML when it
                starts with ``<``, e.g. a proxy's 502 page); a dict or list as JSON.
            headers: Extra response headers (e.g. ``{"Retry-After": "2"}``).
            delay: Seconds to wait before answering.

        Rate limiting, as the service answers it (a fabric 429 body with
        ``type: rate_limit_error``) with a ``Retry-After``::

            emu.fail_next(429, path_prefix="/api/fabric/messages", headers={"Retry-After": "1"})
            client.send_message(room.id, "hi")  # ChatClient waits 1 s, retries, succeeds

        More failures than the client retries (3 by default: ``times=4``) end in
        ``RateLimitError`` with ``retry_after`` set. A proxy's HTML error page::

            emu.fail_next(502, body="<html><body>Bad Gateway</body></html>")
        """
        if not 100 <= status <= 599:
            raise ValueError("status must be an HTTP status code")
        self._faults.add(
            FaultRule(
                status=status,
                method=method,
                path_prefix=path_prefix,
                times=times,
                body=body,
                headers=dict(headers or {}),
                delay=delay,
            )
        )

    def delay_next(
        self,
        seconds: float,
        *,
        method: str | None = None,
        path_prefix: str | None = None,
        times: int = 1,
    ) -> None:
        """Hold the next matching REST requests for ``seconds`` before handling them."""
        if not seconds > 0:
            raise ValueError("seconds must be positive")
        self._faults.add(
            FaultRule(status=0, method=method, path_prefix=path_prefix, times=times, delay=seconds)
        )

    def clear_faults(self) -> None:
        """Drop pending REST faults, connect refusals and event faults.

        Events held by :meth:`reorder_next_events` are delivered, in their own order.
        """
        self._faults.clear()
        self._with_live_hub(lambda hub: hub.refuse_connects(0))
        self._with_live_hub(lambda hub: hub.clear_event_faults())

    # -- relay faults ---------------------------------------------------------------------

    def drop_connections(self) -> None:
        """Abort every relay socket without a close frame, like a network drop."""
        self._with_hub_async(lambda hub: hub.drop_all(), timeout=10.0)

    def half_open(self, on: bool = True) -> HalfOpen:
        """Silence (or revive) the open relay sockets while keeping their TCP open.

        Usable as a context manager: ``with emu.half_open(): ...`` revives on exit.
        """
        self._with_hub(lambda hub: hub.set_half_open(on))
        return HalfOpen(self)

    def refuse_connects(
        self, count: int = 1, code: int = -32002, message: str = "Authentication failed"
    ) -> None:
        """Refuse the next ``count`` relay connects with a JSON-RPC error."""
        self._with_hub(lambda hub: hub.refuse_connects(count, code, message))

    def duplicate_next_events(self, count: int = 1) -> None:
        """Deliver each of the next ``count`` relay events twice, as a redelivery would.

        The copy is a second ``signalwire.event`` (a fresh event id) carrying the same
        message, right after the first. A client that promises exactly-once delivery
        drops it by message id::

            emu.duplicate_next_events()
            emu.send_as(bob, room.id, "once")  # each member's session gets it twice
            # ChatClient.subscribe(room.id, on_message): on_message("once") is called once

        Like every relay fault, it lasts until the emulator stops.

        Args:
            count: How many published events are doubled (0 disarms).
        """
        self._with_hub(lambda hub: hub.duplicate_next_events(count))

    def reorder_next_events(self, count: int = 2) -> None:
        """Hold the next ``count`` relay events, then deliver them newest first.

        They go out in reverse order once the last of them is published::

            emu.reorder_next_events(2)
            emu.send_as(bob, room.id, "first")   # held
            emu.send_as(bob, room.id, "second")  # "second" then "first" on the socket
            # ChatClient.subscribe(): on_message gets each once, in the order the
            # events arrive ("second", "first"); the history keeps the true order

        ``clear_faults()`` delivers events still held, in their own order.

        Args:
            count: How many events to hold (at least 2).
        """
        self._with_hub(lambda hub: hub.reorder_next_events(count))

    def delay_next_event(self, seconds: float, *, count: int = 1) -> None:
        """Deliver each of the next ``count`` relay events ``seconds`` late.

        Events published meanwhile overtake the late ones::

            emu.delay_next_event(0.5)
            emu.send_as(bob, room.id, "late")     # arrives 0.5 s later
            emu.send_as(bob, room.id, "on time")  # arrives now, before "late"

        Args:
            seconds: The delay.
            count: How many events are delayed.
        """
        self._with_hub(lambda hub: hub.delay_next_events(seconds, count))

    def expire_tokens(self, subscriber: str | EmulatorSubscriber | None = None) -> None:
        """Make a subscriber's tokens (everyone's when None) expire now.

        Every SAT issued so far stops working: REST answers 401, the relay refuses
        them on connect; each live relay session of the subscriber gets
        ``signalwire.disconnect`` and its socket is closed, as at a real expiry. Tokens
        minted afterwards (``mint_token``, the tokens endpoints) work::

            emu.expire_tokens(alice)
            # alice's ChatClient with a fixed token: AuthenticationError from REST calls,
            # RealtimeAuthenticationError to on_error; with a token source it fetches a
            # fresh token and goes on
            fresh = emu.mint_token(alice)

        Args:
            subscriber: The subscriber (or its id); None for every subscriber.
        """
        state = self._open_state()
        sub_id = None if subscriber is None else subscriber_id_of(subscriber)
        state.tokens.expire_now(sub_id)
        self._with_live_hub(lambda hub: hub.expire_sessions(sub_id))

    def steal_event_channel(self, subscriber: str | EmulatorSubscriber) -> str:
        """Let a newer session of the subscriber take the event channel of its sessions.

        The live sessions' events then carry the ``event_channel`` of another session,
        without their own ``protocol``: the v4 client, and ``ChatClient`` in the group
        dialect, drop them as stale. A connect (a resume included) takes the session's own
        channel back::

            emu.steal_event_channel(alice)
            emu.send_as(bob, room.id, "unseen")  # alice's ChatClient acks and drops it
            emu.drop_connections()  # alice reconnects, events flow again; her client
            # backfills "unseen" from the history

        Args:
            subscriber: The subscriber (or its id).

        Returns:
            The channel the events now carry.
        """
        sub_id = subscriber_id_of(subscriber)
        return self._with_hub(lambda hub: hub.steal_event_channel(sub_id))

    def set_ping_interval(self, seconds: float | None) -> None:
        """Change the relay ping interval (None stops pinging); kept across restarts."""
        if seconds is not None and not seconds > 0:
            raise ValueError("seconds must be positive or None")
        self._ping_interval = seconds
        self._with_live_hub(lambda hub: hub.set_ping_interval(seconds))
