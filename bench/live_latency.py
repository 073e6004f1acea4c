"""Live tick-to-order latency on loopback: exchange-sim websocket tick -> order request at the sim.

Starts ``scaler exchange-sim`` (its own market paused) and ``scaler run`` on venue deribit
through the unmodified ccxt client, both as real processes on 127.0.0.1. Once the daemon has
converged, it pushes ticks through the sim's admin API with the mark alternating by 1.2 %, so
that every tick moves the target past the dead band and asks for one order. The sim stamps the
time it pushed each ticker on the websocket and the time each order request arrived; the
latency of an order is the second minus the push of the tick it answers (the latest push
before it: ticks are ``--interval`` apart, far longer than the loop takes).

    .venv/bin/python bench/live_latency.py --ticks 300 --json bench/results/live_latency.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from bench.daemon_latency import buckets, free_port, quantile, scrape

KEY, SECRET = "bench-key", "bench-secret-5d7a9c3e1f"


def admin(port: int, path: str, body: dict[str, Any] | None = None) -> Any:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/admin/{path}",
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Authorization": f"Bearer {SECRET}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as reply:
        return json.loads(reply.read())


def wait_for(probe: Any, timeout_s: float, what: str) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            value = probe()
        except OSError:
            value = None
        if value:
            return value
        time.sleep(0.2)
    raise SystemExit(f"timed out waiting for {what}")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def breakdown(metrics: str) -> dict[str, float]:
    """The daemon's own view: tick-to-decision and order round trip, p50/p99 in ms."""
    out: dict[str, float] = {}
    for name, label in (
        ("scaler_tick_to_decision_seconds", "decision"),
        ("scaler_order_round_trip_seconds", "round_trip"),
    ):
        pairs, count, _ = buckets(metrics, name)
        if count:
            out[f"{label}_p50_ms"] = quantile(0.5, pairs) * 1e3
            out[f"{label}_p99_ms"] = quantile(0.99, pairs) * 1e3
    return out


def run(ticks: int, interval_s: float, workdir: Path) -> dict[str, Any]:
    sim_port, api_port, metrics_port = free_port(), free_port(), free_port()
    base = {k: v for k, v in os.environ.items() if not k.startswith("SCALER_")}
    sim_env = base | {
        "SCALER_SIM__PORT": str(sim_port),
        "SCALER_SIM__API_KEY": KEY,
        "SCALER_SIM__API_SECRET": SECRET,
        "SCALER_STATE_DIR": str(workdir / "sim"),
        "SCALER_LOG__LEVEL": "warning",
    }
    daemon_env = base | {
        "SCALER_VENUE": "deribit",
        "SCALER_EXCHANGE__URL": f"http://127.0.0.1:{sim_port}",
        "SCALER_EXCHANGE__API_KEY": KEY,
        "SCALER_EXCHANGE__API_SECRET": SECRET,
        "SCALER_STATE_DIR": str(workdir / "daemon"),
        "SCALER_API__PORT": str(api_port),
        "SCALER_METRICS__PORT": str(metrics_port),
        "SCALER_LOG__LEVEL": "warning",
        "SCALER_EXECUTION__MAX_ORDERS_PER_S": "50",
    }
    command = [sys.executable, "-m", "scaler.cli"]
    with (workdir / "sim.log").open("wb") as sim_log, (workdir / "daemon.log").open("wb") as log:
        sim = subprocess.Popen(
            [*command, "exchange-sim"], env=sim_env, stdout=sim_log, stderr=sim_log
        )
        try:
            wait_for(lambda: admin(sim_port, "healthz"), 30, "the sim")
            daemon = subprocess.Popen([*command, "run"], env=daemon_env, stdout=log, stderr=log)
            try:
                wait_for(lambda: admin(sim_port, "state")["counts"]["requests"] > 0, 60, "orders")
                time.sleep(3)  # the initial build-up is done
                admin(sim_port, "faults", {"paused": True})
                mark = admin(sim_port, "state")["market"][0]["mark_price"]
                first = admin(sim_port, "state")["counts"]["requests"]
                for step in range(ticks):
                    admin(
                        sim_port, "market", {"mark_price": mark * (1.012 if step % 2 == 0 else 1.0)}
                    )
                    time.sleep(interval_s)
                time.sleep(1)
                state = admin(sim_port, "state", None)
                metrics = scrape(metrics_port)
            finally:
                daemon.terminate()
                daemon.wait(timeout=30)
        finally:
            sim.terminate()
            sim.wait(timeout=30)
    requests = [r for r in state["requests"] if r["seq"] > first and r["ts_last_ticker_push_ns"]]
    # The first order after each push answers that tick; a later one in the same interval
    # (the rest of a partly filled slice, a re-quote after a cancel) answers something else.
    answered: dict[int, int] = {}
    for r in sorted(requests, key=lambda r: r["ts_recv_ns"]):
        answered.setdefault(r["ts_last_ticker_push_ns"], r["ts_recv_ns"])
    latencies_ms = [(recv - push) / 1e6 for push, recv in answered.items()]
    return {
        "ticks": ticks,
        "orders": len(requests),
        "answered_ticks": len(latencies_ms),
        "p50_ms": statistics.median(latencies_ms),
        "p90_ms": percentile(latencies_ms, 0.90),
        "p99_ms": percentile(latencies_ms, 0.99),
        "max_ms": max(latencies_ms),
        "daemon": breakdown(metrics),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ticks", type=int, default=300)
    parser.add_argument("--interval", type=float, default=0.3, help="seconds between ticks")
    parser.add_argument("--json", type=Path, help="also write the result here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="scaler-live-latency-") as tmp:
        result = run(args.ticks, args.interval, Path(tmp))
    print(
        f"tick -> order at exchange-sim, {result['answered_ticks']} of {result['ticks']} ticks "
        f"answered ({result['orders']} orders): "
        f"p50 {result['p50_ms']:.2f} ms  p90 {result['p90_ms']:.2f} ms  "
        f"p99 {result['p99_ms']:.2f} ms  max {result['max_ms']:.2f} ms\n"
        f"daemon histograms (ms): {json.dumps(result['daemon'])}"
    )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
