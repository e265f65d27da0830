"""One active process across replicas: a fenced lease and a checkpoint store in Redis.

This module is the one place redis-py is used (the ``redis`` extra:
``pip install 'signalwire-chat[redis]'``); ``import signalwire_chat`` does not load it.

When to use what:

- **Neither**: one process, and messages missed while it was down do not matter.
- **A checkpoint only** (:class:`~signalwire_chat.SqliteCheckpointStore`): one process that must
  not lose messages across restarts.
- **The lease and** :class:`RedisCheckpointStore`: several replicas for availability, exactly
  one acting at a time. Each replica calls :meth:`RedisLease.acquire`; one gets it, the others
  wait (stand by). The holder renews it from a background thread; when the holder dies, the
  lease expires and a standby takes over within the TTL, and continues from the shared
  checkpoint.

The lease is *fenced*. Each acquisition gets a fencing token from a counter (``INCR``), and
every write made through the lease (:meth:`RedisCheckpointStore.save`,
:meth:`RedisCheckpointStore.save_and_append`) runs in one Lua script that first checks that the
lease key still holds that very acquisition; otherwise nothing is written and
:class:`~signalwire_chat.FencedWriteError` is raised. So a holder that was paused (a GC pause,
SIGSTOP, a stalled VM) and lost the lease meanwhile cannot act after it resumes, whatever its own
clock believes.

==============================  ================================================================
guarantee                       how
==============================  ================================================================
at most one holder acts         a write is applied only if the lease key holds the writer's
                                acquisition (token and owner) at that moment, checked in Lua
takeover after a holder dies    within the TTL (plus the standby's retry interval)
a renewal Redis did not see     the holder counts its lease lost at ``sent + ttl - drift``
                                (``drift`` = 1% of the TTL + 2 ms) and stops renewing
a release on close              deletes the key only if it is still ours
checkpoint + stream append      one Lua script: both happen or neither does; for a batch
                                (``save_and_append_many``), each entry with its checkpoint,
                                up to the first entry Redis refuses
Redis restarted                 without persistence the lease and the checkpoints are gone: the
                                holder's next renewal finds no key, it reports the lease lost
                                and may acquire again; tokens restart at 1, but a stale holder
                                is still refused because its owner id differs
==============================  ================================================================

Use one Redis server (or a primary with its replicas); Redis Cluster is not supported (the
scripts touch several keys). The bridge into Redis Streams (:mod:`signalwire_chat.bridge`)
builds on these parts.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NoReturn, TypeVar

import redis as redis_py
from redis.commands.core import Script

from ._backoff import Backoff
from ._threads import start_thread
from ._validate import check_seconds
from .checkpoints import (
    Checkpoint,
    _check_key,
    _check_token,
    _ClosableStore,
    _decode,
    _encode,
)
from .errors import (
    ClientClosedError,
    CorruptCheckpointError,
    FencedWriteError,
    InvalidArgumentError,
    InvalidArgumentTypeError,
    LeaseTimeoutError,
    StoreError,
    StoreUnavailableError,
)

__all__ = ["EntryRefusedError", "RedisCheckpointStore", "RedisLease"]

_log = logging.getLogger(__name__)
_T = TypeVar("_T")
_PREFIX = "signalwire-chat"
_JOIN_SECONDS = 5.0

# KEYS: lease, fence counter, the old counter key (kept readable). ARGV: owner, ttl in ms.
# Returns the new token, or 0 if held; an error when either key holds something not ours.
# A counter is refused unless it is a plain count below 10**15: Lua numbers are doubles, and
# from 10**14 on Lua writes them as "1e+14", so the lease value set here would never be the
# one the holder sends (every renewal and every fenced write refused, acquired again, ...).
_ACQUIRE = """
local kind = redis.call('TYPE', KEYS[1]).ok
if kind ~= 'none' then
  -- Held, unless it is no lease of ours: a lease always expires, so a key of another type
  -- or without an expiry would keep every contender standing by forever, silently.
  if kind ~= 'string' or redis.call('PTTL', KEYS[1]) < 0 then
    return redis.error_reply('the lease key ' .. KEYS[1] .. ' holds no lease of ours (a ' ..
      kind .. ', not a string with an expiry): delete it to go on')
  end
  return 0
end
if redis.call('EXISTS', KEYS[2]) == 0 and redis.call('TYPE', KEYS[3]).ok == 'string' then
  -- The first acquisition under the new key continues the old counter: tokens never go back.
  local old = redis.call('GET', KEYS[3])
  if string.match(old, '^%d+$') then redis.call('SET', KEYS[2], old) end
