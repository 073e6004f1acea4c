"""Rule 4 of the risk-control layer, the gap circuit breaker: mark tracking, trips, cooldown,
and the confirmation of a jump.

:mod:`scaler.domain.risk` orders the rules and documents the semantics; this module keeps the
breaker's part of the :class:`~scaler.domain.risk_state.RiskState` up to date on every new mark.
The happy path (no gap, no jump pending) allocates one state and nothing else.
"""

from __future__ import annotations

from dataclasses import replace

from scaler.domain.risk_rules import (
    Reason,
    RiskLimits,
    Rule,
    RuleAction,
    confirmation_window_s,
)
from scaler.domain.risk_state import RiskInputs, RiskState
from scaler.domain.types import NS_PER_S, AccountSnapshot, MarketSnapshot

_NO_ACTIONS: tuple[RuleAction, ...] = ()


def hold_action(rule: Rule, reason: Reason, detail: str, inputs: RiskInputs) -> RuleAction:
    """An action that holds the position: the proposed target becomes the current one."""
    return RuleAction(rule, reason, detail, inputs.proposed_target_usd, inputs.current_position_usd)


def track_marks(
    state: RiskState, market: MarketSnapshot, inputs: RiskInputs, limits: RiskLimits
) -> tuple[RiskState, tuple[RuleAction, ...], tuple[RuleAction, ...]]:
    """Update last mark, window anchor and any unconfirmed jump on a new mark; trip the
    breaker (also when halted, so the record of the market's gaps stays complete).

    Returns the next state, the trips, and the notes (``price_confirmed``, ``price_returned``)
    of a jump that ended on this mark. A gap seen while no jump is pending starts one, judged
    against the price before it; while one is pending, :func:`_follow_jump` judges the mark.
    """
    mark, ts_ns = market.mark_price, market.ts_recv_ns
    last, ts_last = state.last_mark_price, state.ts_last_mark_ns
    anchor, ts_anchor = state.gap_anchor_price, state.ts_gap_anchor_ns
    if ts_last is not None and ts_ns <= ts_last:
        return state, _NO_ACTIONS, _NO_ACTIONS
    window_open = (
        anchor is not None
        and ts_anchor is not None
        and ts_ns - ts_anchor < limits.gap_window_s * NS_PER_S
    )
    if not window_open:
        anchor = mark
    state = _with_marks(state, mark, ts_ns, anchor, ts_ns if not window_open else None)
    notes = _NO_ACTIONS
    was_pending = state.jump_reference_price is not None
    if was_pending:
        state, notes = _follow_jump(state, mark, ts_ns, inputs, limits)
    trips = _gap_trips(mark, last, anchor, market.index_price, inputs, limits)
    if not trips:
        return state, _NO_ACTIONS, notes
    if not was_pending:
        state = _start_jump(state, mark, ts_ns, (last, ts_last), (anchor, ts_anchor), limits)
    until_ns = inputs.now_ns + round(limits.breaker_cooldown_s * NS_PER_S)
    already_on = state.breaker_until_ns is not None
    state = replace(
        state,
        breaker_until_ns=max(until_ns, state.breaker_until_ns or until_ns),
        breaker_trips=state.breaker_trips + (0 if already_on else 1),
        gap_anchor_price=mark,
        ts_gap_anchor_ns=ts_ns,
    )
    return state, trips, notes


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
        state.jump_reference_price,
        state.ts_jump_reference_ns,
        state.jump_level_price,
        state.ts_jump_level_ns,
        state.override_until_ns,
        state.day_index,
        state.day_start_equity_coin,
        state.trading_state,
    )


_Seen = tuple[float | None, int | None]


def _start_jump(
    state: RiskState, mark: float, ts_ns: int, last: _Seen, anchor: _Seen, limits: RiskLimits
) -> RiskState:
    """A gap (not a divergence alone) makes the price before it the reference of a new jump:
    the last mark for a one-tick gap, else the window's anchor."""
    threshold = limits.gap_threshold
    for price, ts_seen_ns in (last, anchor):
        if price is not None and ts_seen_ns is not None and abs(mark / price - 1.0) > threshold:
            return replace(
                state,
                jump_reference_price=price,
                ts_jump_reference_ns=ts_seen_ns,
                jump_level_price=mark,
                ts_jump_level_ns=ts_ns,
            )
    return state


def _follow_jump(
    state: RiskState, mark: float, ts_ns: int, inputs: RiskInputs, limits: RiskLimits
) -> tuple[RiskState, tuple[RuleAction, ...]]:
    """Back near the reference: the jump is discarded. Away from the level: the level moves
    and its hold starts again. Near the level for the confirmation window: confirmed."""
    reference, level, ts_level_ns = _jump(state)
    tolerance = limits.price_confirm_tolerance
    if abs(mark / reference - 1.0) <= tolerance:
        detail = (
            f"mark {mark:,.2f} back within {tolerance:.2%} of the last confirmed "
            f"{reference:,.2f}; the jump to {level:,.2f} is discarded"
        )
        return _without_jump(state), (_note(Reason.PRICE_RETURNED, detail, inputs),)
    if abs(mark / level - 1.0) > tolerance:
        return replace(state, jump_level_price=mark, ts_jump_level_ns=ts_ns), _NO_ACTIONS
    held_s = (ts_ns - ts_level_ns) / NS_PER_S
    window_s = confirmation_window_s(level, reference, limits)
    if held_s < window_s:
        return state, _NO_ACTIONS
    detail = (
        f"mark {mark:,.2f} held within {tolerance:.2%} of {level:,.2f} for {held_s:.1f} s "
        f">= {window_s:.1f} s: confirmed, {level / reference - 1.0:+.2%} from {reference:,.2f}"
    )
    return _without_jump(state), (_note(Reason.PRICE_CONFIRMED, detail, inputs),)


def _jump(state: RiskState) -> tuple[float, float, int]:
    """Reference, level and the level's start of a pending jump (``ValueError`` if torn)."""
    reference, level = state.jump_reference_price, state.jump_level_price
    ts_level_ns = state.ts_jump_level_ns
    if reference is None or level is None or ts_level_ns is None:
        raise ValueError("the jump fields of the risk state must be set together")
    return reference, level, ts_level_ns


def _without_jump(state: RiskState) -> RiskState:
    return replace(
        state,
        jump_reference_price=None,
        ts_jump_reference_ns=None,
        jump_level_price=None,
        ts_jump_level_ns=None,
    )


def _note(reason: Reason, detail: str, inputs: RiskInputs) -> RuleAction:
    """An event of the breaker that changes no target by itself."""
    proposed = inputs.proposed_target_usd
    return RuleAction(Rule.GAP_BREAKER, reason, detail, proposed, proposed)


def unconfirmed_action(
    state: RiskState, mark: float, inputs: RiskInputs, limits: RiskLimits
) -> RuleAction:
    """The hold of a pending jump, with what it waits for."""
    reference, level, ts_level_ns = _jump(state)
    held_s = ((state.ts_last_mark_ns or ts_level_ns) - ts_level_ns) / NS_PER_S
    window_s = confirmation_window_s(level, reference, limits)
    detail = (
        f"mark {mark:,.2f} is {mark / reference - 1.0:+.2%} from the last confirmed "
        f"{reference:,.2f}; no increase until it holds within "
        f"{limits.price_confirm_tolerance:.2%} of {level:,.2f} for {window_s:.1f} s "
        f"(held {held_s:.1f} s) or returns"
    )
    return hold_action(Rule.GAP_BREAKER, Reason.UNCONFIRMED_PRICE, detail, inputs)


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
