"""Unit tests for the paper exchange: fills, fees, funding, liquidation, order rules, state."""

from __future__ import annotations

import json

import pytest

from scaler.adapters.paper import PaperExchange, PaperInstrument
from scaler.domain.inverse import TierTable
from scaler.domain.orders import (
    Liquidity,
    OrderRequest,
    OrderSide,
    OrderStatus,
    OrderType,
)
from scaler.domain.types import NS_PER_HOUR, NS_PER_S, InstrumentKey, MarketSnapshot
from scaler.errors import BadInputError, RejectedError

pytestmark = pytest.mark.unit

KEY = InstrumentKey("paper", "BTC/USD:BTC")
BOUNDARY_NS = 1_700_006_400 * NS_PER_S  # 2023-11-15 00:00:00 UTC, a multiple of 8 h
T0_NS = BOUNDARY_NS - 4 * NS_PER_HOUR  # 2023-11-14 20:00 UTC, mid-interval
ONE_COIN_UNITS = 10**10

Levels = tuple[tuple[float, float], ...]


def snap(
    ts_ns: int,
    mark: float,
    *,
    bid: float | None = None,
    ask: float | None = None,
    rate: float = 0.0,
    interval_s: float = 28_800.0,
    bids: Levels = (),
    asks: Levels = (),
    key: InstrumentKey = KEY,
) -> MarketSnapshot:
    return MarketSnapshot(
        key=key,
        ts_event_ns=ts_ns,
        ts_recv_ns=ts_ns,
        mark_price=mark,
        index_price=mark,
        best_bid=bid if bid is not None else (bids[0][0] if bids else mark),
        best_ask=ask if ask is not None else (asks[0][0] if asks else mark),
        funding_rate=rate,
        funding_interval_s=interval_s,
        ts_funding_ns=BOUNDARY_NS,
        bids=bids,
        asks=asks,
    )


def req(
    cid: str,
    side: OrderSide,
    amount_usd: float,
    *,
    limit: float | None = None,
    post_only: bool = False,
    reduce_only: bool = False,
    key: InstrumentKey = KEY,
) -> OrderRequest:
    return OrderRequest(
        key=key,
        client_order_id=cid,
        side=side,
        amount_usd=amount_usd,
        order_type=OrderType.MARKET if limit is None else OrderType.LIMIT,
        limit_price=limit,
        reduce_only=reduce_only,
        post_only=post_only,
        ts_created_ns=0,
    )


def exchange(
    *,
    lot: int = 1,
    balance: float = 1.0,
    taker: float = 0.0,
    maker: float = 0.0,
    mmr: float | None = None,
    interval_s: int = 28_800,
) -> PaperExchange:
    instrument = PaperInstrument(
        KEY,
        lot_size_usd=lot,
        tick_size=0.5,
        funding_interval_s=interval_s,
        **({} if mmr is None else {"schedule": TierTable.flat(mmr)}),
    )
    return PaperExchange(
        instrument, initial_balance_coin=balance, taker_fee_rate=taker, maker_fee_rate=maker
    )


def assert_balanced(ex: PaperExchange) -> None:
    ledger = ex.ledger
    assert ledger.balance_units == (
        ledger.initial_units + ledger.realised_units - ledger.fees_units - ledger.funding_units
    )


# ---- PnL, fees, entry ----------------------------------------------------------------------


