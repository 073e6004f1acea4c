"""Order value types: what the planner asks for and what a venue reports back.

Amounts are positive USD notionals (``amount_usd``), whole multiples of the venue lot; the side
carries the direction. Venue units (Deribit's USD amounts, everyone else's contracts) are
converted only at the adapter edge.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from scaler.domain.types import InstrumentKey


class OrderSide(enum.StrEnum):
    BUY = "buy"
    SELL = "sell"

    @property
    def sign(self) -> int:
        return 1 if self is OrderSide.BUY else -1

    @staticmethod
    def for_delta(delta_usd: float) -> OrderSide:
        return OrderSide.BUY if delta_usd > 0 else OrderSide.SELL


class OrderType(enum.StrEnum):
    MARKET = "market"
    LIMIT = "limit"


class OrderStatus(enum.StrEnum):
    """Lifecycle of an order as the daemon tracks it."""

    INTENDED = "intended"
    """Journaled, not yet acknowledged by the venue (outcome unknown after a crash)."""
    OPEN = "open"
    """Resting at the venue, possibly partly filled."""
    FILLED = "filled"
    CANCELLED = "cancelled"
    """Cancelled by us or expired (IOC remainder), possibly partly filled."""
    REJECTED = "rejected"

    @property
    def is_terminal(self) -> bool:
        return self in (OrderStatus.FILLED, OrderStatus.CANCELLED, OrderStatus.REJECTED)


class Liquidity(enum.StrEnum):
    MAKER = "maker"
    TAKER = "taker"


@dataclass(frozen=True, slots=True)
class OrderRequest:
    """One order the planner wants sent; ``limit_price`` is the protection price for marketable
    limits and the resting price for passive ones."""

    key: InstrumentKey
    client_order_id: str
    side: OrderSide
    amount_usd: float
    order_type: OrderType
    limit_price: float | None
    reduce_only: bool
    post_only: bool
    ts_created_ns: int


@dataclass(frozen=True, slots=True)
class OrderUpdate:
    """The venue's view of one of our orders."""

    key: InstrumentKey
    client_order_id: str
    venue_order_id: str | None
    status: OrderStatus
    side: OrderSide
    amount_usd: float
    filled_usd: float
    average_fill_price: float | None
    ts_ns: int
    reason: str = ""

    @property
    def remaining_usd(self) -> float:
        return max(0.0, self.amount_usd - self.filled_usd)


@dataclass(frozen=True, slots=True)
class Fill:
    """One execution of one of our orders."""

    key: InstrumentKey
    client_order_id: str
    fill_id: str
    side: OrderSide
    size_usd: float
    price: float
    fee_coin: float
    liquidity: Liquidity
    ts_ns: int
