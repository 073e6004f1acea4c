"""Table-driven examples for ``scaler.domain.inverse``.

Every expected value comes from a published exchange example quoted in
``reference/inverse-contracts.md`` (the case id names the venue and the number) or from a
derivation written out next to the case. None of them was obtained by running the code.
Where the reference prints a rounded number, the tolerance is half a unit of its last digit.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest

from scaler.domain.inverse import (
    LINEAR_MMR_CAP,
    LinearMargin,
    MmAt,
    RiskTier,
    TierBasis,
    TierTable,
    average_entry_price,
    bankruptcy_price,
    effective_leverage,
    fee_coin,
    funding_payment_coin,
    initial_margin_coin,
    liquidation_distance,
    liquidation_price,
    maintenance_margin_coin,
    margin_ratio,
    pnl_coin,
    position_value_coin,
    schedule_liquidation_price,
    schedule_maintenance_margin_coin,
)

pytestmark = pytest.mark.unit

# Reference §3.2 (derived there, not official): the two Binance COIN-M BTCUSD tables.
BINANCE_NEW_FLOORS = (0.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 400.0)
BINANCE_NEW_MMRS = (0.004, 0.005, 0.01, 0.025, 0.05, 0.10, 0.125, 0.15)
BINANCE_OLD_FLOORS = (0.0, 10.0, 20.0, 30.0, 50.0, 100.0, 200.0, 400.0, 1000.0)
BINANCE_OLD_MMRS = (0.004, 0.005, 0.01, 0.025, 0.05, 0.10, 0.125, 0.15, 0.25)
BINANCE_NEW = TierTable.from_rates(BINANCE_NEW_FLOORS, BINANCE_NEW_MMRS)
BINANCE_OLD = TierTable.from_rates(BINANCE_OLD_FLOORS, BINANCE_OLD_MMRS)

# Kraken PI_XBTUSD maintenance levels by contracts (= USD), reference §3.1:
# 0-500k 1 %, 500k-1M 2 %, 1M-3M 3 %, 3M-6M 5 %. Charged slice by slice, so the USD deductions
# are c1 = 500k·1 % = 5,000; c2 = 1M·1 % + 5,000 = 15,000; c3 = 3M·2 % + 15,000 = 75,000.
KRAKEN_USD_FLOORS = (0.0, 500_000.0, 1_000_000.0, 3_000_000.0)
KRAKEN_USD_MMRS = (0.01, 0.02, 0.03, 0.05)
KRAKEN_USD = TierTable.from_rates(KRAKEN_USD_FLOORS, KRAKEN_USD_MMRS, basis=TierBasis.USD)

DERIBIT_MM = LinearMargin(0.01, 0.00005)  # §3.2: 1 % + 0.005 % per BTC (since Jan 2022)
DERIBIT_IM = LinearMargin(0.02, 0.00005)  # §3.1: 2 % + 0.005 % per BTC

BAD_PRICES = [
    pytest.param(0.0, id="zero"),
    pytest.param(-1.0, id="negative"),
    pytest.param(math.nan, id="nan"),
    pytest.param(math.inf, id="inf"),
    pytest.param(-math.inf, id="minus-inf"),
]


def _marginal_mm(floors: tuple[float, ...], rates: tuple[float, ...], amount: float) -> float:
    """Independent tiered MM: charge each slice [floor_i, floor_{i+1}) at its own rate."""
    total = 0.0
    for i, (floor, rate) in enumerate(zip(floors, rates, strict=True)):
        top = floors[i + 1] if i + 1 < len(floors) else math.inf
        if amount > floor:
            total += (min(amount, top) - floor) * rate
    return total


def _deribit_bisect(
    size_usd: float, entry: float, collateral: float, base: float, per_coin: float
) -> float | None:
    """Independent solve of equity(P) = MM(P) for one position under a size-linear MM rate.

    equity(P) = C + s·N·(1/E − 1/P); MM(P) = V·(a + b·V) with V = N/P. Bisection on price: for a
    long the root lies in (0, E]; for a short in [E, ∞) and it does not exist if C >= N/E.
    """
    n, side = abs(size_usd), (1.0 if size_usd > 0 else -1.0)

    def gap(price: float) -> float:
        value = n / price
        equity = collateral + side * n * (1.0 / entry - 1.0 / price)
        return equity - value * (base + per_coin * value)

    assert gap(entry) > 0.0, "test setup: the position must be safe at entry"
    if side > 0:
        lo, hi = entry * 1e-9, entry
        assert gap(lo) < 0.0
    else:
        lo, hi = entry, 2.0 * entry
        for _ in range(200):
            if gap(hi) < 0.0:
                break
            lo, hi = hi, 2.0 * hi
        else:
            return None
    for _ in range(400):
        mid = 0.5 * (lo + hi)
        if mid in (lo, hi):
            break
        if (gap(mid) > 0.0) == (side > 0):
            hi = mid
        else:
            lo = mid
    return 0.5 * (lo + hi)


# ----------------------------------------------------------------------------------------------
# 2.1 position value
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size_usd", "price", "expected"),
    [
        pytest.param(15_000.0, 750.0, 20.0, id="bitmex-value-20xbt"),
        pytest.param(60_000.0, 50_000.0, 1.2, id="bybit-uta-value-1.2"),
        pytest.param(1_000.0, 8_000.0, 0.125, id="kraken-epp-value-0.125"),
        pytest.param(10_000.0, 25_000.0, 0.4, id="binance-100x100-at-25000-0.4"),
        pytest.param(-15_000.0, 750.0, 20.0, id="derived-short-value-is-abs"),
        pytest.param(0.0, 750.0, 0.0, id="derived-flat-zero"),
    ],
)
def test_position_value_coin(size_usd: float, price: float, expected: float) -> None:
    """Coin value is |N|/P (reference §2.1)."""
    assert position_value_coin(size_usd, price) == pytest.approx(expected, rel=1e-12, abs=0)


# ----------------------------------------------------------------------------------------------
# 2.2 PnL
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size_usd", "entry", "exit_", "expected", "tol"),
    [
        # 10,000·(1/5,000 − 1/6,000) = 10,000/30,000 = 1/3; page prints 0.33 / 0.333.
        pytest.param(10_000.0, 5_000.0, 6_000.0, 0.3333, 5e-5, id="kraken-pnl-0.3333"),
        pytest.param(10_000.0, 5_000.0, 6_000.0, 1.0 / 3.0, 1e-12, id="kraken-pnl-exact-1/3"),
        # 1,000·(1/5,000 − 1/5,500) = 1,000·500/27,500,000 = 1/55 = 0.0181818…; the page prints
        # 0.01819, i.e. rounded up in the last digit, so allow one unit of it (1e-5).
        pytest.param(1_000.0, 5_000.0, 5_500.0, 0.01819, 1e-5, id="bybit-upnl-0.01819"),
        pytest.param(1_000.0, 5_000.0, 5_500.0, 1.0 / 55.0, 1e-12, id="bybit-upnl-exact-1/55"),
        pytest.param(-1_000.0, 5_000.0, 5_500.0, -1.0 / 55.0, 1e-12, id="bybit-upnl-short-neg"),
        # BitMEX "# Contracts × Multiplier × (1/Entry − 1/Exit)": 15,000·(1/750 − 1/1,000)
        # = 20 − 15 = 5 XBT.
        pytest.param(15_000.0, 750.0, 1_000.0, 5.0, 1e-12, id="bitmex-formula-long-5xbt"),
        pytest.param(-15_000.0, 750.0, 1_000.0, -5.0, 1e-12, id="bitmex-formula-short-5xbt"),
        # Short falls 20 %: 1,000·(1/5,000 − 1/4,000)·(−1) = 1,000/20,000 = 0.05.
        pytest.param(-1_000.0, 5_000.0, 4_000.0, 0.05, 1e-12, id="derived-short-profit-0.05"),
        pytest.param(10_000.0, 5_000.0, 5_000.0, 0.0, 0.0, id="derived-same-price-zero"),
    ],
)
def test_pnl_coin(size_usd: float, entry: float, exit_: float, expected: float, tol: float) -> None:
    """PnL is s·N·(1/E − 1/P) (reference §2.2)."""
    assert pnl_coin(size_usd, entry, exit_) == pytest.approx(expected, rel=tol, abs=tol)


# ----------------------------------------------------------------------------------------------
# 2.3 average entry
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fills", "expected"),
    [
        # 3,000 / (1,000/5,000 + 2,000/6,000) = 3,000 / 0.533… = 5,625.
        pytest.param([(1_000.0, 5_000.0), (2_000.0, 6_000.0)], 5_625.0, id="bybit-avg-entry-5625"),
        pytest.param(
            [(-1_000.0, 5_000.0), (-2_000.0, 6_000.0)], 5_625.0, id="bybit-avg-entry-5625-short"
        ),
        pytest.param([(1_000.0, 5_000.0)], 5_000.0, id="derived-single-fill"),
        # A zero-size fill adds 0 to both sums.
        pytest.param([(0.0, 9_999.0), (1_000.0, 5_000.0)], 5_000.0, id="derived-zero-fill-ignored"),
        # 2·N / (N/4,000 + N/12,000) = 2·12,000/4 = 6,000 (arithmetic mean would be 8,000).
        pytest.param([(500.0, 4_000.0), (500.0, 12_000.0)], 6_000.0, id="derived-harmonic-6000"),
    ],
)
def test_average_entry_price(fills: list[tuple[float, float]], expected: float) -> None:
    """Average entry is the USD-weighted harmonic mean (reference §2.3)."""
    assert average_entry_price(iter(fills)) == pytest.approx(expected, rel=1e-12)


def test_average_entry_when_bybit_example_then_not_arithmetic_vwap() -> None:
    """Bybit's 5,625 is not the arithmetic VWAP 5,666.67 (reference §2.3)."""
    result = average_entry_price([(1_000.0, 5_000.0), (2_000.0, 6_000.0)])
    assert result != pytest.approx(5_666.67, abs=0.01)


