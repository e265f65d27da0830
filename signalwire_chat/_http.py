"""The one place requests is used: base URL, auth header, timeouts, retries, link safety, errors.

Every failure of requests/urllib3 is caught at one call site (:meth:`HttpTransport._send_once`)
and re-raised as this library's own exception; every HTTP error status is translated by one
function (:func:`error_from_response`), shared with the backend helpers.

Retry rules:

- GET (idempotent): connection failures, read timeouts, 429 and 502/503/504 are retried with
  exponential back-off and full jitter (a 429's ``Retry-After`` is honoured, capped).
- POST: retried only when the request surely never reached the server (the connection could
  not be made) or the server answered 429 (it did not process it).
- A 401 with a token source: the token is refreshed once and the request sent once more.

The wait between retries is an ``Event.wait`` that :meth:`HttpTransport.close` interrupts.
What requests would otherwise read from the environment on every call (proxies, CA bundle,
netrc) is resolved once per transport.
"""

from __future__ import annotations

import email.utils
import json
import logging
import math
import os
import random
import re
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlencode, urljoin, urlsplit

import requests
import requests.adapters
import requests.exceptions
import urllib3.exceptions
from urllib3.util import Timeout as _Urllib3Timeout

from ._auth import Credentials
from ._version import __version__
from .errors import (
    APIError,
    AuthenticationError,
    BadRequestError,
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
    ServerError,
    TransportError,
    UnsafeLinkError,
    ValidationError,
)

__all__ = [
    "DEFAULT_MAX_RETRIES",
    "DEFAULT_TIMEOUT",
    "USER_AGENT",
    "HttpTransport",
    "TimeoutLike",
    "error_from_response",
    "normalise_timeout",
    "translate_exception",
]

logger = logging.getLogger(__name__)

USER_AGENT = f"signalwire-chat-python/{__version__}"

#: (connect, read) seconds. The connect phase is short so a dead host fails fast; the read
#: timeout matches the official SDK's 30 s request timeout.
DEFAULT_TIMEOUT: tuple[float, float] = (5.0, 30.0)
DEFAULT_MAX_CONNECTIONS = 32
#: What a pagination link may not contain: control characters, spaces, backslashes.
_UNSAFE_IN_LINK = re.compile(r"[\x00-\x20\\]")
DEFAULT_MAX_RETRIES = 3
BACKOFF_BASE = 0.5  # seconds; attempt n waits uniform(0, min(BACKOFF_MAX, BASE * 2**n))
BACKOFF_MAX = 8.0
RETRY_AFTER_MAX = 30.0  # a longer Retry-After is capped to this
_BODY_KEEP = 2000
_RETRY_STATUSES_GET = frozenset((429, 502, 503, 504))
_REQUEST_ID_HEADERS = (
    "X-Request-Id",
    "Request-Id",
    "X-Amzn-RequestId",
    "X-Correlation-Id",
    "X-Trace-Id",
)

#: A timeout: seconds for both phases, or a ``(connect, read)`` pair.
TimeoutLike = float | tuple[float, float]


def normalise_timeout(timeout: object, what: str = "timeout") -> tuple[float, float]:
    """Check a timeout (seconds, or ``(connect, read)``) and return it as a pair.

    Raises:
        InvalidArgumentTypeError: Not a number or a pair of numbers.
        InvalidArgumentError: Not finite and positive.
    """
    pair: tuple[object, object]
    if isinstance(timeout, tuple) and len(timeout) == 2:
        pair = (timeout[0], timeout[1])
    elif isinstance(timeout, (int, float)) and not isinstance(timeout, bool):
        pair = (timeout, timeout)
    else:
        raise InvalidArgumentTypeError(
            f"{what} must be a number of seconds or a (connect, read) pair, "
            f"not {type(timeout).__name__}"
        )
    out = []
    for value in pair:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise InvalidArgumentTypeError(f"{what} values must be numbers")
        if not (math.isfinite(value) and value > 0):
            raise InvalidArgumentError(f"{what} values must be finite and > 0, got {value!r}")
        out.append(float(value))
    return (out[0], out[1])


# --- translation of failures -----------------------------------------------------------------


def _redact(text: str, secrets: tuple[str, ...]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "[redacted]")
    return text


def _strip_query(url: str) -> str:
    return url.split("?", 1)[0].split("#", 1)[0]


