"""The one cattrs converter: wire JSON to models, with strict primitive hooks, built once at import.

cattrs converts primitives by calling the type, so ``"false"`` would become ``True`` and ``1``
would become ``"1"``. Every primitive hook here checks instead: a wire mistake is a
:class:`~signalwire_chat.errors.DecodeError` naming the field, never silent corruption. The one
allowed widening is an int where a float is expected (JSON has a single number type).

Each model class has two decoders, both built lazily, once, on first use (under a lock, so
threads may race to the first message safely), which keeps ``import signalwire_chat`` cheap:

- the *precise* decoder walks the wire object key by key. It keeps the wire fields it does not
  know in the model's ``extra`` mapping (never rejected), names a missing required field and
  gives every error its full field path (``fabric_addresses[0].locked``);
- the *fast* decoder is Python source generated from the class's fields and compiled: one
  ``dict.get`` and one inline exact-type check per field, then a single call of the attrs class.
  It handles the well-formed case only. When any check fails it hands the whole object to the
  precise decoder, which raises the precise error (or, for the int-for-float widening it does not
  inline, simply converts). It therefore accepts exactly what the precise decoder accepts and
  builds an equal model; the unit tests check both on the same inputs.

The converter's hooks for the model classes are registered at import, before any use; they call
the lazily built fast decoders. Read a generated decoder with :func:`decoder_source`.
"""

from __future__ import annotations

import linecache
import threading
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any, TypeVar, Union

import attrs
import cattrs
from cattrs.gen import make_dict_unstructure_fn, override

from ._validate import MAX_JSON_DEPTH, json_depth_exceeds
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
    "decoder",
    "decoder_source",
    "structure",
    "structure_chat_message",
    "structure_join_result",
    "structure_message",
    "structure_send_result",
    "unstructure",
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


#: The range of a float on the wire: every one is a time in Unix seconds (``ts``), and
#: ``datetime`` spans the years 1 to 9999. NaN, infinities and 1e300 are refused here rather
#: than failing later in ``msg.datetime``.
FLOAT_MIN = -62135596800.0
FLOAT_MAX = 253402300799.0


def _ranged_float(value: Any, _type: Any = float) -> float:
    number = _strict_float(value)
    if not FLOAT_MIN <= number <= FLOAT_MAX:  # False for NaN too
        raise DecodeError(f"expected a time in Unix seconds (years 1 to 9999), got {number!r}")
    return number


def _shallow_enough(value: Any) -> None:
    if json_depth_exceeds(value, MAX_JSON_DEPTH):
        raise DecodeError(f"nested deeper than {MAX_JSON_DEPTH} levels")


def _strict_bool(value: Any, _type: Any = bool) -> bool:
    if type(value) is bool:
        return value
    raise _fail("a boolean", value)


# --- field specs, shared by both decoders ----------------------------------------------------

_NEVER = type("_Never", (), {})  # a type no wire value has: always goes through ``convert``


class _FieldSpec:
    """How one wire key becomes one constructor argument."""

    __slots__ = (
        "check",
        "convert",
        "default",
        "exact",
        "keys",
        "kind",
        "name",
        "nested",
        "nullable",
    )

    def __init__(
        self,
        name: str,
        kind: str,
        exact: type,
        nullable: bool,
        convert: Callable[[Any], Any] | None,
        nested: type | None = None,
    ) -> None:
        self.name = name
        self.kind = kind  # "exact", "float", "any", "model" or "tuple"
        self.exact = exact  # a value of exactly this type is taken as is
        self.nullable = nullable  # None is taken as is
        self.convert = convert  # otherwise: converts or raises DecodeError; None = refuse
        self.nested = nested  # the model class of a "model" or "tuple" field
        self.check: Callable[[Any], None] | None = None  # run on a value taken as is
        self.default: Any = attrs.NOTHING  # the attrs default (NOTHING: required)
        self.keys: tuple[str, ...] = (name,)  # the wire keys, first present wins


def _unwrap_optional(tp: Any) -> tuple[Any, bool]:
    if typing.get_origin(tp) in (Union, types.UnionType):  # Optional[X] or X | None
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(tp)) == 2:
            return args[0], True
    return tp, False


def _identity(value: Any) -> Any:
    return value