@pytest.mark.parametrize(
    "fills",
    [
        pytest.param([(1_000.0, 5_000.0), (-1_000.0, 6_000.0)], id="mixed-long-then-short"),
        pytest.param([(-1_000.0, 5_000.0), (2_000.0, 6_000.0)], id="mixed-short-then-long"),
        pytest.param([], id="empty"),
        pytest.param([(0.0, 5_000.0)], id="only-zero-fills"),
        pytest.param([(1_000.0, 5_000.0), (math.nan, 6_000.0)], id="nan-size"),
    ],
)
def test_average_entry_when_invalid_fills_then_value_error(
    fills: list[tuple[float, float]],
) -> None:
    """Mixed directions, empty input or no non-zero fill raise ValueError."""
    with pytest.raises(ValueError, match=r"average_entry_price|size_usd"):
        average_entry_price(fills)


# ----------------------------------------------------------------------------------------------
# 3.1 initial margin
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size_usd", "price", "leverage", "expected"),
    [
        # 12,000 / (8,000 · 50) = 0.03.
        pytest.param(12_000.0, 8_000.0, 50.0, 0.03, id="bybit-im-0.03"),
        # BitMEX "at 100x only needs 0.1 XBT for 100,000 contracts @ 10,000": 10/100 = 0.1.
        pytest.param(100_000.0, 10_000.0, 100.0, 0.1, id="bitmex-im-100x-0.1"),
        # Deribit IM 2.125 % of a 25 BTC position (2.5M USD @ 100k): 25·0.02125 = 0.53125.
        pytest.param(2_500_000.0, 100_000.0, 1.0 / 0.02125, 0.53125, id="deribit-im-25btc"),
        # UTA: PV 1.2 at 10x → IM 0.12 (reference §4.3).
        pytest.param(60_000.0, 50_000.0, 10.0, 0.12, id="bybit-uta-im-0.12"),
        pytest.param(-12_000.0, 8_000.0, 50.0, 0.03, id="derived-short-same-im"),
    ],
)
def test_initial_margin_coin(
    size_usd: float, price: float, leverage: float, expected: float
) -> None:
    """Initial margin is N/(P·L) (reference §3.1)."""
    assert initial_margin_coin(size_usd, price, leverage) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize(
    ("value_btc", "expected_rate", "expected_im"),
    [
        pytest.param(25.0, 0.02125, 0.53125, id="deribit-im-25btc-2.125pct-0.53125"),
        pytest.param(350.0, 0.0375, 13.125, id="deribit-im-350btc-3.75pct-13.125"),
    ],
)
def test_deribit_initial_margin_rate_grows_with_size(
    value_btc: float, expected_rate: float, expected_im: float
) -> None:
    """Deribit IM% = 2 % + 0.005 % per BTC, IM = value·rate (reference §3.1)."""
    price = 100_000.0
    req = DERIBIT_IM.requirement(value_btc * price, price)
    assert req.mmr == pytest.approx(expected_rate, rel=1e-12)
    assert req.mm_deduction_coin == 0.0
    assert schedule_maintenance_margin_coin(DERIBIT_IM, value_btc * price, price) == pytest.approx(
        expected_im, rel=1e-12
    )


# ----------------------------------------------------------------------------------------------
# 3.2 maintenance margin
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size_usd", "price", "mmr", "deduction", "expected"),
    [
        # 100 contracts × 100 USD / 25,000 = 0.4 BTC; 0.4·0.4 % − 0 = 0.0016.
        pytest.param(10_000.0, 25_000.0, 0.004, 0.0, 0.0016, id="binance-mm-0.0016"),
        # 180 XBT position (1.8M USD @ 10,000) at the base 0.5 % → 0.90.
        pytest.param(1_800_000.0, 10_000.0, 0.005, 0.0, 0.90, id="bitmex-mm-180xbt-0.90"),
        # Kraken EPP: 0.125 BTC at 1 % = 0.00125.
        pytest.param(1_000.0, 8_000.0, 0.01, 0.0, 0.00125, id="kraken-epp-mm-0.00125"),
        # UTA: PV 1.2 at 0.5 % = 0.006.
        pytest.param(60_000.0, 50_000.0, 0.005, 0.0, 0.006, id="bybit-uta-mm-0.006"),
        # Binance 300 BTC at 12.5 % − 11.605 = 37.5 − 11.605 = 25.895.
        pytest.param(3_000_000.0, 10_000.0, 0.125, 11.605, 25.895, id="binance-300btc-new-cum"),
        # A requirement cannot be negative: 1·0.4 % − 0.01 < 0 → 0.
        pytest.param(10_000.0, 10_000.0, 0.004, 0.01, 0.0, id="derived-floored-at-zero"),
    ],
)
def test_maintenance_margin_coin(
    size_usd: float, price: float, mmr: float, deduction: float, expected: float
) -> None:
    """Maintenance margin is V·m − c (reference §3.2)."""
    result = maintenance_margin_coin(size_usd, price, mmr, deduction)
    assert result == pytest.approx(expected, rel=1e-12, abs=1e-15)


def test_deribit_maintenance_margin_when_25_btc_then_0_28125() -> None:
    """Deribit MM 1 % + 0.005 %·25 = 1.125 % of 25 BTC = 0.28125 BTC (reference §3.2)."""
    req = DERIBIT_MM.requirement(2_500_000.0, 100_000.0)
    assert req.mmr == pytest.approx(0.01125, rel=1e-12)
    result = schedule_maintenance_margin_coin(DERIBIT_MM, 2_500_000.0, 100_000.0)
    assert result == pytest.approx(0.28125, rel=1e-12)


