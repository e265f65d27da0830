"""The emulator's storage: one sqlite3 database, one writer, one transaction per write.

Every public method takes the store's lock, so the store can be used from the event
loop thread and from test threads alike. Objects come back as plain dicts already in
the wire shape of protocol.md (messages, addresses, conversations, subscribers).

Pagination is keyset based: a page is asked for relative to the sort key of a row
(``Cursor``), never by offset, so concurrent inserts never shift a page.

Two dialects share the tables. An address-dialect conversation is keyed by the address
id; a group (the group dialect of protocol-group.md) is a conversation row keyed by its
group id, with ``group_id`` set, its address set in ``group_addresses``, and its members
in ``members`` like any conversation.

Threads. A message's ``conversation_id`` column is its *thread*; ``group_id`` is set when
it was written in the group dialect. A group's thread is its group id, an address
conversation's the address id, and a **room has one thread**, its address id, whichever
dialect wrote to it: a message to the room's group is stored with ``conversation_id`` =
the room's address and ``group_id`` = the room's group. Who joined the room's address
(address dialect) and who joined its group (group dialect) are members of the same
thread, each under their own key.

A message is stored once and shown in the reader's dialect (:func:`render`):

* group dialect: exactly the fields of the official v4 and 0.0.1 message types: ``id,
  type, subtype, kind, hidden, group_id, from_fabric_address_id, from_address_id, ts,
  metadata, details, text, conversation_name, user_name``. ``kind`` and ``text`` may be
  null; there is **no** ``user_id`` (the sender is its address; an address-dialect message
  in a room names its sender's primary address, a message with no sender the room's).
* address dialect: ``id, conversation_id, address_id, user_id, from_address_id, ts,
  details, metadata, type, subtype`` and, when set, ``text`` and ``kind``;
  ``from_address_id`` is null for a message with no sender. Events add ``user_name``,
  ``conversation_name`` and ``hidden``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime, timezone
from typing import Any, Literal

import attrs

__all__ = ["Cursor", "Dialect", "DuplicateNameError", "Page", "Store", "render"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS subscribers (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    reference TEXT NOT NULL UNIQUE,
    first_name TEXT NOT NULL DEFAULT '',
    last_name TEXT NOT NULL DEFAULT '',
    display_name TEXT NOT NULL,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS resources (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    type TEXT NOT NULL,
    name TEXT NOT NULL,
    display_name TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS addresses (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL UNIQUE,
    display_name TEXT NOT NULL,
    type TEXT NOT NULL,
    resource_id TEXT NOT NULL,
    context TEXT NOT NULL,
    subscriber_id TEXT,
    locked INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS conversations (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    address_id TEXT NOT NULL UNIQUE,
    created_at REAL NOT NULL,
    last_message_at REAL NOT NULL,
    last_message_seq INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS members (
    address_id TEXT NOT NULL,
    subscriber_id TEXT NOT NULL,
    joined_at REAL NOT NULL,
    PRIMARY KEY (address_id, subscriber_id)
);
CREATE INDEX IF NOT EXISTS members_by_subscriber ON members (subscriber_id, address_id);
CREATE TABLE IF NOT EXISTS messages (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    conversation_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    from_address_id TEXT,
    ts REAL NOT NULL,
    text TEXT,
    details TEXT NOT NULL,
    metadata TEXT NOT NULL,
    type TEXT NOT NULL,
    subtype TEXT NOT NULL,
    kind TEXT
);
CREATE INDEX IF NOT EXISTS messages_by_conversation ON messages (conversation_id, seq);
CREATE TABLE IF NOT EXISTS group_addresses (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    group_id TEXT NOT NULL,
    address_id TEXT NOT NULL,
    UNIQUE (group_id, address_id)
);
"""

# Columns added for the group dialect; a database written by an older emulator gets them
# on open (ALTER TABLE ... ADD COLUMN keeps its rows).
_ADDED_COLUMNS = {
    "conversations": (
        ("group_id", "TEXT"),
        ("from_address_id", "TEXT"),
        ("name", "TEXT"),
    ),
    "members": (("via_address_id", "TEXT"),),
    "messages": (("group_id", "TEXT"),),
}

# uuid5 namespace of group ids: the same set of addresses always gives the same id.
GROUP_NAMESPACE = uuid.UUID("6f1d2c1e-3b7a-5e0f-9c44-51a7e0c9b8d2")

# A message row with the names a group message carries (sender and conversation names)
# and the type of its thread's address (a room's thread is read by both dialects).
_MESSAGE_SELECT = (
    "SELECT m.*, s.display_name AS sender_name, COALESCE(c.name, t.display_name) AS group_name,"
    " t.type AS thread_type FROM messages m"
    " LEFT JOIN subscribers s ON s.id = m.user_id"
    " LEFT JOIN conversations c ON c.address_id = m.conversation_id"
    " LEFT JOIN addresses t ON t.id = m.conversation_id"
)
#: How a message is shown: as the dialect it was written in, or as one dialect reads it.
Dialect = Literal["group", "address"]


