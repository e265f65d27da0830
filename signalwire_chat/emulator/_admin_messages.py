"""The emulator's message helpers for tests and demos: post, send as a subscriber, read, edit.

Mixed into :class:`~signalwire_chat.emulator.Emulator` on top of :class:`~._admin.AdminAPI`
(a group message may first join its sender to the group). Each helper does what the REST
call of the same purpose does, for a Python caller: a refused call raises the builtin a
caller expects (``KeyError``, ``PermissionError``, ``ValueError``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, Literal

from ._admin import SYSTEM_USER_ID, AdminAPI, EmulatorSubscriber, ThreadMessages, subscriber_id_of

__all__ = ["MessageAdmin"]

#: The most messages :meth:`MessageAdmin.send_many` posts in one call on the loop.
_MOST_PER_BATCH = 1000


class MessageAdmin(AdminAPI):
    """The message helpers for tests and demos, mixed into the Emulator."""

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
