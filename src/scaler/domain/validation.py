"""Input validation: market and account snapshots checked before they reach sizing or risk.

DESIGN.md section 4, rule 1: non-finite, non-positive, absurd, out-of-order or duplicate market
data is rejected and counted. Each check returns a bounded reason code (:class:`BadInput`, a
metric label value) or ``None`` for a good snapshot; none of them raises for bad data. The caller
counts the code and drops the snapshot.

Market snapshot checks, in this order (the first failing one is reported):

==================  =================================================================
code                rejected when
==================  =================================================================
NON_FINITE          a price, funding rate, predicted rate or interval is NaN or ±inf
NON_POSITIVE_PRICE  mark, index, best bid or best ask is ``<= 0``
(book levels)       then each ``(price, size_usd)`` level of ``bids`` and ``asks``:
                    NON_FINITE, NON_POSITIVE_PRICE for a price ``<= 0``, NEGATIVE_AMOUNT
                    for a negative size
CROSSED_BOOK        best bid ``>`` best ask (a locked book, bid == ask, is accepted)
ABSURD_FUNDING      ``|funding_rate|`` or ``|predicted_funding_rate|`` above the cap
BAD_INTERVAL        ``funding_interval_s <= 0``
IMPLAUSIBLE_INDEX   mark / index outside ``[1/r, r]``, ``r = max_mark_index_ratio``
WRONG_INSTRUMENT    the key differs from the previous snapshot's
OUT_OF_ORDER        ``ts_event_ns`` older than the previous snapshot's
DUPLICATE           same ``ts_event_ns`` as the previous snapshot and identical prices and
                    funding (same timestamp, different values is a legitimate second update)
IMPLAUSIBLE_MOVE    mark / previous mark outside ``[1/r, r]``, ``r = max_mark_move_ratio``,
                    when the previous snapshot was received less than ``mark_move_window_s``
                    earlier
==================  =================================================================

The two plausibility bounds (off unless given; the daemon passes its ``risk.*`` settings) are
the price's counterpart of the funding cap: a bad print far outside anything a market does is
bad data, not a gap for the circuit breaker to weigh. They are set wide on purpose. The worst
recorded BitMEX XBTUSD minute, 12 March 2020, moved the price by a factor 1.21 within 60 s
and 1.36 within 300 s, and a real crash moves the index with the mark; a move beyond those
bounds is rejected while the snapshot it is judged against is recent. Past the window the
bound no longer applies, so a level that persists is never shut out for good: the breaker and
its confirmation of the jump (:mod:`scaler.domain.breaker`) decide what it may be traded on.

Account snapshot checks (decisions written down here because the brief left them open):

- Every number must be finite, and so must the equity (wallet + unrealised PnL, which can
  overflow even when both parts are finite): ``NON_FINITE``.
- A **negative wallet balance or equity is accepted**. It is a real state (losses beyond the
  collateral before an insurance-fund or venue top-up) and the risk layer must see it to cut the
  target to zero; rejecting it would freeze the position at the worst possible moment.
- ``maintenance_margin_coin < 0``: ``NEGATIVE_AMOUNT`` (a negative requirement would make the
  margin ratio look infinitely safe).
- ``entry_price``: ``None`` or ``> 0``; ``0`` is accepted only for a flat position, where several
  venues send it. ``liquidation_price``: ``None`` or ``>= 0``, where ``0`` means "none" as Binance
  and others send it; negative is ``NON_POSITIVE_PRICE``.
- ``ts_ns`` older than the previous snapshot's: ``OUT_OF_ORDER``. An account snapshot is a level,
  not an event: the same timestamp again (a repeated REST poll) is accepted, never ``DUPLICATE``.
"""

from __future__ import annotations

import enum
import math

from scaler.domain.types import NS_PER_S, AccountSnapshot, MarketSnapshot


class BadInput(enum.StrEnum):
    """Why a snapshot was rejected; bounded, so it can be a metric label value."""

    NON_FINITE = "non_finite"
    NON_POSITIVE_PRICE = "non_positive_price"
    NEGATIVE_AMOUNT = "negative_amount"
    CROSSED_BOOK = "crossed_book"
    ABSURD_FUNDING = "absurd_funding"
    BAD_INTERVAL = "bad_interval"
    OUT_OF_ORDER = "out_of_order"
    DUPLICATE = "duplicate"
    WRONG_INSTRUMENT = "wrong_instrument"
    IMPLAUSIBLE_INDEX = "implausible_index"
    IMPLAUSIBLE_MOVE = "implausible_move"


_isfinite = math.isfinite


