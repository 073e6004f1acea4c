"""The exchange simulator on 127.0.0.1, driven by the real, unmodified ccxt deribit classes.

Every expected value is worked out here from the contract, not read back from the simulator:
the market is a locked book at 50,000 (bid = ask = mark), so a market buy of 1,000 USD fills at
50,000, holds 1,000 / 50,000 = 0.02 BTC and pays the 0.05 % taker fee, 0.00001 BTC.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import ccxt
import ccxt.async_support as ccxt_async
import ccxt.pro as ccxt_pro
import pytest

from scaler.adapters.paper import PaperExchange, PaperInstrument
from scaler.adapters.sim import Credentials, ExchangeSim, Faults, SimStore
from scaler.domain.types import NS_PER_S, InstrumentKey, MarketSnapshot
from tests.support import PushFeed, eventually, snapshot

pytestmark = pytest.mark.integration

KEY = InstrumentKey("exchange-sim", "BTC/USD:BTC")
SYMBOL = "BTC/USD:BTC"
API_KEY = "sim-test-key"
API_SECRET = "sim-test-secret-7f3a9c2e"
ADMIN = {"Authorization": f"Bearer {API_SECRET}"}
START_MARK = 50_000.0
CLIENT_TIMEOUT_MS = 2_000
WAIT_S = 3.0


class Tape:
    """Market ticks one second apart from now, on a locked book at the mark."""

    def __init__(self) -> None:
        self.ts_ns = time.time_ns()

    def tick(self, mark: float, **changes: Any) -> MarketSnapshot:
        self.ts_ns += NS_PER_S
        return snapshot(self.ts_ns, mark, key=KEY, spread_usd=0.0, **changes)


def new_exchange() -> PaperExchange:
    return PaperExchange(PaperInstrument(KEY, lot_size_usd=10, tick_size=0.5))


def new_sim(store: SimStore, exchange: PaperExchange | None = None, **kwargs: Any) -> ExchangeSim:
    return ExchangeSim(
        exchange or new_exchange(),
        kwargs.pop("feed", PushFeed()),
        credentials=Credentials(API_KEY, API_SECRET),
        store=store,
        rng=random.Random(7),
        **kwargs,
    )


@pytest.fixture
def tape() -> Tape:
    return Tape()


@pytest.fixture
async def sim(tmp_path: Path, tape: Tape) -> AsyncIterator[ExchangeSim]:
    server = new_sim(SimStore(tmp_path / "exchange-sim.sqlite3"))
    await server.start()
    assert server.market.apply(tape.tick(START_MARK))
    yield server
    await server.stop()


def point(client: Any, sim: ExchangeSim) -> Any:
    client.urls["api"] = {"rest": sim.url, "ws": sim.ws_url}
    return client


def options(secret: str = API_SECRET, key: str = API_KEY) -> dict[str, Any]:
    return {"apiKey": key, "secret": secret, "enableRateLimit": False, "timeout": CLIENT_TIMEOUT_MS}


@pytest.fixture
async def client(sim: ExchangeSim) -> AsyncIterator[Any]:
    exchange = point(ccxt_async.deribit(options()), sim)
    yield exchange
    await exchange.close()


@pytest.fixture
async def pro(sim: ExchangeSim) -> AsyncIterator[Any]:
    exchange = point(ccxt_pro.deribit(options()), sim)
    yield exchange
    await exchange.close()


async def admin(
    sim: ExchangeSim, method: str, path: str, body: Any = None, **kw: Any
) -> tuple[int, Any]:
    headers = kw.get("headers", ADMIN)
    url = f"{sim.url}{path}"
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, url, json=body, headers=headers) as reply,
    ):
        return reply.status, await reply.json()


async def set_faults(sim: ExchangeSim, **changes: Any) -> dict[str, Any]:
    status, body = await admin(sim, "POST", "/admin/faults", changes)
    assert status == 200, body
    return dict(body)


async def state(sim: ExchangeSim) -> dict[str, Any]:
    status, body = await admin(sim, "GET", "/admin/state")
    assert status == 200, body
    return dict(body)


# ---- markets and market data ----------------------------------------------------------------


async def test_load_markets_lists_btc_perpetual_as_the_inverse_swap(client: Any) -> None:
    """ccxt parses the listing as BTC/USD:BTC, inverse, 10 USD contracts on a 0.5 tick."""
    markets = await client.load_markets()
    market = markets[SYMBOL]
    assert market["id"] == "BTC-PERPETUAL"
    assert (market["swap"], market["inverse"], market["linear"]) == (True, True, False)
    assert market["settle"] == "BTC"
    assert market["contractSize"] == 10.0
    assert market["precision"] == {"amount": 10.0, "price": 0.5}
    assert market["limits"]["amount"]["min"] == 10.0


async def test_fetch_ticker_reports_mark_index_touch_and_funding(
    client: Any, sim: ExchangeSim, tape: Tape
) -> None:
    """The ticker carries the tick's mark, index, touch, 8 h funding and event time."""
    tick = tape.tick(50_100.0, index=50_050.0, funding_rate=0.0002)
    sim.market.apply(tick)
    ticker = await client.fetch_ticker(SYMBOL)
    assert (ticker["markPrice"], ticker["indexPrice"]) == (50_100.0, 50_050.0)
    assert (ticker["bid"], ticker["ask"]) == (50_100.0, 50_100.0)
    assert ticker["timestamp"] == tick.ts_event_ns // 1_000_000
    assert ticker["info"]["funding_8h"] == pytest.approx(0.0002)
    assert ticker["info"]["current_funding"] == pytest.approx(0.0002)


