"""Benchmark 1: decision latency in process, tick in -> decision out, timed tick by tick.

Two figures, both on the seeded synthetic market of ``scaler run`` (``synthetic_snapshots``,
default ``SyntheticParams`` at the default 0.25 s tick) and ``scaler.app.engine_config`` on
default ``Settings``:

- **decision path**: what the engine computes per tick, without the shell around it:
  ``validate_market`` (the feed reader), funding ``observe`` + ``report``, ``compute_target``,
  ``risk.evaluate``. The account the risk layer sees is simulated outside the timed region: the
  position jumps to each allowed target at the mark (an instant fill), equity is the wallet plus
  the inverse unrealised PnL, maintenance margin from the instrument's schedule, stamped now.
- **engine step**: the engine's own per-tick work on a :class:`PaperExchange`: the feed
  reader's ``Engine.accept`` (validate + conflate; ``_accept`` before it was public) and
  ``await Engine.step`` (account fetch, decision, record, telemetry, order planning, journaled
  orders with fills at the paper venue, fill journaling, state flush), on a ``ManualClock`` set
  to each tick. The venue's own
  ``on_market`` (funding settlement, resting-order matching, liquidation) runs before, untimed,
  as ``PaperVenue.stream`` runs it before the engine sees the tick; its mean is reported apart.

Each sample is one ``perf_counter_ns`` difference, so it includes one timer call (reported as
``timer_overhead_ns``). The garbage collector stays on: its pauses show in the max. Whenever
the daily loss limit halts trading, the driver resumes at once (an operator), outside the timed
region, so that the whole run exercises the trading path; the count is reported.

    .venv/bin/python -m bench.decision --ticks 1000000 --step-ticks 200000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from array import array
from collections import Counter
from collections.abc import Iterator
from typing import Any

from bench.common import (
    DESIGN_P99_US,
    UNLIMITED_ORDERS_PER_S,
    CountingTelemetry,
    IdleFeed,
    bench_engine_config,
    default_settings,
    feed_reader_accept,
    instrument_spec,
    latency_summary_us,
    memory_journal,
    paper_exchange,
    quiet_logging,
    timer_overhead_ns,
)
from scaler.adapters.paper.exchange import PaperExchange
from scaler.adapters.paper.feeds import SyntheticParams, synthetic_snapshots
from scaler.app import margin_schedule
from scaler.clock import ManualClock
from scaler.config import Settings
from scaler.domain import funding as funding_model
from scaler.domain import risk as risk_model
from scaler.domain import sizing as sizing_model
from scaler.domain.inverse import schedule_maintenance_margin_coin
from scaler.domain.types import NS_PER_S, AccountSnapshot, InstrumentKey, MarketSnapshot
from scaler.domain.validation import validate_market
from scaler.observability.metrics import Metrics
from scaler.observability.telemetry import Observer
from scaler.ports import Telemetry
from scaler.service.engine import Engine

START_NS = 1_700_000_000 * NS_PER_S
DEFAULT_TICKS = 1_000_000
DEFAULT_STEP_TICKS = 200_000
SEED = 7


def market(settings: Settings, key: InstrumentKey, seed: int = SEED) -> Iterator[MarketSnapshot]:
    """The synthetic market ``scaler run`` trades by default."""
    params = SyntheticParams(
        start_price=settings.paper.start_price,
        tick_interval_s=settings.paper.tick_interval_s,
        funding_interval_s=settings.instrument.funding_interval_s,
    )
    return synthetic_snapshots(key, seed, params, START_NS)


class SimulatedAccount:
    """A wallet whose position jumps to each allowed target at the mark (an instant fill)."""

    def __init__(self, settings: Settings) -> None:
        self.balance_coin = settings.paper.initial_balance_coin
        self.position_usd = 0.0
        self.entry_price: float | None = None
        self.schedule = margin_schedule(settings)

    def snapshot(self, mark: float, ts_ns: int) -> AccountSnapshot:
        size, entry = self.position_usd, self.entry_price
        upnl = size * (1.0 / entry - 1.0 / mark) if size and entry else 0.0
        return AccountSnapshot(
            ts_ns=ts_ns,
            wallet_balance_coin=self.balance_coin,
            unrealised_pnl_coin=upnl,
            position_usd=size,
            entry_price=entry,
            maintenance_margin_coin=schedule_maintenance_margin_coin(self.schedule, size, mark),
        )

    def fill(self, target_usd: float, mark: float) -> None:
        """Move to ``target_usd``: realise PnL on the reduced part, harmonic entry on adds."""
        size, entry = self.position_usd, self.entry_price
        if target_usd == size:
            return
        if size and entry and (target_usd * size <= 0 or abs(target_usd) < abs(size)):
            closed = size if target_usd * size <= 0 else size - target_usd
            self.balance_coin += closed * (1.0 / entry - 1.0 / mark)
            size -= closed
            entry = entry if size else None
        added = target_usd - size
        if added:
            coin = (abs(size) / entry if size and entry else 0.0) + abs(added) / mark
            entry = (abs(size) + abs(added)) / coin
        self.position_usd, self.entry_price = target_usd, entry


class DecisionPath:
    """The engine's per-tick decision, without the shell: the state it threads between ticks.

    :meth:`decide` is what ``Engine.accept`` and ``Engine.step`` compute for one tick, in the
    same order, with the same configuration objects.
    """

    def __init__(self, settings: Settings, key: InstrumentKey) -> None:
        config = bench_engine_config(settings)
        spec = instrument_spec(settings, key)
        self.sizing, self.funding, self.risk = config.sizing, config.funding, config.risk
        self.vol_half_life_s = config.vol_half_life_s
        self.schedule, self.lot = spec.schedule, spec.lot_size_usd
        self.funding_state = funding_model.FundingPredictorState.initial()
        self.risk_state = risk_model.RiskState.initial()
        self.vol_state = sizing_model.VolatilityState.initial()
        self.previous: MarketSnapshot | None = None
        self.ts_funding_seen: int | None = None

    def decide(
        self, snap: MarketSnapshot, account: AccountSnapshot
    ) -> risk_model.RiskDecision | None:
        """One tick in, one decision out; ``None`` when validation rejects the tick."""
        limits = self.risk
        if (
            validate_market(
                snap,
                self.previous,
                limits.max_abs_funding_rate,
                max_mark_index_ratio=limits.max_mark_index_ratio,
                max_mark_move_ratio=limits.max_mark_move_ratio,
                mark_move_window_s=limits.mark_move_window_s,
            )
            is not None
        ):
            return None
        self.previous = snap
        now_ns = snap.ts_recv_ns
        if snap.ts_funding_ns != self.ts_funding_seen:
            self.funding_state = funding_model.observe(
                self.funding_state,
                snap.funding_rate,
                snap.funding_interval_s,
                snap.ts_funding_ns,
                self.funding,
                venue_predicted_rate=snap.predicted_funding_rate,
            )
            self.ts_funding_seen = snap.ts_funding_ns
        prediction = funding_model.report(self.funding_state, self.funding, now_ns)
        if self.sizing.target_vol_annual is not None:
            self.vol_state = sizing_model.update_volatility(
                self.vol_state, snap.mark_price, snap.ts_event_ns, self.vol_half_life_s
            )
        sizing = sizing_model.compute_target(
            account.equity_coin, snap.mark_price, prediction.rate, self.sizing, self.vol_state
        )
        inputs = risk_model.RiskInputs(
            sizing.target_usd,
            account.position_usd,
            snap,
            account,
            now_ns,
            self.schedule,
            self.lot,
        )
        decision = risk_model.evaluate(inputs, self.risk_state, self.risk)
        self.risk_state = decision.state
        return decision


def block_p99s_us(samples: array[int], blocks: int = 5) -> list[float]:
    """p99 of each consecutive block of samples: the spread shows how noisy the machine was."""
    size = len(samples) // blocks
    if size == 0:
        return []
    return [latency_summary_us(samples[i * size : (i + 1) * size])["p99_us"] for i in range(blocks)]


def decision_path(ticks: int, seed: int = SEED) -> dict[str, Any]:
    """Time the pure per-tick decision path over ``ticks`` synthetic ticks."""
    settings = default_settings()
    key = InstrumentKey("paper", settings.instrument.symbol)
    path = DecisionPath(settings, key)
    source = market(settings, key, seed)
    account = SimulatedAccount(settings)
    now = time.perf_counter_ns
    samples = array("q", bytes(8 * ticks))
    states: Counter[str] = Counter()
    resumes = rejected = 0
    wall_start = now()
    for i in range(ticks):
        snap = next(source)
        acct = account.snapshot(snap.mark_price, snap.ts_recv_ns)
        t0 = now()
        decision = path.decide(snap, acct)
        t1 = now()
        samples[i] = t1 - t0
        # ---- untimed: the world answers
        if decision is None:
            rejected += 1
            continue
        states[decision.trading_state.value] += 1
        if decision.may_send_orders:
            account.fill(decision.allowed_target_usd, snap.mark_price)
        if path.risk_state.halted:
            path.risk_state = risk_model.resume(path.risk_state)
            resumes += 1
    wall_s = (now() - wall_start) / 1e9
    summary = latency_summary_us(samples)
    return {
        "name": "decision path",
        "ticks": ticks,
        "seed": seed,
        **summary,
        "p99_by_block_us": block_p99s_us(samples),
        "target_p99_us": DESIGN_P99_US,
        "meets_target": summary["p99_us"] <= DESIGN_P99_US,
        "states": dict(states),
        "rejected_ticks": rejected,
        "operator_resumes": resumes,
        "final_position_usd": account.position_usd,
        "wall_s_including_tick_generation": wall_s,
    }


def _engine(
    settings: Settings, telemetry: Telemetry
) -> tuple[Engine, PaperExchange, Any, ManualClock]:
    config = bench_engine_config(settings, max_orders_per_s=UNLIMITED_ORDERS_PER_S)
    key = InstrumentKey("paper", settings.instrument.symbol)
    clock = ManualClock(START_NS)
    exchange = paper_exchange(settings, [key])
    journal, _ = memory_journal()
    spec = instrument_spec(settings, key)
    engine = Engine([spec], config, clock, exchange, IdleFeed(), journal, telemetry)
    return engine, exchange, journal, clock


async def _drive_steps(ticks: int, seed: int, telemetry_kind: str) -> dict[str, Any]:
    settings = default_settings()
    telemetry: Telemetry = (
        Observer(Metrics()) if telemetry_kind == "metrics" else CountingTelemetry()
    )
    engine, exchange, journal, clock = _engine(settings, telemetry)
    key = InstrumentKey("paper", settings.instrument.symbol)
    runtime = engine.runtimes[key]
    await engine.executor.reconcile([key])
    source = market(settings, key, seed)
    now = time.perf_counter_ns
    samples = array("q", bytes(8 * ticks))
    order_ticks = array("q")
    venue_ns = 0
    resumes = 0
    states: Counter[str] = Counter()
    accept, step = feed_reader_accept(engine), engine.step
    for i in range(ticks):
        snap = next(source)
        clock.set(snap.ts_event_ns)
        v0 = now()
        exchange.on_market(snap)
        v1 = now()
        venue_ns += v1 - v0
        intents_before = journal.intents_recorded
        t0 = now()
        accept(snap)
        record = await step(runtime)
        t1 = now()
        samples[i] = t1 - t0
        states[record.trading_state.value] += 1
        if journal.intents_recorded != intents_before:
            order_ticks.append(t1 - t0)
        if runtime.risk.halted:
            engine.resume()
            resumes += 1
    counters = exchange.counters()
    summary = latency_summary_us(samples)
    return {
        "name": f"engine step ({telemetry_kind})",
        "ticks": ticks,
        "seed": seed,
        **summary,
        "p99_by_block_us": block_p99s_us(samples),
        "target_p99_us": DESIGN_P99_US,
        "meets_target": summary["p99_us"] <= DESIGN_P99_US,
        "ticks_with_orders": len(order_ticks),
        "ticks_with_orders_p99_us": latency_summary_us(order_ticks)["p99_us"],
        "orders": sum(counters.orders_by_status.values()),
        "fills": counters.fills,
        "liquidations": counters.liquidations,
        "states": dict(states),
        "operator_resumes": resumes,
        "venue_on_market_mean_us": venue_ns / ticks / 1e3,
        "telemetry": telemetry_kind,
        "journal": memory_journal()[1],
    }


def engine_step(ticks: int, seed: int = SEED, telemetry: str = "metrics") -> dict[str, Any]:
    """Time ``Engine.accept`` + ``Engine.step`` per tick on a paper exchange.

    ``telemetry``: ``"metrics"`` is the daemon's ``Observer`` (Prometheus metrics, structlog
    at warning); ``"none"`` counts calls only.
    """
    with quiet_logging():
        return asyncio.run(_drive_steps(ticks, seed, telemetry))


def run(ticks: int, step_ticks: int, seed: int = SEED) -> dict[str, Any]:
    return {
        "timer_overhead_ns": timer_overhead_ns(),
        "decision_path": decision_path(ticks, seed),
        "engine_step": engine_step(step_ticks, seed, "metrics"),
        "engine_step_no_telemetry": engine_step(step_ticks, seed, "none"),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ticks", type=int, default=DEFAULT_TICKS)
    parser.add_argument("--step-ticks", type=int, default=DEFAULT_STEP_TICKS)
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument(
        "--only", choices=("path", "step"), default=None, help="run one of the two (profiling)"
    )
    args = parser.parse_args(argv)
    if args.only == "path":
        result: dict[str, Any] = decision_path(args.ticks, args.seed)
    elif args.only == "step":
        result = engine_step(args.step_ticks, args.seed)
    else:
        result = run(args.ticks, args.step_ticks, args.seed)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
