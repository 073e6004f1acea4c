"""Pieces of the replay report: bucketed series, drawdown, the recorder, JSON and the tape."""

from __future__ import annotations

import gzip
import io
import json
import math
import random
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from scaler.clock import ManualClock
from scaler.domain.records import DecisionRecord
from scaler.domain.types import NS_PER_S, Mode, TradingState
from scaler.service.replay import replay_tape
from scaler.service.replay_progress import Progress, bars_end_ns, render
from scaler.service.replay_recorder import (
    MINUTE_NS,
    BucketSeries,
    Channel,
    Drawdown,
    PolicyRecorder,
    Reduce,
)
from scaler.service.replay_report import format_table, iso, num, report_json
from tests.support import KEY, snapshot

pytestmark = pytest.mark.unit

T0_NS = 1_600_000_000 * NS_PER_S  # 2020-09-13T12:26:40Z
ALIGNED_NS = T0_NS - T0_NS % (1_024 * MINUTE_NS)
"""A start on a boundary of every bucket width up to 1,024 minutes."""
REDUCERS = (Reduce.LAST, Reduce.MIN, Reduce.MAX)


def test_bucket_series_when_samples_share_a_minute_then_reduced_per_channel() -> None:
    """Within one bucket: last, lowest and highest value of each channel."""
    series = BucketSeries(REDUCERS, MINUTE_NS, max_points=10)
    for offset_s, value in ((0, 3.0), (15, 1.0), (30, 5.0), (45, 2.0)):
        series.add(ALIGNED_NS + offset_s * NS_PER_S, (value, value, value))
    assert len(series) == 1
    assert [series.column(i) for i in range(3)] == [[2.0], [1.0], [5.0]]


def test_bucket_series_when_nan_then_ignored_unless_alone() -> None:
    """NaN means "no value": it never replaces a number, and a bucket of NaN stays NaN."""
    series = BucketSeries(REDUCERS, MINUTE_NS, max_points=10)
    series.add(T0_NS, (1.0, 1.0, 1.0))
    series.add(T0_NS + NS_PER_S, (math.nan, math.nan, math.nan))
    series.add(T0_NS + MINUTE_NS, (math.nan, math.nan, math.nan))
    assert series.column(0)[0] == 1.0
    assert series.column(1)[0] == 1.0
    assert math.isnan(series.column(2)[1])


def test_bucket_series_when_over_capacity_then_width_doubles_and_points_stay_bounded() -> None:
    """A day of 15-second samples into 100 points: never more than 100, width a power of two."""
    series = BucketSeries(REDUCERS, MINUTE_NS, max_points=100)
    for i in range(24 * 60 * 4):
        series.add(T0_NS + i * 15 * NS_PER_S, (float(i), float(i), float(i)))
        assert len(series) <= 100
    assert series.width_ns == 16 * MINUTE_NS
    assert series.column(2)[-1] == 24 * 60 * 4 - 1


def test_bucket_series_when_merged_then_same_as_wide_buckets_from_the_start() -> None:
    """Pairwise merging gives exactly what buckets of the final width would have given."""
    rng = random.Random(3)
    samples = [(ALIGNED_NS + i * 20 * NS_PER_S, rng.uniform(-1, 1)) for i in range(3_000)]
    merged = BucketSeries(REDUCERS, MINUTE_NS, max_points=64)
    for ts, v in samples:
        merged.add(ts, (v, v, v))
    wide = BucketSeries(REDUCERS, merged.width_ns, max_points=10_000)
    for ts, v in samples:
        wide.add(ts, (v, v, v))
    assert merged.width_ns > MINUTE_NS
    assert merged.timestamps_ns() == wide.timestamps_ns()
    assert [merged.column(i) for i in range(3)] == [wide.column(i) for i in range(3)]


def test_drawdown_when_peak_then_trough_then_new_peak_then_largest_fall_kept() -> None:
    """The largest fall from a running peak, as a fraction and amount, with its times."""
    drawdown = Drawdown()
    for ts, value in enumerate((1.0, 2.0, 1.5, 3.0, 1.2, 2.5)):
        drawdown.update(value, ts)
    assert drawdown.max_fraction == pytest.approx(0.6)
    assert drawdown.max_amount == pytest.approx(1.8)
    assert (drawdown.ts_max_peak_ns, drawdown.ts_max_trough_ns) == (3, 4)


