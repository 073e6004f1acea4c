"""``scaler funding-forecast``: how well the funding predictor forecasts recorded funding.

The evaluation runs the daemon's own predictor (:func:`scaler.domain.funding.observe` and
:func:`~scaler.domain.funding.predict`) over a recorded history, once per EMA half-life, and
scores each forecast against what was paid afterwards. Every rate is normalised to the
configured interval (``instrument.funding_interval_s``), as the daemon does, and errors are in
basis points of that interval.

After each observation at ``t`` the forecast is compared with three kinds of target:

- ``next``: the next observation (normalised). On an 8 h venue that is the next settlement; on a
  source observed more often than its interval (Deribit's hourly ``interest_8h``, the trailing
  8 h) it is one hour later and mostly the same window, which favours repeating the last rate.
- a horizon ``H`` (8 h, 24 h, ...): the funding actually paid over ``(t, t + H]``, as a mean rate
  per configured interval. An observation at ``ts`` with interval ``I`` is the funding of the
  window ``(ts − I, ts]`` (BitMEX, Binance and Bybit settle at ``ts`` for the interval ending
  there; Deribit's ``interest_8h`` is the funding of the 8 h ending at ``ts``), so the windows
  that tile ``(t, t + H]`` are summed: ``paid = Σ rate_j``, ``mean = paid · interval_s / H``.
  Where the windows do not tile it (a gap, a daily interval against an 8 h horizon) the point is
  left out.

Predictors: ``last rate`` (the predictor's remembered last observation, the naive baseline)
and the EMA for each half-life of the grid. None of the recorded histories carries a venue's
published forecast, so ``funding.venue_weight`` cannot be scored here (the venue forecast is
blended only where a venue publishes one).

The half-life chosen for a horizon is the grid value with the lowest mean, over the sources with
at least :data:`MIN_POINTS` scored points there, of ``RMSE(EMA) / RMSE(last rate)``: the ratio
puts venues whose rates differ tenfold in size on one scale.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TextIO

from scaler.adapters.paper.replay import FundingObservation, ReplayStats, read_funding
from scaler.domain import funding
from scaler.domain.types import NS_PER_S
from scaler.errors import BadInputError, ConfigError

BPS = 1e4
MIN_POINTS = 50
"""Sources with fewer scored points at a horizon do not take part in choosing a half-life."""
LAST_RATE = "last rate"


@dataclass(frozen=True, slots=True)
class Score:
    """Root-mean-square error of one predictor at one horizon, in bps per interval."""

    rmse_bps: float
    points: int


@dataclass(frozen=True, slots=True)
class SourceScores:
    """Every predictor's scores on one history: ``scores[predictor][horizon]``."""

    name: str
    observations: int
    horizons: tuple[str, ...]
    scores: dict[str, dict[str, Score]]


def horizon_label(horizon_s: float | None) -> str:
    """``next`` for the next observation, else the window in hours (``24 h``)."""
    return "next" if horizon_s is None else f"{horizon_s / 3_600:g} h"


def ema_label(half_life_intervals: float) -> str:
    return f"EMA half-life {half_life_intervals:g}"


def realised_mean_rate(
    observations: Sequence[FundingObservation],
    window_start: dict[int, int],
    start_ns: int,
    horizon_s: float,
    interval_s: float,
) -> float | None:
    """Mean funding rate per ``interval_s`` paid over ``(start, start + horizon]``, or ``None``.

    ``window_start`` maps ``ts − interval`` (ns) to the index of the observation whose window
    starts there; the windows must tile the horizon exactly.
    """
    end_ns = start_ns + round(horizon_s * NS_PER_S)
    cursor, paid = start_ns, 0.0
    while cursor < end_ns:
        index = window_start.get(cursor)
        if index is None:
            return None
        paid += observations[index].rate
        cursor = observations[index].ts_ns
    if cursor != end_ns:
        return None
    return paid * interval_s / horizon_s


def targets(
    observations: Sequence[FundingObservation],
    horizons_s: Sequence[float | None],
    interval_s: float,
) -> dict[str, list[float | None]]:
    """For each horizon, the value to forecast after each observation (``None``: not scored)."""
    window_start: dict[int, int] = {}
    for index, obs in enumerate(observations):
        window_start.setdefault(obs.ts_ns - round(obs.interval_s * NS_PER_S), index)
    result: dict[str, list[float | None]] = {}
    for horizon_s in horizons_s:
        if horizon_s is None:
            nxt: list[float | None] = [
                funding.normalise_rate(obs.rate, obs.interval_s, interval_s)
                for obs in observations[1:]
            ]
            result[horizon_label(None)] = [*nxt, None]
        else:
            result[horizon_label(horizon_s)] = [
                realised_mean_rate(observations, window_start, obs.ts_ns, horizon_s, interval_s)
                for obs in observations
            ]
    return result


