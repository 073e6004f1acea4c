"""Unit tests for the risk-control layer (scaler.domain.risk), one rule at a time and combined.

Numbers are derived by hand in the comments. Unless a test says otherwise: mark 50,000 USD,
equity 1 BTC, flat 0.5 % maintenance rate, lot 10 USD, default limits (leverage cap 10x =
500,000 USD, liquidation floor 15 % ~ 274,190 USD long), so a 30,000 USD target binds nothing.
"""

from __future__ import annotations

import dataclasses
import json
import math

import pytest

from scaler.domain.inverse import LinearMargin, MarginSchedule, TierTable
from scaler.domain.risk import (
    NS_PER_DAY,
    Reason,
    RiskDecision,
    RiskInputs,
    RiskLimits,
    RiskState,
    Rule,
    clear_override,
    evaluate,
    halt,
    override_funding,
    resume,
)
from scaler.domain.risk_rules import (
    confirmation_window_s,
    largest_safe_lots,
    liquidation_floor_rule,
    target_liquidation_distance,
)
from scaler.domain.types import (
    NS_PER_S,
    AccountSnapshot,
    InstrumentKey,
    MarketSnapshot,
    TradingState,
)

pytestmark = pytest.mark.unit

T0_NS = 1_584_057_600 * NS_PER_S  # 2020-03-13 00:00:00 UTC, the start of a UTC day
NOW = T0_NS + 12 * 3_600 * NS_PER_S  # noon
MS = 1_000_000
KEY = InstrumentKey("paper", "BTC-PERP")
FLAT = TierTable.flat(0.005)
LOT = 10.0
LIMITS = RiskLimits()
ACTIVE, REDUCING = TradingState.ACTIVE, TradingState.REDUCING
FROZEN, HALTED = TradingState.FROZEN, TradingState.HALTED


def _s(seconds: float) -> int:
    return round(seconds * NS_PER_S)


def _market(
    at: int = NOW,
    mark: float = 50_000.0,
    *,
    index: float | None = None,
    spread: float = 1.0,
    ts_funding_ns: int | None = None,
    **changes: object,
) -> MarketSnapshot:
    snapshot = MarketSnapshot(
        key=KEY,
        ts_event_ns=at,
        ts_recv_ns=at,
        mark_price=mark,
        index_price=mark if index is None else index,
        best_bid=mark - spread / 2,
        best_ask=mark + spread / 2,
        funding_rate=0.0001,
        funding_interval_s=28_800.0,
        ts_funding_ns=at if ts_funding_ns is None else ts_funding_ns,
    )
    return dataclasses.replace(snapshot, **changes)  # type: ignore[arg-type]


def _account(
    at: int = NOW,
    equity: float = 1.0,
    position_usd: float = 0.0,
    mm_coin: float | None = None,
) -> AccountSnapshot:
    return AccountSnapshot(
        ts_ns=at,
        wallet_balance_coin=equity,
        unrealised_pnl_coin=0.0,
        position_usd=position_usd,
        entry_price=50_000.0 if position_usd else None,
        maintenance_margin_coin=mm_coin,
    )


def _inputs(
    proposed: float = 30_000.0,
    current: float = 0.0,
    *,
    at: int = NOW,
    market: MarketSnapshot | None = None,
    account: AccountSnapshot | None = None,
    schedule: MarginSchedule = FLAT,
    lot: float = LOT,
    no_market: bool = False,
    no_account: bool = False,
) -> RiskInputs:
    return RiskInputs(
        proposed_target_usd=proposed,
        current_position_usd=current,
        market=None if no_market else (market or _market(at)),
        account=None if no_account else (account or _account(at, position_usd=current)),
        now_ns=at,
        schedule=schedule,
        lot_size_usd=lot,
    )


def _run(
    inputs: RiskInputs, state: RiskState | None = None, limits: RiskLimits = LIMITS
) -> RiskDecision:
    return evaluate(inputs, state or RiskState.initial(), limits)


def _warm(mark: float = 50_000.0, at: int = NOW) -> RiskState:
    """A state that has seen one good tick at ``at`` (last mark, anchor, day baseline 1 BTC)."""
    decision = _run(_inputs(0.0, at=at, market=_market(at, mark)))
    assert decision.trading_state is ACTIVE
    return decision.state


def _assert_hold(decision: RiskDecision, state: TradingState, *reasons: Reason) -> None:
    assert decision.trading_state is state
    assert decision.allowed_target_usd == decision.current_position_usd
    assert decision.reasons == reasons
    assert not decision.may_send_orders
    assert not decision.reduce_only


# --- happy path and the decision value ---------------------------------------------------------


def test_evaluate_when_nothing_binds_then_active_with_the_proposed_target() -> None:
    decision = _run(_inputs(30_000.0, 10_000.0))
    assert decision.trading_state is ACTIVE
    assert decision.allowed_target_usd == 30_000.0
    assert decision.actions == ()
    assert decision.may_send_orders
    assert not decision.reduce_only
    assert not decision.changed_target
    assert decision.state.trading_state is ACTIVE


def test_evaluate_when_target_not_whole_lots_then_rounded_toward_zero_silently() -> None:
    """30,017.3 -> 30,010 and -30,017.3 -> -30,010; rounding is not a rule action."""
    long = _run(_inputs(30_017.3))
    short = _run(_inputs(-30_017.3))
    assert long.allowed_target_usd == 30_010.0
    assert short.allowed_target_usd == -30_010.0
    assert long.actions == short.actions == ()
    assert not long.changed_target


def test_decision_when_rules_act_then_reasons_follow_rule_order() -> None:
    """Cap (rule 6) before spread guard (rule 8): max_position 20,000, then spread deferral."""
    limits = RiskLimits(max_position_usd=20_000.0)
    decision = _run(_inputs(25_000.0, 10_000.0, market=_market(spread=300.0)), limits=limits)
    assert decision.reasons == (Reason.MAX_POSITION, Reason.SPREAD_GUARD)
    assert [a.rule for a in decision.actions] == [Rule.CAPS, Rule.SPREAD_GUARD]
    assert decision.allowed_target_usd == 10_000.0
    assert decision.changed_target


# --- rule 1: input validation ------------------------------------------------------------------


@pytest.mark.parametrize("proposed", [math.nan, math.inf, -math.inf])
def test_evaluate_when_proposed_target_not_finite_then_frozen_at_current(proposed: float) -> None:
    decision = _run(_inputs(proposed, 10_000.0))
    _assert_hold(decision, FROZEN, Reason.INVALID_INPUT)
    assert decision.allowed_target_usd == 10_000.0
    assert decision.actions[0].rule is Rule.VALIDATION


def test_evaluate_when_market_missing_then_frozen_no_market_data() -> None:
    _assert_hold(_run(_inputs(current=5_000.0, no_market=True)), FROZEN, Reason.NO_MARKET_DATA)


def test_evaluate_when_account_missing_then_frozen_no_account_data() -> None:
    _assert_hold(_run(_inputs(current=5_000.0, no_account=True)), FROZEN, Reason.NO_ACCOUNT_DATA)


def test_evaluate_when_both_snapshots_missing_then_both_reasons() -> None:
    decision = _run(_inputs(no_market=True, no_account=True))
    _assert_hold(decision, FROZEN, Reason.NO_MARKET_DATA, Reason.NO_ACCOUNT_DATA)


@pytest.mark.parametrize(
    "market",
    [
        _market(mark=math.nan),
        _market(mark=-1.0),
        _market(index=0.0),
        _market(best_bid=50_001.0, best_ask=50_000.0),  # crossed
        _market(funding_rate=0.2),  # absurd
        _market(funding_interval_s=0.0),
    ],
    ids=["nan_mark", "negative_mark", "zero_index", "crossed", "absurd_funding", "interval"],
)
def test_evaluate_when_market_snapshot_invalid_then_frozen_invalid_input(
    market: MarketSnapshot,
) -> None:
    decision = _run(_inputs(30_000.0, 10_000.0, market=market))
    _assert_hold(decision, FROZEN, Reason.INVALID_INPUT)
    assert "market snapshot rejected" in decision.actions[0].detail


def test_evaluate_when_account_numbers_not_finite_then_frozen_invalid_input() -> None:
    account = dataclasses.replace(_account(), unrealised_pnl_coin=math.nan)
    _assert_hold(_run(_inputs(account=account)), FROZEN, Reason.INVALID_INPUT)


def test_evaluate_when_current_position_nan_then_frozen_and_allowed_is_that_nan() -> None:
    """No orders; the hold value is the (unusable) current position, never a new number."""
    decision = _run(_inputs(30_000.0, math.nan, account=_account()))
    assert decision.trading_state is FROZEN
    assert decision.reasons == (Reason.INVALID_INPUT,)
    assert math.isnan(decision.allowed_target_usd)


@pytest.mark.parametrize("lot", [0.0, -10.0, math.nan, math.inf])
def test_evaluate_when_lot_size_unusable_then_frozen_invalid_input(lot: float) -> None:
    _assert_hold(_run(_inputs(lot=lot)), FROZEN, Reason.INVALID_INPUT)


