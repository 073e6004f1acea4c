"""Fills: an order taking the book when it arrives, and resting orders filling as makers later.

- A market order walks the book as taker at any price; what the book cannot fill is cancelled
  (IOC), the way venues expire a market order's remainder.
- A limit order walks the book as taker up to its limit price (unless post-only) and the rest
  rests (GTC). A resting order fills as maker, at its own limit price, when a later snapshot's
  opposite touch crosses it, up to that snapshot's depth at prices through the limit.
- A reduce-only order never increases ``|position|``: each fill is capped at what is left to
  reduce; when nothing is left the rest is cancelled (Bybit and Binance cancel reduce-only
  orders whose position is gone).

Every fill pays ``fee_coin(size, price, rate)`` with the maker or taker rate and gets the id
``paper-<order seq>-<n>``: deterministic, so a replay produces the same ids.
"""

from __future__ import annotations

from scaler.adapters.paper.instrument import PaperInstrument
from scaler.adapters.paper.ledger import units_to_coin
from scaler.adapters.paper.orders import PaperOrder
from scaler.adapters.paper.state import VenueState
from scaler.domain.inverse import fee_coin
from scaler.domain.orders import Fill, Liquidity, OrderStatus, OrderType

IOC_REASON = "market order remainder cancelled (IOC)"
REDUCED_OUT_REASON = "reduce_only: no position left to reduce"


def execute_fill(
    state: VenueState,
    order: PaperOrder,
    size_usd: int,
    price: float,
    liquidity: Liquidity,
    fee_rate: float,
) -> Fill:
    """Book one fill of ``order`` in the ledger and record it."""
    booking = state.ledger.book_fill(
        order.key, order.side.sign * size_usd, price, fee_coin(size_usd, price, fee_rate)
    )
    fill = Fill(
        key=order.key,
        client_order_id=order.client_order_id,
        fill_id=order.record_fill(size_usd, price),
        side=order.side,
        size_usd=float(size_usd),
        price=price,
        fee_coin=units_to_coin(booking.fee_units),
        liquidity=liquidity,
        ts_ns=state.now_ns,
    )
    state.fills.append(fill)
    return fill


def fillable_usd(state: VenueState, order: PaperOrder) -> int:
    """How much of the order may fill now: the remainder, capped by reduce-only."""
    remaining = order.remaining_usd
    if not order.reduce_only:
        return remaining
    held = state.ledger.position(order.key).size_usd
    if held * order.side.sign >= 0:
        return 0
    return min(remaining, abs(held))


def _settle_status(state: VenueState, order: PaperOrder) -> None:
    """Close an order that is done: filled, an IOC remainder, or reduce-only with nothing left."""
    if order.remaining_usd <= 0:
        state.orders.finish(order, OrderStatus.FILLED)
    elif order.order_type is OrderType.MARKET:
        state.orders.finish(order, OrderStatus.CANCELLED, IOC_REASON)
    elif order.reduce_only and fillable_usd(state, order) == 0:
        state.orders.finish(order, OrderStatus.CANCELLED, REDUCED_OUT_REASON)


def fill_on_arrival(
    state: VenueState, order: PaperOrder, instrument: PaperInstrument
) -> list[Fill]:
    """Fill an accepted order as taker against the current book; settle what is left."""
    fills: list[Fill] = []
    if not order.post_only:
        limit = None if order.order_type is OrderType.MARKET else order.limit_price
        book = state.markets[order.key].book
        taken = book.take(order.side, fillable_usd(state, order), instrument.lot_size_usd, limit)
        rate = state.config.taker_fee_rate
        fills = [
            execute_fill(state, order, size, price, Liquidity.TAKER, rate) for size, price in taken
        ]
    _settle_status(state, order)
    return fills


def match_resting(state: VenueState, instrument: PaperInstrument) -> list[Fill]:
    """Fill resting orders of one instrument as makers against its newest book."""
    book = state.markets[instrument.key].book
    fills: list[Fill] = []
    for order in state.orders.by_priority(instrument.key):
        limit = order.limit_price
        if limit is None or not book.crosses(order.side, limit):
            continue
        size = fillable_usd(state, order)
        if size > 0:
            filled = book.take_at_limit(order.side, size, instrument.lot_size_usd, limit)
            if filled > 0:
                rate = state.config.maker_fee_rate
                fills.append(execute_fill(state, order, filled, limit, Liquidity.MAKER, rate))
        _settle_status(state, order)
    return fills
