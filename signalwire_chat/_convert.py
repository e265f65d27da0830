"""The one cattrs converter: wire JSON to models, with strict primitive hooks, built on first use.

cattrs converts primitives by calling the type, so ``"false"`` would become ``True`` and ``1``
would become ``"1"``. Every primitive hook registered here checks instead: a wire mistake is a
:class:`~signalwire_chat.errors.DecodeError` naming the field, never silent corruption. The one
allowed widening is an int where a float is expected (JSON has a single number type); every
float on the wire is a time in Unix seconds, so NaN, infinities and 1e300 are refused too.
Mappings must be objects no deeper than ``MAX_JSON_DEPTH``; arrays must be arrays (cattrs
would iterate a string or an object).

One decoder, one set of rules (issue 17). The hooks registered on the converter are the rules;
the structure hook of every model class comes from one hook factory registered on the same
converter, built lazily, once, on first use (under a lock, so threads may race to the first
message safely), which keeps ``import signalwire_chat`` cheap. Each model's hook has two
paths, both over those hooks:

- the *fast* path is Python source generated from the class's fields and the converter's hook
  of each field's type, then compiled. The instance dict is the wire object laid over the
  defaults (one C-level merge); each field is then checked in place. Each strict hook declares
  a *shortcut* (``_SHORTCUTS``: a test true only of values the hook returns unchanged, such as
  ``type(v) is str``); the test is inlined, and the hook itself is called only when it fails,
  where it converts (an int where a float is expected) or raises. A hook with no shortcut
  (tuples, nested models, one a caller registers) is always called. Unknown wire keys go to
  ``extra``; a field the service spells two ways (``wire_keys`` in the field metadata) is read
  from the first spelling present; a field with no wire key (``delivery``) is never read from
  the wire: the caller passes it;
- the *detailed* path is cattrs' own: the function :func:`cattrs.gen.make_dict_structure_fn`
  generates for the class with detailed validation, calling the same hooks, after a small
  pre-step (unknown keys gathered into ``extra``, the later spelling of a two-way field copied
  to the key cattrs reads). It runs only when the fast path failed (a hook raised, a required
  key is missing, ``extra`` is nested too deep), to build the error: of the errors cattrs
  reports, the first in attrs order becomes our ``DecodeError`` with the field's wire path
  (``fabric_addresses[0].locked``) or names the missing required field.

The unit tests check each shortcut against its hook on hostile values, and the property-based
tests check that both paths give equal models or both fail, on any JSON.

Why not cattrs alone (measured in CPU instructions with valgrind, which do not vary with the
load of a shared machine; ``benchmarks/iter_instructions.py``, figures in BENCHMARKS.md): cattrs'
function without detailed validation, after the same pre-step, costs 36.9k instructions per
message of the ``iter_messages`` bench, the fast path 16.7k (23.6k for the exec generator it
replaced, which kept a rule table of its own beside the hooks). ``iter_messages`` reads 10,000
messages in about 58.5k instructions per message against 60.5k for the requests loop that only
parses JSON (24.2k of each is ``json.loads``); with cattrs' function it would be about 1.3 of
that loop, where the performance issue asks for 0.9. Where cattrs' time goes: one Python call
per field (the hooks), its ``res`` dict, attrs' ``__init__`` with 18 keyword arguments; the
fast path merges the dict in C and tests each field inline, calling no Python function on a
well-formed message without unknown keys.

Read a generated decoder with :func:`decoder_source`, cattrs' with :func:`precise_source`.
"""

from __future__ import annotations

import linecache
import threading
import types
import typing
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar, Union

import attrs
import cattrs
from cattrs.errors import AttributeValidationNote, ClassValidationError
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override

from ._validate import MAX_JSON_DEPTH, json_unfit
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
    "chat_message_decoder",
    "converter",
    "decoder",
    "decoder_source",
    "precise_source",
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


def _nest(exc: DecodeError, prefix: str) -> DecodeError:
    """The same error with ``prefix`` prepended to its field path."""
    if exc.field is None:
        field = prefix.lstrip(".")
        return DecodeError(f"field {field!r}: {exc.message}", field=field)
    sep = "" if exc.field.startswith("[") else "."
    field = f"{prefix}{sep}{exc.field}".lstrip(".")
    message = exc.message.replace(f"field {exc.field!r}", f"field {field!r}", 1)
    return DecodeError(message, field=field)


