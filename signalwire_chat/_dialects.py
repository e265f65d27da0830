"""The wire dialects: what differs between speaking by address and speaking by group.

The public API names addresses; underneath, a client speaks one of two wires (see the wire
dialects guide):

- :class:`GroupWire`, what SignalWire's service and current clients speak: join the group of
  *my address* and the other one (once, then cached), then send and read by ``group_id``;
- :class:`AddressWire`, the older wire of ``@signalwire/js`` 3.28: join, send and read by the
  address's own ``conversation_id``.

Each wire owns its join, its send body, the route (history path and live routing key) of a
target, and its state (my address, the group cache). ``ChatClient`` holds one and never tests
which it is; the routes it makes carry a :class:`~signalwire_chat._route.RouteKind`, and no
other module tests which message field a dialect names its conversations by. A wire holds no client:
every call is given a way to the REST transport (called only when a request is due, so
argument errors come first), and no reference cycle keeps a dropped client alive.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import quote

from . import _fork
from ._convert import structure, structure_join_result, structure_send_result
from ._route import Route
from ._validate import check_address_id, check_address_uuid
from .errors import (
    APIError,
    DecodeError,
    InvalidArgumentError,
    InvalidArgumentTypeError,
    NoAddressError,
    NotFoundError,
    TransportError,
    _led_by,
)
from .models import Group, JoinResult, SendResult, SubscriberInfo

if TYPE_CHECKING:
    from ._http import HttpTransport

#: How a wire reaches the REST side: the client's open transport (raises once it is closed).
Rest = Callable[[], "HttpTransport"]

__all__ = ["DIALECTS", "AddressWire", "GroupWire", "Wire", "history_url", "wire_for"]

#: What the chat methods take: an address id, or a :class:`Group` of the group dialect.
Target = str | Group

_JOIN_PATH = "/api/fabric/conversations/join"
_MESSAGES_PATH = "/api/fabric/messages"


def segment(value: str) -> str:
    """One path segment, always: "/", "?", "#", "%" and ".." can never change the request."""
    return quote(value, safe="")


def history_url(http: HttpTransport, conversation: str | None, page_size: int) -> str:
    """The URL of the first page of a conversation's (or a group's) messages.

    ``page_size`` raw messages to a page; with ``conversation`` None, the messages of every
    conversation of the subscriber (the inbox). Both dialects read ``conversations/{id}``:
    the id is a group's or an address conversation's.
    """
    if conversation is None:
        return http.url_for(_MESSAGES_PATH, {"page_size": page_size})
    return http.url_for(
        f"/api/fabric/conversations/{segment(conversation)}/messages", {"page_size": page_size}
    )


def dumps(payload: Mapping[str, Any]) -> bytes:
    """A request body: compact JSON, UTF-8."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


@contextlib.contextmanager
def asked(action: str) -> Iterator[None]:
    """Errors of the requests a call makes on its own, led by what the caller asked for."""
    try:
        yield
    except (APIError, TransportError, NoAddressError, DecodeError) as exc:
        raise _led_by(action, exc) from exc


