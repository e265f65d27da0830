"""One subscription's durable checkpoint: where a restart resumes, and its advance.

A :class:`Checkpointer` is made by the client before the subscription exists: it loads the
checkpoint (a store failure or a checkpoint of another conversation is raised from
``subscribe()``, before anything starts). The subscription then catches up from it and calls
:meth:`Checkpointer.advance` after each callback returned; a stream advances when its consumer
asks for the next message. The store does the durable part (``checkpoints.py``,
``redis.py``); this module only decides what to save and when, and turns the store's failures
into what ``on_error`` is told. A subscriber's own :class:`~signalwire_chat.CheckpointHandler`
is wrapped in a :class:`HandlerCheckpointer`, which the subscription advances once per delivery
batch (``batched``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING

from .._validate import check_seconds
from ..errors import FencedWriteError, InvalidArgumentError, StoreError

if TYPE_CHECKING:
    from .._route import Route
    from ..checkpoints import Checkpoint, CheckpointHandler, CheckpointStore
    from ..models import ConversationChatMessage

__all__ = ["Checkpointer", "HandlerCheckpointer", "route_name"]

logger = logging.getLogger(__name__)


def route_name(route: Route) -> str:
    """The ``Checkpoint.route`` of ``route``: ``group:<id>``, ``address:<id>`` or ``inbox``."""
    kind = route.kind.label
    return kind if route.is_inbox else f"{kind}:{route.value}"


class Checkpointer:
    """The checkpoint of one subscription, under ``key`` in ``store``.

    Args:
        store: Where the checkpoint lives (a :class:`~signalwire_chat.CheckpointStore`).
        key: The subscription's key in the store (one key per subscription).
        route: What the subscription follows; a stored checkpoint of another route is refused.

    Raises:
        StoreUnavailableError: The store could not be read.
        CorruptCheckpointError: The store holds something else under ``key``.
        InvalidArgumentError: ``key`` is not a valid key, or it holds the checkpoint of
            another conversation.
    """

    #: Whether the subscription calls :meth:`advance_many` once per delivery batch instead
    #: of :meth:`advance` after each callback.
    batched = False
    #: Seconds a batch stays open for messages that come soon after (``batched`` only).
    batch_window = 0.0

    def __init__(self, store: CheckpointStore, key: str, route: Route) -> None:
        self.store = store
        self.key = key
        self.route = route_name(route)
        #: Where the subscription resumes (``None``: no checkpoint yet, it starts from now).
        self.start: Checkpoint | None = self._checked(store.load(key))
        self._saved_id = self.start.message_id if self.start is not None else None
        self._lock = threading.Lock()
        self._failing = False

    def _checked(self, start: Checkpoint | None) -> Checkpoint | None:
        """``start``, unless it is the checkpoint of another route (refused)."""
        if start is not None and start.route != self.route:
            raise InvalidArgumentError(
                f"the checkpoint {self.key!r} belongs to {start.route}, not to {self.route}: "
                "use one key per subscription"
            )
        return start

    def begin(self, newest: ConversationChatMessage) -> None:
        """The first run (no checkpoint): save where it starts, ``newest`` of the history.

        A run that handles nothing would otherwise leave no checkpoint, and the next run would
        start from its own "now": what was sent in between would never be delivered. A store
        that cannot be written is logged (the first advance saves); a fenced write (another
        holder acts) is raised from ``subscribe()``.
        """
        from ..checkpoints import Checkpoint

        try:
            checkpoint = Checkpoint.of(newest, route=self.route)
        except InvalidArgumentError:
            return  # not an id a checkpoint can hold: the first advance saves one
        with self._lock:
            try:
                self.store.save(self.key, checkpoint)
            except FencedWriteError:
                raise
            except StoreError as exc:
                logger.warning("realtime: checkpoint %r not saved at the start: %s", self.key, exc)
                return
            self._saved_id = newest.id

    def advance_many(self, messages: Sequence[ConversationChatMessage]) -> StoreError | None:
        """Save the last of ``messages`` (handled in this order); the error to report, if any."""
        return self.advance(messages[-1])

    def advance(self, message: ConversationChatMessage) -> StoreError | None:
        """Save ``message`` as the last one handled; the error to report, if any.

        A store that cannot be reached is reported once per outage (delivery goes on;
        the next save that succeeds covers the messages handled meanwhile). A
        :class:`FencedWriteError` means another holder took over: the caller stops.
        """
        from ..checkpoints import Checkpoint

        with self._lock:
            if message.id == self._saved_id:
                return None
            try:
                self.store.save(self.key, Checkpoint.of(message, route=self.route))
            except FencedWriteError as exc:
                logger.error("realtime: checkpoint %r: %s; stopping", self.key, exc)
                return exc
            except StoreError as exc:
                logger.warning("realtime: checkpoint %r not saved: %s", self.key, exc)
                if self._failing:
                    return None
                self._failing = True
                return exc
            self._saved_id = message.id
            if self._failing:
                logger.info("realtime: checkpoint %r saved again", self.key)
            self._failing = False
            return None

    def __repr__(self) -> str:
        start = self.start.message_id if self.start is not None else None
        name = type(self).__name__
        return f"<{name} key={self.key!r} route={self.route!r} start={start!r}>"


class HandlerCheckpointer(Checkpointer):
    """A subscriber's own :class:`~signalwire_chat.CheckpointHandler`, advanced per batch.

    Args:
        handler: The subscriber's handler; its ``load()`` is called here.
        route: What the subscription follows; a loaded checkpoint of another route is refused.

    Raises:
        StoreError: Whatever ``handler.load()`` raised.
        InvalidArgumentError: The loaded checkpoint belongs to another route.
    """

    batched = True

    def __init__(self, handler: CheckpointHandler, route: Route) -> None:
        self.handler = handler
        self.key = handler.key
        self.route = route_name(route)
        self.batch_window = _batch_window(handler)
        self.start = self._checked(handler.load())

    def begin(self, newest: ConversationChatMessage) -> None:
        """The first run: hand where it starts to the handler's optional ``begin(checkpoint)``.

        What it raises is raised from ``subscribe()``.
        """
        from ..checkpoints import Checkpoint

        begin = getattr(self.handler, "begin", None)
        if not callable(begin):
            return
        try:
            checkpoint = Checkpoint.of(newest, route=self.route)
        except InvalidArgumentError:
            return
        begin(checkpoint)

    def advance(self, message: ConversationChatMessage) -> StoreError | None:
        """Hand ``message`` alone to the handler (see :meth:`advance_many`)."""
        return self.advance_many((message,))

    def advance_many(self, messages: Sequence[ConversationChatMessage]) -> StoreError | None:
        """Hand ``messages`` to the handler; what it raised, as the error to report."""
        try:
            self.handler.advance(messages)
        except StoreError as exc:  # FencedWriteError included: the subscription stops
            return exc
        except Exception as exc:  # a handler's bug: told to on_error like a store failure
            logger.exception("realtime: the checkpoint handler %r raised", self.key)
            error = StoreError(f"the checkpoint handler {self.key!r} raised {type(exc).__name__}")
            error.__cause__ = exc
            return error
        return None


def _batch_window(handler: object) -> float:
    """The handler's optional ``batch_window`` (seconds, at most 1; 0 when it has none)."""
    window = getattr(handler, "batch_window", 0)
    if isinstance(window, bool) or window != 0:
        return check_seconds(window, "a CheckpointHandler's batch_window", maximum=1)
    return 0.0
