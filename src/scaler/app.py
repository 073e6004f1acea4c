"""The composition root: reads the settings once and wires every part of the daemon.

Nothing else in the project constructs adapters or reads settings; each part receives only the
values it needs.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, TextIO

import structlog
from prometheus_client import disable_created_metrics
from pydantic import SecretStr

from scaler.adapters.ccxt_venue import CcxtVenue, ClientOptions, FeedOptions
from scaler.adapters.journal import SqliteJournal
from scaler.adapters.memory_journal import MemoryJournal
from scaler.adapters.paper.exchange import PaperExchange
from scaler.adapters.paper.feeds import ClockedFeed, Pace, SyntheticParams, synthetic_snapshots
from scaler.adapters.paper.instrument import PaperInstrument
from scaler.adapters.paper.replay import ReplayParams, ReplayStats, replay_snapshots
from scaler.adapters.paper.venue import PaperVenue
from scaler.clock import ManualClock, WallClock
from scaler.config import TOKEN_MIN_CHARS, FeedKind, Settings, Venue, redacted
from scaler.domain.funding import FundingPredictorConfig
from scaler.domain.inverse import TierTable
from scaler.domain.planning import ExecutionStyle, PlanningConfig
from scaler.domain.risk import RiskLimits
from scaler.domain.sizing import SizingConfig
from scaler.domain.types import InstrumentKey, MarketSnapshot, Mode
from scaler.errors import BadInputError, ConfigError, VenueError
from scaler.observability.logging import configure_logging, register_secret
from scaler.observability.metrics import Metrics
from scaler.observability.telemetry import Observer
from scaler.ports import Broker, Clock, Journal, MarketFeed
from scaler.service.engine import Engine, EngineConfig, InstrumentSpec
from scaler.service.listener import ListenerLimits
from scaler.service.replay import (
    ConstantLeveragePolicy,
    EnginePolicy,
    Policy,
    Replay,
    ReplayOptions,
    replay_tape,
)
from scaler.service.replay_progress import Progress, bars_end_ns
from scaler.service.replay_recorder import PolicyRecorder
from scaler.service.replay_report import PlotGuides, build_report, format_table, write_report
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
        if len(token) >= TOKEN_MIN_CHARS:
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
    return new_paper_exchange(settings, key)


def new_paper_exchange(settings: Settings, key: InstrumentKey) -> PaperExchange:
    """A fresh paper exchange (initial balance, fees, margin schedule) from the settings."""
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
    """Wire the daemon for ``scaler run`` on the paper exchange."""
    if settings.venue is not Venue.PAPER:
        raise ConfigError("venue", f"{settings.venue.value} is reached with build_venue_service")
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

    async def close() -> None:
        venue.save()
        journal.close()

    return _service(settings, spec, clock, venue, venue, journal, metrics, observer, [close])


async def build_venue_service(settings: Settings) -> Service:
    """Wire the daemon for ``scaler run`` on a ccxt venue: connect, load markets, read the
    instrument's lot, tick and maintenance schedule from the venue."""
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    clock = WallClock()
    metrics = Metrics()
    observer = Observer(metrics)
    venue = await _open_ccxt_venue(settings, clock, observer)
    try:
        key = InstrumentKey(settings.venue.value, settings.instrument.symbol)
        broker = venue.broker
        spec = InstrumentSpec(
            key,
            await broker.lot_size_usd(key),
            broker.tick_size(key),
            await broker.margin_schedule(key),
        )
        venue.save_markets(markets_cache_path(settings))
    except BaseException:
        await venue.close()
        raise
    exchange = settings.exchange
    feed = venue.feed(
        key,
        FeedOptions(
            websocket=exchange.websocket,
            poll_interval_s=exchange.poll_interval_s,
            stream_silence_s=exchange.stream_silence_s,
        ),
        on_bad_input=lambda k, reason: observer.bad_input(k, "market", reason),
        on_error=observer.error,
    )
    journal = SqliteJournal(settings.journal_path, clock=clock)

    async def close() -> None:
        await venue.close()
        journal.close()

    return _service(settings, spec, clock, broker, feed, journal, metrics, observer, [close])


