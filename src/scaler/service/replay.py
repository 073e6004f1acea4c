"""``scaler replay``: the daemon's own engine, risk layer and paper exchange on recorded data.

Nothing here simulates the daemon: the configured policy is the :class:`Engine` that
``scaler run`` builds, on a :class:`PaperExchange` built from the same settings, with an
in-memory journal and a recording telemetry. What differs is who drives it. Instead of the
engine's free-running tasks (feed reader, ticker, decider), :class:`Replay` walks the recorded
snapshots one by one, as fast as the machine allows and in the same order every time:

1. the :class:`ManualClock` is set to the tick's time (simulated time; nothing sleeps);
2. every policy's exchange receives the tick (funding settles, resting orders fill, the mark
   liquidates);
3. the engine validates it (:meth:`Engine.accept`, the feed reader's path) and takes one
   :meth:`Engine.step`; a baseline rebalances.

Baselines are the "standard approach" with no risk layer: hold ``leverage x equity`` (in USD,
at the mark), re-planned on every tick and traded only when the gap exceeds a band
(``max(one lot, band x |target|)``; by default the configured ``dead_band_fraction``), with the
same order planner, on their own exchange with the same starting balance and the same ticks.

Two replay-specific choices, both documented in the README:

- the engine decides on every tick only; the daemon's one-second ticker re-decisions would see
  the same snapshot and, with recorded ticks 15 s apart, a stale mark;
- a recorded funding rate is delivered with every tick while it is within its own interval
  (``ts_funding_ns`` is the tick's time, as a venue's ticker carries the current rate); a rate
  older than its interval keeps its recorded time and the stale-funding rule sees the gap.
"""

from __future__ import annotations

import math
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol

from scaler.adapters.paper.exchange import PaperExchange
from scaler.clock import ManualClock
from scaler.domain import inverse
from scaler.domain.orders import OrderUpdate
from scaler.domain.planning import PlanningConfig, plan_orders
from scaler.domain.records import DecisionRecord
from scaler.domain.sizing import round_to_lots
from scaler.domain.types import (
    NS_PER_S,
    AccountSnapshot,
    InstrumentKey,
    MarketSnapshot,
    Mode,
    TradingState,
)
from scaler.errors import BadInputError, RejectedError, VenueError
from scaler.ports import Clock
from scaler.service.engine import Engine
from scaler.service.replay_progress import Progress
from scaler.service.replay_recorder import PolicyRecorder

PROGRESS_EVERY_TICKS = 1_024
"""Ticks between progress reports (the first tick is reported, to anchor the bar)."""


@dataclass(frozen=True, slots=True)
class ReplayOptions:
    """What ``scaler replay`` was asked for (the policy itself comes from the settings)."""

    bars_path: Path
    funding_path: Path | None = None
    from_ns: int | None = None
    to_ns: int | None = None
    baseline_leverages: tuple[float, ...] = (20.0,)
    baseline_band_fraction: float | None = None
    """Rebalancing band of the baselines; ``None``: the configured ``risk.dead_band_fraction``."""
    out_dir: Path = Path("replay-out")
    plots: bool = True


class Policy(Protocol):
    """One policy under replay: its own exchange, its recorder, and what it does on a tick."""

    name: str
    kind: str
    exchange: PaperExchange
    recorder: PolicyRecorder

    async def on_tick(self, snapshot: MarketSnapshot, now_ns: int) -> None: ...


class EnginePolicy:
    """The configured daemon policy: the engine, stepped once per accepted tick."""

    kind = "daemon"

    def __init__(
        self,
        name: str,
        engine: Engine,
        exchange: PaperExchange,
        recorder: PolicyRecorder,
        key: InstrumentKey,
    ) -> None:
        self.name = name
        self.engine = engine
        self.exchange = exchange
        self.recorder = recorder
        self._runtime = engine.runtimes[key]

    async def on_tick(self, snapshot: MarketSnapshot, now_ns: int) -> None:
        if not self.engine.accept(snapshot):
            return
        runtime = self._runtime
        trips = runtime.risk.breaker_trips
        try:
            await self.engine.step(runtime)
        except VenueError as exc:  # the daemon counts these and goes on; so does the replay
            self.recorder.error(type(exc).__name__, str(exc))
        if runtime.risk.breaker_trips > trips:
            self.recorder.breaker_tripped(now_ns)


class ConstantLeveragePolicy:
    """A baseline with no risk layer: ``leverage x equity`` at the mark, rebalanced."""

    kind = "constant_leverage"

    def __init__(
        self,
        exchange: PaperExchange,
        recorder: PolicyRecorder,
        key: InstrumentKey,
        *,
        leverage: float,
        side: int,
        band_fraction: float,
        planning: PlanningConfig,
    ) -> None:
        self.name = recorder.name
        self.exchange = exchange
        self.recorder = recorder
        self.leverage = leverage
        self._key = key
        self._side = side
        self._band_fraction = band_fraction
        self._planning = planning
        self._next_seq = 1

    async def on_tick(self, snapshot: MarketSnapshot, now_ns: int) -> None:
        exchange, key, lot = self.exchange, self._key, self._planning.lot_size_usd
        account = exchange.account_snapshot(key)
        equity = account.equity_coin
        target = round_to_lots(
            self._side * self.leverage * max(equity, 0.0) * snapshot.mark_price, lot
        )
        current = account.position_usd
        band = max(lot, self._band_fraction * abs(target))
        allowed = target if abs(target - current) >= band else current
        plan = plan_orders(
            snapshot,
            allowed,
            current,
            exchange.list_open(key),
            self._planning,
            now_ns,
            self._next_seq,
            reduce_only_mode=False,
        )
        for client_order_id in plan.cancels:
            self._report(exchange.cancel(key, client_order_id))
        self._next_seq = plan.next_seq
        for request in plan.orders:
            self.recorder.order_event(key, "intended", None)
            try:
                self._report(exchange.place(request))
            except RejectedError:
                self.recorder.order_event(key, "rejected", None)
        self.recorder.decision(_baseline_record(snapshot, account, target, allowed, now_ns), False)

    def _report(self, update: OrderUpdate) -> None:
        self.recorder.order_event(update.key, update.status.value, update)


