"""Replay of recorded market data: BitMEX minute bars merged with a funding history.

Everything here streams: files are read row by row (plain or gzip, detected by the gzip magic
bytes), so memory stays flat in the length of the input. A row that fails validation is not
an error for the whole replay: it becomes a :class:`BadInputError`, is counted in a
:class:`ReplayStats` (by reason, with the first few examples) and is skipped. A file whose
header is not one of the formats below raises :class:`BadInputError` (``unrecognised_header``).

Formats (see ``../shared/data/PROVENANCE.md``, sections A and B):

- BitMEX 1-minute bars (B1), open-stamped, UTC::

      open_time_utc,open,high,low,close,volume_contracts
      2020-03-11T00:00:00Z,7889.5,7889.5,7878,7878,1735150

- BitMEX funding (A1), ``fundingRate`` per ``fundingInterval`` (``2000-01-01T08:00:00Z`` is 8 h,
  ``2000-01-02T00:00:00Z`` is 24 h)::

      timestamp,symbol,fundingInterval,fundingRate,fundingRateDaily
      2020-03-13T04:00:00Z,XBTUSD,2000-01-01T08:00:00Z,-0.00375,-0.01125

- Deribit hourly funding and index (A2), keyed on ``timestamp`` (ms) because ``time_dt`` has a
  DST step; ``interest_8h`` is the rate per 8 h::

      time_dt,timestamp,prev_index_price,interest_8h,interest_1h,index_price,time_dt
      2019-04-30 12:00:00,1556622000000,5150.94,-0.000407397,-2.3552e-05,5185.14,2019-04-30 12:00:00

- QuantConnect Binance/Bybit funding (A3-A5), no header, UTC; the file carries no interval, so
  ``read_funding``'s ``default_interval_s`` (8 h) is used::

      20221016 08:00:00,-0.00002727
"""

from __future__ import annotations

import csv
import gzip
import itertools
import math
import re
from collections import Counter
from collections.abc import Callable, Generator, Iterable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TextIO, TypeVar

from scaler.adapters.paper.feeds import BookShape
from scaler.domain.types import NS_PER_MS, NS_PER_S, InstrumentKey, MarketSnapshot
from scaler.errors import BadInputError

_T = TypeVar("_T")

MAX_SKIP_EXAMPLES = 20
EIGHT_HOURS_S = 28_800.0
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_BITMEX_INTERVAL_ZERO = datetime(2000, 1, 1, tzinfo=UTC)
_QUANTCONNECT_TIME = re.compile(r"\d{8} \d{2}:\d{2}:\d{2}")
_BAR_COLUMNS = ("open_time_utc", "open", "high", "low", "close", "volume_contracts")


@dataclass(frozen=True, slots=True)
class Bar:
    """One OHLCV bar as recorded (no quirk applied), stamped with its open time."""

    ts_open_ns: int
    open: float
    high: float
    low: float
    close: float
    volume: float
    interval_s: float = 60.0


@dataclass(frozen=True, slots=True)
class FundingObservation:
    """A funding rate observed at ``ts_ns``, for one interval of ``interval_s``."""

    ts_ns: int
    rate: float
    interval_s: float


@dataclass(slots=True)
class ReplayStats:
    """What the readers accepted and skipped; one object may be shared by several readers."""

    rows_ok: int = 0
    rows_skipped: int = 0
    skipped_by_reason: Counter[str] = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)
    """The first :data:`MAX_SKIP_EXAMPLES` skips, as ``file:line: reason: detail``."""

    def record_skip(self, source: str, line_no: int, error: BadInputError) -> None:
        self.rows_skipped += 1
        self.skipped_by_reason[error.reason] += 1
        if len(self.examples) < MAX_SKIP_EXAMPLES:
            self.examples.append(f"{source}:{line_no}: {error}")


@dataclass(frozen=True, slots=True)
class ReplayParams:
    """How bars become snapshots: ticks per bar and the shape of the derived book.

    ``default_funding_interval_s`` applies (with a rate of 0) when there is no funding file or
    before its first observation.
    """

    ticks_per_bar: int = 4
    spread_bps: float = 1.0
    levels: int = 10
    level_size_usd: float = 25_000.0
    level_step_bps: float = 1.0
    default_funding_interval_s: float = EIGHT_HOURS_S

    def __post_init__(self) -> None:
        if self.ticks_per_bar < 4:
            raise ValueError("ticks_per_bar must be >= 4 to visit open, high, low and close")
        if self.default_funding_interval_s <= 0:
            raise ValueError("default_funding_interval_s must be > 0")
        _ = self.book  # validates the book fields now rather than at the first tick

    @property
    def book(self) -> BookShape:
        return BookShape(self.spread_bps, self.levels, self.level_size_usd, self.level_step_bps)


