"""Market feeds for the paper venue: a seeded synthetic market and a clock-paced stream.

Two layers, kept apart so each can be tested without the other:

- *sources* are plain, synchronous, infinite or finite iterators of :class:`MarketSnapshot`:
  :func:`synthetic_snapshots` here (the default market) and
  :func:`scaler.adapters.paper.replay.replay_snapshots` (recorded BitMEX bars);
- :class:`ClockedFeed` turns any source into a :class:`scaler.ports.MarketFeed`, paced by the
  injected :class:`scaler.ports.Clock` (``Pace.WALL``) or as fast as the consumer reads
  (``Pace.FAST``).

Both sources derive a book with :class:`BookShape`: ``levels`` levels a side of
``level_size_usd`` each, the best bid and ask ``spread_bps`` apart around the mark, then one
level every ``level_step_bps``.
"""

from __future__ import annotations

import asyncio
import enum
import math
import random
from collections.abc import AsyncGenerator, Iterator
from dataclasses import dataclass, replace

from scaler.clock import ManualClock
from scaler.domain.types import NS_PER_S, InstrumentKey, MarketSnapshot
from scaler.ports import Clock

SECONDS_PER_YEAR = 365.0 * 24.0 * 3_600.0
MAX_BASIS_BPS = 1_000.0
"""The synthetic basis is clamped to ±10 % so that ``mark = index·(1+basis)`` stays positive."""

Level = tuple[float, float]
"""One book level, ``(price, size_usd)``."""


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


@dataclass(frozen=True, slots=True)
class BookShape:
    """How a derived book looks around a centre price (the mark)."""

    spread_bps: float = 1.0
    levels: int = 10
    level_size_usd: float = 25_000.0
    level_step_bps: float = 1.0

    def __post_init__(self) -> None:
        _require(self.spread_bps > 0, "spread_bps must be > 0 so that bid < ask")
        _require(self.levels >= 1, "levels must be >= 1")
        _require(self.level_size_usd > 0, "level_size_usd must be > 0")
        _require(self.level_step_bps > 0, "level_step_bps must be > 0 so that levels are sorted")
        _require(
            self.spread_bps / 2 + (self.levels - 1) * self.level_step_bps < 10_000,
            "the deepest bid must stay above zero",
        )

    def around(self, centre_price: float) -> tuple[tuple[Level, ...], tuple[Level, ...]]:
        """Bid and ask levels, best first, around ``centre_price``."""
        half = self.spread_bps / 2.0
        bids = tuple(
            (
                centre_price * (1.0 - (half + i * self.level_step_bps) / 10_000.0),
                self.level_size_usd,
            )
            for i in range(self.levels)
        )
        asks = tuple(
            (
                centre_price * (1.0 + (half + i * self.level_step_bps) / 10_000.0),
                self.level_size_usd,
            )
            for i in range(self.levels)
        )
        return bids, asks


@dataclass(frozen=True, slots=True)
class SyntheticParams:
    """The synthetic market: a log-normal index with jumps, a mean-reverting basis and funding.

    Mean-reverting quantities are discrete AR(1) processes given by their mean, their
    stationary standard deviation and their half-life, so the defaults read as what one sees:
    the basis wanders a few bps around +1 bp with a two-minute half-life; the funding rate
    wanders about ±0.01 % around +0.01 % per 8 h with an 8 h half-life and is capped at ±0.375 %
    (BitMEX's cap).
    """

    start_price: float = 50_000.0
    tick_interval_s: float = 0.25
    annual_vol: float = 0.6
    jump_prob_per_tick: float = 1e-5
    """About one jump every seven hours at four ticks a second."""
    jump_scale: float = 0.01
    """Standard deviation of a jump's log size (1 %)."""
    basis_mean_bps: float = 1.0
    basis_vol_bps: float = 3.0
    basis_half_life_s: float = 120.0
    funding_mean: float = 0.0001
    funding_vol: float = 0.0001
    funding_half_life_s: float = 28_800.0
    funding_cap: float = 0.00375
    funding_interval_s: float = 28_800.0
    spread_bps: float = 1.0
    levels: int = 10
    level_size_usd: float = 25_000.0
    level_step_bps: float = 1.0

    def __post_init__(self) -> None:
        _require(self.start_price > 0, "start_price must be > 0")
        _require(self.tick_interval_s > 0, "tick_interval_s must be > 0")
        _require(self.annual_vol >= 0 and self.jump_scale >= 0, "volatilities must be >= 0")
        _require(0.0 <= self.jump_prob_per_tick <= 1.0, "jump_prob_per_tick must be in [0, 1]")
        _require(self.basis_vol_bps >= 0 and self.funding_vol >= 0, "volatilities must be >= 0")
        _require(self.basis_half_life_s > 0, "basis_half_life_s must be > 0")
        _require(self.funding_half_life_s > 0, "funding_half_life_s must be > 0")
        _require(self.funding_cap > 0, "funding_cap must be > 0")
        _require(self.funding_interval_s > 0, "funding_interval_s must be > 0")
        _ = self.book  # validates the book fields now rather than at the first tick

    @property
    def book(self) -> BookShape:
        return BookShape(self.spread_bps, self.levels, self.level_size_usd, self.level_step_bps)


