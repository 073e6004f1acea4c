"""Benchmark 3: 50 symbols at 20 ticks/s each on the paper venue, in wall-clock time.

The real :class:`Engine` (``Engine.run``: feed reader, ticker and decider tasks, conflation to
the latest tick per symbol) on a ``WallClock`` with 50 ``InstrumentSpec``\\ s. Market: one seeded
synthetic feed per symbol (``synthetic_snapshots`` at 0.05 s, staggered by 1 ms), merged by
event time into one ``ClockedFeed`` paced by the wall clock, behind a ``PaperVenue`` over one
paper exchange listing the 50 instruments (one BTC wallet, cross margin, no persistence).
Configuration: ``engine_config`` on default ``Settings`` (order-rate cap 5/s included) with the
target leverage split across the symbols (3x / 50 each, so the wallet holds 3x in total, not
150x). Before the engine starts, each position is opened at its target by a market order
outside the engine, so the window measures the steady state rather than the first convergence.
Telemetry: the daemon's ``Observer`` (Prometheus metrics, structlog at warning).

Measured over the window:

- CPU share of one core: ``time.process_time()`` delta / wall delta (the synthetic market
  generator, the paper exchange and the feed pacing run in the same process and are included);
- conflation lag: from a snapshot's receipt (``ts_recv_ns``, stamped by the feed at delivery)
  to the decision that used it (the engine's own ``DecisionRecord.latency_s``), p99 and max;
  snapshots overwritten before a decision are counted as conflated;
- feed lag: delivery time minus the tick's due time; a backlog that grows shows as a feed lag
  that rises from the first quarter of the window to the last, and as ticks not delivered.

    .venv/bin/python -m bench.multi_symbol --seconds 60
"""

from __future__ import annotations

import argparse
import asyncio
import heapq
import json
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any, cast

from bench.common import (
    DESIGN_CPU_SHARE,
    bench_engine_config,
    default_settings,
    instrument_spec,
    latency_summary_us,
    memory_journal,
    paper_exchange,
    quiet_logging,
)
from scaler.adapters.paper.exchange import PaperExchange
from scaler.adapters.paper.feeds import ClockedFeed, Pace, SyntheticParams, synthetic_snapshots
from scaler.adapters.paper.venue import PaperVenue
from scaler.clock import WallClock
from scaler.config import Settings
from scaler.domain.orders import Fill, OrderRequest, OrderSide, OrderType, OrderUpdate
from scaler.domain.records import DecisionRecord
from scaler.domain.sizing import Side, round_to_lots
from scaler.domain.types import NS_PER_S, AccountSnapshot, InstrumentKey, MarketSnapshot
from scaler.observability.metrics import Metrics
from scaler.observability.telemetry import Observer
from scaler.ports import MarketFeed
from scaler.service.engine import Engine

SYMBOLS = 50
TICKS_PER_S = 20.0
DEFAULT_SECONDS = 60.0
QUICK_SECONDS = 5.0
BACKLOG_GROWTH_S = 0.010
"""Feed lag rising by more than this from the first quarter to the last counts as a backlog."""


@dataclass
class Recorder:
    """Wraps the daemon's telemetry and keeps each decision's tick-to-decision lag."""

    inner: Observer
    first_decision: asyncio.Event = field(default_factory=asyncio.Event)
    lags_ns: list[int] = field(default_factory=list)
    decisions: int = 0
    order_events: int = 0
    errors: list[str] = field(default_factory=list)

    def decision(self, record: DecisionRecord, changed: bool) -> None:
        self.decisions += 1
        self.first_decision.set()
        if record.latency_s is not None:
            self.lags_ns.append(round(record.latency_s * NS_PER_S))
        self.inner.decision(record, changed)

    def order_event(self, key: InstrumentKey, event: str, update: OrderUpdate | None) -> None:
        self.order_events += 1
        self.inner.order_event(key, event, update)

    def order_round_trip(self, key: InstrumentKey, seconds: float) -> None:
        self.inner.order_round_trip(key, seconds)

    def bad_input(self, key: InstrumentKey | None, feed: str, reason: str) -> None:
        self.errors.append(f"bad_input {feed} {reason}")
        self.inner.bad_input(key, feed, reason)

    def error(self, kind: str, detail: str) -> None:
        self.errors.append(f"{kind}: {detail}")
        self.inner.error(kind, detail)

    def state_changed(self, key: InstrumentKey, previous: str, current: str, reasons: str) -> None:
        self.inner.state_changed(key, previous, current, reasons)


