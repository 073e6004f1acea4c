"""Order planning: turn "allowed target − current position" into orders (DESIGN.md section 5).

Sizes are signed USD notionals (``+`` long, ``-`` short); order amounts are positive whole lots
of ``lot_size_usd`` with the side carrying the direction. One call of ``plan_orders``:

1. Looks only at **own live orders**: same instrument, not terminal (``INTENDED`` counts, its
   outcome is unknown), something left to fill, and a client id carrying our prefix. Foreign
   orders are neither counted nor cancelled.
2. Works toward the **reachable target**: the allowed target, or in ``reduce_only_mode`` the
   allowed target clamped into ``[0, current]`` (toward zero, never past it), so no order and no
   kept open order can increase exposure.
3. **Cancels** own orders that are stale (age ``>= order_ttl_s``), point away from the reachable
   target, or no longer fit in the remaining gap (kept orders are taken oldest first). The age is
   measured from ``OrderUpdate.ts_ns`` read as the order's **creation time** (what ccxt calls the
   order ``timestamp``; for ``INTENDED`` orders, the time the intent was journaled). The tracker
   must keep it there rather than the time of the last report, or partial fills would keep an
   order alive forever.
4. Counts the **kept** orders' remaining amounts as pending (``pending_delta_usd``), so nothing is
   ordered twice. A cancel is not assumed to succeed: a same-direction order being cancelled may
   still fill, so its remaining amount is held back from new orders until a later plan sees the
   cancel confirmed (a stale order is therefore replaced one plan later, never in the same one).
   Opposite-direction orders being cancelled hold nothing back: their fills move the position
   away from the target.
5. Orders ``delta = reachable target − (current + pending) − held back``, in whole lots rounded
   toward zero as ``sizing.round_to_lots`` does (the lot count is nudged by a relative
   ``LOT_ROUNDING_REL_TOL`` first, so 2.9999999999999996 lots of float noise stay 3 lots; an
   amount can exceed its bound by at most that relative 1e-9), nothing when ``|delta|`` is
   under one lot. A delta that crosses zero becomes a reduce-only close of the
   (projected) position and a separate opening order. Any order that only reduces ``|position|``
   is reduce-only.
6. Slices: each order at most ``max_slice_usd``; marketable orders together at most the book
   depth within ``max_slippage_bps`` of the touch (``depth_within_usd``; a depth under one lot
   means no order this time); at most ``max_orders_per_plan`` orders. Passive (post-only) orders
   take no liquidity, so the book depth does not bound them.

``residual_usd = allowed_target − (current + pending + Σ planned)``: whatever is left for later
plans (sub-lot remainder, slice, depth and order-count limits, amounts held back behind cancels,
and the increase ``reduce_only_mode`` forbids). Its sign never differs from that of
``allowed_target − current`` (beyond the relative 1e-9 of the lot rounding).

Example, Deribit (10 USD lots, tick 0.5), flat, target 157 USD, best ask 60,000, 20 bps::

    Plan(cancels=(), orders=(OrderRequest(side=BUY, amount_usd=150.0, limit_price=60120.0,
         reduce_only=False, post_only=False, client_order_id="scl-000000000000", ...),),
         next_seq=1, pending_delta_usd=0.0, residual_usd=7.0)
"""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from scaler.domain.guards import require_finite, require_positive
from scaler.domain.orders import OrderRequest, OrderSide, OrderType, OrderUpdate
from scaler.domain.sizing import LOT_ROUNDING_REL_TOL
from scaler.domain.types import NS_PER_S, InstrumentKey, MarketSnapshot

CLIENT_ID_SEQ_DIGITS = 12
MAX_CLIENT_ID_SEQ = 10**CLIENT_ID_SEQ_DIGITS - 1
"""Largest sequence number a client order id can carry."""
CLIENT_ID_PREFIX_MAX_LEN = 16
_PREFIX_RE = re.compile(rf"[A-Za-z0-9_]{{1,{CLIENT_ID_PREFIX_MAX_LEN}}}")
_BPS_PER_UNIT = 10_000.0
_TICK_ROUNDING_TOL = 1e-9
"""In ticks: a bound a hair off a tick (60120.00000000001) still rounds to that tick."""
_DEPTH_PRICE_REL_TOL = 1e-12
"""Relative: a level priced exactly at the slippage bound counts despite float noise."""


class ExecutionStyle(enum.StrEnum):
    """How the planner prices its limit orders."""

    MARKETABLE = "marketable"
    """Limit at the protection price: takes liquidity up to ``max_slippage_bps`` past the touch."""
    PASSIVE = "passive"
    """Post-only limit at the own-side touch: buy at the best bid, sell at the best ask."""