async def test_fetch_order_book_returns_the_levels_and_the_change_id(
    client: Any, sim: ExchangeSim, tape: Tape
) -> None:
    """The book has the tick's one level a side (1,000,000 USD) and counts ticks as nonce."""
    sim.market.apply(tape.tick(50_000.0))
    book = await client.fetch_order_book(SYMBOL)
    assert book["bids"] == [[50_000.0, 1_000_000.0]]
    assert book["asks"] == [[50_000.0, 1_000_000.0]]
    assert book["nonce"] == 2  # the fixture's tick and this one


async def test_fetch_funding_rate_is_the_rate_over_the_last_8_hours(client: Any) -> None:
    """ccxt asks for the funding accrued over 8 h; at 0.01 % per 8 h that is 0.0001."""
    funding = await client.fetch_funding_rate(SYMBOL)
    assert funding["fundingRate"] == pytest.approx(0.0001)
    assert funding["interval"] == "8h"


async def test_fetch_time_is_the_server_clock(client: Any) -> None:
    """public/get_time answers milliseconds of wall time."""
    before = int(time.time() * 1_000)
    assert before <= await client.fetch_time() <= int(time.time() * 1_000)


# ---- account and orders ---------------------------------------------------------------------


async def test_fetch_balance_of_a_new_account_is_the_initial_coin(client: Any) -> None:
    """A new account holds 1 BTC, all of it free."""
    balance = await client.fetch_balance()
    assert balance["BTC"]["total"] == pytest.approx(1.0)
    assert balance["BTC"]["free"] == pytest.approx(1.0)
    assert await client.fetch_positions() == []


async def test_market_buy_of_1000_usd_at_50000_holds_002_btc(client: Any) -> None:
    """A filled market buy: label round-trips, the position is 0.02 BTC, the fee is taken."""
    order = await client.create_order(SYMBOL, "market", "buy", 1_000, None, {"label": "scl-1"})
    assert order["info"]["label"] == "scl-1"
    assert order["id"] == "BTC-1"
    assert (order["status"], order["filled"], order["average"]) == ("closed", 1_000.0, START_MARK)
    (position,) = await client.fetch_positions()
    assert position["side"] == "long"
    assert position["contracts"] == 1_000.0  # deribit: USD, not contracts
    assert position["notional"] == pytest.approx(0.02)
    assert position["entryPrice"] == START_MARK
    balance = await client.fetch_balance()
    assert balance["BTC"]["total"] == pytest.approx(1.0 - 0.02 * 0.0005)


async def test_resting_order_is_listed_found_by_label_and_cancelled(client: Any) -> None:
    """A post-only bid below the book rests, is found by id and label, and cancels."""
    order = await client.create_order(
        SYMBOL, "limit", "buy", 100, 49_000, {"label": "scl-rest", "postOnly": True}
    )
    assert order["status"] == "open"
    (listed,) = await client.fetch_open_orders(SYMBOL)
    assert (listed["id"], listed["price"], listed["amount"]) == (order["id"], 49_000.0, 100.0)
    found = await client.privateGetGetOrderStateByLabel({"currency": "BTC", "label": "scl-rest"})
    assert [item["order_id"] for item in found["result"]] == [order["id"]]
    cancelled = await client.cancel_order(order["id"], SYMBOL)
    assert cancelled["status"] == "canceled"
    fetched = await client.fetch_order(order["id"], SYMBOL)
    assert (fetched["status"], fetched["info"]["label"]) == ("canceled", "scl-rest")
    assert await client.fetch_open_orders(SYMBOL) == []


