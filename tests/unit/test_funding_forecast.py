"""The funding-forecast evaluation on small hand-built histories with hand-computed errors.

Rates are in basis points (``BP = 1e-4``) per 8 h unless said otherwise.
"""

from __future__ import annotations

import math

import pytest

from scaler.adapters.paper.replay import FundingObservation
from scaler.domain.funding import FundingPredictorConfig
from scaler.service.funding_forecast import (
    LAST_RATE,
    MIN_POINTS,
    Score,
    SourceScores,
    choose_half_life,
    ema_label,
    evaluate,
    targets,
)

pytestmark = pytest.mark.unit

BP = 1e-4
H8 = 28_800.0
NS = 1_000_000_000
T0 = 1_600_000_000 * NS
CONFIG = FundingPredictorConfig(interval_s=H8)
HORIZONS = (None, 8 * 3_600.0, 24 * 3_600.0)


def series(
    rates_bps: list[float], step_s: float = H8, interval_s: float = H8
) -> list[FundingObservation]:
    return [
        FundingObservation(T0 + round(i * step_s * NS), rate * BP, interval_s)
        for i, rate in enumerate(rates_bps)
    ]


ALTERNATING = series([0.0, 4.0, 0.0, 4.0, 0.0])


def test_evaluate_when_alternating_rates_then_hand_computed_rmse_of_ema_and_last_rate() -> None:
    """0, 4, 0, 4, 0 bps every 8 h, half-life 1 interval (alpha = 1/2 per observation).

    EMA after each observation: 0, 2, 1, 2.5, 1.25. Next rate: 4, 0, 4, 0, so the EMA's errors
    are -4, 2, -3, 2.5: RMSE = sqrt((16 + 4 + 9 + 6.25) / 4) = sqrt(8.8125) = 2.9686; the last
    rate misses by 4 every time: RMSE 4. Over the next 24 h (three settlements, only after the
    first two observations): means 8/3 and 4/3; EMA errors -8/3 and 2/3, RMSE sqrt(34/9) =
    1.9437; last-rate errors -8/3 and 8/3, RMSE 8/3.
    """
    result = evaluate("alt", ALTERNATING, CONFIG, [1.0], HORIZONS)

    ema, last = result.scores[ema_label(1.0)], result.scores[LAST_RATE]
    assert ema["next"].rmse_bps == pytest.approx(math.sqrt(8.8125), rel=1e-12)
    assert ema["next"].points == 4
    assert last["next"].rmse_bps == pytest.approx(4.0, rel=1e-12)
    # An 8 h venue: the next 8 h is the next settlement (rate·8 h/8 h, to a rounding).
    assert ema["8 h"].rmse_bps == pytest.approx(ema["next"].rmse_bps, rel=1e-12)
    assert ema["24 h"].rmse_bps == pytest.approx(math.sqrt(34.0 / 9.0), rel=1e-12)
    assert ema["24 h"].points == 2
    assert last["24 h"].rmse_bps == pytest.approx(8.0 / 3.0, rel=1e-12)


def test_targets_when_trailing_8h_rate_observed_hourly_then_window_is_the_one_8h_later() -> None:
    """Hourly observations of a trailing 8 h rate (Deribit's interest_8h), k bps at hour k.

    The funding of (t, t + 8 h] is the observation at t + 8 h; the next observation is t + 1 h.
    Ten hours give 8 h targets after hours 0 and 1 only (8 and 9 bps) and no 24 h target.
    """
    wanted = targets(series([float(k) for k in range(10)], step_s=3_600.0), HORIZONS, H8)
    assert wanted["next"][:3] == [
        pytest.approx(1 * BP),
        pytest.approx(2 * BP),
        pytest.approx(3 * BP),
    ]
    assert wanted["8 h"][:2] == [pytest.approx(8 * BP), pytest.approx(9 * BP)]
    assert wanted["8 h"][2:] == [None] * 8
    assert wanted["24 h"] == [None] * 10


