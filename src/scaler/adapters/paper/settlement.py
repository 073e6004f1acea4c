"""Funding settlement at the venue's interval boundaries, and liquidation on the mark price.

Funding (``reference/inverse-contracts.md`` section 5). Boundaries are the multiples of the
instrument's ``funding_interval_s`` since the epoch (00/08/16 UTC for 8 h). When a market update
moves an instrument from ``t0`` to ``t1``, every boundary ``b`` with ``t0 < b <= t1`` settles,
before that update's fills, so only a position held across the boundary pays, one opened by
an update stamped exactly ``b`` does not. The payment is ``funding_payment_coin(size, mark,
rate)`` with the mark and the rate of the last snapshot before the boundary -- the rate in force
during the interval that ends there -- normalised from the snapshot's ``funding_interval_s`` to
the instrument's. Positive means the holder paid. A gap spanning several boundaries settles
each of them.

Liquidation (sections 3-4). Cross margin over the whole wallet: when the wallet's equity at the
MARK prices is at or below the sum of the maintenance margins (``schedule_maintenance_margin_coin``
at the mark), every open order is cancelled and every position is closed at its bankruptcy
price, the price at which the wallet's equity reaches zero. With one position that is
``bankruptcy_price(size, entry, balance)``; with several, each is given a share of the balance
proportional to its maintenance margin (by position value if no margin is due), so the closes
together spend exactly the balance. A short whose share covers it at any price has no
bankruptcy price and closes at the mark. No fee is charged on the close (nothing is left to pay
it). The balance is floored at zero by the insurance fund (:meth:`Ledger.floor_balance`).
"""

from __future__ import annotations

from scaler.adapters.paper.execution import execute_fill
from scaler.adapters.paper.instrument import PaperInstrument
from scaler.adapters.paper.orders import PaperOrder
from scaler.adapters.paper.state import FundingPayment, Liquidation, VenueState
from scaler.domain.funding import normalise_rate
from scaler.domain.inverse import (
    bankruptcy_price,
    position_value_coin,
    schedule_liquidation_price,
    schedule_maintenance_margin_coin,
)
from scaler.domain.orders import Fill, Liquidity, OrderSide, OrderStatus, OrderType
from scaler.domain.types import NS_PER_S, InstrumentKey, MarketSnapshot

LIQUIDATION_CANCEL_REASON = "cancelled by liquidation"
LIQUIDATION_REASON = "liquidation at the bankruptcy price"


