"""Unmodified ccxt venue classes against recorded raw payloads (no network).

Each venue's ``ccxt.async_support`` class runs with dummy credentials, on its testnet or demo
URLs, with ``exchange.fetch`` replaced by :class:`tests.venues.recorded.RecordedVenue`. The
assertions pin what ccxt 4.5.90 really does with each venue's documented payloads: market
parsing, where mark/index/funding come from, which request fields carry the client order id,
reduce-only and post-only, how positions and balances read in inverse units, and which ccxt
exception each venue error payload becomes. Expected numbers are derived by hand in each test.
"""

from __future__ import annotations

import base64
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import ccxt.async_support as ccxt
import pytest

from tests.venues.recorded import FAILURE_KINDS, VENUES, RecordedVenue

pytestmark = pytest.mark.integration

SYMBOL = "BTC/USD:BTC"
SECRET_B64 = base64.b64encode(b"recorded-venue-dummy-secret").decode()  # kraken decodes it


@dataclass(frozen=True)
class VenueSpec:
    """What ccxt 4.5.90 does on one venue, as the tests below pin it."""

    market_id: str
    contract_size_usd: float
    host: str
    create_route: str
    amount_field: str
    client_id_field: str
    post_only_sent: tuple[str, object]
    reduce_only_sent: tuple[str, object]
    taker_fee: float
    first_tier_mmr: float
    balance_params: dict[str, str] = field(default_factory=dict)
    balance_total_includes_upnl: bool = True
    fetch_order_params: dict[str, object] = field(default_factory=dict)
    errors: dict[str, type[Exception]] = field(default_factory=dict)


COMMON_ERRORS: dict[str, type[Exception]] = {
    "order_not_found": ccxt.OrderNotFound,
    "insufficient_funds": ccxt.InsufficientFunds,
    "auth": ccxt.AuthenticationError,
    "bad_gateway": ccxt.ExchangeNotAvailable,
    "timeout": ccxt.RequestTimeout,
}

SPECS: dict[str, VenueSpec] = {
    "bybit": VenueSpec(
        market_id="BTCUSD",
        contract_size_usd=1.0,
        host="api-testnet.bybit.com",
        create_route="POST https://api-testnet.bybit.com/v5/order/create",
        amount_field="qty",
        client_id_field="orderLinkId",
        post_only_sent=("timeInForce", "PostOnly"),
        reduce_only_sent=("reduceOnly", True),
        taker_fee=0.00055,
        first_tier_mmr=0.005,
        balance_total_includes_upnl=False,  # total = walletBalance
        fetch_order_params={"acknowledged": True},  # UTA fetch_order refuses without it
        errors={
            **COMMON_ERRORS,
            "rate_limit": ccxt.RateLimitExceeded,  # retCode 10006
            "server_error": ccxt.ExchangeError,  # retCode 10016: not a NetworkError
        },
    ),
    "okx": VenueSpec(
        market_id="BTC-USD-SWAP",
        contract_size_usd=100.0,
        host="www.okx.com",
        create_route="POST https://www.okx.com/api/v5/trade/batch-orders",
        amount_field="sz",
        client_id_field="clOrdId",
        post_only_sent=("ordType", "post_only"),
        reduce_only_sent=("reduceOnly", True),
        taker_fee=0.0005,
        first_tier_mmr=0.004,
        errors={
            **COMMON_ERRORS,
            "rate_limit": ccxt.RateLimitExceeded,  # code 50011 beats okx httpExceptions 429
            "server_error": ccxt.OnMaintenance,  # 50001
        },
    ),
    "binancecoinm": VenueSpec(
        market_id="BTCUSD_PERP",
        contract_size_usd=100.0,
        host="demo-dapi.binance.com",
        create_route="POST https://demo-dapi.binance.com/dapi/v1/order",
        amount_field="quantity",
        client_id_field="newClientOrderId",
        post_only_sent=("timeInForce", "GTX"),
        reduce_only_sent=("reduceOnly", "true"),
        taker_fee=0.0005,
        first_tier_mmr=0.004,
        errors={
            **COMMON_ERRORS,
            "rate_limit": ccxt.DDoSProtection,  # any HTTP 429/418 before the code table
            "server_error": ccxt.OperationFailed,  # -1001: base of NetworkError, not ExchangeError
        },
    ),
    "krakenfutures": VenueSpec(
        market_id="PI_XBTUSD",
        contract_size_usd=1.0,
        host="demo-futures.kraken.com",
        create_route="POST https://demo-futures.kraken.com/derivatives/api/v3/sendorder",
        amount_field="size",
        client_id_field="cliOrdId",
        post_only_sent=("orderType", "post"),
        reduce_only_sent=("reduceOnly", "true"),
        taker_fee=0.0005,
        first_tier_mmr=0.01,
        balance_params={"type": "fi_xbtusd"},  # the inverse margin account, see the kraken test
        errors={
            **COMMON_ERRORS,
            "rate_limit": ccxt.DDoSProtection,  # HTTP 429 checked before 'apiLimitExceeded'
            "server_error": ccxt.ExchangeNotAvailable,  # 'unavailable'
        },
    ),
}