def forecasts(
    observations: Iterable[FundingObservation], config: funding.FundingPredictorConfig
) -> tuple[list[float], list[float]]:
    """The predictor's forecast and its last observed rate after each observation."""
    state = funding.FundingPredictorState.initial()
    predicted: list[float] = []
    last: list[float] = []
    for obs in observations:
        state = funding.observe(state, obs.rate, obs.interval_s, obs.ts_ns, config)
        rate = funding.predict(state, config)
        # Both exist once a rate has been observed.
        assert rate is not None
        assert state.last_rate is not None
        predicted.append(rate)
        last.append(state.last_rate)
    return predicted, last


def score(predicted: Sequence[float], wanted: Sequence[float | None]) -> Score:
    errors = [(p - w) ** 2 for p, w in zip(predicted, wanted, strict=True) if w is not None]
    if not errors:
        return Score(math.nan, 0)
    return Score(math.sqrt(sum(errors) / len(errors)) * BPS, len(errors))


def evaluate(
    name: str,
    observations: Sequence[FundingObservation],
    config: funding.FundingPredictorConfig,
    half_lives: Sequence[float],
    horizons_s: Sequence[float | None],
) -> SourceScores:
    """Score the last-rate baseline and the EMA of every half-life on one history."""
    wanted = targets(observations, horizons_s, config.interval_s)
    scores: dict[str, dict[str, Score]] = {}
    last: list[float] = []
    for half_life in half_lives:
        predicted, last = forecasts(observations, replace(config, half_life_intervals=half_life))
        scores[ema_label(half_life)] = {h: score(predicted, w) for h, w in wanted.items()}
    if not half_lives:
        _, last = forecasts(observations, config)
    scores = {LAST_RATE: {h: score(last, w) for h, w in wanted.items()}} | scores
    return SourceScores(name, len(observations), tuple(wanted), scores)


@dataclass(frozen=True, slots=True)
class Choice:
    """The half-life with the lowest mean RMSE ratio to the last rate at one horizon."""

    horizon: str
    half_life_intervals: float
    mean_ratio: float
    sources: tuple[str, ...]


def voting(results: Sequence[SourceScores], horizon: str) -> list[SourceScores]:
    """The sources scored at :data:`MIN_POINTS` points or more at ``horizon``."""
    return [
        r
        for r in results
        if r.scores[LAST_RATE][horizon].points >= MIN_POINTS
        and r.scores[LAST_RATE][horizon].rmse_bps > 0.0
    ]


def mean_ratio(usable: Sequence[SourceScores], half_life: float, horizon: str) -> float:
    """Mean over ``usable`` of ``RMSE(EMA) / RMSE(last rate)`` at ``horizon``."""
    ratios = [
        r.scores[ema_label(half_life)][horizon].rmse_bps / r.scores[LAST_RATE][horizon].rmse_bps
        for r in usable
    ]
    return sum(ratios) / len(ratios)


def choose_half_life(
    results: Sequence[SourceScores], half_lives: Sequence[float], horizon: str
) -> Choice | None:
    """Lowest mean of ``RMSE(EMA) / RMSE(last rate)`` over sources scored at enough points."""
    usable = voting(results, horizon)
    if not usable or not half_lives:
        return None
    best = min(half_lives, key=lambda h: mean_ratio(usable, h, horizon))
    return Choice(horizon, best, mean_ratio(usable, best, horizon), tuple(r.name for r in usable))


def format_summary(results: Sequence[SourceScores], half_lives: Sequence[float]) -> str:
    """Mean RMSE ratio to the last rate per half-life and horizon, over the voting sources."""
    if not results:
        return ""
    horizons = results[0].horizons
    usable = {h: voting(results, h) for h in horizons}
    title = "mean RMSE / last rate"
    width = max(len(title), *(len(ema_label(h)) for h in half_lives))
    lines = [title.ljust(width) + "".join(f"{h:>10}" for h in horizons)]
    for half_life in half_lives:
        cells = [
            f"{mean_ratio(usable[h], half_life, h):.3f}" if usable[h] else "-" for h in horizons
        ]
        lines.append(ema_label(half_life).ljust(width) + "".join(f"{c:>10}" for c in cells))
    lines.append("sources".ljust(width) + "".join(f"{len(usable[h]):>10}" for h in horizons))
    return "\n".join(lines)


