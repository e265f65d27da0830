"""Public value types: messages, conversations, addresses, subscriber info and send results.

Every model is an immutable ``attrs`` class built from the wire by the one converter in
``_convert``. Field names are the wire's own. Fields the service adds that this version does
not know are kept, untouched, in ``extra`` (never rejected).

The classes are frozen but not slotted (``slots=False``): attrs then builds an instance by
writing its ``__dict__`` directly instead of calling ``object.__setattr__`` once per field, which
makes decoding a message about a third cheaper, and saves building each class twice at import.
Assigning or deleting an attribute still raises ``attrs.exceptions.FrozenInstanceError``.

How a realtime subscription got a message (:attr:`ConversationMessage.delivery`) is a field
that is never read from the wire (its metadata names no wire key, so a wire key ``delivery``
lands in ``extra`` like any unknown one). The decoder takes it as an argument (the live
path decodes with ``delivery="live"``), and :func:`_delivered` makes a copy that carries it
(catch-up messages, decoded by a REST read first). Equality, hashing, the repr and
``to_dict()`` leave it out: two reads of one message are equal however they arrived.
"""

from __future__ import annotations

import datetime as _dt
import itertools
import operator
from collections.abc import Callable, Iterator, Mapping
from typing import Any, TypeVar

import attrs

__all__ = [
    "Address",
    "AddressChannels",
    "Conversation",
    "ConversationChatMessage",
    "ConversationMessage",
    "Group",
    "JoinResult",
    "SendResult",
    "SubscriberInfo",
]


class _EmptyMapping(Mapping[str, Any]):
    """A read-only empty mapping that pickles (``MappingProxyType`` does not).

    Models travel through multiprocessing queues and caches; this default must not stop
    them. It pickles by reference, so the unpickled default is the same object again.
    """

    __slots__ = ()

    def __getitem__(self, key: str) -> Any:
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0

    def __repr__(self) -> str:
        return "{}"

    def __reduce__(self) -> str:
        return "EMPTY"


#: The shared, read-only empty mapping used as the default of mapping fields.
EMPTY: Mapping[str, Any] = _EmptyMapping()


class _Displayable:
    """Mixin of the public models: ``to_dict()`` and notebook displays.

    ``to_dict`` goes through the one converter; the displays through ``_display``, loaded on
    first display: a program that never shows a model in a notebook never loads it.
    """

    __slots__ = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # IPython's printer takes, walking the MRO, the first class that defines either
        # ``__repr__`` or ``_repr_pretty_``; every model defines its own ``__repr__``, which
        # would hide the one-line display inherited from here. Each model gets it too.
        if "_repr_pretty_" not in cls.__dict__:
            cls._repr_pretty_ = _Displayable._repr_pretty_  # type: ignore[method-assign]

    def to_dict(self) -> dict[str, Any]:
        """This model as a JSON-ready dict, for export and logging.

        The keys are the wire's field names; fields the service sent that this version does
        not know (``extra``) are included as received. ``json.dumps`` accepts the result,
        and structuring it again gives an equal model.
        """
        from ._convert import unstructure

        return unstructure(self)

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        from ._display import pretty

        pretty(self, printer, cycle)

    def _repr_html_(self) -> str:
        from ._display import model_html

        return model_html(self)


def _short_repr(self: Any) -> str:
    """A repr that lists only the fields that differ from their defaults (notebook friendly)."""
    parts = []
    for field in attrs.fields(type(self)):
        if not field.repr:
            continue
        value = getattr(self, field.name)
        # No model uses a Factory default, so field.default is the value itself.
        if field.default is not attrs.NOTHING and value == field.default:
            continue
        parts.append(f"{field.name}={value!r}")
    return f"{type(self).__name__}({', '.join(parts)})"


_C = TypeVar("_C", bound=type)


def _compared(cls: _C, *, hashed: bool = False) -> _C:
    """Give an attrs class (made with ``eq=False``) attrs' own equality, without generating it.

    ``__eq__`` is what attrs generates: ``NotImplemented`` unless both are of the very same
    class, else each field with ``eq=True``, in attrs order, compared with ``==`` until one
    differs. attrs writes and compiles that method for every class at import (about a fifth
    of building a model); here one function serves all of them, with the fields' values
    read with the builtin ``getattr`` over a tuple of names. ``__ne__`` is attrs' too.
    ``hashed``: also attrs' ``__hash__`` of a frozen class (the class and the compared fields'
    values).
    """
    names = tuple(field.name for field in attrs.fields(cls) if field.eq)
    get = operator.attrgetter(*names)
    values: Callable[[Any], tuple[Any, ...]] = get if len(names) > 1 else lambda o: (get(o),)
    equal, repeat = operator.eq, itertools.repeat

    def __eq__(self: Any, other: Any) -> Any:
        if other.__class__ is not self.__class__:
            return NotImplemented
        # Field by field, as far as the first that differs (nothing after it is read).
        mine, theirs = map(getattr, repeat(self), names), map(getattr, repeat(other), names)
        return all(map(equal, mine, theirs))

    def __ne__(self: Any, other: Any) -> Any:
        result = __eq__(self, other)
        if result is NotImplemented:
            return NotImplemented
        return not result

    def __hash__(self: Any) -> int:
        return hash((cls, *values(self)))

    for method in (__eq__, __ne__, __hash__) if hashed else (__eq__, __ne__):
        method.__qualname__ = f"{cls.__qualname__}.{method.__name__}"
        method.__module__ = cls.__module__
        setattr(cls, method.__name__, method)
    return cls


