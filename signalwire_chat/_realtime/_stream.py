"""The blocking iterator behind ``RealtimeHub.stream``, for scripts and notebooks."""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..errors import FencedWriteError, RealtimeAuthenticationError

if TYPE_CHECKING:
    from ..models import ConversationChatMessage
    from ._subscriptions import Subscription

__all__ = ["MessageStream"]

logger = logging.getLogger(__name__)


class MessageStream:
    """Chat messages of one address, as an iterator; a context manager that cancels on exit.

    The iterator ends (``StopIteration``) when the hub is closed, when :meth:`close`
    is called (from any thread), or when no message came for ``timeout`` seconds.
    It raises ``RealtimeAuthenticationError`` when the relay refuses the
    credentials for good. On ``KeyboardInterrupt`` (Ctrl-C) while waiting, the
    subscription is cancelled and the interrupt propagates. At most ``limit``
    messages wait in the iterator; beyond that the hub's flow control holds the
    rest at the relay, so a slow consumer never grows memory.

    With a durable checkpoint, a message counts as handled when the consumer asks for the
    next one, or leaves the ``with`` block without an exception: ``for m in stream:
    handle(m)`` saves each message after ``handle`` returned. A message the consumer
    broke out on without a ``with`` block is not saved (it comes again after a restart).
    """

    def __init__(self, limit: int, timeout: float | None) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._buf: deque[ConversationChatMessage] = deque()
        self._limit = limit
        self._timeout = timeout
        self._open = True
        self._error: BaseException | None = None
        self.subscription: Subscription | None = None
        #: The last message handed out, saved as the checkpoint when the next is asked for.
        self._handed: ConversationChatMessage | None = None

    # --- fed by the dispatcher ------------------------------------------------------

    def put(self, message: ConversationChatMessage) -> None:
        """Add a message; blocks (the dispatcher) while the iterator is full."""
        with self._cond:
            while self._open and len(self._buf) >= self._limit:
                self._cond.wait()
            if self._open:
                self._buf.append(message)
                self._cond.notify_all()

    def error(self, error: BaseException) -> None:
        """Take an error from the hub: authentication ends the iterator, others are logged."""
        if isinstance(error, RealtimeAuthenticationError):
            with self._cond:
                self._error = error
                self._open = False
                self._cond.notify_all()
        else:
            logger.warning("realtime stream: %s", error)

    def shut(self) -> None:
        """End the iterator (the subscription was cancelled or the hub closed)."""
        with self._cond:
            self._open = False
            self._cond.notify_all()

    # --- the user's side -------------------------------------------------------------

    def __iter__(self) -> MessageStream:
        return self

    def __next__(self) -> ConversationChatMessage:
        try:
            return self._next()
        except KeyboardInterrupt:
            self.close()
            raise

    def _commit(self) -> None:
        """Save the message handed out last as handled (with a checkpoint)."""
        message, self._handed = self._handed, None
        sub = self.subscription
        if message is None or sub is None or sub.checkpoint is None:
            return
        error = sub.checkpoint.advance(message)
        if isinstance(error, FencedWriteError):
            self.close()  # another holder took over: this one must not act again
            raise error
        if error is not None:
            logger.warning("realtime stream: %s", error)

    def _next(self) -> ConversationChatMessage:
        self._commit()
        deadline = None if self._timeout is None else time.monotonic() + self._timeout
        with self._cond:
            while not self._buf:
                if not self._open:
                    break
                if deadline is None:
                    self._cond.wait()
                    continue
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            if self._buf:
                message = self._buf.popleft()
                self._cond.notify_all()
                self._handed = message
                return message
            error = self._error
            self._error = None
        self.close()
        if error is not None:
            raise error
        raise StopIteration

    def close(self) -> None:
        """Cancel the subscription and end the iterator; idempotent, any thread."""
        self.shut()
        sub = self.subscription
        if sub is not None:
            sub.cancel()

    def __enter__(self) -> MessageStream:
        return self

    def __exit__(self, exc_type: object, *exc_info: object) -> None:
        try:
            if exc_type is None:
                self._commit()  # the block ended normally: the last message was handled
        finally:
            self.close()

    def __del__(self) -> None:
        sub = self.subscription
        if sub is not None and sub.active:
            sub.cancel()

    # The callbacks handed to the hub.
    @property
    def callbacks(
        self,
    ) -> tuple[Callable[[ConversationChatMessage], None], Callable[[BaseException], None]]:
        """``(on_message, on_error)`` for the subscription."""
        return self.put, self.error
