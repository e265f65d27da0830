"""Server-side helpers: mint and refresh Subscriber Access Tokens with project credentials.

For Django/Flask back ends that hold a project id and API token: mint a SAT for one of your
users (or a guest token for an anonymous visitor, limited to a few addresses) and hand it to
the browser or to a :class:`~signalwire_chat.ChatClient`. A subscriber can also mint an invite
token for one of its addresses with its own SAT. The request and answer fields are those of
the service's OpenAPI (as the official ``signalwire-sdk`` 3.7 generates them). The requests
go through the client's own transport (``_http.HttpTransport``): the same retry rules, deadline,
body cap, error translation and redaction; a :class:`SubscriberTokenSource` keeps one pooled
transport for all its calls.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import attrs
import requests

from . import _fork
from ._auth import BasicCredentials, Credentials
from ._config import RestOptions
from ._http import DEFAULT_DEADLINE, DEFAULT_MAX_RETRIES, HttpTransport, TimeoutLike
from ._redact import forgets_locals
from ._token import check_url
from ._validate import check_str as _check
from .errors import (
    AuthenticationError,
    BadRequestError,
    DecodeError,
    InvalidArgumentError,
    InvalidArgumentTypeError,
    ValidationError,
)

if TYPE_CHECKING:
    from ._http import CredentialsLike

__all__ = [
    "SubscriberToken",
    "SubscriberTokenSource",
    "mint_guest_token",
    "mint_invite_token",
    "mint_subscriber_token",
    "refresh_subscriber_token",
]

logger = logging.getLogger(__name__)

_DEFAULT_TIMEOUT = (5.0, 30.0)
#: The options of how a token request is made (the rest of ``RestOptions`` keeps its default).
_REST_OPTIONS = ("timeout", "deadline", "max_retries", "session")
#: The service's refresh tokens live 2 h 5 min; stop using one a little before that.
REFRESH_TOKEN_LIFETIME = 2 * 3600 + 5 * 60
_REFRESH_MARGIN = 120.0
#: The service takes at most this many addresses in a guest token's ``allowed_addresses``.
MAX_GUEST_ADDRESSES = 10
#: The optional string fields of a subscriber token request, in the OpenAPI's order.
_SUBSCRIBER_FIELDS = (
    "application_id",
    "password",
    "first_name",
    "last_name",
    "display_name",
    "job_title",
    "time_zone",
    "country",
    "region",
    "company_name",
)


@attrs.frozen(kw_only=True, repr=False)
class SubscriberToken:
    """A freshly minted Subscriber Access Token and its refresh token (repr redacted).

    The answer of every token endpoint: a subscriber, guest or invite token, or a refresh.

    Attributes:
        token: The SAT, for ``ChatClient(token)`` or the browser's SDK.
        refresh_token: Use with :func:`refresh_subscriber_token` before it expires (None for
            an invite token, which has none).
        subscriber_id: The subscriber the token is for, when the service says so (the
            subscriber token endpoint does).
        issued_at: ``time.time()`` when it was received.
    """

    token: str
    refresh_token: str | None = None
    subscriber_id: str | None = None
    issued_at: float = attrs.field(factory=time.time)

    def __repr__(self) -> str:
        return (
            f"SubscriberToken(token=<redacted>, refresh_token=<redacted>, "
            f"subscriber_id={self.subscriber_id!r})"
        )


def _space_base(space_url: object) -> str:
    url = _check(space_url, "space_url").strip()
    if "://" not in url:
        url = "https://" + url
    return check_url(url, kind="rest", opt_in=None)  # the token functions have no opt-in


def _transport(base: str, credentials: CredentialsLike, options: RestOptions) -> HttpTransport:
    """The transport of a token request: the options checked as ``ChatClient``'s are."""
    return HttpTransport(
        base_url=base,
        credentials=credentials,
        timeout=options.timeout,
        deadline=options.deadline,
        max_retries=options.max_retries,
        session=options.session,
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
    subscriber_id = answer.get("subscriber_id")
    if subscriber_id is not None and not isinstance(subscriber_id, str):
        raise DecodeError("token answer: 'subscriber_id' must be a string", field="subscriber_id")
    return SubscriberToken(
        token=answer["token"], refresh_token=refresh, subscriber_id=subscriber_id
    )


def _one_off(
    space_url: object, project_id: object, api_token: object, options: RestOptions
) -> HttpTransport:
    base = _space_base(space_url)
    credentials = BasicCredentials(_check(project_id, "project_id"), _check(api_token, "api_token"))
    return _transport(base, credentials, options)


def _unix_seconds(payload: dict[str, Any], name: str, value: object) -> None:
    """Put ``value`` in ``payload[name]`` when given: an int of Unix seconds."""
    if value is not None:
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidArgumentTypeError(f"{name} must be an int (Unix seconds) or None")
        payload[name] = int(value)


def _mint_payload(
    reference: object, expire_at: object, fields: Mapping[str, object]
) -> dict[str, Any]:
    """The subscriber token request.

    ``reference``, ``expire_at`` and the optional strings of ``_SUBSCRIBER_FIELDS`` given in
    ``fields`` (None: left out).
    """
    payload: dict[str, Any] = {"reference": _check(reference, "reference")}
    _unix_seconds(payload, "expire_at", expire_at)
    for name in _SUBSCRIBER_FIELDS:
        value = fields.get(name)
        if value is not None:
            payload[name] = _check(value, name)
    return payload


_MINT_PATH = "/api/fabric/subscribers/tokens"
_REFRESH_PATH = "/api/fabric/subscribers/tokens/refresh"
_GUEST_PATH = "/api/fabric/guests/tokens"
_INVITE_PATH = "/api/fabric/subscriber/invites"


@forgets_locals
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
    application_id: str | None = None,
    job_title: str | None = None,
    time_zone: str | None = None,
    country: str | None = None,
    region: str | None = None,
    company_name: str | None = None,
    timeout: TimeoutLike = _DEFAULT_TIMEOUT,
    deadline: float = DEFAULT_DEADLINE,
    max_retries: int = DEFAULT_MAX_RETRIES,
    session: requests.Session | None = None,
) -> SubscriberToken:
    """Mint a Subscriber Access Token (``POST /api/fabric/subscribers/tokens``, Basic auth).

    The subscriber is created on first use; the profile fields update it.

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
        application_id: The id of the application the token is for.
        job_title: The subscriber's job title.
        time_zone: The subscriber's time zone (a TZ database name).
        country: The subscriber's country.
        region: The subscriber's region.
        company_name: The subscriber's company.
        timeout: Seconds, or ``(connect, read)``.
        deadline: Seconds the whole call may take, retries and waits included (a
            ``Retry-After`` that would pass it is not waited for: ``RateLimitError``
            is raised at once, with ``retry_after``). A web handler minting for its page
            sets a few seconds.
        max_retries: Retries of a request that failed before reaching the service, or
            answered 429 or 5xx (0 to 20).
        session: A ``requests.Session`` to send through.

    Returns:
        The SAT, its refresh token and the subscriber's id.

    Raises:
        InvalidArgumentError: A bad argument (nothing is sent).
        AuthenticationError: The project credentials were refused.
        APIError: Any other error status.
        TransportError: The request failed at the network level.
    """
    options = RestOptions(
        timeout=timeout, deadline=deadline, max_retries=max_retries, session=session
    )
    transport = _one_off(space_url, project_id, api_token, options)
    fields = {
        "application_id": application_id,
        "password": password,
        "first_name": first_name,
        "last_name": last_name,
        "display_name": display_name,
        "job_title": job_title,
        "time_zone": time_zone,
        "country": country,
        "region": region,
        "company_name": company_name,
    }
    payload = _mint_payload(reference, expire_at, fields)
    try:
        return _post(transport, _MINT_PATH, payload, (password or "",))
    finally:
        transport.close()