async def test_resting_order_fills_when_the_market_comes_to_it(
    client: Any, pro: Any, sim: ExchangeSim, tape: Tape
) -> None:
    """A resting bid at 49,000 fills as maker on a tick at 49,000; watch_orders sees it."""
    await pro.load_markets()
    watching = asyncio.ensure_future(pro.watch_orders(SYMBOL))
    await eventually(lambda: any(s.channels for s in sim.hub.sessions.values()), WAIT_S)
    order = await client.create_order(SYMBOL, "limit", "buy", 100, 49_000, {"label": "dip"})
    first = await asyncio.wait_for(watching, WAIT_S)
    assert first[-1]["status"] == "open"
    fills = asyncio.ensure_future(pro.watch_my_trades(SYMBOL))
    await eventually(lambda: any(len(s.channels) == 2 for s in sim.hub.sessions.values()), WAIT_S)
    updates = asyncio.ensure_future(pro.watch_orders(SYMBOL))
    await asyncio.sleep(0)
    sim.market.apply(tape.tick(49_000.0))
    filled = await asyncio.wait_for(updates, WAIT_S)
    assert (filled[-1]["id"], filled[-1]["status"]) == (order["id"], "closed")
    (pushed,) = await asyncio.wait_for(fills, WAIT_S)
    assert (pushed["order"], pushed["amount"], pushed["price"]) == (order["id"], 100.0, 49_000.0)
    (trade,) = await client.fetch_my_trades(SYMBOL)
    assert (trade["order"], trade["amount"], trade["price"]) == (order["id"], 100.0, 49_000.0)
    assert trade["takerOrMaker"] == "maker"


async def test_duplicate_labels_make_two_orders(client: Any, sim: ExchangeSim) -> None:
    """Deribit allows a label twice, so a client that resends blind is caught in the act."""
    label = "twice: a/b+c d&e"  # signed and sent percent-encoded in the query
    first = await client.create_order(SYMBOL, "market", "buy", 100, None, {"label": label})
    second = await client.create_order(SYMBOL, "market", "buy", 100, None, {"label": label})
    assert first["id"] != second["id"]
    assert first["info"]["label"] == second["info"]["label"] == label
    found = await client.privateGetGetOrderStateByLabel({"currency": "BTC", "label": label})
    assert sorted(item["order_id"] for item in found["result"]) == sorted(
        [first["id"], second["id"]]
    )
    counts = (await state(sim))["counts"]
    assert counts["duplicate_labels"] == 1


async def test_fetch_my_trades_lists_each_fill_with_its_fee(client: Any) -> None:
    """fetch_my_trades (get_user_trades_by_instrument) returns the fill, fee in BTC."""
    order = await client.create_order(SYMBOL, "market", "sell", 2_000, None, {"label": "s"})
    (trade,) = await client.fetch_my_trades(SYMBOL)
    assert (trade["order"], trade["side"], trade["amount"]) == (order["id"], "sell", 2_000.0)
    assert trade["fee"]["currency"] == "BTC"
    assert trade["fee"]["cost"] == pytest.approx(2_000 / START_MARK * 0.0005)
    assert trade["cost"] == pytest.approx(0.04)


# ---- refusals map to the right ccxt exceptions ----------------------------------------------


async def test_venue_refusals_raise_the_matching_ccxt_exceptions(client: Any) -> None:
    """Each refusal's Deribit code is one ccxt's deribit handle_errors maps as intended."""
    with pytest.raises(ccxt.OrderNotFound):
        await client.cancel_order("BTC-999")
    with pytest.raises(ccxt.OrderNotFound):
        await client.fetch_order("BTC-999")
    filled = await client.create_order(SYMBOL, "market", "buy", 100)
    with pytest.raises(ccxt.OrderNotFound):  # 10010 already_closed
        await client.cancel_order(filled["id"])
    with pytest.raises(ccxt.InsufficientFunds):  # 200 BTC of notional on a 1 BTC wallet
        await client.create_order(SYMBOL, "market", "buy", 10_000_000)
    with pytest.raises(ccxt.InvalidOrder):  # post-only bid at the ask
        await client.create_order(SYMBOL, "limit", "buy", 100, START_MARK, {"postOnly": True})
    with pytest.raises(ccxt.BadRequest):  # 15 USD is not a whole number of 10 USD contracts
        await client.privateGetBuy(
            {"instrument_name": "BTC-PERPETUAL", "amount": 15, "type": "market"}
        )
    with pytest.raises(ccxt.NotSupported):
        await client.create_order(SYMBOL, "limit", "buy", 100, 40_000, {"timeInForce": "FOK"})


async def test_reduce_only_with_nothing_to_reduce_is_refused(client: Any) -> None:
    """A reduce-only sell on a flat account is refused (11030, ccxt ExchangeError)."""
    with pytest.raises(ccxt.ExchangeError) as caught:
        await client.create_order(SYMBOL, "market", "sell", 100, None, {"reduceOnly": True})
    assert "11030" in str(caught.value)


# ---- authentication -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "secret"), [(API_KEY, "wrong-secret-0123456789"), ("other", API_SECRET)]
)
async def test_rest_with_wrong_credentials_raises_authentication_error(
    sim: ExchangeSim, key: str, secret: str
) -> None:
    """A wrong key or a signature made with a wrong secret is 13004: AuthenticationError."""
    exchange = point(ccxt_async.deribit(options(secret, key)), sim)
    try:
        with pytest.raises(ccxt.AuthenticationError):
            await exchange.fetch_balance()
        with pytest.raises(ccxt.AuthenticationError):
            await exchange.create_order(SYMBOL, "market", "buy", 100)
    finally:
        await exchange.close()
    assert (await state(sim))["orders"] == []