class _AR1:
    """A discrete mean-reverting process sampled every ``dt_s``, clamped to ``±cap``."""

    def __init__(
        self,
        rng: random.Random,
        *,
        mean: float,
        sd: float,
        half_life_s: float,
        dt_s: float,
        cap: float,
    ) -> None:
        self._rng = rng
        self._mean = mean
        self._phi: float = 0.5 ** (dt_s / half_life_s)
        self._shock_sd = sd * math.sqrt(1.0 - self._phi**2)
        self._cap = cap

    def next_value(self, value: float) -> float:
        drawn = self._mean + self._phi * (value - self._mean) + self._rng.gauss(0.0, self._shock_sd)
        return min(self._cap, max(-self._cap, drawn))


class _SyntheticMarket:
    """The state of the synthetic market, advanced one tick at a time."""

    def __init__(self, rng: random.Random, p: SyntheticParams) -> None:
        dt_years = p.tick_interval_s / SECONDS_PER_YEAR
        self._rng = rng
        self._p = p
        self._sigma = p.annual_vol * math.sqrt(dt_years)
        self._drift = -0.5 * self._sigma**2
        self._basis = _AR1(
            rng,
            mean=p.basis_mean_bps,
            sd=p.basis_vol_bps,
            half_life_s=p.basis_half_life_s,
            dt_s=p.tick_interval_s,
            cap=MAX_BASIS_BPS,
        )
        self._funding = _AR1(
            rng,
            mean=p.funding_mean,
            sd=p.funding_vol,
            half_life_s=p.funding_half_life_s,
            dt_s=p.tick_interval_s,
            cap=p.funding_cap,
        )
        self.log_index = math.log(p.start_price)
        self.basis_bps = p.basis_mean_bps
        self.funding_rate = p.funding_mean
        self.next_funding_rate = self._funding.next_value(self.funding_rate)

    def step(self) -> None:
        shock = self._drift + self._sigma * self._rng.gauss(0.0, 1.0)
        if self._rng.random() < self._p.jump_prob_per_tick:
            shock += self._rng.gauss(0.0, self._p.jump_scale)
        self.log_index += shock
        self.basis_bps = self._basis.next_value(self.basis_bps)
        self.funding_rate = self.next_funding_rate
        self.next_funding_rate = self._funding.next_value(self.funding_rate)


def synthetic_snapshots(
    key: InstrumentKey, seed: int, params: SyntheticParams, start_ns: int
) -> Iterator[MarketSnapshot]:
    """An endless, seeded synthetic market, one snapshot every ``params.tick_interval_s``.

    The same ``seed`` and ``params`` give the same snapshots (a private ``random.Random``; the
    global RNG is never touched). ``index`` follows a log-normal walk with jumps, so it stays
    positive; ``mark = index·(1+basis)``; the book is derived around the mark. The funding rate
    is re-drawn every tick: ``funding_rate`` is the current value (``ts_funding_ns`` is the tick),
    ``predicted_funding_rate`` the value the process will take next. Event and receive
    timestamps are the tick time, ``start_ns + i·tick_interval``.
    """
    rng = random.Random(seed)  # noqa: S311 - a seeded market simulation, not cryptography
    market = _SyntheticMarket(rng, params)
    book = params.book
    tick_ns = round(params.tick_interval_s * NS_PER_S)
    ts_ns = start_ns
    while True:
        index = math.exp(market.log_index)
        mark = index * (1.0 + market.basis_bps / 10_000.0)
        bids, asks = book.around(mark)
        yield MarketSnapshot(
            key=key,
            ts_event_ns=ts_ns,
            ts_recv_ns=ts_ns,
            mark_price=mark,
            index_price=index,
            best_bid=bids[0][0],
            best_ask=asks[0][0],
            funding_rate=market.funding_rate,
            funding_interval_s=params.funding_interval_s,
            ts_funding_ns=ts_ns,
            predicted_funding_rate=market.next_funding_rate,
            bids=bids,
            asks=asks,
        )
        market.step()
        ts_ns += tick_ns


