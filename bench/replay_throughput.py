"""Benchmark 2: replay throughput of the full loop on recorded 2021 bars, and its peak RSS.

The loop is the engine with the risk layer and the paper exchange, orders and fills included:
for each tick of ``replay_snapshots`` (BitMEX XBTUSD 1-minute bars of 2021, four ticks a bar,
no funding file: the 2021 funding is not in the shared data, so the rate is 0), the driver sets a
``ManualClock`` to the tick, lets the paper exchange take it (``on_market``, as
``PaperVenue.stream`` does), hands it to the feed reader's ``Engine.accept`` and awaits
``Engine.step``. Configuration: ``scaler.app.engine_config`` on default ``Settings`` with the
order-rate cap lifted (it counts wall-clock seconds); journal: in memory; telemetry:
the daemon's ``Observer`` (Prometheus metrics, structlog at warning). When the daily loss limit
halts trading the driver resumes at once, as an operator would, so the whole year trades.

Each size runs in a fresh interpreter (``--child``, started through a small helper process, see
:data:`SPAWN_HELPER`) so that its ``ru_maxrss`` is its own; a ``--months 0`` child measures the
interpreter with everything imported and wired, but no tick.

    .venv/bin/python -m bench.replay_throughput --months 1 3 12
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.common import (
    DATA_ENV,
    DESIGN_REPLAY_TICKS_PER_S,
    DESIGN_RSS_MB,
    UNLIMITED_ORDERS_PER_S,
    YEAR_2021,
    CountingTelemetry,
    IdleFeed,
    bench_engine_config,
    default_settings,
    feed_reader_accept,
    instrument_spec,
    memory_journal,
    paper_exchange,
    quiet_logging,
    shared_data_dir,
)
from scaler.adapters.paper.replay import ReplayParams, ReplayStats, replay_snapshots
from scaler.clock import ManualClock
from scaler.domain.types import NS_PER_S, InstrumentKey, MarketSnapshot
from scaler.errors import BadInputError
from scaler.observability.metrics import Metrics
from scaler.observability.telemetry import Observer
from scaler.ports import Telemetry
from scaler.service.engine import Engine

DEFAULT_MONTHS = (1, 3)
FULL_YEAR = 12
CHILD_TIMEOUT_S = 3_600


def year_file() -> Path:
    return shared_data_dir() / YEAR_2021


def cutoff_ns(months: int) -> int:
    """The start of month ``months + 1`` of 2021 (months = 12 is 2022-01-01)."""
    year, month = 2021 + months // 12, months % 12 + 1
    return int(datetime(year, month, 1, tzinfo=UTC).timestamp()) * NS_PER_S


SPAWN_HELPER = "import subprocess, sys; sys.exit(subprocess.run(sys.argv[1:]).returncode)"
"""Run by ``python -S -c``: starts the child from a 10 MB process. Linux carries the peak RSS
of the process that calls ``execve`` into the new program's ``ru_maxrss``, so a child spawned
straight from the suite (100+ MB after benchmark 1) would report the suite's peak, not its own."""


def peak_rss_mb() -> float:
    """``ru_maxrss`` of this process (kilobytes on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def vm_hwm_mb() -> float | None:
    """The kernel's peak RSS of this address space (``VmHWM``), a cross-check of ``ru_maxrss``."""
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024.0
    return None


class ReplayLoop:
    """The engine, its paper exchange and the counters of one replay."""

    def __init__(self, telemetry_kind: str) -> None:
        settings = default_settings()
        config = bench_engine_config(settings, max_orders_per_s=UNLIMITED_ORDERS_PER_S)
        self.key = InstrumentKey("paper", settings.instrument.symbol)
        telemetry: Telemetry = (
            Observer(Metrics()) if telemetry_kind == "metrics" else CountingTelemetry()
        )
        self.telemetry_kind = telemetry_kind
        self.clock = ManualClock(cutoff_ns(0))
        self.exchange = paper_exchange(settings, [self.key])
        journal, self.journal_name = memory_journal()
        spec = instrument_spec(settings, self.key)
        self.engine = Engine(
            [spec], config, self.clock, self.exchange, IdleFeed(), journal, telemetry
        )
        self.source_ns = self.venue_ns = self.engine_ns = 0
        self.ticks = self.refused = self.resumes = 0
        self.states: Counter[str] = Counter()

    async def run(self, source: Iterator[MarketSnapshot], end_ns: int, limit: int) -> float:
        """Drive every tick before ``end_ns`` (at most ``limit``); the wall seconds taken."""
        engine, clock, runtime = self.engine, self.clock, self.engine.runtimes[self.key]
        await engine.executor.reconcile([self.key])
        accept, step, on_market = feed_reader_accept(engine), engine.step, self.exchange.on_market
        now = time.perf_counter_ns
        wall_start = now()
        while self.ticks < limit:
            t0 = now()
            snap = next(source, None)
            t1 = now()
            self.source_ns += t1 - t0
            if snap is None or snap.ts_event_ns >= end_ns:
                break
            clock.set(snap.ts_event_ns)
            try:
                on_market(snap)
            except BadInputError:
                self.refused += 1
                continue
            t2 = now()
            accept(snap)
            record = await step(runtime)
            t3 = now()
            self.venue_ns += t2 - t1
            self.engine_ns += t3 - t2
            self.ticks += 1
            self.states[record.trading_state.value] += 1
            if runtime.risk.halted:
                engine.resume()
                self.resumes += 1
        return (now() - wall_start) / 1e9

    def summary(self, wall_s: float) -> dict[str, Any]:
        counters = self.exchange.counters()
        orders = sum(counters.orders_by_status.values())
        ticks = self.ticks

        def share(part_ns: int) -> float:
            return part_ns / 1e9 / wall_s if wall_s > 0 else 0.0

        return {
            "ticks": ticks,
            "wall_s": wall_s,
            "ticks_per_s": ticks / wall_s if wall_s > 0 and ticks else 0.0,
            "engine_ticks_per_s": ticks / (self.engine_ns / 1e9) if self.engine_ns else 0.0,
            "share_source": share(self.source_ns),
            "share_venue": share(self.venue_ns),
            "share_engine": share(self.engine_ns),
            "orders": orders,
            "orders_per_tick": orders / ticks if ticks else 0.0,
            "fills": counters.fills,
            "liquidations": counters.liquidations,
            "equity_coin_end": self.exchange.equity_coin(),
            "states": dict(self.states),
            "operator_resumes": self.resumes,
            "refused_by_venue": self.refused,
            "telemetry": self.telemetry_kind,
            "journal": self.journal_name,
        }


