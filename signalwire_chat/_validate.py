"""Every check of a caller's argument, in one place, called at the public boundary only.

Each check raises :class:`~signalwire_chat.errors.InvalidArgumentTypeError` (a ``TypeError``)
for a value of the wrong type and :class:`~signalwire_chat.errors.InvalidArgumentError` (a
``ValueError``) for a value the service would refuse or the wire cannot carry, before anything
is sent. No message ever quotes a token.

What the wire cannot carry: a string with a lone surrogate (UTF-8 has no encoding for it), a
float that is NaN or infinite, an integer longer than :data:`MAX_INT_DIGITS` digits, a key that
is not a string, a container that contains itself.
What the service refuses (and the emulator enforces with the same numbers, answering 422):
``metadata`` or ``details`` nested deeper than :data:`MAX_JSON_DEPTH` or larger than
:data:`MAX_JSON_BYTES` once serialised. Decoding uses the same depth limit
(``_convert``), so whatever a client may send, every other client can read back.

The JSON checks walk the value with an explicit stack, never by recursion: a caller deep in its
own stack (a Django view under middleware) gets our error, not a ``RecursionError``.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

from .errors import InvalidArgumentError, InvalidArgumentTypeError, TokenError

__all__ = [
    "MAX_ID_LENGTH",
    "MAX_INT_DIGITS",
    "MAX_JSON_BYTES",
    "MAX_JSON_DEPTH",
    "check_address_id",
    "check_address_uuid",
    "check_callable",
    "check_choice",
    "check_json_object",
    "check_limit",
    "check_page_size",
    "check_seconds",
    "check_str",
    "check_token",
    "json_unfit",
    "looks_like_uuid",
    "token_problem",
]

#: The deepest nesting of ``metadata`` / ``details`` (the object itself is level 1, so
#: ``{"a": {"b": 1}}`` has depth 2). The emulator refuses deeper ones with 422, and decoding
#: refuses deeper ones with ``DecodeError``.
MAX_JSON_DEPTH = 32
#: The largest ``metadata`` / ``details``: bytes of its compact UTF-8 JSON
#: (``json.dumps(value, separators=(",", ":"), ensure_ascii=False)``). The emulator refuses
#: larger ones with 422.
MAX_JSON_BYTES = 16 * 1024
#: The most decimal digits of an integer in ``metadata`` / ``details``: Python's default
#: limit on int/str conversion (``sys.int_info.default_max_str_digits``), past which
#: ``json.dumps`` and ``json.loads`` raise, so no Python reader could decode a longer one.
MAX_INT_DIGITS = 4300
_INT_BOUND = 10**MAX_INT_DIGITS
#: The longest address id (the service's ids are 36-character UUIDs).
MAX_ID_LENGTH = 256
#: The largest ``page_size`` the service accepts.
MAX_PAGE_SIZE = 1000

_CONTROL = re.compile("[\x00-\x1f\x7f]")
# The shapes below are tested with str methods, not regexes: sre compiles a regex in Python at
# import (the class of the lone surrogates alone took ~2M instructions: sre maps the whole BMP
# for it), and these checks run once per call, on short strings.
#: The base64url alphabet, and the hex digits (``str.strip`` of them leaves only the others).
_BASE64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-"
_HEX = "0123456789abcdefABCDEF"
#: The lengths of the dash-separated groups of hex digits of a UUID.
_UUID_GROUPS = [8, 4, 4, 4, 12]


def _is_compact_token(token: str) -> bool:
    """A compact JWS (3 parts) or JWE (5 parts): base64url parts, the first (the header) not empty.

    Every character is checked: nothing like a regex's "$", which also matches before a final
    newline and once let open("token.txt").read() through to http.client, which then quoted
    the token in its error.
    """
    parts = token.split(".")
    return len(parts) in (3, 5) and parts[0] != "" and not token.replace(".", "").strip(_BASE64URL)


def check_seconds(value: object, name: str, *, maximum: float | None = None) -> float:
    """A positive, finite number of seconds (an int or a float, never a bool), as a float.

    The one rule for durations everywhere (timeouts, deadlines, intervals, TTLs): infinity
    and NaN are refused like zero, since no wait of ours may be endless by accident.
    ``maximum``: the largest accepted, when there is one.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidArgumentTypeError(
            f"{name} must be a number of seconds, not {type(value).__name__}"
        )
    if not (math.isfinite(value) and value > 0):
        raise InvalidArgumentError(f"{name} must be finite and > 0, got {value!r}")
    if maximum is not None and value > maximum:
        raise InvalidArgumentError(f"{name} must be at most {maximum:g} s, got {value!r}")
    return float(value)