end
local count = redis.call('GET', KEYS[2])
if count and not (string.match(count, '^%d+$') and #count <= 15) then
  return redis.error_reply('the fencing counter ' .. KEYS[2] .. ' holds no count of ours')
end
local token = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], string.format('%d', token) .. ' ' .. ARGV[1], 'PX', ARGV[2])
return token
"""
# KEYS: lease. ARGV: our value, ttl in ms. 1 if renewed, 0 if the key is not ours (lost).
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
"""
# KEYS: lease. ARGV: our value. Deletes only our own lease.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
# The fence of a save script. KEYS: lease (or the checkpoint again), checkpoint.
# ARGV: mode ('lease' | 'max' | 'none'), lease value, token. Returns {0, reason} when refused.
_FENCE = """
local mode = ARGV[1]
if mode == 'lease' then
  if redis.call('GET', KEYS[1]) ~= ARGV[2] then return {0, 'lease'} end
elseif mode == 'max' then
  local seen = redis.call('HGET', KEYS[2], 'token')
  -- Only a count of ours is compared: Lua reads 'nan' and 'inf' as numbers ('nan' is less
  -- than nothing, so a stale writer would pass) and 'abc' as nil (a Lua error).
  if seen and not (string.match(seen, '^%d+$') and #seen <= 15) then
    return redis.error_reply('the checkpoint ' .. KEYS[2] .. ' holds a fencing token not of ours')
  end
  if seen and tonumber(seen) > tonumber(ARGV[3]) then return {0, seen} end
end
"""
# KEYS: lease (or the checkpoint again), checkpoint [, stream].
# ARGV: mode, lease value, token (as for _FENCE), body [, field, value, ...].
# Returns {1, stream entry id or ''} when written, {0, reason} when refused.
_SAVE = (
    _FENCE
    + """local entry = ''
if #KEYS == 3 then
  -- A retry of an append whose answer was lost: the checkpoint is already this one.
  local prev = redis.call('HGET', KEYS[2], 'entry')
  if prev and redis.call('HGET', KEYS[2], 'body') == ARGV[4] then return {1, prev} end
  entry = redis.call('XADD', KEYS[3], '*', unpack(ARGV, 5))
  redis.call('HSET', KEYS[2], 'entry', entry)
else
  redis.call('HDEL', KEYS[2], 'entry')
end
redis.call('HSET', KEYS[2], 'body', ARGV[4])
if mode ~= 'none' then redis.call('HSET', KEYS[2], 'token', ARGV[3]) end
return {1, entry}
"""
)

# KEYS: lease (or the checkpoint again), checkpoint, stream.
# ARGV: mode, lease value, token (as for _FENCE), the batch's strings end to end (each entry's
# checkpoint body, then its field names and values), and a JSON array of their sizes in bytes:
# per entry, the body's, the number of strings of the entry, then each one's. (Two arguments,
# not one per string: redis-py encodes each argument in Python, which cost more than the
# script; and not a JSON array of the strings: that encoded each entry's JSON a second time.)
# Sizes that do not add up to the strings refuse the batch before anything is written.
# Appends the entries in order and saves the checkpoint of the last one appended, in one
# script. An entry Redis refuses stops it there: the ones before it are appended and
# checkpointed, none after (pcall: a script's writes are not rolled back on an error). Returns
# {1, entries done} or {2, entries done, Redis's error} when written, {0, reason} when refused
# by the fence.
_SAVE_MANY = (
    _FENCE
    + """local blob, sizes = ARGV[4], cjson.decode(ARGV[5])
local batch, at, i = {}, 1, 1
local function take(size)
  local text = string.sub(blob, at, at + size - 1)
  at = at + size
  return text
end
while i <= #sizes do
  local body, count, fields = take(sizes[i]), sizes[i + 1], {}
  for k = 1, count do fields[k] = take(sizes[i + 1 + k]) end
  batch[#batch + 1] = {body, fields}
  i = i + 2 + count
end
if at ~= #blob + 1 then return redis.error_reply('the batch sizes do not add up') end
-- A retry of a batch whose answer was lost: what the checkpoint covers is appended already.
local first = 1
local current = redis.call('HGET', KEYS[2], 'body')
if current then
  for n = #batch, 1, -1 do
    if batch[n][1] == current then first = n + 1 break end
  end
end
local done, entry, failure = first - 1, nil, nil
for n = first, #batch do
  local id = redis.pcall('XADD', KEYS[3], '*', unpack(batch[n][2]))
  if type(id) == 'table' and id.err then failure = id.err break end
  entry, done = id, n
end
if entry then
  redis.call('HSET', KEYS[2], 'body', batch[done][1], 'entry', entry)
  if mode ~= 'none' then redis.call('HSET', KEYS[2], 'token', ARGV[3]) end
end
if failure then return {2, done, failure} end
return {1, done}
"""
)


