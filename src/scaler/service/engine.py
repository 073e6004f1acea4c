"""The closed loop: market data → funding prediction → sizing → risk → planning → orders.

Three tracked tasks share one wake-up event:

- the **feed reader** validates every snapshot and keeps only the latest valid one per
  instrument (conflation: a slow step never builds a backlog), then wakes the decider;
- the **ticker** wakes the decider every ``decide_interval_s`` even when the feed is silent, so a
  stale feed is noticed and frozen on time;
- the **decider** runs one step per instrument that has news (or on every tick of the ticker).

A failing feed is logged, counted and reopened with a back-off; a failing step is logged and
counted and the loop goes on; an :class:`~scaler.errors.InvariantViolation` stops the process.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from scaler.domain import funding as funding_model
from scaler.domain import risk as risk_model
from scaler.domain import sizing as sizing_model
from scaler.domain.inverse import MarginSchedule
from scaler.domain.orders import OrderRequest
from scaler.domain.planning import PlanningConfig, plan_orders
from scaler.domain.records import DecisionRecord
from scaler.domain.types import (
    NS_PER_S,
    AccountSnapshot,
    InstrumentKey,
    MarketSnapshot,
    Mode,
    TradingState,
)
from scaler.domain.validation import BadInput, validate_account, validate_market
from scaler.errors import InvariantViolation, VenueError
from scaler.ports import Broker, Clock, Journal, MarketFeed, Telemetry
from scaler.service.execution import Executor
from scaler.service.snapshot import build_record

FEED_RETRY_S = (0.5, 1.0, 2.0, 5.0)
_IMPLAUSIBLE = frozenset((BadInput.IMPLAUSIBLE_INDEX, BadInput.IMPLAUSIBLE_MOVE))
STATE_FLUSH_INTERVAL_NS = 5 * NS_PER_S


@dataclass(frozen=True, slots=True)
class InstrumentSpec:
    """Static facts about one traded instrument."""

    key: InstrumentKey
    lot_size_usd: float
    tick_size: float
    schedule: MarginSchedule


@dataclass(frozen=True, slots=True)
class EngineConfig:
    """The domain configurations the loop hands to the pure core."""

    sizing: sizing_model.SizingConfig
    funding: funding_model.FundingPredictorConfig
    risk: risk_model.RiskLimits
    planning: PlanningConfig
    vol_half_life_s: float = 3_600.0
    decide_interval_s: float = 1.0
    max_orders_per_s: float = 5.0
    cancel_on_shutdown: bool = True


@dataclass(slots=True)
class InstrumentRuntime:
    """Mutable per-instrument state owned by the engine (the only mutable state it has)."""

    spec: InstrumentSpec
    funding: funding_model.FundingPredictorState
    risk: risk_model.RiskState
    vol: sizing_model.VolatilityState = field(default_factory=sizing_model.VolatilityState.initial)
    market: MarketSnapshot | None = None
    rejected_market: MarketSnapshot | None = None
    """The feed's latest snapshot when it was rejected as implausible (see ``RiskInputs``)."""
    account: AccountSnapshot | None = None
    last: DecisionRecord | None = None
    dirty: bool = False
    ts_funding_seen_ns: int | None = None
    ts_flushed_ns: int = 0
    ts_fills_ns: int = 0
    ts_decided_recv_ns: int | None = None
    persisted_risk: tuple[object, ...] = ()