# --- strict hooks, registered on the converter -------------------------------------------------
#
# cattrs calls each hook with the value and the type. The bodies are kept to one exact-type
# test on the well-formed path: they run for every field of every message.


def _strict_str(value: Any, _type: Any = str) -> str:
    if type(value) is str:
        return value
    raise _fail("a string", value)


def _optional_str(value: Any, _type: Any = None) -> str | None:
    if type(value) is str or value is None:
        return value
    raise _fail("a string", value)


def _strict_int(value: Any, _type: Any = int) -> int:
    if type(value) is int:
        return value
    raise _fail("an integer", value)


def _optional_int(value: Any, _type: Any = None) -> int | None:
    if type(value) is int or value is None:
        return value
    raise _fail("an integer", value)


def _strict_bool(value: Any, _type: Any = bool) -> bool:
    if type(value) is bool:
        return value
    raise _fail("a boolean", value)


def _optional_bool(value: Any, _type: Any = None) -> bool | None:
    if type(value) is bool or value is None:
        return value
    raise _fail("a boolean", value)


#: The range of a float on the wire: every one is a time in Unix seconds (``ts``), and
#: ``datetime`` spans the years 1 to 9999. NaN, infinities and 1e300 are refused here rather
#: than failing later in ``msg.datetime``.
FLOAT_MIN = -62135596800.0
FLOAT_MAX = 253402300799.0


def _strict_float(value: Any, _type: Any = float) -> float:
    kind = type(value)
    if kind is float:
        number: float = value
    elif kind is int:  # JSON has one number type; bool is refused (type(True) is bool)
        try:
            number = float(value)
        except OverflowError:  # an integer of hundreds of digits
            raise DecodeError("expected a time in Unix seconds (years 1 to 9999)") from None
    else:
        raise _fail("a number", value)
    if FLOAT_MIN <= number <= FLOAT_MAX:  # False for NaN too
        return number
    raise DecodeError(f"expected a time in Unix seconds (years 1 to 9999), got {number!r}")


def _optional_float(value: Any, _type: Any = None) -> float | None:
    return None if value is None else _strict_float(value)


def _mapping(value: Any, _type: Any = None) -> Mapping[str, Any]:
    if type(value) is dict:
        unfit = json_unfit(value, MAX_JSON_DEPTH) if value else None
        if unfit is not None:
            raise DecodeError(unfit)
        return value
    raise _fail("an object", value)


def _optional_mapping(value: Any, _type: Any = None) -> Mapping[str, Any] | None:
    return None if value is None else _mapping(value)


def _anything(value: Any, _type: Any = None) -> Any:
    return value


def _str_tuple(value: Any, _type: Any = None) -> tuple[str, ...]:
    if type(value) is not list:
        raise _fail("an array", value)
    for index, item in enumerate(value):
        if type(item) is not str:
            raise _fail("a string", item, f"[{index}]")
    return tuple(value)


def _tuple_of(item_type: Any) -> Callable[[Any, Any], tuple[Any, ...]]:
    """The hook of ``tuple[item_type, ...]``: a JSON array, each item through its hook."""
    if item_type is str:
        return _str_tuple
    item = _converter().get_structure_hook(item_type)

    def structure_tuple(value: Any, _type: Any = None) -> tuple[Any, ...]:
        if type(value) is not list:
            raise _fail("an array", value)
        try:
            return tuple([item(entry, item_type) for entry in value])
        except DecodeError:
            pass
        for index, entry in enumerate(value):  # again, to name the item
            try:
                item(entry, item_type)
            except DecodeError as exc:
                raise _nest(exc, f"[{index}]") from None
        raise AssertionError("unreachable: an item failed once and not again")  # pragma: no cover

    return structure_tuple


def _unwrap_optional(tp: Any) -> tuple[Any, bool]:
    if typing.get_origin(tp) in (Union, types.UnionType):  # Optional[X] or X | None
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(tp)) == 2:
            return args[0], True
    return tp, False


def _is_optional(tp: Any) -> bool:
    return _unwrap_optional(tp)[1]


_OPTIONAL_HOOKS: dict[Any, Callable[[Any, Any], Any]] = {
    str: _optional_str,
    int: _optional_int,
    bool: _optional_bool,
    float: _optional_float,
}


