"""Playback of the recorded BitMEX crash window (2020-03-11..14) and real funding histories.

The data is read in place from ``../shared/data`` (or ``$SCALER_SHARED_DATA``) and is never
copied into the repository: several files carry no license (see its ``PROVENANCE.md``).
"""

from __future__ import annotations

import itertools
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from scaler.adapters.paper.feeds import ClockedFeed, Pace
from scaler.adapters.paper.replay import (
    ReplayParams,
    ReplayStats,
    read_funding,
    read_minute_bars,
    replay_snapshots,
)
from scaler.clock import ManualClock
from scaler.domain.types import NS_PER_S, InstrumentKey, MarketSnapshot

pytestmark = pytest.mark.playback

KEY = InstrumentKey("paper", "BTC/USD:BTC")
DATA_DIR = Path(
    os.environ.get(
        "SCALER_SHARED_DATA", Path(__file__).resolve().parents[2].parent / "shared" / "data"
    )
)
CRASH_BARS = DATA_DIR / "ohlcv" / "bitmex_xbtusd_1m_2020-03-11_2020-03-14.csv"
BITMEX_FUNDING = DATA_DIR / "funding" / "bitmex_xbtusd_funding_2016-05-14_2020-11-05.csv"
DERIBIT_FUNDING = (
    DATA_DIR / "funding" / "deribit_btc-perpetual_funding_index_hourly_2019-04-30_2021-02-25.csv.gz"
)


def _ts_ns(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> int:
    moment = datetime(year, month, day, hour, minute, second, tzinfo=UTC)
    return int(moment.timestamp()) * NS_PER_S


def _require(*paths: Path) -> None:
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        pytest.skip(
            f"recorded market data not found ({', '.join(missing)}); it lives in ../shared/data "
            "next to the repository or in $SCALER_SHARED_DATA and is never copied into it"
        )


def _crash_replay(stats: ReplayStats) -> list[MarketSnapshot]:
    _require(CRASH_BARS, BITMEX_FUNDING)
    return list(replay_snapshots(KEY, CRASH_BARS, BITMEX_FUNDING, ReplayParams(), stats))


def test_crash_bars_when_read_then_all_5760_minutes_are_valid() -> None:
    """The four crash days are 5,760 clean minute bars, the first at 2020-03-11 00:00 UTC."""
    _require(CRASH_BARS)
    stats = ReplayStats()
    bars = list(read_minute_bars(CRASH_BARS, stats))
    assert len(bars) == 5_760
    assert stats.rows_skipped == 0
    assert bars[0].ts_open_ns == _ts_ns(2020, 3, 11)
    assert bars[-1].ts_open_ns == _ts_ns(2020, 3, 14, 23, 59)


def test_crash_replay_when_expanded_then_23040_snapshots_reaching_the_3596_low() -> None:
    """Four ticks a minute give 23,040 snapshots; the 3,596 low is visited exactly."""
    stats = ReplayStats()
    snaps = _crash_replay(stats)
    assert len(snaps) == 23_040
    assert stats.rows_skipped == 0
    assert min(s.mark_price for s in snaps) == 3_596.0
    assert all(s.best_bid < s.mark_price < s.best_ask for s in snaps)
    assert all(a.ts_event_ns < b.ts_event_ns for a, b in itertools.pairwise(snaps))


def test_crash_replay_when_black_thursday_then_capped_funding_in_force() -> None:
    """At 2020-03-13 06:00 UTC the −0.375 % rate stamped 04:00 is in force, per 8 h."""
    snaps = _crash_replay(ReplayStats())
    at_six = next(s for s in snaps if s.ts_event_ns == _ts_ns(2020, 3, 13, 6))
    assert at_six.funding_rate == -0.00375
    assert at_six.funding_interval_s == 28_800.0
    assert at_six.ts_funding_ns == _ts_ns(2020, 3, 13, 4)
    assert at_six.predicted_funding_rate is None
    first = snaps[0]
    assert first.ts_funding_ns == _ts_ns(2020, 3, 10, 20)  # the last rate before the window


def test_deribit_funding_when_read_then_one_swapped_row_skipped() -> None:
    """The Deribit file's one backwards row (DST, 2019-10-27) is skipped; the −0.562 % low stays."""
    _require(DERIBIT_FUNDING)
    stats = ReplayStats()
    observations = list(read_funding(DERIBIT_FUNDING, stats))
    assert len(observations) == 16_007
    assert stats.skipped_by_reason == {"out_of_order": 1}
    lowest = min(observations, key=lambda o: o.rate)
    assert lowest.ts_ns == _ts_ns(2020, 3, 13, 7)
    assert lowest.rate == pytest.approx(-0.005621648824481687)
    assert {o.interval_s for o in observations} == {28_800.0}


async def test_crash_replay_when_fast_paced_then_manual_clock_ends_at_last_tick() -> None:
    """A FAST ClockedFeed over the crash window drives a ManualClock through simulated time."""
    _require(CRASH_BARS, BITMEX_FUNDING)
    clock = ManualClock(start_ns=_ts_ns(2020, 3, 11))
    source = replay_snapshots(KEY, CRASH_BARS, BITMEX_FUNDING, ReplayParams())
    feed = ClockedFeed(source, clock, Pace.FAST)
    count = 0
    async for _ in feed.stream():
        count += 1
    assert count == 23_040
    assert clock.now_ns() == _ts_ns(2020, 3, 14, 23, 59, 45)


def test_recorded_crash_when_validated_with_default_bounds_then_no_tick_is_implausible() -> None:
    """12-13 March 2020, every tick as the daemon sees it: the plausibility bounds of
    ``validate_market`` (the defaults of ``risk.*``) reject none; the breaker handles the gaps."""
    _require(CRASH_BARS, BITMEX_FUNDING)
    from scaler.domain.risk import RiskLimits
    from scaler.domain.validation import validate_market

    limits = RiskLimits()
    previous: MarketSnapshot | None = None
    ticks = 0
    for snapshot in replay_snapshots(KEY, CRASH_BARS, BITMEX_FUNDING, ReplayParams()):
        problem = validate_market(
            snapshot,
            previous,
            limits.max_abs_funding_rate,
            max_mark_index_ratio=limits.max_mark_index_ratio,
            max_mark_move_ratio=limits.max_mark_move_ratio,
            mark_move_window_s=limits.mark_move_window_s,
        )
        assert problem is None, (snapshot.ts_event_ns, snapshot.mark_price, problem)
        previous = snapshot
        ticks += 1
    assert ticks == 23_040