def test_targets_when_a_settlement_is_missing_then_windows_across_the_gap_are_not_scored() -> None:
    """8 h settlements at 0, 8, 16, 32, 40 h (24 h missing): no 24 h window crosses the hole."""
    observations = [
        FundingObservation(T0 + hours * 3_600 * NS, rate * BP, H8)
        for hours, rate in ((0, 1.0), (8, 2.0), (16, 3.0), (32, 5.0), (40, 6.0))
    ]
    wanted = targets(observations, HORIZONS, H8)
    # After 0 h: 8, 16 and 24 h are needed; 24 h is missing. After 16 h: the 24 h window is gone.
    assert wanted["24 h"] == [None] * 5
    assert wanted["8 h"] == [
        pytest.approx(2 * BP),
        pytest.approx(3 * BP),
        None,
        pytest.approx(6 * BP),
        None,
    ]


def test_targets_when_hourly_venue_then_rates_are_normalised_to_the_configured_interval() -> None:
    """A 1 h venue paying 1 bp an hour pays 8 bps per 8 h: next and 8 h targets are 8 bps."""
    wanted = targets(series([1.0] * 9, step_s=3_600.0, interval_s=3_600.0), HORIZONS, H8)
    assert wanted["next"][0] == pytest.approx(8 * BP)
    assert wanted["8 h"][0] == pytest.approx(8 * BP)  # eight 1 h windows of 1 bp


def _scored(name: str, ratios: dict[float, float], points: int = MIN_POINTS) -> SourceScores:
    """A source whose EMA RMSE at 24 h is ``ratio`` times the last rate's (1 bp)."""
    scores = {LAST_RATE: {"24 h": Score(1.0, points)}}
    scores |= {ema_label(h): {"24 h": Score(r, points)} for h, r in ratios.items()}
    return SourceScores(name, points, ("24 h",), scores)


def test_choose_half_life_when_sources_disagree_then_lowest_mean_ratio_wins() -> None:
    """Ratios (0.9, 0.7) for h = 1 and (0.8, 0.75) for h = 2: means 0.8 and 0.775, so h = 2."""
    results = [_scored("a", {1.0: 0.9, 2.0: 0.8}), _scored("b", {1.0: 0.7, 2.0: 0.75})]
    choice = choose_half_life(results, [1.0, 2.0], "24 h")
    assert choice is not None
    assert choice.half_life_intervals == 2.0
    assert choice.mean_ratio == pytest.approx(0.775)
    assert choice.sources == ("a", "b")


def test_choose_half_life_when_a_source_has_too_few_points_then_it_does_not_vote() -> None:
    """A three-point fixture favouring h = 1 does not outvote a long history favouring h = 2."""
    results = [
        _scored("long", {1.0: 0.9, 2.0: 0.8}),
        _scored("tiny", {1.0: 0.1, 2.0: 1.5}, points=3),
    ]
    choice = choose_half_life(results, [1.0, 2.0], "24 h")
    assert choice is not None
    assert choice.half_life_intervals == 2.0
    assert choice.sources == ("long",)
    assert choose_half_life([results[1]], [1.0, 2.0], "24 h") is None


def test_evaluate_when_half_life_two_then_it_beats_one_at_24h_on_the_alternating_series() -> None:
    """Half-life 2 (alpha = 1 − 2^-1/2 = 0.29289): EMA 0, 1.17157, ... at 24 h errors −8/3 and
    1.17157 − 4/3 = −0.16176: RMSE sqrt((64/9 + 0.026167) / 2) = 1.8891 < 1.9437 (half-life 1).
    """
    result = evaluate("alt", ALTERNATING, CONFIG, [1.0, 2.0], HORIZONS)
    alpha = 1.0 - 2.0**-0.5
    error = 4.0 * alpha - 4.0 / 3.0
    expected = math.sqrt((64.0 / 9.0 + error * error) / 2.0)
    assert result.scores[ema_label(2.0)]["24 h"].rmse_bps == pytest.approx(expected, rel=1e-12)
    assert expected == pytest.approx(1.8891, abs=1e-4)
    choice = choose_half_life([result], [1.0, 2.0], "24 h")
    assert choice is None  # two scored points: too few to choose on
