"""The seams between the loop and the world, as small ``typing.Protocol`` classes.

The paper exchange and the ccxt venue adapter both implement :class:`Broker` and
:class:`MarketFeed`; the SQLite journal implements :class:`Journal`; the Prometheus/structlog
observer implements :class:`Telemetry`. Tests plug hand-written fakes into the same seams.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any, Protocol

from scaler.domain.inverse import MarginSchedule
from scaler.domain.orders import Fill, OrderRequest, OrderStatus, OrderUpdate
from scaler.domain.records import DecisionRecord
from scaler.domain.types import AccountSnapshot, InstrumentKey, MarketSnapshot


class Clock(Protocol):
    """The only source of time. ``now_ns`` is UTC nanoseconds since the epoch."""

    def now_ns(self) -> int: ...

    async def sleep(self, seconds: float) -> None: ...


class MarketFeed(Protocol):
    """A stream of market snapshots for the instruments it was built for."""

    def stream(self) -> AsyncIterator[MarketSnapshot]: ...

    async def close(self) -> None: ...


class Broker(Protocol):
    """Orders and account state at one venue. Errors are the types in ``scaler.errors``."""

    async def place_order(self, request: OrderRequest) -> OrderUpdate: ...

    async def cancel_order(self, key: InstrumentKey, client_order_id: str) -> OrderUpdate: ...

    async def fetch_order(self, key: InstrumentKey, client_order_id: str) -> OrderUpdate | None: ...

    async def open_orders(self, key: InstrumentKey) -> list[OrderUpdate]: ...

    async def account(self, key: InstrumentKey) -> AccountSnapshot: ...

    async def fills_since(self, key: InstrumentKey, ts_ns: int) -> list[Fill]: ...


class InstrumentSource(Protocol):
    """Static facts about an instrument: lot size and the maintenance-margin schedule."""

    async def margin_schedule(self, key: InstrumentKey) -> MarginSchedule: ...

    async def lot_size_usd(self, key: InstrumentKey) -> float: ...


class Journal(Protocol):
    """Durable record of intents (written before sending), outcomes, fills and loop state."""

    def record_intent(self, request: OrderRequest) -> None: ...

    def record_update(self, update: OrderUpdate) -> None: ...

    def record_fill(self, fill: Fill) -> None: ...

    def unresolved_intents(self) -> list[OrderRequest]: ...

    def order_status(self, client_order_id: str) -> OrderStatus | None: ...

    def save_state(self, name: str, value: Mapping[str, Any]) -> None: ...

    def load_state(self, name: str) -> dict[str, Any] | None: ...


class Telemetry(Protocol):
    """Where the loop reports what it did: metrics and structured logs."""

    def decision(self, record: DecisionRecord, changed: bool) -> None: ...

    def order_event(self, key: InstrumentKey, event: str, update: OrderUpdate | None) -> None: ...

    def order_round_trip(self, key: InstrumentKey, seconds: float) -> None: ...

    def bad_input(self, key: InstrumentKey | None, feed: str, reason: str) -> None: ...

    def error(self, kind: str, detail: str) -> None: ...

    def state_changed(
        self, key: InstrumentKey, previous: str, current: str, reasons: str
    ) -> None: ...
