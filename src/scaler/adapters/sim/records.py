"""Account data in the Deribit v2 dialect: orders, trades, positions and account summaries.

Shapes follow the examples in ccxt's deribit parsers (``parse_order``, ``parse_trade``,
``parse_position``, ``parse_balance``), which name the fields ccxt reads:

- an order's ``amount`` and ``filled_amount`` are USD, ``average_price`` is 0 until it fills,
  ``price`` is the string ``"market_price"`` for a market order, ``label`` is the client's;
- a trade's ``amount`` is USD and ``fee`` is in the settlement coin;
- a position's ``size`` is signed USD and ``size_currency`` its value in coin at the mark; its
  ``direction`` is ``buy``, ``sell`` or ``zero``;
- a summary's ``equity`` is ccxt's ``total``, ``available_funds`` its ``free`` and
  ``maintenance_margin`` its ``used``.

Initial margin is the position's coin value over the venue's ``max_leverage``, without the
tiered caps the paper exchange applies when it admits an order.
"""

from __future__ import annotations

import math
from typing import Any, Final

from scaler.adapters.paper.ledger import units_to_coin
from scaler.adapters.sim.dialect import Listing, ms
from scaler.adapters.sim.orders import OrderView, TradeView
from scaler.adapters.sim.venue import SimVenue
from scaler.domain.orders import Liquidity, OrderStatus, OrderType

ORDER_STATES: Final = {
    OrderStatus.INTENDED: "open",
    OrderStatus.OPEN: "open",
    OrderStatus.FILLED: "filled",
    OrderStatus.CANCELLED: "cancelled",
    OrderStatus.REJECTED: "rejected",
}


def _finite(value: float | None) -> float | None:
    """JSON has no infinity: a price that does not exist is ``null``."""
    return value if value is not None and math.isfinite(value) else None


def order_json(view: OrderView, listing: Listing) -> dict[str, Any]:
    """An order as ``private/buy``, ``private/get_order_state`` and ``user.orders`` give it."""
    meta, update = view.meta, view.update
    body: dict[str, Any] = {
        "order_id": meta.order_id,
        "instrument_name": meta.instrument_name,
        "label": meta.label,
        "direction": meta.side.value,
        "order_type": meta.order_type.value,
        "order_state": ORDER_STATES[update.status],
        "price": meta.price if meta.order_type is OrderType.LIMIT else "market_price",
        "amount": update.amount_usd,
        "contracts": update.amount_usd / listing.contract_size_usd,
        "filled_amount": update.filled_usd,
        "average_price": update.average_fill_price or 0.0,
        "commission": view.commission_coin,
        "profit_loss": 0.0,
        "time_in_force": meta.time_in_force,
        "post_only": meta.post_only,
        "reject_post_only": meta.post_only,
        "reduce_only": meta.reduce_only,
        "max_show": update.amount_usd,
        "creation_timestamp": meta.ts_created_ms,
        "last_update_timestamp": meta.ts_updated_ms,
        "is_liquidation": meta.is_liquidation,
        "api": not meta.is_liquidation,
        "web": False,
        "replaced": False,
        "mmp": False,
        "risk_reducing": False,
    }
    if update.status is OrderStatus.CANCELLED:
        body["cancel_reason"] = meta.cancel_reason or "user_request"
    return body


