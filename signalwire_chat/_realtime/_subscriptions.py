"""Subscriptions: the user's handle, its callbacks, duplicate filtering and the backfill of gaps."""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Protocol

from .._convert import structure_chat_message
from ..errors import (
    CallbackError,
    DecodeError,
    MessagesMayBeMissingError,
    NotFoundError,
    PermissionDeniedError,
)
from ._interactive import callback_name, cell_origin

if TYPE_CHECKING:
    from ..models import ConversationChatMessage
    from ._dispatcher import Dispatcher

__all__ = ["Subscription"]

logger = logging.getLogger(__name__)

#: Seconds subtracted from the subscribe-time anchor of a subscription that has received
#: nothing yet: the anchor is on this machine's clock, the history's ``ts`` on the service's,
#: and a message of the small overlap is dropped as a duplicate if it came live too.
CLOCK_TOLERANCE = 2.0


class _Owner(Protocol):
    def _cancel(self, sub: Subscription) -> None: ...


class Subscription:
    """A handle on one subscription: cancel it (or leave its ``with`` block) to stop delivery.

    Made by ``ChatClient.subscribe``; ``on_message`` then gets every chat message
    of the address created after ``subscribe()`` returned, exactly once and in
    order, across reconnects.
    """

    def __init__(
        self,
        owner: _Owner,
        address_id: str,
        on_message: Callable[[ConversationChatMessage], None],
        on_error: Callable[[BaseException], None] | None,
        *,
        recent_ids: int,
        report_slow: bool = True,
    ) -> None:
        self._owner: _Owner | None = owner
        self._address_id = address_id
        self._on_message = on_message
        self._on_error = on_error
        self._active = True
        self._recent: set[str] = set()
        self._recent_order: deque[str] = deque()
        self._recent_cap = recent_ids
        #: The id and ``ts`` of the last message delivered, the anchor of backfills.
        self.last_id: str | None = None
        self.last_ts: float = time.time()  # before any message: the time of subscribing
        self.report_slow = report_slow
        #: Called once when the subscription ends (cancel or hub close); used by streams.
        self.on_end: Callable[[], None] | None = None
        #: ``(origin, qualname)`` when the callback comes from a notebook cell.
        self.cell_origin = cell_origin(on_message)
        # Kept by the hub under its lock: subscribe() is still waiting for the connection
        # (its subscription needs no backfill, everything after it returns comes live);
        # created while disconnected, so the next connect must backfill it.
        self.waiting = False
        self.pending_backfill = False
        self._delivered = 0

    @property
    def address_id(self) -> str:
        """The address (conversation) this subscription follows."""
        return self._address_id

    @property
    def active(self) -> bool:
        """True until cancelled, or until the hub is closed."""
        return self._active

    def cancel(self) -> None:
        """Stop delivery to this subscription.

        Idempotent and safe from any thread, a callback of this very subscription
        included. A callback already running finishes; no other one starts.
        """
        if not self._active:
            return
        self._active = False
        owner, self._owner = self._owner, None
        if owner is not None:
            owner._cancel(self)
        self._ended()

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.cancel()

    @property
    def callback_name(self) -> str:
        """The qualified name of ``on_message`` (for logs and the repr)."""
        return callback_name(self._on_message)

    def __repr__(self) -> str:
        state = "active" if self._active else "cancelled"
        return (
            f"<Subscription address_id={self._address_id!r} {state} callback={self.callback_name}>"
        )

    @property
    def delivered(self) -> int:
        """How many messages were handed to ``on_message`` so far."""
        return self._delivered

    def _display_state(self) -> tuple[str, str]:
        from .._display import local_time

        state = "active" if self._active else "cancelled"
        connection = getattr(getattr(self._owner, "state", None), "value", None)
        if self._active and isinstance(connection, str):
            state += f" ({connection})"  # the client's connection: connected, reconnecting...
        last = f", last at {local_time(self.last_ts)}" if self.last_id is not None else ""
        return state, f"{self._delivered} delivered{last}"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        state, count = self._display_state()
        printer.text(f"Subscription({self._address_id} {state}, {count}, {self.callback_name})")

    def _repr_html_(self) -> str:
        from .._display import html_table

        state, count = self._display_state()
        rows = [[self._address_id, state, count, self.callback_name]]
        return html_table(("address_id", "state", "messages", "callback"), rows, "Subscription")

    # --- used by the hub and the dispatcher ------------------------------------------

    def _deactivate(self) -> None:
        self._active = False
        self._owner = None
        self._ended()

    def _ended(self) -> None:
        hook, self.on_end = self.on_end, None
        if hook is not None:
            hook()

    def _deliver_wire(self, wire: dict[str, Any], dispatcher: Dispatcher) -> None:
        """Decode and deliver one live message, unless it was delivered already."""
        if not self._active or wire.get("id") in self._recent:
            return
        try:
            message = structure_chat_message(wire)
        except DecodeError as exc:
            logger.warning(
                "realtime: undecodable chat message for %s dropped: %s", self._address_id, exc
            )
            self._report(exc)
            return
        self._deliver(message, dispatcher)

    def _deliver(self, message: ConversationChatMessage, dispatcher: Dispatcher) -> None:
        mid = message.id
        if mid in self._recent:
            return
        self._recent.add(mid)
        order = self._recent_order
        order.append(mid)
        if len(order) > self._recent_cap:
            self._recent.discard(order.popleft())
        self.last_id = mid
        self.last_ts = message.ts
        self._delivered += 1
        try:
            dispatcher.call(self, self._on_message, message)
        except BaseException as exc:
            logger.exception(
                "realtime: the callback of the subscription to %s raised", self._address_id
            )
            error = CallbackError(
                f"on_message raised {type(exc).__name__}", address_id=self._address_id
            )
            error.__cause__ = exc
            self._report(error)

    def _report(self, error: BaseException) -> None:
        """Hand ``error`` to ``on_error`` (logged when there is none, or when it raises)."""
        handler = self._on_error
        if handler is None:
            if not isinstance(error, CallbackError):  # already logged with its traceback
                logger.error("realtime: subscription to %s: %s", self._address_id, error)
            return
        try:
            handler(error)
        except Exception:
            logger.exception(
                "realtime: on_error of the subscription to %s raised", self._address_id
            )

    def _backfill(
        self,
        history: Callable[[str], Iterator[ConversationChatMessage]],
        dispatcher: Dispatcher,
        limit: int,
        *,
        first: bool = False,
    ) -> None:
        """Deliver, oldest first, the messages missed since the last delivered one.

        Reads ``history`` (newest first) back to the last delivered id, or to a
        message older than its ``ts``; before any delivery, to the time of
        subscribing less :data:`CLOCK_TOLERANCE`. Runs on the dispatcher: live
        messages that arrive meanwhile wait behind it, and the ids it delivers are
        dropped from them. ``first``: the first connect of the subscription, where a
        403 or 404 (not a member: no live event can come either) is no gap to report.
        """
        if not self._active:
            return
        anchor_id, anchor_ts = self.last_id, self.last_ts
        if anchor_id is None:
            anchor_ts -= CLOCK_TOLERANCE
        missing: list[ConversationChatMessage] = []
        failure: BaseException | None = None
        try:
            for count, message in enumerate(history(self._address_id)):
                if message.id == anchor_id or message.ts < anchor_ts:
                    break
                if count >= limit:
                    failure = RuntimeError(f"more than {limit} messages to backfill")
                    break
                if dispatcher.stopping or not self._active:
                    return
                if (
                    message.id not in self._recent
                    and message.subtype == "chat"
                    and message.conversation_id == self._address_id
                ):
                    missing.append(message)
        except (PermissionDeniedError, NotFoundError) as exc:
            if not first:
                failure = exc
            else:
                logger.debug(
                    "realtime: no history of %s on the first connect (%s); nothing to backfill",
                    self._address_id,
                    exc,
                )
                return
        except Exception as exc:  # noqa: BLE001 - any failure of the history call is a gap
            failure = exc
        if failure is not None:
            logger.warning(
                "realtime: could not backfill %s after a %s: %s",
                self._address_id,
                "connect" if first else "reconnect",
                failure,
            )
            gap = MessagesMayBeMissingError(
                "messages sent while disconnected could not be fetched",
                address_id=self._address_id,
                last_message_id=anchor_id,
            )
            gap.__cause__ = failure
            self._report(gap)
        if missing:
            logger.debug("realtime: backfilling %d messages of %s", len(missing), self._address_id)
        for message in reversed(missing):
            if dispatcher.stopping or not self._active:
                return
            self._deliver(message, dispatcher)