@pytest.mark.parametrize(
    ("floors", "mmrs", "expected_cum"),
    [
        pytest.param(
            BINANCE_NEW_FLOORS,
            BINANCE_NEW_MMRS,
            (0.0, 0.005, 0.055, 0.355, 1.605, 6.605, 11.605, 21.605),
            id="binance-new-table-cum",
        ),
        pytest.param(
            BINANCE_OLD_FLOORS,
            BINANCE_OLD_MMRS,
            (0.0, 0.01, 0.11, 0.56, 1.81, 6.81, 11.81, 21.81, 121.81),
            id="binance-old-table-cum",
        ),
        # Bybit "Margin Parameters": 1/2/3 % per 10 units → c = 0, 10·1 % = 0.1, 20·1 % + 0.1 = 0.3.
        pytest.param((0.0, 10.0, 20.0), (0.01, 0.02, 0.03), (0.0, 0.1, 0.3), id="bybit-params-cum"),
    ],
)
def test_tier_table_from_rates_deductions(
    floors: tuple[float, ...], mmrs: tuple[float, ...], expected_cum: tuple[float, ...]
) -> None:
    """from_rates derives c_n = floor_n·(m_n − m_{n−1}) + c_{n−1} (reference §3.2)."""
    table = TierTable.from_rates(floors, mmrs)
    assert [t.deduction for t in table.tiers] == pytest.approx(list(expected_cum), abs=1e-12)
    assert [t.floor for t in table.tiers] == list(floors)
    assert [t.mmr for t in table.tiers] == list(mmrs)


def test_tier_recursion_when_binance_50_btc_step_then_1_81() -> None:
    """Binance FAQ: "50 BTC × (5% − 2.5%) + 0.56 BTC = 1.81 BTC" on the old table."""
    tier = BINANCE_OLD.tiers[4]
    assert tier.floor == 50.0
    assert tier.mmr == 0.05
    assert BINANCE_OLD.tiers[3].deduction == pytest.approx(0.56, abs=1e-12)
    assert tier.deduction == pytest.approx(50.0 * (0.05 - 0.025) + 0.56, abs=1e-12)
    assert tier.deduction == pytest.approx(1.81, abs=1e-12)


@pytest.mark.parametrize(
    ("table", "value_btc", "mmr", "cum", "index"),
    [
        pytest.param(BINANCE_NEW, 300.0, 0.125, 11.605, 6, id="binance-300btc-new-12.5pct-11.605"),
        pytest.param(BINANCE_OLD, 300.0, 0.125, 11.81, 6, id="binance-300btc-old-12.5pct-11.81"),
        # Floors are inclusive ("applies to positions from floor upward").
        pytest.param(BINANCE_NEW, 5.0, 0.005, 0.005, 1, id="derived-at-floor-5-next-tier"),
        pytest.param(BINANCE_NEW, 4.99, 0.004, 0.0, 0, id="derived-below-floor-5-first-tier"),
        pytest.param(BINANCE_NEW, 1_000.0, 0.15, 21.605, 7, id="derived-above-last-floor"),
    ],
)
def test_tier_lookup_coin_basis(
    table: TierTable, value_btc: float, mmr: float, cum: float, index: int
) -> None:
    """A coin-basis table picks the tier by position value in coin (reference §3.2)."""
    price = 40_000.0
    req = table.requirement(value_btc * price, price)
    assert req.mmr == mmr
    assert req.mm_deduction_coin == pytest.approx(cum, abs=1e-12)
    assert req.tier_index == index


@pytest.mark.parametrize(
    ("table", "floors", "mmrs", "value"),
    [
        pytest.param(
            BINANCE_NEW, BINANCE_NEW_FLOORS, BINANCE_NEW_MMRS, 300.0, id="binance-new-300"
        ),
        pytest.param(BINANCE_NEW, BINANCE_NEW_FLOORS, BINANCE_NEW_MMRS, 3.0, id="binance-new-3"),
        pytest.param(BINANCE_NEW, BINANCE_NEW_FLOORS, BINANCE_NEW_MMRS, 77.7, id="binance-new-77"),
        pytest.param(
            BINANCE_OLD, BINANCE_OLD_FLOORS, BINANCE_OLD_MMRS, 1500.0, id="binance-old-1500"
        ),
    ],
)
def test_tiered_mm_equals_sum_of_slices(
    table: TierTable, floors: tuple[float, ...], mmrs: tuple[float, ...], value: float
) -> None:
    """V·m − c equals charging each notional slice at its own tier rate (reference §3.2)."""
    price = 25_000.0
    expected = _marginal_mm(floors, mmrs, value)
    result = schedule_maintenance_margin_coin(table, value * price, price)
    assert result == pytest.approx(expected, rel=1e-12)


def test_tiered_mm_when_bybit_margin_parameters_example_then_0_45() -> None:
    """Bybit "Margin Parameters": 25 XYZ with tiers 1/2/3 % per 10 XYZ → 0.45 XYZ."""
    # Slices: 10·1 % + 10·2 % + 5·3 % = 0.1 + 0.2 + 0.15 = 0.45.
    table = TierTable.from_rates((0.0, 10.0, 20.0), (0.01, 0.02, 0.03))
    price = 20.0
    assert schedule_maintenance_margin_coin(table, 25.0 * price, price) == pytest.approx(
        0.45, rel=1e-12
    )


def test_tier_lookup_when_usd_basis_then_deduction_converted_at_price() -> None:
    """A USD-basis table (OKX/Kraken) picks by contracts and converts c to coin at the price."""
    # 2,000,000 contracts → tier 1M-3M (3 %), deduction 15,000 USD = 15,000/50,000 = 0.3 BTC.
    req = KRAKEN_USD.requirement(2_000_000.0, 50_000.0)
    assert req.tier_index == 2
    assert req.mmr == 0.03
    assert req.mm_deduction_coin == pytest.approx(0.3, rel=1e-12)
    # Slices: 500k·1 % + 500k·2 % + 1M·3 % = 45,000 USD = 0.9 BTC; also 40·3 % − 0.3 = 0.9.
    result = schedule_maintenance_margin_coin(KRAKEN_USD, 2_000_000.0, 50_000.0)
    assert result == pytest.approx(0.9, rel=1e-12)
    assert KRAKEN_USD.tiers[3].deduction == pytest.approx(75_000.0, rel=1e-12)


def test_tier_lookup_when_usd_basis_then_tier_independent_of_price() -> None:
    """A USD-basis tier depends on contracts only; price changes only the coin deduction."""
    low = KRAKEN_USD.requirement(-700_000.0, 20_000.0)
    high = KRAKEN_USD.requirement(-700_000.0, 80_000.0)
    assert low.tier_index == high.tier_index == 1
    assert low.mm_deduction_coin == pytest.approx(5_000.0 / 20_000.0, rel=1e-12)
    assert high.mm_deduction_coin == pytest.approx(5_000.0 / 80_000.0, rel=1e-12)


def test_flat_table_when_any_size_then_single_rate() -> None:
    """TierTable.flat(m) charges V·m with no deduction at every size."""
    table = TierTable.flat(0.005)
    assert schedule_maintenance_margin_coin(table, 1_800_000.0, 10_000.0) == pytest.approx(0.9)
    assert table.requirement(1e9, 10.0).mmr == 0.005


def test_tier_table_max_leverage_when_given_then_carried_to_requirement() -> None:
    """from_rates passes max leverages through to the requirement of the matching tier."""
    table = TierTable.from_rates((0.0, 10.0), (0.01, 0.02), max_leverages=(50.0, 25.0))
    assert table.requirement(11.0 * 100.0, 100.0).max_leverage == 25.0
    assert table.requirement(9.0 * 100.0, 100.0).max_leverage == 50.0