class Wire:
    """One dialect of the chat wire; subclasses say how each step is spoken."""

    #: The dialect's name, as ``ChatClient(dialect=...)`` takes it.
    name: ClassVar[str]

    def __init__(self, from_address_id: str | None = None) -> None:
        # "My address": given, or fetched once under its lock.
        self._me = from_address_id
        self._me_lock = threading.Lock()
        _fork.renew_in_child(self)

    def _renew_after_fork(self) -> None:
        """In a forked child: a lock another thread held across the lookup at the fork is freed."""
        self._me_lock = threading.Lock()

    @property
    def known_address_id(self) -> str | None:
        """My address, if given or fetched already (no request)."""
        return self._me

    def my_address_id(self, rest: Rest) -> str:
        """The address this client speaks as: given, else the subscriber's first, fetched once."""
        me = self._me
        if me is not None:
            return me
        with self._me_lock:  # one lookup, whatever the number of threads asking at once
            if self._me is None:
                http = rest()
                info = http.request("GET", http.url_for("/api/fabric/subscriber/info", None))
                addresses = structure(info, SubscriberInfo).fabric_addresses
                if not addresses:
                    raise NoAddressError(
                        "the subscriber has no fabric address to send from; "
                        "pass from_address_id= to ChatClient"
                    )
                self._me = addresses[0].id
            return self._me

    def target(self, target: object, name: str = "address_id") -> Target:
        """Check a chat method's target (nothing is sent): an address id, or a Group."""
        if isinstance(target, Group):
            self._group_target()
            check_address_id(target.id, "group.id")
            if target.from_address_id is not None:
                check_address_id(target.from_address_id, "group.from_address_id")
            return target
        if not isinstance(target, str):
            raise InvalidArgumentTypeError(
                f"{name} must be a str (an address id) or a Group, not {type(target).__name__}"
            )
        return check_address_uuid(target, name)

    def _group_target(self) -> None:
        """A Group may be a target (the group dialect), or not (raise)."""

    def route(
        self, rest: Rest, target: Target, action: str = "cannot read the history of"
    ) -> Route:
        """Where a target's messages live (may look up my address and join its group)."""
        raise NotImplementedError

    def subscribe_route(self, rest: Rest, target: Target) -> Route:
        """The route of a subscription target."""
        return self.route(rest, target, "cannot subscribe to")

    def join(self, rest: Rest, address_id: str) -> JoinResult:
        """Join the conversation with ``address_id`` (a checked address id)."""
        raise NotImplementedError

    def join_group(self, rest: Rest, address_ids: Iterable[str]) -> Group:
        """Join (or create) the group chat of ``address_ids`` and my address."""
        raise InvalidArgumentError("join_group needs dialect='group' (this client speaks address)")

    def send(self, rest: Rest, target: Target, text: str, extras: Mapping[str, Any]) -> SendResult:
        """Send a checked ``text`` (and its checked ``extras``) to ``target``."""
        raise NotImplementedError


class AddressWire(Wire):
    """The address dialect: an address's own conversation, by ``conversation_id``."""

    name = "address"

    def __init__(self, from_address_id: str | None = None) -> None:
        if from_address_id is not None:
            raise InvalidArgumentError("from_address_id is for the group dialect only")
        super().__init__()

    def _group_target(self) -> None:
        raise InvalidArgumentError("a Group needs dialect='group' (this client speaks address)")

    def route(
        self, rest: Rest, target: Target, action: str = "cannot read the history of"
    ) -> Route:
        assert isinstance(target, str)  # target() refuses a Group here
        return Route.address(target)

    def join(self, rest: Rest, address_id: str) -> JoinResult:
        body = dumps({"conversation_id": address_id})
        http = rest()
        return structure_join_result(http.request("POST", http.base_url + _JOIN_PATH, body))

    def send(self, rest: Rest, target: Target, text: str, extras: Mapping[str, Any]) -> SendResult:
        assert isinstance(target, str)
        body = dumps({"conversation_id": target, "text": text, **extras})
        http = rest()
        return structure_send_result(http.request("POST", http.base_url + _MESSAGES_PATH, body))


class _Flight:
    """One join under way; threads that need the same group wait for it instead of joining."""

    __slots__ = ("done", "error", "group_id")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.group_id: str | None = None
        self.error: BaseException | None = None


