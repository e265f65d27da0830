"""The emulator's helpers for tests and demos: subscribers, tokens, rooms, groups, messages.

Mixed into :class:`~signalwire_chat.emulator.Emulator`. Each helper does what the REST
call of the same purpose does (the same rules, from :mod:`._rest` and the store), for a
Python caller: a refused call raises the builtin a caller expects (``KeyError``,
``PermissionError``, ``ValueError``) instead of answering an HTTP status.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

import attrs

from ._app import FabricHTTPError
from ._rest import join_group_as, room_of
from ._store import DuplicateNameError, group_id_of

if TYPE_CHECKING:
    from ._app import EmulatorState

__all__ = [
    "SYSTEM_USER_ID",
    "AdminAPI",
    "EmulatorAddress",
    "EmulatorSubscriber",
    "ThreadMessages",
    "subscriber_id_of",
]

SYSTEM_USER_ID = "00000000-0000-0000-0000-000000000000"
#: The most messages :meth:`AdminAPI.send_many` posts in one call on the loop.
_MOST_PER_BATCH = 1000


@attrs.frozen(kw_only=True)
class EmulatorSubscriber:
    """A subscriber created through :meth:`~signalwire_chat.emulator.Emulator.create_subscriber`.

    Attributes:
        id: The subscriber id.
        address_id: The id of the subscriber's own address.
        reference: The reference it was created with (its email).
        display_name: Its display name.
        token: A fresh SAT (not shown in the repr).
        refresh_token: A refresh token (not shown in the repr).
    """

    id: str
    address_id: str
    reference: str
    display_name: str
    token: str = attrs.field(repr=False)
    refresh_token: str = attrs.field(repr=False)


@attrs.frozen(kw_only=True)
class EmulatorAddress:
    """An address created through :meth:`~signalwire_chat.emulator.Emulator.create_room`.

    Attributes:
        id: The address id (also the id of its conversation).
        name: The unique name.
        display_name: The display name.
        type: The address type, "room".
        resource_id: The id of the video room resource behind it.
    """

    id: str
    name: str
    display_name: str
    type: str
    resource_id: str


class ThreadMessages(list[dict[str, Any]]):
    """A list of messages that names its thread.

    What :meth:`~signalwire_chat.emulator.Emulator.messages` returns.

    Attributes:
        thread: The id of the thread read: a room's address id (asked by the room's
            address or by its group's id alike), a group's id, or an address id (that
            address's address-dialect conversation).
        dialect: The dialect the messages are shown in (None: each as it was written;
            a message written in the group dialect has ``group_id``).
    """

    def __init__(self, messages: list[dict[str, Any]], *, thread: str, dialect: str | None) -> None:
        super().__init__(messages)
        self.thread = thread
        self.dialect = dialect

    def __repr__(self) -> str:
        shown = self.dialect or "as written"
        return f"ThreadMessages(thread={self.thread!r}, {shown}, {list.__repr__(self)})"


class AdminAPI:
    """The helpers for tests and demos, mixed into the Emulator.

    What it needs from the emulator: its state (opened on first use) and a way to run a
    call on the loop thread while serving (a message is published to live sessions).
    """

    def _open_state(self) -> EmulatorState:  # pragma: no cover - the Emulator's
        raise NotImplementedError

    def _on_loop(self, fn: Callable[[], Any]) -> Any:  # pragma: no cover - the Emulator's
        raise NotImplementedError

    def create_subscriber(
        self,
        reference: str | None = None,
        *,
        display_name: str | None = None,
        first_name: str | None = None,
        last_name: str | None = None,
        password: str | None = None,
    ) -> EmulatorSubscriber:
        """Create (or fetch) a subscriber and mint it a token, as the tokens endpoint does.

        Args:
            reference: Its reference (an email); a unique one is made up when None.
            display_name: Display name (defaults to first and last name, or the reference).
            first_name: First name.
            last_name: Last name.
            password: Accepted for parity with the REST call; not stored.

        Returns:
            The subscriber, with a fresh token and refresh token.
        """
        del password  # accepted like the REST call does; never stored
        state = self._open_state()
        if reference is None:
            reference = f"subscriber-{uuid.uuid4().hex[:12]}@emulator.test"
        subscriber, _ = state.store.upsert_subscriber(
            reference,
            now=state.clock(),
            display_name=display_name,
            first_name=first_name,
            last_name=last_name,
        )
        token, _ = state.tokens.mint_sat(subscriber["id"], state.project_id)
        refresh, _ = state.tokens.mint_refresh(subscriber["id"], state.project_id)
        return EmulatorSubscriber(
            id=subscriber["id"],
            address_id=subscriber["fabric_addresses"][0]["id"],
            reference=reference,
            display_name=subscriber["display_name"],
            token=token,
            refresh_token=refresh,
        )

    def mint_token(
        self,
        subscriber_id: str | EmulatorSubscriber,
        *,
        ttl: float | None = None,
        expire_at: float | None = None,
    ) -> str:
        """Mint a SAT for an existing subscriber.

        Args:
            subscriber_id: The subscriber (or its id).
            ttl: Lifetime in seconds (``token_ttl`` when None); may be negative for an
                already expired token.
            expire_at: Absolute expiry, unix seconds; wins over ``ttl``.

        Returns:
            The token.

        Raises:
            KeyError: no such subscriber.
        """
        state = self._open_state()
        sub_id = subscriber_id_of(subscriber_id)
        if state.store.get_subscriber(sub_id) is None:
            raise KeyError(f"no subscriber {sub_id!r}")
        token, _ = state.tokens.mint_sat(sub_id, state.project_id, ttl=ttl, expire_at=expire_at)
        return token

    def create_room(self, name: str, *, display_name: str | None = None) -> EmulatorAddress:
        """Create a video room and its room address.

        Args:
            name: Unique address name.
            display_name: Display name (the name when None).

        Returns:
            The room's address.

        Raises:
            ValueError: an address with that name exists.
        """
        state = self._open_state()
        try:
            _resource, address = state.store.create_room(
                name, now=state.clock(), display_name=display_name
            )
        except DuplicateNameError as exc:
            raise ValueError(str(exc)) from None
        return EmulatorAddress(
            id=address["id"],
            name=address["name"],
            display_name=address["display_name"],
            type=address["type"],
            resource_id=address["resource_id"],
        )

    def join(self, subscriber: str | EmulatorSubscriber, address_id: str) -> None:
        """Make a subscriber a member of an address's conversation (like the join call).

        Raises:
            KeyError: no such address.
            PermissionError: the address is another subscriber's own (only its owner
                joins it; see "Membership" in the module docstring).
        """
        state = self._open_state()
        sub_id = subscriber_id_of(subscriber)
        if state.store.get_address(address_id) is None:
            raise KeyError(f"no address {address_id!r}")
        if not state.store.may_join(address_id, sub_id):
            raise PermissionError("only its owner may join a subscriber's own address")
        state.store.join(address_id, sub_id, now=state.clock())

    def group_id_for(self, *address_ids: str) -> str:
        """Return the group id of a set of addresses, as the join call would give it.

        Pure: nothing is created. Order and duplicates do not matter; a set holding a
        room address gives the room's one group.

        Args:
            *address_ids: The addresses of the set (include the caller's own).

        Returns:
            The group id.

        Raises:
            ValueError: fewer than two distinct addresses, or more than one room.
            KeyError: an unknown address.
        """
        ids = list(dict.fromkeys(address_ids))
        if len(ids) < 2:
            raise ValueError("a group needs at least two distinct addresses")
        try:
            room_id = room_of(self._open_state(), ids)
        except FabricHTTPError as exc:
            raise helper_error(exc) from None
        return group_id_of(ids, room_id)

    def join_group(
        self,
        subscriber: str | EmulatorSubscriber,
        address_ids: Sequence[str],
        *,
        from_address_id: str | None = None,
    ) -> str:
        """Join a group as a subscriber, as ``POST /api/fabric/conversations/join`` does.

        Args:
            subscriber: The joining subscriber (or its id).
            address_ids: The other addresses of the group (the from-address is added).
            from_address_id: The subscriber's address to join with; its primary address
                when None.

        Returns:
            The group id (the same for the same set, every time).

        Raises:
            KeyError: an unknown address or subscriber.
            PermissionError: ``from_address_id`` is not the subscriber's.
            ValueError: fewer than two distinct addresses (a self-join), or two rooms.
        """
        if isinstance(address_ids, str):
            raise TypeError("address_ids must be a sequence of ids, not one string")
        state = self._open_state()
        sub_id = subscriber_id_of(subscriber)
        from_id = from_address_id or self._primary_address(sub_id)
        ids = list(dict.fromkeys([*address_ids, from_id]))
        try:
            group = join_group_as(state, sub_id, from_id, ids)
        except FabricHTTPError as exc:
            raise helper_error(exc) from None
        return str(group["group_id"])

    def add_message(
        self,
        target: str,
        *,
        subtype: str = "log",
        kind: str | None = None,
        text: str | None = None,
        user_id: str | None = None,
        details: Mapping[str, Any] | None = None,
        metadata: Mapping[str, Any] | None = None,
        from_address_id: str | None = None,
    ) -> dict[str, Any]:
        """Insert a message into a conversation or group and push it to its members.

        The default ``subtype`` is ``"log"``: a non-chat entry (a call event, say), which
        chat reads and subscriptions skip. For a chat message pass ``subtype="chat"`` and
        ``text``, or use :meth:`send_as`.

        Args:
            target: A group id (the message goes to that group, in the group dialect's
                shape), or an address id (the address-dialect conversation of that
                address). A room's address and its group's id are the same thread: a
                member reading the room in either dialect sees the message.
            subtype: The message subtype; ``"log"`` by default.
            kind: The kind of a non-chat message (e.g. ``"call_started"``).
            text: The text (None for none).
            user_id: The sending subscriber. In an address conversation it joins, as
                when it sends. Without one the message comes from a system user (in a
                group, attributed to the address that created the group: every group
                message names a sender address, which v4 looks up).
            details: The ``details`` object.
            metadata: The ``metadata`` object.
            from_address_id: The sender address of a group message (the sender's
                address in the group, or its primary one, when None).

        Returns:
            The stored message object.

        Raises:
            KeyError: ``target`` is neither a group nor an address.
        """
        post = self._poster(
            target,
            subtype=subtype,
            kind=kind,
            user_id=user_id,
            details=details,
            metadata=metadata,
            from_address_id=from_address_id,
        )
        message: dict[str, Any] = self._on_loop(lambda: post(text))
        return message

    def _poster(
        self,
        target: str,
        *,
        subtype: str,
        kind: str | None,
        user_id: str | None,
        details: Mapping[str, Any] | None,
        metadata: Mapping[str, Any] | None,
        from_address_id: str | None,
    ) -> Callable[[str | None], dict[str, Any]]:
        """Check ``target`` and name the sender once; return ``post(text)`` for the loop."""
        state = self._open_state()
        group_id: str | None = None
        if state.store.is_group(target):
            group_id = target
            if from_address_id is None and user_id is not None:
                from_address_id = state.store.member_address(target, user_id)
            if from_address_id is None:
                # Every group message names a sender address (v4 looks each one up).
                group = state.store.get_group(target)
                assert group is not None
                from_address_id = group["from_address_id"]
        elif state.store.get_address(target) is None:
            raise KeyError(f"no group or address {target!r}")
        author = user_id or SYSTEM_USER_ID
        sender = state.store.get_subscriber(author)

        def post(text: str | None) -> dict[str, Any]:
            return state.post_message(
                conversation_id=target,
                group_id=group_id,
                from_address_id=from_address_id,
                user_id=author,
                text=text,
                subtype=subtype,
                kind=kind,
                details=dict(details) if details is not None else None,
                metadata=dict(metadata) if metadata is not None else None,
                sender=sender,
            )

        return post

    def send_as(
        self,
        subscriber: str | EmulatorSubscriber,
        address_id: str | None,
        text: str,
        *,
        metadata: Mapping[str, Any] | None = None,
        details: Mapping[str, Any] | None = None,
        group_id: str | None = None,
        dialect: Literal["group", "address"] = "group",
    ) -> dict[str, Any]:
        """Send a chat message as a subscriber (what ``POST /api/fabric/messages`` does).

        In the group dialect (the default) the subscriber joins the group of
        ``[address_id, its own address]`` and posts there, as the current official
        clients do; with ``group_id`` it posts to that group directly (``address_id``
        may then be None). With ``dialect="address"`` the message goes to the
        address-dialect conversation of ``address_id`` (the sender joins it).

        Args:
            subscriber: The sender (or its id).
            address_id: The address to message (ignored with ``group_id``).
            text: The text.
            metadata: The ``metadata`` object.
            details: The ``details`` object.
            group_id: A group the subscriber is in, to post to directly.
            dialect: ``"group"`` or ``"address"``.

        Returns:
            The stored message object.

        Raises:
            KeyError: an unknown address, group or subscriber.
            PermissionError: the subscriber is not in the group.
            ValueError: a message to the subscriber's own address in the group dialect,
                or a bad ``dialect``.
        """
        post = self._chat_poster(subscriber, address_id, group_id, dialect, details, metadata)
        message: dict[str, Any] = self._on_loop(lambda: post(text))
        return message

    def send_many(
        self,
        subscriber: str | EmulatorSubscriber,
        address_id: str | None,
        texts: Iterable[str],
        *,
        metadata: Mapping[str, Any] | None = None,
        details: Mapping[str, Any] | None = None,
        group_id: str | None = None,
        dialect: Literal["group", "address"] = "group",
        batch_size: int = 100,
    ) -> list[dict[str, Any]]:
        """Send many chat messages as a subscriber, in order: a burst for a load test.

        Each text becomes the message :meth:`send_as` would send with the same arguments:
        stored, then pushed to every member's live sessions, in the order of ``texts``.
        The target and the sender are checked once, before anything is sent, and the
        messages go to the emulator's loop ``batch_size`` at a time instead of one call
        each; between two batches the loop serves requests and sends the events out.

        Args:
            subscriber: The sender (or its id).
            address_id: The address to message (ignored with ``group_id``).
            texts: The texts, one message each.
            metadata: The ``metadata`` object of every message.
            details: The ``details`` object of every message.
            group_id: A group the subscriber is in, to post to directly.
            dialect: ``"group"`` or ``"address"``.
            batch_size: Messages per call on the loop, 1 to 1,000; a larger batch holds
                the loop (its other clients) longer.

        Returns:
            The stored message objects, in order.

        Raises:
            TypeError: ``texts`` is one string, or holds something else than strings
                (nothing is sent).
            ValueError: ``batch_size`` out of range, or what :meth:`send_as` refuses.
            KeyError: an unknown address, group or subscriber.
            PermissionError: the subscriber is not in the group.
        """
        if isinstance(texts, str):
            raise TypeError("texts must be an iterable of texts, not one string")
        texts = list(texts)
        if not all(isinstance(text, str) for text in texts):
            raise TypeError("every text must be a str")
        if not 1 <= batch_size <= _MOST_PER_BATCH:
            raise ValueError(f"batch_size must be within 1..{_MOST_PER_BATCH}")
        post = self._chat_poster(subscriber, address_id, group_id, dialect, details, metadata)

        def post_batch(batch: list[str]) -> Callable[[], list[dict[str, Any]]]:
            return lambda: [post(text) for text in batch]

        sent: list[dict[str, Any]] = []
        for start in range(0, len(texts), batch_size):
            sent += self._on_loop(post_batch(texts[start : start + batch_size]))
        return sent

    def _chat_poster(
        self,
        subscriber: str | EmulatorSubscriber,
        address_id: str | None,
        group_id: str | None,
        dialect: str,
        details: Mapping[str, Any] | None,
        metadata: Mapping[str, Any] | None,
    ) -> Callable[[str | None], dict[str, Any]]:
        """:meth:`send_as`'s checks, once; return ``post(text)`` for the loop."""
        target, from_id = self._chat_target(subscriber, address_id, group_id, dialect)
        return self._poster(
            target,
            subtype="chat",
            kind=None,
            user_id=subscriber_id_of(subscriber),
            details=details,
            metadata=metadata,
            from_address_id=from_id,
        )

    def _chat_target(
        self,
        subscriber: str | EmulatorSubscriber,
        address_id: str | None,
        group_id: str | None,
        dialect: str,
    ) -> tuple[str, str | None]:
        """Where :meth:`send_as` posts: (group or address id, the sender address or None).

        In the group dialect the subscriber joins the group of ``address_id`` first.
        """
        sub_id = subscriber_id_of(subscriber)
        if dialect == "address" and group_id is None:
            if address_id is None:
                raise ValueError("the address dialect needs an address_id")
            return address_id, None
        if dialect not in ("group", "address"):
            raise ValueError(f"dialect must be 'group' or 'address', not {dialect!r}")
        state = self._open_state()
        if group_id is None:
            if address_id is None:
                raise ValueError("give an address_id or a group_id")
            group_id = self.join_group(sub_id, [address_id])
        elif not state.store.is_group(group_id):
            raise KeyError(f"no group {group_id!r}")
        from_id = state.store.member_address(group_id, sub_id)
        if from_id is None:
            raise PermissionError("the subscriber is not a member of that group")
        return group_id, from_id

    def messages(
        self, target: str, *, dialect: Literal["group", "address"] | None = None
    ) -> ThreadMessages:
        """Return every message of the thread ``target`` reads, oldest first.

        A room has one thread: ``emu.messages(room.id)`` and ``emu.messages(group)``
        for the room's group return the same messages, whichever dialect wrote them,
        and ``.thread`` names the thread read (the room's address id).

        Args:
            target: A group id, a room's address id, or another address id (its
                address-dialect conversation).
            dialect: Show every message as this dialect reads it (``"group"``: no
                ``user_id``; a message in a subscriber's inbox has only the address
                shape); by default each as it was written.

        Returns:
            The messages, as a list that also says which thread it read.
        """
        store = self._open_state().store
        return ThreadMessages(
            store.all_messages(target, dialect),
            thread=store.thread_of(target),
            dialect=dialect,
        )

    def edit_message(
        self,
        message_id: str,
        *,
        text: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Change a stored message and push ``conversation.message.updated`` to its members.

        Args:
            message_id: The message's id.
            text: The new text (None keeps it).
            metadata: The new ``metadata`` (None keeps it).
            details: The new ``details`` (None keeps them).

        Returns:
            The updated message object.

        Raises:
            KeyError: no such message.
        """
        state = self._open_state()

        def edit() -> dict[str, Any]:
            message = state.store.update_message(
                message_id,
                text=text,
                metadata=dict(metadata) if metadata is not None else None,
                details=dict(details) if details is not None else None,
            )
            if message is None:
                raise KeyError(f"no message {message_id!r}")
            state.publish(message_id, event_type="conversation.message.updated")
            return message

        updated: dict[str, Any] = self._on_loop(edit)
        return updated

    def _primary_address(self, subscriber_id: str) -> str:
        ids = self._open_state().store.address_ids_of(subscriber_id)
        if not ids:
            raise KeyError(f"no subscriber {subscriber_id!r} (or it has no address)")
        return ids[0]


def helper_error(exc: FabricHTTPError) -> Exception:
    """Turn the REST rules' error into the builtin a Python caller expects."""
    if exc.status == 404:
        return KeyError(exc.message)
    if exc.status == 403:
        return PermissionError(exc.message)
    return ValueError(exc.message)


def subscriber_id_of(subscriber: str | EmulatorSubscriber) -> str:
    """The id of a subscriber given as itself or as its id."""
    return subscriber.id if isinstance(subscriber, EmulatorSubscriber) else subscriber