def _baseline_record(
    market: MarketSnapshot,
    account: AccountSnapshot,
    target_usd: float,
    allowed_usd: float,
    now_ns: int,
) -> DecisionRecord:
    """The figures a baseline would publish, computed as the daemon computes its own."""
    mark, equity, position = market.mark_price, account.equity_coin, account.position_usd
    mm_coin = account.maintenance_margin_coin or 0.0
    return DecisionRecord(
        key=market.key,
        ts_ns=now_ns,
        mode=Mode.AUTO,
        trading_state=TradingState.ACTIVE,
        mark_price=mark,
        index_price=market.index_price,
        funding_observed=market.funding_rate,
        funding_predicted=None,
        target_usd=target_usd,
        recommended_usd=allowed_usd,
        actual_usd=position,
        equity_coin=equity,
        margin_ratio=inverse.margin_ratio(equity, mm_coin),
        effective_leverage=inverse.effective_leverage(position, mark, equity),
        liquidation_price=account.liquidation_price,
        liquidation_distance=inverse.liquidation_distance(
            mark, account.liquidation_price, position
        ),
        reasons=(),
        rules=(),
        details=(),
        latency_s=None,
        feed_age_s={},
    )


# --- the tape --------------------------------------------------------------------------------


def replay_tape(
    snapshots: Iterator[MarketSnapshot], from_ns: int | None, to_ns: int | None
) -> Generator[MarketSnapshot, None, None]:
    """The snapshots with ``from_ns <= ts_event_ns < to_ns``, funding stamped with the tick.

    A recorded funding rate is stamped when it was set, while a venue's ticker delivers the
    current rate with every message: within its own interval the rate in force gets the
    tick's time. Past its interval it keeps its recorded time, so a hole in the funding history
    shows as a stale funding feed. Reading stops at ``to_ns``; the source is closed when this
    generator ends or is closed.
    """
    try:
        for snapshot in snapshots:
            ts_ns = snapshot.ts_event_ns
            if from_ns is not None and ts_ns < from_ns:
                continue
            if to_ns is not None and ts_ns >= to_ns:
                return
            age_ns = ts_ns - snapshot.ts_funding_ns
            if 0 < age_ns <= snapshot.funding_interval_s * NS_PER_S:
                yield replace(snapshot, ts_funding_ns=ts_ns)
            else:
                yield snapshot
    finally:
        _close(snapshots)


def _close(source: object) -> None:
    close = getattr(source, "close", None)
    if callable(close):
        close()


@dataclass(slots=True)
class Tape:
    """What was replayed: tick count, time span and the range of the mark."""

    ticks: int = 0
    first_ns: int | None = None
    last_ns: int | None = None
    first_mark: float = math.nan
    last_mark: float = math.nan
    low_mark: float = math.inf
    high_mark: float = -math.inf

    def add(self, snapshot: MarketSnapshot) -> None:
        mark = snapshot.mark_price
        if self.first_ns is None:
            self.first_ns, self.first_mark = snapshot.ts_event_ns, mark
        self.last_ns, self.last_mark = snapshot.ts_event_ns, mark
        self.ticks += 1
        self.low_mark = min(self.low_mark, mark)
        self.high_mark = max(self.high_mark, mark)


@dataclass(slots=True)
class ReplayOutcome:
    """The tape and every policy at the end, plus the wall time it took (never in the JSON)."""

    tape: Tape
    policies: Sequence[Policy]
    wall_s: float = 0.0
    ticks_per_s: float = 0.0


class Replay:
    """Drives policies over a snapshot tape on simulated time (see the module docstring)."""

    def __init__(
        self,
        snapshots: Iterator[MarketSnapshot],
        clock: ManualClock,
        policies: Sequence[Policy],
        wall: Clock,
        progress: Progress | None = None,
    ) -> None:
        self._snapshots = snapshots
        self._clock = clock
        self._policies = tuple(policies)
        self._wall = wall
        self._progress = progress

    async def run(self) -> ReplayOutcome:
        """Replay every tick, then close the source; the outcome holds every policy."""
        tape = Tape()
        started_ns = self._wall.now_ns()
        try:
            for snapshot in self._snapshots:
                await self._tick(snapshot)
                tape.add(snapshot)
                if self._progress is not None and tape.ticks % PROGRESS_EVERY_TICKS == 1:
                    self._progress.update(snapshot.ts_event_ns, tape.ticks)
        finally:
            _close(self._snapshots)
            if self._progress is not None:
                if tape.last_ns is not None:
                    self._progress.update(tape.last_ns, tape.ticks, force=True)
                self._progress.close()
        for policy in self._policies:
            policy.recorder.finish(tape.last_ns or 0)
        wall_s = max((self._wall.now_ns() - started_ns) / NS_PER_S, 1e-9)
        return ReplayOutcome(tape, self._policies, wall_s, tape.ticks / wall_s)

    async def _tick(self, snapshot: MarketSnapshot) -> None:
        now_ns = snapshot.ts_event_ns
        self._clock.set(now_ns)
        for policy in self._policies:
            try:
                policy.exchange.on_market(snapshot)
            except BadInputError as exc:
                policy.recorder.bad_input(snapshot.key, "market", exc.reason)
                continue
            await policy.on_tick(snapshot, now_ns)
