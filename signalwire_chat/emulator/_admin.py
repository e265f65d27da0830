"""The emulator's helpers for tests and demos: subscribers, tokens, rooms and groups.

Mixed into :class:`~signalwire_chat.emulator.Emulator`. Each helper does what the REST
call of the same purpose does (the same rules, from :mod:`._rest` and the store), for a
Python caller: a refused call raises the builtin a caller expects (``KeyError``,
``PermissionError``, ``ValueError``) instead of answering an HTTP status.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

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
