"""The whole loop in-process: PushFeed -> PaperVenue -> Engine -> paper exchange, fake clock.

Every test drives time and market data explicitly and asserts on outcomes: the engine's
decisions, the orders and fills at the paper exchange, the journal and metric samples.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import replace

import pytest

from scaler.domain.funding import FundingPredictorConfig
from scaler.domain.inverse import TierTable
from scaler.domain.orders import OrderRequest, OrderSide, OrderStatus, OrderType, OrderUpdate
from scaler.domain.planning import ExecutionStyle, client_order_id
from scaler.domain.risk import RiskLimits
from scaler.domain.types import (
    NS_PER_S,
    AccountSnapshot,
    InstrumentKey,
    MarketSnapshot,
    Mode,
    TradingState,
)
from scaler.errors import OutcomeUnknownError
from scaler.ports import Broker
from tests.integration.conftest import LOT_USD, START_MARK, Passthrough, Rig, make_config
from tests.support import KEY, eventually

pytestmark = pytest.mark.integration

ACTIVE, REDUCING = TradingState.ACTIVE, TradingState.REDUCING
FROZEN, HALTED = TradingState.FROZEN, TradingState.HALTED
RigFactory = Callable[..., Rig]


def _band_usd(rig: Rig, target_usd: float) -> float:
    limits = rig.config.risk
    return max(limits.dead_band_min_usd, limits.dead_band_fraction * abs(target_usd), LOT_USD)


# ------------------------------------------------------------------------------ 1. converge


async def test_engine_when_flat_then_converges_to_sized_target(rig_factory: RigFactory) -> None:
    """From flat, filled orders bring the position to the sized target, each journaled first."""
    rig = rig_factory(config=make_config(prefix="itest", max_slice_usd=50_000.0))
    await rig.start()

    await rig.converge()

    expected = rig.sized_target_usd(START_MARK)
    assert rig.last.trading_state is ACTIVE
    assert abs(rig.position_usd() - expected) < _band_usd(rig, expected)
    assert rig.position_usd() > 140_000.0  # 3x of ~1 BTC at 50,000: about 149,980 USD
    assert rig.last.actual_usd == rig.position_usd()
    # Three 50,000 USD slices at most, all taken at once against the deep book.
    sent = rig.tap.sent
    assert len(sent) == 3
    assert rig.venue_order_count() == 3
    for item in sent:
        cid = item.request.client_order_id
        assert cid.startswith("itest-"), cid
        assert item.journaled_before, f"{cid} reached the venue before its intent was journaled"
        assert rig.journal.intent(cid) == item.request
        assert rig.status_of(cid) is OrderStatus.FILLED
        assert item.request.side is OrderSide.BUY
        assert item.request.amount_usd <= 50_000.0
        assert sum(f.size_usd for f in rig.journal.fills(cid)) == item.request.amount_usd
    assert {f.client_order_id for f in rig.exchange.fills} == {
        s.request.client_order_id for s in sent
    }
    assert rig.sample("scaler_orders_total", outcome="intended") == 3.0
    assert rig.sample("scaler_orders_total", outcome="filled") == 3.0
    assert rig.sample("scaler_actual_position_usd") == rig.position_usd()


# ------------------------------------------------------------------------------ 2. stale feed


async def test_engine_when_feed_goes_silent_then_freezes_and_resumes_by_itself(
    rig_factory: RigFactory,
) -> None:
    """A silent feed freezes the loop on the ticker (stale_mark); fresh data resumes it."""
    rig = rig_factory(config=make_config(max_slice_usd=50_000.0))
    await rig.start()
    first = await rig.push()
    assert first.trading_state is ACTIVE
    assert len(rig.tap.sent) == 1  # one slice of three: the position is still below target
    position = rig.position_usd()

    decision = await rig.tick(rig.config.risk.stale_mark_after_s + 0.5)
    assert decision.trading_state is FROZEN
    assert "stale_mark" in decision.reasons
    for _ in range(3):  # the ticker keeps deciding while the feed is silent
        decision = await rig.tick(1.0)
        assert decision.trading_state is FROZEN
        assert "stale_mark" in decision.reasons
    assert decision.recommended_usd == position
    assert rig.position_usd() == position
    assert rig.venue_order_count() == 1
    assert rig.sample("scaler_trading_state", state="frozen") == 1.0
    assert rig.sample("scaler_risk_adjustments_total", rule="stale_feed", reason="stale_mark") == 4

    resumed = await rig.push(dt=0.0)
    assert resumed.trading_state is ACTIVE
    assert resumed.reasons == ()
    assert rig.venue_order_count() == 2
    assert rig.position_usd() > position


# ------------------------------------------------------------------------------ 3. gap breaker


async def test_engine_when_mark_gaps_then_breaker_freezes_through_cooldown(
    rig: Rig,
) -> None:
    """A >2 % jump trips the breaker: frozen for the 2 s cooldown, then until a fresh account
    and until the jump is confirmed: +2.5 % must hold for 2 s x (ln 1.025 / ln 1.02)² = 3.11 s."""
    await rig.converge()
    orders, position = rig.venue_order_count(), rig.position_usd()
    jump = START_MARK * 1.025  # the target in USD rises with it: the loop would buy at once

    tripped = await rig.push(jump)
    ts_trip = rig.clock.now_ns()
    assert tripped.trading_state is FROZEN
    assert "gap_breaker" in tripped.reasons
    assert rig.sample("scaler_breaker_trips_total", reason="gap_breaker") == 1.0
    assert rig.runtime.risk.breaker_trips == 1

    for dt in (0.5, 0.5, 0.5, 0.4):  # fresh data at the new level, 1.9 s into the cooldown
        decision = await rig.push(jump, dt=dt)
        assert decision.trading_state is FROZEN
        assert "breaker_cooldown" in decision.reasons
    assert rig.clock.now_ns() - ts_trip == int(1.9 * NS_PER_S)
    assert rig.venue_order_count() == orders

    # Cooldown over, but the account was last seen before its end: margins not recomputed yet.
    decision = await rig.tick(1.0)
    assert decision.trading_state is FROZEN
    assert decision.reasons == ("breaker_cooldown", "unconfirmed_price")
    assert rig.venue_order_count() == orders

    # A fresh account ends the cooldown; held 2.9 s < 3.11 s, the jump is not believed yet.
    waiting = await rig.push(jump, dt=0.0)
    assert waiting.trading_state is FROZEN
    assert waiting.reasons == ("unconfirmed_price",)
    assert rig.venue_order_count() == orders

    resumed = await rig.push(jump, dt=0.3)  # held 3.2 s: confirmed
    assert resumed.reasons[0] == "price_confirmed"
    assert resumed.trading_state is ACTIVE
    assert rig.venue_order_count() == orders + 1
    assert rig.position_usd() > position
    assert rig.sample("scaler_breaker_trips_total", reason="gap_breaker") == 1.0
    assert rig.runtime.risk.breaker_until_ns is None


async def test_engine_when_jump_held_across_a_restart_then_never_traded_into(
    rig: Rig,
) -> None:
    """Mark and index at 1.5x: frozen while unconfirmed (it must hold 2 s x (ln 1.5 / ln 1.02)²
    = 838 s); a restart keeps the jump and its reference; back at 50,000 the jump is discarded
    and nothing is traded, before or after."""
    await rig.converge()
    orders, position = rig.venue_order_count(), rig.position_usd()
    level = START_MARK * 1.5  # equity doubles to 2 BTC: the formula asks for 3x the USD
    for _ in range(12):
        decision = await rig.push(level)
        assert decision.trading_state is FROZEN
        assert "unconfirmed_price" in decision.reasons
    assert rig.runtime.risk.jump_reference_price == START_MARK

    await rig.restart()
    assert rig.runtime.risk.jump_reference_price == START_MARK
    for _ in range(20):  # 10 s after the restart, well past the cooldown
        decision = await rig.push(level)
        assert decision.trading_state is FROZEN
        assert decision.target_usd > 2.9 * position
        assert decision.recommended_usd == position
    assert rig.engine.status()["instruments"][0]["reasons"] == ["unconfirmed_price"]
    assert rig.venue_order_count() == orders

    back = await rig.push(START_MARK)
    assert "price_returned" in back.reasons
    await rig.converge()
    assert rig.venue_order_count() == orders
    assert rig.position_usd() == position
    assert (
        rig.sample("scaler_risk_adjustments_total", rule="gap_breaker", reason="unconfirmed_price")
        == 20.0  # one per decision since the restart (the metrics restarted too)
    )


async def test_engine_when_mark_pushed_to_ten_times_then_rejected_as_implausible(
    rig: Rig,
) -> None:
    """Mark and index at 10x within seconds of a 50,000 mark: rejected as bad input (counted
    ``implausible_move``, nothing derived) and frozen at once, since the venue values the
    account at that mark (equity 3.7 BTC: at the old mark the formula would buy 3.7x); back at
    50,000 the loop resumes without a trade."""
    await rig.converge()
    orders, position = rig.venue_order_count(), rig.position_usd()
    for _ in range(12):
        rig.clock.advance(0.5)
        rig.feed.push(rig.snap(START_MARK * 10))
        await rig.tick(1.0)
    assert rig.sample("scaler_bad_inputs_total", feed="market", reason="implausible_move") == 12.0
    assert rig.last.trading_state is FROZEN
    assert rig.last.reasons == ("implausible_mark",)
    assert rig.venue_order_count() == orders
    await rig.converge()
    assert rig.venue_order_count() == orders
    assert rig.position_usd() == position


# ------------------------------------------------------------------------------ 4. margin


async def test_engine_when_margin_ratio_below_buffer_then_reduces_with_reduce_only_orders(
    rig_factory: RigFactory,
) -> None:
    """Margin ratio below the buffer -> REDUCING: reduce-only sells, the position only shrinks."""
    schedule = TierTable.from_rates([0.0], [0.10])  # a steep 10 % maintenance rate
    risk = RiskLimits(
        mm_buffer=3.0,  # REDUCING above ~3.3x leverage at this rate
        min_liquidation_distance=0.05,
        gap_threshold=0.2,  # the market move below is not a gap for this test
        daily_loss_limit_fraction=0.5,
    )
    rig = rig_factory(schedule=schedule, config=make_config(max_slice_usd=10_000.0, risk=risk))
    # A big long taken before the daemon started: 3x of 1 BTC at 50,000.
    rig.exchange.on_market(rig.snap())
    seed = OrderRequest(KEY, "seed-1", OrderSide.BUY, 149_980.0, OrderType.MARKET, None, False,
                        False, rig.clock.now_ns())  # fmt: skip
    assert rig.exchange.place(seed).status is OrderStatus.FILLED
    await rig.start()
    held = await rig.push()
    assert held.trading_state is ACTIVE
    assert rig.tap.sent == []  # at its target already
    assert held.margin_ratio is not None
    assert held.margin_ratio > risk.mm_buffer

    positions = [rig.position_usd()]
    drop = START_MARK * 0.95  # equity falls ~16 %, leverage rises to ~3.75x
    decision = await rig.push(drop)
    positions.append(rig.position_usd())
    assert decision.trading_state is REDUCING
    assert "maintenance_margin" in decision.reasons
    assert decision.margin_ratio is not None
    assert decision.margin_ratio < risk.mm_buffer
    assert abs(decision.recommended_usd) < abs(decision.actual_usd)

    for _ in range(10):
        decision = await rig.push(drop)
        positions.append(rig.position_usd())
        if decision.trading_state is not REDUCING:
            break
    reducing = [s for s in rig.tap.sent if s.state is REDUCING]
    assert len(reducing) >= 2
    for item in reducing:
        assert item.request.reduce_only
        assert item.request.side is OrderSide.SELL
        assert item.request.amount_usd <= item.position_before_usd
    assert all(later <= earlier for earlier, later in itertools.pairwise(positions))
    assert rig.position_usd() < 149_980.0
    assert rig.position_usd() > 0.0
    assert rig.sample("scaler_risk_adjustments_total", rule="maintenance_margin",
                      reason="maintenance_margin") >= 2  # fmt: skip
    # Every fill of ours was a sell: nothing was ever added while reducing.
    ours = [f for f in rig.exchange.fills if f.client_order_id != "seed-1"]
    assert ours
    assert all(f.side is OrderSide.SELL for f in ours)


class ReportedLiquidation(Passthrough):
    """A venue whose account carries ``liquidation_price`` once the test sets one."""

    def __init__(self, inner: Broker) -> None:
        super().__init__(inner)
        self.liquidation_price: float | None = None

    async def account(self, key: InstrumentKey) -> AccountSnapshot:
        account = await self.inner.account(key)
        if self.liquidation_price is None:
            return account
        return replace(account, liquidation_price=self.liquidation_price)


async def test_engine_when_venue_lp_is_past_the_mark_then_distance_zero_in_status_and_metrics(
    rig_factory: RigFactory,
) -> None:
    """A long whose venue-reported LP is above the mark is below maintenance: distance 0.

    ``|mark − LP| / mark`` would read 0.02 (2 % of room) for an LP 2 % above the mark.
    """
    wrappers: list[ReportedLiquidation] = []

    def wrap(inner: Broker) -> Broker:
        wrappers.append(ReportedLiquidation(inner))
        return wrappers[-1]

    rig = rig_factory(wrap=wrap)
    await rig.start()
    held = await rig.converge()
    assert held.actual_usd > 0.0
    assert held.liquidation_distance is not None
    assert 0.0 < held.liquidation_distance < 1.0

    wrappers[-1].liquidation_price = START_MARK * 1.02
    decision = await rig.push()

    assert decision.liquidation_price == START_MARK * 1.02
    assert decision.liquidation_distance == 0.0
    (instrument,) = rig.engine.status()["instruments"]  # type: ignore[misc]
    assert instrument["liquidation_distance"] == 0.0
    assert rig.sample("scaler_liquidation_distance_ratio") == 0.0


async def test_engine_when_venue_publishes_a_forecast_then_ema_forecast_and_blend_published(
    rig_factory: RigFactory,
) -> None:
    """/status and the metrics carry the EMA, the venue forecast and their blend apart.

    Observed 0.0001 per 8 h on every snapshot (EMA 0.0001), venue forecast 0.0003 per 8 h,
    venue weight 0.5: blend 0.5·0.0001 + 0.5·0.0003 = 0.0002, the rate the target is sized on.
    """
    weighted = FundingPredictorConfig(interval_s=28_800.0, venue_weight=0.5)
    rig = rig_factory(config=replace(make_config(), funding=weighted))
    await rig.start()
    await rig.push()
    rig.clock.advance(0.5)
    decision = await rig.push_snapshot(replace(rig.snap(), predicted_funding_rate=0.0003))

    assert decision.funding_ema == pytest.approx(0.0001)
    assert decision.funding_venue_predicted == pytest.approx(0.0003)
    assert decision.funding_predicted == pytest.approx(0.0002)
    (instrument,) = rig.engine.status()["instruments"]  # type: ignore[misc]
    assert instrument["funding_ema"] == pytest.approx(0.0001)
    assert instrument["funding_venue_predicted"] == pytest.approx(0.0003)
    assert instrument["funding_predicted"] == pytest.approx(0.0002)
    assert rig.sample("scaler_funding_rate_ema_ratio") == pytest.approx(0.0001)
    assert rig.sample("scaler_funding_rate_venue_predicted_ratio") == pytest.approx(0.0003)
    assert rig.sample("scaler_funding_rate_predicted_ratio") == pytest.approx(0.0002)


# ------------------------------------------------------------------------------ 5. halt


async def test_engine_when_halted_then_cancels_sends_nothing_until_resumed_and_survives_restart(
    rig_factory: RigFactory,
) -> None:
    """halt() cancels own orders and stops trading; resume() trades; a restart stays halted."""
    rig = rig_factory(config=make_config(style=ExecutionStyle.PASSIVE))
    await rig.start()
    await rig.push()
    resting = rig.open_orders()
    assert len(resting) == 1  # a post-only bid at the touch
    cid = resting[0].client_order_id

    await rig.engine.halt()
    assert rig.open_orders() == []
    assert rig.status_of(cid) is OrderStatus.CANCELLED
    orders = rig.venue_order_count()
    decision = await rig.push()
    assert decision.trading_state is HALTED
    assert decision.reasons == ("operator_halt",)
    decision = await rig.tick(3.0)
    assert decision.trading_state is HALTED
    assert rig.venue_order_count() == orders
    assert rig.open_orders() == []

    rig.engine.resume()  # wakes the loop: it decides and trades at once
    await eventually(lambda: rig.venue_order_count() > orders, message="trading after resume")
    assert rig.last.trading_state is ACTIVE
    assert rig.open_orders()

    await rig.engine.halt()
    assert rig.open_orders() == []
    await rig.restart()
    orders = rig.venue_order_count()
    after_restart = await rig.push()
    assert after_restart.trading_state is HALTED
    assert "operator_halt" in after_restart.reasons
    await rig.tick(2.0)
    assert rig.venue_order_count() == orders
    assert rig.engine.status()["trading_state"] == "halted"


# ------------------------------------------------------------------------------ 6. recommend


async def test_engine_when_recommend_mode_then_decides_but_sends_nothing_and_mode_persists(
    rig: Rig,
) -> None:
    """In recommend mode decisions follow the market, no order leaves; the mode survives restart."""
    await rig.engine.set_mode(Mode.RECOMMEND)
    first = await rig.push(START_MARK)
    assert first.mode is Mode.RECOMMEND
    assert abs(first.recommended_usd - rig.sized_target_usd(START_MARK)) <= LOT_USD
    assert first.actual_usd == 0.0
    higher = await rig.push(START_MARK * 1.01)
    assert higher.recommended_usd > first.recommended_usd + 1_000.0
    assert abs(higher.recommended_usd - rig.sized_target_usd(START_MARK * 1.01)) <= LOT_USD
    assert rig.venue_order_count() == 0
    assert rig.tap.sent == []
    assert rig.metrics.registry.get_sample_value("scaler_mode", {"mode": "recommend"}) == 1.0
    assert rig.sample("scaler_recommended_position_usd") == higher.recommended_usd

    await rig.restart(mode=Mode.AUTO)  # the configured mode loses to the persisted one
    assert rig.engine.mode is Mode.RECOMMEND
    decision = await rig.push(START_MARK * 1.01)
    assert decision.mode is Mode.RECOMMEND
    await rig.tick(2.0)
    assert rig.venue_order_count() == 0

    await rig.engine.set_mode(Mode.AUTO)  # wakes the loop: it decides and trades at once
    await eventually(lambda: rig.venue_order_count() > 0, message="orders after set_mode(AUTO)")
    assert rig.last.mode is Mode.AUTO
    assert rig.position_usd() > 0.0


# ------------------------------------------------------------------------------ 7. bad data


def _bad_inputs(rig: Rig) -> float:
    """All rejected market snapshots of the instrument, whatever the reason label."""
    total = 0.0
    for family in rig.metrics.registry.collect():
        for sample in family.samples:
            labels = sample.labels
            if (
                sample.name == "scaler_bad_inputs_total"
                and labels.get("symbol") == KEY.symbol
                and labels.get("feed") == "market"
            ):
                total += sample.value
    return total


def _bad_snapshot(rig: Rig, kind: str, good: MarketSnapshot) -> MarketSnapshot:
    """A snapshot that, if it were believed, would move the target by more than the band."""
    moved = START_MARK * 1.015
    if kind == "nan_mark":
        return replace(rig.snap(moved), mark_price=math.nan)
    if kind == "crossed_book":
        return replace(rig.snap(moved), best_bid=moved + 10.0, best_ask=moved - 10.0,
                       bids=((moved + 10.0, 1e6),), asks=((moved - 10.0, 1e6),))  # fmt: skip
    if kind == "out_of_order":
        return replace(rig.snap(moved), ts_event_ns=good.ts_event_ns - NS_PER_S,
                       ts_recv_ns=good.ts_recv_ns - NS_PER_S)  # fmt: skip
    if kind == "absurd_funding":  # 50 % per 8 h: the sizing denominator would halve the target
        return replace(rig.snap(START_MARK), funding_rate=0.5)
    assert kind == "duplicate"
    return replace(good)


@pytest.mark.parametrize(
    ("kind", "engine_reason"),
    [
        ("nan_mark", None),  # refused by the paper venue before the engine sees it
        ("crossed_book", None),  # the venue should refuse it first, the engine does
        ("out_of_order", None),  # refused by the paper venue before the engine sees it
        ("absurd_funding", "absurd_funding"),
        ("duplicate", "duplicate"),
    ],
)
async def test_engine_when_market_data_is_bad_then_rejected_counted_and_no_order(
    rig: Rig, kind: str, engine_reason: str | None
) -> None:
    """Bad market data (NaN, crossed, out of order, absurd, duplicate) is counted, never traded."""
    await rig.converge()
    good = rig.runtime.market
    assert good is not None
    orders, position = rig.venue_order_count(), rig.position_usd()
    rig.clock.advance(0.5)

    rig.feed.push(_bad_snapshot(rig, kind, good))
    await eventually(lambda: _bad_inputs(rig) == 1.0, message="the bad snapshot counted")
    decision = await rig.tick(1.0)

    assert rig.venue_order_count() == orders, "a rejected snapshot led to an order"
    assert rig.position_usd() == position
    assert rig.runtime.market is good
    assert decision.mark_price == START_MARK
    assert decision.funding_observed == good.funding_rate
    assert decision.trading_state is ACTIVE
    if engine_reason is not None:
        assert rig.sample("scaler_bad_inputs_total", feed="market", reason=engine_reason) == 1.0
    # The paper venue sees every snapshot first; it must not trade or value on a rejected one.
    assert rig.exchange.last_mark(KEY) == START_MARK, "the venue consumed a rejected snapshot"


# ------------------------------------------------------------------------------ 8. reconcile


async def test_engine_when_restarted_then_reconciles_unsent_intent_and_cancels_orphan(
    rig_factory: RigFactory,
) -> None:
    """At start an unsent journaled intent is settled as REJECTED, an own orphan is cancelled."""
    rig = rig_factory()
    now = rig.clock.now_ns()
    rig.exchange.on_market(rig.snap())
    # A crash between journaling an intent and sending it (the sequence was saved first).
    unsent = OrderRequest(KEY, client_order_id("scl", 1), OrderSide.BUY, 10_000.0,
                          OrderType.LIMIT, 50_100.0, False, False, now)  # fmt: skip
    rig.journal.save_state("order_sequence", {"next": 2})
    rig.journal.record_intent(unsent)
    # An order with our prefix the journal never saw, and a foreign one, resting at the venue.
    orphan = OrderRequest(KEY, client_order_id("scl", 500), OrderSide.BUY, 1_000.0,
                          OrderType.LIMIT, 40_000.0, False, False, now)  # fmt: skip
    foreign = replace(orphan, client_order_id="manual-7")
    assert rig.exchange.place(orphan).status is OrderStatus.OPEN
    assert rig.exchange.place(foreign).status is OrderStatus.OPEN

    await rig.start()

    assert rig.status_of(unsent.client_order_id) is OrderStatus.REJECTED
    assert rig.journal.unresolved_intents() == []
    orphan_now = rig.exchange.lookup(KEY, orphan.client_order_id)
    assert orphan_now is not None
    assert orphan_now.status is OrderStatus.CANCELLED
    assert rig.status_of(orphan.client_order_id) is OrderStatus.CANCELLED
    assert [o.client_order_id for o in rig.open_orders()] == ["manual-7"]
    assert rig.sample("scaler_orders_total", outcome="orphan_cancelled") == 1.0

    await rig.converge()
    sent_ids = [s.request.client_order_id for s in rig.tap.sent]
    assert sent_ids
    assert unsent.client_order_id not in sent_ids
    assert sent_ids[0] == client_order_id("scl", 2)
    assert rig.exchange.lookup(KEY, unsent.client_order_id) is None
    assert rig.exchange.counters().duplicate_client_order_ids == 0


# ------------------------------------------------------------------------------ 9. outcome unknown


class LostReply(Passthrough):
    """A Broker whose first ``place_order`` reaches the venue but loses the reply."""

    def __init__(self, inner: Broker) -> None:
        super().__init__(inner)
        self.lost: list[str] = []

    async def place_order(self, request: OrderRequest) -> OrderUpdate:
        update = await self.inner.place_order(request)
        if not self.lost:
            self.lost.append(request.client_order_id)
            raise OutcomeUnknownError(f"timeout placing {request.client_order_id}")
        return update


async def test_engine_when_order_outcome_unknown_then_looks_it_up_and_never_resends(
    rig_factory: RigFactory,
) -> None:
    """A lost reply is resolved by client id lookup: the real fill is journaled, no resend."""
    wrappers: list[LostReply] = []

    def wrap(inner: Broker) -> Broker:
        wrappers.append(LostReply(inner))
        return wrappers[-1]

    rig = rig_factory(wrap=wrap)
    await rig.start()
    await rig.push()
    (lost,) = wrappers[0].lost
    assert [s.request.client_order_id for s in rig.tap.sent] == [lost]
    assert rig.status_of(lost) is OrderStatus.FILLED
    assert [u.status for u in rig.journal.updates(lost)] == [OrderStatus.FILLED]
    assert sum(f.size_usd for f in rig.exchange.fills if f.client_order_id == lost) == 50_000.0
    assert rig.sample("scaler_orders_total", outcome="filled") == 1.0
    assert (
        rig.metrics.registry.get_sample_value(
            "scaler_errors_total", {"kind": "order_outcome_unknown"}
        )
        == 1.0
    )
    assert rig.engine.executor.unresolved == {}
    assert rig.position_usd() == 50_000.0

    await rig.converge()
    sent_ids = [s.request.client_order_id for s in rig.tap.sent]
    assert sent_ids.count(lost) == 1
    assert len(set(sent_ids)) == len(sent_ids) == rig.venue_order_count() == 3
    assert rig.exchange.counters().duplicate_client_order_ids == 0
    expected = rig.sized_target_usd(START_MARK)
    assert abs(rig.position_usd() - expected) < _band_usd(rig, expected)


# ------------------------------------------------------------------------------ 10. shutdown


async def test_engine_when_stopped_then_run_returns_without_time_passing(
    rig_factory: RigFactory,
) -> None:
    """stop.set() ends run() promptly; it does not wait for the ticker's next tick."""
    rig = rig_factory(config=make_config(style=ExecutionStyle.PASSIVE))
    await rig.start()
    await rig.push()
    task = rig.task
    assert task is not None
    rig.stop.set()
    await eventually(task.done, timeout_s=2.0, message="run() to return after stop.set()")
    assert task.result() is None
    assert rig.open_orders() == []