def _spec_for(name: str, tp: Any) -> _FieldSpec:
    inner, nullable = _unwrap_optional(tp)
    if inner in (str, bool, int):
        return _FieldSpec(name, "exact", inner, nullable, None)
    if inner is float:
        # No exact type: the precise decoder always converts, and so checks the range.
        return _FieldSpec(name, "float", _NEVER, nullable, _ranged_float)
    if inner is Any:
        return _FieldSpec(name, "any", _NEVER, True, _identity)
    origin = typing.get_origin(inner)
    if origin in (Mapping, dict, typing.Mapping, typing.Dict):  # noqa: UP006 - runtime check
        spec = _FieldSpec(name, "exact", dict, nullable, None)
        spec.check = _shallow_enough
        return spec
    if origin is tuple:
        (item_type, _ellipsis) = typing.get_args(inner)
        if item_type is str:
            return _FieldSpec(name, "tuple", _NEVER, nullable, _str_tuple)
        hook = _list_hook(item_type)
        return _FieldSpec(name, "tuple", _NEVER, nullable, hook, nested=item_type)
    if attrs.has(inner):
        return _FieldSpec(name, "model", _NEVER, nullable, _LazySlow(inner), nested=inner)
    raise TypeError(f"no strict hook for field {name!r} of type {tp!r}")  # a bug in models.py


class _LazySlow:
    """The precise decoder of a nested model class, looked up when first needed."""

    __slots__ = ("cls",)

    def __init__(self, cls: type) -> None:
        self.cls = cls

    def __call__(self, value: Any) -> Any:
        return _precise(self.cls)(value)


def _str_tuple(value: Any) -> tuple[str, ...]:
    if type(value) is not list:
        raise _fail("an array", value)
    for index, item in enumerate(value):
        if type(item) is not str:
            raise _fail("a string", item, f"[{index}]")
    return tuple(value)


def _list_hook(item_type: type[T]) -> Callable[[Any], tuple[T, ...]]:
    item = _LazySlow(item_type)

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


def _specs(cls: type) -> dict[str, _FieldSpec]:
    """The wire fields of ``cls`` in attrs order (``extra`` is not one: it collects the rest)."""
    hints = typing.get_type_hints(cls)
    specs: dict[str, _FieldSpec] = {}
    for field in attrs.fields(cls):
        if field.name == "extra":
            continue  # a wire key "extra" is itself an unknown field, kept in extra
        spec = _spec_for(field.name, hints[field.name])
        spec.default = field.default  # no model uses a Factory: the default is the value
        spec.keys = field.metadata.get("wire_keys", spec.keys)
        specs[field.name] = spec
    return specs


# --- the precise decoder ---------------------------------------------------------------------


def _build_precise(cls: type[T]) -> Callable[[Any], T]:
    """The key-by-key decoder: every rule, precise errors; the reference for the fast one."""
    specs = _specs(cls)
    name = cls.__name__

    known = frozenset(key for spec in specs.values() for key in spec.keys)

    def precise(obj: Any) -> T:
        if type(obj) is not dict:
            raise DecodeError(f"{name}: expected an object, got {_describe(obj)}")
        kwargs: dict[str, Any] = {}
        for field, spec in specs.items():
            for key in spec.keys:
                if key in obj:
                    break
            else:
                if spec.default is attrs.NOTHING:
                    raise DecodeError(f"{name}: missing required field {field!r}", field=field)
                continue
            value = obj[key]
            if type(value) is spec.exact or (value is None and spec.nullable):
                if spec.check is not None and value is not None:
                    try:
                        spec.check(value)
                    except DecodeError as exc:
                        raise _nest(exc, key) from None
                kwargs[field] = value
            elif spec.convert is not None:
                try:
                    kwargs[field] = spec.convert(value)
                except DecodeError as exc:
                    raise _nest(exc, key) from None
            else:
                expected = _TYPE_NAMES.get(spec.exact, spec.exact.__name__)
                raise _fail(expected, value, key)
        if not known.issuperset(obj):
            extra = {k: v for k, v in obj.items() if k not in known}
            for key, value in extra.items():
                try:
                    _shallow_enough(value)
                except DecodeError as exc:
                    raise _nest(exc, key) from None
            kwargs["extra"] = extra
        return cls(**kwargs)

    return precise


# --- the fast decoder: generated source ------------------------------------------------------

_MISSING = type("_Missing", (), {"__repr__": lambda _self: "<missing>"})()
_JSON_SCALARS = (type(None), bool, int, float, str)


