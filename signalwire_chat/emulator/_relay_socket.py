"""One relay websocket: its outbox and writer, its reader, its pings and its closing.

A :class:`RelaySocket` knows frames, not JSON-RPC: it hands every text it reads to the
protocol (:mod:`._relay_session`) and writes the texts it is given, in order. What the
hub's parts share (the task set, the recorder, the frame ids, the tunables) is one
:class:`RelayRuntime`. Everything runs on the emulator's event loop thread.

Writes: the frames a socket is given during one turn of the event loop are written
together at the end of the next (:meth:`RelayRuntime.flush_soon`), in one
``transport.write`` (under load, several messages' events go out in one system call per
socket), when nothing waits before them and the transport's buffer is small; else they
wait in the outbox for the writer task, which uses aiohttp's ``send_str`` and its flow
control. The bytes of each frame are the same either way (:func:`text_frames`). This
saves a task wake-up and a ``send`` per event, together a third of the emulator's time
per fanned-out event (cProfile of ``benchmarks/fanout.py``).
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import time
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

from aiohttp import WSCloseCode, WSMsgType, web

from ._relay_liveness import Due, Liveness
from ._relay_wire import (
    CLOSE_AUTH_FAILED,
    CLOSE_GOING_AWAY,
    INTERNAL_ERROR,
    PARSE_ERROR,
    FrameIds,
    dumps,
    text_frames,
)

if TYPE_CHECKING:
    from ._relay import RelayConfig
    from ._relay_session import Session

__all__ = ["RelayRuntime", "RelaySocket"]

_log = logging.getLogger("signalwire_chat.emulator._relay")

# How long a server-side close waits for queued frames to leave, then for the peer's
# close frame (aiohttp's own close timeout).
FLUSH_TIMEOUT = 1.0
CLOSE_TIMEOUT = 2.0
# Answers the server still accepts for its own requests (pings, auth state) per socket.
_MAX_AWAITED_ANSWERS = 64
# Above this many bytes waiting in the transport, frames wait for the writer task, which
# waits for the peer to read (aiohttp's drain).
_DIRECT_WRITE_LIMIT = 64 * 1024


def _never() -> bool:
    return False


def _always() -> bool:
    return True


class RelayRuntime:
    """What the relay's parts share: tunables, tasks, the recorder and the frame ids.

    Args:
        config: The relay's tunables.
        record: Called with an entry for every socket opened or closed and every frame
            received or sent; None records nothing.
        recording: Whether ``record`` wants entries now (entries are built only then).
    """

    def __init__(
        self,
        config: RelayConfig,
        record: Callable[[dict[str, Any]], None] | None,
        recording: Callable[[], bool] | None,
    ) -> None:
        self.config = config
        self.ping_interval = config.ping_interval
        self.frame_id = FrameIds()
        self.closed = False
        self.tasks: set[asyncio.Task[Any]] = set()
        self._record = record
        # Whether entries are wanted now (build them only then): one call, no wrapper,
        # since the fan-out asks for every frame sent and every acknowledgement read.
        self.recording: Callable[[], bool]
        if record is None:
            self.recording = _never
        elif recording is None:
            self.recording = _always
        else:
            self.recording = recording
        self._dirty: list[RelaySocket] = []

    def flush_soon(self, sock: RelaySocket) -> None:
        """Have ``sock`` write what it was given at the end of the loop's next turn.

        One turn later than "once the loop has run what is ready": the requests handled
        in that turn (a burst of sends) add their events to the same writes, so there are
        fewer writes, and fewer, larger batches of acknowledgements to read back (fan-out
        bench, same runs: 1.53 -> 1.17 and 1.03 -> 0.80 ms of the emulator's CPU per
        message). When the loop is idle the second turn follows the first at once.
        """
        if not self._dirty:
            asyncio.get_running_loop().call_soon(self._flush_next_turn)
        self._dirty.append(sock)

    def _flush_next_turn(self) -> None:
        asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        dirty, self._dirty = self._dirty, []
        for sock in dirty:
            sock.flush()

    def emit(self, entry: dict[str, Any]) -> None:
        """Hand an entry to the recorder; a failing recorder is logged, never raised."""
        if self._record is None:
            return
        try:
            self._record(entry)
        except Exception:  # noqa: BLE001 - a failing recorder must not break the relay
            _log.exception("relay record callable failed")

    def spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Run a coroutine as a task the hub ends on close."""
        task = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self.tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            _log.error("relay task failed", exc_info=task.exception())