def test_evaluate_when_market_received_in_the_future_then_invalid_beyond_skew() -> None:
    """Receive time 1.0 s ahead of now is tolerated (max_clock_skew_s); 1.5 s is not."""
    ok = _run(_inputs(market=_market(NOW + _s(1.0))))
    bad = _run(_inputs(market=_market(NOW + _s(1.5))))
    assert ok.trading_state is ACTIVE
    _assert_hold(bad, FROZEN, Reason.INVALID_INPUT)
    assert bad.actions[0].detail == "market received 1.50 s in the future"


def test_evaluate_when_account_or_funding_stamped_in_the_future_then_invalid() -> None:
    future_account = _run(_inputs(account=_account(NOW + _s(60))))
    future_funding = _run(_inputs(market=_market(ts_funding_ns=NOW + _s(3_600))))
    _assert_hold(future_account, FROZEN, Reason.INVALID_INPUT)
    _assert_hold(future_funding, FROZEN, Reason.INVALID_INPUT)


def test_evaluate_when_account_missing_then_marks_still_tracked() -> None:
    """A valid market snapshot updates the gap-breaker history even while frozen."""
    decision = _run(_inputs(no_account=True, market=_market(mark=51_000.0)))
    assert decision.state.last_mark_price == 51_000.0
    assert decision.state.ts_last_mark_ns == NOW


def test_evaluate_when_market_invalid_then_state_untouched_except_trading_state() -> None:
    warm = _warm()
    decision = _run(_inputs(market=_market(NOW + MS, mark=math.nan)), warm)
    assert decision.state == dataclasses.replace(warm, trading_state=FROZEN)


# --- rule 2: operator halt ---------------------------------------------------------------------


def test_evaluate_when_halted_then_halted_at_current_with_operator_reason() -> None:
    decision = _run(_inputs(30_000.0, 10_000.0), halt(RiskState.initial()))
    _assert_hold(decision, HALTED, Reason.OPERATOR_HALT)
    assert decision.actions[0].rule is Rule.OPERATOR
    assert decision.allowed_target_usd == 10_000.0


def test_evaluate_when_halted_and_input_invalid_then_halted_dominates() -> None:
    decision = _run(_inputs(math.nan, 10_000.0, no_market=True), halt(RiskState.initial()))
    _assert_hold(
        decision, HALTED, Reason.INVALID_INPUT, Reason.NO_MARKET_DATA, Reason.OPERATOR_HALT
    )


def test_halt_when_already_halted_then_keeps_first_reason() -> None:
    state = halt(RiskState.initial(), Reason.DAILY_LOSS_LIMIT)
    assert halt(state) == state
    assert state.halt_reason is Reason.DAILY_LOSS_LIMIT
    assert state.trading_state is HALTED


def test_halt_when_reason_not_a_reason_then_value_error() -> None:
    with pytest.raises(ValueError, match="reason"):
        halt(RiskState.initial(), "operator_halt")  # type: ignore[arg-type]


def test_resume_when_halted_then_next_evaluation_active() -> None:
    halted = halt(_warm())
    resumed = resume(halted)
    assert not resumed.halted
    assert resumed.halt_reason is None
    decision = _run(_inputs(30_000.0, at=NOW + MS, market=_market(NOW + MS)), resumed)
    assert decision.trading_state is ACTIVE
    assert decision.allowed_target_usd == 30_000.0


def test_evaluate_when_halted_then_gap_trip_recorded_and_state_stays_halted() -> None:
    """A 10 % jump while halted is recorded as a trip (the market's record stays complete)."""
    halted = halt(_warm())
    decision = _run(_inputs(at=NOW + _s(1), market=_market(NOW + _s(1), 55_000.0)), halted)
    assert decision.trading_state is HALTED
    assert decision.state.last_mark_price == 55_000.0
    assert decision.state.breaker_trips == 1
    assert Reason.GAP_BREAKER in decision.reasons
    assert decision.allowed_target_usd == decision.current_position_usd


def test_evaluate_when_halted_and_gaps_repeat_then_each_trip_after_cooldown_counts() -> None:
    """Two gaps 10 s apart while halted (cooldown 2 s, fresh account): two trips recorded."""
    state = halt(_warm())
    for i, mark in enumerate((55_000.0, 60_000.0), start=1):
        at = NOW + _s(10 * i)
        inputs = _inputs(0.0, at=at, market=_market(at, mark), account=_account(at))
        decision = _run(inputs, state)
        assert decision.trading_state is HALTED
        state = decision.state
    assert state.breaker_trips == 2


def test_evaluate_when_halted_and_margin_pressure_then_safety_reduction_only() -> None:
    """Halted with equity/MM below the buffer: the position shrinks reduce-only, never grows.

    Hand derivation: 100,000 USD long at mark 50,000 is 2 BTC of value; the venue reports
    MM 0.04 BTC and equity is 0.06 BTC, so the ratio is 1.5 against a buffer of 2.0 and the
    target is scaled by 1.5 / 2.0 = 0.75 -> 75,000 USD. (The liquidation floor would cut
    further; it is switched off here to isolate the margin rule.)
    """
    limits = dataclasses.replace(LIMITS, min_liquidation_distance=0.0, max_leverage=100.0)
    halted = halt(_warm())
    account = _account(NOW + _s(1), equity=0.06, position_usd=100_000.0, mm_coin=0.04)
    inputs = _inputs(
        150_000.0, 100_000.0, at=NOW + _s(1), market=_market(NOW + _s(1)), account=account
    )
    decision = _run(inputs, halted, limits)
    assert decision.trading_state is HALTED
    assert decision.reduce_only
    assert decision.may_send_orders
    assert decision.allowed_target_usd == pytest.approx(75_000.0)
    assert Reason.MAINTENANCE_MARGIN in decision.reasons


def test_evaluate_when_halted_and_inputs_stale_then_nothing_is_sent() -> None:
    """Halted with a stale mark: no safety reduction is derived from untrusted data."""
    halted = halt(_warm())
    account = _account(NOW + _s(10), equity=0.06, position_usd=100_000.0, mm_coin=0.04)
    inputs = _inputs(100_000.0, 100_000.0, at=NOW + _s(10), market=_market(NOW), account=account)
    decision = _run(inputs, halted)
    assert decision.trading_state is HALTED
    assert decision.allowed_target_usd == decision.current_position_usd
    assert not decision.may_send_orders


# --- rule 2: daily loss ------------------------------------------------------------------------


def _at_equity(state: RiskState, at: int, equity: float) -> RiskDecision:
    return _run(_inputs(30_000.0, at=at, account=_account(at, equity)), state)


def test_evaluate_when_first_of_the_day_then_baseline_is_current_equity() -> None:
    decision = _at_equity(RiskState.initial(), NOW, 1.25)
    assert decision.state.day_index == NOW // NS_PER_DAY == 18_334
    assert decision.state.day_start_equity_coin == 1.25


def test_evaluate_when_loss_reaches_limit_exactly_then_still_active() -> None:
    """Baseline 1.0, limit 10 %: the floor is 0.9 and equity 0.9 is not below it."""
    state = _at_equity(RiskState.initial(), NOW, 1.0).state
    assert _at_equity(state, NOW + _s(1), 0.9).trading_state is ACTIVE


def test_evaluate_when_loss_exceeds_limit_then_halted_until_operator_resumes() -> None:
    state = _at_equity(RiskState.initial(), NOW, 1.0).state
    decision = _at_equity(state, NOW + _s(1), 0.8999)
    _assert_hold(decision, HALTED, Reason.DAILY_LOSS_LIMIT)
    assert decision.actions[0].rule is Rule.DAILY_LOSS
    assert decision.actions[0].detail == (
        "equity 0.899900 < 0.900000 coin (day start 1.000000, limit 10.0%)"
    )
    assert decision.state.halted
    assert decision.state.halt_reason is Reason.DAILY_LOSS_LIMIT
    # Equity recovers: still halted; the kill switch needs an operator.
    later = _at_equity(decision.state, NOW + _s(2), 1.0)
    _assert_hold(later, HALTED, Reason.DAILY_LOSS_LIMIT)


def test_evaluate_when_new_utc_day_then_baseline_reanchors() -> None:
    """Day 1 baseline 1.0 -> 0.95 at 23:59:59 (5 %, fine). Day 2 re-anchors at 0.95: 0.86 is
    9.5 % down (floor 0.855), fine; 0.85 is 10.5 % down, halted."""
    state = _at_equity(RiskState.initial(), NOW, 1.0).state
    end_of_day = T0_NS + NS_PER_DAY - _s(1)
    state = _at_equity(state, end_of_day, 0.95).state
    assert state.day_start_equity_coin == 1.0
    midnight = T0_NS + NS_PER_DAY
    decision = _at_equity(state, midnight, 0.95)
    assert decision.state.day_index == state.day_index + 1  # type: ignore[operator]
    assert decision.state.day_start_equity_coin == 0.95
    assert _at_equity(decision.state, midnight + _s(1), 0.86).trading_state is ACTIVE
    assert _at_equity(decision.state, midnight + _s(2), 0.85).trading_state is HALTED