class EntryRefusedError(StoreError):
    """Redis refused one entry of :meth:`RedisCheckpointStore.save_and_append_many`.

    The entries before it are appended and checkpointed, none after it.

    Attributes:
        index: The refused entry's position in the batch (how many before it are done).
    """

    def __init__(self, message: str, *, index: int) -> None:
        super().__init__(message)
        self.index = index


class _RedisURL:
    """A Redis URL, kept out of reprs, messages and traceback locals: it may hold a password."""

    __slots__ = ("url",)

    def __init__(self, url: str) -> None:
        self.url = url

    def __repr__(self) -> str:
        return "<Redis URL (not shown)>"


def _target(redis: object) -> _RedisURL | redis_py.Redis:
    """What a constructor's ``redis`` names, the URL hidden from then on.

    Each constructor calls this first and deletes its ``redis`` argument, so no frame of a
    traceback raised later in it holds the URL (traceback printers show locals).
    """
    if isinstance(redis, (_RedisURL, redis_py.Redis)):
        return redis
    if isinstance(redis, str):
        return _RedisURL(redis)
    raise InvalidArgumentTypeError("redis must be a redis:// URL or a redis.Redis client")


def _from_url(target: _RedisURL, timeout: float) -> redis_py.Redis | None:
    if not target.url.startswith(("redis://", "rediss://", "unix://")):
        return None
    try:
        return redis_py.Redis.from_url(
            target.url, socket_timeout=timeout, socket_connect_timeout=timeout
        )
    except Exception:  # noqa: BLE001 - any parse failure is "not a usable URL", shown below
        return None


def _client(target: _RedisURL | redis_py.Redis, timeout: float) -> _Conn:
    """A connection from a URL (ours: timeouts set, closed by us) or the caller's own client."""
    if isinstance(target, redis_py.Redis):
        return _Conn(target, owned=False)
    client = _from_url(target, timeout)
    if client is None:
        # Raised here, outside any except block: no redis-py frame (holding the URL) is chained.
        raise InvalidArgumentError(
            "not a usable Redis URL: redis://[[user]:password@]host[:port][/db], rediss://... "
            "or unix://path (the URL is not shown: it may hold a password)"
        )
    return _Conn(client, owned=True)


_SHOWN = 200  # characters of a server's text or reply kept in our messages


def _shown(value: object, secrets: tuple[str, ...] = ()) -> str:
    """``value`` for a message: secrets replaced, escaped to ASCII, at most ~200 characters."""
    if isinstance(value, bytes):
        value = value[: _SHOWN * 2].decode("utf-8", "replace")
    text = value if isinstance(value, str) else repr(value)[: _SHOWN * 4]
    for secret in secrets:
        text = text.replace(secret, "***")
    text = ascii(text)[1:-1]
    return text if len(text) <= _SHOWN else text[:_SHOWN] + "..."


class _Conn:
    """One redis-py client and the one place its failures become our errors.

    A failure is re-raised as a :class:`~signalwire_chat.StoreError` with a bounded message
    (the server's text escaped and cut, the password replaced) and without the redis-py
    exception chained: its frames hold the password in their locals (``AUTH`` arguments).
    """

    __slots__ = ("_secrets", "client", "owned")

    def __init__(self, client: redis_py.Redis, *, owned: bool) -> None:
        self.client = client
        self.owned = owned
        kwargs = client.connection_pool.connection_kwargs
        self._secrets = tuple(
            str(kwargs[name]) for name in ("password",) if kwargs.get(name) not in (None, "")
        )

    def __repr__(self) -> str:
        return f"<_Conn owned={self.owned}>"

    def shown(self, value: object) -> str:
        """``value`` as our messages show it (see :func:`_shown`)."""
        return _shown(value, self._secrets)

    def run(self, what: str, call: Callable[[], _T], *, wrongtype: StoreError | None = None) -> _T:
        """Run one redis-py call; its failures become our errors.

        Args:
            what: What the call does, for the message ("loading a checkpoint").
            call: The call.
            wrongtype: Raised instead when Redis answers ``WRONGTYPE`` (a key of another type).
        """
        try:
            return call()
        except Exception as exc:  # noqa: BLE001 - translated, whatever redis-py raised
            failure = self._failure(what, exc, wrongtype)
        raise failure  # outside the except blocks: nothing of redis-py's is chained

    def _failure(self, what: str, exc: Exception, wrongtype: StoreError | None) -> StoreError:
        """Our error for ``exc`` (its text is a local of this frame only, which is gone)."""
        text = self.shown(str(exc))
        if isinstance(exc, (redis_py.ConnectionError, redis_py.TimeoutError)):
            return StoreUnavailableError(
                f"Redis unreachable while {what}: {type(exc).__name__}: {text}"
            )
        if isinstance(exc, redis_py.ResponseError):
            if wrongtype is not None and str(exc).startswith("WRONGTYPE"):
                return wrongtype
            return StoreError(f"Redis refused {what}: {text}")
        if isinstance(exc, redis_py.RedisError):
            return StoreError(f"Redis failed {what}: {type(exc).__name__}: {text}")
        # A reply redis-py cannot parse (from a wrong server): its text is not worth showing.
        return StoreError(
            f"Redis sent a reply that cannot be read while {what}: {type(exc).__name__}"
        )

    def close(self) -> None:
        """Close the client if it is ours."""
        if self.owned:
            self.client.close()


