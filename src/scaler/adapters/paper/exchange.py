"""PaperExchange: the embedded default venue, with exact inverse accounting, behind the Broker port.

It has no clock. Time is the event time of the market snapshots it is fed: ``on_market``
advances it (settles the funding boundaries crossed, fills resting orders against the new book,
liquidates on the mark), and every order and fill is stamped with the time of the last market
update. The synchronous core (``on_market``, ``place``, ``cancel``, ``lookup``, ``list_open``,
``account_snapshot``, ``list_fills``) is what replays and tests call; the async methods
(``place_order`` ... ``fills_since``) are the :class:`scaler.ports.Broker` facade over it.

One exchange is one wallet in one settlement coin; every instrument it lists settles in that
coin and shares the wallet as cross margin. A venue with several coins is several exchanges.
Its whole state round-trips through ``to_dict`` / ``from_dict`` (JSON-safe, exact).

    exchange = PaperExchange(PaperInstrument(key, lot_size_usd=10), initial_balance_coin=1.0)
    exchange.on_market(snapshot)
    update = exchange.place(request)             # or: await exchange.place_order(request)

Errors: :class:`RejectedError` for a refused order (recorded as REJECTED, except a missing or
duplicate client id, which must not touch the order under that id), an unknown order id on
cancel, or an unknown instrument; :class:`BadInputError` for a market snapshot it cannot use.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from scaler.adapters.paper.admission import (
    margin_refusal,
    post_only_refusal,
    reduce_only_amount,
    shape_refusal,
)
from scaler.adapters.paper.book import Book
from scaler.adapters.paper.execution import fill_on_arrival, match_resting
from scaler.adapters.paper.instrument import PaperConfig, PaperInstrument
from scaler.adapters.paper.ledger import Ledger, Position, coin_to_units, units_to_coin
from scaler.adapters.paper.orders import PaperOrder
from scaler.adapters.paper.settlement import (
    check_liquidation,
    liquidation_price_for,
    maintenance_by_key,
    settle_funding,
)
from scaler.adapters.paper.state import FundingPayment, Liquidation, Market, VenueState
from scaler.domain.orders import Fill, OrderRequest, OrderStatus, OrderUpdate
from scaler.domain.types import AccountSnapshot, InstrumentKey, MarketSnapshot
from scaler.domain.validation import BadInput, validate_market
from scaler.errors import BadInputError, RejectedError

if TYPE_CHECKING:
    from scaler.ports import Broker


@dataclass(frozen=True, slots=True)
class PaperCounters:
    """Running totals for metrics; money in exact ledger units (1e-10 coin)."""

    liquidations: int
    funding_settlements: int
    funding_paid_units: int
    fees_paid_units: int
    realised_pnl_units: int
    insurance_fund_absorbed_units: int
    fills: int
    duplicate_client_order_ids: int
    orders_by_status: Mapping[OrderStatus, int]

    @property
    def funding_paid_coin(self) -> float:
        return units_to_coin(self.funding_paid_units)

    @property
    def fees_paid_coin(self) -> float:
        return units_to_coin(self.fees_paid_units)

    @property
    def realised_pnl_coin(self) -> float:
        return units_to_coin(self.realised_pnl_units)


MAX_ABS_FUNDING_RATE = 1.0
"""The venue itself only refuses impossible rates; the daemon's own cap is tighter."""


def _snapshot_problem(snapshot: MarketSnapshot, previous: Market | None) -> BadInput | None:
    """The same validation the daemon applies, so the venue never moves on data it rejects.

    A duplicate (same time, same values) is harmless to the venue and is let through."""
    problem = validate_market(
        snapshot, previous.snapshot if previous else None, MAX_ABS_FUNDING_RATE
    )
    return None if problem is BadInput.DUPLICATE else problem


