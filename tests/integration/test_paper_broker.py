"""Integration tests: the paper exchange used through the async Broker port, as the engine will."""

from __future__ import annotations

import json

import pytest

from scaler.adapters.paper import PaperExchange, PaperInstrument
from scaler.domain.orders import OrderRequest, OrderSide, OrderStatus, OrderType
from scaler.domain.types import NS_PER_S, InstrumentKey, MarketSnapshot
from scaler.errors import RejectedError
from scaler.ports import Broker

pytestmark = pytest.mark.integration

KEY = InstrumentKey("paper", "BTC-PERPETUAL")
T0_NS = 1_700_006_400 * NS_PER_S  # 2023-11-15 00:00:00 UTC


def _snapshot(ts_ns: int, mark: float) -> MarketSnapshot:
    # A Deribit-like book: 10 USD lots, 0.5 tick, two levels of 1,000 USD a side.
    bids = ((mark - 0.5, 1_000.0), (mark - 1.0, 1_000.0))
    asks = ((mark + 0.5, 1_000.0), (mark + 1.0, 1_000.0))
    return MarketSnapshot(
        KEY, ts_ns, ts_ns, mark, mark, mark - 0.5, mark + 0.5, 0.0001, 28_800.0, T0_NS,
        bids=bids, asks=asks,
    )  # fmt: skip


def _request(cid: str, side: OrderSide, amount_usd: float, limit: float | None) -> OrderRequest:
    order_type = OrderType.MARKET if limit is None else OrderType.LIMIT
    return OrderRequest(KEY, cid, side, amount_usd, order_type, limit, False, False, 0)


def _broker() -> tuple[PaperExchange, Broker]:
    exchange = PaperExchange(PaperInstrument(KEY, lot_size_usd=10), initial_balance_coin=0.1)
    return exchange, exchange


async def test_broker_round_trip_place_fetch_cancel_account() -> None:
    """Place, look up, list, cancel and read the account through the Broker protocol."""
    exchange, broker = _broker()
    exchange.on_market(_snapshot(T0_NS, 37_000.0))

    taken = await broker.place_order(_request("s-1", OrderSide.BUY, 1_500, None))
    # 1,000 at 37,000.5 and 500 at 37,001 as taker.
    assert (taken.status, taken.filled_usd) == (OrderStatus.FILLED, 1_500.0)
    resting = await broker.place_order(_request("s-2", OrderSide.BUY, 500, 36_000.0))
    assert resting.status is OrderStatus.OPEN
    assert await broker.open_orders(KEY) == [resting]
    assert await broker.fetch_order(KEY, "s-2") == resting
    assert await broker.fetch_order(KEY, "never-sent") is None

    cancelled = await broker.cancel_order(KEY, "s-2")
    assert cancelled.status is OrderStatus.CANCELLED
    assert await broker.open_orders(KEY) == []

    account = await broker.account(KEY)
    assert account.position_usd == 1_500.0
    assert account.ts_ns == T0_NS
    assert account.liquidation_price is not None
    assert account.liquidation_price < 37_000.0
    fills = await broker.fills_since(KEY, T0_NS)
    assert sum(f.size_usd for f in fills) == 1_500.0


async def test_outcome_unknown_is_resolved_by_client_id_lookup_without_duplicates() -> None:
    """After a lost reply the engine looks the id up; a blind resend is refused, not doubled."""
    exchange, broker = _broker()
    exchange.on_market(_snapshot(T0_NS, 37_000.0))
    request = _request("s-7", OrderSide.SELL, 200, None)
    await broker.place_order(request)  # the reply is "lost"

    found = await broker.fetch_order(KEY, "s-7")
    assert found is not None
    assert found.filled_usd == 200.0
    with pytest.raises(RejectedError, match="duplicate"):
        await broker.place_order(request)
    assert (await broker.account(KEY)).position_usd == -200.0


async def test_paper_state_survives_a_restart_through_json() -> None:
    """The state saved as JSON rebuilds an exchange that answers the Broker calls identically."""
    exchange, _ = _broker()
    exchange.on_market(_snapshot(T0_NS, 37_000.0))
    await exchange.place_order(_request("s-1", OrderSide.BUY, 700, None))
    await exchange.place_order(_request("s-2", OrderSide.SELL, 300, 38_000.0))
    saved = json.dumps(exchange.to_dict())

    restarted: Broker = PaperExchange.from_dict(json.loads(saved))
    assert await restarted.account(KEY) == await exchange.account(KEY)
    assert await restarted.open_orders(KEY) == await exchange.open_orders(KEY)
    assert await restarted.fills_since(KEY, 0) == await exchange.fills_since(KEY, 0)