@pytest.mark.parametrize(
    "build",
    [
        pytest.param(lambda: TierTable(()), id="empty"),
        pytest.param(lambda: TierTable((RiskTier(1.0, 0.01, 0.0),)), id="first-floor-not-zero"),
        pytest.param(lambda: TierTable.from_rates((0.0, 10.0), (0.01,)), id="length-mismatch"),
        pytest.param(
            lambda: TierTable.from_rates((0.0, 10.0, 5.0), (0.01, 0.02, 0.03)),
            id="floors-not-increasing",
        ),
        pytest.param(lambda: TierTable.flat(1.0), id="flat-mmr-1"),
        pytest.param(lambda: TierTable.flat(-0.01), id="flat-mmr-negative"),
        pytest.param(lambda: TierTable.flat(math.nan), id="flat-mmr-nan"),
        pytest.param(lambda: TierTable.from_rates((0.0, 10.0), (0.5, 1.5)), id="tier-mmr-above-1"),
        pytest.param(lambda: LinearMargin(1.0, 0.0), id="linear-base-1"),
        pytest.param(lambda: LinearMargin(-0.01, 0.0), id="linear-base-negative"),
        pytest.param(lambda: LinearMargin(0.01, -1e-5), id="linear-slope-negative"),
        pytest.param(lambda: LinearMargin(0.01, math.nan), id="linear-slope-nan"),
    ],
)
def test_margin_schedule_when_malformed_then_value_error(build: Callable[[], object]) -> None:
    """Malformed tier tables and linear schedules raise ValueError."""
    with pytest.raises(ValueError, match=r"tier|floor|mmr"):
        build()


# ----------------------------------------------------------------------------------------------
# 4 liquidation and bankruptcy
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size_usd", "entry", "collateral", "mmr", "cum", "mm_at", "expected", "tol"),
    [
        # Kraken EPP (§4.6): 1,000·1.01 / (0.01 + 0.125) = 1,010/0.135 = 7,481.48.
        pytest.param(
            1_000.0, 8_000.0, 0.01, 0.01, 0.0, "mark", 7_481.48, 0.005, id="kraken-epp-7481"
        ),
        # §8.7: with MM frozen at entry: 1,000 / (0.125 + 0.01 − 0.00125) = 7,476.64.
        pytest.param(
            1_000.0, 8_000.0, 0.01, 0.01, 0.0, "entry", 7_476.64, 0.005, id="kraken-entry-mm-7476"
        ),
        # Binance API sample (§4.2): 200·1.004 / (0.00268058 + 200/37,643.10000021).
        pytest.param(
            200.0,
            37_643.10000021,
            0.00268058,
            0.004,
            0.0,
            "mark",
            25_119.97445760,
            1e-6,
            id="binance-api-25119.97445760",
        ),
        # Binance cross (§4.2): 10M·1.125 / (101 + 11.605 + 10M/45,000) = 33,599.42.
        pytest.param(
            10_000_000.0,
            45_000.0,
            101.0,
            0.125,
            11.605,
            "mark",
            33_599.42,
            0.005,
            id="binance-cross-33599.42",
        ),
        # Same with the stale cum 11.81: 11.25M / 335.0322… = 33,578.86.
        pytest.param(
            10_000_000.0,
            45_000.0,
            101.0,
            0.125,
            11.81,
            "mark",
            33_578.86,
            0.005,
            id="binance-cross-stale-cum-33578.86",
        ),
        # Bybit classic (§4.3), M = N/(E·L) = 8,000/(8,000·50) = 0.02:
        # long E·L/(L+1−mL) = 400,000/50.75 = 7,881.77; short 400,000/49.25 = 8,121.83.
        pytest.param(
            8_000.0,
            8_000.0,
            0.02,
            0.005,
            0.0,
            "entry",
            7_881.77,
            0.005,
            id="bybit-classic-long-7881",
        ),
        pytest.param(
            -8_000.0,
            8_000.0,
            0.02,
            0.005,
            0.0,
            "entry",
            8_121.83,
            0.005,
            id="bybit-classic-short-8121",
        ),
        # Third-party doctest citing Bybit's page: 7881.773399014778 (= 400,000/50.75).
        pytest.param(
            1_000_000.0,
            8_000.0,
            2.5,
            0.005,
            0.0,
            "entry",
            7_881.773399014778,
            1e-8,
            id="bybit-classic-long-doctest-any-size",
        ),
        # Bybit UTA 2024 (§4.3): 60,000 / (1.2 + 0.12 − 0.006) = 60,000/1.314 = 45,662.10.
        pytest.param(
            60_000.0,
            50_000.0,
            0.12,
            0.005,
            0.0,
            "entry",
            45_662.10,
            0.005,
            id="bybit-uta-2024-45662",
        ),
        # Same inputs, MM at the liquidation price: 60,300 / 1.32 = 45,681.82.
        pytest.param(
            60_000.0,
            50_000.0,
            0.12,
            0.005,
            0.0,
            "mark",
            45_681.82,
            0.005,
            id="bybit-uta-2026-45681",
        ),
        # Short mirrors (derived): entry 60,000/(1.2 − 0.12 + 0.006) = 60,000/1.086 = 55,248.62;
        # mark 60,000·0.995/(1.2 − 0.12) = 59,700/1.08 = 55,277.78.
        pytest.param(
            -60_000.0,
            50_000.0,
            0.12,
            0.005,
            0.0,
            "entry",
            55_248.62,
            0.005,
            id="derived-uta-short-entry-55248",
        ),
        pytest.param(
            -60_000.0,
            50_000.0,
            0.12,
            0.005,
            0.0,
            "mark",
            55_277.78,
            0.005,
            id="derived-uta-short-mark-55277",
        ),
        # mmr 0 → liquidation = bankruptcy: 1,000/0.135 = 7,407.41.
        pytest.param(
            1_000.0, 8_000.0, 0.01, 0.0, 0.0, "mark", 7_407.41, 0.005, id="derived-m0-is-bp"
        ),
        # Short 1x (M = N/E) with MM frozen at entry: equity N/P meets N·m/E at P = E/m
        # (§4.1b with L = 1: E·L/(L − 1 + m·L) = E/m) = 10,000/0.005 = 2,000,000.
        pytest.param(
            -10_000.0,
            10_000.0,
            1.0,
            0.005,
            0.0,
            "entry",
            2_000_000.0,
            1e-6,
            id="derived-4.1b-short-1x-entry-E/m",
        ),
    ],
)
def test_liquidation_price(
    *,
    size_usd: float,
    entry: float,
    collateral: float,
    mmr: float,
    cum: float,
    mm_at: MmAt,
    expected: float,
    tol: float,
) -> None:
    """Isolated liquidation price under both MM conventions (reference §4.1-4.6)."""
    result = liquidation_price(size_usd, entry, collateral, mmr, cum, mm_at=mm_at)
    assert result is not None
    assert result == pytest.approx(expected, abs=tol, rel=0)


def test_liquidation_when_kraken_epp_then_mark_crosses_at_7481() -> None:
    """Kraken: "As soon as the Mark Price reaches 7481 or below, your position will enter …"."""
    result = liquidation_price(1_000.0, 8_000.0, 0.01, 0.01, mm_at="mark")
    assert result is not None
    assert math.floor(result) == 7_481


def test_liquidation_when_bybit_2026_formula_without_fees_then_mark_convention() -> None:
    """Reference §4.3/§8.2: the 2026 Bybit formula with no fee terms is the mark convention."""
    size, entry, lev, mmr = 60_000.0, 50_000.0, 10.0, 0.005
    # LP_long = Size·(MMR+1) / [Size/E + Size/E/L + Extra/(1+taker) + deduction], Extra = 0, c = 0.
    page_2026 = size * (mmr + 1.0) / (size / entry + size / entry / lev)
    assert page_2026 == pytest.approx(45_681.82, abs=0.005)
    mark = liquidation_price(size, entry, size / (entry * lev), mmr, mm_at="mark")
    assert mark == pytest.approx(page_2026, rel=1e-12)
    # The 2024 page, Q/[PV + IM − MM], is the entry convention.
    page_2024 = size / (size / entry + size / entry / lev - size / entry * mmr)
    entry_lp = liquidation_price(size, entry, size / (entry * lev), mmr, mm_at="entry")
    assert entry_lp == pytest.approx(page_2024, rel=1e-12)
    assert page_2024 == pytest.approx(45_662.10, abs=0.005)