class PaperExchange:
    """An in-process inverse-perpetual venue: one coin wallet, one or more instruments."""

    __slots__ = ("_state",)

    def __init__(
        self,
        instruments: PaperInstrument | Iterable[PaperInstrument],
        *,
        initial_balance_coin: float = 1.0,
        maker_fee_rate: float = 0.0,
        taker_fee_rate: float = 0.0005,
        max_leverage: float = 50.0,
    ) -> None:
        listed = [instruments] if isinstance(instruments, PaperInstrument) else list(instruments)
        if not listed:
            raise ValueError("a paper exchange needs at least one instrument")
        by_key = {instrument.key: instrument for instrument in listed}
        if len(by_key) != len(listed):
            raise ValueError("instrument keys must be unique")
        config = PaperConfig(initial_balance_coin, maker_fee_rate, taker_fee_rate, max_leverage)
        self._state = VenueState(config, by_key, Ledger(coin_to_units(initial_balance_coin)))

    # ---- read-only views ------------------------------------------------------------------

    @property
    def config(self) -> PaperConfig:
        return self._state.config

    @property
    def instruments(self) -> tuple[PaperInstrument, ...]:
        return tuple(self._state.instruments.values())

    @property
    def ledger(self) -> Ledger:
        """The wallet (read it; mutating it from outside breaks the exchange's bookkeeping)."""
        return self._state.ledger

    @property
    def now_ns(self) -> int:
        """Event time of the last market update (0 before the first)."""
        return self._state.now_ns

    @property
    def fills(self) -> tuple[Fill, ...]:
        return tuple(self._state.fills)

    @property
    def funding_payments(self) -> tuple[FundingPayment, ...]:
        return tuple(self._state.funding_payments)

    @property
    def liquidations(self) -> tuple[Liquidation, ...]:
        return tuple(self._state.liquidations)

    def position(self, key: InstrumentKey) -> Position:
        return self._state.ledger.position(key)

    def equity_coin(self) -> float:
        return self._state.equity_coin()

    def last_mark(self, key: InstrumentKey) -> float | None:
        """The mark of the latest market update for ``key``, or ``None`` before the first."""
        market = self._state.markets.get(key)
        return market.mark_price if market is not None else None

    def counters(self) -> PaperCounters:
        state, ledger = self._state, self._state.ledger
        return PaperCounters(
            liquidations=len(state.liquidations),
            funding_settlements=len(state.funding_payments),
            funding_paid_units=ledger.funding_units,
            fees_paid_units=ledger.fees_units,
            realised_pnl_units=ledger.realised_units,
            insurance_fund_absorbed_units=ledger.insurance_fund_absorbed_units,
            fills=len(state.fills),
            duplicate_client_order_ids=state.duplicate_client_order_ids,
            orders_by_status=state.orders.counts(),
        )

    # ---- market ---------------------------------------------------------------------------

    def on_market(self, snapshot: MarketSnapshot) -> list[Fill]:
        """Advance to ``snapshot``: settle funding, fill resting orders, liquidate on the mark."""
        state = self._state
        instrument = state.instruments.get(snapshot.key)
        if instrument is None:
            raise BadInputError("unknown_instrument", str(snapshot.key))
        previous = state.markets.get(snapshot.key)
        problem = _snapshot_problem(snapshot, previous)
        if problem is not None:
            raise BadInputError(problem.value, f"refused by the paper exchange at {snapshot.key}")
        if previous is not None:
            settle_funding(state, instrument, previous.snapshot, snapshot.ts_event_ns)
        state.markets[snapshot.key] = Market(snapshot, Book.from_snapshot(snapshot))
        state.now_ns = max(state.now_ns, snapshot.ts_event_ns)
        fills = match_resting(state, instrument)
        fills.extend(check_liquidation(state))
        state.ledger.assert_balanced()
        return fills

    # ---- orders ---------------------------------------------------------------------------

    def place(self, request: OrderRequest) -> OrderUpdate:
        """Accept, fill what the book allows and rest the rest; or raise :class:`RejectedError`."""
        state = self._state
        client_order_id = request.client_order_id
        if not client_order_id:
            raise RejectedError("client_order_id is required")
        if client_order_id in state.orders:
            state.duplicate_client_order_ids += 1
            raise RejectedError(f"duplicate client_order_id {client_order_id!r}")
        order = PaperOrder.from_request(request, state.take_seq(), state.now_ns)
        amount_usd, note = self._admit(request)
        state.orders.add(order)
        if amount_usd == 0:
            state.orders.finish(order, OrderStatus.REJECTED, note)
            raise RejectedError(f"order {client_order_id!r} rejected: {note}")
        order.amount_usd, order.reason = float(amount_usd), note
        fill_on_arrival(state, order, state.instruments[request.key])
        state.ledger.assert_balanced()
        return order.to_update()

    def _admit(self, request: OrderRequest) -> tuple[int, str]:
        """The amount accepted (maybe trimmed) and a note; amount 0 with the reason if refused."""
        state = self._state
        instrument = state.instruments.get(request.key)
        if instrument is None:
            return 0, f"unknown instrument {request.key}"
        reason = shape_refusal(request, instrument)
        market = state.markets.get(request.key)
        if reason is None and market is None:
            reason = f"no market data for {request.key} yet"
        if reason is None and market is not None:
            reason = post_only_refusal(request, market.book)
        if reason is not None:
            return 0, reason
        held_usd = state.ledger.position(request.key).size_usd
        amount_usd, note = reduce_only_amount(request, int(request.amount_usd), held_usd)
        if amount_usd == 0:
            return 0, note
        reason = margin_refusal(state, request, amount_usd, instrument)
        return (0, reason) if reason is not None else (amount_usd, note)

    def cancel(self, key: InstrumentKey, client_order_id: str) -> OrderUpdate:
        """Cancel an open order; a terminal one is returned unchanged; unknown ids are refused."""
        order = self._state.orders.get(client_order_id)
        if order is None or order.key != key:
            raise RejectedError(f"no order {client_order_id!r} on {key}")
        if not order.status.is_terminal:
            self._state.orders.finish(order, OrderStatus.CANCELLED, "cancelled by request")
        return order.to_update()

    def lookup(self, key: InstrumentKey, client_order_id: str) -> OrderUpdate | None:
        order = self._state.orders.get(client_order_id)
        return None if order is None or order.key != key else order.to_update()

    def list_open(self, key: InstrumentKey) -> list[OrderUpdate]:
        return [order.to_update() for order in self._state.orders.open_orders(key)]

    def list_fills(self, key: InstrumentKey, since_ns: int) -> list[Fill]:
        """Fills of ``key`` stamped at or after ``since_ns``, oldest first."""
        fills = self._state.fills
        start = bisect.bisect_left(fills, since_ns, key=lambda fill: fill.ts_ns)
        return [fill for fill in fills[start:] if fill.key == key]

    def account_snapshot(self, key: InstrumentKey) -> AccountSnapshot:
        """The wallet as seen from ``key``: wallet-wide equity and margin, ``key``'s position.

        Unrealised PnL and maintenance margin are the wallet's (all its instruments), so that
        ``equity_coin`` and the margin ratio are the cross-margin ones; the liquidation price is
        ``schedule_liquidation_price`` with the balance (plus the other positions' uPnL minus
        their maintenance margin) as collateral.
        """
        state = self._state
        state.instrument(key)
        maintenance = maintenance_by_key(state)
        position = state.ledger.position(key)
        return AccountSnapshot(
            ts_ns=state.now_ns,
            wallet_balance_coin=state.ledger.balance_coin,
            unrealised_pnl_coin=sum((state.unrealised_coin(k) for k in maintenance), 0.0),
            position_usd=float(position.size_usd),
            entry_price=position.entry_price,
            maintenance_margin_coin=sum(maintenance.values(), 0.0),
            liquidation_price=liquidation_price_for(state, key, maintenance),
        )

    # ---- the Broker port ------------------------------------------------------------------

    async def place_order(self, request: OrderRequest) -> OrderUpdate:
        return self.place(request)

    async def cancel_order(self, key: InstrumentKey, client_order_id: str) -> OrderUpdate:
        return self.cancel(key, client_order_id)

    async def fetch_order(self, key: InstrumentKey, client_order_id: str) -> OrderUpdate | None:
        return self.lookup(key, client_order_id)

    async def open_orders(self, key: InstrumentKey) -> list[OrderUpdate]:
        self._state.instrument(key)
        return self.list_open(key)

    async def account(self, key: InstrumentKey) -> AccountSnapshot:
        return self.account_snapshot(key)

    async def fills_since(self, key: InstrumentKey, ts_ns: int) -> list[Fill]:
        return self.list_fills(key, ts_ns)

    # ---- persistence ----------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The whole state (config, instruments, ledger, orders, fills, counters), JSON-safe."""
        return self._state.to_dict()

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PaperExchange:
        """Rebuild an exchange that behaves exactly like the one that produced ``data``."""
        exchange = cls.__new__(cls)
        exchange._state = VenueState.from_dict(data)
        return exchange


if TYPE_CHECKING:

    def _implements_broker(exchange: PaperExchange) -> Broker:
        return exchange