@forgets_locals
def refresh_subscriber_token(
    space_url: str,
    project_id: str,
    api_token: str,
    refresh_token: str,
    *,
    timeout: TimeoutLike = _DEFAULT_TIMEOUT,
    deadline: float = DEFAULT_DEADLINE,
    max_retries: int = DEFAULT_MAX_RETRIES,
    session: requests.Session | None = None,
) -> SubscriberToken:
    """Exchange a refresh token for a new SAT (``POST /api/fabric/subscribers/tokens/refresh``).

    Args:
        space_url: Your space URL (see :func:`mint_subscriber_token`).
        project_id: The project id.
        api_token: The project's API token.
        refresh_token: The refresh token of a previous mint or refresh.
        timeout: Seconds, or ``(connect, read)``.
        deadline: Seconds the whole call may take (see :func:`mint_subscriber_token`).
        max_retries: Retries, 0 to 20 (see :func:`mint_subscriber_token`).
        session: A ``requests.Session`` to send through.

    Returns:
        A new SAT and a new refresh token.

    Raises:
        InvalidArgumentError: A bad argument (nothing is sent).
        AuthenticationError: The credentials or the refresh token were refused.
        APIError: Any other error status.
        TransportError: The request failed at the network level.
    """
    options = RestOptions(
        timeout=timeout, deadline=deadline, max_retries=max_retries, session=session
    )
    transport = _one_off(space_url, project_id, api_token, options)
    refresh_token = _check(refresh_token, "refresh_token")
    try:
        return _post(transport, _REFRESH_PATH, {"refresh_token": refresh_token}, (refresh_token,))
    finally:
        transport.close()


