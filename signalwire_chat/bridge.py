r"""A bridge from chat into a Redis Stream, run by one active process among replicas.

:class:`StreamBridge` holds a :class:`~signalwire_chat.redis.RedisLease`; the replica that
holds it subscribes (to addresses, groups or the inbox) and appends each chat message to a
Redis Stream. The appends and the checkpoint advance are one Lua script per delivery batch
(:meth:`RedisCheckpointStore.save_and_append_many`: the messages that arrived together, or a page
of a catch-up read, in one round trip), fenced by the lease, so:

- a failover neither appends a message twice nor skips one: the new holder catches up from the
  shared checkpoint, which is exactly where the last append stopped;
- a holder that lost the lease (paused, partitioned) appends nothing after it resumes;
- Redis unreachable: the append is retried (the same messages, never the next ones) until Redis
  is back or the lease is lost; a retry whose first attempt went through appends nothing again.

The bridge uses the client's public API only: it subscribes with a
:class:`~signalwire_chat.checkpoints.CheckpointHandler` of its own, whose advance is the append.

Workers read the stream with consumer groups (``XREADGROUP``, ``XACK``): their own acks and
redelivery. Each entry has the fields ``id`` (the message id), ``route`` (``group:<id>``,
``address:<id>`` or ``inbox``) and ``message``: the JSON of the message model
(``ConversationChatMessage.to_dict()``) plus ``"delivery"``: ``"live"`` or ``"catch_up"``.

No message is skipped silently. Text that UTF-8 cannot carry (a lone surrogate, which JSON
allows as ``\ud800``) is written as JSON escapes, so a consumer's ``json.loads`` gives back the
very string. A message that cannot be appended at all (an id that cannot be a checkpoint or a
stream field, an entry Redis refuses) stops :meth:`StreamBridge.run` with a
:class:`~signalwire_chat.StoreError` naming its id, the checkpoint still before it: the messages
of its batch before it are appended, none after it.

Requires the ``redis`` extra (``pip install 'signalwire-chat[redis]'``).
"""

from __future__ import annotations

import json
import logging
import math
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ._backoff import Backoff
from ._convert import message_to_dict
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
from .redis import EntryRefusedError, RedisCheckpointStore, RedisLease, _client, _target

if TYPE_CHECKING:
    import redis as redis_py

    from ._client import ChatClient
    from ._realtime import Subscription
    from .models import ConversationChatMessage, Group

    Target = str | Group

__all__ = ["StreamBridge", "entry_fields"]

logger = logging.getLogger(__name__)


# What json.dumps(body, separators=(",", ":"), ensure_ascii=..., default=str) builds per call.
_READABLE = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, default=str).encode
_ESCAPED = json.JSONEncoder(separators=(",", ":"), default=str).encode


def entry_fields(message: ConversationChatMessage, route: str) -> dict[str, str]:
    """The stream entry of ``message``: ``id``, ``route`` and ``message`` (the model's JSON)."""
    body = message_to_dict(message)  # message.to_dict(), without the call's import
    if body.get("group_id") is None and route.startswith("group:"):
        body["group_id"] = route[len("group:") :]  # a group's own history leaves it out
    body["delivery"] = message.delivery
    text = _READABLE(body)
    if not _utf8(text):
        # A lone surrogate: readable JSON is not UTF-8 here, escaped JSON always is.
        text = _ESCAPED(body)
    return {"id": message.id, "route": route, "message": text}


def _utf8(text: str) -> bool:
    if text.isascii():  # O(1): the usual case needs no encoding
        return True
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


#: At most this many entries go to Redis in one script (a long catch-up is split).
_BATCH = 256

_Entry = tuple[Checkpoint, Mapping[str, str]]


