"""``ExchangeSim``: the paper exchange served over HTTP and websocket in the Deribit v2 dialect.

One aiohttp server on one port:

- ``GET /api/v2/public/<method>`` and ``GET /api/v2/private/<method>?<params>``, as ccxt's deribit
  REST client calls them (private ones signed, :mod:`auth`), answered by :mod:`methods`;
- ``/ws/api/v2``, the JSON-RPC websocket (:mod:`stream`);
- ``/admin/...`` (:mod:`admin`).

Faults (:mod:`faults`) apply to REST and websockets, never to the admin API. Every order request
(``private/buy``, ``private/sell``, REST or websocket) is logged with its outcome
(:class:`~scaler.adapters.sim.state.OrderRequestRecord`). The state is saved after every order
and cancel, periodically as the market moves, and on :meth:`ExchangeSim.stop`.

In a test or a benchmark::

    sim = ExchangeSim(exchange, feed, credentials=Credentials("key", "a-secret-of-16+chars"))
    await sim.start()            # port 0: an ephemeral port, then sim.port / sim.url / sim.ws_url
    ...
    await sim.stop()
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import structlog
from aiohttp import web

from scaler.adapters.paper.exchange import PaperExchange
from scaler.adapters.sim import methods, params, rpc
from scaler.adapters.sim.admin import AdminContext, admin_routes
from scaler.adapters.sim.auth import Authenticator, Credentials
from scaler.adapters.sim.faults import ErrorKind, FaultInjector, Faults
from scaler.adapters.sim.market import Market
from scaler.adapters.sim.methods import Methods
from scaler.adapters.sim.orders import OrderView, TradeView
from scaler.adapters.sim.publisher import Publisher
from scaler.adapters.sim.rpc import DeribitError
from scaler.adapters.sim.state import OrderRequestRecord, SimStore
from scaler.adapters.sim.stream import StreamHub
from scaler.adapters.sim.venue import SimVenue
from scaler.clock import WallClock
from scaler.domain.types import NS_PER_MS
from scaler.ports import Clock, MarketFeed

log = structlog.get_logger("scaler.exchange_sim")

WS_PATH: Final = "/ws/api/v2"
SHUTDOWN_TIMEOUT_S: Final = 2.0
UNAVAILABLE_BODY: Final = "503 Service Unavailable"


@dataclass(frozen=True, slots=True)
class Answer:
    """The outcome of one call: a result or an error, and its order-log entry if any."""

    result: Any = None
    error: DeribitError | None = None
    log_seq: int | None = None

    def unwrap(self) -> Any:
        if self.error is not None:
            raise self.error
        return self.result


class ExchangeSim:
    """The simulator: a paper exchange, its market feed, and the server in front of them."""

    def __init__(
        self,
        exchange: PaperExchange,
        feed: MarketFeed,
        *,
        credentials: Credentials,
        meta: Mapping[str, Any] | None = None,
        faults: Faults | None = None,
        store: SimStore | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        clock: Clock | None = None,
        rng: random.Random | None = None,
    ) -> None:
        """``meta`` is the saved :meth:`SimVenue.to_dict` matching a restored ``exchange``."""
        self._clock: Clock = clock or WallClock()
        self._feed = feed
        self._host, self._port = host, port
        self.store = store or SimStore(":memory:")
        self.credentials = credentials
        self.venue = SimVenue(exchange, self._clock, meta)
        self.faults = FaultInjector(faults or Faults(), rng)
        self.publisher = Publisher(self.venue)
        self._authenticator = Authenticator(credentials)
        self.methods = Methods(
            self.venue, self.faults, self._authenticator, self._clock, self._orders_changed
        )
        self.hub = StreamHub(self.publisher, self._ws_call, self.faults, self._clock)
        self.market = Market(self.venue, self.publisher, self.faults, self._clock, self.save)
        self._closing = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._market_task: asyncio.Task[None] | None = None

    # ---- lifecycle ----------------------------------------------------------------------------

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        return f"http://{self._host}:{self._port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{self._host}:{self._port}{WS_PATH}"

    async def start(self) -> None:
        """Listen (``port`` 0 picks a free one) and start consuming the feed."""
        app = web.Application()
        context = AdminContext(
            self.credentials,
            self.venue,
            self.faults,
            self.hub,
            self.market,
            self.store,
            self._clock,
        )
        app.add_routes(
            [
                web.get("/api/v2/{scope}/{method}", self._rest),
                web.get(WS_PATH, self.hub.serve),
                *admin_routes(context),
            ]
        )
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT_S)
        await self._runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self._host, self._port))
            await web.SockSite(self._runner, sock).start()
        except BaseException:
            sock.close()
            await self._runner.cleanup()
            raise
        self._port = sock.getsockname()[1]
        self._market_task = asyncio.create_task(self._run_market(), name="exchange-sim-market")

    async def _run_market(self) -> None:
        try:
            await self.market.run(self._feed)
        except Exception as exc:  # noqa: BLE001 - reported; the simulator keeps serving
            log.error("feed_failed", error=f"{type(exc).__name__}: {exc}")
            return
        if not self._closing.is_set():
            log.warning("feed_ended", detail="the market is frozen from now on")

    async def stop(self) -> None:
        """Stop the feed, drop every connection, save the state, close the store."""
        self._closing.set()
        if self._market_task is not None:
            self._market_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._market_task
        await self._feed.close()
        await self.hub.close()
        if self._runner is not None:
            await self._runner.cleanup()
        self.save()
        self.store.close()

    async def __aenter__(self) -> ExchangeSim:
        await self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.stop()

    def save(self) -> None:
        self.store.save(self.venue.exchange.to_dict(), self.venue.to_dict())

    def _orders_changed(self, orders: list[OrderView], trades: list[TradeView]) -> None:
        self.publisher.orders(orders, trades)
        self.save()

    # ---- calls --------------------------------------------------------------------------------

    def _ws_call(self, name: str, request: dict[str, Any], ts_recv_ns: int, transport: str) -> Any:
        return self._answer(
            name, request, ts_recv_ns, transport, self.hub.ts_last_ticker_push_ns
        ).unwrap()

    def _answer(
        self,
        name: str,
        request: Mapping[str, Any],
        ts_recv_ns: int,
        transport: str,
        ts_push_ns: int | None,
    ) -> Answer:
        """Call one method; log it if it is an order request."""
        try:
            answer = Answer(result=self.methods.call(name, request))
        except DeribitError as exc:
            answer = Answer(error=exc)
        if name not in methods.ORDER_METHODS:
            return answer
        if answer.error is None:
            outcome, order_id, code = "accepted", answer.result["order"]["order_id"], None
        else:
            outcome = "fault_rejected" if answer.error.injected else "rejected"
            order_id, code = None, answer.error.code
        seq = self._log_order(
            name, request, ts_recv_ns, transport, ts_push_ns, outcome, order_id, code
        )
        return Answer(answer.result, answer.error, seq)

    def _log_order(
        self,
        name: str,
        request: Mapping[str, Any],
        ts_recv_ns: int,
        transport: str,
        ts_push_ns: int | None,
        outcome: str,
        order_id: str | None = None,
        error_code: int | None = None,
    ) -> int:
        label, order_type = request.get("label"), request.get("type", "limit")
        record = OrderRequestRecord(
            ts_recv_ns=ts_recv_ns,
            ts_last_ticker_push_ns=ts_push_ns,
            transport=transport,
            side=name.rpartition("/")[2],
            label=label if isinstance(label, str) else None,
            amount=params.loose_number(request.get("amount")),
            order_type=order_type if isinstance(order_type, str) else None,
            price=params.loose_number(request.get("price")),
            order_id=order_id,
            outcome=outcome,
            error_code=error_code,
        )
        return self.store.append_request(record)

    # ---- REST ---------------------------------------------------------------------------------

    async def _rest(self, request: web.Request) -> web.StreamResponse:
        ts_recv_ns = self._clock.now_ns()
        ts_push_ns = self.hub.ts_last_ticker_push_ns
        name = f"{request.match_info['scope']}/{request.match_info['method']}"
        query = dict(request.query)
        fault = self.faults.draw_error()
        latency_ms = self.faults.faults.latency_ms
        if latency_ms > 0:
            await self._clock.sleep(latency_ms / 1_000)
        if fault is not None and fault is not ErrorKind.TIMEOUT_EXECUTED:
            if name in methods.ORDER_METHODS:
                self._log_order(name, query, ts_recv_ns, "rest", ts_push_ns, fault.value)
            if fault is ErrorKind.TIMEOUT_UNEXECUTED:
                return await self._hold_and_drop(request)
            return self._fault_response(fault, ts_recv_ns)
        answer = self._rest_answer(request, name, query, ts_recv_ns, ts_push_ns)
        if fault is ErrorKind.TIMEOUT_EXECUTED:
            if answer.log_seq is not None:
                self.store.mark_dropped(answer.log_seq)
            return await self._hold_and_drop(request)
        return self._respond(answer, ts_recv_ns)

    def _rest_answer(
        self,
        request: web.Request,
        name: str,
        query: dict[str, str],
        ts_recv_ns: int,
        ts_push_ns: int | None,
    ) -> Answer:
        if request.match_info["scope"] not in {"public", "private"}:
            return Answer(error=DeribitError(rpc.METHOD_NOT_FOUND, name))
        if methods.is_private(name):
            header = request.headers.get("Authorization")
            try:
                now_ms = self._clock.now_ns() // NS_PER_MS
                self._authenticator.check_header(
                    header, request.method, request.raw_path, "", now_ms
                )
            except DeribitError as exc:
                return Answer(error=exc)
        return self._answer(name, query, ts_recv_ns, "rest", ts_push_ns)

    def _respond(self, answer: Answer, ts_recv_ns: int) -> web.Response:
        us_in, us_out = ts_recv_ns // 1_000, self._clock.now_ns() // 1_000
        if answer.error is not None:
            body = rpc.error_envelope(answer.error, None, us_in, us_out)
            status = answer.error.spec.http_status
        else:
            body, status = rpc.result_envelope(answer.result, None, us_in, us_out), 200
        return web.Response(status=status, text=rpc.encode(body), content_type="application/json")

    def _fault_response(self, fault: ErrorKind, ts_recv_ns: int) -> web.Response:
        if fault is ErrorKind.UNAVAILABLE:
            return web.Response(status=503, text=UNAVAILABLE_BODY, content_type="text/plain")
        spec = rpc.TOO_MANY_REQUESTS if fault is ErrorKind.RATE_LIMIT else rpc.GENERAL_ERROR
        return self._respond(Answer(error=DeribitError(spec)), ts_recv_ns)

    async def _hold_and_drop(self, request: web.Request) -> web.Response:
        """Hold the request ``timeout_s`` (less if the simulator stops), then cut the connection."""
        sleeper = asyncio.ensure_future(self._clock.sleep(self.faults.faults.timeout_s))
        closer = asyncio.ensure_future(self._closing.wait())
        try:
            await asyncio.wait({sleeper, closer}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()
            closer.cancel()
            await asyncio.gather(sleeper, closer, return_exceptions=True)
        if request.transport is not None:
            request.transport.close()
        return web.Response(status=504)  # never written: the connection is already gone
