"""Credentials: validation, lazy first call, coalesced refresh, redacted repr."""

from __future__ import annotations

import threading

import pytest

from signalwire_chat import (
    AuthenticationError,
    InvalidArgumentTypeError,
    PermissionDeniedError,
    TokenError,
    TokenUnavailableError,
)
from signalwire_chat._auth import Credentials

T1 = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnMQ"
T2 = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIyIn0.c2lnMg"


def test_fixed_token() -> None:
    creds = Credentials(T1)
    assert creds.token == T1
    assert not creds.can_refresh
    with pytest.raises(AuthenticationError):
        creds.refresh(T1)


@pytest.mark.parametrize("bad", ["", "nodots", "a.b", "a.b.c.d", "a b.c.d"])
def test_malformed_string_is_refused(bad: str) -> None:
    with pytest.raises(TokenError):
        Credentials(bad)


@pytest.mark.parametrize("bad", [None, 123, b"a.b.c", ["a.b.c"]])
def test_wrong_type_is_refused(bad: object) -> None:
    with pytest.raises(InvalidArgumentTypeError):
        Credentials(bad)  # type: ignore[arg-type]


def test_source_is_called_lazily_once() -> None:
    calls: list[int] = []

    def source() -> str:
        calls.append(1)
        return T1

    creds = Credentials(source)
    assert calls == []
    assert creds.can_refresh
    assert creds.token == T1
    assert creds.token == T1
    assert len(calls) == 1


def test_refresh_calls_the_source_and_coalesces() -> None:
    tokens = iter([T1, T2])
    calls: list[int] = []

    def source() -> str:
        calls.append(1)
        return next(tokens)

    creds = Credentials(source)
    stale = creds.token
    assert creds.refresh(stale) == T2
    # Someone else already refreshed since T1: no new call.
    assert creds.refresh(stale) == T2
    assert len(calls) == 2


def test_concurrent_refreshes_call_the_source_once() -> None:
    gate = threading.Event()
    calls: list[int] = []

    def source() -> str:
        calls.append(1)
        if len(calls) > 1:
            gate.wait(5)
        return T1 if len(calls) == 1 else T2

    creds = Credentials(source)
    stale = creds.token
    results: list[str] = []
    threads = [
        threading.Thread(target=lambda: results.append(creds.refresh(stale))) for _ in range(5)
    ]
    for thread in threads:
        thread.start()
    gate.set()
    for thread in threads:
        thread.join(5)
    assert results == [T2] * 5
    assert len(calls) == 2


def test_a_failing_source_is_transient_without_the_message() -> None:
    def source() -> str:
        raise RuntimeError(f"secret {T1}")

    creds = Credentials(source)
    with pytest.raises(TokenUnavailableError) as info:
        _ = creds.token
    assert not isinstance(info.value, AuthenticationError)  # may pass: retried, not final
    assert T1 not in str(info.value)
    assert isinstance(info.value.__cause__, RuntimeError)


@pytest.mark.parametrize("status", [401, 403])
def test_a_refused_source_is_final(status: int) -> None:
    kind = AuthenticationError if status == 401 else PermissionDeniedError

    def source() -> str:
        raise kind("refused", status=status, method="POST", url="u")

    with pytest.raises(AuthenticationError) as info:
        _ = Credentials(source).token
    assert info.value.status == status


def test_source_returning_garbage() -> None:
    creds = Credentials(lambda: "garbage")
    with pytest.raises(AuthenticationError):
        _ = creds.token


def test_repr_never_shows_the_token() -> None:
    creds = Credentials(T1)
    assert T1 not in repr(creds)
    assert "redacted" in repr(creds)
