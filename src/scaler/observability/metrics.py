"""Prometheus metrics, prefix ``scaler_``, labels ``venue`` and ``symbol`` plus bounded ones.

Every label value comes from a closed set (enums, rule names, error kinds named in code), never
from order ids or free text. The table in ``docs/metrics.md`` documents each series.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

from scaler import __version__
from scaler.domain.types import Mode, TradingState
from scaler.service.records import DecisionRecord

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
IK = ("venue", "symbol")
BREAKER_REASONS = frozenset({"gap_breaker", "index_divergence"})


class Metrics:
    """All series of one daemon, in their own registry."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        g = self._gauge
        self.mark = g("mark_price_usd", "Mark price of the instrument.")
        self.index = g("index_price_usd", "Index price of the instrument.")
        self.funding_observed = g(
            "funding_rate_observed_ratio", "Last observed funding rate per interval."
        )
        self.funding_predicted = g(
            "funding_rate_predicted_ratio", "Predicted funding rate for the next interval."
        )
        self.target = g("target_position_usd", "Target from the size formula, signed USD notional.")
        self.recommended = g(
            "recommended_position_usd", "Target allowed by the risk layer, signed USD."
        )
        self.actual = g("actual_position_usd", "Position held at the venue, signed USD notional.")
        self.equity = g("equity_coin", "Equity (wallet + unrealised PnL) in the settlement coin.")
        self.margin_ratio = g("margin_ratio", "Equity over maintenance margin (liquidation at 1).")
        self.leverage = g("effective_leverage_ratio", "Position value over equity.")
        self.liq_price = g("liquidation_price_usd", "Estimated liquidation price (NaN when none).")
        self.liq_distance = g(
            "liquidation_distance_ratio", "|mark - liquidation| / mark (+Inf when none)."
        )
        self.feed_age = Gauge(
            "scaler_feed_age_seconds", "Age of the latest data per feed.", [*IK, "feed"], registry=r
        )
        self.state = Gauge(
            "scaler_trading_state", "1 for the current trading state.", [*IK, "state"], registry=r
        )
        self.mode = Gauge("scaler_mode", "1 for the current mode.", ["mode"], registry=r)
        self.adjustments = Counter(
            "scaler_risk_adjustments_total",
            "Decisions in which a risk rule acted.",
            [*IK, "rule", "reason"],
            registry=r,
        )
        self.breaker_trips = Counter(
            "scaler_breaker_trips_total",
            "Gap or divergence circuit-breaker trips.",
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
        self.decisions = Counter("scaler_decisions_total", "Decisions computed.", IK, registry=r)
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
            buckets=LATENCY_BUCKETS_S,
            registry=r,
        )
        Info("scaler_build", "Build information.", registry=r).info({"version": __version__})

    def _gauge(self, name: str, doc: str) -> Gauge:
        return Gauge(f"scaler_{name}", doc, IK, registry=self.registry)

    def observe_decision(self, record: DecisionRecord) -> None:
        labels = (record.key.venue, record.key.symbol)
        self.decisions.labels(*labels).inc()
        for gauge, value in (
            (self.mark, record.mark_price),
            (self.index, record.index_price),
            (self.funding_observed, record.funding_observed),
            (self.funding_predicted, record.funding_predicted),
            (self.equity, record.equity_coin),
            (self.margin_ratio, record.margin_ratio),
            (self.leverage, record.effective_leverage),
            (self.liq_distance, record.liquidation_distance),
        ):
            if value is not None:
                gauge.labels(*labels).set(value)
        self.liq_price.labels(*labels).set(
            record.liquidation_price if record.liquidation_price is not None else float("nan")
        )
        self.target.labels(*labels).set(record.target_usd)
        self.recommended.labels(*labels).set(record.recommended_usd)
        self.actual.labels(*labels).set(record.actual_usd)
        for feed, age in record.feed_age_s.items():
            if age is not None:
                self.feed_age.labels(*labels, feed).set(age)
        for state in TradingState:
            self.state.labels(*labels, state.value).set(
                1.0 if state is record.trading_state else 0.0
            )
        self.set_mode(record.mode)
        if record.latency_s is not None and record.latency_s >= 0:
            self.latency.labels(*labels).observe(record.latency_s)
        self._count_rules(record, labels)

    def _count_rules(self, record: DecisionRecord, labels: tuple[str, str]) -> None:
        for rule, reason in zip(record.rules, record.reasons, strict=True):
            self.adjustments.labels(*labels, rule, reason).inc()
            if reason in BREAKER_REASONS:
                self.breaker_trips.labels(*labels, reason).inc()

    def set_mode(self, mode: Mode) -> None:
        for candidate in Mode:
            self.mode.labels(candidate.value).set(1.0 if candidate is mode else 0.0)
