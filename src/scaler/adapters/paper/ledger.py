"""The paper exchange's wallet and positions, booked exactly in integer units of 1e-10 coin.

Why integers. Every amount that moves the wallet -- realised PnL, a fee, a funding payment -- is
computed in float by :mod:`scaler.domain.inverse`, then rounded half-even to one unit (1e-10
coin) exactly once, when it is booked, the way venues round every booking to the satoshi. From
then on only integers are added, so after every booking::

    balance_units == initial_units + realised_units - fees_units - funding_units

holds exactly, not "within a tolerance" (DESIGN.md section 2). The unit is finer than the
satoshi (1e-8) so that the smallest amounts the paper venue books survive: a 1 USD lot at
100,000 USD and a 0.02 % maker fee is 2e-9 coin, which a satoshi ledger would round to zero.

The one rounding is exact: ``Fraction(amount)`` is the float's exact binary value, scaled by
10**10 and rounded half-even by ``round``; no intermediate decimal string or float product.

Positions are signed USD notionals in whole lots (``int``). Entry is the harmonic average
(:func:`scaler.domain.inverse.average_entry_price`); reducing leaves it unchanged; a flip
realises the whole old position and opens the remainder at the fill price. Unrealised PnL and
equity are valuations at the mark, not bookings: they stay floats.

The insurance fund. A liquidation closes at the bankruptcy price, which leaves the balance at
zero up to rounding; if it would still end below zero (rounding, or a balance already negative
from a reduce filled far from the mark), :meth:`Ledger.floor_balance` books the shortfall as
realised PnL credited by the insurance fund and counts it in ``insurance_fund_absorbed_units``,
so the identity above keeps holding.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Final

from scaler.domain.inverse import average_entry_price, funding_payment_coin, pnl_coin
from scaler.domain.types import InstrumentKey
from scaler.errors import InvariantViolation

UNITS_PER_COIN: Final = 10**10
"""Ledger units per coin: one unit is 1e-10 coin."""


def coin_to_units(amount_coin: float) -> int:
    """Round a coin amount half-even to whole ledger units (the one rounding of a booking)."""
    if not math.isfinite(amount_coin):
        raise ValueError(f"cannot book a non-finite coin amount {amount_coin!r}")
    return round(Fraction(amount_coin) * UNITS_PER_COIN)


def units_to_coin(units: int) -> float:
    """The coin value of ledger units, as the nearest float."""
    return units / UNITS_PER_COIN


@dataclass(frozen=True, slots=True)
class Position:
    """A signed USD position in whole lots and its harmonic average entry (``None`` when flat)."""

    size_usd: int = 0
    entry_price: float | None = None

    def unrealised_coin(self, mark_price: float) -> float:
        if self.size_usd == 0 or self.entry_price is None:
            return 0.0
        return pnl_coin(self.size_usd, self.entry_price, mark_price)


FLAT: Final = Position()


@dataclass(frozen=True, slots=True)
class FillBooking:
    """What one fill booked: realised PnL and fee in units, and the position after it."""

    realised_units: int
    fee_units: int
    position: Position


def trade(position: Position, size_usd: int, price: float) -> tuple[Position, float]:
    """Apply a signed fill to a position: the new position and the realised PnL in coin."""
    if size_usd == 0:
        raise ValueError("a fill must have a non-zero size")
    held = position.size_usd
    if held == 0 or position.entry_price is None:
        return Position(size_usd, price), 0.0
    if (held > 0) == (size_usd > 0):
        entry = average_entry_price(((held, position.entry_price), (size_usd, price)))
        return Position(held + size_usd, entry), 0.0
    closed_usd = min(abs(size_usd), abs(held))
    realised = pnl_coin(math.copysign(closed_usd, held), position.entry_price, price)
    remaining = held + size_usd
    if remaining == 0:
        return FLAT, realised
    if (remaining > 0) == (held > 0):
        return Position(remaining, position.entry_price), realised
    return Position(remaining, price), realised


class Ledger:
    """One coin wallet shared by every instrument that settles in it (cross margin)."""

    __slots__ = (
        "_balance",
        "_fees",
        "_funding",
        "_initial",
        "_insurance",
        "_positions",
        "_realised",
    )

    def __init__(self, initial_units: int) -> None:
        if initial_units < 0:
            raise ValueError("the initial balance cannot be negative")
        self._initial = initial_units
        self._balance = initial_units
        self._realised = 0
        self._fees = 0
        self._funding = 0
        self._insurance = 0
        self._positions: dict[InstrumentKey, Position] = {}

    @property
    def initial_units(self) -> int:
        return self._initial

    @property
    def balance_units(self) -> int:
        return self._balance

    @property
    def realised_units(self) -> int:
        return self._realised

    @property
    def fees_units(self) -> int:
        return self._fees

    @property
    def funding_units(self) -> int:
        return self._funding

    @property
    def insurance_fund_absorbed_units(self) -> int:
        return self._insurance

    @property
    def balance_coin(self) -> float:
        return units_to_coin(self._balance)

    def position(self, key: InstrumentKey) -> Position:
        return self._positions.get(key, FLAT)

    def open_positions(self) -> dict[InstrumentKey, Position]:
        """Every non-flat position, in the order the instruments were first traded."""
        return {key: pos for key, pos in self._positions.items() if pos.size_usd != 0}

    def book_fill(
        self, key: InstrumentKey, size_usd: int, price: float, fee_coin: float
    ) -> FillBooking:
        """Book a signed fill: realised PnL on the closed part and the fee, each rounded once."""
        after, realised_coin = trade(self.position(key), size_usd, price)
        realised = coin_to_units(realised_coin)
        fee = coin_to_units(fee_coin)
        self._positions[key] = after
        self._realised += realised
        self._fees += fee
        self._balance += realised - fee
        return FillBooking(realised, fee, after)

    def book_funding(self, key: InstrumentKey, mark_price: float, rate: float) -> int:
        """Book one funding settlement for the position held now; positive units were paid."""
        position = self.position(key)
        if position.size_usd == 0:
            return 0
        paid = coin_to_units(funding_payment_coin(position.size_usd, mark_price, rate))
        self._funding += paid
        self._balance -= paid
        return paid

    def floor_balance(self) -> int:
        """Credit a negative balance back to zero from the insurance fund; the units credited."""
        if self._balance >= 0:
            return 0
        shortfall = -self._balance
        self._realised += shortfall
        self._insurance += shortfall
        self._balance = 0
        return shortfall

    def is_balanced(self) -> bool:
        """The exact identity ``balance = initial + realised - fees - funding``."""
        return self._balance == self._initial + self._realised - self._fees - self._funding

    def assert_balanced(self) -> None:
        if not self.is_balanced():
            raise InvariantViolation(
                f"paper ledger out of balance: balance {self._balance} != initial {self._initial}"
                f" + realised {self._realised} - fees {self._fees} - funding {self._funding}"
            )

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe state; :meth:`from_dict` restores it exactly."""
        return {
            "initial_units": self._initial,
            "balance_units": self._balance,
            "realised_units": self._realised,
            "fees_units": self._fees,
            "funding_units": self._funding,
            "insurance_fund_absorbed_units": self._insurance,
            "positions": [
                {
                    "venue": key.venue,
                    "symbol": key.symbol,
                    "size_usd": pos.size_usd,
                    "entry_price": pos.entry_price,
                }
                for key, pos in self._positions.items()
            ],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Ledger:
        ledger = cls(int(data["initial_units"]))
        ledger._balance = int(data["balance_units"])
        ledger._realised = int(data["realised_units"])
        ledger._fees = int(data["fees_units"])
        ledger._funding = int(data["funding_units"])
        ledger._insurance = int(data["insurance_fund_absorbed_units"])
        for item in data["positions"]:
            entry = item["entry_price"]
            ledger._positions[InstrumentKey(str(item["venue"]), str(item["symbol"]))] = Position(
                int(item["size_usd"]), None if entry is None else float(entry)
            )
        ledger.assert_balanced()
        return ledger