def test_resume_when_daily_loss_halted_then_baseline_reanchors_and_does_not_rehalt() -> None:
    state = _at_equity(RiskState.initial(), NOW, 1.0).state
    halted = _at_equity(state, NOW + _s(1), 0.85).state
    resumed = resume(halted)
    assert resumed.day_start_equity_coin is None
    decision = _at_equity(resumed, NOW + _s(2), 0.85)
    assert decision.trading_state is ACTIVE
    assert decision.state.day_start_equity_coin == 0.85
    assert _at_equity(decision.state, NOW + _s(3), 0.76).trading_state is HALTED  # < 0.765


def test_evaluate_when_baseline_not_positive_then_no_daily_loss_halt() -> None:
    """Nothing left to protect: the leverage cap already holds the target at zero."""
    state = _at_equity(RiskState.initial(), NOW, -0.1).state
    decision = _at_equity(state, NOW + _s(1), -0.5)
    assert decision.trading_state is ACTIVE
    assert decision.allowed_target_usd == 0.0
    assert decision.reasons == (Reason.MAX_LEVERAGE,)


# --- rule 3: stale feeds -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("age_s", "expected"),
    [(0.0, ACTIVE), (4.9, ACTIVE), (5.0, ACTIVE), (5.000000001, FROZEN), (5.1, FROZEN)],
)
def test_evaluate_when_mark_ages_then_frozen_strictly_after_five_seconds(
    age_s: float, expected: TradingState
) -> None:
    market = _market(NOW - _s(age_s), ts_funding_ns=NOW)
    decision = _run(_inputs(30_000.0, 10_000.0, market=market))
    assert decision.trading_state is expected
    if expected is FROZEN:
        _assert_hold(decision, FROZEN, Reason.STALE_MARK)
        assert decision.actions[0].rule is Rule.STALE_FEED


def test_evaluate_when_mark_stale_then_detail_has_age_and_limit() -> None:
    decision = _run(_inputs(market=_market(NOW - _s(7.2), ts_funding_ns=NOW)))
    assert decision.actions[0].detail == "mark age 7.20 s > 5.00 s"


@pytest.mark.parametrize(("age_s", "expected"), [(600.0, ACTIVE), (600.001, FROZEN)])
def test_evaluate_when_funding_ages_then_frozen_after_six_hundred_seconds(
    age_s: float, expected: TradingState
) -> None:
    decision = _run(_inputs(market=_market(ts_funding_ns=NOW - _s(age_s))))
    assert decision.trading_state is expected
    assert decision.reasons == (() if expected is ACTIVE else (Reason.STALE_FUNDING,))


@pytest.mark.parametrize(("age_s", "expected"), [(30.0, ACTIVE), (30.1, FROZEN)])
def test_evaluate_when_account_ages_then_frozen_after_thirty_seconds(
    age_s: float, expected: TradingState
) -> None:
    decision = _run(_inputs(account=_account(NOW - _s(age_s))))
    assert decision.trading_state is expected
    assert decision.reasons == (() if expected is ACTIVE else (Reason.STALE_ACCOUNT,))


def test_evaluate_when_every_feed_stale_then_one_action_per_feed() -> None:
    market = _market(NOW - _s(6), ts_funding_ns=NOW - _s(700))
    decision = _run(_inputs(market=market, account=_account(NOW - _s(31))))
    _assert_hold(decision, FROZEN, Reason.STALE_MARK, Reason.STALE_FUNDING, Reason.STALE_ACCOUNT)


def test_evaluate_when_funding_stale_under_override_then_proceeds_and_reports_it() -> None:
    state = override_funding(RiskState.initial(), NOW + _s(60))
    market = _market(ts_funding_ns=NOW - _s(700))
    decision = _run(_inputs(30_000.0, 10_000.0, market=market), state)
    assert decision.trading_state is ACTIVE
    assert decision.allowed_target_usd == 30_000.0
    assert decision.reasons == (Reason.FUNDING_OVERRIDE,)
    action = decision.actions[0]
    assert action.rule is Rule.STALE_FEED
    assert action.target_before_usd == action.target_after_usd == 30_000.0
    assert action.detail == (
        "funding age 700.00 s > 600.00 s; override: last rate 0.000100 for 60.00 s"
    )
    assert not decision.changed_target


def test_evaluate_when_override_reaches_its_deadline_then_frozen_and_cleared() -> None:
    """Active while now < until: one ns before the deadline proceeds, at the deadline freezes."""
    until = NOW + _s(60)
    state = override_funding(RiskState.initial(), until)
    before = _run(_inputs(at=until - 1, market=_market(until - 1, ts_funding_ns=NOW)), state)
    assert before.trading_state is ACTIVE
    at = _run(_inputs(at=until, market=_market(until, ts_funding_ns=until - _s(601))), state)
    _assert_hold(at, FROZEN, Reason.STALE_FUNDING)
    assert at.state.override_until_ns is None


def test_evaluate_when_override_active_and_mark_stale_then_still_frozen() -> None:
    state = override_funding(RiskState.initial(), NOW + _s(60))
    market = _market(NOW - _s(6), ts_funding_ns=NOW - _s(700))
    decision = _run(_inputs(market=market), state)
    _assert_hold(decision, FROZEN, Reason.STALE_MARK, Reason.FUNDING_OVERRIDE)


def test_evaluate_when_override_active_and_account_stale_then_still_frozen() -> None:
    state = override_funding(RiskState.initial(), NOW + _s(60))
    market = _market(ts_funding_ns=NOW - _s(700))
    decision = _run(_inputs(market=market, account=_account(NOW - _s(31))), state)
    _assert_hold(decision, FROZEN, Reason.FUNDING_OVERRIDE, Reason.STALE_ACCOUNT)


def test_clear_override_when_set_then_funding_staleness_freezes_again() -> None:
    state = clear_override(override_funding(RiskState.initial(), NOW + _s(60)))
    assert state.override_until_ns is None
    assert clear_override(state) is state
    decision = _run(_inputs(market=_market(ts_funding_ns=NOW - _s(700))), state)
    _assert_hold(decision, FROZEN, Reason.STALE_FUNDING)


def test_override_funding_when_deadline_not_an_int_then_value_error() -> None:
    with pytest.raises(ValueError, match="until_ns"):
        override_funding(RiskState.initial(), 1.5e18)  # type: ignore[arg-type]


# --- rule 4: gap breaker -----------------------------------------------------------------------


def _tick(
    state: RiskState,
    at: int,
    mark: float,
    *,
    account_at: int | None = None,
    index: float | None = None,
    proposed: float = 30_000.0,
) -> RiskDecision:
    market = _market(at, mark, index=index)
    account = _account(at if account_at is None else account_at)
    return _run(_inputs(proposed, at=at, market=market, account=account), state)


def test_evaluate_when_tick_moves_under_threshold_then_no_trip() -> None:
    """50,000 -> 50,950 is 1.9 % (< 2 %)."""
    decision = _tick(_warm(), NOW + MS, 50_950.0)
    assert decision.trading_state is ACTIVE
    assert decision.state.breaker_trips == 0


def test_evaluate_when_tick_moves_over_threshold_then_breaker_trips() -> None:
    """50,000 -> 51,050 is 2.1 % in one tick: frozen, breaker until now + 2 s, one trip."""
    decision = _tick(_warm(), NOW + MS, 51_050.0)
    _assert_hold(decision, FROZEN, Reason.GAP_BREAKER, Reason.UNCONFIRMED_PRICE)
    assert decision.actions[0].detail == "mark moved 2.10% in one tick > 2.00%"
    assert decision.state.breaker_until_ns == NOW + MS + _s(2)
    assert decision.state.breaker_trips == 1
    assert decision.state.gap_anchor_price == 51_050.0  # the window restarts at the trip
    # ... but the jump is judged against the price before it until it is confirmed.
    assert decision.state.jump_reference_price == 50_000.0
    assert decision.state.ts_jump_reference_ns == NOW
    assert decision.state.jump_level_price == 51_050.0
    assert decision.state.ts_jump_level_ns == NOW + MS


def test_evaluate_when_moves_add_up_within_window_then_breaker_trips() -> None:
    """50,000 -> 50,600 (+1.2 %) -> 51,100 (+0.99 % tick, +2.2 % since the window anchor)."""
    state = _tick(_warm(), NOW + _s(1), 50_600.0).state
    decision = _tick(state, NOW + _s(2), 51_100.0)
    _assert_hold(decision, FROZEN, Reason.GAP_BREAKER, Reason.UNCONFIRMED_PRICE)
    assert decision.actions[0].detail == "mark moved 2.20% within 10.0 s > 2.00%"
    assert decision.state.jump_reference_price == 50_000.0  # the window's anchor


def test_evaluate_when_same_moves_span_more_than_window_then_no_trip() -> None:
    """Anchor 50,000 at 0 s; at 11 s the window has rolled, so 51,100 starts a new one."""
    state = _tick(_warm(), NOW + _s(6), 50_600.0).state
    decision = _tick(state, NOW + _s(11), 51_100.0)
    assert decision.trading_state is ACTIVE
    assert decision.state.gap_anchor_price == 51_100.0
    assert decision.state.ts_gap_anchor_ns == NOW + _s(11)