class Pace(enum.StrEnum):
    """How :class:`ClockedFeed` spaces its snapshots."""

    WALL = "wall"
    """Each snapshot when it is due by the clock, relative to the first; timestamps moved to now."""
    FAST = "fast"
    """As fast as the consumer reads; a :class:`ManualClock` is moved to each snapshot's time."""


class ClockedFeed:
    """A :class:`scaler.ports.MarketFeed` over a snapshot source, paced by an injected clock.

    ``Pace.WALL``: the first snapshot is yielded at once and the clock time then is ``t0``; the
    snapshot whose event time is ``d`` after the first one's is yielded when the clock reaches
    ``t0 + d`` (``clock.sleep``, so a :class:`ManualClock` paces it in tests). Every timestamp is
    shifted by ``t0 - first event time`` so that a synthetic or recorded market lives in the
    present (a strategy comparing ``ts_event_ns`` with ``clock.now_ns()`` sees fresh data), and
    ``ts_recv_ns`` is rewritten to ``clock.now_ns()`` at delivery.

    ``Pace.FAST``: no sleeping, timestamps are left as they are; ``await asyncio.sleep(0)``
    every ``yield_every`` snapshots keeps the loop cooperative. If the clock is a
    :class:`ManualClock` it is set to each snapshot's ``ts_event_ns`` before the snapshot is
    yielded, so a replay runs on simulated time; such a clock must not start after the first
    snapshot (it never moves backwards), or :meth:`stream` raises ``ValueError``.

    :meth:`close` ends the stream promptly, also while it waits for the next tick, and closes
    the source (releasing a replay's open files). One consumer, one :meth:`stream` call.
    """

    def __init__(
        self,
        snapshots: Iterator[MarketSnapshot],
        clock: Clock,
        pace: Pace,
        *,
        yield_every: int = 256,
    ) -> None:
        _require(yield_every >= 1, "yield_every must be >= 1")
        self._snapshots = snapshots
        self._clock = clock
        self._pace = pace
        self._yield_every = yield_every
        self._closed = asyncio.Event()

    async def stream(self) -> AsyncGenerator[MarketSnapshot, None]:
        paced = self._wall_paced() if self._pace is Pace.WALL else self._fast()
        count = 0
        try:
            async for snapshot in paced:
                if self._closed.is_set():
                    return
                yield snapshot
                count += 1
                if count % self._yield_every == 0:
                    await asyncio.sleep(0)
        finally:
            await paced.aclose()
            self._close_source()

    async def close(self) -> None:
        self._closed.set()
        self._close_source()

    async def _fast(self) -> AsyncGenerator[MarketSnapshot, None]:
        manual = self._clock if isinstance(self._clock, ManualClock) else None
        for index, snapshot in enumerate(self._snapshots):
            if manual is not None:
                if index == 0 and manual.now_ns() > snapshot.ts_event_ns:
                    raise ValueError(
                        "the ManualClock is ahead of the first snapshot and cannot move back; "
                        "start it at or before the first snapshot's ts_event_ns"
                    )
                manual.set(snapshot.ts_event_ns)
            yield snapshot

    async def _wall_paced(self) -> AsyncGenerator[MarketSnapshot, None]:
        shift_ns: int | None = None
        for snapshot in self._snapshots:
            if shift_ns is None:
                shift_ns = self._clock.now_ns() - snapshot.ts_event_ns
            delay_ns = snapshot.ts_event_ns + shift_ns - self._clock.now_ns()
            if delay_ns > 0 and not await self._sleep_unless_closed(delay_ns / NS_PER_S):
                return
            yield replace(
                snapshot,
                ts_event_ns=snapshot.ts_event_ns + shift_ns,
                ts_funding_ns=snapshot.ts_funding_ns + shift_ns,
                ts_recv_ns=self._clock.now_ns(),
            )

    async def _sleep_unless_closed(self, seconds: float) -> bool:
        """Sleep on the clock; ``False`` as soon as :meth:`close` is called."""
        sleeper = asyncio.ensure_future(self._clock.sleep(seconds))
        closer = asyncio.ensure_future(self._closed.wait())
        try:
            await asyncio.wait({sleeper, closer}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()
            closer.cancel()
            await asyncio.wait({sleeper, closer})
        return not self._closed.is_set()

    def _close_source(self) -> None:
        close = getattr(self._snapshots, "close", None)
        if callable(close):
            close()