def build(venue_id: str) -> tuple[Any, RecordedVenue]:
    """An unmodified ccxt instance on the venue's test environment, wired to recorded payloads."""
    config: dict[str, Any] = {
        "apiKey": "recorded-api-key",
        "secret": SECRET_B64,
        "password": "recorded-passphrase",
        "enableRateLimit": False,  # krakenfutures would otherwise wait 600 ms per call
    }
    if venue_id == "bybit":
        config["options"] = {"fetchMarkets": {"types": ["inverse"]}}
    if venue_id == "okx":
        config["options"] = {"fetchMarkets": {"types": ["swap"]}}
    exchange = getattr(ccxt, venue_id)(config)
    exchange.timeout_on_exit = 0  # close() sleeps 250 ms by default
    if venue_id == "bybit":
        exchange.has["fetchCurrencies"] = False  # else v5/asset/coin/query-info with keys
    if venue_id == "binancecoinm":
        exchange.enable_demo_trading(True)  # sandbox private calls raise NotSupported
    else:
        exchange.set_sandbox_mode(True)
    venue = RecordedVenue(venue_id)
    venue.install(exchange)
    return exchange, venue


@contextlib.asynccontextmanager
async def connected(
    venue_id: str, *, load: bool = True
) -> AsyncIterator[tuple[Any, RecordedVenue]]:
    exchange, venue = build(venue_id)
    try:
        if load:
            await exchange.load_markets()
        yield exchange, venue
    finally:
        await exchange.close()


@pytest.fixture(params=VENUES)
async def pair(request: pytest.FixtureRequest) -> AsyncIterator[tuple[Any, RecordedVenue]]:
    async with connected(request.param) as connection:
        yield connection


def sent_order(venue: RecordedVenue, route: str) -> dict[str, Any]:
    """The last order request's fields (okx posts a one-element list)."""
    params = venue.last_request(route).params
    sent: dict[str, Any] = params[0] if isinstance(params, list) else params
    return sent


def usd_value_btc(spec: VenueSpec, contracts: float, price: float) -> float:
    return contracts * spec.contract_size_usd / price


async def buy_at_60000(exchange: Any, venue: RecordedVenue, contracts: float = 100) -> Any:
    venue.set_mark(60_000)
    venue.set_fill_price(60_000)
    return await exchange.create_order(
        SYMBOL, "market", "buy", contracts, None, {"clientOrderId": "fill1"}
    )


# ----------------------------------------------------------------------------------------------
# markets


async def test_load_markets_gives_the_inverse_btc_perpetual(
    pair: tuple[Any, RecordedVenue],
) -> None:
    """load_markets parses BTC/USD:BTC as an inverse swap settled in BTC with the venue's size."""
    exchange, venue = pair
    spec = SPECS[venue.venue_id]
    market = exchange.market(SYMBOL)
    assert market["id"] == spec.market_id
    assert (market["type"], market["swap"], market["inverse"], market["linear"]) == (
        "swap",
        True,
        True,
        False,
    )
    assert (market["base"], market["quote"], market["settle"]) == ("BTC", "USD", "BTC")
    assert market["contractSize"] == spec.contract_size_usd
    assert market["precision"]["amount"] == 1.0  # whole contracts
    assert all(spec.host in request.url for request in venue.requests)


