"""The risk-control layer: one pure function from a proposed target to an allowed one.

``evaluate(inputs, state, limits) -> RiskDecision`` (DESIGN.md section 4). It never raises for
bad data and never lets bad data add exposure: it **fails closed**. The decision carries the
allowed target, the trading state, every rule that acted (:class:`RuleAction`: rule family,
bounded reason code, a human detail with the numbers, target before and after) and the next
:class:`RiskState` to persist. "Exposure increase" below means ``|allowed| > |current|`` or a sign
flip.

The inputs and the persisted state are in :mod:`~scaler.domain.risk_state`, the stateless rules
in :mod:`~scaler.domain.risk_rules` and the gap breaker's bookkeeping in
:mod:`~scaler.domain.breaker`; this module orders them.

Rules, in order (the ``Rule`` family in brackets):

1. **Input validation** [validation]. Proposed target, current position or lot size not finite
   (lot not positive); no market snapshot (``no_market_data``) or no account snapshot
   (``no_account_data``); a snapshot failing :mod:`scaler.domain.validation` (non-finite,
   non-positive price, crossed book, absurd funding, bad interval, a mark more than
   ``max_mark_index_ratio`` from its index) or stamped more than ``max_clock_skew_s`` in the
   future (``invalid_input``); a newer snapshot that the caller rejected as implausible
   (``RiskInputs.rejected_market``: the venue values the account at that mark, so the equity
   is not believable either; ``implausible_mark``) -> ``FROZEN``.
2. **Operator halt / daily loss** [operator, daily_loss]. A halted state -> ``HALTED`` whatever
   else is wrong. Daily loss: the baseline is the equity at the first valid evaluation of each
   UTC day (``day_index = now_ns // 86_400 s``) or the first after :func:`resume`; equity below
   ``baseline x (1 − daily_loss_limit_fraction)`` halts with ``daily_loss_limit``. No check while
   the baseline is not positive (nothing left to protect; the leverage cap already gives 0).
   ``HALTED`` adds no exposure and sends nothing except safety reductions: with valid inputs
   the maintenance-margin and liquidation-distance rules (5 and 7) still run on the current
   position, and a reduction they demand is allowed reduce-only (a halted position is never
   left to be liquidated).
3. **Stale feeds** [stale_feed]. Ages against ``now_ns``: mark ``now − ts_recv_ns`` (when *we*
   received it), funding ``now − ts_funding_ns``, account ``now − ts_ns``; strictly older than
   the limit -> ``FROZEN`` (``stale_mark`` / ``stale_funding`` / ``stale_account``, one action
   each). A funding override (:func:`override_funding`) active while ``now < override_until_ns``
   replaces ``stale_funding`` by a non-freezing ``funding_override`` action; it never covers a
   stale mark or account. An expired override is cleared from the state.
4. **Gap breaker** [gap_breaker]. On each *new* mark (``ts_recv_ns`` later than the last one
   seen; a repeated snapshot changes nothing): ``|mark/last_mark − 1|`` or
   ``|mark/anchor − 1|`` above ``gap_threshold`` (``gap_breaker``), where the anchor is the first
   mark of the current tumbling ``gap_window_s`` window, or ``|mark/index − 1|`` above
   ``max_index_divergence`` (``index_divergence``) trips the breaker: ``breaker_until = now +
   cooldown``, the window re-anchors at this mark, ``breaker_trips`` counts the trip unless the
   breaker was already on (then the deadline only moves). While ``now < breaker_until`` ->
   ``FROZEN`` ``breaker_cooldown``; afterwards still ``FROZEN`` until an account snapshot with
   ``ts_ns >= breaker_until`` arrives (margins recomputed), then the breaker clears. The gap
   check and mark tracking run on every evaluation with a valid market snapshot, even when the
   account is missing; trips are recorded while halted too. There is no age limit on
   ``last_mark``: a jump across a feed outage or a restart is a gap. Windows tumble: a slow
   drift split across two windows is caught only by the per-tick check.
   **Confirming a jump.** A gap (not a divergence alone) seen while no jump is pending starts
   one: the price before it (the last mark for a one-tick gap, else the window's anchor) is the
   reference, the new mark the level. On each later new mark: within
   ``price_confirm_tolerance`` of the reference -> the jump is discarded (``price_returned``);
   farther than that from the level -> the level moves to this mark and its hold restarts;
   else, once the level has held for :func:`~scaler.domain.risk_rules.confirmation_window_s`
   (``base x (ln(level/reference) / ln(1 + gap_threshold))²`` within ``[price_confirm_base_s,
   price_confirm_max_s]``) -> confirmed (``price_confirmed``). :func:`resume` accepts the
   market as it stands. While a jump is pending (``unconfirmed_price``, also after the
   cooldown) the size formula's target is ignored: ``FROZEN`` at the current size, or
   ``REDUCING`` reduce-only when maintenance margin, the caps or the liquidation floor (rules 5
   to 7) demand less, each judged at the mark and again at the reference on the equity
   revalued there (``equity + current x (1/mark − 1/reference)``), the smaller size winning.
   ``HALTED`` safety reductions are judged at both prices too. The jump is persisted.
   Rules 3 and 4 both run; either freezes. ``FROZEN``: ``allowed == current``.
5. **Maintenance margin** [maintenance_margin]. ``ratio = equity / MM(current)`` (the venue's
   figure when reported, else the schedule's at the mark); below ``mm_buffer`` the target is at
   most ``current x ratio / mm_buffer`` on the current side (or flat) -> ``REDUCING``.
6. **Caps** [caps]. ``|target| <= max_position_usd``, ``<= max_notional_coin x mark``,
   ``<= max_leverage x equity x mark`` (0 with no positive equity); one action per binding cap.
7. **Liquidation floor** [liquidation_distance]. The target held with the whole equity as
   collateral and entry at the mark must have ``liquidation_distance >= min_liquidation_distance``;
   else the largest safe whole-lot size (bisection, only when the check fails; a closed-form
   sufficient test skips the exact solve on the happy path). An LP already on the wrong side
   of the mark counts as distance 0.
   A cap or the floor that leaves a pure reduction (``|allowed| < |current|`` on the same side)
   -> ``REDUCING``. A capped sign flip stays ``ACTIVE``.
8. **Spread guard** [spread_guard]. ``spread_bps > max_spread_bps``: an exposure increase is
   deferred (hold current; on a flip, go flat); reductions never are. ``ACTIVE`` only.
9. **Dead band** [dead_band]. ``ACTIVE`` only: ``|allowed − current| < max(dead_band_min_usd,
   dead_band_fraction x |allowed|, one lot)`` -> ``allowed = current``; a small *reduction* is
   skipped only when the current size itself passes the caps and the floor.

Finally a target that is not exactly ``current`` is rounded toward zero to whole lots (never past
a cap; not reported as an action). In ``REDUCING`` ``|allowed| <= |current|`` on the same side.
In ``FROZEN`` / ``HALTED`` the held current size may itself be above a cap: no order is sent,
and the caps apply again at the next trading decision.
``reduce_only`` is true in ``REDUCING`` and for a safety reduction in ``HALTED``. A
``ValueError`` or ``ArithmeticError`` from numbers no check anticipated (overflow at the edges
of the float range) becomes ``FROZEN`` ``invalid_input`` (``HALTED`` if halted): the layer
never raises on data.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from scaler.domain.breaker import breaker_status, hold_action, track_marks, unconfirmed_action
from scaler.domain.risk_rules import (
    Reason,
    RiskLimits,
    Rule,
    RuleAction,
    cap_rules,
    check_account,
    check_market,
    check_numbers,
    check_rejected,
    dead_band_rule,
    liquidation_floor_rule,
    maintenance_margin_rule,
    reduces_same_side,
    round_toward_zero,
    spread_guard_rule,
)
from scaler.domain.risk_state import RiskInputs, RiskState, require_int
from scaler.domain.types import NS_PER_S, AccountSnapshot, MarketSnapshot, TradingState

__all__ = [
    "Reason",
    "RiskDecision",
    "RiskInputs",
    "RiskLimits",
    "RiskState",
    "Rule",
    "RuleAction",
    "clear_override",
    "evaluate",
    "halt",
    "override_funding",
    "resume",
]

NS_PER_DAY = 86_400 * NS_PER_S
_ACTIVE, _REDUCING = TradingState.ACTIVE, TradingState.REDUCING
_FROZEN, _HALTED = TradingState.FROZEN, TradingState.HALTED
_NO_ACTIONS: tuple[RuleAction, ...] = ()


@dataclass(frozen=True, slots=True)
class RiskDecision:
    """The outcome of one evaluation: what may be held, in which state, and why."""

    proposed_target_usd: float
    allowed_target_usd: float
    current_position_usd: float
    trading_state: TradingState
    actions: tuple[RuleAction, ...]
    state: RiskState
    reduce_only: bool

    @property
    def reasons(self) -> tuple[Reason, ...]:
        """The reason codes of every rule that acted, in rule order."""
        return tuple(action.reason for action in self.actions)

    @property
    def may_send_orders(self) -> bool:
        """``ACTIVE`` or ``REDUCING``, or ``HALTED`` with a safety reduction (reduce-only);
        the mode (auto / recommend) is decided elsewhere."""
        if self.trading_state is _HALTED:
            return self.reduce_only
        return self.trading_state is _ACTIVE or self.trading_state is _REDUCING

    @property
    def changed_target(self) -> bool:
        """Whether some rule changed the target (lot rounding alone does not count)."""
        return any(a.target_after_usd != a.target_before_usd for a in self.actions)


# --- operator functions ---------------------------------------------------------------------


def halt(state: RiskState, reason: Reason = Reason.OPERATOR_HALT) -> RiskState:
    """Halt (no orders until :func:`resume`); halting a halted state keeps its first reason."""
    if not isinstance(reason, Reason):
        raise ValueError(f"reason must be a Reason, got {reason!r}")
    if state.halted:
        return state
    return replace(state, halted=True, halt_reason=reason, trading_state=_HALTED)


def resume(state: RiskState) -> RiskState:
    """Clear the halt, the breaker and an unconfirmed jump; the daily baseline re-anchors at
    the next evaluation.

    Resuming is the operator's confirmation of the market as it stands: the last mark seen
    becomes the price later marks are judged against, whatever jump led to it.
    ``breaker_trips`` is a counter and stays. The next evaluation decides the trading state.
    """
    return replace(
        state,
        halted=False,
        halt_reason=None,
        breaker_until_ns=None,
        jump_reference_price=None,
        ts_jump_reference_ns=None,
        jump_level_price=None,
        ts_jump_level_ns=None,
        day_index=None,
        day_start_equity_coin=None,
        trading_state=_FROZEN,
    )


def override_funding(state: RiskState, until_ns: int) -> RiskState:
    """Proceed on the last known funding rate while only funding is stale, until ``until_ns``."""
    require_int("until_ns", until_ns)
    return replace(state, override_until_ns=until_ns)


def clear_override(state: RiskState) -> RiskState:
    """End a funding override now."""
    return replace(state, override_until_ns=None) if state.override_until_ns is not None else state


# --- evaluation -----------------------------------------------------------------------------


def evaluate(inputs: RiskInputs, state: RiskState, limits: RiskLimits) -> RiskDecision:
    """The allowed target and trading state for ``inputs``; never raises on bad data."""
    try:
        return _evaluate(inputs, state, limits)
    except (ValueError, ArithmeticError) as exc:
        # Fail closed on numbers no check anticipated (float-range overflow, a hand-built state).
        detail = f"evaluation failed: {type(exc).__name__}: {exc}"[:160]
        action = hold_action(Rule.VALIDATION, Reason.INVALID_INPUT, detail, inputs)
        return _hold(inputs, state, _HALTED if state.halted else _FROZEN, (action,))


def _evaluate(inputs: RiskInputs, state: RiskState, limits: RiskLimits) -> RiskDecision:
    now_ns, market, account = inputs.now_ns, inputs.market, inputs.account
    if state.override_until_ns is not None and now_ns >= state.override_until_ns:
        state = replace(state, override_until_ns=None)
    market_problem = check_market(market, now_ns, limits)
    if market_problem is None and market is not None and inputs.rejected_market is not None:
        market_problem = check_rejected(market, inputs.rejected_market)
    if state.halted and account is not None and state.breaker_until_ns is not None:
        state, _ = breaker_status(state, account, inputs)  # an expired trip ends while halted
    trips = notes = _NO_ACTIONS
    if market_problem is None and market is not None:
        state, trips, notes = track_marks(state, market, inputs, limits)
        if state.jump_reference_price is not None:
            notes = (*notes, unconfirmed_action(state, market.mark_price, inputs, limits))
    problems = _input_actions(inputs, market_problem, limits)
    if state.halted:
        actions = (*problems, *trips, *notes, _halt_action(state, inputs))
        return _halted(inputs, state, actions, bool(problems), limits)
    if problems or market is None or account is None:
        return _hold(inputs, state, _FROZEN, (*problems, *trips, *notes))
    state, loss = _daily_loss(state, account.equity_coin, inputs, limits)
    if loss is not None:
        return _halted(inputs, state, (loss, *trips, *notes), False, limits)
    stale, frozen = _stale_actions(state, market, account, inputs, limits)
    cooldown = None
    if not trips:
        state, cooldown = breaker_status(state, account, inputs)
    if frozen or trips or cooldown is not None:
        holds = (*stale, *trips, *notes) if cooldown is None else (*stale, cooldown, *notes)
        return _hold(inputs, state, _FROZEN, holds)
    prior = (*stale, *notes) if notes else stale
    if state.jump_reference_price is not None:
        return _unconfirmed(inputs, market, account, state, prior, limits)
    return _limit(inputs, market, account, state, prior, limits)


def _halted(
    inputs: RiskInputs,
    state: RiskState,
    actions: tuple[RuleAction, ...],
    bad_input: bool,
    limits: RiskLimits,
) -> RiskDecision:
    """HALTED: no order that adds or holds exposure, but the safety rules still shrink it.

    A halt that froze a position in place would let it be liquidated (the 12 March 2020
    replay showed exactly that), so with trustworthy inputs the maintenance-margin and
    liquidation-distance rules are applied to the current position and any reduction they
    demand is allowed, reduce-only. With bad or missing inputs nothing is sent.
    """
    market, account = inputs.market, inputs.account
    current = inputs.current_position_usd
    if bad_input or market is None or account is None or current == 0.0:
        return _hold(inputs, state, _HALTED, actions)
    stale, frozen = _stale_actions(state, market, account, inputs, limits)
    if frozen:
        return _hold(inputs, state, _HALTED, (*actions, *stale))
    return _cut_or_hold(inputs, market, account, state, actions, limits, _HALTED, _HALTED)


def _unconfirmed(
    inputs: RiskInputs,
    market: MarketSnapshot,
    account: AccountSnapshot,
    state: RiskState,
    prior: tuple[RuleAction, ...],
    limits: RiskLimits,
) -> RiskDecision:
    """A jump not yet confirmed: hold (``FROZEN``), or a safety reduction (``REDUCING``).

    The size formula's target is not used: it was computed at a price nobody has confirmed
    (a long's USD target grows with the mark). Only maintenance margin, the caps and the
    liquidation floor may shrink the current position, each judged at the mark *and* at the
    last confirmed price, whichever is worse: the venue liquidates on its own mark, believed
    or not.
    """
    return _cut_or_hold(inputs, market, account, state, prior, limits, _FROZEN, _REDUCING)


def _cut_or_hold(
    inputs: RiskInputs,
    market: MarketSnapshot,
    account: AccountSnapshot,
    state: RiskState,
    actions: tuple[RuleAction, ...],
    limits: RiskLimits,
    holding: TradingState,
    cutting: TradingState,
) -> RiskDecision:
    """Hold the position in ``holding``, or cut it reduce-only in ``cutting`` when the safety
    rules demand less (with the caps unless halted, whose rules 5 and 7 are the documented
    ones)."""
    current = inputs.current_position_usd
    allowed, safety = _safety_reduction(
        inputs, market, account, state.jump_reference_price, limits, caps=cutting is not _HALTED
    )
    if not safety or not reduces_same_side(allowed, current):
        return _hold(inputs, state, holding, actions)
    if state.trading_state is not cutting:
        state = replace(state, trading_state=cutting)
    return RiskDecision(
        inputs.proposed_target_usd, allowed, current, cutting, (*actions, *safety), state, True
    )


def _safety_reduction(
    inputs: RiskInputs,
    market: MarketSnapshot,
    account: AccountSnapshot,
    reference: float | None,
    limits: RiskLimits,
    *,
    caps: bool,
) -> tuple[float, tuple[RuleAction, ...]]:
    """The current position as the safety rules leave it, in whole lots, and their actions.

    Maintenance margin (the venue's figure when reported), optionally the caps, then the
    liquidation floor, at the mark. With a ``reference`` (the last confirmed price of an
    unconfirmed jump) the same rules run again at that price, on the equity revalued there
    (``equity + current x (1/mark − 1/reference)``), and the smaller size wins.
    """
    current, mark, equity = inputs.current_position_usd, market.mark_price, account.equity_coin
    mm_coin = account.maintenance_margin_coin
    target, actions = _safety_at(current, current, mark, equity, mm_coin, inputs, limits, caps)
    if reference is not None:
        equity_there = equity + current * (1.0 / mark - 1.0 / reference)
        target, there = _safety_at(
            target, current, reference, equity_there, None, inputs, limits, caps
        )
        prefix = f"at the last confirmed {reference:,.2f}: "
        actions = (*actions, *(replace(a, detail=prefix + a.detail) for a in there))
    return round_toward_zero(target, inputs.lot_size_usd), actions


def _safety_at(
    target: float,
    current: float,
    price: float,
    equity: float,
    mm_coin: float | None,
    inputs: RiskInputs,
    limits: RiskLimits,
    caps: bool,
) -> tuple[float, tuple[RuleAction, ...]]:
    schedule = inputs.schedule
    target, mm = maintenance_margin_rule(target, current, price, equity, mm_coin, schedule, limits)
    capped: tuple[RuleAction, ...] = ()
    if caps:
        target, capped = cap_rules(target, price, equity, limits)
    target, floor = liquidation_floor_rule(
        target, price, equity, schedule, inputs.lot_size_usd, limits
    )
    if mm is None and floor is None and not capped:
        return target, _NO_ACTIONS
    return target, tuple(a for a in (mm, *capped, floor) if a is not None)


def _hold(
    inputs: RiskInputs,
    state: RiskState,
    trading_state: TradingState,
    actions: tuple[RuleAction, ...],
) -> RiskDecision:
    """No orders: the allowed target is the current position, exactly."""
    if state.trading_state is not trading_state:
        state = replace(state, trading_state=trading_state)
    current = inputs.current_position_usd
    return RiskDecision(
        inputs.proposed_target_usd, current, current, trading_state, actions, state, False
    )


def _input_actions(
    inputs: RiskInputs, market_problem: tuple[Reason, str] | None, limits: RiskLimits
) -> tuple[RuleAction, ...]:
    problems = []
    numbers = check_numbers(
        inputs.proposed_target_usd, inputs.current_position_usd, inputs.lot_size_usd
    )
    if numbers is not None:
        problems.append((Reason.INVALID_INPUT, numbers))
    if market_problem is not None:
        problems.append(market_problem)
    account_problem = check_account(inputs.account, inputs.now_ns, limits)
    if account_problem is not None:
        problems.append(account_problem)
    if not problems:
        return _NO_ACTIONS
    return tuple(hold_action(Rule.VALIDATION, r, d, inputs) for r, d in problems)


def _halt_action(state: RiskState, inputs: RiskInputs) -> RuleAction:
    reason = state.halt_reason or Reason.OPERATOR_HALT
    rule = Rule.DAILY_LOSS if reason is Reason.DAILY_LOSS_LIMIT else Rule.OPERATOR
    return hold_action(rule, reason, f"halted ({reason}); an operator must resume", inputs)


def _daily_loss(
    state: RiskState, equity_coin: float, inputs: RiskInputs, limits: RiskLimits
) -> tuple[RiskState, RuleAction | None]:
    day = inputs.now_ns // NS_PER_DAY
    baseline = state.day_start_equity_coin
    if state.day_index != day or baseline is None:
        return replace(state, day_index=day, day_start_equity_coin=equity_coin), None
    floor_coin = baseline * (1.0 - limits.daily_loss_limit_fraction)
    if baseline <= 0.0 or equity_coin >= floor_coin:
        return state, None
    detail = (
        f"equity {equity_coin:.6f} < {floor_coin:.6f} coin "
        f"(day start {baseline:.6f}, limit {limits.daily_loss_limit_fraction:.1%})"
    )
    action = hold_action(Rule.DAILY_LOSS, Reason.DAILY_LOSS_LIMIT, detail, inputs)
    return halt(state, Reason.DAILY_LOSS_LIMIT), action


def _stale_actions(
    state: RiskState,
    market: MarketSnapshot,
    account: AccountSnapshot,
    inputs: RiskInputs,
    limits: RiskLimits,
) -> tuple[tuple[RuleAction, ...], bool]:
    """Stale-feed actions and whether any of them freezes (an override does not)."""
    now_ns = inputs.now_ns
    mark_age_ns = now_ns - market.ts_recv_ns
    funding_age_ns = now_ns - market.ts_funding_ns
    account_age_ns = now_ns - account.ts_ns
    if (
        mark_age_ns <= limits.stale_mark_after_s * NS_PER_S
        and funding_age_ns <= limits.stale_funding_after_s * NS_PER_S
        and account_age_ns <= limits.stale_account_after_s * NS_PER_S
    ):
        return _NO_ACTIONS, False  # the per-tick path allocates nothing
    checks = (
        (Reason.STALE_MARK, "mark", mark_age_ns, limits.stale_mark_after_s),
        (Reason.STALE_FUNDING, "funding", funding_age_ns, limits.stale_funding_after_s),
        (Reason.STALE_ACCOUNT, "account", account_age_ns, limits.stale_account_after_s),
    )
    actions = []
    for reason, feed, age_ns, limit_s in checks:
        if age_ns <= limit_s * NS_PER_S:
            continue
        detail = f"{feed} age {age_ns / NS_PER_S:.2f} s > {limit_s:.2f} s"
        if reason is Reason.STALE_FUNDING and state.override_until_ns is not None:
            left_s = (state.override_until_ns - now_ns) / NS_PER_S
            detail += f"; override: last rate {market.funding_rate:.6f} for {left_s:.2f} s"
            proposed = inputs.proposed_target_usd
            override = Reason.FUNDING_OVERRIDE
            actions.append(RuleAction(Rule.STALE_FEED, override, detail, proposed, proposed))
        else:
            actions.append(hold_action(Rule.STALE_FEED, reason, detail, inputs))
    frozen = any(action.reason is not Reason.FUNDING_OVERRIDE for action in actions)
    return tuple(actions), frozen


def _limit(
    inputs: RiskInputs,
    market: MarketSnapshot,
    account: AccountSnapshot,
    state: RiskState,
    prior: tuple[RuleAction, ...],
    limits: RiskLimits,
) -> RiskDecision:
    """Rules 5 to 9 and lot rounding, on inputs that passed rules 1 to 4."""
    current, mark, equity = inputs.current_position_usd, market.mark_price, account.equity_coin
    schedule, lot = inputs.schedule, inputs.lot_size_usd
    mm_coin = account.maintenance_margin_coin
    target, mm = maintenance_margin_rule(
        inputs.proposed_target_usd, current, mark, equity, mm_coin, schedule, limits
    )
    target, caps = cap_rules(target, mark, equity, limits)
    target, floor = liquidation_floor_rule(target, mark, equity, schedule, lot, limits)
    limited = bool(caps) or floor is not None
    reducing = mm is not None or (limited and reduces_same_side(target, current))
    spread = band = None
    if not reducing:
        target, spread = spread_guard_rule(target, current, market.spread_bps, limits)
        target, band = dead_band_rule(target, current, mark, equity, schedule, lot, limits)
    actions = prior
    if mm is not None or limited or spread is not None or band is not None:
        acted = (mm, *caps, floor, spread, band)
        actions = (*prior, *(a for a in acted if a is not None))
    return _decide(inputs, state, target, reducing, actions)


def _decide(
    inputs: RiskInputs,
    state: RiskState,
    target_usd: float,
    reducing: bool,
    actions: tuple[RuleAction, ...],
) -> RiskDecision:
    """Round to whole lots (unless holding exactly) and build an ACTIVE/REDUCING decision."""
    current = inputs.current_position_usd
    allowed = (
        target_usd if target_usd == current else round_toward_zero(target_usd, inputs.lot_size_usd)
    )
    if reducing and abs(allowed) > abs(current):
        allowed = current  # float noise only: never above the current size while reducing
    trading_state = _REDUCING if reducing else _ACTIVE
    if state.trading_state is not trading_state:
        state = replace(state, trading_state=trading_state)
    return RiskDecision(
        inputs.proposed_target_usd, allowed, current, trading_state, actions, state, reducing
    )
