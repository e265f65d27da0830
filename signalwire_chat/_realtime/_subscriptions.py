"""Subscriptions: the user's handle, its callbacks, duplicate filtering and the backfill of gaps."""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias

from .._convert import chat_message_decoder
from .._route import Route
from ..errors import (
    CallbackError,
    CheckpointNotFoundError,
    ClientClosedError,
    DecodeError,
    FencedWriteError,
    MessagesMayBeMissingError,
    NotFoundError,
    PermissionDeniedError,
)
from ..models import _DELIVERY_CATCH_UP, _DELIVERY_LIVE, _delivered
from ._interactive import callback_name, cell_origin

if TYPE_CHECKING:
    from ..models import ConversationChatMessage
    from ._checkpointing import Checkpointer
    from ._dispatcher import Dispatcher

__all__ = ["Route", "Subscription"]

logger = logging.getLogger(__name__)


#: How far the service's nodes may disagree on the time, in seconds: the server-time bound of a
#: catch-up read (used only when the history could not be read at subscribe time) is moved
#: back by this much, so a message stamped by a node a little behind is still read.
SERVER_CLOCK_ALLOWANCE = 2.0

#: At most this many messages go to one batched checkpoint advance (a long catch-up is split).
MAX_CHECKPOINT_BATCH = 256

#: The service's time at a moment of this machine's monotonic clock, as its last answer
#: said (``None`` when it never said); see ``HttpTransport.server_time_at``.
ServerTime: TypeAlias = "Callable[[float], float | None]"


class Anchor:
    """Where a subscription started, in the service's own terms: its history's newest id then.

    Catch-up reads stop at an id, never at a time: the client's clock and the service's
    may disagree, and the service's may step, so no ``ts`` comparison decides what is
    missed. ``message_id`` None with ``known`` means the history was empty.

    Only when the history could not be read at all at subscribe time (the service
    unreachable: ``known`` False) is there no id. The catch-up read then stops at the
    *service's* time of subscribing: its clock as its next answer states it (the HTTP
    ``Date``), carried back to ``since`` on this machine's monotonic clock, less
    :data:`SERVER_CLOCK_ALLOWANCE`. This machine's wall clock decides nothing; when the
    service states no time either, the gap is reported (``MessagesMayBeMissingError``).

    A subscription resumed from a durable checkpoint starts at the checkpoint's message
    (``checkpoint`` True): the catch-up then runs at once, reads back until that id
    (within ``backfill_limit``), and a history that does not hold it is reported.
    """

    __slots__ = ("checkpoint", "known", "message_id", "newest", "since")

    def __init__(self, message_id: str | None, *, known: bool = True) -> None:
        self.message_id = message_id
        #: The history's newest message when read (None: empty, unread, or a checkpoint's).
        self.newest: ConversationChatMessage | None = None
        self.known = known
        self.checkpoint = False
        #: When the anchor was taken, on this machine's monotonic clock.
        self.since = time.monotonic()

    @classmethod
    def at_checkpoint(cls, message_id: str) -> Anchor:
        """Resume after ``message_id`` (a checkpoint's message)."""
        anchor = cls(message_id)
        anchor.checkpoint = True
        return anchor

    @classmethod
    def read(
        cls, history: Callable[[Route], Iterator[ConversationChatMessage]], route: Route
    ) -> Anchor:
        """The newest message id of ``route``'s history now (unknown if it cannot be read)."""
        try:
            newest = next(iter(history(route)), None)
        except Exception as exc:  # noqa: BLE001 - the subscription goes on, on the fallback
            logger.info("realtime: could not read where %s starts (%s)", route, exc)
            return cls(None, known=False)
        anchor = cls(newest.id if newest is not None else None)
        anchor.newest = newest
        return anchor


def _time_bound(since: float, server_time: ServerTime | None) -> float | None:
    """The oldest ``ts`` a catch-up with no id to stop at delivers (None: no service time).

    The service's time at ``since`` less :data:`SERVER_CLOCK_ALLOWANCE`.
    """
    at = server_time(since) if server_time is not None else None
    return None if at is None else at - SERVER_CLOCK_ALLOWANCE