@pytest.mark.parametrize(
    ("table", "size_usd", "entry", "collateral", "expected", "tol", "tier_mmr"),
    [
        # Binance cross, new table (§4.2): value at LP ≈ 297.6 BTC → 12.5 %, cum 11.605.
        pytest.param(
            BINANCE_NEW,
            10_000_000.0,
            45_000.0,
            101.0,
            33_599.42,
            0.005,
            0.125,
            id="binance-new-33599",
        ),
        pytest.param(
            BINANCE_OLD,
            10_000_000.0,
            45_000.0,
            101.0,
            33_578.86,
            0.005,
            0.125,
            id="binance-old-33578",
        ),
        # Derived: long 9M USD @ 50,000 (180 BTC, tier 10 % at entry), C = 40.
        # 12.5 % tier: 9M·1.125/(40 + 11.605 + 180) = 10,125,000/231.605 = 43,716.67, where the
        # value is 9M/43,716.67 = 205.9 BTC, inside [200, 400) → consistent.
        # 10 % tier (entry's): 9.9M/(40 + 6.605 + 180) = 43,688.36 → 206 BTC, not in [100, 200).
        pytest.param(
            BINANCE_NEW,
            9_000_000.0,
            50_000.0,
            40.0,
            10_125_000.0 / 231.605,
            1e-6,
            0.125,
            id="derived-long-tier-up-43716.67",
        ),
        # Derived: short 9M USD @ 40,000 (225 BTC, tier 12.5 % at entry), C = 60.
        # 10 % tier: 9M·0.9/(225 − 60 − 6.605) = 8.1M/158.395 = 51,137.98 → 176.0 BTC ✓.
        # 12.5 % tier (entry's): 7.875M/(225 − 60 − 11.605) = 51,338.05 → 175.3 BTC ✗.
        pytest.param(
            BINANCE_NEW,
            -9_000_000.0,
            40_000.0,
            60.0,
            8_100_000.0 / 158.395,
            1e-6,
            0.10,
            id="derived-short-tier-down-51137.98",
        ),
        # Derived, USD basis: tier fixed by 2M contracts (3 %, D = 15,000 USD = D/P coin).
        # C + N/E − N/P = (N/P)·m − D/P  ⇒  P = (N(1+m) − D)/(C + N/E) = 2,045,000/44.
        pytest.param(
            KRAKEN_USD,
            2_000_000.0,
            50_000.0,
            4.0,
            2_045_000.0 / 44.0,
            1e-6,
            0.03,
            id="derived-usd-basis-46477.27",
        ),
        # Kraken EPP through a flat table: 7,481.48.
        pytest.param(
            TierTable.flat(0.01),
            1_000.0,
            8_000.0,
            0.01,
            7_481.48,
            0.005,
            0.01,
            id="kraken-epp-flat",
        ),
    ],
)
def test_schedule_liquidation_price_tiered(
    *,
    table: TierTable,
    size_usd: float,
    entry: float,
    collateral: float,
    expected: float,
    tol: float,
    tier_mmr: float,
) -> None:
    """Tier tables are evaluated at the liquidation price, not at entry (reference §3.2, §4.2)."""
    result = schedule_liquidation_price(size_usd, entry, collateral, table)
    assert result is not None
    assert result == pytest.approx(expected, abs=tol, rel=0)
    assert table.requirement(size_usd, result).mmr == tier_mmr


def test_schedule_liquidation_when_binance_cross_then_equals_explicit_tier() -> None:
    """The new-table answer equals liquidation_price with the 12.5 % / 11.605 tier (§4.2)."""
    explicit = liquidation_price(10_000_000.0, 45_000.0, 101.0, 0.125, 11.605)
    scheduled = schedule_liquidation_price(10_000_000.0, 45_000.0, 101.0, BINANCE_NEW)
    assert explicit is not None
    assert scheduled == pytest.approx(explicit, rel=1e-12)


DEFAULT_PAPER_TIERS = TierTable.from_rates(
    (0.0, 150.0, 300.0, 450.0, 600.0), (0.005, 0.01, 0.015, 0.02, 0.025)
)
"""The daemon's default schedule (``scaler.app.margin_schedule``): 0.5 % + 0.5 % per 150 BTC."""


@pytest.mark.parametrize(
    ("table", "size_usd", "entry", "liq", "mm_at_floor"),
    [
        # Binance new table, floor 100 BTC (5 % below, 10 % from it, deductions 1.605 / 6.605):
        # MM(100) = 100·0.05 − 1.605 = 100·0.10 − 6.605 = 3.395. A 3,000,000 USD long (60 BTC at
        # 50,000) reaches V = 100 BTC at 3,000,000 / 100 = 30,000, so C + 60 − 100 = 3.395 gives
        # C = 43.395 BTC.
        pytest.param(BINANCE_NEW, 3_000_000.0, 50_000.0, 30_000.0, 3.395, id="binance-100btc"),
        # Floor 10 BTC (0.5 % / 1 %, deductions 0.005 / 0.055): MM(10) = 0.05 − 0.005 = 0.045.
        # 330,000 USD long at 60,000 (5.5 BTC) reaches 10 BTC at 33,000: C = 0.045 + 10 − 5.5.
        pytest.param(BINANCE_NEW, 330_000.0, 60_000.0, 33_000.0, 0.045, id="binance-10btc"),
        # 430,000 USD long at 50,000 (8.6 BTC) reaches 10 BTC at 43,000: C = 0.045 + 10 − 8.6.
        pytest.param(BINANCE_NEW, 430_000.0, 50_000.0, 43_000.0, 0.045, id="binance-10btc-b"),
        # Default schedule, floor 150 BTC (0.5 % / 1 %, deduction 150·0.005 = 0.75):
        # MM(150) = 150·0.005 = 150·0.01 − 0.75 = 0.75. 6,450,000 USD long at 50,000 (129 BTC)
        # reaches 150 BTC at 43,000: C = 0.75 + 150 − 129 = 21.75 BTC.
        pytest.param(
            DEFAULT_PAPER_TIERS, 6_450_000.0, 50_000.0, 43_000.0, 0.75, id="default-150btc"
        ),
        # 6,600,000 USD long at 50,000 (132 BTC) reaches 150 BTC at 44,000: C = 0.75 + 18.
        pytest.param(
            DEFAULT_PAPER_TIERS, 6_600_000.0, 50_000.0, 44_000.0, 0.75, id="default-150btc-b"
        ),
    ],
)
def test_schedule_liquidation_when_price_lands_on_a_tier_floor_then_that_price(
    table: TierTable, size_usd: float, entry: float, liq: float, mm_at_floor: float
) -> None:
    """A liquidation price exactly on a tier's floor is found, not lost between two tiers.

    The collateral is set so that equity equals the hand-computed margin at the floor:
    ``C + N/E − N/LP = MM(floor)``, i.e. ``C = MM(floor) − N·(1/E − 1/LP)``.
    """
    collateral = mm_at_floor - size_usd * (1.0 / entry - 1.0 / liq)
    result = schedule_liquidation_price(size_usd, entry, collateral, table)
    assert result == pytest.approx(liq, rel=1e-9)
    distance = liquidation_distance(entry, result, size_usd)
    assert distance == pytest.approx((entry - liq) / entry, rel=1e-9)