class GroupWire(Wire):
    """The group dialect: the group of my address and the other, by ``group_id``.

    The group of each address is joined on first use and cached (one join, even when many
    threads need it at once); a send answered 404 forgets it, so the next one joins anew.
    """

    name = "group"

    def __init__(self, from_address_id: str | None = None) -> None:
        if from_address_id is not None:
            from_address_id = check_address_id(from_address_id, "from_address_id")
        super().__init__(from_address_id)
        # address id -> group id, and the joins under way (one per address at a time).
        self._groups: dict[str, str] = {}
        self._flights: dict[str, _Flight] = {}
        self._groups_lock = threading.Lock()

    def _renew_after_fork(self) -> None:
        """In a forked child: the joins the parent's threads had under way never end here.

        Their flights are dropped (a thread of the child would wait on one for ever) and the
        lock is made anew; the groups already joined stay cached.
        """
        super()._renew_after_fork()
        self._groups_lock = threading.Lock()
        self._flights = {}

    @staticmethod
    def _check_not_me(address_id: str, me: str, what: str) -> None:
        if address_id == me:
            raise InvalidArgumentError(
                f"{what} your own address {address_id!r}: the group dialect has no conversation "
                "of one address (the service answers 422); use subscribe_inbox() or "
                "iter_inbox() for everything sent to you"
            )

    @staticmethod
    def _post_join(rest: Rest, me: str, address_ids: list[str]) -> JoinResult:
        body = dumps({"from_fabric_address_id": me, "fabric_address_ids": address_ids})
        # Joining is idempotent (the same set always gives the same group), so it is
        # retried like a GET.
        http = rest()
        answer = http.request("POST", http.base_url + _JOIN_PATH, body, idempotent=True)
        result = structure_join_result(answer)
        if result.group_id is None:
            raise DecodeError("the join answer has no group_id", field="group_id")
        return result

    def _group_for(self, rest: Rest, address_id: str) -> str:
        """The group of my address and ``address_id``: cached, else joined once."""
        group_id = self._groups.get(address_id)  # the steady state: no lock (dict reads are atomic)
        if group_id is not None:
            return group_id
        with self._groups_lock:
            group_id = self._groups.get(address_id)
            if group_id is not None:
                return group_id
            flight = self._flights.get(address_id)
            leader = flight is None
            if flight is None:
                flight = self._flights[address_id] = _Flight()
        if not leader:
            # Bounded by the leader's request, whose timeouts and retries are finite.
            flight.done.wait()
            if flight.error is not None:
                raise flight.error
            assert flight.group_id is not None
            return flight.group_id
        try:
            me = self.my_address_id(rest)
            self._check_not_me(address_id, me, "cannot talk to")
            result = self._post_join(rest, me, [address_id, me])
            assert result.group_id is not None
            flight.group_id = result.group_id
            with self._groups_lock:
                self._groups[address_id] = result.group_id
            return result.group_id
        except BaseException as exc:
            flight.error = exc
            raise
        finally:
            with self._groups_lock:
                self._flights.pop(address_id, None)
            flight.done.set()

    def _forget_group(self, address_id: str, group_id: str) -> None:
        with self._groups_lock:
            if self._groups.get(address_id) == group_id:
                del self._groups[address_id]

    def route(
        self, rest: Rest, target: Target, action: str = "cannot read the history of"
    ) -> Route:
        if isinstance(target, Group):
            return Route.group(target.id)
        with asked(f"{action} {target!r}"):
            return Route.group(self._group_for(rest, target), target)

    def subscribe_route(self, rest: Rest, target: Target) -> Route:
        if isinstance(target, str):
            with asked(f"cannot subscribe to {target!r}"):
                me = self.my_address_id(rest)
            self._check_not_me(target, me, "cannot subscribe to")
        return self.route(rest, target, "cannot subscribe to")

    def join(self, rest: Rest, address_id: str) -> JoinResult:
        with asked(f"cannot join {address_id!r}"):
            me = self.my_address_id(rest)
        self._check_not_me(address_id, me, "cannot join")
        result = self._post_join(rest, me, [address_id, me])
        assert result.group_id is not None
        with self._groups_lock:
            self._groups[address_id] = result.group_id
        return result

    def join_group(self, rest: Rest, address_ids: Iterable[str]) -> Group:
        if isinstance(address_ids, (str, bytes)) or not isinstance(address_ids, Iterable):
            raise InvalidArgumentTypeError("address_ids must be an iterable of address ids")
        ids: list[str] = []
        for index, address_id in enumerate(address_ids):
            address_id = check_address_uuid(address_id, f"address_ids[{index}]")
            if address_id not in ids:
                ids.append(address_id)
        if not ids:
            raise InvalidArgumentError("address_ids must name at least one address")
        me = self.my_address_id(rest)
        others = [address_id for address_id in ids if address_id != me]
        if not others:
            self._check_not_me(me, me, "cannot form a group of only")
        group = self._post_join(rest, me, [*others, me]).group
        assert group is not None
        if group.from_address_id is None:
            group = Group(id=group.id, address_ids=group.address_ids, from_address_id=me)
        return group

    def send(self, rest: Rest, target: Target, text: str, extras: Mapping[str, Any]) -> SendResult:
        with asked(f"cannot send to {target!r}"):
            if isinstance(target, Group):
                group_id, me = target.id, target.from_address_id or self.my_address_id(rest)
            else:
                group_id, me = self._group_for(rest, target), self.my_address_id(rest)
        body = dumps({"group_id": group_id, "from_fabric_address_id": me, "text": text, **extras})
        http = rest()
        try:
            return structure_send_result(http.request("POST", http.base_url + _MESSAGES_PATH, body))
        except NotFoundError:
            if isinstance(target, str):
                self._forget_group(target, group_id)  # joined anew next time
            raise


#: The dialects by name, the default first.
DIALECTS: dict[str, type[Wire]] = {"group": GroupWire, "address": AddressWire}


def wire_for(dialect: str, from_address_id: str | None) -> Wire:
    """The wire of a dialect name (already checked to be one of :data:`DIALECTS`)."""
    return DIALECTS[dialect](from_address_id)
