"""One subscription's durable checkpoint: where a restart resumes, and its advance.

A :class:`Checkpointer` is made by the client before the subscription exists: it loads the
checkpoint (a store failure or a checkpoint of another conversation is raised from
``subscribe()``, before anything starts). The subscription then catches up from it and calls
:meth:`Checkpointer.advance` after each callback returned; a stream advances when its consumer
asks for the next message. The store does the durable part (``checkpoints.py``,
``redis.py``); this module only decides what to save and when, and turns the store's failures
into what ``on_error`` is told.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

from ..errors import FencedWriteError, InvalidArgumentError, StoreError

if TYPE_CHECKING:
    from .._route import Route
    from ..checkpoints import Checkpoint, CheckpointStore
    from ..models import ConversationChatMessage

__all__ = ["Checkpointer", "route_name"]

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

    def __init__(self, store: CheckpointStore, key: str, route: Route) -> None:
        self.store = store
        self.key = key
        self.route = route_name(route)
        #: Where the subscription resumes (``None``: no checkpoint yet, it starts from now).
        self.start: Checkpoint | None = store.load(key)
        if self.start is not None and self.start.route != self.route:
            raise InvalidArgumentError(
                f"the checkpoint {key!r} belongs to {self.start.route}, not to {self.route}: "
                "use one key per subscription"
            )
        self._saved_id = self.start.message_id if self.start is not None else None
        self._lock = threading.Lock()
        self._failing = False

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
        return f"<Checkpointer key={self.key!r} route={self.route!r} start={start!r}>"