def trade_json(trade: TradeView, listing: Listing, venue: SimVenue) -> dict[str, Any]:
    """One of our fills as ``private/get_user_trades_*`` and ``user.trades`` give it."""
    fill, meta = trade.fill, trade.order.meta
    mark, index = venue.mark_and_index(listing)
    body: dict[str, Any] = {
        "trade_id": fill.fill_id,
        "trade_seq": trade.seq,
        "timestamp": ms(fill.ts_ns),
        "instrument_name": listing.name,
        "order_id": meta.order_id,
        "order_type": meta.order_type.value,
        "label": meta.label,
        "direction": fill.side.value,
        "amount": fill.size_usd,
        "contracts": fill.size_usd / listing.contract_size_usd,
        "price": fill.price,
        "fee": fill.fee_coin,
        "fee_currency": listing.currency,
        "liquidity": "M" if fill.liquidity is Liquidity.MAKER else "T",
        "state": ORDER_STATES[trade.order.update.status],
        "reduce_only": meta.reduce_only,
        "post_only": meta.post_only,
        "mark_price": mark or fill.price,
        "index_price": index or fill.price,
        "tick_direction": 0,
        "self_trade": False,
        "matching_id": None,
        "profit_loss": 0.0,
        "api": not meta.is_liquidation,
    }
    if meta.is_liquidation:
        body["liquidation"] = "T"
    return body


def position_json(venue: SimVenue, listing: Listing) -> dict[str, Any]:
    """``private/get_position`` result; ``size`` is signed USD."""
    exchange = venue.exchange
    position = exchange.position(listing.key)
    mark, index = venue.mark_and_index(listing)
    size = position.size_usd
    size_coin = size / mark if mark else 0.0
    upnl = position.unrealised_coin(mark) if mark else 0.0
    account = exchange.account_snapshot(listing.key)
    realised = units_to_coin(exchange.ledger.realised_units)
    return {
        "instrument_name": listing.name,
        "kind": "future",
        "direction": "buy" if size > 0 else "sell" if size < 0 else "zero",
        "size": float(size),
        "size_currency": size_coin,
        "delta": size_coin,
        "average_price": position.entry_price or 0.0,
        "mark_price": mark or 0.0,
        "index_price": index or 0.0,
        "settlement_price": mark or 0.0,
        "floating_profit_loss": upnl,
        "realized_profit_loss": realised,
        "total_profit_loss": upnl + realised,
        "realized_funding": -units_to_coin(exchange.ledger.funding_units),
        "initial_margin": abs(size_coin) / listing.max_leverage,
        "maintenance_margin": account.maintenance_margin_coin or 0.0,
        "open_orders_margin": 0.0,
        "estimated_liquidation_price": _finite(account.liquidation_price) if size else None,
        "leverage": int(listing.max_leverage),
        "interest_value": 0.0,
    }


def account_summary_json(venue: SimVenue) -> dict[str, Any]:
    """``private/get_account_summary`` result for the wallet's coin."""
    exchange = venue.exchange
    balance, equity = exchange.ledger.balance_coin, exchange.equity_coin()
    initial = maintenance = delta = 0.0
    for listing in venue.listings.values():
        position = position_json(venue, listing)
        initial += position["initial_margin"]
        delta += position["size_currency"]
        maintenance = position["maintenance_margin"]  # the wallet's, the same on every listing
    realised = units_to_coin(exchange.ledger.realised_units)
    funding = units_to_coin(exchange.ledger.funding_units)
    available = equity - initial
    return {
        "currency": venue.currency,
        "balance": balance,
        "equity": equity,
        "margin_balance": equity,
        "available_funds": available,
        "available_withdrawal_funds": max(0.0, min(balance, available)),
        "initial_margin": initial,
        "maintenance_margin": maintenance,
        "projected_initial_margin": initial,
        "projected_maintenance_margin": maintenance,
        "delta_total": delta,
        "projected_delta_total": delta,
        "session_upl": equity - balance,
        "session_rpl": realised,
        "session_funding": -funding,
        "futures_pl": equity - balance + realised,
        "futures_session_upl": equity - balance,
        "futures_session_rpl": realised,
        "total_pl": equity - balance + realised,
        "fee_balance": 0.0,
        "options_pl": 0.0,
        "options_value": 0.0,
        "margin_model": "cross_sm",
        "portfolio_margining_enabled": False,
        "cross_collateral_enabled": False,
        "limits": {
            "matching_engine": {"burst": 20, "rate": 5},
            "non_matching_engine": {"burst": 100, "rate": 20},
        },
    }
