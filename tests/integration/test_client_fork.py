"""A fork while another thread is in the middle of a request: the child must not hang.

A web worker shares one client between threads; ``os.fork()`` (multiprocessing's fork start,
a worker that forks a helper) copies every lock as it is at that instant. A lock another
thread holds across a request (the token source's fetch, the subscriber lookup, a group join)
is copied held, and no thread of the child will ever release it.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
import requests
import requests.adapters
from urllib3.util import Retry

from signalwire_chat import ChatClient, SubscriberTokenSource
from signalwire_chat.emulator import Emulator

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")

_CHILD_SECONDS = 10


def _in_child(work: Callable[[], object]) -> str:
    """Run ``work`` in a forked child; what became of it: "ok", "raised" or "hung"."""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            signal.alarm(_CHILD_SECONDS)  # a hung child is killed, never left behind
            work()
            code = 0
        finally:
            os._exit(code)
    deadline = time.monotonic() + _CHILD_SECONDS + 5
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            _, status = os.waitpid(pid, 0)
            break
        time.sleep(0.05)
    if os.WIFSIGNALED(status):
        return "hung"
    return "ok" if os.WEXITSTATUS(status) == 0 else "raised"


def _fork_while(
    client: ChatClient, in_flight: Callable[[], object], then: Callable[[], object]
) -> str:
    """Fork while another thread runs ``in_flight`` (held up by the emulator); run ``then``."""
    thread = threading.Thread(target=in_flight)
    thread.start()
    time.sleep(0.5)  # the thread is now waiting for the delayed answer, its lock held
    try:
        return _in_child(then)
    finally:
        thread.join()


def test_a_fork_during_a_group_join_leaves_the_child_able_to_send(
    signalwire_emulator: Emulator,
) -> None:
    emu = signalwire_emulator
    alice, bob = emu.create_subscriber(), emu.create_subscriber()
    with emu.client_for(alice) as client:
        client.get_subscriber_info()  # used before the fork
        emu.delay_next(2.0, method="POST", path_prefix="/api/fabric/conversations/join")
        outcome = _fork_while(
            client,
            lambda: client.send_message(bob.address_id, "from the parent"),
            lambda: client.send_message(bob.address_id, "from the child"),
        )
        assert outcome == "ok"
        client.send_message(bob.address_id, "the parent still sends")
    with emu.client_for(bob) as reader:
        texts = [m.text for m in reader.iter_messages(alice.address_id)]
    assert "from the child" in texts
    assert "the parent still sends" in texts


def test_a_fork_during_the_subscriber_lookup_leaves_the_child_able_to_send(
    signalwire_emulator: Emulator,
) -> None:
    emu = signalwire_emulator
    alice, bob = emu.create_subscriber(), emu.create_subscriber()
    with emu.client_for(alice) as client:
        client.get_conversations()  # used before the fork
        emu.delay_next(2.0, method="GET", path_prefix="/api/fabric/subscriber/info")
        outcome = _fork_while(
            client,
            client.my_address_id,
            lambda: client.send_message(bob.address_id, "from the child"),
        )
        assert outcome == "ok"
        client.send_message(bob.address_id, "the parent still sends")


def test_a_fork_during_a_token_fetch_leaves_the_child_able_to_call(
    signalwire_emulator: Emulator,
) -> None:
    emu = signalwire_emulator
    source = SubscriberTokenSource(emu.space_url, emu.project_id, emu.api_token, "a@example.com")
    with source, ChatClient(source, rest_url=emu.rest_url, relay_url=emu.relay_url) as client:
        emu.delay_next(2.0, method="POST", path_prefix="/api/fabric/subscribers/tokens")
        outcome = _fork_while(client, client.get_subscriber_info, client.get_subscriber_info)
        assert outcome == "ok"
        client.get_subscriber_info()


class _TenantAdapter(requests.adapters.HTTPAdapter):
    """A caller's adapter configured by its constructor (as one passing an ssl_context is)."""

    def __init__(self, tenant: str, **kwargs: Any) -> None:
        self.tenant = tenant
        self.sent = 0
        super().__init__(**kwargs)

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        self.sent += 1
        request.headers["X-Tenant"] = self.tenant
        return super().send(request, **kwargs)


def test_a_callers_session_keeps_its_adapters_in_a_forked_child(
    signalwire_emulator: Emulator,
) -> None:
    emu = signalwire_emulator
    session = requests.Session()
    adapter = _TenantAdapter("acme", max_retries=Retry(total=5), pool_maxsize=50)
    session.mount("http://", adapter)
    with session, emu.client_for(emu.create_subscriber(), session=session) as client:
        client.get_subscriber_info()  # used before the fork: the pool holds a connection
        parent_pools = adapter.poolmanager

        def child() -> None:
            client.get_subscriber_info()
            mounted = session.get_adapter(emu.rest_url)
            assert mounted is adapter  # the caller's adapter, as configured
            assert (adapter.tenant, adapter.max_retries.total, adapter._pool_maxsize) == (
                "acme",
                5,
                50,
            )
            assert adapter.sent == 2  # the child's call went through it
            assert adapter.poolmanager is not parent_pools  # with pools of its own

        assert _in_child(child) == "ok"
        client.get_subscriber_info()
        assert adapter.poolmanager is parent_pools  # the parent's pools are untouched
        assert adapter.sent == 2
