"""Prometheus metrics, prefix ``scaler_``, labels ``venue`` and ``symbol`` plus bounded ones.

Every label value comes from a closed set (enums, rule names, error kinds named in code), never
from order ids or free text. The table in ``docs/metrics.md`` documents each series.

A decision is the hot path, so it costs little: :meth:`Metrics.observe_decision` keeps the
latest :class:`DecisionRecord` per instrument, counts the decision, observes the latency
histogram and counts the risk rules that acted, through label children resolved once per
instrument. Every gauge derived from the record (prices, positions, margin, feed ages, state)
is computed when Prometheus scrapes, by :class:`_DecisionCollector`, from the latest record.
"""

from __future__ import annotations

import math
import platform
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Histogram, Info, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from scaler import __version__
from scaler.domain.records import DecisionRecord
from scaler.domain.risk import RiskLimits
from scaler.domain.types import NS_PER_S, InstrumentKey, Mode, TradingState

LATENCY_BUCKETS_S = (
    0.00001,
    0.000025,
    0.00005,
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
)
ORDER_RTT_BUCKETS_S = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
IK = ("venue", "symbol")
BREAKER_REASONS = ("gap_breaker", "index_divergence")
ORDER_OUTCOMES = (
    "intended",
    "open",
    "filled",
    "cancelled",
    "rejected",
    "orphan_cancelled",
    "other",
)
FEEDS = ("mark", "funding", "account")
DEFAULT_LOT_USD = 1.0
"""The deviation ratio's floor for an instrument whose lot was never registered."""


@dataclass(slots=True)
class _Instrument:
    """One instrument's latest decision, its counters and its bound label children."""

    labels: tuple[str, str]
    latency: Histogram
    order_rtt: Histogram
    orders: dict[str, Counter]
    adjustments: dict[tuple[str, str], Counter] = field(default_factory=dict)
    breaker_trips: dict[str, Counter] = field(default_factory=dict)
    record: DecisionRecord | None = None
    decisions: int = 0
    trading_state: TradingState | None = None
    ts_state_since_s: float = math.nan
    lot_size_usd: float = DEFAULT_LOT_USD
    limits: RiskLimits | None = None


