"""The venue contract: what every Broker must do, whatever carries it.

The same tests run over the paper exchange (in process), the ccxt adapter on bybit, okx,
binancecoinm and krakenfutures (unmodified ccxt classes answered from recorded venue payloads),
and the ccxt adapter on deribit against ``scaler exchange-sim`` over real HTTP. Amounts are USD
notionals on our side of the port whatever the venue's unit (Deribit USD, the others contracts
of 1 or 100 USD).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from scaler.domain.orders import OrderRequest, OrderSide, OrderStatus, OrderType
from scaler.errors import OutcomeUnknownError, RejectedError
from tests.contract.harnesses import Harness, PaperHarness, RecordedHarness, SimHarness

pytestmark = pytest.mark.integration

PRICE = 60_000.0
RECORDED = ("bybit", "okx", "binancecoinm", "krakenfutures")
ALL = ("paper", "deribit-sim", *RECORDED)


async def _open(name: str, tmp_path: Path) -> Harness:
    if name == "paper":
        harness: Harness = PaperHarness()
    elif name == "deribit-sim":
        harness = await SimHarness(tmp_path / "exchange-sim.sqlite3").start()
    else:
        harness = await RecordedHarness(name).start()
    await harness.set_price(PRICE)
    return harness


@pytest.fixture(params=ALL)
async def venue(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Harness]:
    harness = await _open(request.param, tmp_path)
    try:
        yield harness
    finally:
        await harness.close()


@pytest.fixture(params=RECORDED)
async def network_venue(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Harness]:
    harness = await _open(request.param, tmp_path)
    try:
        yield harness
    finally:
        await harness.close()


def order(
    harness: Harness,
    cid: str,
    side: OrderSide,
    lots: int,
    price: float | None,
    *,
    reduce_only: bool = False,
    post_only: bool = False,
) -> OrderRequest:
    kind = OrderType.MARKET if price is None else OrderType.LIMIT
    return OrderRequest(
        harness.key, cid, side, lots * harness.lot_usd, kind, price, reduce_only, post_only, 0
    )


async def test_a_marketable_order_becomes_the_position(venue: Harness) -> None:
    placed = await venue.broker.place_order(
        order(venue, "scl-000000000001", OrderSide.BUY, 3, None)
    )
    assert placed.client_order_id == "scl-000000000001"
    assert placed.amount_usd == pytest.approx(3 * venue.lot_usd)
    assert placed.side is OrderSide.BUY
    account = await venue.broker.account(venue.key)
    assert account.position_usd == pytest.approx(3 * venue.lot_usd)
    assert account.entry_price == pytest.approx(PRICE, rel=1e-3)
    assert account.wallet_balance_coin > 0


async def test_a_resting_order_is_listed_found_and_cancelled(venue: Harness) -> None:
    cid = "scl-000000000002"
    placed = await venue.broker.place_order(
        order(venue, cid, OrderSide.BUY, 2, PRICE * 0.9, post_only=True)
    )
    assert placed.status is OrderStatus.OPEN
    assert placed.filled_usd == 0
    listed = await venue.broker.open_orders(venue.key)
    assert [o.client_order_id for o in listed] == [cid]
    assert listed[0].amount_usd == pytest.approx(2 * venue.lot_usd)
    found = await venue.broker.fetch_order(venue.key, cid)
    assert found is not None
    assert found.status is OrderStatus.OPEN
    cancelled = await venue.broker.cancel_order(venue.key, cid)
    assert cancelled.status is OrderStatus.CANCELLED
    assert cancelled.client_order_id == cid
    assert await venue.broker.open_orders(venue.key) == []
    assert (await venue.broker.account(venue.key)).position_usd == 0


async def test_an_unknown_client_id_is_not_found(venue: Harness) -> None:
    assert await venue.broker.fetch_order(venue.key, "scl-000000000999") is None
    with pytest.raises(RejectedError):
        await venue.broker.cancel_order(venue.key, "scl-000000000999")


async def test_reduce_only_reduces(venue: Harness) -> None:
    await venue.broker.place_order(order(venue, "scl-000000000003", OrderSide.BUY, 4, None))
    await venue.broker.place_order(
        order(venue, "scl-000000000004", OrderSide.SELL, 1, None, reduce_only=True)
    )
    account = await venue.broker.account(venue.key)
    assert account.position_usd == pytest.approx(3 * venue.lot_usd)


async def test_an_order_beyond_the_margin_is_refused(venue: Harness) -> None:
    # 100 BTC of notional against a wallet of at most 0.5 BTC: refused on every venue.
    lots = int(100 * PRICE / venue.lot_usd)
    with pytest.raises(RejectedError):
        await venue.broker.place_order(order(venue, "scl-000000000005", OrderSide.BUY, lots, None))
    assert (await venue.broker.account(venue.key)).position_usd == 0


async def test_an_amount_off_the_venue_lot_is_refused_before_sending(venue: Harness) -> None:
    before = venue.order_requests()
    odd = order(venue, "scl-000000000006", OrderSide.BUY, 1, None)
    odd = OrderRequest(
        odd.key, odd.client_order_id, odd.side, venue.lot_usd * 1.5, odd.order_type,
        None, False, False, 0,
    )  # fmt: skip
    with pytest.raises(RejectedError):
        await venue.broker.place_order(odd)
    assert venue.order_requests() - before <= (1 if venue.name == "paper" else 0)


async def test_a_timed_out_order_is_outcome_unknown_and_never_resent(
    network_venue: Harness,
) -> None:
    before = network_venue.order_requests()
    network_venue.fail_next("timeout")
    with pytest.raises(OutcomeUnknownError):
        await network_venue.broker.place_order(
            order(network_venue, "scl-000000000007", OrderSide.BUY, 1, None)
        )
    assert network_venue.order_requests() - before <= 1


async def test_a_rate_limited_read_is_retried(network_venue: Harness) -> None:
    network_venue.fail_next("rate_limit")
    account = await network_venue.broker.account(network_venue.key)
    assert account.position_usd == 0


async def test_the_venue_lot_is_read_from_its_markets(venue: Harness) -> None:
    if venue.name == "paper":
        return  # the paper exchange's lot is configured, not published
    # Published: Deribit 10 USD, Bybit and Kraken 1 USD, OKX and Binance COIN-M 100 USD.
    assert await venue.broker.lot_size_usd(venue.key) == venue.lot_usd
    schedule = await venue.broker.margin_schedule(venue.key)
    requirement = schedule.requirement(10 * venue.lot_usd, PRICE)
    assert 0.0 < requirement.mmr < 0.05