class DuplicateNameError(ValueError):
    """An address with that name already exists."""


def group_id_of(address_ids: Iterable[str], room_id: str | None = None) -> str:
    """Return the deterministic group id of a set of addresses.

    Args:
        address_ids: The addresses (order and duplicates do not matter).
        room_id: The room address in the set, if any: a room has one group whatever
            else is in the set.

    Returns:
        A uuid5 string.
    """
    if room_id is not None:
        return str(uuid.uuid5(GROUP_NAMESPACE, "room:" + room_id))
    return str(uuid.uuid5(GROUP_NAMESPACE, "|".join(sorted(set(address_ids)))))


@attrs.frozen
class Cursor:
    """A position in a keyset-paginated listing.

    Attributes:
        direction: "next" asks for the rows after ``key`` in display order,
            "prev" for the rows just before it.
        key: The sort key of the boundary row, (sort value, seq); exclusive.
    """

    direction: Literal["next", "prev"]
    key: tuple[Any, int]


@attrs.frozen
class Page:
    """One page of rows in display order.

    Attributes:
        items: The objects, in display order.
        first_key: Sort key of the first item (None when empty).
        last_key: Sort key of the last item (None when empty).
        has_next: More rows after the last item.
        has_prev: More rows before the first item.
    """

    items: list[dict[str, Any]]
    first_key: tuple[Any, int] | None
    last_key: tuple[Any, int] | None
    has_next: bool
    has_prev: bool


def iso(ts: float) -> str:
    """Format unix seconds the way the fabric API writes ``created_at`` strings."""
    return datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# Directory answers kept in memory at most (each a few rows): a request's sending checks
# and a publish's audience are read from memory while nothing is written but messages.
_MAX_LOOKUPS = 4096


