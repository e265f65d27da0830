"""The emulator's token authority: real-shaped SATs and refresh tokens, and every refusal."""

from __future__ import annotations

import base64
import json

import pytest

from signalwire_chat.emulator._tokens import (
    InvalidTokenError,
    TokenAuthority,
    generate_key,
)

SUB = "aaaaaaaa-0000-0000-0000-000000000001"
PROJECT = "11111111-2222-3333-4444-555555555555"


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def make_authority(clock: Clock | None = None, **kwargs: object) -> TokenAuthority:
    return TokenAuthority(
        sat_key=generate_key(),
        refresh_key=generate_key(),
        space_host="puc.emulator.test",
        clock=clock or Clock(),
        **kwargs,  # type: ignore[arg-type]
    )


def b64json(part: str) -> dict[str, object]:
    decoded = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    assert isinstance(decoded, dict)
    return decoded


def test_sat_has_the_real_shape_and_round_trips() -> None:
    clock = Clock()
    authority = make_authority(clock)
    token, claims = authority.mint_sat(SUB, PROJECT)
    parts = token.split(".")
    assert len(parts) == 5
    header = b64json(parts[0])
    assert header == {"alg": "dir", "enc": "A256GCM", "typ": "SAT", "ch": "puc.emulator.test"}
    # The payload is encrypted: the subscriber id does not appear in the token.
    assert SUB not in token
    assert base64.urlsafe_b64encode(SUB.encode()).decode()[:20] not in token
    verified = authority.verify_sat(token)
    assert verified == claims
    assert verified.subscriber_id == SUB
    assert verified.project_id == PROJECT
    assert verified.iat == clock.now
    assert verified.exp == clock.now + 7200.0


def test_sat_ttl_and_expire_at() -> None:
    clock = Clock()
    authority = make_authority(clock, sat_ttl=60.0)
    _, claims = authority.mint_sat(SUB, PROJECT)
    assert claims.exp == clock.now + 60.0
    _, claims = authority.mint_sat(SUB, PROJECT, ttl=5.0)
    assert claims.exp == clock.now + 5.0
    _, claims = authority.mint_sat(SUB, PROJECT, ttl=5.0, expire_at=clock.now + 900)
    assert claims.exp == clock.now + 900


def test_each_sat_has_a_fresh_jti() -> None:
    authority = make_authority()
    jtis = {authority.mint_sat(SUB, PROJECT)[1].jti for _ in range(20)}
    assert len(jtis) == 20


def test_expired_sat_is_refused() -> None:
    clock = Clock()
    authority = make_authority(clock)
    token, claims = authority.mint_sat(SUB, PROJECT, ttl=10.0)
    clock.now += 9.9
    assert authority.verify_sat(token) == claims
    clock.now += 0.1
    with pytest.raises(InvalidTokenError, match="expired"):
        authority.verify_sat(token)


@pytest.mark.parametrize("part", range(5))
def test_tampering_with_any_part_is_refused(part: int) -> None:
    authority = make_authority()
    token, _ = authority.mint_sat(SUB, PROJECT)
    parts = token.split(".")
    if part == 1:
        parts[1] = "AAAA"  # "dir" has an empty encrypted key; any content is a forgery
    elif part == 0:
        header = b64json(parts[0])
        header["ch"] = "evil.example.com"
        parts[0] = base64.urlsafe_b64encode(json.dumps(header).encode()).decode().rstrip("=")
    else:
        raw = bytearray(base64.urlsafe_b64decode(parts[part] + "=" * (-len(parts[part]) % 4)))
        raw[0] ^= 0x01
        parts[part] = base64.urlsafe_b64encode(bytes(raw)).decode().rstrip("=")
    forged = ".".join(parts)
    assert forged != token
    with pytest.raises(InvalidTokenError) as info:
        authority.verify_sat(forged)
    assert forged not in str(info.value)
    assert token not in str(info.value)


