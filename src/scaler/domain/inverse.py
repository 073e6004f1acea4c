"""Inverse (coin-margined) contract maths: value, PnL, margin, liquidation, funding, fees.

Notation (``reference/inverse-contracts.md`` section 0): ``N = |size_usd|`` the USD notional,
``s`` = +1 long / -1 short, ``E`` the average entry price, ``P`` a price, ``M`` collateral in coin,
``m`` the maintenance-margin rate and ``c`` the maintenance deduction in coin.

===========================  =====================================  =============================
quantity                     formula                                source
===========================  =====================================  =============================
position value (coin)        ``V = N / P``                          BitMEX, Bybit, Binance, Kraken
PnL (coin)                   ``s·N·(1/E − 1/P)``                    BitMEX, Bybit, Kraken, Binance
average entry                ``ΣN_i / Σ(N_i/p_i)`` (harmonic)       Bybit P&L page (inverse)
initial margin (coin)        ``N / (P·L)``                          Bybit, OKX
maintenance margin (coin)    ``V·m − c``                            Binance COIN-M, Bybit
liquidation, MM at mark      long ``N(1+m)/(M+c+N/E)``              Binance, OKX, Kraken, Bybit UTA
                             short ``N(1−m)/(N/E−M−c)``
liquidation, MM at entry     long ``N/(N/E+M−N·m/E+c)``             Bybit classic
                             short ``N/(N/E−M+N·m/E−c)``
bankruptcy                   long ``N/(M+N/E)``, short ``N/(N/E−M)``  all (``m = c = 0``)
funding payment (coin)       ``size_usd / mark · rate``             BitMEX, Bybit, Binance, OKX
fee (coin)                   ``N / price · rate``                   Binance, Bybit, Deribit
===========================  =====================================  =============================

Every function validates its arguments and raises ``ValueError`` for a price that is zero,
negative or not finite, for a non-positive leverage, and for other impossible inputs; none of them
ever returns a number computed from such input.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from scaler.domain.guards import require_finite

MmAt = Literal["mark", "entry"]


def _require_price(name: str, value: float) -> None:
    if not math.isfinite(value) or value <= 0.0:
        raise ValueError(f"{name} must be a finite positive price, got {value!r}")


def _require_rate(name: str, value: float, upper: float = 1.0) -> None:
    if not math.isfinite(value) or value < 0.0 or value >= upper:
        raise ValueError(f"{name} must be in [0, {upper}), got {value!r}")


def position_value_coin(size_usd: float, price: float) -> float:
    """Coin value of a position: ``|size_usd| / price``.

    BitMEX: "XBT Contract Value = Multiplier / XBTUSD Price"; Bybit: "Position Value = Contract
    Quantity / Average Entry Price" (60,000 / 50,000 = 1.2 BTC).
    """
    require_finite("size_usd", size_usd)
    _require_price("price", price)
    return abs(size_usd) / price


def pnl_coin(size_usd: float, entry_price: float, exit_price: float) -> float:
    """Profit in coin of a signed USD position from entry to exit: ``size_usd·(1/entry − 1/exit)``.

    BitMEX: "# Contracts × Multiplier × (1/Entry Price − 1/Exit Price)"; Kraken: 10,000 USD long
    from 5,000 to 6,000 gives 0.333 BTC.
    """
    require_finite("size_usd", size_usd)
    _require_price("entry_price", entry_price)
    _require_price("exit_price", exit_price)
    return size_usd * (1.0 / entry_price - 1.0 / exit_price)


def average_entry_price(fills: Iterable[tuple[float, float]]) -> float:
    """Harmonic mean entry of ``(size_usd, price)`` fills that all point in one direction.

    ``E = ΣN_i / Σ(N_i / p_i)``. Bybit: 1,000 @ 5,000 + 2,000 @ 6,000 → 5,625 (the arithmetic
    VWAP would wrongly give 5,666.67).
    """
    total_usd = 0.0
    total_coin = 0.0
    direction = 0
    for size_usd, price in fills:
        require_finite("fill size_usd", size_usd)
        _require_price("fill price", price)
        if size_usd == 0.0:
            continue
        sign = 1 if size_usd > 0 else -1
        if direction and sign != direction:
            raise ValueError("average_entry_price needs fills in one direction only")
        direction = sign
        total_usd += abs(size_usd)
        total_coin += abs(size_usd) / price
    if total_coin <= 0.0:
        raise ValueError("average_entry_price needs at least one non-zero fill")
    return total_usd / total_coin


def initial_margin_coin(size_usd: float, price: float, leverage: float) -> float:
    """Initial margin in coin: ``N / (P·L)``. Bybit: 12,000 USD @ 8,000 at 50x = 0.03 BTC."""
    if not math.isfinite(leverage) or leverage <= 0.0:
        raise ValueError(f"leverage must be finite and positive, got {leverage!r}")
    return position_value_coin(size_usd, price) / leverage


def maintenance_margin_coin(
    size_usd: float, price: float, mmr: float, mm_deduction_coin: float = 0.0
) -> float:
    """Maintenance margin in coin: ``V·m − c``, never below zero.

    Binance COIN-M: "Maintenance Margin = Position Notional × MMR − Maintenance Amount";
    100 contracts × 100 USD / 25,000 = 0.4 BTC at 0.4 % → 0.0016 BTC.
    """
    _require_rate("mmr", mmr)
    require_finite("mm_deduction_coin", mm_deduction_coin)
    return max(0.0, position_value_coin(size_usd, price) * mmr - mm_deduction_coin)


def _check_liquidation_inputs(size_usd: float, entry_price: float, collateral_coin: float) -> None:
    require_finite("size_usd", size_usd)
    _require_price("entry_price", entry_price)
    if not math.isfinite(collateral_coin) or collateral_coin < 0.0:
        raise ValueError(f"collateral_coin must be finite and >= 0, got {collateral_coin!r}")


def liquidation_price(
    size_usd: float,
    entry_price: float,
    collateral_coin: float,
    mmr: float,
    mm_deduction_coin: float = 0.0,
    mm_at: MmAt = "mark",
) -> float | None:
    """Isolated-margin liquidation price, or ``None`` where the position cannot be liquidated.

    Liquidation happens when ``M + s·N·(1/E − 1/LP) = MM``. With ``mm_at="mark"`` the maintenance
    margin is ``(N/LP)·m − c`` (Binance, OKX, Kraken, current Bybit); with ``mm_at="entry"`` it is
    ``(N/E)·m − c`` (classic Bybit). ``None`` for a flat position, and for a short whose
    denominator is not positive (collateral covers any rise, e.g. a fully collateralised short).
    Kraken's worked example (long 1,000 @ 8,000, 0.01 BTC, 1 %) gives 7,481.48.
    """
    _check_liquidation_inputs(size_usd, entry_price, collateral_coin)
    _require_rate("mmr", mmr)
    require_finite("mm_deduction_coin", mm_deduction_coin)
    if mm_at not in ("mark", "entry"):
        raise ValueError(f"mm_at must be 'mark' or 'entry', got {mm_at!r}")
    if size_usd == 0.0:
        return None
    n = abs(size_usd)
    value_at_entry = n / entry_price
    m, c, big_m = mmr, mm_deduction_coin, collateral_coin
    if size_usd > 0:
        if mm_at == "mark":
            numerator, denominator = n * (1.0 + m), big_m + c + value_at_entry
        else:
            numerator, denominator = n, value_at_entry + big_m - value_at_entry * m + c
    elif mm_at == "mark":
        numerator, denominator = n * (1.0 - m), value_at_entry - big_m - c
    else:
        numerator, denominator = n, value_at_entry - big_m + value_at_entry * m - c
    if denominator <= 0.0:
        return None
    return numerator / denominator


def bankruptcy_price(size_usd: float, entry_price: float, collateral_coin: float) -> float | None:
    """Price at which equity reaches zero: long ``N/(M + N/E)``, short ``N/(N/E − M)``.

    ``None`` for a flat position and for a short with ``M >= N/E`` (it can never go bankrupt).
    Equivalently long ``E·L/(L+1)`` and short ``E·L/(L−1)`` with ``M = N/(E·L)``.
    """
    _check_liquidation_inputs(size_usd, entry_price, collateral_coin)
    if size_usd == 0.0:
        return None
    n = abs(size_usd)
    value_at_entry = n / entry_price
    denominator = (
        collateral_coin + value_at_entry if size_usd > 0 else value_at_entry - collateral_coin
    )
    if denominator <= 0.0:
        return None
    return n / denominator


def funding_payment_coin(size_usd: float, mark_price: float, funding_rate: float) -> float:
    """Funding for one interval in coin: ``size_usd / mark · rate``; positive means the holder pays.

    A positive rate means longs pay shorts on every venue. BitMEX: 20 XBT × 0.25 % = 0.05 XBT;
    Bybit: 10,000 contracts at mark 16,000 and 0.01 % pay 0.0000625 BTC.
    """
    require_finite("funding_rate", funding_rate)
    require_finite("size_usd", size_usd)
    _require_price("mark_price", mark_price)
    return size_usd / mark_price * funding_rate


def fee_coin(size_usd: float, price: float, fee_rate: float) -> float:
    """Trading fee in coin: ``N / price · rate``; a negative rate (maker rebate) gives a credit.

    Binance COIN-M: 10 × 100 USD / 10,104 at 0.05 % = 0.000049485 BTC.
    """
    require_finite("fee_rate", fee_rate)
    return position_value_coin(size_usd, price) * fee_rate


def margin_ratio(equity_coin: float, maintenance_margin: float) -> float:
    """Equity over maintenance margin: liquidation at 1.0, higher is safer, ``inf`` with no MM.

    Venues define the ratio in both directions (Binance ``MM/equity``, OKX ``equity/MM``); scaler
    uses ``equity/MM`` everywhere so that "below maintenance times a buffer" reads naturally.
    """
    require_finite("equity_coin", equity_coin)
    require_finite("maintenance_margin", maintenance_margin)
    if maintenance_margin <= 0.0:
        return math.inf
    return equity_coin / maintenance_margin


def effective_leverage(size_usd: float, price: float, equity_coin: float) -> float:
    """Position value over equity; ``inf`` for a position held with no positive equity."""
    value = position_value_coin(size_usd, price)
    require_finite("equity_coin", equity_coin)
    if value == 0.0:
        return 0.0
    return value / equity_coin if equity_coin > 0.0 else math.inf


def liquidation_distance(mark_price: float, liq_price: float | None, size_usd: float) -> float:
    """How far the mark may move against the position before liquidation, over the mark.

    Long ``(mark − LP) / mark``, short ``(LP − mark) / mark``. A mark already at or past the
    liquidation price (a long's LP at or above it, a short's at or below it: the position is at
    or below maintenance) gives 0, never a distance; ``inf`` for a flat position and with no
    liquidation price (a short that can never be liquidated).
    """
    _require_price("mark_price", mark_price)
    require_finite("size_usd", size_usd)
    if liq_price is None or size_usd == 0.0:
        return math.inf
    _require_price("liq_price", liq_price)
    room = mark_price - liq_price if size_usd > 0.0 else liq_price - mark_price
    return max(0.0, room) / mark_price


# --------------------------------------------------------------------------------------------
# Margin schedules: tier tables (Binance "cum", Bybit "MM deduction", BitMEX steps, OKX and
# Kraken contract tiers) and Deribit's size-linear margin.
# --------------------------------------------------------------------------------------------


class TierBasis(enum.StrEnum):
    """What a tier table's floors measure."""

    COIN = "coin"
    """Position value in coin (Binance COIN-M, Bybit inverse, BitMEX)."""
    USD = "usd"
    """USD notional, i.e. contracts × face value (OKX, Kraken)."""


