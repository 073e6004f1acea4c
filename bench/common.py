"""What every benchmark shares: the machine, the data folder, quantiles and the wiring.

The wiring mirrors ``scaler.app`` (``engine_config`` on default ``Settings``, a
:class:`~scaler.adapters.paper.exchange.PaperExchange` built from the instrument settings) with
two substitutions that a benchmark needs and says so in its output:

- an in-memory :class:`scaler.ports.Journal` (:func:`memory_journal`: the project's when
  ``src/`` has one, else :class:`BenchJournal`), as the SQLite journal's ``synchronous=FULL``
  fsync per order would measure the disk;
- the order-rate cap is lifted where virtual time runs faster than wall time (the executor's
  throttle counts wall-clock seconds, not the injected clock's).
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
import os
import platform
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, cast

import structlog

from scaler.adapters.paper.exchange import PaperExchange
from scaler.adapters.paper.instrument import PaperInstrument
from scaler.app import engine_config, margin_schedule
from scaler.config import Settings
from scaler.domain.orders import Fill, OrderRequest, OrderStatus, OrderUpdate
from scaler.domain.records import DecisionRecord
from scaler.domain.types import InstrumentKey, MarketSnapshot
from scaler.service.engine import Engine, EngineConfig, InstrumentSpec

DATA_ENV = "SCALER_SHARED_DATA"
YEAR_2021 = Path("ohlcv") / "bitmex_xbtusd_1m_2021-01-01_2021-12-31.csv.gz"
DESIGN_P99_US = 10.0
DESIGN_REPLAY_TICKS_PER_S = 450_000.0
DESIGN_RSS_MB = 150.0
DESIGN_CPU_SHARE = 0.25
UNLIMITED_ORDERS_PER_S = 1e9
"""The order-rate cap waits on the simulated clock, which the drivers move only between ticks."""


# ------------------------------------------------------------------------------ environment


def shared_data_dir() -> Path:
    """``../shared/data`` next to the repository, or ``$SCALER_SHARED_DATA``."""
    override = os.environ.get(DATA_ENV)
    if override:
        return Path(override)
    return Path(__file__).resolve().parents[1].parent / "shared" / "data"


def cpu_model() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or "unknown"
    for line in text.splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def machine() -> dict[str, Any]:
    """The facts a reader needs to compare these figures with others."""
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "load_average_1m": os.getloadavg()[0],
    }


@contextlib.contextmanager
def quiet_logging() -> Iterator[None]:
    """structlog at ``warning`` into a sink, for the duration; the previous setup comes back.

    Info events (one per changed decision and per order) are then dropped by the filtering
    logger, as in a daemon run at ``log.level = warning``.
    """
    saved = structlog.get_config()
    structlog.configure(
        processors=[structlog.processors.JSONRenderer()],
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
        logger_factory=structlog.PrintLoggerFactory(io.StringIO()),
        cache_logger_on_first_use=True,
    )
    try:
        yield
    finally:
        structlog.configure(**saved)


# ------------------------------------------------------------------------------ statistics


def quantile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank quantile of already sorted values (``q`` in [0, 1])."""
    if not sorted_values:
        return math.nan
    rank = max(0, math.ceil(q * len(sorted_values)) - 1)
    return float(sorted_values[rank])


def latency_summary_us(samples_ns: Sequence[int]) -> dict[str, float]:
    """p50, p90, p99, p99.9, max and mean in microseconds."""
    ordered = sorted(samples_ns)
    count = len(ordered)
    mean_ns = sum(ordered) / count if count else math.nan
    return {
        "count": count,
        "p50_us": quantile(ordered, 0.50) / 1e3,
        "p90_us": quantile(ordered, 0.90) / 1e3,
        "p99_us": quantile(ordered, 0.99) / 1e3,
        "p999_us": quantile(ordered, 0.999) / 1e3,
        "max_us": (ordered[-1] if ordered else math.nan) / 1e3,
        "mean_us": mean_ns / 1e3,
    }