async def _raw_get(sim: ExchangeSim, path: str, headers: dict[str, str]) -> dict[str, Any]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{sim.url}{path}", headers=headers) as reply,
    ):
        return dict(await reply.json())


async def test_private_rest_without_or_with_a_stale_signature_is_refused(sim: ExchangeSim) -> None:
    """No header: 13009; a correctly signed request two minutes old: 13004."""
    path = "/api/v2/private/get_positions"
    unsigned = await _raw_get(sim, path, {})
    assert unsigned["error"]["code"] == 13009
    signer = ccxt_async.deribit(options())
    signer.urls["api"] = {"rest": sim.url}
    stale_ms = int(time.time() * 1_000) - 120_000
    signer.milliseconds = lambda: stale_ms  # type: ignore[method-assign]
    request = signer.sign("get_positions", ["private"], "GET", {})
    await signer.close()
    stale = await _raw_get(sim, path, request["headers"])
    assert stale["error"]["code"] == 13004
    assert API_SECRET not in json.dumps(stale)


async def _ws_call(
    ws: aiohttp.ClientWebSocketResponse,
    request: dict[str, Any],
    pushes: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Send one request and return its answer; pushes received meanwhile go to ``pushes``."""
    await ws.send_json(request)
    while True:
        message = json.loads((await asyncio.wait_for(ws.receive(), WAIT_S)).data)
        if message.get("id") == request["id"]:
            return dict(message)
        if pushes is not None:
            pushes.append(message)


async def test_websocket_auth_checks_the_signature(sim: ExchangeSim) -> None:
    """public/auth with a bad signature is 13004; private/subscribe needs a good one first."""
    ws_client = ccxt_async.deribit(options())
    now_ms = int(time.time() * 1_000)
    nonce = str(now_ms)
    good = ws_client.hmac(f"{now_ms}\n{nonce}\n".encode(), API_SECRET.encode(), "sha256")
    await ws_client.close()
    grant = {
        "grant_type": "client_signature",
        "client_id": API_KEY,
        "timestamp": now_ms,
        "nonce": nonce,
        "data": "",
    }
    channel = {"channels": ["user.orders.any.any.raw"]}
    async with aiohttp.ClientSession() as session, session.ws_connect(sim.ws_url) as ws:
        early = await _ws_call(
            ws, {"jsonrpc": "2.0", "id": 1, "method": "private/subscribe", "params": channel}
        )
        assert early["error"]["code"] == 13009
        bad = await _ws_call(
            ws,
            {
                "jsonrpc": "2.0",
                "id": 2,
                "method": "public/auth",
                "params": grant | {"signature": "00" * 32},
            },
        )
        assert bad["error"]["code"] == 13004
        ok = await _ws_call(
            ws,
            {
                "jsonrpc": "2.0",
                "id": 3,
                "method": "public/auth",
                "params": grant | {"signature": good},
            },
        )
        assert ok["result"]["token_type"] == "bearer"
        subscribed = await _ws_call(
            ws, {"jsonrpc": "2.0", "id": 4, "method": "private/subscribe", "params": channel}
        )
        assert subscribed["result"] == ["user.orders.any.any.raw"]
        buy = {"instrument_name": "BTC-PERPETUAL", "amount": 100, "type": "market", "label": "ws"}
        pushes: list[dict[str, Any]] = []
        request = {"jsonrpc": "2.0", "id": 5, "method": "private/buy", "params": buy}
        placed = await _ws_call(ws, request, pushes)
        assert placed["result"]["order"]["order_state"] == "filled"
        (pushed,) = pushes  # the user.orders push goes out before the answer
        assert pushed["params"]["channel"] == "user.orders.any.any.raw"
        assert pushed["params"]["data"]["label"] == "ws"
    (request,) = (await state(sim))["requests"]
    assert (request["transport"], request["label"], request["outcome"]) == ("ws", "ws", "accepted")


async def test_ccxt_pro_with_a_wrong_secret_gets_the_error_but_raises_it_in_a_callback(
    sim: ExchangeSim,
) -> None:
    """ccxt.pro deribit raises ExchangeError (not AuthenticationError) for 13004 inside its
    message callback, so watch_orders never returns; the error reaches the loop's handler."""
    seen: list[BaseException] = []
    loop = asyncio.get_running_loop()
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: seen.append(context["exception"]))
    exchange = point(ccxt_pro.deribit(options("wrong-secret-0123456789")), sim)
    try:
        await exchange.load_markets()
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(exchange.watch_orders(SYMBOL), 1.0)
    finally:
        await exchange.close()
        loop.set_exception_handler(previous)
    assert [type(error) for error in seen] == [ccxt.ExchangeError]
    assert "13004" in str(seen[0])