def check_callable(value: object, name: str, *, optional: bool = False) -> None:
    """A callback: callable (or, when ``optional``, None)."""
    if optional and value is None:
        return
    if not callable(value):
        raise InvalidArgumentTypeError(f"{name} must be callable{' or None' if optional else ''}")


def _no_surrogates(value: str, name: str) -> str:
    if not value.isascii():
        try:
            value.encode()  # fails exactly on a code point U+D800 to U+DFFF, a lone surrogate
        except UnicodeEncodeError:
            raise InvalidArgumentError(
                f"{name} contains a lone surrogate (an unpaired UTF-16 half), which UTF-8 cannot"
                " carry"
            ) from None
    return value


def check_str(value: object, name: str) -> str:
    """A non-blank string that UTF-8 can carry.

    Raises:
        InvalidArgumentTypeError: Not a ``str``.
        InvalidArgumentError: Empty or only whitespace, or holding a lone surrogate.
    """
    if type(value) is not str:
        if not isinstance(value, str):
            raise InvalidArgumentTypeError(f"{name} must be a str, not {type(value).__name__}")
        value = str(value)  # a str subclass: send the plain string it holds
    if not value.strip():
        raise InvalidArgumentError(f"{name} must not be empty")
    return _no_surrogates(value, name)


def check_address_id(value: object, name: str = "address_id") -> str:
    """An address id: one path segment, never altered on the way.

    Raises:
        InvalidArgumentTypeError: Not a ``str``.
        InvalidArgumentError: Empty, ``.`` or ``..``, longer than :data:`MAX_ID_LENGTH`, with
            whitespace at either end, control characters or a lone surrogate.
    """
    value = check_str(value, name)
    if value != value.strip():
        raise InvalidArgumentError(f"{name} must not start or end with whitespace")
    if value in (".", ".."):
        raise InvalidArgumentError(f"{name} must not be {value!r} (a path segment of its own)")
    if len(value) > MAX_ID_LENGTH:
        raise InvalidArgumentError(f"{name} is longer than {MAX_ID_LENGTH} characters")
    if _CONTROL.search(value):
        raise InvalidArgumentError(f"{name} must not contain control characters")
    return value


def looks_like_uuid(value: str) -> bool:
    """Whether ``value`` has the shape of the service's ids: ``8-4-4-4-12`` hex digits."""
    groups = value.split("-")
    return [len(group) for group in groups] == _UUID_GROUPS and not "".join(groups).strip(_HEX)


def check_address_uuid(value: object, name: str = "address_id") -> str:
    """An address id as the service makes them: a UUID (``8-4-4-4-12`` hex digits).

    Anything else (a room's name, say) cannot be an address: it is refused here, where the
    caller's own words can be quoted, rather than by a 404 from a request the caller never
    made. Group ids are opaque and never pass through this check.

    Raises:
        InvalidArgumentTypeError: Not a ``str``.
        InvalidArgumentError: As :func:`check_address_id`, or not a UUID.
    """
    value = check_address_id(value, name)
    if not looks_like_uuid(value):
        shown = repr(value) if value.isprintable() and len(value) <= 60 else "(not shown)"
        raise InvalidArgumentError(
            f"{name} {shown} is not an address id: address ids are UUIDs (find one by name with"
            " get_address(name=...); a group id goes in a Group(id=...))"
        )
    return value


