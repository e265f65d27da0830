"""The deadline watchdog: it cuts off a blocked read at the deadline, and owns its thread."""

from __future__ import annotations

import socket
import threading
import time

from signalwire_chat._deadline import Watchdog


def _alive(name: str = "signalwire-chat-http-deadline") -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == name and t.is_alive()]


def test_a_blocked_read_ends_at_the_deadline() -> None:
    watchdog = Watchdog()
    left, right = socket.socketpair()
    try:
        left.settimeout(30)  # far past the deadline: only the watchdog can end the read
        key = watchdog.watch(left, time.monotonic() + 0.2)
        assert left.recv(10) == b""  # shut down under the reader: end of stream
        assert watchdog.unwatch(key)
    finally:
        watchdog.close()
        left.close()
        right.close()
    assert not _alive()


def test_an_unwatched_socket_is_left_alone() -> None:
    watchdog = Watchdog()
    first, first_peer = socket.socketpair()
    second, second_peer = socket.socketpair()
    try:
        key = watchdog.watch(first, time.monotonic() + 0.05)
        assert not watchdog.unwatch(key)  # unwatched before its deadline: not cut
        other = watchdog.watch(second, time.monotonic() + 0.1)
        second.settimeout(5)
        assert second.recv(1) == b""  # this one was cut, so the thread ran past the first
        assert watchdog.unwatch(other)
        first_peer.sendall(b"ok")
        first.settimeout(5)
        assert first.recv(2) == b"ok"  # the first socket still works
    finally:
        watchdog.close()
        for sock in (first, first_peer, second, second_peer):
            sock.close()


def test_no_thread_before_the_first_watch_and_none_after_close() -> None:
    watchdog = Watchdog()
    assert not _alive()
    left, right = socket.socketpair()
    try:
        watchdog.watch(left, time.monotonic() + 60)
        assert _alive()
        watchdog.close()
        assert not _alive()
    finally:
        left.close()
        right.close()


def test_a_forked_child_starts_afresh() -> None:
    import os

    watchdog = Watchdog()
    left, right = socket.socketpair()
    try:
        watchdog.watch(left, time.monotonic() + 60)
        pid = os.fork()
        if pid == 0:  # the child: a watch must work (no inherited lock or thread)
            code = 1
            try:
                a, _peer = socket.socketpair()
                a.settimeout(10)
                watchdog.watch(a, time.monotonic() + 0.1)
                code = 0 if a.recv(1) == b"" else 2
            finally:
                os._exit(code)
        _pid, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
    finally:
        watchdog.close()
        left.close()
        right.close()