@dataclass(frozen=True, slots=True)
class RiskTier:
    """One tier: applies to positions from ``floor`` (in the table's basis) upward.

    ``deduction`` is in the table's basis unit; a USD deduction becomes ``deduction/price`` coin.
    """

    floor: float
    mmr: float
    deduction: float
    max_leverage: float | None = None


@dataclass(frozen=True, slots=True)
class MarginRequirement:
    """The maintenance rate and deduction that apply to one position at one price."""

    mmr: float
    mm_deduction_coin: float
    tier_index: int
    max_leverage: float | None


@dataclass(frozen=True, slots=True)
class TierTable:
    """Tiered maintenance margin; each notional slice is charged at its own tier's rate."""

    tiers: tuple[RiskTier, ...]
    basis: TierBasis = TierBasis.COIN

    def __post_init__(self) -> None:
        if not self.tiers or self.tiers[0].floor != 0.0:
            raise ValueError("a tier table needs a first tier with floor 0")
        for lower, upper in zip(self.tiers, self.tiers[1:], strict=False):
            if upper.floor <= lower.floor or upper.mmr < lower.mmr:
                raise ValueError("tier floors and rates must increase")
        for tier in self.tiers:
            _require_rate("tier mmr", tier.mmr)
            if not math.isfinite(tier.deduction) or tier.deduction < 0.0:
                raise ValueError(f"tier deduction must be finite and >= 0, got {tier.deduction!r}")

    @classmethod
    def from_rates(
        cls,
        floors: Iterable[float],
        mmrs: Iterable[float],
        basis: TierBasis = TierBasis.COIN,
        max_leverages: Iterable[float | None] | None = None,
    ) -> TierTable:
        """Build a table, deriving deductions by ``c_n = floor_n·(m_n − m_{n−1}) + c_{n−1}``."""
        floors_t, mmrs_t = tuple(floors), tuple(mmrs)
        if len(floors_t) != len(mmrs_t):
            raise ValueError("floors and mmrs must have the same length")
        levs = tuple(max_leverages) if max_leverages is not None else (None,) * len(floors_t)
        if len(levs) != len(floors_t):
            raise ValueError("max_leverages must match floors")
        tiers: list[RiskTier] = []
        deduction, previous_mmr = 0.0, 0.0
        for i, (floor, mmr) in enumerate(zip(floors_t, mmrs_t, strict=True)):
            if i:
                deduction += floor * (mmr - previous_mmr)
            tiers.append(RiskTier(float(floor), float(mmr), deduction, levs[i]))
            previous_mmr = mmr
        return cls(tuple(tiers), basis)

    @classmethod
    def flat(cls, mmr: float) -> TierTable:
        """A single tier: one maintenance rate for any size."""
        return cls((RiskTier(0.0, mmr, 0.0),))

    def requirement(self, size_usd: float, price: float) -> MarginRequirement:
        """The tier that applies to ``size_usd`` valued at ``price``."""
        require_finite("size_usd", size_usd)
        _require_price("price", price)
        amount = (
            position_value_coin(size_usd, price) if self.basis is TierBasis.COIN else abs(size_usd)
        )
        index = _tier_index(self.tiers, amount)
        tier = self.tiers[index]
        deduction_coin = tier.deduction if self.basis is TierBasis.COIN else tier.deduction / price
        return MarginRequirement(tier.mmr, deduction_coin, index, tier.max_leverage)