def test_deribit_linear_when_short_below_maintenance_at_every_price_then_distance_zero() -> None:
    """A Deribit short under water at every linear-rate price is unsafe (distance 0), not "none".

    Short 1,000,000,000 USD at 100,000 (V = 10,000 BTC) with 1,000 BTC (10x). At entry the rate
    is 1 % + 0.005 %·10,000 = 51 %: MM = 5,100 BTC against 1,000 BTC of equity. Equity minus MM,
    ``(C − N/E) + V − V·(a + b·V) = −9,000 + 0.99·V − 0.00005·V²``, has the discriminant
    ``0.99² − 4·0.00005·9,000 = 0.9801 − 1.8 < 0``: it is negative at every price where the
    linear rate applies. Only where the rate is capped at LINEAR_MMR_CAP (V >= 19,800 BTC) does
    ``−9,000 + V·(1 − cap)`` reach 0, at V = 9,000 / (1 − cap), i.e. LP = N·(1 − cap) / 9,000
    ≈ 0.11 USD: the short is at or below maintenance at every price above that.
    """
    size, entry, collateral = -1_000_000_000.0, 100_000.0, 1_000.0
    result = schedule_liquidation_price(size, entry, collateral, DERIBIT_MM)
    assert result == pytest.approx(1e9 * (1.0 - LINEAR_MMR_CAP) / 9_000.0, rel=1e-6)
    assert liquidation_distance(entry, result, size) == 0.0
    assert liquidation_distance(150_000.0, result, size) == 0.0


def test_schedule_liquidation_when_already_below_maintenance_then_distance_zero() -> None:
    """A long or short already under maintenance at entry has its LP past the entry: distance 0.

    Flat 1 % table, 1,000,000 USD at 50,000 (20 BTC), MM at entry 0.2 BTC, collateral 0.1 BTC.
    Long: 0.1 + 20 − V = 0.01·V gives V = 20.1/1.01, LP = 1,000,000·1.01/20.1 = 50,248.76 (above
    entry). Short: 0.1 − 20 + V = 0.01·V gives V = 19.9/0.99, LP = 1,000,000·0.99/19.9 = 49,748.74
    (below entry).
    """
    table = TierTable.flat(0.01)
    long_lp = schedule_liquidation_price(1_000_000.0, 50_000.0, 0.1, table)
    short_lp = schedule_liquidation_price(-1_000_000.0, 50_000.0, 0.1, table)
    assert long_lp == pytest.approx(1_010_000.0 / 20.1, rel=1e-12)
    assert short_lp == pytest.approx(990_000.0 / 19.9, rel=1e-12)
    assert liquidation_distance(50_000.0, long_lp, 1_000_000.0) == 0.0
    assert liquidation_distance(50_000.0, short_lp, -1_000_000.0) == 0.0


@pytest.mark.parametrize(
    ("size_usd", "entry", "collateral"),
    [
        pytest.param(2_500_000.0, 100_000.0, 2.5, id="deribit-long-25btc-10x"),
        pytest.param(2_500_000.0, 100_000.0, 0.5, id="deribit-long-25btc-50x"),
        pytest.param(35_000_000.0, 100_000.0, 35.0, id="deribit-long-350btc-10x"),
        pytest.param(50_000.0, 60_000.0, 0.1, id="deribit-long-small"),
        pytest.param(-2_500_000.0, 100_000.0, 2.5, id="deribit-short-25btc-10x"),
        pytest.param(-2_500_000.0, 100_000.0, 0.5, id="deribit-short-25btc-50x"),
        pytest.param(-35_000_000.0, 100_000.0, 35.0, id="deribit-short-350btc-10x"),
        pytest.param(-50_000.0, 60_000.0, 0.1, id="deribit-short-small"),
        # One minimum-size contract (10 USD, §1) at 10x.
        pytest.param(10.0, 100_000.0, 0.00001, id="deribit-long-one-contract"),
        pytest.param(-10.0, 100_000.0, 0.00001, id="deribit-short-one-contract"),
    ],
)
def test_deribit_linear_liquidation_matches_bisection(
    size_usd: float, entry: float, collateral: float
) -> None:
    """The §4.7 quadratic agrees with a numerical solve of equity(P) = MM(P)."""
    expected = _deribit_bisect(size_usd, entry, collateral, 0.01, 0.00005)
    result = schedule_liquidation_price(size_usd, entry, collateral, DERIBIT_MM)
    assert expected is not None
    assert result is not None
    assert result == pytest.approx(expected, rel=1e-9)
    if size_usd > 0:
        assert result < entry
    else:
        assert result > entry


def test_deribit_linear_when_25_btc_long_then_matches_reference_closed_form() -> None:
    """Reference §4.7: x = [−N(1+a) + √(N²(1+a)² + 4bN²(C + N/E))] / (2bN²), LP = 1/x."""
    n, e, c, a, b = 2_500_000.0, 100_000.0, 2.5, 0.01, 0.00005
    x = (-n * (1 + a) + math.sqrt((n * (1 + a)) ** 2 + 4 * b * n * n * (c + n / e))) / (
        2 * b * n * n
    )
    result = schedule_liquidation_price(n, e, c, DERIBIT_MM)
    assert result == pytest.approx(1.0 / x, rel=1e-9)


def test_deribit_linear_when_short_fully_collateralised_then_none() -> None:
    """A Deribit short with C >= N/E never reaches MM: equity N/P·(…) stays above V·(a + bV)."""
    assert schedule_liquidation_price(-2_500_000.0, 100_000.0, 25.0, DERIBIT_MM) is None
    assert schedule_liquidation_price(-2_500_000.0, 100_000.0, 30.0, DERIBIT_MM) is None


def test_linear_margin_when_zero_slope_then_equals_flat_liquidation() -> None:
    """LinearMargin(a, 0) is a flat rate a: Kraken's EPP example gives 7,481.48."""
    result = schedule_liquidation_price(1_000.0, 8_000.0, 0.01, LinearMargin(0.01, 0.0))
    assert result == pytest.approx(7_481.48, abs=0.005)


@pytest.mark.parametrize(
    ("size_usd", "entry", "collateral", "expected"),
    [
        # Kraken EPP: 1,000/0.135 = 7,407.41 ("IOC sell … at 7407").
        pytest.param(1_000.0, 8_000.0, 0.01, 7_407.41, id="kraken-epp-bankruptcy-7407"),
        # E·L/(L+1) = 8,000·50/51 = 7,843.14; short E·L/(L−1) = 400,000/49 = 8,163.27.
        pytest.param(8_000.0, 8_000.0, 0.02, 7_843.14, id="bybit-bp-long-EL/(L+1)"),
        pytest.param(-8_000.0, 8_000.0, 0.02, 8_163.27, id="bybit-bp-short-EL/(L-1)"),
        # UTA inputs at 10x: 500,000/11 = 45,454.55; 500,000/9 = 55,555.56.
        pytest.param(60_000.0, 50_000.0, 0.12, 45_454.55, id="derived-uta-bp-long"),
        pytest.param(-60_000.0, 50_000.0, 0.12, 55_555.56, id="derived-uta-bp-short"),
        # 1x long goes bankrupt at E/2 (reference §2.2).
        pytest.param(10_000.0, 10_000.0, 1.0, 5_000.0, id="ref-2.2-long-1x-half-entry"),
    ],
)
def test_bankruptcy_price(
    size_usd: float, entry: float, collateral: float, expected: float
) -> None:
    """Bankruptcy is where equity is zero: long N/(M + N/E), short N/(N/E − M) (§4.1)."""
    result = bankruptcy_price(size_usd, entry, collateral)
    assert result is not None
    assert result == pytest.approx(expected, abs=0.005, rel=0)


@pytest.mark.parametrize(
    ("size_usd", "collateral", "mm_at"),
    [
        pytest.param(0.0, 0.01, "mark", id="flat-mark"),
        pytest.param(0.0, 0.01, "entry", id="flat-entry"),
        pytest.param(-10_000.0, 1.0, "mark", id="short-1x-mark"),
        pytest.param(-10_000.0, 2.0, "mark", id="short-0.5x-mark"),
        # Entry convention: no liquidation once M >= N(1+m)/E = 1.005 (equity ≥ N·m/E + N/P).
        pytest.param(-10_000.0, 2.0, "entry", id="short-0.5x-entry"),
    ],
)
def test_liquidation_when_flat_or_fully_collateralised_short_then_none(
    size_usd: float, collateral: float, mm_at: MmAt
) -> None:
    """Binance shows "--" and ccxt returns undefined for a short with M >= N/E (reference §2.2)."""
    assert liquidation_price(size_usd, 10_000.0, collateral, 0.005, mm_at=mm_at) is None
    assert bankruptcy_price(size_usd, 10_000.0, collateral) is None
    assert schedule_liquidation_price(size_usd, 10_000.0, collateral, TierTable.flat(0.005)) is None