# ---- faults ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "error"),
    [
        ("rate_limit", ccxt.DDoSProtection),
        ("unavailable", ccxt.ExchangeNotAvailable),
        ("server_error", ccxt.ExchangeError),
        ("timeout_unexecuted", ccxt.RequestTimeout),
    ],
)
async def test_each_injected_rest_error_raises_its_ccxt_exception(
    client: Any, sim: ExchangeSim, kind: str, error: type[Exception]
) -> None:
    """error_rate 1 with one kind allowed: every REST call fails with that kind's class."""
    await client.load_markets()
    await set_faults(sim, error_rate=1.0, error_kinds=[kind], timeout_s=1.0)
    client.timeout = 300
    with pytest.raises(error) as caught:
        await client.fetch_ticker(SYMBOL)
    if kind == "server_error":
        assert type(caught.value) is ccxt.ExchangeError  # not a retryable NetworkError


async def test_a_held_request_is_dropped_after_timeout_s(client: Any, sim: ExchangeSim) -> None:
    """A client that waits longer than timeout_s sees the connection drop: ExchangeNotAvailable
    (after aiohttp has resent the GET once, so twice timeout_s)."""
    await client.load_markets()
    await set_faults(sim, error_rate=1.0, error_kinds=["timeout_unexecuted"], timeout_s=0.3)
    started = time.monotonic()
    with pytest.raises(ccxt.ExchangeNotAvailable):
        await client.fetch_ticker(SYMBOL)
    assert 2 * 0.3 <= time.monotonic() - started < CLIENT_TIMEOUT_MS / 1_000


async def test_an_order_timed_out_before_execution_leaves_no_order(
    client: Any, sim: ExchangeSim
) -> None:
    """timeout_unexecuted on create_order: RequestTimeout and nothing at the venue."""
    await client.load_markets()
    await set_faults(sim, error_rate=1.0, error_kinds=["timeout_unexecuted"], timeout_s=1.0)
    client.timeout = 300
    with pytest.raises(ccxt.RequestTimeout):
        await client.create_order(SYMBOL, "market", "buy", 100, None, {"label": "lost"})
    body = await state(sim)
    assert body["orders"] == []
    assert [(r["label"], r["outcome"]) for r in body["requests"]] == [
        ("lost", "timeout_unexecuted")
    ]


async def test_an_order_executed_then_timed_out_exists_exactly_once(
    client: Any, sim: ExchangeSim
) -> None:
    """timeout_executed: the client sees RequestTimeout, the venue holds exactly one order."""
    await client.load_markets()
    await set_faults(sim, error_rate=1.0, error_kinds=["timeout_executed"], timeout_s=1.0)
    client.timeout = 300
    with pytest.raises(ccxt.RequestTimeout):
        await client.create_order(SYMBOL, "market", "buy", 100, None, {"label": "ghost"})
    await set_faults(sim, error_rate=0.0)
    found = await client.privateGetGetOrderStateByLabel({"currency": "BTC", "label": "ghost"})
    assert [item["order_state"] for item in found["result"]] == ["filled"]
    (request,) = (await state(sim))["requests"]
    assert (request["outcome"], request["response"]) == ("accepted", "dropped")
    assert (await client.fetch_positions())[0]["contracts"] == 100.0


async def test_aiohttp_resends_an_order_whose_connection_was_dropped(
    client: Any, sim: ExchangeSim
) -> None:
    """ccxt's deribit sends orders as GET, and aiohttp retries an idempotent request once when
    the server drops the connection: one create_order, two orders at the venue. This is the
    hazard the executed-then-dropped fault exists to expose; a client must turn that retry off."""
    await client.load_markets()
    await set_faults(sim, error_rate=1.0, error_kinds=["timeout_executed"], timeout_s=0.2)
    with pytest.raises(ccxt.ExchangeNotAvailable):
        await client.create_order(SYMBOL, "market", "buy", 100, None, {"label": "once"})
    requests = (await state(sim))["requests"]
    assert [(r["label"], r["outcome"], r["response"]) for r in requests] == [
        ("once", "accepted", "dropped"),
        ("once", "accepted", "dropped"),
    ]
    assert (await state(sim))["counts"]["duplicate_labels"] == 1


async def test_rejected_orders_alternate_insufficient_funds_and_invalid_order(
    client: Any, sim: ExchangeSim
) -> None:
    """reject_order_rate 1: 10009 (InsufficientFunds) then 10012 (InvalidOrder); no orders."""
    await set_faults(sim, reject_order_rate=1.0)
    with pytest.raises(ccxt.InsufficientFunds):
        await client.create_order(SYMBOL, "market", "buy", 100)
    with pytest.raises(ccxt.InvalidOrder):
        await client.create_order(SYMBOL, "market", "buy", 100)
    body = await state(sim)
    assert body["orders"] == []
    assert [r["error_code"] for r in body["requests"]] == [10009, 10012]
    assert {r["outcome"] for r in body["requests"]} == {"fault_rejected"}


async def test_latency_is_added_to_every_rest_answer(client: Any, sim: ExchangeSim) -> None:
    """latency_ms 200: a ticker takes at least 0.2 s."""
    await client.load_markets()
    await set_faults(sim, latency_ms=200)
    started = time.monotonic()
    await client.fetch_ticker(SYMBOL)
    assert time.monotonic() - started >= 0.2