def _tier_index(tiers: tuple[RiskTier, ...], amount: float) -> int:
    """The last tier whose floor is at or below ``amount`` (a floor belongs to its own tier)."""
    index = 0
    for i, tier in enumerate(tiers):
        if amount >= tier.floor:
            index = i
    return index


LINEAR_MMR_CAP = 0.999999
"""A linear maintenance rate stops just below 100 % (a rate must stay below 1)."""


@dataclass(frozen=True, slots=True)
class LinearMargin:
    """Deribit-style maintenance rate growing with size: ``m = base_mmr + mmr_per_coin · V``.

    Deribit BTC since January 2022: ``1 % + 0.005 % per BTC`` (25 BTC → 1.125 %).
    """

    base_mmr: float
    mmr_per_coin: float

    def __post_init__(self) -> None:
        _require_rate("base_mmr", self.base_mmr)
        if not math.isfinite(self.mmr_per_coin) or self.mmr_per_coin < 0.0:
            raise ValueError("mmr_per_coin must be finite and >= 0")

    def requirement(self, size_usd: float, price: float) -> MarginRequirement:
        """The rate for this position's coin value, capped at :data:`LINEAR_MMR_CAP`."""
        rate = self.base_mmr + self.mmr_per_coin * position_value_coin(size_usd, price)
        return MarginRequirement(min(rate, LINEAR_MMR_CAP), 0.0, 0, None)


