"""``scaler replay``: the daemon's engine, risk layer and paper exchange on recorded bars.

The recorded-data tests read ``../shared/data`` (or ``$SCALER_SHARED_DATA``) in place and skip
with the reason when it is absent; the crash window is replayed once per configuration for the
whole module. The CLI test writes its own small synthetic bar file.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from scaler.app import build_replay, replay_config
from scaler.config import Settings, load_settings
from scaler.domain.types import NS_PER_S
from scaler.service.replay import ReplayOptions, ReplayOutcome
from scaler.service.replay_report import build_report, format_table, report_json

DATA_DIR = Path(
    os.environ.get(
        "SCALER_SHARED_DATA", Path(__file__).resolve().parents[2].parent / "shared" / "data"
    )
)
CRASH_BARS = DATA_DIR / "ohlcv" / "bitmex_xbtusd_1m_2020-03-11_2020-03-14.csv"
BITMEX_FUNDING = DATA_DIR / "funding" / "bitmex_xbtusd_funding_2016-05-14_2020-11-05.csv"
pytestmark = pytest.mark.integration

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
PLOTS = ("equity", "position", "leverage", "margin", "funding", "states")


def _ts_ns(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()) * NS_PER_S


def _require_data() -> None:
    missing = [str(p) for p in (CRASH_BARS, BITMEX_FUNDING) if not p.is_file()]
    if missing:
        pytest.skip(
            f"recorded market data not found ({', '.join(missing)}); it lives in ../shared/data "
            "next to the repository or in $SCALER_SHARED_DATA and is never copied into it"
        )


def _replay(settings: Settings, options: ReplayOptions) -> tuple[ReplayOutcome, dict[str, Any]]:
    replay, stats = build_replay(settings, options)
    outcome = asyncio.run(replay.run())
    return outcome, build_report(outcome, stats, options, replay_config(settings, options))


def _policy(report: dict[str, Any], name: str) -> dict[str, Any]:
    return next(p for p in report["policies"] if p["name"] == name)


def _on_crash_days(stamps: list[str]) -> bool:
    return bool(stamps) and all(s.startswith(("2020-03-12", "2020-03-13")) for s in stamps[:10])


@pytest.fixture(scope="module")
def crash_default() -> tuple[ReplayOutcome, dict[str, Any]]:
    """12-13 March 2020 on the default settings, with the 20x baseline."""
    _require_data()
    return _replay(load_settings(), ReplayOptions(CRASH_BARS, BITMEX_FUNDING))


@pytest.fixture(scope="module")
def crash_no_daily_halt() -> tuple[ReplayOutcome, dict[str, Any]]:
    """The same window with the daily loss limit out of the way (99 %)."""
    _require_data()
    settings = load_settings(risk={"daily_loss_limit_fraction": 0.99})
    return _replay(settings, ReplayOptions(CRASH_BARS, BITMEX_FUNDING))


@pytest.mark.playback
def test_crash_replay_when_20x_baseline_then_liquidated_on_the_crash(
    crash_default: tuple[ReplayOutcome, dict[str, Any]],
) -> None:
    """The constant 20x "standard approach" is liquidated on 12 March 2020."""
    _, report = crash_default
    baseline = _policy(report, "constant_20x")
    assert baseline["liquidations"] >= 1
    assert baseline["liquidations_at"][0]["at"].startswith("2020-03-12")
    assert baseline["final_equity_coin"] == pytest.approx(0.0, abs=1e-9)
    assert report["inputs"]["ticks"] == 23_040


@pytest.mark.playback
def test_crash_replay_when_default_policy_then_breaker_trips_and_no_liquidation(
    crash_default: tuple[ReplayOutcome, dict[str, Any]],
) -> None:
    """DESIGN 10: on the default policy the breaker trips on the crash minutes, no liquidation."""
    _, report = crash_default
    configured = _policy(report, "configured")
    assert _on_crash_days(configured["breaker_trips_at"])
    assert configured["liquidations"] == 0


@pytest.mark.playback
def test_crash_replay_when_no_daily_halt_then_breaker_trips_on_crash_minutes(
    crash_no_daily_halt: tuple[ReplayOutcome, dict[str, Any]],
) -> None:
    """Without the daily halt the breaker trips on 12-13 March and the policy survives; 20x not."""
    _, report = crash_no_daily_halt
    configured = _policy(report, "configured")
    assert configured["breaker_trips"] >= 10
    assert _on_crash_days(configured["breaker_trips_at"])
    assert configured["breaker_trips_at"][0] >= "2020-03-12T10:30"
    assert configured["time_in_state_s"]["frozen"] > 0
    assert configured["liquidations"] == 0
    assert configured["final_equity_coin"] > 0
    assert _policy(report, "constant_20x")["liquidations"] >= 1


@pytest.mark.playback
@pytest.mark.parametrize("fixture", ["crash_default", "crash_no_daily_halt"])
def test_crash_replay_when_done_then_every_ledger_balances(
    fixture: str, request: pytest.FixtureRequest
) -> None:
    """balance = initial + realised - fees - funding holds exactly on every policy's exchange."""
    outcome, report = request.getfixturevalue(fixture)
    for policy in outcome.policies:
        ledger = policy.exchange.ledger
        expected = (
            ledger.initial_units + ledger.realised_units - ledger.fees_units - ledger.funding_units
        )
        assert ledger.balance_units == expected, policy.name
    assert all(p["balance_identity_holds"] for p in report["policies"])