def _record(
    ts_ns: int, state: TradingState, equity: float = 1.0, **changes: object
) -> DecisionRecord:
    record = DecisionRecord(
        key=KEY,
        ts_ns=ts_ns,
        mode=Mode.AUTO,
        trading_state=state,
        mark_price=50_000.0,
        index_price=50_000.0,
        funding_observed=0.0001,
        funding_predicted=0.0001,
        target_usd=150_000.0,
        recommended_usd=150_000.0,
        actual_usd=150_000.0,
        equity_coin=equity,
        margin_ratio=40.0,
        effective_leverage=3.0,
        liquidation_price=34_000.0,
        liquidation_distance=0.32,
        reasons=(),
        rules=(),
        details=(),
        latency_s=None,
        feed_age_s={},
    )
    return replace(record, **changes)  # type: ignore[arg-type]


def test_policy_recorder_when_states_change_then_time_attributed_to_the_earlier() -> None:
    """Time between decisions counts for the state decided first; finish closes the last."""
    recorder = PolicyRecorder("p")
    recorder.decision(_record(T0_NS, TradingState.ACTIVE), changed=True)
    recorder.decision(_record(T0_NS + 15 * NS_PER_S, TradingState.FROZEN), changed=True)
    recorder.decision(_record(T0_NS + 30 * NS_PER_S, TradingState.ACTIVE), changed=True)
    recorder.finish(T0_NS + 60 * NS_PER_S)
    seconds = {s.value: ns / NS_PER_S for s, ns in recorder.time_in_state_ns.items()}
    assert seconds == {"active": 45.0, "reducing": 0.0, "frozen": 15.0, "halted": 0.0}
    assert recorder.entries[TradingState.FROZEN] == 1
    assert recorder.entries[TradingState.ACTIVE] == 2


def test_policy_recorder_when_decisions_then_extremes_drawdown_and_reasons() -> None:
    """Exact extremes over positioned decisions, drawdown in coin and USD, reason counts."""
    recorder = PolicyRecorder("p")
    recorder.decision(_record(T0_NS, TradingState.ACTIVE, 1.0), changed=True)
    recorder.decision(
        _record(T0_NS + NS_PER_S, TradingState.FROZEN, 0.8, reasons=("gap_breaker",),
                effective_leverage=4.5, margin_ratio=20.0, liquidation_distance=0.2),
        changed=True,
    )  # fmt: skip
    recorder.decision(
        _record(T0_NS + 2 * NS_PER_S, TradingState.ACTIVE, 0.9, actual_usd=0.0,
                effective_leverage=0.0, margin_ratio=math.inf, liquidation_distance=math.inf),
        changed=True,
    )  # fmt: skip
    assert recorder.max_leverage == 4.5
    assert recorder.min_margin_ratio == 20.0
    assert recorder.min_liquidation_distance == 0.2
    assert recorder.drawdown_coin.max_fraction == pytest.approx(0.2)
    assert recorder.reasons == {"gap_breaker": 1}
    assert math.isnan(recorder.series.column(Channel.MARGIN_RATIO)[0]) is False


def test_num_when_non_finite_or_negative_zero_then_null_or_zero() -> None:
    """Report numbers: rounded, NaN and infinities as null, no negative zero."""
    assert num(1.23456789, 4) == 1.2346
    assert num(math.inf, 4) is None
    assert num(math.nan, 4) is None
    assert num(None, 4) is None
    assert str(num(-1e-12, 4)) == "0.0"


def test_iso_when_ns_then_utc_seconds_with_z() -> None:
    """Timestamps print as UTC ISO 8601 to the second."""
    assert iso(T0_NS + 999) == "2020-09-13T12:26:40Z"
    assert iso(None) is None