@pytest.mark.parametrize(("index", "tripped"), [(48_600.0, False), (48_300.0, True)])
def test_evaluate_when_mark_diverges_from_index_then_trips_above_three_percent(
    index: float, tripped: bool
) -> None:
    """50,000 / 48,600 − 1 = 2.88 %; 50,000 / 48,300 − 1 = 3.52 %."""
    decision = _tick(_warm(), NOW + MS, 50_000.0, index=index)
    if tripped:
        _assert_hold(decision, FROZEN, Reason.INDEX_DIVERGENCE)
        assert decision.actions[0].detail == "mark/index divergence 3.52% > 3.00%"
    else:
        assert decision.trading_state is ACTIVE


def test_evaluate_when_gap_and_divergence_together_then_both_reasons() -> None:
    decision = _tick(_warm(), NOW + MS, 52_000.0, index=50_000.0)
    _assert_hold(
        decision, FROZEN, Reason.GAP_BREAKER, Reason.INDEX_DIVERGENCE, Reason.UNCONFIRMED_PRICE
    )
    assert decision.state.breaker_trips == 1


def test_evaluate_when_first_mark_ever_then_no_tick_comparison() -> None:
    assert _tick(RiskState.initial(), NOW, 90_000.0).trading_state is ACTIVE


def test_evaluate_when_cooldown_running_then_frozen_until_exactly_two_seconds() -> None:
    """Trip at t; calm ticks at t + 1.999999999 s frozen; at t + 2 s (fresh account) the
    breaker clears, but the 2.1 % jump must hold for 2 s x (ln 1.021 / ln 1.02)² = 2.207 s:
    still frozen at t + 2 s, confirmed and active at t + 2.3 s."""
    trip_at = NOW + MS
    state = _tick(_warm(), trip_at, 51_050.0).state
    during = _tick(state, trip_at + _s(2) - 1, 51_050.0)
    _assert_hold(during, FROZEN, Reason.BREAKER_COOLDOWN, Reason.UNCONFIRMED_PRICE)
    assert during.actions[0].detail == "breaker cooldown: 0.00 s left"
    cooled = _tick(during.state, trip_at + _s(2), 51_060.0)
    _assert_hold(cooled, FROZEN, Reason.UNCONFIRMED_PRICE)
    assert cooled.state.breaker_until_ns is None
    assert cooled.actions[0].detail == (
        "mark 51,060.00 is +2.12% from the last confirmed 50,000.00; no increase until it "
        "holds within 1.00% of 51,050.00 for 2.2 s (held 2.0 s) or returns"
    )
    after = _tick(cooled.state, trip_at + _s(2.3), 51_060.0)
    assert after.trading_state is ACTIVE
    assert after.reasons == (Reason.PRICE_CONFIRMED,)
    assert after.allowed_target_usd == 30_000.0
    assert after.state.breaker_trips == 1
    assert not after.state.jump_unconfirmed


def test_evaluate_when_cooldown_over_but_account_older_then_waits_for_fresh_account() -> None:
    """Recompute margins before resuming: an account from before the deadline keeps it frozen.

    A divergence trip: the mark did not jump, so only the cooldown holds."""
    trip_at = NOW + MS
    state = _tick(_warm(), trip_at, 50_000.0, index=48_000.0).state
    waiting = _tick(state, trip_at + _s(2.5), 50_000.0, account_at=trip_at + _s(1))
    _assert_hold(waiting, FROZEN, Reason.BREAKER_COOLDOWN)
    assert waiting.actions[0].detail == "cooldown over; account snapshot 1.00 s older than its end"
    fresh = _tick(waiting.state, trip_at + _s(2.6), 50_000.0, account_at=trip_at + _s(2))
    assert fresh.trading_state is ACTIVE
    assert not fresh.state.jump_unconfirmed  # a divergence alone is no jump


def test_evaluate_when_gap_during_cooldown_then_deadline_moves_and_count_stays() -> None:
    trip_at = NOW + MS
    state = _tick(_warm(), trip_at, 51_050.0).state
    again = _tick(state, trip_at + _s(1), 52_200.0)  # +2.25 % on the last tick
    _assert_hold(again, FROZEN, Reason.GAP_BREAKER, Reason.UNCONFIRMED_PRICE)
    assert again.state.jump_reference_price == 50_000.0  # still the price before the first
    assert again.state.jump_level_price == 52_200.0
    assert again.state.breaker_until_ns == trip_at + _s(3)
    assert again.state.breaker_trips == 1


def test_evaluate_when_two_separate_gaps_then_two_trips_counted() -> None:
    trip_at = NOW + MS
    state = _tick(_warm(), trip_at, 51_050.0).state
    state = _tick(state, trip_at + _s(2), 51_050.0).state  # the breaker clears
    decision = _tick(state, trip_at + _s(3), 52_200.0)
    assert decision.state.breaker_trips == 2


def test_evaluate_when_same_snapshot_again_then_state_unchanged() -> None:
    """Re-evaluating the same tick (e.g. on an account update) changes nothing."""
    first = _tick(_warm(), NOW + MS, 50_100.0)
    second = evaluate(
        _inputs(30_000.0, at=NOW + MS, market=_market(NOW + MS, 50_100.0)), first.state, LIMITS
    )
    assert second.state == first.state
    assert second == first


def test_evaluate_when_breaker_tripped_then_resume_clears_it() -> None:
    state = _tick(_warm(), NOW + MS, 51_050.0).state
    resumed = resume(state)
    assert resumed.breaker_until_ns is None
    assert resumed.breaker_trips == 1
    assert _tick(resumed, NOW + 2 * MS, 51_050.0).trading_state is ACTIVE


def test_evaluate_when_stale_and_gap_together_then_both_freeze_reasons() -> None:
    market = _market(NOW + MS, 51_050.0, ts_funding_ns=NOW - _s(700))
    decision = _run(_inputs(at=NOW + MS, market=market, account=_account(NOW)), _warm())
    _assert_hold(
        decision, FROZEN, Reason.STALE_FUNDING, Reason.GAP_BREAKER, Reason.UNCONFIRMED_PRICE
    )


# --- rule 4: confirming a jump -----------------------------------------------------------------

# The daemon's 3x long: 1 BTC wallet, 150,000 USD bought at 50,000. At mark m its equity is
# 1 + 150,000 x (1/50,000 − 1/m) BTC and the size formula asks for 3 x equity x m USD: at
# 500,000 (10x) that is 3 x 3.7 x 500,000 = 5,550,000 USD, 37x the position.
LONG_USD = 150_000.0


def _long_at(
    state: RiskState,
    at: int,
    mark: float,
    *,
    current: float = LONG_USD,
    mm_coin: float | None = None,
    limits: RiskLimits = LIMITS,
    side: float = 1.0,
) -> RiskDecision:
    """One evaluation of a position bought at 50,000 (``side`` -1: sold), sized at ``mark``."""
    upnl = current * (1.0 / 50_000.0 - 1.0 / mark)
    account = AccountSnapshot(at, 1.0, upnl, current, 50_000.0, mm_coin)
    proposed = side * 3.0 * (1.0 + upnl) * mark
    inputs = _inputs(proposed, current, at=at, market=_market(at, mark), account=account)
    return _run(inputs, state, limits)


def _long_warm(
    limits: RiskLimits = LIMITS, current: float = LONG_USD, side: float = 1.0
) -> RiskState:
    decision = _long_at(
        RiskState.initial(), NOW, 50_000.0, limits=limits, current=current, side=side
    )
    assert decision.allowed_target_usd == current
    return decision.state


def test_evaluate_when_outlier_held_for_ten_cooldowns_then_never_traded_into() -> None:
    """Mark 10x for 20 s, fresh ticks and accounts every 0.5 s: the formula asks for 5.55 M USD
    from 2.5 s on, and every decision still holds 150,000 USD (the bug bought at 500,050)."""
    state = _long_warm()
    for step in range(1, 41):
        decision = _long_at(state, NOW + _s(0.5 * step), 500_000.0)
        state = decision.state
        assert decision.proposed_target_usd == pytest.approx(5_550_000.0)
        assert decision.allowed_target_usd == LONG_USD
        assert decision.trading_state is FROZEN
        assert Reason.UNCONFIRMED_PRICE in decision.reasons
    assert state.jump_reference_price == 50_000.0
    assert state.breaker_trips == 1
    assert decision.actions[-1].detail == (
        "mark 500,000.00 is +900.00% from the last confirmed 50,000.00; no increase until it "
        "holds within 1.00% of 500,000.00 for 900.0 s (held 19.5 s) or returns"
    )


def test_evaluate_when_outlier_holds_for_the_longest_window_then_confirmed() -> None:
    """A 10x level held 900 s (``price_confirm_max_s``) is believed at last, not before."""
    trip_at = NOW + _s(1)
    state = _long_at(_long_warm(), trip_at, 500_000.0).state
    almost = _long_at(state, trip_at + _s(900) - 1, 500_000.0)
    assert almost.allowed_target_usd == LONG_USD
    assert almost.trading_state is FROZEN
    confirmed = _long_at(almost.state, trip_at + _s(900), 500_000.0)
    assert confirmed.reasons[0] is Reason.PRICE_CONFIRMED
    assert confirmed.trading_state is ACTIVE
    assert confirmed.allowed_target_usd > LONG_USD
    assert not confirmed.state.jump_unconfirmed


