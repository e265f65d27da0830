"""How models, pages and subscriptions look in notebooks and terminals: HTML tables, short text.

A person reads a message as *when* (local time), *who* (a display name where the wire gives
one) and *what* (the text), not as a repr with epoch floats. This module turns rows of models
into those columns once, for the HTML tables of Jupyter (``_repr_html_``), the one-line text
of IPython (``_repr_pretty_``) and the command line's tables. Only the standard library is
used; ``html`` is loaded on first display, never by ``import signalwire_chat``.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Callable, Iterable, Sequence
from typing import Any

__all__ = ["Displayable", "columns_for", "html_table", "local_time", "one_line", "rows_for"]

#: Longest text shown in a table cell or a one-line summary before it is cut with "…".
MAX_CELL = 200


def local_time(seconds: float | int | None) -> str:
    """Unix seconds as local wall-clock time, ``YYYY-MM-DD HH:MM:SS`` (empty for None)."""
    if seconds is None:
        return ""
    when = _dt.datetime.fromtimestamp(seconds).astimezone()
    return when.strftime("%Y-%m-%d %H:%M:%S")


def _cut(text: str | None, limit: int = MAX_CELL) -> str:
    if text is None:
        return ""
    text = " ".join(text.split())  # one line: newlines and runs of spaces become one space
    return text if len(text) <= limit else text[: limit - 1] + "…"


def sender(message: Any) -> str:
    """Who sent a message: its display name where known, else its address or user id."""
    return str(message.user_name or message.from_address_id or message.user_id or "")


Column = tuple[str, Callable[[Any], str]]

_MESSAGE: Sequence[Column] = (
    ("time", lambda m: local_time(m.ts)),
    ("from", sender),
    ("text", lambda m: _cut(m.text) if m.text is not None else f"({m.subtype})"),
)
_CONVERSATION: Sequence[Column] = (
    ("name", lambda c: _cut(c.name)),
    ("address_id", lambda c: c.address_id or ""),
    ("last message", lambda c: local_time(c.last_message_at)),
)
_ADDRESS: Sequence[Column] = (
    ("display name", lambda a: _cut(a.display_name)),
    ("name", lambda a: a.name),
    ("type", lambda a: a.type),
    ("id", lambda a: a.id),
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


def rows_for(items: Sequence[Any]) -> tuple[list[str], list[list[str]]]:
    """``(headers, rows)`` of cell strings for a homogeneous list of models."""
    if not items:
        return [], []
    columns = columns_for(items[0])
    headers = [name for name, _ in columns]
    return headers, [[get(item) for _, get in columns] for item in items]


def html_table(headers: Sequence[str], rows: Iterable[Sequence[str]], caption: str = "") -> str:
    """An HTML table of escaped cells, with an optional caption."""
    import html  # only notebooks need it

    esc = html.escape
    head = "".join(f"<th style='text-align:left'>{esc(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td style='text-align:left'>{esc(c)}</td>" for c in row) + "</tr>"
        for row in rows
    )
    cap = f"<caption style='text-align:left'>{esc(caption)}</caption>" if caption else ""
    return f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


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


class Displayable:
    """Mixin of the public models: ``to_dict()`` and notebook displays.

    ``to_dict`` goes through the one converter; the displays through this module.
    """

    __slots__ = ()

    def to_dict(self) -> dict[str, Any]:
        """This model as a JSON-ready dict, for export and logging.

        The keys are the wire's field names; fields the service sent that this version does
        not know (``extra``) are included as received. ``json.dumps`` accepts the result,
        and structuring it again gives an equal model.
        """
        from ._convert import unstructure

        return unstructure(self)

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(one_line(self) if not cycle else f"{type(self).__name__}(...)")

    def _repr_html_(self) -> str:
        columns = columns_for(self)
        if columns[0][0] != "value":
            headers, rows = rows_for([self])
            return html_table(headers, rows, caption=type(self).__name__)
        import attrs

        cells = []
        for field in attrs.fields(type(self)):  # type: ignore[arg-type]
            value = getattr(self, field.name)
            if value is None or (not isinstance(value, Displayable) and not value):
                continue
            if isinstance(value, tuple):
                shown = "; ".join(one_line(v) for v in value)
            elif isinstance(value, Displayable):
                shown = one_line(value)
            else:
                shown = str(value)
            cells.append([field.name, _cut(shown)])
        return html_table(("field", "value"), cells, caption=type(self).__name__)
