"""A rig for driving the whole engine loop in-process on a fake clock.

The rig wires what ``scaler.app`` wires for ``scaler run`` (paper exchange behind a
:class:`PaperVenue`, real SQLite journal, Prometheus metrics through the :class:`Observer`), but
the market is a :class:`PushFeed` the test drives and time is a :class:`ManualClock`. Between the
engine and the venue sits :class:`Tap`, a transparent Broker that remembers every order it was
asked to send, whether its intent was already journaled at that moment, and the trading state of
the decision that sent it.

The paper broker never suspends, so one engine step runs to completion without yielding to the
event loop: once a step is seen to have started (``dirty`` cleared after the market arrived), it
has finished, orders included.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from scaler.adapters.journal import SqliteJournal
from scaler.adapters.paper import BYBIT_BTC_INVERSE_TIERS, PaperExchange, PaperInstrument
from scaler.adapters.paper.venue import PaperVenue
from scaler.clock import ManualClock
from scaler.domain.funding import FundingPredictorConfig
from scaler.domain.inverse import MarginSchedule
from scaler.domain.orders import Fill, OrderRequest, OrderStatus, OrderUpdate
from scaler.domain.planning import ExecutionStyle, PlanningConfig
from scaler.domain.records import DecisionRecord
from scaler.domain.risk import RiskLimits
from scaler.domain.sizing import SizingConfig
from scaler.domain.types import AccountSnapshot, InstrumentKey, MarketSnapshot, Mode, TradingState
from scaler.observability.metrics import Metrics
from scaler.observability.telemetry import Observer
from scaler.ports import Broker
from scaler.service.engine import Engine, EngineConfig, InstrumentRuntime, InstrumentSpec
from tests.support import KEY, PushFeed, eventually, snapshot

LOT_USD = 10
TICK = 0.5
LEVERAGE = 3.0
FUNDING_RATE = 0.0001
START_MARK = 50_000.0


@dataclass(frozen=True, slots=True)
class Sent:
    """One order the engine handed to the broker, and what was true when it did."""

    request: OrderRequest
    journaled_before: bool
    state: TradingState | None
    position_before_usd: float


class Passthrough:
    """A Broker that forwards every call to ``inner``; subclasses override what they watch."""

    def __init__(self, inner: Broker) -> None:
        self.inner = inner

    async def place_order(self, request: OrderRequest) -> OrderUpdate:
        return await self.inner.place_order(request)

    async def cancel_order(self, key: InstrumentKey, client_order_id: str) -> OrderUpdate:
        return await self.inner.cancel_order(key, client_order_id)

    async def fetch_order(self, key: InstrumentKey, client_order_id: str) -> OrderUpdate | None:
        return await self.inner.fetch_order(key, client_order_id)

    async def open_orders(self, key: InstrumentKey) -> list[OrderUpdate]:
        return await self.inner.open_orders(key)

    async def account(self, key: InstrumentKey) -> AccountSnapshot:
        return await self.inner.account(key)

    async def fills_since(self, key: InstrumentKey, ts_ns: int) -> list[Fill]:
        return await self.inner.fills_since(key, ts_ns)


class Tap(Passthrough):
    """Records every ``place_order`` with what was true when the engine called it."""

    def __init__(self, inner: Broker, rig: Rig) -> None:
        super().__init__(inner)
        self._rig = rig
        self.sent: list[Sent] = []

    async def place_order(self, request: OrderRequest) -> OrderUpdate:
        runtime = self._rig.engine.runtimes[request.key]
        self.sent.append(
            Sent(
                request,
                self._rig.journal.intent(request.client_order_id) is not None,
                runtime.last.trading_state if runtime.last else None,
                float(self._rig.exchange.position(request.key).size_usd),
            )
        )
        return await self.inner.place_order(request)


def make_config(
    *,
    prefix: str = "scl",
    leverage: float = LEVERAGE,
    max_slice_usd: float = 50_000.0,
    style: ExecutionStyle = ExecutionStyle.MARKETABLE,
    risk: RiskLimits | None = None,
    cancel_on_shutdown: bool = True,
) -> EngineConfig:
    """The engine configuration ``scaler.app.engine_config`` builds, with test knobs."""
    return EngineConfig(
        sizing=SizingConfig(side=1, target_leverage=leverage, lot_size_usd=LOT_USD),
        funding=FundingPredictorConfig(interval_s=28_800.0),
        risk=risk or RiskLimits(),
        planning=PlanningConfig(
            lot_size_usd=LOT_USD,
            tick_size=TICK,
            max_slice_usd=max_slice_usd,
            style=style,
            client_id_prefix=prefix,
        ),
        decide_interval_s=1.0,
        # The throttler sleeps in wall time; keep it out of the way of a fast test.
        max_orders_per_s=10_000.0,
        cancel_on_shutdown=cancel_on_shutdown,
    )


@dataclass(repr=False)
class Rig:
    """One engine on a fake clock, with its venue, journal and metrics; restartable."""

    tmp_path: Path
    config: EngineConfig = field(default_factory=make_config)
    schedule: MarginSchedule = BYBIT_BTC_INVERSE_TIERS
    initial_balance_coin: float = 1.0
    clock: ManualClock = field(default_factory=ManualClock)
    wrap: Callable[[Broker], Broker] | None = None
    """Wraps the venue's Broker side (fault injection), under the Tap."""

    def __post_init__(self) -> None:
        self.exchange = PaperExchange(
            PaperInstrument(KEY, lot_size_usd=LOT_USD, tick_size=TICK, schedule=self.schedule),
            initial_balance_coin=self.initial_balance_coin,
        )
        self.journal_path = self.tmp_path / "journal.sqlite3"
        self.journal = SqliteJournal(self.journal_path, clock=self.clock)
        self.task: asyncio.Task[None] | None = None
        self.stop = asyncio.Event()

    def __repr__(self) -> str:
        return f"Rig({self.tmp_path.name}, now={self.clock.now_ns()})"

    # ---------------------------------------------------------------- wiring

    def _build(self, mode: Mode = Mode.AUTO) -> None:
        self.feed = PushFeed()
        self.metrics = Metrics()
        self.observer = Observer(self.metrics)

        def bad_snapshot(snap: MarketSnapshot, reason: str) -> None:
            self.observer.bad_input(snap.key, "market", reason)

        self.venue = PaperVenue(self.exchange, self.feed, on_bad_input=bad_snapshot)
        inner: Broker = self.venue if self.wrap is None else self.wrap(self.venue)
        self.tap = Tap(inner, self)
        self.stop = asyncio.Event()
        spec = InstrumentSpec(KEY, float(LOT_USD), TICK, self.schedule)
        self.engine = Engine(
            [spec],
            self.config,
            self.clock,
            self.tap,
            self.venue,
            self.journal,
            self.observer,
            mode=mode,
        )

    async def start(self, mode: Mode = Mode.AUTO) -> None:
        """Build an engine on the journal as it is now and run it until it has reconciled."""
        self._build(mode)
        self.task = asyncio.create_task(self.engine.run(self.stop))
        await eventually(lambda: self.engine.ready, message="engine ready")

    async def shutdown(self) -> None:
        """Set ``stop`` and wait for ``run`` to return.

        Time moves one ticker interval after the stop request so that a ticker asleep on the
        fake clock can see it (``test_engine_when_stopped_then_run_returns_without_time_passing``
        asserts that no such nudge should be needed).
        """
        task = self.task
        if task is None:
            return
        self.stop.set()
        await eventually(lambda: self.engine.stopping() or task.done(), message="stopping")
        if not task.done():
            self.clock.advance(self.config.decide_interval_s)
        await eventually(task.done, message="engine run() returned")
        self.task = None
        task.result()

    async def restart(self, mode: Mode = Mode.AUTO) -> None:
        """Stop the engine, reopen the journal file, start a new engine on the same venue."""
        await self.shutdown()
        self.journal.close()
        self.journal = SqliteJournal(self.journal_path, clock=self.clock)
        await self.start(mode)

    # ---------------------------------------------------------------- driving

    @property
    def runtime(self) -> InstrumentRuntime:
        return self.engine.runtimes[KEY]

    @property
    def last(self) -> DecisionRecord:
        record = self.runtime.last
        assert record is not None, "no decision yet"
        return record

    def snap(self, mark: float = START_MARK) -> MarketSnapshot:
        """A plausible snapshot stamped now."""
        return snapshot(self.clock.now_ns(), mark, funding_rate=FUNDING_RATE)

    async def push(self, mark: float = START_MARK, *, dt: float = 0.5) -> DecisionRecord:
        """Let ``dt`` pass, push a fresh snapshot and wait for the step that used it."""
        self.clock.advance(dt)
        return await self.push_snapshot(self.snap(mark))

    async def push_snapshot(self, snap: MarketSnapshot) -> DecisionRecord:
        runtime = self.runtime
        self.feed.push(snap)
        await eventually(
            lambda: runtime.market is snap and not runtime.dirty and runtime.last is not None,
            message=f"a step on the snapshot at {snap.ts_event_ns}",
        )
        return self.last

    async def converge(self, mark: float = START_MARK, max_steps: int = 10) -> DecisionRecord:
        """Push fresh snapshots at ``mark`` until a step in ACTIVE sends no order."""
        for _ in range(max_steps):
            sent = len(self.tap.sent)
            decision = await self.push(mark)
            if len(self.tap.sent) == sent and decision.trading_state is TradingState.ACTIVE:
                return decision
        raise AssertionError(f"no convergence in {max_steps} steps: {self.last}")

    async def tick(self, dt: float = 1.0) -> DecisionRecord:
        """Let ``dt`` (at least one ticker interval) pass and wait for the ticker's step."""
        assert dt >= self.config.decide_interval_s
        self.clock.advance(dt)
        now = self.clock.now_ns()
        runtime = self.runtime
        await eventually(
            lambda: runtime.last is not None and runtime.last.ts_ns == now and not runtime.dirty,
            message="a ticker step",
        )
        return self.last

    # ---------------------------------------------------------------- observing

    def position_usd(self) -> float:
        return float(self.exchange.position(KEY).size_usd)

    def venue_order_count(self) -> int:
        """Every order the paper exchange ever received (any status)."""
        return sum(self.exchange.counters().orders_by_status.values())

    def open_orders(self) -> list[OrderUpdate]:
        return self.exchange.list_open(KEY)

    def sample(self, name: str, **labels: str) -> float:
        """A metric sample for this instrument; 0.0 when the series does not exist yet."""
        value = self.metrics.registry.get_sample_value(
            name, {"venue": KEY.venue, "symbol": KEY.symbol, **labels}
        )
        return 0.0 if value is None else value

    def sized_target_usd(self, mark: float) -> float:
        """``equity · L · mark / (1 + f)`` rounded toward zero to whole lots."""
        equity = self.exchange.equity_coin()
        raw = equity * self.config.sizing.target_leverage * mark / (1.0 + FUNDING_RATE)
        return math.floor(raw / LOT_USD) * LOT_USD

    def status_of(self, client_order_id: str) -> OrderStatus | None:
        return self.journal.order_status(client_order_id)


@pytest.fixture
async def rig_factory(tmp_path: Path) -> AsyncIterator[Callable[..., Rig]]:
    """Build rigs (not started); every one is stopped and its journal closed afterwards."""
    rigs: list[Rig] = []

    def build(**kwargs: Any) -> Rig:
        path = tmp_path / f"rig{len(rigs)}"
        path.mkdir()
        rig = Rig(path, **kwargs)
        rigs.append(rig)
        return rig

    yield build
    for built in rigs:
        await _stop_quietly(built)
        built.journal.close()


async def _stop_quietly(rig: Rig) -> None:
    task = rig.task
    if task is None or task.done():
        return
    rig.stop.set()
    with contextlib.suppress(AssertionError):
        await eventually(rig.engine.stopping, timeout_s=2.0)
    rig.clock.advance(rig.config.decide_interval_s)
    with contextlib.suppress(AssertionError):
        await eventually(task.done, timeout_s=2.0)
    if not task.done():
        task.cancel()
    await asyncio.gather(task, return_exceptions=True)


@pytest.fixture
async def rig(rig_factory: Callable[..., Rig]) -> Rig:
    """A default rig, started: flat, 1 BTC, mark 50,000, nothing pushed yet."""
    built = rig_factory()
    await built.start()
    return built