def markets_cache_path(settings: Settings) -> Path:
    """Where the last markets loaded from the venue are kept (usable as ``markets_path``)."""
    return settings.state_dir / f"markets-{settings.venue.value}.json"


async def _open_ccxt_venue(settings: Settings, clock: Clock, observer: Observer) -> CcxtVenue:
    from scaler.adapters.ccxt_venue import Caller, open_venue, profile_for  # noqa: PLC0415

    profile = profile_for(settings.venue.value)
    exchange = settings.exchange
    if profile.client_id_alphanumeric and not settings.execution.client_id_prefix.isalnum():
        raise ConfigError(
            "execution.client_id_prefix",
            f"{profile.venue} client ids allow letters and digits only",
        )
    secrets_ = (exchange.api_key, exchange.api_secret, exchange.password)
    for secret in secrets_:
        if secret is not None:
            register_secret(secret.get_secret_value())
    options = ClientOptions(
        api_key=_plain(exchange.api_key),
        api_secret=_plain(exchange.api_secret),
        password=_plain(exchange.password),
        testnet=exchange.testnet,
        url=exchange.url,
        ws_url=exchange.ws_url,
        markets_path=exchange.markets_path,
        timeout_s=exchange.timeout_s,
    )
    caller = Caller(clock, exchange.read_retries, exchange.retry_backoff_s, observer.error)
    try:
        return await open_venue(
            profile,
            options,
            clock,
            caller,
            account_interval_s=exchange.account_interval_s,
            fallback_schedule=profile.margin_fallback or margin_schedule(settings),
            on_bad_input=observer.bad_input,
            on_error=observer.error,
        )
    except VenueError as exc:
        raise VenueStartError(f"{profile.venue}: cannot load markets: {exc}") from exc


class VenueStartError(RuntimeError):
    """The venue could not be reached at start; the process exits 1 (the supervisor retries)."""


def _plain(secret: SecretStr | None) -> str | None:
    return secret.get_secret_value() if secret is not None else None


def _service(
    settings: Settings,
    spec: InstrumentSpec,
    clock: Clock,
    broker: Broker,
    feed: MarketFeed,
    journal: Journal,
    metrics: Metrics,
    observer: Observer,
    closers: list[Callable[[], Awaitable[None]]],
) -> Service:
    """The engine and its servers around one broker and feed."""
    config = engine_config(settings)
    if settings.venue is not Venue.PAPER:
        config = venue_lots(config, spec)
    metrics.register_instrument(spec.key, spec.lot_size_usd, config.risk)
    engine = Engine(
        [spec], config, clock, broker, feed, journal, observer, mode=Mode(settings.mode.value)
    )
    metrics.set_mode(engine.mode)  # the persisted mode, before the first decision
    token = control_token(settings)
    register_secret(token)
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
        clock=clock,
        api_limits=ListenerLimits(settings.api.max_connections, settings.api.header_timeout_s),
        metrics_limits=ListenerLimits(
            settings.metrics.max_connections, settings.metrics.header_timeout_s
        ),
        closers=closers,
    )


def venue_lots(config: EngineConfig, spec: InstrumentSpec) -> EngineConfig:
    """The venue's lot and tick replace the configured ones: orders must fit the venue."""
    return replace(
        config,
        sizing=replace(config.sizing, lot_size_usd=spec.lot_size_usd),
        planning=replace(config.planning, lot_size_usd=spec.lot_size_usd, tick_size=spec.tick_size),
    )


def run_daemon(settings: Settings) -> int:
    """``scaler run``: configure logging, wire everything, serve until signalled."""
    configure_logging(settings.log.level, settings.log.format.value)
    # No `_created` twin of every counter: half the series, nothing lost (unannotated upstream).
    disable_created_metrics()  # type: ignore[no-untyped-call]
    if settings.api.token is not None:
        register_secret(settings.api.token.get_secret_value())
    if settings.venue is Venue.PAPER:
        return asyncio.run(serve(build_service(settings)))
    try:
        return asyncio.run(_serve_venue(settings))
    except VenueStartError as exc:
        structlog.get_logger("scaler.app").error("venue_unreachable", error=str(exc))
        return 1


