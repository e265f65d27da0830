"""Server-side helpers: mint and refresh Subscriber Access Tokens with project credentials.

For Django/Flask back ends that hold a project id and API token: mint a SAT for one of your
users and hand it to the browser or to a :class:`~signalwire_chat.ChatClient`. The requests
go through the client's own transport (``_http.HttpTransport``): the same retry rules, deadline,
body cap, error translation and redaction; a :class:`SubscriberTokenSource` keeps one pooled
transport for all its calls.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Mapping
from typing import Any

import attrs
import requests

from ._auth import BasicCredentials
from ._http import (
    DEFAULT_MAX_RETRIES,
    HttpTransport,
    TimeoutLike,
    normalise_timeout,
)
from ._token import check_url
from ._validate import check_str as _check
from .errors import (
    AuthenticationError,
    BadRequestError,
    DecodeError,
    InvalidArgumentTypeError,
    ValidationError,
)

__all__ = [
    "SubscriberToken",
    "SubscriberTokenSource",
    "mint_subscriber_token",
    "refresh_subscriber_token",
]

logger = logging.getLogger(__name__)

_DEFAULT_TIMEOUT = (5.0, 30.0)
#: The service's refresh tokens live 2 h 5 min; stop using one a little before that.
REFRESH_TOKEN_LIFETIME = 2 * 3600 + 5 * 60
_REFRESH_MARGIN = 120.0


@attrs.frozen(kw_only=True, repr=False)
class SubscriberToken:
    """A freshly minted Subscriber Access Token and its refresh token (repr redacted).

    Attributes:
        token: The SAT, for ``ChatClient(token)``.
        refresh_token: Use with :func:`refresh_subscriber_token` before it expires.
        issued_at: ``time.time()`` when it was received.
    """

    token: str
    refresh_token: str | None = None
    issued_at: float = attrs.field(factory=time.time)

    def __repr__(self) -> str:
        return "SubscriberToken(token=<redacted>, refresh_token=<redacted>)"


def _space_base(space_url: object) -> str:
    url = _check(space_url, "space_url").strip()
    if "://" not in url:
        url = "https://" + url
    return check_url(url, kind="rest")


def _transport(
    base: str,
    project_id: str,
    api_token: str,
    timeout: tuple[float, float],
    session: requests.Session | None,
) -> HttpTransport:
    if session is not None and not isinstance(session, requests.Session):
        raise InvalidArgumentTypeError("session must be a requests.Session or None")
    return HttpTransport(
        base_url=base,
        credentials=BasicCredentials(project_id, api_token),
        timeout=timeout,
        max_retries=DEFAULT_MAX_RETRIES,
        session=session,
    )


def _post(
    transport: HttpTransport,
    path: str,
    payload: Mapping[str, Any],
    secrets: tuple[str, ...],
) -> SubscriberToken:
    body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    answer = transport.request("POST", transport.base_url + path, body, secrets=secrets)
    if not isinstance(answer, dict) or not isinstance(answer.get("token"), str):
        raise DecodeError("token answer: expected an object with a string 'token'", field="token")
    refresh = answer.get("refresh_token")
    if refresh is not None and not isinstance(refresh, str):
        raise DecodeError("token answer: 'refresh_token' must be a string", field="refresh_token")
    return SubscriberToken(token=answer["token"], refresh_token=refresh)


def _one_off(
    space_url: object,
    project_id: object,
    api_token: object,
    timeout: TimeoutLike,
    session: requests.Session | None,
) -> HttpTransport:
    base = _space_base(space_url)
    return _transport(
        base,
        _check(project_id, "project_id"),
        _check(api_token, "api_token"),
        normalise_timeout(timeout),
        session,
    )


def _mint_payload(
    reference: object,
    password: object,
    display_name: object,
    first_name: object,
    last_name: object,
    expire_at: object,
) -> dict[str, Any]:
    payload: dict[str, Any] = {"reference": _check(reference, "reference")}
    for name, value in (
        ("password", password),
        ("display_name", display_name),
        ("first_name", first_name),
        ("last_name", last_name),
    ):
        if value is not None:
            payload[name] = _check(value, name)
    if expire_at is not None:
        if isinstance(expire_at, bool) or not isinstance(expire_at, int):
            raise InvalidArgumentTypeError("expire_at must be an int (Unix seconds) or None")
        payload["expire_at"] = int(expire_at)
    return payload


_MINT_PATH = "/api/fabric/subscribers/tokens"
_REFRESH_PATH = "/api/fabric/subscribers/tokens/refresh"


def mint_subscriber_token(
    space_url: str,
    project_id: str,
    api_token: str,
    reference: str,
    *,
    password: str | None = None,
    display_name: str | None = None,
    first_name: str | None = None,
    last_name: str | None = None,
    expire_at: int | None = None,
    timeout: TimeoutLike = _DEFAULT_TIMEOUT,
    session: requests.Session | None = None,
) -> SubscriberToken:
    """Mint a Subscriber Access Token (``POST /api/fabric/subscribers/tokens``, Basic auth).

    Args:
        space_url: Your space, e.g. ``https://example.signalwire.com`` (``example.signalwire.com``
            works too).
        project_id: The project id (Basic auth user).
        api_token: The project's API token (Basic auth password). Never logged.
        reference: Your identifier of the subscriber, e.g. an email address.
        password: The subscriber's password, when creating one with a password.
        display_name: The subscriber's display name.
        first_name: The subscriber's first name.
        last_name: The subscriber's last name.
        expire_at: Unix seconds at which the SAT expires (the service's default is 2 hours).
        timeout: Seconds, or ``(connect, read)``.
        session: A ``requests.Session`` to send through.

    Returns:
        The SAT and its refresh token.

    Raises:
        InvalidArgumentError: A bad argument (nothing is sent).
        AuthenticationError: The project credentials were refused.
        APIError: Any other error status.
        TransportError: The request failed at the network level.
    """
    transport = _one_off(space_url, project_id, api_token, timeout, session)
    payload = _mint_payload(reference, password, display_name, first_name, last_name, expire_at)
    try:
        return _post(transport, _MINT_PATH, payload, (password or "",))
    finally:
        transport.close()


def refresh_subscriber_token(
    space_url: str,
    project_id: str,
    api_token: str,
    refresh_token: str,
    *,
    timeout: TimeoutLike = _DEFAULT_TIMEOUT,
    session: requests.Session | None = None,
) -> SubscriberToken:
    """Exchange a refresh token for a new SAT (``POST /api/fabric/subscribers/tokens/refresh``).

    Args:
        space_url: Your space URL (see :func:`mint_subscriber_token`).
        project_id: The project id.
        api_token: The project's API token.
        refresh_token: The refresh token of a previous mint or refresh.
        timeout: Seconds, or ``(connect, read)``.
        session: A ``requests.Session`` to send through.

    Returns:
        A new SAT and a new refresh token.

    Raises:
        InvalidArgumentError: A bad argument (nothing is sent).
        AuthenticationError: The credentials or the refresh token were refused.
        APIError: Any other error status.
        TransportError: The request failed at the network level.
    """
    transport = _one_off(space_url, project_id, api_token, timeout, session)
    refresh_token = _check(refresh_token, "refresh_token")
    try:
        return _post(transport, _REFRESH_PATH, {"refresh_token": refresh_token}, (refresh_token,))
    finally:
        transport.close()


class SubscriberTokenSource:
    """A thread-safe token source: each call returns a fresh SAT for one subscriber.

    Pass it as ``ChatClient(SubscriberTokenSource(...))``: the client calls it for its first
    token, after a 401, and before the realtime token expires. It refreshes with the last
    refresh token while that is still valid, and mints a new token otherwise (or when the
    refresh is refused).

    Args:
        space_url: Your space URL.
        project_id: The project id.
        api_token: The project's API token (never shown in a repr).
        reference: The subscriber's reference (e.g. an email address).
        **mint_options: Passed on to :func:`mint_subscriber_token` (``password``,
            ``display_name``, ``first_name``, ``last_name``, ``expire_at``, ``timeout``,
            ``session``).
    """

    def __init__(
        self,
        space_url: str,
        project_id: str,
        api_token: str,
        reference: str,
        **mint_options: Any,
    ) -> None:
        allowed = {
            "password",
            "display_name",
            "first_name",
            "last_name",
            "expire_at",
            "timeout",
            "session",
        }
        unknown = set(mint_options) - allowed
        if unknown:
            raise InvalidArgumentTypeError(f"unknown option(s): {', '.join(sorted(unknown))}")
        self._base = _space_base(space_url)
        self._space_url = space_url
        self._project_id = _check(project_id, "project_id")
        self._api_token = _check(api_token, "api_token")
        self._payload = _mint_payload(
            reference,
            mint_options.get("password"),
            mint_options.get("display_name"),
            mint_options.get("first_name"),
            mint_options.get("last_name"),
            mint_options.get("expire_at"),
        )
        self._password = mint_options.get("password") or ""
        self._timeout = normalise_timeout(mint_options.get("timeout", _DEFAULT_TIMEOUT))
        self._session = mint_options.get("session")
        if self._session is not None and not isinstance(self._session, requests.Session):
            raise InvalidArgumentTypeError("session must be a requests.Session or None")
        self._lock = threading.Lock()
        self._last: SubscriberToken | None = None
        self._last_at = 0.0  # when (monotonic) _last came
        self._http: HttpTransport | None = None  # made on first use, pooled across calls

    def _transport(self) -> HttpTransport:
        if self._http is None or self._http.closed:
            self._http = _transport(
                self._base, self._project_id, self._api_token, self._timeout, self._session
            )
        return self._http

    def __call__(self) -> str:
        """Return a fresh SAT (refreshing when possible, else minting).

        Raises:
            AuthenticationError: The project credentials were refused.
            APIError: Any other error status.
            TransportError: The request failed at the network level.
        """
        with self._lock:
            last = self._last
            # The refresh token's age on the monotonic clock: a wall clock that steps
            # (or is set an hour off) must not keep a dead refresh token or drop a good one.
            if (
                last is not None
                and last.refresh_token
                and time.monotonic() - self._last_at < REFRESH_TOKEN_LIFETIME - _REFRESH_MARGIN
            ):
                try:
                    self._last = _post(
                        self._transport(),
                        _REFRESH_PATH,
                        {"refresh_token": last.refresh_token},
                        (last.refresh_token,),
                    )
                    self._last_at = time.monotonic()
                    return self._last.token
                except (AuthenticationError, BadRequestError, ValidationError):
                    logger.info("refresh token refused; minting a new subscriber token")
            self._last = _post(self._transport(), _MINT_PATH, self._payload, (self._password,))
            self._last_at = time.monotonic()
            return self._last.token

    def close(self) -> None:
        """Close the pooled connections (a caller's ``session`` is left open). Idempotent.

        A later call opens a fresh pool.
        """
        with self._lock:
            transport, self._http = self._http, None
        if transport is not None:
            transport.close()

    def __enter__(self) -> SubscriberTokenSource:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"SubscriberTokenSource(space_url={self._space_url!r}, reference=<redacted>)"