def _listed(cls: _C) -> _C:
    """Give an attrs class (made with ``repr=False``) attrs' own repr, without generating it.

    ``Name(field=value!r, ...)``, every field with ``repr=True`` in attrs order, as attrs
    writes it (its recursion guard aside: for classes whose fields cannot hold themselves).
    """
    names = [field.name for field in attrs.fields(cls) if field.repr]

    def __repr__(self: Any) -> str:
        shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in names)
        return f"{self.__class__.__qualname__.rsplit('>.', 1)[-1]}({shown})"

    __repr__.__qualname__ = f"{cls.__qualname__}.__repr__"
    __repr__.__module__ = cls.__module__
    cls.__repr__ = __repr__  # type: ignore[assignment]
    return cls


def _hash_by_id(self: Any) -> int:
    # Equality compares every field; hashing by (type, id) is consistent with it (equal objects
    # have equal ids) and works although some fields are dicts.
    return hash((type(self), self.id))


def _wire(*keys: str) -> dict[str, tuple[str, ...]]:
    """Field metadata: the wire keys a field is read from, in order of preference.

    The converter takes the first of them present in the object; all of them are known
    keys (none lands in ``extra``). Used where the service spells one field two ways.
    """
    return {"wire_keys": keys}


#: Field metadata of a field the wire never sets (no wire key reads into it).
_NOT_ON_WIRE = _wire()

#: The sender, as the group dialect (``from_fabric_address_id``) or 0.0.1 and the address
#: dialect (``from_address_id``) spell it; the newer spelling wins when both are present.
_SENDER = _wire("from_fabric_address_id", "from_address_id")


def _utc(seconds: float) -> _dt.datetime:
    return _dt.datetime.fromtimestamp(seconds, tz=_dt.timezone.utc)


@_compared
@attrs.frozen(kw_only=True, slots=False, eq=False, repr=False, unsafe_hash=False)
class ConversationMessage(_Displayable):
    """One message of a conversation, of any subtype (``"chat"``, ``"log"``, ...).

    Attributes:
        id: Unique id of the message.
        ts: When it was created, in Unix epoch seconds with a fraction (the wire's float).
        subtype: ``"chat"`` for chat messages; ``"log"`` and others for call events and the like.
        group_id: The group (conversation) it belongs to, in the group dialect (what the
            service speaks today).
        conversation_id: The address id of the conversation it belongs to, in the older
            address dialect (``dialect="address"``); ``None`` in the group dialect.
        type: The message type, ``"message"``.
        user_id: The sending subscriber, when known.
        from_address_id: The sender's address, when known (read from the wire's
            ``from_fabric_address_id``, or from the older spelling ``from_address_id``).
        is_author: On a live message: whether this subscriber sent it (``None`` when the
            wire does not say, as in history pages).
        address_id: An address the service attaches to some messages.
        text: The text (``None`` for most non-chat subtypes).
        details: Extra event details (an empty mapping by default).
        metadata: Metadata sent along with the message, when any.
        kind: A finer classification of non-chat messages, e.g. ``"call_ended"``.
        user_name: The sender's display name (realtime events).
        conversation_name: The conversation's name (realtime events).
        hidden: Whether the message is hidden (realtime events).
        extra: Wire fields this version does not know, kept as received.
        delivery: How a subscription got it, ``"live"`` (a relay event) or ``"catch_up"``
            (read from the history after a (re)connect, because it was sent while the
            connection was down); ``None`` for messages read by a REST call. No wire key
            sets it, and equality ignores it.
    """

    id: str
    ts: float
    subtype: str
    group_id: str | None = None
    conversation_id: str | None = None
    type: str = "message"
    user_id: str | None = None
    from_address_id: str | None = attrs.field(default=None, metadata=_SENDER)
    is_author: bool | None = None
    address_id: str | None = None
    text: str | None = None
    details: Mapping[str, Any] = EMPTY
    metadata: Mapping[str, Any] | None = None
    kind: str | None = None
    user_name: str | None = None
    conversation_name: str | None = None
    hidden: bool | None = None
    extra: Mapping[str, Any] = EMPTY
    delivery: str | None = attrs.field(default=None, eq=False, repr=False, metadata=_NOT_ON_WIRE)

    @property
    def datetime(self) -> _dt.datetime:
        """``ts`` as an aware ``datetime`` in UTC."""
        return _utc(self.ts)

    @property
    def is_chat(self) -> bool:
        """Whether this is a chat message (``subtype == "chat"``)."""
        return self.subtype == "chat"

    def to_dict(self) -> dict[str, Any]:
        """This message as a JSON-ready dict, for export and logging.

        The keys are the wire's field names; fields the service sent that this version does
        not know (``extra``) are included as received. ``json.dumps`` accepts the result,
        and structuring it again gives an equal model. (The dict the converter gives, built
        without it when the values are plain JSON: the Redis bridge makes one per message.)
        """
        from ._convert import message_to_dict

        return message_to_dict(self)

    __repr__ = _short_repr
    __hash__ = _hash_by_id


