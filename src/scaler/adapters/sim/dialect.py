"""Market data in the Deribit v2 dialect: instruments, currencies, tickers, books and quotes.

A paper instrument keyed ``BTC/USD:BTC`` is listed as ``BTC-PERPETUAL``, an inverse
("reversed") perpetual whose ``contract_size`` and ``min_trade_amount`` are the paper lot in USD
and whose ``tick_size`` is the paper tick. ccxt's deribit ``fetch_markets`` turns that back into
``BTC/USD:BTC`` with ``contractSize`` 10, ``precision.amount`` 10 and ``precision.price`` 0.5.
Amounts are USD throughout, as on Deribit; REST book levels are ``[price, amount]`` and websocket
book levels ``[action, price, amount]`` (``action`` one of ``new``, ``change``, ``delete``).

The simulator has no public trades, so ``last_price`` is the mark and the 24 h stats are flat.
Both ``funding_8h`` and ``current_funding`` carry the feed's funding rate in force, per 8 h.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from scaler.adapters.paper.instrument import PaperConfig, PaperInstrument
from scaler.domain.funding import normalise_rate
from scaler.domain.types import NS_PER_MS, InstrumentKey, MarketSnapshot

EIGHT_HOURS_S: Final = 28_800.0
PERPETUAL_EXPIRY_MS: Final = 32_503_708_800_000
"""What Deribit gives as the expiry of a perpetual (3000-01-01)."""
LISTED_SINCE_MS: Final = 1_534_242_287_000
"""Deribit's creation timestamp of BTC-PERPETUAL."""
PRICE_BAND: Final = 0.05
"""``min_price``/``max_price`` of the ticker: the mark ±5 %, like Deribit's price limits."""
CURRENCY_NAMES: Final = {"BTC": "Bitcoin", "ETH": "Ethereum", "SOL": "Solana"}

Levels = tuple[tuple[float, float], ...]


@dataclass(frozen=True, slots=True)
class Listing:
    """One paper instrument as Deribit lists it."""

    key: InstrumentKey
    name: str
    base: str
    quote: str
    instrument_id: int
    contract_size_usd: int
    tick_size: float
    maker_fee_rate: float
    taker_fee_rate: float
    max_leverage: float

    @property
    def currency(self) -> str:
        """The settlement coin, which is also the base of an inverse contract."""
        return self.base


def instrument_name(symbol: str) -> str:
    """``BTC/USD:BTC`` -> ``BTC-PERPETUAL``; ``ValueError`` for anything but an inverse perp."""
    pair, _, settle = symbol.partition(":")
    base, _, quote = pair.partition("/")
    if not (base and quote and settle) or settle != base or not base.isalnum():
        raise ValueError(f"{symbol!r} is not an inverse perpetual symbol like 'BTC/USD:BTC'")
    return f"{base.upper()}-PERPETUAL"


def listing_for(instrument: PaperInstrument, config: PaperConfig, instrument_id: int) -> Listing:
    base, _, rest = instrument.key.symbol.partition("/")
    return Listing(
        key=instrument.key,
        name=instrument_name(instrument.key.symbol),
        base=base.upper(),
        quote=rest.partition(":")[0].upper(),
        instrument_id=instrument_id,
        contract_size_usd=instrument.lot_size_usd,
        tick_size=instrument.tick_size,
        maker_fee_rate=config.maker_fee_rate,
        taker_fee_rate=config.taker_fee_rate,
        max_leverage=config.max_leverage,
    )


def ms(ts_ns: int) -> int:
    return ts_ns // NS_PER_MS


def instrument_json(listing: Listing) -> dict[str, Any]:
    """``public/get_instruments`` entry (the fields ccxt reads, and Deribit's others)."""
    return {
        "instrument_name": listing.name,
        "instrument_id": listing.instrument_id,
        "kind": "future",
        "instrument_type": "reversed",
        "future_type": "reversed",
        "settlement_period": "perpetual",
        "base_currency": listing.base,
        "quote_currency": listing.quote,
        "counter_currency": listing.quote,
        "settlement_currency": listing.currency,
        "price_index": f"{listing.base.lower()}_{listing.quote.lower()}",
        "contract_size": float(listing.contract_size_usd),
        "min_trade_amount": float(listing.contract_size_usd),
        "tick_size": listing.tick_size,
        "tick_size_steps": [],
        "maker_commission": listing.maker_fee_rate,
        "taker_commission": listing.taker_fee_rate,
        "block_trade_commission": listing.taker_fee_rate,
        "max_leverage": int(listing.max_leverage),
        "max_liquidation_commission": 0.0075,
        "is_active": True,
        "rfq": False,
        "creation_timestamp": LISTED_SINCE_MS,
        "expiration_timestamp": PERPETUAL_EXPIRY_MS,
    }