async def test_markets_load_offline_from_a_json_snapshot() -> None:
    """A fresh instance given a JSON snapshot of exchange.markets loads without any request."""
    for venue_id in VENUES:
        async with connected(venue_id) as (exchange, _):
            snapshot = json.loads(json.dumps(exchange.markets))
        fresh = getattr(ccxt, venue_id)({"markets": snapshot, "enableRateLimit": False})
        fresh.timeout_on_exit = 0
        venue = RecordedVenue(venue_id)
        venue.install(fresh)
        try:
            markets = await fresh.load_markets()
            assert venue.requests == []
            assert markets[SYMBOL]["contractSize"] == SPECS[venue_id].contract_size_usd
            assert fresh.amount_to_precision(SYMBOL, 25.7) == "25"
        finally:
            await fresh.close()


# ----------------------------------------------------------------------------------------------
# market data


async def test_order_book_follows_the_mark(pair: tuple[Any, RecordedVenue]) -> None:
    """The recorded book moves with set_mark; the touch is one tick apart around the mark."""
    exchange, venue = pair
    venue.set_mark(60_000)
    book = await exchange.fetch_order_book(SYMBOL)
    assert book["bids"][0][0] == float(venue.best_bid)
    assert book["asks"][0][0] == float(venue.best_ask)
    assert book["bids"][0][0] <= 60_000 < book["asks"][0][0]
    assert book["bids"][0][1] > 0


async def test_bybit_ticker_carries_mark_index_and_funding() -> None:
    """bybit: one tickers call gives mark, index, funding rate and next funding time (8 h)."""
    async with connected("bybit") as (exchange, venue):
        venue.set_mark(60_000)
        ticker = await exchange.fetch_ticker(SYMBOL)
        assert (ticker["markPrice"], ticker["indexPrice"]) == (60_000.0, float(venue.index))
        funding = await exchange.fetch_funding_rate(SYMBOL)
        assert funding["fundingRate"] == 0.0001
        assert funding["interval"] == "8h"  # from instruments-info fundingInterval 480 (minutes)
        assert funding["fundingTimestamp"] == 1_750_003_200_000  # 16:00 UTC, the next boundary
        assert funding["nextFundingTimestamp"] is None
        assert funding["markPrice"] == 60_000.0
        assert venue.last_request().path == "/v5/market/tickers"  # emulated from tickers


async def test_okx_mark_index_and_funding_need_three_calls() -> None:
    """okx: the ticker has no mark; mark-price, index-tickers and funding-rate are separate."""
    async with connected("okx") as (exchange, venue):
        venue.set_mark(60_000)
        ticker = await exchange.fetch_ticker(SYMBOL)
        assert (ticker["markPrice"], ticker["indexPrice"]) == (None, None)
        assert ticker["bid"] == float(venue.best_bid)
        mark = await exchange.fetch_mark_price(SYMBOL)
        assert (mark["markPrice"], mark["indexPrice"]) == (60_000.0, None)
        index = await exchange.publicGetMarketIndexTickers({"instId": "BTC-USD"})
        assert float(index["data"][0]["idxPx"]) == float(venue.index)
        funding = await exchange.fetch_funding_rate(SYMBOL)
        assert funding["fundingRate"] == 0.0001
        assert funding["interval"] == "8h"  # nextFundingTime - fundingTime
        assert funding["fundingTimestamp"] == 1_750_003_200_000
        assert funding["nextFundingTimestamp"] == 1_750_032_000_000
        assert funding["markPrice"] is None


async def test_binancecoinm_mark_index_and_funding_come_from_premium_index() -> None:
    """binancecoinm: the 24 h ticker has no mark, no bid/ask; premiumIndex has mark/index/rate."""
    async with connected("binancecoinm") as (exchange, venue):
        venue.set_mark(60_000)
        ticker = await exchange.fetch_ticker(SYMBOL)
        assert (ticker["markPrice"], ticker["bid"], ticker["ask"]) == (None, None, None)
        mark = await exchange.fetch_mark_price(SYMBOL)
        assert (mark["markPrice"], mark["indexPrice"]) == (60_000.0, float(venue.index))
        funding = await exchange.fetch_funding_rate(SYMBOL)
        assert (funding["fundingRate"], funding["markPrice"]) == (0.0001, 60_000.0)
        assert funding["fundingTimestamp"] == 1_750_003_200_000
        assert funding["interval"] is None  # premiumIndex carries no interval
        with pytest.raises(ccxt.NullResponse):  # fundingInfo lists only adjusted symbols
            await exchange.fetch_funding_interval(SYMBOL)