@_compared
@attrs.frozen(kw_only=True, slots=False, eq=False, repr=False, unsafe_hash=False)
class ConversationChatMessage(ConversationMessage):
    """A chat message: a :class:`ConversationMessage` whose ``subtype`` is ``"chat"``.

    Its ``text`` is always a string.
    """

    text: str  # narrowed: a chat message always has text

    __repr__ = _short_repr
    __hash__ = _hash_by_id


@_compared
@attrs.frozen(kw_only=True, slots=False, eq=False, repr=False, unsafe_hash=False)
class Conversation(_Displayable):
    """A conversation the subscriber belongs to.

    Attributes:
        id: The conversation id (the wire's ``id``, or its ``group_id`` when it has no ``id``,
            as group-dialect listings do).
        group_id: The group, in the group dialect; pass :attr:`group` to the chat methods.
        from_address_id: The subscriber's own address in this conversation (the wire's
            ``from_fabric_address_id``), in the group dialect.
        address_id: The address of the conversation (address dialect).
        name: Its name.
        created_at: Creation time, Unix epoch seconds.
        last_message_at: Time of the last message, Unix epoch seconds.
        metadata: The conversation's metadata.
        extra: Wire fields this version does not know, kept as received.
    """

    id: str = attrs.field(metadata=_wire("id", "group_id"))
    group_id: str | None = None
    from_address_id: str | None = attrs.field(default=None, metadata=_SENDER)
    address_id: str | None = None
    name: str | None = None
    created_at: int | None = None
    last_message_at: int | None = None
    metadata: Mapping[str, Any] = EMPTY
    extra: Mapping[str, Any] = EMPTY

    @property
    def group(self) -> Group | None:
        """The group to pass to ``send_message``, ``get_messages`` or ``subscribe``, if any."""
        if self.group_id is None:
            return None
        return Group(id=self.group_id, from_address_id=self.from_address_id)

    @property
    def last_message_datetime(self) -> _dt.datetime | None:
        """``last_message_at`` as an aware UTC ``datetime``, or ``None``."""
        return None if self.last_message_at is None else _utc(self.last_message_at)

    __repr__ = _short_repr
    __hash__ = _hash_by_id


@_compared
@attrs.frozen(kw_only=True, slots=False, eq=False, repr=False)
class AddressChannels(_Displayable):
    """The channels an address can be reached on (each a resource path, when present).

    Attributes:
        audio: The audio channel.
        video: The video channel.
        messaging: The messaging channel.
        extra: Channels this version does not know, kept as received.
    """

    audio: str | None = None
    video: str | None = None
    messaging: str | None = None
    extra: Mapping[str, Any] = EMPTY

    __repr__ = _short_repr

    def __hash__(self) -> int:
        return hash((self.audio, self.video, self.messaging))


@_compared
@attrs.frozen(kw_only=True, slots=False, eq=False, repr=False, unsafe_hash=False)
class Address(_Displayable):
    """A fabric address: a subscriber, room, app or call target.

    Attributes:
        id: The address id (what chat methods take as ``address_id``).
        name: Its unique name.
        type: ``"app"``, ``"call"``, ``"room"`` or ``"subscriber"``.
        display_name: Its human-readable name.
        resource_id: The resource it points at.
        cover_url: A cover image URL, if any.
        preview_url: A preview image URL, if any.
        channels: Its channels.
        locked: Whether it is locked.
        created_at: Creation time as the wire gives it (an ISO 8601 string).
        extra: Wire fields this version does not know, kept as received.
    """

    id: str
    name: str
    type: str
    display_name: str | None = None
    resource_id: str | None = None
    cover_url: str | None = None
    preview_url: str | None = None
    channels: AddressChannels = AddressChannels()
    locked: bool = False
    created_at: str | None = None
    extra: Mapping[str, Any] = EMPTY

    __repr__ = _short_repr
    __hash__ = _hash_by_id