def _field_lines(spec: _FieldSpec, env: dict[str, Any]) -> list[str]:
    """Source lines binding the local ``f_<name>`` to the checked value of one field.

    Every failed check ends in ``return precise(obj)``: the precise decoder decides.
    """
    key, var = spec.name, f"f_{spec.name}"
    default, kind = spec.default, spec.kind
    lines: list[str] = []
    unless: list[str] = []  # values taken as they are, without the check
    if spec.nullable:
        unless.append(f"{var} is not None")
    if spec.keys != (key,):
        # Read from the first wire key present (a field the service spells two ways).
        first, *rest = spec.keys
        lines.append(f"{var} = get({first!r}, MISSING)")
        for other in rest:
            lines += [f"if {var} is MISSING:", f"    {var} = get({other!r}, MISSING)"]
        lines.append(f"if {var} is MISSING:")
        if default is attrs.NOTHING:
            lines.append("    return precise(obj)")
        else:
            env[f"D_{key}"] = default
            lines.append(f"    {var} = D_{key}")
        lines.append("else:")
        return lines + [f"    {line}" for line in _check_lines(spec, env, unless)]

    # Fetch the value; decide what a missing key means.
    if default is attrs.NOTHING:
        lines.append(f"{var} = get({key!r}, MISSING)")
        if kind not in ("exact", "float"):  # (MISSING fails their type checks anyway)
            lines += [f"if {var} is MISSING:", "    return precise(obj)"]
    elif default is None and (spec.nullable or kind == "any"):
        lines.append(f"{var} = get({key!r})")  # a missing key and null mean the same
    else:
        env[f"D_{key}"] = default
        if not isinstance(default, _JSON_SCALARS):  # no wire value is this very object
            lines.append(f"{var} = get({key!r}, D_{key})")
            unless.append(f"{var} is not D_{key}")
        elif kind == "exact" and type(default) is spec.exact:
            lines.append(f"{var} = get({key!r}, D_{key})")  # the default passes the check
        else:  # a JSON-shaped default the check refuses: tell it apart from a wire value
            lines += [f"{var} = get({key!r}, MISSING)", f"if {var} is MISSING:"]
            lines += [f"    {var} = D_{key}", "else:"]
            return lines + [f"    {line}" for line in _check_lines(spec, env, unless) or ["pass"]]
    return lines + _check_lines(spec, env, unless)


def _check_lines(spec: _FieldSpec, env: dict[str, Any], unless: list[str]) -> list[str]:
    """Source lines checking (or converting) the wire value of one field."""
    var, kind = f"f_{spec.name}", spec.kind
    if kind == "any":
        return []  # every value is taken as is
    if kind == "exact":
        condition = " and ".join([f"type({var}) is not {spec.exact.__name__}", *unless])
        lines = [f"if {condition}:", "    return precise(obj)"]
        if spec.check is not None:  # a non-empty dict: the depth limit (precise names it)
            env["DEEP"] = json_depth_exceeds
            env["MAX_DEPTH"] = MAX_JSON_DEPTH
            deep = f"type({var}) is dict and {var} and DEEP({var}, MAX_DEPTH)"
            lines += [f"if {deep}:", "    return precise(obj)"]
        return lines
    if kind == "float":
        env.update(FLOAT_MIN=FLOAT_MIN, FLOAT_MAX=FLOAT_MAX)
        condition = " and ".join([f"type({var}) is not float", *unless])
        out_of_range = " and ".join([*unless, f"not FLOAT_MIN <= {var} <= FLOAT_MAX"])
        return [
            f"if {condition}:",
            f"    if type({var}) is not int:",
            "        return precise(obj)",
            f"    {var} = float({var})",
            f"if {out_of_range}:",  # NaN fails every comparison, so lands here too
            "    return precise(obj)",
        ]
    nested = spec.nested
    convert = f"C_{spec.name}"
    if nested is None:  # a tuple of strings: the precise hook is as fast as it gets
        assert spec.convert is not None
        env[convert] = spec.convert
    else:
        env[convert] = _LazyFast(nested) if kind == "model" else _tuple_of(nested)
    lines = [
        "try:",
        f"    {var} = {convert}({var})",
        "except DecodeError:",
        "    return precise(obj)",
    ]
    if unless:
        return [f"if {' and '.join(unless)}:", *(f"    {line}" for line in lines)]
    return lines