async def test_krakenfutures_funding_is_the_absolute_rate_divided_by_mark() -> None:
    """krakenfutures: tickers give mark/index; ccxt divides the absolute rate by mark (1 h)."""
    async with connected("krakenfutures") as (exchange, venue):
        venue.set_mark(60_000)
        venue.set_funding_rate("0.00001")  # relative, per hour
        ticker = await exchange.fetch_ticker(SYMBOL)
        assert (ticker["markPrice"], ticker["indexPrice"]) == (60_000.0, float(venue.index))
        funding = await exchange.fetch_funding_rate(SYMBOL)
        absolute = 0.00001 / 60_000  # BTC per 1-USD contract per hour, as Kraken reports it
        assert funding["info"]["fundingRate"] == pytest.approx(absolute)
        assert funding["fundingRate"] == pytest.approx(absolute / 60_000)  # not 0.00001
        assert funding["interval"] == "1h"
        assert funding["fundingTimestamp"] is None


# ----------------------------------------------------------------------------------------------
# orders


async def test_create_order_sends_the_venue_fields(pair: tuple[Any, RecordedVenue]) -> None:
    """clientOrderId, postOnly and reduceOnly map to the venue's own fields; amount is contracts."""
    exchange, venue = pair
    spec = SPECS[venue.venue_id]
    await buy_at_60000(exchange, venue)
    await exchange.create_order(
        SYMBOL, "limit", "buy", 10, 55_000, {"clientOrderId": "rest1", "postOnly": True}
    )
    resting = sent_order(venue, spec.create_route)
    assert resting[spec.client_id_field] == "rest1"
    assert resting[spec.post_only_sent[0]] == spec.post_only_sent[1]
    assert resting[spec.amount_field] == "10"
    await exchange.create_order(
        SYMBOL, "market", "sell", 40, None, {"clientOrderId": "close1", "reduceOnly": True}
    )
    closing = sent_order(venue, spec.create_route)
    assert closing[spec.client_id_field] == "close1"
    assert closing[spec.reduce_only_sent[0]] == spec.reduce_only_sent[1]
    assert closing[spec.amount_field] == "40"
    assert venue.position_contracts == 60


async def test_open_orders_fetch_and_cancel_reflect_state(pair: tuple[Any, RecordedVenue]) -> None:
    """A resting limit is open in fetch_open_orders/fetch_order; after cancel it is gone."""
    exchange, venue = pair
    spec = SPECS[venue.venue_id]
    venue.set_mark(60_000)
    created = await exchange.create_order(
        SYMBOL, "limit", "buy", 10, 55_000, {"clientOrderId": "rest2"}
    )
    open_orders = await exchange.fetch_open_orders(SYMBOL)
    assert [(o["id"], o["clientOrderId"], o["amount"], o["status"]) for o in open_orders] == [
        (created["id"], "rest2", 10.0, "open")
    ]
    fetched = await exchange.fetch_order(created["id"], SYMBOL, spec.fetch_order_params)
    assert (fetched["status"], fetched["side"], fetched["filled"]) == ("open", "buy", 0.0)
    await exchange.cancel_order(created["id"], SYMBOL)
    assert await exchange.fetch_open_orders(SYMBOL) == []
    assert venue.orders[created["id"]].status == "canceled"
    with pytest.raises(ccxt.OrderNotFound):
        await exchange.cancel_order(created["id"], SYMBOL)