def _allowed_addresses(value: object) -> list[str]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise InvalidArgumentTypeError("allowed_addresses must be a sequence of address ids")
    ids = [_check(item, "allowed_addresses[]") for item in value]
    if not 1 <= len(ids) <= MAX_GUEST_ADDRESSES:
        raise InvalidArgumentError(
            f"allowed_addresses must hold 1 to {MAX_GUEST_ADDRESSES} address ids, not {len(ids)}"
        )
    return ids


@forgets_locals
def mint_guest_token(
    space_url: str,
    project_id: str,
    api_token: str,
    allowed_addresses: Sequence[str],
    *,
    expire_at: int | None = None,
    timeout: TimeoutLike = _DEFAULT_TIMEOUT,
    deadline: float = DEFAULT_DEADLINE,
    max_retries: int = DEFAULT_MAX_RETRIES,
    session: requests.Session | None = None,
) -> SubscriberToken:
    """Mint a guest token (``POST /api/fabric/guests/tokens``, Basic auth).

    For a visitor without an account (a support chat on a public page): the guest may reach
    only ``allowed_addresses``. Hand the token to the browser; refresh it with
    :func:`refresh_subscriber_token`.

    Args:
        space_url: Your space URL (see :func:`mint_subscriber_token`).
        project_id: The project id.
        api_token: The project's API token. Never logged.
        allowed_addresses: The ids of the addresses the guest may reach: 1 to 10, each an
            address of the project.
        expire_at: Unix seconds at which the token expires (the service's default is 2 hours).
        timeout: Seconds, or ``(connect, read)``.
        deadline: Seconds the whole call may take (see :func:`mint_subscriber_token`).
        max_retries: Retries, 0 to 20 (see :func:`mint_subscriber_token`).
        session: A ``requests.Session`` to send through.

    Returns:
        The guest's SAT and its refresh token.

    Raises:
        InvalidArgumentError: A bad argument, e.g. no address or more than 10 (nothing is sent).
        AuthenticationError: The project credentials were refused.
        ValidationError: The service refused an address (e.g. not of the project).
        APIError: Any other error status.
        TransportError: The request failed at the network level.
    """
    options = RestOptions(
        timeout=timeout, deadline=deadline, max_retries=max_retries, session=session
    )
    transport = _one_off(space_url, project_id, api_token, options)
    payload: dict[str, Any] = {"allowed_addresses": _allowed_addresses(allowed_addresses)}
    _unix_seconds(payload, "expire_at", expire_at)
    try:
        return _post(transport, _GUEST_PATH, payload, ())
    finally:
        transport.close()


