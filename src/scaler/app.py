"""The composition root: reads the settings once and wires every part of the daemon.

Nothing else in the project constructs adapters or reads settings; each part receives only the
values it needs.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from pathlib import Path
from typing import Any

from scaler.adapters.journal import SqliteJournal
from scaler.adapters.paper.exchange import PaperExchange
from scaler.adapters.paper.feeds import ClockedFeed, Pace, SyntheticParams, synthetic_snapshots
from scaler.adapters.paper.instrument import PaperInstrument
from scaler.adapters.paper.replay import ReplayParams, replay_snapshots
from scaler.adapters.paper.venue import PaperVenue
from scaler.clock import WallClock
from scaler.config import FeedKind, Settings, Venue
from scaler.domain.funding import FundingPredictorConfig
from scaler.domain.inverse import TierTable
from scaler.domain.planning import ExecutionStyle, PlanningConfig
from scaler.domain.risk import RiskLimits
from scaler.domain.sizing import SizingConfig
from scaler.domain.types import InstrumentKey, MarketSnapshot, Mode
from scaler.errors import ConfigError
from scaler.observability.logging import configure_logging, register_secret
from scaler.observability.metrics import Metrics
from scaler.observability.telemetry import Observer
from scaler.ports import Clock, Journal
from scaler.service.engine import Engine, EngineConfig, InstrumentSpec
from scaler.service.runner import Service, serve

PAPER_STATE = "paper_exchange"
TOKEN_FILE = "control-token"  # noqa: S105 - a file name, not a secret


def margin_schedule(settings: Settings) -> TierTable:
    """Tiered maintenance margin: the base rate, then +step per ``tier_step_coin`` of value."""
    inst = settings.instrument
    floors = [i * inst.tier_step_coin for i in range(5)]
    rates = [min(0.99, inst.maintenance_margin_rate + i * inst.tier_rate_step) for i in range(5)]
    return TierTable.from_rates(floors, rates)


def engine_config(settings: Settings) -> EngineConfig:
    """The pure core's configuration, derived from the settings."""
    inst, strat = settings.instrument, settings.strategy
    return EngineConfig(
        sizing=SizingConfig(
            side=strat.side.sign,
            target_leverage=strat.target_leverage,
            lot_size_usd=inst.lot_size_usd,
            min_denominator=strat.min_denominator,
            max_leverage=max(strat.target_leverage, 100.0),
            target_vol_annual=strat.target_vol_annual,
            max_loss_fraction=strat.max_loss_fraction,
            stop_distance=strat.stop_distance,
        ),
        funding=FundingPredictorConfig(
            interval_s=inst.funding_interval_s,
            half_life_intervals=settings.funding.half_life_intervals,
            venue_weight=settings.funding.venue_weight,
            max_abs_rate=settings.funding.max_abs_rate,
        ),
        risk=RiskLimits(**settings.risk.model_dump(exclude={"override_max_s"})),
        planning=PlanningConfig(
            lot_size_usd=inst.lot_size_usd,
            tick_size=inst.tick_size,
            max_slice_usd=settings.execution.max_slice_usd,
            max_slippage_bps=settings.execution.max_slippage_bps,
            order_ttl_s=settings.execution.order_ttl_s,
            style=ExecutionStyle(settings.execution.style.value),
            client_id_prefix=settings.execution.client_id_prefix,
        ),
        vol_half_life_s=strat.vol_half_life_s,
        decide_interval_s=settings.tick_interval_s,
        max_orders_per_s=settings.execution.max_orders_per_s,
        cancel_on_shutdown=settings.execution.cancel_on_shutdown,
    )


def control_token(settings: Settings) -> str:
    """The configured token, or one generated once into ``state_dir`` (mode 0600)."""
    if settings.api.token is not None:
        return settings.api.token.get_secret_value()
    path = settings.state_dir / TOKEN_FILE
    if path.is_file():
        token = path.read_text().strip()
        if len(token) >= 16:
            return token
        path.unlink()  # empty or truncated: never accept a guessable token
    token = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(token + "\n")
    return token


