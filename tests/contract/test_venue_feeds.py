"""The ccxt feed over REST on every recorded venue: one complete snapshot from each venue's own
sources (ticker, book, mark, index, funding), in USD book units, with the venue's interval."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from scaler.adapters.ccxt_venue import Caller, FeedOptions
from scaler.adapters.ccxt_venue.feed import CcxtFeed
from scaler.domain.types import MarketSnapshot
from tests.contract.harnesses import RecordedHarness

pytestmark = pytest.mark.integration

PAYLOADS = Path(__file__).resolve().parents[1] / "venues" / "payloads"
HOUR_S = 3_600.0


async def first_snapshot(harness: RecordedHarness) -> MarketSnapshot:
    feed = CcxtFeed(
        harness.client,
        harness.broker._profile,
        harness.key,
        harness.clock,
        Caller(harness.clock),
        FeedOptions(websocket=False, poll_interval_s=0.01),
    )
    try:
        async with asyncio.timeout(5):
            async for snapshot in feed.stream():
                return snapshot
    finally:
        await feed.close()
    raise AssertionError("the feed ended without a snapshot")


def recorded(venue: str) -> dict[str, str]:
    state: dict[str, str] = json.loads((PAYLOADS / f"{venue}.json").read_text())["state"]
    return state


@pytest.mark.parametrize(
    ("venue", "interval_s"),
    [
        ("bybit", 8 * HOUR_S),
        ("okx", 8 * HOUR_S),
        ("binancecoinm", 8 * HOUR_S),
        ("krakenfutures", HOUR_S),
    ],
)
async def test_a_complete_snapshot_from_the_venue_sources(venue: str, interval_s: float) -> None:
    harness = await RecordedHarness(venue).start()
    try:
        snapshot = await first_snapshot(harness)
    finally:
        await harness.close()
    state = recorded(venue)
    assert snapshot.mark_price == pytest.approx(float(state["recorded_mark"]))
    assert snapshot.index_price == pytest.approx(float(state["recorded_index"]))
    assert snapshot.best_bid < snapshot.best_ask
    assert snapshot.best_bid == pytest.approx(snapshot.mark_price, rel=1e-3)
    assert snapshot.funding_interval_s == interval_s
    assert snapshot.funding_rate == pytest.approx(float(state["funding_rate"]), rel=1e-3)
    assert snapshot.bids
    assert snapshot.asks
    assert snapshot.bids[0][0] <= snapshot.best_ask
    assert snapshot.asks[0][0] >= snapshot.best_bid


async def test_kraken_inverse_funding_is_the_quote_times_the_mark() -> None:
    """Kraken quotes PI_ funding as BTC per 1-USD contract per hour: 9.5924e-11 at a mark of
    104,249.37 is a relative rate of 1.0000e-5 per hour (ccxt's own division gives ~1e-15)."""
    harness = await RecordedHarness("krakenfutures").start()
    try:
        snapshot = await first_snapshot(harness)
    finally:
        await harness.close()
    assert snapshot.funding_rate == pytest.approx(9.5924e-11 * 104_249.37, rel=1e-5)
    assert snapshot.funding_rate == pytest.approx(1.0e-5, rel=1e-3)
    assert snapshot.predicted_funding_rate == pytest.approx(1.0e-5, rel=0.1)


async def test_book_levels_are_usd_on_contract_venues() -> None:
    """OKX books are in contracts of 100 USD: every level size is a multiple of 100 USD."""
    harness = await RecordedHarness("okx").start()
    try:
        snapshot = await first_snapshot(harness)
    finally:
        await harness.close()
    for _, size_usd in snapshot.bids + snapshot.asks:
        assert size_usd % 100 == 0
        assert size_usd >= 100