def test_kraken_long_5000_to_6000_realises_one_third_coin_minus_taker_fees() -> None:
    """Kraken: 10,000 USD long from 5,000 to 6,000 makes 0.3333 BTC; two 0.05 % taker fees go."""
    ex = exchange(taker=0.0005)
    ex.on_market(snap(T0_NS, 5_000.0, bid=4_999.5, ask=5_000.0))
    opened = ex.place(req("open", OrderSide.BUY, 10_000))
    ex.on_market(snap(T0_NS + NS_PER_S, 6_000.0, bid=6_000.0, ask=6_000.5))
    closed = ex.place(req("close", OrderSide.SELL, 10_000))

    assert opened.status is closed.status is OrderStatus.FILLED
    # Realised 10,000 × (1/5,000 − 1/6,000) = 0.333333333 BTC = 3,333,333,333 units.
    # Fees 10,000/5,000 × 0.05 % = 0.001 BTC = 10,000,000 units and
    #      10,000/6,000 × 0.05 % = 0.000833333 BTC = 8,333,333 units.
    assert ex.ledger.realised_units == 3_333_333_333
    assert ex.ledger.fees_units == 10_000_000 + 8_333_333
    assert ex.ledger.balance_units == ONE_COIN_UNITS + 3_333_333_333 - 18_333_333
    assert [f.fee_coin for f in ex.fills] == pytest.approx([0.001, 0.000833333333])
    assert ex.position(KEY).size_usd == 0
    assert_balanced(ex)


def test_two_buys_give_the_harmonic_bybit_entry_5625() -> None:
    """Bybit: 1,000 @ 5,000 then 2,000 @ 6,000 averages 3,000/(0.2 + 0.33333) = 5,625."""
    ex = exchange()
    ex.on_market(snap(T0_NS, 5_000.0, ask=5_000.0))
    ex.place(req("a", OrderSide.BUY, 1_000))
    ex.on_market(snap(T0_NS + NS_PER_S, 6_000.0, ask=6_000.0))
    ex.place(req("b", OrderSide.BUY, 2_000))

    account = ex.account_snapshot(KEY)
    assert account.position_usd == 3_000.0
    assert account.entry_price == pytest.approx(5_625.0, rel=1e-12)
    # uPnL at 6,000: 3,000 × (1/5,625 − 1/6,000) = 0.5333333 − 0.5 = 0.0333333 BTC.
    assert account.unrealised_pnl_coin == pytest.approx(0.0333333333333, rel=1e-9)
    assert account.ts_ns == T0_NS + NS_PER_S


def test_fill_ids_and_order_ids_are_deterministic() -> None:
    """Ids follow the order sequence and the fill count, so a replay reproduces them."""
    ex = exchange(lot=100)
    ex.on_market(snap(T0_NS, 10_000.0, asks=((10_000.0, 100.0), (10_000.5, 100.0))))
    update = ex.place(req("a", OrderSide.BUY, 200))
    assert update.venue_order_id == "paper-1"
    assert [f.fill_id for f in ex.fills] == ["paper-1-1", "paper-1-2"]


# ---- funding -------------------------------------------------------------------------------


def test_funding_is_settled_at_the_8h_boundary_only() -> None:
    """Bybit: 10,000 long at mark 16,000 and 0.01 % pays 0.0000625 BTC at 00:00 UTC, not between."""
    ex = exchange()
    ex.on_market(snap(BOUNDARY_NS - 60 * NS_PER_S, 16_000.0, rate=0.0001))
    ex.place(req("long", OrderSide.BUY, 10_000))
    ex.on_market(snap(BOUNDARY_NS - NS_PER_S, 16_000.0, rate=0.0001))
    assert ex.ledger.funding_units == 0

    ex.on_market(snap(BOUNDARY_NS + 60 * NS_PER_S, 16_500.0, rate=0.0002))
    # 10,000 / 16,000 × 0.0001 = 0.0000625 BTC = 625,000 units, at the last mark before 00:00.
    assert ex.ledger.funding_units == 625_000
    assert ex.ledger.balance_units == ONE_COIN_UNITS - 625_000
    [payment] = ex.funding_payments
    assert payment.ts_ns == BOUNDARY_NS
    assert payment.amount_coin == pytest.approx(0.0000625)

    ex.on_market(snap(BOUNDARY_NS + 7 * NS_PER_HOUR, 16_500.0, rate=0.0002))
    assert ex.counters().funding_settlements == 1
    assert_balanced(ex)