class Engine:
    """Owns the loop for a set of instruments on one broker."""

    def __init__(
        self,
        specs: Sequence[InstrumentSpec],
        config: EngineConfig,
        clock: Clock,
        broker: Broker,
        feed: MarketFeed,
        journal: Journal,
        telemetry: Telemetry,
        mode: Mode = Mode.AUTO,
    ) -> None:
        self.config = config
        self._clock = clock
        self._broker = broker
        self._feed = feed
        self._journal = journal
        self._telemetry = telemetry
        self._wake = asyncio.Event()
        self._stopping = False
        self.ready = False
        self.executor = Executor(
            broker,
            journal,
            telemetry,
            clock,
            config.planning.client_id_prefix,
            config.max_orders_per_s,
        )
        self.mode = _load_mode(journal, mode)
        self._next_seq = int((journal.load_state("order_sequence") or {}).get("next", 1))
        self.runtimes = {spec.key: self._restore(spec) for spec in specs}

    # ------------------------------------------------------------------ lifecycle

    async def run(self, stop: asyncio.Event) -> None:
        """Reconcile with the venue, then run until ``stop`` is set."""
        await self._reconcile()
        self.ready = True
        async with asyncio.TaskGroup() as group:
            reader = group.create_task(self._read_feed(), name="feed-reader")
            ticker = group.create_task(self._tick(), name="ticker")
            group.create_task(self._decide(), name="decider")
            await stop.wait()
            self._stopping = True
            ticker.cancel()  # its sleep may be long; nothing is lost by cutting it short
            self._wake.set()  # the decider finishes its current step, then returns
            await self._feed.close()
            reader.cancel()  # it may be waiting out a reconnect back-off
        await self.shutdown()

    async def shutdown(self) -> None:
        """Cancel own resting orders if configured, then flush all state."""
        if self.config.cancel_on_shutdown and self.mode is Mode.AUTO:
            for key in self.runtimes:
                await self.executor.cancel_all_own(key)
        for runtime in self.runtimes.values():
            self._flush(runtime, force=True)

    async def _reconcile(self) -> None:
        await self.executor.reconcile(list(self.runtimes))
        for runtime in self.runtimes.values():
            await self._refresh_account(runtime)

    def stopping(self) -> bool:
        """True once shutdown has begun (a method, so loops re-read it after every await)."""
        return self._stopping

    # ------------------------------------------------------------------ tasks

    async def _read_feed(self) -> None:
        attempt = 0
        while not self.stopping():
            try:
                async for snapshot in self._feed.stream():
                    attempt = 0
                    self.accept(snapshot)
                    if self.stopping():
                        return
                if self.stopping():
                    return
                self._telemetry.error("feed_ended", "market stream ended; reopening")
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - any feed failure is counted and retried
                self._telemetry.error("feed", f"{type(exc).__name__}: {exc}")
            await self._clock.sleep(FEED_RETRY_S[min(attempt, len(FEED_RETRY_S) - 1)])
            attempt += 1

    def accept(self, snapshot: MarketSnapshot) -> bool:
        """Validate a snapshot and keep it as its instrument's latest; ``False`` (counted) when
        rejected. The feed reader's path; ``scaler replay`` calls it directly, then ``step``."""
        runtime = self.runtimes.get(snapshot.key)
        if runtime is None:
            self._telemetry.bad_input(snapshot.key, "market", "unknown_instrument")
            return False
        limits = self.config.risk
        problem = validate_market(
            snapshot,
            runtime.market,
            limits.max_abs_funding_rate,
            max_mark_index_ratio=limits.max_mark_index_ratio,
            max_mark_move_ratio=limits.max_mark_move_ratio,
            mark_move_window_s=limits.mark_move_window_s,
        )
        if problem is not None:
            self._telemetry.bad_input(snapshot.key, "market", problem.value)
            if problem in _IMPLAUSIBLE:  # the venue shows it: decide now, and hold
                runtime.rejected_market = snapshot
                runtime.dirty = True
                self._wake.set()
            return False
        runtime.market = snapshot
        runtime.rejected_market = None
        runtime.dirty = True
        self._wake.set()
        return True

    async def _tick(self) -> None:
        while not self.stopping():
            await self._clock.sleep(self.config.decide_interval_s)
            for runtime in self.runtimes.values():
                runtime.dirty = True
            self._wake.set()

    async def _decide(self) -> None:
        while not self.stopping():
            await self._wake.wait()
            self._wake.clear()
            if self.stopping():
                return
            for runtime in self.runtimes.values():
                if runtime.dirty:
                    runtime.dirty = False
                    await self._guarded_step(runtime)

    async def _guarded_step(self, runtime: InstrumentRuntime) -> None:
        try:
            await self.step(runtime)
        except asyncio.CancelledError:
            raise
        except InvariantViolation:
            raise
        except VenueError as exc:
            self._telemetry.error(type(exc).__name__, str(exc))
        except Exception as exc:  # noqa: BLE001 - a failed step must not end the loop
            self._telemetry.error("step", f"{type(exc).__name__}: {exc}")

    # ------------------------------------------------------------------ one step

    async def step(self, runtime: InstrumentRuntime) -> DecisionRecord:
        """One pass of the closed loop for one instrument."""
        await self._refresh_account(runtime)
        now_ns = self._clock.now_ns()
        self._observe_funding(runtime)
        prediction = funding_model.report(runtime.funding, self.config.funding, now_ns)
        sizing = self._size(runtime, prediction.rate)
        current = runtime.account.position_usd if runtime.account else 0.0
        inputs = risk_model.RiskInputs(
            proposed_target_usd=sizing.target_usd if sizing else current,
            current_position_usd=current,
            market=runtime.market,
            account=runtime.account,
            now_ns=now_ns,
            schedule=runtime.spec.schedule,
            lot_size_usd=runtime.spec.lot_size_usd,
            rejected_market=runtime.rejected_market,
        )
        decision = risk_model.evaluate(inputs, runtime.risk, self.config.risk)
        previous = runtime.last
        runtime.risk = decision.state
        spec = runtime.spec
        record = build_record(
            spec.key,
            spec.schedule,
            runtime.market,
            runtime.account,
            decision,
            sizing,
            prediction,
            self.mode,
            now_ns,
        )
        record = replace(record, latency_s=self._tick_latency_s(runtime))
        runtime.last = record
        self._report(runtime, previous, record)
        await self._act(runtime, decision, now_ns)
        await self._record_fills(runtime)
        self._flush(runtime)
        return record

    def _tick_latency_s(self, runtime: InstrumentRuntime) -> float | None:
        """Seconds from receiving the tick to its decision; ``None`` for a re-decision on the
        ticker of a tick already decided."""
        market = runtime.market
        if market is None or market.ts_recv_ns == runtime.ts_decided_recv_ns:
            return None
        runtime.ts_decided_recv_ns = market.ts_recv_ns
        return (self._clock.now_ns() - market.ts_recv_ns) / NS_PER_S

    def _observe_funding(self, runtime: InstrumentRuntime) -> None:
        market = runtime.market
        if market is None or market.ts_funding_ns == runtime.ts_funding_seen_ns:
            return
        if runtime.funding.ts_last_obs_ns is not None and (
            market.ts_funding_ns < runtime.funding.ts_last_obs_ns
        ):
            self._telemetry.bad_input(market.key, "funding", "out_of_order")
            runtime.ts_funding_seen_ns = market.ts_funding_ns
            return
        runtime.funding = funding_model.observe(
            runtime.funding,
            market.funding_rate,
            market.funding_interval_s,
            market.ts_funding_ns,
            self.config.funding,
            venue_predicted_rate=market.predicted_funding_rate,
        )
        runtime.ts_funding_seen_ns = market.ts_funding_ns

    def _size(
        self, runtime: InstrumentRuntime, predicted_rate: float | None
    ) -> sizing_model.SizingResult | None:
        market, account = runtime.market, runtime.account
        if market is None or account is None:
            return None
        if self.config.sizing.target_vol_annual is not None:
            runtime.vol = sizing_model.update_volatility(
                runtime.vol, market.mark_price, market.ts_event_ns, self.config.vol_half_life_s
            )
        return sizing_model.compute_target(
            account.equity_coin, market.mark_price, predicted_rate, self.config.sizing, runtime.vol
        )

    async def _refresh_account(self, runtime: InstrumentRuntime) -> None:
        try:
            account = await self._broker.account(runtime.spec.key)
        except VenueError as exc:
            self._telemetry.error("account", str(exc))
            return
        problem = validate_account(account, runtime.account)
        if problem is not None:
            self._telemetry.bad_input(runtime.spec.key, "account", problem.value)
            return
        runtime.account = account

    def _report(
        self, runtime: InstrumentRuntime, previous: DecisionRecord | None, record: DecisionRecord
    ) -> None:
        changed = previous is None or (
            previous.recommended_usd != record.recommended_usd
            or previous.trading_state != record.trading_state
            or previous.mode != record.mode
            or previous.reasons != record.reasons
        )
        if previous is not None and previous.trading_state != record.trading_state:
            self._telemetry.state_changed(
                runtime.spec.key,
                previous.trading_state.value,
                record.trading_state.value,
                ",".join(record.reasons),
            )
        self._telemetry.decision(record, changed)

    # ------------------------------------------------------------------ acting

    async def _act(
        self, runtime: InstrumentRuntime, decision: risk_model.RiskDecision, now_ns: int
    ) -> None:
        key = runtime.spec.key
        if self.mode is not Mode.AUTO or self._stopping:
            return
        if self.executor.blocked(key):
            await self.executor.resolve_pending()
            return
        if not decision.may_send_orders:
            if runtime.last is not None and decision.trading_state in (
                TradingState.FROZEN,
                TradingState.HALTED,
            ):
                await self.executor.cancel_all_own(key)
            return
        market, account = runtime.market, runtime.account
        if market is None or account is None:
            return
        open_orders = [
            order
            for order in await self._broker.open_orders(key)
            if self.executor.is_own(order.client_order_id)
        ]
        plan = plan_orders(
            market,
            decision.allowed_target_usd,
            account.position_usd,
            open_orders,
            self.config.planning,
            now_ns,
            self._next_seq,
            decision.reduce_only,
        )
        for client_order_id in plan.cancels:
            await self.executor.cancel(key, client_order_id)
        if plan.orders:
            self._next_seq = plan.next_seq
            self._journal.save_state("order_sequence", {"next": self._next_seq})
        for request in plan.orders:
            allowed = functools.partial(self._may_trade, runtime, request)
            if await self.executor.send(request, allowed) is None:
                break

    def _may_trade(self, runtime: InstrumentRuntime, request: OrderRequest) -> bool:
        """Re-checked after every wait: an operator's halt or mode switch wins at once; while
        halted only reduce-only orders (the risk layer's safety reductions) may leave."""
        if self.mode is not Mode.AUTO or self._stopping:
            return False
        return not runtime.risk.halted or request.reduce_only

    async def _record_fills(self, runtime: InstrumentRuntime) -> None:
        """Journal new fills of our orders (recording a fill twice is a no-op)."""
        try:
            fills = await self._broker.fills_since(runtime.spec.key, runtime.ts_fills_ns)
        except VenueError as exc:
            self._telemetry.error("fills", str(exc))
            return
        for fill in fills:
            if self.executor.is_own(fill.client_order_id):
                self._journal.record_fill(fill)
            runtime.ts_fills_ns = max(runtime.ts_fills_ns, fill.ts_ns)

    # ------------------------------------------------------------------ operator controls

    async def set_mode(self, mode: Mode) -> None:
        """Switch between sending orders and recommending only; persisted at once."""
        self.mode = mode
        self._journal.save_state("mode", {"mode": mode.value})
        if mode is Mode.RECOMMEND:
            for key in self.runtimes:
                await self.executor.cancel_all_own(key)
        self._wake_all()

    async def halt(self) -> None:
        """The operator's kill switch: HALTED until resumed; own resting orders cancelled."""
        for runtime in self.runtimes.values():
            runtime.risk = risk_model.halt(runtime.risk)
            self._flush(runtime, force=True)
            await self.executor.cancel_all_own(runtime.spec.key)
        self._wake_all()

    def resume(self) -> None:
        for runtime in self.runtimes.values():
            runtime.risk = risk_model.resume(runtime.risk)
            self._flush(runtime, force=True)
        self._wake_all()

    def override_funding(self, duration_s: float) -> int:
        """Proceed on the last known funding rate for ``duration_s``; returns the deadline."""
        until_ns = self._clock.now_ns() + int(duration_s * NS_PER_S)
        for runtime in self.runtimes.values():
            runtime.risk = risk_model.override_funding(runtime.risk, until_ns)
            self._flush(runtime, force=True)
        self._wake_all()
        return until_ns

    def _wake_all(self) -> None:
        for runtime in self.runtimes.values():
            runtime.dirty = True
        self._wake.set()

    # ------------------------------------------------------------------ persistence

    def _restore(self, spec: InstrumentSpec) -> InstrumentRuntime:
        name = str(spec.key)
        funding_data = self._journal.load_state(f"funding:{name}")
        risk_data = self._journal.load_state(f"risk:{name}")
        runtime = InstrumentRuntime(
            spec=spec,
            funding=(
                funding_model.FundingPredictorState.from_dict(funding_data)
                if funding_data
                else funding_model.FundingPredictorState.initial()
            ),
            risk=(
                risk_model.RiskState.from_dict(risk_data)
                if risk_data
                else risk_model.RiskState.initial()
            ),
        )
        runtime.ts_funding_seen_ns = runtime.funding.ts_last_obs_ns
        runtime.persisted_risk = _durable_risk(runtime.risk)
        return runtime

    def _flush(self, runtime: InstrumentRuntime, *, force: bool = False) -> None:
        """Persist the funding EMA every few seconds and risk state whenever a durable part
        (halt, breaker, unconfirmed jump, override, daily baseline) changes."""
        now_ns = self._clock.now_ns()
        name = str(runtime.spec.key)
        durable = _durable_risk(runtime.risk)
        if force or durable != runtime.persisted_risk:
            self._journal.save_state(f"risk:{name}", runtime.risk.to_dict())
            runtime.persisted_risk = durable
        if force or now_ns - runtime.ts_flushed_ns >= STATE_FLUSH_INTERVAL_NS:
            self._journal.save_state(f"funding:{name}", runtime.funding.to_dict())
            self._journal.save_state(f"risk:{name}", runtime.risk.to_dict())
            runtime.ts_flushed_ns = now_ns

    # ------------------------------------------------------------------ status

    def status(self) -> dict[str, object]:
        states = [r.last.trading_state for r in self.runtimes.values() if r.last is not None]
        order = [
            TradingState.ACTIVE,
            TradingState.REDUCING,
            TradingState.FROZEN,
            TradingState.HALTED,
        ]
        worst = max(states, key=order.index) if states else TradingState.FROZEN
        return {
            "mode": self.mode.value,
            "trading_state": worst.value,
            "ready": self.ready,
            "instruments": [
                runtime.last.as_dict()
                if runtime.last
                else {"venue": key.venue, "symbol": key.symbol}
                for key, runtime in self.runtimes.items()
            ],
        }


def _durable_risk(state: risk_model.RiskState) -> tuple[object, ...]:
    """The parts of the risk state worth a write when they change (not the per-tick marks)."""
    return (
        state.halted,
        state.halt_reason,
        state.breaker_until_ns,
        state.breaker_trips,
        state.jump_reference_price,
        state.jump_level_price,
        state.ts_jump_level_ns,
        state.override_until_ns,
        state.day_index,
        state.day_start_equity_coin,
        state.trading_state,
    )


def _load_mode(journal: Journal, default: Mode) -> Mode:
    saved = journal.load_state("mode")
    if saved and saved.get("mode") in {m.value for m in Mode}:
        return Mode(saved["mode"])
    return default