def _retry_after(headers: Mapping[str, str]) -> float | None:
    value = headers.get("Retry-After")
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        seconds = when.timestamp() - time.time()
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


def error_from_response(
    response: requests.Response,
    *,
    method: str,
    url: str,
    secrets: tuple[str, ...] = (),
) -> APIError:
    """Translate an error response into the matching :class:`~signalwire_chat.APIError`.

    Never fails on the body: JSON fabric errors are parsed, anything else (HTML, empty, binary)
    is kept, truncated, in ``body``. ``secrets`` are redacted from every text kept.
    """
    status = response.status_code
    try:
        text = response.content.decode("utf-8", errors="replace")
    except (requests.exceptions.RequestException, OSError):
        text = ""
    text = _redact(text, secrets)
    errors: list[FabricErrorDetail] = []
    message = ""
    body: Any = None
    if text.strip():
        try:
            body = json.loads(text)
        except ValueError:
            body = None
    if isinstance(body, dict):
        raw_errors = body.get("errors")
        if isinstance(raw_errors, list):
            errors = [FabricErrorDetail.from_wire(e) for e in raw_errors if isinstance(e, dict)]
        message = next((e.message for e in errors if e.message), "")
        if not message:
            for key in ("message", "error_description", "error", "detail"):
                value = body.get(key)
                if isinstance(value, str) and value:
                    message = value
                    break
    if not message:
        reason = response.reason if isinstance(response.reason, str) else ""
        message = reason or "HTTP error"
        if text.strip() and body is None:
            kind = response.headers.get("Content-Type", "unknown content type").split(";")[0]
            message = f"{message} (non-JSON body, {kind})"
    request_id = None
    for header in _REQUEST_ID_HEADERS:
        request_id = response.headers.get(header)
        if request_id:
            break
    kwargs: dict[str, Any] = {
        "status": status,
        "errors": errors,
        "request_id": request_id,
        "method": method,
        "url": _strip_query(url),
        "body": text[:_BODY_KEEP],
    }
    if status == 429:
        return RateLimitError(message, retry_after=_retry_after(response.headers), **kwargs)
    cls = _STATUS_ERRORS.get(status)
    if cls is None:
        cls = ServerError if status >= 500 else APIError
    return cls(message, **kwargs)


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


def _never_sent(exc: BaseException) -> bool:
    """Whether a requests error proves the request never left (the connection was not made)."""
    if isinstance(exc, requests.exceptions.ConnectTimeout):
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


def translate_exception(exc: Exception, *, method: str, url: str) -> TransportError:
    """Translate a requests/urllib3 failure into a :class:`~signalwire_chat.TransportError`."""
    where = _strip_query(url)
    cause = _root_cause(exc)
    detail = f"{type(cause).__name__}"
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return RequestTimeoutError(f"connecting to {where} timed out", method=method, url=where)
    if isinstance(exc, requests.exceptions.ReadTimeout):
        return RequestTimeoutError(f"no response from {where} in time", method=method, url=where)
    if isinstance(exc, requests.exceptions.SSLError):
        return ConnectError(f"TLS failure talking to {where}: {detail}", method=method, url=where)
    if _never_sent(exc):
        return ConnectError(f"could not connect to {where}: {detail}", method=method, url=where)
    return TransportError(f"{method} {where} failed: {detail}", method=method, url=where)


# --- the transport ---------------------------------------------------------------------------


