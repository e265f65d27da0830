"""The one cattrs converter: wire JSON to models, with strict primitive hooks, built once at import.

cattrs converts primitives by calling the type, so ``"false"`` would become ``True`` and ``1``
would become ``"1"``. Every primitive hook here checks instead: a wire mistake is a
:class:`~signalwire_chat.errors.DecodeError` naming the field, never silent corruption. The one
allowed widening is an int where a float is expected (JSON has a single number type).

Model hooks are generated once per class at import. Each keeps the wire fields it does not know
in the model's ``extra`` mapping (never rejected) and names a missing required field.
"""

from __future__ import annotations

import typing
from collections.abc import Callable, Mapping
from typing import Any, TypeVar, Union

import attrs
import cattrs

from .errors import DecodeError
from .models import (
    EMPTY,
    Address,
    AddressChannels,
    Conversation,
    ConversationChatMessage,
    ConversationMessage,
    JoinResult,
    SendResult,
    SubscriberInfo,
)

__all__ = [
    "converter",
    "is_chat_for",
    "structure",
    "structure_join_result",
    "structure_message",
    "structure_send_result",
]

T = TypeVar("T")

_TYPE_NAMES = {
    str: "a string",
    int: "an integer",
    float: "a number",
    bool: "a boolean",
    dict: "an object",
    list: "an array",
    type(None): "null",
}


def _describe(value: object) -> str:
    return _TYPE_NAMES.get(type(value), type(value).__name__)


def _fail(expected: str, value: object, field: str | None = None) -> DecodeError:
    where = f"field {field!r}: " if field else ""
    return DecodeError(f"{where}expected {expected}, got {_describe(value)}", field=field)


# --- strict primitive hooks (also registered on the converter for direct use) ---------------


def _strict_str(value: Any, _type: Any = str) -> str:
    if type(value) is str:
        return value
    raise _fail("a string", value)


def _strict_int(value: Any, _type: Any = int) -> int:
    if type(value) is int:
        return value
    raise _fail("an integer", value)


def _strict_float(value: Any, _type: Any = float) -> float:
    kind = type(value)
    if kind is float:
        return value  # type: ignore[no-any-return]
    if kind is int:  # JSON has one number type; bool is refused (type(True) is bool)
        return float(value)
    raise _fail("a number", value)


def _strict_bool(value: Any, _type: Any = bool) -> bool:
    if type(value) is bool:
        return value
    raise _fail("a boolean", value)


def _strict_object(value: Any, _type: Any = dict) -> dict[str, Any]:
    if type(value) is dict:
        return value
    raise _fail("an object", value)


# --- model hooks -----------------------------------------------------------------------------

_NEVER = type("_Never", (), {})  # a type no wire value has: forces the slow path


class _FieldSpec:
    """How one wire key becomes one constructor argument."""

    __slots__ = ("convert", "exact", "name", "nullable")

    def __init__(
        self, name: str, exact: type, nullable: bool, convert: Callable[[Any], Any] | None
    ) -> None:
        self.name = name
        self.exact = exact  # a value of exactly this type is taken as is (the fast path)
        self.nullable = nullable  # None is taken as is
        self.convert = convert  # otherwise: converts or raises DecodeError; None = refuse


def _unwrap_optional(tp: Any) -> tuple[Any, bool]:
    if typing.get_origin(tp) is Union:
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(tp)) == 2:
            return args[0], True
    return tp, False


def _spec_for(name: str, tp: Any) -> _FieldSpec:
    inner, nullable = _unwrap_optional(tp)
    if inner is str:
        return _FieldSpec(name, str, nullable, None)
    if inner is bool:
        return _FieldSpec(name, bool, nullable, None)
    if inner is int:
        return _FieldSpec(name, int, nullable, None)
    if inner is float:
        return _FieldSpec(name, float, nullable, _strict_float)
    if inner is Any:
        return _FieldSpec(name, _NEVER, True, lambda v: v)
    origin = typing.get_origin(inner)
    if origin in (Mapping, dict, typing.Mapping, typing.Dict):  # noqa: UP006 - runtime check
        return _FieldSpec(name, dict, nullable, None)
    if origin is tuple:
        (item_type, _ellipsis) = typing.get_args(inner)
        return _FieldSpec(name, _NEVER, nullable, _list_hook(item_type))
    if attrs.has(inner):
        return _FieldSpec(name, _NEVER, nullable, _model_hook(inner))
    raise TypeError(f"no strict hook for field {name!r} of type {tp!r}")  # a bug, at import


def _list_hook(item_type: type[T]) -> Callable[[Any], tuple[T, ...]]:
    item = _model_hook(item_type)

    def convert(value: Any) -> tuple[T, ...]:
        if type(value) is not list:
            raise _fail("an array", value)
        out = []
        for index, entry in enumerate(value):
            try:
                out.append(item(entry))
            except DecodeError as exc:
                raise _nest(exc, f"[{index}]") from None
        return tuple(out)

    return convert


def _nest(exc: DecodeError, prefix: str) -> DecodeError:
    """The same error with ``prefix`` prepended to its field path."""
    if exc.field is None:
        field = prefix.lstrip(".")
        return DecodeError(f"field {field!r}: {exc.message}", field=field)
    sep = "" if exc.field.startswith("[") else "."
    field = f"{prefix}{sep}{exc.field}".lstrip(".")
    message = exc.message.replace(f"field {exc.field!r}", f"field {field!r}", 1)
    return DecodeError(message, field=field)


_HOOKS: dict[type, Callable[[Any], Any]] = {}


