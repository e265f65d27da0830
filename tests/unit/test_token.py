"""Token header reading and the derivation of the REST and relay URLs."""

from __future__ import annotations

import base64
import json

import pytest

from signalwire_chat import ChatClient, InsecureURLError, InvalidArgumentError, TokenError
from signalwire_chat._token import (
    check_url,
    derive_urls,
    is_loopback_host,
    read_token_header,
    token_shape_ok,
)
from signalwire_chat._validate import MAX_JSON_DEPTH


def b64(obj: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")


HEADER = {"typ": "SAT", "alg": "dir", "enc": "A256GCM", "ch": "puc.signalwire.com"}
JWE = f"{b64(HEADER)}.AQJlbmMta2V5.aXY.w79jaXBoZXJ0ZXh0.dGFn"
JWS = f"{b64({'alg': 'HS256', 'ch': 'relay.example.test'})}.{b64({'sub': 'x'})}.c2ln"


def test_jwe_header() -> None:
    assert read_token_header(JWE) == HEADER
    assert token_shape_ok(JWE)


def test_jws_header() -> None:
    assert read_token_header(JWS) == {"alg": "HS256", "ch": "relay.example.test"}
    assert token_shape_ok(JWS)


@pytest.mark.parametrize(
    "token",
    [
        "",
        "abc",
        "a.b",
        "a.b.c.d",
        "!!!.b.c",
        f"{b64([1, 2])}.b.c",
        "bm90IGpzb24.b.c",
        "a.b.c.d.e.f",
    ],
)
def test_garbage_header_is_none(token: str) -> None:
    assert read_token_header(token) is None


def _deep_header_token(depth: int, *, opener: str = "[", closer: str = "]") -> str:
    header = '{"a":' + opener * (depth - 1) + closer * (depth - 1) + "}"
    first = base64.urlsafe_b64encode(header.encode()).decode().rstrip("=")
    return f"{first}.AQJlbmMta2V5.aXY.w79jaXBoZXJ0ZXh0.dGFn"


@pytest.mark.parametrize(("opener", "closer"), [("[", "]"), ('{"b":', "}")])
def test_a_header_nested_100000_deep_is_a_token_error(opener: str, closer: str) -> None:
    # json.loads recursed once per level and raised RecursionError out of ChatClient().
    token = _deep_header_token(100_000, opener=opener, closer=closer)
    assert read_token_header(token) is None
    with pytest.raises(TokenError, match="header cannot be read"):
        ChatClient(token)


def test_a_header_at_the_depth_limit_is_read() -> None:
    assert read_token_header(_deep_header_token(MAX_JSON_DEPTH)) is not None
    assert read_token_header(_deep_header_token(MAX_JSON_DEPTH + 1)) is None
    # Brackets inside strings are text, not nesting.
    header = {"ch": "puc.example.com", "note": "[" * 1000 + '\\"{' * 100}
    first = b64(header)
    assert read_token_header(f"{first}.b.c") == header


def test_capture_token_header() -> None:
    token = (
        "eyJhbGciOiJkaXIiLCJlbmMiOiJBMjU2R0NNIiwidHlwIjoiU0FUIiwiY2giOiJwdWMuZXhhbXBsZS50ZXN0In0"
        ".AQJlbmMta2V5.aXY.w79jaXBoZXJ0ZXh0.dGFn"
    )
    header = read_token_header(token)
    assert header is not None
    assert header["ch"] == "puc.example.test"


def test_derivation_from_ch() -> None:
    assert derive_urls(header=HEADER) == (
        "https://fabric.signalwire.com",
        "wss://puc.signalwire.com/",
    )


def test_derivation_without_ch_uses_official_defaults() -> None:
    assert derive_urls(header={"typ": "SAT"}) == (
        "https://fabric.signalwire.com",
        "wss://relay.signalwire.com/",
    )


def test_host_goes_through_the_same_derivation() -> None:
    assert derive_urls(header=None, host="puc.example.com") == (
        "https://fabric.example.com",
        "wss://puc.example.com/",
    )
    assert derive_urls(header=None, host="127.0.0.1:8080") == (
        "https://127.0.0.1:8080",
        "wss://127.0.0.1:8080/",
    )


def test_explicit_urls_win() -> None:
    assert derive_urls(header=HEADER, rest_url="https://r", relay_url="wss://w/") == (
        "https://r",
        "wss://w/",
    )
    assert derive_urls(header=HEADER, rest_url="https://r")[1] == "wss://puc.signalwire.com/"


def test_unreadable_header_without_host_is_a_token_error() -> None:
    with pytest.raises(TokenError):
        derive_urls(header=None)


@pytest.mark.parametrize("host", ["https://x.com", "x.com/path", "user@x.com", "x .com", ""])
def test_bad_host_is_refused(host: str) -> None:
    with pytest.raises(InvalidArgumentError):
        derive_urls(header=None, host=host)


def test_bad_ch_in_header_is_refused() -> None:
    with pytest.raises(InvalidArgumentError):
        derive_urls(header={"ch": "evil.com/x?"})


@pytest.mark.parametrize(
    "host", ["localhost", "LocalHost", "127.0.0.1", "127.5.6.7", "::1", "[::1]"]
)
def test_loopback(host: str) -> None:
    assert is_loopback_host(host)


@pytest.mark.parametrize(
    "host",
    ["10.0.0.1", "example.com", "128.0.0.1", "", None, "a.localhost", "localhost.x"],
)
def test_not_loopback(host: str | None) -> None:
    assert not is_loopback_host(host)


def test_check_url_refuses_plain_text_off_loopback() -> None:
    with pytest.raises(InsecureURLError):
        check_url("http://example.com", kind="rest")
    with pytest.raises(InsecureURLError):
        check_url("ws://example.com/", kind="relay")
    assert check_url("http://example.com", kind="rest", allow_insecure=True)
    assert check_url("http://127.0.0.1:8080/", kind="rest") == "http://127.0.0.1:8080"
    assert check_url("ws://[::1]:9/", kind="relay") == "ws://[::1]:9/"


@pytest.mark.parametrize(
    "url", ["ftp://x.com", "fabric.example.com", "https://u:p@x.com", "https://x.com/?a=1"]
)
def test_check_url_refuses_odd_urls(url: str) -> None:
    with pytest.raises(InvalidArgumentError):
        check_url(url, kind="rest")
