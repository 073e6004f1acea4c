"""Unit tests for the paper market feeds (synthetic, CSV replay) and the clock-paced feed."""

from __future__ import annotations

import asyncio
import gzip
import itertools
import random
import tracemalloc
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from scaler.adapters.paper.feeds import (
    BookShape,
    ClockedFeed,
    Pace,
    SyntheticParams,
    synthetic_snapshots,
)
from scaler.adapters.paper.replay import (
    Bar,
    FundingObservation,
    ReplayParams,
    ReplayStats,
    expand_bar,
    read_funding,
    read_minute_bars,
    replay_snapshots,
)
from scaler.clock import ManualClock
from scaler.domain.types import NS_PER_MS, NS_PER_S, InstrumentKey, MarketSnapshot
from scaler.errors import BadInputError

pytestmark = pytest.mark.unit

KEY = InstrumentKey("paper", "BTC/USD:BTC")
T0_NS = 1_584_057_600 * NS_PER_S  # 2020-03-13 00:00:00 UTC
MINUTE_NS = 60 * NS_PER_S
BAR_HEADER = "open_time_utc,open,high,low,close,volume_contracts\n"


def _synthetic(
    seed: int, count: int, params: SyntheticParams | None = None
) -> list[MarketSnapshot]:
    source = synthetic_snapshots(KEY, seed, params or SyntheticParams(), T0_NS)
    return list(itertools.islice(source, count))