def _tuple_of(item_type: type) -> Callable[[Any], tuple[Any, ...]]:
    item = _LazyFast(item_type)

    def convert(value: Any) -> tuple[Any, ...]:
        if type(value) is not list:
            raise _fail("an array", value)
        return tuple([item(entry) for entry in value])

    return convert


class _LazyFast:
    """The fast decoder of a nested model class, looked up when first needed."""

    __slots__ = ("cls",)

    def __init__(self, cls: type) -> None:
        self.cls = cls

    def __call__(self, value: Any) -> Any:
        return decoder(self.cls)(value)


def _init_only_stores(cls: type) -> bool:
    """Whether attrs' ``__init__`` of ``cls`` does nothing but store each argument.

    True only for a dict-backed class (not slotted) with no validator, converter, alias,
    ``init=False`` field or pre/post-init hook; then filling ``__dict__`` directly builds
    an instance equal in every way to one made by calling the class.
    """
    if "__slots__" in cls.__dict__:
        return False
    if hasattr(cls, "__attrs_pre_init__") or hasattr(cls, "__attrs_post_init__"):
        return False
    return all(
        f.init and f.validator is None and f.converter is None and f.alias == f.name
        for f in attrs.fields(cls)
    )


def _fast_source(cls: type) -> tuple[str, dict[str, Any]]:
    """The source text of the fast decoder of ``cls`` and the names it uses."""
    specs = _specs(cls)
    env: dict[str, Any] = {
        "MISSING": _MISSING,
        "DecodeError": DecodeError,
        "EMPTY": EMPTY,
        "DEEP": json_depth_exceeds,
        "MAX_DEPTH": MAX_JSON_DEPTH,
    }
    body = ["if type(obj) is not dict:", "    return precise(obj)", "get = obj.get"]
    for spec in specs.values():
        body += _field_lines(spec, env)
    body += [
        "if KNOWN.issuperset(obj):",
        "    extra = EMPTY",
        "else:",
        "    extra = {k: v for k, v in obj.items() if k not in KNOWN}",
        # extra is one level above its values
        "    if DEEP(extra, MAX_DEPTH + 1):",
        "        return precise(obj)",
    ]
    if _init_only_stores(cls) and {f.name for f in attrs.fields(cls)} == {*specs, "extra"}:
        # attrs' __init__ would only store each value (checked above); storing the
        # instance dict in one step costs a third of the call (0.37 against 1.1 us).
        env.update(NEW=object.__new__, SETATTR=object.__setattr__)
        items = [f"    {name!r}: f_{name}," for name in specs]
        body += ["inst = NEW(cls)", "SETATTR(inst, '__dict__', {", *items, "    'extra': extra,"]
        body += ["})", "return inst"]
    else:
        args = [f"    {name}=f_{name}," for name in specs]
        body += ["return cls(", *args, "    extra=extra,", ")"]
    env["KNOWN"] = frozenset(key for spec in specs.values() for key in spec.keys)
    source = f"def decode_{cls.__name__}(obj):\n" + "".join(f"    {line}\n" for line in body)
    return source, env


def _build_fast(cls: type[T], precise: Callable[[Any], T]) -> Callable[[Any], T]:
    source, env = _fast_source(cls)
    env.update(cls=cls, precise=precise)
    filename = f"<signalwire_chat fast decoder {cls.__qualname__}>"
    # Register the text so tracebacks and debuggers show the generated lines.
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    exec(compile(source, filename, "exec"), env)  # noqa: S102 - our own generated source
    return env[f"decode_{cls.__name__}"]  # type: ignore[no-any-return]


# --- lazily built, cached decoders -----------------------------------------------------------

_LOCK = threading.RLock()  # re-entrant: building one decoder may build a nested one
_PRECISE: dict[type, Callable[[Any], Any]] = {}
_FAST: dict[type, Callable[[Any], Any]] = {}


def _precise(cls: type[T]) -> Callable[[Any], T]:
    """The precise decoder of ``cls`` (built on first use)."""
    hook = _PRECISE.get(cls)
    if hook is None:
        with _LOCK:
            hook = _PRECISE.get(cls)
            if hook is None:
                hook = _PRECISE[cls] = _build_precise(cls)
    return hook