async def _serve_venue(settings: Settings) -> int:
    return await serve(await build_venue_service(settings))


async def check_connection(settings: Settings) -> int:
    """``scaler check --connect``: reach the venue and print what it reports."""
    if settings.venue is Venue.PAPER:
        journal_path: Path = settings.journal_path
        exists = await asyncio.to_thread(journal_path.exists)
        state = "restored" if exists else "new"
        print(f"venue paper: in-process exchange ({state} state at {journal_path})")  # noqa: T201
        return 0
    clock = WallClock()
    observer = Observer(Metrics())
    try:
        venue = await _open_ccxt_venue(settings, clock, observer)
    except VenueStartError as exc:
        print(f"venue {settings.venue.value}: {exc}")  # noqa: T201
        return 1
    key = InstrumentKey(settings.venue.value, settings.instrument.symbol)
    where = settings.exchange.url or ("testnet" if settings.exchange.testnet else "MAINNET")
    lines: list[str] = []
    code = 0
    try:
        broker = venue.broker
        lot, tick = await broker.lot_size_usd(key), broker.tick_size(key)
        lines.append(f"venue {venue.profile.venue} ({where}): {key.symbol} lot {lot:g} USD")
        lines.append(f"tick {tick:g}, maintenance {await broker.margin_schedule(key)}")
        if settings.exchange.api_key is not None:
            account = await broker.account(key)
            orders = await broker.open_orders(key)
            lines.append(
                f"account: wallet {account.wallet_balance_coin:.8f}, position "
                f"{account.position_usd:+,.0f} USD, {len(orders)} open orders"
            )
        settings.state_dir.mkdir(parents=True, exist_ok=True)
        venue.save_markets(markets_cache_path(settings))
        lines.append(f"markets saved to {markets_cache_path(settings)}")
    except VenueError as exc:
        lines.append(f"venue {venue.profile.venue}: {exc}")
        code = 1
    finally:
        await venue.close()
    print("\n".join(lines))  # noqa: T201
    return code


# --- scaler replay ---------------------------------------------------------------------------

REPLAY_MAX_ORDERS_PER_S = 1_000_000.0
"""The replay lifts the order-rate cap. The cap waits on the simulated clock, which the replay
moves only between ticks, so a cap that bound would wait for ever; it cannot bind at sane
settings anyway: the planner sends at most one order per decision and recorded ticks are 15
simulated seconds apart (the crash and calm windows give byte-identical reports with the
configured 5/s, 1/s or 0.5/s)."""
REPLAY_POLICY = "configured"


def build_replay(
    settings: Settings, options: ReplayOptions, progress: Progress | None = None
) -> tuple[Replay, ReplayStats]:
    """Wire ``scaler replay``: the configured engine and the baselines over one tape."""
    for path in (options.bars_path, options.funding_path):
        if path is not None and not path.is_file():
            raise ConfigError("replay", f"file not found: {path}")
    key = InstrumentKey("paper", settings.instrument.symbol)
    stats = ReplayStats()
    source = replay_snapshots(key, options.bars_path, options.funding_path, ReplayParams(), stats)
    clock = ManualClock(start_ns=0)
    config = replace(engine_config(settings), max_orders_per_s=REPLAY_MAX_ORDERS_PER_S)
    policies = [
        _engine_policy(settings, config, key, clock),
        *_baselines(settings, options, config.planning, key),
    ]
    tape = replay_tape(source, options.from_ns, options.to_ns)
    return Replay(tape, clock, policies, WallClock(), progress), stats