def test_liquidation_when_mm_at_unknown_then_value_error() -> None:
    """An unknown MM convention raises ValueError."""
    with pytest.raises(ValueError, match="mm_at"):
        liquidation_price(1_000.0, 8_000.0, 0.01, 0.01, mm_at="last")  # type: ignore[arg-type]


# ----------------------------------------------------------------------------------------------
# 5 funding, 2.5 fees
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size_usd", "mark", "rate", "expected"),
    [
        # 15,000/750 = 20 XBT × 0.25 % = 0.05 XBT, long pays.
        pytest.param(15_000.0, 750.0, 0.0025, 0.05, id="bitmex-funding-0.05"),
        # 10,000/16,000 = 0.625 BTC × 0.01 % = 0.0000625.
        pytest.param(10_000.0, 16_000.0, 0.0001, 0.0000625, id="bybit-funding-0.0000625"),
        pytest.param(-10_000.0, 16_000.0, 0.0001, -0.0000625, id="bybit-funding-short-receives"),
        pytest.param(10_000.0, 16_000.0, -0.0001, -0.0000625, id="negative-rate-long-receives"),
        pytest.param(-10_000.0, 16_000.0, -0.0001, 0.0000625, id="negative-rate-short-pays"),
        pytest.param(-15_000.0, 750.0, 0.0025, -0.05, id="bitmex-funding-short-receives"),
        pytest.param(10_000.0, 16_000.0, 0.0, 0.0, id="derived-zero-rate"),
    ],
)
def test_funding_payment_coin(size_usd: float, mark: float, rate: float, expected: float) -> None:
    """Funding is size/mark·rate, positive means the holder pays (reference §5.1-5.2)."""
    assert funding_payment_coin(size_usd, mark, rate) == pytest.approx(expected, rel=1e-12, abs=0)


@pytest.mark.parametrize(
    ("size_usd", "price", "rate", "expected", "tol"),
    [
        # 10 × 100 / 10,104 = 0.09897 BTC × 0.05 % = 0.000049485 (printed to 9 decimals).
        pytest.param(1_000.0, 10_104.0, 0.0005, 0.000049485, 5e-10, id="binance-fee-0.000049485"),
        pytest.param(-1_000.0, 10_104.0, 0.0005, 0.000049485, 5e-10, id="binance-fee-sell-side"),
        # 10,000/8,000 = 1.25 BTC × 0.055 % = 0.0006875; × 0.02 % = 0.00025.
        pytest.param(10_000.0, 8_000.0, 0.00055, 0.0006875, 1e-15, id="bybit-taker-0.0006875"),
        pytest.param(10_000.0, 8_000.0, 0.0002, 0.00025, 1e-15, id="bybit-maker-0.00025"),
        # 50,000/100,000 = 0.5 BTC × 0.05 % = 0.00025.
        pytest.param(50_000.0, 100_000.0, 0.0005, 0.00025, 1e-15, id="deribit-fee-0.00025"),
        # BitMEX maker −0.025 % (§7): 1.25 × −0.00025 = −0.0003125, a credit.
        pytest.param(10_000.0, 8_000.0, -0.00025, -0.0003125, 1e-15, id="bitmex-maker-rebate"),
        # Kraken §8.6: 2 BTC notional at 0.04 % = 0.0008 (the page's 0.008 is 10× off).
        pytest.param(100_000.0, 50_000.0, 0.0004, 0.0008, 1e-15, id="kraken-fee-corrected-0.0008"),
    ],
)
def test_fee_coin(size_usd: float, price: float, rate: float, expected: float, tol: float) -> None:
    """Fee is |N|/price·rate; a negative maker rate is a rebate (reference §2.5)."""
    assert fee_coin(size_usd, price, rate) == pytest.approx(expected, abs=tol, rel=0)


# ----------------------------------------------------------------------------------------------
# ratios
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("equity", "mm", "expected"),
    [
        # Kraken EPP at entry: equity 0.01, MM 0.00125 → 8.
        pytest.param(0.01, 0.00125, 8.0, id="kraken-epp-ratio-8"),
        pytest.param(0.0016, 0.0016, 1.0, id="derived-at-liquidation-1"),
        pytest.param(-0.1, 0.2, -0.5, id="derived-negative-equity"),
        pytest.param(0.5, 0.0, math.inf, id="derived-no-mm-inf"),
    ],
)
def test_margin_ratio(equity: float, mm: float, expected: float) -> None:
    """margin_ratio is equity/MM; liquidation at 1.0; inf without MM (reference §3.3)."""
    assert margin_ratio(equity, mm) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize(
    ("size_usd", "price", "equity", "expected"),
    [
        # Kraken EPP: 0.125 BTC / 0.01 BTC = 12.5x.
        pytest.param(1_000.0, 8_000.0, 0.01, 12.5, id="kraken-epp-12.5x"),
        pytest.param(-10_000.0, 10_000.0, 0.1, 10.0, id="derived-short-10x"),
        pytest.param(0.0, 10_000.0, 0.1, 0.0, id="derived-flat-0"),
        pytest.param(10_000.0, 10_000.0, 0.0, math.inf, id="derived-zero-equity-inf"),
        pytest.param(10_000.0, 10_000.0, -0.5, math.inf, id="derived-negative-equity-inf"),
    ],
)
def test_effective_leverage(size_usd: float, price: float, equity: float, expected: float) -> None:
    """Effective leverage is value/equity; inf without positive equity."""
    assert effective_leverage(size_usd, price, equity) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize(
    ("mark", "liq", "size_usd", "expected"),
    [
        pytest.param(10_000.0, 9_000.0, 1_000.0, 0.1, id="derived-long-10pct"),
        pytest.param(10_000.0, 11_000.0, -1_000.0, 0.1, id="derived-short-10pct"),
        # Kraken EPP at entry: (8,000 − 1,010/0.135)/8,000 = 1 − 1.01/1.08 = 0.0648148…
        pytest.param(
            8_000.0, 1_010.0 / 0.135, 1_000.0, 1.0 - 1.01 / 1.08, id="kraken-epp-distance"
        ),
        pytest.param(10_000.0, 10_000.0, 1_000.0, 0.0, id="derived-at-lp-0"),
        # Past the liquidation price (below maintenance at the mark): 0, not |mark − LP|/mark.
        pytest.param(10_000.0, 11_000.0, 1_000.0, 0.0, id="derived-long-lp-above-mark-0"),
        pytest.param(10_000.0, 9_000.0, -1_000.0, 0.0, id="derived-short-lp-below-mark-0"),
        pytest.param(10_000.0, None, -1_000.0, math.inf, id="derived-no-lp-inf"),
        pytest.param(10_000.0, 9_000.0, 0.0, math.inf, id="derived-flat-inf"),
    ],
)
def test_liquidation_distance(
    mark: float, liq: float | None, size_usd: float, expected: float
) -> None:
    """Distance is how far the mark may move against the position; 0 past LP, inf with none."""
    result = liquidation_distance(mark, liq, size_usd)
    assert result == pytest.approx(expected, rel=1e-12, abs=1e-15)


# ----------------------------------------------------------------------------------------------
# invalid input
# ----------------------------------------------------------------------------------------------