def _optional_hook(tp: Any) -> Callable[[Any, Any], Any]:
    inner, _nullable = _unwrap_optional(tp)
    known = _OPTIONAL_HOOKS.get(inner)
    if known is not None:
        return known
    if _is_mapping(inner):
        return _optional_mapping
    hook = _converter().get_structure_hook(inner)

    def optional(value: Any, _type: Any = None) -> Any:
        return None if value is None else hook(value, inner)

    _SHORTCUTS[optional] = "{v} is None"
    return optional


def _is_mapping(tp: Any) -> bool:
    return typing.get_origin(tp) in (Mapping, dict) or tp in (dict, Mapping)


def _is_tuple(tp: Any) -> bool:
    args = typing.get_args(tp)
    return typing.get_origin(tp) is tuple and len(args) == 2 and args[1] is Ellipsis


def _tuple_hook(tp: Any) -> Callable[[Any, Any], tuple[Any, ...]]:
    return _tuple_of(typing.get_args(tp)[0])


#: Each strict hook's shortcut: a test (``{v}`` stands for the value) true only of values the
#: hook returns unchanged, inlined by the fast path in place of a call. ``"True"``: the hook
#: takes every value as it is. A hook without one is always called. The unit tests check
#: each against its hook on hostile values.
_SHORTCUTS: dict[Callable[..., Any], str] = {
    _strict_str: "type({v}) is str",
    _optional_str: "{v} is None or type({v}) is str",
    _strict_int: "type({v}) is int",
    _optional_int: "{v} is None or type({v}) is int",
    _strict_bool: "type({v}) is bool",
    _optional_bool: "{v} is None or type({v}) is bool",
    # An int is widened by the hook (it is not returned unchanged).
    _strict_float: "type({v}) is float and FLOAT_MIN <= {v} <= FLOAT_MAX",
    _optional_float: "{v} is None or type({v}) is float and FLOAT_MIN <= {v} <= FLOAT_MAX",
    # An empty object (most ``details`` and ``metadata``); the hook checks a full one's depth.
    _mapping: "type({v}) is dict and not {v}",
    _optional_mapping: "{v} is None or type({v}) is dict and not {v}",
    _anything: "True",
}


# --- the decoders of the models ----------------------------------------------------------------

_Decoder = Callable[..., Any]  # (obj) or, as a cattrs hook, (obj, type)


