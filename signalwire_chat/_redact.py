"""Redaction of secrets from server text: a leaf module, so any layer may import it.

The REST transport (``_http``) and the relay session (``_realtime._protocol``) both turn what a
server sends back into exception messages and log lines; both ask these two functions, and
neither needs the other (the relay session must not load requests to redact a string).
:func:`forgets_locals` keeps the secrets a function is given out of the tracebacks it raises.
"""

from __future__ import annotations

import functools
import traceback
from collections.abc import Callable, Iterable
from typing import ParamSpec, TypeVar
from urllib.parse import quote

__all__ = ["SecretForms", "forgets_locals", "redact", "server_text"]

_P = ParamSpec("_P")
_R = TypeVar("_R")

TEXT_KEEP = 200  # a reason phrase, request id or content type: more is not diagnosis
#: C0 and C1 controls, DEL, the line and paragraph separators and the bidirectional controls
#: (which reorder what a terminal or a log viewer shows), each to "?" (a translation table, not
#: a regex: sre would map all of the BMP at import for the characters above U+00FF).
_CONTROL = dict.fromkeys(
    [
        *range(0x20),
        *range(0x7F, 0xA0),
        0x061C,
        0x200E,
        0x200F,
        *range(0x2028, 0x202F),
        *range(0x2066, 0x206A),
    ],
    "?",
)


def _secret_forms(secrets: Iterable[str]) -> list[str]:
    """Each secret, its percent-encoded form, and each long dot-separated part of a token."""
    forms: set[str] = set()
    for secret in secrets:
        if not secret:
            continue
        forms.add(secret)
        forms.add(quote(secret, safe=""))
        forms.update(part for part in secret.split(".") if len(part) >= 16)
    return sorted(forms, key=len, reverse=True)  # the whole before its parts


class SecretForms(tuple[str, ...]):
    """The forms :func:`redact` looks for, worked out once for some secrets.

    Given in place of the secrets, it spares each call percent-encoding and splitting them
    again (for a token, most of the cost of reading a request id on every REST call). Its repr
    is redacted: it holds the secrets.
    """

    __slots__ = ()

    def __new__(cls, secrets: Iterable[str]) -> SecretForms:
        return super().__new__(cls, _secret_forms(secrets))

    def __repr__(self) -> str:
        return "<secret forms (redacted)>"

    def __reduce__(self) -> str:
        raise TypeError("secret forms cannot be pickled (they hold secrets)")


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every secret (and each long part of a token) replaced by ``[redacted]``.

    ``secrets`` may be a :class:`SecretForms`, used as it is.
    """
    forms = secrets if isinstance(secrets, SecretForms) else _secret_forms(secrets)
    for form in forms:
        if form in text:
            text = text.replace(form, "[redacted]")
    return text


def server_text(value: object, secrets: Iterable[str], keep: int = TEXT_KEEP) -> str | None:
    """A short piece of server text fit for a message or a log line, or ``None``."""
    if not isinstance(value, str) or not value:
        return None
    text = redact(value, secrets)
    # Every character _CONTROL maps is one str.isprintable() refuses, as is a lone surrogate:
    # a printable text (most are: a request id is read on every traced call) needs neither.
    if not text.isprintable():
        text = text.translate(_CONTROL)
        # A lone surrogate (a JSON "\ud800" escape) to "?": in a message, it would make every
        # print of the error and every log line of it fail to encode.
        text = text.encode("utf-8", "replace").decode("utf-8")
    return text if len(text) <= keep else text[: keep - 3] + "..."


def forgets_locals(fn: Callable[_P, _R]) -> Callable[_P, _R]:
    """``fn``, whose exceptions leave with the local variables of its frames cleared.

    For a function given secrets (an API token, a password, a refresh token): error trackers
    and ``traceback`` with ``capture_locals`` record the locals of every frame a traceback
    holds, and a request body or an argument would show them there. What ``fn`` raises keeps
    its traceback (files and lines) but none of the locals of ``fn``'s frames or the frames
    below them, nor of the exceptions it chains; its arguments are dropped with them.
    """

    @functools.wraps(fn)
    def forgetting(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return fn(*args, **kwargs)
        except BaseException as exc:
            del args, kwargs  # this frame's own: it is in the traceback too
            _clear_frames(exc)
            raise

    return forgetting


def _clear_frames(exc: BaseException) -> None:
    """Clear the locals of every finished frame in the tracebacks of ``exc`` and its chain."""
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    while todo:
        current = todo.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        traceback.clear_frames(current.__traceback__)  # a frame still running is left as is
        todo += [e for e in (current.__cause__, current.__context__) if e is not None]