def format_scores(result: SourceScores, interval_s: float) -> str:
    """One source's table: a row per predictor, a column per horizon, ``*`` on each best."""
    unit = f"RMSE, bps per {interval_s / 3_600:g} h"
    width = max(len(unit), *(len(name) for name in result.scores))
    lines = [unit.ljust(width) + "".join(f"{h:>10}" for h in result.horizons)]
    best = {
        h: min(s[h].rmse_bps for s in result.scores.values() if s[h].points)
        if any(s[h].points for s in result.scores.values())
        else math.nan
        for h in result.horizons
    }
    for name, by_horizon in result.scores.items():
        cells = []
        for h in result.horizons:
            value = by_horizon[h].rmse_bps
            mark = "*" if value == best[h] else " "
            cells.append(f"{'-' if math.isnan(value) else f'{value:.2f}'}{mark}".rjust(10))
        lines.append(name.ljust(width) + "".join(cells))
    points = result.scores[LAST_RATE]
    lines.append(
        "points".ljust(width) + "".join(f"{points[h].points:>9} " for h in result.horizons)
    )
    return "\n".join(lines)


def format_choice(choice: Choice | None, horizon: str) -> str:
    if choice is None:
        return f"no source has {MIN_POINTS} scored points at {horizon}: no half-life chosen"
    return (
        f"half-life with the lowest mean RMSE ratio to the last rate at {horizon}: "
        f"{choice.half_life_intervals:g} intervals (mean ratio {choice.mean_ratio:.3f}, "
        f"{len(choice.sources)} sources)"
    )


# --- the command ---------------------------------------------------------------------------

DEFAULT_HALF_LIVES = (0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 24.0)
DEFAULT_HORIZONS_H = (8.0, 24.0, 72.0)
DEFAULT_SELECT_HORIZON_H = 24.0


@dataclass(frozen=True, slots=True)
class ForecastOptions:
    """What ``scaler funding-forecast`` evaluates: files, half-lives and horizons (hours)."""

    paths: tuple[Path, ...]
    half_lives: tuple[float, ...] = DEFAULT_HALF_LIVES
    horizons_h: tuple[float, ...] = DEFAULT_HORIZONS_H
    select_horizon_h: float = DEFAULT_SELECT_HORIZON_H


def load(path: Path) -> tuple[list[FundingObservation], ReplayStats]:
    """A funding history through the replay's reader; unreadable is a ``ConfigError``."""
    stats = ReplayStats()
    try:
        return list(read_funding(path, stats)), stats
    except FileNotFoundError:
        raise ConfigError("funding-forecast", f"file not found: {path}") from None
    except (OSError, UnicodeDecodeError, EOFError, BadInputError) as exc:
        raise ConfigError("funding-forecast", f"{path}: {exc}") from None


def run(options: ForecastOptions, config: funding.FundingPredictorConfig, out: TextIO) -> int:
    """Print a table per source, then the half-life chosen at the selection horizon."""
    half_lives = tuple(dict.fromkeys((*options.half_lives, config.half_life_intervals)))
    half_lives = tuple(sorted(half_lives))
    horizons_h = tuple(dict.fromkeys((*options.horizons_h, options.select_horizon_h)))
    horizons_s: tuple[float | None, ...] = (None, *(h * 3_600 for h in sorted(horizons_h)))
    results = []
    for path in options.paths:
        observations, stats = load(path)
        result = evaluate(path.name, observations, config, half_lives, horizons_s)
        out.write(
            f"{path.name}: {result.observations:,} observations, "
            f"{stats.rows_skipped:,} rows skipped\n{format_scores(result, config.interval_s)}\n\n"
        )
        results.append(result)
    horizon = horizon_label(options.select_horizon_h * 3_600)
    out.write(
        f"over the sources with at least {MIN_POINTS} scored points at each horizon:\n"
        f"{format_summary(results, half_lives)}\n\n"
    )
    out.write(
        f"configured: half-life {config.half_life_intervals:g} intervals, "
        f"venue weight {config.venue_weight:g} (no history carries a venue forecast)\n"
    )
    out.write(format_choice(choose_half_life(results, half_lives, horizon), horizon) + "\n")
    return 0