class RelaySocket:
    """One websocket: its outbox, its writer task, its timer and its state.

    Args:
        number: The socket's number (in log lines and recorded entries).
        ws: The prepared websocket.
        request: The upgrade request (its transport is cut by :meth:`abort`).
        runtime: What the hub's parts share.
    """

    def __init__(
        self, number: int, ws: web.WebSocketResponse, request: web.Request, runtime: RelayRuntime
    ) -> None:
        self.number = number
        self.ws = ws
        self.request = request
        self.runtime = runtime
        # Frame texts pushed during this turn of the loop, written together at its end.
        self.pending: list[str] = []
        # Frame texts waiting for the writer task.
        self.outbox: collections.deque[str] = collections.deque()
        self.wake = asyncio.Event()
        self.idle = asyncio.Event()
        self.idle.set()
        # Cleared while the connection plays half-open: nothing is read, answered or sent.
        self.running = asyncio.Event()
        self.running.set()
        self.done = asyncio.Event()
        self.session: Session | None = None
        # Ids of the server's own requests whose answers are expected.
        self.awaited: dict[str, asyncio.Future[dict[str, Any]] | None] = {}
        self.closing = False
        self.aborted = False
        self.initiator = "client"
        self.writer: asyncio.Task[None] | None = None
        self.closer: asyncio.Task[None] | None = None
        # The authentication deadline, pings and ping timeout (on the loop's clock), and
        # the one loop timer armed at its next deadline.
        loop = asyncio.get_running_loop()
        self.liveness = Liveness(
            opened_at=loop.time(),
            auth_timeout=runtime.config.auth_timeout,
            ping_timeout=runtime.config.ping_timeout,
        )
        self._timer: asyncio.TimerHandle | None = None

    # -- writing ------------------------------------------------------------------------

    def push(self, text: str) -> None:
        """Send a frame's text, in order; dropped once the socket is closing."""
        if self.closing:
            return
        if self.outbox:
            self.outbox.append(text)
            self.wake.set()
            return
        pending = self.pending
        pending.append(text)
        if len(pending) == 1:
            self.idle.clear()
            self.runtime.flush_soon(self)

    def flush(self) -> None:
        """Write what was pushed since the last flush: at once, or through the writer task."""
        texts, self.pending = self.pending, []
        if not texts or self.aborted:
            if not self.outbox:
                self.idle.set()
            return
        transport = self.request.transport
        if (
            self.outbox
            or not self.running.is_set()
            or transport is None
            or transport.is_closing()
            or self.ws.closed
            or transport.get_write_buffer_size() > _DIRECT_WRITE_LIMIT
        ):
            self.outbox.extend(texts)
            self.wake.set()
            return
        if self.runtime.recording():
            for text in texts:
                self._record_send(text)
        transport.write(text_frames(texts))
        self.idle.set()

    def send(self, obj: dict[str, Any]) -> None:
        """Encode a frame and send it."""
        self.push(dumps(obj))

    def reply(self, rid: Any, result: dict[str, Any]) -> None:
        """Answer a request with a result."""
        self.send({"jsonrpc": "2.0", "id": rid, "result": result})

    def reply_error(self, rid: Any, code: int, message: str) -> None:
        """Answer a request (or a frame that is none) with an error."""
        self.send({"jsonrpc": "2.0", "id": rid, "error": {"code": code, "message": message}})

    def expect(self, rid: str, waiter: asyncio.Future[dict[str, Any]] | None = None) -> None:
        """Remember that an answer with this id is due."""
        self.awaited[rid] = waiter
        if len(self.awaited) > _MAX_AWAITED_ANSWERS:
            del self.awaited[next(iter(self.awaited))]

    def _record_send(self, text: str) -> None:
        self.runtime.emit({"kind": "ws_send", "conn": self.number, "frame": json.loads(text)})

    async def write_loop(self) -> None:
        """Send what waits in the outbox, with aiohttp's flow control, until cancelled."""
        ws = self.ws
        outbox = self.outbox
        try:
            while True:
                await self.wake.wait()
                self.wake.clear()
                while outbox:
                    if not self.running.is_set():
                        await self.running.wait()
                    if self.aborted:
                        return
                    text = outbox.popleft()
                    if self.runtime.recording():
                        self._record_send(text)
                    await ws.send_str(text)
                self.idle.set()
        except ConnectionError as exc:
            _log.debug("relay socket %d: write failed: %s", self.number, exc)
        finally:
            outbox.clear()
            self.idle.set()

    # -- reading ------------------------------------------------------------------------

    async def read_loop(self, on_text: Callable[[RelaySocket, str], None]) -> None:
        """Hand every text frame to ``on_text`` until the socket closes."""
        ws = self.ws
        runtime = self.runtime
        # Bound once: this runs for every acknowledgement of every event.
        running = self.running
        heard = self.liveness.heard
        text_type = WSMsgType.TEXT
        while True:
            msg = await ws.receive()
            if not running.is_set():
                await running.wait()
            heard()
            if msg.type is text_type:
                text: str = msg.data
            elif msg.type is WSMsgType.BINARY:
                try:
                    text = bytes(msg.data).decode("utf-8")
                except UnicodeDecodeError:
                    if runtime.recording():
                        runtime.emit(self._received({"_binary": True}))
                    self.reply_error(None, PARSE_ERROR, "Parse error: not UTF-8")
                    continue
            else:
                return
            if self.aborted:
                return
            try:
                on_text(self, text)
            except Exception:  # noqa: BLE001 - one bad frame must not end the socket
                _log.exception("relay socket %d: handling a frame failed", self.number)
                self.reply_error(None, INTERNAL_ERROR, "Internal error")

    def _received(self, frame: Any) -> dict[str, Any]:
        return {"kind": "ws_recv", "conn": self.number, "frame": frame}

    def record_received(self, frame: Any) -> None:
        """Record a received frame (as decoded, or a marker for one that is not JSON)."""
        if self.runtime.recording():
            self.runtime.emit(self._received(frame))

    # -- timers -----------------------------------------------------------------------------

    def arm_timer(self) -> None:
        """(Re)arm the socket's one loop timer at its next deadline."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        deadline = self.liveness.next_deadline()
        if deadline is not None and not self.closing:
            self._timer = asyncio.get_running_loop().call_at(deadline, self._on_timer)

    def start_pinger(self) -> None:
        """The socket is authenticated (or the interval changed): ping at the interval."""
        loop = asyncio.get_running_loop()
        self.liveness.authenticated(loop.time(), self.runtime.ping_interval)
        self.arm_timer()

    def _on_timer(self) -> None:
        self._timer = None
        if self.closing:
            return
        now = asyncio.get_running_loop().time()
        for due in self.liveness.handle_timer(now, running=self.running.is_set()):
            if due is Due.CLOSE_UNAUTHENTICATED and self.session is None:
                _log.info("relay socket %d: no signalwire.connect in time; closing", self.number)
                self.request_close(CLOSE_AUTH_FAILED)
            elif due is Due.CLOSE_DEAD:
                _log.info(
                    "relay socket %d: nothing received for %.1f s after a ping; closing",
                    self.number,
                    self.runtime.config.ping_timeout,
                )
                self.request_close(CLOSE_GOING_AWAY)
            elif due is Due.PING:
                self._ping()
        self.arm_timer()

    def _ping(self) -> None:
        rid = self.runtime.frame_id()
        self.expect(rid)
        self.send(
            {
                "jsonrpc": "2.0",
                "id": rid,
                "method": "signalwire.ping",
                "params": {"timestamp": time.time()},
            }
        )

    # -- closing ----------------------------------------------------------------------------

    def request_close(self, code: int) -> None:
        """Close the socket from the server side once what is queued has left."""
        if self.closer is not None or self.aborted or self.done.is_set():
            return
        self.closing = True
        self.initiator = "server"
        self.closer = self.runtime.spawn(self._close(code))

    async def _close(self, code: int) -> None:
        try:
            await asyncio.wait_for(self.idle.wait(), FLUSH_TIMEOUT)
        except asyncio.TimeoutError:
            _log.debug("relay socket %d: closing with frames still queued", self.number)
        try:
            await self.ws.close(code=code)
        except ConnectionError as exc:
            _log.debug("relay socket %d: close failed: %s", self.number, exc)

    def abort(self) -> None:
        """Cut the TCP connection at once: no close frame, like a network drop."""
        if self.aborted:
            return
        self.aborted = True
        self.closing = True
        self.initiator = "server"
        self.running.set()
        self.wake.set()
        transport = self.request.transport
        if transport is not None:
            transport.abort()

    async def wind_down(self) -> int:
        """End the socket's timers and tasks once its read loop has ended.

        Returns:
            The close code to record (1006 when it was cut or never closed cleanly).
        """
        self.closing = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.closer is not None:
            await asyncio.wait({self.closer})
        if self.writer is not None:
            self.writer.cancel()
            await asyncio.wait({self.writer})
        for waiter in self.awaited.values():
            if waiter is not None and not waiter.done():
                # The socket is gone: whoever waits for an answer stops waiting.
                waiter.set_result({})
        self.awaited.clear()
        code = self.ws.close_code
        if code is None or self.aborted:
            code = int(WSCloseCode.ABNORMAL_CLOSURE)
        return code
