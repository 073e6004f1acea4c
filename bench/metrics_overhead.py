"""What the Prometheus metrics cost per tick: the engine with and without ``Observer.decision``.

On the seeded synthetic market of ``scaler run`` and the daemon's default settings
(``scaler.app.engine_config``), on a :class:`PaperExchange` with an in-memory journal and a
``ManualClock`` set to each tick, three telemetry variants drive the same ticks through the
feed reader's ``accept`` and ``await Engine.step``:

- ``none``: a telemetry that does nothing (the baseline);
- ``metrics``: the daemon's ``Observer(Metrics())`` with structlog filtering at ``warning``, so
  the info events are dropped: the cost of the metrics alone;
- ``metrics+logs``: the same with JSON lines at ``info`` (the daemon's processors) written to
  ``/dev/null``, as ``scaler run`` logs: one event per decision that changed anything and per
  order event.

The three engines run in lockstep: each tick goes through all three in turn (the order rotating
from tick to tick), so the machine's background load falls on every variant alike. The venue's
own ``on_market`` runs before each step, untimed, as ``PaperVenue`` runs it. Of ``--repeats``
runs, the one with the lowest mean counts. A second figure times ``Observer.decision(record,
changed)`` alone over the records of one run, net of the same loop calling a no-op. Results in
ns per tick, and the engine step as a ratio to the baseline.

    .venv/bin/python bench/metrics_overhead.py --ticks 20000 --repeats 5
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import platform
import statistics
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field, replace
from itertools import islice
from typing import Any

import structlog

from scaler.adapters.paper.exchange import PaperExchange
from scaler.adapters.paper.feeds import SyntheticParams, synthetic_snapshots
from scaler.adapters.paper.instrument import PaperInstrument
from scaler.app import engine_config, margin_schedule
from scaler.clock import ManualClock
from scaler.config import Settings
from scaler.domain.orders import Fill, OrderRequest, OrderStatus, OrderUpdate
from scaler.domain.records import DecisionRecord
from scaler.domain.types import NS_PER_S, InstrumentKey, MarketSnapshot
from scaler.observability.logging import redact_secrets
from scaler.observability.metrics import Metrics
from scaler.observability.telemetry import Observer
from scaler.ports import Telemetry
from scaler.service.engine import Engine, InstrumentSpec

START_NS = 1_700_000_000 * NS_PER_S
SEED = 7
VARIANTS = ("none", "metrics", "metrics+logs")
TERMINAL = {OrderStatus.FILLED, OrderStatus.CANCELLED, OrderStatus.REJECTED}
DEVNULL = open(os.devnull, "w")  # noqa: SIM115 - the log sink, open for the process's life


@dataclass
class NullTelemetry:
    """A :class:`scaler.ports.Telemetry` that keeps the records and does nothing else."""

    records: list[tuple[DecisionRecord, bool]] = field(default_factory=list)
    keep: bool = False

    def decision(self, record: DecisionRecord, changed: bool) -> None:
        if self.keep:
            self.records.append((record, changed))

    def order_event(self, key: InstrumentKey, event: str, update: OrderUpdate | None) -> None:
        return None

    def order_round_trip(self, key: InstrumentKey, seconds: float) -> None:
        return None

    def bad_input(self, key: InstrumentKey | None, feed: str, reason: str) -> None:
        return None

    def error(self, kind: str, detail: str) -> None:
        return None

    def state_changed(self, key: InstrumentKey, previous: str, current: str, reasons: str) -> None:
        return None


@dataclass
class MemoryJournal:
    """A :class:`scaler.ports.Journal` in dictionaries: SQLite's fsync would measure the disk."""

    intents: dict[str, OrderRequest] = field(default_factory=dict)
    status: dict[str, OrderStatus] = field(default_factory=dict)
    states: dict[str, dict[str, Any]] = field(default_factory=dict)

    def record_intent(self, request: OrderRequest) -> None:
        self.intents[request.client_order_id] = request
        self.status.setdefault(request.client_order_id, OrderStatus.INTENDED)

    def record_update(self, update: OrderUpdate) -> None:
        if self.status.get(update.client_order_id) not in TERMINAL:
            self.status[update.client_order_id] = update.status

    def record_fill(self, fill: Fill) -> None:
        return None

    def unresolved_intents(self) -> list[OrderRequest]:
        return [r for cid, r in self.intents.items() if self.status.get(cid) not in TERMINAL]

    def order_status(self, client_order_id: str) -> OrderStatus | None:
        return self.status.get(client_order_id)

    def save_state(self, name: str, value: Mapping[str, Any]) -> None:
        self.states[name] = dict(value)

    def load_state(self, name: str) -> dict[str, Any] | None:
        saved = self.states.get(name)
        return None if saved is None else dict(saved)


