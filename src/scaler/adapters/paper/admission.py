"""The checks an order passes before the paper venue accepts it, each giving a clear reason.

In the order venues apply them: shape (whole positive lots, a limit price on the tick for a
limit order, post-only only on limits), post-only (refused if it would cross the touch, as
Deribit, Bybit and Binance do, rather than repriced), reduce-only (trimmed to the position,
refused when it would only increase it or there is nothing to reduce -- Bybit and Binance trim a
reduce-only quantity to the position) and initial margin.

Initial margin: an order that increases ``|position|`` needs ``N / (P·L)`` coin for the position
it would leave if it and every open same-side order filled, plus the initial margin of the
wallet's other positions at their marks, within the wallet's equity. ``P`` is the limit price, or
the touch it would take for a market order; ``L`` is the venue's ``max_leverage``, lowered by the
schedule's tier limit where the tier has one. Orders that reduce are never refused for margin.
"""

from __future__ import annotations

import math

from scaler.adapters.paper.book import Book
from scaler.adapters.paper.instrument import PaperInstrument
from scaler.adapters.paper.state import VenueState
from scaler.domain.inverse import initial_margin_coin
from scaler.domain.orders import OrderRequest, OrderType

_TICK_TOLERANCE = 1e-6
"""A price within a millionth of a tick of a multiple is on the tick (float noise)."""


def shape_refusal(request: OrderRequest, instrument: PaperInstrument) -> str | None:
    """Why the order's amount, type or price is malformed, or ``None``."""
    amount, lot = float(request.amount_usd), instrument.lot_size_usd
    if not math.isfinite(amount) or amount <= 0.0:
        return f"amount_usd must be positive, got {amount!r}"
    if not amount.is_integer() or int(amount) % lot != 0:
        return f"amount_usd {amount!r} is not a whole number of {lot} USD lots"
    if request.order_type is OrderType.LIMIT:
        price = request.limit_price
        if price is None or not math.isfinite(price) or price <= 0.0:
            return f"a limit order needs a finite positive limit_price, got {price!r}"
        ticks = price / instrument.tick_size
        if abs(ticks - round(ticks)) > _TICK_TOLERANCE:
            return f"limit_price {price!r} is not a multiple of the tick {instrument.tick_size!r}"
    elif request.post_only:
        return "post_only needs a limit order"
    return None


def post_only_refusal(request: OrderRequest, book: Book) -> str | None:
    """Why a post-only order cannot rest (it would take liquidity), or ``None``."""
    limit = request.limit_price
    if not request.post_only or limit is None or not book.crosses(request.side, limit):
        return None
    touch = book.facing(request.side).touch
    return f"post_only {request.side.value} at {limit!r} would cross the touch {touch!r}"


def reduce_only_amount(request: OrderRequest, amount_usd: int, held_usd: int) -> tuple[int, str]:
    """The accepted amount and a note; amount 0 means refused, the note then is the reason."""
    if not request.reduce_only:
        return amount_usd, ""
    if held_usd == 0:
        return 0, "reduce_only order with no position to reduce"
    if held_usd * request.side.sign > 0:
        return 0, f"reduce_only {request.side.value} would increase the {held_usd} USD position"
    if amount_usd > abs(held_usd):
        return abs(held_usd), f"reduce_only: trimmed from {amount_usd} to {abs(held_usd)} USD"
    return amount_usd, ""


def _leverage(state: VenueState, instrument: PaperInstrument, size_usd: int, price: float) -> float:
    tier_cap = instrument.schedule.requirement(size_usd, price).max_leverage
    cap = state.config.max_leverage
    return cap if tier_cap is None else min(cap, tier_cap)


def margin_refusal(
    state: VenueState, request: OrderRequest, amount_usd: int, instrument: PaperInstrument
) -> str | None:
    """Why the wallet cannot carry the position this order could leave, or ``None``."""
    key = request.key
    held = state.ledger.position(key).size_usd
    pending = sum(
        o.remaining_usd
        for o in state.orders.open_orders(key)
        if o.side is request.side and not o.reduce_only
    )
    resulting = held + request.side.sign * (pending + amount_usd)
    if abs(resulting) <= abs(held):
        return None
    price = request.limit_price
    if request.order_type is OrderType.MARKET or price is None:
        price = state.markets[key].book.facing(request.side).touch
    leverage = _leverage(state, instrument, resulting, price)
    required = initial_margin_coin(resulting, price, leverage)
    for other, position in state.ledger.open_positions().items():
        if other != key:
            mark = state.markets[other].mark_price
            other_instrument = state.instruments[other]
            lev = _leverage(state, other_instrument, position.size_usd, mark)
            required += initial_margin_coin(position.size_usd, mark, lev)
    equity = state.equity_coin()
    if required <= equity:
        return None
    return (
        f"insufficient margin: {required:.10f} coin of initial margin needed for a {resulting} USD"
        f" position at {leverage:g}x, equity is {equity:.10f} coin"
    )