class Metrics:
    """All series of one daemon, in their own registry."""

    def __init__(self, registry: CollectorRegistry | None = None, *, process: bool = True) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self._instruments: dict[InstrumentKey, _Instrument] = {}
        self.mode: Mode | None = None
        self.adjustments = Counter(
            "scaler_risk_adjustments_total",
            "Decisions in which a risk rule acted, by rule and reason code.",
            [*IK, "rule", "reason"],
            registry=r,
        )
        self.breaker_trips = Counter(
            "scaler_breaker_trips_total",
            "Gap or mark/index divergence circuit-breaker trips.",
            [*IK, "reason"],
            registry=r,
        )
        self.orders = Counter(
            "scaler_orders_total", "Order events by outcome.", [*IK, "outcome"], registry=r
        )
        self.errors = Counter("scaler_errors_total", "Errors by kind.", ["kind"], registry=r)
        self.bad_inputs = Counter(
            "scaler_bad_inputs_total",
            "Rejected inputs by feed and reason.",
            [*IK, "feed", "reason"],
            registry=r,
        )
        self.latency = Histogram(
            "scaler_tick_to_decision_seconds",
            "From receiving a tick to its decision.",
            IK,
            buckets=LATENCY_BUCKETS_S,
            registry=r,
        )
        self.order_rtt = Histogram(
            "scaler_order_round_trip_seconds",
            "From sending an order to the venue's answer.",
            IK,
            buckets=ORDER_RTT_BUCKETS_S,
            registry=r,
        )
        Info("scaler_build", "Build information.", registry=r).info(
            {"version": __version__, "python": platform.python_version()}
        )
        r.register(_DecisionCollector(self))
        if process:
            ProcessCollector(registry=r)

    # ------------------------------------------------------------------ per instrument

    def _instrument(self, key: InstrumentKey) -> _Instrument:
        found = self._instruments.get(key)
        if found is not None:
            return found
        labels = (key.venue, key.symbol)
        # Children created up front: a counter that exists at 0 lets increase() see its first
        # event, and the alert rules can tell "no trips" from "no data".
        for reason in BREAKER_REASONS:
            self.breaker_trips.labels(*labels, reason)
        instrument = _Instrument(
            labels=labels,
            latency=self.latency.labels(*labels),
            order_rtt=self.order_rtt.labels(*labels),
            orders={outcome: self.orders.labels(*labels, outcome) for outcome in ORDER_OUTCOMES},
        )
        self._instruments[key] = instrument
        return instrument

    def register_instrument(
        self, key: InstrumentKey, lot_size_usd: float, limits: RiskLimits | None = None
    ) -> None:
        """Static facts: the lot that floors the deviation ratio, and the risk limits exported
        so that alert rules compare with the daemon's own thresholds."""
        instrument = self._instrument(key)
        instrument.lot_size_usd = lot_size_usd if lot_size_usd > 0 else DEFAULT_LOT_USD
        instrument.limits = limits

    # ------------------------------------------------------------------ hot path

    def observe_decision(self, record: DecisionRecord) -> None:
        """Count one decision and keep it as the instrument's latest (gauges read it)."""
        instrument = self._instruments.get(record.key) or self._instrument(record.key)
        instrument.record = record
        instrument.decisions += 1
        if record.trading_state is not instrument.trading_state:
            instrument.trading_state = record.trading_state
            instrument.ts_state_since_s = record.ts_ns / NS_PER_S
        self.mode = record.mode
        latency = record.latency_s
        if latency is not None and latency >= 0:
            instrument.latency.observe(latency)
        if record.reasons:
            self._count_rules(instrument, record)

    def _count_rules(self, instrument: _Instrument, record: DecisionRecord) -> None:
        for rule, reason in zip(record.rules, record.reasons, strict=True):
            counter = instrument.adjustments.get((rule, reason))
            if counter is None:
                counter = self.adjustments.labels(*instrument.labels, rule, reason)
                instrument.adjustments[rule, reason] = counter
            counter.inc()
            if reason in BREAKER_REASONS:
                trips = instrument.breaker_trips.get(reason)
                if trips is None:
                    trips = self.breaker_trips.labels(*instrument.labels, reason)
                    instrument.breaker_trips[reason] = trips
                trips.inc()

    def count_order(self, key: InstrumentKey, outcome: str) -> None:
        orders = self._instrument(key).orders
        (orders.get(outcome) or orders["other"]).inc()

    def observe_order_round_trip(self, key: InstrumentKey, seconds: float) -> None:
        self._instrument(key).order_rtt.observe(max(0.0, seconds))

    def count_bad_input(self, venue: str, symbol: str, feed: str, reason: str) -> None:
        self.bad_inputs.labels(venue, symbol, feed, reason).inc()

    def count_error(self, kind: str) -> None:
        self.errors.labels(kind).inc()

    def set_mode(self, mode: Mode) -> None:
        """The mode before the first decision (decisions carry it from then on)."""
        self.mode = mode

    # ------------------------------------------------------------------ scrape side

    def instruments(self) -> list[_Instrument]:
        """A snapshot of the per-instrument state (the scrape runs on another thread)."""
        return list(self._instruments.values())