class IdleFeed:
    """The engine's feed seam, unused: the benchmark pushes ticks through ``accept``."""

    async def stream(self) -> AsyncIterator[MarketSnapshot]:
        return
        yield  # an async generator that yields nothing

    async def close(self) -> None:
        return None


@dataclass
class Bench:
    """One engine with the venue and clock the driver advances."""

    engine: Engine
    exchange: PaperExchange
    clock: ManualClock
    accept: Callable[[MarketSnapshot], object]


def ticks(settings: Settings, key: InstrumentKey, count: int) -> list[MarketSnapshot]:
    params = SyntheticParams(
        start_price=settings.paper.start_price,
        tick_interval_s=settings.paper.tick_interval_s,
        funding_interval_s=settings.instrument.funding_interval_s,
    )
    return list(islice(synthetic_snapshots(key, SEED, params, START_NS), count))


def build(settings: Settings, key: InstrumentKey, telemetry: Telemetry) -> Bench:
    inst = settings.instrument
    exchange = PaperExchange(
        PaperInstrument(
            key,
            lot_size_usd=int(inst.lot_size_usd),
            tick_size=inst.tick_size,
            schedule=margin_schedule(settings),
            funding_interval_s=int(inst.funding_interval_s),
        ),
        initial_balance_coin=settings.paper.initial_balance_coin,
        taker_fee_rate=settings.paper.taker_fee_rate,
    )
    spec = InstrumentSpec(key, inst.lot_size_usd, inst.tick_size, margin_schedule(settings))
    # The executor's throttle counts wall seconds; the ticks run far ahead of the wall.
    config = replace(engine_config(settings), max_orders_per_s=1e9)
    clock = ManualClock(START_NS)
    engine = Engine([spec], config, clock, exchange, IdleFeed(), MemoryJournal(), telemetry)
    return Bench(engine, exchange, clock, accept_of(engine))


def accept_of(engine: Engine) -> Callable[[MarketSnapshot], object]:
    """``Engine.accept`` where the engine has made it public, else the feed reader's
    ``_accept``: the same code path either way."""
    return getattr(engine, "accept", None) or engine._accept


async def drive(bench: Bench, key: InstrumentKey, snapshots: list[MarketSnapshot]) -> None:
    """Run every tick through one engine, untimed (to collect its decision records)."""
    engine, accept, runtime = bench.engine, accept_of(bench.engine), bench.engine.runtimes[key]
    await engine.executor.reconcile([key])
    for snap in snapshots:
        bench.clock.set(snap.ts_event_ns)
        bench.exchange.on_market(snap)
        accept(snap)
        await engine.step(runtime)
        if runtime.risk.halted:
            engine.resume()


async def lockstep(
    benches: dict[str, Bench], key: InstrumentKey, snapshots: list[MarketSnapshot]
) -> dict[str, list[int]]:
    """Every tick through every engine in turn (the order rotating tick by tick), so that the
    machine's background load falls on all variants alike; ns per tick of each."""
    names = list(benches)
    samples: dict[str, list[int]] = {name: [] for name in names}
    for bench in benches.values():
        await bench.engine.executor.reconcile([key])
    now = time.perf_counter_ns
    for i, snap in enumerate(snapshots):
        shift = i % len(names)
        for name in names[shift:] + names[:shift]:
            bench = benches[name]
            engine, runtime = bench.engine, bench.engine.runtimes[key]
            bench.clock.set(snap.ts_event_ns)
            bench.exchange.on_market(snap)  # the venue's own work, untimed
            t0 = now()
            bench.accept(snap)
            await engine.step(runtime)
            samples[name].append(now() - t0)
            if runtime.risk.halted:  # an operator resumes at once, untimed, to keep trading
                engine.resume()
    return samples


