"""Rule 4 of the risk-control layer, the gap circuit breaker: mark tracking, trips, cooldown.

:mod:`scaler.domain.risk` orders the rules and documents the semantics; this module keeps the
breaker's part of the :class:`~scaler.domain.risk_state.RiskState` up to date on every new mark.
"""

from __future__ import annotations

from dataclasses import replace

from scaler.domain.risk_rules import Reason, RiskLimits, Rule, RuleAction
from scaler.domain.risk_state import RiskInputs, RiskState
from scaler.domain.types import NS_PER_S, AccountSnapshot, MarketSnapshot

_NO_ACTIONS: tuple[RuleAction, ...] = ()


def hold_action(rule: Rule, reason: Reason, detail: str, inputs: RiskInputs) -> RuleAction:
    """An action that holds the position: the proposed target becomes the current one."""
    return RuleAction(rule, reason, detail, inputs.proposed_target_usd, inputs.current_position_usd)


def track_marks(
    state: RiskState, market: MarketSnapshot, inputs: RiskInputs, limits: RiskLimits
) -> tuple[RiskState, tuple[RuleAction, ...]]:
    """Update last mark and window anchor on a new mark; trip the breaker (also when halted,
    so the record of the market's gaps stays complete)."""
    mark, ts_ns = market.mark_price, market.ts_recv_ns
    last, anchor = state.last_mark_price, state.gap_anchor_price
    if state.ts_last_mark_ns is not None and ts_ns <= state.ts_last_mark_ns:
        return state, _NO_ACTIONS
    window_open = (
        anchor is not None
        and state.ts_gap_anchor_ns is not None
        and ts_ns - state.ts_gap_anchor_ns < limits.gap_window_s * NS_PER_S
    )
    if not window_open:
        anchor = mark
    state = _with_marks(state, mark, ts_ns, anchor, ts_ns if not window_open else None)
    trips = _gap_trips(mark, last, anchor, market.index_price, inputs, limits)
    if not trips:
        return state, _NO_ACTIONS
    until_ns = inputs.now_ns + round(limits.breaker_cooldown_s * NS_PER_S)
    already_on = state.breaker_until_ns is not None
    state = replace(
        state,
        breaker_until_ns=max(until_ns, state.breaker_until_ns or until_ns),
        breaker_trips=state.breaker_trips + (0 if already_on else 1),
        gap_anchor_price=mark,
        ts_gap_anchor_ns=ts_ns,
    )
    return state, trips


def _with_marks(
    state: RiskState, mark: float, ts_ns: int, anchor: float | None, ts_anchor_ns: int | None
) -> RiskState:
    """``replace`` for the per-tick update, built positionally: ``replace`` costs 4x more."""
    return RiskState(
        state.halted,
        state.halt_reason,
        state.breaker_until_ns,
        state.breaker_trips,
        mark,
        ts_ns,
        anchor,
        state.ts_gap_anchor_ns if ts_anchor_ns is None else ts_anchor_ns,
        state.override_until_ns,
        state.day_index,
        state.day_start_equity_coin,
        state.trading_state,
    )


def _gap_trips(
    mark: float,
    last: float | None,
    anchor: float | None,
    index: float,
    inputs: RiskInputs,
    limits: RiskLimits,
) -> tuple[RuleAction, ...]:
    threshold = limits.gap_threshold
    tick_move = abs(mark / last - 1.0) if last is not None else 0.0
    window_move = abs(mark / anchor - 1.0) if anchor is not None else 0.0
    divergence = abs(mark / index - 1.0)
    diverged = divergence > limits.max_index_divergence
    if tick_move <= threshold and window_move <= threshold and not diverged:
        return _NO_ACTIONS
    trips = []
    if tick_move > threshold:
        detail = f"mark moved {tick_move:.2%} in one tick > {threshold:.2%}"
        trips.append(hold_action(Rule.GAP_BREAKER, Reason.GAP_BREAKER, detail, inputs))
    elif window_move > threshold:
        detail = (
            f"mark moved {window_move:.2%} within {limits.gap_window_s:.1f} s > {threshold:.2%}"
        )
        trips.append(hold_action(Rule.GAP_BREAKER, Reason.GAP_BREAKER, detail, inputs))
    if diverged:
        detail = f"mark/index divergence {divergence:.2%} > {limits.max_index_divergence:.2%}"
        trips.append(hold_action(Rule.GAP_BREAKER, Reason.INDEX_DIVERGENCE, detail, inputs))
    return tuple(trips)


def breaker_status(
    state: RiskState, account: AccountSnapshot, inputs: RiskInputs
) -> tuple[RiskState, RuleAction | None]:
    """Cooldown, then wait for an account snapshot taken at or after its end, then clear."""
    until_ns = state.breaker_until_ns
    if until_ns is None:
        return state, None
    if inputs.now_ns < until_ns:
        detail = f"breaker cooldown: {(until_ns - inputs.now_ns) / NS_PER_S:.2f} s left"
    elif account.ts_ns < until_ns:
        lag_s = (until_ns - account.ts_ns) / NS_PER_S
        detail = f"cooldown over; account snapshot {lag_s:.2f} s older than its end"
    else:
        return replace(state, breaker_until_ns=None), None
    return state, hold_action(Rule.GAP_BREAKER, Reason.BREAKER_COOLDOWN, detail, inputs)
