"""The size engine: target USD notional of an inverse perpetual from equity, leverage and funding.

Seed formula (DESIGN.md section 3): ``Size = (Margin x Target Leverage) / (Mark x (1 + f))``.
For an inverse contract the margin ``M`` is in coin (equity: wallet balance + unrealised PnL),
worth ``M * mark`` USD, so the target in coin is ``M * L / (1 + f)`` and the signed USD notional::

    target_usd = side * M * L * mark / (1 + f),    f = side * predicted_rate

``side`` is +1 (long) or -1 (short); ``f > 0`` means this position pays funding (a positive rate
means longs pay shorts on every venue, ``reference/inverse-contracts.md`` section 5.1), which
shrinks the target. ``1 + f`` is clamped to at least ``min_denominator`` so that a rate near
-100 % cannot blow the size up. ``M <= 0`` gives 0.0: no equity, no position.

Optional refinements, each off unless configured:

- Volatility targeting: ``L_eff = min(L, target_vol_annual / realised_vol_annual)``. Realised vol
  is an EWMA of squared mark log-returns per elapsed second (``update_volatility``), annualised
  with ``sqrt(var_per_s * 365 * 86400)``. When it is enabled but the volatility is not known yet
  (fewer than two marks) or is zero, ``L_eff = L``: the refinement only ever lowers leverage and
  the risk layer's caps still apply.
- Risk-per-trade cap: exposure such that an adverse move of ``d = stop_distance`` (a fraction of
  the price) loses at most ``k = max_loss_fraction`` of equity. With USD notional ``N > 0``,
  entry ``E`` (the mark) and the inverse PnL ``N * (1/entry - 1/exit)`` in coin:

  long, exit ``E(1-d)``: ``PnL = N(1/E - 1/(E(1-d))) = -(N/E) * d/(1-d)``, so
  ``(N/E) * d/(1-d) <= k*M`` gives ``N <= k*M*E*(1-d)/d``;
  short, exit ``E(1+d)``: ``PnL = -N(1/E - 1/(E(1+d))) = -(N/E) * d/(1+d)``, so
  ``N <= k*M*E*(1+d)/d``.

- Max leverage: the exposure in coin ``|target_usd| / mark`` never exceeds
  ``max_leverage * M``. It is a cap on the result (after the funding term), because a negative
  ``f`` alone can raise the exposure up to ``L / min_denominator``.

Rounding: toward zero, to whole lots of ``lot_size_usd`` (Deribit 10, Bybit 1, OKX and Binance
COIN-M 100, Kraken 1). The lot count is nudged by a relative ``1e-9`` before truncation, so a
size that floating-point arithmetic left a hair below a lot boundary (149,979.99999999997 for
149,980) keeps that lot; the rounded size can therefore exceed the unrounded one by at most a
relative ``1e-9`` (0.00015 USD on 150,000 USD).

``Side`` is an ``IntEnum`` (``LONG = 1``, ``SHORT = -1``); every function taking ``side`` also
accepts the plain ints +1 and -1.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

from scaler.domain.guards import require_finite, require_positive
from scaler.domain.types import NS_PER_S

SECONDS_PER_YEAR = 365 * 86_400
LOT_ROUNDING_REL_TOL = 1e-9
"""Relative nudge applied to the lot count before truncating toward zero."""

_LN2 = math.log(2.0)


class Side(enum.IntEnum):
    """Direction of the position; its value is the sign of the USD notional."""

    LONG = 1
    SHORT = -1


class SizingLimit(enum.StrEnum):
    """What bound the size; the values appear in ``SizingResult.limited_by``."""

    VOLATILITY = "volatility"
    RISK_PER_TRADE = "risk_per_trade"
    MAX_LEVERAGE = "max_leverage"
    DENOMINATOR_CLAMP = "denominator_clamp"
    NO_EQUITY = "no_equity"


def _require_fraction(name: str, value: float) -> None:
    require_finite(name, value)
    if not 0.0 < value < 1.0:
        raise ValueError(f"{name} must be in (0, 1), got {value!r}")


def _require_side(value: int) -> None:
    if isinstance(value, bool) or value not in (1, -1):
        raise ValueError(f"side must be +1 (long) or -1 (short), got {value!r}")


def _require_min_denominator(value: float) -> None:
    require_finite("min_denominator", value)
    if not 0.0 < value <= 1.0:
        raise ValueError(f"min_denominator must be in (0, 1], got {value!r}")


@dataclass(frozen=True, slots=True)
class SizingConfig:
    """Sizing policy for one position.

    ``target_leverage`` must not exceed ``max_leverage``. ``target_vol_annual`` (a fraction, 0.6
    is 60 %/year) turns volatility targeting on; ``max_loss_fraction`` together with
    ``stop_distance`` turns the risk-per-trade cap on.
    """

    side: int
    target_leverage: float
    lot_size_usd: float
    min_denominator: float = 0.5
    max_leverage: float = 100.0
    target_vol_annual: float | None = None
    max_loss_fraction: float | None = None
    stop_distance: float | None = None

    def __post_init__(self) -> None:
        _require_side(self.side)
        require_positive("target_leverage", self.target_leverage)
        require_positive("lot_size_usd", self.lot_size_usd)
        _require_min_denominator(self.min_denominator)
        require_positive("max_leverage", self.max_leverage)
        if self.target_leverage > self.max_leverage:
            raise ValueError(
                f"target_leverage {self.target_leverage!r} exceeds max_leverage "
                f"{self.max_leverage!r}"
            )
        if self.target_vol_annual is not None:
            require_positive("target_vol_annual", self.target_vol_annual)
        if (self.max_loss_fraction is None) != (self.stop_distance is None):
            raise ValueError(
                "max_loss_fraction and stop_distance must be set together or not at all"
            )
        if self.max_loss_fraction is not None and self.stop_distance is not None:
            _require_fraction("max_loss_fraction", self.max_loss_fraction)
            _require_fraction("stop_distance", self.stop_distance)


@dataclass(frozen=True, slots=True)
class VolatilityState:
    """EWMA of squared mark log-returns per second; ``samples`` counts the returns folded in."""

    ewma_var_per_s: float | None
    last_price: float | None
    ts_last_ns: int | None
    samples: int

    @classmethod
    def initial(cls) -> VolatilityState:
        return cls(ewma_var_per_s=None, last_price=None, ts_last_ns=None, samples=0)


@dataclass(frozen=True, slots=True)
class SizingResult:
    """The size engine's answer.

    ``raw_target_usd`` is the signed target after every cap, before lot rounding, so
    ``target_usd == round_to_lots(raw_target_usd, lot_size_usd)``. ``effective_leverage`` is
    ``L_eff``, the leverage fed into the formula. ``funding_term`` is the denominator used,
    ``max(1 + side * predicted_rate, min_denominator)``. ``limited_by`` holds ``SizingLimit``
    values, in the order they were applied.
    """

    target_usd: float
    raw_target_usd: float
    effective_leverage: float
    funding_term: float
    limited_by: tuple[str, ...]


def _funding_denominator(predicted_rate: float, side: int, min_denominator: float) -> float:
    return max(1.0 + side * predicted_rate, min_denominator)


def raw_target_usd(
    equity_coin: float,
    target_leverage: float,
    mark_price: float,
    predicted_rate: float,
    side: int,
    *,
    min_denominator: float = 0.5,
) -> float:
    """``side * M * L * mark / max(1 + side * predicted_rate, min_denominator)``, unrounded."""
    require_finite("equity_coin", equity_coin)
    require_positive("target_leverage", target_leverage)
    require_positive("mark_price", mark_price)
    require_finite("predicted_rate", predicted_rate)
    _require_side(side)
    _require_min_denominator(min_denominator)
    if equity_coin <= 0.0:
        return 0.0
    denominator = _funding_denominator(predicted_rate, side, min_denominator)
    return side * (equity_coin * target_leverage * mark_price / denominator)


def round_to_lots(size_usd: float, lot_size_usd: float) -> float:
    """Round toward zero to a whole number of lots (see the module docstring for the tolerance)."""
    require_finite("size_usd", size_usd)
    require_positive("lot_size_usd", lot_size_usd)
    nudged_lots = abs(size_usd) / lot_size_usd * (1.0 + LOT_ROUNDING_REL_TOL)
    if not math.isfinite(nudged_lots):
        raise ValueError(f"size_usd {size_usd!r} is too large for lot_size_usd {lot_size_usd!r}")
    whole_lots = math.floor(nudged_lots)
    if whole_lots == 0:
        return 0.0
    return math.copysign(whole_lots * lot_size_usd, size_usd)


def risk_per_trade_cap_usd(
    equity_coin: float,
    mark_price: float,
    side: int,
    max_loss_fraction: float,
    stop_distance: float,
) -> float:
    """Largest USD notional (magnitude) that loses at most ``max_loss_fraction`` of equity on an
    adverse move of ``stop_distance``: long ``k*M*E*(1-d)/d``, short ``k*M*E*(1+d)/d``."""
    require_finite("equity_coin", equity_coin)
    require_positive("mark_price", mark_price)
    _require_side(side)
    _require_fraction("max_loss_fraction", max_loss_fraction)
    _require_fraction("stop_distance", stop_distance)
    if equity_coin <= 0.0:
        return 0.0
    exit_factor = 1.0 - stop_distance if side == Side.LONG else 1.0 + stop_distance
    return max_loss_fraction * equity_coin * mark_price * exit_factor / stop_distance


def update_volatility(
    state: VolatilityState, mark_price: float, ts_ns: int, half_life_s: float
) -> VolatilityState:
    """Fold the log-return since the previous mark into the EWMA variance per second.

    Sample ``ln(p / p_prev) ** 2 / dt_s``, weight ``1 - 0.5 ** (dt_s / half_life_s)``; the
    first return initialises the EWMA. A mark at the previous timestamp is ignored (the next
    return, measured from the first mark at that time, still carries the move); an older one
    raises ``ValueError``.
    """
    require_positive("mark_price", mark_price)
    require_positive("half_life_s", half_life_s)
    if isinstance(ts_ns, bool) or not isinstance(ts_ns, int):
        raise ValueError(f"ts_ns must be an integer nanosecond timestamp, got {ts_ns!r}")
    if state.last_price is None or state.ts_last_ns is None:
        return VolatilityState(None, float(mark_price), ts_ns, 0)
    if ts_ns < state.ts_last_ns:
        raise ValueError(f"ts_ns {ts_ns} is older than the last mark at {state.ts_last_ns}")
    if ts_ns == state.ts_last_ns:
        return state
    dt_s = (ts_ns - state.ts_last_ns) / NS_PER_S
    sample = math.log(mark_price / state.last_price) ** 2 / dt_s
    if state.ewma_var_per_s is None:
        var_per_s = sample
    else:
        alpha = -math.expm1(-_LN2 * dt_s / half_life_s)  # == 1 - 0.5 ** (dt_s / half_life_s)
        var_per_s = state.ewma_var_per_s + alpha * (sample - state.ewma_var_per_s)
    return VolatilityState(var_per_s, float(mark_price), ts_ns, state.samples + 1)


def annualised_vol(state: VolatilityState) -> float | None:
    """``sqrt(var_per_s * 365 * 86400)``, or ``None`` before the first return."""
    if state.ewma_var_per_s is None:
        return None
    return math.sqrt(state.ewma_var_per_s * SECONDS_PER_YEAR)


def _effective_leverage(
    config: SizingConfig, vol_state: VolatilityState | None, limits: list[str]
) -> float:
    leverage = config.target_leverage
    if config.target_vol_annual is None or vol_state is None:
        return leverage
    vol = annualised_vol(vol_state)
    if vol is None or vol <= 0.0:
        return leverage
    vol_leverage = config.target_vol_annual / vol
    if vol_leverage < leverage:
        limits.append(SizingLimit.VOLATILITY)
        return vol_leverage
    return leverage


def _capped_magnitude_usd(
    magnitude_usd: float,
    equity_coin: float,
    mark_price: float,
    config: SizingConfig,
    limits: list[str],
) -> float:
    leverage_cap_usd = equity_coin * config.max_leverage * mark_price
    if magnitude_usd > leverage_cap_usd:
        magnitude_usd = leverage_cap_usd
        limits.append(SizingLimit.MAX_LEVERAGE)
    if config.max_loss_fraction is not None and config.stop_distance is not None:
        risk_cap_usd = risk_per_trade_cap_usd(
            equity_coin, mark_price, config.side, config.max_loss_fraction, config.stop_distance
        )
        if magnitude_usd > risk_cap_usd:
            magnitude_usd = risk_cap_usd
            limits.append(SizingLimit.RISK_PER_TRADE)
    return magnitude_usd


def compute_target(
    equity_coin: float,
    mark_price: float,
    predicted_rate: float | None,
    config: SizingConfig,
    vol_state: VolatilityState | None = None,
) -> SizingResult:
    """The target USD notional for ``config.side``, rounded to lots, with what bound it.

    ``predicted_rate`` (per the funding interval the predictor is configured for) ``None`` is
    treated as 0.0; whether sizing may proceed without a prediction is the risk layer's call.
    """
    require_finite("equity_coin", equity_coin)
    require_positive("mark_price", mark_price)
    rate = 0.0 if predicted_rate is None else predicted_rate
    require_finite("predicted_rate", rate)
    limits: list[str] = []
    leverage = _effective_leverage(config, vol_state, limits)
    funding_term = _funding_denominator(rate, config.side, config.min_denominator)
    if 1.0 + config.side * rate < config.min_denominator:
        limits.append(SizingLimit.DENOMINATOR_CLAMP)
    if equity_coin <= 0.0:
        limits.append(SizingLimit.NO_EQUITY)
        return SizingResult(0.0, 0.0, leverage, funding_term, tuple(limits))
    # Same arithmetic as raw_target_usd, with L_eff (which may underflow to 0.0 there).
    unbounded_usd = equity_coin * leverage * mark_price / funding_term
    magnitude = _capped_magnitude_usd(unbounded_usd, equity_coin, mark_price, config, limits)
    raw = config.side * magnitude if magnitude > 0.0 else 0.0
    return SizingResult(
        target_usd=round_to_lots(raw, config.lot_size_usd),
        raw_target_usd=raw,
        effective_leverage=leverage,
        funding_term=funding_term,
        limited_by=tuple(limits),
    )