def _lease_keys(name: str) -> tuple[str, str, str]:
    """The lease key, its fencing counter, and the counter's key in earlier versions (read once).

    Each kind of key has its own fixed segment after the prefix (``lease:``, ``fence:``), so no
    lease name reaches another lease's counter; before, ``<prefix>:lease:X:fence`` was both
    the counter of ``X`` and the lease key of ``X:fence``.
    """
    return f"{_PREFIX}:lease:{name}", f"{_PREFIX}:fence:{name}", f"{_PREFIX}:lease:{name}:fence"


def _check_name(name: object) -> str:
    if not isinstance(name, str) or not 0 < len(name) <= 200 or not name.isprintable():
        raise InvalidArgumentError("name must be a non-empty printable string (<= 200 chars)")
    return name


class RedisLease:
    """A fenced lease in Redis: at most one holder at a time among processes sharing ``name``.

    Nothing starts in the constructor. :meth:`acquire` (or :meth:`try_acquire`) takes the
    lease (set-if-absent with expiry) and starts a renewal thread owned by this object; it
    renews every ``renew_interval`` seconds while Redis confirms the lease is still ours.
    When Redis says it is not (expired, taken over, or gone in a restart), or Redis cannot be
    reached until the lease would have expired, the lease is lost: :attr:`held` turns false,
    :meth:`wait_lost` returns, ``on_lost`` is called (from the renewal thread) and the thread
    ends. :meth:`release` and :meth:`close` stop the thread within a bounded time and delete
    the key if it is still ours.

    Args:
        redis: A ``redis://`` URL (a client with timeouts is made and closed here) or a
            ``redis.Redis`` client (set its ``socket_timeout``; it is not closed here).
        name: The lease's name; processes with the same name contend for it.
        ttl: Seconds the lease lasts without renewal: a dead holder is replaced after at most
            this long.
        renew_interval: Seconds between renewals (default: a third of ``ttl``).
        retry_interval: Seconds between attempts of a standby in :meth:`acquire` (default: a
            tenth of ``ttl``).
        owner: This holder's id, kept in the lease key (default: a random UUID); it must be
            unique among contenders.
        on_lost: Called with no arguments when a held lease is lost (not on release): from
            the renewal thread, or from the thread whose fenced write Redis refused. It must
            not block for long.
    """

    def __init__(
        self,
        redis: str | redis_py.Redis,
        *,
        name: str,
        ttl: float = 10.0,
        renew_interval: float | None = None,
        retry_interval: float | None = None,
        owner: str | None = None,
        on_lost: Callable[[], None] | None = None,
    ) -> None:
        target = _target(redis)
        del redis  # see _target
        self.name = _check_name(name)
        self.ttl = check_seconds(ttl, "ttl")
        self.renew_interval = check_seconds(
            self.ttl / 3 if renew_interval is None else renew_interval, "renew_interval"
        )
        if self.renew_interval >= self.ttl:
            raise InvalidArgumentError("renew_interval must be shorter than ttl")
        self.retry_interval = check_seconds(
            self.ttl / 10 if retry_interval is None else retry_interval, "retry_interval"
        )
        self.owner = _check_name(owner) if owner is not None else uuid.uuid4().hex
        if " " in self.owner:
            raise InvalidArgumentError("owner must not contain a space")
        self._on_lost = on_lost
        self.key, self._fence_key, self._old_fence_key = _lease_keys(self.name)
        self._conn = _client(target, min(self.renew_interval, 5.0))
        redis_client = self._conn.client
        self._acquire_script = redis_client.register_script(_ACQUIRE)
        self._renew_script = redis_client.register_script(_RENEW)
        self._release_script = redis_client.register_script(_RELEASE)
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._lost = threading.Event()
        self._stop_renewing = threading.Event()
        self._thread: threading.Thread | None = None
        self._token: int | None = None
        self._value: str | None = None  # "token owner" of the last acquisition, kept after loss
        self._valid_until = 0.0
        self._drift = self.ttl * 0.01 + 0.002

    def __repr__(self) -> str:
        # Safe on an instance whose __init__ raised (a debugger, a traceback with locals).
        if not hasattr(self, "_valid_until"):
            return f"RedisLease(name={getattr(self, 'name', None)!r}, not set up)"
        state = f"held, token {self._token}" if self.held else "not held"
        return f"RedisLease(name={self.name!r}, owner={self.owner!r}, {state})"

    @property
    def held(self) -> bool:
        """Whether this process holds the lease, by its own clock (Redis has the last word)."""
        with self._lock:
            return self._token is not None and time.monotonic() < self._valid_until

    @property
    def token(self) -> int | None:
        """The fencing token of the current acquisition (``None`` when not held)."""
        with self._lock:
            return self._token

    def try_acquire(self) -> int | None:
        """Take the lease if nobody holds it; return the fencing token, or ``None``.

        Returns the current token if this object already holds it.

        Raises:
            StoreUnavailableError: Redis could not be reached.
            ClientClosedError: The lease was closed.
        """
        if self._closed.is_set():
            raise ClientClosedError("the lease is closed")
        with self._lock:
            token, value, expired = self._token, self._value, time.monotonic() >= self._valid_until
        if token is not None and not expired:
            return token
        if token is not None and value is not None:
            self._lose(value, "not renewed in time")
        self._stop_renewing.set()
        self._join_renewer()
        ttl_ms = max(1, int(self.ttl * 1000))
        sent = time.monotonic()
        try:
            answer = self._conn.run(
                "acquiring the lease",
                lambda: self._acquire_script(
                    keys=[self.key, self._fence_key, self._old_fence_key],
                    args=[self.owner, ttl_ms],
                ),
            )
        except Exception:
            # close() from another thread shut our client under the call: redis-py then
            # fails on its closed socket (ValueError, OSError), which is no Redis failure.
            if self._closed.is_set():
                raise ClientClosedError("the lease was closed while acquiring it") from None
            raise
        if not isinstance(answer, int) or isinstance(answer, bool) or answer < 0:
            raise StoreError(f"Redis answered the lease script with {self._conn.shown(answer)}")
        if answer == 0:
            return None
        token = answer
        if self._closed.is_set():  # closed while the script ran: give it back at once
            value = f"{token} {self.owner}"
            self._conn.run(
                "releasing the lease",
                lambda: self._release_script(keys=[self.key], args=[value]),
            )
            raise ClientClosedError("the lease was closed while acquiring it")
        with self._lock:
            self._token, self._value = token, f"{token} {self.owner}"
            self._valid_until = sent + self.ttl - self._drift
            self._lost.clear()
            self._stop_renewing = threading.Event()
            self._thread = start_thread(
                self._renew_loop, f"lease-{self.name}", args=(self._stop_renewing, self._value)
            )
        _log.info("lease %s acquired by %s with token %d", self.name, self.owner, token)
        return token

    def acquire(self, timeout: float) -> int:
        """Wait until this process holds the lease (standing by meanwhile); return the token.

        Redis being unreachable is waited through (logged) until the timeout.

        Args:
            timeout: Seconds to wait at most (``math.inf`` to stand by until it is free).

        Raises:
            LeaseTimeoutError: It was not acquired in time.
            ClientClosedError: The lease was closed while waiting.
        """
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout < 0:
            raise InvalidArgumentError("timeout must be a non-negative number of seconds")
        deadline = time.monotonic() + timeout
        # A standby polls at retry_interval while Redis answers (the lease is held); while
        # Redis is unreachable it backs off (up to four times that, jittered, so standbys
        # do not all knock at once when it comes back).
        outage = Backoff(cap=4 * self.retry_interval, base=self.retry_interval)
        while True:
            wait = self.retry_interval
            try:
                token = self.try_acquire()
                outage.reset()
            except StoreUnavailableError as exc:
                _log.warning("lease %s: %s; retrying", self.name, exc)
                token = None
                wait = outage.next_delay() or self.retry_interval
            if token is not None:
                return token
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise LeaseTimeoutError(f"lease {self.name!r} not acquired within {timeout} s")
            if self._closed.wait(min(wait, remaining)):
                raise ClientClosedError("the lease was closed while waiting for it")

    def wait_lost(self, timeout: float) -> bool:
        """Block until a held lease is lost or this object is closed.

        Args:
            timeout: Seconds to wait at most (``math.inf`` for as long as it takes).

        Returns:
            ``True`` if it was lost or closed, ``False`` on timeout.
        """
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout < 0:
            raise InvalidArgumentError("timeout must be a non-negative number of seconds")
        # Event.wait cannot take math.inf (OverflowError): None is "no limit" to it.
        return self._lost.wait(None if math.isinf(timeout) else timeout)

    def release(self) -> None:
        """Stop renewing and delete the lease if it is still ours (idempotent).

        Raises:
            StoreUnavailableError: Redis could not be reached; the lease then expires by itself.
        """
        with self._lock:
            value, self._token = self._value, None
            self._stop_renewing.set()
        self._join_renewer()
        if value is not None:
            self._conn.run(
                "releasing the lease",
                lambda: self._release_script(keys=[self.key], args=[value]),
            )
            _log.info("lease %s released by %s", self.name, self.owner)

    def close(self) -> None:
        """Release the lease (best effort), stop the renewal thread, close our client."""
        if self._closed.is_set():
            return
        self._closed.set()
        try:
            self.release()
        except StoreError:
            _log.warning("lease %s: release on close failed", self.name, exc_info=True)
        finally:
            self._lost.set()  # wakes wait_lost
            self._conn.close()

    def __enter__(self) -> RedisLease:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _join_renewer(self) -> None:
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(_JOIN_SECONDS)
            if thread.is_alive():
                _log.warning("lease %s: the renewal thread did not stop in time", self.name)

    def _renew_loop(self, stop: threading.Event, value: str) -> None:
        ttl_ms = max(1, int(self.ttl * 1000))
        interval = self.renew_interval
        while not stop.wait(interval):
            if time.monotonic() >= self._valid_until:
                self._lose(value, "not renewed in time (Redis unreachable or slow)")
                return
            sent = time.monotonic()
            try:
                renewed = self._conn.run(
                    "renewing the lease",
                    lambda: self._renew_script(keys=[self.key], args=[value, ttl_ms]),
                )
            except StoreError as exc:
                _log.warning("lease %s: %s", self.name, exc)
                interval = min(self.renew_interval, self.retry_interval)  # try again sooner
                continue
            if renewed != 1:
                self._lose(value, "Redis no longer has it (expired, taken over, or restarted)")
                return
            interval = self.renew_interval
            with self._lock:
                if self._value == value:
                    self._valid_until = sent + self.ttl - self._drift

    def _lose(self, value: str, why: str) -> None:
        with self._lock:
            if self._value != value or self._token is None:
                return  # released meanwhile
            self._token = None
        _log.warning("lease %s lost by %s: %s", self.name, self.owner, why)
        self._lost.set()
        if self._on_lost is not None:
            try:
                self._on_lost()
            except Exception:  # noqa: BLE001 - a failing callback must not kill the renewal thread
                _log.exception("lease %s: the on_lost callback raised", self.name)

    def _fence(self, token: int | None) -> tuple[str, str, int]:
        """The lease key, the value a write must find there, and the token; before sending."""
        with self._lock:
            value = self._value
        if value is None:
            raise FencedWriteError("refused: this lease was never acquired", fencing_token=token)
        current = int(value.split(" ", 1)[0])
        if token is not None and token != current:
            raise FencedWriteError(
                f"refused: fencing token {token} is not this lease's ({current})",
                fencing_token=token,
            )
        # The last acquisition's value is sent even when the lease looks lost locally: Redis,
        # not this process's clock, decides.
        return self.key, value, current


