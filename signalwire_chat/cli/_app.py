"""The parser, the commands and the exit codes of ``signalwire-chat``.

argparse (the standard library) parses: the commands are few and flat, the emulator's own
command line already uses it (``signalwire-chat emulator`` reuses that parser unchanged), and
it adds nothing to start-up time. Every failure of ours becomes one line on stderr and an
:class:`ExitCode`; the token is read from a file or the environment and never written anywhere.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import enum
import io
import math
import os
import re
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from .. import errors
from .._version import __version__
from ._output import MissingExtraError, Output

if TYPE_CHECKING:
    from .._client import ChatClient
    from .._dialects import Target
    from ..models import ConversationChatMessage

__all__ = ["ExitCode", "build_parser", "main"]

PROG = "signalwire-chat"
TOKEN_ENV = "SIGNALWIRE_TOKEN"  # noqa: S105 - the name of a variable, not a secret
REDIS_URL_ENV = "SIGNALWIRE_REDIS_URL"


class ExitCode(enum.IntEnum):
    """The exit status of ``signalwire-chat``: scripts can branch on it.

    ``OK`` 0; ``ERROR`` 1 (anything else); ``USAGE`` 2 (bad arguments, no token, a bad
    URL); ``AUTH`` 3 (token unreadable or refused, 401); ``PERMISSION`` 4 (403, e.g. not a
    member); ``NOT_FOUND`` 5 (404); ``NETWORK`` 6 (could not connect, timed out);
    ``SERVICE`` 7 (the service failed or answered nonsense: 400, 422, 429, 5xx, a bad
    body); ``INTERRUPTED`` 130 (Ctrl-C); ``BROKEN_PIPE`` 141 (stdout closed, e.g. ``| head``);
    ``TERMINATED`` 143 (SIGTERM, except for ``tail``, whose normal end it is: 0).
    """

    OK = 0
    ERROR = 1
    USAGE = 2
    AUTH = 3
    PERMISSION = 4
    NOT_FOUND = 5
    NETWORK = 6
    SERVICE = 7
    INTERRUPTED = 130
    BROKEN_PIPE = 141
    TERMINATED = 143


class UsageError(Exception):
    """A mistake in how the command was called (exit code 2)."""


def exit_code_for(exc: BaseException) -> ExitCode:
    """The exit code that stands for ``exc`` (see :class:`ExitCode`)."""
    checks: tuple[tuple[type[BaseException] | tuple[type[BaseException], ...], ExitCode], ...] = (
        ((UsageError, errors.InvalidArgumentError, errors.InsecureURLError), ExitCode.USAGE),
        ((errors.TokenError, errors.AuthenticationError), ExitCode.AUTH),
        (errors.PermissionDeniedError, ExitCode.PERMISSION),
        (errors.NotFoundError, ExitCode.NOT_FOUND),
        ((errors.TransportError, errors.RealtimeConnectError), ExitCode.NETWORK),
        ((errors.APIError, errors.DecodeError, errors.UnsafeLinkError), ExitCode.SERVICE),
    )
    for kinds, code in checks:
        if isinstance(exc, kinds):
            return code
    return ExitCode.ERROR


# --- argument types -------------------------------------------------------------------------

_RELATIVE = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_time(text: str, *, now: Callable[[], float] = time.time) -> float:
    """A point in time as Unix seconds, from ``text``.

    Accepted: a duration ago (``90s``, ``15m``, ``2h``, ``3d``, ``1w``), Unix seconds
    (``1764600000``), or ISO 8601 (``2026-12-01``, ``2026-12-01T09:30``, with an offset or
    ``Z``; without one it is local time).

    Raises:
        argparse.ArgumentTypeError: None of these.
    """
    value = text.strip()
    match = _RELATIVE.fullmatch(value)
    if match:
        return now() - float(match.group(1)) * _UNITS[match.group(2)]
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        if math.isfinite(seconds):
            return seconds
    try:
        when = _dt.datetime.fromisoformat(value[:-1] + "+00:00" if value.endswith("Z") else value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a time: {text!r} (use 2h, 3d, Unix seconds or 2026-12-01T09:30)"
        ) from None
    if when.tzinfo is None:
        when = when.astimezone()  # a naive time is local time
    return when.timestamp()


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError("must be a positive number")
    return value


# --- the parser -----------------------------------------------------------------------------

_EPILOG = """\
The token (a Subscriber Access Token) is read from --token-file, or from $SIGNALWIRE_TOKEN; it
is never printed. Hosts are derived from the token; --host, --rest-url and --relay-url (or
$SIGNALWIRE_HOST, $SIGNALWIRE_REST_URL, $SIGNALWIRE_RELAY_URL) override them.
`token mint` and `token refresh` use the project credentials in $SIGNALWIRE_SPACE_URL,
$SIGNALWIRE_PROJECT_ID and $SIGNALWIRE_API_TOKEN.

