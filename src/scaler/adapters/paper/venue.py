"""The paper exchange bound to its market feed and to durable storage.

Every snapshot reaches the exchange (funding settlement, resting-order matching, liquidation)
before the loop sees it, exactly as a real venue's state moves before its ticker arrives. The
exchange state is saved through ``persist`` after every order or cancel and at most every
``persist_interval_ns`` on market updates, so a restart resumes the same wallet and position.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

from scaler.adapters.paper.exchange import PaperExchange
from scaler.domain.orders import Fill, OrderRequest, OrderUpdate
from scaler.domain.types import NS_PER_S, AccountSnapshot, InstrumentKey, MarketSnapshot
from scaler.errors import BadInputError
from scaler.ports import MarketFeed

PERSIST_INTERVAL_NS = 5 * NS_PER_S


class PaperVenue:
    """A MarketFeed and a Broker backed by one :class:`PaperExchange`."""

    def __init__(
        self,
        exchange: PaperExchange,
        feed: MarketFeed,
        persist: Callable[[PaperExchange], None] | None = None,
        on_bad_input: Callable[[MarketSnapshot, str], None] | None = None,
    ) -> None:
        self.exchange = exchange
        self._feed = feed
        self._persist = persist
        self._on_bad_input = on_bad_input
        self._ts_persisted_ns = 0

    # ---- MarketFeed

    async def stream(self) -> AsyncIterator[MarketSnapshot]:
        async for snapshot in self._feed.stream():
            try:
                self.exchange.on_market(snapshot)
            except BadInputError as exc:
                if self._on_bad_input is not None:
                    self._on_bad_input(snapshot, exc.reason)
                continue
            if snapshot.ts_event_ns - self._ts_persisted_ns >= PERSIST_INTERVAL_NS:
                self.save()
            yield snapshot

    async def close(self) -> None:
        await self._feed.close()

    # ---- Broker

    async def place_order(self, request: OrderRequest) -> OrderUpdate:
        try:
            return await self.exchange.place_order(request)
        finally:
            self.save()

    async def cancel_order(self, key: InstrumentKey, client_order_id: str) -> OrderUpdate:
        try:
            return await self.exchange.cancel_order(key, client_order_id)
        finally:
            self.save()

    async def fetch_order(self, key: InstrumentKey, client_order_id: str) -> OrderUpdate | None:
        return await self.exchange.fetch_order(key, client_order_id)

    async def open_orders(self, key: InstrumentKey) -> list[OrderUpdate]:
        return await self.exchange.open_orders(key)

    async def account(self, key: InstrumentKey) -> AccountSnapshot:
        return await self.exchange.account(key)

    async def fills_since(self, key: InstrumentKey, ts_ns: int) -> list[Fill]:
        return await self.exchange.fills_since(key, ts_ns)

    def save(self) -> None:
        """Persist the exchange state now."""
        if self._persist is not None:
            self._persist(self.exchange)
            self._ts_persisted_ns = self.exchange.now_ns
