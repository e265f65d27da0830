"""The credential shared by REST and realtime: a fixed token or a token source, refreshed safely.

A token source is any callable returning a fresh Subscriber Access Token (for instance
:class:`~signalwire_chat.SubscriberTokenSource`). It is first called lazily, when a token is
first needed, never in the constructor. Refreshes from several threads coalesce: whoever comes
second gets the token the first one fetched, without calling the source again.
"""

from __future__ import annotations

import base64
import logging
import threading
from collections.abc import Callable

from . import _fork
from ._validate import check_token as _check_token
from ._validate import token_problem
from .errors import (
    AuthenticationError,
    InvalidArgumentTypeError,
    PermissionDeniedError,
    TokenUnavailableError,
)

__all__ = ["BasicCredentials", "Credentials", "TokenLike"]

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

    #: The HTTP authorization scheme of :attr:`token`.
    scheme = "Bearer"

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
        _fork.renew_in_child(self)

    def _renew_after_fork(self) -> None:
        """In a forked child: the lock held across a token fetch under way at the fork is freed."""
        self._lock = threading.Lock()

    @property
    def can_refresh(self) -> bool:
        """Whether a fresh token can be fetched (the credentials were built from a callable)."""
        return self._source is not None

    @property
    def token(self) -> str:
        """The current token; calls the source the first time when there is one.

        Raises:
            AuthenticationError: The token source was refused (401/403) or returned
                something unusable: final.
            TokenUnavailableError: The token source failed otherwise (may pass).
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
            AuthenticationError: There is no source (a fixed token), or the source was
                refused (final).
            TokenUnavailableError: The source failed for a reason that may pass.
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
            fresh = self._source()
        except AuthenticationError:
            raise  # a refusal: final
        except PermissionDeniedError as exc:
            raise AuthenticationError(
                "the token source was refused (403): the project credentials lack the right",
                status=403,
            ) from exc
        except Exception as exc:  # anything else may pass: the caller retries
            raise TokenUnavailableError(
                f"the token source failed ({type(exc).__name__}); it may recover"
            ) from exc
        problem = token_problem(fresh, "the token source's result")
        if problem is None:
            return str(fresh)
        del fresh  # raised from a frame that does not hold the (near-)token
        raise AuthenticationError(problem, status=401)

    @property
    def secrets(self) -> tuple[str, ...]:
        """What to redact from anything a server sends back: the current token, if known."""
        token = self._token
        return () if token is None else (token,)

    def __repr__(self) -> str:
        kind = "source" if self._source is not None else "fixed"
        state = "known" if self._token is not None else "not fetched"
        return f"<Credentials {kind}, token {state} (redacted)>"

    def __reduce__(self) -> str:
        raise TypeError("Credentials cannot be pickled (they hold a secret)")


class BasicCredentials:
    """Project credentials for HTTP Basic auth (the backend helpers); the repr never shows them.

    It offers the interface :class:`Credentials` offers the transport, so the token-minting
    helpers go through the same transport (pooling, retries, redaction) as the client.

    Args:
        user: The project id.
        password: The project's API token.
    """

    __slots__ = ("_password", "_token")

    scheme = "Basic"
    can_refresh = False

    def __init__(self, user: str, password: str) -> None:
        self._password = password
        self._token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")

    @property
    def token(self) -> str:
        """The ``user:password`` pair, base64-encoded for the Authorization header."""
        return self._token

    @property
    def secrets(self) -> tuple[str, ...]:
        """What to redact from anything a server sends back."""
        return (self._password, self._token)

    def refresh(self, stale: str | None = None) -> str:
        """Refused: project credentials cannot be refreshed.

        Raises:
            AuthenticationError: Always.
        """
        raise AuthenticationError("the project credentials were refused", status=401)

    def __repr__(self) -> str:
        return "<BasicCredentials (redacted)>"

    def __reduce__(self) -> str:
        raise TypeError("BasicCredentials cannot be pickled (they hold a secret)")
