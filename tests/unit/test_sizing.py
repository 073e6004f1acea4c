"""Unit tests for the size engine (scaler.domain.sizing).

Expected values are worked out by hand in the comments from
``target_usd = side * M * L * mark / (1 + f)``, ``f = side * predicted_rate``.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scaler.domain.sizing import (
    SECONDS_PER_YEAR,
    Side,
    SizingConfig,
    SizingLimit,
    SizingResult,
    VolatilityState,
    annualised_vol,
    compute_target,
    raw_target_usd,
    risk_per_trade_cap_usd,
    round_to_lots,
    update_volatility,
)
from scaler.domain.types import NS_PER_S

pytestmark = pytest.mark.unit

EQUITY_COIN = 1.0
LEVERAGE = 3.0
MARK = 50_000.0
RATE = 0.0001  # +0.01 % per 8 h
T0_NS = 1_600_000_000 * NS_PER_S

# Long: f = +0.0001, 1 BTC x 3 x 50,000 = 150,000 USD; 150,000 / 1.0001 = 149,985.00149985...
LONG_RAW_USD = 149_985.00149985
# Short: f = -0.0001, 150,000 / 0.9999 = 150,015.00150015...; signed negative.
SHORT_RAW_USD = -150_015.00150015


def _config(side: int = Side.LONG, lot_size_usd: float = 10.0, **kwargs: float) -> SizingConfig:
    return SizingConfig(
        side=side,
        target_leverage=kwargs.pop("target_leverage", LEVERAGE),
        lot_size_usd=lot_size_usd,
        **kwargs,
    )


def _vol_state(annual_vol: float) -> VolatilityState:
    # annualised = sqrt(var_per_s * seconds_per_year)  =>  var_per_s = vol ** 2 / seconds_per_year
    return VolatilityState(
        ewma_var_per_s=annual_vol**2 / SECONDS_PER_YEAR,
        last_price=MARK,
        ts_last_ns=T0_NS,
        samples=10,
    )


# --- the seed formula ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("side", "expected_usd"), [(Side.LONG, LONG_RAW_USD), (Side.SHORT, SHORT_RAW_USD)]
)
def test_raw_target_usd_matches_hand_computed_value(side: Side, expected_usd: float) -> None:
    """1 BTC x 3 x 50,000 / (1 +/- 0.0001): a long pays funding, a short receives it."""
    result = raw_target_usd(EQUITY_COIN, LEVERAGE, MARK, RATE, side)
    assert result == pytest.approx(expected_usd, rel=1e-12)


def test_raw_target_usd_accepts_plain_int_side() -> None:
    """Side is an IntEnum; the plain ints +1 and -1 work the same."""
    assert raw_target_usd(EQUITY_COIN, LEVERAGE, MARK, RATE, -1) == raw_target_usd(
        EQUITY_COIN, LEVERAGE, MARK, RATE, Side.SHORT
    )


@pytest.mark.parametrize(
    ("venue", "side", "lot_size_usd", "expected_usd"),
    [
        # 149,985.0015 / 10 = 14,998.5 lots -> 14,998 lots = 149,980 USD.
        ("deribit", Side.LONG, 10.0, 149_980.0),
        # -150,015.0015 / 10 = -15,001.5 lots -> toward zero -15,001 lots = -150,010 USD.
        ("deribit", Side.SHORT, 10.0, -150_010.0),
        # Bybit / Kraken 1 USD contracts: 149,985 and -150,015 contracts.
        ("bybit", Side.LONG, 1.0, 149_985.0),
        ("bybit", Side.SHORT, 1.0, -150_015.0),
        # OKX / Binance COIN-M 100 USD contracts: 1,499 and -1,500 contracts.
        ("okx", Side.LONG, 100.0, 149_900.0),
        ("binancecoinm", Side.SHORT, 100.0, -150_000.0),
    ],
)
def test_compute_target_rounds_to_venue_lot(
    venue: str, side: Side, lot_size_usd: float, expected_usd: float
) -> None:
    """The target is the hand-computed formula value, truncated toward zero to whole lots."""
    result = compute_target(EQUITY_COIN, MARK, RATE, _config(side, lot_size_usd))
    expected_raw = LONG_RAW_USD if side == Side.LONG else SHORT_RAW_USD
    assert result.raw_target_usd == pytest.approx(expected_raw, rel=1e-12), venue
    assert result.target_usd == expected_usd, venue
    assert result.effective_leverage == LEVERAGE
    assert result.limited_by == ()


def test_compute_target_reports_funding_term() -> None:
    """funding_term is the denominator 1 + f: 1.0001 for a long at +0.01 %, 0.9999 for a short."""
    assert compute_target(EQUITY_COIN, MARK, RATE, _config(Side.LONG)).funding_term == 1.0001
    assert compute_target(EQUITY_COIN, MARK, RATE, _config(Side.SHORT)).funding_term == 0.9999


def test_compute_target_when_no_prediction_then_rate_zero() -> None:
    """A missing prediction is sized as 0 % funding: 1 x 3 x 50,000 = 150,000 USD."""
    result = compute_target(EQUITY_COIN, MARK, None, _config())
    assert result == SizingResult(
        target_usd=150_000.0,
        raw_target_usd=150_000.0,
        effective_leverage=3.0,
        funding_term=1.0,
        limited_by=(),
    )


@pytest.mark.parametrize("equity_coin", [0.0, -0.0, -0.5])
@pytest.mark.parametrize("side", [Side.LONG, Side.SHORT])
def test_when_no_equity_then_zero_target(equity_coin: float, side: Side) -> None:
    """No equity, no position, whatever the side."""
    assert raw_target_usd(equity_coin, LEVERAGE, MARK, RATE, side) == 0.0
    result = compute_target(equity_coin, MARK, RATE, _config(side))
    assert (result.target_usd, result.raw_target_usd) == (0.0, 0.0)
    assert result.limited_by == (SizingLimit.NO_EQUITY,)
    assert math.copysign(1.0, result.target_usd) == 1.0  # no -0.0 leaks out


def test_when_one_plus_f_below_min_denominator_then_clamped() -> None:
    """A short at +70 % has 1 + f = 0.3, clamped to 0.5: -1 x 3 x 50,000 / 0.5 = -300,000."""
    assert raw_target_usd(EQUITY_COIN, LEVERAGE, MARK, 0.7, Side.SHORT) == -300_000.0
    result = compute_target(EQUITY_COIN, MARK, 0.7, _config(Side.SHORT))
    assert result.target_usd == -300_000.0
    assert result.funding_term == 0.5
    assert result.limited_by == (SizingLimit.DENOMINATOR_CLAMP,)
    # The same rate for a long: 1 + f = 1.7, no clamp, 150,000 / 1.7 = 88,235.29 -> 88,230.
    long_result = compute_target(EQUITY_COIN, MARK, 0.7, _config(Side.LONG))
    assert long_result.target_usd == 88_230.0
    assert long_result.limited_by == ()


def test_raw_target_usd_min_denominator_is_configurable() -> None:
    """With min_denominator 0.8 a short at +70 % is sized at 150,000 / 0.8 = 187,500."""
    result = raw_target_usd(EQUITY_COIN, LEVERAGE, MARK, 0.7, Side.SHORT, min_denominator=0.8)
    assert result == -187_500.0


# --- invalid input ---------------------------------------------------------------------------

BAD_NUMBERS = [math.nan, math.inf, -math.inf]


@pytest.mark.parametrize("mark", [0.0, -50_000.0, *BAD_NUMBERS])
def test_when_mark_invalid_then_value_error(mark: float) -> None:
    """A zero, negative or non-finite mark is refused, never sized."""
    with pytest.raises(ValueError, match="mark_price"):
        raw_target_usd(EQUITY_COIN, LEVERAGE, mark, RATE, Side.LONG)
    with pytest.raises(ValueError, match="mark_price"):
        compute_target(EQUITY_COIN, mark, RATE, _config())


@pytest.mark.parametrize("leverage", [0.0, -3.0, *BAD_NUMBERS])
def test_when_leverage_invalid_then_value_error(leverage: float) -> None:
    """Leverage must be positive and finite, in the function and in the config."""
    with pytest.raises(ValueError, match="target_leverage"):
        raw_target_usd(EQUITY_COIN, leverage, MARK, RATE, Side.LONG)
    with pytest.raises(ValueError, match="target_leverage"):
        SizingConfig(side=Side.LONG, target_leverage=leverage, lot_size_usd=10.0)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"equity_coin": math.nan}, "equity_coin"),
        ({"equity_coin": math.inf}, "equity_coin"),
        ({"predicted_rate": math.nan}, "predicted_rate"),
        ({"predicted_rate": -math.inf}, "predicted_rate"),
        ({"side": 0}, "side"),
        ({"side": 2}, "side"),
        ({"side": True}, "side"),
        ({"min_denominator": 0.0}, "min_denominator"),
        ({"min_denominator": 1.5}, "min_denominator"),
    ],
)
def test_raw_target_usd_when_invalid_then_value_error(kwargs: dict[str, float], field: str) -> None:
    """Every invalid argument is refused with its name in the message."""
    arguments: dict[str, float] = {
        "equity_coin": EQUITY_COIN,
        "target_leverage": LEVERAGE,
        "mark_price": MARK,
        "predicted_rate": RATE,
        "side": 1,
        **kwargs,
    }
    with pytest.raises(ValueError, match=field):
        raw_target_usd(**arguments)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("equity_coin", "predicted_rate", "field"),
    [(math.nan, RATE, "equity_coin"), (EQUITY_COIN, math.nan, "predicted_rate")],
)
def test_compute_target_when_invalid_then_value_error(
    equity_coin: float, predicted_rate: float, field: str
) -> None:
    """compute_target refuses non-finite equity and rates."""
    with pytest.raises(ValueError, match=field):
        compute_target(equity_coin, MARK, predicted_rate, _config())


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"side": 0}, "side"),
        ({"side": False}, "side"),
        ({"lot_size_usd": 0.0}, "lot_size_usd"),
        ({"lot_size_usd": math.nan}, "lot_size_usd"),
        ({"min_denominator": 0.0}, "min_denominator"),
        ({"min_denominator": 1.01}, "min_denominator"),
        ({"max_leverage": 0.0}, "max_leverage"),
        ({"target_leverage": 150.0}, "max_leverage"),
        ({"target_vol_annual": 0.0}, "target_vol_annual"),
        ({"target_vol_annual": math.inf}, "target_vol_annual"),
        ({"max_loss_fraction": 0.02}, "stop_distance"),
        ({"stop_distance": 0.05}, "max_loss_fraction"),
        ({"max_loss_fraction": 0.0, "stop_distance": 0.05}, "max_loss_fraction"),
        ({"max_loss_fraction": 1.0, "stop_distance": 0.05}, "max_loss_fraction"),
        ({"max_loss_fraction": 0.02, "stop_distance": 1.0}, "stop_distance"),
        ({"max_loss_fraction": 0.02, "stop_distance": -0.05}, "stop_distance"),
    ],
)
def test_config_when_invalid_then_value_error_names_field(
    kwargs: dict[str, float], field: str
) -> None:
    """Each invalid setting is refused with its name in the message."""
    arguments: dict[str, float] = {
        "side": 1,
        "target_leverage": LEVERAGE,
        "lot_size_usd": 10.0,
        **kwargs,
    }
    with pytest.raises(ValueError, match=field):
        SizingConfig(**arguments)  # type: ignore[arg-type]


# --- lot rounding ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size_usd", "lot_size_usd", "expected_usd"),
    [
        (149_980.0, 10.0, 149_980.0),  # an exact multiple stays put
        (149_979.99999999997, 10.0, 149_980.0),  # a float hair below the boundary keeps the lot
        (149_979.99, 10.0, 149_970.0),  # a real shortfall drops the lot
        (-149_989.9, 10.0, -149_980.0),  # toward zero for shorts
        (9.99, 10.0, 0.0),  # less than one lot is nothing
        (-9.99, 10.0, 0.0),  # ... and positive zero
        (0.30000000000000004 - 1e-17, 0.1, 0.30000000000000004),  # 3 x 0.1 in floats
        (299.99999999999994, 100.0, 300.0),
    ],
)
def test_round_to_lots(size_usd: float, lot_size_usd: float, expected_usd: float) -> None:
    """Truncation toward zero to whole lots, tolerant of float error at the boundary."""
    result = round_to_lots(size_usd, lot_size_usd)
    assert result == expected_usd
    assert math.copysign(1.0, result) == math.copysign(1.0, expected_usd)


@pytest.mark.parametrize(
    ("size_usd", "lot_size_usd"),
    [(math.nan, 10.0), (math.inf, 10.0), (100.0, 0.0), (100.0, -10.0), (100.0, math.nan)],
)
def test_round_to_lots_when_invalid_then_value_error(size_usd: float, lot_size_usd: float) -> None:
    """Non-finite sizes and non-positive lots are refused."""
    with pytest.raises(ValueError, match=r"size_usd|lot_size_usd"):
        round_to_lots(size_usd, lot_size_usd)


# --- volatility ------------------------------------------------------------------------------


def test_update_volatility_hand_computed() -> None:
    """100 -> 110 -> 100 at 60 s steps with a 60 s half-life: var = ln(1.1)^2 / 60 per second."""
    state = update_volatility(VolatilityState.initial(), 100.0, T0_NS, 60.0)
    assert state == VolatilityState(None, 100.0, T0_NS, 0)
    assert annualised_vol(state) is None

    # First return initialises: ln(110/100)^2 / 60 s.
    state = update_volatility(state, 110.0, T0_NS + 60 * NS_PER_S, 60.0)
    first = math.log(1.1) ** 2 / 60.0
    assert state.ewma_var_per_s == pytest.approx(first, rel=1e-12)
    assert state.samples == 1

    # Second return ln(100/110) = -ln(1.1), same squared sample; dt = half-life so alpha = 0.5:
    # 0.5 * first + 0.5 * first = first.
    state = update_volatility(state, 100.0, T0_NS + 120 * NS_PER_S, 60.0)
    assert state.ewma_var_per_s == pytest.approx(first, rel=1e-12)
    assert state.samples == 2
    assert annualised_vol(state) == pytest.approx(math.sqrt(first * 365 * 86_400), rel=1e-12)


def test_update_volatility_time_aware_weight() -> None:
    """After a quiet 120 s (two half-lives) only a quarter of the old variance remains."""
    state = VolatilityState(ewma_var_per_s=4e-6, last_price=100.0, ts_last_ns=T0_NS, samples=5)
    state = update_volatility(state, 100.0, T0_NS + 120 * NS_PER_S, 60.0)
    # sample 0, alpha = 1 - 0.5 ** 2 = 0.75: 4e-6 + 0.75 * (0 - 4e-6) = 1e-6.
    assert state.ewma_var_per_s == pytest.approx(1e-6, rel=1e-12)


def test_update_volatility_when_same_timestamp_then_ignored() -> None:
    """A second mark at the same timestamp changes nothing."""
    state = VolatilityState(ewma_var_per_s=4e-6, last_price=100.0, ts_last_ns=T0_NS, samples=5)
    assert update_volatility(state, 120.0, T0_NS, 60.0) == state


@pytest.mark.parametrize(
    ("mark", "ts_ns", "half_life_s", "field"),
    [
        (100.0, T0_NS - 1, 60.0, "older"),
        (0.0, T0_NS + 1, 60.0, "mark_price"),
        (math.nan, T0_NS + 1, 60.0, "mark_price"),
        (100.0, T0_NS + 1, 0.0, "half_life_s"),
        (100.0, 1.6e18, 60.0, "ts_ns"),
    ],
)
def test_update_volatility_when_invalid_then_value_error(
    mark: float, ts_ns: int, half_life_s: float, field: str
) -> None:
    """Out-of-order marks and invalid arguments are refused."""
    state = VolatilityState(ewma_var_per_s=None, last_price=100.0, ts_last_ns=T0_NS, samples=0)
    with pytest.raises(ValueError, match=field):
        update_volatility(state, mark, ts_ns, half_life_s)


def test_volatility_targeting_when_vol_twice_target_then_leverage_halved() -> None:
    """L_eff = min(L, 50 % / 100 %) = 0.5 for L = 1: half the exposure, 25,000 USD."""
    config = _config(target_leverage=1.0, target_vol_annual=0.5)
    result = compute_target(EQUITY_COIN, MARK, 0.0, config, _vol_state(1.0))
    assert result.effective_leverage == pytest.approx(0.5, rel=1e-12)
    assert result.raw_target_usd == pytest.approx(25_000.0, rel=1e-12)  # 1 x 0.5 x 50,000
    assert result.target_usd == 25_000.0
    assert result.limited_by == (SizingLimit.VOLATILITY,)


def test_volatility_targeting_caps_higher_leverage_at_vol_ratio() -> None:
    """With L = 3, target 40 % and realised 80 %, L_eff = 0.4 / 0.8 = 0.5: 25,000 USD short."""
    config = _config(Side.SHORT, target_leverage=3.0, target_vol_annual=0.4)
    result = compute_target(EQUITY_COIN, MARK, 0.0, config, _vol_state(0.8))
    assert result.effective_leverage == pytest.approx(0.5, rel=1e-12)
    assert result.target_usd == -25_000.0


@pytest.mark.parametrize(
    "vol_state",
    [
        None,  # no state passed
        VolatilityState.initial(),  # no mark yet
        VolatilityState(None, MARK, T0_NS, 0),  # one mark, no return yet
        VolatilityState(0.0, MARK, T0_NS, 3),  # zero realised vol
        _vol_state(0.2),  # realised 20 % < target 50 %: ratio 2.5 > L = 1
    ],
)
def test_volatility_targeting_when_vol_unknown_or_low_then_leverage_kept(
    vol_state: VolatilityState | None,
) -> None:
    """Volatility targeting only ever lowers leverage, and keeps L when vol is unknown."""
    config = _config(target_leverage=1.0, target_vol_annual=0.5)
    result = compute_target(EQUITY_COIN, MARK, 0.0, config, vol_state)
    assert result.effective_leverage == 1.0
    assert result.target_usd == 50_000.0
    assert result.limited_by == ()


def test_volatility_targeting_when_disabled_then_vol_ignored() -> None:
    """Without target_vol_annual the realised vol has no effect."""
    result = compute_target(EQUITY_COIN, MARK, 0.0, _config(), _vol_state(5.0))
    assert result.effective_leverage == LEVERAGE


# --- risk per trade and max leverage ---------------------------------------------------------


@pytest.mark.parametrize(
    ("side", "expected_cap_usd", "exit_price"),
    [
        # Long: k * M * E * (1 - d) / d = 0.02 x 1 x 50,000 x 0.95 / 0.05 = 19,000 USD;
        # a drop to 47,500 loses 19,000 x (1/47,500 - 1/50,000) = 0.02 BTC.
        (Side.LONG, 19_000.0, 47_500.0),
        # Short: k * M * E * (1 + d) / d = 0.02 x 1 x 50,000 x 1.05 / 0.05 = 21,000 USD;
        # a rise to 52,500 loses 21,000 x (1/50,000 - 1/52,500) = 0.02 BTC.
        (Side.SHORT, 21_000.0, 52_500.0),
    ],
)
def test_risk_per_trade_cap(side: Side, expected_cap_usd: float, exit_price: float) -> None:
    """The cap lets a stop_distance move lose exactly max_loss_fraction of equity."""
    cap_usd = risk_per_trade_cap_usd(EQUITY_COIN, MARK, side, 0.02, 0.05)
    assert cap_usd == pytest.approx(expected_cap_usd, rel=1e-12)
    signed_usd = side * cap_usd
    pnl_coin = signed_usd * (1.0 / MARK - 1.0 / exit_price)
    assert pnl_coin == pytest.approx(-0.02 * EQUITY_COIN, rel=1e-12)

    config = _config(side, max_loss_fraction=0.02, stop_distance=0.05)
    result = compute_target(EQUITY_COIN, MARK, 0.0, config)
    assert result.target_usd == side * expected_cap_usd
    assert result.raw_target_usd == pytest.approx(side * expected_cap_usd, rel=1e-12)
    assert result.limited_by == (SizingLimit.RISK_PER_TRADE,)


def test_risk_per_trade_when_looser_than_formula_then_not_binding() -> None:
    """A 50 % loss budget at a 5 % stop allows 475,000 USD long, more than the 150,000 target."""
    config = _config(max_loss_fraction=0.5, stop_distance=0.05)
    result = compute_target(EQUITY_COIN, MARK, 0.0, config)
    assert result.target_usd == 150_000.0
    assert result.limited_by == ()


def test_max_leverage_caps_exposure_after_funding_term() -> None:
    """L = 80 long at -25 %: 80 / 0.75 = 106.7x > 100x, capped to 1 x 100 x 50,000 = 5,000,000."""
    config = _config(target_leverage=80.0, max_leverage=100.0)
    result = compute_target(EQUITY_COIN, MARK, -0.25, config)
    assert result.target_usd == 5_000_000.0
    assert result.effective_leverage == 80.0
    assert result.funding_term == 0.75
    assert result.limited_by == (SizingLimit.MAX_LEVERAGE,)


def test_sizing_limit_values_are_the_documented_strings() -> None:
    """limited_by carries bounded string values usable as metric labels."""
    assert {str(limit) for limit in SizingLimit} == {
        "volatility",
        "risk_per_trade",
        "max_leverage",
        "denominator_clamp",
        "no_equity",
    }


# --- properties ------------------------------------------------------------------------------

equities = st.floats(min_value=-10.0, max_value=10_000.0, allow_nan=False)
positive_equities = st.floats(min_value=1e-6, max_value=10_000.0, allow_nan=False)
marks = st.floats(min_value=100.0, max_value=1_000_000.0, allow_nan=False)
predicted_rates = st.floats(min_value=-0.9, max_value=0.9, allow_nan=False)
leverages = st.floats(min_value=0.01, max_value=100.0, allow_nan=False)
sides = st.sampled_from([Side.LONG, Side.SHORT])
lots = st.sampled_from([1.0, 10.0, 100.0])
min_denominators = st.floats(min_value=0.05, max_value=1.0, allow_nan=False)


@st.composite
def configs(draw: st.DrawFn) -> SizingConfig:
    """Any valid config, with the optional refinements sometimes on."""
    risk = draw(st.booleans())
    return SizingConfig(
        side=draw(sides),
        target_leverage=draw(leverages),
        lot_size_usd=draw(lots),
        min_denominator=draw(min_denominators),
        target_vol_annual=draw(st.none() | st.floats(min_value=0.05, max_value=3.0)),
        max_loss_fraction=draw(st.floats(min_value=0.001, max_value=0.5)) if risk else None,
        stop_distance=draw(st.floats(min_value=0.001, max_value=0.5)) if risk else None,
    )


vol_states = st.none() | st.builds(
    VolatilityState,
    ewma_var_per_s=st.none() | st.floats(min_value=0.0, max_value=1e-5),
    last_price=st.just(MARK),
    ts_last_ns=st.just(T0_NS),
    samples=st.integers(min_value=0, max_value=100),
)


@given(size_usd=st.floats(min_value=-1e9, max_value=1e9, allow_nan=False), lot=lots)
def test_round_to_lots_properties(size_usd: float, lot: float) -> None:
    """Rounded is a whole number of lots, never bigger than raw (beyond 1e-9 relative), never
    a whole lot smaller, and keeps the sign."""
    rounded = round_to_lots(size_usd, lot)
    whole_lots = round(rounded / lot)
    assert rounded == whole_lots * lot
    assert abs(rounded) <= abs(size_usd) * (1.0 + 1e-9)
    assert abs(size_usd) - abs(rounded) < lot
    assert rounded == 0.0 or math.copysign(1.0, rounded) == math.copysign(1.0, size_usd)


@given(equity=equities, mark=marks, rate=predicted_rates, config=configs(), vol=vol_states)
def test_compute_target_properties(
    equity: float,
    mark: float,
    rate: float,
    config: SizingConfig,
    vol: VolatilityState | None,
) -> None:
    """Lots, sign, rounding toward zero and the exposure bound hold for any valid input."""
    result = compute_target(equity, mark, rate, config, vol)
    target, raw = result.target_usd, result.raw_target_usd
    assert target == round(target / config.lot_size_usd) * config.lot_size_usd
    assert abs(target) <= abs(raw) * (1.0 + 1e-9)
    assert target == 0.0 or math.copysign(1.0, target) == config.side
    assert raw == 0.0 or math.copysign(1.0, raw) == config.side
    exposure_coin = abs(target) / mark
    assert exposure_coin <= max(equity, 0.0) * config.target_leverage / config.min_denominator * (
        1.0 + 1e-9
    )
    assert exposure_coin <= max(equity, 0.0) * config.max_leverage * (1.0 + 1e-9)
    assert result.effective_leverage <= config.target_leverage


@given(
    equities_pair=st.tuples(equities, equities),
    mark=marks,
    rate=predicted_rates,
    config=configs(),
    vol=vol_states,
)
def test_compute_target_monotone_in_equity(
    equities_pair: tuple[float, float],
    mark: float,
    rate: float,
    config: SizingConfig,
    vol: VolatilityState | None,
) -> None:
    """More equity never gives a smaller target."""
    low, high = sorted(equities_pair)
    smaller = compute_target(low, mark, rate, config, vol)
    larger = compute_target(high, mark, rate, config, vol)
    assert abs(smaller.target_usd) <= abs(larger.target_usd)
    assert abs(smaller.raw_target_usd) <= abs(larger.raw_target_usd)


@given(
    leverage_pair=st.tuples(leverages, leverages),
    equity=positive_equities,
    mark=marks,
    rate=predicted_rates,
    config=configs(),
    vol=vol_states,
)
def test_compute_target_monotone_in_leverage(
    *,
    leverage_pair: tuple[float, float],
    equity: float,
    mark: float,
    rate: float,
    config: SizingConfig,
    vol: VolatilityState | None,
) -> None:
    """More target leverage never gives a smaller target."""
    low, high = sorted(leverage_pair)
    results = [
        compute_target(
            equity,
            mark,
            rate,
            SizingConfig(
                side=config.side,
                target_leverage=leverage,
                lot_size_usd=config.lot_size_usd,
                min_denominator=config.min_denominator,
                target_vol_annual=config.target_vol_annual,
                max_loss_fraction=config.max_loss_fraction,
                stop_distance=config.stop_distance,
            ),
            vol,
        )
        for leverage in (low, high)
    ]
    assert abs(results[0].target_usd) <= abs(results[1].target_usd)
    assert abs(results[0].raw_target_usd) <= abs(results[1].raw_target_usd)