async def test_orders_are_found_by_client_id() -> None:
    """Each venue's client-id lookup (bybit orderLinkId, okx clOrdId, binance
    origClientOrderId, kraken cliOrdIds) finds the order ccxt created."""
    lookups = {
        "bybit": (
            "fetch_open_orders",
            (SYMBOL, None, None, {"orderLinkId": "cid7"}),
            "orderLinkId",
        ),
        "okx": ("fetch_order", (None, SYMBOL, {"clientOrderId": "cid7"}), "clOrdId"),
        "binancecoinm": (
            "fetch_order",
            (None, SYMBOL, {"clientOrderId": "cid7"}),
            "origClientOrderId",
        ),
        "krakenfutures": ("fetch_orders", (None, None, None, {"cliOrdIds": "cid7"}), "cliOrdIds"),
    }
    for venue_id, (method, args, field_sent) in lookups.items():
        async with connected(venue_id) as (exchange, venue):
            venue.set_mark(60_000)
            created = await exchange.create_order(
                SYMBOL, "limit", "sell", 10, 65_000, {"clientOrderId": "cid7"}
            )
            found = await getattr(exchange, method)(*args)
            order = found[0] if isinstance(found, list) else found
            assert (order["id"], order["clientOrderId"]) == (created["id"], "cid7"), venue_id
            assert venue.last_request().params[field_sent] == "cid7", venue_id


async def test_a_resting_order_fills_as_maker_when_the_mark_moves_through_it(
    pair: tuple[Any, RecordedVenue],
) -> None:
    """set_mark through a resting buy fills it at its limit price; fetch_order shows closed."""
    exchange, venue = pair
    spec = SPECS[venue.venue_id]
    venue.set_mark(60_000)
    created = await exchange.create_order(
        SYMBOL, "limit", "buy", 10, 59_000, {"clientOrderId": "dip1"}
    )
    venue.set_mark(58_000)
    fetched = await exchange.fetch_order(created["id"], SYMBOL, spec.fetch_order_params)
    assert (fetched["status"], fetched["filled"]) == ("closed", 10.0)
    assert venue.fills[-1].maker
    assert venue.entry_price == Decimal(59_000)
    trades = await exchange.fetch_my_trades(SYMBOL)
    assert [(t["side"], t["price"], t["takerOrMaker"]) for t in trades] == [
        ("buy", 59_000.0, "maker")
    ]


async def test_bybit_create_order_returns_only_ids() -> None:
    """bybit answers order/create with orderId/orderLinkId only: status and fill are unknown."""
    async with connected("bybit") as (exchange, venue):
        order = await buy_at_60000(exchange, venue)
        assert (order["clientOrderId"], order["status"], order["filled"]) == ("fill1", None, None)
        with pytest.raises(ccxt.ArgumentsRequired):  # UTA: fetch_order needs acknowledged
            await exchange.fetch_order(order["id"], SYMBOL)


async def test_krakenfutures_market_fill_parses_as_open_with_nothing_filled() -> None:
    """krakenfutures: a filled PI_ market order parses open/0 (inverse trades lose 'amount');
    fetch_order sees it closed only within Kraken's 5 s orders/status window."""
    async with connected("krakenfutures") as (exchange, venue):
        order = await buy_at_60000(exchange, venue)
        assert (order["status"], order["filled"]) == ("open", 0.0)
        assert [t["amount"] for t in order["trades"]] == [None]
        assert venue.orders[order["id"]].status == "filled"
        fetched = await exchange.fetch_order(order["id"], SYMBOL)
        assert (fetched["status"], fetched["filled"]) == ("closed", 100.0)
        venue.advance(6)
        with pytest.raises(ccxt.OrderNotFound):
            await exchange.fetch_order(order["id"], SYMBOL)


# ----------------------------------------------------------------------------------------------
# positions and balance


async def test_position_after_a_fill_in_contracts(pair: tuple[Any, RecordedVenue]) -> None:
    """Buying 100 contracts at 60,000 gives a long of 100 at entry 60,000; uPnL follows mark.

    bybit/kraken: 100 x 1 USD = 100 USD = 0.0016667 BTC at 60,000.
    okx/binance: 100 x 100 USD = 10,000 USD = 0.16667 BTC at 60,000.
    uPnL at 66,000 = USD x (1/60,000 - 1/66,000) = USD / 660,000 BTC.
    """
    exchange, venue = pair
    spec = SPECS[venue.venue_id]
    await buy_at_60000(exchange, venue)
    venue.set_mark(66_000)
    positions = await exchange.fetch_positions([SYMBOL])
    assert len(positions) == 1
    position = positions[0]
    usd = 100 * spec.contract_size_usd
    assert (position["symbol"], position["side"]) == (SYMBOL, "long")
    assert (position["contracts"], position["contractSize"]) == (100.0, spec.contract_size_usd)
    assert position["entryPrice"] == 60_000.0
    assert position["unrealizedPnl"] == pytest.approx(usd / 660_000, abs=1e-8)
    if venue.venue_id == "krakenfutures":
        assert position["notional"] is None  # no mark in openpositions
    else:
        assert position["notional"] == pytest.approx(usd / 66_000, abs=1e-8)


