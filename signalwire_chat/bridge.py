r"""A bridge from chat into a Redis Stream, run by one active process among replicas.

:class:`StreamBridge` holds a :class:`~signalwire_chat.redis.RedisLease`; the replica that
holds it subscribes (to addresses, groups or the inbox) and appends each chat message to a
Redis Stream. The append and the checkpoint advance are one Lua script
(:meth:`RedisCheckpointStore.save_and_append`), fenced by the lease, so:

- a failover neither appends a message twice nor skips one: the new holder catches up from the
  shared checkpoint, which is exactly where the last append stopped;
- a holder that lost the lease (paused, partitioned) appends nothing after it resumes;
- Redis unreachable: the append is retried (the same message, never the next one) until Redis is
  back or the lease is lost; a retry whose first attempt went through appends nothing again.

Workers read the stream with consumer groups (``XREADGROUP``, ``XACK``): their own acks and
redelivery. Each entry has the fields ``id`` (the message id), ``route`` (``group:<id>``,
``address:<id>`` or ``inbox``) and ``message``: the JSON of the message model
(``ConversationChatMessage.to_dict()``) plus ``"delivery"``: ``"live"`` or ``"catch_up"``.

No message is skipped silently. Text that UTF-8 cannot carry (a lone surrogate, which JSON
allows as ``\ud800``) is written as JSON escapes, so a consumer's ``json.loads`` gives back the
very string. A message that cannot be appended at all (an id that cannot be a checkpoint or a
stream field, an entry Redis refuses) stops :meth:`StreamBridge.run` with a
:class:`~signalwire_chat.StoreError` naming its id, the checkpoint still before it.

Requires the ``redis`` extra (``pip install 'signalwire-chat[redis]'``).
"""

from __future__ import annotations

import json
import logging
import math
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from ._backoff import Backoff
from ._realtime import Route
from ._realtime._checkpointing import Checkpointer, route_name
from ._validate import check_seconds
from .checkpoints import Checkpoint
from .errors import (
    ClientClosedError,
    FencedWriteError,
    InvalidArgumentError,
    InvalidArgumentTypeError,
    StoreError,
    StoreUnavailableError,
)
from .redis import RedisCheckpointStore, RedisLease, _client, _target

if TYPE_CHECKING:
    import redis as redis_py

    from ._client import ChatClient
    from ._dialects import Target
    from ._realtime import Subscription
    from .models import ConversationChatMessage

__all__ = ["StreamBridge", "entry_fields"]

logger = logging.getLogger(__name__)


def entry_fields(message: ConversationChatMessage, route: str) -> dict[str, str]:
    """The stream entry of ``message``: ``id``, ``route`` and ``message`` (the model's JSON)."""
    body = message.to_dict()
    if body.get("group_id") is None and route.startswith("group:"):
        body["group_id"] = route[len("group:") :]  # a group's own history leaves it out
    body["delivery"] = message.delivery
    text = json.dumps(body, separators=(",", ":"), ensure_ascii=False, default=str)
    if not _utf8(text):
        # A lone surrogate: readable JSON is not UTF-8 here, escaped JSON always is.
        text = json.dumps(body, separators=(",", ":"), default=str)
    return {"id": message.id, "route": route, "message": text}


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _unappendable(message_id: str, why: str) -> StoreError:
    shown = ascii(message_id)
    if len(shown) > 120:
        shown = shown[:100] + "...(" + str(len(message_id)) + " characters)"
    return StoreError(f"message {shown} cannot be appended to the stream: {why}; stopping")


class _AppendingCheckpointer(Checkpointer):
    """A checkpoint whose advance is the stream append itself (both in one script)."""

    def __init__(
        self,
        store: RedisCheckpointStore,
        key: str,
        route: Route,
        bridge: StreamBridge,
    ) -> None:
        super().__init__(store, key, route)
        self._store = store
        self._bridge = bridge

    def advance(self, message: ConversationChatMessage) -> StoreError | None:
        bridge = self._bridge
        if bridge._failure is not None:
            return None  # stopping on an earlier message: the checkpoint stays before that one
        try:
            checkpoint = Checkpoint.of(message, route=self.route)
        except InvalidArgumentError as exc:
            return bridge._fail(_unappendable(message.id, f"not a valid checkpoint ({exc})"))
        fields = entry_fields(message, self.route)
        if not all(_utf8(value) for value in fields.values()):
            return bridge._fail(_unappendable(message.id, "its id or route is not UTF-8"))
        reported = False
        outage = bridge._outage_backoff()
        while True:
            if bridge._term_over():
                # Not ours to append any more (lease lost, or closing): the next holder
                # catches up from the checkpoint, which this message did not pass.
                return FencedWriteError(
                    "the bridge no longer holds the lease; the message is left to the next holder",
                    fencing_token=None,
                )
            try:
                self._store.save_and_append(
                    self.key, checkpoint, stream=bridge.stream, fields=fields
                )
            except FencedWriteError as exc:
                bridge._lease_lost()
                return exc
            except StoreUnavailableError as exc:
                if not reported:
                    logger.warning("bridge %s: Redis unreachable, retrying: %s", bridge.name, exc)
                    reported = True
                bridge._wake.wait(outage.next_delay())
                continue
            except StoreError as exc:  # Redis refused this very entry: retrying cannot help
                return bridge._fail(_unappendable(message.id, f"Redis refused it ({exc})"))
            bridge._appended(message)
            return None