def test_evaluate_when_outlier_returns_then_discarded_without_a_trade() -> None:
    """10x for 4 s, then 50,050: the jump is discarded (a trip on the way back, no new jump);
    after the cooldown the formula's 3 x 1.002997 x 50,050 = 150,600 USD is inside the dead
    band (0.5 % = 753 USD): nothing is traded."""
    state = _long_warm()
    for step in range(1, 9):
        state = _long_at(state, NOW + _s(0.5 * step), 500_000.0).state
    back = _long_at(state, NOW + _s(4.5), 50_050.0)
    _assert_hold(back, FROZEN, Reason.GAP_BREAKER, Reason.PRICE_RETURNED)
    assert back.actions[1].detail == (
        "mark 50,050.00 back within 1.00% of the last confirmed 50,000.00; "
        "the jump to 500,000.00 is discarded"
    )
    assert not back.state.jump_unconfirmed
    after = _long_at(back.state, NOW + _s(6.5), 50_050.0)
    assert after.trading_state is ACTIVE
    assert after.reasons == (Reason.DEAD_BAND,)
    assert after.allowed_target_usd == LONG_USD


@pytest.mark.parametrize(
    ("ratio", "window_s"),
    [
        # 2 s x (ln r / ln 1.02)², at least 2 s, at most 900 s.
        (1.02, 2.0),  # exactly the threshold
        (1.01, 2.0),  # below it: the floor
        (1.1, 46.33),  # ln 1.1 / ln 1.02 = 0.095310 / 0.019803 = 4.8130; 2 x 23.165
        (1 / 1.1, 46.33),  # a fall by the same log ratio waits as long
        (1.2, 169.53),  # ln 1.2 / ln 1.02 = 0.182322 / 0.019803 = 9.2068; 2 x 84.766
        (2.0, 900.0),  # 2 x 35.003² = 2,450 s, bounded
        (0.1, 900.0),
    ],
)
def test_confirmation_window_when_jump_grows_then_window_grows_with_its_square(
    ratio: float, window_s: float
) -> None:
    assert confirmation_window_s(50_000.0 * ratio, 50_000.0, LIMITS) == pytest.approx(
        window_s, abs=0.01
    )


def test_confirmation_window_when_spike_or_fall_by_ten_then_same_window() -> None:
    """Log ratios: x10 and /10 are the same size of jump: ln 10 / ln 1.02 = 2.302585 / 0.019803
    = 116.28, so 2 s x 13,520 = 27,041 s."""
    wide = RiskLimits(price_confirm_max_s=1e6)
    up = confirmation_window_s(500_000.0, 50_000.0, wide)
    assert up == pytest.approx(confirmation_window_s(5_000.0, 50_000.0, wide))
    assert up == pytest.approx(2.0 * (math.log(10.0) / math.log(1.02)) ** 2)
    assert up == pytest.approx(27_041.0, rel=1e-4)


def test_evaluate_when_level_moves_during_hold_then_hold_restarts_at_new_level() -> None:
    """+10 % (46.3 s) held 40 s, then 56,000 (1.8 % off the level): the hold restarts there,
    and +12 % must hold 2 s x (ln 1.12 / ln 1.02)² = 65.5 s, still judged against 50,000."""
    state = _tick(_warm(), NOW + _s(1), 55_000.0, proposed=0.0).state
    state = _tick(state, NOW + _s(41), 55_300.0, proposed=0.0).state  # within 1 %: held
    assert state.jump_level_price == 55_000.0
    moved = _tick(state, NOW + _s(42), 56_000.0, proposed=0.0)
    assert moved.state.jump_level_price == 56_000.0
    assert moved.state.ts_jump_level_ns == NOW + _s(42)
    assert moved.state.jump_reference_price == 50_000.0
    waiting = _tick(moved.state, NOW + _s(42 + 65), 56_100.0, proposed=0.0)
    assert waiting.state.jump_unconfirmed
    confirmed = _tick(waiting.state, NOW + _s(42 + 66), 56_100.0, proposed=0.0)
    assert confirmed.reasons == (Reason.PRICE_CONFIRMED,)


def test_evaluate_when_fall_unconfirmed_then_strategy_cut_waits_for_confirmation() -> None:
    """-5 % is a gap: the formula's smaller target (3 x 0.8421 x 47,500 = 120,000 USD) is not
    traded until 47,500 has held 2 s x (ln 0.95 / ln 1.02)² = 13.4 s; then it is. (The daily
    loss limit is opened: equity is down 15.8 %.)"""
    limits = RiskLimits(daily_loss_limit_fraction=0.5)
    state = _long_at(_long_warm(limits), NOW + _s(1), 47_500.0, limits=limits).state
    held = _long_at(state, NOW + _s(5), 47_500.0, limits=limits)
    _assert_hold(held, FROZEN, Reason.UNCONFIRMED_PRICE)
    confirmed = _long_at(held.state, NOW + _s(15), 47_500.0, limits=limits)
    assert confirmed.reasons[0] is Reason.PRICE_CONFIRMED
    assert confirmed.trading_state is ACTIVE
    assert confirmed.allowed_target_usd == pytest.approx(120_000.0, abs=LOT)


def test_evaluate_when_unconfirmed_and_margin_short_at_the_mark_then_reduced_reduce_only() -> None:
    """A short through an unconfirmed +10 %: equity 1 − 150,000 x (1/50,000 − 1/55,000) =
    0.72727 BTC against the venue's 0.6 BTC maintenance margin, ratio 1.2121 < 2: the short is
    cut to 150,000 x 0.60606 = 90,909 -> 90,900 USD, reduce-only (the venue liquidates on its
    mark whether we believe it or not). The formula's -120,000 USD is not used. (The daily loss
    limit is opened: equity is down 27 %.)"""
    limits = RiskLimits(daily_loss_limit_fraction=0.5)
    warm = _long_warm(limits, -LONG_USD, -1.0)
    state = _long_at(warm, NOW + _s(1), 55_000.0, current=-LONG_USD, side=-1.0, limits=limits).state
    decision = _long_at(
        state, NOW + _s(3.5), 55_000.0, current=-LONG_USD, side=-1.0, limits=limits, mm_coin=0.6
    )
    assert decision.proposed_target_usd == pytest.approx(-120_000.0)
    assert decision.trading_state is REDUCING
    assert decision.reduce_only
    assert decision.reasons == (Reason.UNCONFIRMED_PRICE, Reason.MAINTENANCE_MARGIN)
    assert decision.allowed_target_usd == -90_900.0


def test_evaluate_when_unconfirmed_and_unsafe_at_the_confirmed_price_then_reduced() -> None:
    """Pessimistic: the 10x long is safe at 500,000, but revalued at the last confirmed 50,000
    (equity 1 BTC) its liquidation price is 150,000 x 1.005 / 4 = 37,688, 24.6 % away, short of
    a 40 % floor. The largest safe long there solves 1.005 N / (1 + N/50,000) <= 30,000:
    N <= 74,074.07, so 7,407 lots, 74,070 USD."""
    limits = RiskLimits(min_liquidation_distance=0.4)
    state = _long_at(_warm(), NOW + _s(1), 500_000.0, limits=limits).state
    decision = _long_at(state, NOW + _s(3.5), 500_000.0, limits=limits)
    assert decision.trading_state is REDUCING
    assert decision.reasons == (Reason.UNCONFIRMED_PRICE, Reason.LIQUIDATION_DISTANCE)
    assert decision.allowed_target_usd == 74_070.0
    assert decision.actions[1].detail.startswith("at the last confirmed 50,000.00: ")


def test_evaluate_when_latest_mark_rejected_as_implausible_then_frozen_until_a_good_one() -> None:
    """The venue values the account at its 10x mark (equity 3.7 BTC): sized at the last good
    mark that would buy 3 x 3.7 x 50,000 = 555,000 USD. A rejected snapshot newer than the
    accepted one holds the position; an older one no longer matters."""
    good, bad = _market(NOW, 50_000.0), _market(NOW + _s(0.5), 500_000.0)
    upnl = LONG_USD * (1.0 / 50_000.0 - 1.0 / 500_000.0)
    account = AccountSnapshot(NOW + _s(1), 1.0, upnl, LONG_USD, 50_000.0)
    inputs = dataclasses.replace(
        _inputs(555_000.0, LONG_USD, at=NOW + _s(1), market=good, account=account),
        rejected_market=bad,
    )
    decision = _run(inputs, _long_warm())
    _assert_hold(decision, FROZEN, Reason.IMPLAUSIBLE_MARK)
    assert decision.actions[0].detail == (
        "latest mark 500,000.00 (index 500,000.00) rejected as implausible against 50,000.00; "
        "waiting for a plausible one"
    )
    older = dataclasses.replace(inputs, rejected_market=_market(NOW - _s(1), 500_000.0))
    assert _run(older, _long_warm()).trading_state is ACTIVE


