"""Everything the paper exchange holds, in one value that serialises to JSON and back exactly.

The daemon persists :meth:`VenueState.to_dict` (through the journal's ``save_state``) and
rebuilds the exchange from it after a restart; ``from_dict(to_dict())`` gives a state whose
``to_dict()`` is equal, and identical behaviour from then on. Floats survive JSON exactly
(``repr`` round-trips), integers are Python ints, enums are their string values.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from scaler.adapters.paper.book import Book
from scaler.adapters.paper.instrument import PaperConfig, PaperInstrument
from scaler.adapters.paper.ledger import Ledger, units_to_coin
from scaler.adapters.paper.orders import OrderRegistry
from scaler.domain.orders import Fill, Liquidity, OrderSide
from scaler.domain.types import InstrumentKey, MarketSnapshot
from scaler.errors import RejectedError

STATE_FORMAT: Final = 1


def _key_dict(key: InstrumentKey) -> dict[str, str]:
    return {"venue": key.venue, "symbol": key.symbol}


def _key(data: Mapping[str, Any]) -> InstrumentKey:
    return InstrumentKey(str(data["venue"]), str(data["symbol"]))


@dataclass(frozen=True, slots=True)
class FundingPayment:
    """One settlement at a funding boundary; ``amount_units`` > 0 means the holder paid."""

    ts_ns: int
    key: InstrumentKey
    size_usd: int
    mark_price: float
    funding_rate: float
    amount_units: int

    @property
    def amount_coin(self) -> float:
        return units_to_coin(self.amount_units)

    def to_dict(self) -> dict[str, Any]:
        return {
            **_key_dict(self.key),
            "ts_ns": self.ts_ns,
            "size_usd": self.size_usd,
            "mark_price": self.mark_price,
            "funding_rate": self.funding_rate,
            "amount_units": self.amount_units,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FundingPayment:
        return cls(
            int(data["ts_ns"]),
            _key(data),
            int(data["size_usd"]),
            float(data["mark_price"]),
            float(data["funding_rate"]),
            int(data["amount_units"]),
        )


@dataclass(frozen=True, slots=True)
class Liquidation:
    """One position closed by the liquidation engine at its bankruptcy price.

    ``equity_coin`` and ``maintenance_margin_coin`` are the wallet's, at the marks that
    triggered it; ``shortfall_units`` is what the insurance fund credited to floor the balance.
    """

    ts_ns: int
    key: InstrumentKey
    size_usd: int
    mark_price: float
    close_price: float
    equity_coin: float
    maintenance_margin_coin: float
    shortfall_units: int

    def to_dict(self) -> dict[str, Any]:
        return {
            **_key_dict(self.key),
            "ts_ns": self.ts_ns,
            "size_usd": self.size_usd,
            "mark_price": self.mark_price,
            "close_price": self.close_price,
            "equity_coin": self.equity_coin,
            "maintenance_margin_coin": self.maintenance_margin_coin,
            "shortfall_units": self.shortfall_units,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Liquidation:
        return cls(
            int(data["ts_ns"]),
            _key(data),
            int(data["size_usd"]),
            float(data["mark_price"]),
            float(data["close_price"]),
            float(data["equity_coin"]),
            float(data["maintenance_margin_coin"]),
            int(data["shortfall_units"]),
        )


def fill_to_dict(fill: Fill) -> dict[str, Any]:
    return {
        **_key_dict(fill.key),
        "client_order_id": fill.client_order_id,
        "fill_id": fill.fill_id,
        "side": fill.side.value,
        "size_usd": fill.size_usd,
        "price": fill.price,
        "fee_coin": fill.fee_coin,
        "liquidity": fill.liquidity.value,
        "ts_ns": fill.ts_ns,
    }


def fill_from_dict(data: Mapping[str, Any]) -> Fill:
    return Fill(
        key=_key(data),
        client_order_id=str(data["client_order_id"]),
        fill_id=str(data["fill_id"]),
        side=OrderSide(data["side"]),
        size_usd=float(data["size_usd"]),
        price=float(data["price"]),
        fee_coin=float(data["fee_coin"]),
        liquidity=Liquidity(data["liquidity"]),
        ts_ns=int(data["ts_ns"]),
    )


_SNAPSHOT_FLOATS: Final = (
    "mark_price",
    "index_price",
    "best_bid",
    "best_ask",
    "funding_rate",
    "funding_interval_s",
)


def snapshot_to_dict(snapshot: MarketSnapshot) -> dict[str, Any]:
    return {
        **_key_dict(snapshot.key),
        "ts_event_ns": snapshot.ts_event_ns,
        "ts_recv_ns": snapshot.ts_recv_ns,
        **{name: getattr(snapshot, name) for name in _SNAPSHOT_FLOATS},
        "ts_funding_ns": snapshot.ts_funding_ns,
        "predicted_funding_rate": snapshot.predicted_funding_rate,
        "bids": [list(level) for level in snapshot.bids],
        "asks": [list(level) for level in snapshot.asks],
    }


def snapshot_from_dict(data: Mapping[str, Any]) -> MarketSnapshot:
    predicted = data["predicted_funding_rate"]
    return MarketSnapshot(
        key=_key(data),
        ts_event_ns=int(data["ts_event_ns"]),
        ts_recv_ns=int(data["ts_recv_ns"]),
        **{name: float(data[name]) for name in _SNAPSHOT_FLOATS},
        ts_funding_ns=int(data["ts_funding_ns"]),
        predicted_funding_rate=None if predicted is None else float(predicted),
        bids=tuple((float(p), float(s)) for p, s in data["bids"]),
        asks=tuple((float(p), float(s)) for p, s in data["asks"]),
    )


@dataclass(slots=True)
class Market:
    """The latest snapshot of one instrument and what is left of its book."""

    snapshot: MarketSnapshot
    book: Book

    @property
    def mark_price(self) -> float:
        return self.snapshot.mark_price


@dataclass(slots=True)
class VenueState:
    """The whole mutable state of one paper exchange (one wallet, one or more instruments)."""

    config: PaperConfig
    instruments: dict[InstrumentKey, PaperInstrument]
    ledger: Ledger
    orders: OrderRegistry = field(default_factory=OrderRegistry)
    markets: dict[InstrumentKey, Market] = field(default_factory=dict)
    fills: list[Fill] = field(default_factory=list)
    funding_payments: list[FundingPayment] = field(default_factory=list)
    liquidations: list[Liquidation] = field(default_factory=list)
    now_ns: int = 0
    """Event time of the latest market update; every order and fill is stamped with it."""
    next_seq: int = 1
    duplicate_client_order_ids: int = 0

    def instrument(self, key: InstrumentKey) -> PaperInstrument:
        """The configured instrument, or :class:`RejectedError` for one this venue does not list."""
        instrument = self.instruments.get(key)
        if instrument is None:
            raise RejectedError(f"unknown instrument {key}")
        return instrument

    def take_seq(self) -> int:
        seq = self.next_seq
        self.next_seq += 1
        return seq

    def unrealised_coin(self, key: InstrumentKey) -> float:
        market = self.markets.get(key)
        return (
            0.0 if market is None else self.ledger.position(key).unrealised_coin(market.mark_price)
        )

    def equity_coin(self) -> float:
        """Wallet balance plus the unrealised PnL of every position at its instrument's mark."""
        upnl = sum((self.unrealised_coin(key) for key in self.ledger.open_positions()), 0.0)
        return self.ledger.balance_coin + upnl

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": STATE_FORMAT,
            "config": self.config.to_dict(),
            "instruments": [i.to_dict() for i in self.instruments.values()],
            "ledger": self.ledger.to_dict(),
            "orders": self.orders.to_dict(),
            "markets": [
                {"snapshot": snapshot_to_dict(m.snapshot), "book": m.book.to_dict()}
                for m in self.markets.values()
            ],
            "fills": [fill_to_dict(f) for f in self.fills],
            "funding_payments": [p.to_dict() for p in self.funding_payments],
            "liquidations": [liq.to_dict() for liq in self.liquidations],
            "now_ns": self.now_ns,
            "next_seq": self.next_seq,
            "duplicate_client_order_ids": self.duplicate_client_order_ids,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> VenueState:
        if data.get("format") != STATE_FORMAT:
            raise ValueError(f"unsupported paper state format {data.get('format')!r}")
        instruments = [PaperInstrument.from_dict(item) for item in data["instruments"]]
        markets = [
            Market(snapshot_from_dict(m["snapshot"]), Book.from_dict(m["book"]))
            for m in data["markets"]
        ]
        return cls(
            config=PaperConfig.from_dict(data["config"]),
            instruments={i.key: i for i in instruments},
            ledger=Ledger.from_dict(data["ledger"]),
            orders=OrderRegistry.from_dict(data["orders"]),
            markets={m.snapshot.key: m for m in markets},
            fills=[fill_from_dict(f) for f in data["fills"]],
            funding_payments=[FundingPayment.from_dict(p) for p in data["funding_payments"]],
            liquidations=[Liquidation.from_dict(liq) for liq in data["liquidations"]],
            now_ns=int(data["now_ns"]),
            next_seq=int(data["next_seq"]),
            duplicate_client_order_ids=int(data["duplicate_client_order_ids"]),
        )