def currency_json(code: str) -> dict[str, Any]:
    """``public/get_currencies`` entry for a settlement coin."""
    return {
        "currency": code,
        "currency_long": CURRENCY_NAMES.get(code, code),
        "coin_type": CURRENCY_NAMES.get(code, code).upper(),
        "fee_precision": 4,
        "min_confirmations": 1,
        "min_withdrawal_fee": 0.0001,
        "withdrawal_fee": 0.0001,
        "withdrawal_priorities": [],
        "apr": 0.0,
        "in_cross_collateral_pool": False,
    }


def funding_8h(snapshot: MarketSnapshot) -> float:
    return normalise_rate(snapshot.funding_rate, snapshot.funding_interval_s, EIGHT_HOURS_S)


def _touch_amount(levels: Levels) -> float:
    return levels[0][1] if levels else 0.0


def _price_limit(listing: Listing, price: float) -> float:
    return round(price / listing.tick_size) * listing.tick_size


def ticker_json(
    listing: Listing, snapshot: MarketSnapshot, open_interest_usd: float
) -> dict[str, Any]:
    """``public/ticker`` result, also the data of ``ticker.<name>.<interval>`` pushes."""
    mark, rate = snapshot.mark_price, funding_8h(snapshot)
    return {
        "timestamp": ms(snapshot.ts_event_ns),
        "instrument_name": listing.name,
        "state": "open",
        "mark_price": mark,
        "index_price": snapshot.index_price,
        "estimated_delivery_price": snapshot.index_price,
        "last_price": mark,
        "settlement_price": mark,
        "min_price": _price_limit(listing, mark * (1.0 - PRICE_BAND)),
        "max_price": _price_limit(listing, mark * (1.0 + PRICE_BAND)),
        "open_interest": open_interest_usd,
        "funding_8h": rate,
        "current_funding": rate,
        "interest_value": 0.0,
        "best_bid_price": snapshot.best_bid,
        "best_bid_amount": _touch_amount(snapshot.bids),
        "best_ask_price": snapshot.best_ask,
        "best_ask_amount": _touch_amount(snapshot.asks),
        "stats": {"volume": 0.0, "volume_usd": 0.0, "price_change": 0.0, "low": mark, "high": mark},
    }


def book_sides(snapshot: MarketSnapshot) -> tuple[Levels, Levels]:
    """Bid and ask levels, best first; a feed without depth shows its touch with no size."""
    bids = snapshot.bids or ((snapshot.best_bid, 0.0),)
    asks = snapshot.asks or ((snapshot.best_ask, 0.0),)
    return bids, asks


def order_book_json(
    listing: Listing,
    snapshot: MarketSnapshot,
    open_interest_usd: float,
    change_id: int,
    depth: int | None,
) -> dict[str, Any]:
    """``public/get_order_book`` result: the ticker fields plus ``depth`` levels a side."""
    bids, asks = book_sides(snapshot)
    return ticker_json(listing, snapshot, open_interest_usd) | {
        "change_id": change_id,
        "bids": [[price, amount] for price, amount in bids[:depth]],
        "asks": [[price, amount] for price, amount in asks[:depth]],
    }


def quote_json(listing: Listing, snapshot: MarketSnapshot) -> dict[str, Any]:
    """Data of a ``quote.<name>`` push: the touch and its amounts."""
    return {
        "timestamp": ms(snapshot.ts_event_ns),
        "instrument_name": listing.name,
        "best_bid_price": snapshot.best_bid,
        "best_bid_amount": _touch_amount(snapshot.bids),
        "best_ask_price": snapshot.best_ask,
        "best_ask_amount": _touch_amount(snapshot.asks),
    }


def level_changes(previous: Mapping[float, float], current: Levels) -> list[list[Any]]:
    """Websocket book deltas taking the side ``previous`` to ``current``, in ``current``'s order.

    Levels gone are ``delete`` with amount 0, levels new are ``new``, levels whose amount moved
    are ``change``; unchanged levels are left out. With an empty ``previous`` this is the
    ``snapshot`` message's side, every level ``new``.
    """
    seen = {price for price, _ in current}
    deltas: list[list[Any]] = [["delete", price, 0.0] for price in previous if price not in seen]
    for price, amount in current:
        before = previous.get(price)
        if before is None:
            deltas.append(["new", price, amount])
        elif before != amount:
            deltas.append(["change", price, amount])
    return deltas