def test_resume_when_jump_unconfirmed_then_operator_accepts_the_level() -> None:
    state = _long_at(_long_warm(), NOW + _s(1), 500_000.0).state
    resumed = resume(state)
    assert not resumed.jump_unconfirmed
    decision = _long_at(resumed, NOW + _s(1.5), 500_000.0)
    assert decision.trading_state is ACTIVE
    assert decision.allowed_target_usd > LONG_USD


def test_evaluate_when_halted_during_unconfirmed_jump_then_both_reported() -> None:
    state = halt(_long_at(_long_warm(), NOW + _s(1), 500_000.0).state)
    decision = _long_at(state, NOW + _s(3.5), 500_000.0)
    _assert_hold(decision, HALTED, Reason.UNCONFIRMED_PRICE, Reason.OPERATOR_HALT)
    assert decision.state.jump_reference_price == 50_000.0


def test_evaluate_when_restarted_during_unconfirmed_jump_then_still_unconfirmed() -> None:
    """The jump is part of the persisted state: a JSON round trip, then 10x ticks for 10 s."""
    state = _long_at(_long_warm(), NOW + _s(1), 500_000.0).state
    state = RiskState.from_dict(json.loads(json.dumps(state.to_dict())))
    for step in range(1, 21):
        decision = _long_at(state, NOW + _s(1 + 0.5 * step), 500_000.0)
        state = decision.state
        assert decision.allowed_target_usd == LONG_USD
    assert state.jump_reference_price == 50_000.0


# --- rule 5: maintenance margin ----------------------------------------------------------------

# Long 100,000 USD at 50,000 is 2 BTC; at 0.5 % its maintenance margin is 0.01 BTC. Caps and the
# floor are opened wide so the margin rule acts alone.
MM_LIMITS = RiskLimits(max_leverage=1_000.0, min_liquidation_distance=0.0)


def _mm_decision(
    proposed: float, current: float, equity: float, mm_coin: float | None = None
) -> RiskDecision:
    account = _account(equity=equity, position_usd=current, mm_coin=mm_coin)
    return _run(_inputs(proposed, current, account=account), limits=MM_LIMITS)


def test_evaluate_when_margin_ratio_below_buffer_then_reducing_proportionally() -> None:
    """Equity 0.015 / MM 0.01 = 1.5 < 2: target at most 100,000 x 1.5 / 2 = 75,000."""
    decision = _mm_decision(120_000.0, 100_000.0, 0.015)
    assert decision.trading_state is REDUCING
    assert decision.reduce_only
    assert decision.may_send_orders
    assert decision.allowed_target_usd == 75_000.0
    assert decision.reasons == (Reason.MAINTENANCE_MARGIN,)
    action = decision.actions[0]
    assert (action.target_before_usd, action.target_after_usd) == (120_000.0, 75_000.0)
    assert action.detail == "margin ratio 1.50 < buffer 2.00; scale 0.750"


def test_evaluate_when_margin_low_on_a_short_then_reduced_on_the_short_side() -> None:
    decision = _mm_decision(-120_000.0, -100_000.0, 0.015)
    assert decision.allowed_target_usd == -75_000.0
    assert decision.trading_state is REDUCING


def test_evaluate_when_margin_low_and_strategy_cuts_deeper_then_deeper_cut_kept() -> None:
    assert _mm_decision(50_000.0, 100_000.0, 0.015).allowed_target_usd == 50_000.0


def test_evaluate_when_margin_low_and_strategy_flips_then_flat() -> None:
    decision = _mm_decision(-20_000.0, 100_000.0, 0.015)
    assert decision.allowed_target_usd == 0.0
    assert decision.trading_state is REDUCING


def test_evaluate_when_venue_reports_maintenance_margin_then_its_figure_is_used() -> None:
    """Venue MM 0.02 BTC: ratio 0.015 / 0.02 = 0.75, scale 0.375 -> 37,500."""
    assert _mm_decision(100_000.0, 100_000.0, 0.015, 0.02).allowed_target_usd == 37_500.0


def test_evaluate_when_ratio_equals_buffer_then_no_margin_action() -> None:
    """0.02 / 0.01 = 2.0 is not below the buffer."""
    decision = _mm_decision(100_000.0, 100_000.0, 0.02)
    assert decision.trading_state is ACTIVE
    assert decision.actions == ()


def test_evaluate_when_equity_negative_with_a_position_then_target_zero() -> None:
    decision = _mm_decision(100_000.0, 100_000.0, -0.001)
    assert decision.allowed_target_usd == 0.0
    assert decision.trading_state is REDUCING
    assert decision.reasons == (Reason.MAINTENANCE_MARGIN,)  # already flat: no cap binds


def test_evaluate_when_reducing_then_dead_band_does_not_hold_a_small_cut() -> None:
    """Ratio 1.998: scale 0.999 -> 99,900; a 100 USD cut is inside an ACTIVE band (499.5)."""
    decision = _mm_decision(100_000.0, 100_000.0, 0.01998)
    assert decision.allowed_target_usd == 99_900.0
    assert Reason.DEAD_BAND not in decision.reasons


def test_evaluate_when_reducing_then_spread_never_defers_the_cut() -> None:
    account = _account(equity=0.015, position_usd=100_000.0)
    inputs = _inputs(100_000.0, 100_000.0, account=account, market=_market(spread=500.0))
    decision = _run(inputs, limits=MM_LIMITS)
    assert decision.allowed_target_usd == 75_000.0
    assert decision.reasons == (Reason.MAINTENANCE_MARGIN,)


# --- rule 6: caps ------------------------------------------------------------------------------


def test_evaluate_when_above_max_position_then_capped() -> None:
    limits = RiskLimits(max_position_usd=20_000.0)
    decision = _run(_inputs(25_000.0, 10_000.0), limits=limits)
    assert decision.allowed_target_usd == 20_000.0
    assert decision.trading_state is ACTIVE
    assert decision.reasons == (Reason.MAX_POSITION,)
    assert decision.actions[0].detail == "position 25000.00 USD > max 20000.00 USD"


def test_evaluate_when_above_max_notional_then_capped_at_coin_times_mark() -> None:
    """0.3 BTC x 50,000 = 15,000 USD; a short is capped symmetrically."""
    limits = RiskLimits(max_notional_coin=0.3)
    assert _run(_inputs(25_000.0), limits=limits).allowed_target_usd == 15_000.0
    short = _run(_inputs(-25_000.0), limits=limits)
    assert short.allowed_target_usd == -15_000.0
    assert short.actions[0].detail == "notional 0.500000 coin > max 0.300000 coin"


def test_evaluate_when_above_max_leverage_then_capped_at_leverage_times_equity() -> None:
    """2x on 1 BTC at 50,000 = 100,000 USD (floor: LP 33,500, 33 % away, fine)."""
    decision = _run(_inputs(150_000.0), limits=RiskLimits(max_leverage=2.0))
    assert decision.allowed_target_usd == 100_000.0
    assert decision.reasons == (Reason.MAX_LEVERAGE,)
    assert decision.actions[0].detail == "leverage 3.00x > max 2.00x"


def test_evaluate_when_no_equity_then_leverage_cap_gives_zero() -> None:
    decision = _run(_inputs(30_000.0, account=_account(equity=0.0)))
    assert decision.allowed_target_usd == 0.0
    assert decision.actions[0].detail == "equity 0.000000 coin <= 0: no exposure"


def test_evaluate_when_several_caps_bind_then_one_action_each_chained() -> None:
    """Position 40,000 -> 30,000 (max position) -> 20,000 (0.4 BTC) -> 10,000 (0.2x)."""
    limits = RiskLimits(max_position_usd=30_000.0, max_notional_coin=0.4, max_leverage=0.2)
    decision = _run(_inputs(40_000.0), limits=limits)
    assert decision.reasons == (Reason.MAX_POSITION, Reason.MAX_NOTIONAL, Reason.MAX_LEVERAGE)
    steps = [(a.target_before_usd, a.target_after_usd) for a in decision.actions]
    assert steps == [(40_000.0, 30_000.0), (30_000.0, 20_000.0), (20_000.0, 10_000.0)]
    assert decision.allowed_target_usd == 10_000.0


def test_evaluate_when_cap_forces_below_current_then_reducing() -> None:
    limits = RiskLimits(max_position_usd=20_000.0)
    decision = _run(_inputs(30_000.0, 30_000.0), limits=limits)
    assert decision.trading_state is REDUCING
    assert decision.reduce_only
    assert decision.allowed_target_usd == 20_000.0


def test_evaluate_when_capped_sign_flip_then_active() -> None:
    """Long 30,000 -> short capped at 20,000: not a pure reduction, so not REDUCING."""
    limits = RiskLimits(max_position_usd=20_000.0)
    decision = _run(_inputs(-50_000.0, 30_000.0), limits=limits)
    assert decision.trading_state is ACTIVE
    assert decision.allowed_target_usd == -20_000.0


def test_evaluate_when_cap_not_whole_lots_then_rounded_below_the_cap() -> None:
    limits = RiskLimits(max_position_usd=20_005.0)
    assert _run(_inputs(25_000.0), limits=limits).allowed_target_usd == 20_000.0


