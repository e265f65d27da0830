"""The one place requests is used: base URL, auth header, timeouts, retries, link safety, errors.

Every failure of requests/urllib3, while sending or while reading the body, is caught at one
call site (:meth:`HttpTransport._send_once`) and re-raised as this library's own exception;
every HTTP error status is translated by one function (:func:`error_from_response`). The
backend helpers (token minting) send through this same transport.

Retry rules:

- GET (idempotent): connection failures, read timeouts and broken bodies, 429 and 502/503/504
  are retried with exponential back-off and full jitter (a 429's ``Retry-After`` is honoured,
  capped).
- POST: retried only when the request surely never reached the server (the connection could
  not be made) or the server answered 429 (it did not process it).
- A 401 with a token source: the token is refreshed once and the request sent once more.

Bounds on what a server can make a call cost:

- a total deadline per call (``deadline``, retries and waits included): no retry wait runs past
  it, every socket timeout is capped by what is left of it, the body is read piece by piece
  (``read1``) with the deadline checked between pieces, and while the headers arrive (http.client
  reads them in one call) the socket is watched by the transport's deadline watchdog
  (``_deadline``), which cuts it off at the deadline. So a server dripping its headers or its body
  byte by byte is cut off. (A caller's own ``session`` keeps its adapters: there, the headers are
  bounded by the read timeout per byte only.);
- a cap on the decoded body (``max_response_bytes``), enforced while reading: a gzip bomb is cut
  off after the cap, not after it is inflated (urllib3 >= 2.6 bounds each decompression step);
- a JSON nesting depth the decoder survives: a ``RecursionError`` becomes a ``DecodeError``, and
  NaN/Infinity (not JSON) are refused.

Secrets: everything a server sends back that ends in an exception or a log line (the reason
phrase, the request id, the body, the content type) has the token and the other credentials
redacted, control characters replaced and its length capped. No frame of a raised exception's
traceback holds the token in a plain local: the headers live in :class:`_AuthHeaders`, whose
repr is redacted, and the tracebacks of the requests/urllib3 exceptions chained as causes (whose
frames hold the headers) are dropped; the exceptions themselves are kept.

The wait between retries is an ``Event.wait`` that :meth:`HttpTransport.close` interrupts.
What requests would otherwise read from the environment on every call (proxies, CA bundle,
netrc) is resolved once per transport, when its session opens (its first call).

Why our own session does not send through ``HTTPAdapter.send``: with no proxy for the REST
origin, the request goes straight to the adapter's urllib3 pool (:func:`_urlopen`), which the
adapter resolved once, with its TLS settings checked (:meth:`HttpTransport._pool_of`). What
``send`` does on every request on top of that (the URL parsed about five times, the proxy
chosen twice, a stat of the CA bundle, a ``Response`` and its cookie jar) was 25% of the
instructions of a ``send_message`` (1.16M -> 0.87M per call). Through a proxy, and through a
caller's ``session`` (its mounts, hooks and cookies), requests sends as before.
"""

from __future__ import annotations

import datetime
import email.utils
import functools
import json
import logging
import math
import random
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlencode, urljoin, urlsplit

import requests
import requests.adapters
import requests.exceptions
import urllib3
import urllib3.connection
import urllib3.connectionpool
import urllib3.exceptions
from urllib3.util import Timeout as _Urllib3Timeout

from . import _fork
from ._backoff import backoff_delay
from ._deadline import Watchdog
from ._redact import SecretForms, redact, server_text
from ._validate import check_seconds
from ._version import __version__
from .errors import (
    APIError,
    AuthenticationError,
    BadRequestError,
    ChatError,
    ClientClosedError,
    ConnectError,
    DecodeError,
    FabricErrorDetail,
    InvalidArgumentError,
    InvalidArgumentTypeError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    RequestTimeoutError,
    ResponseTooLargeError,
    ServerError,
    TransportError,
    UnsafeLinkError,
    ValidationError,
)

if TYPE_CHECKING:
    from ._hooks import HookRegistry, RestCall

__all__ = [
    "DEFAULT_DEADLINE",
    "DEFAULT_MAX_RESPONSE_BYTES",
    "DEFAULT_MAX_RETRIES",
    "DEFAULT_TIMEOUT",
    "USER_AGENT",
    "HttpTransport",
    "TimeoutLike",
    "decode_body",
    "error_from_response",
    "normalise_deadline",
    "normalise_max_response_bytes",
    "normalise_timeout",
    "redact",
    "request_id_of",
    "status_kind",
    "translate_exception",
]

logger = logging.getLogger(__name__)

USER_AGENT = f"signalwire-chat-python/{__version__}"

#: (connect, read) seconds. The connect phase is short so a dead host fails fast; the read
#: timeout matches the official SDK's 30 s request timeout.
DEFAULT_TIMEOUT: tuple[float, float] = (5.0, 30.0)
#: Seconds one REST call may take in all, its retries and their waits included.
DEFAULT_DEADLINE = 120.0
#: The largest decoded response body read (bytes). A raw history page of 1,000 messages each
#: carrying the largest metadata and details the service takes (2 x 16 KiB) stays under it.
DEFAULT_MAX_RESPONSE_BYTES = 64 * 1024 * 1024
#: REST connections kept for reuse: more than the request threads of a busy web server (a
#: gthread or waitress pool, a framework's thread pool for sync views), so that one client
#: shared by 100 threads never has urllib3 discard a connection (and warn "Connection pool is
#: full"). An idle pool costs nothing: urllib3 opens connections only when they are needed.
DEFAULT_MAX_CONNECTIONS = 128
#: What a pagination link may not contain: control characters, spaces, backslashes.
_UNSAFE_IN_LINK = re.compile(r"[\x00-\x20\\]")
DEFAULT_MAX_RETRIES = 3
BACKOFF_BASE = 0.5  # seconds; attempt n waits uniform(0, min(BACKOFF_MAX, BASE * 2**n))
BACKOFF_MAX = 8.0
RETRY_AFTER_MAX = 30.0  # a longer Retry-After is capped to this
_BODY_KEEP = 2000
_READ_PIECE = 64 * 1024  # the most one read1 returns: the deadline is checked between pieces
_RETRY_STATUSES_GET = frozenset((429, 502, 503, 504))
_REQUEST_ID_HEADERS = (
    "X-Request-Id",
    "Request-Id",
    "X-Amzn-RequestId",
    "X-Correlation-Id",
    "X-Trace-Id",
)
#: Each request-id header's lowered name -> its rank (the first of the list wins).
_REQUEST_ID_RANK = {name.lower(): rank for rank, name in enumerate(_REQUEST_ID_HEADERS)}