def _require_int(name: str, value: int, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


def _require_slippage_bps(value: float) -> None:
    require_finite("max_slippage_bps", value)
    if not 0.0 <= value < _BPS_PER_UNIT:
        raise ValueError(f"max_slippage_bps must be in [0, 10000), got {value!r}")


def _require_prefix(prefix: str) -> None:
    if not isinstance(prefix, str) or _PREFIX_RE.fullmatch(prefix) is None:
        raise ValueError(
            f"client id prefix must be 1-{CLIENT_ID_PREFIX_MAX_LEN} characters of "
            f"[A-Za-z0-9_], got {prefix!r}"
        )


@dataclass(frozen=True, slots=True)
class PlanningConfig:
    """Execution policy for one instrument.

    ``lot_size_usd`` is the venue's USD face value per contract (Deribit 10, Bybit 1, OKX 100);
    ``tick_size`` its price increment. ``client_id_prefix`` identifies this daemon instance's
    orders at the venue (Deribit: the ``label`` field, up to 64 characters).
    """

    lot_size_usd: float
    tick_size: float
    max_slice_usd: float = 50_000.0
    max_slippage_bps: float = 20.0
    max_orders_per_plan: int = 1
    order_ttl_s: float = 10.0
    style: ExecutionStyle = ExecutionStyle.MARKETABLE
    client_id_prefix: str = "scl"

    def __post_init__(self) -> None:
        require_positive("lot_size_usd", self.lot_size_usd)
        require_positive("tick_size", self.tick_size)
        require_positive("max_slice_usd", self.max_slice_usd)
        if self.max_slice_usd < self.lot_size_usd:
            raise ValueError(
                f"max_slice_usd {self.max_slice_usd!r} is below one lot ({self.lot_size_usd!r})"
            )
        _require_slippage_bps(self.max_slippage_bps)
        _require_int("max_orders_per_plan", self.max_orders_per_plan, 1)
        require_positive("order_ttl_s", self.order_ttl_s)
        object.__setattr__(self, "style", ExecutionStyle(self.style))
        _require_prefix(self.client_id_prefix)

    @property
    def order_ttl_ns(self) -> int:
        return round(self.order_ttl_s * NS_PER_S)


@dataclass(frozen=True, slots=True)
class Plan:
    """What to do now: cancel these own orders (client ids), then send these orders.

    ``next_seq`` is the sequence number for the next client id; ``pending_delta_usd`` the signed
    remaining amount of the own orders kept open; ``residual_usd`` what this plan leaves undone
    (see the module docstring).
    """

    cancels: tuple[str, ...]
    orders: tuple[OrderRequest, ...]
    next_seq: int
    pending_delta_usd: float
    residual_usd: float


def client_order_id(prefix: str, seq: int) -> str:
    """The deterministic client order id for ``seq``: ``f"{prefix}-{seq:012d}"``."""
    _require_prefix(prefix)
    _require_int("seq", seq, 0)
    if seq > MAX_CLIENT_ID_SEQ:
        raise ValueError(f"seq must be <= {MAX_CLIENT_ID_SEQ}, got {seq!r}")
    return f"{prefix}-{seq:0{CLIENT_ID_SEQ_DIGITS}d}"


def parse_client_order_id(prefix: str, text: str) -> int | None:
    """The sequence number in ``text`` if ``client_order_id(prefix, seq)`` made it, else None."""
    _require_prefix(prefix)
    head, separator, digits = text.rpartition("-")
    if (
        not separator
        or head != prefix
        or len(digits) != CLIENT_ID_SEQ_DIGITS
        or not (digits.isascii() and digits.isdigit())
    ):
        return None
    return int(digits)


def _slippage_bound(side: OrderSide, touch_price: float, max_slippage_bps: float) -> float:
    return touch_price * (_BPS_PER_UNIT + side.sign * max_slippage_bps) / _BPS_PER_UNIT


def depth_within_usd(
    levels: tuple[tuple[float, float], ...],
    best_price: float,
    side: OrderSide,
    max_slippage_bps: float,
) -> float:
    """USD size a ``side`` order can take within ``max_slippage_bps`` of the touch.

    ``levels`` are the opposite side's ``(price, size_usd)`` (asks for a buy, bids for a sell),
    best first, and ``best_price`` that side's touch. ``inf`` when there are no levels: the venue
    gives no book, and only ``max_slice_usd`` bounds a slice.
    """
    require_positive("best_price", best_price)
    _require_slippage_bps(max_slippage_bps)
    if not levels:
        return math.inf
    bound = _slippage_bound(side, best_price, max_slippage_bps)
    total_usd = 0.0
    for price, size_usd in levels:
        require_positive("level price", price)
        require_finite("level size_usd", size_usd)
        if size_usd < 0:
            raise ValueError(f"level size_usd must be >= 0, got {size_usd!r}")
        if side is OrderSide.BUY:
            within = price <= bound * (1.0 + _DEPTH_PRICE_REL_TOL)
        else:
            within = price >= bound * (1.0 - _DEPTH_PRICE_REL_TOL)
        if within:
            total_usd += size_usd
    return total_usd


def _touch(side: OrderSide, market: MarketSnapshot) -> float:
    """The opposite side's best price: what a ``side`` order would trade against."""
    price = market.best_ask if side is OrderSide.BUY else market.best_bid
    require_positive("best_ask" if side is OrderSide.BUY else "best_bid", price)
    return price


def protection_price(
    side: OrderSide, market: MarketSnapshot, max_slippage_bps: float, tick_size: float
) -> float:
    """Limit price of a marketable order: never worse than ``max_slippage_bps`` past the touch.

    Buy: ``best_ask * (1 + bps/1e4)`` rounded down to a tick; sell: ``best_bid * (1 - bps/1e4)``
    rounded up to a tick.
    """
    _require_slippage_bps(max_slippage_bps)
    require_positive("tick_size", tick_size)
    ticks = _slippage_bound(side, _touch(side, market), max_slippage_bps) / tick_size
    if side is OrderSide.BUY:
        whole_ticks = math.floor(ticks + _TICK_ROUNDING_TOL)
    else:
        whole_ticks = max(1, math.ceil(ticks - _TICK_ROUNDING_TOL))
    return whole_ticks * tick_size


def _limit_price(side: OrderSide, market: MarketSnapshot, config: PlanningConfig) -> float:
    if config.style is ExecutionStyle.MARKETABLE:
        return protection_price(side, market, config.max_slippage_bps, config.tick_size)
    price = market.best_bid if side is OrderSide.BUY else market.best_ask
    require_positive("best_bid" if side is OrderSide.BUY else "best_ask", price)
    return price


def _whole_lots(size_usd: float, lot_size_usd: float) -> int:
    """Whole lots in a non-negative ``size_usd``, toward zero, with sizing's lot tolerance."""
    return max(0, math.floor(size_usd / lot_size_usd * (1.0 + LOT_ROUNDING_REL_TOL)))


def _reachable_target_usd(target_usd: float, current_usd: float, reduce_only_mode: bool) -> float:
    if not reduce_only_mode:
        return target_usd
    if current_usd > 0:
        return min(max(target_usd, 0.0), current_usd)
    if current_usd < 0:
        return max(min(target_usd, 0.0), current_usd)
    return 0.0


def _is_own_live(order: OrderUpdate, key: InstrumentKey, prefix: str) -> bool:
    return (
        order.key == key
        and not order.status.is_terminal
        and order.remaining_usd > 0
        and parse_client_order_id(prefix, order.client_order_id) is not None
    )


@dataclass(frozen=True, slots=True)
class _Review:
    cancels: tuple[str, ...]
    pending_usd: float
    """Signed remaining amount of the kept orders."""
    held_back_usd: float
    """Unsigned remaining amount of cancelled orders pointing toward the target."""


def _review_open_orders(
    own_orders: Sequence[OrderUpdate], gap_usd: float, now_ns: int, ttl_ns: int
) -> _Review:
    """Keep fresh orders toward the target while they fit in ``|gap_usd|``, oldest first."""
    room_usd = abs(gap_usd)
    cancels: list[str] = []
    pending_usd = 0.0
    held_back_usd = 0.0
    for order in sorted(own_orders, key=lambda o: (o.ts_ns, o.client_order_id)):
        remaining_usd = order.remaining_usd
        toward_target = order.side.sign * gap_usd > 0
        fresh = now_ns - order.ts_ns < ttl_ns
        if toward_target and fresh and remaining_usd <= room_usd:
            room_usd -= remaining_usd
            pending_usd += order.side.sign * remaining_usd
            continue
        cancels.append(order.client_order_id)
        if toward_target:
            held_back_usd += remaining_usd
    return _Review(tuple(cancels), pending_usd, held_back_usd)


@dataclass(frozen=True, slots=True)
class _Leg:
    side: OrderSide
    lots: int
    reduce_only: bool


def _legs(projected_usd: float, delta_usd: float, lot_size_usd: float) -> list[_Leg]:
    """Split ``delta_usd`` into a reduce-only close of ``projected_usd`` and an opening rest.

    In ``reduce_only_mode`` the reachable target lies between the position and zero, so
    ``delta_usd`` never crosses zero and no opening leg arises.
    """
    total_lots = _whole_lots(abs(delta_usd), lot_size_usd)
    if total_lots == 0:
        return []
    side = OrderSide.for_delta(delta_usd)
    if projected_usd * delta_usd >= 0:
        return [_Leg(side, total_lots, reduce_only=False)]
    close_lots = min(total_lots, _whole_lots(abs(projected_usd), lot_size_usd))
    open_lots = total_lots - close_lots
    legs = [_Leg(side, close_lots, reduce_only=True)] if close_lots else []
    if open_lots:
        legs.append(_Leg(side, open_lots, reduce_only=False))
    return legs


def _depth_lots(side: OrderSide, market: MarketSnapshot, config: PlanningConfig) -> int | None:
    """Lots the book absorbs within the slippage bound; None when nothing bounds them."""
    if config.style is ExecutionStyle.PASSIVE:
        return None
    levels = market.asks if side is OrderSide.BUY else market.bids
    depth_usd = depth_within_usd(levels, _touch(side, market), side, config.max_slippage_bps)
    return None if math.isinf(depth_usd) else _whole_lots(depth_usd, config.lot_size_usd)


def _slices(
    legs: Sequence[_Leg], config: PlanningConfig, depth_lots: int | None
) -> list[tuple[int, bool]]:
    """``(lots, reduce_only)`` per order, within the slice, depth and order-count limits."""
    slice_lots = _whole_lots(config.max_slice_usd, config.lot_size_usd)
    budget_lots = depth_lots
    slices: list[tuple[int, bool]] = []
    for leg in legs:
        remaining_lots = leg.lots
        while remaining_lots > 0 and len(slices) < config.max_orders_per_plan:
            lots = min(remaining_lots, slice_lots)
            if budget_lots is not None:
                lots = min(lots, budget_lots)
                budget_lots -= lots
            if lots == 0:
                return slices
            slices.append((lots, leg.reduce_only))
            remaining_lots -= lots
    return slices


def _orders(
    legs: Sequence[_Leg],
    market: MarketSnapshot,
    config: PlanningConfig,
    now_ns: int,
    next_seq: int,
) -> tuple[OrderRequest, ...]:
    if not legs:
        return ()
    side = legs[0].side
    slices = _slices(legs, config, _depth_lots(side, market, config))
    if not slices:
        return ()
    limit_price = _limit_price(side, market, config)
    return tuple(
        OrderRequest(
            key=market.key,
            client_order_id=client_order_id(config.client_id_prefix, next_seq + index),
            side=side,
            amount_usd=lots * config.lot_size_usd,
            order_type=OrderType.LIMIT,
            limit_price=limit_price,
            reduce_only=reduce_only,
            post_only=config.style is ExecutionStyle.PASSIVE,
            ts_created_ns=now_ns,
        )
        for index, (lots, reduce_only) in enumerate(slices)
    )


def plan_orders(
    market: MarketSnapshot,
    allowed_target_usd: float,
    current_position_usd: float,
    open_orders: Sequence[OrderUpdate],
    config: PlanningConfig,
    now_ns: int,
    next_seq: int,
    reduce_only_mode: bool,
) -> Plan:
    """Cancels and orders that move ``current_position_usd`` toward ``allowed_target_usd``.

    ``open_orders`` may hold anything the venue reports; only own live orders for
    ``market.key`` are considered (module docstring). Client ids run from ``next_seq`` upward.
    """
    require_finite("allowed_target_usd", allowed_target_usd)
    require_finite("current_position_usd", current_position_usd)
    _require_int("now_ns", now_ns, 0)
    _require_int("next_seq", next_seq, 0)
    target_usd = _reachable_target_usd(allowed_target_usd, current_position_usd, reduce_only_mode)
    gap_usd = target_usd - current_position_usd
    own_orders = [o for o in open_orders if _is_own_live(o, market.key, config.client_id_prefix)]
    review = _review_open_orders(own_orders, gap_usd, now_ns, config.order_ttl_ns)
    room_usd = max(0.0, abs(gap_usd) - abs(review.pending_usd) - review.held_back_usd)
    projected_usd = current_position_usd + review.pending_usd
    legs = _legs(projected_usd, math.copysign(room_usd, gap_usd), config.lot_size_usd)
    orders = _orders(legs, market, config, now_ns, next_seq)
    planned_usd = math.fsum(order.side.sign * order.amount_usd for order in orders)
    return Plan(
        cancels=review.cancels,
        orders=orders,
        next_seq=next_seq + len(orders),
        pending_delta_usd=review.pending_usd,
        residual_usd=allowed_target_usd - (projected_usd + planned_usd),
    )