exit codes: 0 ok, 1 other error, 2 usage, 3 authentication, 4 permission denied (not a
member), 5 not found, 6 network, 7 service error, 130 interrupted (Ctrl-C), 141 stdout closed,
143 terminated (SIGTERM; `tail` exits 0 on SIGTERM instead).
"""


def _common(parser: argparse.ArgumentParser, *, top: bool) -> None:
    """Options every command takes, before or after the command name."""
    # On sub-commands the defaults are SUPPRESS, so an option given before the command is
    # not overwritten by the sub-parser's default.
    default: Any = None if top else argparse.SUPPRESS
    group = parser.add_argument_group("connection")
    group.add_argument(
        "--token-file",
        metavar="PATH",
        default=default,
        help=f"read the token from PATH ('-': stdin); default ${TOKEN_ENV}",
    )
    group.add_argument("--host", default=default, help="realtime host to derive URLs from")
    group.add_argument("--rest-url", default=default, help="REST base URL")
    group.add_argument("--relay-url", default=default, help="relay websocket URL")
    group.add_argument(
        "--dialect",
        choices=("group", "address"),
        default=default,
        help="wire dialect: group (default; what the service speaks today) or address "
        "(@signalwire/js 3.28); also $SIGNALWIRE_DIALECT",
    )
    group.add_argument(
        "--from-address",
        metavar="ADDRESS_ID",
        default=default,
        help="group dialect: the address to speak as (default: your first address)",
    )
    group.add_argument(
        "--timeout",
        type=_positive_float,
        default=default,
        metavar="SECONDS",
        help="connect and read timeout of each request (default 5 and 30)",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        default=False if top else argparse.SUPPRESS,
        help="write JSON (one object per line) instead of text and tables",
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``signalwire-chat`` (the ``emulator`` command is parsed apart)."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Send, read and follow SignalWire Call Fabric chat from the command line.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    _common(parser, top=True)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        _common(sub, top=False)
        return sub

    sub = command("send", "send a chat message")
    sub.add_argument("address_id", help="an address or group id (as `conversations` lists them)")
    sub.add_argument("text", help="the text ('-': read it from stdin)")
    sub.add_argument("--metadata", metavar="JSON", help="a JSON object sent along")
    sub.set_defaults(run=_send)

    sub = command("join", "join a conversation without sending anything")
    sub.add_argument("address_id", help="the address (conversation) to join")
    sub.set_defaults(run=_join)

    target = "an address or group id (as `conversations` lists them)"
    sub = command("history", "a conversation's chat messages (newest first)")
    sub.add_argument("address_id", nargs="?", help=f"{target} to read")
    sub.add_argument("--inbox", action="store_true", help="every message sent to you instead")
    sub.add_argument("--limit", type=_positive_int, help="at most this many messages")
    when = "TIME: 2h, 3d (ago), Unix seconds, or 2026-12-01T09:30 (local unless +HH:MM or Z)"
    sub.add_argument("--since", type=parse_time, metavar="TIME", help="none older; " + when)
    sub.add_argument("--until", type=parse_time, metavar="TIME", help="none newer than TIME")
    sub.add_argument(
        "--oldest-first", action="store_true", help="print in time order (reads all first)"
    )
    sub.set_defaults(run=_history)

    sub = command("tail", "print new chat messages as they arrive, until Ctrl-C")
    sub.add_argument("address_id", nargs="?", help=f"{target} to follow")
    sub.add_argument("--inbox", action="store_true", help="every message sent to you instead")
    sub.add_argument(
        "--history", type=_positive_int, default=0, metavar="N", help="first print the last N"
    )
    sub.add_argument("--count", type=_positive_int, help="exit 0 after this many new messages")
    sub.add_argument(
        "--idle-timeout", type=_positive_float, metavar="SECONDS", help="exit 0 after silence"
    )
    sub.set_defaults(run=_tail)

    sub = command(
        "bridge",
        "append chat messages to a Redis Stream, one active replica at a time (until Ctrl-C)",
    )
    sub.add_argument(
        "address_id", nargs="*", help="addresses (conversations) to follow; none: the inbox"
    )
    sub.add_argument(
        "--redis", metavar="URL", help="redis://host:port/db, without a password (see below)"
    )
    sub.add_argument(
        "--redis-file",
        metavar="PATH",
        help=f"read the Redis URL from PATH ('-': stdin); default ${REDIS_URL_ENV}",
    )
    sub.add_argument("--stream", required=True, metavar="KEY", help="the stream's key")
    sub.add_argument(
        "--name",
        required=True,
        help="the bridge's name: replicas with the same name share its lease and checkpoints",
    )
    sub.add_argument(
        "--ttl", type=_positive_float, default=10.0, metavar="SECONDS", help="lease TTL"
    )
    sub.set_defaults(run=_bridge)

    sub = command("whoami", "the subscriber the token belongs to")
    sub.set_defaults(run=_whoami)

    sub = command("addresses", "addresses visible to the subscriber")
    sub.add_argument("--type", choices=("app", "call", "room", "subscriber"))
    sub.add_argument("--display-name", help="only addresses with this display name")
    sub.add_argument("--limit", type=_positive_int, help="at most this many")
    sub.set_defaults(run=_addresses)

    sub = command("conversations", "the conversations the subscriber belongs to")
    sub.add_argument("--limit", type=_positive_int, help="at most this many")
    sub.set_defaults(run=_conversations)

    token = commands.add_parser("token", help="mint or refresh subscriber tokens (project creds)")
    token_commands = token.add_subparsers(dest="token_command", metavar="ACTION", required=True)
    sub = token_commands.add_parser("mint", help="mint a subscriber token (prints the token)")
    _common(sub, top=False)
    sub.add_argument("reference", help="the subscriber's reference, e.g. an email address")
    sub.add_argument("--display-name")
    sub.add_argument("--first-name")
    sub.add_argument("--last-name")
    sub.add_argument("--ttl", type=_positive_int, metavar="SECONDS", help="token lifetime")
    sub.add_argument("--space-url", help="default $SIGNALWIRE_SPACE_URL")
    sub.set_defaults(run=_token_mint)
    sub = token_commands.add_parser("refresh", help="exchange a refresh token for a new token")
    _common(sub, top=False)
    sub.add_argument(
        "--refresh-token-file",
        metavar="PATH",
        help="read the refresh token from PATH; default $SIGNALWIRE_REFRESH_TOKEN",
    )
    sub.add_argument("--space-url", help="default $SIGNALWIRE_SPACE_URL")
    sub.set_defaults(run=_token_refresh)

    commands.add_parser(
        "emulator",
        help="run the local emulator (the options of python -m signalwire_chat.emulator)",
        add_help=False,
    )
    return parser


# --- the token and the client ---------------------------------------------------------------


# A secret where a path was expected: a compact JWS or JWE (a SAT is one), or one long run of
# base64 characters in mixed case with digits (an opaque token). File names are rarely either.
_JOSE = re.compile(r"[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]*){2}(?:\.[A-Za-z0-9_-]*){2}?")
_OPAQUE = re.compile(r"(?=.*[0-9])(?=.*[a-z])(?=.*[A-Z])[A-Za-z0-9_+=-]+")
_SECRET_LENGTH = 40
_MAX_SHOWN_PATH = 120


def shown_path(path: str) -> str:
    """``path`` as an error message may show it: quoted, escaped, bounded; never a secret.

    A value shaped like a token (pasted by mistake where a path belongs) is not shown at all.
    """
    value = path.strip()
    if len(value) >= _SECRET_LENGTH and (_JOSE.fullmatch(value) or _OPAQUE.fullmatch(value)):
        return "(not shown: the value looks like a token, not a path)"
    shown = repr(path)
    return shown if len(shown) <= _MAX_SHOWN_PATH else shown[: _MAX_SHOWN_PATH - 4] + "...'"


def _read_secret_file(path: str, what: str) -> str:
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(
            f"cannot read the {what} file {shown_path(path)}: {exc.strerror}"
        ) from None
    except UnicodeDecodeError:
        raise UsageError(f"the {what} file {shown_path(path)} is not UTF-8 text") from None
    value = text.strip()
    if not value:
        raise UsageError(f"the {what} file {shown_path(path)} is empty")
    return value


def read_token(args: argparse.Namespace) -> str:
    """The token from ``--token-file`` or ``$SIGNALWIRE_TOKEN``, surrounding whitespace removed.

    Raises:
        UsageError: Neither is given, or the file cannot be read or is empty.
    """
    if getattr(args, "token_file", None):
        return _read_secret_file(args.token_file, "token")
    value = os.environ.get(TOKEN_ENV, "").strip()
    if not value:
        raise UsageError(f"no token: give --token-file PATH or set ${TOKEN_ENV}")
    return value


def _option(args: argparse.Namespace, name: str, env: str) -> str | None:
    value = getattr(args, name, None)
    return value if value else (os.environ.get(env) or None)


def make_client(args: argparse.Namespace, **kwargs: Any) -> ChatClient:
    """A ChatClient from the parsed options (token, hosts, timeout)."""
    from .._client import ChatClient
    from .._token import check_url

    if getattr(args, "timeout", None) is not None:
        kwargs["timeout"] = args.timeout
    dialect = _option(args, "dialect", "SIGNALWIRE_DIALECT") or "group"
    if dialect not in ("group", "address"):
        raise UsageError(f"SIGNALWIRE_DIALECT must be group or address, not {dialect!r}")
    rest_url = _option(args, "rest_url", "SIGNALWIRE_REST_URL")
    relay_url = _option(args, "relay_url", "SIGNALWIRE_RELAY_URL")
    # Checked here first: ChatClient's refusal of plain text to another host names its
    # allow_insecure=True, which the command line does not offer.
    for url, kind in ((rest_url, "rest"), (relay_url, "relay")):
        if url is not None:
            check_url(url, kind=kind, opt_in=None)
    return ChatClient(
        read_token(args),
        host=_option(args, "host", "SIGNALWIRE_HOST"),
        rest_url=rest_url,
        relay_url=relay_url,
        dialect=dialect,
        from_address_id=getattr(args, "from_address", None),
        **kwargs,
    )


# --- the commands ---------------------------------------------------------------------------


def _send(args: argparse.Namespace, out: Output) -> ExitCode:
    import json

    # The trailing line endings of piped text go, a file's CRLF ones whole (not their \r).
    text = sys.stdin.read().rstrip("\r\n") if args.text == "-" else args.text
    metadata = None
    if args.metadata is not None:
        try:
            metadata = json.loads(args.metadata)
        except ValueError as exc:
            raise UsageError(f"--metadata is not JSON: {exc}") from None
        except RecursionError:  # the decoder recurses once per level
            raise UsageError("--metadata is nested too deeply") from None
    with make_client(args) as client:
        _not_me(client, args.address_id, "send to")
        target = _address_or_group(client, args.address_id)
        with _neither("send to", target):
            result = client.send_message(target, text, metadata=metadata)
    out.item(result, text=f"sent to {args.address_id}")
    return ExitCode.OK


def _join(args: argparse.Namespace, out: Output) -> ExitCode:
    address_id = _address_id(args.address_id)
    with make_client(args) as client:
        _not_me(client, address_id, "join")
        result = client.join(address_id)
    out.item(result, text=f"joined {args.address_id}")
    return ExitCode.OK


def _window(
    messages: Iterator[ConversationChatMessage],
    since: float | None,
    until: float | None,
    limit: int | None,
) -> Iterator[ConversationChatMessage]:
    """Newest-first messages within ``[since, until]``, at most ``limit`` of them."""
    count = 0
    for message in messages:
        if until is not None and message.ts > until:
            continue
        if since is not None and message.ts < since:
            return  # the history is newest first: everything after is older still
        yield message
        count += 1
        if limit is not None and count >= limit:
            return


class _Names:
    """Display names of senders, looked up once per address (people's output only)."""

    def __init__(self, client: ChatClient) -> None:
        self._client = client
        self._names: dict[str, str | None] = {}

    def __call__(self, message: Any) -> Any:
        import attrs

        address_id = message.from_address_id
        if message.user_name is not None or address_id is None:
            return message
        if address_id not in self._names:
            try:
                address = self._client.get_address(id=address_id)
            except errors.ChatError:  # a name is a nicety: the id is shown instead
                self._names[address_id] = None
            else:
                self._names[address_id] = address.display_name or address.name
        name = self._names[address_id]
        return message if name is None else attrs.evolve(message, user_name=name)


def _target_id(args: argparse.Namespace) -> str | None:
    """The id given to ``history`` or ``tail``, or None for ``--inbox`` (exactly one of them)."""
    if args.inbox == (args.address_id is not None):
        both = ", not both" if args.inbox else ""
        raise UsageError(
            f"{args.command}: give an address_id (an address or group id, as `conversations`"
            f" lists them) or --inbox{both}"
        )
    return None if args.inbox else str(args.address_id)


def _resolve(client: ChatClient, target_id: str | None, out: Output) -> Target | None:
    """What ``history`` and ``tail`` read: an address id, a :class:`Group`, or None: the inbox.

    ``conversations`` lists groups by their group id, and (address-era rows) addresses; the
    subscriber's own address stands for everything sent to it, the inbox.
    """
    if target_id is None:
        return None
    if client.dialect == "group" and target_id == client.my_address_id():
        out.status(f"{target_id} is your own address: reading your inbox (everything sent to you)")
        return None
    return _address_or_group(client, target_id)


def _address_or_group(client: ChatClient, target_id: str) -> Target:
    """An address id, or (group dialect) the :class:`Group` an id stands for.

    Address ids are UUIDs and group ids are opaque: in the group dialect an id is tried as an
    address first (its group is joined, as every read of or send to an address does), and
    taken for a group when it is not a UUID or the service knows no such address.
    """
    from .._validate import looks_like_uuid
    from ..models import Group

    if client.dialect != "group":
        return _address_id(target_id)
    if not looks_like_uuid(target_id):
        return Group(id=target_id)
    try:
        client.join(target_id)  # the group of (you, that address); kept for what follows
    except errors.NotFoundError as exc:
        if not _is_join(exc):
            raise
        return Group(id=target_id)
    return target_id


def _address_id(value: str) -> str:
    """``value`` if it can be an address id, else a usage error saying where ids are found."""
    from .._validate import looks_like_uuid

    if not looks_like_uuid(value):
        raise UsageError(
            f"{value!r} is not an address id: address ids are UUIDs"
            " (`signalwire-chat addresses` lists them, --display-name finds one)"
        )
    return value


def _not_me(client: ChatClient, address_id: str, what: str) -> None:
    if client.dialect == "group" and address_id == client.my_address_id():
        raise UsageError(
            f"cannot {what} your own address {address_id}: the service has no conversation of"
            " one address (`history --inbox` and `tail --inbox` read everything sent to you)"
        )


def _is_join(exc: errors.APIError) -> bool:
    return exc.method == "POST" and (exc.url or "").endswith("/conversations/join")


@contextlib.contextmanager
def _neither(what: str, target: Target | None) -> Iterator[None]:
    """A 404 on reading the group an id was taken for: it is neither an address nor a group."""
    from ..models import Group

    try:
        yield
    except errors.NotFoundError as exc:
        if isinstance(target, Group):
            exc.message = f"cannot {what} {target.id!r}: no such address or group"
        raise


def _history(args: argparse.Namespace, out: Output) -> ExitCode:
    target_id = _target_id(args)
    if args.since is not None and args.until is not None and args.since > args.until:
        raise UsageError("--since is later than --until")
    with make_client(args) as client:
        target = _resolve(client, target_id, out)
        source = client.iter_inbox() if target is None else client.iter_messages(target)
        messages: Iterator[Any] = _window(source, args.since, args.until, args.limit)
        messages = out.progress(messages, what="reading history", total=args.limit)
        if args.oldest_first:
            messages = iter(list(messages)[::-1])
        if not out.as_json:
            messages = map(_Names(client), messages)
        title = "your inbox" if target is None else f"chat history of {target_id}"
        with _neither("read the history of", target):
            out.items(messages, title=title)
    return ExitCode.OK


def _tail(args: argparse.Namespace, out: Output) -> ExitCode:
    from .._realtime import ConnectionState
    from ..models import Group

    clients: list[ChatClient] = []

    def on_state(state: ConnectionState) -> None:
        if state is ConnectionState.RECONNECTING:
            out.status("connection lost; reconnecting...")
        elif state is ConnectionState.CONNECTED:
            following = "your inbox" if args.inbox else args.address_id
            out.status(f"connected; following {following} (Ctrl-C to stop)")
        elif state is ConnectionState.FAILED:
            # Only a refused token is the token's fault; an unreachable relay is the network's.
            reason = clients[0].health().connection_state_reason if clients else None
            if reason == "token refused":
                out.status("the relay refused the token; giving up")
            else:
                out.status(f"the relay connection failed ({reason or 'cannot connect'}); giving up")

    target_id = _target_id(args)
    with make_client(args, on_state_change=on_state) as client:
        clients.append(client)
        names: Callable[[Any], Any] = (lambda message: message) if out.as_json else _Names(client)
        target = _resolve(client, target_id, out)
        if isinstance(target, Group):
            # Subscribing to a group the service does not know fails silently: one read first.
            with _neither("follow", target):
                next(client.iter_messages(target, limit=1), None)
        if target is None:
            stream = client.stream_inbox(timeout=args.idle_timeout)
        else:
            stream = client.stream_messages(target, timeout=args.idle_timeout)
        printed: set[str] = set()
        if args.history:
            # Subscribed first, then read: nothing falls between; shown ids are skipped live.
            recent = list(
                client.iter_inbox(limit=args.history)
                if target is None
                else client.iter_messages(target, limit=args.history)
            )
            for message in reversed(recent):
                out.message_line(names(message))
                printed.add(message.id)
        count = 0
        for message in stream:
            if message.id in printed:
                continue
            out.message_line(names(message))
            count += 1
            if args.count is not None and count >= args.count:
                break
    return ExitCode.OK


def _bridge(args: argparse.Namespace, out: Output) -> ExitCode:
    try:
        from ..bridge import StreamBridge
    except ImportError:
        raise UsageError(
            "the bridge needs the redis extra: pip install 'signalwire-chat[redis]'"
        ) from None

    redis_url = _redis_url(args)
    with make_client(args) as client:
        bridge = StreamBridge(
            client,
            redis_url,
            stream=args.stream,
            name=args.name,
            targets=args.address_id or None,
            ttl=args.ttl,
            on_error=lambda error: out.status(f"warning: {error}"),
            on_leading=lambda token: out.status(
                f"bridge {args.name}: leading (fencing token {token}); appending"
            ),
        )
        with bridge:
            follows = ", ".join(args.address_id) if args.address_id else "the inbox"
            out.status(f"bridge {args.name}: {follows} -> {args.stream}; standing by for the lease")
            try:
                bridge.run()
            except _Terminated:
                out.status(f"bridge {args.name}: terminated; {bridge.appended} appended")
                return ExitCode.OK
    return ExitCode.OK


def _redis_url(args: argparse.Namespace) -> str:
    """The bridge's Redis URL: --redis-file, --redis (no password), or $SIGNALWIRE_REDIS_URL.

    A password belongs in the file or the variable: other users see a process's argv.
    """
    if args.redis_file:
        return _read_secret_file(args.redis_file, "Redis URL")
    if args.redis:
        try:
            parts = urlsplit(args.redis)
            has_password = parts.password is not None or "password" in parse_qs(parts.query)
        except ValueError:
            has_password = False  # not a URL at all: the bridge says so, without showing it
        if has_password:
            raise UsageError(
                "--redis must not carry a password (others can read a command line): put the "
                f"URL in a file for --redis-file, or in ${REDIS_URL_ENV}"
            )
        return str(args.redis)
    value = os.environ.get(REDIS_URL_ENV, "").strip()
    if not value:
        raise UsageError(f"no Redis URL: give --redis-file PATH, set ${REDIS_URL_ENV}, or --redis")
    return value


def _whoami(args: argparse.Namespace, out: Output) -> ExitCode:
    with make_client(args) as client:
        info = client.get_subscriber_info()
    name = info.display_name or info.email or info.id
    addresses = ", ".join(a.id for a in info.fabric_addresses)
    out.item(info, text=f"{name} (subscriber {info.id}; addresses: {addresses or 'none'})")
    return ExitCode.OK


def _addresses(args: argparse.Namespace, out: Output) -> ExitCode:
    with make_client(args) as client:
        page = client.get_addresses(type=args.type, display_name=args.display_name, page_size=100)
        out.items(page.iter_items(limit=args.limit), title="addresses")
    return ExitCode.OK


def _conversations(args: argparse.Namespace, out: Output) -> ExitCode:
    from .._display import conversation_columns

    with make_client(args) as client:
        page = client.get_conversations(page_size=100)
        # Each row's id is one that `history` and `tail` take; your own address's row is
        # your inbox (a person's table only: --json needs no lookup).
        me = None if out.as_json or client.dialect != "group" else client.my_address_id()
        columns = conversation_columns(me)
        out.items(page.iter_items(limit=args.limit), title="conversations", columns=columns)
    return ExitCode.OK


def _project(args: argparse.Namespace) -> tuple[str, str, str]:
    missing = [
        name
        for name in ("SIGNALWIRE_PROJECT_ID", "SIGNALWIRE_API_TOKEN")
        if not os.environ.get(name, "").strip()
    ]
    space = args.space_url or os.environ.get("SIGNALWIRE_SPACE_URL", "").strip()
    if not space:
        missing.insert(0, "SIGNALWIRE_SPACE_URL (or --space-url)")
    if missing:
        raise UsageError("project credentials missing: set " + ", ".join(missing))
    return (
        space,
        os.environ["SIGNALWIRE_PROJECT_ID"].strip(),
        os.environ["SIGNALWIRE_API_TOKEN"].strip(),
    )


def _token_out(out: Output, token: Any) -> None:
    record = {
        "token": token.token,
        "refresh_token": token.refresh_token,
        "issued_at": token.issued_at,
    }
    # The token is what was asked for: alone on stdout, so `> token.txt` makes a token file.
    out.item(record, text=token.token)


def _token_mint(args: argparse.Namespace, out: Output) -> ExitCode:
    from .._backend import mint_subscriber_token

    space, project, api_token = _project(args)
    options: dict[str, Any] = {
        "display_name": args.display_name,
        "first_name": args.first_name,
        "last_name": args.last_name,
    }
    if args.ttl is not None:
        options["expire_at"] = int(time.time()) + args.ttl
    if getattr(args, "timeout", None) is not None:
        options["timeout"] = args.timeout
    token = mint_subscriber_token(space, project, api_token, args.reference, **options)
    _token_out(out, token)
    return ExitCode.OK


def _token_refresh(args: argparse.Namespace, out: Output) -> ExitCode:
    from .._backend import refresh_subscriber_token

    space, project, api_token = _project(args)
    if args.refresh_token_file:
        refresh = _read_secret_file(args.refresh_token_file, "refresh token")
    else:
        refresh = os.environ.get("SIGNALWIRE_REFRESH_TOKEN", "").strip()
        if not refresh:
            raise UsageError(
                "no refresh token: give --refresh-token-file or set $SIGNALWIRE_REFRESH_TOKEN"
            )
    options: dict[str, Any] = {}
    if getattr(args, "timeout", None) is not None:
        options["timeout"] = args.timeout
    _token_out(out, refresh_subscriber_token(space, project, api_token, refresh, **options))
    return ExitCode.OK


# --- main -----------------------------------------------------------------------------------


class _Terminated(BaseException):
    """SIGTERM arrived: stop as cleanly as for Ctrl-C.

    A ``BaseException``, as KeyboardInterrupt is: raised wherever the main thread is, it must
    not be taken for a failure by an ``except Exception`` on the way (subscribe() reading
    where the history starts treats a failed read as "unknown" and goes on).
    """


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise _Terminated


@contextlib.contextmanager
def _stops() -> Iterator[None]:
    """While a command runs: SIGTERM raises :class:`_Terminated`, and no stop is lost.

    A handler raises in the main thread between two bytecodes, wherever they are: in a
    finalizer or a ``__del__`` (urllib3 closes its pools in one) Python cannot propagate it,
    prints "Exception ignored in ..." and goes on without the stop. Such a stop (ours, or
    Ctrl-C's KeyboardInterrupt) is raised again a few milliseconds later, by an alarm, in
    whatever the main thread runs then (a blocking call included), with no traceback;
    anything else a finalizer raises goes to the hook there was. (Without ``setitimer``, on
    Windows, a lost stop is reported as before.)
    """
    previous_hook = sys.unraisablehook
    redeliver = hasattr(signal, "setitimer")  # with SIGALRM: not on Windows
    lost: list[type[BaseException]] = []  # the stop to raise again, when the alarm rings

    def hook(unraisable: Any) -> None:
        exc = unraisable.exc_value
        if (
            redeliver
            and isinstance(exc, (_Terminated, KeyboardInterrupt))
            and threading.current_thread() is threading.main_thread()
        ):
            # Raised here, it would land in this hook, where it is lost again.
            lost[:] = [type(exc)]
            signal.setitimer(signal.ITIMER_REAL, _REDELIVER_AFTER)
            return
        previous_hook(unraisable)

    def on_alarm(signum: int, frame: FrameType | None) -> None:
        if lost:
            raise lost.pop()

    previous_handler = signal.signal(signal.SIGTERM, _on_sigterm)
    previous_alarm = signal.signal(signal.SIGALRM, on_alarm) if redeliver else None
    sys.unraisablehook = hook
    try:
        yield
    finally:
        sys.unraisablehook = previous_hook
        if redeliver:
            signal.setitimer(signal.ITIMER_REAL, 0)
            # None: a handler set outside Python, which cannot be put back from here.
            signal.signal(signal.SIGALRM, previous_alarm or signal.SIG_DFL)
        signal.signal(signal.SIGTERM, previous_handler)


#: How long after a stop was lost in a finalizer it is raised again (out of it by then).
_REDELIVER_AFTER = 0.005


def _run_emulator(argv: Sequence[str]) -> int:
    try:
        from ..emulator.__main__ import main as emulator_main
    except ImportError:
        sys.stderr.write(
            f"{PROG}: error: the emulator needs the 'emulator' extra:"
            " pip install 'signalwire-chat[emulator]'\n"
        )
        return ExitCode.ERROR
    return emulator_main(list(argv), prog=f"{PROG} emulator")


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``signalwire-chat`` with ``argv`` (``sys.argv[1:]`` when None); return the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["emulator"]:
        return _run_emulator(argv[1:])
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if args.command == "emulator":
        # Options of ours came before `emulator` (`--json emulator`): the emulator's own
        # parser only runs when `emulator` comes first, and the sub-parser here is a stub.
        parser.error(
            "emulator: nothing goes before `emulator` (it takes its own options only):"
            f" {PROG} emulator [options]"
        )
    if unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    if not args.json and isinstance(sys.stdout, io.TextIOWrapper):
        # A terminal in another encoding than UTF-8 shows what it cannot as \uXXXX, rather
        # than ending the command with UnicodeEncodeError. (--json escapes such characters.)
        sys.stdout.reconfigure(errors="backslashreplace")
    out = Output(as_json=args.json)
    try:
        with _stops():
            code: ExitCode = args.run(args, out)
        return code
    except KeyboardInterrupt:
        out.status("interrupted")
        return ExitCode.INTERRUPTED
    except _Terminated:
        # For `tail` a stop from a process manager is its normal end; anything else was cut
        # short, and a script must not take a partial export for a whole one.
        return ExitCode.OK if args.command == "tail" else ExitCode.TERMINATED
    except BrokenPipeError:
        # The reader went away (`| head`): stop writing, and keep Python's flush at exit quiet.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return ExitCode.BROKEN_PIPE
    except (UsageError, errors.ChatError) as exc:
        out.error(str(exc))
        return exit_code_for(exc)
    except MissingExtraError as exc:
        out.error(str(exc))
        return ExitCode.ERROR