class _LimitReached(Exception):
    """The catch-up read met ``backfill_limit`` messages before its anchor."""


class _NoServerTime(Exception):
    """No anchor: the history was unreadable at subscribe time and the service states no time."""


if TYPE_CHECKING:  # a type for the checker only: no class to build at import

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
        route: Route,
        on_message: Callable[[ConversationChatMessage], None],
        on_error: Callable[[BaseException], None] | None,
        *,
        recent_ids: int,
        report_slow: bool = True,
        on_update: Callable[[ConversationChatMessage], None] | None = None,
        checkpoint: Checkpointer | None = None,
        advance: bool = True,
    ) -> None:
        self._owner: _Owner | None = owner
        self.route = route
        self._address_id = route.address_id
        self._on_message = on_message
        self._on_error = on_error
        self._on_update = on_update
        self._active = True
        self._recent: set[str] = set()
        self._recent_order: deque[str] = deque()
        self._recent_cap = recent_ids
        #: The chat message decoder (``structure_chat_message``'s), looked up once.
        self._structure = chat_message_decoder()
        #: The id and ``ts`` of the last message delivered; the id anchors catch-up reads.
        self.last_id: str | None = None
        self.last_ts: float | None = None
        #: The conversation's name as the last message that carried one said (displays).
        self.conversation_name: str | None = None
        #: Before any delivery, catch-up reads stop here (set by the hub at subscribe time).
        self.anchor = Anchor(None, known=False)
        self.report_slow = report_slow
        #: Called once when the subscription ends (cancel or hub close); used by streams.
        self.on_end: Callable[[], None] | None = None
        #: The notebook identity (see ``_interactive.cell_origin``) and the cell's run.
        identity = cell_origin(on_message)
        self.cell_origin = identity[0] if identity is not None else None
        self.cell_run = identity[1] if identity is not None else None
        # Kept by the hub under its lock: subscribe() is still waiting for the connection
        # (its subscription needs no backfill, everything after it returns comes live);
        # created while disconnected, so the next connect must backfill it.
        self.waiting = False
        self.pending_backfill = False
        self._delivered = 0
        #: The durable checkpoint, if any; ``advance``: saved after each callback returned
        #: (a stream advances it itself, when its consumer asks for the next message).
        self.checkpoint = checkpoint
        self._advance_after_callback = checkpoint is not None and advance
        #: Messages handled in the dispatcher's current batch, not yet advanced past (only
        #: for a ``batched`` checkpoint; dispatcher thread only).
        self._batch: list[ConversationChatMessage] | None = (
            [] if checkpoint is not None and checkpoint.batched else None
        )

    @property
    def address_id(self) -> str | None:
        """The address this subscription follows (``None`` for a group or the inbox)."""
        return self._address_id

    @property
    def group_id(self) -> str | None:
        """The group this subscription follows, in the group dialect (``None`` otherwise)."""
        route = self.route
        return route.value if route.grouped else None

    @property
    def inbox(self) -> bool:
        """Whether this subscription takes every chat message of every conversation."""
        return self.route.is_inbox

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
        if self.route.is_inbox:
            target = "inbox"
        elif self.route.grouped:
            target = f"address_id={self._address_id!r} group_id={self.route.value!r}"
        else:
            target = f"address_id={self._address_id!r}"
        return f"<Subscription {target} {state} callback={self.callback_name}>"

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
        last = f", last at {local_time(self.last_ts)}" if self.last_ts is not None else ""
        return state, f"{self._delivered} delivered{last}"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        from .._display import follows

        state, count = self._display_state()
        shown = follows(self.route, self.conversation_name)[0]
        printer.text(f"Subscription({shown} {state}, {count}, {self.callback_name})")

    def _repr_html_(self) -> str:
        from .._display import Cell, follows, html_table

        state, count = self._display_state()
        row: list[Cell] = [follows(self.route, self.conversation_name), state, count]
        row.append(self.callback_name)
        return html_table(("follows", "state", "messages", "callback"), [row], "Subscription")

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
        if not self._active:
            return
        mid = wire.get("id")
        if type(mid) is str and mid in self._recent:
            dispatcher.stats.duplicate(self, "live")
            return
        try:  # _decode in line: the hot path of every live message
            message = self._structure(wire, delivery=_DELIVERY_LIVE)
        except DecodeError as exc:
            self._undecodable(exc)
            return
        # Its id is the wire's (a str, or the decode failed): checked just above.
        self._hand_over(message, dispatcher)

    def _deliver_update(self, wire: dict[str, Any], dispatcher: Dispatcher) -> None:
        """Decode and hand an edited message to ``on_update`` (never to ``on_message``)."""
        handler = self._on_update
        if not self._active or handler is None:
            return
        message = self._decode(wire)
        if message is None:
            return
        try:
            dispatcher.call(self, handler, message)
        except BaseException as exc:  # noqa: BLE001 - logged and reported there
            self._callback_raised("on_update", exc, dispatcher)

    def _decode(self, wire: dict[str, Any]) -> ConversationChatMessage | None:
        try:
            return self._structure(wire, delivery=_DELIVERY_LIVE)
        except DecodeError as exc:
            self._undecodable(exc)
            return None

    def _undecodable(self, exc: DecodeError) -> None:
        logger.warning("realtime: undecodable chat message for %s dropped: %s", self.route, exc)
        self._report(exc)

    def _deliver(self, message: ConversationChatMessage, dispatcher: Dispatcher) -> None:
        """Deliver ``message`` unless it was delivered already."""
        if message.id in self._recent:
            dispatcher.stats.duplicate(self, _duplicate_source(message))
            return
        self._hand_over(message, dispatcher)

    def _hand_over(self, message: ConversationChatMessage, dispatcher: Dispatcher) -> None:
        """Deliver ``message``, not delivered before: remember its id, call back, checkpoint."""
        mid = message.id
        self._recent.add(mid)
        order = self._recent_order
        order.append(mid)
        if len(order) > self._recent_cap:
            self._recent.discard(order.popleft())
        self.last_id = mid
        self.last_ts = message.ts
        self.conversation_name = message.conversation_name or self.conversation_name
        self._delivered += 1
        dispatcher.stats.message(message)
        try:
            dispatcher.call(self, self._on_message, message)
        except BaseException as exc:  # noqa: BLE001 - logged and reported there
            self._callback_raised("on_message", exc, dispatcher)
        else:
            if self._advance_after_callback:
                if self._batch is None:
                    self.advance(message)
                else:
                    self._add_to_batch(message, dispatcher)

    def _callback_raised(self, which: str, exc: BaseException, dispatcher: Dispatcher) -> None:
        """A callback raised: logged with its traceback and reported to ``on_error``.

        Not when the client was closed under it (a REST call it made cut off by ``close()``,
        which stops the dispatcher first): that is the close, not a fault of the callback,
        logged at DEBUG. Either way the message is not checkpointed.
        """
        if isinstance(exc, ClientClosedError) and dispatcher.stopping:
            logger.debug("realtime: %s of the subscription to %s cut by close()", which, self.route)
            return
        route = self.route
        logger.error("realtime: %s of the subscription to %s raised", which, route, exc_info=exc)
        error = CallbackError(f"{which} raised {type(exc).__name__}", address_id=self._address_id)
        error.__cause__ = exc
        self._report(error)

    def advance(self, message: ConversationChatMessage) -> None:
        """Save ``message`` as the checkpoint; a lost lease (fenced write) ends the subscription."""
        checkpoint = self.checkpoint
        if checkpoint is not None:
            self._advanced(checkpoint.advance(message))

    def _add_to_batch(self, message: ConversationChatMessage, dispatcher: Dispatcher) -> None:
        """Keep ``message`` for the batch advance, which runs once the dispatcher's batch ends."""
        batch = self._batch
        assert batch is not None
        batch.append(message)
        if len(batch) == 1:
            checkpoint = self.checkpoint
            assert checkpoint is not None
            dispatcher.after_batch(self._advance_batch, checkpoint.batch_window)
        elif len(batch) >= MAX_CHECKPOINT_BATCH:
            self._advance_batch()  # a long catch-up: bounded batches, the next one starts anew

    def _advance_batch(self) -> None:
        """Advance the checkpoint past the messages handled in this batch (dispatcher thread)."""
        batch = self._batch
        if not batch:
            return
        self._batch = []
        checkpoint = self.checkpoint
        if self._active and checkpoint is not None:
            self._advanced(checkpoint.advance_many(batch))

    def _advanced(self, error: BaseException | None) -> None:
        if error is None:
            return
        self._report(error)
        if isinstance(error, FencedWriteError):
            self.cancel()  # another holder took over: this one must not act again

    def _report(self, error: BaseException) -> None:
        """Hand ``error`` to ``on_error`` (logged when there is none, or when it raises)."""
        handler = self._on_error
        if not self._active:
            return  # cancelled or closed: no callback runs after that returned
        if handler is None:
            if not isinstance(error, CallbackError):  # already logged with its traceback
                logger.error("realtime: subscription to %s: %s", self.route, error)
            return
        try:
            handler(error)
        except Exception:
            logger.exception("realtime: on_error of the subscription to %s raised", self.route)

    #: The kind of failure that ended the running catch-up read, if one did (for the hooks).
    _catch_up_error: str | None = None

    def _catch_up(
        self,
        history: Callable[[Route], Iterator[ConversationChatMessage]],
        dispatcher: Dispatcher,
        limit: int,
        **options: Any,
    ) -> None:
        """:meth:`_backfill`, told to the catch-up hooks (started, finished: how many, error)."""
        if not self._active:
            return
        stats = dispatcher.stats
        started = stats.catch_up_started(self)
        before = self._delivered
        self._catch_up_error = None
        error: str | None = None
        try:
            self._backfill(history, dispatcher, limit, **options)
        except BaseException as exc:
            error = type(exc).__name__
            raise
        finally:
            error = error or self._catch_up_error
            stats.catch_up_finished(self, started, self._delivered - before, error)

    def _backfill(
        self,
        history: Callable[[Route], Iterator[ConversationChatMessage]],
        dispatcher: Dispatcher,
        limit: int,
        *,
        first: bool = False,
        server_time: ServerTime | None = None,
    ) -> None:
        """Deliver, oldest first, the messages missed since the last delivered one.

        Reads ``history`` (newest first) back to the last delivered id; before any
        delivery, back to the :class:`Anchor` read at subscribe time (the history's
        newest id then, or a checkpoint's message). Ids only: no clock decides, so no
        clock step can lose or resurrect a message; only an anchor with no id falls back
        on the service's time (``server_time``, see :class:`Anchor`). Runs on the
        dispatcher: live messages that arrive meanwhile wait behind it, and the ids it
        delivers are dropped from them. ``first``: the first connect of the subscription,
        where a 403 or 404 (not a member: no live event can come either) is no gap.
        """
        if not self._active:
            return
        anchor = self.anchor
        anchor_id = self.last_id if self.last_id is not None else anchor.message_id
        # Before any delivery and with no id from subscribe time: the service's time then.
        since = anchor.since if self.last_id is None and not anchor.known else None
        from_checkpoint = self.last_id is None and anchor.checkpoint and anchor_id is not None
        walked = self._read_missing(history, dispatcher, limit, anchor_id, since, server_time)
        if walked is None:
            return  # stopped, cancelled, or nothing to read on the first connect
        missing, found, failure = walked
        if isinstance(failure, (PermissionDeniedError, NotFoundError)) and first:
            logger.debug(
                "realtime: no history of %s on the first connect (%s); nothing to backfill",
                self.route,
                failure,
            )
            return
        if from_checkpoint and not found:
            assert anchor_id is not None
            self._report_unfound_checkpoint(anchor_id, failure, limit, first)
        elif failure is not None:
            self._report_gap(failure, anchor_id, first)
        self._deliver_caught_up(missing, dispatcher)

    def _report_unfound_checkpoint(
        self, anchor_id: str, failure: BaseException | None, limit: int, first: bool
    ) -> None:
        """The read did not meet the checkpoint's message: not held, beyond the limit, or failed."""
        if failure is None:
            self._report_checkpoint_not_found(anchor_id, None)
        elif isinstance(failure, _LimitReached):
            self._report_checkpoint_not_found(anchor_id, limit)
        else:
            self._report_gap(failure, anchor_id, first)

    def _deliver_caught_up(
        self, missing: list[ConversationChatMessage], dispatcher: Dispatcher
    ) -> None:
        """Deliver what a catch-up read found (newest first), oldest first."""
        if missing:
            logger.debug("realtime: backfilling %d messages of %s", len(missing), self.route)
        for message in reversed(missing):
            if dispatcher.stopping or not self._active:
                return
            self._deliver(_delivered(message, _DELIVERY_CATCH_UP), dispatcher)

    def _read_missing(
        self,
        history: Callable[[Route], Iterator[ConversationChatMessage]],
        dispatcher: Dispatcher,
        limit: int,
        anchor_id: str | None,
        since: float | None,
        server_time: ServerTime | None,
    ) -> tuple[list[ConversationChatMessage], bool, BaseException | None] | None:
        """Walk the history back to the anchor: ``(missing newest first, anchor found, failure)``.

        ``since``: no id to stop at; stop at the service's time of that monotonic moment,
        asked of ``server_time`` once the first page has come. None when the dispatcher
        stops or the subscription ends meanwhile.
        """
        route = self.route
        missing: list[ConversationChatMessage] = []
        bound: float | None = None
        try:
            for count, message in enumerate(history(route)):
                if anchor_id is not None and message.id == anchor_id:
                    return missing, True, None
                if since is not None:
                    if bound is None:  # the first page has come: its answer dates it
                        bound = _time_bound(since, server_time)
                        if bound is None:
                            return (
                                [],
                                False,
                                _NoServerTime(
                                    "the history could not be read when subscribing, and the "
                                    "service states no time to start from"
                                ),
                            )
                    if message.ts < bound:
                        break
                if count >= limit:
                    return missing, False, _LimitReached(f"more than {limit} messages to backfill")
                if dispatcher.stopping or not self._active:
                    return None
                if self._wanted(message, route):
                    missing.append(message)
        except Exception as exc:  # noqa: BLE001 - any failure of the history call is a gap
            return missing, False, exc
        return missing, False, None

    def _wanted(self, message: ConversationChatMessage, route: Route) -> bool:
        """Whether a message of the history is one this subscription still has to deliver."""
        return (
            message.id not in self._recent and message.subtype == "chat" and route.matches(message)
        )

    def _report_gap(self, failure: BaseException, anchor_id: str | None, first: bool) -> None:
        self._catch_up_error = type(failure).__name__
        logger.warning(
            "realtime: could not backfill %s after a %s: %s",
            self.route,
            "connect" if first else "reconnect",
            failure,
        )
        gap = MessagesMayBeMissingError(
            f"messages sent between subscribe() and the first connect may be missing: {failure}"
            if isinstance(failure, _NoServerTime)
            else "messages sent while disconnected could not be fetched",
            address_id=self._address_id,
            last_message_id=anchor_id,
        )
        gap.__cause__ = failure
        self._report(gap)

    def _report_checkpoint_not_found(self, anchor_id: str, limit: int | None) -> None:
        """The checkpoint's message is not in the history (``limit``: not in that many)."""
        key = self.checkpoint.key if self.checkpoint is not None else "?"
        where = f"the newest {limit} messages of" if limit is not None else "the history of"
        logger.warning(
            "realtime: the checkpoint %r names message %s, which %s %s does not hold; "
            "delivering what the read found",
            key,
            anchor_id,
            where,
            self.route,
        )
        self._report(
            CheckpointNotFoundError(
                f"the checkpoint {key!r} names message {anchor_id}, which {where} "
                f"{self.route} does not hold (older than what the service keeps or than "
                "backfill_limit reaches, deleted, or of another conversation): the messages "
                "read back are delivered, earlier ones may be missing",
                address_id=self._address_id,
                last_message_id=anchor_id,
                checkpoint_key=key,
            )
        )


def _duplicate_source(message: ConversationChatMessage) -> str:
    return "catch-up" if message.delivery == _DELIVERY_CATCH_UP else "live"