class _Database:
    """The connection, its schema and transactions, and what every part of the store shares.

    Args:
        path: A file path (created with mode 0600 if missing), or ":memory:" (the default
            of the emulator); a ``file:`` URI goes to sqlite as it is.
    """

    def __init__(self, path: str = ":memory:") -> None:
        self._path = path
        self._lock = threading.RLock()
        # Directory reads answered from memory (see _lookup), and the message row read
        # back by the last insert (see Store.message_views); every write forgets them.
        self._lookups: dict[tuple[str, tuple[Any, ...]], list[sqlite3.Row]] = {}
        self._fresh: tuple[str, sqlite3.Row] | None = None
        if path != ":memory:" and not path.startswith("file:"):
            # It holds the API token, the signing keys and every message: created readable by
            # its owner only (sqlite gives its -wal and -shm files the same mode). An existing
            # file is left as it is; any other failure is sqlite's to report, as before.
            with contextlib.suppress(OSError):
                os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        # isolation_level=None: transactions are explicit (BEGIN IMMEDIATE ... COMMIT).
        self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._conn.row_factory = sqlite3.Row
        if path != ":memory:" and not path.startswith("file::memory:"):
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute("PRAGMA busy_timeout=5000")
        self._conn.executescript(_SCHEMA)
        self._migrate()
        self._closed = False

    def __repr__(self) -> str:
        return f"Store(path={self._path!r})"

    def close(self) -> None:
        """Close the database; idempotent."""
        with self._lock:
            if not self._closed:
                self._closed = True
                self._conn.close()

    def _migrate(self) -> None:
        for table, columns in _ADDED_COLUMNS.items():
            # Table and column names come from the constant above, never from input.
            have = {r["name"] for r in self._conn.execute(f"PRAGMA table_info({table})")}
            for name, kind in columns:
                if name not in have:
                    self._conn.execute(f"ALTER TABLE {table} ADD COLUMN {name} {kind}")
        self._conn.execute(
            "CREATE INDEX IF NOT EXISTS conversations_by_group ON conversations (group_id)"
        )
        # An older emulator kept a room's group messages in a thread of their own (the
        # group id): move them into the room's one thread, keeping their group_id.
        for row in self._conn.execute("SELECT id FROM addresses WHERE type = 'room'").fetchall():
            room_id = str(row["id"])
            self._conn.execute(
                "UPDATE messages SET conversation_id = ? WHERE conversation_id = ?",
                (room_id, group_id_of((), room_id)),
            )

    @contextlib.contextmanager
    def _write(self, *, directory: bool = True) -> Iterator[sqlite3.Connection]:
        """A write transaction; afterwards no read is answered from memory as before it.

        ``directory=False`` is for a transaction that changes none of the tables
        :meth:`_lookup` reads for (subscribers, addresses, members, group_addresses, and
        a group's name): the directory reads it kept stay good.
        """
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            finally:
                # Under the lock, after the body: no read can keep a value from before.
                self._fresh = None
                if directory:
                    self._lookups.clear()
            self._conn.execute("COMMIT")

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    def _lookup(self, sql: str, params: tuple[Any, ...]) -> list[sqlite3.Row]:
        """A directory read, from memory when it was made since the last write.

        Every change to the database goes through :meth:`_write` (this process owns its
        database), which forgets what is kept here, so an answer from memory is the one
        sqlite would give. Rows are immutable; the list is a copy. At most
        ``_MAX_LOOKUPS`` answers are kept (ids in requests are anyone's to choose).
        """
        key = (sql, params)
        with self._lock:
            rows = self._lookups.get(key)
            if rows is None:
                rows = self._conn.execute(sql, params).fetchall()
                if len(self._lookups) >= _MAX_LOOKUPS:
                    self._lookups.clear()
                self._lookups[key] = rows
            return list(rows)

    def setdefault_meta(self, key: str, value: str) -> str:
        """Store ``value`` under ``key`` unless a value is there; return the stored one."""
        with self._write() as conn:
            conn.execute("INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)", (key, value))
            row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return str(row["value"])

    def set_meta(self, key: str, value: str) -> None:
        """Store a setting, replacing any previous value."""
        with self._write() as conn:
            conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    def _page(
        self,
        select: str,
        where: list[str],
        params: list[Any],
        *,
        sort_expr: str,
        seq_expr: str,
        descending: bool,
        page_size: int,
        cursor: Cursor | None,
        convert: Any,
        key_columns: tuple[str, str] | None = None,
    ) -> Page:
        # Every SQL fragment below is a constant of this module; values are bound.
        key_cols = key_columns or (sort_expr, seq_expr)
        after = "<" if descending else ">"
        before = ">" if descending else "<"
        order = "DESC" if descending else "ASC"
        rorder = "ASC" if descending else "DESC"
        key_expr = f"({sort_expr}, {seq_expr})"

        def run(extra: list[str], extra_params: list[Any], ord_: str, limit: int) -> list[Any]:
            clauses = where + extra
            sql = select
            if clauses:
                sql += " WHERE " + " AND ".join(clauses)
            sql += f" ORDER BY {sort_expr} {ord_}, {seq_expr} {ord_} LIMIT ?"
            return self._query(sql, [*params, *extra_params, limit])

        def exists(op: str, key: tuple[Any, int]) -> bool:
            return bool(run([f"{key_expr} {op} (?, ?)"], list(key), order, 1))

        with self._lock:
            if cursor is None or cursor.direction == "next":
                extra = [] if cursor is None else [f"{key_expr} {after} (?, ?)"]
                extra_params = [] if cursor is None else list(cursor.key)
                rows = run(extra, extra_params, order, page_size + 1)
                has_next = len(rows) > page_size
                rows = rows[:page_size]
                keys = [(r[key_cols[0]], r[key_cols[1]]) for r in rows]
                has_prev = cursor is not None and bool(keys) and exists(before, keys[0])
            else:
                rows = run([f"{key_expr} {before} (?, ?)"], list(cursor.key), rorder, page_size + 1)
                has_prev = len(rows) > page_size
                rows = list(reversed(rows[:page_size]))
                keys = [(r[key_cols[0]], r[key_cols[1]]) for r in rows]
                has_next = bool(keys) and exists(after, keys[-1])
        return Page(
            items=[convert(r) for r in rows],
            first_key=keys[0] if keys else None,
            last_key=keys[-1] if keys else None,
            has_next=has_next,
            has_prev=has_prev,
        )

    @staticmethod
    def _ensure_conversation(conn: sqlite3.Connection, address_id: str, now: float) -> None:
        conn.execute(
            "INSERT OR IGNORE INTO conversations (address_id, created_at, last_message_at)"
            " VALUES (?, ?, ?)",
            (address_id, now, now),
        )

    @staticmethod
    def _join(
        conn: sqlite3.Connection,
        address_id: str,
        subscriber_id: str,
        now: float,
        via_address_id: str | None = None,
    ) -> bool:
        cur = conn.execute(
            "INSERT OR IGNORE INTO members (address_id, subscriber_id, joined_at, via_address_id)"
            " VALUES (?, ?, ?, ?)",
            (address_id, subscriber_id, now, via_address_id),
        )
        return cur.rowcount > 0

    @staticmethod
    def _free_name(conn: sqlite3.Connection, base: str) -> str:
        name = base
        n = 1
        while conn.execute("SELECT 1 FROM addresses WHERE name = ?", (name,)).fetchone():
            n += 1
            name = f"{base}-{n}"
        return name


