"""What the loop publishes after each decision: the value behind /status, metrics and logs."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from scaler.domain.types import InstrumentKey, Mode, TradingState


@dataclass(frozen=True, slots=True)
class DecisionRecord:
    """One decision for one instrument, with everything an operator needs to judge it."""

    key: InstrumentKey
    ts_ns: int
    mode: Mode
    trading_state: TradingState
    mark_price: float | None
    index_price: float | None
    funding_observed: float | None
    funding_predicted: float | None
    """The blend of ``funding_ema`` and ``funding_venue_predicted``, clamped: what sizing uses."""
    target_usd: float
    """What the size formula asked for."""
    recommended_usd: float
    """What the risk layer allowed: the position the loop steers to (or recommends)."""
    actual_usd: float
    equity_coin: float | None
    margin_ratio: float | None
    effective_leverage: float | None
    liquidation_price: float | None
    liquidation_distance: float | None
    reasons: tuple[str, ...]
    """Reason code of every risk rule that acted, in rule order."""
    rules: tuple[str, ...]
    """The rule family of each entry of ``reasons``."""
    details: tuple[str, ...]
    latency_s: float | None
    feed_age_s: dict[str, float | None]
    funding_ema: float | None = None
    """The EMA of observed rates (per configured interval, unclamped): one input of the blend."""
    funding_venue_predicted: float | None = None
    """The venue's published forecast (per configured interval), where it publishes one."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "venue": self.key.venue,
            "symbol": self.key.symbol,
            "ts_ns": self.ts_ns,
            "mode": self.mode.value,
            "trading_state": self.trading_state.value,
            "mark_price": self.mark_price,
            "index_price": self.index_price,
            "funding_observed": self.funding_observed,
            "funding_predicted": self.funding_predicted,
            "funding_ema": self.funding_ema,
            "funding_venue_predicted": self.funding_venue_predicted,
            "target_usd": self.target_usd,
            "recommended_usd": self.recommended_usd,
            "actual_usd": self.actual_usd,
            "equity_coin": self.equity_coin,
            "margin_ratio": _finite_or_none(self.margin_ratio),
            "effective_leverage": _finite_or_none(self.effective_leverage),
            "liquidation_price": self.liquidation_price,
            "liquidation_distance": _finite_or_none(self.liquidation_distance),
            "reasons": list(self.reasons),
            "details": list(self.details),
            "feed_age_s": self.feed_age_s,
        }


def _finite_or_none(value: float | None) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return value