async def _replay(
    months: int, bars: Path, telemetry_kind: str, max_ticks: int | None
) -> dict[str, Any]:
    loop = ReplayLoop(telemetry_kind)
    stats = ReplayStats()
    rss_start_mb = peak_rss_mb()
    wall_s = 0.0
    if months > 0:
        source = replay_snapshots(loop.key, bars, None, ReplayParams(), stats)
        limit = max_ticks if max_ticks is not None else sys.maxsize
        try:
            wall_s = await loop.run(source, cutoff_ns(months), limit)
        finally:
            source.close()
    return {
        "months": months,
        **loop.summary(wall_s),
        "bad_rows": stats.rows_skipped,
        "peak_rss_mb_before_ticks": rss_start_mb,
        "peak_rss_mb": peak_rss_mb(),
        "vm_hwm_mb": vm_hwm_mb(),
        "target_ticks_per_s": DESIGN_REPLAY_TICKS_PER_S,
        "target_rss_mb": DESIGN_RSS_MB,
    }


def replay_in_process(
    months: int,
    bars: Path | None = None,
    *,
    telemetry: str = "metrics",
    max_ticks: int | None = None,
) -> dict[str, Any]:
    """Replay ``months`` months of 2021 in this process (RSS is then this process's)."""
    with quiet_logging():
        return asyncio.run(_replay(months, bars or year_file(), telemetry, max_ticks))


def replay_in_child(
    months: int, *, telemetry: str = "metrics", max_ticks: int | None = None
) -> dict[str, Any]:
    """The same in a fresh interpreter, so that its peak RSS is its own."""
    command = [
        sys.executable,
        "-S",
        "-c",
        SPAWN_HELPER,
        sys.executable,
        "-m",
        "bench.replay_throughput",
        "--child",
        "--months",
        str(months),
        "--telemetry",
        telemetry,
    ]
    if max_ticks is not None:
        command += ["--max-ticks", str(max_ticks)]
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run(  # noqa: PLW1510 - the return code is checked below
        command, cwd=root, capture_output=True, text=True, timeout=CHILD_TIMEOUT_S
    )
    if done.returncode != 0:
        raise RuntimeError(f"replay child failed ({done.returncode}): {done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def run(
    months: tuple[int, ...] = DEFAULT_MONTHS,
    *,
    telemetry: str = "metrics",
    max_ticks: int | None = None,
) -> dict[str, Any]:
    """Baseline plus one child per size; a skip record when the data is absent."""
    bars = year_file()
    if not bars.is_file():
        return {"skipped": f"no 2021 bars at {bars} (set {DATA_ENV} to the shared data folder)"}
    sizes = [replay_in_child(0, telemetry=telemetry)]
    sizes += [replay_in_child(m, telemetry=telemetry, max_ticks=max_ticks) for m in months]
    return {"file": str(bars), "sizes": sizes}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--months", type=int, nargs="+", default=list(DEFAULT_MONTHS))
    parser.add_argument("--telemetry", choices=("metrics", "none"), default="metrics")
    parser.add_argument("--max-ticks", type=int, default=None)
    parser.add_argument(
        "--child", action="store_true", help="run one size in this process, print one JSON line"
    )
    parser.add_argument(
        "--in-process", action="store_true", help="run every size here (for profiling)"
    )
    args = parser.parse_args(argv)
    if args.child or args.in_process:
        for months in args.months:
            result = replay_in_process(months, telemetry=args.telemetry, max_ticks=args.max_ticks)
            print(json.dumps(result))
        return 0
    print(json.dumps(run(tuple(args.months), telemetry=args.telemetry), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
