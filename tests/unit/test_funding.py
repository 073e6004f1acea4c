"""Unit tests for the funding-rate predictor (scaler.domain.funding)."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scaler.domain.funding import (
    FundingPrediction,
    FundingPredictorConfig,
    FundingPredictorState,
    normalise_rate,
    observe,
    predict,
    report,
)
from scaler.domain.types import NS_PER_HOUR, NS_PER_S

pytestmark = pytest.mark.unit

EIGHT_HOURS_S = 28_800.0
ONE_HOUR_S = 3_600.0
EIGHT_HOURS_NS = 8 * NS_PER_HOUR
T0_NS = 1_584_057_600 * NS_PER_S  # 2020-03-13 00:00:00 UTC

# BitMEX XBTUSD funding on 13 March 2020 swung from the usual +0.01 % to the floor of -0.375 %
# per 8 h interval.
RATE_BEFORE = 0.0001
RATE_AFTER = -0.00375

rates = st.floats(min_value=-0.01, max_value=0.01, allow_nan=False, allow_infinity=False)
half_lives = st.floats(min_value=0.25, max_value=20.0, allow_nan=False, allow_infinity=False)


HALF_LIFE_3 = FundingPredictorConfig(half_life_intervals=3.0)


def _observe_8h(state: FundingPredictorState, rate: float, ts_ns: int) -> FundingPredictorState:
    """Observe a rate per 8 h with an 8 h interval and a half-life of 3 intervals."""
    return observe(state, rate, EIGHT_HOURS_S, ts_ns, HALF_LIFE_3)


def _state(
    ema_rate: float | None = None, venue_predicted_rate: float | None = None
) -> FundingPredictorState:
    observed = ema_rate is not None
    return FundingPredictorState(
        ema_rate=ema_rate,
        samples=1 if observed else 0,
        ts_last_obs_ns=T0_NS if observed else None,
        last_rate=ema_rate,
        venue_predicted_rate=venue_predicted_rate,
    )


# --- normalisation -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rate", "observed_interval_s", "expected_8h"),
    [
        # Kraken funds hourly: one hour's 0.01 % is 8 x 0.01 % = 0.08 % per 8 h.
        (0.0001, ONE_HOUR_S, 0.0008),
        # A 4 h venue (BitMEX/OKX shortened interval): 2 x 0.01 % = 0.02 % per 8 h.
        (0.0001, 4 * ONE_HOUR_S, 0.0002),
        # Deribit quotes its continuous funding as an 8 h rate: unchanged.
        (0.0001, EIGHT_HOURS_S, 0.0001),
        # A 2 h interval with the 8 h floor -0.375 % scaled down: 4 x -0.09375 % = -0.375 %.
        (-0.0009375, 2 * ONE_HOUR_S, -0.00375),
    ],
)
def test_normalise_rate_scales_by_interval_ratio(
    rate: float, observed_interval_s: float, expected_8h: float
) -> None:
    """A rate per observed interval becomes rate * target / observed."""
    assert normalise_rate(rate, observed_interval_s, EIGHT_HOURS_S) == pytest.approx(
        expected_8h, rel=1e-12
    )


def test_observe_when_hourly_rate_then_state_holds_8h_rate() -> None:
    """An hourly (Kraken) observation is stored normalised to the configured 8 h interval."""
    state = observe(
        FundingPredictorState.initial(), 0.0001, ONE_HOUR_S, T0_NS, FundingPredictorConfig()
    )
    assert state.ema_rate == pytest.approx(0.0008, rel=1e-12)
    assert state.last_rate == pytest.approx(0.0008, rel=1e-12)


@pytest.mark.parametrize(
    ("rate", "observed", "target"),
    [
        (math.nan, 1.0, 1.0),
        (math.inf, 1.0, 1.0),
        (0.0001, 0.0, 1.0),
        (0.0001, -3600.0, 1.0),
        (0.0001, math.nan, 1.0),
        (0.0001, 1.0, 0.0),
        (0.0001, 1.0, math.inf),
    ],
)
def test_normalise_rate_when_invalid_then_value_error(
    rate: float, observed: float, target: float
) -> None:
    """Non-finite rates and non-positive or non-finite intervals are refused."""
    with pytest.raises(ValueError, match=r"rate|interval"):
        normalise_rate(rate, observed, target)


# --- the EMA ---------------------------------------------------------------------------------


def test_observe_when_first_observation_then_ema_initialised() -> None:
    """The first observation sets the EMA to the observed rate."""
    state = _observe_8h(FundingPredictorState.initial(), RATE_BEFORE, T0_NS)
    assert state == FundingPredictorState(
        ema_rate=RATE_BEFORE,
        samples=1,
        ts_last_obs_ns=T0_NS,
        last_rate=RATE_BEFORE,
        venue_predicted_rate=None,
    )


def test_observe_when_march_2020_step_then_half_life_in_intervals() -> None:
    """A step from +0.01 % to -0.375 % per 8 h is half absorbed after 3 intervals, 3/4 after 6."""
    state = _observe_8h(FundingPredictorState.initial(), RATE_BEFORE, T0_NS)
    step = RATE_AFTER - RATE_BEFORE  # -0.00385

    # After one interval with half-life h = 3: alpha = 1 - 0.5 ** (1/3) ~= 0.2063.
    state = _observe_8h(state, RATE_AFTER, T0_NS + EIGHT_HOURS_NS)
    assert state.ema_rate == pytest.approx(RATE_BEFORE + (1 - 0.5 ** (1 / 3)) * step, rel=1e-12)

    # After n intervals the remaining distance to the new level is 0.5 ** (n / h) of the step.
    # n = 3: half remains -> 0.0001 + 0.5 * -0.00385 = -0.001825 (the midpoint).
    for n in (2, 3):
        state = _observe_8h(state, RATE_AFTER, T0_NS + n * EIGHT_HOURS_NS)
    assert state.ema_rate == pytest.approx(-0.001825, rel=1e-12)
    assert state.samples == 4

    # n = 6: a quarter remains -> -0.00375 + 0.25 * 0.00385 = -0.0027875.
    for n in (4, 5, 6):
        state = _observe_8h(state, RATE_AFTER, T0_NS + n * EIGHT_HOURS_NS)
    assert state.ema_rate == pytest.approx(-0.0027875, rel=1e-12)
    assert state.last_rate == RATE_AFTER
    assert predict(state, FundingPredictorConfig()) == pytest.approx(-0.0027875, rel=1e-12)


def test_observe_when_same_timestamp_then_ema_unchanged_and_venue_updated() -> None:
    """A duplicate observation leaves the EMA alone but records a venue forecast given with it."""
    config = FundingPredictorConfig()
    state = observe(
        FundingPredictorState.initial(),
        RATE_BEFORE,
        EIGHT_HOURS_S,
        T0_NS,
        config,
        venue_predicted_rate=0.0002,
    )
    duplicate = observe(state, RATE_AFTER, EIGHT_HOURS_S, T0_NS, config)
    assert duplicate == state

    with_venue = observe(
        state, RATE_AFTER, EIGHT_HOURS_S, T0_NS, config, venue_predicted_rate=0.0003
    )
    assert with_venue.ema_rate == RATE_BEFORE
    assert with_venue.last_rate == RATE_BEFORE
    assert with_venue.samples == 1
    assert with_venue.venue_predicted_rate == 0.0003


def test_observe_when_new_observation_without_venue_rate_then_venue_rate_cleared() -> None:
    """A venue forecast not re-published with the next rate is stale and is dropped."""
    config = FundingPredictorConfig(venue_weight=0.5)
    state = observe(
        FundingPredictorState.initial(),
        RATE_BEFORE,
        EIGHT_HOURS_S,
        T0_NS,
        config,
        venue_predicted_rate=0.0002,
    )
    state = observe(state, RATE_BEFORE, EIGHT_HOURS_S, T0_NS + EIGHT_HOURS_NS, config)
    assert state.venue_predicted_rate is None


def test_observe_when_venue_rate_hourly_then_normalised() -> None:
    """The venue forecast is normalised with the same interval as the observed rate."""
    state = observe(
        FundingPredictorState.initial(),
        0.0001,
        ONE_HOUR_S,
        T0_NS,
        FundingPredictorConfig(),
        venue_predicted_rate=-0.00005,
    )
    assert state.venue_predicted_rate == pytest.approx(-0.0004, rel=1e-12)


def test_observe_when_out_of_order_then_value_error() -> None:
    """An observation older than the last one is refused."""
    state = _observe_8h(FundingPredictorState.initial(), RATE_BEFORE, T0_NS)
    with pytest.raises(ValueError, match="older"):
        _observe_8h(state, RATE_AFTER, T0_NS - 1)


@pytest.mark.parametrize("ts_ns", [1.5e18, True, "1584057600000000000"])
def test_observe_when_timestamp_not_int_then_value_error(ts_ns: object) -> None:
    """Timestamps are integer nanoseconds; anything else is refused."""
    with pytest.raises(ValueError, match="ts_ns"):
        _observe_8h(FundingPredictorState.initial(), RATE_BEFORE, ts_ns)  # type: ignore[arg-type]


@pytest.mark.parametrize("rate", [math.nan, math.inf, -math.inf])
def test_observe_when_rate_not_finite_then_value_error(rate: float) -> None:
    """A non-finite rate never reaches the EMA."""
    with pytest.raises(ValueError, match="rate"):
        _observe_8h(FundingPredictorState.initial(), rate, T0_NS)


@given(
    rate=rates,
    gaps_s=st.lists(st.integers(min_value=1, max_value=10 * 86_400), min_size=1, max_size=20),
    half_life=half_lives,
)
def test_observe_when_rate_constant_then_prediction_equals_rate(
    rate: float, gaps_s: list[int], half_life: float
) -> None:
    """Observing one rate at any times leaves the prediction equal to that rate."""
    config = FundingPredictorConfig(half_life_intervals=half_life)
    state = observe(FundingPredictorState.initial(), rate, EIGHT_HOURS_S, T0_NS, config)
    ts_ns = T0_NS
    for gap_s in gaps_s:
        ts_ns += gap_s * NS_PER_S
        state = observe(state, rate, EIGHT_HOURS_S, ts_ns, config)
    assert predict(state, config) == rate
    assert state.samples == len(gaps_s) + 1


@given(start=rates, rate=rates, half_life=half_lives)
def test_observe_when_sampled_hourly_then_same_as_once_per_interval(
    start: float, rate: float, half_life: float
) -> None:
    """Eight hourly observations of a constant rate equal one observation after 8 h."""
    config = FundingPredictorConfig(half_life_intervals=half_life)
    initial = observe(FundingPredictorState.initial(), start, EIGHT_HOURS_S, T0_NS, config)

    hourly = initial
    for hour in range(1, 9):
        hourly = observe(hourly, rate, EIGHT_HOURS_S, T0_NS + hour * NS_PER_HOUR, config)
    once = observe(initial, rate, EIGHT_HOURS_S, T0_NS + EIGHT_HOURS_NS, config)

    assert hourly.ema_rate is not None
    assert once.ema_rate is not None
    assert abs(hourly.ema_rate - once.ema_rate) <= 1e-12


# --- prediction ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("venue_weight", "expected"),
    [
        (0.0, 0.0001),  # EMA only: the venue forecast is exposed but not used
        (0.5, 0.0002),  # (1 - 0.5) * 0.0001 + 0.5 * 0.0003
        (1.0, 0.0003),  # venue forecast only
    ],
)
def test_predict_blends_ema_and_venue_rate(venue_weight: float, expected: float) -> None:
    """The prediction is (1 - w) * ema + w * venue."""
    state = _state(ema_rate=0.0001, venue_predicted_rate=0.0003)
    config = FundingPredictorConfig(venue_weight=venue_weight)
    assert predict(state, config) == pytest.approx(expected, rel=1e-12)


def test_predict_when_no_venue_rate_then_ema() -> None:
    """With a venue weight but no venue forecast, the EMA alone is the prediction."""
    state = _state(ema_rate=0.0001)
    assert predict(state, FundingPredictorConfig(venue_weight=0.7)) == 0.0001


@pytest.mark.parametrize(("venue_weight", "expected"), [(0.0, None), (0.3, 0.0003)])
def test_predict_when_no_ema_then_venue_rate_only_if_weighted(
    venue_weight: float, expected: float | None
) -> None:
    """Before any observation, the venue forecast is used only when it has weight."""
    state = _state(venue_predicted_rate=0.0003)
    assert predict(state, FundingPredictorConfig(venue_weight=venue_weight)) == expected


def test_predict_when_nothing_known_then_none() -> None:
    """No EMA and no venue forecast: no prediction."""
    assert (
        predict(FundingPredictorState.initial(), FundingPredictorConfig(venue_weight=1.0)) is None
    )


@pytest.mark.parametrize(("ema", "expected"), [(0.2, 0.05), (-0.2, -0.05), (0.049, 0.049)])
def test_predict_clamps_to_max_abs_rate(ema: float, expected: float) -> None:
    """The prediction never leaves [-max_abs_rate, +max_abs_rate]."""
    assert predict(_state(ema_rate=ema), FundingPredictorConfig(max_abs_rate=0.05)) == expected


def test_report_exposes_prediction_inputs_and_age() -> None:
    """The report carries the blended rate, both inputs, the sample count and the age."""
    state = _state(ema_rate=0.0001, venue_predicted_rate=0.0003)
    config = FundingPredictorConfig(venue_weight=0.5)
    result = report(state, config, T0_NS + 90 * NS_PER_S)
    assert result.rate == pytest.approx(0.0002, rel=1e-12)  # 0.5 * 0.0001 + 0.5 * 0.0003
    assert (result.ema_rate, result.venue_predicted_rate) == (0.0001, 0.0003)
    assert (result.samples, result.age_s) == (1, 90.0)


def test_report_when_never_observed_then_no_age() -> None:
    """Before the first observation there is no rate and no age."""
    result = report(FundingPredictorState.initial(), FundingPredictorConfig(), T0_NS)
    assert result == FundingPrediction(
        rate=None, ema_rate=None, venue_predicted_rate=None, samples=0, age_s=None
    )


def test_report_when_observation_stamped_in_future_then_age_zero() -> None:
    """A venue clock slightly ahead of ours reports age 0.0, not a negative age."""
    result = report(_state(ema_rate=0.0001), FundingPredictorConfig(), T0_NS - NS_PER_S)
    assert result.age_s == 0.0


# --- configuration ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"interval_s": 0.0}, "interval_s"),
        ({"interval_s": -1.0}, "interval_s"),
        ({"interval_s": math.inf}, "interval_s"),
        ({"half_life_intervals": 0.0}, "half_life_intervals"),
        ({"half_life_intervals": math.nan}, "half_life_intervals"),
        ({"venue_weight": -0.1}, "venue_weight"),
        ({"venue_weight": 1.1}, "venue_weight"),
        ({"venue_weight": math.nan}, "venue_weight"),
        ({"max_abs_rate": 0.0}, "max_abs_rate"),
    ],
)
def test_config_when_invalid_then_value_error_names_field(
    kwargs: dict[str, float], field: str
) -> None:
    """Each invalid setting is refused with its name in the message."""
    with pytest.raises(ValueError, match=field):
        FundingPredictorConfig(**kwargs)


def test_config_defaults() -> None:
    """Defaults: 8 h interval, half-life 2 intervals (docs/funding.md), EMA only, clamp at 5 %."""
    config = FundingPredictorConfig()
    assert (config.interval_s, config.half_life_intervals) == (28_800.0, 2.0)
    assert (config.venue_weight, config.max_abs_rate) == (0.0, 0.05)
    assert config.half_life_s == 57_600.0


# --- persistence -----------------------------------------------------------------------------

finite_floats = st.floats(allow_nan=False, allow_infinity=False)
optional_floats = st.none() | finite_floats
timestamps = st.integers(min_value=-(2**63), max_value=2**63 - 1)

states = st.builds(
    FundingPredictorState,
    ema_rate=st.none(),
    samples=st.just(0),
    ts_last_obs_ns=st.none(),
    last_rate=st.none(),
    venue_predicted_rate=optional_floats,
) | st.builds(
    FundingPredictorState,
    ema_rate=finite_floats,
    samples=st.integers(min_value=1, max_value=2**40),
    ts_last_obs_ns=timestamps,
    last_rate=finite_floats,
    venue_predicted_rate=optional_floats,
)


@given(state=states)
def test_state_round_trips_through_dict_and_json_exactly(state: FundingPredictorState) -> None:
    """from_dict(to_dict(s)) == s, also through JSON, with floats still floats."""
    direct = FundingPredictorState.from_dict(state.to_dict())
    via_json = FundingPredictorState.from_dict(json.loads(json.dumps(state.to_dict())))
    for restored in (direct, via_json):
        assert restored == state
        for name in ("ema_rate", "last_rate", "venue_predicted_rate"):
            original, value = getattr(state, name), getattr(restored, name)
            assert type(value) is type(original)
            if original is not None:
                assert math.copysign(1.0, value) == math.copysign(1.0, original)


def _valid_dict() -> dict[str, object]:
    return dict(_state(ema_rate=0.0001, venue_predicted_rate=0.0002).to_dict())


def _with(**changes: object) -> dict[str, object]:
    data = _valid_dict()
    data.update(changes)
    return data


def _without(key: str) -> dict[str, object]:
    data = _valid_dict()
    del data[key]
    return data


@pytest.mark.parametrize(
    "data",
    [
        None,
        [],
        "ema_rate=0.0001",
        {},
        _without("samples"),
        _without("venue_predicted_rate"),
        _with(extra=1),
        _with(ema_rate="0.0001"),
        _with(ema_rate=math.nan),
        _with(last_rate=math.inf),
        _with(venue_predicted_rate=True),
        _with(samples=-1),
        _with(samples=1.0),
        _with(samples=True),
        _with(ts_last_obs_ns=1.5e18),
        _with(ts_last_obs_ns="1584057600000000000"),
        _with(ema_rate=None),  # samples == 1 but no EMA
        _with(samples=0),  # samples == 0 but an EMA
        {**FundingPredictorState.initial().to_dict(), "ts_last_obs_ns": T0_NS},
    ],
    ids=lambda data: repr(data)[:60],
)
def test_state_from_dict_when_garbage_then_value_error(data: object) -> None:
    """Anything but a well-formed, consistent state mapping is refused."""
    with pytest.raises(ValueError, match=r"\S"):
        FundingPredictorState.from_dict(data)


def test_state_from_dict_accepts_integral_rates_as_floats() -> None:
    """A rate written as an integer (0) by another JSON writer comes back as a float."""
    restored = FundingPredictorState.from_dict(_with(ema_rate=0, last_rate=0))
    assert restored.ema_rate == 0.0
    assert type(restored.ema_rate) is float
