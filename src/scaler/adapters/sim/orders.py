"""The simulator's order records: a parsed order request, and what Deribit reports per order.

The paper exchange keeps an order's status, amounts and fills; :class:`OrderMeta` keeps the rest
of what Deribit reports (label, type, price, flags, time in force, wall-clock times, why it was
cancelled), keyed by the Deribit order id, which is also the paper client order id.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from scaler.domain.orders import Fill, OrderSide, OrderType, OrderUpdate

GOOD_TIL_CANCELLED: Final = "good_til_cancelled"
IMMEDIATE_OR_CANCEL: Final = "immediate_or_cancel"


@dataclass(frozen=True, slots=True)
class NewOrder:
    """A ``private/buy`` or ``private/sell`` request, parsed."""

    instrument_name: str
    side: OrderSide
    amount_usd: float
    order_type: OrderType
    price: float | None
    label: str
    post_only: bool
    reduce_only: bool
    time_in_force: str = GOOD_TIL_CANCELLED


@dataclass(slots=True)
class OrderMeta:
    """What Deribit reports about an order that the paper order does not keep."""

    order_id: str
    instrument_name: str
    label: str
    side: OrderSide
    order_type: OrderType
    price: float | None
    amount_usd: float
    post_only: bool
    reduce_only: bool
    time_in_force: str
    ts_created_ms: int
    ts_updated_ms: int
    cancel_reason: str | None = None
    is_liquidation: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            name: getattr(self, name).value
            if name in {"side", "order_type"}
            else getattr(self, name)
            for name in self.__dataclass_fields__
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> OrderMeta:
        fields = {name: data[name] for name in cls.__dataclass_fields__}
        fields["side"], fields["order_type"] = (
            OrderSide(data["side"]),
            OrderType(data["order_type"]),
        )
        return cls(**fields)


@dataclass(frozen=True, slots=True)
class OrderView:
    """One order as Deribit reports it: its metadata and the paper exchange's current state."""

    meta: OrderMeta
    update: OrderUpdate
    commission_coin: float


@dataclass(frozen=True, slots=True)
class TradeView:
    """One fill of one of our orders, its per-instrument sequence number and the order now."""

    fill: Fill
    seq: int
    order: OrderView


@dataclass(frozen=True, slots=True)
class MarketOutcome:
    """What one market update did to our orders: those that changed, and the new fills."""

    orders: list[OrderView]
    trades: list[TradeView]