class _DecisionCollector(Collector):
    """The gauges derived from each instrument's latest decision, computed at scrape time."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def describe(self) -> Iterable[Metric]:
        return list(_families().values())

    def collect(self) -> Iterator[Metric]:
        families = _families()
        for instrument in self._metrics.instruments():
            _add_instrument(families, instrument)
        mode = self._metrics.mode
        if mode is not None:
            for candidate in Mode:
                families["mode"].add_metric([candidate.value], float(candidate is mode))
        yield from families.values()


def _gauge(name: str, doc: str, *extra: str) -> GaugeMetricFamily:
    return GaugeMetricFamily(f"scaler_{name}", doc, labels=[*IK, *extra])


def _families() -> dict[str, GaugeMetricFamily | CounterMetricFamily]:
    return {
        "decisions": CounterMetricFamily(
            "scaler_decisions", "Decisions computed.", labels=list(IK)
        ),
        "last_decision": _gauge(
            "last_decision_timestamp_seconds", "Unix time of the latest decision."
        ),
        "mark": _gauge("mark_price_usd", "Mark price of the instrument."),
        "index": _gauge("index_price_usd", "Index price of the instrument."),
        "funding_observed": _gauge(
            "funding_rate_observed_ratio", "Last observed funding rate per interval."
        ),
        "funding_predicted": _gauge(
            "funding_rate_predicted_ratio",
            "Predicted funding rate per interval: the blend the size formula uses.",
        ),
        "funding_ema": _gauge(
            "funding_rate_ema_ratio", "EMA of observed funding rates per interval (unclamped)."
        ),
        "funding_venue": _gauge(
            "funding_rate_venue_predicted_ratio",
            "The venue's published funding forecast per interval (NaN when it publishes none).",
        ),
        "target": _gauge("target_position_usd", "Target from the size formula, signed USD."),
        "recommended": _gauge(
            "recommended_position_usd", "Target allowed by the risk layer, signed USD."
        ),
        "actual": _gauge("actual_position_usd", "Position held at the venue, signed USD."),
        "deviation": _gauge(
            "position_deviation_ratio",
            "|actual - recommended| / max(|recommended|, lot): how far the position is off.",
        ),
        "equity": _gauge("equity_coin", "Equity (wallet + unrealised PnL) in the settlement coin."),
        "margin_ratio": _gauge(
            "margin_ratio", "Equity over maintenance margin (liquidation at 1, +Inf when flat)."
        ),
        "margin_floor": _gauge(
            "margin_ratio_floor", "Margin ratio below which the risk layer reduces (mm_buffer)."
        ),
        "leverage": _gauge("effective_leverage_ratio", "Position value over equity."),
        "liq_price": _gauge(
            "liquidation_price_usd", "Estimated liquidation price (NaN when none)."
        ),
        "liq_distance": _gauge(
            "liquidation_distance_ratio",
            "Adverse move to liquidation over the mark (0 below maintenance, +Inf when none).",
        ),
        "liq_floor": _gauge(
            "liquidation_distance_floor_ratio",
            "Smallest liquidation distance the risk layer holds (min_liquidation_distance).",
        ),
        "feed_age": _gauge("feed_age_seconds", "Age of the latest data per feed.", "feed"),
        "feed_stale_after": _gauge(
            "feed_stale_after_seconds", "Age at which a feed freezes trading.", "feed"
        ),
        "state": _gauge("trading_state", "1 for the current trading state, else 0.", "state"),
        "state_since": _gauge(
            "trading_state_since_timestamp_seconds",
            "Unix time at which the current trading state began (in this process).",
        ),
        "mode": GaugeMetricFamily(
            "scaler_mode", "1 for the current mode, else 0.", labels=["mode"]
        ),
    }


def _add_instrument(
    families: dict[str, GaugeMetricFamily | CounterMetricFamily], instrument: _Instrument
) -> None:
    labels = list(instrument.labels)
    limits = instrument.limits
    if limits is not None:
        families["margin_floor"].add_metric(labels, limits.mm_buffer)
        families["liq_floor"].add_metric(labels, limits.min_liquidation_distance)
        for feed, seconds in zip(
            FEEDS,
            (
                limits.stale_mark_after_s,
                limits.stale_funding_after_s,
                limits.stale_account_after_s,
            ),
            strict=True,
        ):
            families["feed_stale_after"].add_metric([*labels, feed], seconds)
    record = instrument.record
    if record is None:
        return
    families["decisions"].add_metric(labels, instrument.decisions)
    families["last_decision"].add_metric(labels, record.ts_ns / NS_PER_S)
    for name, value in (
        ("mark", record.mark_price),
        ("index", record.index_price),
        ("funding_observed", record.funding_observed),
        ("funding_predicted", record.funding_predicted),
        ("funding_ema", record.funding_ema),
        ("target", record.target_usd),
        ("recommended", record.recommended_usd),
        ("actual", record.actual_usd),
        ("equity", record.equity_coin),
        ("margin_ratio", record.margin_ratio),
        ("leverage", record.effective_leverage),
        ("liq_distance", record.liquidation_distance),
    ):
        if value is not None:
            families[name].add_metric(labels, value)
    liq_price, venue_rate = record.liquidation_price, record.funding_venue_predicted
    families["liq_price"].add_metric(labels, math.nan if liq_price is None else liq_price)
    families["funding_venue"].add_metric(labels, math.nan if venue_rate is None else venue_rate)
    families["deviation"].add_metric(labels, deviation_ratio(record, instrument.lot_size_usd))
    for feed, age in record.feed_age_s.items():
        if age is not None:
            families["feed_age"].add_metric([*labels, feed], age)
    for state in TradingState:
        families["state"].add_metric([*labels, state.value], float(state is record.trading_state))
    families["state_since"].add_metric(labels, instrument.ts_state_since_s)


def deviation_ratio(record: DecisionRecord, lot_size_usd: float) -> float:
    """``|actual - recommended| / max(|recommended|, lot)``: 0 on target, 1 when a whole target
    (or a lot, near flat) away."""
    return abs(record.actual_usd - record.recommended_usd) / max(
        abs(record.recommended_usd), lot_size_usd
    )