# --- rule 7: liquidation-distance floor --------------------------------------------------------

OPEN_CAPS = RiskLimits(max_leverage=math.inf)


def _closed_form_usd(price: float, equity: float, mmr: float, floor: float, long: bool) -> float:
    """Flat tier: N <= P·M(1−D)/(m+D) for a long, N <= P·M(1+D)/(m+D) for a short."""
    return price * equity * ((1.0 - floor) if long else (1.0 + floor)) / (mmr + floor)


@pytest.mark.parametrize(
    ("price", "equity", "mmr", "floor", "lot", "expected_long", "expected_short"),
    [
        # 50,000·1·0.85/0.155 = 274,193.5 -> 274,190; 50,000·1·1.15/0.155 = 370,967.7 -> 370,960
        (50_000.0, 1.0, 0.005, 0.15, 10.0, 274_190.0, 370_960.0),
        # 8,000·0.5·0.88/0.13 = 27,076.9 -> 27,076; 8,000·0.5·1.12/0.13 = 34,461.5 -> 34,461
        (8_000.0, 0.5, 0.01, 0.12, 1.0, 27_076.0, 34_461.0),
        # 60,000·2·0.8/0.204 = 470,588.2 -> 470,500; 60,000·2·1.2/0.204 = 705,882.4 -> 705,800
        (60_000.0, 2.0, 0.004, 0.20, 100.0, 470_500.0, 705_800.0),
    ],
)
def test_evaluate_when_floor_binds_on_flat_tier_then_bisection_matches_closed_form(
    price: float,
    equity: float,
    mmr: float,
    floor: float,
    lot: float,
    expected_long: float,
    expected_short: float,
) -> None:
    limits = RiskLimits(max_leverage=math.inf, min_liquidation_distance=floor)
    schedule = TierTable.flat(mmr)
    for side, expected in ((1.0, expected_long), (-1.0, expected_short)):
        bound = _closed_form_usd(price, equity, mmr, floor, side > 0)
        assert expected == math.floor(bound / lot) * lot
        market = _market(mark=price)
        account = _account(equity=equity)
        inputs = _inputs(side * 10 * bound, market=market, account=account)
        decision = _run(
            dataclasses.replace(inputs, schedule=schedule, lot_size_usd=lot), None, limits
        )
        assert decision.allowed_target_usd == side * expected
        assert decision.reasons == (Reason.LIQUIDATION_DISTANCE,)


def test_evaluate_when_floor_binds_then_detail_names_distance_and_sizes() -> None:
    decision = _run(_inputs(400_000.0), limits=OPEN_CAPS)
    # Long 400,000 at 50,000 with 1 BTC: LP = 400,000·1.005/(1 + 8) = 44,666.7, 10.67 % away.
    assert decision.actions[0].detail == (
        "liquidation distance 10.67% < 15.00%; 400000.00 -> 274190.00 USD"
    )


def test_evaluate_when_target_far_from_liquidation_then_floor_silent() -> None:
    decision = _run(_inputs(270_000.0), limits=OPEN_CAPS)
    assert decision.allowed_target_usd == 270_000.0
    assert decision.actions == ()


def test_evaluate_when_floor_forces_below_current_then_reducing() -> None:
    decision = _run(_inputs(300_000.0, 300_000.0), limits=OPEN_CAPS)
    assert decision.trading_state is REDUCING
    assert decision.allowed_target_usd == 274_190.0


def test_evaluate_when_floor_is_zero_then_no_liquidation_check() -> None:
    limits = RiskLimits(max_leverage=math.inf, min_liquidation_distance=0.0)
    assert _run(_inputs(2_000_000.0), limits=limits).allowed_target_usd == 2_000_000.0


@pytest.mark.parametrize(
    "schedule",
    [
        TierTable.from_rates([0.0, 5.0, 10.0], [0.005, 0.01, 0.02]),
        LinearMargin(base_mmr=0.01, mmr_per_coin=0.00005),
    ],
    ids=["tiered", "deribit_linear"],
)
@pytest.mark.parametrize("side", [1.0, -1.0])
def test_largest_safe_lots_when_schedule_not_flat_then_largest_safe_whole_lot(
    schedule: MarginSchedule, side: float
) -> None:
    """k lots keep the floor and k + 1 lots do not (the bisection's two invariants)."""
    mark, equity, floor, lot = 50_000.0, 3.0, 0.15, 10.0
    lots = largest_safe_lots(side * 5_000_000.0, mark, equity, schedule, lot, floor)
    assert 0 < lots < 500_000
    safe = target_liquidation_distance(side * lots * lot, mark, equity, schedule)
    unsafe = target_liquidation_distance(side * (lots + 1) * lot, mark, equity, schedule)
    assert safe >= floor > unsafe


BINANCE_COINM = TierTable.from_rates(
    [0.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 400.0],
    [0.004, 0.005, 0.01, 0.025, 0.05, 0.10, 0.125, 0.15],
)


def test_liquidation_floor_when_lp_lands_on_a_tier_floor_then_distance_measured_and_shrunk() -> (
    None
):
    """A liquidation price on a tier floor is a real distance (here 40 %), never "no LP".

    3,000,000 USD long at 50,000 (60 BTC) with 43.395 BTC: at 30,000 the value is 100 BTC, the
    floor of Binance's 10 % tier, where MM = 100·0.10 − 6.605 = 3.395 = equity 43.395 + 60 − 100.
    Distance (50,000 − 30,000) / 50,000 = 0.4, below a 0.5 floor: the target is shrunk.
    """
    equity = 3.395 - 3_000_000.0 * (1.0 / 50_000.0 - 1.0 / 30_000.0)
    distance = target_liquidation_distance(3_000_000.0, 50_000.0, equity, BINANCE_COINM)
    assert distance == pytest.approx(0.4, rel=1e-9)
    limits = RiskLimits(max_leverage=math.inf, min_liquidation_distance=0.5)
    after, action = liquidation_floor_rule(
        3_000_000.0, 50_000.0, equity, BINANCE_COINM, LOT, limits
    )
    assert action is not None
    assert action.reason is Reason.LIQUIDATION_DISTANCE
    assert 0.0 < after < 3_000_000.0


def test_target_liquidation_distance_when_short_below_maintenance_everywhere_then_zero() -> None:
    """A Deribit short whose margin exceeds its equity at every linear-rate price is unsafe.

    1,000,000,000 USD short at 100,000 (10,000 BTC) on 1,000 BTC: rate 1 % + 0.005 %·10,000 =
    51 %, MM 5,100 BTC > 1,000 BTC, and ``−9,000 + 0.99·V − 0.00005·V²`` has no real root
    (0.9801 < 1.8). Distance 0, and the floor rule takes the target down.
    """
    deribit = LinearMargin(base_mmr=0.01, mmr_per_coin=0.00005)
    assert target_liquidation_distance(-1e9, 100_000.0, 1_000.0, deribit) == 0.0
    limits = RiskLimits(max_leverage=math.inf, min_liquidation_distance=0.15)
    after, action = liquidation_floor_rule(-1e9, 100_000.0, 1_000.0, deribit, LOT, limits)
    assert action is not None
    assert -1e9 < after <= 0.0


# --- rule 8: spread guard ----------------------------------------------------------------------

# Bid 49,850 / ask 50,150: spread 300 / 50,000 = 60 bps > 50.
WIDE = _market(spread=300.0)


def test_evaluate_when_spread_wide_then_increase_deferred() -> None:
    decision = _run(_inputs(30_000.0, 10_000.0, market=WIDE))
    assert decision.trading_state is ACTIVE
    assert decision.allowed_target_usd == 10_000.0
    assert decision.reasons == (Reason.SPREAD_GUARD,)
    assert decision.actions[0].detail == "spread 60.0 bps > 50.0 bps; increase deferred"


def test_evaluate_when_spread_wide_then_reduction_goes_through() -> None:
    decision = _run(_inputs(5_000.0, 10_000.0, market=WIDE))
    assert decision.allowed_target_usd == 5_000.0
    assert decision.actions == ()


def test_evaluate_when_spread_wide_and_flip_then_only_the_closing_part() -> None:
    decision = _run(_inputs(-20_000.0, 10_000.0, market=WIDE))
    assert decision.allowed_target_usd == 0.0
    assert decision.reasons == (Reason.SPREAD_GUARD,)


def test_evaluate_when_spread_just_under_limit_then_no_deferral() -> None:
    """245 / 50,000 = 49 bps."""
    decision = _run(_inputs(30_000.0, 10_000.0, market=_market(spread=245.0)))
    assert decision.allowed_target_usd == 30_000.0


# --- rule 9: dead band -------------------------------------------------------------------------


def test_evaluate_when_change_inside_band_then_hold_current() -> None:
    """30,000 -> 30,100: band max(0, 0.5 % x 30,100 = 150.5, one lot 10) = 150.5 > 100."""
    decision = _run(_inputs(30_100.0, 30_000.0))
    assert decision.allowed_target_usd == 30_000.0
    assert decision.reasons == (Reason.DEAD_BAND,)
    assert decision.actions[0].detail == "change 100.00 USD < band 150.50 USD"
    assert decision.trading_state is ACTIVE


