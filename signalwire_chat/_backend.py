"""Server-side helpers: mint and refresh Subscriber Access Tokens with project credentials.

For Django/Flask back ends that hold a project id and API token: mint a SAT for one of your
users and hand it to the browser or to a :class:`~signalwire_chat.ChatClient`. HTTP failures
are translated by the same function as the client's (``_http.error_from_response``).
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
import requests.exceptions
import urllib3.exceptions

from ._http import (
    USER_AGENT,
    TimeoutLike,
    decode_json,
    error_from_response,
    normalise_timeout,
    translate_exception,
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


def _post(
    url: str,
    auth: tuple[str, str],
    payload: Mapping[str, Any],
    timeout: tuple[float, float],
    session: requests.Session | None,
    secrets: tuple[str, ...],
) -> SubscriberToken:
    sender = session or requests.Session()
    try:
        try:
            response = sender.post(
                url,
                data=json.dumps(payload).encode("utf-8"),
                headers={
                    "Content-Type": "application/json",
                    "Accept": "application/json",
                    "User-Agent": USER_AGENT,
                },
                auth=auth,
                timeout=timeout,
                allow_redirects=False,
            )
        except (requests.exceptions.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
            raise translate_exception(exc, method="POST", url=url) from exc
        logger.debug("POST %s -> %d", url, response.status_code)
        if response.status_code >= 300:
            raise error_from_response(response, method="POST", url=url, secrets=secrets)
        body = decode_json(response, "POST", url)
    finally:
        if session is None:
            sender.close()
    if not isinstance(body, dict) or not isinstance(body.get("token"), str):
        raise DecodeError("token answer: expected an object with a string 'token'", field="token")
    refresh = body.get("refresh_token")
    if refresh is not None and not isinstance(refresh, str):
        raise DecodeError("token answer: 'refresh_token' must be a string", field="refresh_token")
    return SubscriberToken(token=body["token"], refresh_token=refresh)


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
    base = _space_base(space_url)
    auth = (_check(project_id, "project_id"), _check(api_token, "api_token"))
    payload: dict[str, Any] = {"reference": _check(reference, "reference")}
    for name, value in (
        ("password", password),
        ("display_name", display_name),
        ("first_name", first_name),
        ("last_name", last_name),
    ):
        if value is not None:
            if not isinstance(value, str):
                raise InvalidArgumentTypeError(f"{name} must be a str or None")
            payload[name] = value
    if expire_at is not None:
        if isinstance(expire_at, bool) or not isinstance(expire_at, int):
            raise InvalidArgumentTypeError("expire_at must be an int (Unix seconds) or None")
        payload["expire_at"] = expire_at
    return _post(
        base + "/api/fabric/subscribers/tokens",
        auth,
        payload,
        normalise_timeout(timeout),
        session,
        (api_token, password or ""),
    )


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
    base = _space_base(space_url)
    auth = (_check(project_id, "project_id"), _check(api_token, "api_token"))
    refresh_token = _check(refresh_token, "refresh_token")
    return _post(
        base + "/api/fabric/subscribers/tokens/refresh",
        auth,
        {"refresh_token": refresh_token},
        normalise_timeout(timeout),
        session,
        (api_token, refresh_token),
    )


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
        _space_base(space_url)
        _check(project_id, "project_id")
        _check(api_token, "api_token")
        _check(reference, "reference")
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
        self._space_url = space_url
        self._project_id = project_id
        self._api_token = api_token
        self._reference = reference
        self._mint_options = mint_options
        self._lock = threading.Lock()
        self._last: SubscriberToken | None = None

    def __call__(self) -> str:
        """Return a fresh SAT (refreshing when possible, else minting)."""
        with self._lock:
            last = self._last
            now = time.time()
            if (
                last is not None
                and last.refresh_token
                and now - last.issued_at < REFRESH_TOKEN_LIFETIME - _REFRESH_MARGIN
            ):
                try:
                    self._last = refresh_subscriber_token(
                        self._space_url,
                        self._project_id,
                        self._api_token,
                        last.refresh_token,
                        timeout=self._mint_options.get("timeout", _DEFAULT_TIMEOUT),
                        session=self._mint_options.get("session"),
                    )
                    return self._last.token
                except (AuthenticationError, BadRequestError, ValidationError):
                    logger.info("refresh token refused; minting a new subscriber token")
            self._last = mint_subscriber_token(
                self._space_url,
                self._project_id,
                self._api_token,
                self._reference,
                **self._mint_options,
            )
            return self._last.token

    def __repr__(self) -> str:
        return f"SubscriberTokenSource(space_url={self._space_url!r}, reference=<redacted>)"
