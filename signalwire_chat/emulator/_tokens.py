"""Minting and verifying the emulator's Subscriber Access Tokens and refresh tokens.

A SAT has the real shape: a five-part compact JWE (``alg`` "dir", ``enc`` "A256GCM")
whose protected header carries ``typ`` "SAT" and ``ch`` (the realtime host), and whose
encrypted claims are ``subscriber_id``, ``project_id``, ``jti``, ``iat`` and ``exp``.
A refresh token is a three-part HS256 JWT with its own expiry (2 h 5 min by default).
A guest or invite token (and its refresh token) also carries ``allowed_addresses``, the
only addresses its holder may reach; how the service encodes that scope is not documented
(the claim is the emulator's own).

Neither the tokens nor the keys ever appear in an exception message or a log line.
"""

from __future__ import annotations

import json
import math
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

import attrs
from joserfc import jwe, jwt
from joserfc.errors import JoseError
from joserfc.jwe import JWERegistry
from joserfc.jwk import OctKey
from joserfc.jws import JWSRegistry
from joserfc.registry import HeaderParameter

__all__ = [
    "DEFAULT_REFRESH_TTL",
    "DEFAULT_SAT_TTL",
    "InvalidTokenError",
    "RefreshClaims",
    "SatClaims",
    "TokenAuthority",
]

DEFAULT_SAT_TTL = 7200.0
DEFAULT_REFRESH_TTL = 7500.0
KEY_BYTES = 32
# Most opened SATs remembered by one authority (oldest forgotten first).
_OPENED_LIMIT = 4096

# ``ch`` is SignalWire's own header parameter; joserfc refuses unknown header names
# unless they are registered.
_SAT_REGISTRY = JWERegistry(
    header_registry={"ch": HeaderParameter("realtime host of the space", "str")},
    algorithms=["dir", "A256GCM"],
)
_REFRESH_REGISTRY = JWSRegistry(algorithms=["HS256"])
# The dots in a compact token: a JWE has five parts, a JWS (JWT) three.
_DOTS = {"JWE": 4, "JWT": 2}


class InvalidTokenError(Exception):
    """A token was malformed, tampered with, signed by another key, or expired.

    The message says which, and never contains the token.
    """


@attrs.frozen
class _TokenClaims:
    """The verified claims of a token: the same five in a SAT and in a refresh token.

    Attributes:
        subscriber_id: The subscriber the token was minted for.
        project_id: The project of that subscriber.
        jti: The token's unique id.
        exp: Expiry, unix seconds.
        iat: Issue time, unix seconds.
        allowed_addresses: For a guest or invite token, the only addresses it may reach;
            None for a subscriber's token (no such limit).
    """

    subscriber_id: str
    project_id: str
    jti: str
    exp: float
    iat: float
    allowed_addresses: tuple[str, ...] | None = None


@attrs.frozen
class SatClaims(_TokenClaims):
    """The verified claims of a Subscriber Access Token (the five of every token: _TokenClaims)."""


@attrs.frozen
class RefreshClaims(_TokenClaims):
    """The verified claims of a refresh token (the five of every token: _TokenClaims)."""


def generate_key() -> bytes:
    """Return fresh random key material for :class:`TokenAuthority`."""
    return bytes(OctKey.generate_key(KEY_BYTES * 8).raw_value)


