"""Pages and auto-paging: the generic :class:`Page`, and :class:`ChatPage` with its filling logic.

A :class:`Page` is one page of a REST listing as the service cut it. A :class:`ChatPage` is what
``get_messages`` returns: ``page_size`` chat messages of one address, newest first, gathered
across as many raw pages (of any subtype) as needed.

Chat pages of one ``get_messages`` call share a :class:`_ChatHistory`: the chat messages read
so far, in order, and the cursor of the next raw page. Chat page *k* is the slice
``[k * size, (k + 1) * size)`` of that list, so ``prev_page()`` is by construction the exact
inverse of ``next_page()`` (same items, same order, none skipped) and costs no request. One chat
message beyond the page is always looked for, so ``has_next`` is true iff another chat message
exists. Raw pages are requested larger than the chat page, which saves requests when most
messages of a conversation are not chat messages.

A server could hand out fresh ``next`` cursors forever with no chat message of the address on
them. One call (``get_messages``, ``next_page``) or one step of an iteration therefore walks at
most ``MAX_RAW_PAGES_PER_STEP`` (100) raw pages before raising :class:`PageLimitError`; the
generic :meth:`Page.iter_pages` allows as many empty pages in a row.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

from ._convert import decoder
from ._http import HttpTransport
from ._route import Route
from ._validate import MAX_PAGE_SIZE
from .errors import DecodeError, PageLimitError, UnsafeLinkError
from .models import ConversationChatMessage

__all__ = [
    "MAX_PAGE_SIZE",
    "MAX_RAW_PAGES_PER_STEP",
    "ChatPage",
    "Page",
    "iter_chat_messages",
    "raw_page_size",
]

T = TypeVar("T")

#: The most raw pages one call or one iteration step reads while looking for chat messages
#: (100 pages of up to 1,000 messages: a conversation would need 100,000 non-chat messages in
#: a row to reach it).
MAX_RAW_PAGES_PER_STEP = 100


def raw_page_size(page_size: int) -> int:
    """The raw request size used to fill chat pages of ``page_size`` (plus the look-ahead)."""
    return min(MAX_PAGE_SIZE, max(100, 4 * page_size + 1))


def parse_page(obj: Any) -> tuple[list[Any], dict[str, Any]]:
    """Split a wire page into its ``data`` list and ``links`` mapping.

    Raises:
        DecodeError: Not ``{"data": [...], "links": {...}}`` (``links`` may be missing or null).
    """
    if type(obj) is not dict:
        raise DecodeError("page: expected an object with 'data'")
    data = obj.get("data")
    if type(data) is not list:
        raise DecodeError("page: field 'data' must be an array", field="data")
    links = obj.get("links")
    if links is None:
        links = {}
    elif type(links) is not dict:
        raise DecodeError("page: field 'links' must be an object", field="links")
    return data, links


class _Fetcher(Generic[T]):
    """Fetches and structures pages of one listing."""

    __slots__ = ("structure", "transport")

    def __init__(self, transport: HttpTransport, structure: Callable[[Any], T]) -> None:
        self.transport = transport
        self.structure = structure

    def fetch(self, url: str) -> Page[T]:
        data, links = parse_page(self.transport.request("GET", url))
        items = []
        structure = self.structure
        for index, raw in enumerate(data):
            try:
                items.append(structure(raw))
            except DecodeError as exc:
                field = f"data[{index}]" + (f".{exc.field}" if exc.field else "")
                raise DecodeError(f"{field}: {exc.message}", field=field) from None
        return Page(
            items,
            url=url,
            next_url=self.transport.resolve_link(links.get("next")),
            prev_url=self.transport.resolve_link(links.get("prev")),
            fetcher=self,
        )


class _PageBase(Generic[T]):
    """What both page types share: a sequence of ``data``, walking on, notebook display."""

    __slots__ = ()

    data: list[T]

    def _summary(self) -> str:
        raise NotImplementedError

    def iter_pages(self) -> Iterator[_PageBase[T]]:
        raise NotImplementedError

    def iter_items(self, limit: int | None = None) -> Iterator[T]:
        """Yield the items of this page and of every following one, lazily.

        Args:
            limit: Stop after this many items (``None``: all).
        """
        if limit is not None and limit <= 0:
            return
        count = 0
        for page in self.iter_pages():
            for item in page.data:
                yield item
                count += 1
                if limit is not None and count >= limit:
                    return

    def __iter__(self) -> Iterator[T]:
        return iter(self.data)

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int) -> T:
        return self.data[index]

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        from ._display import one_line

        if cycle:
            printer.text(f"{type(self).__name__}(...)")
            return
        caption = self._caption()
        text = caption[0] if isinstance(caption, tuple) else caption
        with printer.group(2, text + " [", "]"):
            for index, item in enumerate(self.data):
                if index:
                    printer.text(",")
                printer.breakable()
                printer.text(one_line(item))

    def _repr_html_(self) -> str:
        from ._display import html_table, rows_for

        headers, rows = rows_for(self.data)
        return html_table(headers, rows, caption=self._caption())

    def _caption(self) -> str | tuple[str, str]:
        """What notebooks show above the rows: ``_summary()``, or ``(text, title)``."""
        return self._summary()

    def __repr__(self) -> str:
        return self._summary()


class Page(_PageBase[T]):
    """One page of a paginated listing, as the service cut it.

    Iterating a page, or taking its ``len``, covers this page only; :meth:`~Page.iter_items` and
    :meth:`iter_pages` walk on through the following pages.

    Attributes:
        data: The items of this page.
    """

    __slots__ = ("_fetcher", "_next_url", "_prev_url", "_url", "data")

    data: list[T]

    def __init__(
        self,
        data: list[T],
        *,
        url: str,
        next_url: str | None,
        prev_url: str | None,
        fetcher: _Fetcher[T],
    ) -> None:
        self.data = data
        self._url = url
        self._next_url = next_url
        self._prev_url = prev_url
        self._fetcher = fetcher

    @property
    def has_next(self) -> bool:
        """Whether the service announced a following page."""
        return self._next_url is not None

    @property
    def has_prev(self) -> bool:
        """Whether the service announced a previous page."""
        return self._prev_url is not None

    def next_page(self) -> Page[T] | None:
        """Fetch the following page, or return ``None`` at the end.

        Raises:
            UnsafeLinkError: The link points back at this very page.
        """
        return self._follow(self._next_url)

    def prev_page(self) -> Page[T] | None:
        """Fetch the previous page, or return ``None`` at the start.

        Raises:
            UnsafeLinkError: The link points back at this very page.
        """
        return self._follow(self._prev_url)

    def _follow(self, url: str | None) -> Page[T] | None:
        if url is None:
            return None
        if url == self._url:
            raise UnsafeLinkError("a pagination link points at its own page (a link cycle)")
        return self._fetcher.fetch(url)

    def iter_pages(self) -> Iterator[Page[T]]:
        """Yield this page and every following one, stopping on the first repeated link.

        Raises:
            UnsafeLinkError: The ``next`` links loop.
            PageLimitError: ``MAX_RAW_PAGES_PER_STEP`` (100) empty pages in a row.
        """
        page: Page[T] | None = self
        seen = {self._url}
        empty = 0
        while page is not None:
            yield page
            empty = 0 if page.data else empty + 1
            url = page._next_url
            if url is None:
                return
            if url in seen:
                raise UnsafeLinkError("the pagination links loop; stopped")
            if empty >= MAX_RAW_PAGES_PER_STEP:
                raise PageLimitError(
                    f"{empty} empty pages in a row and the server still announces more; stopped",
                    limit=MAX_RAW_PAGES_PER_STEP,
                )
            seen.add(url)
            page = page._fetcher.fetch(url)

    def _summary(self) -> str:
        return f"Page({len(self.data)} items, has_next={self.has_next}, has_prev={self.has_prev})"


class _ChatHistory:
    """The chat messages of one conversation read so far, newest first, and the raw cursor.

    A raw message is kept when it is chat and belongs to ``route``: the route's message field
    (its kind's) is the route's value. A group's history may leave ``group_id`` out (the path
    said which group it is), an address conversation's must carry ``conversation_id``. On
    the inbox route every chat message is kept.
    """

    def __init__(self, transport: HttpTransport, first_url: str, route: Route) -> None:
        self.transport = transport
        self.route = route
        self.field = route.field
        self.value = value = route.value
        # What a message without the field counts as: a match for groups only.
        self._absent = value if route.grouped else None
        self.address_id = route.address_id
        self.messages: list[ConversationChatMessage] = []
        self._ids: set[str] = set()
        self._next_url: str | None = first_url
        self._seen_urls: set[str] = set()
        self._lock = threading.Lock()
        self.raw_requests = 0

    def ensure(self, count: int) -> None:
        """Read raw pages until ``count`` chat messages are known or the history ends.

        Raises:
            PageLimitError: ``MAX_RAW_PAGES_PER_STEP`` (100) raw pages were read and more are
                announced, without reaching ``count``.
        """
        with self._lock:
            walked = 0
            while len(self.messages) < count and self._next_url is not None:
                if walked >= MAX_RAW_PAGES_PER_STEP:
                    raise PageLimitError(
                        f"read {walked} raw pages of {self.address_id!r} in one step and the "
                        "server still announces more without enough chat messages; stopped",
                        limit=MAX_RAW_PAGES_PER_STEP,
                    )
                self._read_one()
                walked += 1

    def _read_one(self) -> None:
        url = self._next_url
        assert url is not None
        if url in self._seen_urls:
            self._next_url = None
            raise UnsafeLinkError("the pagination links loop; stopped")
        self._seen_urls.add(url)
        data, links = parse_page(self.transport.request("GET", url))
        self.raw_requests += 1
        next_url = self.transport.resolve_link(links.get("next"))
        field, value, absent = self.field, self.value, self._absent
        decode = decoder(ConversationChatMessage)
        ids, messages = self._ids, self.messages
        for index, raw in enumerate(data):
            # Chat messages of this conversation only (inline: it runs for every message).
            if (
                type(raw) is not dict
                or raw.get("subtype") != "chat"
                or (field is not None and raw.get(field, absent) != value)
            ):
                continue
            try:
                message = decode(raw)
            except DecodeError as exc:
                field = f"data[{index}]" + (f".{exc.field}" if exc.field else "")
                raise DecodeError(f"{field}: {exc.message}", field=field) from None
            message_id = message.id
            if message_id in ids:
                continue  # shifted across a raw page boundary by a newer message
            ids.add(message_id)
            messages.append(message)
        # An empty raw page with a next link would loop forever on a broken server.
        self._next_url = next_url if data else None


class ChatPage(_PageBase[ConversationChatMessage]):
    """A page of chat messages of one address, newest first (what ``get_messages`` returns).

    ``has_next`` / ``has_prev`` are true iff at least one more chat message exists in that
    direction; ``prev_page()`` returns exactly the page ``next_page()`` came from.

    Attributes:
        data: The chat messages of this page, newest first.
        page_size: The number of messages per page (the last page may hold fewer).
    """

    __slots__ = ("_history", "_start", "data", "page_size")

    data: list[ConversationChatMessage]

    def __init__(self, history: _ChatHistory, start: int, page_size: int) -> None:
        # Every attribute is set before the fetch, so a repr taken while it fails (a
        # traceback tool capturing locals) works.
        self._history = history
        self._start = start
        self.page_size = page_size
        self.data = []
        history.ensure(start + page_size + 1)  # +1: the look-ahead that decides has_next
        self.data = history.messages[start : start + page_size]

    @property
    def address_id(self) -> str | None:
        """The address whose chat messages these are (``None`` for a :class:`Group`'s)."""
        return self._history.address_id

    @property
    def group_id(self) -> str | None:
        """The group whose chat messages these are, in the group dialect."""
        route = self._history.route
        return route.value if route.grouped else None

    @property
    def has_next(self) -> bool:
        """Whether at least one older chat message exists."""
        return len(self._history.messages) > self._start + self.page_size

    @property
    def has_prev(self) -> bool:
        """Whether at least one newer chat message exists (one this chain has read)."""
        return self._start > 0

    def next_page(self) -> ChatPage | None:
        """The following (older) chat page, or ``None`` when there is none."""
        if not self.has_next:
            return None
        return ChatPage(self._history, self._start + self.page_size, self.page_size)

    def prev_page(self) -> ChatPage | None:
        """The previous (newer) chat page, or ``None`` at the newest; never a request."""
        if self._start == 0:
            return None
        return ChatPage(self._history, max(0, self._start - self.page_size), self.page_size)

    def iter_pages(self) -> Iterator[ChatPage]:
        """Yield this page and every older one."""
        page: ChatPage | None = self
        while page is not None:
            yield page
            page = page.next_page()

    def _summary(self) -> str:
        return self._summary_of(repr(self.address_id or self.group_id))

    def _summary_of(self, conversation: str) -> str:
        return (
            f"ChatPage({len(self.data)} messages of {conversation}, "
            f"has_next={self.has_next}, has_prev={self.has_prev})"
        )

    def _caption(self) -> tuple[str, str]:
        """The conversation's name where a message says it, its ids in the title."""
        from ._display import conversation_name, named

        group = f"group {self.group_id}" if self.group_id is not None else ""
        if self.address_id is not None:
            ident, detail = self.address_id, group
        else:
            ident, detail = group or "the inbox", ""
        shown, title = named(conversation_name(self.data), ident, detail)
        # Quoted, not repr(): ``shown`` is escaped already, and repr would escape its
        # escapes again (a name's ESC shown as "\\x1b" in the caption, "\x1b" in the rows).
        return self._summary_of(f"'{shown}'"), title


def iter_chat_messages(
    transport: HttpTransport,
    first_url: str,
    route: Route,
    limit: int | None,
) -> Iterator[ConversationChatMessage]:
    """Yield the chat messages from ``first_url`` on, newest first, lazily.

    Kept: those of ``route`` (see :class:`_ChatHistory`). Nothing is
    requested until the first item is asked for, and no page after the one holding the
    ``limit``-th message. The messages of a raw page are handed out by ``itertools`` (no
    Python frame resumed per message: one fewer per message of ``iter_messages``).
    """
    if limit is not None and limit <= 0:
        return iter(())
    messages = itertools.chain.from_iterable(_batches(_ChatHistory(transport, first_url, route)))
    return messages if limit is None else itertools.islice(messages, limit)


def _batches(history: _ChatHistory) -> Iterator[list[ConversationChatMessage]]:
    """The chat messages of each raw page, in turn (only the current one is held)."""
    while True:
        history.ensure(1)
        batch = history.messages
        if not batch:
            return
        history.messages = []  # keep memory flat: only the current raw page is held
        yield batch
