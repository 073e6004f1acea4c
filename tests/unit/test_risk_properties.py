"""Hypothesis properties of the risk-control layer: caps hold, bad data never adds exposure."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import TypeVar

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from scaler.domain.inverse import LinearMargin, MarginSchedule, TierTable
from scaler.domain.risk import (
    Reason,
    RiskDecision,
    RiskInputs,
    RiskLimits,
    RiskState,
    evaluate,
    halt,
    resume,
)
from scaler.domain.risk_rules import (
    confirmation_window_s,
    increases_exposure,
    largest_safe_lots,
    surely_far_from_liquidation,
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

NOW = 1_584_100_800 * NS_PER_S  # 2020-03-13 12:00:00 UTC
KEY = InstrumentKey("paper", "BTC-PERP")
REL_TOL = 1e-9
T = TypeVar("T")
HOLDING = (TradingState.FROZEN, TradingState.HALTED)

SCHEDULES: tuple[MarginSchedule, ...] = (
    TierTable.flat(0.005),
    TierTable.from_rates([0.0, 5.0, 10.0, 50.0], [0.005, 0.01, 0.02, 0.05]),
    LinearMargin(base_mmr=0.01, mmr_per_coin=0.00005),
)
LIMITS = (
    RiskLimits(),
    RiskLimits(max_position_usd=50_000.0, max_notional_coin=2.0, max_leverage=3.0),
    RiskLimits(max_leverage=100.0, min_liquidation_distance=0.3, max_spread_bps=5.0),
    RiskLimits(max_leverage=math.inf, min_liquidation_distance=0.0, dead_band_min_usd=1_000.0),
)

any_float = st.floats(allow_nan=True, allow_infinity=True)
junk_float = st.one_of(
    any_float, st.sampled_from([math.nan, math.inf, -math.inf, 0.0, -1.0, 1e308])
)
good_price = st.floats(min_value=100.0, max_value=200_000.0)
usd = st.floats(min_value=-2_000_000.0, max_value=2_000_000.0)


def _equity(account: AccountSnapshot) -> float:
    return account.wallet_balance_coin + account.unrealised_pnl_coin


def _mostly(good: st.SearchStrategy[T], junk: st.SearchStrategy[T]) -> st.SearchStrategy[T]:
    """``good`` about nine times in ten, else ``junk``: most cases reach the sizing rules.

    (``st.one_of`` cannot weight: it de-duplicates repeated branches.)
    """
    return st.sampled_from([True] * 9 + [False]).flatmap(lambda ok: good if ok else junk)


def _ns(seconds: float) -> int:
    return round(seconds * NS_PER_S)


def _age_ns(fresh_s: float) -> st.SearchStrategy[int]:
    """Mostly within ``fresh_s``; sometimes up to 400x older, or up to 5 s in the future."""
    fresh = st.floats(min_value=0.0, max_value=fresh_s)
    anything = st.floats(min_value=-5.0, max_value=400.0 * fresh_s)
    return _mostly(fresh, anything).map(_ns)


@dataclass(frozen=True)
class Case:
    """One drawn evaluation."""

    inputs: RiskInputs
    state: RiskState
    limits: RiskLimits


@st.composite
def markets(draw: st.DrawFn) -> MarketSnapshot | None:
    if draw(st.integers(0, 20)) == 0:
        return None
    mark = draw(_mostly(good_price, junk_float))
    drift = draw(_mostly(st.floats(-0.02, 0.02), st.floats(-0.5, 0.5)))
    index = draw(_mostly(st.just(mark * (1 + drift)), junk_float))
    half_spread_bps = draw(st.floats(min_value=-5.0, max_value=60.0))
    bid = mark * (1 - half_spread_bps / 10_000) if math.isfinite(mark) else mark
    ask = mark * (1 + half_spread_bps / 10_000) if math.isfinite(mark) else mark
    recv_ns = NOW - draw(_age_ns(5.0))
    return MarketSnapshot(
        key=KEY,
        ts_event_ns=recv_ns,
        ts_recv_ns=recv_ns,
        mark_price=mark,
        index_price=index,
        best_bid=draw(_mostly(st.just(bid), junk_float)),
        best_ask=ask,
        funding_rate=draw(_mostly(st.floats(-0.01, 0.01), junk_float)),
        funding_interval_s=draw(_mostly(st.sampled_from([28_800.0, 3_600.0]), junk_float)),
        ts_funding_ns=NOW - draw(_age_ns(600.0)),
    )


@st.composite
def accounts(draw: st.DrawFn, current: float) -> AccountSnapshot | None:
    if draw(st.integers(0, 20)) == 0:
        return None
    return AccountSnapshot(
        ts_ns=NOW - draw(_age_ns(30.0)),
        wallet_balance_coin=draw(_mostly(st.floats(-0.5, 20.0), junk_float)),
        unrealised_pnl_coin=draw(_mostly(st.floats(-0.5, 0.5), junk_float)),
        position_usd=current,
        entry_price=None,
        maintenance_margin_coin=draw(
            _mostly(st.one_of(st.none(), st.floats(0.0, 0.5)), junk_float)
        ),
    )


@st.composite
def states(draw: st.DrawFn, mark: float = 50_000.0, equity: float = 1.0) -> RiskState:
    state = RiskState.initial()
    if draw(st.booleans()):
        near = mark if math.isfinite(mark) and mark > 0 else 50_000.0
        last = draw(_mostly(st.just(near), good_price))
        ts_last = NOW - _ns(draw(st.floats(0.001, 20.0)))
        baseline = equity if math.isfinite(equity) else 1.0
        state = RiskState(
            last_mark_price=last,
            ts_last_mark_ns=ts_last,
            gap_anchor_price=draw(st.one_of(st.just(last), good_price)),
            ts_gap_anchor_ns=ts_last - _ns(draw(st.floats(0.0, 15.0))),
            breaker_until_ns=draw(_mostly(st.none(), st.integers(NOW - _ns(5), NOW + _ns(5)))),
            override_until_ns=draw(st.one_of(st.none(), st.integers(NOW - _ns(5), NOW + _ns(60)))),
            day_index=NOW // (86_400 * NS_PER_S),
            day_start_equity_coin=draw(_mostly(st.just(baseline), st.floats(-1.0, 50.0))),
            trading_state=draw(st.sampled_from(TradingState)),
        )
    if state.ts_last_mark_ns is not None and draw(st.integers(0, 3)) == 0:
        ts_level = state.ts_last_mark_ns - _ns(draw(st.floats(0.0, 1_000.0)))
        state = replace(
            state,
            jump_reference_price=draw(good_price),
            ts_jump_reference_ns=ts_level - _ns(draw(st.floats(0.001, 60.0))),
            jump_level_price=draw(st.one_of(st.just(state.last_mark_price), good_price)),
            ts_jump_level_ns=ts_level,
        )
    if draw(st.integers(0, 15)) == 0:
        state = halt(state)
    return state


@st.composite
def cases(draw: st.DrawFn) -> Case:
    current = draw(_mostly(usd, junk_float))
    market, account = draw(markets()), draw(accounts(current))
    inputs = RiskInputs(
        proposed_target_usd=draw(_mostly(usd, junk_float)),
        current_position_usd=current,
        market=market,
        account=account,
        now_ns=NOW,
        schedule=draw(st.sampled_from(SCHEDULES)),
        lot_size_usd=draw(st.sampled_from([1.0, 10.0, 100.0])),
    )
    mark = market.mark_price if market is not None else math.nan
    equity = _equity(account) if account is not None else math.nan
    return Case(inputs, draw(states(mark, equity)), draw(st.sampled_from(LIMITS)))


def _same(a: float, b: float) -> bool:
    return a == b or (math.isnan(a) and math.isnan(b))


def _inputs_invalid_or_stale(inputs: RiskInputs, limits: RiskLimits) -> bool:
    """Independent of the implementation: is anything missing, junk or old?"""
    market, account = inputs.market, inputs.account
    if market is None or account is None:
        return True
    numbers = (
        inputs.proposed_target_usd,
        inputs.current_position_usd,
        market.mark_price,
        market.index_price,
        market.best_bid,
        market.best_ask,
        market.funding_rate,
        _equity(account),
    )
    if not all(math.isfinite(x) for x in numbers):
        return True
    if min(market.mark_price, market.index_price, market.best_bid, market.best_ask) <= 0.0:
        return True
    if market.best_bid > market.best_ask or abs(market.funding_rate) > limits.max_abs_funding_rate:
        return True
    return (
        market.funding_interval_s != market.funding_interval_s  # NaN
        or market.funding_interval_s <= 0.0
        or NOW - market.ts_recv_ns > limits.stale_mark_after_s * NS_PER_S
        or NOW - account.ts_ns > limits.stale_account_after_s * NS_PER_S
    )


def _check(case: Case) -> RiskDecision:
    decision = evaluate(case.inputs, case.state, case.limits)
    assert decision.proposed_target_usd is case.inputs.proposed_target_usd
    assert decision.current_position_usd is case.inputs.current_position_usd
    return decision


@settings(max_examples=400)
@given(case=cases())
def test_evaluate_when_trading_then_allowed_within_every_cap(case: Case) -> None:
    """ACTIVE/REDUCING: max position, max notional x mark, max leverage x equity x mark hold."""
    decision = _check(case)
    allowed, limits = abs(decision.allowed_target_usd), case.limits
    if decision.trading_state in HOLDING:
        if decision.trading_state is TradingState.HALTED and decision.reduce_only:
            _assert_safety_reduction(decision)
        else:
            assert _same(decision.allowed_target_usd, decision.current_position_usd)
        return
    market, account = case.inputs.market, case.inputs.account
    assert market is not None
    assert account is not None
    mark, equity = market.mark_price, _equity(account)
    assert allowed <= limits.max_position_usd * (1 + REL_TOL)
    assert allowed <= limits.max_notional_coin * mark * (1 + REL_TOL)
    leverage_cap_usd = limits.max_leverage * equity * mark if equity > 0.0 else 0.0
    assert allowed <= leverage_cap_usd * (1 + REL_TOL)
    if allowed:
        distance = target_liquidation_distance(
            decision.allowed_target_usd, mark, equity, case.inputs.schedule
        )
        assert distance >= limits.min_liquidation_distance * (1 - REL_TOL)


@settings(max_examples=400)
@given(case=cases())
def test_evaluate_when_not_active_then_never_increases_exposure(case: Case) -> None:
    """FROZEN, HALTED and REDUCING never allow more exposure or a flip."""
    decision = _check(case)
    if decision.trading_state is TradingState.ACTIVE:
        return
    assert not increases_exposure(decision.allowed_target_usd, decision.current_position_usd)
    if decision.trading_state is TradingState.REDUCING:
        assert decision.reduce_only
        current, allowed = decision.current_position_usd, decision.allowed_target_usd
        assert abs(allowed) <= abs(current)
        assert allowed == 0.0 or (allowed > 0) == (current > 0)
    elif decision.trading_state is TradingState.HALTED and decision.may_send_orders:
        _assert_safety_reduction(decision)
    else:
        assert not decision.may_send_orders


def _assert_safety_reduction(decision: RiskDecision) -> None:
    """HALTED may only shrink the position, reduce-only, when a safety rule demands it."""
    current, allowed = decision.current_position_usd, decision.allowed_target_usd
    assert decision.reduce_only
    assert abs(allowed) < abs(current)
    assert allowed == 0.0 or (allowed > 0) == (current > 0)
    assert {Reason.MAINTENANCE_MARGIN, Reason.LIQUIDATION_DISTANCE} & set(decision.reasons)


@settings(max_examples=400)
@given(case=cases())
def test_evaluate_when_input_invalid_or_stale_then_no_new_exposure(case: Case) -> None:
    """Missing, non-finite, non-positive, crossed, absurd or old data holds the position."""
    assume(_inputs_invalid_or_stale(case.inputs, case.limits))
    decision = _check(case)
    assert decision.trading_state is not TradingState.ACTIVE
    assert not increases_exposure(decision.allowed_target_usd, decision.current_position_usd)


@settings(max_examples=300)
@given(case=cases())
def test_evaluate_when_trading_then_allowed_is_whole_lots_or_current(case: Case) -> None:
    decision = _check(case)
    if decision.trading_state in HOLDING:
        return
    allowed, lot = decision.allowed_target_usd, case.inputs.lot_size_usd
    if allowed != decision.current_position_usd:
        assert allowed / lot == round(allowed / lot)


@settings(max_examples=300)
@given(case=cases())
def test_evaluate_when_called_twice_then_same_decision(case: Case) -> None:
    """Pure: the same inputs and state give the same decision and next state."""
    first = _check(case)
    second = _check(case)
    assert first.trading_state is second.trading_state
    assert first.state == second.state
    assert first.reasons == second.reasons
    assert _same(first.allowed_target_usd, second.allowed_target_usd)


@settings(max_examples=400)
@given(case=cases())
def test_evaluate_when_jump_stays_unconfirmed_then_never_increases_exposure(case: Case) -> None:
    """While a jump is unconfirmed no decision raises |target| or flips, whatever the formula
    asked for at the new mark; and a pending jump only ends with a confirmation or a return."""
    decision = _check(case)
    if decision.state.jump_unconfirmed:
        assert not increases_exposure(decision.allowed_target_usd, decision.current_position_usd)
        assert decision.trading_state is not TradingState.ACTIVE
        if decision.may_send_orders:
            assert decision.reduce_only
    elif case.state.jump_unconfirmed and decision.reasons != (Reason.INVALID_INPUT,):
        ended = {Reason.PRICE_CONFIRMED, Reason.PRICE_RETURNED} & set(decision.reasons)
        assert ended, decision.reasons


BOUGHT_AT = 50_000.0
OUTLIERS = st.one_of(st.floats(1.03, 100.0), st.floats(0.01, 1 / 1.03))


def _held(current: float, mark: float, now_ns: int, side: float) -> RiskInputs:
    """The daemon's 3x position bought at 50,000 with 1 BTC, the formula's target at ``mark``."""
    upnl = current * (1.0 / BOUGHT_AT - 1.0 / mark)
    equity = 1.0 + upnl
    account = AccountSnapshot(now_ns, 1.0, upnl, current, BOUGHT_AT)
    market = MarketSnapshot(
        KEY, now_ns, now_ns, mark, mark, mark * 0.99995, mark * 1.00005, 1e-4, 28_800.0, now_ns
    )
    proposed = side * 3.0 * max(equity, 0.0) * mark
    return RiskInputs(proposed, current, market, account, now_ns, TierTable.flat(0.005), 10.0)


@settings(max_examples=150, deadline=None)
@given(
    factor=OUTLIERS,
    side=st.sampled_from([1.0, -1.0]),
    tick_s=st.floats(0.1, 15.0),
    hold_fraction=st.floats(0.0, 0.999),
    wobble=st.lists(st.floats(-0.004, 0.004), min_size=1, max_size=20),
)
def test_evaluate_when_outlier_held_inside_its_window_then_never_traded_into(
    factor: float, side: float, tick_s: float, hold_fraction: float, wobble: list[float]
) -> None:
    """A 3x position, then mark and index at ``factor`` x for less than the confirmation window
    (wobbling within 0.4 %), then back at 50,000: no decision adds exposure at the outlier (any
    cut it allows fills at once), the return ends the jump, and an untouched position is not
    traded once the breaker has cooled down."""
    limits = RiskLimits(daily_loss_limit_fraction=0.999)
    current, now = side * 150_000.0, NOW
    state = evaluate(_held(current, BOUGHT_AT, now, side), RiskState.initial(), limits).state
    level = BOUGHT_AT * factor
    window_ns = _ns(hold_fraction * confirmation_window_s(level, BOUGHT_AT, limits))
    start = now + _ns(1.0)
    for step in range(200):
        now = start + _ns(step * tick_s)
        if now - start > window_ns:
            break
        mark = level * (1.0 + wobble[step % len(wobble)])
        decision = evaluate(_held(current, mark, now, side), state, limits)
        assert not increases_exposure(decision.allowed_target_usd, current)
        assert decision.state.jump_unconfirmed
        state, current = decision.state, decision.allowed_target_usd
    untouched = current == side * 150_000.0
    for step in range(1, 6):  # back at the old level, past the cooldown
        decision = evaluate(_held(current, BOUGHT_AT, now + _ns(step), side), state, limits)
        state = decision.state
        assert not state.jump_unconfirmed
    if untouched:
        assert decision.trading_state is TradingState.ACTIVE
        assert decision.allowed_target_usd == current


@settings(max_examples=100, deadline=None)
@given(factor=OUTLIERS, side=st.sampled_from([1.0, -1.0]))
def test_resume_when_jump_unconfirmed_then_the_level_is_traded(factor: float, side: float) -> None:
    """The operator's resume is a confirmation: the next decision sizes at the mark as it is."""
    limits = RiskLimits(daily_loss_limit_fraction=0.999)
    current = side * 150_000.0
    state = evaluate(_held(current, BOUGHT_AT, NOW, side), RiskState.initial(), limits).state
    level = BOUGHT_AT * factor
    state = evaluate(_held(current, level, NOW + _ns(1), side), state, limits).state
    assert state.jump_unconfirmed
    decision = evaluate(_held(current, level, NOW + _ns(1.5), side), resume(state), limits)
    assert not decision.state.jump_unconfirmed
    assert Reason.UNCONFIRMED_PRICE not in decision.reasons
    assert decision.trading_state in (TradingState.ACTIVE, TradingState.REDUCING)


