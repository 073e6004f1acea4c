"""The :class:`~scaler.ports.Telemetry` implementation: metrics plus one log event per change.

The log is the operator's record of what happened, one JSON object per event, each with the
instrument and a reason code:

============================  =========  ===================================================
event                         level      when, and the codes it carries
============================  =========  ===================================================
``decision``                  info       a decision changed the recommended target, the
                                         trading state, the mode or the set of rules that
                                         acted: ``state``, ``mode``, ``reasons``, ``rules``
``trading_state_changed``     warning    every state transition: ``previous``, ``current``,
                                         ``reasons``
``order``                     info       every order event: ``outcome`` (``intended``,
                                         ``open``, ``filled``, ``cancelled``, ``rejected``,
                                         ``orphan_cancelled``), ``client_order_id``, ``reason``
``bad_input``                 warning    every rejected input: ``feed``, ``reason``
``error``                     error      every counted error: ``kind``, ``detail``
============================  =========  ===================================================

Secrets never reach the output: :mod:`scaler.observability.logging` scrubs every field.
"""

from __future__ import annotations

from typing import Any

import structlog

from scaler.domain.orders import OrderUpdate
from scaler.domain.records import DecisionRecord
from scaler.domain.types import InstrumentKey
from scaler.observability.metrics import ORDER_OUTCOMES, Metrics

__all__ = ["ORDER_OUTCOMES", "Observer"]


class Observer:
    """Feeds Prometheus and structlog from the loop's events."""

    def __init__(self, metrics: Metrics, logger: Any | None = None) -> None:
        self.metrics = metrics
        self.log = logger or structlog.get_logger("scaler")

    def decision(self, record: DecisionRecord, changed: bool) -> None:
        self.metrics.observe_decision(record)
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
                rules=list(record.rules),
                details=list(record.details),
            )

    def order_event(self, key: InstrumentKey, event: str, update: OrderUpdate | None) -> None:
        outcome = event if event in ORDER_OUTCOMES else "other"
        self.metrics.count_order(key, outcome)
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
        self.metrics.observe_order_round_trip(key, seconds)

    def bad_input(self, key: InstrumentKey | None, feed: str, reason: str) -> None:
        venue, symbol = (key.venue, key.symbol) if key else ("unknown", "unknown")
        self.metrics.count_bad_input(venue, symbol, feed, reason)
        self.log.warning("bad_input", venue=venue, symbol=symbol, feed=feed, reason=reason)

    def error(self, kind: str, detail: str) -> None:
        self.metrics.count_error(kind)
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