MarginSchedule = TierTable | LinearMargin


def schedule_maintenance_margin_coin(
    schedule: MarginSchedule, size_usd: float, price: float
) -> float:
    """Maintenance margin of a position under a schedule, valued at ``price``."""
    req = schedule.requirement(size_usd, price)
    return maintenance_margin_coin(size_usd, price, req.mmr, req.mm_deduction_coin)


def schedule_liquidation_price(
    size_usd: float, entry_price: float, collateral_coin: float, schedule: MarginSchedule
) -> float | None:
    """Price at which equity meets maintenance margin under a schedule, or ``None`` if never.

    Maintenance is evaluated at the liquidation price, not at entry (Binance's FAQ: "you must
    substitute other margin levels' MMR and maintenance amount to recalculate"). With ``V = N/P``
    the coin value, equity is ``M + s·(N/E − V)`` and, on each piece of the schedule (a tier,
    or Deribit's linear rate and its cap), maintenance is ``V·(m + b·V) − c``; the crossing is
    solved in closed form on each piece in turn, and a crossing that rounding puts a hair
    outside its piece is clamped to the piece's edge, so a price landing exactly on a tier's
    floor is found (``reference/inverse-contracts.md`` sections 3.2, 4.2 and 4.7).

    A long is liquidated at the highest price with equity at or below maintenance; a short
    safe at entry at the lowest price above entry with equity at or below it (``None`` when
    there is none: a fully collateralised short). A short already below maintenance at entry
    gets the price at or below entry under which it would recover, so the liquidation price is
    on the wrong side of the entry, as a long's is when it is already below maintenance:
    :func:`liquidation_distance` reads both as 0, never as "no liquidation".
    """
    _check_liquidation_inputs(size_usd, entry_price, collateral_coin)
    if size_usd == 0.0:
        return None
    n = abs(size_usd)
    value_at_entry = n / entry_price
    pieces = _margin_pieces(schedule, n)
    if size_usd > 0:
        return n / _long_liquidation_value(pieces, collateral_coin + value_at_entry)
    value = _short_liquidation_value(pieces, collateral_coin - value_at_entry, value_at_entry)
    return None if value is None else n / value


