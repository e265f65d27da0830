"""The credential shared by REST and realtime: a fixed token or a token source, refreshed safely.

A token source is any callable returning a fresh Subscriber Access Token (for instance
:class:`~signalwire_chat.SubscriberTokenSource`). It is first called lazily, when a token is
first needed, never in the constructor. Refreshes from several threads coalesce: whoever comes
second gets the token the first one fetched, without calling the source again.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from ._validate import check_token as _check_token
from .errors import AuthenticationError, InvalidArgumentTypeError, TokenError

__all__ = ["Credentials", "TokenLike"]

logger = logging.getLogger(__name__)

#: What the client accepts as a token: the token itself, or a callable returning one.
TokenLike = str | Callable[[], str]


class Credentials:
    """A thread-safe holder of the current token; its repr never shows the token.

    Args:
        token: A token (a compact JWE or JWS string), or a callable returning one.

    Raises:
        InvalidArgumentTypeError: ``token`` is neither a string nor callable.
        TokenError: ``token`` is a string that does not look like a JWE or JWS.
    """

    __slots__ = ("__weakref__", "_lock", "_source", "_token")

    def __init__(self, token: TokenLike) -> None:
        self._lock = threading.Lock()
        self._source: Callable[[], str] | None
        self._token: str | None
        if isinstance(token, str):
            self._token = _check_token(token, "token")
            self._source = None
        elif callable(token):
            self._token = None
            self._source = token
        else:
            raise InvalidArgumentTypeError(
                f"token must be a str or a callable returning one, not {type(token).__name__}"
            )

    @property
    def can_refresh(self) -> bool:
        """Whether a fresh token can be fetched (the credentials were built from a callable)."""
        return self._source is not None

    @property
    def token(self) -> str:
        """The current token; calls the source the first time when there is one.

        Raises:
            AuthenticationError: The token source failed or returned something unusable.
        """
        token = self._token
        if token is not None:
            return token
        with self._lock:
            if self._token is None:
                self._token = self._call_source()
            return self._token

    def refresh(self, stale: str | None = None) -> str:
        """Fetch a new token from the source.

        Args:
            stale: The token the caller saw rejected. If another thread has refreshed since,
                the newer token is returned without calling the source again.

        Returns:
            The new current token.

        Raises:
            AuthenticationError: There is no source (a fixed token), or the source failed.
        """
        with self._lock:
            current = self._token
            if stale is not None and current is not None and current != stale:
                return current
            if self._source is None:
                raise AuthenticationError(
                    "the token was rejected and cannot be refreshed (a fixed token was given, "
                    "not a token source)",
                    status=401,
                )
            self._token = self._call_source()
            logger.debug("token refreshed from the token source")
            return self._token

    def _call_source(self) -> str:
        assert self._source is not None
        try:
            token = self._source()
        except AuthenticationError:
            raise
        except Exception as exc:  # any failure of user code becomes one error (re-raised)
            raise AuthenticationError(
                f"the token source failed: {type(exc).__name__}", status=401
            ) from exc
        try:
            return _check_token(token, "the token source's result")
        except (InvalidArgumentTypeError, TokenError) as exc:
            raise AuthenticationError(str(exc), status=401) from None

    def __repr__(self) -> str:
        kind = "source" if self._source is not None else "fixed"
        state = "known" if self._token is not None else "not fetched"
        return f"<Credentials {kind}, token {state} (redacted)>"

    def __reduce__(self) -> str:
        raise TypeError("Credentials cannot be pickled (they hold a secret)")
