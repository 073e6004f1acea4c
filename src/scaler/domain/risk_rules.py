"""Reason codes, limits and the stateless rules of the risk-control layer.

:mod:`scaler.domain.risk` is the entry point: it orders these rules, keeps the persisted state
(halt, breaker, gap window, daily baseline, funding override) and documents the semantics. This
module holds what needs no state: the input checks, maintenance margin, caps, the
liquidation-distance floor, the spread guard, the dead band and lot rounding. Each rule takes
the target as it stands after the rules before it and returns the new target and the
:class:`RuleAction` that explains the change, or ``None`` when it did not act.

Every function here is pure and cheap on its happy path: no allocation unless a rule acts, and
the liquidation floor bisects only when the target fails it.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

from scaler.domain.inverse import (
    LINEAR_MMR_CAP,
    LinearMargin,
    MarginSchedule,
    liquidation_distance,
    margin_ratio,
    schedule_liquidation_price,
    schedule_maintenance_margin_coin,
)
from scaler.domain.types import NS_PER_S, AccountSnapshot, MarketSnapshot
from scaler.domain.validation import validate_account, validate_market

DUST_USD = 1e-6
"""Sizes below a micro-dollar are float residue, never a position to liquidate."""


class Rule(enum.StrEnum):
    """The rule family that acted (a metric label value)."""

    VALIDATION = "validation"
    STALE_FEED = "stale_feed"
    GAP_BREAKER = "gap_breaker"
    MAINTENANCE_MARGIN = "maintenance_margin"
    CAPS = "caps"
    LIQUIDATION_DISTANCE = "liquidation_distance"
    DAILY_LOSS = "daily_loss"
    OPERATOR = "operator"
    DEAD_BAND = "dead_band"
    SPREAD_GUARD = "spread_guard"


class Reason(enum.StrEnum):
    """Why a rule acted (a bounded metric label value)."""

    INVALID_INPUT = "invalid_input"
    NO_MARKET_DATA = "no_market_data"
    NO_ACCOUNT_DATA = "no_account_data"
    STALE_MARK = "stale_mark"
    STALE_FUNDING = "stale_funding"
    STALE_ACCOUNT = "stale_account"
    FUNDING_OVERRIDE = "funding_override"
    GAP_BREAKER = "gap_breaker"
    INDEX_DIVERGENCE = "index_divergence"
    BREAKER_COOLDOWN = "breaker_cooldown"
    IMPLAUSIBLE_MARK = "implausible_mark"
    UNCONFIRMED_PRICE = "unconfirmed_price"
    PRICE_CONFIRMED = "price_confirmed"
    PRICE_RETURNED = "price_returned"
    MAINTENANCE_MARGIN = "maintenance_margin"
    MAX_POSITION = "max_position"
    MAX_NOTIONAL = "max_notional"
    MAX_LEVERAGE = "max_leverage"
    LIQUIDATION_DISTANCE = "liquidation_distance"
    DAILY_LOSS_LIMIT = "daily_loss_limit"
    OPERATOR_HALT = "operator_halt"
    DEAD_BAND = "dead_band"
    SPREAD_GUARD = "spread_guard"


@dataclass(frozen=True, slots=True)
class RuleAction:
    """One rule that changed the target or the trading state, with the numbers that made it act."""

    rule: Rule
    reason: Reason
    detail: str
    target_before_usd: float
    target_after_usd: float


def _require(name: str, value: float, low: float, high: float = math.inf) -> None:
    """``low <= value <= high``; NaN always fails."""
    if isinstance(value, bool) or not low <= value <= high:
        raise ValueError(f"{name} must be in [{low}, {high}], got {value!r}")


def _require_positive(name: str, value: float, allow_inf: bool = True) -> None:
    if isinstance(value, bool) or not value > 0.0 or (not allow_inf and math.isinf(value)):
        raise ValueError(f"{name} must be > 0{'' if allow_inf else ' and finite'}, got {value!r}")


@dataclass(frozen=True, slots=True)
class RiskLimits:
    """Thresholds of every rule. Fractions are plain (0.02 is 2 %); ``inf`` disables a cap.

    ``max_clock_skew_s`` (not in the original brief): a snapshot timestamp further than this
    ahead of ``now_ns`` is invalid input, so a bogus future timestamp can never make a feed look
    fresh forever.

    A jump that tripped the breaker is believed only after it has held within
    ``price_confirm_tolerance`` for :func:`confirmation_window_s` (from ``price_confirm_base_s``
    up to ``price_confirm_max_s``). ``max_mark_index_ratio``, ``max_mark_move_ratio`` and
    ``mark_move_window_s`` are the plausibility bounds of input validation
    (:func:`scaler.domain.validation.validate_market`); ``inf`` disables a ratio.
    """

    stale_mark_after_s: float = 5.0
    stale_funding_after_s: float = 600.0
    stale_account_after_s: float = 30.0
    max_abs_funding_rate: float = 0.05
    gap_threshold: float = 0.02
    gap_window_s: float = 10.0
    max_index_divergence: float = 0.03
    breaker_cooldown_s: float = 2.0
    mm_buffer: float = 2.0
    max_position_usd: float = math.inf
    max_notional_coin: float = math.inf
    max_leverage: float = 10.0
    min_liquidation_distance: float = 0.15
    daily_loss_limit_fraction: float = 0.10
    dead_band_fraction: float = 0.005
    dead_band_min_usd: float = 0.0
    max_spread_bps: float = 50.0
    max_clock_skew_s: float = 1.0
    price_confirm_base_s: float = 2.0
    price_confirm_max_s: float = 900.0
    price_confirm_tolerance: float = 0.01
    max_mark_index_ratio: float = 1.5
    max_mark_move_ratio: float = 3.0
    mark_move_window_s: float = 300.0

    def __post_init__(self) -> None:
        for name in ("stale_mark_after_s", "stale_funding_after_s", "stale_account_after_s"):
            _require_positive(name, getattr(self, name), allow_inf=False)
        _require_positive("gap_window_s", self.gap_window_s, allow_inf=False)
        for name in ("max_abs_funding_rate", "gap_threshold", "max_index_divergence"):
            _require_positive(name, getattr(self, name))
        _require_positive("max_leverage", self.max_leverage)
        _require_positive("max_spread_bps", self.max_spread_bps)
        _require("breaker_cooldown_s", self.breaker_cooldown_s, 0.0, 1e9)
        _require("max_clock_skew_s", self.max_clock_skew_s, 0.0, 1e9)
        _require("mm_buffer", self.mm_buffer, 1.0, 1e9)
        _require("max_position_usd", self.max_position_usd, 0.0)
        _require("max_notional_coin", self.max_notional_coin, 0.0)
        _require("min_liquidation_distance", self.min_liquidation_distance, 0.0, 0.999)
        _require("daily_loss_limit_fraction", self.daily_loss_limit_fraction, 1e-9, 1.0)
        _require("dead_band_fraction", self.dead_band_fraction, 0.0, 0.999)
        _require("dead_band_min_usd", self.dead_band_min_usd, 0.0, 1e300)
        _require_positive("price_confirm_base_s", self.price_confirm_base_s, allow_inf=False)
        _require("price_confirm_max_s", self.price_confirm_max_s, self.price_confirm_base_s, 1e9)
        _require("price_confirm_tolerance", self.price_confirm_tolerance, 1e-9, 0.5)
        for name in ("max_mark_index_ratio", "max_mark_move_ratio"):
            _require(name, getattr(self, name), 1.0 + 1e-9)
        _require("mark_move_window_s", self.mark_move_window_s, 0.0, 1e9)


def increases_exposure(target_usd: float, current_usd: float) -> bool:
    """``|target| > |current|``, or a sign flip to a non-zero target."""
    if target_usd == 0.0:
        return False
    if (target_usd > 0.0) != (current_usd > 0.0) and current_usd != 0.0:
        return True
    return abs(target_usd) > abs(current_usd)


def reduces_same_side(target_usd: float, current_usd: float) -> bool:
    """``|target| < |current|`` on the current side, or to flat: a pure reduction."""
    if abs(target_usd) >= abs(current_usd):
        return False
    return target_usd == 0.0 or (target_usd > 0.0) == (current_usd > 0.0)


# --- rule 1: input validation ---------------------------------------------------------------


def check_numbers(proposed_usd: float, current_usd: float, lot_size_usd: float) -> str | None:
    """Why the plain numbers of the inputs are unusable, or ``None``."""
    if not math.isfinite(proposed_usd):
        return f"proposed target {proposed_usd!r} is not finite"
    if not math.isfinite(current_usd):
        return f"current position {current_usd!r} is not finite"
    if not (math.isfinite(lot_size_usd) and lot_size_usd > 0.0):
        return f"lot size {lot_size_usd!r} is not a finite positive number"
    return None


def check_market(
    market: MarketSnapshot | None, now_ns: int, limits: RiskLimits
) -> tuple[Reason, str] | None:
    """Why the market snapshot is unusable, or ``None``."""
    if market is None:
        return Reason.NO_MARKET_DATA, "no market snapshot"
    bad = validate_market(
        market, None, limits.max_abs_funding_rate, max_mark_index_ratio=limits.max_mark_index_ratio
    )
    if bad is not None:
        return Reason.INVALID_INPUT, f"market snapshot rejected: {bad}"
    skew_ns = limits.max_clock_skew_s * NS_PER_S
    if market.ts_recv_ns - now_ns > skew_ns:
        ahead_s = (market.ts_recv_ns - now_ns) / NS_PER_S
        return Reason.INVALID_INPUT, f"market received {ahead_s:.2f} s in the future"
    if market.ts_funding_ns - now_ns > skew_ns:
        ahead_s = (market.ts_funding_ns - now_ns) / NS_PER_S
        return Reason.INVALID_INPUT, f"funding timestamp {ahead_s:.2f} s in the future"
    return None


def check_rejected(
    market: MarketSnapshot, rejected: MarketSnapshot | None
) -> tuple[Reason, str] | None:
    """Why the last accepted snapshot may not be traded on: the feed's latest one, newer,
    was rejected as implausible (the venue's equity is valued at that mark)."""
    if rejected is None or rejected.ts_recv_ns <= market.ts_recv_ns:
        return None
    detail = (
        f"latest mark {rejected.mark_price:,.2f} (index {rejected.index_price:,.2f}) rejected "
        f"as implausible against {market.mark_price:,.2f}; waiting for a plausible one"
    )
    return Reason.IMPLAUSIBLE_MARK, detail


def check_account(
    account: AccountSnapshot | None, now_ns: int, limits: RiskLimits
) -> tuple[Reason, str] | None:
    """Why the account snapshot is unusable, or ``None``."""
    if account is None:
        return Reason.NO_ACCOUNT_DATA, "no account snapshot"
    bad = validate_account(account, None)
    if bad is not None:
        return Reason.INVALID_INPUT, f"account snapshot rejected: {bad}"
    if account.ts_ns - now_ns > limits.max_clock_skew_s * NS_PER_S:
        ahead_s = (account.ts_ns - now_ns) / NS_PER_S
        return Reason.INVALID_INPUT, f"account timestamp {ahead_s:.2f} s in the future"
    return None


# --- rule 4: confirming a jump --------------------------------------------------------------


def confirmation_window_s(level_price: float, reference_price: float, limits: RiskLimits) -> float:
    """How long the mark must hold near ``level_price`` before a jump from ``reference_price``
    is believed: ``base x (jump / threshold)²``, bounded to ``[base, max]``.

    ``jump = |ln(level / reference)|`` and ``threshold = ln(1 + gap_threshold)``, so a jump of
    exactly the gap threshold holds for ``price_confirm_base_s`` and one ``k`` times larger for
    ``k²`` times as long: the time a price moving by the threshold every base interval, like a
    random walk, needs to make such a move ordinary. A log ratio treats a 10x spike and a fall
    to a tenth alike. When the threshold comes to scale with the square root of the time
    between observations, this is the time at which the jump stops being a gap.
    """
    base_s = limits.price_confirm_base_s
    excess = abs(math.log(level_price / reference_price)) / math.log1p(limits.gap_threshold)
    return min(limits.price_confirm_max_s, base_s * max(1.0, excess * excess))


# --- rule 5: maintenance margin -------------------------------------------------------------


def maintenance_margin_rule(
    target_usd: float,
    current_usd: float,
    mark_price: float,
    equity_coin: float,
    reported_mm_coin: float | None,
    schedule: MarginSchedule,
    limits: RiskLimits,
) -> tuple[float, RuleAction | None]:
    """Below ``mm_buffer`` x maintenance, cap the target at ``current x ratio / mm_buffer``.

    The maintenance margin of the *current* position is the venue's figure when it reports one,
    else the schedule's at the mark. The result stays on the current side (or goes flat) and
    never above the proposed reduction: a strategy that wants to cut deeper may.
    """
    if reported_mm_coin is not None:
        mm_coin = reported_mm_coin
    elif current_usd == 0.0:
        return target_usd, None
    else:
        value_coin = abs(current_usd) / mark_price
        if equity_coin >= limits.mm_buffer * value_coin * max_mmr(schedule, value_coin):
            return target_usd, None  # fast path: MM <= value x highest rate, so ratio >= buffer
        mm_coin = schedule_maintenance_margin_coin(schedule, current_usd, mark_price)
    ratio = margin_ratio(equity_coin, mm_coin)
    if ratio >= limits.mm_buffer:
        return target_usd, None
    scale = max(ratio, 0.0) / limits.mm_buffer
    after = 0.0
    if current_usd != 0.0:
        side = 1.0 if current_usd > 0.0 else -1.0
        after = side * min(abs(current_usd) * scale, max(target_usd * side, 0.0))
    detail = f"margin ratio {ratio:.2f} < buffer {limits.mm_buffer:.2f}; scale {scale:.3f}"
    action = RuleAction(
        Rule.MAINTENANCE_MARGIN, Reason.MAINTENANCE_MARGIN, detail, target_usd, after
    )
    return after, action


def max_mmr(schedule: MarginSchedule, value_coin: float) -> float:
    """An upper bound of the maintenance rate for a position worth at most ``value_coin``.

    Deductions are never negative, so ``MM <= value x max_mmr`` under every tier.
    """
    if isinstance(schedule, LinearMargin):
        return min(schedule.base_mmr + schedule.mmr_per_coin * value_coin, LINEAR_MMR_CAP)
    return schedule.tiers[-1].mmr


# --- rule 6: caps ---------------------------------------------------------------------------


def leverage_cap_usd(mark_price: float, equity_coin: float, limits: RiskLimits) -> float:
    """The largest ``|target|`` the leverage cap allows: ``max_leverage x equity x mark``."""
    return limits.max_leverage * equity_coin * mark_price if equity_coin > 0.0 else 0.0


def cap_rules(
    target_usd: float, mark_price: float, equity_coin: float, limits: RiskLimits
) -> tuple[float, tuple[RuleAction, ...]]:
    """Clamp ``|target|`` to max position, max notional and max leverage; one action per cap."""
    size = abs(target_usd)
    position_cap = limits.max_position_usd
    notional_cap = limits.max_notional_coin * mark_price
    leverage_cap = leverage_cap_usd(mark_price, equity_coin, limits)
    if size <= position_cap and size <= notional_cap and size <= leverage_cap:
        return target_usd, ()
    side = 1.0 if target_usd > 0.0 else -1.0
    actions: list[RuleAction] = []
    if size > position_cap:
        detail = f"position {size:.2f} USD > max {position_cap:.2f} USD"
        actions.append(
            RuleAction(Rule.CAPS, Reason.MAX_POSITION, detail, side * size, side * position_cap)
        )
        size = position_cap
    if size > notional_cap:
        detail = f"notional {size / mark_price:.6f} coin > max {limits.max_notional_coin:.6f} coin"
        actions.append(
            RuleAction(Rule.CAPS, Reason.MAX_NOTIONAL, detail, side * size, side * notional_cap)
        )
        size = notional_cap
    if size > leverage_cap:
        detail = _leverage_detail(size, mark_price, equity_coin, limits)
        actions.append(
            RuleAction(Rule.CAPS, Reason.MAX_LEVERAGE, detail, side * size, side * leverage_cap)
        )
        size = leverage_cap
    return side * size if size else 0.0, tuple(actions)


def _leverage_detail(size_usd: float, mark: float, equity_coin: float, limits: RiskLimits) -> str:
    if equity_coin <= 0.0:
        return f"equity {equity_coin:.6f} coin <= 0: no exposure"
    leverage = size_usd / mark / equity_coin
    return f"leverage {leverage:.2f}x > max {limits.max_leverage:.2f}x"


# --- rule 7: liquidation-distance floor -----------------------------------------------------


def target_liquidation_distance(
    target_usd: float, mark_price: float, equity_coin: float, schedule: MarginSchedule
) -> float:
    """Liquidation distance of ``target`` held with all equity as collateral, entry at the mark.

    Equity already contains the unrealised PnL of the current position, so revaluing the whole
    target at the mark with the equity as collateral is exact. Below ``DUST_USD`` a size is
    float residue, treated as flat (the liquidation maths underflows on it). Distance 0 with no
    equity, and when the target would be at or below maintenance at the mark itself (its
    liquidation price on the wrong side of the mark, :func:`liquidation_distance`).
    """
    if abs(target_usd) < DUST_USD:
        return math.inf
    if equity_coin <= 0.0:
        return 0.0
    lp = schedule_liquidation_price(target_usd, mark_price, equity_coin, schedule)
    return liquidation_distance(mark_price, lp, target_usd)


def surely_far_from_liquidation(
    target_usd: float,
    mark_price: float,
    equity_coin: float,
    schedule: MarginSchedule,
    floor: float,
) -> bool:
    """A cheap sufficient test of ``distance >= floor`` (the exact test solves for LP).

    Equity minus maintenance margin is monotonic in the price on each side (MM grows with the
    coin value, at a rate below 1), so if the position still has equity above its maintenance
    margin at ``x0 = mark·(1 ∓ floor)``, liquidation lies beyond ``x0``. The margin at ``x0`` is
    bounded above by ``value(x0) x max_mmr``; a relative slack of 1e-9 keeps float noise on the
    safe side, and the exact test decides anything closer.
    """
    size = abs(target_usd)
    if target_usd > 0.0:
        x0 = mark_price * (1.0 - floor)
        headroom = equity_coin + size / mark_price - size / x0
    else:
        x0 = mark_price * (1.0 + floor)
        headroom = equity_coin - size / mark_price + size / x0
    value_coin = size / x0
    return headroom - value_coin * max_mmr(schedule, value_coin) > 1e-9 * (size / mark_price)


def liquidation_floor_rule(
    target_usd: float,
    mark_price: float,
    equity_coin: float,
    schedule: MarginSchedule,
    lot_size_usd: float,
    limits: RiskLimits,
) -> tuple[float, RuleAction | None]:
    """Shrink ``|target|`` to the largest whole-lot size whose liquidation distance is enough."""
    floor = limits.min_liquidation_distance
    if target_usd == 0.0 or floor <= 0.0:
        return target_usd, None
    if surely_far_from_liquidation(target_usd, mark_price, equity_coin, schedule, floor):
        return target_usd, None
    distance = target_liquidation_distance(target_usd, mark_price, equity_coin, schedule)
    if distance >= floor:
        return target_usd, None
    lots = largest_safe_lots(target_usd, mark_price, equity_coin, schedule, lot_size_usd, floor)
    after = math.copysign(lots * lot_size_usd, target_usd) if lots else 0.0
    detail = (
        f"liquidation distance {distance:.2%} < {floor:.2%}; "
        f"{abs(target_usd):.2f} -> {abs(after):.2f} USD"
    )
    action = RuleAction(
        Rule.LIQUIDATION_DISTANCE, Reason.LIQUIDATION_DISTANCE, detail, target_usd, after
    )
    return after, action


def largest_safe_lots(
    target_usd: float,
    mark_price: float,
    equity_coin: float,
    schedule: MarginSchedule,
    lot_size_usd: float,
    floor: float,
) -> int:
    """Largest ``k <= |target|/lot`` whose ``k`` lots on target's side keep ``distance >= floor``.

    Bisection keeps ``lo`` safe (0 lots always is) and ``hi`` unsafe. The search starts no
    higher than ``P·M(1+D)/D`` USD: liquidation comes no later than bankruptcy, and bankruptcy
    ``floor`` away from the mark needs ``N <= P·M(1−D)/D`` (long) or ``P·M(1+D)/D`` (short).
    """
    side = 1.0 if target_usd > 0.0 else -1.0
    bound_usd = mark_price * max(equity_coin, 0.0) * (1.0 + floor) / floor
    hi = math.floor(abs(target_usd) / lot_size_usd)
    if math.isfinite(bound_usd):
        hi = min(hi, math.floor(bound_usd / lot_size_usd) + 1)

    def safe(lots: int) -> bool:
        size_usd = side * lots * lot_size_usd
        distance = target_liquidation_distance(size_usd, mark_price, equity_coin, schedule)
        return distance >= floor

    if safe(hi):
        return hi
    lo = 0
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if safe(mid):
            lo = mid
        else:
            hi = mid
    return lo


# --- rules 8 and 9: spread guard, dead band; final rounding ---------------------------------


def spread_guard_rule(
    target_usd: float, current_usd: float, spread_bps: float, limits: RiskLimits
) -> tuple[float, RuleAction | None]:
    """With a wide spread, defer any increase: hold the current size, or go flat on a flip."""
    if spread_bps <= limits.max_spread_bps or not increases_exposure(target_usd, current_usd):
        return target_usd, None
    flip = current_usd != 0.0 and (target_usd > 0.0) != (current_usd > 0.0)
    after = 0.0 if flip else current_usd
    detail = f"spread {spread_bps:.1f} bps > {limits.max_spread_bps:.1f} bps; increase deferred"
    return after, RuleAction(Rule.SPREAD_GUARD, Reason.SPREAD_GUARD, detail, target_usd, after)


def dead_band_usd(target_usd: float, lot_size_usd: float, limits: RiskLimits) -> float:
    """``max(dead_band_min_usd, dead_band_fraction x |target|, one lot)``."""
    return max(limits.dead_band_min_usd, limits.dead_band_fraction * abs(target_usd), lot_size_usd)


def within_limits(
    size_usd: float,
    mark_price: float,
    equity_coin: float,
    schedule: MarginSchedule,
    limits: RiskLimits,
) -> bool:
    """Whether holding ``size_usd`` passes the caps and the liquidation floor."""
    size = abs(size_usd)
    if size == 0.0:
        return True
    if size > limits.max_position_usd or size > limits.max_notional_coin * mark_price:
        return False
    if size > leverage_cap_usd(mark_price, equity_coin, limits):
        return False
    floor = limits.min_liquidation_distance
    if floor <= 0.0 or surely_far_from_liquidation(
        size_usd, mark_price, equity_coin, schedule, floor
    ):
        return True  # the cheap sufficient test first; the exact solve only near the floor
    return target_liquidation_distance(size_usd, mark_price, equity_coin, schedule) >= floor


def dead_band_rule(
    target_usd: float,
    current_usd: float,
    mark_price: float,
    equity_coin: float,
    schedule: MarginSchedule,
    lot_size_usd: float,
    limits: RiskLimits,
) -> tuple[float, RuleAction | None]:
    """Skip a change smaller than the band; a small reduction only if the current size is safe."""
    change = abs(target_usd - current_usd)
    if change == 0.0:
        return target_usd, None
    band = dead_band_usd(target_usd, lot_size_usd, limits)
    if change >= band:
        return target_usd, None
    if increases_exposure(current_usd, target_usd) and not within_limits(
        current_usd, mark_price, equity_coin, schedule, limits
    ):
        return target_usd, None
    detail = f"change {change:.2f} USD < band {band:.2f} USD"
    return current_usd, RuleAction(
        Rule.DEAD_BAND, Reason.DEAD_BAND, detail, target_usd, current_usd
    )


def round_toward_zero(size_usd: float, lot_size_usd: float) -> float:
    """Whole lots, rounded toward zero, so a rounded target never passes a cap.

    No epsilon: a size a float error below a whole number of lots loses that lot, which is the
    safe side.
    """
    lots = math.floor(abs(size_usd) / lot_size_usd)
    return math.copysign(lots * lot_size_usd, size_usd) if lots else 0.0