def test_funding_short_receives_at_the_boundary() -> None:
    """A short receives the same 625,000 units a long would pay."""
    ex = exchange()
    ex.on_market(snap(BOUNDARY_NS - 60 * NS_PER_S, 16_000.0, rate=0.0001))
    ex.place(req("short", OrderSide.SELL, 10_000))
    ex.on_market(snap(BOUNDARY_NS, 16_000.0, rate=0.0001))
    assert ex.ledger.funding_units == -625_000
    assert ex.ledger.balance_units == ONE_COIN_UNITS + 625_000


def test_funding_not_paid_by_a_position_opened_after_the_boundary() -> None:
    """A position opened at or after 00:00 does not pay the 00:00 settlement."""
    ex = exchange()
    ex.on_market(snap(BOUNDARY_NS - 60 * NS_PER_S, 16_000.0, rate=0.0001))
    ex.on_market(snap(BOUNDARY_NS, 16_000.0, rate=0.0001))
    ex.place(req("at-boundary", OrderSide.BUY, 10_000))
    ex.on_market(snap(BOUNDARY_NS + 60 * NS_PER_S, 16_000.0, rate=0.0001))
    ex.place(req("after-boundary", OrderSide.BUY, 10_000))
    ex.on_market(snap(BOUNDARY_NS + 8 * NS_PER_HOUR - NS_PER_S, 16_000.0, rate=0.0001))
    assert ex.ledger.funding_units == 0
    assert ex.funding_payments == ()


def test_funding_gap_over_two_boundaries_settles_both() -> None:
    """A data gap from 23:59 to 08:01 crosses 00:00 and 08:00: two payments of 625,000 units."""
    ex = exchange()
    ex.on_market(snap(BOUNDARY_NS - 60 * NS_PER_S, 16_000.0, rate=0.0001))
    ex.place(req("long", OrderSide.BUY, 10_000))
    ex.on_market(snap(BOUNDARY_NS + 8 * NS_PER_HOUR + 60 * NS_PER_S, 16_000.0, rate=0.0001))
    assert [p.ts_ns for p in ex.funding_payments] == [BOUNDARY_NS, BOUNDARY_NS + 8 * NS_PER_HOUR]
    assert ex.ledger.funding_units == 2 * 625_000


def test_funding_rate_normalised_to_the_instruments_interval() -> None:
    """A 0.08 % rate quoted per 8 h settles 0.01 % at each hourly boundary of a 1 h instrument."""
    ex = exchange(interval_s=3_600)
    ex.on_market(snap(BOUNDARY_NS - 60 * NS_PER_S, 16_000.0, rate=0.0008, interval_s=28_800.0))
    ex.place(req("long", OrderSide.BUY, 10_000))
    ex.on_market(snap(BOUNDARY_NS + 60 * NS_PER_S, 16_000.0, rate=0.0008, interval_s=28_800.0))
    # 0.0008 × 3,600 / 28,800 = 0.0001 per hour -> 10,000 / 16,000 × 0.0001 = 625,000 units.
    assert ex.ledger.funding_units == 625_000


# ---- liquidation ---------------------------------------------------------------------------


def _kraken_epp_long() -> PaperExchange:
    """Kraken EPP: 0.01 BTC wallet, long 1,000 @ 8,000, maintenance 1 %, no fees."""
    ex = exchange(balance=0.01, mmr=0.01)
    ex.on_market(snap(T0_NS, 8_000.0, bid=7_999.5, ask=8_000.0))
    ex.place(req("long", OrderSide.BUY, 1_000))
    return ex


def test_account_reports_kraken_liquidation_price_and_maintenance() -> None:
    """Kraken EPP: MM 0.125 × 1 % = 0.00125 BTC; LP 1,000·1.01/(0.01 + 0.125) = 7,481.48."""
    account = _kraken_epp_long().account_snapshot(KEY)
    assert account.maintenance_margin_coin == pytest.approx(0.00125)
    assert account.liquidation_price == pytest.approx(7_481.481481, rel=1e-9)
    assert account.wallet_balance_coin == 0.01


