"""Checkpoints: the last message a subscription handled, kept where a restart finds it.

When to use what (see also ``docs/guides/scaling.md``):

- **Neither**: one process, and a message missed while it was down does not matter (a chat
  display, a notebook). Live delivery already backfills reconnects within one run.
- **A checkpoint** (:class:`SqliteCheckpointStore`): one process that must not lose messages
  across restarts (a deploy, a crash). Save the checkpoint after the handler returned: delivery
  across restarts is then at-least-once, and exactly-once for a handler that records its own
  progress in the same store.
- **The lease and a shared checkpoint** (:mod:`signalwire_chat.redis`): several replicas for
  availability, exactly one of them acting at a time; the others stand by and take over from
  the shared checkpoint when the holder dies.

What each store guarantees:

==================  ====================================  ====================================
guarantee           :class:`SqliteCheckpointStore`        ``RedisCheckpointStore``
==================  ====================================  ====================================
atomic save         yes (one sqlite transaction)          yes (one Lua script)
a returned save     survives a process crash (SIGKILL);   lives as long as Redis keeps it:
                    ``synchronous=FULL`` also a power     lost in a restart without AOF/RDB
                    loss                                  persistence
shared by hosts     no (one file on one host)             yes
fencing             a save with a token lower than the    a save with a token is refused
                    highest seen for its key is refused   unless that token holds the lease
                    (:class:`FencedWriteError`)           at that moment (checked in Lua)
==================  ====================================  ====================================

``ChatClient.subscribe(..., checkpoint="key")`` (and ``subscribe_inbox``, ``stream_messages``,
``stream_inbox``) use them: the subscription catches up from the checkpoint over REST before live
events, and saves it after each callback returned. The store is ``ChatClient(checkpoint_store=)``:
a store object, a path, or by default the file :func:`default_checkpoint_path` names.

A subscriber that keeps its checkpoint itself (in its own transaction with its own writes, as
the Redis Streams bridge does) passes a :class:`CheckpointHandler` as ``checkpoint=`` to
``subscribe`` or ``subscribe_inbox`` instead of a key: the subscription resumes from what its
:meth:`~CheckpointHandler.load` returns and hands the messages it handled to
:meth:`~CheckpointHandler.advance`, a whole delivery batch at a time.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from json.encoder import encode_basestring_ascii as _quoted
from pathlib import Path
from typing import Any, Protocol, TypeVar, runtime_checkable

import attrs

from .errors import (
    ClientClosedError,
    CorruptCheckpointError,
    FencedWriteError,
    InvalidArgumentError,
    InvalidArgumentTypeError,
    StoreUnavailableError,
)
from .models import ConversationChatMessage, ConversationMessage

__all__ = [
    "Checkpoint",
    "CheckpointHandler",
    "CheckpointStore",
    "SqliteCheckpointStore",
    "default_checkpoint_path",
]

_ROUTE = re.compile(r"\A(?:inbox|(?:group|address):[^\x00-\x1f\x7f]{1,256})\Z")
_MAX_KEY = 512
_MAX_ID = 256


def _check_route(_inst: object, _attr: object, value: Any) -> None:
    if not isinstance(value, str) or not _ROUTE.match(value):
        raise InvalidArgumentError(
            f"route must be 'inbox', 'group:<group id>' or 'address:<address id>', got {value!r}"
        )


def _is_message_id(value: Any) -> bool:
    return isinstance(value, str) and 0 < len(value) <= _MAX_ID and value.isprintable()


def _check_message_id(_inst: object, _attr: object, value: Any) -> None:
    if not _is_message_id(value):
        raise InvalidArgumentError(
            f"message_id must be a non-empty printable string of at most {_MAX_ID} characters"
        )


def _is_ts(value: Any) -> bool:
    return isinstance(value, float) and math.isfinite(value)  # a bool is an int, not a float


def _check_ts(_inst: object, _attr: object, value: Any) -> None:
    if not _is_ts(value):
        raise InvalidArgumentError(f"ts must be a finite float (epoch seconds), got {value!r}")


def _to_float(value: Any) -> Any:
    # An int timestamp is a float timestamp; anything else is left for the validator to refuse.
    return float(value) if isinstance(value, int) and not isinstance(value, bool) else value


@attrs.frozen(kw_only=True)
class Checkpoint:
    """The last message a subscription handled.

    Attributes:
        route: Where the messages come from: ``"group:<group id>"``, ``"address:<address
            id>"`` or ``"inbox"``.
        message_id: The id of the last message handled.
        ts: That message's ``ts`` (Unix epoch seconds with a fraction).

    Raises:
        InvalidArgumentError: A field is not of the shape above.
    """

    route: str = attrs.field(validator=_check_route)
    message_id: str = attrs.field(validator=_check_message_id)
    ts: float = attrs.field(converter=_to_float, validator=_check_ts)

    @classmethod
    def of(cls, message: ConversationMessage, *, route: str) -> Checkpoint:
        """The checkpoint after ``message`` (its id and ts) on ``route``."""
        message_id, ts = message.id, message.ts
        if (
            cls is Checkpoint
            and type(route) is str
            and route in _ROUTES
            and _is_message_id(message_id)
            and _is_ts(ts)
        ):
            # What the validators pass (their own tests; a route once), set as attrs does: the
            # bridge makes one per message, and attrs' __init__ and the route's regex were most
            # of its cost.
            checkpoint = object.__new__(cls)
            _set(checkpoint, "route", route)
            _set(checkpoint, "message_id", message_id)
            _set(checkpoint, "ts", ts)
            return checkpoint
        made = cls(route=route, message_id=message_id, ts=ts)
        if type(route) is str:  # valid: remembered (a few routes per process, bounded anyway)
            if len(_ROUTES) >= _MAX_ROUTES:
                _ROUTES.clear()
            _ROUTES.add(route)
        return made


#: Routes the validator passed: Checkpoint.of checks each once.
_ROUTES: set[str] = set()
_MAX_ROUTES = 1024
_set = object.__setattr__


def _encode(checkpoint: Checkpoint) -> str:
    """``json.dumps`` of the checkpoint as an object (compact), character for character.

    Written out (json's own string quoting, ``float.__repr__`` as json writes a finite float)
    because the bridge encodes one per message: a third of the time of ``json.dumps``.
    """
    route, message_id = _quoted(checkpoint.route), _quoted(checkpoint.message_id)
    return f'{{"route":{route},"message_id":{message_id},"ts":{float.__repr__(checkpoint.ts)}}}'


# Our bodies stay under 7 KiB (a 263-character route and a 256-character id, every character
# escaped); anything much longer is not ours and is refused unparsed.
_MAX_BODY = 16 * 1024


def _decode(key: str, raw: bytes | str) -> Checkpoint:
    """Parse what a store returned; anything but our own JSON is a CorruptCheckpointError."""
    if len(raw) > _MAX_BODY:
        raise CorruptCheckpointError(
            f"the checkpoint stored under {key!r} is not one this library wrote: "
            f"{len(raw)} characters long",
            key=key,
        )
    try:
        data: Any = json.loads(raw)
        if not isinstance(data, dict) or set(data) != {"route", "message_id", "ts"}:
            raise ValueError("not an object with route, message_id and ts")
        return Checkpoint(route=data["route"], message_id=data["message_id"], ts=data["ts"])
    # InvalidArgumentError is a ValueError; RecursionError: nesting too deep for json.
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise CorruptCheckpointError(
            f"the checkpoint stored under {key!r} is not one this library wrote: {exc}", key=key
        ) from None


def _check_key(key: object) -> str:
    if not isinstance(key, str) or not 0 < len(key) <= _MAX_KEY or not key.isprintable():
        raise InvalidArgumentError(
            f"a checkpoint key must be a non-empty printable string of at most {_MAX_KEY} "
            "characters"
        )
    return key


def check_key(key: object) -> str:
    """``key`` if it is a valid checkpoint key (non-empty, printable, at most 512 characters).

    Raises:
        InvalidArgumentError: It is not.
    """
    return _check_key(key)


def _create_private(path: Path) -> None:
    """Create ``path`` empty with mode 0600, and its missing directories with 0700.

    Created with the mode (no chmod after): there is no moment it is readable by others.
    An existing file or directory is the user's and is left alone.
    """
    missing = []
    directory = path.parent
    while not os.path.lexists(directory):
        missing.append(directory)
        directory = directory.parent
    for made in reversed(missing):
        with contextlib.suppress(FileExistsError):  # another process made it meanwhile
            os.mkdir(made, 0o700)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, flags, 0o600))


def default_checkpoint_path() -> Path:
    """The sqlite file a client keeps checkpoints in when given no ``checkpoint_store``.

    ``$SIGNALWIRE_CHAT_CHECKPOINTS`` if set, else ``$XDG_STATE_HOME/signalwire-chat/
    checkpoints.db``, else ``~/.local/state/signalwire-chat/checkpoints.db``.
    """
    explicit = os.environ.get("SIGNALWIRE_CHAT_CHECKPOINTS")
    if explicit:
        return Path(explicit)
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "signalwire-chat" / "checkpoints.db"


def _check_token(token: object) -> int | None:
    if token is None:
        return None
    if isinstance(token, bool) or not isinstance(token, int) or not 0 <= token < 2**63:
        raise InvalidArgumentError(f"fencing_token must be a non-negative int, got {token!r}")
    return token


@runtime_checkable
class CheckpointStore(Protocol):
    """Where checkpoints are kept, by key (one key per subscription, e.g. ``"bot:inbox"``)."""

    def load(self, key: str) -> Checkpoint | None:
        """Return the checkpoint saved under ``key``, or ``None`` if there is none.

        Raises:
            CorruptCheckpointError: What is stored is not a checkpoint.
            StoreUnavailableError: The store could not be reached.
        """
        ...

    def save(self, key: str, checkpoint: Checkpoint, *, fencing_token: int | None = None) -> None:
        """Save ``checkpoint`` under ``key``, atomically; durable once this returns.

        Args:
            key: The subscription's key.
            checkpoint: The last message handled.
            fencing_token: The lease's token when the writer holds a lease; the write is
                refused when the token is stale (what "stale" means is the store's).

        Raises:
            FencedWriteError: The token is stale; nothing was written.
            StoreUnavailableError: The store could not be reached; the save may not have
                happened.
        """
        ...

    def close(self) -> None:
        """Release the store's resources (idempotent)."""
        ...


@runtime_checkable
class CheckpointHandler(Protocol):
    """A subscription's checkpoint kept by the subscriber itself: where it resumes, and its advance.

    Pass one as ``checkpoint=`` to ``ChatClient.subscribe`` or ``subscribe_inbox`` (one handler
    per subscription). :meth:`load` is called once, from ``subscribe()``, before anything
    starts; :meth:`advance` is called on the dispatcher thread after ``on_message`` returned
    for each of ``messages``: the messages that arrived together (or one page of a catch-up
    read) at once, so a handler that writes them in one transaction pays one round trip per
    batch, not per message. Delivery across restarts is at-least-once: a message whose
    callback returned but whose advance did not happen is delivered again by the next run.

    A handler may also have a ``batch_window`` attribute (seconds, 0 to 1; 0 when absent):
    messages that come within that time after the first of a batch join it, so a steady flow
    is advanced in fewer, larger batches, each at most that much later.

    A handler may also have a ``begin(checkpoint)`` method, called from ``subscribe()`` on a
    first run (:meth:`load` gave ``None``) with where the run starts: the conversation's
    newest message then. Saving it lets a run that ends before it handled anything (a deploy,
    a crash, a lease handover) leave a place for the next run to catch up from; without it,
    the next run starts from its own "now". What ``begin`` raises, ``subscribe()`` raises.

    Attributes:
        key: The checkpoint's name, shown in errors and logs (e.g. ``"bot:inbox"``).
    """

    key: str

    def load(self) -> Checkpoint | None:
        """Where the subscription resumes (``None``: no checkpoint yet, start from now).

        Its ``route`` must be the subscription's (``ChatClient.checkpoint_route``).

        Raises:
            StoreError: The checkpoint could not be read; ``subscribe()`` raises it.
        """
        ...

    def advance(self, messages: Sequence[ConversationChatMessage]) -> None:
        """Record that ``messages`` (in delivery order, at least one) were handled.

        Raises:
            FencedWriteError: Another holder took over: the subscription ends (is cancelled).
            StoreError: Not recorded; told to the subscription's ``on_error``, and delivery
                goes on.
        """
        ...


def check_checkpoint(checkpoint: object) -> None:
    """Refuse a ``checkpoint=`` argument that is neither a key nor a :class:`CheckpointHandler`.

    Raises:
        InvalidArgumentError: A key that is not valid (see :func:`check_key`).
        InvalidArgumentTypeError: Neither a str nor an object with ``key``, ``load`` and
            ``advance``.
    """
    if checkpoint is None:
        return
    if isinstance(checkpoint, str):
        _check_key(checkpoint)
        return
    if not isinstance(checkpoint, CheckpointHandler) or not isinstance(checkpoint.key, str):
        raise InvalidArgumentTypeError(
            "checkpoint must be a key (str), a CheckpointHandler (key, load, advance) or None"
        )


_StoreT = TypeVar("_StoreT", bound="_ClosableStore")


class _ClosableStore:
    """What our stores share: a context manager, and one error once ``close()`` has run."""

    _closed: bool

    def close(self) -> None:
        """Release the store's resources (idempotent)."""
        raise NotImplementedError

    def __enter__(self: _StoreT) -> _StoreT:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _check_open(self) -> None:
        if self._closed:
            raise ClientClosedError("the checkpoint store is closed")


_SCHEMA = """
CREATE TABLE IF NOT EXISTS checkpoints (
    key TEXT PRIMARY KEY NOT NULL,
    body TEXT NOT NULL,
    fencing_token INTEGER,
    saved_at REAL NOT NULL
)
"""


class SqliteCheckpointStore(_ClosableStore):
    """Checkpoints in a local sqlite file: the embedded default.

    Every save is one transaction in WAL mode with ``synchronous=FULL``: a save that returned
    survives a crash of the process (and of the machine), and a crash during a save leaves the
    previous checkpoint, never a torn one. Several processes on one host may share the file
    (sqlite's locking; a writer waits up to ``timeout`` seconds for another).

    Fencing: a save with ``fencing_token`` is refused (:class:`FencedWriteError`) when a save
    with a higher token was already made under that key, so a writer whose lease was taken over
    by a later holder cannot overwrite it. A save without a token is not fenced.

    The file is created readable by its owner only (mode 0600, and sqlite gives its ``-wal``
    and ``-shm`` files the same mode), as are the directories created for it (0700); an
    existing file or directory is left as it is. A file someone else wrote cannot hang a call:
    each statement is cut off after ``timeout`` seconds of work (a trigger that loops, say),
    on top of at most ``timeout`` seconds waiting for a lock, and fails with
    :class:`StoreUnavailableError`. A path is a path, even one that starts with ``file:``
    (never an SQLite URI).

    Args:
        path: The database file (created with its directory if missing), or ``":memory:"``.
        timeout: Seconds to wait for another process's write lock, and the longest a
            statement may run.
    """

    def __init__(self, path: str | os.PathLike[str], *, timeout: float = 5.0) -> None:
        if not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or timeout <= 0:
            raise InvalidArgumentError("timeout must be a positive number of seconds")
        self.path = str(path)
        self._lock = threading.Lock()
        self._closed = False
        self._timeout = float(timeout)
        self._deadline = math.inf
        try:
            name = self.path
            if name != ":memory:":
                _create_private(Path(name))
                if name.startswith("file:"):  # what sqlite would read as a URI
                    name = "./" + name
            # Autocommit mode: transactions are explicit (BEGIN IMMEDIATE) below.
            self._db = sqlite3.connect(
                name, timeout=timeout, isolation_level=None, check_same_thread=False, uri=False
            )
        except (sqlite3.Error, OSError) as exc:
            raise StoreUnavailableError(f"cannot open the checkpoint file {self.path}") from exc
        # Every statement ends by the deadline its caller set (see _bounded).
        self._db.set_progress_handler(self._over_time, 1000)
        try:
            with self._bounded():
                self._db.execute("PRAGMA trusted_schema=OFF")
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=FULL")
                self._db.execute(_SCHEMA)
        except sqlite3.Error as exc:
            self._db.close()  # never leave the connection to the garbage collector
            raise StoreUnavailableError(f"cannot open the checkpoint file {self.path}") from exc

    def __repr__(self) -> str:
        return f"SqliteCheckpointStore({self.path!r})"

    def _over_time(self) -> int:
        """The progress handler: non-zero makes sqlite interrupt the running statement."""
        return 1 if time.monotonic() > self._deadline else 0

    @contextlib.contextmanager
    def _bounded(self) -> Iterator[None]:
        """Statements run meanwhile are interrupted once ``timeout`` seconds of work passed."""
        self._deadline = time.monotonic() + self._timeout
        try:
            yield
        finally:
            self._deadline = math.inf

    def load(self, key: str) -> Checkpoint | None:
        """Return the checkpoint saved under ``key``, or ``None``.

        Raises:
            CorruptCheckpointError: The row is not a checkpoint this library wrote.
            StoreUnavailableError: The file could not be read.
        """
        key = _check_key(key)
        with self._lock:
            self._check_open()
            try:
                with self._bounded():
                    # No more than a body of ours can be: a huge row is refused unread.
                    row = self._db.execute(
                        "SELECT substr(body, 1, ?) FROM checkpoints WHERE key = ?",
                        (_MAX_BODY + 1, key),
                    ).fetchone()
            except sqlite3.Error as exc:
                raise StoreUnavailableError(f"cannot read {self.path}") from exc
        if row is None:
            return None
        if not isinstance(row[0], str):
            raise CorruptCheckpointError(f"the checkpoint under {key!r} is not text", key=key)
        return _decode(key, row[0])

    def save(self, key: str, checkpoint: Checkpoint, *, fencing_token: int | None = None) -> None:
        """Save ``checkpoint`` under ``key`` in one transaction (durable when this returns).

        Raises:
            FencedWriteError: A save with a higher fencing token was made under ``key``.
            StoreUnavailableError: The file could not be written (nothing was saved).
        """
        key = _check_key(key)
        token = _check_token(fencing_token)
        if not isinstance(checkpoint, Checkpoint):
            raise InvalidArgumentError("checkpoint must be a Checkpoint")
        body = _encode(checkpoint)
        with self._lock:
            self._check_open()
            try:
                self._bounded_save(key, body, token)
            except sqlite3.Error as exc:
                raise StoreUnavailableError(f"cannot write {self.path}") from exc

    def _bounded_save(self, key: str, body: str, token: int | None) -> None:
        with self._bounded():
            self._db.execute("BEGIN IMMEDIATE")
            try:
                row = self._db.execute(
                    "SELECT fencing_token FROM checkpoints WHERE key = ?", (key,)
                ).fetchone()
                highest = row[0] if row is not None else None
                if token is not None and isinstance(highest, int) and token < highest:
                    raise FencedWriteError(
                        f"refused: fencing token {token} is older than {highest}, "
                        f"the highest saved under {key!r}",
                        fencing_token=token,
                    )
                kept = token if token is not None else highest
                self._db.execute(
                    "INSERT INTO checkpoints (key, body, fencing_token, saved_at) "
                    "VALUES (?, ?, ?, ?) ON CONFLICT(key) DO UPDATE SET "
                    "body = excluded.body, fencing_token = excluded.fencing_token, "
                    "saved_at = excluded.saved_at",
                    (key, body, kept, time.time()),
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._rollback()  # a failed COMMIT too: never leave the transaction open
                raise

    def _rollback(self) -> None:
        """Roll back the open transaction, if any (an interrupted statement ended it)."""
        self._deadline = math.inf
        with contextlib.suppress(sqlite3.Error):
            self._db.execute("ROLLBACK")

    @contextlib.contextmanager
    def atomic(self, key: str, checkpoint: Checkpoint) -> Iterator[sqlite3.Connection]:
        """Save ``checkpoint`` together with the caller's own writes, in one transaction.

        For a handler that must take effect exactly once across crashes: what it writes
        through the yielded connection and the checkpoint commit together or not at all::

            with store.atomic("bot", Checkpoint.of(msg, route=route)) as db:
                db.execute("INSERT INTO replies (message_id) VALUES (?)", (msg.id,))

        A redelivered message (at-least-once) then finds its own row already written, and the
        checkpoint past it. An exception in the block rolls both back. Other threads' saves to
        this store wait for the block (keep it short). Not fenced.

        Raises:
            StoreUnavailableError: The file could not be written (nothing was saved).
        """
        key = _check_key(key)
        if not isinstance(checkpoint, Checkpoint):
            raise InvalidArgumentError("checkpoint must be a Checkpoint")
        body = _encode(checkpoint)
        with self._lock:
            self._check_open()
            db = self._db
            try:
                with self._bounded():
                    db.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise StoreUnavailableError(f"cannot write {self.path}") from exc
            try:
                yield db  # the caller's own statements: not cut off by our deadline
                with self._bounded():
                    db.execute(
                        "INSERT INTO checkpoints (key, body, fencing_token, saved_at) "
                        "VALUES (?, ?, NULL, ?) ON CONFLICT(key) DO UPDATE SET "
                        "body = excluded.body, saved_at = excluded.saved_at",
                        (key, body, time.time()),
                    )
            except BaseException:
                self._rollback()
                raise
            try:
                with self._bounded():
                    db.execute("COMMIT")
            except sqlite3.Error as exc:
                self._rollback()
                raise StoreUnavailableError(f"cannot write {self.path}") from exc

    def delete(self, key: str) -> None:
        """Forget the checkpoint under ``key`` (and its fencing history)."""
        key = _check_key(key)
        with self._lock:
            self._check_open()
            try:
                with self._bounded():
                    self._db.execute("DELETE FROM checkpoints WHERE key = ?", (key,))
            except sqlite3.Error as exc:
                raise StoreUnavailableError(f"cannot write {self.path}") from exc

    def close(self) -> None:
        """Close the file (idempotent)."""
        with self._lock:
            if not self._closed:
                self._closed = True
                self._db.close()
