"""Static facts of a paper instrument and the venue's settings, with their JSON forms.

The default maintenance schedule copies Bybit's inverse BTCUSD risk limits
(``reference/inverse-contracts.md`` section 3.2): 0.5 % up to 150 BTC of position value, 1 % to
300 BTC; beyond that the table goes on in steps of 150 BTC and +0.5 %, the way Bybit's and
BitMEX's risk steps do (those higher tiers are not in the reference). A position of exactly 150
BTC falls in the 1 % tier here (``TierTable`` floors are inclusive) where Bybit says "150 BTC or
below": a one-point boundary difference.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from scaler.domain.inverse import LinearMargin, MarginSchedule, RiskTier, TierBasis, TierTable
from scaler.domain.types import InstrumentKey

BYBIT_BTC_INVERSE_TIERS: Final = TierTable.from_rates(
    floors=(0.0, 150.0, 300.0, 450.0, 600.0),
    mmrs=(0.005, 0.010, 0.015, 0.020, 0.025),
)
"""Maintenance margin tiers by position value in BTC, like Bybit inverse BTCUSD."""


@dataclass(frozen=True, slots=True)
class PaperInstrument:
    """One inverse perpetual at the paper venue.

    ``lot_size_usd`` is the contract's USD face value, a whole number on every inverse venue
    (Deribit 10, Bybit 1, OKX and Binance 100, Kraken 1); ``funding_interval_s`` divides the day
    from the epoch, so 28,800 settles at 00:00, 08:00 and 16:00 UTC.
    """

    key: InstrumentKey
    lot_size_usd: int = 1
    tick_size: float = 0.5
    schedule: MarginSchedule = BYBIT_BTC_INVERSE_TIERS
    funding_interval_s: int = 28_800

    def __post_init__(self) -> None:
        if isinstance(self.lot_size_usd, bool) or not isinstance(self.lot_size_usd, int):
            raise TypeError("lot_size_usd must be an int (a whole USD face value)")
        if self.lot_size_usd < 1:
            raise ValueError("lot_size_usd must be at least 1")
        if not math.isfinite(self.tick_size) or self.tick_size <= 0.0:
            raise ValueError("tick_size must be a finite positive price")
        if self.funding_interval_s < 1:
            raise ValueError("funding_interval_s must be a positive number of seconds")

    def to_dict(self) -> dict[str, Any]:
        return {
            "venue": self.key.venue,
            "symbol": self.key.symbol,
            "lot_size_usd": self.lot_size_usd,
            "tick_size": self.tick_size,
            "schedule": schedule_to_dict(self.schedule),
            "funding_interval_s": self.funding_interval_s,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PaperInstrument:
        return cls(
            key=InstrumentKey(str(data["venue"]), str(data["symbol"])),
            lot_size_usd=int(data["lot_size_usd"]),
            tick_size=float(data["tick_size"]),
            schedule=schedule_from_dict(data["schedule"]),
            funding_interval_s=int(data["funding_interval_s"]),
        )


@dataclass(frozen=True, slots=True)
class PaperConfig:
    """Venue-wide settings: starting wallet, fee rates (Deribit's 0 % / 0.05 %), leverage cap."""

    initial_balance_coin: float = 1.0
    maker_fee_rate: float = 0.0
    taker_fee_rate: float = 0.0005
    max_leverage: float = 50.0

    def __post_init__(self) -> None:
        if not math.isfinite(self.initial_balance_coin) or self.initial_balance_coin < 0.0:
            raise ValueError("initial_balance_coin must be finite and >= 0")
        for name in ("maker_fee_rate", "taker_fee_rate"):
            rate = getattr(self, name)
            if not math.isfinite(rate) or abs(rate) >= 0.1:
                raise ValueError(f"{name} must be finite and within ±10 %")
        if not math.isfinite(self.max_leverage) or self.max_leverage <= 0.0:
            raise ValueError("max_leverage must be finite and positive")

    def to_dict(self) -> dict[str, Any]:
        return {
            "initial_balance_coin": self.initial_balance_coin,
            "maker_fee_rate": self.maker_fee_rate,
            "taker_fee_rate": self.taker_fee_rate,
            "max_leverage": self.max_leverage,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PaperConfig:
        return cls(**{name: float(data[name]) for name in cls.__dataclass_fields__})


def schedule_to_dict(schedule: MarginSchedule) -> dict[str, Any]:
    """A JSON form of a margin schedule that :func:`schedule_from_dict` restores exactly."""
    if isinstance(schedule, LinearMargin):
        return {
            "kind": "linear",
            "base_mmr": schedule.base_mmr,
            "mmr_per_coin": schedule.mmr_per_coin,
        }
    return {
        "kind": "tiers",
        "basis": schedule.basis.value,
        "tiers": [[t.floor, t.mmr, t.deduction, t.max_leverage] for t in schedule.tiers],
    }


def schedule_from_dict(data: Mapping[str, Any]) -> MarginSchedule:
    if data["kind"] == "linear":
        return LinearMargin(float(data["base_mmr"]), float(data["mmr_per_coin"]))
    tiers = tuple(
        RiskTier(float(floor), float(mmr), float(deduction), None if lev is None else float(lev))
        for floor, mmr, deduction, lev in data["tiers"]
    )
    return TierTable(tiers, TierBasis(data["basis"]))