def _batch_payload(entries: Sequence[tuple[Checkpoint, Mapping[str, str]]]) -> tuple[bytes, str]:
    """The batch script's two arguments: the entries' strings end to end, and their sizes.

    Per entry, the strings are its checkpoint body then its field names and values; the sizes
    (a JSON array of byte counts) are the body's, the number of field strings, then each one's.

    Raises:
        InvalidArgumentError: No entries, a non-checkpoint, empty or non-text fields, or text
            UTF-8 cannot carry (a lone surrogate): nothing is sent.
    """
    if not entries:
        raise InvalidArgumentError("entries must not be empty")
    strings: list[bytes] = []
    sizes: list[int] = []
    try:
        for checkpoint, fields in entries:
            if not isinstance(checkpoint, Checkpoint):
                raise InvalidArgumentError("checkpoint must be a Checkpoint")
            if not fields or (type(fields) is not dict and not isinstance(fields, Mapping)):
                raise InvalidArgumentError("fields must be a non-empty mapping")
            body = _encode(checkpoint).encode()
            strings.append(body)
            sizes += (len(body), 2 * len(fields))
            for name, value in fields.items():
                if not isinstance(name, str) or not name or not isinstance(value, str):
                    raise InvalidArgumentError("fields must map non-empty str names to str")
                name_bytes, value_bytes = name.encode(), value.encode()
                strings += (name_bytes, value_bytes)
                sizes += (len(name_bytes), len(value_bytes))
    except UnicodeEncodeError:
        raise InvalidArgumentError("fields must be text UTF-8 can carry") from None
    return b"".join(strings), json.dumps(sizes, separators=(",", ":"))


