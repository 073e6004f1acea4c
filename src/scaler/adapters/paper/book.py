"""The liquidity our paper orders trade against: the latest snapshot's book, consumed as taken.

Each :class:`~scaler.domain.types.MarketSnapshot` replaces the book. Between two snapshots the
depth our own orders took is gone (a second market order walks what the first one left), so a
burst of orders cannot fill the same level twice. A side without levels (a feed that carries no
book) is one level at the touch with unlimited size.

Sizes are whole lots: a level of 250 USD offers two 100 USD lots; the 50 USD left stays on the
level for nobody. Our own resting orders are not liquidity for our other orders (no self-trade).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from scaler.domain.orders import OrderSide
from scaler.domain.types import MarketSnapshot


def _through(price: float, limit: float, side: OrderSide) -> bool:
    """Whether a level at ``price`` is acceptable to a ``side`` order limited at ``limit``."""
    return price <= limit if side is OrderSide.BUY else price >= limit


def whole_lots_usd(size_usd: float, lot_usd: int) -> int:
    """The largest multiple of the lot within ``size_usd`` (0 for anything non-finite)."""
    if not math.isfinite(size_usd) or size_usd < lot_usd:
        return 0
    return int(size_usd // lot_usd) * lot_usd


@dataclass(slots=True)
class BookSide:
    """One side: the touch and its levels ``[price, remaining_usd]``, or ``None`` for unlimited."""

    touch: float
    levels: list[list[float]] | None

    @classmethod
    def from_levels(cls, touch: float, levels: tuple[tuple[float, float], ...]) -> BookSide:
        return cls(float(touch), [[float(p), float(s)] for p, s in levels] if levels else None)

    def consume(
        self, side: OrderSide, amount_usd: int, lot_usd: int, limit: float | None
    ) -> list[tuple[int, float]]:
        """Take up to ``amount_usd`` through ``limit``, best level first: ``(size_usd, price)``."""
        if self.levels is None:
            if limit is not None and not _through(self.touch, limit, side):
                return []
            return [(amount_usd, self.touch)] if amount_usd > 0 else []
        taken: list[tuple[int, float]] = []
        remaining = amount_usd
        for level in self.levels:
            if remaining <= 0 or (limit is not None and not _through(level[0], limit, side)):
                break
            size = min(remaining, whole_lots_usd(level[1], lot_usd))
            if size > 0:
                level[1] -= size
                remaining -= size
                taken.append((size, level[0]))
        return taken

    def to_dict(self) -> dict[str, Any]:
        return {"touch": self.touch, "levels": self.levels}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BookSide:
        levels = data["levels"]
        return cls(
            float(data["touch"]),
            None if levels is None else [[float(p), float(s)] for p, s in levels],
        )


@dataclass(slots=True)
class Book:
    """Bids and asks of the latest snapshot, minus what our orders took since it arrived."""

    bids: BookSide
    asks: BookSide

    @classmethod
    def from_snapshot(cls, snapshot: MarketSnapshot) -> Book:
        return cls(
            BookSide.from_levels(snapshot.best_bid, snapshot.bids),
            BookSide.from_levels(snapshot.best_ask, snapshot.asks),
        )

    def facing(self, side: OrderSide) -> BookSide:
        """The side an order of ``side`` trades against: asks for a buy, bids for a sell."""
        return self.asks if side is OrderSide.BUY else self.bids

    def crosses(self, side: OrderSide, limit: float) -> bool:
        """Whether a ``side`` order at ``limit`` would trade against the opposite touch."""
        return _through(self.facing(side).touch, limit, side)

    def take(
        self, side: OrderSide, amount_usd: int, lot_usd: int, limit: float | None
    ) -> list[tuple[int, float]]:
        """A taker walk: up to ``amount_usd`` through ``limit`` (``None``: any price)."""
        return self.facing(side).consume(side, amount_usd, lot_usd, limit)

    def take_at_limit(self, side: OrderSide, amount_usd: int, lot_usd: int, limit: float) -> int:
        """A resting order's maker fill: the depth through ``limit`` it takes, all at ``limit``.

        Nothing unless the opposite touch crosses the limit.
        """
        if not self.crosses(side, limit):
            return 0
        return sum(size for size, _ in self.facing(side).consume(side, amount_usd, lot_usd, limit))

    def to_dict(self) -> dict[str, Any]:
        return {"bids": self.bids.to_dict(), "asks": self.asks.to_dict()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Book:
        return cls(BookSide.from_dict(data["bids"]), BookSide.from_dict(data["asks"]))
