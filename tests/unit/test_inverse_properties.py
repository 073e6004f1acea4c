"""Hypothesis properties of ``scaler.domain.inverse`` (reference/inverse-contracts.md §2-4).

Strategies are bounded to realistic inputs: prices 100..1e6 USD, sizes 1..1e8 USD,
leverage 1..100 and maintenance rates 0..10 %.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from scaler.adapters.paper import BYBIT_BTC_INVERSE_TIERS
from scaler.domain.inverse import (
    LinearMargin,
    MarginSchedule,
    MmAt,
    TierTable,
    average_entry_price,
    bankruptcy_price,
    liquidation_distance,
    liquidation_price,
    pnl_coin,
    schedule_liquidation_price,
    schedule_maintenance_margin_coin,
)

pytestmark = pytest.mark.unit

prices = st.floats(min_value=100.0, max_value=1e6, allow_nan=False, allow_infinity=False)
sizes = st.floats(min_value=1.0, max_value=1e8, allow_nan=False, allow_infinity=False)
leverages = st.floats(min_value=1.0, max_value=100.0, allow_nan=False, allow_infinity=False)
mmrs = st.floats(min_value=0.0, max_value=0.1, allow_nan=False, allow_infinity=False)
sides = st.sampled_from([1.0, -1.0])
conventions = st.sampled_from(["mark", "entry"])

RELAXED = settings(deadline=None, max_examples=300)


@st.composite
def isolated_setups(draw: st.DrawFn) -> tuple[float, float, float, float]:
    """(N, E, L, m) with m·L <= 0.99, so the position is not liquidated at entry (§4.1)."""
    n, e, m = draw(sizes), draw(prices), draw(mmrs)
    l_max = 100.0 if m == 0.0 else min(100.0, 0.99 / m)
    lev = draw(st.floats(min_value=1.0, max_value=l_max))
    return n, e, lev, m


@st.composite
def leverage_pairs(draw: st.DrawFn) -> tuple[float, float, float, float, float]:
    """(N, E, m, L_low, L_high) with L_low <= L_high and m·L_high <= 0.99."""
    n, e, lev, m = draw(isolated_setups())
    other = draw(st.floats(min_value=1.0, max_value=lev))
    return n, e, m, other, lev


def _le(a: float | None, b: float | None) -> bool:
    """a <= b up to 1e-12 relative, with None meaning +inf (no liquidation price)."""
    a_ = math.inf if a is None else a
    b_ = math.inf if b is None else b
    return a_ <= b_ or math.isclose(a_, b_, rel_tol=1e-12)


# ----------------------------------------------------------------------------------------------
# PnL
# ----------------------------------------------------------------------------------------------


@RELAXED
@given(n=sizes, e=prices, p=prices)
def test_pnl_when_side_flipped_then_negated(n: float, e: float, p: float) -> None:
    """PnL is antisymmetric in side: pnl(s) == −pnl(−s)."""
    assert pnl_coin(n, e, p) == -pnl_coin(-n, e, p)


@RELAXED
@given(n=sizes, s=sides, e=prices)
def test_pnl_when_opened_and_closed_at_same_price_then_zero(n: float, s: float, e: float) -> None:
    """Opening and closing at the same price gives zero PnL."""
    assert pnl_coin(s * n, e, e) == 0.0


@RELAXED
@given(n=sizes, s=sides, e=prices, mid=prices, p=prices)
def test_pnl_when_split_at_intermediate_price_then_additive(
    n: float, s: float, e: float, mid: float, p: float
) -> None:
    """pnl(E→mid) + pnl(mid→P) == pnl(E→P): the 1/E − 1/P terms telescope."""
    scale = n / min(e, mid, p)  # magnitude of the largest term involved
    total = pnl_coin(s * n, e, mid) + pnl_coin(s * n, mid, p)
    assert math.isclose(total, pnl_coin(s * n, e, p), rel_tol=1e-12, abs_tol=1e-13 * scale)


@RELAXED
@given(n=sizes, e=prices, p=prices)
def test_pnl_when_long_and_price_rises_then_profit(n: float, e: float, p: float) -> None:
    """A long gains when the price rises and loses when it falls (sign of 1/E − 1/P)."""
    result = pnl_coin(n, e, p)
    if p > e:
        assert result > 0.0
    elif p < e:
        assert result < 0.0


# ----------------------------------------------------------------------------------------------
# liquidation
# ----------------------------------------------------------------------------------------------


@RELAXED
@given(setup=isolated_setups(), mm_at=conventions)
def test_liquidation_when_long_then_between_bankruptcy_and_entry(
    setup: tuple[float, float, float, float], mm_at: MmAt
) -> None:
    """A long with M = N/(E·L) and m < 1/L has BP <= LP < E (LP > BP when m > 0)."""
    n, e, lev, m = setup
    collateral = n / (e * lev)
    lp = liquidation_price(n, e, collateral, m, mm_at=mm_at)
    bp = bankruptcy_price(n, e, collateral)
    assert lp is not None
    assert bp is not None
    assert bp <= lp < e
    if m > 1e-9:
        assert lp > bp


@RELAXED
@given(setup=isolated_setups(), mm_at=conventions)
def test_liquidation_when_short_then_between_entry_and_bankruptcy(
    setup: tuple[float, float, float, float], mm_at: MmAt
) -> None:
    """A short with M = N/(E·L) and m < 1/L has E < LP <= BP when both exist."""
    n, e, lev, m = setup
    collateral = n / (e * lev)
    lp = liquidation_price(-n, e, collateral, m, mm_at=mm_at)
    bp = bankruptcy_price(-n, e, collateral)
    assume(lp is not None and bp is not None)
    assert lp is not None
    assert bp is not None
    assert e < lp <= bp
    if m > 1e-9:
        assert lp < bp


@RELAXED
@given(pair=leverage_pairs(), mm_at=conventions)
def test_liquidation_when_leverage_higher_then_never_further_from_entry(
    pair: tuple[float, float, float, float, float], mm_at: MmAt
) -> None:
    """Less collateral (higher L) never moves LP away from entry: long ↑ in L, short ↓ in L."""
    n, e, m, lev_low, lev_high = pair
    long_low = liquidation_price(n, e, n / (e * lev_low), m, mm_at=mm_at)
    long_high = liquidation_price(n, e, n / (e * lev_high), m, mm_at=mm_at)
    assert long_low is not None
    assert long_high is not None
    assert _le(long_low, long_high)
    short_low = liquidation_price(-n, e, n / (e * lev_low), m, mm_at=mm_at)
    short_high = liquidation_price(-n, e, n / (e * lev_high), m, mm_at=mm_at)
    assert _le(short_high, short_low)


@RELAXED
@given(setup=isolated_setups(), s=sides)
def test_liquidation_when_mark_convention_then_equity_equals_mm_at_lp(
    setup: tuple[float, float, float, float], s: float
) -> None:
    """At the mark-convention LP, M + s·N·(1/E − 1/LP) == (N/LP)·m (§4.1a)."""
    n, e, lev, m = setup
    collateral = n / (e * lev)
    lp = liquidation_price(s * n, e, collateral, m, mm_at="mark")
    assume(lp is not None)
    assert lp is not None
    equity = collateral + s * n * (1.0 / e - 1.0 / lp)
    mm = (n / lp) * m
    scale = collateral + n / e  # size of the terms summed into equity
    assert math.isclose(equity, mm, rel_tol=1e-9, abs_tol=1e-9 * scale)


@RELAXED
@given(setup=isolated_setups(), s=sides)
def test_liquidation_when_entry_convention_then_equity_equals_entry_mm_at_lp(
    setup: tuple[float, float, float, float], s: float
) -> None:
    """At the entry-convention LP, M + s·N·(1/E − 1/LP) == (N/E)·m (§4.1b)."""
    n, e, lev, m = setup
    collateral = n / (e * lev)
    lp = liquidation_price(s * n, e, collateral, m, mm_at="entry")
    assume(lp is not None)
    assert lp is not None
    equity = collateral + s * n * (1.0 / e - 1.0 / lp)
    scale = collateral + n / e
    assert math.isclose(equity, (n / e) * m, rel_tol=1e-9, abs_tol=1e-9 * scale)


@RELAXED
@given(n=sizes, e=prices, m=mmrs, s=sides, frac=st.floats(min_value=0.0, max_value=2.0))
def test_schedule_liquidation_when_flat_table_then_equals_liquidation_price(
    n: float, e: float, m: float, s: float, frac: float
) -> None:
    """schedule_liquidation_price with TierTable.flat(m) equals liquidation_price(..., m)."""
    collateral = frac * n / e
    expected = liquidation_price(s * n, e, collateral, m)
    result = schedule_liquidation_price(s * n, e, collateral, TierTable.flat(m))
    if expected is None:
        assert result is None
    else:
        assert result is not None
        assert math.isclose(result, expected, rel_tol=1e-12)


@RELAXED
@given(n=sizes, e=prices, m=mmrs, s=sides, frac=st.floats(min_value=0.0, max_value=2.0))
def test_schedule_liquidation_when_linear_slope_zero_then_equals_flat(
    n: float, e: float, m: float, s: float, frac: float
) -> None:
    """LinearMargin(m, 0) is the flat rate m."""
    collateral = frac * n / e
    expected = liquidation_price(s * n, e, collateral, m)
    result = schedule_liquidation_price(s * n, e, collateral, LinearMargin(m, 0.0))
    if expected is None:
        assert result is None
    else:
        assert result is not None
        assert math.isclose(result, expected, rel_tol=1e-12)


@RELAXED
@given(setup=isolated_setups(), s=sides)
@example(setup=(10.0, 100_000.0, 10.0, 0.0), s=1.0)  # Deribit's minimum order, 10 USD
@example(setup=(10.0, 100_000.0, 10.0, 0.0), s=-1.0)
def test_deribit_linear_liquidation_when_solved_then_equity_equals_mm(
    setup: tuple[float, float, float, float], s: float
) -> None:
    """The §4.7 root satisfies C + s·N·(1/E − 1/LP) == V·(a + b·V), V = N/LP, to 1e-9."""
    n, e, lev, _ = setup
    a, b = 0.01, 0.00005
    collateral = n / (e * lev)
    value_at_entry = n / e
    assume(collateral > value_at_entry * (a + b * value_at_entry))  # safe at entry
    lp = schedule_liquidation_price(s * n, e, collateral, LinearMargin(a, b))
    if s < 0 and collateral >= value_at_entry:
        assert lp is None
        return
    assert lp is not None
    value = n / lp
    equity = collateral + s * n * (1.0 / e - 1.0 / lp)
    scale = collateral + value_at_entry
    assert math.isclose(equity, value * (a + b * value), rel_tol=1e-9, abs_tol=1e-9 * scale)


# ----------------------------------------------------------------------------------------------
# tiered and linear schedules: equity meets maintenance at the liquidation price
# ----------------------------------------------------------------------------------------------

TIER_TABLES = {
    "binance-new": TierTable.from_rates(
        (0.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 400.0),
        (0.004, 0.005, 0.01, 0.025, 0.05, 0.10, 0.125, 0.15),
    ),
    "binance-old": TierTable.from_rates(
        (0.0, 10.0, 20.0, 30.0, 50.0, 100.0, 200.0, 400.0, 1000.0),
        (0.004, 0.005, 0.01, 0.025, 0.05, 0.10, 0.125, 0.15, 0.25),
    ),
    "default": TierTable.from_rates(
        (0.0, 150.0, 300.0, 450.0, 600.0), (0.005, 0.01, 0.015, 0.02, 0.025)
    ),
    "bybit": BYBIT_BTC_INVERSE_TIERS,
}
tier_tables = st.sampled_from(sorted(TIER_TABLES)).map(TIER_TABLES.__getitem__)
floor_offsets = st.sampled_from([0.0, 1e-15, -1e-15, 1e-12, -1e-12]) | st.floats(-0.02, 0.02)


def _headroom(
    size_usd: float, entry: float, collateral: float, schedule: MarginSchedule, p: float
) -> float:
    """Equity minus maintenance margin at price ``p``."""
    equity = collateral + size_usd * (1.0 / entry - 1.0 / p)
    return equity - schedule_maintenance_margin_coin(schedule, size_usd, p)


@st.composite
def floor_crossings(draw: st.DrawFn) -> tuple[TierTable, float, float, float, float]:
    """(table, signed N, E, C, LP): C puts the liquidation at ``floor·(1 + δ)`` BTC of value.

    ``δ`` is 0, a rounding error either side, or up to 2 % either side of one of the table's
    floors; C solves ``C + s·N·(1/E − 1/LP) = MM(LP)`` with ``E`` on the safe side of ``LP``.
    """
    table = draw(tier_tables)
    floor = table.tiers[draw(st.integers(1, len(table.tiers) - 1))].floor
    lp, s = draw(prices), draw(sides)
    n = floor * (1.0 + draw(floor_offsets)) * lp
    move = draw(st.floats(min_value=0.01, max_value=0.9))
    entry = lp / (1.0 - move) if s > 0 else lp / (1.0 + move)
    collateral = schedule_maintenance_margin_coin(table, n, lp) - s * n * (1.0 / entry - 1.0 / lp)
    return table, s * n, entry, collateral, lp


@settings(deadline=None, max_examples=2_000)
@given(case=floor_crossings())
def test_schedule_liquidation_when_near_or_on_a_tier_floor_then_equity_meets_margin_there(
    case: tuple[TierTable, float, float, float, float],
) -> None:
    """On both sides of every floor and exactly on it, LP is found and equity = MM there.

    The margin is continuous across a floor (the deductions are derived), so equity minus
    margin has a single zero: above it on the safe side of LP, below it on the other.
    """
    table, size, entry, collateral, expected = case
    lp = schedule_liquidation_price(size, entry, collateral, table)
    assert lp is not None
    assert math.isclose(lp, expected, rel_tol=1e-9)
    scale = collateral + abs(size) / entry
    assert math.isclose(_headroom(size, entry, collateral, table, lp), 0.0, abs_tol=1e-9 * scale)
    safe = lp * (1.0 + 1e-6) if size > 0 else lp * (1.0 - 1e-6)
    adverse = lp * (1.0 - 1e-6) if size > 0 else lp * (1.0 + 1e-6)
    assert _headroom(size, entry, collateral, table, safe) > 0.0
    assert _headroom(size, entry, collateral, table, adverse) < 0.0
    assert liquidation_distance(entry, lp, size) > 0.0


schedules = tier_tables | st.builds(
    LinearMargin,
    base_mmr=st.floats(min_value=0.0, max_value=0.1),
    mmr_per_coin=st.floats(min_value=0.0, max_value=0.001),
)


@RELAXED
@given(
    schedule=schedules,
    n=sizes,
    e=prices,
    s=sides,
    lev=st.floats(min_value=0.5, max_value=1_000.0),
)
def test_schedule_liquidation_when_any_collateral_then_equity_meets_margin_or_never_liquidated(
    schedule: MarginSchedule, n: float, e: float, s: float, lev: float
) -> None:
    """Equity equals maintenance at LP; None only for a short with C >= N/E; distance 0 at
    entry exactly when the position is already below maintenance there."""
    collateral = n / (e * lev)
    lp = schedule_liquidation_price(s * n, e, collateral, schedule)
    if lp is None:
        assert s < 0
        assert collateral >= n / e
        return
    scale = collateral + n / e + n / lp * 1e-6
    headroom = _headroom(s * n, e, collateral, schedule, lp)
    assert math.isclose(headroom, 0.0, abs_tol=1e-9 * scale)
    at_entry = _headroom(s * n, e, collateral, schedule, e)
    assume(abs(at_entry) > 1e-6 * scale)
    assert (liquidation_distance(e, lp, s * n) == 0.0) == (at_entry < 0.0)


# ----------------------------------------------------------------------------------------------
# harmonic average entry
# ----------------------------------------------------------------------------------------------

fills = st.lists(st.tuples(sizes, prices), min_size=1, max_size=6)


@RELAXED
@given(
    fill_list=fills,
    s=sides,
    index=st.integers(min_value=0, max_value=5),
    frac=st.floats(min_value=0.01, max_value=0.99),
)
def test_average_entry_when_fill_split_at_same_price_then_unchanged(
    fill_list: list[tuple[float, float]], s: float, index: int, frac: float
) -> None:
    """Splitting one fill into two at the same price leaves the harmonic entry unchanged."""
    signed = [(s * n, p) for n, p in fill_list]
    i = index % len(signed)
    n_i, p_i = signed[i]
    split = [*signed[:i], (n_i * frac, p_i), (n_i * (1.0 - frac), p_i), *signed[i + 1 :]]
    assert math.isclose(average_entry_price(split), average_entry_price(signed), rel_tol=1e-12)


@RELAXED
@given(fill_list=fills, s=sides)
def test_average_entry_when_any_fills_then_between_min_and_max_price(
    fill_list: list[tuple[float, float]], s: float
) -> None:
    """The harmonic average lies between the lowest and the highest fill price."""
    result = average_entry_price([(s * n, p) for n, p in fill_list])
    lo = min(p for _, p in fill_list)
    hi = max(p for _, p in fill_list)
    assert lo * (1.0 - 1e-12) <= result <= hi * (1.0 + 1e-12)