class LagTap:
    """A MarketFeed in front of another that notes each snapshot's delivery lag, in order."""

    def __init__(self, inner: MarketFeed) -> None:
        self._inner = inner
        self.lags_ns: list[int] = []

    async def stream(self) -> AsyncIterator[MarketSnapshot]:
        async for snapshot in self._inner.stream():
            self.lags_ns.append(snapshot.ts_recv_ns - snapshot.ts_event_ns)
            yield snapshot

    async def close(self) -> None:
        await self._inner.close()


class TimedExchange(PaperExchange):
    """The paper exchange, keeping the wall time spent inside it (market updates, account
    snapshots, orders): venue work that a real venue would do on its own machines."""

    __slots__ = ("inside_ns",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.inside_ns = 0

    def on_market(self, snapshot: MarketSnapshot) -> list[Fill]:
        start = time.perf_counter_ns()
        try:
            return super().on_market(snapshot)
        finally:
            self.inside_ns += time.perf_counter_ns() - start

    def account_snapshot(self, key: InstrumentKey) -> AccountSnapshot:
        start = time.perf_counter_ns()
        try:
            return super().account_snapshot(key)
        finally:
            self.inside_ns += time.perf_counter_ns() - start

    def place(self, request: OrderRequest) -> OrderUpdate:
        start = time.perf_counter_ns()
        try:
            return super().place(request)
        finally:
            self.inside_ns += time.perf_counter_ns() - start


class TimedSource:
    """An iterator of snapshots that keeps the wall time spent producing them."""

    def __init__(self, source: Iterator[MarketSnapshot]) -> None:
        self._source = source
        self.inside_ns = 0

    def __iter__(self) -> TimedSource:
        return self

    def __next__(self) -> MarketSnapshot:
        start = time.perf_counter_ns()
        try:
            return next(self._source)
        finally:
            self.inside_ns += time.perf_counter_ns() - start


def symbol_keys(count: int) -> list[InstrumentKey]:
    return [InstrumentKey("paper", f"S{i:02d}/USD:BTC") for i in range(count)]


def merged_market(
    settings: Settings, keys: list[InstrumentKey], ticks_per_s: float, start_ns: int
) -> Iterator[MarketSnapshot]:
    """One synthetic market per key, staggered evenly within a tick, merged by event time."""
    interval_s = 1.0 / ticks_per_s
    stagger_ns = round(interval_s * NS_PER_S / len(keys))
    params = SyntheticParams(
        start_price=settings.paper.start_price,
        tick_interval_s=interval_s,
        funding_interval_s=settings.instrument.funding_interval_s,
    )
    sources = [
        synthetic_snapshots(key, seed, params, start_ns + seed * stagger_ns)
        for seed, key in enumerate(keys)
    ]
    return heapq.merge(*sources, key=lambda snapshot: snapshot.ts_event_ns)


def open_positions(
    exchange: PaperExchange, settings: Settings, keys: list[InstrumentKey], leverage: float
) -> None:
    """Give each instrument a first market and its sized position, before the engine starts."""
    now_ns = time.time_ns()
    price = settings.paper.start_price
    lot = settings.instrument.lot_size_usd
    per_symbol_usd = settings.paper.initial_balance_coin * leverage * price
    size_usd = round_to_lots(per_symbol_usd, lot)
    side = OrderSide.BUY if settings.strategy.side.sign == Side.LONG else OrderSide.SELL
    for key in keys:
        first = next(merged_market(settings, [key], TICKS_PER_S, now_ns))
        exchange.on_market(first)
        exchange.place(
            OrderRequest(
                key=key,
                client_order_id=f"seed{key.symbol[1:3]}",
                side=side,
                amount_usd=size_usd,
                order_type=OrderType.MARKET,
                limit_price=None,
                reduce_only=False,
                post_only=False,
                ts_created_ns=now_ns,
            )
        )


def _quarters(values: list[int]) -> list[float]:
    """Mean of each quarter of ``values`` in milliseconds."""
    if len(values) < 4:
        return []
    size = len(values) // 4
    return [sum(values[i * size : (i + 1) * size]) / size / 1e6 for i in range(4)]


async def _run(symbols: int, ticks_per_s: float, seconds: float) -> dict[str, Any]:
    settings = default_settings()
    leverage = settings.strategy.target_leverage / symbols
    base = bench_engine_config(settings)
    config = bench_engine_config(
        settings,
        sizing=type(base.sizing)(
            side=base.sizing.side,
            target_leverage=leverage,
            lot_size_usd=base.sizing.lot_size_usd,
            min_denominator=base.sizing.min_denominator,
            max_leverage=base.sizing.max_leverage,
        ),
    )
    keys = symbol_keys(symbols)
    clock = WallClock()
    exchange = cast("TimedExchange", paper_exchange(settings, keys, kind=TimedExchange))
    open_positions(exchange, settings, keys, leverage)
    market = TimedSource(merged_market(settings, keys, ticks_per_s, clock.now_ns()))
    venue = PaperVenue(exchange, ClockedFeed(market, clock, Pace.WALL))
    feed = LagTap(venue)
    telemetry = Recorder(Observer(Metrics()))
    engine = Engine(
        [instrument_spec(settings, key) for key in keys],
        config,
        clock,
        venue,
        feed,
        memory_journal()[0],
        telemetry,
    )
    stop = asyncio.Event()
    task = asyncio.create_task(engine.run(stop))
    await asyncio.wait_for(telemetry.first_decision.wait(), timeout=30)
    lags_before, decisions_before = len(telemetry.lags_ns), telemetry.decisions
    ticks_before, orders_before = len(feed.lags_ns), telemetry.order_events
    venue0, market0 = exchange.inside_ns, market.inside_ns
    cpu0, wall0 = time.process_time(), time.perf_counter()
    await asyncio.sleep(seconds)
    cpu1, wall1 = time.process_time(), time.perf_counter()
    venue_s, market_s = (exchange.inside_ns - venue0) / 1e9, (market.inside_ns - market0) / 1e9
    lags = telemetry.lags_ns[lags_before:]
    feed_lags = feed.lags_ns[ticks_before:]
    decisions = telemetry.decisions - decisions_before
    order_events = telemetry.order_events - orders_before
    stop.set()
    await asyncio.wait_for(task, timeout=30)
    wall_s = wall1 - wall0
    cpu_share = (cpu1 - cpu0) / wall_s
    quarters = _quarters(feed_lags)
    expected = symbols * ticks_per_s * wall_s
    grew = bool(quarters) and quarters[-1] - quarters[0] > BACKLOG_GROWTH_S * 1e3
    conflation = latency_summary_us(lags)
    feed_summary = latency_summary_us(feed_lags)
    return {
        "symbols": symbols,
        "ticks_per_s_per_symbol": ticks_per_s,
        "seconds": wall_s,
        "cpu_share_of_one_core": cpu_share,
        "share_in_paper_exchange": venue_s / wall_s,
        "share_in_market_generator": market_s / wall_s,
        "cpu_share_without_paper_venue": max(0.0, cpu_share - (venue_s + market_s) / wall_s),
        "target_cpu_share": DESIGN_CPU_SHARE,
        "meets_target": cpu_share < DESIGN_CPU_SHARE and not grew,
        "ticks_expected": round(expected),
        "ticks_delivered": len(feed_lags),
        "decisions": decisions,
        "decisions_on_new_ticks": len(lags),
        "conflated_ticks": max(0, len(feed_lags) - len(lags)),
        "conflation_lag_p50_ms": conflation["p50_us"] / 1e3,
        "conflation_lag_p99_ms": conflation["p99_us"] / 1e3,
        "conflation_lag_max_ms": conflation["max_us"] / 1e3,
        "feed_lag_p99_ms": feed_summary["p99_us"] / 1e3,
        "feed_lag_max_ms": feed_summary["max_us"] / 1e3,
        "feed_lag_mean_by_quarter_ms": quarters,
        "backlog_grew": grew,
        "order_events": order_events,
        "errors": telemetry.errors[:10],
    }


def run(
    seconds: float = DEFAULT_SECONDS, symbols: int = SYMBOLS, ticks_per_s: float = TICKS_PER_S
) -> dict[str, Any]:
    with quiet_logging():
        return asyncio.run(_run(symbols, ticks_per_s, seconds))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=DEFAULT_SECONDS)
    parser.add_argument("--symbols", type=int, default=SYMBOLS)
    parser.add_argument("--ticks-per-s", type=float, default=TICKS_PER_S)
    args = parser.parse_args(argv)
    print(json.dumps(run(args.seconds, args.symbols, args.ticks_per_s), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
