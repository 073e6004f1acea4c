"""The benchmark suite runs end to end at tiny sizes and reports every figure (never timings)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from bench import decision, multi_symbol, replay_throughput
from bench.run import CCXT_NA, main

pytestmark = pytest.mark.integration

LATENCY_KEYS = {"count", "p50_us", "p99_us", "max_us", "mean_us", "target_p99_us"}


def test_decision_path_when_timed_then_one_sample_per_tick() -> None:
    """The pure decision path yields a latency summary over every tick, all of them decided."""
    result = decision.decision_path(300)

    assert result.keys() >= LATENCY_KEYS
    assert result["count"] == 300
    assert sum(result["states"].values()) + result["rejected_ticks"] == 300
    assert 0 < result["p50_us"] <= result["p99_us"] <= result["max_us"]


def test_engine_step_when_timed_on_paper_then_orders_reach_the_venue() -> None:
    """Engine.step on the paper exchange trades: the first ticks open the sized position."""
    result = decision.engine_step(50, telemetry="metrics")

    assert result.keys() >= LATENCY_KEYS
    assert result["count"] == 50
    assert result["orders"] > 0
    assert result["fills"] > 0
    assert result["ticks_with_orders"] > 0


def test_replay_when_data_present_then_child_reports_ticks_and_rss() -> None:
    """One replay size runs in its own interpreter and reports throughput and peak RSS."""
    if not replay_throughput.year_file().is_file():
        pytest.skip(f"shared data absent: {replay_throughput.year_file()}")

    result = replay_throughput.replay_in_child(1, max_ticks=200)

    assert result["months"] == 1
    assert result["ticks"] == 200
    assert result["ticks_per_s"] > 0
    assert result["peak_rss_mb"] >= result["peak_rss_mb_before_ticks"] > 0
    assert result["orders"] > 0


def test_multi_symbol_when_run_briefly_then_reports_cpu_lag_and_backlog() -> None:
    """A short wall-clock run of a few symbols reports CPU share, lags and the backlog verdict."""
    result = multi_symbol.run(seconds=0.5, symbols=3, ticks_per_s=20.0)

    assert result["symbols"] == 3
    assert result["ticks_delivered"] > 0
    assert result["decisions_on_new_ticks"] > 0
    assert result["cpu_share_of_one_core"] > 0.0
    assert result["conflation_lag_max_ms"] >= result["conflation_lag_p99_ms"] >= 0.0
    assert isinstance(result["backlog_grew"], bool)
    assert result["errors"] == []


def test_suite_when_run_quick_then_prints_table_and_writes_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``python -m bench --quick`` with tiny overrides writes JSON and prints every row."""
    out = tmp_path / "results.json"

    code = main(
        [
            "--quick",
            "--out",
            str(out),
            "--ticks",
            "300",
            "--step-ticks",
            "50",
            "--months",
            "1",
            "--max-ticks",
            "200",
            "--seconds",
            "0.5",
            "--symbols",
            "3",
        ]
    )

    assert code == 0
    results = json.loads(out.read_text())
    assert {"machine", "decision_path", "engine_step", "replay", "multi_symbol"} <= results.keys()
    assert results["ccxt_loopback"] == {"skipped": CCXT_NA}
    assert results["machine"]["cores"] >= 1
    replay = results["replay"]
    assert "skipped" in replay or [size["months"] for size in replay["sizes"]] == [0, 1]
    printed = capsys.readouterr().out
    for row in ("decision path", "Engine.step", "replay", "symbols", CCXT_NA):
        assert row in printed
