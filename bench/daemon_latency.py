"""Tick-to-decision latency of a running ``scaler run`` on the synthetic feed, from its histogram.

Starts the daemon in a temporary directory on free loopback ports, lets it trade for
``--seconds``, scrapes ``/metrics`` and reports p50/p90/p99 of
``scaler_tick_to_decision_seconds`` interpolated within buckets, the way PromQL's
``histogram_quantile`` does. Prints a table and writes JSON.

    .venv/bin/python bench/daemon_latency.py --seconds 60 --json bench/results/daemon_latency.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

METRIC = "scaler_tick_to_decision_seconds"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return response.read().decode()


def buckets(text: str, metric: str = METRIC) -> tuple[list[tuple[float, float]], float, float]:
    """Cumulative (upper bound, count) pairs, the count and the sum of histogram ``metric``."""
    pairs: list[tuple[float, float]] = []
    count = total = 0.0
    for family in text_string_to_metric_families(text):
        if family.name != metric:
            continue
        for sample in family.samples:
            if sample.name.endswith("_bucket"):
                pairs.append((float(sample.labels["le"]), sample.value))
            elif sample.name.endswith("_count"):
                count = sample.value
            elif sample.name.endswith("_sum"):
                total = sample.value
    return sorted(pairs), count, total


def quantile(q: float, pairs: list[tuple[float, float]]) -> float:
    """Linear interpolation inside the bucket holding rank q, as histogram_quantile does."""
    total = pairs[-1][1]
    rank = q * total
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in pairs:
        if count >= rank:
            if bound == float("inf"):
                return lower_bound
            width = count - lower_count
            fraction = (rank - lower_count) / width if width else 0.0
            return lower_bound + (bound - lower_bound) * fraction
        lower_bound, lower_count = bound, count
    return lower_bound


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--tick-interval-s", type=float, default=0.25)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    api_port, metrics_port = free_port(), free_port()
    env = os.environ | {
        "SCALER_API__PORT": str(api_port),
        "SCALER_METRICS__PORT": str(metrics_port),
        "SCALER_PAPER__TICK_INTERVAL_S": str(args.tick_interval_s),
        "SCALER_LOG__LEVEL": "warning",
    }
    with tempfile.TemporaryDirectory() as workdir:
        daemon = subprocess.Popen(
            [sys.executable, "-m", "scaler.cli", "run"],
            cwd=workdir,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            time.sleep(args.seconds)
            text = scrape(metrics_port)
        finally:
            daemon.send_signal(signal.SIGTERM)
            daemon.wait(timeout=30)
    pairs, count, total = buckets(text)
    result = {
        "metric": METRIC,
        "seconds": args.seconds,
        "tick_interval_s": args.tick_interval_s,
        "decisions": count,
        "mean_us": total / count * 1e6 if count else None,
        "p50_us": quantile(0.50, pairs) * 1e6,
        "p90_us": quantile(0.90, pairs) * 1e6,
        "p99_us": quantile(0.99, pairs) * 1e6,
        "machine": (
            f"{platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}"
        ),
    }
    print(f"{'decisions':>10} {'mean us':>9} {'p50 us':>8} {'p90 us':>8} {'p99 us':>8}")
    print(
        f"{count:>10.0f} {result['mean_us'] or 0:>9.1f} {result['p50_us']:>8.1f}"
        f" {result['p90_us']:>8.1f} {result['p99_us']:>8.1f}"
    )
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
