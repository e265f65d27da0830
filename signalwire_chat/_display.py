"""How models, pages and subscriptions look in notebooks and terminals: HTML tables, short text.

A person reads a message as *when* (local time), *who* (a display name where the wire gives
one) and *what* (the text), not as a repr with epoch floats. This module turns rows of models
into those columns once, for the HTML tables of Jupyter (``_repr_html_``), the one-line text
of IPython (``_repr_pretty_``) and the command line's tables. Only the standard library is
used; ``html`` is loaded on first display, never by ``import signalwire_chat``.
"""

from __future__ import annotations

import datetime as _dt
import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from .models import _Displayable as Displayable  # re-exported: its home moved to models

__all__ = [
    "UNSAFE_ABOVE_C0",
    "Cell",
    "Displayable",
    "columns_for",
    "conversation_columns",
    "conversation_name",
    "follows",
    "html_table",
    "local_time",
    "model_html",
    "named",
    "one_line",
    "pretty",
    "rows_for",
    "safe_text",
]

#: Longest text shown in a table cell or a one-line summary before it is cut with "…".
MAX_CELL = 200

# What a terminal may act on instead of showing: C0 controls (ESC starts every escape
# sequence, BEL ends OSC ones), DEL, C1 controls (U+009B is a one-character CSI, U+009D an OSC),
# lone surrogates (no encoding can write them: the write itself would fail), the line and
# paragraph separators (a second line forged inside one), and the bidi embeddings, overrides,
# isolates and marks (text that reads differently from what it is).
#: Those beyond C0, as a regex character class body (``json.dumps`` escapes C0 itself).
UNSAFE_ABOVE_C0 = r"\x7f-\x9f\ud800-\udfff\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069"
_UNSAFE = re.compile(rf"[\x00-\x1f{UNSAFE_ABOVE_C0}]")
_ONE_LINE = re.compile(r"(?:\r\n|[ \t\n])+")


def _escape(match: re.Match[str]) -> str:
    return repr(match.group())[1:-1]  # "\x1b", "\n", "\u202e": visible, as repr shows them


def safe_text(text: str) -> str:
    r"""``text`` as a terminal may show it: every character it could act on, escaped.

    The one gate for text from the service (message texts, names, error details) on its way
    to a person. C0 and C1 control characters, DEL, lone surrogates, U+2028 and U+2029, and the
    bidi controls are written as Python writes them in a ``repr`` (``\x1b``, ``\n``,
    ``\u202e``), so none reaches the terminal, a text stays on its line, and what it tried is
    still visible. Everything else, backslashes included, is left as it is (readability wins;
    ``--json`` carries the exact text). The result is safe again: ``safe_text`` is idempotent.
    """
    return _UNSAFE.sub(_escape, text) if _UNSAFE.search(text) else text


_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)


def local_time(seconds: float | int | None) -> str:
    """Unix seconds as local wall-clock time, ``YYYY-MM-DD HH:MM:SS`` (empty for None).

    A time the local calendar cannot hold (the first or last hours of years 1 to 9999, east
    or west of UTC) is shown in UTC with a ``Z``, and one no calendar holds as the number.
    """
    if seconds is None:
        return ""
    try:
        when = _dt.datetime.fromtimestamp(seconds).astimezone()
    except (OverflowError, OSError, ValueError):
        try:
            when = _EPOCH + _dt.timedelta(seconds=seconds)
        except (OverflowError, ValueError):
            return repr(seconds)
        return _wall_clock(when) + "Z"
    return _wall_clock(when)


def _wall_clock(when: _dt.datetime) -> str:
    # Not strftime: its %Y does not pad the years 1 to 999 to four digits on every platform.
    return (
        f"{when.year:04d}-{when.month:02d}-{when.day:02d}"
        f" {when.hour:02d}:{when.minute:02d}:{when.second:02d}"
    )


def _cut(text: str | None, limit: int = MAX_CELL) -> str:
    if text is None:
        return ""
    # One line: newlines and runs of spaces become one space; whatever else is left that a
    # terminal could act on is escaped.
    text = safe_text(_ONE_LINE.sub(" ", text).strip(" "))
    return text if len(text) <= limit else text[: limit - 1] + "…"


def sender(message: Any) -> str:
    """Who sent a message: its display name where known, else its address or user id."""
    return safe_text(str(message.user_name or message.from_address_id or message.user_id or ""))


Column = tuple[str, Callable[[Any], str]]

_MESSAGE: Sequence[Column] = (
    ("time", lambda m: local_time(m.ts)),
    ("from", sender),
    ("text", lambda m: _cut(m.text) if m.text is not None else f"({safe_text(m.subtype)})"),
)


def conversation_columns(me: str | None = None) -> Sequence[Column]:
    """The columns of a conversation: its kind, the id that reads it, its name, its last message.

    A group-dialect row is a ``group`` (its id: the group id); an address-dialect row is an
    ``address`` (its id: the address id), except the row of ``me``, the subscriber's own
    address, whose messages are everything sent to the subscriber: the ``inbox``.
    """

    def kind(c: Any) -> str:
        if c.group_id is not None:
            return "group"
        return "inbox" if me is not None and c.address_id == me else "address"

    return (
        ("kind", kind),
        ("id", lambda c: safe_text(c.group_id or c.address_id or c.id)),
        ("name", lambda c: _cut(c.name)),
        ("last message", lambda c: local_time(c.last_message_at)),
    )


_CONVERSATION = conversation_columns()
_ADDRESS: Sequence[Column] = (
    ("display name", lambda a: _cut(a.display_name)),
    ("name", lambda a: _cut(a.name)),
    ("type", lambda a: safe_text(a.type)),
    ("id", lambda a: safe_text(a.id)),
)


