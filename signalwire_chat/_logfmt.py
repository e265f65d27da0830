"""An opt-in ``logging.Formatter`` writing one ``key=value`` line per record (logfmt style).

The library attaches it nowhere: it sets no handler and no level. Attach it to your own
handler when your log pipeline parses key=value lines::

    handler = logging.StreamHandler()
    handler.setFormatter(signalwire_chat.KeyValueFormatter())
    logging.getLogger("signalwire_chat").addHandler(handler)
"""

from __future__ import annotations

import logging
import re
import time
from typing import Any

__all__ = ["KeyValueFormatter"]

#: The attributes every LogRecord has; anything else on a record came from ``extra=``.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message",
    "asctime",
    "taskName",
}
_BARE = re.compile(r"[A-Za-z0-9_.:/@+\-]+")
_SHORT_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
# What must not appear raw in a value: the quote and backslash, every control character (C0,
# DEL and C1, which holds NEL) and the Unicode line and paragraph separators. Log shippers and
# str.splitlines() break lines at \v, \f, \x1c-\x1e, \x85, \u2028 and \u2029 too, and a
# raw ESC lets a logged value drive the terminal that shows the log.
_NEEDS_ESCAPE = re.compile(r'["\\\x00-\x1f\x7f-\x9f\u2028\u2029]')


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    short = _SHORT_ESCAPES.get(char)
    if short is not None:
        return short
    code = ord(char)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def _value(value: object) -> str:
    text = value if isinstance(value, str) else str(value)
    if text and _BARE.fullmatch(text):
        return text
    return '"' + _NEEDS_ESCAPE.sub(_escape, text) + '"'


class KeyValueFormatter(logging.Formatter):
    """Formats a record as ``time=... level=... logger=... msg="..."`` on one line.

    Fields in order: ``time`` (UTC, ISO 8601 with milliseconds), ``level``, ``logger``,
    ``thread`` (its name), ``msg``, then any ``extra=`` fields of the record sorted by name,
    then ``exc_type`` and ``exc`` (the traceback, newlines escaped) when there is one. Values
    with spaces, quotes or ``=`` are double-quoted with backslash escapes, so a line never
    breaks in two.

    Args:
        include_thread: Whether to write the ``thread`` field.
    """

    def __init__(self, *, include_thread: bool = True) -> None:
        super().__init__()
        self._include_thread = include_thread

    def format(self, record: logging.LogRecord) -> str:
        """One line for ``record``."""
        when = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        fields: list[tuple[str, Any]] = [
            ("time", f"{when}.{int(record.msecs):03d}Z"),
            ("level", record.levelname),
            ("logger", record.name),
        ]
        if self._include_thread:
            fields.append(("thread", record.threadName))
        fields.append(("msg", record.getMessage()))
        extras = sorted((key, value) for key, value in vars(record).items() if key not in _STANDARD)
        fields.extend(extras)
        if record.exc_info and record.exc_info[0] is not None:
            fields.append(("exc_type", record.exc_info[0].__name__))
            fields.append(("exc", self.formatException(record.exc_info)))
        elif record.exc_text:
            fields.append(("exc", record.exc_text))
        if record.stack_info:
            fields.append(("stack", self.formatStack(record.stack_info)))
        return " ".join(f"{key}={_value(value)}" for key, value in fields)
