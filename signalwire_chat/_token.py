"""Reading the SAT's protected header (``ch``, ``typ``) and deriving the REST and relay URLs.

A client never verifies a token (the key is the service's): it only decodes the first part of a
compact JWE (five parts) or JWS (three parts) to learn the realtime host ``ch``. Derivation, as
in protocol.md: relay ``wss://<ch>/``; REST ``https://fabric.<ch without its first label>``.
Without ``ch`` the official SDK's defaults apply. An explicit ``host`` goes through the same
derivation; explicit ``rest_url`` / ``relay_url`` win over everything.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import json
import re
from typing import Any
from urllib.parse import urlsplit

from ._validate import MAX_JSON_DEPTH, check_token
from .errors import InsecureURLError, InvalidArgumentError, InvalidArgumentTypeError, TokenError

__all__ = [
    "DEFAULT_RELAY_URL",
    "DEFAULT_REST_URL",
    "check_url",
    "derive_urls",
    "is_loopback_host",
    "read_token_header",
    "token_shape_ok",
]

DEFAULT_REST_URL = "https://fabric.signalwire.com"
DEFAULT_RELAY_URL = "wss://relay.signalwire.com/"

_B64URL = re.compile(r"[A-Za-z0-9_-]*")
# A host name or IPv4 literal with an optional port, or a bracketed IPv6 literal with one.
_HOST = re.compile(
    r"^(?:(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)*[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}"
    r"[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?$"
)


def token_shape_ok(token: str) -> bool:
    """Whether ``token`` looks like a compact JWS (3 parts) or JWE (5 parts).

    Only the shape is checked: base64url parts, a non-empty header, nothing else (no
    whitespace, no trailing newline). Nothing is verified.
    """
    try:
        check_token(token, "token")
    except (TokenError, InvalidArgumentTypeError):
        return False
    return True


def read_token_header(token: str) -> dict[str, Any] | None:
    """Decode the protected header of a compact JWE or JWS.

    Args:
        token: The token.

    Returns:
        The header as a dict, or ``None`` when it cannot be decoded (wrong number of parts,
        bad base64url, not a JSON object, or nested deeper than ``MAX_JSON_DEPTH``).
    """
    parts = token.split(".") if isinstance(token, str) else []
    if len(parts) not in (3, 5) or not parts[0] or not _B64URL.fullmatch(parts[0]):
        return None
    first = parts[0]
    try:
        text = base64.urlsafe_b64decode(first + "=" * (-len(first) % 4)).decode("utf-8")
        # json.loads recurses once per level: a header nested 100,000 deep raised
        # RecursionError. A real header is one flat object; refuse deep ones before parsing.
        if _nests_deeper_than(text, MAX_JSON_DEPTH):
            return None
        header = json.loads(text)
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return None
    return header if isinstance(header, dict) else None


def _nests_deeper_than(text: str, limit: int) -> bool:
    """Whether the JSON ``text`` opens more than ``limit`` containers at once.

    One pass, no recursion; brackets inside strings do not count.
    """
    if text.count("[") + text.count("{") <= limit:
        return False
    depth = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > limit:
                return True
        elif char in "]}":
            depth -= 1
    return False


def is_loopback_host(host: str | None) -> bool:
    """Whether ``host`` is ``localhost`` itself or a loopback address (127.0.0.0/8, ``::1``).

    Names under ``.localhost`` do not count: RFC 6761 lets resolvers send them to loopback,
    but many (glibc with a plain hosts file among them) ask DNS, so plain text could leave the
    machine.
    """
    if not host:
        return False
    host = host.strip("[]").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_url(
    url: str, *, kind: str, allow_insecure: bool = False, opt_in: str | None = "allow_insecure=True"
) -> str:
    """Validate a REST (``kind="rest"``) or relay (``kind="relay"``) URL and return it normalised.

    Plain ``http://`` / ``ws://`` are refused unless the host is loopback or ``allow_insecure``.
    ``opt_in`` is how the caller's own user allows them, named in the refusal; None when
    that caller offers no way (the refusal then names only the secure scheme).

    Raises:
        InvalidArgumentTypeError: ``url`` is not a string.
        InvalidArgumentError: Not an absolute URL of the right scheme, or it carries credentials,
            a query or a fragment.
        InsecureURLError: A plain-text scheme to a non-loopback host without ``allow_insecure``.
    """
    if not isinstance(url, str):
        raise InvalidArgumentTypeError(f"{kind}_url must be a string, not {type(url).__name__}")
    secure, plain = ("https", "http") if kind == "rest" else ("wss", "ws")
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise InvalidArgumentError(f"{kind}_url is not a valid URL: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in (secure, plain) or not parts.hostname:
        raise _not_absolute(url, scheme, kind, secure, plain)
    if parts.username is not None or parts.password is not None:
        raise InvalidArgumentError(f"{kind}_url must not carry credentials")
    if parts.query or parts.fragment:
        raise InvalidArgumentError(f"{kind}_url must not have a query or fragment")
    if scheme == plain and not allow_insecure and not is_loopback_host(parts.hostname):
        raise InsecureURLError(
            f"refusing plain {plain}:// to non-loopback host {parts.hostname!r}; "
            f"use {secure}://" + (f" or pass {opt_in}" if opt_in else "")
        )
    netloc = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    if port is not None:
        netloc = f"{netloc}:{port}"
    path = parts.path
    if kind == "rest":
        path = path.rstrip("/")
    elif not path:
        path = "/"
    return f"{scheme}://{netloc}{path}"


def _not_absolute(
    url: str, scheme: str, kind: str, secure: str, plain: str
) -> InvalidArgumentError:
    """The refusal of a URL with no host or another scheme.

    "localhost:8765" parses as scheme "localhost": say what is accepted, and what was given
    only as far as it is safe (the scheme; never the rest, which may hold secrets).
    """
    if scheme in (secure, plain):
        got = "no host"
    else:
        got = f"scheme {scheme!r}" if "://" in url and scheme.isalnum() else "no scheme"
    return InvalidArgumentError(
        f"{kind}_url must be an absolute URL: {secure}://host[:port], or {plain}://host[:port]"
        f" to a loopback host (localhost, 127.0.0.1, [::1]) (got {got})"
    )


def _check_host(host: str, what: str) -> str:
    if not isinstance(host, str) or not _HOST.fullmatch(host):
        raise InvalidArgumentError(
            f"{what} must be a bare host name such as 'puc.signalwire.com' "
            "(no scheme, path or credentials)"
        )
    return host.lower()


def _rest_from_ch(ch: str) -> str:
    name, sep, port = ch.rpartition(":") if not ch.endswith("]") else (ch, "", "")
    if not sep or not port.isdigit():
        name, port = ch, ""
    suffix = f":{port}" if port else ""
    bare = name.strip("[]")
    try:
        ipaddress.ip_address(bare)
        is_ip = True
    except ValueError:
        is_ip = False
    labels = name.split(".")
    if is_ip or len(labels) < 3:
        # An IP literal or a short name (e.g. "localhost") has no label to swap: use it as is.
        return f"https://{name}{suffix}"
    return f"https://fabric.{'.'.join(labels[1:])}{suffix}"


def derive_urls(
    *,
    header: dict[str, Any] | None,
    host: str | None = None,
    rest_url: str | None = None,
    relay_url: str | None = None,
) -> tuple[str, str]:
    """Derive the REST base and relay URL (before :func:`check_url`).

    Args:
        header: The token's decoded header, or ``None`` when it could not be read.
        host: An explicit realtime host, derived from like the header's ``ch``.
        rest_url: An explicit REST base; wins over the derivation.
        relay_url: An explicit relay URL; wins over the derivation.

    Returns:
        ``(rest_url, relay_url)``.

    Raises:
        TokenError: A URL is still needed but the header is unreadable and no host was given.
        InvalidArgumentError: ``host`` or the header's ``ch`` is not a bare host name.
    """
    if rest_url is not None and relay_url is not None:
        return rest_url, relay_url
    if host is not None:
        ch: str | None = _check_host(host, "host")
    elif header is None:
        raise TokenError(
            "the token's header cannot be read, so the service hosts cannot be derived from it; "
            "pass host=..., or rest_url=... and relay_url=..."
        )
    else:
        raw_ch = header.get("ch")
        ch = _check_host(raw_ch, "the token header's 'ch'") if raw_ch else None
    if ch is None:
        derived_rest, derived_relay = DEFAULT_REST_URL, DEFAULT_RELAY_URL
    else:
        derived_rest, derived_relay = _rest_from_ch(ch), f"wss://{ch}/"
    return (rest_url or derived_rest, relay_url or derived_relay)