def test_liquidation_triggered_at_the_mark_and_closed_at_the_bankruptcy_price() -> None:
    """Kraken EPP: no liquidation at mark 7,482; at 7,481 the long closes at 7,407.41."""
    ex = _kraken_epp_long()
    # Mark 7,482: equity 0.135 − 1,000/7,482 = 0.0013462 > MM 1,000/7,482 × 1 % = 0.0013365.
    assert ex.on_market(snap(T0_NS + NS_PER_S, 7_482.0, bid=7_481.5, ask=7_482.5)) == []
    assert ex.counters().liquidations == 0
    # Mark 7,481: equity 0.135 − 1,000/7,481 = 0.0013280 <= MM 0.0013367.
    [fill] = ex.on_market(snap(T0_NS + 2 * NS_PER_S, 7_481.0, bid=7_480.5, ask=7_481.5))
    # Bankruptcy: 1,000 / (0.01 + 1,000/8,000) = 7,407.41 (Kraken's IOC close at 7,407).
    assert fill.price == pytest.approx(7_407.407407, rel=1e-9)
    assert fill.side is OrderSide.SELL
    assert fill.size_usd == 1_000.0
    assert fill.fee_coin == 0.0
    assert ex.position(KEY).size_usd == 0
    assert ex.ledger.balance_units == 0
    [liquidation] = ex.liquidations
    assert liquidation.mark_price == 7_481.0
    assert ex.counters().liquidations == 1
    assert_balanced(ex)


def test_liquidation_on_a_gap_through_bankruptcy_floors_the_wallet_at_zero() -> None:
    """A jump to 7,000 (equity −0.0079 at the mark) still closes at 7,407.41, leaving exactly 0."""
    ex = _kraken_epp_long()
    [fill] = ex.on_market(snap(T0_NS + NS_PER_S, 7_000.0, bid=6_999.5, ask=7_000.5))
    assert fill.price == pytest.approx(7_407.407407, rel=1e-9)
    assert ex.ledger.balance_units == 0
    assert_balanced(ex)


def test_liquidation_cancels_open_orders() -> None:
    """Resting orders are cancelled before the liquidation close."""
    ex = _kraken_epp_long()
    ex.place(req("resting", OrderSide.BUY, 10, limit=7_000.0))
    ex.on_market(snap(T0_NS + NS_PER_S, 7_400.0, bid=7_399.5, ask=7_400.5))
    resting = ex.lookup(KEY, "resting")
    assert resting is not None
    assert resting.status is OrderStatus.CANCELLED
    assert resting.reason == "cancelled by liquidation"
    assert ex.list_open(KEY) == []


def test_liquidation_with_negative_balance_is_covered_by_the_insurance_fund() -> None:
    """A balance driven below zero by a far-off fill is floored at zero and the credit counted."""
    ex = exchange(balance=0.01, mmr=0.01)
    ex.on_market(snap(T0_NS, 8_000.0, bid=7_999.5, ask=8_000.0))
    ex.place(req("long", OrderSide.BUY, 1_000))
    # A thin bid at 4,000 while the mark stays 8,000: selling 500 realises
    # 500 × (1/8,000 − 1/4,000) = −0.0625 BTC, so the balance is 0.01 − 0.0625 = −0.0525 BTC.
    ex.on_market(snap(T0_NS + NS_PER_S, 8_000.0, bids=((4_000.0, 500.0),), ask=8_000.0))
    ex.place(req("dump", OrderSide.SELL, 500))
    assert ex.ledger.balance_units == -525_000_000
    # Next mark update: equity −0.0525 <= MM; the bankruptcy price with no collateral is the
    # entry 8,000 (nothing realised), and the −0.0525 BTC is credited back by the fund.
    ex.on_market(snap(T0_NS + 2 * NS_PER_S, 8_000.0))
    assert ex.position(KEY).size_usd == 0
    assert ex.ledger.balance_units == 0
    assert ex.counters().insurance_fund_absorbed_units == 525_000_000
    assert ex.liquidations[-1].shortfall_units == 525_000_000
    assert_balanced(ex)