def columns_for(item: Any) -> Sequence[Column]:
    """The table columns for rows like ``item`` (a message, conversation or address)."""
    from .models import Address, Conversation, ConversationMessage

    if isinstance(item, ConversationMessage):
        return _MESSAGE
    if isinstance(item, Conversation):
        return _CONVERSATION
    if isinstance(item, Address):
        return _ADDRESS
    return (("value", lambda x: _cut(repr(x))),)


def rows_for(
    items: Sequence[Any], columns: Sequence[Column] | None = None
) -> tuple[list[str], list[list[str]]]:
    """``(headers, rows)`` of cell strings for a homogeneous list of models.

    ``columns`` replaces the usual columns of such rows (see :func:`columns_for`).
    """
    if not items:
        return [], []
    if columns is None:
        columns = columns_for(items[0])
    headers = [name for name, _ in columns]
    return headers, [[get(item) for _, get in columns] for item in items]


#: A table cell: its text, or ``(text, title)``: the title shows on hover (an id behind a name).
Cell = str | tuple[str, str]


def html_table(
    headers: Sequence[str],
    rows: Iterable[Sequence[Cell]],
    caption: Cell = "",
) -> str:
    """An HTML table of escaped cells, with an optional caption.

    A cell or the caption given as ``(text, title)`` shows ``text`` and carries ``title``
    (an id behind the name shown) in its ``title`` attribute.
    """
    import html  # only notebooks need it

    esc = html.escape

    def titled(cell: Cell) -> tuple[str, str]:
        text, title = cell if isinstance(cell, tuple) else (cell, "")
        return esc(text), f" title='{esc(title, quote=True)}'" if title else ""

    def td(cell: Cell) -> str:
        text, title = titled(cell)
        return f"<td style='text-align:left'{title}>{text}</td>"

    head = "".join(f"<th style='text-align:left'>{esc(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(td(c) for c in row) + "</tr>" for row in rows)
    cap = ""
    if caption:
        text, title = titled(caption)
        cap = f"<caption style='text-align:left'{title}>{text}</caption>"
    table = f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    # Notebooks run MathJax over HTML outputs: TeX between dollars in a stranger's text
    # would be typeset (a red "Admin" as a display name, "$5 ... $10" eaten). Escaping
    # cannot stop it (MathJax reads the text nodes); these classes make it skip the table:
    # mathjax_ignore for MathJax 3 (JupyterLab, Notebook 7), tex2jax_ignore for MathJax 2.
    return f"<div class='{_NO_TEX}'>{table}</div>"


#: The classes MathJax 3 and MathJax 2 leave alone, with all they contain.
_NO_TEX = "tex2jax_ignore mathjax_ignore"


def named(name: str | None, ident: str, detail: str = "") -> tuple[str, str]:
    """What a conversation is shown as: ``(shown, title)``.

    Its name where one is known (the id, and ``detail`` such as its group, go to the title),
    else the id itself, with ``detail`` in the title: the id the caller passed stays what
    they see until the service has said a name (say, in a message's ``conversation_name``).
    """
    name = _cut(name, 80) if name and name.strip() else ""
    ident, detail = safe_text(ident), safe_text(detail)  # ids come from the service too
    if name:
        return name, " ".join(part for part in (ident, detail) if part)
    return ident, detail


def follows(route: Any, name: str | None) -> tuple[str, str]:
    """What a subscription follows, as ``(shown, title)`` (see :func:`named`).

    ``route`` is the subscription's route (``is_inbox``, ``grouped``, ``value``,
    ``address_id``); ``name`` the conversation's name as its last message said, if any.
    """
    if route.is_inbox:
        return "the inbox", ""
    if route.grouped:
        group = f"group {route.value}"
        if route.address_id is not None:
            return named(name, route.address_id, group)
        return named(name, group)
    return named(name, str(route.value))


def conversation_name(messages: Iterable[Any]) -> str | None:
    """The conversation's name as the first of ``messages`` that carries one says."""
    for message in messages:
        name = getattr(message, "conversation_name", None)
        if isinstance(name, str) and name.strip():
            return name
    return None


def one_line(item: Any) -> str:
    """A short one-line description of a model, for IPython's text display."""
    name = type(item).__name__
    columns = columns_for(item)
    if columns[0][0] == "value":
        return repr(item)
    cells = [get(item) for _, get in columns]
    if columns is _MESSAGE:
        return f"{name}({cells[0]} {cells[1]}: {_cut(cells[2], 80)})"
    return f"{name}({', '.join(c for c in cells if c)})"


def pretty(item: Any, printer: Any, cycle: bool) -> None:
    """IPython's text display of a model (its ``_repr_pretty_``)."""
    printer.text(one_line(item) if not cycle else f"{type(item).__name__}(...)")


def model_html(item: Any) -> str:
    """Jupyter's HTML display of a model (its ``_repr_html_``): a one-row table, or its fields."""
    columns = columns_for(item)
    if columns[0][0] != "value":
        headers, rows = rows_for([item])
        return html_table(headers, rows, caption=type(item).__name__)
    import attrs

    cells = []
    for field in attrs.fields(type(item)):
        value = getattr(item, field.name)
        if value is None or (not isinstance(value, Displayable) and not value):
            continue
        if isinstance(value, tuple):
            shown = "; ".join(one_line(v) for v in value)
        elif isinstance(value, Displayable):
            shown = one_line(value)
        else:
            shown = str(value)
        cells.append([field.name, _cut(shown)])
    return html_table(("field", "value"), cells, caption=type(item).__name__)
