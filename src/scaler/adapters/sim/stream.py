"""The websocket at ``/ws/api/v2``: JSON-RPC requests, subscriptions, and pushes to subscribers.

Requests: ``public/subscribe``, ``private/subscribe`` (after ``public/auth`` on the same
connection), ``public/unsubscribe``, ``private/unsubscribe``, ``public/unsubscribe_all``,
``private/unsubscribe_all``, ``public/set_heartbeat`` (then a ``heartbeat`` ``test_request``
every ``interval`` seconds), ``public/disable_heartbeat``, and every method of
:mod:`scaler.adapters.sim.methods`; ``public/auth`` marks the connection authenticated.

A subscription is answered with the list of channels subscribed (:mod:`channels`); channels the
simulator does not serve are left out of that list rather than refused, because ccxt.pro's
deribit raises inside its message callback on any error frame, which silently ends its receive
loop. A new ticker or quote subscriber gets the current value at once, a new book subscriber its
``snapshot``; later pushes follow the market ticks and order changes.

Every connection has one writer task draining a bounded queue, so a slow client delays only
itself; a client more than :data:`MAX_QUEUED` messages behind is disconnected. The writer stamps
``ts_last_ticker_push_ns`` just before a ticker push goes out: the start of the tick-to-order
latency the order log records.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

import structlog
from aiohttp import WSCloseCode, WSMsgType, web

from scaler.adapters.sim import rpc
from scaler.adapters.sim.channels import Channel, Topic
from scaler.adapters.sim.faults import FaultInjector
from scaler.adapters.sim.publisher import Publisher
from scaler.adapters.sim.rpc import DeribitError
from scaler.domain.types import NS_PER_S
from scaler.ports import Clock

log = structlog.get_logger("scaler.exchange_sim")

MAX_QUEUED: Final = 10_000
MIN_HEARTBEAT_S: Final = 1.0
CLOSE_TIMEOUT_S: Final = 1.0
Caller = Callable[[str, dict[str, Any], int, str], Any]
"""``(method, params, ts_recv_ns, transport) -> result``: the simulator's method dispatch."""


@dataclass(eq=False)
class Session:
    """One websocket connection."""

    number: int
    ws: web.WebSocketResponse
    ts_opened_ns: int
    authenticated: bool = False
    channels: dict[str, Channel] = field(default_factory=dict)
    transport: asyncio.BaseTransport | None = None
    queue: asyncio.Queue[tuple[str, bool]] = field(
        default_factory=lambda: asyncio.Queue(MAX_QUEUED)
    )
    tasks: dict[str, asyncio.Task[None]] = field(default_factory=dict)

    def send(self, message: Any, *, ticker: bool = False) -> None:
        """Queue one message; a client too far behind is cut off."""
        try:
            self.queue.put_nowait((rpc.encode(message), ticker))
        except asyncio.QueueFull:
            log.warning("ws_cut_off", connection=self.number, queued=MAX_QUEUED)
            self.channels.clear()
            if self.transport is not None:
                self.transport.close()