def _engine_policy(
    settings: Settings, config: EngineConfig, key: InstrumentKey, clock: ManualClock
) -> Policy:
    """The daemon's engine, as ``scaler run`` builds it, on its own fresh paper exchange."""
    exchange = new_paper_exchange(settings, key)
    recorder = PolicyRecorder(REPLAY_POLICY)
    inst = settings.instrument
    spec = InstrumentSpec(key, inst.lot_size_usd, inst.tick_size, margin_schedule(settings))
    idle_feed = ClockedFeed(iter(()), clock, Pace.FAST)  # the replay drives the engine itself
    journal = MemoryJournal()
    engine = Engine([spec], config, clock, exchange, idle_feed, journal, recorder, Mode.AUTO)
    return EnginePolicy(REPLAY_POLICY, engine, exchange, recorder, key)


def _baselines(
    settings: Settings, options: ReplayOptions, planning: PlanningConfig, key: InstrumentKey
) -> list[Policy]:
    """One constant-leverage baseline per distinct leverage, each on its own exchange."""
    return [
        ConstantLeveragePolicy(
            new_paper_exchange(settings, key),
            PolicyRecorder(f"constant_{leverage:g}x"),
            key,
            leverage=leverage,
            side=settings.strategy.side.sign,
            band_fraction=baseline_band(settings, options),
            planning=replace(planning, client_id_prefix="baseline"),
        )
        for leverage in dict.fromkeys(options.baseline_leverages)
    ]


def baseline_band(settings: Settings, options: ReplayOptions) -> float:
    """The baselines' rebalancing band: as asked, else the configured dead band."""
    band = options.baseline_band_fraction
    return settings.risk.dead_band_fraction if band is None else band


def replay_config(settings: Settings, options: ReplayOptions) -> dict[str, Any]:
    """The settings that shape a replay's result, as the report records them."""
    data = redacted(settings)
    paper = {name: data["paper"][name] for name in _PAPER_POLICY_FIELDS}
    sections = ("instrument", "strategy", "funding", "risk", "execution")
    params = ReplayParams()
    return {name: data[name] for name in sections} | {
        "paper": paper,
        "baselines": {
            "leverages": list(dict.fromkeys(options.baseline_leverages)),
            "band_fraction": baseline_band(settings, options),
        },
        "tape": {
            "ticks_per_bar": params.ticks_per_bar,
            "spread_bps": params.spread_bps,
            "levels": params.levels,
            "level_size_usd": params.level_size_usd,
            "level_step_bps": params.level_step_bps,
        },
    }


_PAPER_POLICY_FIELDS = ("initial_balance_coin", "maker_fee_rate", "taker_fee_rate", "max_leverage")


def run_replay(settings: Settings, options: ReplayOptions, out: TextIO, err: TextIO) -> int:
    """``scaler replay``: replay, write ``report.json`` and the plots, print the summary."""
    progress = None
    if err.isatty():
        end_ns = options.to_ns or bars_end_ns(options.bars_path)
        progress = Progress(err, WallClock(), options.from_ns, end_ns)
    replay, stats = build_replay(settings, options, progress)
    try:
        outcome = asyncio.run(replay.run())
    except BadInputError as exc:
        raise ConfigError("replay", str(exc)) from None
    report = build_report(outcome, stats, options, replay_config(settings, options))
    path = write_report(report, options.out_dir / "report.json")
    out.write(format_table(report) + "\n")
    out.write(
        f"replayed {outcome.tape.ticks:,} ticks x {len(outcome.policies)} policies in "
        f"{outcome.wall_s:.1f} s ({outcome.ticks_per_s:,.0f} ticks/s)\n"
    )
    written = [path]
    if options.plots:
        from scaler.service.replay_plots import write_plots  # noqa: PLC0415 - matplotlib is slow to import

        written.extend(write_plots(outcome, options.out_dir, plot_guides(settings)))
    out.write("wrote " + ", ".join(str(p) for p in written) + "\n")
    return 0


def plot_guides(settings: Settings) -> PlotGuides:
    """The configured thresholds drawn as reference lines on the plots."""
    return PlotGuides(
        target_leverage=settings.strategy.target_leverage,
        max_leverage=settings.risk.max_leverage,
        mm_buffer=settings.risk.mm_buffer,
        min_liquidation_distance=settings.risk.min_liquidation_distance,
    )


# --- scaler exchange-sim ---------------------------------------------------------------------


# The simulator's imports stay in its own section of this shared composition root.
import signal  # noqa: E402
import sqlite3  # noqa: E402

