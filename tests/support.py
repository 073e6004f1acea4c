"""Shared test helpers: a bounded ``eventually``, a push-driven market feed, snapshot builders."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import replace

from scaler.domain.types import NS_PER_S, InstrumentKey, MarketSnapshot

KEY = InstrumentKey("paper", "BTC/USD:BTC")


async def eventually(
    predicate: Callable[[], bool], timeout_s: float = 5.0, message: str = "condition"
) -> None:
    """Wait until ``predicate()`` is true, yielding to the loop; fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {message}")
        await asyncio.sleep(0.001)


def snapshot(
    ts_ns: int,
    mark: float = 50_000.0,
    *,
    key: InstrumentKey = KEY,
    index: float | None = None,
    funding_rate: float = 0.0001,
    spread_usd: float = 1.0,
    depth_usd: float = 1_000_000.0,
    ts_funding_ns: int | None = None,
) -> MarketSnapshot:
    """A plausible snapshot at ``ts_ns`` with one deep level each side."""
    bid, ask = mark - spread_usd / 2, mark + spread_usd / 2
    return MarketSnapshot(
        key=key,
        ts_event_ns=ts_ns,
        ts_recv_ns=ts_ns,
        mark_price=mark,
        index_price=mark if index is None else index,
        best_bid=bid,
        best_ask=ask,
        funding_rate=funding_rate,
        funding_interval_s=28_800.0,
        ts_funding_ns=ts_ns if ts_funding_ns is None else ts_funding_ns,
        bids=((bid, depth_usd),),
        asks=((ask, depth_usd),),
    )


def later(snap: MarketSnapshot, seconds: float, **changes: float) -> MarketSnapshot:
    """The same market ``seconds`` later, with optional field changes."""
    ts = snap.ts_event_ns + int(seconds * NS_PER_S)
    return replace(snap, ts_event_ns=ts, ts_recv_ns=ts, ts_funding_ns=ts, **changes)


class PushFeed:
    """A MarketFeed the test drives: ``push`` a snapshot, the engine receives it."""

    def __init__(self) -> None:
        self._queue: asyncio.Queue[MarketSnapshot | None] = asyncio.Queue()
        self.closed = False

    def push(self, snap: MarketSnapshot) -> None:
        self._queue.put_nowait(snap)

    async def stream(self) -> AsyncIterator[MarketSnapshot]:
        while True:
            item = await self._queue.get()
            if item is None:
                return
            yield item

    async def close(self) -> None:
        self.closed = True
        self._queue.put_nowait(None)