def check_page_size(value: object, name: str = "page_size") -> int:
    """An int from 1 to :data:`MAX_PAGE_SIZE`."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidArgumentTypeError(f"{name} must be an int, not {type(value).__name__}")
    if not 1 <= value <= MAX_PAGE_SIZE:
        raise InvalidArgumentError(f"{name} must be between 1 and {MAX_PAGE_SIZE}, got {value}")
    return int(value)


def check_limit(value: object) -> int | None:
    """``None`` or an int >= 0."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidArgumentTypeError(f"limit must be an int or None, not {type(value).__name__}")
    if value < 0:
        raise InvalidArgumentError(f"limit must be >= 0, got {value}")
    return int(value)


def check_choice(value: object, name: str, choices: tuple[str, ...]) -> str | None:
    """``None`` or one of ``choices``."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidArgumentTypeError(f"{name} must be a str, not {type(value).__name__}")
    if value not in choices:
        shown = value if value.isprintable() and len(value) <= 40 else "(not shown)"
        raise InvalidArgumentError(f"{name} must be one of {', '.join(choices)}; got {shown!r}")
    return str(value)


def token_problem(token: object, origin: str) -> str | None:
    """What is wrong with a token's shape (``None``: nothing); the text never quotes it.

    A token has the shape of a compact JWE (5 parts) or JWS (3 parts); nothing is verified.
    Whitespace anywhere, a trailing newline included, is refused: it is never part of a token.
    """
    if not isinstance(token, str):
        return f"{origin} must be a str, not {type(token).__name__}"
    if _is_compact_token(token):
        return None
    if token != token.strip():
        hint = "it starts or ends with whitespace (a newline read from a file or variable?)"
    elif any(ch.isspace() for ch in token):
        hint = "it contains whitespace"
    else:
        parts = token.split(".")
        hint = f"got {len(parts)} part(s)" if len(parts) not in (3, 5) else "bad characters"
    return (
        f"{origin} does not look like a token: expected a compact JWE (5 dot-separated "
        f"base64url parts) or JWS (3 parts); {hint}"
    )


def check_token(token: object, origin: str) -> str:
    """A token of the right shape (see :func:`token_problem`), returned as a plain ``str``.

    Raises:
        InvalidArgumentTypeError: Not a ``str``.
        TokenError: Not of that shape.
    """
    problem = token_problem(token, origin)
    if problem is None:
        return str(token)
    wrong_type = not isinstance(token, str)
    del token  # not left in this frame's locals for traceback tools to show
    if wrong_type:
        raise InvalidArgumentTypeError(problem)
    raise TokenError(problem)


def check_json_object(value: object, name: str) -> dict[str, Any]:
    """A JSON object the service accepts, returned as a plain ``dict`` tree.

    Any ``Mapping`` is accepted (copied into dicts), lists and tuples become lists.

    Raises:
        InvalidArgumentTypeError: Not a mapping, a key that is not a string, or a value JSON
            cannot represent (a set, bytes, an object).
        InvalidArgumentError: A NaN or infinite float, an integer longer than
            :data:`MAX_INT_DIGITS` digits, a lone surrogate, a container that
            contains itself, nesting deeper than :data:`MAX_JSON_DEPTH`, or more than
            :data:`MAX_JSON_BYTES` once serialised.
    """
    if not isinstance(value, Mapping):
        raise InvalidArgumentTypeError(
            f"{name} must be a JSON object (a dict), not {type(value).__name__}"
        )
    copy = _plain_json(value, name)
    try:
        text = json.dumps(copy, separators=(",", ":"), ensure_ascii=False)
    except ValueError as exc:  # an int past a limit this process set lower than the default
        raise InvalidArgumentError(f"{name} cannot be serialised as JSON: {exc}") from None
    size = len(text.encode("utf-8"))
    if size > MAX_JSON_BYTES:
        raise InvalidArgumentError(
            f"{name} is {size} bytes as JSON; the service accepts at most {MAX_JSON_BYTES}"
        )
    return copy  # type: ignore[no-any-return]  # a Mapping became a dict


def _plain_json(root: object, name: str) -> Any:
    """Check ``root`` and copy it into plain dicts and lists, with an explicit stack."""
    out = _container(root)
    # (source container, its copy, its path, its depth, ids of the containers above it)
    stack: list[tuple[Any, Any, str, int, frozenset[int]]] = [
        (root, out, name, 1, frozenset((id(root),)))
    ]
    while stack:
        source, target, path, depth, above = stack.pop()
        if depth > MAX_JSON_DEPTH:
            raise InvalidArgumentError(
                f"{name} is nested deeper than {MAX_JSON_DEPTH} levels (at {_short(path)})"
            )
        if isinstance(source, Mapping):
            items: Any = source.items()
        else:
            items = enumerate(source)
        for key, item in items:
            if isinstance(source, Mapping):
                if not isinstance(key, str):
                    raise InvalidArgumentTypeError(
                        f"{_short(path)} has a key of type {type(key).__name__}; "
                        "JSON keys are strings"
                    )
                _no_surrogates(key, f"a key of {_short(path)}")
                where = f"{path}[{key!r}]" if key.isprintable() else f"{path}[...]"
            else:
                where = f"{path}[{key}]"
            if item is None or isinstance(item, (bool, int)):
                copy: Any = item if type(item) in (bool, int) or item is None else _scalar(item)
                if type(copy) is int and not -_INT_BOUND < copy < _INT_BOUND:
                    raise InvalidArgumentError(
                        f"{_short(where)} is an integer of more than {MAX_INT_DIGITS} digits, "
                        "which JSON readers refuse"
                    )
            elif isinstance(item, str):
                copy = str(_no_surrogates(item, _short(where)))
            elif isinstance(item, float):
                if not math.isfinite(item):
                    raise InvalidArgumentError(
                        f"{_short(where)} is {item!r}, which JSON cannot carry"
                    )
                copy = float(item)
            elif isinstance(item, (Mapping, list, tuple)):
                if id(item) in above:
                    raise InvalidArgumentError(f"{_short(where)} contains itself (a cycle)")
                copy = _container(item)
                stack.append((item, copy, where, depth + 1, above | {id(item)}))
            else:
                raise InvalidArgumentTypeError(
                    f"{_short(where)} is a {type(item).__name__}, which is not JSON-serialisable"
                )
            if isinstance(target, dict):
                target[key] = copy
            else:
                target.append(copy)
    return out


def _container(value: object) -> dict[str, Any] | list[Any]:
    return {} if isinstance(value, Mapping) else []


def _scalar(value: bool | int) -> bool | int:
    # A bool or int subclass (an IntEnum): send the plain number, as json.dumps would.
    return bool(value) if isinstance(value, bool) else int(value)


def _short(path: str) -> str:
    return path if len(path) <= 80 else path[:77] + "..."


def json_unfit(value: object, limit: int = MAX_JSON_DEPTH) -> str | None:
    """Why decoded JSON ``value`` cannot be passed on, or ``None`` (no recursion).

    Containers nested deeper than ``limit``, or a float that is not finite: JSON has no
    infinity, but Python's json reads a number too large for a float (``1e999``) as one, and
    it would come out of ``to_dict()``, ``--json`` and the bridge as ``Infinity``, which no
    strict reader takes.
    """
    kind = type(value)
    if kind is float:
        return None if value - value == 0.0 else _NOT_FINITE  # type: ignore[operator]
    if kind is not dict and kind is not list:
        return None
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        container, depth = stack.pop()
        if depth > limit:
            return f"nested deeper than {limit} levels"
        for item in container.values() if type(container) is dict else container:
            kind = type(item)
            if kind is dict or kind is list:
                stack.append((item, depth + 1))
            elif kind is float and item - item != 0.0:  # inf - inf is NaN
                return _NOT_FINITE
    return None


_NOT_FINITE = "a number out of a float's range (JSON has no infinity)"