class StreamBridge:
    """Append the chat messages of ``targets`` (or the inbox) to the Redis Stream ``stream``.

    Run the same bridge (same ``name``) in several processes: one holds the lease and
    appends, the others stand by and take over within ``ttl`` seconds when it dies. Nothing
    starts in the constructor; :meth:`run` blocks until :meth:`close` (from another thread,
    a signal handler, or Ctrl-C).

    Args:
        client: The chat client (its token's subscriber is the one listening).
        redis: A ``redis://`` URL or a ``redis.Redis`` client.
        stream: The stream's key.
        name: The bridge's name: replicas with the same name share one lease and one set of
            checkpoints (``<name>:<route>``).
        targets: Addresses or groups to follow; ``None`` (the default) follows the inbox.
        ttl: The lease's TTL: a dead holder is replaced after at most this long.
        retry_interval: Seconds before the next attempt while Redis is unreachable, growing
            (with jitter) to four times it while the outage lasts.
        on_error: Called with errors of the subscriptions (a gap that could not be filled,
            a checkpoint the history no longer holds); logged either way.
        on_leading: Called with the lease's fencing token once this process leads and its
            subscriptions are live (on the first run, messages from then on are appended;
            afterwards everything after the shared checkpoint is).

    Raises:
        InvalidArgumentError: A bad ``stream``, ``name``, ``ttl`` or target.
    """

    def __init__(
        self,
        client: ChatClient,
        redis: str | redis_py.Redis,
        *,
        stream: str,
        name: str,
        targets: Sequence[Target] | None = None,
        ttl: float = 10.0,
        retry_interval: float = 0.5,
        on_error: Callable[[BaseException], None] | None = None,
        on_leading: Callable[[int], None] | None = None,
    ) -> None:
        target = _target(redis)
        del redis  # the URL may hold a password: no frame of a later traceback keeps it
        if not isinstance(stream, str) or not stream or not stream.isprintable():
            raise InvalidArgumentError("stream must be a non-empty printable string")
        if not isinstance(name, str) or not name or not name.isprintable() or " " in name:
            raise InvalidArgumentError("name must be a non-empty printable string without spaces")
        check_seconds(retry_interval, "retry_interval", maximum=60)
        for hook_name, hook in (("on_error", on_error), ("on_leading", on_leading)):
            if hook is not None and not callable(hook):
                raise InvalidArgumentTypeError(f"{hook_name} must be callable or None")
        if targets is not None:
            if isinstance(targets, str) or not isinstance(targets, Sequence) or not targets:
                raise InvalidArgumentError("targets must be a non-empty list, or None (the inbox)")
            targets = [client._wire.target(t) for t in targets]
        self.client = client
        self.stream = stream
        self.name = name
        self.targets = targets
        self.retry_interval = float(retry_interval)
        self._on_error = on_error
        self._on_leading = on_leading
        ttl = check_seconds(ttl, "ttl")
        # One client for the lease and the store (redis-py's pool is thread-safe).
        self._conn = _client(target, min(ttl / 3, 5.0))
        try:
            self._lease = RedisLease(
                self._conn.client, name=f"bridge:{name}", ttl=ttl, on_lost=self._lease_lost
            )
            self._store = RedisCheckpointStore(self._conn.client, lease=self._lease)
        except BaseException:
            self._conn.close()
            raise
        self._closed = threading.Event()
        self._lost = threading.Event()
        self._wake = threading.Event()  # set on loss, failure or close: ends every wait early
        self._failure: StoreError | None = None  # a message that cannot be appended
        self._lock = threading.Lock()
        self._subs: list[Subscription] = []
        self._count_lock = threading.Lock()
        #: Entries appended by this process, and the terms it held the lease.
        self.appended = 0
        self.terms = 0

    def __repr__(self) -> str:
        state = "closed" if self._closed.is_set() else ("leading" if self.leading else "standby")
        return f"<StreamBridge {self.name!r} -> {self.stream!r} {state}>"

    @property
    def leading(self) -> bool:
        """Whether this process holds the lease now (and so appends)."""
        return self._lease.held

    @property
    def lease(self) -> RedisLease:
        """The lease (its ``token``, ``held``)."""
        return self._lease

    def run(self) -> None:
        """Stand by until this process holds the lease, then append; repeat until closed.

        Raises:
            StoreError: A message cannot be appended (the error names its id); the bridge is
                closed and the checkpoint is still before that message.
            KeyboardInterrupt: Ctrl-C (the bridge is closed first).
        """
        try:
            while not self._closed.is_set():
                try:
                    token = self._lease.acquire(math.inf)
                except ClientClosedError:
                    return
                self.terms += 1
                logger.info("bridge %s: leading (token %d)", self.name, token)
                try:
                    self._lead(token)
                finally:
                    self._stop_leading()
                if self._failure is not None:
                    raise self._failure
        except BaseException:
            self.close()
            raise

    def _lead(self, token: int) -> None:
        self._lost.clear()
        self._wake.clear()
        routes = self._routes()
        hub = self.client._realtime.hub(self.client)
        for route in routes:
            key = f"{self.name}:{route_name(route)}"
            checkpointer = self._checkpointer(key, route)
            if checkpointer is None:
                return  # lost or closed while Redis was away
            sub = hub.subscribe(route, _ignore, self._report, checkpoint=checkpointer)
            with self._lock:
                self._subs.append(sub)
            if self._term_over():
                return
        if self._on_leading is not None:
            try:
                self._on_leading(token)
            except Exception:
                logger.exception("bridge %s: on_leading raised", self.name)
        while not self._term_over():
            self._wake.wait(1.0)

    def _checkpointer(self, key: str, route: Route) -> _AppendingCheckpointer | None:
        outage = self._outage_backoff()
        while not self._term_over():
            try:
                return _AppendingCheckpointer(self._store, key, route, self)
            except StoreUnavailableError as exc:
                logger.warning("bridge %s: cannot read checkpoint %s: %s", self.name, key, exc)
                self._wake.wait(outage.next_delay())
        return None

    def _outage_backoff(self) -> Backoff:
        """The waits while Redis is unreachable: the library's back-off.

        From ``retry_interval`` up to four times it, jittered so replicas do not retry in step.
        """
        return Backoff(cap=4 * self.retry_interval, base=self.retry_interval)

    def _routes(self) -> list[Route]:
        if self.targets is None:
            return [Route.inbox()]
        client = self.client
        return [
            client._wire.subscribe_route(client._rest.transport, target) for target in self.targets
        ]

    def _stop_leading(self) -> None:
        with self._lock:
            subs, self._subs = self._subs, []
        for sub in subs:
            sub.cancel()
        if self._closed.is_set():
            return  # close() releases it
        try:
            self._lease.release()
        except StoreError as exc:
            logger.info("bridge %s: release failed (it expires by itself): %s", self.name, exc)

    def _term_over(self) -> bool:
        return self._lost.is_set() or self._closed.is_set() or self._failure is not None

    def _fail(self, error: StoreError) -> StoreError:
        """Stop at a message that cannot be appended: run() raises ``error``."""
        if self._failure is None:
            self._failure = error  # logged and told to on_error by _report
        self._wake.set()
        return error

    def _lease_lost(self) -> None:
        if not self._lost.is_set():
            logger.warning("bridge %s: lease lost; standing by", self.name)
        self._lost.set()
        self._wake.set()

    def _appended(self, message: ConversationChatMessage) -> None:
        with self._count_lock:
            self.appended += 1

    def _report(self, error: BaseException) -> None:
        if isinstance(error, FencedWriteError):
            return  # the lease is lost: said once in the log, the loop stands by
        logger.warning("bridge %s: %s", self.name, error)
        if self._on_error is not None:
            try:
                self._on_error(error)
            except Exception:
                logger.exception("bridge %s: on_error raised", self.name)

    def close(self) -> None:
        """Stop appending, release the lease, close the Redis clients (idempotent, any thread).

        The client passed in is left open.
        """
        if self._closed.is_set():
            return
        self._closed.set()
        self._wake.set()
        with self._lock:
            subs, self._subs = self._subs, []
        for sub in subs:
            sub.cancel()
        try:
            self._lease.close()
            self._store.close()
        finally:
            self._conn.close()

    def __enter__(self) -> StreamBridge:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _ignore(_message: Any) -> None:
    """The bridge's callback: the work is the checkpoint advance (the append)."""