async def test_a_short_position_reads_short(pair: tuple[Any, RecordedVenue]) -> None:
    """Selling 30 contracts from flat is a short of 30 (sign carried by side, not contracts)."""
    exchange, venue = pair
    venue.set_mark(60_000)
    venue.set_fill_price(60_000)
    await exchange.create_order(SYMBOL, "market", "sell", 30)
    (position,) = await exchange.fetch_positions([SYMBOL])
    assert (position["side"], position["contracts"], position["entryPrice"]) == (
        "short",
        30.0,
        60_000.0,
    )
    assert venue.position_contracts == -30


async def test_entry_is_the_harmonic_mean_of_fills() -> None:
    """Bybit's published example: 1,000 @ 5,000 + 2,000 @ 6,000 averages 5,625; at 5,500 the
    first 1,000 contracts alone would show 1,000 x (1/5,000 - 1/5,500) = 0.01818 BTC."""
    async with connected("bybit") as (exchange, venue):
        venue.set_mark(5_000)
        venue.set_fill_price(5_000)
        await exchange.create_order(SYMBOL, "market", "buy", 1_000)
        venue.set_mark(5_500)
        (position,) = await exchange.fetch_positions([SYMBOL])
        assert position["unrealizedPnl"] == pytest.approx(0.0181818, abs=1e-7)
        venue.set_fill_price(6_000)
        await exchange.create_order(SYMBOL, "market", "buy", 2_000)
        (position,) = await exchange.fetch_positions([SYMBOL])
        assert position["entryPrice"] == 5_625.0
        assert position["contracts"] == 3_000.0


async def test_balance_is_the_btc_wallet(pair: tuple[Any, RecordedVenue]) -> None:
    """The BTC balance is 0.5 at start, minus the taker fee after a fill; at a new mark okx,
    binance and kraken fold uPnL into total, bybit's total stays the wallet balance."""
    exchange, venue = pair
    spec = SPECS[venue.venue_id]
    start = await exchange.fetch_balance(spec.balance_params)
    assert start["BTC"]["total"] == 0.5
    await buy_at_60000(exchange, venue)
    fee = usd_value_btc(spec, 100, 60_000) * spec.taker_fee
    after_fill = await exchange.fetch_balance(spec.balance_params)
    assert after_fill["BTC"]["total"] == pytest.approx(0.5 - fee, abs=1e-8)
    assert after_fill["BTC"]["free"] < after_fill["BTC"]["total"]  # margin in use
    venue.set_mark(66_000)
    upnl = 100 * spec.contract_size_usd / 660_000
    marked = await exchange.fetch_balance(spec.balance_params)
    expected = 0.5 - fee + (upnl if spec.balance_total_includes_upnl else 0.0)
    assert marked["BTC"]["total"] == pytest.approx(expected, abs=1e-8)


async def test_krakenfutures_inverse_balance_needs_the_margin_account_name() -> None:
    """krakenfutures: the default 'flex' account has no BTC; params symbol builds 'fi_XBTUSD'
    (upper case) and fails; type 'fi_xbtusd' reads the inverse margin account."""
    async with connected("krakenfutures") as (exchange, _):
        assert "BTC" not in await exchange.fetch_balance()
        with pytest.raises(ccxt.BadRequest):
            await exchange.fetch_balance({"symbol": SYMBOL})
        balance = await exchange.fetch_balance({"type": "fi_xbtusd"})
        assert (balance["BTC"]["total"], balance["BTC"]["free"]) == (0.5, 0.5)


# ----------------------------------------------------------------------------------------------
# leverage tiers