def test_cross_margin_liquidation_closes_every_position_of_the_wallet() -> None:
    """Two positions share the wallet; a crash in one liquidates both and spends the wallet."""
    other = InstrumentKey("paper", "BTC/USD:BTC-Q")
    flat_1pct = TierTable.flat(0.01)
    ex = PaperExchange(
        [PaperInstrument(KEY, schedule=flat_1pct), PaperInstrument(other, schedule=flat_1pct)],
        initial_balance_coin=0.02,
        taker_fee_rate=0.0,
    )
    ex.on_market(snap(T0_NS, 8_000.0))
    ex.on_market(snap(T0_NS, 8_000.0, key=other))
    ex.place(req("a", OrderSide.BUY, 1_000))
    ex.place(req("b", OrderSide.BUY, 1_000, key=other))
    # KEY's mark 7,000: equity 0.02 + 0.125 − 0.142857 = 0.002143 <= MM 0.001429 + 0.00125.
    fills = ex.on_market(snap(T0_NS + NS_PER_S, 7_000.0))
    assert {f.key for f in fills} == {KEY, other}
    assert ex.position(KEY).size_usd == ex.position(other).size_usd == 0
    # Each close spends its share of the 0.02 BTC; rounding each booking may leave one unit.
    assert 0 <= ex.ledger.balance_units <= 1
    assert_balanced(ex)


# ---- order rules ---------------------------------------------------------------------------


def test_post_only_that_would_cross_is_rejected_and_recorded() -> None:
    """A post-only buy at the ask is refused (not repriced) and kept as REJECTED."""
    ex = exchange()
    ex.on_market(snap(T0_NS, 10_000.0, bid=9_999.5, ask=10_000.0))
    with pytest.raises(RejectedError, match="would cross"):
        ex.place(req("po", OrderSide.BUY, 100, limit=10_000.0, post_only=True))
    rejected = ex.lookup(KEY, "po")
    assert rejected is not None
    assert rejected.status is OrderStatus.REJECTED
    assert rejected.venue_order_id is None
    assert ex.fills == ()


def test_post_only_below_the_ask_rests_and_fills_as_maker() -> None:
    """A post-only buy at 9,999.5 rests, then fills at its price as maker when the ask drops."""
    ex = exchange(maker=-0.0001)
    ex.on_market(snap(T0_NS, 10_000.0, bid=9_999.0, ask=10_000.0))
    update = ex.place(req("po", OrderSide.BUY, 1_000, limit=9_999.5, post_only=True))
    assert update.status is OrderStatus.OPEN
    [fill] = ex.on_market(snap(T0_NS + NS_PER_S, 9_999.0, bid=9_998.5, ask=9_999.0))
    assert (fill.price, fill.liquidity) == (9_999.5, Liquidity.MAKER)
    # Maker rebate −0.01 %: 1,000 / 9,999.5 × −0.0001 = −0.0000100005 BTC (a credit).
    assert fill.fee_coin == pytest.approx(-0.0000100005, rel=1e-6)


def test_reduce_only_is_trimmed_to_the_position() -> None:
    """A reduce-only sell of 800 against a 500 long is trimmed to 500 and closes it."""
    ex = exchange(lot=100)
    ex.on_market(snap(T0_NS, 10_000.0))
    ex.place(req("long", OrderSide.BUY, 500))
    update = ex.place(req("reduce", OrderSide.SELL, 800, reduce_only=True))
    assert (update.status, update.amount_usd, update.filled_usd) == (OrderStatus.FILLED, 500, 500)
    assert "trimmed" in update.reason
    assert ex.position(KEY).size_usd == 0


@pytest.mark.parametrize(
    ("held_usd", "side", "match"),
    [(0, OrderSide.SELL, "no position"), (500, OrderSide.BUY, "would increase")],
)
def test_reduce_only_that_cannot_reduce_is_rejected(
    held_usd: int, side: OrderSide, match: str
) -> None:
    """Reduce-only with nothing to reduce, or in the position's direction, is refused."""
    ex = exchange(lot=100)
    ex.on_market(snap(T0_NS, 10_000.0))
    if held_usd:
        ex.place(req("long", OrderSide.BUY, held_usd))
    with pytest.raises(RejectedError, match=match):
        ex.place(req("reduce", side, 100, reduce_only=True))


