"""What the websocket pushes: the messages a market tick or an order change sends to subscribers.

The publisher builds each message once per event (lazily: nothing is built for a channel nobody
holds) and hands it to the hub, which knows the connections. Book pushes are deltas against the
previous tick's levels, numbered by the venue's ``change_id`` (``prev_change_id`` is always the
``change_id`` of the push before, so a client can check it missed nothing); a new book
subscriber first gets a ``snapshot`` of the current levels.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from scaler.adapters.sim import dialect, records, rpc
from scaler.adapters.sim.channels import Channel, Topic, parse_channel
from scaler.adapters.sim.dialect import Listing
from scaler.adapters.sim.orders import MarketOutcome, OrderView, TradeView
from scaler.adapters.sim.venue import SimVenue
from scaler.domain.types import MarketSnapshot

T = TypeVar("T")
BookLevels = dict[float, float]


class Pusher(Protocol):
    """The hub's side: deliver messages to the subscribers of a topic."""

    def push(
        self, topic: Topic, instrument: str, messages: Callable[[Channel], list[Any]]
    ) -> None: ...


def _once(build: Callable[[], T]) -> Callable[[], T]:
    """``build``, called at most once."""
    cache: list[T] = []

    def get() -> T:
        if not cache:
            cache.append(build())
        return cache[0]

    return get


class Publisher:
    """Turns venue events into channel messages."""

    def __init__(self, venue: SimVenue) -> None:
        self._venue = venue
        self._hub: Pusher | None = None
        self._levels: dict[str, tuple[BookLevels, BookLevels]] = {}

    def attach(self, hub: Pusher) -> None:
        self._hub = hub

    def _push(
        self, topic: Topic, instrument: str, messages: Callable[[Channel], list[Any]]
    ) -> None:
        if self._hub is not None:
            self._hub.push(topic, instrument, messages)

    def parse(self, name: str) -> Channel | None:
        return parse_channel(name, self._venue.listings, self._venue.currency)

    # ---- market

    def welcome(self, channel: Channel) -> list[Any]:
        """What a new subscriber gets at once: the current ticker, quote or book snapshot."""
        if channel.topic.private or channel.instrument is None:
            return []
        listing = self._venue.listings[channel.instrument]
        snapshot = self._venue.snapshots.get(listing.name)
        if snapshot is None:
            return []
        if channel.topic is Topic.TICKER:
            return [rpc.notification(channel.name, self._ticker(listing, snapshot))]
        if channel.topic is Topic.QUOTE:
            return [rpc.notification(channel.name, dialect.quote_json(listing, snapshot))]
        bids, asks = self._levels.get(listing.name, ({}, {}))
        data = self._book_head(listing, snapshot, "snapshot") | {
            "bids": [["new", price, amount] for price, amount in bids.items()],
            "asks": [["new", price, amount] for price, amount in asks.items()],
        }
        return [rpc.notification(channel.name, data)]

    def market(self, listing: Listing, snapshot: MarketSnapshot, outcome: MarketOutcome) -> None:
        """Push one tick: ticker, book change, quote, then what it did to our orders."""
        name = listing.name
        ticker = _once(lambda: self._ticker(listing, snapshot))
        self._push(Topic.TICKER, name, lambda ch: [rpc.notification(ch.name, ticker())])
        change = self._book_change(listing, snapshot)
        self._push(Topic.BOOK, name, lambda ch: [rpc.notification(ch.name, change)])
        quote = _once(lambda: dialect.quote_json(listing, snapshot))
        self._push(Topic.QUOTE, name, lambda ch: [rpc.notification(ch.name, quote())])
        self.orders(outcome.orders, outcome.trades, portfolio=False)
        self._portfolio(name)

    def _ticker(self, listing: Listing, snapshot: MarketSnapshot) -> dict[str, Any]:
        open_interest = float(abs(self._venue.exchange.position(listing.key).size_usd))
        return dialect.ticker_json(listing, snapshot, open_interest)

    def _book_head(self, listing: Listing, snapshot: MarketSnapshot, kind: str) -> dict[str, Any]:
        return {
            "type": kind,
            "timestamp": dialect.ms(snapshot.ts_event_ns),
            "instrument_name": listing.name,
            "change_id": self._venue.change_ids.get(listing.name, 0),
        }

    def _book_change(self, listing: Listing, snapshot: MarketSnapshot) -> dict[str, Any]:
        """The delta from the last tick's levels to these, and remember these."""
        bids, asks = dialect.book_sides(snapshot)
        old_bids, old_asks = self._levels.get(listing.name, ({}, {}))
        head = self._book_head(listing, snapshot, "change")
        data = head | {
            "prev_change_id": head["change_id"] - 1,
            "bids": dialect.level_changes(old_bids, bids),
            "asks": dialect.level_changes(old_asks, asks),
        }
        self._levels[listing.name] = (dict(bids), dict(asks))
        return data

    # ---- account

    def orders(
        self, orders: list[OrderView], trades: list[TradeView], *, portfolio: bool = True
    ) -> None:
        """Push order changes and fills to ``user.orders``/``user.trades`` subscribers."""
        for view in orders:
            self._push_order(view)
        by_instrument: dict[str, list[TradeView]] = {}
        for trade in trades:
            name = self._venue.listing_by_key(trade.fill.key).name
            by_instrument.setdefault(name, []).append(trade)
        for name, batch in by_instrument.items():
            self._push_trades(self._venue.listings[name], batch)
        if portfolio and (orders or trades):
            self._portfolio(next(iter(self._venue.listings)))

    def _push_order(self, view: OrderView) -> None:
        listing = self._venue.listings[view.meta.instrument_name]
        data = _once(lambda: records.order_json(view, listing))

        def messages(channel: Channel) -> list[Any]:
            body = data() if channel.interval == "raw" else [data()]
            return [rpc.notification(channel.name, body)]

        self._push(Topic.ORDERS, listing.name, messages)

    def _push_trades(self, listing: Listing, batch: list[TradeView]) -> None:
        fills = _once(lambda: [records.trade_json(t, listing, self._venue) for t in batch])
        self._push(Topic.TRADES, listing.name, lambda ch: [rpc.notification(ch.name, fills())])

    def _portfolio(self, instrument: str) -> None:
        summary = _once(lambda: records.account_summary_json(self._venue))
        self._push(Topic.PORTFOLIO, instrument, lambda ch: [rpc.notification(ch.name, summary())])