async def test_leverage_tiers_parse_with_sensible_mmr(pair: tuple[Any, RecordedVenue]) -> None:
    """Tiers start at zero with the venue's base MMR, MMR rises and stays a fraction."""
    exchange, venue = pair
    tiers = await exchange.fetch_market_leverage_tiers(SYMBOL)
    assert len(tiers) >= 2
    assert tiers[0]["minNotional"] == 0
    assert tiers[0]["maintenanceMarginRate"] == SPECS[venue.venue_id].first_tier_mmr
    rates = [tier["maintenanceMarginRate"] for tier in tiers]
    assert rates == sorted(rates)
    assert all(0 < rate < 0.2 for rate in rates)
    assert all(tier["maxLeverage"] >= 2 for tier in tiers)


# ----------------------------------------------------------------------------------------------
# errors


ERROR_CASES = [
    (venue_id, kind)
    for venue_id in VENUES
    for kind in FAILURE_KINDS
    if kind in SPECS[venue_id].errors
]


async def _call_for(kind: str, exchange: Any, venue_id: str) -> None:
    if kind == "insufficient_funds":
        await exchange.create_order(SYMBOL, "limit", "buy", 10, 55_000, {"clientOrderId": "e1"})
    elif kind == "order_not_found":
        await exchange.cancel_order("4242", SYMBOL)
    else:
        await exchange.fetch_balance(SPECS[venue_id].balance_params)


@pytest.mark.parametrize(("venue_id", "kind"), ERROR_CASES)
async def test_error_payloads_raise_what_ccxt_maps(venue_id: str, kind: str) -> None:
    """Each recorded error payload goes through the venue's ccxt error mapping."""
    expected = SPECS[venue_id].errors[kind]
    async with connected(venue_id) as (exchange, venue):
        venue.fail_next(kind)
        with pytest.raises(expected) as raised:
            await _call_for(kind, exchange, venue_id)
        assert type(raised.value) is expected


@pytest.mark.parametrize("venue_id", VENUES)
async def test_state_driven_errors(venue_id: str) -> None:
    """Without injection: an order beyond the wallet is InsufficientFunds, an unknown order id
    is OrderNotFound for cancel and fetch."""
    spec = SPECS[venue_id]
    async with connected(venue_id) as (exchange, venue):
        venue.set_mark(60_000)
        too_many = 0.5 * 60_000 * 20 / spec.contract_size_usd  # 20x the wallet at 10x leverage
        with pytest.raises(ccxt.InsufficientFunds):
            await exchange.create_order(SYMBOL, "market", "buy", too_many)
        assert venue.orders == {}
        with pytest.raises(ccxt.OrderNotFound):
            await exchange.cancel_order("4242", SYMBOL)
        with pytest.raises(ccxt.OrderNotFound):
            await exchange.fetch_order("4242", SYMBOL, spec.fetch_order_params)


async def test_fail_next_counts_and_filters_by_path() -> None:
    """fail_next(kind, n, path=...) fails only matching requests, n times, then recovers."""
    async with connected("okx") as (exchange, venue):
        venue.fail_next("server_error", 2, path="/market/ticker")
        await exchange.fetch_order_book(SYMBOL)  # not matching: served
        for _ in range(2):
            with pytest.raises(ccxt.OnMaintenance):
                await exchange.fetch_ticker(SYMBOL)
        assert (await exchange.fetch_ticker(SYMBOL))["symbol"] == SYMBOL


async def test_binance_auth_error_stays_authentication_after_a_successful_dapi_call() -> None:
    """binance maps -2015 to DDoSProtection once a 'private' (spot) call has succeeded; dapi
    calls do not set that flag, so coin-M keeps AuthenticationError."""
    async with connected("binancecoinm") as (exchange, venue):
        await exchange.fetch_balance()
        venue.fail_next("auth")
        with pytest.raises(ccxt.AuthenticationError):
            await exchange.fetch_balance()


async def test_binancecoinm_sandbox_blocks_private_calls_before_the_transport() -> None:
    """set_sandbox_mode(True) on binancecoinm raises NotSupported in sign(): no request leaves."""
    exchange = ccxt.binancecoinm({"apiKey": "k", "secret": "s", "enableRateLimit": False})
    exchange.timeout_on_exit = 0
    exchange.set_sandbox_mode(True)
    venue = RecordedVenue("binancecoinm")
    venue.install(exchange)
    try:
        with pytest.raises(ccxt.NotSupported):
            await exchange.dapiPrivateGetAccount()
        assert venue.requests == []
    finally:
        await exchange.close()