def test_resting_reduce_only_is_cancelled_when_its_position_is_gone() -> None:
    """A resting reduce-only order does not open a position once the one it reduced is closed."""
    ex = exchange(lot=100)
    ex.on_market(snap(T0_NS, 10_000.0))
    ex.place(req("long", OrderSide.BUY, 500))
    ex.place(req("tp", OrderSide.SELL, 500, limit=10_100.0, reduce_only=True))
    ex.place(req("close", OrderSide.SELL, 500))
    assert ex.on_market(snap(T0_NS + NS_PER_S, 10_200.0, bid=10_150.0, ask=10_200.0)) == []
    tp = ex.lookup(KEY, "tp")
    assert tp is not None
    assert (tp.status, tp.filled_usd) == (OrderStatus.CANCELLED, 0.0)
    assert ex.position(KEY).size_usd == 0


def test_duplicate_client_order_id_is_rejected_without_a_second_order() -> None:
    """A second order with a used client id is refused and the first order is untouched."""
    ex = exchange()
    ex.on_market(snap(T0_NS, 10_000.0, bid=9_999.5, ask=10_000.0))
    first = ex.place(req("dup", OrderSide.BUY, 100, limit=9_000.0))
    with pytest.raises(RejectedError, match="duplicate"):
        ex.place(req("dup", OrderSide.SELL, 700))
    assert ex.lookup(KEY, "dup") == first
    assert ex.list_open(KEY) == [first]
    assert ex.fills == ()
    counters = ex.counters()
    assert counters.duplicate_client_order_ids == 1
    assert sum(counters.orders_by_status.values()) == 1


def test_duplicate_of_a_rejected_order_id_is_also_rejected() -> None:
    """Ids are unique for life: reusing the id of a rejected order is refused too."""
    ex = exchange()
    ex.on_market(snap(T0_NS, 10_000.0))
    with pytest.raises(RejectedError, match="positive"):
        ex.place(req("bad", OrderSide.BUY, 0))
    with pytest.raises(RejectedError, match="duplicate"):
        ex.place(req("bad", OrderSide.BUY, 100))
    assert ex.counters().orders_by_status[OrderStatus.REJECTED] == 1


def test_limit_walks_levels_then_rests_and_fills_as_maker_later() -> None:
    """A buy of 1,000 at 10,001 takes 600 as taker, rests 400, then gets 300 as maker."""
    ex = exchange(lot=100, taker=0.0005)
    asks = ((10_000.0, 300.0), (10_001.0, 300.0), (10_002.0, 1_000.0))
    ex.on_market(snap(T0_NS, 10_000.0, bid=9_999.0, asks=asks))
    update = ex.place(req("walk", OrderSide.BUY, 1_000, limit=10_001.0))
    assert (update.status, update.filled_usd) == (OrderStatus.OPEN, 600.0)
    taker = ex.fills
    assert [(f.size_usd, f.price, f.liquidity) for f in taker] == [
        (300.0, 10_000.0, Liquidity.TAKER),
        (300.0, 10_001.0, Liquidity.TAKER),
    ]
    # Taker fees: 300/10,000 × 0.05 % = 0.000015 BTC; 300/10,001 × 0.05 % = 0.0000149985 BTC.
    assert ex.ledger.fees_units == 150_000 + 149_985

    # Next book: 200 at 10,000.5 and 100 at 10,001 are through the limit; 10,001.5 is not.
    later = ((10_000.5, 200.0), (10_001.0, 100.0), (10_001.5, 500.0))
    [maker] = ex.on_market(snap(T0_NS + NS_PER_S, 10_000.0, bid=9_999.5, asks=later))
    assert (maker.size_usd, maker.price, maker.liquidity) == (300.0, 10_001.0, Liquidity.MAKER)
    assert maker.fee_coin == 0.0

    assert ex.on_market(snap(T0_NS + 2 * NS_PER_S, 10_002.0, bid=10_001.5, ask=10_002.0)) == []
    cancelled = ex.cancel(KEY, "walk")
    assert (cancelled.status, cancelled.filled_usd) == (OrderStatus.CANCELLED, 900.0)
    # Harmonic average of 300 @ 10,000 and 600 @ 10,001: 900 / (0.03 + 600/10,001).
    assert cancelled.average_fill_price == pytest.approx(900 / (0.03 + 600 / 10_001), rel=1e-12)
    assert ex.position(KEY).entry_price == pytest.approx(cancelled.average_fill_price, rel=1e-12)