def validate_market(
    snapshot: MarketSnapshot,
    previous: MarketSnapshot | None,
    max_abs_funding_rate: float,
    *,
    max_mark_index_ratio: float = math.inf,
    max_mark_move_ratio: float = math.inf,
    mark_move_window_s: float = 0.0,
) -> BadInput | None:
    """The first reason ``snapshot`` must be rejected, or ``None`` if it may be used.

    ``previous`` is the last snapshot accepted for the same instrument (``None`` for the first).
    ``max_abs_funding_rate`` caps ``|rate|`` per the snapshot's own interval; it must be ``> 0``
    (``inf`` disables the check), else ``ValueError``. The plausibility ratios must be ``> 1``
    (``inf``, the default, disables each) and the window ``>= 0``, else ``ValueError``.
    """
    if math.isnan(max_abs_funding_rate) or max_abs_funding_rate <= 0.0:
        raise ValueError(f"max_abs_funding_rate must be > 0, got {max_abs_funding_rate!r}")
    if not (max_mark_index_ratio > 1.0 and max_mark_move_ratio > 1.0 and mark_move_window_s >= 0):
        raise ValueError(
            "plausibility bounds: ratios must be > 1 and the window >= 0, got "
            f"{max_mark_index_ratio!r}, {max_mark_move_ratio!r}, {mark_move_window_s!r}"
        )
    bad = _market_values(snapshot, max_abs_funding_rate)
    if bad is None and not _within(snapshot.mark_price, snapshot.index_price, max_mark_index_ratio):
        bad = BadInput.IMPLAUSIBLE_INDEX
    if bad is not None or previous is None:
        return bad
    bad = _market_sequence(snapshot, previous)
    if (
        bad is None
        and snapshot.ts_recv_ns - previous.ts_recv_ns < mark_move_window_s * NS_PER_S
        and not _within(snapshot.mark_price, previous.mark_price, max_mark_move_ratio)
    ):
        return BadInput.IMPLAUSIBLE_MOVE
    return bad


def _within(price: float, reference: float, max_ratio: float) -> bool:
    """``price / reference`` in ``[1 / max_ratio, max_ratio]``; prices are positive here."""
    return reference <= price * max_ratio and price <= reference * max_ratio


def _market_values(snapshot: MarketSnapshot, max_abs_funding_rate: float) -> BadInput | None:
    mark, index = snapshot.mark_price, snapshot.index_price
    bid, ask = snapshot.best_bid, snapshot.best_ask
    rate, predicted = snapshot.funding_rate, snapshot.predicted_funding_rate
    interval_s = snapshot.funding_interval_s
    if not (
        _isfinite(mark)
        and _isfinite(index)
        and _isfinite(bid)
        and _isfinite(ask)
        and _isfinite(rate)
        and _isfinite(interval_s)
        and (predicted is None or _isfinite(predicted))
    ):
        return BadInput.NON_FINITE
    if mark <= 0.0 or index <= 0.0 or bid <= 0.0 or ask <= 0.0:
        return BadInput.NON_POSITIVE_PRICE
    bad_level = _book_levels(snapshot.bids) or _book_levels(snapshot.asks)
    if bad_level is not None:
        return bad_level
    if bid > ask:
        return BadInput.CROSSED_BOOK
    if abs(rate) > max_abs_funding_rate or (
        predicted is not None and abs(predicted) > max_abs_funding_rate
    ):
        return BadInput.ABSURD_FUNDING
    if interval_s <= 0.0:
        return BadInput.BAD_INTERVAL
    return None


def _book_levels(levels: tuple[tuple[float, float], ...]) -> BadInput | None:
    for price, size_usd in levels:
        if not (_isfinite(price) and _isfinite(size_usd)):
            return BadInput.NON_FINITE
        if price <= 0.0:
            return BadInput.NON_POSITIVE_PRICE
        if size_usd < 0.0:
            return BadInput.NEGATIVE_AMOUNT
    return None


def _market_sequence(snapshot: MarketSnapshot, previous: MarketSnapshot) -> BadInput | None:
    if snapshot.key != previous.key:
        return BadInput.WRONG_INSTRUMENT
    if snapshot.ts_event_ns < previous.ts_event_ns:
        return BadInput.OUT_OF_ORDER
    if snapshot.ts_event_ns == previous.ts_event_ns and _same_values(snapshot, previous):
        return BadInput.DUPLICATE
    return None


def _same_values(a: MarketSnapshot, b: MarketSnapshot) -> bool:
    return (
        a.mark_price == b.mark_price
        and a.index_price == b.index_price
        and a.best_bid == b.best_bid
        and a.best_ask == b.best_ask
        and a.funding_rate == b.funding_rate
        and a.predicted_funding_rate == b.predicted_funding_rate
        and a.ts_funding_ns == b.ts_funding_ns
    )


def validate_account(
    snapshot: AccountSnapshot, previous: AccountSnapshot | None
) -> BadInput | None:
    """The first reason an account snapshot must be rejected, or ``None`` if it may be used.

    ``previous`` is the last snapshot accepted for the same account. See the module docstring
    for what is accepted (a negative balance is).
    """
    bad = _account_values(snapshot)
    if bad is not None or previous is None:
        return bad
    if snapshot.ts_ns < previous.ts_ns:
        return BadInput.OUT_OF_ORDER
    return None


def _account_values(snapshot: AccountSnapshot) -> BadInput | None:
    entry, mm_coin, liq = (
        snapshot.entry_price,
        snapshot.maintenance_margin_coin,
        snapshot.liquidation_price,
    )
    if not (
        _isfinite(snapshot.wallet_balance_coin)
        and _isfinite(snapshot.unrealised_pnl_coin)
        and _isfinite(snapshot.equity_coin)
        and _isfinite(snapshot.position_usd)
        and (entry is None or _isfinite(entry))
        and (mm_coin is None or _isfinite(mm_coin))
        and (liq is None or _isfinite(liq))
    ):
        return BadInput.NON_FINITE
    if entry is not None and (entry < 0.0 or (entry == 0.0 and snapshot.position_usd != 0.0)):
        return BadInput.NON_POSITIVE_PRICE
    if liq is not None and liq < 0.0:
        return BadInput.NON_POSITIVE_PRICE
    if mm_coin is not None and mm_coin < 0.0:
        return BadInput.NEGATIVE_AMOUNT
    return None