def funding_boundaries_ns(after_ns: int, until_ns: int, interval_s: int) -> range:
    """Funding timestamps ``b`` with ``after_ns < b <= until_ns``, multiples of the interval."""
    interval_ns = interval_s * NS_PER_S
    first = (after_ns // interval_ns + 1) * interval_ns
    return range(first, until_ns + 1, interval_ns)


def settle_funding(
    state: VenueState, instrument: PaperInstrument, previous: MarketSnapshot, until_ns: int
) -> list[FundingPayment]:
    """Settle every boundary between ``previous`` and ``until_ns`` for one instrument."""
    key = instrument.key
    position = state.ledger.position(key)
    if position.size_usd == 0:
        return []
    rate = normalise_rate(
        previous.funding_rate, previous.funding_interval_s, float(instrument.funding_interval_s)
    )
    payments: list[FundingPayment] = []
    for boundary_ns in funding_boundaries_ns(
        previous.ts_event_ns, until_ns, instrument.funding_interval_s
    ):
        paid = state.ledger.book_funding(key, previous.mark_price, rate)
        payment = FundingPayment(
            boundary_ns, key, position.size_usd, previous.mark_price, rate, paid
        )
        payments.append(payment)
    state.funding_payments.extend(payments)
    return payments


def maintenance_by_key(state: VenueState) -> dict[InstrumentKey, float]:
    """Maintenance margin in coin of every open position, at its instrument's mark."""
    return {
        key: schedule_maintenance_margin_coin(
            state.instruments[key].schedule, pos.size_usd, state.markets[key].mark_price
        )
        for key, pos in state.ledger.open_positions().items()
    }


def liquidation_price_for(
    state: VenueState, key: InstrumentKey, maintenance: dict[InstrumentKey, float]
) -> float | None:
    """Mark price at which ``key``'s position would be liquidated, the other marks held still.

    Collateral is the balance plus, for the wallet's other positions, their unrealised PnL minus
    their maintenance margin (Binance's ``WB − TMM1 + UPNL1``); with one position, the balance.
    """
    position = state.ledger.position(key)
    if position.size_usd == 0 or position.entry_price is None:
        return None
    others = sum(
        state.unrealised_coin(other) - margin
        for other, margin in maintenance.items()
        if other != key
    )
    collateral = max(0.0, state.ledger.balance_coin + others)
    schedule = state.instruments[key].schedule
    return schedule_liquidation_price(position.size_usd, position.entry_price, collateral, schedule)


def check_liquidation(state: VenueState) -> list[Fill]:
    """Liquidate the wallet if its equity at the marks is at or below maintenance margin."""
    maintenance = maintenance_by_key(state)
    if not maintenance:
        return []
    equity = state.equity_coin()
    total_mm = sum(maintenance.values())
    if equity > total_mm:
        return []
    for order in state.orders.open_orders():
        state.orders.finish(order, OrderStatus.CANCELLED, LIQUIDATION_CANCEL_REASON)
    return _close_all(state, maintenance, equity, total_mm)


def _collateral_shares(state: VenueState, maintenance: dict[InstrumentKey, float]) -> list[float]:
    weights = list(maintenance.values())
    if sum(weights) <= 0.0:
        positions = state.ledger.open_positions()
        weights = [
            position_value_coin(positions[key].size_usd, state.markets[key].mark_price)
            for key in maintenance
        ]
    total = sum(weights)
    return [w / total for w in weights]


def _close_all(
    state: VenueState, maintenance: dict[InstrumentKey, float], equity: float, total_mm: float
) -> list[Fill]:
    collateral = max(0.0, state.ledger.balance_coin)
    positions = state.ledger.open_positions()
    fills: list[Fill] = []
    closed: list[tuple[InstrumentKey, int, float]] = []
    for key, share in zip(maintenance, _collateral_shares(state, maintenance), strict=True):
        position = positions[key]
        mark = state.markets[key].mark_price
        entry = position.entry_price if position.entry_price is not None else mark
        price = bankruptcy_price(position.size_usd, entry, collateral * share) or mark
        order = _liquidation_order(state, key, position.size_usd)
        fills.append(
            execute_fill(state, order, abs(position.size_usd), price, Liquidity.TAKER, 0.0)
        )
        state.orders.finish(order, OrderStatus.FILLED, LIQUIDATION_REASON)
        closed.append((key, position.size_usd, price))
    shortfall = state.ledger.floor_balance()
    for index, (key, size_usd, price) in enumerate(closed):
        state.liquidations.append(
            Liquidation(
                state.now_ns,
                key,
                size_usd,
                state.markets[key].mark_price,
                price,
                equity,
                total_mm,
                shortfall if index == len(closed) - 1 else 0,
            )
        )
    return fills


def _liquidation_order(state: VenueState, key: InstrumentKey, size_usd: int) -> PaperOrder:
    """A venue-generated market order that closes ``size_usd``; its id never clashes with ours."""
    seq = state.take_seq()
    client_order_id = f"liquidation-{seq}"
    while client_order_id in state.orders:
        client_order_id += "-venue"
    order = PaperOrder(
        key=key,
        client_order_id=client_order_id,
        seq=seq,
        side=OrderSide.SELL if size_usd > 0 else OrderSide.BUY,
        order_type=OrderType.MARKET,
        amount_usd=float(abs(size_usd)),
        limit_price=None,
        reduce_only=True,
        post_only=False,
        ts_ns=state.now_ns,
    )
    state.orders.add(order)
    return order
