"""The :class:`~scaler.ports.Telemetry` implementation: metrics plus one log event per change."""

from __future__ import annotations

from typing import Any

import structlog

from scaler.domain.orders import OrderUpdate
from scaler.domain.types import InstrumentKey
from scaler.observability.metrics import Metrics
from scaler.service.records import DecisionRecord

ORDER_OUTCOMES = frozenset(
    {"intended", "open", "filled", "cancelled", "rejected", "orphan_cancelled"}
)


class Observer:
    """Feeds Prometheus and structlog from the loop's events."""

    def __init__(self, metrics: Metrics, logger: Any | None = None) -> None:
        self.metrics = metrics
        self.log = logger or structlog.get_logger("scaler")
        self.last_records: dict[InstrumentKey, DecisionRecord] = {}

    def decision(self, record: DecisionRecord, changed: bool) -> None:
        self.metrics.observe_decision(record)
        self.last_records[record.key] = record
        if changed:
            self.log.info(
                "decision",
                venue=record.key.venue,
                symbol=record.key.symbol,
                mode=record.mode.value,
                state=record.trading_state.value,
                target_usd=record.target_usd,
                recommended_usd=record.recommended_usd,
                actual_usd=record.actual_usd,
                mark=record.mark_price,
                funding_predicted=record.funding_predicted,
                reasons=list(record.reasons),
                details=list(record.details),
            )

    def order_event(self, key: InstrumentKey, event: str, update: OrderUpdate | None) -> None:
        outcome = event if event in ORDER_OUTCOMES else "other"
        self.metrics.orders.labels(key.venue, key.symbol, outcome).inc()
        fields: dict[str, Any] = {"venue": key.venue, "symbol": key.symbol, "outcome": outcome}
        if update is not None:
            fields |= {
                "client_order_id": update.client_order_id,
                "side": update.side.value,
                "amount_usd": update.amount_usd,
                "filled_usd": update.filled_usd,
                "price": update.average_fill_price,
                "reason": update.reason,
            }
        self.log.info("order", **fields)

    def order_round_trip(self, key: InstrumentKey, seconds: float) -> None:
        self.metrics.order_rtt.labels(key.venue, key.symbol).observe(max(0.0, seconds))

    def bad_input(self, key: InstrumentKey | None, feed: str, reason: str) -> None:
        venue, symbol = (key.venue, key.symbol) if key else ("unknown", "unknown")
        self.metrics.bad_inputs.labels(venue, symbol, feed, reason).inc()
        self.log.warning("bad_input", venue=venue, symbol=symbol, feed=feed, reason=reason)

    def error(self, kind: str, detail: str) -> None:
        self.metrics.errors.labels(kind).inc()
        self.log.error("error", kind=kind, detail=detail)

    def state_changed(self, key: InstrumentKey, previous: str, current: str, reasons: str) -> None:
        self.log.warning(
            "trading_state_changed",
            venue=key.venue,
            symbol=key.symbol,
            previous=previous,
            current=current,
            reasons=reasons.split(",") if reasons else [],
        )