_Piece = tuple[float, float, float, float, float]
"""``(lo, hi, m, b, c)``: maintenance ``V·(m + b·V) − c`` for a coin value ``lo <= V < hi``."""


def _margin_pieces(schedule: MarginSchedule, notional_usd: float) -> list[_Piece]:
    """The schedule as pieces in ascending coin value, covering ``[0, inf)``.

    A USD-basis table has one tier for the position (its notional does not move with the price),
    and its USD deduction ``D`` is ``D/P = V·D/N`` coin: a flat rate ``m − D/N``.
    """
    if isinstance(schedule, LinearMargin):
        a, b = schedule.base_mmr, schedule.mmr_per_coin
        capped_from = (LINEAR_MMR_CAP - a) / b if b > 0.0 else math.inf
        linear: list[_Piece] = [(0.0, capped_from, a, b, 0.0)] if capped_from > 0.0 else []
        if capped_from < math.inf:
            linear.append((max(capped_from, 0.0), math.inf, LINEAR_MMR_CAP, 0.0, 0.0))
        return linear
    tiers = schedule.tiers
    if schedule.basis is TierBasis.USD:
        tier = tiers[_tier_index(tiers, notional_usd)]
        return [(0.0, math.inf, max(0.0, tier.mmr - tier.deduction / notional_usd), 0.0, 0.0)]
    pieces: list[_Piece] = []
    for i, tier in enumerate(tiers):
        hi = tiers[i + 1].floor if i + 1 < len(tiers) else math.inf
        m, c = tier.mmr, tier.deduction
        # maintenance_margin_coin floors V·m − c at 0: below V = c/m the tier charges nothing.
        zero_below = c / m if m > 0.0 else (math.inf if c > 0.0 else 0.0)
        if zero_below > tier.floor:
            pieces.append((tier.floor, min(zero_below, hi), 0.0, 0.0, 0.0))
        if zero_below < hi:
            pieces.append((max(zero_below, tier.floor), hi, m, 0.0, c))
    return pieces