def test_market_order_remainder_is_cancelled_ioc() -> None:
    """A market buy of 800 against 500 of asks fills 500; the rest is cancelled, not rested."""
    ex = exchange(lot=100)
    ex.on_market(snap(T0_NS, 10_000.0, bid=9_999.5, asks=((10_000.0, 200.0), (10_000.5, 300.0))))
    update = ex.place(req("mkt", OrderSide.BUY, 800))
    assert (update.status, update.filled_usd) == (OrderStatus.CANCELLED, 500.0)
    assert "IOC" in update.reason
    assert ex.list_open(KEY) == []
    # The 500 taken is gone until the next snapshot.
    again = ex.place(req("mkt2", OrderSide.BUY, 100))
    assert (again.status, again.filled_usd) == (OrderStatus.CANCELLED, 0.0)


def test_cancel_is_idempotent_and_unknown_ids_are_refused() -> None:
    """Cancelling twice returns the same update; an unknown id or a wrong key is refused."""
    ex = exchange()
    ex.on_market(snap(T0_NS, 10_000.0))
    ex.place(req("rest", OrderSide.SELL, 100, limit=11_000.0))
    first = ex.cancel(KEY, "rest")
    assert first.status is OrderStatus.CANCELLED
    assert ex.cancel(KEY, "rest") == first
    with pytest.raises(RejectedError, match="no order"):
        ex.cancel(KEY, "missing")
    with pytest.raises(RejectedError, match="no order"):
        ex.cancel(InstrumentKey("paper", "ETH/USD:ETH"), "rest")


@pytest.mark.parametrize(
    ("request_", "match"),
    [
        (req("frac", OrderSide.BUY, 150), "whole number of 100 USD lots"),
        (req("zero", OrderSide.BUY, 0), "positive"),
        (req("neg", OrderSide.SELL, -100), "positive"),
        (req("nan", OrderSide.SELL, float("nan")), "positive"),
        (req("tick", OrderSide.BUY, 100, limit=9_000.25), "tick"),
        (req("price", OrderSide.BUY, 100, limit=-1.0), "limit_price"),
        (req("pom", OrderSide.BUY, 100, post_only=True), "post_only needs a limit"),
        (req("", OrderSide.BUY, 100), "client_order_id is required"),
        (req("key", OrderSide.BUY, 100, key=InstrumentKey("x", "y")), "unknown instrument"),
    ],
)
def test_malformed_orders_are_rejected_with_a_reason(request_: OrderRequest, match: str) -> None:
    """Amounts off the lot, non-positive, off-tick, and other malformed orders are refused."""
    ex = exchange(lot=100)
    ex.on_market(snap(T0_NS, 10_000.0))
    with pytest.raises(RejectedError, match=match):
        ex.place(request_)
    assert ex.fills == ()


def test_order_before_any_market_data_is_rejected() -> None:
    """Without a book there is nothing to price or margin an order against."""
    with pytest.raises(RejectedError, match="no market data"):
        exchange().place(req("early", OrderSide.BUY, 100))