def _model_hook(cls: type[T]) -> Callable[[Any], T]:
    """Build (once) the function turning a wire object into ``cls``."""
    cached = _HOOKS.get(cls)
    if cached is not None:
        return cached
    hints = typing.get_type_hints(cls)
    specs: dict[str, _FieldSpec] = {}
    required: list[str] = []
    for field in attrs.fields(cls):  # type: ignore[arg-type]  # every caller passes a model
        if field.name == "extra":
            continue  # a wire key "extra" is itself an unknown field, kept in extra
        specs[field.name] = _spec_for(field.name, hints[field.name])
        if field.default is attrs.NOTHING:
            required.append(field.name)
    name = cls.__name__
    required_tuple = tuple(required)

    def hook(obj: Any) -> T:
        if type(obj) is not dict:
            raise DecodeError(f"{name}: expected an object, got {_describe(obj)}")
        kwargs: dict[str, Any] = {}
        extra: dict[str, Any] | None = None
        for key, value in obj.items():
            spec = specs.get(key)
            if spec is None:
                if extra is None:
                    extra = {}
                extra[key] = value
            elif type(value) is spec.exact or (value is None and spec.nullable):
                kwargs[key] = value
            elif spec.convert is not None:
                try:
                    kwargs[key] = spec.convert(value)
                except DecodeError as exc:
                    raise _nest(exc, key) from None
            else:
                expected = _TYPE_NAMES.get(spec.exact, spec.exact.__name__)
                raise _fail(expected, value, key)
        if len(kwargs) < len(specs):
            for req in required_tuple:
                if req not in kwargs:
                    raise DecodeError(f"{name}: missing required field {req!r}", field=req)
        if extra is not None:
            kwargs["extra"] = extra
        return cls(**kwargs)

    _HOOKS[cls] = hook
    return hook


def _make_converter() -> cattrs.Converter:
    conv = cattrs.Converter(detailed_validation=False)
    conv.register_structure_hook(str, _strict_str)
    conv.register_structure_hook(int, _strict_int)
    conv.register_structure_hook(float, _strict_float)
    conv.register_structure_hook(bool, _strict_bool)
    for cls in (
        AddressChannels,
        Address,
        ConversationMessage,
        ConversationChatMessage,
        Conversation,
        SubscriberInfo,
        JoinResult,
    ):
        model = _model_hook(cls)
        conv.register_structure_hook(cls, lambda obj, _cls, _model=model: _model(obj))
    conv.register_structure_hook(SendResult, lambda obj, _cls: structure_send_result(obj))
    return conv


# --- public entry points ---------------------------------------------------------------------

_message_hook = _model_hook(ConversationMessage)
_chat_hook = _model_hook(ConversationChatMessage)


def structure_message(obj: Any) -> ConversationMessage:
    """Build a message; a ``"chat"`` one is a :class:`ConversationChatMessage`.

    Raises:
        DecodeError: ``obj`` is not a valid message (the error names the field).
    """
    if type(obj) is dict and obj.get("subtype") == "chat":
        return _chat_hook(obj)
    return _message_hook(obj)


def structure_chat_message(obj: Any) -> ConversationChatMessage:
    """Build a chat message (its ``text`` must be a string).

    Raises:
        DecodeError: ``obj`` is not a valid chat message (the error names the field).
    """
    return _chat_hook(obj)


def is_chat_for(obj: Any, address_id: str) -> bool:
    """Whether a raw wire message is a chat message of the conversation ``address_id``."""
    return (
        type(obj) is dict
        and obj.get("subtype") == "chat"
        and obj.get("conversation_id") == address_id
    )


def structure(obj: Any, cls: type[T]) -> T:
    """Structure ``obj`` as ``cls`` with the shared converter.

    Raises:
        DecodeError: ``obj`` does not have the shape of ``cls`` (the error names the field).
    """
    try:
        return converter.structure(obj, cls)
    except DecodeError:
        raise
    except (cattrs.BaseValidationError, ValueError, TypeError, KeyError) as exc:
        raise DecodeError(f"{getattr(cls, '__name__', cls)}: {exc}") from exc


def structure_send_result(obj: Any) -> SendResult:
    """Build a :class:`SendResult` from ``{"table": {...}}`` or from a plain message object.

    Raises:
        DecodeError: ``obj`` is neither shape.
    """
    if type(obj) is not dict:
        raise DecodeError(f"send result: expected an object, got {_describe(obj)}")
    inner = obj.get("table", obj) if len(obj) == 1 else obj
    if type(inner) is not dict:
        raise _fail("an object", inner, "table")
    message: ConversationMessage | None = None
    if "id" in inner and "ts" in inner:
        try:
            message = structure_message(inner)
        except DecodeError as exc:
            raise DecodeError(f"send result: {exc.message}", field=exc.field) from None
    conversation_id = inner.get("conversation_id")
    text = inner.get("text")
    if conversation_id is not None and type(conversation_id) is not str:
        raise _fail("a string", conversation_id, "conversation_id")
    if text is not None and type(text) is not str:
        raise _fail("a string", text, "text")
    extra = {k: v for k, v in inner.items() if k not in ("conversation_id", "text")}
    if message is not None:
        extra = {}
    return SendResult(
        conversation_id=conversation_id, text=text, message=message, extra=extra or EMPTY
    )


def structure_join_result(obj: Any) -> JoinResult:
    """Build a :class:`JoinResult` from ``{"table": {...}}``, a plain object or an empty body.

    Raises:
        DecodeError: ``obj`` has the wrong shape.
    """
    if obj is None or obj == "":
        return JoinResult()
    if type(obj) is not dict:
        raise DecodeError(f"join result: expected an object, got {_describe(obj)}")
    inner = obj.get("table", obj) if len(obj) == 1 else obj
    return _model_hook(JoinResult)(inner)


#: The one converter of the package, built once at import. Its hooks are strict.
converter: cattrs.Converter = _make_converter()