def test_evaluate_when_change_at_least_band_then_trade() -> None:
    """30,000 -> 30,200: band 151 <= 200."""
    assert _run(_inputs(30_200.0, 30_000.0)).allowed_target_usd == 30_200.0


def test_evaluate_when_change_under_one_lot_then_hold() -> None:
    assert _run(_inputs(9.0, 0.0)).allowed_target_usd == 0.0


def test_evaluate_when_dead_band_min_usd_set_then_it_widens_the_band() -> None:
    limits = RiskLimits(dead_band_min_usd=500.0)
    assert _run(_inputs(30_400.0, 30_000.0), limits=limits).allowed_target_usd == 30_000.0
    assert _run(_inputs(30_500.0, 30_000.0), limits=limits).allowed_target_usd == 30_500.0


def test_evaluate_when_small_cut_but_current_above_a_cap_then_cut_not_held() -> None:
    """Current 20,005 is above max position 20,000: the 10 USD cut to 19,995 is not skipped;
    it is rounded toward zero to 19,990."""
    limits = RiskLimits(max_position_usd=20_000.0)
    decision = _run(_inputs(19_995.0, 20_005.0), limits=limits)
    assert decision.allowed_target_usd == 19_990.0
    assert decision.actions == ()


def test_evaluate_when_small_cut_and_current_safe_then_held() -> None:
    decision = _run(_inputs(29_950.0, 30_000.0))
    assert decision.allowed_target_usd == 30_000.0
    assert decision.reasons == (Reason.DEAD_BAND,)


# --- RiskState persistence ---------------------------------------------------------------------


def _busy_state() -> RiskState:
    return RiskState(
        halted=True,
        halt_reason=Reason.DAILY_LOSS_LIMIT,
        breaker_until_ns=NOW + 2,
        breaker_trips=3,
        last_mark_price=50_123.456789,
        ts_last_mark_ns=NOW,
        gap_anchor_price=0.1 + 0.2,
        ts_gap_anchor_ns=NOW - 5,
        jump_reference_price=1e-7 * 3,
        ts_jump_reference_ns=NOW - 7,
        jump_level_price=499_999.99999999994,
        ts_jump_level_ns=NOW - 6,
        override_until_ns=NOW + 60,
        day_index=18_334,
        day_start_equity_coin=-0.000123,
        trading_state=HALTED,
    )


@pytest.mark.parametrize("state", [RiskState.initial(), _busy_state()], ids=["initial", "busy"])
def test_risk_state_when_round_tripped_through_json_then_equal(state: RiskState) -> None:
    data = state.to_dict()
    assert RiskState.from_dict(data) == state
    assert RiskState.from_dict(json.loads(json.dumps(data))) == state


def test_risk_state_when_initial_then_nothing_seen_and_frozen() -> None:
    state = RiskState.initial()
    assert not state.halted
    assert state.breaker_trips == 0
    assert state.last_mark_price is None
    assert state.trading_state is FROZEN


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"halted": 1}, "halted"),
        ({"halt_reason": "tired"}, "halt_reason"),
        ({"halt_reason": None}, "halt_reason"),  # halted without a reason
        ({"breaker_trips": -1}, "breaker_trips"),
        ({"breaker_trips": True}, "breaker_trips"),
        ({"breaker_until_ns": 1.5}, "breaker_until_ns"),
        ({"last_mark_price": -1.0}, "last_mark_price"),
        ({"last_mark_price": math.nan}, "last_mark_price"),
        ({"last_mark_price": "50000"}, "last_mark_price"),
        ({"ts_last_mark_ns": None}, "ts_last_mark_ns"),  # mark without its timestamp
        ({"jump_level_price": 0.0}, "jump_level_price"),
        ({"ts_jump_level_ns": 1.5}, "ts_jump_level_ns"),
        ({"jump_reference_price": None}, "jump_level_price"),  # a torn jump
        ({"ts_jump_reference_ns": None}, "must be set together"),
        ({"day_start_equity_coin": math.inf}, "day_start_equity_coin"),
        ({"trading_state": "sleepy"}, "trading_state"),
        ({"trading_state": 3}, "trading_state"),
    ],
)
def test_risk_state_from_dict_when_field_bad_then_value_error(
    changes: dict[str, object], message: str
) -> None:
    data = {**_busy_state().to_dict(), **changes}
    with pytest.raises(ValueError, match=message):
        RiskState.from_dict(data)


def test_risk_state_from_dict_when_row_predates_jump_fields_then_no_jump_pending() -> None:
    """A row saved before the jump fields existed is read back; one with only some of them is
    refused."""
    data = _busy_state().to_dict()
    jump_keys = [key for key in data if "jump" in key]
    assert len(jump_keys) == 4
    old = {key: value for key, value in data.items() if key not in jump_keys}
    state = RiskState.from_dict(old)
    assert not state.jump_unconfirmed
    assert state == dataclasses.replace(
        _busy_state(),
        jump_reference_price=None,
        ts_jump_reference_ns=None,
        jump_level_price=None,
        ts_jump_level_ns=None,
    )
    with pytest.raises(ValueError, match="missing"):
        RiskState.from_dict({**old, "jump_level_price": 50_000.0})


def test_risk_state_from_dict_when_keys_wrong_or_not_a_mapping_then_value_error() -> None:
    data = RiskState.initial().to_dict()
    with pytest.raises(ValueError, match="missing"):
        RiskState.from_dict({k: v for k, v in data.items() if k != "halted"})
    with pytest.raises(ValueError, match="unexpected"):
        RiskState.from_dict({**data, "extra": 1})
    with pytest.raises(ValueError, match="mapping"):
        RiskState.from_dict([("halted", False)])


# --- RiskLimits --------------------------------------------------------------------------------


def test_risk_limits_when_default_then_documented_values() -> None:
    assert (LIMITS.stale_mark_after_s, LIMITS.stale_funding_after_s) == (5.0, 600.0)
    assert (LIMITS.stale_account_after_s, LIMITS.max_abs_funding_rate) == (30.0, 0.05)
    assert (LIMITS.gap_threshold, LIMITS.gap_window_s, LIMITS.max_index_divergence) == (
        0.02,
        10.0,
        0.03,
    )
    assert (LIMITS.breaker_cooldown_s, LIMITS.mm_buffer, LIMITS.max_leverage) == (2.0, 2.0, 10.0)
    assert LIMITS.max_position_usd == LIMITS.max_notional_coin == math.inf
    assert (LIMITS.min_liquidation_distance, LIMITS.daily_loss_limit_fraction) == (0.15, 0.10)
    assert (LIMITS.dead_band_fraction, LIMITS.dead_band_min_usd) == (0.005, 0.0)
    assert (LIMITS.max_spread_bps, LIMITS.max_clock_skew_s) == (50.0, 1.0)
    assert (LIMITS.price_confirm_base_s, LIMITS.price_confirm_max_s) == (2.0, 900.0)
    assert LIMITS.price_confirm_tolerance == 0.01
    assert (LIMITS.max_mark_index_ratio, LIMITS.max_mark_move_ratio) == (1.5, 3.0)
    assert LIMITS.mark_move_window_s == 300.0


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("stale_mark_after_s", 0.0),
        ("stale_mark_after_s", math.inf),
        ("stale_funding_after_s", math.nan),
        ("stale_account_after_s", -1.0),
        ("max_abs_funding_rate", 0.0),
        ("gap_threshold", math.nan),
        ("gap_window_s", 0.0),
        ("max_index_divergence", -0.01),
        ("breaker_cooldown_s", -1.0),
        ("mm_buffer", 0.5),
        ("max_position_usd", -1.0),
        ("max_notional_coin", math.nan),
        ("max_leverage", 0.0),
        ("min_liquidation_distance", 1.0),
        ("min_liquidation_distance", -0.1),
        ("daily_loss_limit_fraction", 0.0),
        ("daily_loss_limit_fraction", 1.5),
        ("dead_band_fraction", -0.1),
        ("dead_band_min_usd", math.inf),
        ("max_spread_bps", 0.0),
        ("max_clock_skew_s", math.nan),
        ("price_confirm_base_s", 0.0),
        ("price_confirm_max_s", 1.0),  # below the base
        ("price_confirm_tolerance", 0.0),
        ("max_mark_index_ratio", 1.0),
        ("max_mark_move_ratio", math.nan),
        ("mark_move_window_s", -1.0),
        ("max_leverage", True),
    ],
)
def test_risk_limits_when_value_out_of_range_then_value_error(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=field):
        RiskLimits(**{field: value})


# --- failing closed ----------------------------------------------------------------------------


def test_evaluate_when_state_is_corrupt_then_frozen_instead_of_raising() -> None:
    """A hand-built state with a zero last mark divides by zero: caught, frozen, explained."""
    corrupt = dataclasses.replace(_warm(), last_mark_price=0.0)
    decision = _run(_inputs(30_000.0, 10_000.0, at=NOW + MS, market=_market(NOW + MS)), corrupt)
    _assert_hold(decision, FROZEN, Reason.INVALID_INPUT)
    assert decision.actions[0].detail.startswith("evaluation failed: ZeroDivisionError")