@forgets_locals
def mint_invite_token(
    space_url: str,
    token: str,
    address_id: str,
    *,
    expires_at: int | None = None,
    timeout: TimeoutLike = _DEFAULT_TIMEOUT,
    deadline: float = DEFAULT_DEADLINE,
    max_retries: int = DEFAULT_MAX_RETRIES,
    session: requests.Session | None = None,
) -> SubscriberToken:
    """Mint an invite token (``POST /api/fabric/subscriber/invites``, Bearer SAT).

    A subscriber invites someone to one of its addresses: the request is authorized with
    that subscriber's own SAT, not the project credentials (as the service documents it).

    Args:
        space_url: Your space URL (see :func:`mint_subscriber_token`).
        token: The inviting subscriber's SAT. Never logged.
        address_id: The id of the inviting subscriber's address.
        expires_at: Unix seconds at which the invite expires (the service's default is
            2 hours). The service spells it ``expires_at`` here, ``expire_at`` elsewhere.
        timeout: Seconds, or ``(connect, read)``.
        deadline: Seconds the whole call may take (see :func:`mint_subscriber_token`).
        max_retries: Retries, 0 to 20 (see :func:`mint_subscriber_token`).
        session: A ``requests.Session`` to send through.

    Returns:
        The invite token (``refresh_token`` is None: the service gives none).

    Raises:
        InvalidArgumentError: A bad argument (nothing is sent).
        AuthenticationError: The SAT was refused.
        NotFoundError: No such address.
        APIError: Any other error status.
        TransportError: The request failed at the network level.
    """
    base = _space_base(space_url)
    credentials = Credentials(_check(token, "token"))
    payload: dict[str, Any] = {"address_id": _check(address_id, "address_id")}
    _unix_seconds(payload, "expires_at", expires_at)
    options = RestOptions(
        timeout=timeout, deadline=deadline, max_retries=max_retries, session=session
    )
    transport = _transport(base, credentials, options)
    try:
        return _post(transport, _INVITE_PATH, payload, credentials.secrets)
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
            ``display_name``, ``first_name``, ``last_name``, ``expire_at``,
            ``application_id``, ``job_title``, ``time_zone``, ``country``, ``region``,
            ``company_name``, ``timeout``, ``deadline``, ``max_retries``, ``session``).
    """

    @forgets_locals
    def __init__(
        self,
        space_url: str,
        project_id: str,
        api_token: str,
        reference: str,
        **mint_options: Any,
    ) -> None:
        allowed = {
            *_SUBSCRIBER_FIELDS,
            "expire_at",
            "timeout",
            "deadline",
            "max_retries",
            "session",
        }
        unknown = set(mint_options) - allowed
        if unknown:
            raise InvalidArgumentTypeError(f"unknown option(s): {', '.join(sorted(unknown))}")
        self._base = _space_base(space_url)
        self._space_url = space_url
        self._project_id = _check(project_id, "project_id")
        self._api_token = _check(api_token, "api_token")
        self._payload = _mint_payload(reference, mint_options.get("expire_at"), mint_options)
        self._password = mint_options.get("password") or ""
        self._options = RestOptions(
            timeout=mint_options.get("timeout", _DEFAULT_TIMEOUT),
            deadline=mint_options.get("deadline", DEFAULT_DEADLINE),
            max_retries=mint_options.get("max_retries", DEFAULT_MAX_RETRIES),
            session=mint_options.get("session"),
        )
        self._lock = threading.Lock()
        self._last: SubscriberToken | None = None
        self._last_at = 0.0  # when (monotonic) _last came
        self._http: HttpTransport | None = None  # made on first use, pooled across calls
        _fork.renew_in_child(self)

    def _renew_after_fork(self) -> None:
        """In a forked child: the lock held across a mint under way at the fork is freed."""
        self._lock = threading.Lock()

    def _transport(self) -> HttpTransport:
        if self._http is None or self._http.closed:
            credentials = BasicCredentials(self._project_id, self._api_token)
            self._http = _transport(self._base, credentials, self._options)
        return self._http

    @forgets_locals
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