class TokenAuthority:
    """Mints and verifies the tokens of one emulated space.

    Args:
        sat_key: 32 bytes of key material for the SAT's A256GCM encryption.
        refresh_key: 32 bytes of key material for the refresh token's HS256 signature.
        space_host: The realtime host written in the SAT header as ``ch``.
        sat_ttl: Default lifetime of a SAT, in seconds.
        refresh_ttl: Lifetime of a refresh token, in seconds.
        clock: Returns the current unix time; replaceable in tests.
    """

    def __init__(
        self,
        *,
        sat_key: bytes,
        refresh_key: bytes,
        space_host: str,
        sat_ttl: float = DEFAULT_SAT_TTL,
        refresh_ttl: float = DEFAULT_REFRESH_TTL,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if len(sat_key) != KEY_BYTES or len(refresh_key) != KEY_BYTES:
            raise ValueError(f"token keys must be {KEY_BYTES} bytes long")
        if not math.isfinite(sat_ttl) or sat_ttl <= 0:
            raise ValueError("sat_ttl must be a positive number of seconds")
        self._sat_key = OctKey.import_key(sat_key)
        self._refresh_key = OctKey.import_key(refresh_key)
        self._space_host = space_host
        self._sat_ttl = sat_ttl
        self._refresh_ttl = refresh_ttl
        self._clock = clock
        # Subscriber id ("" for everyone) -> a time: SATs issued at or before it are expired.
        self._cutoffs: dict[str, float] = {}
        # Token -> its claims, for tokens that decrypted and checked out: opening a JWE costs
        # about 0.5 ms, once per REST request, the largest single cost of a message sent
        # (cProfile of benchmarks/fanout.py). The claims of a token never change (one key per
        # authority); expiry and expire_now() are still checked on every use.
        self._opened: dict[str, SatClaims] = {}
        self._opened_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"TokenAuthority(space_host={self._space_host!r})"

    @property
    def space_host(self) -> str:
        """The realtime host written in every SAT header."""
        return self._space_host

    def mint_sat(
        self,
        subscriber_id: str,
        project_id: str,
        *,
        ttl: float | None = None,
        expire_at: float | None = None,
        allowed_addresses: tuple[str, ...] | None = None,
    ) -> tuple[str, SatClaims]:
        """Mint a SAT for a subscriber.

        Args:
            subscriber_id: The subscriber's id.
            project_id: The project's id.
            ttl: Lifetime in seconds (the authority's default when None).
            expire_at: Absolute expiry in unix seconds; wins over ``ttl``.
            allowed_addresses: The scope of a guest or invite token.

        Returns:
            The compact token and its claims.
        """
        now = self._clock()
        cutoff = self._cutoff(subscriber_id)
        if now <= cutoff:
            # Issued after an expire_now() even when the clock has not moved (a test clock).
            now = math.nextafter(cutoff, math.inf)
        if expire_at is not None:
            exp = float(expire_at)
        else:
            exp = now + (self._sat_ttl if ttl is None else float(ttl))
        claims = SatClaims(
            subscriber_id=subscriber_id,
            project_id=project_id,
            jti=str(uuid.uuid4()),
            exp=exp,
            iat=now,
            allowed_addresses=allowed_addresses,
        )
        header = {"alg": "dir", "enc": "A256GCM", "typ": "SAT", "ch": self._space_host}
        body = attrs.asdict(claims)
        if allowed_addresses is None:
            del body["allowed_addresses"]
        payload = json.dumps(body, separators=(",", ":")).encode()
        token = jwe.encrypt_compact(header, payload, self._sat_key, registry=_SAT_REGISTRY)
        return token, claims

    def verify_sat(self, token: str) -> SatClaims:
        """Verify a SAT and return its claims.

        Args:
            token: The compact token.

        Returns:
            The claims.

        Raises:
            InvalidTokenError: malformed, tampered, minted with another key, or expired.
        """
        claims = self._opened.get(token) if isinstance(token, str) else None
        if claims is None:
            claims = self._open_sat(token)
        if claims.exp <= self._clock() or claims.iat <= self._cutoff(claims.subscriber_id):
            raise InvalidTokenError("token expired")
        return claims

    def _open_sat(self, token: str) -> SatClaims:
        """Decrypt and check a SAT's claims (not its expiry); remember them for the next use."""
        obj = _opened(token, "JWE", jwe.decrypt_compact, self._sat_key, _SAT_REGISTRY)
        if obj.protected.get("typ") != "SAT":
            raise InvalidTokenError("not a SAT")
        data = _load_object(obj.plaintext or b"")
        claims = _claims_of(SatClaims, data, subscriber_claim="subscriber_id")
        with self._opened_lock:
            if len(self._opened) >= _OPENED_LIMIT:
                del self._opened[next(iter(self._opened))]
            self._opened[token] = claims
        return claims

    def expire_now(self, subscriber_id: str | None = None) -> None:
        """Expire every SAT issued so far to a subscriber (to everyone when None).

        Tokens minted afterwards work; refresh tokens are not affected.
        """
        self._cutoffs[subscriber_id or ""] = self._clock()

    def _cutoff(self, subscriber_id: str) -> float:
        return max(self._cutoffs.get(subscriber_id, -math.inf), self._cutoffs.get("", -math.inf))

    def mint_refresh(
        self,
        subscriber_id: str,
        project_id: str,
        *,
        allowed_addresses: tuple[str, ...] | None = None,
    ) -> tuple[str, RefreshClaims]:
        """Mint a refresh token for a subscriber.

        Args:
            subscriber_id: The subscriber's id.
            project_id: The project's id.
            allowed_addresses: The scope of a guest token, kept by its refreshes.

        Returns:
            The compact JWT and its claims.
        """
        now = self._clock()
        claims = RefreshClaims(
            subscriber_id=subscriber_id,
            project_id=project_id,
            jti=str(uuid.uuid4()),
            exp=now + self._refresh_ttl,
            iat=now,
            allowed_addresses=allowed_addresses,
        )
        body: dict[str, Any] = {
            "sub": subscriber_id,
            "project_id": project_id,
            "jti": claims.jti,
            "iat": now,
            "exp": claims.exp,
            "token_use": "refresh",
        }
        if allowed_addresses is not None:
            body["allowed_addresses"] = list(allowed_addresses)
        token = jwt.encode(
            {"alg": "HS256", "typ": "JWT"}, body, self._refresh_key, registry=_REFRESH_REGISTRY
        )
        return token, claims

    def verify_refresh(self, token: str) -> RefreshClaims:
        """Verify a refresh token and return its claims.

        Args:
            token: The compact JWT.

        Returns:
            The claims.

        Raises:
            InvalidTokenError: malformed, tampered, signed with another key, or expired.
        """
        decoded = _opened(token, "JWT", jwt.decode, self._refresh_key, _REFRESH_REGISTRY)
        data = decoded.claims
        if data.get("token_use") != "refresh":
            raise InvalidTokenError("not a refresh token")
        claims = _claims_of(RefreshClaims, data, subscriber_claim="sub")
        if claims.exp <= self._clock():
            raise InvalidTokenError("token expired")
        return claims


_Opened = TypeVar("_Opened")
_ClaimsT = TypeVar("_ClaimsT", bound=_TokenClaims)


def _opened(
    token: object, kind: str, open_compact: Callable[..., _Opened], key: OctKey, registry: Any
) -> _Opened:
    """``open_compact(token, key, registry=registry)``: joserfc's decrypt or verify of a ``kind``.

    A token of the wrong number of parts (a "JWE" has five, a "JWT" three) and every failure of
    joserfc are an InvalidTokenError naming only the failure's class: the cause is dropped, as
    joserfc's messages may quote token parts.
    """
    if not isinstance(token, str) or token.count(".") != _DOTS[kind]:
        raise InvalidTokenError(f"not a compact {kind}")
    try:
        return open_compact(token, key, registry=registry)
    except (JoseError, ValueError, TypeError, KeyError) as exc:
        raise InvalidTokenError(f"token rejected ({type(exc).__name__})") from None


def _claims_of(cls: type[_ClaimsT], data: dict[str, Any], *, subscriber_claim: str) -> _ClaimsT:
    """The claims in ``data``, each checked; the subscriber's id is under ``subscriber_claim``."""
    return cls(
        subscriber_id=_claim_str(data, subscriber_claim),
        project_id=_claim_str(data, "project_id"),
        jti=_claim_str(data, "jti"),
        exp=_claim_num(data, "exp"),
        iat=_claim_num(data, "iat"),
        allowed_addresses=_claim_scope(data),
    )


def _claim_scope(data: dict[str, Any]) -> tuple[str, ...] | None:
    if "allowed_addresses" not in data:
        return None
    value = data["allowed_addresses"]
    if not isinstance(value, list) or not all(isinstance(x, str) and x for x in value):
        raise InvalidTokenError("claim 'allowed_addresses' is not a list of strings")
    return tuple(value)


def _load_object(raw: bytes) -> dict[str, Any]:
    try:
        data = json.loads(raw)
    except ValueError:
        raise InvalidTokenError("claims are not JSON") from None
    if not isinstance(data, dict):
        raise InvalidTokenError("claims are not an object")
    return data


def _claim_str(data: dict[str, Any], name: str) -> str:
    value = data.get(name)
    if not isinstance(value, str) or not value:
        raise InvalidTokenError(f"claim {name!r} missing or not a string")
    return value


def _claim_num(data: dict[str, Any], name: str) -> float:
    value = data.get(name)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidTokenError(f"claim {name!r} missing or not a number")
    return float(value)