@_compared
@attrs.frozen(kw_only=True, slots=False, eq=False, repr=False, unsafe_hash=False)
class SubscriberInfo(_Displayable):
    """The subscriber the token belongs to.

    Attributes:
        id: The subscriber id.
        email: Its email, when set.
        first_name: Its first name, when set.
        last_name: Its last name, when set.
        display_name: Its display name, when set.
        job_title: Its job title, when set.
        time_zone: Its time zone, when set.
        country: Its country, when set.
        region: Its region, when set.
        company_name: Its company, when set.
        app_settings: Application settings the service attaches.
        fabric_addresses: The subscriber's own addresses.
        extra: Wire fields this version does not know, kept as received.
    """

    id: str
    email: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    display_name: str | None = None
    job_title: str | None = None
    time_zone: str | None = None
    country: str | None = None
    region: str | None = None
    company_name: str | None = None
    app_settings: Mapping[str, Any] = EMPTY
    fabric_addresses: tuple[Address, ...] = ()
    extra: Mapping[str, Any] = EMPTY

    __repr__ = _short_repr
    __hash__ = _hash_by_id


@_compared
@attrs.frozen(kw_only=True, slots=False, eq=False, repr=False)
class Group:
    """A group conversation of the group dialect: a set of addresses sharing one chat thread.

    ``join_group`` returns one; ``send_message``, ``get_messages``, ``iter_messages`` and
    ``subscribe`` accept it wherever they take an address id. A group id seen elsewhere (a
    conversation listing, a message's ``group_id``) makes one too: ``Group(id=...)``.

    Attributes:
        id: The group id, opaque (the wire's ``group_id``).
        address_ids: The addresses of the group, as the service listed them (may be empty).
        from_address_id: The address this client speaks as in the group, when known.
    """

    id: str
    address_ids: tuple[str, ...] = ()
    from_address_id: str | None = None

    __repr__ = _short_repr

    def __hash__(self) -> int:
        return hash((Group, self.id))


@_compared
@attrs.frozen(kw_only=True, slots=False, eq=False, repr=False, unsafe_hash=False)
class SendResult(_Displayable):
    """What the service answered to ``send_message``.

    The service answers a full message object, ``{"group_id", "text",
    "from_fabric_address_id"}``, or (older) ``{"table": {"conversation_id": ..., "text":
    ...}}``; each is accepted.

    Attributes:
        group_id: The group the message went to (group dialect).
        conversation_id: The conversation the message went to (address dialect).
        text: The text sent, as echoed by the service.
        from_address_id: The sender's address, as echoed by the service.
        message: The full message, when the service returned one.
        extra: Wire fields this version does not know, kept as received.
    """

    group_id: str | None = None
    conversation_id: str | None = None
    text: str | None = None
    from_address_id: str | None = None
    message: ConversationMessage | None = None
    extra: Mapping[str, Any] = EMPTY

    __repr__ = _short_repr

    def __hash__(self) -> int:
        return hash((self.group_id, self.conversation_id, self.text, self.message))


@_compared
@attrs.frozen(kw_only=True, slots=False, eq=False, repr=False, unsafe_hash=False)
class JoinResult(_Displayable):
    """What the service answered to ``join`` / ``join_group``.

    Attributes:
        group_id: The group joined (group dialect).
        address_ids: The group's addresses (the wire's ``fabric_address_ids``).
        from_address_id: The address that joined (the wire's ``from_fabric_address_id``).
        conversation_id: The conversation joined (address dialect).
        extra: Wire fields this version does not know, kept as received.
    """

    group_id: str | None = None
    address_ids: tuple[str, ...] = attrs.field(default=(), metadata=_wire("fabric_address_ids"))
    from_address_id: str | None = attrs.field(default=None, metadata=_SENDER)
    conversation_id: str | None = None
    extra: Mapping[str, Any] = EMPTY

    @property
    def group(self) -> Group | None:
        """The joined group, to pass to the chat methods (``None`` in the address dialect)."""
        if self.group_id is None:
            return None
        return Group(
            id=self.group_id, address_ids=self.address_ids, from_address_id=self.from_address_id
        )

    __repr__ = _short_repr

    def __hash__(self) -> int:
        return hash((self.group_id, self.conversation_id))


#: The values of :attr:`ConversationMessage.delivery` set by subscriptions.
_DELIVERY_LIVE = "live"
_DELIVERY_CATCH_UP = "catch_up"


_M = TypeVar("_M", bound=ConversationMessage)


def _delivered(message: _M, how: str) -> _M:
    """A copy of ``message`` that says how a subscription got it (see the module docstring)."""
    return attrs.evolve(message, delivery=how)