async def test_faults_never_apply_to_the_admin_api(sim: ExchangeSim) -> None:
    """With every REST request failing and 1 s of latency, the admin API answers at once."""
    await set_faults(sim, error_rate=1.0, latency_ms=1_000)
    started = time.monotonic()
    for _ in range(5):
        await state(sim)
    assert time.monotonic() - started < 1.0


# ---- admin API ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer nope"},
        {"Authorization": API_SECRET},
        {"Authorization": f"Bearer {API_KEY}"},
    ],
)
async def test_admin_needs_the_secret_as_bearer_token(
    sim: ExchangeSim, headers: dict[str, str]
) -> None:
    """Every admin route but healthz answers 401 without ``Bearer <api_secret>``."""
    for method, path in [
        ("GET", "/admin/state"),
        ("GET", "/admin/faults"),
        ("POST", "/admin/faults"),
        ("POST", "/admin/ws/drop"),
        ("POST", "/admin/market"),
    ]:
        status, body = await admin(sim, method, path, {}, headers=headers)
        assert (status, body) == (401, {"error": "unauthorized"})
    assert await admin(sim, "GET", "/admin/healthz", headers={}) == (200, {"status": "ok"})


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"error_rate": 1.5}, "error_rate"),
        ({"latency_ms": -1}, "latency_ms"),
        ({"no_such_knob": 1}, "no_such_knob"),
        ({"error_kinds": ["meteor"]}, "error_kinds"),
        ({"error_kinds": []}, "error_kinds"),
        ({"paused": "yes"}, "paused"),
    ],
)
async def test_bad_fault_updates_are_400_and_change_nothing(
    sim: ExchangeSim, changes: dict[str, Any], field: str
) -> None:
    """An invalid update names the field and leaves every knob as it was."""
    before = await set_faults(sim, latency_ms=5)
    valid = {"stall_feed": True}  # sent along: all or nothing
    status, body = await admin(sim, "POST", "/admin/faults", valid | changes)
    assert status == 400
    assert field in body["error"]
    assert (await admin(sim, "GET", "/admin/faults"))[1] == before


async def test_fault_updates_are_partial(sim: ExchangeSim) -> None:
    """Updating one knob keeps the others."""
    await set_faults(sim, latency_ms=5, stall_feed=True)
    after = await set_faults(sim, error_rate=0.25)
    assert (after["latency_ms"], after["stall_feed"], after["error_rate"]) == (5, True, 0.25)


async def test_admin_state_reports_account_orders_and_the_request_log(
    client: Any, sim: ExchangeSim
) -> None:
    """After a market buy and a resting sell: account, orders, log with receive times."""
    before_ns = time.time_ns()
    await client.create_order(SYMBOL, "market", "buy", 1_000, None, {"label": "a"})
    rest = await client.create_order(SYMBOL, "limit", "sell", 500, 52_000, {"label": "b"})
    body = await state(sim)
    account = body["account"]
    assert account["position_usd"] == 1_000.0
    assert account["entry_price"] == START_MARK
    assert account["wallet_balance_coin"] == pytest.approx(1.0 - 0.00001)
    assert account["unrealised_pnl_coin"] == pytest.approx(0.0)
    assert [o["order_id"] for o in body["open_orders"]] == [rest["id"]]
    assert [
        (o["label"], o["status"], o["amount_usd"], o["filled_usd"]) for o in body["orders"]
    ] == [
        ("a", "filled", 1_000.0, 1_000.0),
        ("b", "open", 500.0, 0.0),
    ]
    requests = body["requests"]
    assert [(r["seq"], r["side"], r["label"], r["amount"], r["outcome"]) for r in requests] == [
        (1, "buy", "a", 1_000.0, "accepted"),
        (2, "sell", "b", 500.0, "accepted"),
    ]
    assert all(before_ns <= r["ts_recv_ns"] <= time.time_ns() for r in requests)
    assert body["counts"]["orders"] == 2
    since = (await admin(sim, "GET", "/admin/state?requests_since=1"))[1]["requests"]
    assert [r["seq"] for r in since] == [2]


async def test_admin_market_pushes_a_tick_at_the_given_mark(client: Any, sim: ExchangeSim) -> None:
    """POST /admin/market moves the mark at once (REST ticker) and advances the change id."""
    status, body = await admin(
        sim,
        "POST",
        "/admin/market",
        {"mark_price": 51_000, "best_bid": 50_999.5, "best_ask": 51_000.5},
    )
    assert status == 200, body
    ticker = await client.fetch_ticker(SYMBOL)
    assert (ticker["markPrice"], ticker["bid"], ticker["ask"]) == (51_000.0, 50_999.5, 51_000.5)
    assert body["change_id"] == 2
    bad = await admin(sim, "POST", "/admin/market", {"mark_price": -1})
    assert bad[0] == 400
    assert "mark_price" in bad[1]["error"]


# ---- websocket ------------------------------------------------------------------------------