#: A timeout: seconds for both phases, or a ``(connect, read)`` pair.
TimeoutLike = float | tuple[float, float]


def normalise_timeout(timeout: object, what: str = "timeout") -> tuple[float, float]:
    """Check a timeout (seconds, or ``(connect, read)``) and return it as a pair.

    Raises:
        InvalidArgumentTypeError: Not a number or a pair of numbers.
        InvalidArgumentError: Not finite and positive.
    """
    if isinstance(timeout, tuple) and len(timeout) == 2:
        return (
            check_seconds(timeout[0], f"{what} (connect)"),
            check_seconds(timeout[1], f"{what} (read)"),
        )
    if isinstance(timeout, (int, float)) and not isinstance(timeout, bool):
        seconds = check_seconds(timeout, what)
        return (seconds, seconds)
    raise InvalidArgumentTypeError(
        f"{what} must be a number of seconds or a (connect, read) pair, "
        f"not {type(timeout).__name__}"
    )


def normalise_deadline(deadline: object) -> float:
    """Check a total deadline in seconds (finite, > 0)."""
    return check_seconds(deadline, "deadline")


def normalise_max_response_bytes(value: object) -> int:
    """Check a body cap in bytes (an int >= 1024)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidArgumentTypeError(
            f"max_response_bytes must be an int, not {type(value).__name__}"
        )
    if value < 1024:
        raise InvalidArgumentError(f"max_response_bytes must be >= 1024, got {value}")
    return int(value)


# --- what a server sends back: redacted, cleaned, capped ------------------------------------


def _strip_query(url: str) -> str:
    return url.split("?", 1)[0].split("#", 1)[0]


def _http_date(value: object) -> float | None:
    """An HTTP date (``Date``, ``Retry-After``) as unix seconds; None if it is not one."""
    if not isinstance(value, str) or len(value) > 64:
        return None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # "-0000": RFC 5322's UTC of unknown origin
        when = when.replace(tzinfo=datetime.timezone.utc)
    try:
        seconds = when.timestamp()
    except (OverflowError, ValueError, OSError):
        return None
    return seconds if math.isfinite(seconds) else None


class RetryPolicy:
    """When a REST call is sent again, and after how long (a value, like urllib3's ``Retry``).

    A request that failed before reaching the service is always safe to send again; one
    that may have reached it, only when it is idempotent. A status is retried when the
    request is idempotent and the status is 429, 502, 503 or 504, or for any request on
    429. Delays come from the library's one back-off (full jitter); a 429's
    ``Retry-After`` is honoured up to :data:`RETRY_AFTER_MAX`. At most ``max_retries``.
    """

    __slots__ = ("max_retries", "rng")

    def __init__(self, max_retries: int, rng: random.Random) -> None:
        self.max_retries = max_retries
        self.rng = rng

    def backoff(self, attempt: int) -> float:
        """The delay after attempt ``attempt`` (from 0) failed."""
        return backoff_delay(attempt, base=BACKOFF_BASE, cap=BACKOFF_MAX, rng=self.rng)

    def after_failure(self, attempt: int, safe_again: bool) -> float | None:
        """The wait before sending again after a transport failure; None: do not."""
        if not safe_again or attempt >= self.max_retries:
            return None
        return self.backoff(attempt)

    def after_status(
        self, attempt: int, status: int, headers: Mapping[str, str], idempotent: bool
    ) -> float | None:
        """The wait before sending again after an error status; None: do not."""
        retry = status in _RETRY_STATUSES_GET if idempotent else status == 429
        if not retry or attempt >= self.max_retries:
            return None
        retry_after = _retry_after(headers) if status == 429 else None
        if retry_after is not None:
            return min(retry_after, RETRY_AFTER_MAX)
        return self.backoff(attempt)


class _NoCall:
    """The call record when no hook listens: every report is a no-op (a null object)."""

    __slots__ = ()

    def attempt(self) -> None:
        pass

    def answered(
        self,
        status: int | None,
        error: str | None,
        retry_in: float | None,
        request_id: Callable[[], str | None] | None = None,
    ) -> None:
        pass

    def finished(self, error: BaseException | None) -> None:
        pass


_NO_CALL = _NoCall()


def _retry_after(headers: Mapping[str, str]) -> float | None:
    value = headers.get("Retry-After")
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        when = _http_date(value)
        if when is None:
            return None
        # Against the service's own clock (its Date) when it states it: a wall clock of
        # this machine that is off would make the wait too long or none at all.
        now = _http_date(headers.get("Date"))
        seconds = when - (now if now is not None else time.time())
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


_STATUS_ERRORS: dict[int, type[APIError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    422: ValidationError,
    429: RateLimitError,
}


def request_id_of(headers: Mapping[str, str], secrets: Iterable[str]) -> str | None:
    """The service's request id from a response's headers, cleaned and capped, or ``None``.

    It runs on every call when hooks are on. The headers of our own pool's answers are
    urllib3's, whose ``in`` is one dict lookup: the names are looked up in their order
    (iterating urllib3's headers cost more than all the lookups). Other mappings (requests'
    headers, from a caller's session) are read in one pass: there a miss is a ``KeyError``.
    ``secrets`` may be a :class:`~signalwire_chat._redact.SecretForms` (worked out once).
    """
    if isinstance(headers, urllib3.HTTPHeaderDict):
        for name in _REQUEST_ID_HEADERS:
            if name in headers:
                request_id = server_text(headers[name], secrets)
                if request_id:
                    return request_id
        return None
    found: str | None = None
    found_rank = len(_REQUEST_ID_HEADERS)
    for name, value in headers.items():
        rank = _REQUEST_ID_RANK.get(name.lower()) if isinstance(name, str) else None
        if rank is not None and rank < found_rank:
            request_id = server_text(value, secrets)
            if request_id:
                found, found_rank = request_id, rank
    return found


def status_kind(status: int) -> str:
    """The name of the error an HTTP error status becomes (``"ServerError"`` for a 503)."""
    cls = _STATUS_ERRORS.get(status)
    if cls is None:
        cls = ServerError if status >= 500 else APIError
    return cls.__name__


def error_from_response(
    status: int,
    reason: object,
    headers: Mapping[str, str],
    content: bytes,
    *,
    method: str,
    url: str,
    secrets: Iterable[str] = (),
) -> APIError:
    """Translate an error response into the matching :class:`~signalwire_chat.APIError`.

    Never fails on the body: JSON fabric errors are parsed, anything else (HTML, empty, binary,
    nested too deep) is kept, truncated, in ``body``. ``secrets`` are redacted from every piece
    of server text kept (body, messages, reason phrase, request id, content type).
    """
    secrets = tuple(secrets)
    text = redact(content.decode("utf-8", errors="replace"), secrets)
    body: Any = None
    if text.strip():
        try:
            body = _JSON.decode(text)
        except (ValueError, RecursionError):
            body = None
    errors, message = _fabric_message(body, secrets)
    if not message:
        message = server_text(reason, secrets) or "HTTP error"
        if text.strip() and body is None:
            kind = server_text(headers.get("Content-Type"), secrets) or "unknown content type"
            message = f"{message} (non-JSON body, {kind.split(';')[0]})"
    request_id = request_id_of(headers, secrets)
    kwargs: dict[str, Any] = {
        "status": status,
        "errors": errors,
        "request_id": request_id,
        "method": method,
        "url": _strip_query(url),
        "body": text[:_BODY_KEEP],
    }
    if status == 429:
        return RateLimitError(message, retry_after=_retry_after(headers), **kwargs)
    cls = _STATUS_ERRORS.get(status)
    if cls is None:
        cls = ServerError if status >= 500 else APIError
    return cls(message, **kwargs)


def _fabric_message(
    body: Any, secrets: tuple[str, ...]
) -> tuple[list[FabricErrorDetail], str | None]:
    """The error details and the message of a fabric error body (anything else: none)."""
    if not isinstance(body, dict):
        return [], None
    raw_errors = body.get("errors")
    errors = (
        [FabricErrorDetail.from_wire(e) for e in raw_errors if isinstance(e, dict)]
        if isinstance(raw_errors, list)
        else []
    )
    message = server_text(next((e.message for e in errors if e.message), None), secrets, 500)
    for key in ("message", "error_description", "error", "detail"):
        if message:
            break
        message = server_text(body.get(key), secrets, 500)
    return errors, message


# --- decoding a success body -----------------------------------------------------------------


def _not_json_constant(name: str) -> Any:
    raise DecodeError(f"the body holds {name}, which is not JSON")


#: One decoder, built once: the C scanner, refusing NaN/Infinity (Python's json accepts them).
_JSON = json.JSONDecoder(parse_constant=_not_json_constant)


def decode_body(
    content: bytes, *, method: str, url: str, status: int = 200, content_type: object = None
) -> Any:
    """A success body as JSON (``None`` when empty).

    Raises:
        DecodeError: Not UTF-8 JSON, NaN or Infinity in it, an integer too long to convert,
            or nesting too deep for the decoder on this thread's stack.
    """
    if not content or content.isspace():
        return None
    try:
        return _JSON.decode(content.decode("utf-8"))
    except DecodeError as exc:
        raise DecodeError(f"{method} {_strip_query(url)}: {exc.message}") from None
    except RecursionError:
        raise DecodeError(
            f"{method} {_strip_query(url)} answered {status} with JSON nested too deeply to decode"
        ) from None
    except ValueError:
        kind = server_text(content_type, ()) or "unknown"
        raise DecodeError(
            f"{method} {_strip_query(url)} answered {status} with a body that is not JSON "
            f"({kind.split(';')[0]})"
        ) from None


# --- translation of failures -----------------------------------------------------------------


def _root_cause(exc: BaseException) -> BaseException:
    seen = set()
    current: BaseException = exc
    while id(current) not in seen:
        seen.add(id(current))
        nxt: Any = getattr(current, "reason", None)
        if not isinstance(nxt, BaseException) and current.args:
            nxt = current.args[0]
        if not isinstance(nxt, BaseException):
            nxt = current.__cause__ or current.__context__
        if not isinstance(nxt, BaseException):
            break
        current = nxt
    return current


def _connect_timed_out(exc: BaseException) -> bool:
    """Whether the connection could not be made in time.

    requests' ``ConnectTimeout``, or what it wraps when our own pool is called directly: a
    urllib3 ``MaxRetryError`` whose reason is a connect timeout that is not a refused or
    failed connection (urllib3's ``NewConnectionError`` subclasses ``ConnectTimeoutError``).
    """
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return True
    reason = (
        getattr(exc, "reason", None) if isinstance(exc, urllib3.exceptions.MaxRetryError) else None
    )
    return isinstance(reason, urllib3.exceptions.ConnectTimeoutError) and not isinstance(
        reason, urllib3.exceptions.NewConnectionError
    )


def _tls_failed(exc: BaseException) -> bool:
    """Whether TLS failed: requests' ``SSLError``, or urllib3's (bare, or as a retry's reason)."""
    if isinstance(exc, (requests.exceptions.SSLError, urllib3.exceptions.SSLError)):
        return True
    return isinstance(exc, urllib3.exceptions.MaxRetryError) and isinstance(
        exc.reason, urllib3.exceptions.SSLError
    )


def _never_sent(exc: BaseException) -> bool:
    """Whether a requests error proves the request never left (the connection was not made)."""
    if _connect_timed_out(exc):
        return True
    current: Any = exc
    for _ in range(6):
        if isinstance(current, urllib3.exceptions.NewConnectionError):
            return True
        if isinstance(current, ConnectionRefusedError):
            return True
        nxt = getattr(current, "reason", None)
        if nxt is None and getattr(current, "args", None):
            nxt = current.args[0]
        if not isinstance(nxt, BaseException):
            return False
        current = nxt
    return False


def translate_exception(exc: Exception, *, method: str, url: str) -> ChatError:
    """Translate a requests/urllib3 failure into one of this library's errors.

    Only type names of the underlying errors are quoted: their messages may hold server text.
    """
    where = _strip_query(url)
    cause = _root_cause(exc)
    detail = f"{type(cause).__name__}"
    if _connect_timed_out(exc):
        return RequestTimeoutError(f"connecting to {where} timed out", method=method, url=where)
    if isinstance(
        exc, (requests.exceptions.ReadTimeout, urllib3.exceptions.ReadTimeoutError)
    ) or isinstance(cause, TimeoutError):
        return RequestTimeoutError(f"no response from {where} in time", method=method, url=where)
    if _tls_failed(exc):
        return ConnectError(f"TLS failure talking to {where}: {detail}", method=method, url=where)
    if isinstance(exc, urllib3.exceptions.DecodeError):
        return DecodeError(f"{method} {where}: the body's content-encoding is broken ({detail})")
    if _never_sent(exc):
        return ConnectError(f"could not connect to {where}: {detail}", method=method, url=where)
    return TransportError(f"{method} {where} failed: {detail}", method=method, url=where)


def _forget_frames(exc: BaseException | None) -> BaseException | None:
    """Drop the tracebacks of ``exc`` and of what it chains (their frames hold the headers)."""
    seen: set[int] = set()
    current = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        current.__traceback__ = None
        reason = getattr(current, "reason", None)
        if isinstance(reason, BaseException) and id(reason) not in seen:
            _forget_frames(reason)
        current = current.__cause__ or current.__context__
    return exc


# --- the deadline while the headers arrive ---------------------------------------------------

#: The watchdog and deadline of the request this thread is sending (set by ``_send_once``).
_SENDING = threading.local()


class _WatchedHeaders:
    """urllib3 connections whose wait for the response headers is watched against the deadline."""

    sock: Any

    def getresponse(self) -> Any:
        sending = getattr(_SENDING, "value", None)
        if sending is None or self.sock is None:
            return super().getresponse()  # type: ignore[misc]
        watchdog, deadline = sending
        key = watchdog.watch(self.sock, deadline)
        try:
            response = super().getresponse()  # type: ignore[misc]
        finally:
            cut = watchdog.unwatch(key)
        if cut:  # http.client took the cut for the end of the headers: the response is not one
            response.close()
            raise TimeoutError("the deadline passed while the response headers were arriving")
        return response


class _HTTPConnection(_WatchedHeaders, urllib3.connection.HTTPConnection):
    pass


class _HTTPSConnection(_WatchedHeaders, urllib3.connection.HTTPSConnection):
    pass


class _HTTPPool(urllib3.connectionpool.HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSPool(urllib3.connectionpool.HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


# --- the transport ---------------------------------------------------------------------------


if TYPE_CHECKING:  # a type for the checker only: no class to build at import

    class CredentialsLike(Protocol):
        """What the transport needs of a credential (``_auth.Credentials``, ``BasicCredentials``).

        A type for the checker only, as are the other Protocols of the package.
        """

        scheme: str

        @property
        def token(self) -> str: ...

        @property
        def can_refresh(self) -> bool: ...

        @property
        def secrets(self) -> tuple[str, ...]: ...

        def refresh(self, stale: str | None = None) -> str: ...


class _AuthHeaders:
    """The request headers of one token; not a mapping, and its repr is redacted.

    Tools that capture traceback locals (Sentry, rich) so never print the token held here.
    """

    __slots__ = ("_forms", "get", "post", "secrets", "token")

    def __init__(self, scheme: str, token: str, secrets: tuple[str, ...]) -> None:
        self.token = token
        self.secrets = secrets
        self._forms: SecretForms | None = None
        self.get = {
            "Authorization": f"{scheme} {token}",
            "Accept": "application/json",
            "User-Agent": USER_AGENT,
        }
        self.post = {**self.get, "Content-Type": "application/json"}

    @property
    def forms(self) -> SecretForms:
        """The secrets' forms to redact, worked out on first use (once per token)."""
        forms = self._forms
        if forms is None:
            forms = self._forms = SecretForms(self.secrets)
        return forms

    def __repr__(self) -> str:
        return "<auth headers (redacted)>"

    def __reduce__(self) -> str:
        raise TypeError("auth headers cannot be pickled (they hold a secret)")


def _request_id(reply: _Reply, auth: _AuthHeaders) -> Callable[[], str | None]:
    """A reader of ``reply``'s request id, for a hook (read only if the hook asks for it).

    Never held in a local of the request loop: it holds the token's secrets (for redaction),
    and tools that capture traceback locals would print them.
    """
    return functools.partial(request_id_of, reply.headers, auth.forms)


class _Reply:
    """A response whose body was read in full, within the cap and the deadline."""

    __slots__ = ("content", "headers", "reason", "status")

    def __init__(self, status: int, reason: object, headers: Mapping[str, str], content: bytes):
        self.status = status
        self.reason = reason
        self.headers = headers
        self.content = content

    def __repr__(self) -> str:
        return f"<reply {self.status}, {len(self.content)} bytes>"


class HttpTransport:
    """A REST transport bound to one base URL and one credential.

    Nothing is opened in the constructor; the session is made on first use (and again in a
    child process after ``os.fork()``).

    Args:
        base_url: The REST base, already checked (``https://fabric.example.com``).
        credentials: The token holder (bearer) or project credentials (basic).
        timeout: ``(connect, read)`` seconds.
        deadline: Seconds one call of :meth:`request` may take in all, retries included.
        max_response_bytes: The largest decoded body read.
        max_retries: Retries after the first attempt (0 disables retrying).
        max_connections: Connections kept open to the REST host for reuse, which is how many
            threads can send at once without opening a connection each (our own session only).
        session: A caller's ``requests.Session`` to send through (never closed here).
        sleep: A test hook replacing the interruptible wait between retries.
        rng: A test hook: the random source of the jitter.
        hooks: The client's hook registry, told of every call and attempt (``None``: none).
    """

    def __init__(
        self,
        *,
        base_url: str,
        credentials: CredentialsLike,
        timeout: tuple[float, float] = DEFAULT_TIMEOUT,
        deadline: float = DEFAULT_DEADLINE,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        max_retries: int = DEFAULT_MAX_RETRIES,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] | None = None,
        rng: random.Random | None = None,
        hooks: HookRegistry | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        parts = urlsplit(self.base_url)
        self._hooks = hooks
        from ._hooks import server_of  # on first use: `import signalwire_chat` stays light

        self._server = server_of(self.base_url)
        self._origin = _origin(parts.scheme, parts.hostname, parts.port)
        self._credentials = credentials
        self._connect_timeout, self._read_timeout = timeout
        self._timeout = _Urllib3Timeout(connect=timeout[0], read=timeout[1])
        self._slowest = max(timeout)
        self._deadline = deadline
        self._max_bytes = max_response_bytes
        self._max_retries = max_retries
        self._max_connections = max_connections
        self._user_session = session
        self._sleep_hook = sleep
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
        self._retry = RetryPolicy(max_retries, self._rng)
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self._generation = -1  # the _fork generation of _session; -1: none yet
        self._session: requests.Session | None = None
        self._adapter: requests.adapters.HTTPAdapter | None = None
        self._send_kwargs: dict[str, Any] = {}
        #: The urllib3 pool of our own adapter for the REST origin, once resolved (None: not
        #: yet; _NO_POOL: a proxy applies, so every request goes through the adapter).
        self._pool: Any = None
        #: ``scheme://host:port`` as base_url spells it: a URL starting with it is sent to
        #: the pool with the rest of it as the request target.
        self._prefix = f"{parts.scheme}://{parts.netloc}"
        self._auth: _AuthHeaders | None = None
        self._watchdog = Watchdog()  # its thread starts with the first request, not here
        #: The service's last ``Date`` header, and when (monotonic) its answer came.
        self._server_date: tuple[str, float] | None = None
        _fork.renew_in_child(self)

    def _renew_after_fork(self) -> None:
        """In a forked child: a lock held at the fork (a session being opened) is freed."""
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<HttpTransport {self.base_url!r}{' closed' if self.closed else ''}>"

    # -- lifecycle --

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed.is_set()

    def close(self) -> None:
        """Close the pool (not a caller's session) and end the calls in flight. Idempotent.

        A retry wait is interrupted, and a request still waiting for its response headers
        is cut off (it raises).
        """
        self._closed.set()
        self._watchdog.cut_all()
        with self._lock:
            session, self._session = self._session, None
            self._adapter = self._pool = None
        self._watchdog.close()
        if session is not None and session is not self._user_session:
            session.close()

    def tls_settings(self) -> dict[str, Any]:
        """The resolved ``verify`` / ``cert`` / ``proxies`` (also used for the websocket)."""
        self._ensure_session()
        return dict(self._send_kwargs)

    def websocket_proxy(self, relay_url: str) -> str | None:
        """The proxy URL requests would use for ``relay_url`` (None: connect directly).

        Resolved as for a REST call (the caller's session ``proxies``, then the environment
        with its ``no_proxy``), with ``ws``/``wss`` read as ``http``/``https``.
        """
        session = self._ensure_session()
        url = "http" + relay_url[2:] if relay_url.startswith("ws") else relay_url
        settings = session.merge_environment_settings(url, {}, None, None, None)
        proxy = requests.utils.select_proxy(url, settings.get("proxies") or {})
        return proxy or None

    def _ensure_session(self) -> requests.Session:
        now = _fork.generation()
        session = self._session
        if session is not None and now == self._generation:
            return session
        with self._lock:
            if self._closed.is_set():
                raise ClientClosedError("the client is closed")
            if self._session is None or self._generation != now:
                forked = self._generation != -1 and self._generation != now
                self._session = self._open_session(forked)
                self._generation = now
            return self._session

    def _open_session(self, forked: bool) -> requests.Session:
        if self._user_session is not None:
            session = self._user_session
            if forked:
                # The parent's pooled sockets must not be shared: give each of the caller's
                # adapters fresh pools, the adapter itself kept as the caller configured it.
                for adapter in list(session.adapters.values()):
                    _fresh_pools(adapter)
            self._adapter = None  # a caller's session: go through session.send (hooks, cookies)
        else:
            session = requests.Session()
            # requests keeps 10 connections per host; a web app shares one client across
            # more threads than that, and urllib3 would drop (and warn about) the rest.
            adapter = requests.adapters.HTTPAdapter(pool_maxsize=self._max_connections)
            # urllib3's documented way to customise a PoolManager's pools: ours watch the wait
            # for the response headers against the call's deadline.
            adapter.poolmanager.pool_classes_by_scheme = {"http": _HTTPPool, "https": _HTTPSPool}
            session.mount("https://", adapter)
            session.mount("http://", adapter)
            self._adapter = adapter
        if forked:
            logger.debug("process forked: opened a fresh connection pool")
        settings = session.merge_environment_settings(self.base_url, {}, None, None, None)
        self._send_kwargs = {
            "verify": settings.get("verify", True),
            "cert": settings.get("cert"),
            "proxies": settings.get("proxies") or {},
        }
        self._pool = None  # resolved again for this session's adapter, on its first request
        return session

    def _pool_of(self, adapter: requests.adapters.HTTPAdapter) -> Any:
        """Our adapter's urllib3 pool for the REST origin, or ``_NO_POOL`` if a proxy applies.

        Asked of the adapter once per session, as :meth:`requests.adapters.HTTPAdapter.send`
        asks it on every request: the pool for these TLS settings, and the CA bundle and
        client certificate checked (``cert_verify``). The environment was read once already
        (:meth:`_open_session`). Through a proxy, every request goes through ``send``.
        """
        pool = self._pool
        if pool is not None:
            return pool
        kwargs = self._send_kwargs
        if requests.utils.select_proxy(self.base_url, kwargs["proxies"]):
            pool = _NO_POOL
        else:
            target = requests.PreparedRequest()
            target.url = self.base_url
            pool = adapter.get_connection_with_tls_context(
                target, kwargs["verify"], cert=kwargs["cert"]
            )
            adapter.cert_verify(  # type: ignore[no-untyped-call]  # untyped in the stubs
                pool, self.base_url, kwargs["verify"], kwargs["cert"]
            )
        self._pool = pool
        return pool

    # -- URLs --

    def url_for(self, path: str, params: Mapping[str, Any] | None = None) -> str:
        """The absolute URL of an (already percent-encoded) API path with its query."""
        url = self.base_url + path
        if params:
            url += "?" + urlencode([(k, v) for k, v in params.items() if v is not None])
        return url

    def resolve_link(self, link: object) -> str | None:
        """Resolve a pagination link against the REST base, refusing other origins.

        Returns:
            The absolute URL, or ``None`` when the link is missing, ``null`` or empty.

        Raises:
            DecodeError: The link is not a string.
            UnsafeLinkError: It names another origin, carries credentials, or is malformed.
        """
        if link is None or link == "":
            return None
        if not isinstance(link, str):
            raise DecodeError("pagination link: expected a string", field="links")
        if _UNSAFE_IN_LINK.search(link):
            raise UnsafeLinkError("refusing a pagination link with whitespace or backslashes")
        absolute = urljoin(self.base_url + "/", link)
        try:
            parts = urlsplit(absolute)
            origin = _origin(parts.scheme, parts.hostname, parts.port)
        except ValueError:
            raise UnsafeLinkError("refusing a malformed pagination link") from None
        if parts.username is not None or parts.password is not None or origin != self._origin:
            host = server_text(parts.hostname, self._credentials.secrets, 100)
            raise UnsafeLinkError(
                f"refusing to follow a pagination link to {parts.scheme}://{host}: "
                "only the REST base's own origin receives the token"
            )
        return absolute

    # -- requests --

    def _auth_headers(self) -> _AuthHeaders:
        # No local holds the token here or in request(): only the _AuthHeaders object does.
        auth = self._auth
        if auth is None or auth.token is not self._credentials.token:
            auth = self._auth = _AuthHeaders(
                self._credentials.scheme, self._credentials.token, self._credentials.secrets
            )
        return auth

    def request(
        self,
        method: str,
        url: str,
        body: bytes | None = None,
        *,
        idempotent: bool | None = None,
        secrets: Iterable[str] = (),
    ) -> Any:
        """Send a request and return its decoded JSON body (``None`` when empty).

        Args:
            method: ``"GET"`` or ``"POST"``.
            url: An absolute URL (from :meth:`url_for` or :meth:`resolve_link`).
            body: The JSON body, already serialised.
            idempotent: Whether sending it twice does no harm, so it is retried like a GET
                (default: only GETs are).
            secrets: More strings to redact from what the server sends back (the credentials'
                own are always redacted).

        Raises:
            ClientClosedError: The transport is closed (or was closed during a retry wait).
            TransportError: The request failed at the network level (after retries), or the
                deadline passed (``RequestTimeoutError``).
            APIError: The service answered an error status (after retries).
            DecodeError: A success body that is not JSON, or one larger than the cap
                (``ResponseTooLargeError``).
        """
        registry = self._hooks
        call = _NO_CALL if registry is None else registry.rest_call(method, url, self._server)
        try:
            result = self._request(method, url, body, idempotent, secrets, call)
        except BaseException as exc:
            call.finished(exc)
            raise
        call.finished(None)
        return result

    def _request(
        self,
        method: str,
        url: str,
        body: bytes | None,
        idempotent: bool | None,
        secrets: Iterable[str],
        call: RestCall | _NoCall,
    ) -> Any:
        """Send, and send again as the retry policy says, until an answer or a final failure."""
        deadline = time.monotonic() + self._deadline
        idempotent = method == "GET" if idempotent is None else idempotent
        refreshed = False
        attempt = 0
        while True:
            if self._closed.is_set():
                raise ClientClosedError("the client is closed")
            auth = self._auth_headers()
            call.attempt()
            try:
                reply = self._send_logged(method, url, auth, body, deadline)
            except _Failed as failed:
                if self._closed.is_set():
                    # close() cut this call off (its wait for the answer): say so, not
                    # "no response in time".
                    raise ClientClosedError(
                        "the client was closed while the request was under way"
                    ) from None
                kind = type(failed.error).__name__
                again = failed.never_sent or (idempotent and failed.retryable)
                delay = self._retry.after_failure(attempt, again)
                if not self._pause(
                    call, (None, kind, None), delay, deadline, (method, url, attempt)
                ):
                    raise failed.error from failed.__cause__
                attempt += 1
                continue
            status = reply.status
            if status < 300:
                call.answered(status, None, None, _request_id(reply, auth))
                return decode_body(
                    reply.content,
                    method=method,
                    url=url,
                    status=status,
                    content_type=reply.headers.get("Content-Type"),
                )
            if status == 401 and not refreshed and self._credentials.can_refresh:
                refreshed = True
                call.answered(status, "AuthenticationError", 0.0, _request_id(reply, auth))
                logger.debug("401 from %s: refreshing the token once", _strip_query(url))
                self._credentials.refresh(auth.token)
                continue
            delay = self._retry.after_status(attempt, status, reply.headers, idempotent)
            # The request-id reader goes inline: no local of this loop may hold the token's
            # secrets (tools that capture traceback locals would print them).
            request = (method, url, attempt)
            if self._pause(
                call,
                (status, status_kind(status), _request_id(reply, auth)),
                delay,
                deadline,
                request,
            ):
                attempt += 1
                continue
            raise error_from_response(
                status,
                reply.reason,
                reply.headers,
                reply.content,
                method=method,
                url=url,
                secrets=(*auth.secrets, *secrets),
            )

    def _send_logged(
        self, method: str, url: str, auth: _AuthHeaders, body: bytes | None, deadline: float
    ) -> _Reply:
        """One attempt: sent, its answer read, the service's Date noted, logged at DEBUG."""
        session = self._ensure_session()
        started = time.perf_counter()
        reply = self._send_once(session, method, url, auth, body, deadline)
        date = reply.headers.get("Date")
        if date:
            self._server_date = (date, time.monotonic())
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "%s %s -> %d in %.1f ms",
                method,
                _strip_query(url),
                reply.status,
                (time.perf_counter() - started) * 1000,
            )
        return reply

    def _pause(
        self,
        call: RestCall | _NoCall,
        answer: tuple[int | None, str, Callable[[], str | None] | None],
        delay: float | None,
        deadline: float,
        request: tuple[str, str, int],
    ) -> bool:
        """Tell ``call`` how the attempt ended; wait ``delay`` if it fits the deadline.

        True when the call is to be sent again (the wait is over); False when the failure
        is final (no retry allowed, or no time left for it).
        """
        status, kind, request_id = answer
        final = delay is None or time.monotonic() + delay >= deadline
        call.answered(status, kind, None if final else delay, request_id)
        del answer, request_id  # holds the token's secrets: not kept in this frame's locals
        if final:
            return False
        assert delay is not None
        outcome = f"failed ({kind})" if status is None else f"answered {status}"
        method, url, attempt = request
        self._log_retry(method, url, outcome, attempt, delay)
        self._wait(delay)
        return True

    def _timeouts(self, deadline: float) -> _Urllib3Timeout:
        left = deadline - time.monotonic()
        if left >= self._slowest:
            return self._timeout
        left = max(left, 0.001)  # the deadline may pass between the caller's check and here
        return _Urllib3Timeout(
            connect=min(self._connect_timeout, left), read=min(self._read_timeout, left)
        )

    def _send_once(
        self,
        session: requests.Session,
        method: str,
        url: str,
        auth: _AuthHeaders,
        body: bytes | None,
        deadline: float,
    ) -> _Reply:
        if time.monotonic() >= deadline:
            raise _Failed(self._late(method, url), never_sent=False, retryable=False)
        adapter = self._adapter
        if self._closed.is_set():
            # The last look, just before the request goes out: closed since the loop's look
            # (another thread's close() while this one was scheduled out), nothing is sent.
            raise ClientClosedError("the client is closed")
        try:
            if adapter is None:
                response: Any = session.send(
                    _prepare(method, url, auth, body, session.hooks),
                    stream=True,
                    timeout=self._timeouts(deadline),  # type: ignore[arg-type]  # urllib3 Timeout
                    allow_redirects=False,
                    **self._send_kwargs,
                )
                raw, status = response.raw, response.status_code
            else:
                _SENDING.value = (self._watchdog, deadline)
                try:
                    pool = self._pool_of(adapter)
                    target = url[len(self._prefix) :] if url.startswith(self._prefix) else ""
                    if (
                        pool is not _NO_POOL
                        and target[:1] == "/"
                        and not _ODD_TARGET.search(target)
                    ):
                        raw = response = _urlopen(
                            pool, adapter, method, target, auth, body, self._timeouts(deadline)
                        )
                        status = raw.status
                    else:
                        response = adapter.send(
                            _prepare(method, url, auth, body),
                            stream=True,
                            timeout=self._timeouts(deadline),  # type: ignore[arg-type]  # urllib3
                            **self._send_kwargs,
                        )
                        raw, status = response.raw, response.status_code
                finally:
                    _SENDING.value = None
            try:
                content = self._read_body(raw, deadline)
            except BaseException:
                _drop(response)  # the body was not read to its end: drop the connection
                raise
            return _Reply(status, response.reason, response.headers, content)
        except _BodyFailure as failure:
            error = failure.error(method, _strip_query(url), self._max_bytes, self._deadline)
            raise _Failed(error, never_sent=False, retryable=False) from None
        except (
            requests.exceptions.RequestException,
            urllib3.exceptions.HTTPError,
            OSError,
            ValueError,  # http.client's refusal of a header value quotes the value
        ) as exc:
            if time.monotonic() >= deadline:  # the watchdog cut it off, or a timeout at the end
                raise _Failed(
                    self._late(method, url), never_sent=False, retryable=False
                ) from _forget_frames(exc)
            error = translate_exception(exc, method=method, url=url)
            tls = _tls_failed(exc)
            # A broken content-encoding or a refused header value fails the same way again.
            lasting = isinstance(error, DecodeError) or isinstance(
                exc, (ValueError, urllib3.exceptions.InvalidHeader)
            )
            raise _Failed(
                error,
                never_sent=_never_sent(exc) and not tls,
                retryable=not (tls or lasting),
            ) from _forget_frames(exc)

    def _read_body(self, raw: Any, deadline: float) -> bytes:
        """Read and decode the whole body, within the byte cap and the deadline.

        ``read1`` returns what one read of the socket gave (at most a piece), so the checks
        run between pieces however slowly the server sends; urllib3 (>= 2.6) inflates a
        compressed body at most a piece at a time.
        """
        limit = self._max_bytes
        read1 = getattr(raw, "read1", None)
        if read1 is None:  # a caller's adapter with a raw of its own: read pieces of it
            read1 = _ReadPieces(raw)
        first = read1(_READ_PIECE, decode_content=True)
        if not first:
            return b""
        pieces = [first]
        total = len(first)
        while True:
            if total > limit:
                raise _BodyFailure("size")
            if time.monotonic() > deadline:
                raise _BodyFailure("deadline")
            if _complete(raw):
                break
            piece = read1(_READ_PIECE, decode_content=True)
            if not piece:
                break
            pieces.append(piece)
            total += len(piece)
        return pieces[0] if len(pieces) == 1 else b"".join(pieces)

    def _late(self, method: str, url: str) -> RequestTimeoutError:
        return RequestTimeoutError(
            f"{method} {_strip_query(url)} did not complete within its deadline of "
            f"{self._deadline:g} s",
            method=method,
            url=_strip_query(url),
        )

    def _log_retry(self, method: str, url: str, outcome: str, attempt: int, delay: float) -> None:
        """Log (INFO) what befell attempt ``attempt`` (from 0) and when the next one is made."""
        logger.info(
            "%s %s %s; retry %d/%d in %.2fs",
            method,
            _strip_query(url),
            outcome,
            attempt + 1,
            self._max_retries,
            delay,
        )

    def server_time_at(self, moment: float) -> float | None:
        """The service's clock at ``moment`` (a ``time.monotonic()`` reading), or None.

        From the ``Date`` of its last answer, carried to ``moment`` on the monotonic
        clock: this machine's wall clock plays no part. A lower bound (``Date`` has whole
        seconds, and the answer took time to arrive); None when no answer had a usable
        ``Date``.
        """
        seen = self._server_date
        if seen is None:
            return None
        when = _http_date(seen[0])
        return when - (seen[1] - moment) if when is not None else None

    def _wait(self, delay: float) -> None:
        if self._sleep_hook is not None:
            self._sleep_hook(delay)
            if self._closed.is_set():
                raise ClientClosedError("the client was closed while waiting to retry")
            return
        if self._closed.wait(delay):
            raise ClientClosedError("the client was closed while waiting to retry")


def _complete(raw: Any) -> bool:
    """Whether urllib3 has read all the body its ``Content-Length`` announced, none to decode.

    Then the read that would return ``b""`` is not made (it was 3% of the instructions of a
    ``send_message``); the connection is back in the pool already.
    """
    return getattr(raw, "length_remaining", None) == 0 and not raw.headers.get("Content-Encoding")


class _ReadPieces:
    """``read1`` for a raw body that only has ``read(amt)`` (a caller's own adapter)."""

    __slots__ = ("raw",)

    def __init__(self, raw: Any) -> None:
        self.raw = raw

    def __call__(self, amount: int, decode_content: bool = True) -> bytes:
        return bytes(self.raw.read(amount))


class _BodyFailure(Exception):
    """Internal: reading the body stopped at the size cap or at the deadline."""

    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind

    def error(self, method: str, where: str, limit: int, deadline: float) -> ChatError:
        if self.kind == "size":
            return ResponseTooLargeError(
                f"{method} {where}: the response body is larger than the limit of {limit} "
                "bytes (max_response_bytes)",
                limit=limit,
            )
        return RequestTimeoutError(
            f"{method} {where} did not complete within its deadline of {deadline:g} s "
            "(the body was still arriving)",
            method=method,
            url=where,
        )


class _Failed(Exception):
    """Internal: a translated failure and whether it may be retried."""

    def __init__(self, error: ChatError, *, never_sent: bool, retryable: bool) -> None:
        super().__init__(str(error))
        self.error = error
        self.never_sent = never_sent
        self.retryable = retryable


#: The pool a transport's requests skip (a proxy applies to the REST origin).
_NO_POOL = object()
#: What sends a request target to the adapter's own path: requests would rebuild it from
#: ``urlsplit``, which drops a fragment and strips whitespace and control characters.
_ODD_TARGET = re.compile(r"[\x00-\x20#]")


def _urlopen(
    pool: Any,
    adapter: requests.adapters.HTTPAdapter,
    method: str,
    target: str,
    auth: _AuthHeaders,
    body: bytes | None,
    timeout: _Urllib3Timeout,
) -> Any:
    """One request straight to our adapter's urllib3 pool, as the adapter's ``send`` makes it.

    What ``send`` adds on top (a ``PreparedRequest`` parsed again, the proxy chosen, the pool
    looked up and the CA bundle stat'ed on every request, a ``Response`` with its cookie jar)
    was 25% of the instructions of a ``send_message``; the pool and the TLS checks are
    resolved once per session instead (:meth:`HttpTransport._pool_of`). urllib3's exceptions
    come out as they are; :func:`translate_exception` reads them as it reads requests'
    wrappers. Made here so no frame of ``_send_once`` holds the headers.
    """
    headers = auth.get if body is None else {**auth.post, "Content-Length": str(len(body))}
    return pool.urlopen(
        method,
        target,
        body=body,
        headers=headers,
        redirect=False,
        assert_same_host=False,
        preload_content=False,
        decode_content=False,
        retries=adapter.max_retries,
        timeout=timeout,
        chunked=False,
    )


def _drop(response: Any) -> None:
    """Close a response whose body was not read to its end (a requests or urllib3 one)."""
    response.close()
    release = getattr(response, "release_conn", None)
    if release is not None:
        release()


def _prepare(
    method: str,
    url: str,
    auth: _AuthHeaders,
    body: bytes | None,
    hooks: Mapping[str, list[Any]] | None = None,
) -> Any:
    """The request to send; made here so no frame of ``_send_once`` holds it (or the headers).

    ``hooks``: a caller's session's hooks, which ``Session.send`` runs from the request.
    """
    prepared = requests.PreparedRequest()
    if hooks is not None:
        prepared.hooks = {event: list(callbacks) for event, callbacks in hooks.items()}
    prepared.method = method
    prepared.url = url
    if body is None:
        prepared.headers = auth.get  # type: ignore[assignment]  # any mapping works downstream
    else:
        prepared.headers = {**auth.post, "Content-Length": str(len(body))}  # type: ignore[assignment]
    prepared.body = body
    return prepared


def _fresh_pools(adapter: Any) -> None:
    """Give a caller's adapter new, empty connection pools (in a forked child).

    As requests itself does when it unpickles an adapter (``HTTPAdapter.__setstate__``): the
    pool managers are made again through the adapter's own ``init_poolmanager``, so what the
    caller configured (its class and constructor arguments, ``max_retries``, ``pool_maxsize``,
    an ``ssl_context`` its subclass passes) is kept. Making a new adapter of the same class
    instead would drop all that, or fail for a class whose constructor takes arguments. An
    adapter that is not an ``HTTPAdapter`` has no pools we know of and is left as it is.
    """
    if not isinstance(adapter, requests.adapters.HTTPAdapter):
        return
    adapter.proxy_manager = {}
    adapter.init_poolmanager(
        getattr(adapter, "_pool_connections", requests.adapters.DEFAULT_POOLSIZE),
        getattr(adapter, "_pool_maxsize", requests.adapters.DEFAULT_POOLSIZE),
        block=getattr(adapter, "_pool_block", requests.adapters.DEFAULT_POOLBLOCK),
    )


def _origin(scheme: str, host: str | None, port: int | None) -> tuple[str, str, int]:
    scheme = scheme.lower()
    default = {"https": 443, "http": 80}.get(scheme, -1)
    return (scheme, (host or "").lower(), port if port is not None else default)