class _Directory(_Database):
    """Subscribers, addresses and rooms, membership, and the groups of the group dialect."""

    def upsert_subscriber(
        self,
        reference: str,
        *,
        now: float,
        display_name: str | None = None,
        first_name: str | None = None,
        last_name: str | None = None,
    ) -> tuple[dict[str, Any], bool]:
        """Return the subscriber with this reference, creating it (and its address) if new.

        Names given for an existing subscriber replace the stored ones.

        Returns:
            The subscriber object (with ``fabric_addresses``) and whether it was created.
        """
        with self._write() as conn:
            row = conn.execute(
                "SELECT * FROM subscribers WHERE reference = ?", (reference,)
            ).fetchone()
            created = row is None
            if row is None:
                sub_id = str(uuid.uuid4())
                first = first_name or ""
                last = last_name or ""
                display = display_name or " ".join(p for p in (first, last) if p) or reference
                conn.execute(
                    "INSERT INTO subscribers (id, reference, first_name, last_name, display_name,"
                    " created_at) VALUES (?, ?, ?, ?, ?, ?)",
                    (sub_id, reference, first, last, display, now),
                )
                address_id = str(uuid.uuid4())
                name = self._free_name(conn, _slug(reference.split("@", 1)[0]) or "subscriber")
                conn.execute(
                    "INSERT INTO addresses (id, name, display_name, type, resource_id,"
                    " context, subscriber_id, created_at)"
                    " VALUES (?, ?, ?, 'subscriber', ?, 'private', ?, ?)",
                    (address_id, name, display, sub_id, sub_id, now),
                )
                self._ensure_conversation(conn, address_id, now)
                self._join(conn, address_id, sub_id, now)
            else:
                sub_id = str(row["id"])
                updates = {
                    k: v
                    for k, v in (
                        ("display_name", display_name),
                        ("first_name", first_name),
                        ("last_name", last_name),
                    )
                    if v is not None
                }
                for column, value in updates.items():
                    # Column names come from the fixed tuple above, never from input.
                    conn.execute(
                        f"UPDATE subscribers SET {column} = ? WHERE id = ?",  # noqa: S608
                        (value, sub_id),
                    )
                if display_name is not None:
                    conn.execute(
                        "UPDATE addresses SET display_name = ? WHERE subscriber_id = ?",
                        (display_name, sub_id),
                    )
        subscriber = self.get_subscriber(sub_id)
        assert subscriber is not None
        return subscriber, created

    def get_subscriber(self, subscriber_id: str) -> dict[str, Any] | None:
        """Return the subscriber object with its ``fabric_addresses``, or None."""
        with self._lock:
            rows = self._lookup("SELECT * FROM subscribers WHERE id = ?", (subscriber_id,))
            if not rows:
                return None
            row = rows[0]
            addresses = self._lookup(
                "SELECT * FROM addresses WHERE subscriber_id = ? ORDER BY seq", (subscriber_id,)
            )
        return {
            "id": row["id"],
            "email": row["reference"],
            "first_name": row["first_name"],
            "last_name": row["last_name"],
            "display_name": row["display_name"],
            "job_title": None,
            "time_zone": None,
            "country": None,
            "region": None,
            "company_name": None,
            "created_at": iso(row["created_at"]),
            "fabric_addresses": [_address(a) for a in addresses],
        }

    def create_room(
        self, name: str, *, now: float, display_name: str | None = None, description: str = ""
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Create a video room resource and its public room address.

        Returns:
            The resource row (as a dict) and the address object.

        Raises:
            DuplicateNameError: an address with that name exists.
        """
        display = display_name or name
        resource_id = str(uuid.uuid4())
        address_id = str(uuid.uuid4())
        with self._write() as conn:
            if conn.execute("SELECT 1 FROM addresses WHERE name = ?", (name,)).fetchone():
                raise DuplicateNameError(f"an address named {name!r} exists")
            conn.execute(
                "INSERT INTO resources (id, type, name, display_name, description, created_at)"
                " VALUES (?, 'video_room', ?, ?, ?, ?)",
                (resource_id, name, display, description, now),
            )
            conn.execute(
                "INSERT INTO addresses (id, name, display_name, type, resource_id, context,"
                " created_at) VALUES (?, ?, ?, 'room', ?, 'public', ?)",
                (address_id, name, display, resource_id, now),
            )
            self._ensure_conversation(conn, address_id, now)
        resource = {
            "id": resource_id,
            "type": "video_room",
            "name": name,
            "display_name": display,
            "description": description,
            "created_at": now,
        }
        address = self.get_address(address_id)
        assert address is not None
        return resource, address

    def get_address(self, address_id: str) -> dict[str, Any] | None:
        """Return the address object, or None."""
        rows = self._lookup("SELECT * FROM addresses WHERE id = ?", (address_id,))
        return _address(rows[0]) if rows else None

    def list_addresses(
        self,
        *,
        page_size: int,
        cursor: Cursor | None,
        type_: str | None = None,
        display_name: str | None = None,
        name: str | None = None,
        sort_by: str = "created_at",
        descending: bool = False,
    ) -> Page:
        """Return one page of addresses, filtered and sorted.

        ``display_name`` matches case-insensitively as a substring; ``name`` and
        ``type_`` match exactly.
        """
        where = []
        params: list[Any] = []
        if type_ is not None:
            where.append("type = ?")
            params.append(type_)
        if name is not None:
            where.append("name = ?")
            params.append(name)
        if display_name is not None:
            where.append("instr(lower(display_name), lower(?)) > 0")
            params.append(display_name)
        sort_expr = {"name": "name", "created_at": "created_at"}[sort_by]
        return self._page(
            "SELECT * FROM addresses",
            where,
            params,
            sort_expr=sort_expr,
            seq_expr="seq",
            descending=descending,
            page_size=page_size,
            cursor=cursor,
            convert=_address,
        )

    def join(self, address_id: str, subscriber_id: str, *, now: float) -> bool:
        """Make a subscriber a member of an address's conversation.

        Returns:
            True if it was not a member before.
        """
        with self._write() as conn:
            self._ensure_conversation(conn, address_id, now)
            return self._join(conn, address_id, subscriber_id, now)

    def may_join(self, address_id: str, subscriber_id: str) -> bool:
        """Tell whether a subscriber may join an address's (address-dialect) conversation.

        A public address (a room) is open to everyone; a private one (a subscriber's own
        address) only to the subscriber that owns it: its conversation is that
        subscriber's inbox, with messages from everyone who wrote to it.
        """
        rows = self._lookup(
            "SELECT context, subscriber_id FROM addresses WHERE id = ?", (address_id,)
        )
        if not rows:
            return False
        return bool(rows[0]["context"] == "public" or rows[0]["subscriber_id"] == subscriber_id)

    def is_member(self, address_id: str, subscriber_id: str) -> bool:
        """Tell whether a subscriber is a member of an address's conversation."""
        return bool(
            self._lookup(
                "SELECT 1 FROM members WHERE address_id = ? AND subscriber_id = ?",
                (address_id, subscriber_id),
            )
        )

    def member_ids(self, address_id: str) -> list[str]:
        """Return the ids of the subscribers in an address's conversation."""
        rows = self._lookup(
            "SELECT subscriber_id FROM members WHERE address_id = ? ORDER BY joined_at",
            (address_id,),
        )
        return [str(r["subscriber_id"]) for r in rows]

    def address_ids_of(self, subscriber_id: str) -> list[str]:
        """Return the ids of a subscriber's own addresses, primary first."""
        rows = self._lookup(
            "SELECT id FROM addresses WHERE subscriber_id = ? ORDER BY seq", (subscriber_id,)
        )
        return [str(r["id"]) for r in rows]

    def join_group(
        self,
        *,
        subscriber_id: str,
        from_address_id: str,
        address_ids: Sequence[str],
        room_id: str | None,
        now: float,
    ) -> dict[str, Any]:
        """Create (or find) the group of a set of addresses and make the caller a member.

        The members are the owners of the set's subscriber addresses and the caller; a
        room's group grows with each join. The caller must have checked that every
        address exists, that ``from_address_id`` is the caller's and is in the set.

        Args:
            subscriber_id: The joining subscriber.
            from_address_id: The caller's address.
            address_ids: The set, in the caller's order, duplicates removed.
            room_id: The room address of the set, if any.
            now: Unix time.

        Returns:
            The group (see :meth:`get_group`).
        """
        group_id = group_id_of(address_ids, room_id)
        with self._write() as conn:
            if not conn.execute(
                "SELECT 1 FROM conversations WHERE address_id = ?", (group_id,)
            ).fetchone():
                names = [self._display_name(conn, a) for a in address_ids]
                name = self._display_name(conn, room_id) if room_id else ", ".join(names)
                conn.execute(
                    "INSERT INTO conversations (address_id, created_at, last_message_at,"
                    " group_id, from_address_id, name) VALUES (?, ?, ?, ?, ?, ?)",
                    (group_id, now, now, group_id, from_address_id, name),
                )
            for address_id in address_ids:
                conn.execute(
                    "INSERT OR IGNORE INTO group_addresses (group_id, address_id) VALUES (?, ?)",
                    (group_id, address_id),
                )
                owner = conn.execute(
                    "SELECT subscriber_id FROM addresses WHERE id = ?", (address_id,)
                ).fetchone()
                if owner is not None and owner["subscriber_id"] is not None:
                    self._join(conn, group_id, str(owner["subscriber_id"]), now, address_id)
            self._join(conn, group_id, subscriber_id, now, from_address_id)
        group = self.get_group(group_id)
        assert group is not None
        return group

    def get_group(self, group_id: str) -> dict[str, Any] | None:
        """Return ``{group_id, name, from_address_id, address_ids}`` of a group, or None."""
        with self._lock:
            rows = self._lookup(
                "SELECT group_id, name, from_address_id FROM conversations"
                " WHERE address_id = ? AND group_id IS NOT NULL",
                (group_id,),
            )
            if not rows:
                return None
            addresses = self._lookup(
                "SELECT address_id FROM group_addresses WHERE group_id = ? ORDER BY seq",
                (group_id,),
            )
        row = rows[0]
        return {
            "group_id": row["group_id"],
            "name": row["name"] or "",
            "from_address_id": row["from_address_id"],
            "address_ids": [str(a["address_id"]) for a in addresses],
        }

    def member_address(self, group_id: str, subscriber_id: str) -> str | None:
        """Return the address through which a subscriber is in a group (None: not a member)."""
        rows = self._lookup(
            "SELECT via_address_id FROM members WHERE address_id = ? AND subscriber_id = ?",
            (group_id, subscriber_id),
        )
        if not rows:
            return None
        return str(rows[0]["via_address_id"] or "") or None

    def pair_group(self, subscriber_id: str, address_id: str) -> str | None:
        """Return the group a subscriber has with an address, or None.

        For a room address that is the room's group, if the subscriber is in it; for
        any other address the group of exactly {that address, one of the subscriber's}.
        """
        with self._lock:
            room = self._query(
                "SELECT 1 FROM addresses WHERE id = ? AND type = 'room'", (address_id,)
            )
            if room:
                group_id = group_id_of((), address_id)
                return group_id if self.is_member(group_id, subscriber_id) else None
            rows = self._query(
                "SELECT ga.group_id AS group_id FROM group_addresses ga"
                " WHERE ga.address_id = ?"
                " AND (SELECT COUNT(*) FROM group_addresses g2"
                "      WHERE g2.group_id = ga.group_id) = 2"
                " AND EXISTS (SELECT 1 FROM group_addresses g3"
                "      JOIN addresses a ON a.id = g3.address_id"
                "      WHERE g3.group_id = ga.group_id AND g3.address_id != ga.address_id"
                "      AND a.subscriber_id = ?)"
                " ORDER BY ga.seq LIMIT 1",
                (address_id, subscriber_id),
            )
        return str(rows[0]["group_id"]) if rows else None

    def thread_of(self, key: str) -> str:
        """Return the thread a conversation key reads: a room's group reads its room's."""
        rows = self._lookup(
            "SELECT ga.address_id AS room_id FROM group_addresses ga"
            " JOIN addresses a ON a.id = ga.address_id"
            " WHERE ga.group_id = ? AND a.type = 'room'",
            (key,),
        )
        return str(rows[0]["room_id"]) if rows else key

    def is_group(self, key: str) -> bool:
        """Tell whether a conversation key names a group."""
        return bool(
            self._lookup(
                "SELECT 1 FROM conversations WHERE address_id = ? AND group_id IS NOT NULL",
                (key,),
            )
        )

    def conversation_name(self, address_id: str) -> str:
        """Return the display name of an address's conversation ("" if unknown)."""
        rows = self._lookup("SELECT display_name FROM addresses WHERE id = ?", (address_id,))
        return str(rows[0]["display_name"]) if rows else ""

    @staticmethod
    def _display_name(conn: sqlite3.Connection, address_id: str) -> str:
        row = conn.execute(
            "SELECT display_name FROM addresses WHERE id = ?", (address_id,)
        ).fetchone()
        return str(row["display_name"]) if row else ""

    def list_conversations(
        self, subscriber_id: str, *, page_size: int, cursor: Cursor | None
    ) -> Page:
        """Return one page of a subscriber's conversations, most recently active first."""
        return self._page(
            "SELECT c.seq AS seq, c.address_id AS address_id, c.created_at AS created_at,"
            " c.last_message_at AS last_message_at, c.last_message_seq AS last_message_seq,"
            " c.group_id AS group_id, m.via_address_id AS via_address_id,"
            " COALESCE(c.name, a.display_name) AS name FROM conversations c"
            " JOIN members m ON m.address_id = c.address_id"
            " LEFT JOIN addresses a ON a.id = c.address_id",
            ["m.subscriber_id = ?"],
            [subscriber_id],
            sort_expr="c.last_message_seq",
            seq_expr="c.seq",
            descending=True,
            page_size=page_size,
            cursor=cursor,
            convert=_conversation,
            key_columns=("last_message_seq", "seq"),
        )


class Store(_Directory):
    """A sqlite3 database holding the emulated space.

    Args:
        path: A file path (created with mode 0600 if missing), or ":memory:" (the default
            of the emulator); a ``file:`` URI goes to sqlite as it is.

    Its parts: the connection and schema (``_Database``); subscribers, addresses, rooms,
    memberships and groups (``_Directory``); and here, the messages.
    """

    def insert_message(
        self,
        *,
        conversation_id: str,
        user_id: str,
        from_address_id: str | None,
        now: float,
        text: str | None = None,
        subtype: str = "chat",
        kind: str | None = None,
        details: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
        join_sender: bool = True,
        group_id: str | None = None,
    ) -> dict[str, Any]:
        """Store a message (and, with ``join_sender``, the sender's membership) atomically.

        ``conversation_id`` is the thread (see the module docstring: a room's address
        id, even for a message to the room's group); ``group_id`` is set for a message
        written in the group dialect and None in the address dialect.

        Returns:
            The message object, as written.
        """
        message_id = str(uuid.uuid4())
        # Only a new member changes what the directory reads (the conversation ensured
        # here is the thread's, not a group's; last_message_* is read by none of it).
        with self._write(directory=False) as conn:
            self._ensure_conversation(conn, conversation_id, now)
            if join_sender and self._join(conn, conversation_id, user_id, now):
                self._lookups.clear()
            cur = conn.execute(
                "INSERT INTO messages (id, conversation_id, user_id, from_address_id, ts, text,"
                " details, metadata, type, subtype, kind, group_id)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'message', ?, ?, ?)",
                (
                    message_id,
                    conversation_id,
                    user_id,
                    from_address_id,
                    now,
                    text,
                    json.dumps(details or {}),
                    json.dumps(metadata or {}),
                    subtype,
                    kind,
                    group_id,
                ),
            )
            # The thread and every conversation reading it (a room's group) got a message.
            room = self._lookup(
                "SELECT 1 FROM addresses WHERE id = ? AND type = 'room'", (conversation_id,)
            )
            conn.execute(
                "UPDATE conversations SET last_message_at = ?, last_message_seq = ?"
                " WHERE address_id IN (?, ?)",
                (
                    now,
                    cur.lastrowid,
                    conversation_id,
                    group_id_of((), conversation_id) if room else conversation_id,
                ),
            )
        # Read back once (its sender's and group's names come from the join), kept for
        # the publish that follows (message_views) until the next write.
        with self._lock:
            row = self._conn.execute(_MESSAGE_SELECT + " WHERE m.id = ?", (message_id,)).fetchone()
            self._fresh = (message_id, row)
        return render(row)

    def get_message(self, message_id: str, dialect: Dialect | None = None) -> dict[str, Any] | None:
        """Return one message object (as written, or as ``dialect`` shows it), or None."""
        rows = self._query(_MESSAGE_SELECT + " WHERE m.id = ?", (message_id,))
        return render(rows[0], dialect) if rows else None

    def message_keys(self, message_id: str) -> tuple[str, str | None, str] | None:
        """Return a message's thread, group (the room's group for a room's) and sender."""
        found = self.message_views(message_id)
        return found[0] if found is not None else None

    def message_views(
        self, message_id: str
    ) -> tuple[tuple[str, str | None, str], Callable[[Dialect | None], dict[str, Any]]] | None:
        """Return a message's keys (see :meth:`message_keys`) and a renderer of its shapes.

        One read for a publish, which needs the keys and one shape per audience.
        """
        with self._lock:
            fresh = self._fresh
            if fresh is not None and fresh[0] == message_id:
                row = fresh[1]
            else:
                rows = self._query(_MESSAGE_SELECT + " WHERE m.id = ?", (message_id,))
                if not rows:
                    return None
                row = rows[0]
        keys = (str(row["conversation_id"]), _group_key(row), str(row["user_id"]))
        return keys, lambda dialect: render(row, dialect)

    def update_message(
        self,
        message_id: str,
        *,
        text: str | None = None,
        metadata: dict[str, Any] | None = None,
        details: dict[str, Any] | None = None,
    ) -> dict[str, Any] | None:
        """Change a stored message's text, metadata or details (None keeps a field).

        Returns:
            The updated message object, or None when there is no such message.
        """
        with self._write() as conn:
            if text is not None:
                conn.execute("UPDATE messages SET text = ? WHERE id = ?", (text, message_id))
            if metadata is not None:
                conn.execute(
                    "UPDATE messages SET metadata = ? WHERE id = ?",
                    (json.dumps(metadata), message_id),
                )
            if details is not None:
                conn.execute(
                    "UPDATE messages SET details = ? WHERE id = ?",
                    (json.dumps(details), message_id),
                )
        return self.get_message(message_id)

    def list_conversation_messages(
        self, key: str, dialect: Dialect, *, page_size: int, cursor: Cursor | None
    ) -> Page:
        """Return one page of the thread ``key`` reads, newest first, in ``dialect``."""
        return self._message_page(
            "m.conversation_id = ?",
            [self.thread_of(key)],
            page_size,
            cursor,
            lambda row: render(row, dialect),
        )

    def list_subscriber_messages(
        self, subscriber_id: str, *, page_size: int, cursor: Cursor | None
    ) -> Page:
        """Return one page of the messages of every thread a subscriber is a member of.

        Each is shown in the group dialect when the subscriber is in its group (a room's
        included), else in the address dialect.
        """
        with self._lock:
            keys = {
                str(r["address_id"])
                for r in self._query(
                    "SELECT address_id FROM members WHERE subscriber_id = ?", (subscriber_id,)
                )
            }
            threads = sorted({self.thread_of(key) for key in keys})

        def convert(row: sqlite3.Row) -> dict[str, Any]:
            return render(row, "group" if _group_key(row) in keys else "address")

        marks = ", ".join("?" * len(threads)) or "NULL"
        return self._message_page(
            f"m.conversation_id IN ({marks})", threads, page_size, cursor, convert
        )

    def _message_page(
        self,
        condition: str,
        values: list[str],
        page_size: int,
        cursor: Cursor | None,
        convert: Callable[[sqlite3.Row], dict[str, Any]],
    ) -> Page:
        # Every message listing is newest first by sequence number; only the filter differs.
        return self._page(
            _MESSAGE_SELECT,
            [condition],
            values,
            sort_expr="m.seq",
            seq_expr="m.seq",
            descending=True,
            page_size=page_size,
            cursor=cursor,
            convert=convert,
            key_columns=("seq", "seq"),
        )

    def all_messages(self, key: str, dialect: Dialect | None = None) -> list[dict[str, Any]]:
        """Return every message of the thread ``key`` reads, oldest first (for assertions).

        Each is shown as written, or as ``dialect`` shows it.
        """
        rows = self._query(
            _MESSAGE_SELECT + " WHERE m.conversation_id = ? ORDER BY m.seq",
            (self.thread_of(key),),
        )
        return [render(r, dialect) for r in rows]


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9._-]+", "-", text.lower()).strip("-")