PRICE_TAKERS = [
    pytest.param(lambda p: position_value_coin(1_000.0, p), id="position_value_coin"),
    pytest.param(lambda p: pnl_coin(1_000.0, p, 100.0), id="pnl_coin-entry"),
    pytest.param(lambda p: pnl_coin(1_000.0, 100.0, p), id="pnl_coin-exit"),
    pytest.param(lambda p: average_entry_price([(1_000.0, p)]), id="average_entry_price"),
    pytest.param(lambda p: initial_margin_coin(1_000.0, p, 10.0), id="initial_margin_coin"),
    pytest.param(lambda p: maintenance_margin_coin(1_000.0, p, 0.005), id="maintenance_margin"),
    pytest.param(lambda p: liquidation_price(1_000.0, p, 0.001, 0.005), id="liquidation-mark"),
    pytest.param(
        lambda p: liquidation_price(1_000.0, p, 0.001, 0.005, mm_at="entry"), id="liquidation-entry"
    ),
    pytest.param(lambda p: liquidation_price(0.0, p, 0.001, 0.005), id="liquidation-flat"),
    pytest.param(lambda p: bankruptcy_price(1_000.0, p, 0.001), id="bankruptcy_price"),
    pytest.param(lambda p: funding_payment_coin(1_000.0, p, 0.0001), id="funding_payment_coin"),
    pytest.param(lambda p: fee_coin(1_000.0, p, 0.0005), id="fee_coin"),
    pytest.param(lambda p: effective_leverage(1_000.0, p, 0.01), id="effective_leverage"),
    pytest.param(lambda p: liquidation_distance(p, 90.0, 1.0), id="liquidation_distance-mark"),
    pytest.param(lambda p: liquidation_distance(100.0, p, 1.0), id="liquidation_distance-liq"),
    pytest.param(lambda p: BINANCE_NEW.requirement(1_000.0, p), id="tier-coin-requirement"),
    pytest.param(lambda p: KRAKEN_USD.requirement(1_000.0, p), id="tier-usd-requirement"),
    pytest.param(lambda p: DERIBIT_MM.requirement(1_000.0, p), id="linear-requirement"),
    pytest.param(
        lambda p: schedule_maintenance_margin_coin(BINANCE_NEW, 1_000.0, p), id="schedule-mm-coin"
    ),
    pytest.param(
        lambda p: schedule_maintenance_margin_coin(KRAKEN_USD, 1_000.0, p), id="schedule-mm-usd"
    ),
    pytest.param(
        lambda p: schedule_maintenance_margin_coin(DERIBIT_MM, 1_000.0, p), id="schedule-mm-linear"
    ),
    pytest.param(
        lambda p: schedule_liquidation_price(1_000.0, p, 0.001, BINANCE_NEW), id="schedule-lp-coin"
    ),
    pytest.param(
        lambda p: schedule_liquidation_price(1_000.0, p, 0.001, KRAKEN_USD), id="schedule-lp-usd"
    ),
    pytest.param(
        lambda p: schedule_liquidation_price(1_000.0, p, 0.001, DERIBIT_MM), id="schedule-lp-linear"
    ),
]


@pytest.mark.parametrize("price", BAD_PRICES)
@pytest.mark.parametrize("call", PRICE_TAKERS)
def test_price_taker_when_price_invalid_then_value_error(
    call: Callable[[float], object], price: float
) -> None:
    """Every public function taking a price rejects zero, negative, NaN and infinite prices."""
    with pytest.raises(ValueError, match=r"price|finite"):
        call(price)


@pytest.mark.parametrize(
    "leverage",
    [
        pytest.param(0.0, id="zero"),
        pytest.param(-10.0, id="negative"),
        pytest.param(math.nan, id="nan"),
        pytest.param(math.inf, id="inf"),
    ],
)
def test_initial_margin_when_leverage_invalid_then_value_error(leverage: float) -> None:
    """Leverage must be finite and positive."""
    with pytest.raises(ValueError, match="leverage"):
        initial_margin_coin(12_000.0, 8_000.0, leverage)


MMR_TAKERS = [
    pytest.param(lambda m: maintenance_margin_coin(1_000.0, 100.0, m), id="maintenance_margin"),
    pytest.param(lambda m: liquidation_price(1_000.0, 100.0, 1.0, m), id="liquidation-mark"),
    pytest.param(
        lambda m: liquidation_price(1_000.0, 100.0, 1.0, m, mm_at="entry"), id="liquidation-entry"
    ),
    pytest.param(TierTable.flat, id="TierTable.flat"),
    pytest.param(lambda m: TierTable.from_rates((0.0,), (m,)), id="TierTable.from_rates"),
    pytest.param(lambda m: LinearMargin(m, 0.0), id="LinearMargin"),
]


@pytest.mark.parametrize(
    "mmr",
    [
        pytest.param(1.0, id="one"),
        pytest.param(1.5, id="above-one"),
        pytest.param(-0.001, id="negative"),
        pytest.param(math.nan, id="nan"),
        pytest.param(math.inf, id="inf"),
    ],
)
@pytest.mark.parametrize("call", MMR_TAKERS)
def test_mmr_taker_when_rate_invalid_then_value_error(
    call: Callable[[float], object], mmr: float
) -> None:
    """A maintenance rate outside [0, 1) is rejected."""
    with pytest.raises(ValueError, match="mmr"):
        call(mmr)


@pytest.mark.parametrize(
    "collateral",
    [
        pytest.param(-0.001, id="negative"),
        pytest.param(math.nan, id="nan"),
        pytest.param(math.inf, id="inf"),
    ],
)
@pytest.mark.parametrize(
    "call",
    [
        pytest.param(lambda c: liquidation_price(1_000.0, 100.0, c, 0.005), id="liquidation"),
        pytest.param(lambda c: bankruptcy_price(1_000.0, 100.0, c), id="bankruptcy"),
        pytest.param(
            lambda c: schedule_liquidation_price(1_000.0, 100.0, c, BINANCE_NEW), id="schedule-tier"
        ),
        pytest.param(
            lambda c: schedule_liquidation_price(1_000.0, 100.0, c, DERIBIT_MM),
            id="schedule-linear",
        ),
    ],
)
def test_collateral_taker_when_collateral_invalid_then_value_error(
    call: Callable[[float], object], collateral: float
) -> None:
    """Collateral must be finite and non-negative."""
    with pytest.raises(ValueError, match="collateral"):
        call(collateral)


@pytest.mark.parametrize(
    "call",
    [
        pytest.param(lambda: position_value_coin(math.nan, 100.0), id="value-size-nan"),
        pytest.param(lambda: pnl_coin(math.inf, 100.0, 110.0), id="pnl-size-inf"),
        pytest.param(lambda: funding_payment_coin(1_000.0, 100.0, math.nan), id="funding-rate"),
        pytest.param(lambda: fee_coin(1_000.0, 100.0, math.inf), id="fee-rate"),
        pytest.param(
            lambda: maintenance_margin_coin(1_000.0, 100.0, 0.005, math.nan), id="mm-deduction"
        ),
        pytest.param(
            lambda: liquidation_price(1_000.0, 100.0, 1.0, 0.005, math.inf), id="lp-deduction"
        ),
        pytest.param(lambda: liquidation_price(math.nan, 100.0, 1.0, 0.005), id="lp-size"),
        pytest.param(lambda: bankruptcy_price(math.inf, 100.0, 1.0), id="bp-size"),
        pytest.param(lambda: margin_ratio(math.nan, 0.1), id="ratio-equity"),
        pytest.param(lambda: margin_ratio(0.1, math.inf), id="ratio-mm"),
        pytest.param(lambda: effective_leverage(1_000.0, 100.0, math.nan), id="leverage-equity"),
        pytest.param(lambda: liquidation_distance(100.0, math.nan, 1.0), id="distance-liq-nan"),
        pytest.param(lambda: liquidation_distance(100.0, 90.0, math.nan), id="distance-size"),
    ],
)
def test_non_finite_argument_then_value_error(call: Callable[[], object]) -> None:
    """Non-finite sizes, rates, deductions and equities raise ValueError."""
    with pytest.raises(ValueError, match="finite"):
        call()