# --- parsing helpers -------------------------------------------------------------------------


@contextmanager
def _open_text(path: Path) -> Iterator[TextIO]:
    with path.open("rb") as probe:
        is_gzip = probe.read(2) == b"\x1f\x8b"
    if is_gzip:
        with gzip.open(path, "rt", encoding="utf-8", newline="") as text:
            yield text
    else:
        with path.open(encoding="utf-8", newline="") as text:
            yield text


def _number(text: str, column: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise BadInputError("bad_number", f"{column}={text!r}") from None
    if not math.isfinite(value):
        raise BadInputError("bad_number", f"{column}={text!r}")
    return value


def _positive(text: str, column: str) -> float:
    value = _number(text, column)
    if value <= 0:
        raise BadInputError("non_positive_price", f"{column}={text!r}")
    return value


def _iso_datetime(text: str) -> datetime:
    """An ISO-8601 time; UTC when it carries no offset."""
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise BadInputError("bad_timestamp", repr(text)) from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _ns(moment: datetime) -> int:
    return (moment - _EPOCH) // timedelta(microseconds=1) * 1_000


def _column_indices(header: list[str], wanted: Iterable[str], path: Path) -> dict[str, int]:
    missing = [name for name in wanted if name not in header]
    if missing:
        raise BadInputError("unrecognised_header", f"{path}: missing {', '.join(missing)}")
    return {name: header.index(name) for name in wanted}


def _checked_rows(
    path: Path,
    rows: Iterable[tuple[int, list[str]]],
    parse: Callable[[list[str]], _T],
    ts_of: Callable[[_T], int],
    stats: ReplayStats,
) -> Iterator[_T]:
    """Parse numbered rows; skip (and count) bad, duplicate or backwards rows."""
    last_ts: int | None = None
    for line_no, row in rows:
        if not row:
            continue
        try:
            item = parse(row)
            if last_ts is not None and ts_of(item) <= last_ts:
                raise BadInputError("out_of_order", "timestamp not after the previous row's")
        except BadInputError as error:
            stats.record_skip(path.name, line_no, error)
            continue
        last_ts = ts_of(item)
        stats.rows_ok += 1
        yield item


def _numbered(reader: Iterator[list[str]]) -> Iterator[tuple[int, list[str]]]:
    line_no = 1
    for row in reader:
        line_no += 1
        yield line_no, row


# --- bars ------------------------------------------------------------------------------------


def _bar_parser(cols: dict[str, int], interval_s: float) -> Callable[[list[str]], Bar]:
    width = max(cols.values()) + 1

    def parse(row: list[str]) -> Bar:
        if len(row) < width:
            raise BadInputError("column_count", f"{len(row)} columns, expected {width}")
        open_ = _positive(row[cols["open"]], "open")
        high = _positive(row[cols["high"]], "high")
        low = _positive(row[cols["low"]], "low")
        close = _positive(row[cols["close"]], "close")
        volume = _number(row[cols["volume_contracts"]], "volume_contracts")
        if volume < 0:
            raise BadInputError("bad_number", f"volume_contracts={volume}")
        if high < low or not min(low, open_) <= close <= max(high, open_):
            raise BadInputError("inconsistent_range", f"o={open_} h={high} l={low} c={close}")
        ts_ns = _ns(_iso_datetime(row[cols["open_time_utc"]]))
        return Bar(ts_ns, open_, high, low, close, volume, interval_s)

    return parse


def read_minute_bars(
    path: Path, stats: ReplayStats | None = None, *, interval_s: float = 60.0
) -> Generator[Bar, None, None]:
    """Stream the bars of a BitMEX bar CSV (plain or gzip), skipping and counting bad rows.

    Values are returned as recorded; :func:`expand_bar` applies the BitMEX high/low quirk.
    A row is bad when a column is missing or not a number, a price is not positive, the
    volume is negative, ``high < low``, the close lies outside ``[min(low, open),
    max(high, open)]``, or its time is not after the previous row's. ``interval_s`` is the bar
    length (60 for the minute files, 3,600 for the hourly one).
    """
    stats = stats if stats is not None else ReplayStats()
    with _open_text(path) as text:
        reader = csv.reader(text)
        cols = _column_indices(next(reader, []), _BAR_COLUMNS, path)
        yield from _checked_rows(
            path, _numbered(reader), _bar_parser(cols, interval_s), _bar_ts, stats
        )


def _bar_ts(bar: Bar) -> int:
    return bar.ts_open_ns


def expand_bar(bar: Bar, ticks_per_bar: int = 4) -> tuple[tuple[int, float], ...]:
    """A deterministic intrabar path ``(ts_ns, price)`` that visits the bar's O, H, L and C.

    BitMEX's ``high``/``low`` cover only the trades inside the bin while ``open`` is the
    previous close, so the extremes are taken as ``max(high, open)`` and ``min(low, open)``.
    An up (or flat) bar goes open, low, high, close; a down bar open, high, low, close. Ticks are
    evenly spaced from the bar's open time (0, 15, 30, 45 s for four ticks a minute); with more
    than four ticks, the four prices sit at evenly spread ticks and the ticks between them are
    interpolated linearly.
    """
    if ticks_per_bar < 4:
        raise ValueError("ticks_per_bar must be >= 4 to visit open, high, low and close")
    high = max(bar.high, bar.open)
    low = min(bar.low, bar.open)
    if bar.close >= bar.open:
        anchors = (bar.open, low, high, bar.close)
    else:
        anchors = (bar.open, high, low, bar.close)
    last = ticks_per_bar - 1
    at = [round(k * last / 3) for k in range(4)]
    step_ns = round(bar.interval_s * NS_PER_S) // ticks_per_bar
    path: list[tuple[int, float]] = []
    segment = 0
    for i in range(ticks_per_bar):
        while segment < 2 and i > at[segment + 1]:
            segment += 1
        start, end = at[segment], at[segment + 1]
        weight = (i - start) / (end - start)
        price = anchors[segment] + (anchors[segment + 1] - anchors[segment]) * weight
        path.append((bar.ts_open_ns + i * step_ns, price))
    return tuple(path)


# --- funding ---------------------------------------------------------------------------------


def _bitmex_funding(cols: dict[str, int]) -> Callable[[list[str]], FundingObservation]:
    width = max(cols.values()) + 1

    def parse(row: list[str]) -> FundingObservation:
        if len(row) < width:
            raise BadInputError("column_count", f"{len(row)} columns, expected {width}")
        interval = _iso_datetime(row[cols["fundingInterval"]]) - _BITMEX_INTERVAL_ZERO
        if interval <= timedelta(0):
            raise BadInputError("bad_interval", repr(row[cols["fundingInterval"]]))
        return FundingObservation(
            _ns(_iso_datetime(row[cols["timestamp"]])),
            _number(row[cols["fundingRate"]], "fundingRate"),
            interval.total_seconds(),
        )

    return parse


def _deribit_funding(cols: dict[str, int]) -> Callable[[list[str]], FundingObservation]:
    width = max(cols.values()) + 1

    def parse(row: list[str]) -> FundingObservation:
        if len(row) < width:
            raise BadInputError("column_count", f"{len(row)} columns, expected {width}")
        try:
            ts_ms = int(row[cols["timestamp"]])
        except ValueError:
            raise BadInputError("bad_timestamp", repr(row[cols["timestamp"]])) from None
        rate = _number(row[cols["interest_8h"]], "interest_8h")
        return FundingObservation(ts_ms * NS_PER_MS, rate, EIGHT_HOURS_S)

    return parse


def _quantconnect_funding(interval_s: float) -> Callable[[list[str]], FundingObservation]:
    def parse(row: list[str]) -> FundingObservation:
        if len(row) < 2:
            raise BadInputError("column_count", f"{len(row)} columns, expected 2")
        try:
            moment = datetime.strptime(row[0], "%Y%m%d %H:%M:%S").replace(tzinfo=UTC)
        except ValueError:
            raise BadInputError("bad_timestamp", repr(row[0])) from None
        return FundingObservation(_ns(moment), _number(row[1], "rate"), interval_s)

    return parse


def read_funding(
    path: Path, stats: ReplayStats | None = None, *, default_interval_s: float = EIGHT_HOURS_S
) -> Generator[FundingObservation, None, None]:
    """Stream a funding history, recognising the BitMEX, Deribit or QuantConnect format.

    The format is told by the first line (see the module docstring). ``default_interval_s`` is
    used only for the QuantConnect files, which do not carry the interval.
    """
    stats = stats if stats is not None else ReplayStats()
    with _open_text(path) as text:
        reader = csv.reader(text)
        first = next(reader, [])
        rows = _numbered(reader)
        parse: Callable[[list[str]], FundingObservation]
        if {"timestamp", "fundingInterval", "fundingRate"} <= set(first):
            parse = _bitmex_funding(
                _column_indices(first, ("timestamp", "fundingInterval", "fundingRate"), path)
            )
        elif {"timestamp", "interest_8h"} <= set(first):
            parse = _deribit_funding(_column_indices(first, ("timestamp", "interest_8h"), path))
        elif first and _QUANTCONNECT_TIME.fullmatch(first[0]):
            parse = _quantconnect_funding(default_interval_s)
            rows = itertools.chain([(1, first)], rows)
        else:
            raise BadInputError("unrecognised_header", f"{path}: {first[:4]!r}")
        yield from _checked_rows(path, rows, parse, _funding_ts, stats)


def _funding_ts(observation: FundingObservation) -> int:
    return observation.ts_ns


class _FundingCursor:
    """The observation in force at a time, for times asked in non-decreasing order."""

    def __init__(self, observations: Iterator[FundingObservation]) -> None:
        self._source = observations
        self._current: FundingObservation | None = None
        self._next = next(observations, None)

    def in_force_at(self, ts_ns: int) -> FundingObservation | None:
        while self._next is not None and self._next.ts_ns <= ts_ns:
            self._current = self._next
            self._next = next(self._source, None)
        return self._current


# --- snapshots -------------------------------------------------------------------------------


def replay_snapshots(
    key: InstrumentKey,
    bars_path: Path,
    funding_path: Path | None,
    params: ReplayParams,
    stats: ReplayStats | None = None,
) -> Generator[MarketSnapshot, None, None]:
    """Recorded bars as snapshots: :func:`expand_bar` ticks merged with the funding in force.

    The bar files carry one price (the trades of one venue), so ``index_price`` equals
    ``mark_price`` equals the path price; a basis-driven scenario needs the synthetic feed.
    The funding in force at a tick is the latest observation at or before it (rate, interval
    and ``ts_funding_ns`` from the file); with no funding file or before its first row it is
    0 for ``params.default_funding_interval_s``, stamped at the tick.
    ``predicted_funding_rate`` is ``None``: the files hold no venue prediction. The book is
    derived around the price like the synthetic one. ``ts_event_ns = ts_recv_ns`` = tick time.
    Both files are read lazily and closed when the iterator is closed or exhausted.
    """
    stats = stats if stats is not None else ReplayStats()
    funding_source = (
        read_funding(funding_path, stats) if funding_path is not None else _no_funding()
    )
    bars = read_minute_bars(bars_path, stats)
    with closing(bars), closing(funding_source):
        funding = _FundingCursor(funding_source)
        for bar in bars:
            for ts_ns, price in expand_bar(bar, params.ticks_per_bar):
                yield _snapshot(key, ts_ns, price, funding.in_force_at(ts_ns), params)


def _no_funding() -> Generator[FundingObservation, None, None]:
    yield from ()


def _snapshot(
    key: InstrumentKey,
    ts_ns: int,
    price: float,
    funding: FundingObservation | None,
    params: ReplayParams,
) -> MarketSnapshot:
    bids, asks = params.book.around(price)
    if funding is None:
        funding = FundingObservation(ts_ns, 0.0, params.default_funding_interval_s)
    return MarketSnapshot(
        key=key,
        ts_event_ns=ts_ns,
        ts_recv_ns=ts_ns,
        mark_price=price,
        index_price=price,
        best_bid=bids[0][0],
        best_ask=asks[0][0],
        funding_rate=funding.rate,
        funding_interval_s=funding.interval_s,
        ts_funding_ns=funding.ts_ns,
        bids=bids,
        asks=asks,
    )