def _address(row: sqlite3.Row) -> dict[str, Any]:
    base = f"/{row['context']}/{row['name']}"
    return {
        "id": row["id"],
        "name": row["name"],
        "display_name": row["display_name"],
        "type": row["type"],
        "resource_id": row["resource_id"],
        "cover_url": None,
        "preview_url": None,
        "channels": {
            "audio": f"{base}?channel=audio",
            "video": f"{base}?channel=video",
            "messaging": f"{base}?channel=messaging",
        },
        "locked": bool(row["locked"]),
        "created_at": iso(row["created_at"]),
    }


def _group_key(row: sqlite3.Row) -> str | None:
    """The group a stored message is read through: its own, or its room's (None: none)."""
    if row["group_id"] is not None:
        return str(row["group_id"])
    if row["thread_type"] == "room":
        return group_id_of((), row["conversation_id"])
    return None


def render(row: sqlite3.Row, dialect: Dialect | None = None) -> dict[str, Any]:
    """A stored message as ``dialect`` shows it (None: the dialect it was written in).

    A message with no group (a subscriber's inbox) has only the address dialect's shape.
    """
    if dialect is None:
        dialect = "group" if row["group_id"] is not None else "address"
    if dialect == "group" and _group_key(row) is not None:
        return _group_message(row)
    return _address_message(row)


