"""Unit tests for the paper exchange's book walk (scaler.adapters.paper.book)."""

from __future__ import annotations

import pytest

from scaler.adapters.paper.book import Book, whole_lots_usd
from scaler.domain.orders import OrderSide
from scaler.domain.types import InstrumentKey, MarketSnapshot

pytestmark = pytest.mark.unit

KEY = InstrumentKey("paper", "BTC/USD:BTC")


def _snapshot(
    bids: tuple[tuple[float, float], ...] = (), asks: tuple[tuple[float, float], ...] = ()
) -> MarketSnapshot:
    return MarketSnapshot(
        KEY, 1, 1, 10_000.0, 10_000.0, 9_999.5, 10_000.0, 0.0, 28_800.0, 0, bids=bids, asks=asks
    )


@pytest.mark.parametrize(
    ("size_usd", "lot_usd", "expected"),
    [(250.0, 100, 200), (99.0, 100, 0), (1_000.0, 10, 1_000), (float("nan"), 10, 0)],
)
def test_whole_lots_usd(size_usd: float, lot_usd: int, expected: int) -> None:
    """A level offers only the whole lots it holds."""
    assert whole_lots_usd(size_usd, lot_usd) == expected


def test_take_walks_levels_best_first_up_to_the_limit() -> None:
    """A buy limited at 10,001 takes the 10,000 and 10,001 asks and stops before 10,002."""
    book = Book.from_snapshot(
        _snapshot(asks=((10_000.0, 300.0), (10_001.0, 250.0), (10_002.0, 1e6)))
    )
    taken = book.take(OrderSide.BUY, 1_000, 100, 10_001.0)
    # 250 USD at 10,001 holds two whole 100 USD lots.
    assert taken == [(300, 10_000.0), (200, 10_001.0)]


def test_take_consumes_depth_until_the_next_snapshot() -> None:
    """Depth one order took is gone for the next order against the same snapshot."""
    book = Book.from_snapshot(_snapshot(bids=((9_999.5, 500.0),)))
    assert book.take(OrderSide.SELL, 300, 100, None) == [(300, 9_999.5)]
    assert book.take(OrderSide.SELL, 300, 100, None) == [(200, 9_999.5)]
    assert book.take(OrderSide.SELL, 300, 100, None) == []


def test_take_when_no_levels_then_unlimited_at_the_touch() -> None:
    """Without book levels, any amount fills at the touch, if the touch is within the limit."""
    book = Book.from_snapshot(_snapshot())
    assert book.take(OrderSide.BUY, 10**9, 1, None) == [(10**9, 10_000.0)]
    assert book.take(OrderSide.SELL, 500, 1, 9_999.5) == [(500, 9_999.5)]
    assert book.take(OrderSide.SELL, 500, 1, 10_000.0) == []


def test_take_at_limit_fills_depth_through_the_limit_only_when_crossed() -> None:
    """A resting buy at 10,000 gets the asks at or below 10,000 once the ask touch crosses it."""
    asks = ((9_999.0, 100.0), (10_000.0, 100.0), (10_000.5, 1_000.0))
    crossing = MarketSnapshot(
        KEY, 2, 2, 9_999.0, 9_999.0, 9_998.5, 9_999.0, 0.0, 28_800.0, 0, asks=asks
    )
    assert Book.from_snapshot(crossing).take_at_limit(OrderSide.BUY, 1_000, 100, 10_000.0) == 200
    assert Book.from_snapshot(_snapshot()).take_at_limit(OrderSide.BUY, 100, 100, 9_999.5) == 0


def test_book_round_trips_through_dict() -> None:
    """A partly consumed book is restored exactly."""
    book = Book.from_snapshot(_snapshot(asks=((10_000.0, 300.0),)))
    book.take(OrderSide.BUY, 100, 100, None)
    assert Book.from_dict(book.to_dict()) == book
