"""What a replay remembers of one policy, in memory that stays flat in the number of ticks.

:class:`PolicyRecorder` is the :class:`scaler.ports.Telemetry` a replayed engine reports to (no
Prometheus server, no log line per decision). From every decision it keeps

- exact running figures: drawdown of equity in coin and in USD (peak to trough, on every
  decision), time spent in each trading state, entries into ``FROZEN`` and ``HALTED``, reason
  codes seen, orders by outcome, bad inputs and errors by kind;
- the timestamps of breaker trips (told by the replay driver, which reads the risk state's
  counter) -- events, not ticks, so they are few;
- plot series as :class:`BucketSeries`: per-minute aggregates (last, minimum or maximum per
  channel) that merge pairwise whenever they exceed ``max_points`` buckets, so a year of ticks
  ends as at most 5,000 points per channel and memory never grows with the input.

The time between two consecutive decisions is attributed to the state decided at the earlier one.
"""

from __future__ import annotations

import enum
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from scaler.domain.orders import OrderUpdate
from scaler.domain.records import DecisionRecord
from scaler.domain.types import NS_PER_S, InstrumentKey, TradingState

DEFAULT_MAX_POINTS = 5_000
MINUTE_NS = 60 * NS_PER_S
STATE_SEVERITY = {
    TradingState.ACTIVE: 0.0,
    TradingState.REDUCING: 1.0,
    TradingState.FROZEN: 2.0,
    TradingState.HALTED: 3.0,
}
"""The plotted value of each trading state; a bucket keeps the worst state it saw."""


class Reduce(enum.Enum):
    """How a bucket combines the values of one channel."""

    LAST = "last"
    MIN = "min"
    MAX = "max"


class Channel(enum.IntEnum):
    """The plotted series of a policy, and how each is reduced per bucket."""

    MARK = 0
    EQUITY_COIN = 1
    EQUITY_USD = 2
    TARGET_USD = 3
    ALLOWED_USD = 4
    ACTUAL_USD = 5
    LEVERAGE = 6
    MARGIN_RATIO = 7
    LIQUIDATION_DISTANCE = 8
    FUNDING_OBSERVED = 9
    FUNDING_PREDICTED = 10
    STATE = 11


REDUCERS: tuple[Reduce, ...] = (
    Reduce.LAST,  # mark
    Reduce.LAST,  # equity coin
    Reduce.LAST,  # equity USD
    Reduce.LAST,  # target
    Reduce.LAST,  # allowed
    Reduce.LAST,  # actual
    Reduce.MAX,  # leverage: the highest in the bucket
    Reduce.MIN,  # margin ratio: the lowest
    Reduce.MIN,  # liquidation distance: the closest
    Reduce.LAST,  # funding observed
    Reduce.LAST,  # funding predicted
    Reduce.MAX,  # state: the worst
)


def _combine(kind: Reduce, held: float, new: float) -> float:
    """``held`` and ``new`` reduced by ``kind``; NaN (no value) never wins over a number."""
    if math.isnan(new):
        return held
    if kind is Reduce.LAST or math.isnan(held):
        return new
    return min(held, new) if kind is Reduce.MIN else max(held, new)


class BucketSeries:
    """Channels of floats aggregated per time bucket, at most ``max_points`` buckets.

    Buckets start ``base_width_ns`` wide, aligned on the first timestamp floored to that width.
    When a new bucket would make more than ``max_points``, neighbours merge pairwise and the
    width doubles; the result is the same as having used the wider buckets from the start.
    Timestamps must not decrease. NaN means "no value" and is ignored by every reduction
    (a bucket whose values are all NaN stays NaN).
    """

    def __init__(
        self,
        reducers: Sequence[Reduce],
        base_width_ns: int = MINUTE_NS,
        max_points: int = DEFAULT_MAX_POINTS,
    ) -> None:
        if base_width_ns <= 0 or max_points < 2:
            raise ValueError("base_width_ns must be > 0 and max_points >= 2")
        self._reducers = tuple(reducers)
        self._width_ns = base_width_ns
        self._max_points = max_points
        self._t0_ns: int | None = None
        self._index: list[int] = []
        self._columns: list[list[float]] = [[] for _ in self._reducers]

    def __len__(self) -> int:
        return len(self._index)

    @property
    def width_ns(self) -> int:
        return self._width_ns

    def add(self, ts_ns: int, values: Sequence[float]) -> None:
        """Fold one sample of every channel into the bucket of ``ts_ns``."""
        if self._t0_ns is None:
            self._t0_ns = ts_ns - ts_ns % self._width_ns
        index = (ts_ns - self._t0_ns) // self._width_ns
        columns = self._columns
        if self._index and self._index[-1] == index:
            for column, kind, value in zip(columns, self._reducers, values, strict=True):
                column[-1] = _combine(kind, column[-1], value)
            return
        self._index.append(index)
        for column, value in zip(columns, values, strict=True):
            column.append(value)
        if len(self._index) > self._max_points:
            self._halve()

    def _halve(self) -> None:
        merged_index: list[int] = []
        merged: list[list[float]] = [[] for _ in self._reducers]
        for position, index in enumerate(self._index):
            half = index // 2
            if merged_index and merged_index[-1] == half:
                for out, column, kind in zip(merged, self._columns, self._reducers, strict=True):
                    out[-1] = _combine(kind, out[-1], column[position])
                continue
            merged_index.append(half)
            for out, column in zip(merged, self._columns, strict=True):
                out.append(column[position])
        self._index, self._columns = merged_index, merged
        self._width_ns *= 2

    def timestamps_ns(self) -> list[int]:
        """The start time of every bucket."""
        t0 = self._t0_ns or 0
        return [t0 + index * self._width_ns for index in self._index]

    def column(self, channel: int) -> list[float]:
        return list(self._columns[channel])