def _address_message(row: sqlite3.Row) -> dict[str, Any]:
    message: dict[str, Any] = {
        "id": row["id"],
        "conversation_id": row["conversation_id"],
        "user_id": row["user_id"],
        "from_address_id": row["from_address_id"],
        "address_id": row["conversation_id"],
        "ts": row["ts"],
        "details": json.loads(row["details"]),
        "metadata": json.loads(row["metadata"]),
        "type": row["type"],
        "subtype": row["subtype"],
    }
    if row["text"] is not None:
        message["text"] = row["text"]
    if row["kind"] is not None:
        message["kind"] = row["kind"]
    return message


def _group_message(row: sqlite3.Row) -> dict[str, Any]:
    """A message in the group dialect's shape: the official types' fields, no more.

    Both sender spellings (v4's and 0.0.1's), and never ``user_id``: neither type has it,
    and a bot that filtered on it would pass here and echo itself against the service.
    """
    # Every group message names a sender address (v4 looks each one up); a message
    # written with none (a system entry in a room) names the room's.
    sender = row["from_address_id"] or row["conversation_id"]
    return {
        "id": row["id"],
        "type": row["type"],
        "subtype": row["subtype"],
        "kind": row["kind"],
        "hidden": False,
        "group_id": _group_key(row),
        "from_fabric_address_id": sender,
        "from_address_id": sender,
        "ts": row["ts"],
        "metadata": json.loads(row["metadata"]),
        "details": json.loads(row["details"]),
        "text": row["text"],
        "conversation_name": row["group_name"] or "",
        "user_name": row["sender_name"] or "System",
    }


def _conversation(row: sqlite3.Row) -> dict[str, Any]:
    if row["group_id"] is not None:
        return {
            "id": row["group_id"],
            "group_id": row["group_id"],
            "from_fabric_address_id": row["via_address_id"],
            "from_address_id": row["via_address_id"],
            "name": row["name"] or "",
            "created_at": int(row["created_at"]),
            "last_message_at": int(row["last_message_at"]),
            "metadata": {},
        }
    return {
        "id": row["address_id"],
        "address_id": row["address_id"],
        "name": row["name"] or "",
        "created_at": int(row["created_at"]),
        "last_message_at": int(row["last_message_at"]),
        "metadata": {},
    }