class HttpTransport:
    """A REST transport bound to one base URL and one credential.

    Nothing is opened in the constructor; the session is made on first use (and again in a
    child process after ``os.fork()``).

    Args:
        base_url: The REST base, already checked (``https://fabric.example.com``).
        credentials: The token holder.
        timeout: ``(connect, read)`` seconds.
        max_retries: Retries after the first attempt (0 disables retrying).
        max_connections: Connections kept open to the REST host for reuse, which is how many
            threads can send at once without opening a connection each (our own session only).
        session: A caller's ``requests.Session`` to send through (never closed here).
        sleep: A test hook replacing the interruptible wait between retries.
        rng: A test hook: the random source of the jitter.
    """

    def __init__(
        self,
        *,
        base_url: str,
        credentials: Credentials,
        timeout: tuple[float, float] = DEFAULT_TIMEOUT,
        max_retries: int = DEFAULT_MAX_RETRIES,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        parts = urlsplit(self.base_url)
        self._origin = _origin(parts.scheme, parts.hostname, parts.port)
        self._credentials = credentials
        self._timeout = _Urllib3Timeout(connect=timeout[0], read=timeout[1])
        self._max_retries = max_retries
        self._max_connections = max_connections
        self._user_session = session
        self._sleep_hook = sleep
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self._pid = -1
        self._session: requests.Session | None = None
        self._adapter: requests.adapters.BaseAdapter | None = None
        self._send_kwargs: dict[str, Any] = {}
        self._header_token: str | None = None
        self._get_headers: dict[str, str] = {}
        self._post_headers: dict[str, str] = {}

    # -- lifecycle --

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed.is_set()

    def close(self) -> None:
        """Close the pool (not a caller's session) and interrupt a retry wait. Idempotent."""
        self._closed.set()
        with self._lock:
            session, self._session = self._session, None
            self._adapter = None
        if session is not None and session is not self._user_session:
            session.close()

    def tls_settings(self) -> dict[str, Any]:
        """The resolved ``verify`` / ``cert`` / ``proxies`` (also used for the websocket)."""
        self._ensure_session()
        return dict(self._send_kwargs)

    def _ensure_session(self) -> requests.Session:
        pid = os.getpid()
        session = self._session
        if session is not None and pid == self._pid:
            return session
        with self._lock:
            if self._closed.is_set():
                raise ClientClosedError("the client is closed")
            if self._session is None or self._pid != pid:
                forked = self._pid != -1 and self._pid != pid
                self._session = self._open_session(forked)
                self._pid = pid
            return self._session

    def _open_session(self, forked: bool) -> requests.Session:
        if self._user_session is not None:
            session = self._user_session
            if forked:
                # The parent's pooled sockets must not be shared: mount fresh adapters.
                for prefix, adapter in list(session.adapters.items()):
                    try:
                        fresh = type(adapter)()
                    except TypeError:
                        fresh = requests.adapters.HTTPAdapter()
                    session.mount(prefix, fresh)
            self._adapter = None  # a caller's session: go through session.send (hooks, cookies)
        else:
            session = requests.Session()
            # requests keeps 10 connections per host; a web app shares one client across
            # more threads than that, and urllib3 would drop (and warn about) the rest.
            adapter = requests.adapters.HTTPAdapter(pool_maxsize=self._max_connections)
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
        return session

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
            raise UnsafeLinkError(
                f"refusing to follow a pagination link to {parts.scheme}://{parts.hostname}: "
                "only the REST base's own origin receives the token"
            )
        return absolute

    # -- requests --

    def _headers(self, token: str) -> tuple[dict[str, str], dict[str, str]]:
        if token is not self._header_token:
            base = {
                "Authorization": f"Bearer {token}",
                "Accept": "application/json",
                "User-Agent": USER_AGENT,
            }
            self._get_headers = base
            self._post_headers = {**base, "Content-Type": "application/json"}
            self._header_token = token
        return self._get_headers, self._post_headers

    def request(
        self, method: str, url: str, body: bytes | None = None, *, idempotent: bool | None = None
    ) -> Any:
        """Send a request and return its decoded JSON body (``None`` when empty).

        Args:
            method: ``"GET"`` or ``"POST"``.
            url: An absolute URL (from :meth:`url_for` or :meth:`resolve_link`).
            body: The JSON body, already serialised.
            idempotent: Whether sending it twice does no harm, so it is retried like a GET
                (default: only GETs are).

        Raises:
            ClientClosedError: The transport is closed (or was closed during a retry wait).
            TransportError: The request failed at the network level (after retries).
            APIError: The service answered an error status (after retries).
            DecodeError: A success body that is not JSON.
        """
        if idempotent is None:
            idempotent = method == "GET"
        refreshed = False
        attempt = 0
        while True:
            if self._closed.is_set():
                raise ClientClosedError("the client is closed")
            session = self._ensure_session()
            token = self._credentials.token
            get_headers, post_headers = self._headers(token)
            if body is None:
                headers = get_headers
            else:
                headers = {**post_headers, "Content-Length": str(len(body))}
            started = time.perf_counter()
            try:
                response = self._send_once(session, method, url, headers, body)
            except _Failed as failed:
                retryable = failed.never_sent or (idempotent and failed.retryable)
                if retryable and attempt < self._max_retries:
                    delay = self._backoff(attempt)
                    logger.info(
                        "%s %s failed (%s); retry %d/%d in %.2fs",
                        method,
                        _strip_query(url),
                        type(failed.error).__name__,
                        attempt + 1,
                        self._max_retries,
                        delay,
                    )
                    self._wait(delay)
                    attempt += 1
                    continue
                raise failed.error from failed.__cause__
            status = response.status_code
            if logger.isEnabledFor(logging.DEBUG):
                logger.debug(
                    "%s %s -> %d in %.1f ms",
                    method,
                    _strip_query(url),
                    status,
                    (time.perf_counter() - started) * 1000,
                )
            if status < 300:
                return decode_json(response, method, url)
            if status == 401 and not refreshed and self._credentials.can_refresh:
                refreshed = True
                logger.debug("401 from %s: refreshing the token once", _strip_query(url))
                self._credentials.refresh(token)
                continue
            retry_status = status in _RETRY_STATUSES_GET if idempotent else status == 429
            if retry_status and attempt < self._max_retries:
                retry_after = _retry_after(response.headers) if status == 429 else None
                if retry_after is not None:
                    delay = min(retry_after, RETRY_AFTER_MAX)
                else:
                    delay = self._backoff(attempt)
                logger.info(
                    "%s %s answered %d; retry %d/%d in %.2fs",
                    method,
                    _strip_query(url),
                    status,
                    attempt + 1,
                    self._max_retries,
                    delay,
                )
                response.close()
                self._wait(delay)
                attempt += 1
                continue
            raise error_from_response(response, method=method, url=url, secrets=(token,))

    def _send_once(
        self,
        session: requests.Session,
        method: str,
        url: str,
        headers: dict[str, str],
        body: bytes | None,
    ) -> requests.Response:
        prepared = requests.PreparedRequest()
        prepared.method = method
        prepared.url = url
        prepared.headers = headers  # type: ignore[assignment]  # any mapping works downstream
        prepared.body = body
        try:
            adapter = self._adapter
            if adapter is not None:
                return adapter.send(
                    prepared,
                    stream=False,
                    timeout=self._timeout,  # type: ignore[arg-type]  # urllib3 Timeout is accepted
                    **self._send_kwargs,
                )
            return session.send(
                prepared,
                stream=False,
                timeout=self._timeout,  # type: ignore[arg-type]  # urllib3 Timeout is accepted
                allow_redirects=False,
                **self._send_kwargs,
            )
        except (requests.exceptions.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
            error = translate_exception(exc, method=method, url=url)
            tls = isinstance(exc, requests.exceptions.SSLError)
            raise _Failed(
                error, never_sent=_never_sent(exc) and not tls, retryable=not tls
            ) from exc

    def _backoff(self, attempt: int) -> float:
        return self._rng.uniform(0.0, min(BACKOFF_MAX, BACKOFF_BASE * (2**attempt)))

    def _wait(self, delay: float) -> None:
        if self._sleep_hook is not None:
            self._sleep_hook(delay)
            if self._closed.is_set():
                raise ClientClosedError("the client was closed while waiting to retry")
            return
        if self._closed.wait(delay):
            raise ClientClosedError("the client was closed while waiting to retry")


class _Failed(Exception):
    """Internal: a translated transport failure and whether it may be retried."""

    def __init__(self, error: TransportError, *, never_sent: bool, retryable: bool) -> None:
        super().__init__(error.message)
        self.error = error
        self.never_sent = never_sent
        self.retryable = retryable


def _origin(scheme: str, host: str | None, port: int | None) -> tuple[str, str, int]:
    scheme = scheme.lower()
    default = {"https": 443, "http": 80}.get(scheme, -1)
    return (scheme, (host or "").lower(), port if port is not None else default)


def decode_json(response: requests.Response, method: str, url: str) -> Any:
    """A success body as JSON (``None`` when empty); ``DecodeError`` when it is not JSON."""
    content = response.content
    if not content or not content.strip():
        return None
    try:
        return json.loads(content)
    except ValueError:
        kind = response.headers.get("Content-Type", "unknown").split(";")[0]
        raise DecodeError(
            f"{method} {_strip_query(url)} answered {response.status_code} with a body that is "
            f"not JSON ({kind})"
        ) from None
