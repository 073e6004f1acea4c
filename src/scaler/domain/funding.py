"""Funding-rate predictor: a time-aware EMA of observed rates, blended with the venue's forecast.

Sign convention (every venue, ``reference/inverse-contracts.md`` section 5.1): a positive rate
means longs pay shorts.

Normalisation. Venues quote a rate per their own funding interval, and the interval differs by
venue and over time (DESIGN.md section 2). Every rate is converted to the configured interval
``interval_s`` before it is averaged::

    rate_target = rate_observed * target_interval_s / observed_interval_s

so a rate per 1 h is worth 8x per 8 h. Deribit BTC-PERPETUAL accrues funding continuously but
quotes it as an 8 h rate (``Time Fraction = period / 8 h``, Deribit "Funding Specifications"):
pass ``observed_interval_s = 28_800``. Kraken PI_XBTUSD funds hourly (``3_600``). BitMEX, Bybit,
Binance COIN-M and OKX default to 8 h but can shorten it; read the interval from the venue.

EMA. Half-life ``h`` is counted in configured intervals, so the half-life in seconds is
``T = h * interval_s``. With ``dt_s`` the time since the previous observation, the new sample
gets the weight::

    alpha = 1 - 0.5 ** (dt_s / T)
    ema   = ema + alpha * (rate - ema)

The first observation initialises the EMA. Observing once per interval gives
``alpha = 1 - 0.5 ** (1 / h)`` per interval, and after ``n`` intervals at a constant new level
the remaining distance to it is ``0.5 ** (n / h)`` of the step. Because the decays multiply
(``0.5 ** (a / T) * 0.5 ** (b / T) = 0.5 ** ((a + b) / T)``), observing a constant rate more
often gives the same EMA over the same span of time as observing it once at the end.

An observation at the timestamp of the previous one is a duplicate: the EMA, sample count and
last rate stay as they are; only a venue forecast passed with it is recorded. An observation
older than the previous one raises ``ValueError``; rejecting and counting out-of-order data is
the risk layer's job (DESIGN.md section 4, rule 1), the predictor refuses it at its door.

Prediction. With venue weight ``w`` (``venue_weight``)::

    predicted = (1 - w) * ema + w * venue     when both exist and w > 0
    predicted = ema                           when there is an EMA and (w == 0 or no venue rate)
    predicted = venue                         when there is no EMA yet, a venue rate, and w > 0
    predicted = None                          otherwise

clamped to ``[-max_abs_rate, +max_abs_rate]``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from scaler.domain.guards import require_finite, require_positive
from scaler.domain.types import NS_PER_S

_LN2 = math.log(2.0)
_STATE_FLOAT_KEYS = ("ema_rate", "last_rate", "venue_predicted_rate")
_STATE_KEYS = frozenset(
    ("ema_rate", "samples", "ts_last_obs_ns", "last_rate", "venue_predicted_rate")
)


def _require_ts(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an integer nanosecond timestamp, got {value!r}")


@dataclass(frozen=True, slots=True)
class FundingPredictorConfig:
    """How rates are normalised, averaged, blended and clamped.

    ``interval_s``: the interval every rate is normalised to (seconds, default 8 h).
    ``half_life_intervals``: EMA half-life, in ``interval_s`` units.
    ``venue_weight``: weight of the venue-published predicted rate, in ``[0, 1]``.
    ``max_abs_rate``: the prediction is clamped to ``+/- max_abs_rate`` (per ``interval_s``).
    """

    interval_s: float = 28_800.0
    half_life_intervals: float = 2.0
    venue_weight: float = 0.0
    max_abs_rate: float = 0.05

    def __post_init__(self) -> None:
        require_positive("interval_s", self.interval_s)
        require_positive("half_life_intervals", self.half_life_intervals)
        require_finite("venue_weight", self.venue_weight)
        if not 0.0 <= self.venue_weight <= 1.0:
            raise ValueError(f"venue_weight must be in [0, 1], got {self.venue_weight!r}")
        require_positive("max_abs_rate", self.max_abs_rate)

    @property
    def half_life_s(self) -> float:
        return self.half_life_intervals * self.interval_s


@dataclass(frozen=True, slots=True)
class FundingPredictorState:
    """What the predictor remembers; persisted through ``to_dict`` / ``from_dict``.

    All rates are per the configured interval. ``ema_rate``, ``ts_last_obs_ns`` and ``last_rate``
    are ``None`` exactly when ``samples == 0``.
    """

    ema_rate: float | None
    samples: int
    ts_last_obs_ns: int | None
    last_rate: float | None
    venue_predicted_rate: float | None

    @classmethod
    def initial(cls) -> FundingPredictorState:
        return cls(
            ema_rate=None,
            samples=0,
            ts_last_obs_ns=None,
            last_rate=None,
            venue_predicted_rate=None,
        )

    def to_dict(self) -> dict[str, float | int | None]:
        """A JSON-ready mapping; ``from_dict(to_dict())`` gives back an equal state."""
        return {
            "ema_rate": self.ema_rate,
            "samples": self.samples,
            "ts_last_obs_ns": self.ts_last_obs_ns,
            "last_rate": self.last_rate,
            "venue_predicted_rate": self.venue_predicted_rate,
        }

    @classmethod
    def from_dict(cls, data: object) -> FundingPredictorState:
        """Rebuild a state from ``to_dict`` output; raise ``ValueError`` on anything else."""
        if not isinstance(data, Mapping):
            raise ValueError(f"funding state must be a mapping, got {type(data).__name__}")
        keys = set(data)
        if keys != _STATE_KEYS:
            missing = sorted(_STATE_KEYS - keys)
            extra = sorted(map(repr, keys - _STATE_KEYS))
            raise ValueError(f"funding state keys: missing {missing}, unexpected {extra}")
        rates = {key: _optional_rate(key, data[key]) for key in _STATE_FLOAT_KEYS}
        samples = data["samples"]
        if isinstance(samples, bool) or not isinstance(samples, int) or samples < 0:
            raise ValueError(f"samples must be a non-negative integer, got {samples!r}")
        ts = data["ts_last_obs_ns"]
        if ts is not None:
            _require_ts("ts_last_obs_ns", ts)
        observed = (rates["ema_rate"], ts, rates["last_rate"])
        if any((value is None) != (samples == 0) for value in observed):
            raise ValueError(
                "ema_rate, ts_last_obs_ns and last_rate must all be null exactly when samples == 0"
            )
        return cls(
            ema_rate=rates["ema_rate"],
            samples=samples,
            ts_last_obs_ns=ts,
            last_rate=rates["last_rate"],
            venue_predicted_rate=rates["venue_predicted_rate"],
        )


def _optional_rate(name: str, value: object) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number or null, got {value!r}")
    return float(value)


@dataclass(frozen=True, slots=True)
class FundingPrediction:
    """What the predictor exposes to the loop, metrics and the status API.

    ``rate`` is the blended, clamped prediction; ``ema_rate`` and ``venue_predicted_rate`` are the
    two inputs, unclamped; all per the configured interval. ``age_s`` is the time since the last
    observation (``None`` before the first).
    """

    rate: float | None
    ema_rate: float | None
    venue_predicted_rate: float | None
    samples: int
    age_s: float | None


def normalise_rate(rate: float, observed_interval_s: float, target_interval_s: float) -> float:
    """Convert a rate per ``observed_interval_s`` into a rate per ``target_interval_s``."""
    require_finite("rate", rate)
    require_positive("observed_interval_s", observed_interval_s)
    require_positive("target_interval_s", target_interval_s)
    return rate * (target_interval_s / observed_interval_s)


def observe(
    state: FundingPredictorState,
    rate: float,
    observed_interval_s: float,
    ts_ns: int,
    config: FundingPredictorConfig,
    *,
    venue_predicted_rate: float | None = None,
) -> FundingPredictorState:
    """Fold one observed rate (per ``observed_interval_s``, observed at ``ts_ns``) into the EMA.

    ``venue_predicted_rate`` is the venue's forecast for the next interval, quoted per the same
    ``observed_interval_s``. On a new observation it replaces the stored forecast (``None``
    clears it: a forecast that was not re-published with the latest rate is stale). On a
    duplicate (same ``ts_ns``) it is recorded only when given.
    """
    normalised = normalise_rate(rate, observed_interval_s, config.interval_s)
    _require_ts("ts_ns", ts_ns)
    venue = (
        None
        if venue_predicted_rate is None
        else normalise_rate(venue_predicted_rate, observed_interval_s, config.interval_s)
    )
    if state.ema_rate is None or state.ts_last_obs_ns is None:
        return FundingPredictorState(
            ema_rate=normalised,
            samples=1,
            ts_last_obs_ns=ts_ns,
            last_rate=normalised,
            venue_predicted_rate=venue,
        )
    if ts_ns < state.ts_last_obs_ns:
        raise ValueError(
            f"ts_ns {ts_ns} is older than the last observation at {state.ts_last_obs_ns}"
        )
    if ts_ns == state.ts_last_obs_ns:
        if venue is None:
            return state
        return FundingPredictorState(
            ema_rate=state.ema_rate,
            samples=state.samples,
            ts_last_obs_ns=state.ts_last_obs_ns,
            last_rate=state.last_rate,
            venue_predicted_rate=venue,
        )
    dt_s = (ts_ns - state.ts_last_obs_ns) / NS_PER_S
    alpha = -math.expm1(-_LN2 * dt_s / config.half_life_s)  # == 1 - 0.5 ** (dt_s / T)
    return FundingPredictorState(
        ema_rate=state.ema_rate + alpha * (normalised - state.ema_rate),
        samples=state.samples + 1,
        ts_last_obs_ns=ts_ns,
        last_rate=normalised,
        venue_predicted_rate=venue,
    )


def predict(state: FundingPredictorState, config: FundingPredictorConfig) -> float | None:
    """The predicted rate per configured interval, or ``None`` when nothing is known.

    The size formula holds its position for many intervals, so the default half-life is the one
    that best forecasts the mean rate of the next 24 h on the recorded histories, not the next
    settlement (``docs/funding.md``, ``scaler funding-forecast``).
    """
    ema, venue, weight = state.ema_rate, state.venue_predicted_rate, config.venue_weight
    if ema is not None and venue is not None and weight > 0.0:
        blended = (1.0 - weight) * ema + weight * venue
    elif ema is not None:
        blended = ema
    elif venue is not None and weight > 0.0:
        blended = venue
    else:
        return None
    return min(config.max_abs_rate, max(-config.max_abs_rate, blended))


def report(
    state: FundingPredictorState, config: FundingPredictorConfig, now_ns: int
) -> FundingPrediction:
    """The prediction together with its inputs and age.

    A last observation stamped slightly after ``now_ns`` (a venue clock ahead of ours) reports
    an age of 0.0 rather than a negative one.
    """
    _require_ts("now_ns", now_ns)
    age_s = (
        None
        if state.ts_last_obs_ns is None
        else max(0.0, (now_ns - state.ts_last_obs_ns) / NS_PER_S)
    )
    return FundingPrediction(
        rate=predict(state, config),
        ema_rate=state.ema_rate,
        venue_predicted_rate=state.venue_predicted_rate,
        samples=state.samples,
        age_s=age_s,
    )