async def test_watch_ticker_and_order_book_receive_pushes(
    pro: Any, sim: ExchangeSim, tape: Tape
) -> None:
    """ccxt.pro gets the current ticker and book at once, then every tick's push."""
    first = await asyncio.wait_for(pro.watch_ticker(SYMBOL), WAIT_S)
    assert first["markPrice"] == START_MARK
    book = await asyncio.wait_for(pro.watch_order_book(SYMBOL), WAIT_S)
    assert book["bids"][0][0] == START_MARK
    watching = asyncio.gather(pro.watch_ticker(SYMBOL), pro.watch_order_book(SYMBOL))
    await asyncio.sleep(0)
    sim.market.apply(tape.tick(50_010.0))
    ticker, book = await asyncio.wait_for(watching, WAIT_S)
    assert ticker["markPrice"] == 50_010.0
    assert (book["bids"][0][0], book["asks"][0][0], len(book["bids"])) == (50_010.0, 50_010.0, 1)


async def test_book_channel_sends_a_snapshot_then_chained_changes(
    sim: ExchangeSim, tape: Tape
) -> None:
    """Deribit's book format: snapshot, then changes whose prev_change_id chains the ids."""
    subscribe = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "public/subscribe",
        "params": {"channels": ["book.BTC-PERPETUAL.100ms", "nonsense.channel"]},
    }
    async with aiohttp.ClientSession() as session, session.ws_connect(sim.ws_url) as ws:
        answer = await _ws_call(ws, subscribe)
        assert answer["result"] == ["book.BTC-PERPETUAL.100ms"]
        snap = json.loads((await asyncio.wait_for(ws.receive(), WAIT_S)).data)["params"]["data"]
        assert snap["type"] == "snapshot"
        assert snap["bids"] == [["new", START_MARK, 1_000_000.0]]
        sim.market.apply(tape.tick(50_010.0))
        change = json.loads((await asyncio.wait_for(ws.receive(), WAIT_S)).data)["params"]["data"]
        assert change["type"] == "change"
        assert change["prev_change_id"] == snap["change_id"]
        assert change["change_id"] == snap["change_id"] + 1
        assert sorted(change["bids"]) == [
            ["delete", START_MARK, 0.0],
            ["new", 50_010.0, 1_000_000.0],
        ]


async def test_heartbeat_sends_test_requests(sim: ExchangeSim) -> None:
    """public/set_heartbeat makes the server send heartbeat test_request messages."""
    async with aiohttp.ClientSession() as session, session.ws_connect(sim.ws_url) as ws:
        answer = await _ws_call(
            ws,
            {
                "jsonrpc": "2.0",
                "id": 1,
                "method": "public/set_heartbeat",
                "params": {"interval": 1},
            },
        )
        assert answer["result"] == "ok"
        beat = json.loads((await asyncio.wait_for(ws.receive(), WAIT_S)).data)
        assert beat == {"jsonrpc": "2.0", "method": "heartbeat", "params": {"type": "test_request"}}
        test = await _ws_call(
            ws, {"jsonrpc": "2.0", "id": 2, "method": "public/test", "params": {}}
        )
        assert "version" in test["result"]


async def test_websocket_answers_malformed_requests_and_unsubscribes(sim: ExchangeSim) -> None:
    """Not JSON: -32700; not a request object: 11050; unknown method: -32601; unsubscribe
    answers the channels it dropped."""
    channels = {"channels": ["ticker.BTC-PERPETUAL.raw"]}
    async with aiohttp.ClientSession() as session, session.ws_connect(sim.ws_url) as ws:
        await ws.send_str("{not json")
        parse = json.loads((await asyncio.wait_for(ws.receive(), WAIT_S)).data)
        assert parse["error"]["code"] == -32700
        await ws.send_str("[1, 2]")
        shape = json.loads((await asyncio.wait_for(ws.receive(), WAIT_S)).data)
        assert shape["error"]["code"] == 11050
        unknown = await _ws_call(ws, {"jsonrpc": "2.0", "id": 1, "method": "public/nope"})
        assert unknown["error"]["code"] == -32601
        sub = {"jsonrpc": "2.0", "id": 2, "method": "public/subscribe", "params": channels}
        assert (await _ws_call(ws, sub))["result"] == ["ticker.BTC-PERPETUAL.raw"]
        unsub = {"jsonrpc": "2.0", "id": 3, "method": "public/unsubscribe", "params": channels}
        assert (await _ws_call(ws, unsub))["result"] == ["ticker.BTC-PERPETUAL.raw"]
        (session_state,) = sim.hub.sessions.values()
        assert session_state.channels == {}