def _paper_exchange(settings: Settings, key: InstrumentKey, journal: Journal) -> PaperExchange:
    saved = journal.load_state(PAPER_STATE)
    if saved is not None:
        return PaperExchange.from_dict(saved)
    lot = settings.instrument.lot_size_usd
    if lot != int(lot):
        raise ConfigError("instrument.lot_size_usd", "the paper exchange needs a whole USD lot")
    instrument = PaperInstrument(
        key,
        lot_size_usd=int(lot),
        tick_size=settings.instrument.tick_size,
        schedule=margin_schedule(settings),
        funding_interval_s=int(settings.instrument.funding_interval_s),
    )
    paper = settings.paper
    return PaperExchange(
        instrument,
        initial_balance_coin=paper.initial_balance_coin,
        maker_fee_rate=paper.maker_fee_rate,
        taker_fee_rate=paper.taker_fee_rate,
        max_leverage=paper.max_leverage,
    )


def _market_source(
    settings: Settings, key: InstrumentKey, exchange: PaperExchange, clock: Clock
) -> ClockedFeed:
    paper = settings.paper
    if paper.feed is FeedKind.REPLAY:
        assert paper.replay_bars_path is not None  # checked by the settings validator
        snapshots: Any = replay_snapshots(
            key, paper.replay_bars_path, paper.replay_funding_path, ReplayParams()
        )
    else:
        last = exchange.last_mark(key)
        params = SyntheticParams(
            start_price=last if last is not None else paper.start_price,
            tick_interval_s=paper.tick_interval_s,
            funding_interval_s=settings.instrument.funding_interval_s,
        )
        snapshots = synthetic_snapshots(key, paper.seed, params, clock.now_ns())
    return ClockedFeed(snapshots, clock, Pace(paper.pace.value))


def build_service(settings: Settings) -> Service:
    """Wire the daemon for ``scaler run``."""
    if settings.venue is not Venue.PAPER:
        raise ConfigError("venue", f"{settings.venue.value} is not available in this build")
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    clock = WallClock()
    journal = SqliteJournal(settings.journal_path, clock=clock)
    key = InstrumentKey("paper", settings.instrument.symbol)
    exchange = _paper_exchange(settings, key, journal)
    metrics = Metrics()
    observer = Observer(metrics)

    def bad_snapshot(snapshot: MarketSnapshot, reason: str) -> None:
        observer.bad_input(snapshot.key, "market", reason)

    venue = PaperVenue(
        exchange,
        _market_source(settings, key, exchange, clock),
        persist=lambda ex: journal.save_state(PAPER_STATE, ex.to_dict()),
        on_bad_input=bad_snapshot,
    )
    spec = InstrumentSpec(
        key,
        settings.instrument.lot_size_usd,
        settings.instrument.tick_size,
        margin_schedule(settings),
    )
    engine = Engine(
        [spec],
        engine_config(settings),
        clock,
        venue,
        venue,
        journal,
        observer,
        mode=Mode(settings.mode.value),
    )
    token = control_token(settings)
    register_secret(token)

    async def close() -> None:
        venue.save()
        journal.close()

    return Service(
        engine=engine,
        token=token,
        api_host=settings.api.host,
        api_port=settings.api.port,
        metrics_host=settings.metrics.host,
        metrics_port=settings.metrics.port if settings.metrics.enabled else None,
        registry=metrics.registry,
        override_max_s=settings.risk.override_max_s,
        shutdown_deadline_s=settings.execution.shutdown_deadline_s,
        closers=[close],
    )


def run_daemon(settings: Settings) -> int:
    """``scaler run``: configure logging, wire everything, serve until signalled."""
    configure_logging(settings.log.level, settings.log.format.value)
    if settings.api.token is not None:
        register_secret(settings.api.token.get_secret_value())
    service = build_service(settings)
    return asyncio.run(serve(service))


async def check_connection(settings: Settings) -> int:
    """``scaler check --connect``: reach the venue and print what it reports."""
    if settings.venue is not Venue.PAPER:
        raise ConfigError("venue", f"{settings.venue.value} is not available in this build")
    journal_path: Path = settings.journal_path
    exists = await asyncio.to_thread(journal_path.exists)
    state = "restored" if exists else "new"
    print(f"venue paper: in-process exchange ({state} state at {journal_path})")  # noqa: T201
    return 0