def json_logger(level: int) -> Any:
    """A structlog logger with the daemon's processors, writing JSON lines to /dev/null."""
    return structlog.wrap_logger(
        structlog.PrintLogger(DEVNULL),
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            redact_secrets,
            structlog.processors.JSONRenderer(sort_keys=False),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
    )


def telemetry_for(variant: str) -> Telemetry:
    if variant == "none":
        return NullTelemetry()
    level = logging.WARNING if variant == "metrics" else logging.INFO
    return Observer(Metrics(), logger=json_logger(level))


def step_costs(snapshots: list[MarketSnapshot], repeats: int) -> dict[str, dict[str, float]]:
    """Mean and median ns per tick of each variant; the run with the lowest mean counts."""
    settings = Settings()
    key = snapshots[0].key
    best: dict[str, dict[str, float]] = {}
    for _ in range(repeats):
        benches = {v: build(settings, key, telemetry_for(v)) for v in VARIANTS}
        samples = asyncio.run(lockstep(benches, key, snapshots))
        for variant, values in samples.items():
            mean = statistics.fmean(values)
            if variant not in best or mean < best[variant]["mean_ns"]:
                best[variant] = {"mean_ns": mean, "median_ns": statistics.median(values)}
    return best


def decision_call_cost(snapshots: list[MarketSnapshot], repeats: int) -> dict[str, float]:
    """ns per ``Observer.decision`` call (metrics, logs filtered), net of a no-op call."""
    settings = Settings()
    key = snapshots[0].key
    keeper = NullTelemetry(keep=True)
    asyncio.run(drive(build(settings, key, keeper), key, snapshots))
    records = keeper.records
    observer = Observer(Metrics(), logger=json_logger(logging.WARNING))
    noop = NullTelemetry()
    now = time.perf_counter_ns
    timings: dict[str, int] = {}
    for _ in range(repeats):
        for name, call in (("observer", observer.decision), ("noop", noop.decision)):
            t0 = now()
            for record, changed in records:
                call(record, changed)
            elapsed = now() - t0
            timings[name] = min(timings.get(name, elapsed), elapsed)
    per_call = (timings["observer"] - timings["noop"]) / len(records)
    changed = sum(1 for _, c in records if c)
    return {"records": len(records), "changed": changed, "ns_per_call": per_call}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ticks", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args(argv)
    settings = Settings()
    snapshots = ticks(settings, InstrumentKey("paper", settings.instrument.symbol), args.ticks)
    steps = step_costs(snapshots, args.repeats)
    call = decision_call_cost(snapshots, args.repeats)
    base = steps["none"]["mean_ns"]
    result = {
        "machine": {
            "cpu_count": os.cpu_count(),
            "python": platform.python_version(),
            "load_average_1m": os.getloadavg()[0],
        },
        "ticks": args.ticks,
        "repeats": args.repeats,
        "step_ns_per_tick": steps,
        "metrics_ns_per_tick": steps["metrics"]["mean_ns"] - base,
        "metrics_ratio": steps["metrics"]["mean_ns"] / base,
        "metrics_and_logs_ns_per_tick": steps["metrics+logs"]["mean_ns"] - base,
        "metrics_and_logs_ratio": steps["metrics+logs"]["mean_ns"] / base,
        "observer_decision_call": call,
    }
    print(f"engine step per tick, {args.ticks} ticks, best of {args.repeats} lockstep runs")
    print(f"{'variant':<14}{'mean ns':>12}{'median ns':>12}{'mean vs none':>14}")
    for variant, cost in steps.items():
        mean, median = cost["mean_ns"], cost["median_ns"]
        print(f"{variant:<14}{mean:>12,.0f}{median:>12,.0f}{mean / base:>14.3f}")
    print(
        f"Observer.decision alone: {call['ns_per_call']:,.0f} ns per call "
        f"({call['records']} records, {call['changed']} changed)"
    )
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(result, handle, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