def decoder(cls: type[T]) -> Callable[[Any], T]:
    """The function turning a wire object into ``cls`` (built once, on first use).

    The function raises :class:`DecodeError` naming the field when the object is not valid.
    """
    hook = _FAST.get(cls)
    if hook is None:
        with _LOCK:
            hook = _FAST.get(cls)
            if hook is None:
                hook = _FAST[cls] = _build_fast(cls, _precise(cls))
    return hook


def decoder_source(cls: type) -> str:
    """The generated source of the fast decoder of ``cls`` (for reading and debugging)."""
    return _fast_source(cls)[0]


_MODELS = (
    AddressChannels,
    Address,
    ConversationMessage,
    ConversationChatMessage,
    Conversation,
    SubscriberInfo,
    JoinResult,
)


def _make_converter() -> cattrs.Converter:
    conv = cattrs.Converter(detailed_validation=False)
    conv.register_structure_hook(str, _strict_str)
    conv.register_structure_hook(int, _strict_int)
    conv.register_structure_hook(float, _strict_float)
    conv.register_structure_hook(bool, _strict_bool)
    for cls in _MODELS:
        conv.register_structure_hook(cls, lambda obj, model: decoder(model)(obj))
    conv.register_structure_hook(SendResult, lambda obj, _cls: structure_send_result(obj))
    _register_unstructure(conv)
    return conv


def _register_unstructure(conv: cattrs.Converter) -> None:
    """Models to JSON-ready dicts: the wire's field names, ``extra`` merged back in.

    The result structures back into an equal model (``structure(unstructure(m), type(m))``),
    tuples become lists and the read-only mappings plain dicts, so ``json.dumps`` takes it.
    """
    models = frozenset((*_MODELS, SendResult))

    def factory(cls: Any) -> Callable[[Any], dict[str, Any]]:
        # A field read from other wire keys than its name is written under the first of them.
        renames: dict[str, Any] = {
            field.name: override(rename=field.metadata["wire_keys"][0])
            for field in attrs.fields(cls)
            if field.name not in field.metadata.get("wire_keys", (field.name,))
        }
        fields = make_dict_unstructure_fn(cls, conv, **renames)

        def unstructure_model(obj: Any) -> dict[str, Any]:
            out: dict[str, Any] = fields(obj)
            extra = out.pop("extra", None)
            if extra:
                for key, value in extra.items():
                    out.setdefault(key, value)
            return out

        return unstructure_model

    conv.register_unstructure_hook_factory(lambda cls: cls in models, factory)


# --- public entry points ---------------------------------------------------------------------


def structure_message(obj: Any) -> ConversationMessage:
    """Build a message; a ``"chat"`` one is a :class:`ConversationChatMessage`.

    Raises:
        DecodeError: ``obj`` is not a valid message (the error names the field).
    """
    if type(obj) is dict and obj.get("subtype") == "chat":
        return decoder(ConversationChatMessage)(obj)
    return decoder(ConversationMessage)(obj)


def structure_chat_message(obj: Any) -> ConversationChatMessage:
    """Build a chat message (its ``text`` must be a string).

    Raises:
        DecodeError: ``obj`` is not a valid chat message (the error names the field).
    """
    return decoder(ConversationChatMessage)(obj)


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
    """Build a :class:`SendResult` from a message, ``{group_id, text, ...}`` or ``{"table": ...}``.

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
    values: dict[str, str | None] = {}
    for field, keys in _SEND_RESULT_KEYS:
        value = next((inner[key] for key in keys if key in inner), None)
        if value is not None and type(value) is not str:
            raise _fail("a string", value, keys[0])
        values[field] = value
    extra: dict[str, Any] = {}
    if message is None:
        extra = {k: v for k, v in inner.items() if k not in _SEND_RESULT_KNOWN}
    return SendResult(**values, message=message, extra=extra or EMPTY)


_SEND_RESULT_KEYS = (
    ("group_id", ("group_id",)),
    ("conversation_id", ("conversation_id",)),
    ("text", ("text",)),
    ("from_address_id", ("from_fabric_address_id", "from_address_id")),
)
_SEND_RESULT_KNOWN = frozenset(key for _field, keys in _SEND_RESULT_KEYS for key in keys)


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
    return decoder(JoinResult)(inner)


def unstructure(model: Any) -> dict[str, Any]:
    """A model as a JSON-ready dict (the wire's field names; unknown wire fields included)."""
    out: dict[str, Any] = converter.unstructure(model)
    return out


#: The one converter of the package, built once at import. Its hooks are strict.
converter: cattrs.Converter = _make_converter()