@pytest.mark.playback
def test_replay_when_run_twice_then_json_is_byte_identical() -> None:
    """Two replays of the same window and settings give the same report bytes."""
    _require_data()
    options = ReplayOptions(
        CRASH_BARS,
        BITMEX_FUNDING,
        from_ns=_ts_ns("2020-03-12T09:00:00"),
        to_ns=_ts_ns("2020-03-12T13:00:00"),
        baseline_leverages=(20.0, 5.0),
    )
    first = report_json(_replay(load_settings(), options)[1])
    second = report_json(_replay(load_settings(), options)[1])
    assert first == second
    report = json.loads(first)
    assert report["inputs"]["ticks"] == 4 * 60 * 4
    assert [p["name"] for p in report["policies"]] == ["configured", "constant_20x", "constant_5x"]


def _synthetic_bars(path: Path) -> Path:
    """Three hours of minute bars around 40,000 USD with a 9 % drop in minute 90."""
    lines = ["open_time_utc,open,high,low,close,volume_contracts"]
    close = 40_000.0
    for minute in range(180):
        open_ = close
        step = -0.09 if minute == 90 else (0.001 if minute % 7 < 4 else -0.0012)
        close = round(open_ * (1 + step), 1)
        high, low = max(open_, close) + 5, min(open_, close) - 5
        stamp = f"2024-01-01T{minute // 60:02d}:{minute % 60:02d}:00Z"
        lines.append(f"{stamp},{open_},{high},{low},{close},1000")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_replay_cli_when_synthetic_bars_then_table_json_and_pngs(tmp_path: Path) -> None:
    """``scaler replay`` end to end in a subprocess: table on stdout, report.json, six PNGs."""
    bars = _synthetic_bars(tmp_path / "bars.csv")
    out = tmp_path / "out"
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("SCALER_")}
    done = subprocess.run(
        [sys.executable, "-m", "scaler.cli", "replay", "--bars", str(bars), "--out", str(out)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "policy" in done.stdout
    assert "configured" in done.stdout
    assert "constant_20x" in done.stdout
    assert "\r" not in done.stderr  # no progress bar when stderr is not a terminal
    report = json.loads((out / "report.json").read_text())
    assert report["inputs"]["ticks"] == 180 * 4
    assert _policy(report, "configured")["breaker_trips_at"] == ["2024-01-01T01:30:30Z"]
    for name in PLOTS:
        assert (out / f"{name}.png").read_bytes()[:8] == PNG_MAGIC, name


OUTLIER_MINUTE = 60
BASE_PRICE = 40_000.0


def _bars_with_outlier(path: Path, factor: float) -> Path:
    """Two hours of calm minute bars at about 40,000 USD, one of them (minute 60) entirely at
    ``factor`` times the price: a bad print on mark and index alike."""
    lines = ["open_time_utc,open,high,low,close,volume_contracts"]
    for minute in range(120):
        price = BASE_PRICE * (1 + (0.0004 if minute % 4 < 2 else -0.0004))
        if minute == OUTLIER_MINUTE:
            price = BASE_PRICE * factor
        stamp = f"2024-01-01T{minute // 60:02d}:{minute % 60:02d}:00Z"
        lines.append(f"{stamp},{price},{price},{price},{price},1000")
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize(
    ("factor", "plausibility"),
    [(10.0, True), (100.0, True), (2.0, True), (10.0, False), (100.0, False)],
    ids=["10x", "100x", "2x", "10x-breaker-only", "100x-breaker-only"],
)
def test_replay_when_one_bar_is_an_outlier_then_nothing_bought_there_and_equity_survives(
    tmp_path: Path, factor: float, plausibility: bool
) -> None:
    """One bar at 10x or 100x (or 2x) among calm bars: rejected as implausible,
    or with the bounds off judged by the breaker against the price before it, never
    confirmed in its 45 s: no order is filled at the outlier, nobody is liquidated, equity ends
    near its start (the bug bought three times at the outlier and ended at 0)."""
    bars = _bars_with_outlier(tmp_path / "bars.csv", factor)
    risk: dict[str, float] = {}
    if not plausibility:
        risk = {"max_mark_move_ratio": float("inf"), "max_mark_index_ratio": float("inf")}
    outcome, report = _replay(load_settings(risk=risk), ReplayOptions(bars, baseline_leverages=()))
    configured = _policy(report, "configured")
    assert configured["liquidations"] == 0
    assert configured["final_equity_coin"] == pytest.approx(1.0, abs=0.02)
    fills = outcome.policies[0].exchange.fills
    assert fills, "the policy never built its position"
    start_ns = _ts_ns("2024-01-01T01:00:00")
    at_outlier = [f for f in fills if start_ns <= f.ts_ns < start_ns + 75 * NS_PER_S]
    assert at_outlier == []
    assert all(abs(f.price / BASE_PRICE - 1) < 0.01 for f in fills)
    expected = {"gap_breaker", "unconfirmed_price", "price_returned"}
    if plausibility and factor != 2.0:
        assert configured["breaker_trips"] == 0  # the outlier never reached the risk layer
    else:
        assert expected <= set(configured["reasons"])
        assert "price_confirmed" not in configured["reasons"]


def test_replay_cli_when_bars_file_missing_then_exit_2_naming_it(tmp_path: Path) -> None:
    """A missing input file is a usage error: exit code 2 and one line naming the file."""
    done = subprocess.run(
        [sys.executable, "-m", "scaler.cli", "replay", "--bars", str(tmp_path / "nope.csv")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "nope.csv" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_write_plots_when_synthetic_replay_then_six_pngs_and_a_table(tmp_path: Path) -> None:
    """In process, where warnings are errors: every plot draws; the table lists every policy."""
    from scaler.app import plot_guides
    from scaler.service.replay_plots import write_plots

    settings = load_settings()
    options = ReplayOptions(_synthetic_bars(tmp_path / "bars.csv"), baseline_leverages=(20.0, 2.0))
    outcome, report = _replay(settings, options)
    paths = write_plots(outcome, tmp_path / "plots", plot_guides(settings))
    assert [p.stem for p in paths] == list(PLOTS)
    assert all(p.read_bytes()[:8] == PNG_MAGIC for p in paths)
    table = format_table(report).splitlines()
    assert table[0].split()[:3] == ["policy", "equity", "BTC"]
    assert [line.split()[0] for line in table[2:5]] == ["configured", "constant_20x", "constant_2x"]
    assert "720 ticks from 2024-01-01T00:00:00Z" in table[5]
