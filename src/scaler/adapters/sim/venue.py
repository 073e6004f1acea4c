"""The paper exchange seen as a Deribit account: order ids, labels, and what Deribit reports.

Deribit names an order by its own id (``BTC-<n>``) and lets the client attach a ``label``, which
need not be unique: a client that sends the same label twice gets two orders, exactly as on
Deribit, and that is how a test catches a client that resends blind. So every order gets the next
``BTC-<n>`` from a durable counter, that id is the paper exchange's client order id (unique for
good), and the label is metadata kept here (:class:`OrderMeta`) along with what the paper order
does not record: type, price, time in force and the wall-clock times Deribit reports.

Before an order reaches the paper exchange it passes the paper venue's own admission rules, so the
refusal can be given its Deribit code: the shape check (whole lots, price on the tick) is
``Invalid params``, a post-only order that would take is ``post_only_reject``, a reduce-only order
with nothing to reduce is ``other_reject``, no market yet is ``book_closed``; what the paper
exchange still refuses after that is its margin check, ``not_enough_funds``. Refused orders get
no id and leave no order behind, as on Deribit.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Final

from scaler.adapters.paper.admission import post_only_refusal, reduce_only_amount, shape_refusal
from scaler.adapters.paper.book import Book
from scaler.adapters.paper.exchange import PaperExchange
from scaler.adapters.paper.instrument import PaperInstrument
from scaler.adapters.sim import rpc
from scaler.adapters.sim.dialect import Listing, listing_for, ms
from scaler.adapters.sim.orders import (
    IMMEDIATE_OR_CANCEL,
    MarketOutcome,
    NewOrder,
    OrderMeta,
    OrderView,
    TradeView,
)
from scaler.adapters.sim.rpc import DeribitError
from scaler.domain.orders import Fill, OrderRequest, OrderStatus, OrderType
from scaler.domain.types import InstrumentKey, MarketSnapshot
from scaler.errors import RejectedError
from scaler.ports import Clock

META_FORMAT: Final = 1


class SimVenue:
    """The Deribit account over one :class:`PaperExchange` (one wallet, one settlement coin)."""

    def __init__(
        self, exchange: PaperExchange, clock: Clock, meta: Mapping[str, Any] | None = None
    ) -> None:
        self.exchange = exchange
        self._clock = clock
        self.listings = {
            listing.name: listing
            for listing in (
                listing_for(instrument, exchange.config, number)
                for number, instrument in enumerate(exchange.instruments, start=1)
            )
        }
        self._by_key = {listing.key: listing for listing in self.listings.values()}
        self.currency = next(iter(self.listings.values())).currency
        self.snapshots: dict[str, MarketSnapshot] = {}
        self.change_ids: dict[str, int] = {}
        """Per instrument, the number of market updates applied: the book's ``change_id``."""
        self._orders: dict[str, OrderMeta] = {}
        self._labels: dict[str, list[str]] = {}
        self._next_number = 1
        self._fills_by_order: dict[str, list[tuple[int, Fill]]] = {}
        self._trades: list[tuple[int, Fill]] = []
        self._seq_by_key: dict[InstrumentKey, int] = {}
        self._tails: dict[InstrumentKey, tuple[int, set[str]]] = {}
        if meta is not None:
            self._restore(meta)
        self._absorb_fills()

    # ---- persistence ----------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": META_FORMAT,
            "next_order_number": self._next_number,
            "orders": [meta.to_dict() for meta in self._orders.values()],
        }

    def _restore(self, data: Mapping[str, Any]) -> None:
        if data.get("format") != META_FORMAT:
            raise ValueError(f"unsupported exchange-sim state format {data.get('format')!r}")
        self._next_number = int(data["next_order_number"])
        for item in data["orders"]:
            meta = OrderMeta.from_dict(item)
            self._orders[meta.order_id] = meta
            self._labels.setdefault(meta.label, []).append(meta.order_id)

    # ---- lookups --------------------------------------------------------------------------

    def listing(self, name: str) -> Listing:
        listing = self.listings.get(name)
        if listing is None:
            raise rpc.invalid_param("instrument_name", f"unknown instrument {name!r}")
        return listing

    def listing_by_key(self, key: InstrumentKey) -> Listing:
        return self._by_key[key]

    def instrument(self, listing: Listing) -> PaperInstrument:
        return next(i for i in self.exchange.instruments if i.key == listing.key)

    def mark_and_index(self, listing: Listing) -> tuple[float | None, float | None]:
        """The latest mark and index (after a restart, the saved mark until the first tick)."""
        snapshot = self.snapshots.get(listing.name)
        if snapshot is not None:
            return snapshot.mark_price, snapshot.index_price
        mark = self.exchange.last_mark(listing.key)
        return mark, mark

    def view(self, order_id: str) -> OrderView:
        meta = self._orders.get(order_id)
        if meta is None:
            raise DeribitError(rpc.ORDER_NOT_FOUND, f"no order {order_id!r}", param="order_id")
        update = self.exchange.lookup(self.listings[meta.instrument_name].key, order_id)
        if update is None:  # every order with metadata was accepted by the paper exchange
            raise DeribitError(rpc.GENERAL_ERROR, f"order {order_id!r} lost by the paper exchange")
        fills = self._fills_by_order.get(order_id, ())
        return OrderView(meta, update, sum((fill.fee_coin for _, fill in fills), 0.0))

    def orders(self, listing: Listing | None = None) -> list[OrderView]:
        """Every accepted order (of one instrument, or all), oldest first."""
        return [
            self.view(order_id)
            for order_id, meta in self._orders.items()
            if listing is None or meta.instrument_name == listing.name
        ]

    def open_orders(self, listing: Listing | None = None) -> list[OrderView]:
        listings = [listing] if listing is not None else list(self.listings.values())
        return [
            self.view(update.client_order_id)
            for item in listings
            for update in self.exchange.list_open(item.key)
        ]

    def orders_by_label(self, label: str) -> list[OrderView]:
        return [self.view(order_id) for order_id in self._labels.get(label, ())]

    def labels(self) -> Mapping[str, list[str]]:
        return self._labels

    def trades(self, listing: Listing | None = None) -> list[TradeView]:
        """Every fill of our orders (of one instrument, or all), oldest first."""
        return self._trade_views(
            item for item in self._trades if listing is None or item[1].key == listing.key
        )

    def order_trades(self, order_id: str) -> list[TradeView]:
        self.view(order_id)
        return self._trade_views(self._fills_by_order.get(order_id, ()))

    def _trade_views(self, items: Iterable[tuple[int, Fill]]) -> list[TradeView]:
        return [TradeView(fill, seq, self.view(fill.client_order_id)) for seq, fill in items]

    # ---- orders ---------------------------------------------------------------------------

    def place(self, order: NewOrder) -> tuple[OrderView, list[TradeView]]:
        """Accept an order (it fills what it can at once) or raise :class:`DeribitError`."""
        listing = self.listing(order.instrument_name)
        order_id = f"{listing.currency}-{self._next_number}"
        request = OrderRequest(
            key=listing.key,
            client_order_id=order_id,
            side=order.side,
            amount_usd=order.amount_usd,
            order_type=order.order_type,
            limit_price=order.price,
            reduce_only=order.reduce_only,
            post_only=order.post_only,
            ts_created_ns=self._clock.now_ns(),
        )
        self._admit(request, listing)
        self._next_number += 1
        try:
            self.exchange.place(request)
        except RejectedError as exc:
            raise DeribitError(rpc.NOT_ENOUGH_FUNDS, str(exc)) from None
        now_ms = ms(request.ts_created_ns)
        meta = OrderMeta(
            order_id=order_id,
            instrument_name=listing.name,
            label=order.label,
            side=order.side,
            order_type=order.order_type,
            price=order.price,
            amount_usd=order.amount_usd,
            post_only=order.post_only,
            reduce_only=order.reduce_only,
            time_in_force=order.time_in_force,
            ts_created_ms=now_ms,
            ts_updated_ms=now_ms,
        )
        self._orders[order_id] = meta
        self._labels.setdefault(order.label, []).append(order_id)
        if order.time_in_force == IMMEDIATE_OR_CANCEL and self._is_open(meta):
            self.exchange.cancel(listing.key, order_id)
            meta.cancel_reason = IMMEDIATE_OR_CANCEL
        self._absorb_fills()
        return self.view(order_id), self.order_trades(order_id)

    def _admit(self, request: OrderRequest, listing: Listing) -> None:
        """The paper venue's admission rules, each refusal with its Deribit code."""
        reason = shape_refusal(request, self.instrument(listing))
        if reason is not None:
            raise DeribitError(rpc.INVALID_PARAMS, reason)
        snapshot = self.snapshots.get(listing.name)
        if snapshot is None:
            raise DeribitError(rpc.BOOK_CLOSED, f"no market data for {listing.name} yet")
        reason = post_only_refusal(request, Book.from_snapshot(snapshot))
        if reason is not None:
            raise DeribitError(rpc.POST_ONLY_REJECT, reason)
        held_usd = self.exchange.position(listing.key).size_usd
        accepted, note = reduce_only_amount(request, int(request.amount_usd), held_usd)
        if accepted == 0:
            raise DeribitError(rpc.OTHER_REJECT, note)

    def cancel(self, order_id: str, reason: str = "user_request") -> OrderView:
        meta = self.view(order_id).meta
        if not self._is_open(meta):
            raise DeribitError(rpc.ALREADY_CLOSED, f"order {order_id!r} is not open")
        self.exchange.cancel(self.listings[meta.instrument_name].key, order_id)
        meta.cancel_reason = reason
        meta.ts_updated_ms = ms(self._clock.now_ns())
        return self.view(order_id)

    def cancel_all(
        self, listing: Listing | None = None, label: str | None = None
    ) -> list[OrderView]:
        """Cancel every open order (of one instrument, with one label); the orders cancelled."""
        return [
            self.cancel(view.meta.order_id)
            for view in self.open_orders(listing)
            if label is None or view.meta.label == label
        ]

    def _is_open(self, meta: OrderMeta) -> bool:
        update = self.exchange.lookup(self.listings[meta.instrument_name].key, meta.order_id)
        return update is not None and not update.status.is_terminal

    # ---- market ---------------------------------------------------------------------------

    def on_market(self, snapshot: MarketSnapshot) -> MarketOutcome:
        """Advance the paper exchange; ``BadInputError`` (snapshot refused) leaves it as it was."""
        listing = self.listing_by_key(snapshot.key)
        open_before = {u.client_order_id for u in self.exchange.list_open(snapshot.key)}
        self.exchange.on_market(snapshot)
        self.snapshots[listing.name] = snapshot
        self.change_ids[listing.name] = self.change_ids.get(listing.name, 0) + 1
        fresh = self._absorb_fills()
        open_after = {u.client_order_id for u in self.exchange.list_open(snapshot.key)}
        filled = [fill.client_order_id for _, fill in fresh]
        changed = dict.fromkeys(filled + sorted(open_before - open_after))
        now_ms = ms(self._clock.now_ns())
        for order_id in changed:
            meta = self._orders[order_id]
            meta.ts_updated_ms = now_ms
            if order_id not in open_after and meta.cancel_reason is None:
                status = self.exchange.lookup(snapshot.key, order_id)
                if status is not None and status.status is OrderStatus.CANCELLED:
                    meta.cancel_reason = "autoliquidation"
        return MarketOutcome(
            [self.view(order_id) for order_id in changed], self._trade_views(fresh)
        )

    def _absorb_fills(self) -> list[tuple[int, Fill]]:
        """Number and index the fills the paper exchange made since the last call; return them.

        Fills come stamped with the market time and in time order, so the new ones are those at
        or after the newest seen, less the ids already seen at exactly that time.
        """
        fresh: list[tuple[int, Fill]] = []
        for key in self._by_key:
            tail_ns, tail_ids = self._tails.get(key, (0, set()))
            new = [f for f in self.exchange.list_fills(key, tail_ns) if f.fill_id not in tail_ids]
            for fill in new:
                if fill.client_order_id not in self._orders:
                    self._adopt_venue_order(fill)
                seq = self._seq_by_key.get(key, 0) + 1
                self._seq_by_key[key] = seq
                self._trades.append((seq, fill))
                self._fills_by_order.setdefault(fill.client_order_id, []).append((seq, fill))
                fresh.append((seq, fill))
            if new:
                newest = new[-1].ts_ns
                same = {f.fill_id for f in new if f.ts_ns == newest}
                self._tails[key] = (newest, tail_ids | same if newest == tail_ns else same)
        return fresh

    def _adopt_venue_order(self, fill: Fill) -> None:
        """Give metadata to an order the venue made itself (a liquidation), from its fill."""
        when_ms = ms(fill.ts_ns)
        self._orders[fill.client_order_id] = OrderMeta(
            fill.client_order_id, self._by_key[fill.key].name, "", fill.side, OrderType.MARKET,
            None, fill.size_usd, False, True, IMMEDIATE_OR_CANCEL, when_ms, when_ms,
            is_liquidation=True,
        )  # fmt: skip