def test_foreign_key_is_refused() -> None:
    token, _ = make_authority().mint_sat(SUB, PROJECT)
    with pytest.raises(InvalidTokenError) as info:
        make_authority().verify_sat(token)
    assert token not in str(info.value)
    assert info.value.__cause__ is None


@pytest.mark.parametrize(
    "token",
    ["", "abc", "a.b.c", "a.b.c.d.e", "....", "a.b.c.d.e.f", "ey.ey.ey.ey.ey"],
)
def test_malformed_sat_is_refused(token: str) -> None:
    with pytest.raises(InvalidTokenError):
        make_authority().verify_sat(token)


def test_refresh_token_is_a_three_part_hs256_jwt_that_round_trips() -> None:
    clock = Clock()
    authority = make_authority(clock)
    token, claims = authority.mint_refresh(SUB, PROJECT)
    parts = token.split(".")
    assert len(parts) == 3
    assert b64json(parts[0])["alg"] == "HS256"
    assert claims.exp == clock.now + 7500.0  # 2 h 5 min
    assert authority.verify_refresh(token) == claims


def test_refresh_token_refusals() -> None:
    clock = Clock()
    authority = make_authority(clock)
    token, _ = authority.mint_refresh(SUB, PROJECT)
    with pytest.raises(InvalidTokenError):
        make_authority(clock).verify_refresh(token)  # another key
    sat, _ = authority.mint_sat(SUB, PROJECT)
    with pytest.raises(InvalidTokenError):
        authority.verify_refresh(sat)  # a SAT is not a refresh token
    with pytest.raises(InvalidTokenError):
        authority.verify_sat(token)  # and the other way round
    head, body, sig = token.split(".")
    with pytest.raises(InvalidTokenError):
        authority.verify_refresh(f"{head}.{body}.{sig[:-2]}AA")
    clock.now += 7500.0
    with pytest.raises(InvalidTokenError, match="expired"):
        authority.verify_refresh(token)


def test_keys_are_checked_and_never_shown() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        TokenAuthority(sat_key=b"short", refresh_key=generate_key(), space_host="h")
    key = generate_key()
    authority = TokenAuthority(sat_key=key, refresh_key=key, space_host="h")
    assert key.hex() not in repr(authority)
    assert "puc" not in repr(authority) or "space_host" in repr(authority)


def test_a_sat_already_verified_still_expires_and_is_still_revoked() -> None:
    # Verified claims are remembered (opening the JWE is the costly part of a REST call):
    # its expiry and expire_now() must be checked on every use all the same.
    clock = Clock()
    authority = make_authority(clock)
    token, _ = authority.mint_sat(SUB, PROJECT, ttl=60)
    other, _ = authority.mint_sat("bbbbbbbb-0000-0000-0000-000000000002", PROJECT, ttl=60)
    assert authority.verify_sat(token).subscriber_id == SUB
    assert authority.verify_sat(token).subscriber_id == SUB  # the remembered claims
    clock.now += 59
    assert authority.verify_sat(token).subscriber_id == SUB
    clock.now += 1
    with pytest.raises(InvalidTokenError, match="expired"):
        authority.verify_sat(token)
    clock.now -= 30
    authority.verify_sat(other)
    authority.expire_now("bbbbbbbb-0000-0000-0000-000000000002")
    with pytest.raises(InvalidTokenError, match="expired"):
        authority.verify_sat(other)
    assert authority.verify_sat(token).subscriber_id == SUB  # another subscriber's stays


def test_a_tampered_copy_of_a_verified_sat_is_refused() -> None:
    authority = make_authority()
    token, _ = authority.mint_sat(SUB, PROJECT)
    authority.verify_sat(token)
    head, key, iv, body, tag = token.split(".")
    flipped = body[:-1] + ("A" if body[-1] != "A" else "B")
    with pytest.raises(InvalidTokenError):
        authority.verify_sat(".".join((head, key, iv, flipped, tag)))
