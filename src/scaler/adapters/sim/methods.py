"""The JSON-RPC methods the simulator answers, over REST (``GET /api/v2/<method>``) and websocket.

Public: ``get_time``, ``test``, ``hello``, ``status``, ``auth``, ``get_currencies``,
``get_instruments``, ``get_instrument``, ``ticker``, ``get_order_book``, ``get_index_price``,
``get_funding_rate_value``.

Private (authenticated): ``buy``, ``sell``, ``cancel``, ``cancel_all``,
``cancel_all_by_instrument``, ``cancel_all_by_currency``, ``cancel_by_label``,
``get_order_state``, ``get_order_state_by_label``, ``get_open_orders``,
``get_open_orders_by_instrument``, ``get_open_orders_by_currency``,
``get_order_history_by_instrument``, ``get_order_history_by_currency``,
``get_user_trades_by_instrument[_and_time]``, ``get_user_trades_by_currency[_and_time]``,
``get_user_trades_by_order``, ``get_position``, ``get_positions``, ``get_account_summary``,
``get_account_summaries``.

These cover every call ccxt's deribit classes make for a perpetual: ``load_markets``
(currencies, instruments), ``fetch_ticker``, ``fetch_order_book``, ``fetch_funding_rate``,
``fetch_balance``, ``fetch_positions``, ``create_order``, ``cancel_order``, ``fetch_order``,
``fetch_open_orders``, ``fetch_closed_orders``, ``fetch_my_trades``, ``fetch_order_trades``,
``cancel_all_orders`` and the implicit ``privateGetGetOrderStateByLabel``. Subscriptions and
heartbeats are websocket-only (:mod:`scaler.adapters.sim.stream`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from scaler.adapters.sim import dialect, params, records, rpc
from scaler.adapters.sim.auth import Authenticator
from scaler.adapters.sim.dialect import EIGHT_HOURS_S, Listing
from scaler.adapters.sim.faults import FaultInjector
from scaler.adapters.sim.orders import OrderView, TradeView
from scaler.adapters.sim.params import Params
from scaler.adapters.sim.venue import SimVenue
from scaler.domain.orders import OrderSide, OrderStatus, OrderType
from scaler.domain.types import NS_PER_MS, MarketSnapshot
from scaler.ports import Clock

VERSION: Final = "1.2.26"
ORDER_METHODS: Final = frozenset({"private/buy", "private/sell"})
DEFAULT_TRADES_COUNT: Final = 10
DEFAULT_HISTORY_COUNT: Final = 20
MAX_COUNT: Final = 1_000

OrdersChanged = Callable[[list[OrderView], list[TradeView]], None]


class Methods:
    """The method table over one :class:`SimVenue`; ``call`` answers one request or raises."""

    def __init__(
        self,
        venue: SimVenue,
        faults: FaultInjector,
        authenticator: Authenticator,
        clock: Clock,
        orders_changed: OrdersChanged,
    ) -> None:
        self.venue = venue
        self._faults = faults
        self._authenticator = authenticator
        self._clock = clock
        self._changed = orders_changed
        self._table: dict[str, Callable[[Params], Any]] = {
            f"{'private' if name in _PRIVATE else 'public'}/{name}": getattr(self, f"_{name}")
            for name in _PUBLIC | _PRIVATE
        }

    def call(self, name: str, request: Params) -> Any:
        handler = self._table.get(name)
        if handler is None:
            raise rpc.DeribitError(rpc.METHOD_NOT_FOUND, name)
        return handler(request)

    # ---- helpers ----------------------------------------------------------------------------

    def _now_ms(self) -> int:
        return self._clock.now_ns() // NS_PER_MS

    def _listing(self, request: Params) -> Listing:
        return self.venue.listing(params.text(request, "instrument_name"))

    def _currency(self, request: Params, required: bool = True) -> None:
        code = params.text(request, "currency", None if required else "any").upper()
        if code not in {self.venue.currency, "ANY"}:
            raise rpc.invalid_param("currency", f"unknown currency {code!r}")

    def _snapshot(self, listing: Listing) -> MarketSnapshot:
        snapshot = self.venue.snapshots.get(listing.name)
        if snapshot is None:
            raise rpc.DeribitError(rpc.BOOK_CLOSED, f"no market data for {listing.name} yet")
        return snapshot

    def _open_interest(self, listing: Listing) -> float:
        return float(abs(self.venue.exchange.position(listing.key).size_usd))

    def _order(self, view: OrderView) -> dict[str, Any]:
        return records.order_json(view, self.venue.listings[view.meta.instrument_name])

    def _trade(self, trade: TradeView) -> dict[str, Any]:
        return records.trade_json(trade, self.venue.listing_by_key(trade.fill.key), self.venue)

    # ---- public -----------------------------------------------------------------------------

    def _get_time(self, _: Params) -> int:
        return self._now_ms()

    def _test(self, _: Params) -> dict[str, Any]:
        return {"version": VERSION}

    def _hello(self, _: Params) -> dict[str, Any]:
        return {"version": VERSION}

    def _status(self, _: Params) -> dict[str, Any]:
        return {"locked": "false", "locked_indices": []}

    def _auth(self, request: Params) -> dict[str, Any]:
        return self._authenticator.grant(request, self._now_ms())

    def _get_currencies(self, _: Params) -> list[dict[str, Any]]:
        return [dialect.currency_json(self.venue.currency)]

    def _get_instruments(self, request: Params) -> list[dict[str, Any]]:
        currency = params.text(request, "currency", "any").upper()
        kind = params.text(request, "kind", "future")
        if currency not in {self.venue.currency, "ANY"} or kind not in {"future", "any"}:
            return []
        return [dialect.instrument_json(listing) for listing in self.venue.listings.values()]

    def _get_instrument(self, request: Params) -> dict[str, Any]:
        return dialect.instrument_json(self._listing(request))

    def _ticker(self, request: Params) -> dict[str, Any]:
        listing = self._listing(request)
        return dialect.ticker_json(listing, self._snapshot(listing), self._open_interest(listing))

    def _get_order_book(self, request: Params) -> dict[str, Any]:
        listing = self._listing(request)
        depth = params.integer(request, "depth", 10_000, low=1, high=10_000)
        change_id = self.venue.change_ids.get(listing.name, 0)
        snapshot, open_interest = self._snapshot(listing), self._open_interest(listing)
        return dialect.order_book_json(listing, snapshot, open_interest, change_id, depth)

    def _get_index_price(self, request: Params) -> dict[str, Any]:
        name = params.text(request, "index_name").lower()
        for listing in self.venue.listings.values():
            if name == f"{listing.base}_{listing.quote}".lower():
                index = self._snapshot(listing).index_price
                return {"index_price": index, "estimated_delivery_price": index}
        raise rpc.invalid_param("index_name", f"unknown index {name!r}")

    def _get_funding_rate_value(self, request: Params) -> float:
        """The funding accrued over the window at the rate now in force (Deribit sums history)."""
        snapshot = self._snapshot(self._listing(request))
        start = params.integer(request, "start_timestamp", 0)
        end = params.integer(request, "end_timestamp", self._now_ms())
        window_s = max(0, end - start) / 1_000
        return dialect.funding_8h(snapshot) * (window_s / EIGHT_HOURS_S)

    # ---- private: orders --------------------------------------------------------------------

    def _place(self, side: OrderSide, request: Params) -> dict[str, Any]:
        listing = self._listing(request)
        order = params.new_order(side, request, listing.contract_size_usd)
        rejection = self._faults.draw_rejection()
        if rejection is not None:
            raise rpc.DeribitError(rejection, injected=True)
        view, trades = self.venue.place(order)
        self._changed([view], trades)
        return {"order": self._order(view), "trades": [self._trade(t) for t in trades]}

    def _buy(self, request: Params) -> dict[str, Any]:
        return self._place(OrderSide.BUY, request)

    def _sell(self, request: Params) -> dict[str, Any]:
        return self._place(OrderSide.SELL, request)

    def _cancel(self, request: Params) -> dict[str, Any]:
        view = self.venue.cancel(params.text(request, "order_id"))
        self._changed([view], [])
        return self._order(view)

    def _cancelled(self, views: list[OrderView]) -> int:
        if views:
            self._changed(views, [])
        return len(views)

    def _cancel_all(self, _: Params) -> int:
        return self._cancelled(self.venue.cancel_all())

    def _cancel_all_by_instrument(self, request: Params) -> int:
        return self._cancelled(self.venue.cancel_all(self._listing(request)))

    def _cancel_all_by_currency(self, request: Params) -> int:
        self._currency(request)
        return self._cancelled(self.venue.cancel_all())

    def _cancel_by_label(self, request: Params) -> int:
        return self._cancelled(self.venue.cancel_all(label=params.text(request, "label")))

    def _get_order_state(self, request: Params) -> dict[str, Any]:
        return self._order(self.venue.view(params.text(request, "order_id")))

    def _get_order_state_by_label(self, request: Params) -> list[dict[str, Any]]:
        self._currency(request, required=False)
        return [self._order(v) for v in self.venue.orders_by_label(params.text(request, "label"))]

    def _open(self, request: Params, listing: Listing | None) -> list[dict[str, Any]]:
        kind = params.text(request, "type", "all")
        if kind not in {"all", "limit"}:  # no trigger orders here
            return []
        return [self._order(view) for view in self.venue.open_orders(listing)]

    def _get_open_orders(self, request: Params) -> list[dict[str, Any]]:
        return self._open(request, None)

    def _get_open_orders_by_instrument(self, request: Params) -> list[dict[str, Any]]:
        return self._open(request, self._listing(request))

    def _get_open_orders_by_currency(self, request: Params) -> list[dict[str, Any]]:
        self._currency(request)
        return self._open(request, None)

    def _history(self, request: Params, listing: Listing | None) -> list[dict[str, Any]]:
        """Closed orders, newest first; cancelled ones that never filled only if asked for."""
        count = params.integer(request, "count", DEFAULT_HISTORY_COUNT, low=1, high=MAX_COUNT)
        offset = params.integer(request, "offset", 0)
        unfilled = params.flag(request, "include_unfilled")
        closed = [
            view
            for view in reversed(self.venue.orders(listing))
            if view.update.status in {OrderStatus.FILLED, OrderStatus.CANCELLED}
            and (unfilled or view.update.filled_usd > 0 or view.meta.order_type is OrderType.MARKET)
        ]
        return [self._order(view) for view in closed[offset : offset + count]]

    def _get_order_history_by_instrument(self, request: Params) -> list[dict[str, Any]]:
        return self._history(request, self._listing(request))

    def _get_order_history_by_currency(self, request: Params) -> list[dict[str, Any]]:
        self._currency(request)
        return self._history(request, None)

    # ---- private: trades, positions, account --------------------------------------------------

    def _trades(self, request: Params, trades: list[TradeView]) -> dict[str, Any]:
        count = params.integer(request, "count", DEFAULT_TRADES_COUNT, low=1, high=MAX_COUNT)
        start = params.integer(request, "start_timestamp", 0)
        end = params.integer(request, "end_timestamp", 10**15)
        first = params.integer(request, "start_seq", 0)
        last = params.integer(request, "end_seq", 10**15)
        chosen = [
            t
            for t in trades
            if start <= t.fill.ts_ns // NS_PER_MS <= end and first <= t.seq <= last
        ]
        if params.text(request, "sorting", "desc") != "asc":
            chosen.reverse()
        return {"trades": [self._trade(t) for t in chosen[:count]], "has_more": len(chosen) > count}

    def _get_user_trades_by_instrument(self, request: Params) -> dict[str, Any]:
        return self._trades(request, self.venue.trades(self._listing(request)))

    def _get_user_trades_by_instrument_and_time(self, request: Params) -> dict[str, Any]:
        return self._get_user_trades_by_instrument(request)

    def _get_user_trades_by_currency(self, request: Params) -> dict[str, Any]:
        self._currency(request)
        return self._trades(request, self.venue.trades())

    def _get_user_trades_by_currency_and_time(self, request: Params) -> dict[str, Any]:
        return self._get_user_trades_by_currency(request)

    def _get_user_trades_by_order(self, request: Params) -> list[dict[str, Any]]:
        return [self._trade(t) for t in self.venue.order_trades(params.text(request, "order_id"))]

    def _get_position(self, request: Params) -> dict[str, Any]:
        return records.position_json(self.venue, self._listing(request))

    def _get_positions(self, request: Params) -> list[dict[str, Any]]:
        self._currency(request, required=False)
        if params.text(request, "kind", "future") not in {"future", "any"}:
            return []
        return [
            records.position_json(self.venue, listing)
            for listing in self.venue.listings.values()
            if self.venue.exchange.position(listing.key).size_usd != 0
        ]

    def _get_account_summary(self, request: Params) -> dict[str, Any]:
        self._currency(request)
        return records.account_summary_json(self.venue)

    def _get_account_summaries(self, _: Params) -> dict[str, Any]:
        return {"id": 1, "system_name": "exchange-sim", "type": "main", "summaries": [
            records.account_summary_json(self.venue)
        ]}  # fmt: skip


_PUBLIC: Final = frozenset(
    {
        "get_time", "test", "hello", "status", "auth", "get_currencies", "get_instruments",
        "get_instrument", "ticker", "get_order_book", "get_index_price", "get_funding_rate_value",
    }
)  # fmt: skip
_PRIVATE: Final = frozenset(
    {
        "buy", "sell", "cancel", "cancel_all", "cancel_all_by_instrument", "cancel_all_by_currency",
        "cancel_by_label", "get_order_state", "get_order_state_by_label", "get_open_orders",
        "get_open_orders_by_instrument", "get_open_orders_by_currency",
        "get_order_history_by_instrument", "get_order_history_by_currency",
        "get_user_trades_by_instrument", "get_user_trades_by_instrument_and_time",
        "get_user_trades_by_currency", "get_user_trades_by_currency_and_time",
        "get_user_trades_by_order", "get_position", "get_positions", "get_account_summary",
        "get_account_summaries",
    }
)  # fmt: skip


def is_private(name: str) -> bool:
    return name.startswith("private/")