class _StreamCheckpoint:
    """The bridge's :class:`~signalwire_chat.checkpoints.CheckpointHandler` for one route.

    Its advance is the append: each batch's entries and the checkpoint after the last one go
    to Redis in one fenced script, retried while Redis is unreachable.
    """

    def __init__(self, bridge: StreamBridge, key: str, route: str) -> None:
        self.key = key
        self.route = route
        self._route_utf8 = _utf8(route)
        self.batch_window = bridge.batch_window
        self._bridge = bridge

    def __repr__(self) -> str:
        return f"<_StreamCheckpoint key={self.key!r}>"

    def load(self) -> Checkpoint | None:
        """The shared checkpoint (``StoreUnavailableError``: ``subscribe()`` raises it)."""
        return self._bridge._store.load(self.key)

    def begin(self, checkpoint: Checkpoint) -> None:
        """The first run: save where it starts (a fenced write).

        A handover before the first message then resumes from here, losing nothing sent
        meanwhile.

        Raises:
            StoreUnavailableError: Redis could not be reached (the subscribe is retried).
        """
        try:
            self._bridge._store.save(self.key, checkpoint)
        except FencedWriteError:
            self._bridge._lease_lost()  # the term is over: _lead stands by

    def advance(self, messages: Sequence[ConversationChatMessage]) -> None:
        """Append ``messages`` with their checkpoint; stop at the first that cannot be.

        Raises:
            FencedWriteError: The lease is lost (or the bridge closing): nothing appended.
            StoreError: A message cannot be appended (the bridge stops): the ones before it
                are appended and checkpointed, none after it.
        """
        bridge = self._bridge
        if bridge._failure is not None:
            return  # stopping on an earlier message: the checkpoint stays before that one
        entries: list[_Entry] = []
        unappendable: StoreError | None = None
        for message in messages:
            entry = self._entry(message)
            if isinstance(entry, StoreError):
                unappendable = entry
                break
            entries.append(entry)
        for first in range(0, len(entries), _BATCH):
            self._append(messages, first, entries[first : first + _BATCH])
        if unappendable is not None:
            raise bridge._fail(unappendable)

    def _entry(self, message: ConversationChatMessage) -> _Entry | StoreError:
        """The checkpoint after ``message`` and its stream entry, or why there can be none."""
        try:
            checkpoint = Checkpoint.of(message, route=self.route)
        except InvalidArgumentError as exc:
            return _unappendable(message.id, f"not a valid checkpoint ({exc})")
        fields = entry_fields(message, self.route)
        # The message's JSON is UTF-8 (entry_fields sees to it); its id and route may not be.
        if not (self._route_utf8 and _utf8(fields["id"])):
            return _unappendable(message.id, "its id or route is not UTF-8")
        return checkpoint, fields

    def _append(
        self, messages: Sequence[ConversationChatMessage], first: int, entries: list[_Entry]
    ) -> None:
        """Append ``entries`` (of ``messages[first:]``), retrying while Redis is unreachable."""
        bridge = self._bridge
        outage: Backoff | None = None  # made at the first failure: seeding one costs a syscall
        while True:
            if bridge._term_over():
                # Not ours to append any more (lease lost, or closing): the next holder
                # catches up from the checkpoint, which these messages did not pass.
                raise FencedWriteError(
                    "the bridge no longer holds the lease; the messages are left to the next "
                    "holder",
                    fencing_token=None,
                )
            try:
                bridge._store.save_and_append_many(self.key, entries, stream=bridge.stream)
            except FencedWriteError:
                bridge._lease_lost()
                raise
            except StoreUnavailableError as exc:
                if outage is None:
                    logger.warning("bridge %s: Redis unreachable, retrying: %s", bridge.name, exc)
                    outage = bridge._outage_backoff()
                bridge._wake.wait(outage.next_delay())
                continue
            except EntryRefusedError as exc:  # Redis refused this very entry: retrying cannot help
                bridge._appended(exc.index)
                refused = messages[first + exc.index].id
                raise bridge._fail(_unappendable(refused, f"Redis refused it ({exc})")) from None
            except (StoreError, InvalidArgumentError) as exc:  # the whole script refused
                raise bridge._fail(
                    _unappendable(messages[first].id, f"Redis refused it ({exc})")
                ) from None
            bridge._appended(len(entries))
            return


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
        batch_window: Seconds a message may wait for the ones that follow it, so that they
            are appended together (one Redis round trip for the batch; at 1,000 messages/s,
            50 ms makes the bridge's CPU per message ~1.3x a bare subscription's where 0
            makes it ~2.4x); ``0``: the messages that arrived together, at once.
        on_error: Called with errors of the subscriptions (a gap that could not be filled,
            a checkpoint the history no longer holds); logged either way.
        on_leading: Called with the lease's fencing token once this process leads and its
            subscriptions are live (on the first run, messages from then on are appended;
            afterwards everything after the shared checkpoint is).

    Raises:
        InvalidArgumentError: A bad ``stream``, ``name``, ``ttl``, ``batch_window`` or target.
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
        batch_window: float = 0.05,
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
        if isinstance(batch_window, bool) or batch_window != 0:
            check_seconds(batch_window, "batch_window", maximum=1)
        for hook_name, hook in (("on_error", on_error), ("on_leading", on_leading)):
            if hook is not None and not callable(hook):
                raise InvalidArgumentTypeError(f"{hook_name} must be callable or None")
        if targets is not None:
            if isinstance(targets, str) or not isinstance(targets, Sequence) or not targets:
                raise InvalidArgumentError("targets must be a non-empty list, or None (the inbox)")
            targets = [client.check_target(t, "targets") for t in targets]
        self.client = client
        self.stream = stream
        self.name = name
        self.targets = targets
        self.retry_interval = float(retry_interval)
        self.batch_window = float(batch_window)
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
        for target in self.targets if self.targets is not None else [None]:
            sub = self._subscribe(target)
            if sub is None:
                return  # lost or closed while Redis was away
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

    def _subscribe(self, target: Target | None) -> Subscription | None:
        """Subscribe to ``target`` (None: the inbox) from the shared checkpoint."""
        client = self.client
        route = client.checkpoint_route(target)
        handler = _StreamCheckpoint(self, f"{self.name}:{route}", route)
        outage = self._outage_backoff()
        while not self._term_over():
            try:
                if target is None:
                    return client.subscribe_inbox(_ignore, self._report, checkpoint=handler)
                return client.subscribe(target, _ignore, self._report, checkpoint=handler)
            except StoreUnavailableError as exc:
                logger.warning(
                    "bridge %s: cannot read checkpoint %s: %s", self.name, handler.key, exc
                )
                self._wake.wait(outage.next_delay())
        return None

    def _outage_backoff(self) -> Backoff:
        """The waits while Redis is unreachable: the library's back-off.

        From ``retry_interval`` up to four times it, jittered so replicas do not retry in step.
        """
        return Backoff(cap=4 * self.retry_interval, base=self.retry_interval)

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

    def _appended(self, count: int) -> None:
        with self._count_lock:
            self.appended += count

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