@dataclass(slots=True)
class Drawdown:
    """The largest peak-to-trough fall of a running value, as a fraction of the peak."""

    peak: float = -math.inf
    ts_peak_ns: int = 0
    max_fraction: float = 0.0
    max_amount: float = 0.0
    ts_max_peak_ns: int | None = None
    ts_max_trough_ns: int | None = None

    def update(self, value: float, ts_ns: int) -> None:
        if value > self.peak:
            self.peak, self.ts_peak_ns = value, ts_ns
            return
        if self.peak <= 0.0:
            return
        fraction = (self.peak - value) / self.peak
        if fraction > self.max_fraction:
            self.max_fraction = fraction
            self.max_amount = self.peak - value
            self.ts_max_peak_ns, self.ts_max_trough_ns = self.ts_peak_ns, ts_ns


def _finite(value: float | None) -> float:
    """The value, or NaN for ``None`` and infinities (a gap in a plot)."""
    if value is None or not math.isfinite(value):
        return math.nan
    return value


class PolicyRecorder:
    """The replay's :class:`scaler.ports.Telemetry` for one policy (see the module docstring)."""

    def __init__(self, name: str, max_points: int = DEFAULT_MAX_POINTS) -> None:
        self.name = name
        self.series = BucketSeries(REDUCERS, MINUTE_NS, max_points)
        self.drawdown_coin = Drawdown()
        self.drawdown_usd = Drawdown()
        self.time_in_state_ns: dict[TradingState, int] = dict.fromkeys(TradingState, 0)
        self.entries: Counter[TradingState] = Counter()
        self.reasons: Counter[str] = Counter()
        self.orders: Counter[str] = Counter()
        self.bad_inputs: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self.breaker_trips_ns: list[int] = []
        self.decisions = 0
        self.first: DecisionRecord | None = None
        self.last: DecisionRecord | None = None
        self.end_ns: int | None = None
        self.max_leverage = 0.0
        self.min_margin_ratio = math.inf
        self.min_liquidation_distance = math.inf

    # -- the Telemetry port -------------------------------------------------------------------

    def decision(self, record: DecisionRecord, changed: bool) -> None:
        """Fold one decision into the running figures and the plot series."""
        last = self.last
        if last is None:
            self.first = record
        else:
            self.time_in_state_ns[last.trading_state] += record.ts_ns - last.ts_ns
        if last is None or last.trading_state is not record.trading_state:
            self.entries[record.trading_state] += 1
        self.last = record
        self.decisions += 1
        if record.reasons:
            self.reasons.update(record.reasons)
        self._extremes(record)
        mark = _finite(record.mark_price)
        equity = _finite(record.equity_coin)
        equity_usd = equity * mark
        if not math.isnan(equity_usd):
            self.drawdown_coin.update(equity, record.ts_ns)
            self.drawdown_usd.update(equity_usd, record.ts_ns)
        self.series.add(
            record.ts_ns,
            (
                mark,
                equity,
                equity_usd,
                record.target_usd,
                record.recommended_usd,
                record.actual_usd,
                _finite(record.effective_leverage),
                _finite(record.margin_ratio),
                _finite(record.liquidation_distance),
                _finite(record.funding_observed),
                _finite(record.funding_predicted),
                STATE_SEVERITY[record.trading_state],
            ),
        )

    def _extremes(self, record: DecisionRecord) -> None:
        """Exact extremes over every decision (the plot buckets only approximate them)."""
        if record.actual_usd == 0.0:
            return  # flat: no leverage, no margin to watch
        if record.effective_leverage is not None:
            self.max_leverage = max(self.max_leverage, record.effective_leverage)
        if record.margin_ratio is not None:
            self.min_margin_ratio = min(self.min_margin_ratio, record.margin_ratio)
        if record.liquidation_distance is not None:
            self.min_liquidation_distance = min(
                self.min_liquidation_distance, record.liquidation_distance
            )

    def order_event(self, key: InstrumentKey, event: str, update: OrderUpdate | None) -> None:
        self.orders[event] += 1

    def order_round_trip(self, key: InstrumentKey, seconds: float) -> None:
        """Round trips on the in-process paper exchange take no simulated time: not recorded."""

    def bad_input(self, key: InstrumentKey | None, feed: str, reason: str) -> None:
        self.bad_inputs[f"{feed}:{reason}"] += 1

    def error(self, kind: str, detail: str) -> None:
        self.errors[kind] += 1

    def state_changed(self, key: InstrumentKey, previous: str, current: str, reasons: str) -> None:
        """Transitions are counted from the decisions themselves (``entries``)."""

    # -- told by the replay driver ------------------------------------------------------------

    def breaker_tripped(self, ts_ns: int) -> None:
        self.breaker_trips_ns.append(ts_ns)

    def finish(self, end_ns: int) -> None:
        """Attribute the time from the last decision to ``end_ns`` to its state (once)."""
        last = self.last
        if last is not None and self.end_ns is None and end_ns > last.ts_ns:
            self.time_in_state_ns[last.trading_state] += end_ns - last.ts_ns
        self.end_ns = end_ns
