"""The paper venue: an in-process inverse-perpetual exchange with exact accounting."""

from scaler.adapters.paper.exchange import PaperCounters, PaperExchange
from scaler.adapters.paper.instrument import BYBIT_BTC_INVERSE_TIERS, PaperConfig, PaperInstrument
from scaler.adapters.paper.ledger import (
    UNITS_PER_COIN,
    Ledger,
    Position,
    coin_to_units,
    units_to_coin,
)
from scaler.adapters.paper.state import FundingPayment, Liquidation

__all__ = [
    "BYBIT_BTC_INVERSE_TIERS",
    "UNITS_PER_COIN",
    "FundingPayment",
    "Ledger",
    "Liquidation",
    "PaperConfig",
    "PaperCounters",
    "PaperExchange",
    "PaperInstrument",
    "Position",
    "coin_to_units",
    "units_to_coin",
]
