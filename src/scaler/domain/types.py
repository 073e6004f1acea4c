"""Value types shared by the domain modules and the shell around them.

Conventions (DESIGN.md section 2):
- sizes are signed USD notionals, ``size_usd``: positive long, negative short;
- coin amounts are in the settlement coin (BTC for ``BTC/USD:BTC``), named ``*_coin``;
- prices are USD per coin; rates are plain fractions (0.0001 is 0.01 %);
- timestamps are integer nanoseconds since the Unix epoch, UTC, named ``ts_*_ns``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

NS_PER_S = 1_000_000_000
NS_PER_MS = 1_000_000
NS_PER_HOUR = 3_600 * NS_PER_S


class TradingState(enum.StrEnum):
    """What the risk layer lets the loop do."""

    ACTIVE = "active"
    """Orders in either direction."""
    REDUCING = "reducing"
    """Only reduce-only orders."""
    FROZEN = "frozen"
    """No orders; resumes by itself when the cause clears."""
    HALTED = "halted"
    """No orders; only an operator resumes."""


class Mode(enum.StrEnum):
    """Whether decisions leave the process as orders."""

    AUTO = "auto"
    RECOMMEND = "recommend"


@dataclass(frozen=True, slots=True)
class InstrumentKey:
    """Identifies one instrument on one venue; the engine is keyed by it."""

    venue: str
    symbol: str

    def __str__(self) -> str:
        return f"{self.venue}:{self.symbol}"


@dataclass(frozen=True, slots=True)
class MarketSnapshot:
    """The latest market view for one instrument, as received.

    ``funding_rate`` is the venue's current (last observed) rate for one ``funding_interval_s``;
    ``predicted_funding_rate`` is the venue-published next rate where it has one.
    """

    key: InstrumentKey
    ts_event_ns: int
    ts_recv_ns: int
    mark_price: float
    index_price: float
    best_bid: float
    best_ask: float
    funding_rate: float
    funding_interval_s: float
    ts_funding_ns: int
    predicted_funding_rate: float | None = None
    bids: tuple[tuple[float, float], ...] = ()
    """Book levels ``(price, size_usd)``, best first; empty when the feed carries no book."""
    asks: tuple[tuple[float, float], ...] = ()

    @property
    def mid_price(self) -> float:
        return (self.best_bid + self.best_ask) / 2.0

    @property
    def spread_bps(self) -> float:
        mid = self.mid_price
        return (self.best_ask - self.best_bid) / mid * 10_000.0 if mid > 0 else float("inf")


@dataclass(frozen=True, slots=True)
class AccountSnapshot:
    """The account as last reported by the venue, for one instrument's settlement coin.

    ``wallet_balance_coin`` excludes unrealised PnL; equity adds it.
    ``maintenance_margin_coin`` and ``liquidation_price`` are what the venue (or the paper
    exchange) reports; ``None`` where it reports nothing.
    """

    ts_ns: int
    wallet_balance_coin: float
    unrealised_pnl_coin: float
    position_usd: float
    entry_price: float | None
    maintenance_margin_coin: float | None = None
    liquidation_price: float | None = None

    @property
    def equity_coin(self) -> float:
        return self.wallet_balance_coin + self.unrealised_pnl_coin
