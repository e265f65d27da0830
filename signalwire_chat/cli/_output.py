r"""What the command line writes: JSON lines for scripts, tables and lines for people.

Everything meant for a program goes to stdout; status, progress and errors go to stderr.
Tables and the progress bar use ``rich`` (the ``cli`` extra), imported only when a person
is the reader: ``--json`` runs never load it. The progress bar is drawn only when stderr is a
terminal and is removed when it finishes (``transient``), so logs and pipes never see it.

Texts and names come from other people. Every line for a person goes through
:func:`~signalwire_chat._display.safe_text` on its way out (control characters, C1, bidi
controls and line separators escaped), and table cells are rich ``Text`` objects, never markup
strings, so ``[/]`` or ``[link=...]`` in a name is shown as it is. JSON lines carry the exact
values, with the characters a terminal could act on written as ``\uXXXX`` escapes.
"""

from __future__ import annotations

import codecs
import json
import re
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import IO, Any

from .._display import UNSAFE_ABOVE_C0, Column, local_time, rows_for, safe_text, sender

__all__ = ["Output"]


def _need_rich() -> Any:
    try:
        import rich  # checked here so the message can name the extra
    except ImportError as exc:
        raise MissingExtraError(
            "tables and progress bars need the 'cli' extra: pip install 'signalwire-chat[cli]'"
            " (or use --json)"
        ) from exc
    return rich


class MissingExtraError(RuntimeError):
    """A feature needs an optional dependency that is not installed."""


def _jsonable(item: Any) -> Any:
    to_dict = getattr(item, "to_dict", None)
    return to_dict() if callable(to_dict) else item


# json.dumps escapes C0 controls itself; with ensure_ascii=False it leaves these as they are.
# They can only stand inside JSON strings, where \uXXXX is the same character: the value is
# unchanged, a terminal showing the line acts on none of them, and a lone surrogate (which no
# encoding can write) becomes writable.
_JSON_UNSAFE = re.compile(f"[{UNSAFE_ABOVE_C0}]")


def _json_escape(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04x}"


def json_text(item: Any, *, ascii_only: bool = False) -> str:
    """``item`` (a model through ``to_dict``) as one line of JSON, safe on a terminal.

    ``ascii_only`` escapes every non-ASCII character, for a stream that cannot encode them.
    """
    if ascii_only:
        return json.dumps(_jsonable(item))
    return _JSON_UNSAFE.sub(_json_escape, json.dumps(_jsonable(item), ensure_ascii=False))


def _writes_utf8(stream: IO[str]) -> bool:
    encoding = getattr(stream, "encoding", None) or "utf-8"
    try:
        return codecs.lookup(encoding).name == "utf-8"
    except LookupError:
        return False


def _showable(stream: IO[str]) -> Callable[[str], str]:
    r"""How a cell is written to ``stream``: as it is, or with what the stream cannot encode.

    Escaped beforehand (not UTF-8), so that rich measures the ``\xe9`` the terminal will show,
    not the one column of ``é``, and the table's borders stay in line.
    """
    if _writes_utf8(stream):
        return lambda text: text
    encoding = getattr(stream, "encoding", None) or "ascii"
    try:
        codecs.lookup(encoding)
    except LookupError:
        encoding = "ascii"
    return lambda text: text.encode(encoding, "backslashreplace").decode(encoding)


def _isatty(stream: IO[str]) -> bool:
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty()) if callable(isatty) else False
    except ValueError:  # closed
        return False


class Output:
    """Writes results in the chosen form (``json`` or human) to the given streams."""

    def __init__(
        self, *, as_json: bool, stdout: IO[str] | None = None, stderr: IO[str] | None = None
    ) -> None:
        self.as_json = as_json
        self.stdout = stdout or sys.stdout
        self.stderr = stderr or sys.stderr

    # -- for programs and people ------------------------------------------------------

    def json_line(self, item: Any) -> None:
        """One JSON object on one line (models through ``to_dict``)."""
        self.stdout.write(json_text(item, ascii_only=not _writes_utf8(self.stdout)) + "\n")

    def item(self, item: Any, *, text: str) -> None:
        """One result: a JSON line with ``--json``, else ``text`` (made safe)."""
        if self.as_json:
            self.json_line(item)
        else:
            self.stdout.write(safe_text(text) + "\n")
        self.stdout.flush()

    def items(
        self, items: Iterable[Any], *, title: str = "", columns: Sequence[Column] | None = None
    ) -> int:
        """Many results: JSON lines as they come with ``--json``, else one table at the end.

        ``columns`` replaces the table's usual columns for such rows.

        Returns:
            How many were written.
        """
        if self.as_json:
            count = 0
            for item in items:
                self.json_line(item)
                count += 1
            self.stdout.flush()
            return count
        rows = list(items)
        self.table(rows, title=title, columns=columns)
        return len(rows)

    def table(
        self, rows: Sequence[Any], *, title: str = "", columns: Sequence[Column] | None = None
    ) -> None:
        """A table of models (messages, conversations, addresses) for a person."""
        _need_rich()
        from rich.console import Console
        from rich.table import Table
        from rich.text import Text

        headers, cells = rows_for(rows, columns)
        shown = _showable(self.stdout)
        table = Table(
            title=Text(shown(safe_text(title))) if title else None,
            title_justify="left",
            show_lines=False,
        )
        for header in headers:
            table.add_column(header, overflow="fold", no_wrap=header in ("time", "id"))
        for row in cells:
            # Text, not str: a str cell is parsed as markup, and "[/]" in a name would
            # end the command with a MarkupError for everyone who reads it.
            table.add_row(*(Text(shown(safe_text(cell))) for cell in row))
        console = Console(file=self.stdout, highlight=False, soft_wrap=False)
        if not rows:
            console.print("(none)", markup=False)
            return
        console.print(table)

    def message_line(self, message: Any) -> None:
        """A live message: a JSON line, or ``time  sender: text`` for a person."""
        if self.as_json:
            self.json_line(message)
        else:
            text = message.text if message.text is not None else f"({message.subtype})"
            line = f"{local_time(message.ts)}  {sender(message)}: {text}"
            self.stdout.write(safe_text(line) + "\n")
        self.stdout.flush()

    # -- for people only, on stderr ---------------------------------------------------

    def status(self, text: str) -> None:
        """A status line on stderr (never on stdout, so pipes stay clean), made safe."""
        self.stderr.write(safe_text(text) + "\n")
        self.stderr.flush()

    def error(self, text: str) -> None:
        """An error line on stderr."""
        self.status(f"signalwire-chat: error: {text}")

    def progress(
        self, items: Iterable[Any], *, what: str, total: int | None = None
    ) -> Iterator[Any]:
        """Yield ``items`` while a progress bar on stderr counts them (terminals only).

        Not while JSON lines stream to a terminal too: they would be written into the bar's
        line and keep its text in front of them on the screen (a table comes after the bar).
        """
        if not self.stderr.isatty() or (self.as_json and _isatty(self.stdout)):
            yield from items
            return
        try:
            _need_rich()
        except MissingExtraError:
            yield from items
            return
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            SpinnerColumn,
            TextColumn,
            TimeElapsedColumn,
        )

        columns: list[Any] = [SpinnerColumn(), TextColumn(what)]
        if total is not None:
            columns += [BarColumn(), MofNCompleteColumn()]
        else:
            columns.append(TextColumn("{task.completed}"))
        columns.append(TimeElapsedColumn())
        console = Console(file=self.stderr)
        with Progress(*columns, console=console, transient=True) as bar:
            task = bar.add_task(what, total=total)
            for item in items:
                bar.advance(task)
                yield item