def test_report_json_when_dumped_then_sorted_and_refuses_nan() -> None:
    """Keys are sorted and NaN is an error rather than invalid JSON."""
    text = report_json({"b": 1, "a": {"d": 2, "c": 3}})
    assert text.index('"a"') < text.index('"b"')
    assert text.index('"c"') < text.index('"d"')
    assert json.loads(text) == {"a": {"c": 3, "d": 2}, "b": 1}
    with pytest.raises(ValueError, match="JSON"):
        report_json({"x": math.nan})


def test_replay_tape_when_windowed_then_bounds_and_funding_stamped_with_the_tick() -> None:
    """from is included, to excluded; a rate within its interval carries the tick's time."""
    ts = [T0_NS + i * 15 * NS_PER_S for i in range(8)]
    fresh = [snapshot(t, ts_funding_ns=T0_NS - 3_600 * NS_PER_S) for t in ts[:6]]
    stale = [snapshot(t, ts_funding_ns=T0_NS - 9 * 3_600 * NS_PER_S) for t in ts[6:]]
    out = list(replay_tape(iter(fresh + stale), ts[1], ts[7]))
    assert [s.ts_event_ns for s in out] == ts[1:7]
    assert [s.ts_funding_ns for s in out[:5]] == ts[1:6]
    assert out[5].ts_funding_ns == T0_NS - 9 * 3_600 * NS_PER_S  # older than 8 h: left stale


def test_replay_tape_when_stopped_early_then_source_closed() -> None:
    """Reaching ``to`` closes the source generator (its files with it)."""
    closed: list[bool] = []

    def source():  # type: ignore[no-untyped-def]
        try:
            for i in range(10):
                yield snapshot(T0_NS + i * NS_PER_S)
        finally:
            closed.append(True)

    assert len(list(replay_tape(source(), None, T0_NS + 3 * NS_PER_S))) == 3
    assert closed == [True]


def test_progress_render_when_half_way_then_half_bar() -> None:
    """The bar line: fraction, simulated time, ticks and rate."""
    line = render(0.5, T0_NS, 12_345, 67_890.4)
    assert line.startswith("[" + "#" * 15 + "-" * 15 + "]")
    assert " 50.0%" in line
    assert "2020-09-13 12:26" in line
    assert "12,345 ticks" in line
    assert "67,890 ticks/s" in line


def test_progress_when_updated_on_a_terminal_then_redrawn_in_place_at_most_10_per_s() -> None:
    """Redraws go to the stream with a carriage return, paced by the injected wall clock."""
    stream = io.StringIO()
    wall = ManualClock(start_ns=T0_NS)
    progress = Progress(stream, wall, T0_NS, T0_NS + 100 * NS_PER_S)
    wall.advance(1.0)
    progress.update(T0_NS + 25 * NS_PER_S, 1_000)
    progress.update(T0_NS + 50 * NS_PER_S, 2_000)  # same wall instant: not redrawn
    wall.advance(1.0)
    progress.update(T0_NS + 50 * NS_PER_S, 2_000)
    progress.close()
    lines = stream.getvalue().split("\r")[1:]
    assert len(lines) == 2
    assert " 25.0%" in lines[0]
    assert "1,000 ticks/s" in lines[1]
    assert stream.getvalue().endswith("\n")


@pytest.mark.parametrize("compress", [False, True])
def test_bars_end_ns_when_plain_or_gzip_then_end_of_last_bar(
    tmp_path: Path, compress: bool
) -> None:
    """The last bar's open time plus one minute, from plain or gzip text."""
    text = "open_time_utc,open,high,low,close,volume_contracts\n"
    text += "2020-03-11T00:00:00Z,1,1,1,1,1\n2020-03-11T00:01:00Z,1,1,1,1,1\n"
    path = tmp_path / "bars.csv"
    path.write_bytes(gzip.compress(text.encode()) if compress else text.encode())
    expected = int(datetime(2020, 3, 11, 0, 2, tzinfo=UTC).timestamp()) * NS_PER_S
    assert bars_end_ns(path) == expected


def test_format_table_when_no_ticks_then_says_so() -> None:
    """An empty window still prints a table, and says nothing was replayed."""
    report = {"inputs": {"ticks": 0}, "policies": []}
    assert format_table(report).splitlines()[-2] == "no ticks in the window: nothing was replayed"
