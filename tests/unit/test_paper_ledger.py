"""Unit tests for the paper exchange's exact ledger (scaler.adapters.paper.ledger)."""

from __future__ import annotations

import json
import math

import pytest

from scaler.adapters.paper.ledger import (
    UNITS_PER_COIN,
    Ledger,
    Position,
    coin_to_units,
    trade,
    units_to_coin,
)
from scaler.domain.types import InstrumentKey
from scaler.errors import InvariantViolation

pytestmark = pytest.mark.unit

KEY = InstrumentKey("paper", "BTC/USD:BTC")
ONE_COIN = UNITS_PER_COIN


@pytest.mark.parametrize(
    ("amount_coin", "units"),
    [
        # 1/2048 coin = 10**10 / 2048 = 4,882,812.5 units, exactly half: ties go to the even 2.
        (1 / 2048, 4_882_812),
        # 3/2048 coin = 14,648,437.5 units: ties go to the even 8.
        (3 / 2048, 14_648_438),
        (-1 / 2048, -4_882_812),
        # Bybit's funding example, 0.0000625 BTC = 625,000 units of 1e-10.
        (0.0000625, 625_000),
        (0.0, 0),
    ],
)
def test_coin_to_units_rounds_half_even_once(amount_coin: float, units: int) -> None:
    """A coin amount is rounded half-even to whole 1e-10 units from its exact float value."""
    assert coin_to_units(amount_coin) == units


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_coin_to_units_when_not_finite_then_value_error(bad: float) -> None:
    """Nothing non-finite can be booked."""
    with pytest.raises(ValueError, match="non-finite"):
        coin_to_units(bad)


def test_units_to_coin_inverts_coin_to_units_for_ledger_sized_amounts() -> None:
    """Units converted to coin and back are the same units (amounts far below 2**53 units)."""
    for units in (1, 7, 8_333_333, 3_333_333_333, 123_456_789_012_345):
        assert coin_to_units(units_to_coin(units)) == units


def test_trade_when_kraken_long_closed_then_realised_is_one_third_coin() -> None:
    """Kraken: 10,000 USD long from 5,000 to 6,000 realises 10,000·(1/5,000 − 1/6,000) = 1/3 BTC."""
    after, realised = trade(Position(10_000, 5_000.0), -10_000, 6_000.0)
    assert after == Position()
    assert realised == pytest.approx(1 / 3, rel=1e-12)


def test_trade_when_two_buys_then_entry_is_harmonic_bybit_5625() -> None:
    """Bybit: 1,000 @ 5,000 then 2,000 @ 6,000 gives 3,000 / (0.2 + 0.3333) = 5,625."""
    first, realised_first = trade(Position(), 1_000, 5_000.0)
    second, realised_second = trade(first, 2_000, 6_000.0)
    assert second.size_usd == 3_000
    assert second.entry_price == pytest.approx(5_625.0, rel=1e-12)
    assert realised_first == realised_second == 0.0


def test_trade_when_reduced_then_entry_unchanged_and_part_realised() -> None:
    """Closing 400 of a 1,000 long from 5,000 at 5,500 realises 400·(1/5,000 − 1/5,500)."""
    after, realised = trade(Position(1_000, 5_000.0), -400, 5_500.0)
    assert after == Position(600, 5_000.0)
    # 400 × (0.0002 − 0.000181818...) = 400 × 0.0000181818... = 0.0072727...
    assert realised == pytest.approx(0.0072727272727, rel=1e-9)


def test_trade_when_flipped_then_old_closed_and_new_entry_at_fill() -> None:
    """Selling 1,500 against a 1,000 long realises 1,000 and opens 500 short at the fill price."""
    after, realised = trade(Position(1_000, 5_000.0), -1_500, 4_500.0)
    assert after == Position(-500, 4_500.0)
    # 1,000 × (1/5,000 − 1/4,500) = 1,000 × (0.0002 − 0.000222222) = −0.0222222
    assert realised == pytest.approx(-0.0222222222222, rel=1e-9)