from scaler.adapters.sim import (  # noqa: E402
    Credentials,
    ExchangeSim,
    Faults,
    SimStore,
    instrument_name,
    load_or_create_credentials,
)

SIM_STATE_FILE = "exchange-sim.sqlite3"
SIM_CREDENTIALS_FILE = "exchange-sim-credentials.json"
SIM_VENUE = "exchange-sim"
"""The venue part of the simulator's instrument key (persisted in its state file)."""


def exchange_sim_credentials(settings: Settings) -> Credentials:
    """``sim.api_key``/``sim.api_secret``, or a pair generated once into ``state_dir`` (0600)."""
    sim = settings.sim
    if sim.api_key is not None and sim.api_secret is not None:
        try:
            return Credentials(sim.api_key.get_secret_value(), sim.api_secret.get_secret_value())
        except ValueError as exc:
            raise ConfigError("sim.api_secret", str(exc)) from None
    path = settings.state_dir / SIM_CREDENTIALS_FILE
    credentials, created = load_or_create_credentials(path)
    log = structlog.get_logger("scaler.exchange_sim")
    log.info("credentials_generated" if created else "credentials_loaded", path=str(path))
    return credentials


def build_exchange_sim(settings: Settings, clock: Clock | None = None) -> ExchangeSim:
    """Wire ``scaler exchange-sim``: the paper exchange restored from the simulator's own state
    file (or new from the settings), the paper market feed, the credentials and the faults."""
    try:
        instrument_name(settings.instrument.symbol)
    except ValueError as exc:
        raise ConfigError("instrument.symbol", str(exc)) from None
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    clock = clock or WallClock()
    key = InstrumentKey(SIM_VENUE, settings.instrument.symbol)
    credentials = exchange_sim_credentials(settings)
    path = settings.state_dir / SIM_STATE_FILE
    try:
        store = SimStore(path)
        saved_exchange, saved_meta = store.load()
        if saved_exchange is not None:
            exchange = PaperExchange.from_dict(saved_exchange)
        else:
            exchange, saved_meta = new_paper_exchange(settings, key), None
        if key not in {instrument.key for instrument in exchange.instruments}:
            raise ValueError(f"it lists another instrument than {settings.instrument.symbol}")
        return ExchangeSim(
            exchange,
            _market_source(settings, key, exchange, clock),
            credentials=credentials,
            meta=saved_meta,
            faults=Faults.from_settings(settings.sim.faults),
            store=store,
            host=settings.sim.host,
            port=settings.sim.port,
            clock=clock,
        )
    except (ValueError, KeyError, TypeError, sqlite3.DatabaseError) as exc:
        problem = f"{path} is not a usable exchange-sim state ({exc}); move it away to start over"
        raise ConfigError("state_dir", problem) from None


def run_exchange_sim(settings: Settings) -> int:
    """``scaler exchange-sim``: serve the paper exchange, Deribit v2 dialect, until signalled."""
    configure_logging(settings.log.level, settings.log.format.value)
    for secret in (settings.sim.api_key, settings.sim.api_secret):
        register_secret(secret.get_secret_value() if secret is not None else None)
    sim = build_exchange_sim(settings)
    register_secret(sim.credentials.api_secret)
    return asyncio.run(serve_exchange_sim(sim))


async def serve_exchange_sim(sim: ExchangeSim) -> int:
    """Serve until SIGTERM or SIGINT, then save the state and return the exit code (0)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    log = structlog.get_logger("scaler.exchange_sim")
    try:
        await sim.start()
    except OSError as exc:
        raise ConfigError("sim.port", f"cannot listen on {sim.url}: {exc.strerror}") from None
    log.info("exchange_sim_started", url=sim.url, ws_url=sim.ws_url, admin=f"{sim.url}/admin/")
    try:
        await stop.wait()
        log.warning("shutdown_requested")
    finally:
        await sim.stop()
    log.info("exchange_sim_stopped", exit_code=0)
    return 0


# --- end of scaler exchange-sim --------------------------------------------------------------