async def test_dropped_websocket_raises_network_error_then_reconnects(
    pro: Any, sim: ExchangeSim, tape: Tape
) -> None:
    """POST /admin/ws/drop: the pending watch fails with NetworkError; the next one reconnects."""
    await asyncio.wait_for(pro.watch_ticker(SYMBOL), WAIT_S)
    pending = asyncio.ensure_future(pro.watch_ticker(SYMBOL))
    await asyncio.sleep(0)
    status, body = await admin(sim, "POST", "/admin/ws/drop")
    assert (status, body) == (200, {"dropped": 1})
    with pytest.raises(ccxt.NetworkError):
        await asyncio.wait_for(pending, WAIT_S)
    again = await asyncio.wait_for(pro.watch_ticker(SYMBOL), WAIT_S)
    assert again["markPrice"] == START_MARK
    await eventually(lambda: len(sim.hub.sessions) == 1, WAIT_S, "one open websocket")


async def test_websockets_are_dropped_drop_ws_after_s_after_opening(
    pro: Any, sim: ExchangeSim
) -> None:
    """drop_ws_after_s 0.3: a connection lives about 0.3 s."""
    await set_faults(sim, drop_ws_after_s=0.3)
    await asyncio.wait_for(pro.watch_ticker(SYMBOL), WAIT_S)
    opened = time.monotonic()
    with pytest.raises(ccxt.NetworkError):
        await asyncio.wait_for(pro.watch_ticker(SYMBOL), WAIT_S)
    assert time.monotonic() - opened < 1.0


async def test_stalled_feed_freezes_the_market_until_resumed(
    client: Any, sim: ExchangeSim, tape: Tape, tmp_path: Path
) -> None:
    """stall_feed: feed ticks are held, REST keeps the last ticker; resuming lets ticks in."""
    feed = PushFeed()
    stalled = new_sim(
        SimStore(tmp_path / "stalled.sqlite3"), feed=feed, faults=Faults(stall_feed=True)
    )
    await stalled.start()
    try:
        feed.push(tape.tick(50_000.0))
        await eventually(lambda: stalled.market.counters.held == 1, WAIT_S, "the tick to be held")
        assert stalled.venue.snapshots == {}
        await set_faults(stalled, stall_feed=False)
        feed.push(tape.tick(50_500.0))
        await eventually(lambda: stalled.market.counters.ticks == 1, WAIT_S, "the tick to pass")
        point(client, stalled)
        assert (await client.fetch_ticker(SYMBOL))["markPrice"] == 50_500.0
        await set_faults(stalled, stall_feed=True)
        feed.push(tape.tick(51_000.0))
        await eventually(lambda: stalled.market.counters.held == 2, WAIT_S, "the tick to be held")
        assert (await client.fetch_ticker(SYMBOL))["markPrice"] == 50_500.0
    finally:
        await stalled.stop()


async def test_order_log_records_the_last_ticker_push_before_each_order(
    client: Any, pro: Any, sim: ExchangeSim, tape: Tape
) -> None:
    """The log's ts_last_ticker_push_ns is the push the order followed."""
    await asyncio.wait_for(pro.watch_ticker(SYMBOL), WAIT_S)
    pushed_ns = sim.hub.ts_last_ticker_push_ns
    assert pushed_ns is not None
    await client.create_order(SYMBOL, "market", "buy", 100)
    (request,) = (await state(sim))["requests"]
    assert request["ts_last_ticker_push_ns"] == pushed_ns < request["ts_recv_ns"]


# ---- durability -----------------------------------------------------------------------------


async def test_a_restarted_sim_resumes_account_orders_ids_and_log(
    tmp_path: Path, tape: Tape
) -> None:
    """Stop, rebuild from the state file: same position, open order, labels, id counter, log."""
    path = tmp_path / "durable.sqlite3"
    first = new_sim(SimStore(path))
    await first.start()
    first.market.apply(tape.tick(START_MARK))
    exchange = point(ccxt_async.deribit(options()), first)
    try:
        await exchange.create_order(SYMBOL, "market", "buy", 1_000, None, {"label": "kept"})
        resting = await exchange.create_order(
            SYMBOL, "limit", "buy", 100, 45_000, {"label": "resting"}
        )
    finally:
        await exchange.close()
    await first.stop()

    store = SimStore(path)
    saved_exchange, saved_meta = store.load()
    assert saved_exchange is not None
    second = new_sim(store, PaperExchange.from_dict(saved_exchange), meta=saved_meta)
    await second.start()
    second.market.apply(tape.tick(START_MARK))
    exchange = point(ccxt_async.deribit(options()), second)
    try:
        (position,) = await exchange.fetch_positions()
        assert (position["contracts"], position["entryPrice"]) == (1_000.0, START_MARK)
        assert [o["id"] for o in await exchange.fetch_open_orders(SYMBOL)] == [resting["id"]]
        found = await exchange.privateGetGetOrderStateByLabel({"currency": "BTC", "label": "kept"})
        assert [item["order_id"] for item in found["result"]] == ["BTC-1"]
        third = await exchange.create_order(SYMBOL, "market", "sell", 100)
        assert third["id"] == "BTC-3"
        assert len(await exchange.fetch_my_trades(SYMBOL)) == 2
    finally:
        await exchange.close()
    assert [r["label"] for r in (await state(second))["requests"]] == ["kept", "resting", None]
    await second.stop()