def test_trade_when_short_price_falls_then_profit() -> None:
    """A 1,000 short from 5,000 closed at 4,500 earns −1,000·(1/5,000 − 1/4,500) = +0.0222 BTC."""
    _, realised = trade(Position(-1_000, 5_000.0), 1_000, 4_500.0)
    assert realised == pytest.approx(0.0222222222222, rel=1e-9)


def test_position_unrealised_bybit_1000_from_5000_to_5500() -> None:
    """Bybit: 1,000 contracts long from 5,000 at mark 5,500 show 0.2 − 0.181818 = 0.01818 BTC."""
    assert Position(1_000, 5_000.0).unrealised_coin(5_500.0) == pytest.approx(0.0181818181818)
    assert Position().unrealised_coin(5_500.0) == 0.0


def test_ledger_books_kraken_round_trip_exactly() -> None:
    """Balance after open and close is initial + realised − fees, as exact integers."""
    ledger = Ledger(ONE_COIN)
    # Open 10,000 @ 5,000 with a 0.001 BTC fee = 10,000,000 units.
    ledger.book_fill(KEY, 10_000, 5_000.0, 0.001)
    # Close @ 6,000: realised 1/3 BTC = 3,333,333,333.33 -> 3,333,333,333 units;
    # fee 10,000/6,000 × 0.05 % = 0.000833333 BTC -> 8,333,333 units.
    booking = ledger.book_fill(KEY, -10_000, 6_000.0, 10_000 / 6_000 * 0.0005)
    assert booking.realised_units == 3_333_333_333
    assert booking.fee_units == 8_333_333
    assert ledger.balance_units == 10_000_000_000 + 3_333_333_333 - 10_000_000 - 8_333_333
    assert ledger.position(KEY) == Position()
    assert ledger.is_balanced()


def test_ledger_funding_long_pays_short_receives() -> None:
    """Bybit: 10,000 at mark 16,000 and 0.01 % is 625,000 units, paid by a long, got by a short."""
    ledger = Ledger(ONE_COIN)
    ledger.book_fill(KEY, 10_000, 16_000.0, 0.0)
    assert ledger.book_funding(KEY, 16_000.0, 0.0001) == 625_000
    short_key = InstrumentKey("paper", "BTC/USD:BTC-SHORT")
    ledger.book_fill(short_key, -10_000, 16_000.0, 0.0)
    assert ledger.book_funding(short_key, 16_000.0, 0.0001) == -625_000
    assert ledger.funding_units == 0
    assert ledger.balance_units == ONE_COIN
    assert ledger.book_funding(InstrumentKey("paper", "flat"), 16_000.0, 0.0001) == 0


def test_ledger_floor_balance_books_insurance_credit_as_realised() -> None:
    """A negative balance is floored at zero and the credit is counted, keeping the identity."""
    ledger = Ledger(100)
    ledger.book_fill(KEY, 1_000, 8_000.0, 0.0)
    # Closing at 4,000 realises 1,000·(1/8,000 − 1/4,000) = −0.125 BTC = −1,250,000,000 units.
    ledger.book_fill(KEY, -1_000, 4_000.0, 0.0)
    assert ledger.balance_units == 100 - 1_250_000_000
    assert ledger.floor_balance() == 1_250_000_000 - 100
    assert ledger.balance_units == 0
    assert ledger.insurance_fund_absorbed_units == 1_250_000_000 - 100
    assert ledger.is_balanced()
    assert ledger.floor_balance() == 0


def test_ledger_round_trips_through_json() -> None:
    """to_dict / from_dict through JSON restore an identical ledger."""
    ledger = Ledger(ONE_COIN)
    ledger.book_fill(KEY, 3_000, 5_625.0, 0.00001)
    ledger.book_funding(KEY, 6_000.0, 0.0003)
    restored = Ledger.from_dict(json.loads(json.dumps(ledger.to_dict())))
    assert restored.to_dict() == ledger.to_dict()
    assert restored.position(KEY) == ledger.position(KEY)


def test_ledger_from_dict_when_unbalanced_then_invariant_violation() -> None:
    """A persisted ledger whose balance does not add up is refused."""
    data = Ledger(ONE_COIN).to_dict()
    data["balance_units"] += 1
    with pytest.raises(InvariantViolation, match="out of balance"):
        Ledger.from_dict(data)
