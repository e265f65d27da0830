"""close() does not wait for a token fetch under way in another thread.

With a token source and no ``rest_url``, the first call resolves the REST URL from the
source's token; a web worker shutting down (gunicorn's graceful timeout) closes the client
while that fetch may still run. close() took the client's lock, which the fetch held for
its whole length (up to the source's own deadline), so close() waited that long.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from signalwire_chat import ChatClient, ClientClosedError
from signalwire_chat.emulator import Emulator


class _SlowSource:
    """A token source whose fetch lasts until released (at most 10 s)."""

    def __init__(self, token: str) -> None:
        self.token = token
        self.started = threading.Event()
        self.release = threading.Event()

    def __call__(self) -> str:
        self.started.set()
        self.release.wait(10)
        return self.token


@pytest.fixture
def source(signalwire_emulator: Emulator) -> Iterator[_SlowSource]:
    slow = _SlowSource(signalwire_emulator.create_subscriber().token)
    yield slow
    slow.release.set()


@pytest.mark.parametrize("call", ["get_subscriber_info", "subscribe_inbox"])
def test_close_returns_at_once_while_another_thread_fetches_the_first_token(
    source: _SlowSource, call: str
) -> None:
    client = ChatClient(source)  # the URLs come from the source's token: fetched on first use
    raised: list[BaseException] = []

    def first_call() -> None:
        try:
            if call == "subscribe_inbox":
                client.subscribe_inbox(lambda message: None).cancel()
            else:
                client.get_subscriber_info()
        except BaseException as exc:
            raised.append(exc)

    thread = threading.Thread(target=first_call)
    thread.start()
    assert source.started.wait(5)
    started = time.monotonic()
    client.close()
    took = time.monotonic() - started
    source.release.set()
    thread.join(10)
    assert took < 2.0, f"close() waited {took:.1f} s for the token fetch"
    assert len(raised) == 1
    assert isinstance(raised[0], ClientClosedError)