class _Plan:
    """What the pre-step needs to know of one model, and its precise decoder."""

    __slots__ = ("aliases", "cls", "known", "name", "structure", "wire_key")

    def __init__(self, cls: type) -> None:
        self.cls = cls
        self.name = cls.__name__
        overrides: dict[str, Any] = {}
        aliases: list[tuple[str, tuple[str, ...]]] = []
        known: set[str] = set()
        self.wire_key: dict[str, str] = {}  # attribute -> the key cattrs reads it from
        for field in attrs.fields(cls):
            if field.name == "extra":
                # Filled by the pre-step (a wire key "extra" is itself an unknown field).
                overrides["extra"] = override(struct_hook=_anything)
                continue
            keys = _wire_keys(field)
            if not keys:  # never read from the wire (the caller sets it): its default
                overrides[field.name] = override(omit=True)
                continue
            known.update(keys)
            self.wire_key[field.name] = keys[0]
            if keys[0] != field.name:
                overrides[field.name] = override(rename=keys[0])
            if len(keys) > 1:
                aliases.append((keys[0], keys[1:]))
        self.known = frozenset(known)
        self.aliases = tuple(aliases)
        # Detailed validation: cattrs names the attribute of every error (and, measured, its
        # one ``cls(**res)`` call costs less than the ``cls(id=..., **res)`` of the
        # non-detailed function; try blocks cost nothing until something is raised).
        self.structure: Callable[[Any], Any] = make_dict_structure_fn(
            cls,
            _converter(),
            _cattrs_forbid_extra_keys=False,
            _cattrs_detailed_validation=True,
            **overrides,
        )

    def prepare(self, obj: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
        """``obj`` as the generated functions read it, and the wire key of each alias used."""
        used: dict[str, str] = {}
        if not self.known.issuperset(obj):
            obj = _with_extra(obj, self.known)
        for first, others in self.aliases:
            if first not in obj:
                for other in others:
                    if other in obj:
                        obj = {**obj, first: obj[other]}
                        used[first] = other
                        break
        return obj, used

    def precise(self, obj: Any, _type: Any = None) -> Any:
        """Decode with cattrs' detailed validation: the first error gets its field path."""
        if type(obj) is not dict:
            raise DecodeError(f"{self.name}: expected an object, got {_describe(obj)}")
        prepared, used = self.prepare(obj)
        try:
            return self.structure(prepared)
        except ClassValidationError as group:
            raise self.translate(group, used) from None

    def translate(self, group: ClassValidationError, used: dict[str, str]) -> DecodeError:
        first = group.exceptions[0]
        notes = getattr(first, "__notes__", ())
        notes = [note for note in notes if isinstance(note, AttributeValidationNote)]
        if not notes:  # raised by the class itself (a validator, __attrs_post_init__)
            if isinstance(first, DecodeError):
                return first
            return DecodeError(f"{self.name}: {first}")
        attribute = notes[-1].name
        key = self.wire_key[attribute]
        key = used.get(key, key)
        if isinstance(first, DecodeError):
            return _nest(first, key)
        if isinstance(first, KeyError):
            message = f"{self.name}: missing required field {attribute!r}"
            return DecodeError(message, field=attribute)
        return DecodeError(f"field {key!r}: {first}", field=key)  # pragma: no cover


def _with_extra(obj: dict[str, Any], known: frozenset[str]) -> dict[str, Any]:
    """``obj`` with the keys not in ``known`` gathered under ``"extra"`` (checked as JSON)."""
    extra = {k: v for k, v in obj.items() if k not in known}
    for key, value in extra.items():
        unfit = json_unfit(value, MAX_JSON_DEPTH)
        if unfit is not None:
            raise _nest(DecodeError(unfit), key)
    prepared = {k: v for k, v in obj.items() if k in known}
    prepared["extra"] = extra
    return prepared


# --- the fast path: a structure-hook factory over the converter's own hooks ------------------
#
# The function generated for a model class asks the converter for the hook of each field's
# type, so the rules are the hooks'. Where a hook has a shortcut (``_SHORTCUTS``: a test true
# only of values the hook returns unchanged), the test is inlined and the hook is called only
# when it fails: there it converts (an int where a float is expected) or raises, and a raise
# hands the whole object to the detailed path, which names the field.

_MISSING = type("_Missing", (), {"__repr__": lambda _self: "<missing>"})()
_JSON_SCALARS = (type(None), bool, int, float, str)


def _wire_keys(field: attrs.Attribute[Any]) -> tuple[str, ...]:
    """The wire keys a field is read from, first present wins (none: never from the wire)."""
    keys: tuple[str, ...] = field.metadata.get("wire_keys", (field.name,))
    return keys


def _passes(shortcut: str, value: Any) -> bool:
    """Whether ``value`` passes ``shortcut`` (evaluated as the generated code would)."""
    env = {"FLOAT_MIN": FLOAT_MIN, "FLOAT_MAX": FLOAT_MAX, "v": value}
    return bool(eval(shortcut.format(v="v"), env))  # noqa: S307 - our own shortcut text


class _Fallback(Exception):
    """Raised in a generated decoder: hand the object to the detailed path."""


def _field_lines(
    field: attrs.Attribute[Any],
    hook: Callable[[Any, Any], Any],
    env: dict[str, Any],
    popped: dict[str, str],
) -> list[str]:
    """Source lines checking, in the instance dict ``d``, the value of one field.

    ``d`` starts as the wire object over the defaults (``MISSING`` for a required field);
    ``popped`` names the local holding each wire key that names no field (taken out of d).
    """
    name, default = field.name, field.default
    keys, required = _wire_keys(field), default is attrs.NOTHING
    env[f"H_{name}"], env[f"T_{name}"] = hook, field.type
    if not required:
        env[f"D_{name}"] = default
    shortcut = _SHORTCUTS.get(hook)
    fail = f"not ({shortcut.format(v='v')})" if shortcut and shortcut != "True" else None
    if keys == (name,):  # the wire key is the field's name: d holds its value
        return _own_key_lines(name, default, required, shortcut, fail)
    return _other_key_lines(name, keys, required, shortcut, fail, popped)


def _own_key_lines(
    name: str, default: Any, required: bool, shortcut: str | None, fail: str | None
) -> list[str]:
    """:func:`_field_lines` of a field read from the wire key of its own name."""
    call = f"H_{name}(v, T_{name})"
    lines = [f"v = d[{name!r}]"]
    if shortcut == "True":  # the hook takes every value as it is
        return [*lines, "if v is MISSING:", "    raise FALLBACK"] if required else lines
    store = f"d[{name!r}] = {call}"
    if required:
        if fail:  # a missing key fails the shortcut too: tested only then
            lines += [f"if {fail}:", "    if v is MISSING:", "        raise FALLBACK"]
            return [*lines, f"    {store}"]
        return [*lines, "if v is MISSING:", "    raise FALLBACK", store]
    if not isinstance(default, _JSON_SCALARS):  # no wire value is this very object
        condition = f"v is not D_{name}" + (f" and {fail}" if fail else "")
    elif fail and shortcut and _passes(shortcut, default):  # the default needs no hook
        condition = fail
    else:  # a wire value may equal the default: check the one from the wire
        condition = (f"{fail} and " if fail else "") + f"{name!r} in obj"
    return [*lines, f"if {condition}:", f"    {store}"]


def _other_key_lines(
    name: str,
    keys: tuple[str, ...],
    required: bool,
    shortcut: str | None,
    fail: str | None,
    popped: dict[str, str],
) -> list[str]:
    """:func:`_field_lines` of a field read from other wire keys (the first one present).

    The service spells some fields two ways, or names them otherwise; a key that names no
    field has left the instance dict (``popped``).
    """
    call = f"H_{name}(v, T_{name})"
    sources = [popped.get(key, f"get({key!r}, MISSING)") for key in keys]
    lines = [f"v = {sources[0]}"]
    for source in sources[1:]:
        lines += ["if v is MISSING:", f"    v = {source}"]
    if required:
        if shortcut == "True":
            lines += ["if v is MISSING:", "    raise FALLBACK"]
        elif fail:
            lines += [f"if {fail}:", "    if v is MISSING:", "        raise FALLBACK"]
            lines.append(f"    v = {call}")
        else:
            lines += ["if v is MISSING:", "    raise FALLBACK", f"v = {call}"]
    else:
        lines += ["if v is MISSING:", f"    v = D_{name}"]
        if shortcut != "True":
            lines += [f"elif {fail}:" if fail else "else:", f"    v = {call}"]
    return [*lines, f"d[{name!r}] = v"]


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


def _popped_keys(names: frozenset[str], known: frozenset[str]) -> dict[str, str]:
    """The wire keys that name no field, each with the local that holds its value."""
    return {key: f"a{index}" for index, key in enumerate(sorted(known - names))}


def _instance_dict_lines(names: frozenset[str], known: frozenset[str]) -> list[str]:
    """The start of a fast decoder: the instance dict, and unknown keys moved to extra.

    The instance dict is the wire object over the defaults, built in C; every field is then
    checked (and converted) in place. The keys that name no field (a second spelling) are
    taken out first; then the dict has one key per field unless the object has unknown keys
    (a count, or a key named like a field the wire never sets: cheaper than a test of every
    key), which are moved to extra. A class without ``extra`` drops them, as cattrs does.
    """
    body = ["d = {**DEFAULTS, **obj}"]
    body += [
        f"{local} = d.pop({key!r}, MISSING)" for key, local in _popped_keys(names, known).items()
    ]
    shadowed = " or ".join(f"{name!r} in obj" for name in sorted(names - known))
    body += [
        f"if len(d) != {len(names)}{' or ' + shadowed if shadowed else ''}:",
        "    extra = {k: obj[k] for k in obj if k not in KNOWN}",
        "    if DEEP(extra, MAX_DEPTH + 1):",  # extra is one level above its values
        "        raise FALLBACK",
        "    for k in extra:",
        "        if k in DEFAULTS:",  # named like a field the wire never sets
        "            d[k] = DEFAULTS[k]",
        "        else:",
        "            del d[k]",
    ]
    if "extra" in names:
        body.append("    d['extra'] = extra")
    return body


def _closing_lines(cls: type, local: list[Any], env: dict[str, Any]) -> list[str]:
    """The end of a fast decoder: the fields the caller sets, then the instance."""
    body: list[str] = []
    for field in local:
        env[f"L_{field.name}"] = field.default
        body += [f"if {field.name} is not L_{field.name}:", f"    d[{field.name!r}] = {field.name}"]
    if _init_only_stores(cls):
        # attrs' __init__ would only store each value (checked above): the checked dict
        # becomes the instance's own, in one step.
        env.update(NEW=object.__new__, SETATTR=object.__setattr__)
        return [*body, "inst = NEW(cls)", "SETATTR(inst, '__dict__', d)", "return inst"]
    return [*body, "return cls(**d)"]


def _decoder_env(
    fields: Any, local: list[Any], known: frozenset[str]
) -> tuple[dict[str, Any], str]:
    """The names a fast decoder uses, and its way back to the detailed path."""
    defaults = {f.name: _MISSING if f.default is attrs.NOTHING else f.default for f in fields}
    env: dict[str, Any] = {
        "MISSING": _MISSING,
        "DecodeError": DecodeError,
        "FALLBACK": _Fallback,
        "DEEP": json_unfit,
        "MAX_DEPTH": MAX_JSON_DEPTH,
        "FLOAT_MIN": FLOAT_MIN,
        "FLOAT_MAX": FLOAT_MAX,
        "KNOWN": known,
        "DEFAULTS": defaults,
    }
    back = "detailed(obj)"  # the detailed path: the result, or the error naming the field
    if local:
        env["EVOLVE"] = attrs.evolve
        back = f"EVOLVE(detailed(obj), {', '.join(f'{f.name}={f.name}' for f in local)})"
    return env, back


def _fast_source(cls: type, conv: cattrs.Converter) -> tuple[str, dict[str, Any]]:
    """The source text of the fast decoder of ``cls`` and the names it uses."""
    hints = typing.get_type_hints(cls)
    fields = attrs.fields(cls)
    wire = [f for f in fields if f.name != "extra" and _wire_keys(f)]
    local = [f for f in fields if f.name != "extra" and not _wire_keys(f)]  # set by the caller
    names = frozenset(f.name for f in fields)
    known = frozenset(key for field in wire for key in _wire_keys(field))
    env, back = _decoder_env(fields, local, known)
    body = _instance_dict_lines(names, known)
    popped = _popped_keys(names, known)
    for field in wire:
        hook = conv.get_structure_hook(hints[field.name])
        body += _field_lines(field, hook, env, popped)
    if any("get(" in line for line in body):  # a second spelling that names a field
        body.insert(0, "get = obj.get")
    body += _closing_lines(cls, local, env)
    params = "".join(f", {f.name}=L_{f.name}" for f in local)
    lines = [
        f"def decode_{cls.__name__}(obj, _type=None{', *' + params if params else ''}):",
        "    if type(obj) is not dict:",
        f"        return {back}",
        "    try:",
        *(f"        {line}" for line in body),
        # Raised by a hook, or a key missing: the detailed path (out of the try) names it.
        "    except (DecodeError, FALLBACK):",
        "        pass",
        f"    return {back}",
    ]
    return "".join(f"{line}\n" for line in lines), env


def _generated(source: str, what: str, name: str, env: dict[str, Any]) -> Callable[..., Any]:
    """The function ``name`` that our own generated ``source`` defines, run in ``env``."""
    filename = f"<signalwire_chat {what}>"
    # Register the text so tracebacks and debuggers show the generated lines.
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    exec(compile(source, filename, "exec"), env)  # noqa: S102 - our own generated source
    function: Callable[..., Any] = env[name]
    return function


def _build_fast(cls: type[T], detailed: Callable[[Any], T]) -> Callable[..., T]:
    source, env = _fast_source(cls, _converter())
    env.update(cls=cls, detailed=detailed)
    return _generated(source, f"fast decoder {cls.__qualname__}", f"decode_{cls.__name__}", env)


# --- lazily built, cached decoders -------------------------------------------------------------

_LOCK = threading.RLock()  # re-entrant: building one decoder builds the nested ones
_PLANS: dict[type, _Plan] = {}
_FAST: dict[type, _Decoder] = {}


def _plan(cls: type) -> _Plan:
    plan = _PLANS.get(cls)
    if plan is None:
        with _LOCK:
            plan = _PLANS.get(cls)
            if plan is None:
                plan = _PLANS[cls] = _Plan(cls)
    return plan


def _precise(cls: type[T]) -> Callable[[Any], T]:
    """The detailed path of ``cls`` alone (cattrs' detailed validation; built on first use)."""
    return _plan(cls).precise


def decoder(cls: type[T]) -> Callable[..., T]:
    """The function turning a wire object into ``cls`` (built once, on first use).

    The function raises :class:`DecodeError` naming the field when the object is not valid.
    """
    hook = _FAST.get(cls)
    if hook is None:
        with _LOCK:
            hook = _FAST.get(cls)
            if hook is None:
                hook = _FAST[cls] = _build_fast(cls, _plan(cls).precise)
    return hook


def decoder_source(cls: type) -> str:
    """The generated source of the fast decoder of ``cls`` (for reading and debugging)."""
    return _fast_source(cls, _converter())[0]


def precise_source(cls: type) -> str:
    """The source cattrs generated for the precise decoder of ``cls``."""
    code = _plan(cls).structure.__code__
    return "\n".join(linecache.getlines(code.co_filename)) + "\n"


_MODELS = (
    AddressChannels,
    Address,
    ConversationMessage,
    ConversationChatMessage,
    Conversation,
    SubscriberInfo,
    JoinResult,
)


def _model_hook(cls: Any) -> Callable[[Any, Any], Any]:
    """The structure-hook factory of every model class: its decoder (both paths, one set of hooks).

    A decoder also takes the type as a second argument, as cattrs passes it.
    """
    return typing.cast("Callable[[Any, Any], Any]", decoder(cls))


def _make_converter() -> cattrs.Converter:
    conv = cattrs.Converter(detailed_validation=False, forbid_extra_keys=False)
    conv.register_structure_hook(str, _strict_str)
    conv.register_structure_hook(int, _strict_int)
    conv.register_structure_hook(float, _strict_float)
    conv.register_structure_hook(bool, _strict_bool)
    conv.register_structure_hook_func(_is_mapping, _mapping)
    conv.register_structure_hook_func(lambda tp: tp is Any, _anything)
    conv.register_structure_hook_factory(_is_tuple, _tuple_hook)
    conv.register_structure_hook_factory(_is_optional, _optional_hook)
    # Every attrs class: the fast path over the hooks above, the detailed path for errors.
    conv.register_structure_hook_factory(attrs.has, _model_hook)
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
            field.name: override(rename=_wire_keys(field)[0])
            if _wire_keys(field)
            else override(omit=True)  # not a wire field (``delivery``)
            for field in attrs.fields(cls)
            if field.name not in _wire_keys(field)
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


def structure_chat_message(obj: Any, *, delivery: str | None = None) -> ConversationChatMessage:
    """Build a chat message (its ``text`` must be a string).

    Args:
        obj: The wire object.
        delivery: How a subscription got it (the message's ``delivery``; never on the wire).

    Raises:
        DecodeError: ``obj`` is not a valid chat message (the error names the field).
    """
    return decoder(ConversationChatMessage)(obj, delivery=delivery)


def chat_message_decoder() -> Callable[..., ConversationChatMessage]:
    """What :func:`structure_chat_message` calls, for a caller that keeps it.

    The live path decodes every message with it: kept by the subscription, it saves
    ``structure_chat_message``'s call and look-up (some 0.5 us of an event's ~14).
    """
    return decoder(ConversationChatMessage)


def structure(obj: Any, cls: type[T]) -> T:
    """Structure ``obj`` as ``cls`` with the shared converter.

    Raises:
        DecodeError: ``obj`` does not have the shape of ``cls`` (the error names the field).
    """
    try:
        return _converter().structure(obj, cls)
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
    out: dict[str, Any] = _converter().unstructure(model)
    return out


_CONVERTER: cattrs.Converter | None = None


def _converter() -> cattrs.Converter:
    """The one converter of the package (its hooks are strict), built on first use, once.

    Not at import but at the first model read (a page, a send's answer, a live message): some
    3M instructions, 4% of what the package adds to its dependencies' import, that a process
    which only imports the package (a CLI's ``--help``, a worker's boot) does not spend.
    """
    global _CONVERTER
    conv = _CONVERTER
    if conv is None:
        with _LOCK:
            conv = _CONVERTER
            if conv is None:
                conv = _CONVERTER = _make_converter()
    return conv


if TYPE_CHECKING:
    #: The one converter (``_converter()``), for code that imports it by name.
    converter: cattrs.Converter


def __getattr__(name: str) -> Any:
    if name == "converter":
        return _converter()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# --- to_dict of the message models without cattrs' per-field hooks ----------------------------
#
# ``ConversationMessage.to_dict()`` runs once per message in the Redis Streams bridge: through
# cattrs it costs ~8 us (a hook call per field, the mappings walked by runtime type). The function
# generated here for a message class gives the very dict ``unstructure`` gives (same keys, same
# order, the mappings copied as deep) when every value is a JSON value of the exact builtin type
# (str, int, float, bool, None, dict, list; ``EMPTY`` for the empty mappings); for anything else
# (a tuple, a set, a MappingProxyType, a subclass) it hands the model to ``unstructure``.

_PLAIN = frozenset((str, int, float, bool, type(None)))
_TO_DICT: dict[type, Callable[[Any], dict[str, Any]]] = {}


def _json_copy(value: Any) -> Any:
    """A deep copy of a JSON value of exact builtin types, or ``_MISSING`` if it is not one."""
    kind = type(value)
    if kind in _PLAIN:
        return value
    if kind is dict:
        out = {}
        for key, item in value.items():
            if type(key) not in _PLAIN:
                return _MISSING
            item = _json_copy(item)
            if item is _MISSING:
                return _MISSING
            out[key] = item
        return out
    if kind is list:
        items = [_json_copy(item) for item in value]
        return _MISSING if _MISSING in items else items
    return _MISSING


def _mapping_copy(value: Any) -> Any:
    """What ``unstructure`` makes of a mapping field's value, or ``_MISSING`` (ask it)."""
    if type(value) is dict:
        return _json_copy(value) if value else {}  # the wire's "details": {} mostly
    return {} if value is EMPTY else _MISSING


def _to_dict_source(cls: type) -> str:
    """The source of ``cls``'s fast ``to_dict`` (scalar and mapping fields only)."""
    attrs.resolve_types(cls)
    lines = [f"def to_dict_{cls.__name__}(model):", "    d = model.__dict__"]
    scalars: list[str] = []
    items: list[str] = []
    for n, field in enumerate(attrs.fields(cls)):
        keys = _wire_keys(field)
        if field.name == "extra" or not keys:
            continue  # merged below / never on the wire (``delivery``)
        key = field.name if field.name in keys else keys[0]
        tp, optional = _unwrap_optional(field.type)
        lines.append(f"    v{n} = d[{field.name!r}]")
        if _is_mapping(tp):
            if optional:
                lines.append(f"    if v{n} is not None:")
                lines.append(f"        v{n} = _mapping_copy(v{n})")
                lines.append(f"        if v{n} is _MISSING: return None")
            else:
                lines.append(f"    v{n} = _mapping_copy(v{n})")
                lines.append(f"    if v{n} is _MISSING: return None")
        elif tp in _PLAIN:
            scalars.append(f"type(v{n}) in _PLAIN")
        else:
            raise TypeError(f"{cls.__name__}.{field.name}: no fast to_dict for {tp!r}")
        items.append(f"{key!r}: v{n}")
    lines.append(f"    if not ({' and '.join(scalars) or 'True'}): return None")
    lines.append("    out = {" + ", ".join(items) + "}")
    if "extra" in attrs.fields_dict(cls):
        lines.append("    extra = _mapping_copy(d['extra'])")
        lines.append("    if extra is _MISSING: return None")
        lines.append("    for key, value in extra.items():")
        lines.append("        if key not in out: out[key] = value")
    lines.append("    return out")
    return "\n".join(lines) + "\n"


def message_to_dict(model: Any) -> dict[str, Any]:
    """``unstructure(model)`` of a message model, built without cattrs where it can be."""
    cls = type(model)
    fast = _TO_DICT.get(cls)
    if fast is None:
        if cls not in (ConversationMessage, ConversationChatMessage):
            return unstructure(model)
        with _LOCK:
            fast = _TO_DICT.get(cls)
            if fast is None:
                env = {"_PLAIN": _PLAIN, "_MISSING": _MISSING, "_mapping_copy": _mapping_copy}
                name = f"to_dict_{cls.__name__}"
                fast = _TO_DICT[cls] = _generated(_to_dict_source(cls), name, name, env)
    out = fast(model)
    return unstructure(model) if out is None else out