def timer_overhead_ns(samples: int = 200_000) -> float:
    """Median cost of two back-to-back ``perf_counter_ns`` calls (included in every sample)."""
    now = time.perf_counter_ns
    costs = []
    for _ in range(samples):
        start = now()
        costs.append(now() - start)
    costs.sort()
    return float(costs[len(costs) // 2])


# ------------------------------------------------------------------------------ wiring


def default_settings() -> Settings:
    """The daemon's defaults (``SCALER_*`` variables would apply, as they do for ``scaler``)."""
    return Settings()


def bench_engine_config(settings: Settings, **changes: Any) -> EngineConfig:
    """``scaler.app.engine_config(settings)``, with the given fields replaced."""
    return replace(engine_config(settings), **changes)


def instrument_spec(settings: Settings, key: InstrumentKey) -> InstrumentSpec:
    inst = settings.instrument
    return InstrumentSpec(key, inst.lot_size_usd, inst.tick_size, margin_schedule(settings))


def paper_exchange(
    settings: Settings,
    keys: Sequence[InstrumentKey],
    initial_balance_coin: float | None = None,
    kind: type[PaperExchange] = PaperExchange,
) -> PaperExchange:
    """A fresh paper venue listing ``keys``, as ``scaler.app`` builds it."""
    inst, paper = settings.instrument, settings.paper
    instruments = [
        PaperInstrument(
            key,
            lot_size_usd=int(inst.lot_size_usd),
            tick_size=inst.tick_size,
            schedule=margin_schedule(settings),
            funding_interval_s=int(inst.funding_interval_s),
        )
        for key in keys
    ]
    return kind(
        instruments,
        initial_balance_coin=(
            paper.initial_balance_coin if initial_balance_coin is None else initial_balance_coin
        ),
        maker_fee_rate=paper.maker_fee_rate,
        taker_fee_rate=paper.taker_fee_rate,
        max_leverage=paper.max_leverage,
    )


# ------------------------------------------------------------------------------ fakes


_RANK = {
    OrderStatus.INTENDED: 0,
    OrderStatus.OPEN: 1,
    OrderStatus.FILLED: 2,
    OrderStatus.CANCELLED: 2,
    OrderStatus.REJECTED: 2,
}


@dataclass
class BenchJournal:
    """A :class:`scaler.ports.Journal` in dictionaries, for when ``src/`` has none.

    It keeps what the protocol can be asked about: every intent, the latest status per client
    order id (by the SQLite journal's supersede rule) and the fill ids; the update history is
    only counted, so its memory grows with orders, not with ticks. Nothing is durable.
    """

    intents: dict[str, OrderRequest] = field(default_factory=dict)
    latest: dict[str, OrderUpdate] = field(default_factory=dict)
    fill_ids: set[tuple[str, str, str]] = field(default_factory=set)
    states: dict[str, dict[str, Any]] = field(default_factory=dict)
    intents_recorded: int = 0
    updates_recorded: int = 0

    def record_intent(self, request: OrderRequest) -> None:
        if request.client_order_id in self.intents:
            raise AssertionError(f"intent {request.client_order_id!r} journaled twice")
        self.intents[request.client_order_id] = request
        self.intents_recorded += 1

    def record_update(self, update: OrderUpdate) -> None:
        self.updates_recorded += 1
        current = self.latest.get(update.client_order_id)
        if current is None or (_RANK[update.status], update.ts_ns) >= (
            _RANK[current.status],
            current.ts_ns,
        ):
            self.latest[update.client_order_id] = update

    def record_fill(self, fill: Fill) -> None:
        self.fill_ids.add((fill.key.venue, fill.key.symbol, fill.fill_id))

    def unresolved_intents(self) -> list[OrderRequest]:
        return [
            request
            for cid, request in self.intents.items()
            if cid not in self.latest or not self.latest[cid].status.is_terminal
        ]

    def order_status(self, client_order_id: str) -> OrderStatus | None:
        update = self.latest.get(client_order_id)
        if update is not None:
            return update.status
        return OrderStatus.INTENDED if client_order_id in self.intents else None

    def save_state(self, name: str, value: Mapping[str, Any]) -> None:
        self.states[name] = dict(value)

    def load_state(self, name: str) -> dict[str, Any] | None:
        saved = self.states.get(name)
        return None if saved is None else dict(saved)


def memory_journal() -> tuple[Any, str]:
    """The project's in-memory journal when ``src/`` has one (the one ``scaler replay`` uses),
    else :class:`BenchJournal`; with the name of the one chosen. Both count
    ``intents_recorded``."""
    try:
        from scaler.adapters.memory_journal import MemoryJournal  # noqa: PLC0415
    except ImportError:
        return BenchJournal(), "bench.common.BenchJournal"
    return MemoryJournal(), "scaler.adapters.memory_journal.MemoryJournal"


def feed_reader_accept(engine: Engine) -> Callable[[MarketSnapshot], object]:
    """What the engine's feed reader does with each snapshot (validate, keep the latest).

    ``Engine.accept`` where the engine makes it public (the ``scaler replay`` work does), else
    the private ``Engine._accept`` of earlier revisions: the same code path either way.
    """
    accept = getattr(engine, "accept", None) or getattr(engine, "_accept", None)
    if accept is None:
        raise RuntimeError("the Engine has neither accept() nor _accept(): update bench/")
    return cast("Callable[[MarketSnapshot], object]", accept)


def source_revision() -> dict[str, Any]:
    """The commit measured and whether ``src/`` had uncommitted changes (read-only git)."""
    root = Path(__file__).resolve().parents[1]
    base = ["git", "--no-optional-locks", "-C", str(root)]
    try:
        head = subprocess.run(
            [*base, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            [*base, "status", "--porcelain", "--", "src"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split("\n")
    except (OSError, subprocess.CalledProcessError):
        return {"commit": None, "src_changes": []}
    return {"commit": head, "src_changes": [line.strip() for line in dirty if line.strip()]}


@dataclass
class CountingTelemetry:
    """A :class:`scaler.ports.Telemetry` that only counts (the "no metrics, no logs" variant)."""

    decisions: int = 0
    changed: int = 0
    order_events: dict[str, int] = field(default_factory=dict)
    bad_inputs: int = 0
    errors: list[str] = field(default_factory=list)

    def decision(self, record: DecisionRecord, changed: bool) -> None:
        self.decisions += 1
        self.changed += changed

    def order_event(self, key: InstrumentKey, event: str, update: OrderUpdate | None) -> None:
        self.order_events[event] = self.order_events.get(event, 0) + 1

    def order_round_trip(self, key: InstrumentKey, seconds: float) -> None:
        return None

    def bad_input(self, key: InstrumentKey | None, feed: str, reason: str) -> None:
        self.bad_inputs += 1

    def error(self, kind: str, detail: str) -> None:
        if len(self.errors) < 20:
            self.errors.append(f"{kind}: {detail}")

    def state_changed(self, key: InstrumentKey, previous: str, current: str, reasons: str) -> None:
        return None


class IdleFeed:
    """A :class:`scaler.ports.MarketFeed` that yields nothing: the benchmark pushes the ticks."""

    async def stream(self) -> AsyncIterator[MarketSnapshot]:
        return
        yield  # an async generator that ends at once

    async def close(self) -> None:
        return None
