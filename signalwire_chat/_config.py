"""The client's settings as values: each normalises its input once, at construction.

- :class:`RestOptions`: how REST is spoken (timeouts, deadline, body cap, retries, pool size,
  a caller's ``requests.Session``), checked and normalised when made, so the transport
  trusts what it is given;
- :class:`Endpoints`: where the REST API and the relay are, from explicit URLs, a ``host``,
  or the token's header (``ch``), resolved once and kept.

``RealtimeOptions`` (``_realtime._options``) is the third: the realtime connection's tuning.
"""

from __future__ import annotations

import threading
from typing import Any

import attrs
import requests

from . import _fork
from ._http import (
    DEFAULT_DEADLINE,
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_MAX_RESPONSE_BYTES,
    DEFAULT_MAX_RETRIES,
    DEFAULT_TIMEOUT,
    normalise_deadline,
    normalise_max_response_bytes,
    normalise_timeout,
)
from ._token import check_url, derive_urls, read_token_header
from .errors import ChatError, InvalidArgumentError, InvalidArgumentTypeError, TokenError

__all__ = ["Endpoints", "RestOptions"]


def _int_in(low: int, high: int) -> Any:
    def check(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidArgumentTypeError(f"{attribute.name} must be an int")
        if not low <= value <= high:
            raise InvalidArgumentError(
                f"{attribute.name} must be between {low} and {high}, got {value}"
            )

    return check


def _session(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None and not isinstance(value, requests.Session):
        raise InvalidArgumentTypeError("session must be a requests.Session or None")


def _bool(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not isinstance(value, bool):
        raise InvalidArgumentTypeError(f"{attribute.name} must be a bool")


@attrs.frozen(kw_only=True)
class RestOptions:
    """How the client speaks REST; every field checked and normalised when made.

    Attributes:
        timeout: ``(connect, read)`` seconds of each request (a number gives both).
        deadline: Seconds one call may take in all, retries and waits included.
        max_response_bytes: The largest response body read (a bigger one is an error).
        max_retries: Retries of a request that failed before reaching the service, or of
            a read answered 429/5xx (0 to 20).
        max_connections: Pooled connections kept per host (1 to 1000).
        session: A ``requests.Session`` of the caller's to send through (proxies, TLS,
            adapters), or None for the client's own.
        allow_insecure: Allow plain-text URLs to hosts other than loopback.
    """

    timeout: tuple[float, float] = attrs.field(default=DEFAULT_TIMEOUT, converter=normalise_timeout)
    deadline: float = attrs.field(default=DEFAULT_DEADLINE, converter=normalise_deadline)
    max_response_bytes: int = attrs.field(
        default=DEFAULT_MAX_RESPONSE_BYTES, converter=normalise_max_response_bytes
    )
    max_retries: int = attrs.field(default=DEFAULT_MAX_RETRIES, validator=_int_in(0, 20))
    max_connections: int = attrs.field(default=DEFAULT_MAX_CONNECTIONS, validator=_int_in(1, 1000))
    session: requests.Session | None = attrs.field(default=None, validator=_session)
    allow_insecure: bool = attrs.field(default=False, validator=_bool)


class Endpoints:
    """The REST base URL and the relay URL: given, or derived from ``host`` or the token.

    Explicit URLs are checked at once; with a fixed token (or a ``host``) the rest is
    derived at once too; with a token source, on first need (deriving calls the source).
    A token whose header cannot be read is still usable for what was given explicitly: the
    relay URL's error is kept and raised only when the relay is needed.
    """

    def __init__(
        self,
        token: Any,
        *,
        host: str | None,
        rest_url: str | None,
        relay_url: str | None,
        allow_insecure: bool,
    ) -> None:
        for name, value in (("host", host), ("rest_url", rest_url), ("relay_url", relay_url)):
            if value is not None and not isinstance(value, str):
                raise InvalidArgumentTypeError(
                    f"{name} must be a str or None, not {type(value).__name__}"
                )
        self._token = token  # the client's Credentials: .token, .can_refresh
        self._host = host
        self._allow_insecure = allow_insecure
        self._lock = threading.Lock()
        _fork.renew_in_child(self)
        self._relay_error: ChatError | None = None
        self.rest: str | None = None
        self.relay: str | None = None
        if rest_url is not None:
            self.rest = check_url(rest_url, kind="rest", allow_insecure=allow_insecure)
        if relay_url is not None:
            self.relay = check_url(relay_url, kind="relay", allow_insecure=allow_insecure)
        if not token.can_refresh or host is not None:
            self._derive()

    def _renew_after_fork(self) -> None:
        """In a forked child: the lock held across a token fetch under way at the fork is freed."""
        self._lock = threading.Lock()

    def _derive(self) -> None:
        if self.rest is not None and self.relay is not None:
            return
        header = None if self._host is not None else read_token_header(self._token.token)
        try:
            rest, relay = derive_urls(
                header=header, host=self._host, rest_url=self.rest, relay_url=self.relay
            )
        except TokenError as exc:
            if self.rest is None:
                raise
            self._relay_error = exc
            return
        if self.rest is None:
            self.rest = check_url(rest, kind="rest", allow_insecure=self._allow_insecure)
        if self.relay is None:
            self.relay = check_url(relay, kind="relay", allow_insecure=self._allow_insecure)

    def rest_url(self) -> str:
        """The REST base URL (resolving it may call a token source)."""
        with self._lock:
            if self.rest is None:
                self._derive()
            assert self.rest is not None
            return self.rest

    def relay_url(self) -> str:
        """The relay websocket URL.

        Raises:
            TokenError: It cannot be derived (unreadable token header, no host or relay_url).
        """
        with self._lock:
            if self.relay is None and self._relay_error is None:
                self._derive()
            if self.relay is None:
                assert self._relay_error is not None
                raise self._relay_error
            return self.relay