class StreamHub:
    """Every open websocket, its subscriptions, and the pushes the market and orders cause."""

    def __init__(self, publisher: Publisher, call: Caller, faults: FaultInjector, clock: Clock):
        self.publisher = publisher
        self._call = call
        self._faults = faults
        self._clock = clock
        self._numbers = itertools.count(1)
        self.sessions: dict[int, Session] = {}
        self.ts_last_ticker_push_ns: int | None = None
        self.ticker_pushes = 0
        publisher.attach(self)

    # ---- connections ------------------------------------------------------------------------

    async def serve(self, request: web.Request) -> web.WebSocketResponse:
        """The aiohttp handler of ``/ws/api/v2``."""
        ws = web.WebSocketResponse(timeout=CLOSE_TIMEOUT_S, max_msg_size=1 << 20)
        await ws.prepare(request)
        session = Session(
            next(self._numbers), ws, self._clock.now_ns(), transport=request.transport
        )
        self.sessions[session.number] = session
        session.tasks["writer"] = asyncio.create_task(self._write(session), name="ws-writer")
        self._schedule_drop(session)
        log.debug("ws_opened", connection=session.number)
        try:
            async for message in ws:
                if message.type is WSMsgType.TEXT:
                    self._on_text(session, message.data)
        finally:
            await self._forget(session)
        return ws

    async def _forget(self, session: Session) -> None:
        self.sessions.pop(session.number, None)
        for task in session.tasks.values():
            task.cancel()
        outcomes = await asyncio.gather(*session.tasks.values(), return_exceptions=True)
        for name, outcome in zip(session.tasks, outcomes, strict=True):
            if isinstance(outcome, Exception):
                log.error(
                    "ws_task_failed", connection=session.number, task=name, error=repr(outcome)
                )
        log.debug("ws_closed", connection=session.number)

    async def _write(self, session: Session) -> None:
        while True:
            text, ticker = await session.queue.get()
            if ticker:
                self.ts_last_ticker_push_ns = self._clock.now_ns()
                self.ticker_pushes += 1
            try:
                await session.ws.send_str(text)
            except ConnectionError:
                return

    async def drop(self, session: Session) -> None:
        """Close one connection now (the client sees the server go away)."""
        with contextlib.suppress(ConnectionError):
            await session.ws.close(code=WSCloseCode.GOING_AWAY, message=b"dropped by exchange-sim")

    async def drop_all(self) -> int:
        sessions = list(self.sessions.values())
        await asyncio.gather(*(self.drop(session) for session in sessions))
        return len(sessions)

    def reschedule_drops(self) -> None:
        """Apply a changed ``drop_ws_after_s`` to the connections already open."""
        for session in self.sessions.values():
            self._schedule_drop(session)

    def _schedule_drop(self, session: Session) -> None:
        previous = session.tasks.pop("dropper", None)
        if previous is not None:
            previous.cancel()
        after_s = self._faults.faults.drop_ws_after_s
        if after_s is not None:
            delay_s = after_s - (self._clock.now_ns() - session.ts_opened_ns) / NS_PER_S
            session.tasks["dropper"] = asyncio.create_task(
                self._drop_later(session, delay_s), name="ws-dropper"
            )

    async def _drop_later(self, session: Session, delay_s: float) -> None:
        await self._clock.sleep(delay_s)
        log.info("ws_dropped", connection=session.number, reason="drop_ws_after_s")
        await self.drop(session)

    # ---- requests ---------------------------------------------------------------------------

    def _on_text(self, session: Session, data: str) -> None:
        ts_recv_ns = self._clock.now_ns()
        request_id: Any = None
        follow_ups: list[tuple[Any, bool]] = []
        try:
            try:
                message = json.loads(data)
            except ValueError:
                raise DeribitError(rpc.PARSE_ERROR) from None
            if not isinstance(message, dict) or not isinstance(message.get("method"), str):
                raise DeribitError(rpc.BAD_REQUEST, "expected a JSON-RPC request object")
            request_id = message.get("id")
            params = message.get("params") or {}
            if not isinstance(params, dict):
                raise DeribitError(rpc.BAD_REQUEST, "params must be an object")
            result = self._dispatch(session, message["method"], params, ts_recv_ns, follow_ups)
            answer = rpc.result_envelope(result, request_id, ts_recv_ns // 1_000, self._us())
        except DeribitError as exc:
            answer = rpc.error_envelope(exc, request_id, ts_recv_ns // 1_000, self._us())
        session.send(answer)
        for follow_up, ticker in follow_ups:
            session.send(follow_up, ticker=ticker)

    def _us(self) -> int:
        return self._clock.now_ns() // 1_000

    def _dispatch(
        self,
        session: Session,
        method: str,
        params: dict[str, Any],
        ts_recv_ns: int,
        follow_ups: list[tuple[Any, bool]],
    ) -> Any:
        scope, _, verb = method.partition("/")
        if verb in {"subscribe", "unsubscribe", "unsubscribe_all"} and scope in {
            "public",
            "private",
        }:
            if scope == "private" and not session.authenticated:
                raise DeribitError(rpc.UNAUTHORIZED, "private/subscribe needs public/auth first")
            return self._subscription(
                session, verb, params, private=scope == "private", out=follow_ups
            )
        if method == "public/set_heartbeat":
            return self._set_heartbeat(session, params)
        if method == "public/disable_heartbeat":
            task = session.tasks.pop("heartbeat", None)
            if task is not None:
                task.cancel()
            return "ok"
        if scope == "private" and not session.authenticated:
            raise DeribitError(rpc.UNAUTHORIZED, "authenticate with public/auth first")
        result = self._call(method, params, ts_recv_ns, "ws")
        if method == "public/auth":
            session.authenticated = True
        return result

    def _subscription(
        self,
        session: Session,
        verb: str,
        params: dict[str, Any],
        *,
        private: bool,
        out: list[tuple[Any, bool]],
    ) -> list[str]:
        if verb == "unsubscribe_all":
            session.channels.clear()
            return []  # Deribit answers "ok"; a list keeps ccxt.pro's handler out of trouble
        names = params.get("channels")
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise rpc.invalid_param("channels", "must be a list of channel names")
        if verb == "unsubscribe":
            return [name for name in names if session.channels.pop(name, None) is not None]
        accepted: list[str] = []
        for name in names:
            channel = self.publisher.parse(name)
            if channel is None or channel.topic.private != private:
                continue
            accepted.append(name)
            if name not in session.channels:
                session.channels[name] = channel
                ticker = channel.topic is Topic.TICKER
                out.extend((message, ticker) for message in self.publisher.welcome(channel))
        return accepted

    def _set_heartbeat(self, session: Session, params: dict[str, Any]) -> str:
        interval = params.get("interval")
        if isinstance(interval, bool) or not isinstance(interval, int | float):
            raise rpc.invalid_param("interval", "must be a number of seconds")
        if interval < MIN_HEARTBEAT_S:
            raise rpc.invalid_param("interval", f"must be at least {MIN_HEARTBEAT_S:g}")
        previous = session.tasks.pop("heartbeat", None)
        if previous is not None:
            previous.cancel()
        session.tasks["heartbeat"] = asyncio.create_task(
            self._heartbeat(session, float(interval)), name="ws-heartbeat"
        )
        return "ok"

    async def _heartbeat(self, session: Session, interval_s: float) -> None:
        beat = {"jsonrpc": rpc.JSONRPC, "method": "heartbeat", "params": {"type": "test_request"}}
        while True:
            await self._clock.sleep(interval_s)
            session.send(beat)

    # ---- pushes -----------------------------------------------------------------------------

    def push(self, topic: Topic, instrument: str, messages: Callable[[Channel], list[Any]]) -> None:
        """Send each subscriber of ``topic`` covering ``instrument`` its ``messages(channel)``."""
        for session in list(self.sessions.values()):
            for channel in list(session.channels.values()):
                if channel.topic is topic and channel.covers(instrument):
                    for message in messages(channel):
                        session.send(message, ticker=topic is Topic.TICKER)

    async def close(self) -> None:
        """Drop every connection and wait for their handlers to finish."""
        await self.drop_all()
