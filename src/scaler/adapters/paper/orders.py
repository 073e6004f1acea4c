"""Our orders at the paper venue: one mutable record per client order id, and their registry.

A client order id is unique per exchange for its whole life, rejected orders included: the
registry refuses a second order with an id it holds, which is what makes "look it up by client
id before resending" (DESIGN.md section 5) safe against this venue.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from scaler.domain.inverse import average_entry_price
from scaler.domain.orders import OrderRequest, OrderSide, OrderStatus, OrderType, OrderUpdate
from scaler.domain.types import InstrumentKey


def _finite_or_none(value: float | None) -> float | None:
    return float(value) if value is not None and math.isfinite(value) else None


@dataclass(slots=True)
class PaperOrder:
    """The venue's record of one order. ``amount_usd`` is whole lots once accepted."""

    key: InstrumentKey
    client_order_id: str
    seq: int
    side: OrderSide
    order_type: OrderType
    amount_usd: float
    limit_price: float | None
    reduce_only: bool
    post_only: bool
    ts_ns: int
    status: OrderStatus = OrderStatus.OPEN
    filled_usd: int = 0
    average_fill_price: float | None = None
    fill_count: int = 0
    reason: str = ""

    @classmethod
    def from_request(cls, request: OrderRequest, seq: int, ts_ns: int) -> PaperOrder:
        """A new OPEN order; non-finite numbers (only ever on a rejected order) are blanked."""
        return cls(
            key=request.key,
            client_order_id=request.client_order_id,
            seq=seq,
            side=request.side,
            order_type=request.order_type,
            amount_usd=float(request.amount_usd) if math.isfinite(request.amount_usd) else 0.0,
            limit_price=_finite_or_none(request.limit_price),
            reduce_only=request.reduce_only,
            post_only=request.post_only,
            ts_ns=ts_ns,
        )

    @property
    def venue_order_id(self) -> str | None:
        return None if self.status is OrderStatus.REJECTED else f"paper-{self.seq}"

    @property
    def remaining_usd(self) -> int:
        return int(self.amount_usd) - self.filled_usd

    def record_fill(self, size_usd: int, price: float) -> str:
        """Count a fill, update the harmonic average price; the fill's deterministic id."""
        if self.filled_usd == 0 or self.average_fill_price is None:
            self.average_fill_price = price
        else:
            self.average_fill_price = average_entry_price(
                ((self.filled_usd, self.average_fill_price), (size_usd, price))
            )
        self.filled_usd += size_usd
        self.fill_count += 1
        return f"paper-{self.seq}-{self.fill_count}"

    def to_update(self) -> OrderUpdate:
        return OrderUpdate(
            key=self.key,
            client_order_id=self.client_order_id,
            venue_order_id=self.venue_order_id,
            status=self.status,
            side=self.side,
            amount_usd=float(self.amount_usd),
            filled_usd=float(self.filled_usd),
            average_fill_price=self.average_fill_price,
            ts_ns=self.ts_ns,
            reason=self.reason,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "venue": self.key.venue,
            "symbol": self.key.symbol,
            "client_order_id": self.client_order_id,
            "seq": self.seq,
            "side": self.side.value,
            "order_type": self.order_type.value,
            "amount_usd": self.amount_usd,
            "limit_price": self.limit_price,
            "reduce_only": self.reduce_only,
            "post_only": self.post_only,
            "ts_ns": self.ts_ns,
            "status": self.status.value,
            "filled_usd": self.filled_usd,
            "average_fill_price": self.average_fill_price,
            "fill_count": self.fill_count,
            "reason": self.reason,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PaperOrder:
        limit, average = data["limit_price"], data["average_fill_price"]
        return cls(
            key=InstrumentKey(str(data["venue"]), str(data["symbol"])),
            client_order_id=str(data["client_order_id"]),
            seq=int(data["seq"]),
            side=OrderSide(data["side"]),
            order_type=OrderType(data["order_type"]),
            amount_usd=float(data["amount_usd"]),
            limit_price=None if limit is None else float(limit),
            reduce_only=bool(data["reduce_only"]),
            post_only=bool(data["post_only"]),
            ts_ns=int(data["ts_ns"]),
            status=OrderStatus(data["status"]),
            filled_usd=int(data["filled_usd"]),
            average_fill_price=None if average is None else float(average),
            fill_count=int(data["fill_count"]),
            reason=str(data["reason"]),
        )


class OrderRegistry:
    """Every order by client id, in arrival order, with an index of the open ones."""

    __slots__ = ("_all", "_open")

    def __init__(self) -> None:
        self._all: dict[str, PaperOrder] = {}
        self._open: dict[str, PaperOrder] = {}

    def __contains__(self, client_order_id: str) -> bool:
        return client_order_id in self._all

    def __len__(self) -> int:
        return len(self._all)

    def __iter__(self) -> Iterator[PaperOrder]:
        return iter(self._all.values())

    def get(self, client_order_id: str) -> PaperOrder | None:
        return self._all.get(client_order_id)

    def add(self, order: PaperOrder) -> None:
        if order.client_order_id in self._all:
            raise ValueError(f"client order id {order.client_order_id!r} is taken")
        self._all[order.client_order_id] = order
        if not order.status.is_terminal:
            self._open[order.client_order_id] = order

    def finish(self, order: PaperOrder, status: OrderStatus, reason: str = "") -> None:
        """Move an order to a terminal status."""
        if not status.is_terminal:
            raise ValueError(f"{status} is not terminal")
        order.status = status
        if reason:
            order.reason = reason
        self._open.pop(order.client_order_id, None)

    def open_orders(self, key: InstrumentKey | None = None) -> list[PaperOrder]:
        """Open orders (of one instrument, or all), oldest first."""
        return [o for o in self._open.values() if key is None or o.key == key]

    def by_priority(self, key: InstrumentKey) -> list[PaperOrder]:
        """Open orders of one instrument in price-time priority, per side."""

        def rank(order: PaperOrder) -> tuple[int, float, int]:
            price = order.limit_price if order.limit_price is not None else 0.0
            return (0, -price, order.seq) if order.side is OrderSide.BUY else (1, price, order.seq)

        return sorted(self.open_orders(key), key=rank)

    def counts(self) -> dict[OrderStatus, int]:
        """Orders by current status, every status present (zero when none)."""
        tally = Counter(order.status for order in self._all.values())
        return {status: tally.get(status, 0) for status in OrderStatus}

    def to_dict(self) -> list[dict[str, Any]]:
        return [order.to_dict() for order in self._all.values()]

    @classmethod
    def from_dict(cls, data: list[Mapping[str, Any]]) -> OrderRegistry:
        registry = cls()
        for item in data:
            registry.add(PaperOrder.from_dict(item))
        return registry
