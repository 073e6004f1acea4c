"""Run the benchmark suite, print one table and write the figures as JSON.

    .venv/bin/python -m bench                  # default sizes (about 5 minutes on 2 cores)
    .venv/bin/python -m bench --quick          # smoke run: small sizes, about 15 s
    .venv/bin/python -m bench --full-year      # adds the 12-month replay (about 4 more minutes)
    .venv/bin/python -m bench --only decision replay --out bench/results/mine.json

Benchmarks (DESIGN.md section 9): 1. decision latency (decision path over 1M ticks, engine
step over 200k); 2. replay throughput and peak RSS on the 2021 bars (1 and 3 months, 12 with
``--full-year``), each size in a fresh interpreter; 3. 50 symbols at 20 ticks/s for 60 s in
wall time; 4. ccxt loopback (not available until the ccxt venue lands).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import decision, multi_symbol, replay_throughput
from bench.common import (
    DESIGN_CPU_SHARE,
    DESIGN_P99_US,
    DESIGN_REPLAY_TICKS_PER_S,
    DESIGN_RSS_MB,
    machine,
    source_revision,
    timer_overhead_ns,
)

RESULTS = Path(__file__).resolve().parent / "results"
BENCHMARKS = ("decision", "replay", "multi", "ccxt")
CCXT_NA = "n/a (needs the ccxt venue)"
FASTEST_PEER_TICKS_PER_S = 429_000.0
"""hummingbot in DESIGN.md section 9, the fastest peer measured on this machine class."""

Row = tuple[str, str, str, str]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description=__doc__.splitlines()[0] if __doc__ else None
    )
    parser.add_argument("--quick", action="store_true", help="short smoke run (small sizes)")
    parser.add_argument("--full-year", action="store_true", help="also replay all of 2021")
    parser.add_argument("--out", type=Path, default=None, help="JSON file to write")
    parser.add_argument("--only", nargs="+", choices=BENCHMARKS, default=list(BENCHMARKS))
    parser.add_argument("--ticks", type=int, default=None, help="decision-path ticks")
    parser.add_argument("--step-ticks", type=int, default=None, help="engine-step ticks")
    parser.add_argument("--months", type=int, nargs="+", default=None, help="replay sizes")
    parser.add_argument("--max-ticks", type=int, default=None, help="cap per replay size")
    parser.add_argument("--seconds", type=float, default=None, help="50-symbol run length")
    parser.add_argument("--symbols", type=int, default=multi_symbol.SYMBOLS)
    return parser.parse_args(argv)


def sizes(args: argparse.Namespace) -> dict[str, Any]:
    """The sizes to run: the defaults, ``--quick`` ones, then explicit overrides."""
    quick = args.quick
    months = list(replay_throughput.DEFAULT_MONTHS if not quick else (1,))
    if args.full_year and replay_throughput.FULL_YEAR not in months:
        months.append(replay_throughput.FULL_YEAR)
    return {
        "ticks": args.ticks or (50_000 if quick else decision.DEFAULT_TICKS),
        "step_ticks": args.step_ticks or (10_000 if quick else decision.DEFAULT_STEP_TICKS),
        "months": tuple(args.months or months),
        "max_ticks": args.max_ticks or (20_000 if quick else None),
        "seconds": args.seconds
        or (multi_symbol.QUICK_SECONDS if quick else multi_symbol.DEFAULT_SECONDS),
        "symbols": args.symbols,
    }


def run_suite(args: argparse.Namespace) -> dict[str, Any]:
    plan = sizes(args)
    results: dict[str, Any] = {
        "started_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "source": source_revision(),
        "quick": args.quick,
        "sizes": {k: list(v) if isinstance(v, tuple) else v for k, v in plan.items()},
        "timer_overhead_ns": timer_overhead_ns(),
    }
    if "decision" in args.only:
        _note("decision path", f"{plan['ticks']:,} ticks")
        results["decision_path"] = decision.decision_path(plan["ticks"])
        _note("engine step", f"{plan['step_ticks']:,} ticks, daemon telemetry and none")
        results["engine_step"] = decision.engine_step(plan["step_ticks"], telemetry="metrics")
        results["engine_step_no_telemetry"] = decision.engine_step(
            plan["step_ticks"], telemetry="none"
        )
    if "replay" in args.only:
        _note("replay", f"months {plan['months']}, one fresh interpreter each")
        results["replay"] = replay_throughput.run(plan["months"], max_ticks=plan["max_ticks"])
    if "multi" in args.only:
        _note("50 symbols", f"{plan['symbols']} symbols for {plan['seconds']:.0f} s wall")
        results["multi_symbol"] = multi_symbol.run(plan["seconds"], plan["symbols"])
    if "ccxt" in args.only:
        results["ccxt_loopback"] = {"skipped": CCXT_NA}
    results["load_average_1m_end"] = machine()["load_average_1m"]
    return results


def _note(name: str, detail: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {name}: {detail}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------ the table


def _us(value: float) -> str:
    return f"{value:,.1f} µs" if value < 1_000 else f"{value / 1e3:,.2f} ms"


def _ratio(value: float, target: float) -> str:
    return f"{value / target:.2f}x" if target else ""


def _short(value: float, target: float) -> str:
    """``1/86 of target``-style ratio for figures far below their target."""
    if value <= 0:
        return "n/a"
    return f"{value / target:.2f}x" if value >= target else f"1/{target / value:.0f} of"


def latency_rows(label: str, result: dict[str, Any]) -> list[Row]:
    target = f"p99 <= {DESIGN_P99_US:.0f} µs"
    return [
        (f"{label}: p50", _us(result["p50_us"]), "", ""),
        (f"{label}: p99", _us(result["p99_us"]), target, _ratio(result["p99_us"], DESIGN_P99_US)),
        (f"{label}: max", _us(result["max_us"]), "", ""),
    ]


def decision_rows(results: dict[str, Any]) -> list[Row]:
    rows: list[Row] = []
    path = results.get("decision_path")
    if path:
        rows += latency_rows(f"1. decision path ({path['ticks']:,} ticks)", path)
    step = results.get("engine_step")
    if step:
        rows += latency_rows(f"1. Engine.step, paper ({step['ticks']:,} ticks)", step)
        rows.append(
            (
                "1. Engine.step: p99 of ticks that sent an order",
                _us(step["ticks_with_orders_p99_us"]),
                "",
                f"{step['ticks_with_orders']:,} ticks",
            )
        )
    bare = results.get("engine_step_no_telemetry")
    if bare:
        rows.append(("1. Engine.step, no metrics/logs: p99", _us(bare["p99_us"]), "", ""))
    return rows


def replay_rows(results: dict[str, Any]) -> list[Row]:
    replay = results.get("replay")
    if not replay:
        return []
    if "skipped" in replay:
        return [("2. replay 2021", "skipped", replay["skipped"], "")]
    rows: list[Row] = []
    for size in replay["sizes"]:
        rss = f"{size['peak_rss_mb']:,.0f} MB"
        if size["months"] == 0:
            rows.append(("2. replay: interpreter + wiring, no tick", rss, "", "peak RSS"))
            continue
        label = f"2. replay {size['months']} month{'s' if size['months'] > 1 else ''}"
        rows.append(
            (
                f"{label} ({size['ticks']:,} ticks): ticks/s",
                f"{size['ticks_per_s']:,.0f}",
                f">= {DESIGN_REPLAY_TICKS_PER_S / 1e3:,.0f}k",
                (
                    f"{_short(size['ticks_per_s'], DESIGN_REPLAY_TICKS_PER_S)} target, "
                    f"{_short(size['ticks_per_s'], FASTEST_PEER_TICKS_PER_S)} hummingbot"
                ),
            )
        )
        rows.append(
            (
                f"{label}: peak RSS",
                rss,
                f"<= {DESIGN_RSS_MB:.0f} MB, flat",
                f"{size['orders']:,} orders ({size['orders_per_tick']:.1%} of ticks)",
            )
        )
    return rows


def multi_rows(results: dict[str, Any]) -> list[Row]:
    multi = results.get("multi_symbol")
    if not multi:
        return []
    label = f"3. {multi['symbols']} symbols x {multi['ticks_per_s_per_symbol']:.0f}/s"
    quarters = ", ".join(f"{q:.1f}" for q in multi["feed_lag_mean_by_quarter_ms"])
    return [
        (
            f"{label}, {multi['seconds']:.0f} s: CPU of one core",
            f"{multi['cpu_share_of_one_core']:.1%}",
            f"< {DESIGN_CPU_SHARE:.0%}",
            _ratio(multi["cpu_share_of_one_core"], DESIGN_CPU_SHARE),
        ),
        (
            f"{label}: CPU without the paper venue",
            f"{multi['cpu_share_without_paper_venue']:.1%}",
            f"< {DESIGN_CPU_SHARE:.0%}",
            (
                f"paper exchange {multi['share_in_paper_exchange']:.1%}, "
                f"market generator {multi['share_in_market_generator']:.1%}"
            ),
        ),
        (
            f"{label}: conflation lag p99 / max",
            f"{multi['conflation_lag_p99_ms']:.1f} / {multi['conflation_lag_max_ms']:.1f} ms",
            "",
            f"{multi['conflated_ticks']:,} ticks conflated",
        ),
        (
            f"{label}: backlog grew",
            "yes" if multi["backlog_grew"] else "no",
            "no",
            f"feed lag by quarter {quarters} ms",
        ),
    ]


def table(results: dict[str, Any]) -> str:
    rows: list[Row] = [("benchmark", "measured", "DESIGN target", "ratio / note")]
    rows += decision_rows(results) + replay_rows(results) + multi_rows(results)
    if "ccxt_loopback" in results:
        rows.append(("4. ccxt loopback tick -> order: p99", CCXT_NA, "p99 <= 2 ms", ""))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = [" | ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)) for row in rows]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(lines)


def describe(results: dict[str, Any]) -> str:
    info, source = results["machine"], results.get("source", {})
    dirty = " + uncommitted src/ changes" if source.get("src_changes") else ""
    return (
        f"commit {source.get('commit')}{dirty}; "
        f"{info['cpu']}, {info['cores']} cores, {info['implementation']} {info['python']}, "
        f"load average {info['load_average_1m']:.2f} at start, "
        f"{results['load_average_1m_end']:.2f} at end; "
        f"timer overhead {results['timer_overhead_ns']:.0f} ns per sample"
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    results = run_suite(args)
    out = args.out or RESULTS / f"bench-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(describe(results))
    print(table(results))
    print(f"figures written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
