"""Order execution: journal first, throttle, send, classify the outcome, never resend blind.

Every order intent is written to the journal **before** it is sent. When the venue's answer is
lost (a timeout, a dropped connection, an error that does not say whether the order exists), the
order is looked up by its client order id before anything else is sent for that instrument; until
it is resolved the instrument sends nothing new.
"""

from __future__ import annotations

from collections.abc import Callable

from scaler.domain.orders import OrderRequest, OrderStatus, OrderUpdate
from scaler.domain.planning import parse_client_order_id
from scaler.domain.types import InstrumentKey
from scaler.errors import (
    FatalVenueError,
    OutcomeUnknownError,
    RejectedError,
    TransientError,
    VenueError,
)
from scaler.ports import Broker, Clock, Journal, Telemetry
from scaler.service.order_rate import OrderRateLimit

LOOKUP_ATTEMPTS = 5


class Executor:
    """Sends, cancels and reconciles the daemon's own orders at one broker."""

    def __init__(
        self,
        broker: Broker,
        journal: Journal,
        telemetry: Telemetry,
        clock: Clock,
        client_id_prefix: str,
        max_orders_per_s: float,
    ) -> None:
        self._broker = broker
        self._journal = journal
        self._telemetry = telemetry
        self._clock = clock
        self._prefix = client_id_prefix
        self._rate_limit = OrderRateLimit(max_orders_per_s, clock)
        self.unresolved: dict[str, OrderRequest] = {}
        """Intents whose outcome is unknown; an instrument with any sends nothing new."""

    def is_own(self, client_order_id: str) -> bool:
        return parse_client_order_id(self._prefix, client_order_id) is not None

    def blocked(self, key: InstrumentKey) -> bool:
        return any(req.key == key for req in self.unresolved.values())

    async def send(
        self, request: OrderRequest, may_send: Callable[[], bool] = lambda: True
    ) -> OrderUpdate | None:
        """Throttle, journal and send one order; ``None`` when it was not sent (``may_send``
        turned false while it waited for the rate limiter) or its outcome is still unknown."""
        async with self._rate_limit:
            if not may_send():
                return None
            self._journal.record_intent(request)
            intent = _intended(request, self._clock.now_ns())
            self._telemetry.order_event(request.key, "intended", intent)
            sent_ns = self._clock.now_ns()
            try:
                update = await self._broker.place_order(request)
                self._telemetry.order_round_trip(
                    request.key, (self._clock.now_ns() - sent_ns) / 1e9
                )
            except RejectedError as exc:
                update = _rejected(request, str(exc), self._clock.now_ns())
            except FatalVenueError:
                raise
            except (OutcomeUnknownError, TransientError, VenueError) as exc:
                self._telemetry.error("order_outcome_unknown", str(exc))
                self.unresolved[request.client_order_id] = request
                return await self.resolve(request)
        self._record(update)
        return update

    async def resolve(self, request: OrderRequest) -> OrderUpdate | None:
        """Look an order up by client id; record the answer, or keep it unresolved."""
        for _ in range(LOOKUP_ATTEMPTS):
            try:
                update = await self._broker.fetch_order(request.key, request.client_order_id)
            except (TransientError, OutcomeUnknownError) as exc:
                self._telemetry.error("order_lookup", str(exc))
                await self._clock.sleep(0.2)
                continue
            if update is None:
                update = _rejected(request, "not found at the venue", self._clock.now_ns())
            self.unresolved.pop(request.client_order_id, None)
            self._record(update)
            return update
        return None

    async def resolve_pending(self) -> None:
        """Retry every lookup still outstanding."""
        for request in list(self.unresolved.values()):
            await self.resolve(request)

    async def cancel(self, key: InstrumentKey, client_order_id: str) -> None:
        """Cancel one own order; a venue error is counted and the TTL retries it later."""
        try:
            update = await self._broker.cancel_order(key, client_order_id)
        except VenueError as exc:
            self._telemetry.error("cancel", str(exc))
            return
        self._record(update)

    async def cancel_all_own(self, key: InstrumentKey) -> int:
        """Cancel every resting order of ours for ``key``; returns how many were asked."""
        try:
            orders = await self._broker.open_orders(key)
        except VenueError as exc:
            self._telemetry.error("open_orders", str(exc))
            return 0
        own = [order for order in orders if self.is_own(order.client_order_id)]
        for order in own:
            await self.cancel(key, order.client_order_id)
        return len(own)

    async def reconcile(self, keys: list[InstrumentKey]) -> None:
        """Before the first new order: settle journaled intents and cancel orphaned own orders.

        Every order is journaled before it is sent, so an open order with our prefix that the
        journal has never seen was not sent by this instance's history (another process with
        the same prefix, or a journal that was deleted): it is cancelled, never adopted.
        """
        for request in self._journal.unresolved_intents():
            self.unresolved[request.client_order_id] = request
            await self.resolve(request)
        for key in keys:
            for order in await self._broker.open_orders(key):
                cid = order.client_order_id
                if self.is_own(cid) and self._journal.order_status(cid) is None:
                    self._telemetry.order_event(key, "orphan_cancelled", order)
                    await self.cancel(key, order.client_order_id)

    def _record(self, update: OrderUpdate) -> None:
        self._journal.record_update(update)
        self._telemetry.order_event(update.key, update.status.value, update)


def _unfilled(
    request: OrderRequest, status: OrderStatus, ts_ns: int, reason: str = ""
) -> OrderUpdate:
    """An update for an order nothing has filled yet, built from its request."""
    return OrderUpdate(
        key=request.key,
        client_order_id=request.client_order_id,
        venue_order_id=None,
        status=status,
        side=request.side,
        amount_usd=request.amount_usd,
        filled_usd=0.0,
        average_fill_price=None,
        ts_ns=ts_ns,
        reason=reason,
    )


def _intended(request: OrderRequest, ts_ns: int) -> OrderUpdate:
    """The journaled intent as an update, so that its log event names the order."""
    return _unfilled(request, OrderStatus.INTENDED, ts_ns)


def _rejected(request: OrderRequest, reason: str, ts_ns: int) -> OrderUpdate:
    return _unfilled(request, OrderStatus.REJECTED, ts_ns, reason)