@pytest.mark.parametrize("cancel_on_shutdown", [True, False])
async def test_engine_when_stopped_then_cancels_own_orders_and_flushes_state(
    rig_factory: RigFactory, cancel_on_shutdown: bool
) -> None:
    """Shutdown cancels own resting orders (when configured) and flushes funding and risk."""
    config = make_config(
        style=ExecutionStyle.PASSIVE, max_slice_usd=1e6, cancel_on_shutdown=cancel_on_shutdown
    )
    rig = rig_factory(config=config)
    await rig.start()
    for _ in range(3):  # within the 5 s flush interval: only the first step flushed funding
        await rig.push()
    (resting,) = rig.open_orders()  # one post-only bid for the whole target, kept while fresh
    funding = rig.runtime.funding
    assert funding.samples == 3
    name = str(KEY)
    stored = rig.journal.load_state(f"funding:{name}")
    assert stored is not None
    assert stored["samples"] == 1

    await rig.shutdown()

    assert rig.feed.closed
    if cancel_on_shutdown:
        assert rig.open_orders() == []
        assert rig.status_of(resting.client_order_id) is OrderStatus.CANCELLED
    else:
        assert [o.client_order_id for o in rig.open_orders()] == [resting.client_order_id]
    assert rig.journal.load_state(f"funding:{name}") == funding.to_dict()
    assert rig.journal.load_state(f"risk:{name}") == rig.runtime.risk.to_dict()
    assert rig.journal.load_state("order_sequence") == {"next": 2}