def test_insufficient_initial_margin_at_50x_is_rejected() -> None:
    """0.01 BTC at 50x carries 5,000 USD at 10,000 (0.5 BTC); 5,100 USD is refused."""
    ex = exchange(balance=0.01)
    ex.on_market(snap(T0_NS, 10_000.0))
    # 5,100 / 10,000 / 50 = 0.0102 BTC > 0.01.
    with pytest.raises(RejectedError, match="insufficient margin"):
        ex.place(req("big", OrderSide.BUY, 5_100))
    # 5,000 / 10,000 / 50 = 0.01 BTC <= 0.01.
    assert ex.place(req("fits", OrderSide.BUY, 5_000)).status is OrderStatus.FILLED
    # Reducing is never refused for margin.
    assert ex.place(req("reduce", OrderSide.SELL, 5_000)).status is OrderStatus.FILLED


def test_margin_counts_open_orders_on_the_same_side() -> None:
    """A resting 3,000 buy at 9,000 plus 2,500 more needs 5,500/9,000/50 = 0.0122 > 0.01 BTC."""
    ex = exchange(balance=0.01)
    ex.on_market(snap(T0_NS, 10_000.0))
    ex.place(req("rest", OrderSide.BUY, 3_000, limit=9_000.0))
    with pytest.raises(RejectedError, match="insufficient margin"):
        ex.place(req("more", OrderSide.BUY, 2_500, limit=9_000.0))


# ---- market data and lookups ----------------------------------------------------------------


def test_out_of_order_or_unknown_snapshots_are_bad_input() -> None:
    """An older snapshot or one for an unlisted instrument is refused as bad input."""
    ex = exchange()
    ex.on_market(snap(T0_NS, 10_000.0))
    with pytest.raises(BadInputError, match="out_of_order"):
        ex.on_market(snap(T0_NS - 1, 10_000.0))
    with pytest.raises(BadInputError, match="unknown_instrument"):
        ex.on_market(snap(T0_NS, 10_000.0, key=InstrumentKey("x", "y")))
    with pytest.raises(BadInputError, match="non_positive_price"):
        ex.on_market(snap(T0_NS + 1, 0.0))


def test_fills_since_is_inclusive_and_per_instrument() -> None:
    """Fills stamped at or after the given time are returned, oldest first."""
    ex = exchange()
    ex.on_market(snap(T0_NS, 10_000.0))
    ex.place(req("a", OrderSide.BUY, 100))
    ex.on_market(snap(T0_NS + NS_PER_S, 10_000.0))
    ex.place(req("b", OrderSide.BUY, 100))
    assert [f.client_order_id for f in ex.list_fills(KEY, T0_NS)] == ["a", "b"]
    assert [f.client_order_id for f in ex.list_fills(KEY, T0_NS + 1)] == ["b"]
    assert ex.list_fills(InstrumentKey("x", "y"), 0) == []


def test_order_update_is_stamped_with_the_last_market_time() -> None:
    """An order's ts_ns is the time of the last market update when it was created."""
    ex = exchange()
    ex.on_market(snap(T0_NS + 5, 10_000.0))
    assert ex.place(req("a", OrderSide.BUY, 100, limit=9_000.0)).ts_ns == T0_NS + 5


def test_state_round_trips_through_json_with_open_orders_and_positions() -> None:
    """to_dict / from_dict through JSON restore the state and identical later behaviour."""
    ex = exchange(lot=100, taker=0.0005)
    ex.on_market(snap(T0_NS, 10_000.0, bid=9_999.5, asks=((10_000.0, 300.0),), rate=0.0001))
    ex.place(req("walk", OrderSide.BUY, 1_000, limit=10_000.0))
    ex.place(req("sell", OrderSide.SELL, 200, limit=10_500.0))
    restored = PaperExchange.from_dict(json.loads(json.dumps(ex.to_dict())))
    assert restored.to_dict() == ex.to_dict()

    later = snap(BOUNDARY_NS + NS_PER_S, 10_600.0, bid=10_550.0, ask=10_600.0, rate=0.0001)
    assert restored.on_market(later) == ex.on_market(later)
    assert restored.to_dict() == ex.to_dict()
    assert restored.counters() == ex.counters()