def _margin_at(piece: _Piece, value: float) -> float:
    _, _, m, b, c = piece
    return value * (m + b * value) - c


def _long_liquidation_value(pieces: list[_Piece], equity_at_zero: float) -> float:
    """Smallest coin value ``V`` with equity ``k − V`` at or below the margin (``k = M + N/E``).

    Equity falls and the margin rises with ``V``, so the first piece where they meet holds the
    answer: at its start when the margin is already there (a floor), else the positive root of
    ``b·V² + (1 + m)·V − (k + c) = 0``, written without cancellation.
    """
    k = equity_at_zero
    for piece in pieces:
        lo, hi, m, b, c = piece
        if lo > 0.0 and k - lo <= _margin_at(piece, lo):
            return lo
        kc, slope = k + c, 1.0 + m
        value = 2.0 * kc / (slope + math.sqrt(slope * slope + 4.0 * b * kc))
        if value < hi:
            return max(value, lo)
    raise AssertionError("the last margin piece is unbounded, so a long always meets it")


def _short_liquidation_value(
    pieces: list[_Piece], equity_at_zero: float, value_at_entry: float
) -> float | None:
    """Coin value at which a short's equity ``k + V`` (``k = M − N/E``) meets the margin.

    Safe at entry: the largest ``V`` below entry's with equity at or below the margin (the price
    rising from entry meets it first), ``None`` when there is none. Already below at entry: the
    smallest ``V`` above entry's where equity gets back above the margin.
    """
    k, v_e = equity_at_zero, value_at_entry
    entry_piece = pieces[-1]
    for piece in pieces:
        if v_e < piece[1]:
            entry_piece = piece
            break
    if k + v_e > _margin_at(entry_piece, v_e):
        value = _short_value_below(pieces, k, v_e)
        return value if value is not None and value > 0.0 else None
    return _short_recovery_value(pieces, k, v_e)


def _short_value_below(pieces: list[_Piece], k: float, v_e: float) -> float | None:
    for piece in reversed(pieces):
        lo, hi, m, b, c = piece
        if lo >= v_e:
            continue
        top = min(hi, v_e)
        if k + top <= _margin_at(piece, top):
            return top  # the margin steps up across this floor
        if k + lo <= _margin_at(piece, lo):
            # Equity minus margin, kc + (1 − m)·V − b·V², rises through 0 inside the piece: the
            # smaller root of b·V² − (1 − m)·V − kc = 0, written without cancellation.
            kc, slope = k + c, 1.0 - m
            root = math.sqrt(max(0.0, slope * slope + 4.0 * b * kc))
            return min(max(-2.0 * kc / (slope + root), lo), top)
    return None


def _short_recovery_value(pieces: list[_Piece], k: float, v_e: float) -> float:
    for piece in pieces:
        lo, hi, m, b, c = piece
        if hi <= v_e:
            continue
        bottom = max(lo, v_e)
        if k + bottom > _margin_at(piece, bottom):
            return bottom  # the margin steps down across this floor
        kc, slope = k + c, 1.0 - m
        disc = slope * slope + 4.0 * b * kc
        if disc < 0.0:
            continue  # below the margin across the whole piece
        root = math.sqrt(disc)
        if b > 0.0 and (slope + root) / (2.0 * b) <= bottom:
            continue  # past the larger root, the margin grows faster than equity
        value = -2.0 * kc / (slope + root)
        if value < hi:
            return max(value, bottom)
    raise AssertionError("the last margin piece is linear, so a short always gets back above it")
