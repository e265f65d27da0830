"""Our exceptions as HTTP answers: one small mapping, shared by the Flask and Django examples.

| exception               | status | why                                                        |
|-------------------------|--------|------------------------------------------------------------|
| InvalidArgumentError    | 400    | the request's input was bad; nothing was sent              |
| AuthenticationError     | 502    | *our* credentials were refused: a server fault             |
| PermissionDeniedError   | 403    | the user is not a member of that conversation              |
| NotFoundError           | 404    | no such address                                            |
| ValidationError         | 422    | the service refused the content                            |
| RateLimitError          | 429    | with Retry-After: the service's back-off, passed on        |
| TransportError          | 503    | the service is unreachable: retry later                    |
| ServerError             | 503    | the service is failing: retry later                        |
| TokenUnavailableError   | 503    | the token service failed for now (5xx, network): later     |
| any other ChatError     | 502    | the service answered something we cannot use               |

The body says what kind of failure it was, never the upstream URL or a token.
"""

from __future__ import annotations

import math

from signalwire_chat import (
    AuthenticationError,
    ChatError,
    InvalidArgumentError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
    TokenUnavailableError,
    TransportError,
    ValidationError,
)

# The first matching class wins.
_STATUS: tuple[tuple[type[ChatError], int, str], ...] = (
    (InvalidArgumentError, 400, "bad request"),
    (AuthenticationError, 502, "the chat service refused our credentials"),
    (PermissionDeniedError, 403, "not a member of this conversation"),
    (NotFoundError, 404, "no such address"),
    (ValidationError, 422, "the chat service refused the message"),
    (RateLimitError, 429, "too many requests; retry later"),
    (TransportError, 503, "the chat service is unreachable; retry later"),
    (ServerError, 503, "the chat service is failing; retry later"),
    (TokenUnavailableError, 503, "no chat token could be had for now; retry later"),
)


def http_error(exc: ChatError) -> tuple[int, dict[str, str], dict[str, str]]:
    """``(status, headers, body)`` for a failed chat call."""
    headers: dict[str, str] = {}
    status, text = next(
        ((status, text) for cls, status, text in _STATUS if isinstance(exc, cls)),
        (502, "the chat service answered something unusable"),
    )
    if isinstance(exc, InvalidArgumentError):
        text = str(exc)  # about the caller's own input: safe and useful to show
    if isinstance(exc, RateLimitError) and exc.retry_after is not None:
        headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after)))
    return status, headers, {"error": type(exc).__name__, "detail": text}