def _iso(ts_ns: int) -> str:
    return datetime.fromtimestamp(ts_ns // NS_PER_S, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _bar_rows(count: int, start_ns: int = T0_NS) -> str:
    rows = []
    price = 8_000.0
    for i in range(count):
        close = price + (5.0 if i % 3 else -7.5)
        high, low = max(price, close) + 1.0, min(price, close) - 1.0
        rows.append(f"{_iso(start_ns + i * MINUTE_NS)},{price},{high},{low},{close},{1000 + i}\n")
        price = close
    return "".join(rows)


async def _spin(passes: int = 20) -> None:
    """Let every ready task run ``passes`` times (no time passes on a ManualClock)."""
    for _ in range(passes):
        await asyncio.sleep(0)


async def _eventually(predicate: Callable[[], bool], spins: int = 200) -> None:
    """Let the loop run until ``predicate`` holds, for at most ``spins`` passes."""
    for _ in range(spins):
        if predicate():
            return
        await asyncio.sleep(0)
    assert predicate(), "condition not reached"


# --- synthetic market ------------------------------------------------------------------------


def test_synthetic_when_same_seed_then_first_thousand_snapshots_identical() -> None:
    """Two generators with one seed produce the same 1,000 snapshots."""
    assert _synthetic(7, 1_000) == _synthetic(7, 1_000)


def test_synthetic_when_seeds_differ_then_paths_differ() -> None:
    """A different seed gives a different price path."""
    first = [s.mark_price for s in _synthetic(7, 1_000)]
    second = [s.mark_price for s in _synthetic(8, 1_000)]
    assert first != second


def test_synthetic_when_run_then_global_rng_untouched() -> None:
    """The generator draws from its own ``random.Random``, never the module-level one."""
    random.seed(1234)
    state = random.getstate()
    _synthetic(3, 500)
    assert random.getstate() == state


def test_synthetic_when_violent_params_then_prices_positive_and_books_sorted() -> None:
    """Even with 500 % vol and frequent 20 % jumps prices stay positive and books ordered."""
    params = SyntheticParams(annual_vol=5.0, jump_prob_per_tick=0.01, jump_scale=0.2)
    for snap in _synthetic(11, 20_000, params):
        assert snap.index_price > 0
        assert snap.mark_price > 0
        assert 0 < snap.best_bid < snap.mark_price < snap.best_ask
        assert snap.bids[0][0] == snap.best_bid
        assert snap.asks[0][0] == snap.best_ask
        assert all(a[0] > b[0] for a, b in itertools.pairwise(snap.bids))
        assert all(a[0] < b[0] for a, b in itertools.pairwise(snap.asks))
        assert all(level[0] > 0 for level in snap.bids)


def test_synthetic_when_default_params_then_book_matches_params() -> None:
    """Ten levels a side of 25,000 USD, 1 bp spread, 1 bp between levels."""
    snap = _synthetic(5, 1)[0]
    assert len(snap.bids) == len(snap.asks) == 10
    assert {size for _, size in snap.bids + snap.asks} == {25_000.0}
    assert snap.spread_bps == pytest.approx(1.0, rel=1e-6)
    assert snap.mid_price == pytest.approx(snap.mark_price, rel=1e-9)
    step_bps = (snap.asks[1][0] / snap.asks[0][0] - 1.0) * 10_000
    assert step_bps == pytest.approx(1.0, rel=1e-3)


def test_synthetic_when_100k_ticks_then_funding_within_cap() -> None:
    """Funding stays within ±0.375 % per 8 h and the published prediction comes true next tick."""
    source = synthetic_snapshots(KEY, 42, SyntheticParams(), T0_NS)
    previous: MarketSnapshot | None = None
    for snap in itertools.islice(source, 100_000):
        assert -0.00375 <= snap.funding_rate <= 0.00375
        assert snap.funding_interval_s == 28_800
        if previous is not None:
            assert snap.funding_rate == previous.predicted_funding_rate
        previous = snap


def test_synthetic_when_long_run_then_funding_reverts_around_one_bp() -> None:
    """Sampled over ten simulated days (1 tick a minute), funding averages about +0.01 %."""
    params = SyntheticParams(tick_interval_s=60.0)
    rates = [s.funding_rate for s in _synthetic(9, 14_400, params)]
    assert sum(rates) / len(rates) == pytest.approx(0.0001, abs=0.00008)
    assert len(set(rates)) > 1_000


def test_synthetic_when_generated_then_basis_is_a_few_bps() -> None:
    """The mark sits a few bps from the index and the basis moves."""
    bases_bps = [(s.mark_price / s.index_price - 1) * 10_000 for s in _synthetic(2, 5_000)]
    assert max(abs(b) for b in bases_bps) < 25
    assert len({round(b, 6) for b in bases_bps}) > 100


def test_synthetic_when_generated_then_timestamps_are_tick_times() -> None:
    """Snapshot i is stamped ``start + i·250 ms`` for event, receive and funding times."""
    for i, snap in enumerate(_synthetic(1, 10)):
        expected = T0_NS + i * 250 * NS_PER_MS
        assert snap.ts_event_ns == snap.ts_recv_ns == snap.ts_funding_ns == expected


@pytest.mark.parametrize(
    "overrides",
    [
        {"start_price": 0.0},
        {"tick_interval_s": 0.0},
        {"jump_prob_per_tick": 1.5},
        {"spread_bps": 0.0},
        {"levels": 0},
        {"level_step_bps": 0.0},
        {"funding_interval_s": 0.0},
    ],
)
def test_synthetic_params_when_invalid_then_value_error(overrides: dict[str, float]) -> None:
    """Parameters that would break positivity, ordering or timing are refused."""
    with pytest.raises(ValueError, match="must"):
        SyntheticParams(**overrides)  # type: ignore[arg-type]


def test_book_shape_when_centred_then_spread_and_steps_in_bps() -> None:
    """Best bid and ask sit half the spread from the centre; levels step by level_step_bps."""
    bids, asks = BookShape(spread_bps=2.0, levels=3, level_size_usd=10.0).around(10_000.0)
    assert [p for p, _ in bids] == pytest.approx([9_999.0, 9_998.0, 9_997.0])
    assert [p for p, _ in asks] == pytest.approx([10_001.0, 10_002.0, 10_003.0])


# --- expand_bar ------------------------------------------------------------------------------


def test_expand_bar_when_up_bar_then_open_low_high_close_every_15_s() -> None:
    """An up bar visits O, L, H, C at 0, 15, 30 and 45 seconds."""
    path = expand_bar(Bar(T0_NS, 100.0, 110.0, 95.0, 105.0, 1.0))
    assert [p for _, p in path] == [100.0, 95.0, 110.0, 105.0]
    assert [ts for ts, _ in path] == [T0_NS + k * 15 * NS_PER_S for k in range(4)]


def test_expand_bar_when_down_bar_then_open_high_low_close() -> None:
    """A down bar visits O, H, L, C."""
    path = expand_bar(Bar(T0_NS, 100.0, 110.0, 95.0, 97.0, 1.0))
    assert [p for _, p in path] == [100.0, 110.0, 95.0, 97.0]


def test_expand_bar_when_high_below_open_then_open_is_the_high() -> None:
    """BitMEX quirk: trades all below the previous close make the open the bar's high."""
    path = expand_bar(Bar(T0_NS, 100.0, 99.0, 98.0, 98.5, 1.0))
    assert [p for _, p in path] == [100.0, 100.0, 98.0, 98.5]


def test_expand_bar_when_low_above_open_then_open_is_the_low() -> None:
    """BitMEX quirk: trades all above the previous close make the open the bar's low."""
    path = expand_bar(Bar(T0_NS, 100.0, 102.0, 101.0, 101.5, 1.0))
    assert [p for _, p in path] == [100.0, 100.0, 102.0, 101.5]


def test_expand_bar_when_seven_ticks_then_anchors_kept_and_gaps_interpolated() -> None:
    """With seven ticks O, L, H, C sit at ticks 0, 2, 4, 6 and the others lie halfway."""
    path = expand_bar(Bar(T0_NS, 100.0, 110.0, 90.0, 104.0, 1.0), ticks_per_bar=7)
    assert [p for _, p in path] == pytest.approx([100.0, 95.0, 90.0, 100.0, 110.0, 107.0, 104.0])
    assert path[-1][0] < T0_NS + MINUTE_NS
    assert [b[0] - a[0] for a, b in itertools.pairwise(path)] == [60 * NS_PER_S // 7] * 6


def test_expand_bar_when_fewer_than_four_ticks_then_value_error() -> None:
    """Three ticks cannot visit four prices."""
    with pytest.raises(ValueError, match="ticks_per_bar"):
        expand_bar(Bar(T0_NS, 1.0, 1.0, 1.0, 1.0, 0.0), ticks_per_bar=3)


# --- CSV bars --------------------------------------------------------------------------------

BAD_BARS_CSV = (
    BAR_HEADER
    + "2020-03-13T00:00:00Z,7900,7910,7890,7905,100\n"
    + "2020-03-13T00:01:00Z,7905,oops,7890,7900,100\n"  # not a number
    + "2020-03-13T00:02:00Z,7905,7906\n"  # too few columns
    + "2020-03-13T00:03:00Z,7905,7890,7910,7900,100\n"  # high < low
    + "2020-03-13T00:04:00Z,7905,7910,7890,7950,100\n"  # close above the range
    + "2020-03-13T00:05:00Z,-1,7910,7890,7900,100\n"  # negative price
    + "not-a-time,7905,7910,7890,7900,100\n"
    + "2020-03-13T00:00:00Z,7905,7910,7890,7900,100\n"  # not after the previous row
    + "\n"
    + "2020-03-13T00:07:00Z,7905,7904,7890,7900,0\n"  # quirk bar: valid
)


def test_read_minute_bars_when_bad_rows_then_counted_and_skipped(tmp_path: Path) -> None:
    """Bad rows are skipped and counted by reason; good rows, quirky ones included, pass."""
    path = tmp_path / "bars.csv"
    path.write_text(BAD_BARS_CSV)
    stats = ReplayStats()
    bars = list(read_minute_bars(path, stats))
    assert bars == [
        Bar(T0_NS, 7900.0, 7910.0, 7890.0, 7905.0, 100.0),
        Bar(T0_NS + 7 * MINUTE_NS, 7905.0, 7904.0, 7890.0, 7900.0, 0.0),
    ]
    assert stats.rows_ok == 2
    assert stats.rows_skipped == 7
    assert stats.skipped_by_reason == {
        "bad_number": 1,
        "column_count": 1,
        "inconsistent_range": 2,
        "non_positive_price": 1,
        "bad_timestamp": 1,
        "out_of_order": 1,
    }
    assert stats.examples[0] == "bars.csv:3: bad_number: high='oops'"


def test_read_minute_bars_when_gzip_then_same_bars(tmp_path: Path) -> None:
    """A gzip file (told by its magic bytes, not its name) reads like the plain one."""
    plain, packed = tmp_path / "bars.csv", tmp_path / "bars.data"
    plain.write_text(BAD_BARS_CSV)
    with gzip.open(packed, "wt") as out:
        out.write(BAD_BARS_CSV)
    assert list(read_minute_bars(packed)) == list(read_minute_bars(plain))


def test_read_minute_bars_when_unknown_header_then_bad_input(tmp_path: Path) -> None:
    """A file without the BitMEX bar columns is refused as a whole."""
    path = tmp_path / "bars.csv"
    path.write_text("time,price\n1,2\n")
    with pytest.raises(BadInputError, match="volume_contracts"):
        list(read_minute_bars(path))


def test_replay_when_long_input_then_memory_stays_flat(tmp_path: Path) -> None:
    """Replaying 10,000 bars (40,000 snapshots) holds a few snapshots at a time, not the file."""
    path = tmp_path / "bars.csv"
    path.write_text(BAR_HEADER + _bar_rows(10_000))
    params = ReplayParams(levels=1)
    tracemalloc.start()
    try:
        count = sum(1 for _ in replay_snapshots(KEY, path, None, params))
        _, peak_bytes = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == 40_000
    assert peak_bytes < 512 * 1024  # the file is ~550 kB; 40,000 snapshots would be ~20 MB


# --- funding files ---------------------------------------------------------------------------


def test_read_funding_when_bitmex_then_interval_read_from_file(tmp_path: Path) -> None:
    """BitMEX rows carry their interval: 2000-01-02 is a day, 2000-01-01T08:00 is 8 h."""
    path = tmp_path / "funding.csv"
    path.write_text(
        "timestamp,symbol,fundingInterval,fundingRate,fundingRateDaily\n"
        "2016-06-04T12:00:00Z,XBTUSD,2000-01-02T00:00:00Z,7.88e-4,7.88e-4\n"
        "2016-06-04T20:00:00Z,XBTUSD,2000-01-01T08:00:00Z,2.5e-4,7.5e-4\n"
        "2016-06-05T04:00:00Z,XBTUSD,2000-01-01T00:00:00Z,2.5e-4,7.5e-4\n"
        "2016-06-05T12:00:00Z,XBTUSD,2000-01-01T08:00:00Z,nan,7.5e-4\n"
        "2020-03-13T04:00:00Z,XBTUSD,2000-01-01T08:00:00Z,-0.00375,-0.01125\n"
    )
    stats = ReplayStats()
    observations = list(read_funding(path, stats))
    assert observations == [
        FundingObservation(1_465_041_600 * NS_PER_S, 7.88e-4, 86_400.0),
        FundingObservation(1_465_070_400 * NS_PER_S, 2.5e-4, 28_800.0),
        FundingObservation(T0_NS + 4 * 3_600 * NS_PER_S, -0.00375, 28_800.0),
    ]
    assert stats.skipped_by_reason == {"bad_interval": 1, "bad_number": 1}


def test_read_funding_when_deribit_gzip_then_keyed_on_ms_timestamp(tmp_path: Path) -> None:
    """Deribit rows key on ``timestamp`` (ms) and quote ``interest_8h`` per 8 h."""
    path = tmp_path / "deribit.csv.gz"
    with gzip.open(path, "wt") as out:
        out.write(
            "time_dt,timestamp,prev_index_price,interest_8h,interest_1h,index_price,time_dt\n"
            "2020-03-13 07:00:00,1584082800000,4800.0,-0.0056,-0.0006,4900.0,2020-03-13 07:00:00\n"
            "2020-03-13 06:00:00,1584082800000,4800.0,-0.0050,-0.0006,4900.0,2020-03-13 06:00:00\n"
            "2020-03-13 08:00:00,1584086400000,4900.0,-0.0040,-0.0005,5000.0,2020-03-13 08:00:00\n"
        )
    stats = ReplayStats()
    observations = list(read_funding(path, stats))
    assert observations == [
        FundingObservation(1_584_082_800_000 * NS_PER_MS, -0.0056, 28_800.0),
        FundingObservation(1_584_086_400_000 * NS_PER_MS, -0.0040, 28_800.0),
    ]
    assert stats.skipped_by_reason == {"out_of_order": 1}


def test_read_funding_when_quantconnect_then_first_line_is_data(tmp_path: Path) -> None:
    """The header-less QuantConnect file keeps its first row; the interval is the given one."""
    path = tmp_path / "btcusd.csv"
    path.write_text("20221110 00:00:00,-0.00105074\n20221110 08:00:00,-0.00081\n")
    observations = list(read_funding(path))
    assert observations[0] == FundingObservation(1_668_038_400 * NS_PER_S, -0.00105074, 28_800.0)
    assert len(observations) == 2
    hourly = list(read_funding(path, default_interval_s=3_600.0))
    assert {o.interval_s for o in hourly} == {3_600.0}


def test_read_funding_when_unknown_format_then_bad_input(tmp_path: Path) -> None:
    """A file in none of the three formats is refused."""
    path = tmp_path / "funding.csv"
    path.write_text("when,rate\n2020-01-01,0.0001\n")
    with pytest.raises(BadInputError, match="unrecognised_header"):
        list(read_funding(path))


# --- replay ----------------------------------------------------------------------------------


def _write_replay_files(tmp_path: Path) -> tuple[Path, Path]:
    bars = tmp_path / "bars.csv"
    bars.write_text(BAR_HEADER + _bar_rows(3))
    funding = tmp_path / "funding.csv"
    funding.write_text(
        "timestamp,symbol,fundingInterval,fundingRate,fundingRateDaily\n"
        "2020-03-13T00:00:30Z,XBTUSD,2000-01-01T08:00:00Z,0.0001,0.0003\n"
        "2020-03-13T00:01:15Z,XBTUSD,2000-01-01T04:00:00Z,-0.00375,-0.0225\n"
    )
    return bars, funding


def test_replay_when_funding_file_then_latest_observation_at_or_before_tick(
    tmp_path: Path,
) -> None:
    """Before the first row funding is 0; a tick at an observation's time already sees it."""
    bars, funding = _write_replay_files(tmp_path)
    snaps = list(replay_snapshots(KEY, bars, funding, ReplayParams()))
    assert len(snaps) == 12
    seen = [(s.funding_rate, s.funding_interval_s) for s in snaps]
    assert seen[:2] == [(0.0, 28_800.0)] * 2
    assert seen[2:5] == [(0.0001, 28_800.0)] * 3  # 00:00:30 .. 00:01:00
    assert seen[5:] == [(-0.00375, 14_400.0)] * 7  # 00:01:15 onwards
    assert snaps[5].ts_funding_ns == T0_NS + 75 * NS_PER_S
    assert snaps[0].ts_funding_ns == T0_NS


def test_replay_when_no_funding_file_then_zero_rate_and_one_price(tmp_path: Path) -> None:
    """Without funding the rate is 0; index equals mark; no prediction; the book is derived."""
    bars, _ = _write_replay_files(tmp_path)
    params = ReplayParams(levels=3, spread_bps=2.0, default_funding_interval_s=3_600.0)
    snaps = list(replay_snapshots(KEY, bars, None, params))
    for snap in snaps:
        assert (snap.funding_rate, snap.funding_interval_s) == (0.0, 3_600.0)
        assert snap.index_price == snap.mark_price
        assert snap.predicted_funding_rate is None
        assert snap.ts_event_ns == snap.ts_recv_ns
        assert len(snap.bids) == len(snap.asks) == 3
        assert snap.spread_bps == pytest.approx(2.0, rel=1e-6)
    assert [s.mark_price for s in snaps[:4]] == [8_000.0, 8_001.0, 7_991.5, 7_992.5]


def test_replay_when_closed_early_then_files_released(tmp_path: Path) -> None:
    """Closing the replay iterator closes both readers (no ResourceWarning under -W error)."""
    bars, funding = _write_replay_files(tmp_path)
    source = replay_snapshots(KEY, bars, funding, ReplayParams())
    next(source)
    source.close()
    with pytest.raises(StopIteration):
        next(source)


# --- ClockedFeed -----------------------------------------------------------------------------


async def test_clocked_feed_when_fast_with_manual_clock_then_clock_follows_snapshots() -> None:
    """FAST sets a ManualClock to each snapshot's time before handing it over."""
    clock = ManualClock(start_ns=T0_NS)
    feed = ClockedFeed(synthetic_snapshots(KEY, 1, SyntheticParams(), T0_NS), clock, Pace.FAST)
    received = 0
    async for snap in feed.stream():
        assert clock.now_ns() == snap.ts_event_ns == snap.ts_recv_ns
        received += 1
        if received == 1_000:
            break
    assert clock.now_ns() == T0_NS + 999 * 250 * NS_PER_MS


async def test_clocked_feed_when_fast_then_wakes_sleepers_and_stays_cooperative() -> None:
    """A task sleeping on the ManualClock wakes once the replay passes its deadline."""
    clock = ManualClock(start_ns=T0_NS)
    woke_at: list[int] = []

    async def sleeper() -> None:
        await clock.sleep(10.0)
        woke_at.append(clock.now_ns())

    task = asyncio.create_task(sleeper())
    await asyncio.sleep(0)
    source = synthetic_snapshots(KEY, 1, SyntheticParams(), T0_NS)
    feed = ClockedFeed(source, clock, Pace.FAST, yield_every=10)
    async for snap in feed.stream():
        if snap.ts_event_ns >= T0_NS + 20 * NS_PER_S:
            break
    await task
    assert woke_at[0] >= T0_NS + 10 * NS_PER_S
    assert woke_at[0] < T0_NS + 20 * NS_PER_S  # woke while the replay was still running


async def test_clocked_feed_when_manual_clock_ahead_then_value_error() -> None:
    """A ManualClock that started after the replay cannot follow it, and says so."""
    clock = ManualClock(start_ns=T0_NS + NS_PER_S)
    feed = ClockedFeed(synthetic_snapshots(KEY, 1, SyntheticParams(), T0_NS), clock, Pace.FAST)
    with pytest.raises(ValueError, match="ahead"):
        async for _ in feed.stream():
            pass


async def test_clocked_feed_when_wall_pace_then_yields_on_schedule_in_the_present() -> None:
    """WALL yields each tick when the clock reaches it, stamped in clock time."""
    clock = ManualClock(start_ns=T0_NS + 3_600 * NS_PER_S)
    start_ns = clock.now_ns()
    feed = ClockedFeed(synthetic_snapshots(KEY, 1, SyntheticParams(), T0_NS), clock, Pace.WALL)
    stream = feed.stream()
    first = await anext(stream)
    assert first.ts_event_ns == first.ts_recv_ns == first.ts_funding_ns == start_ns
    pending = asyncio.ensure_future(anext(stream))
    await _spin()
    assert not pending.done()
    clock.advance(0.2)
    await _spin()
    assert not pending.done()
    clock.advance(0.05)
    await _eventually(pending.done)
    second = pending.result()
    assert second.ts_event_ns == second.ts_recv_ns == start_ns + 250 * NS_PER_MS
    assert second.mark_price != first.mark_price
    await feed.close()
    await stream.aclose()


async def test_clocked_feed_when_closed_while_waiting_then_stream_ends() -> None:
    """close() ends a WALL stream that is waiting for its next tick, and closes the source."""
    clock = ManualClock(start_ns=T0_NS)
    source = synthetic_snapshots(KEY, 1, SyntheticParams(), T0_NS)
    feed = ClockedFeed(source, clock, Pace.WALL)
    stream = feed.stream()
    await anext(stream)
    pending = asyncio.ensure_future(anext(stream))
    await _spin()
    assert not pending.done()
    await feed.close()
    await _eventually(pending.done)
    with pytest.raises(StopAsyncIteration):
        pending.result()
    with pytest.raises(StopIteration):
        next(source)


async def test_clocked_feed_when_closed_by_consumer_then_fast_stream_stops() -> None:
    """close() between two FAST snapshots stops the stream at the next read."""
    clock = ManualClock(start_ns=T0_NS)
    feed = ClockedFeed(synthetic_snapshots(KEY, 1, SyntheticParams(), T0_NS), clock, Pace.FAST)
    received = 0
    async for _ in feed.stream():
        received += 1
        if received == 5:
            await feed.close()
    assert received == 5