class RedisCheckpointStore(_ClosableStore):
    """Checkpoints in Redis (a hash per key), shared by every replica.

    A save is one Lua script, so it is atomic. With ``lease``, every save is fenced by it:
    applied only while the lease key holds this process's acquisition, else refused with
    :class:`~signalwire_chat.FencedWriteError` and nothing written. Without a lease, a save
    with ``fencing_token`` is refused when a higher token was saved under the key before (as
    in the sqlite store), and a save without one is not fenced.

    Durability is Redis's: without AOF or RDB persistence a Redis restart loses every
    checkpoint (the next start then has none: catch-up from the beginning, or what the
    caller decides).

    Args:
        redis: A ``redis://`` URL or a ``redis.Redis`` client (see :class:`RedisLease`).
        lease: Fence every save by this lease (its Redis must be the same server).
        prefix: The key prefix (keys are ``<prefix>:checkpoint:<key>``); it must not start
            with ``signalwire-chat:``, where the leases live.
        timeout: Socket timeout in seconds for a client made from a URL.
    """

    def __init__(
        self,
        redis: str | redis_py.Redis,
        *,
        lease: RedisLease | None = None,
        prefix: str = _PREFIX,
        timeout: float = 5.0,
    ) -> None:
        target = _target(redis)
        del redis  # see _target
        self.prefix = _check_name(prefix)
        if self.prefix.startswith(f"{_PREFIX}:"):
            raise InvalidArgumentError(f"prefix must not start with {_PREFIX + ':'!r} (leases)")
        self._lease = lease
        self._conn = _client(target, check_seconds(timeout, "timeout"))
        self._redis = self._conn.client
        self._save_script: Script = self._redis.register_script(_SAVE)
        self._save_many_script: Script = self._redis.register_script(_SAVE_MANY)
        self._closed = False

    def __repr__(self) -> str:
        lease = getattr(self, "_lease", None)  # None too on an instance whose __init__ raised
        fenced = f", lease={lease.name!r}" if lease is not None else ""
        return f"RedisCheckpointStore(prefix={getattr(self, 'prefix', None)!r}{fenced})"

    def _key(self, key: str) -> str:
        return f"{self.prefix}:checkpoint:{_check_key(key)}"

    def load(self, key: str) -> Checkpoint | None:
        """Return the checkpoint saved under ``key``, or ``None``.

        Raises:
            CorruptCheckpointError: What Redis holds there is not a checkpoint of ours.
            StoreUnavailableError: Redis could not be reached.
        """
        redis_key = self._key(key)
        self._check_open()
        body = self._conn.run(
            "loading a checkpoint",
            lambda: self._redis.hget(redis_key, "body"),
            wrongtype=CorruptCheckpointError(f"{redis_key!r} is not a hash", key=key),
        )
        if body is None:
            kind = self._conn.run("loading a checkpoint", lambda: self._redis.type(redis_key))
            if kind in (b"none", "none"):
                return None
            raise CorruptCheckpointError(f"{redis_key!r} holds no checkpoint body", key=key)
        if not isinstance(body, (bytes, str)):
            raise CorruptCheckpointError(f"{redis_key!r} is not a checkpoint", key=key)
        return _decode(key, body)

    def save(self, key: str, checkpoint: Checkpoint, *, fencing_token: int | None = None) -> None:
        """Save ``checkpoint`` under ``key`` atomically (fenced, see the class).

        Raises:
            FencedWriteError: The write is refused by the fence; nothing was written.
            StoreUnavailableError: Redis could not be reached (the save may have happened).
        """
        self._run(key, checkpoint, fencing_token, None, None)

    def save_and_append(
        self,
        key: str,
        checkpoint: Checkpoint,
        *,
        stream: str,
        fields: Mapping[str, str | bytes],
        fencing_token: int | None = None,
    ) -> str:
        """Append ``fields`` to a Redis Stream and save ``checkpoint``, both or neither.

        One Lua script does the fence check, the ``XADD`` and the save, so a failover never
        appends an entry whose checkpoint advance was lost, nor the reverse. Retrying after a
        ``StoreUnavailableError`` is safe: when the checkpoint under ``key`` already is
        ``checkpoint`` (the first attempt went through), nothing is appended again and the
        first entry's id is returned.

        Args:
            key: The checkpoint key.
            checkpoint: The checkpoint after this entry.
            stream: The stream's key.
            fields: The entry (at least one field).
            fencing_token: As for :meth:`save`.

        Returns:
            The stream entry id.

        Raises:
            FencedWriteError: Refused by the fence; nothing appended, nothing saved.
            StoreUnavailableError: Redis could not be reached (it may have happened).
        """
        if not isinstance(stream, str) or not stream:
            raise InvalidArgumentError("stream must be a non-empty string")
        if not isinstance(fields, Mapping) or not fields:
            raise InvalidArgumentError("fields must be a non-empty mapping")
        for name, value in fields.items():
            if not isinstance(name, str) or not name or not isinstance(value, (str, bytes)):
                raise InvalidArgumentError("fields must map non-empty str names to str or bytes")
        entry = self._run(key, checkpoint, fencing_token, stream, fields)
        assert entry is not None
        return entry

    def save_and_append_many(
        self,
        key: str,
        entries: Sequence[tuple[Checkpoint, Mapping[str, str]]],
        *,
        stream: str,
        fencing_token: int | None = None,
    ) -> None:
        """Append several entries to a Redis Stream, each with its checkpoint, in one script.

        As :meth:`save_and_append` for each ``(checkpoint, fields)`` in order, in one round
        trip: one fence check, the ``XADD`` of each entry, and the save of the last entry's
        checkpoint. Retrying after a ``StoreUnavailableError`` is safe: the entries up to the
        one whose checkpoint is saved under ``key`` are not appended again.

        Args:
            key: The checkpoint key.
            entries: The checkpoint after each entry, and the entry (at least one field each;
                names and values are text).
            stream: The stream's key.
            fencing_token: As for :meth:`save`.

        Raises:
            EntryRefusedError: Redis refused the entry at its ``index``: the ones before it are
                appended and checkpointed, none after it.
            FencedWriteError: Refused by the fence; nothing appended, nothing saved.
            StoreUnavailableError: Redis could not be reached (it may have happened).
        """
        if not isinstance(stream, str) or not stream:
            raise InvalidArgumentError("stream must be a non-empty string")
        strings, sizes = _batch_payload(entries)
        keys, args, token = self._fenced(key, fencing_token)
        keys.append(stream)
        args += (strings, sizes)
        answer = self._conn.run(
            "appending to the stream", lambda: self._save_many_script(keys=keys, args=args)
        )
        if isinstance(answer, list) and answer[:1] == [0]:
            self._refused(key, args, token)
        self._check_many_answer(answer, len(entries))

    def _check_many_answer(self, answer: Any, count: int) -> None:
        """Raise unless the batch script says all ``count`` entries were appended.

        Raises:
            EntryRefusedError: Redis refused the entry at the index the script names.
            StoreError: An answer the script cannot give (a hostile or broken server).
        """
        shown = self._conn.shown
        ok = isinstance(answer, list) and answer[:1] in ([1], [2])
        done = answer[1] if ok and len(answer) > 1 else None
        if not isinstance(done, int) or not 0 <= done <= count:
            raise StoreError(f"Redis answered the append script with {shown(answer)}")
        if answer[0] == 2:
            why = shown(answer[2] if len(answer) > 2 else "")
            raise EntryRefusedError(f"Redis refused entry {done} of the batch: {why}", index=done)
        if done != count:
            raise StoreError(f"Redis answered the append script with {shown(answer)}")

    def _fenced(
        self, key: str, fencing_token: int | None
    ) -> tuple[list[str], list[Any], int | None]:
        """The keys and the first arguments of a save script: the fence, by mode."""
        redis_key = self._key(key)
        token = _check_token(fencing_token)
        self._check_open()
        keys = [redis_key, redis_key]
        args: list[Any] = ["none", "", 0]
        if self._lease is not None:
            lease_key, value, token = self._lease._fence(token)
            keys[0] = lease_key
            args = ["lease", value, token]
        elif token is not None:
            args = ["max", "", token]
        return keys, args, token

    def _refused(self, key: str, args: list[Any], token: int | None) -> NoReturn:
        """Raise the fence's refusal (and stop believing in the lease: Redis says it is lost)."""
        if self._lease is not None:
            self._lease._lose(str(args[1]), "Redis refused a write fenced by it")
        raise FencedWriteError(
            f"refused: fencing token {token} is no longer current for {key!r}",
            fencing_token=token,
        )

    def _run(
        self,
        key: str,
        checkpoint: Checkpoint,
        fencing_token: int | None,
        stream: str | None,
        fields: Mapping[str, str | bytes] | None,
    ) -> str | None:
        if not isinstance(checkpoint, Checkpoint):
            raise InvalidArgumentError("checkpoint must be a Checkpoint")
        keys, args, token = self._fenced(key, fencing_token)
        args.append(_encode(checkpoint))
        if stream is not None and fields is not None:
            keys.append(stream)
            for name, field_value in fields.items():
                args.extend((name, field_value))
        answer = self._conn.run(
            "saving a checkpoint", lambda: self._save_script(keys=keys, args=args)
        )
        if not isinstance(answer, list) or len(answer) != 2 or answer[0] not in (0, 1):
            raise StoreError(f"Redis answered the save script with {self._conn.shown(answer)}")
        if answer[0] == 0:
            self._refused(key, args, token)
        entry = answer[1]
        if stream is None:
            return None
        if isinstance(entry, bytes):
            entry = entry.decode("ascii", "replace")
        if not isinstance(entry, str) or not entry:
            raise StoreError(f"Redis answered XADD with {self._conn.shown(entry)}")
        return entry

    def close(self) -> None:
        """Close our client (idempotent); a client passed in is left open."""
        if not self._closed:
            self._closed = True
            self._conn.close()