@settings(max_examples=300)
@given(
    proposed=usd,
    current=usd,
    mark=good_price,
    equity=st.floats(min_value=0.001, max_value=50.0),
    schedule=st.sampled_from(SCHEDULES),
    limits=st.sampled_from(LIMITS),
)
def test_evaluate_when_inputs_sane_then_safety_net_never_used(
    proposed: float,
    current: float,
    mark: float,
    equity: float,
    schedule: MarginSchedule,
    limits: RiskLimits,
) -> None:
    """Ordinary numbers never reach the catch-all: every rule handles them itself."""
    market = MarketSnapshot(KEY, NOW, NOW, mark, mark, mark - 0.5, mark + 0.5, 1e-4, 28_800.0, NOW)
    account = AccountSnapshot(NOW, equity, 0.0, current, None)
    inputs = RiskInputs(proposed, current, market, account, NOW, schedule, 10.0)
    decision = evaluate(inputs, RiskState.initial(), limits)
    assert Reason.INVALID_INPUT not in decision.reasons
    assert decision.trading_state in (TradingState.ACTIVE, TradingState.REDUCING)


@settings(max_examples=500)
@given(
    size=st.floats(min_value=-5_000_000.0, max_value=5_000_000.0),
    mark=good_price,
    equity=st.floats(min_value=0.0, max_value=50.0),
    schedule=st.sampled_from(SCHEDULES),
    floor=st.floats(min_value=0.01, max_value=0.9),
)
def test_surely_far_when_true_then_exact_distance_agrees(
    size: float, mark: float, equity: float, schedule: MarginSchedule, floor: float
) -> None:
    """The cheap pre-check of the floor is sufficient: it never passes an unsafe size."""
    if surely_far_from_liquidation(size, mark, equity, schedule, floor):
        assert target_liquidation_distance(size, mark, equity, schedule) >= floor


@settings(max_examples=200)
@given(
    size=st.floats(min_value=-5_000_000.0, max_value=5_000_000.0).filter(lambda x: abs(x) >= 10),
    mark=good_price,
    equity=st.floats(min_value=0.001, max_value=50.0),
    schedule=st.sampled_from(SCHEDULES),
    floor=st.floats(min_value=0.01, max_value=0.9),
)
def test_largest_safe_lots_when_any_size_then_safe_and_maximal(
    size: float, mark: float, equity: float, schedule: MarginSchedule, floor: float
) -> None:
    """k lots keep the floor; k + 1 lots (if still within the target) do not."""
    lot = 10.0
    lots = largest_safe_lots(size, mark, equity, schedule, lot, floor)
    side = 1.0 if size > 0 else -1.0
    assert target_liquidation_distance(side * lots * lot, mark, equity, schedule) >= floor
    if (lots + 1) * lot <= abs(size):
        nxt = target_liquidation_distance(side * (lots + 1) * lot, mark, equity, schedule)
        assert nxt < floor


@given(state=states())
def test_risk_state_when_any_drawn_state_then_dict_round_trip_exact(state: RiskState) -> None:
    assert RiskState.from_dict(state.to_dict()) == state
