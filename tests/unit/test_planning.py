"""Unit tests for order planning (scaler.domain.planning)."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scaler.domain.orders import OrderRequest, OrderSide, OrderStatus, OrderType, OrderUpdate
from scaler.domain.planning import (
    MAX_CLIENT_ID_SEQ,
    ExecutionStyle,
    Plan,
    PlanningConfig,
    client_order_id,
    depth_within_usd,
    parse_client_order_id,
    plan_orders,
    protection_price,
)
from scaler.domain.types import NS_PER_S, InstrumentKey, MarketSnapshot

pytestmark = pytest.mark.unit

KEY = InstrumentKey("deribit", "BTC/USD:BTC")
OTHER_KEY = InstrumentKey("bybit", "BTC/USD:BTC")
T0_NS = 1_700_000_000 * NS_PER_S
# Deribit BTC-PERPETUAL: amounts in USD, 10 USD lots, 0.5 USD price tick.
DERIBIT = PlanningConfig(lot_size_usd=10.0, tick_size=0.5)
# 60,000 x (1 + 20 bps) = 60,120.0 exactly on a 0.5 tick.
BUY_PROTECTION = 60_120.0
# 59,999.5 x (1 - 20 bps) = 59,879.501 -> up to the tick 59,880.0.
SELL_PROTECTION = 59_880.0


def _market(
    best_bid: float = 59_999.5,
    best_ask: float = 60_000.0,
    bids: tuple[tuple[float, float], ...] = (),
    asks: tuple[tuple[float, float], ...] = (),
    key: InstrumentKey = KEY,
) -> MarketSnapshot:
    return MarketSnapshot(
        key=key,
        ts_event_ns=T0_NS,
        ts_recv_ns=T0_NS,
        mark_price=(best_bid + best_ask) / 2,
        index_price=(best_bid + best_ask) / 2,
        best_bid=best_bid,
        best_ask=best_ask,
        funding_rate=0.0001,
        funding_interval_s=28_800.0,
        ts_funding_ns=T0_NS,
        bids=bids,
        asks=asks,
    )


def _open(
    seq: int,
    side: OrderSide,
    amount_usd: float,
    *,
    age_s: float = 1.0,
    filled_usd: float = 0.0,
    prefix: str = "scl",
    status: OrderStatus = OrderStatus.OPEN,
    key: InstrumentKey = KEY,
) -> OrderUpdate:
    return OrderUpdate(
        key=key,
        client_order_id=client_order_id(prefix, seq),
        venue_order_id=f"v{seq}",
        status=status,
        side=side,
        amount_usd=amount_usd,
        filled_usd=filled_usd,
        average_fill_price=None,
        ts_ns=T0_NS - round(age_s * NS_PER_S),
    )


def _plan(
    target_usd: float,
    current_usd: float = 0.0,
    open_orders: tuple[OrderUpdate, ...] = (),
    config: PlanningConfig = DERIBIT,
    market: MarketSnapshot | None = None,
    next_seq: int = 0,
    reduce_only_mode: bool = False,
) -> Plan:
    return plan_orders(
        market=market if market is not None else _market(),
        allowed_target_usd=target_usd,
        current_position_usd=current_usd,
        open_orders=open_orders,
        config=config,
        now_ns=T0_NS,
        next_seq=next_seq,
        reduce_only_mode=reduce_only_mode,
    )


def _summary(plan: Plan) -> list[tuple[OrderSide, float, bool]]:
    return [(o.side, o.amount_usd, o.reduce_only) for o in plan.orders]


def _config(**overrides: Any) -> PlanningConfig:
    return PlanningConfig(**{"lot_size_usd": 10.0, "tick_size": 0.5, **overrides})


# --- configuration ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "overrides",
    [
        {"lot_size_usd": 0.0},
        {"lot_size_usd": math.nan},
        {"tick_size": -0.5},
        {"max_slice_usd": 5.0},
        {"max_slice_usd": math.inf},
        {"max_slippage_bps": -1.0},
        {"max_slippage_bps": 10_000.0},
        {"max_orders_per_plan": 0},
        {"max_orders_per_plan": True},
        {"order_ttl_s": 0.0},
        {"style": "aggressive"},
        {"client_id_prefix": ""},
        {"client_id_prefix": "a" * 17},
        {"client_id_prefix": "scl-1"},
        {"client_id_prefix": "scl 1"},
        {"client_id_prefix": "sclé"},
    ],
    ids=repr,
)
def test_planning_config_when_invalid_then_value_error(overrides: dict[str, Any]) -> None:
    """Every invalid setting is refused at construction."""
    with pytest.raises(ValueError):  # noqa: PT011 - the message varies by field
        _config(**overrides)


def test_planning_config_when_style_given_as_text_then_stored_as_enum() -> None:
    """A style read from settings text becomes the enum member, prefix of 16 chars is accepted."""
    config = _config(style="passive", client_id_prefix="A_b9" * 4)
    assert config.style is ExecutionStyle.PASSIVE
    assert config.order_ttl_ns == 10 * NS_PER_S


# --- client order ids ------------------------------------------------------------------------


@pytest.mark.parametrize("seq", [0, 1, 42, 999_999, MAX_CLIENT_ID_SEQ])
def test_client_order_id_when_parsed_with_own_prefix_then_round_trips(seq: int) -> None:
    """An id we made parses back to its sequence number."""
    text = client_order_id("scl_7", seq)
    assert parse_client_order_id("scl_7", text) == seq


def test_client_order_id_when_formatted_then_fixed_width() -> None:
    """The id is the prefix, a dash and twelve digits."""
    assert client_order_id("scl", 42) == "scl-000000000042"


@pytest.mark.parametrize(
    "text",
    [
        "other-000000000042",  # another instance
        "sc-000000000042",  # our prefix is not a prefix of theirs ...
        "scl2-000000000042",  # ... nor theirs of ours
        "SCL-000000000042",  # case matters
        "scl-42",  # not fixed width
        "scl-0000000000042",  # thirteen digits
        "scl-00000000004x",
        "scl-٠٠٠٠٠٠٠٠٠٠٤٢",  # Arabic-Indic digits are digits to str.isdigit
        "scl000000000042",
        "scl--00000000042",
        "",
        "6f9619ff-8b86-d011-b42d-00c04fc964ff",
    ],
)
def test_parse_client_order_id_when_foreign_then_none(text: str) -> None:
    """Ids that our prefix did not make are not ours."""
    assert parse_client_order_id("scl", text) is None


@pytest.mark.parametrize("seq", [-1, MAX_CLIENT_ID_SEQ + 1, True])
def test_client_order_id_when_seq_out_of_range_then_value_error(seq: int) -> None:
    """A sequence number that does not fit in twelve digits is refused."""
    with pytest.raises(ValueError, match="seq"):
        client_order_id("scl", seq)


def test_parse_client_order_id_when_prefix_invalid_then_value_error() -> None:
    """Parsing with a prefix we could never have issued is a programming error."""
    with pytest.raises(ValueError, match="prefix"):
        parse_client_order_id("s-l", "s-l-000000000001")


# --- book depth and prices -------------------------------------------------------------------

# Bound for a buy at best ask 60,000 with 20 bps: 60,120. Two of three levels are inside.
ASKS = ((60_000.0, 30_000.0), (60_100.0, 20_000.0), (60_150.0, 40_000.0))
# Bound for a sell at best bid 60,000 with 20 bps: 59,880.
BIDS = ((60_000.0, 10_000.0), (59_900.0, 5_000.0), (59_870.0, 7_000.0))


def test_depth_within_usd_when_two_of_three_asks_within_bound_then_their_sum() -> None:
    """A buy counts asks up to best ask + 20 bps: 30,000 + 20,000."""
    assert depth_within_usd(ASKS, 60_000.0, OrderSide.BUY, 20.0) == 50_000.0


def test_depth_within_usd_when_two_of_three_bids_within_bound_then_their_sum() -> None:
    """A sell counts bids down to best bid - 20 bps: 10,000 + 5,000."""
    assert depth_within_usd(BIDS, 60_000.0, OrderSide.SELL, 20.0) == 15_000.0


def test_depth_within_usd_when_level_exactly_at_bound_then_counted() -> None:
    """A level priced exactly at the slippage bound is within it."""
    asks = ((60_000.0, 1_000.0), (60_120.0, 2_000.0), (60_120.5, 4_000.0))
    assert depth_within_usd(asks, 60_000.0, OrderSide.BUY, 20.0) == 3_000.0


def test_depth_within_usd_when_no_levels_then_infinite() -> None:
    """A snapshot without a book does not bound the slice."""
    assert depth_within_usd((), 60_000.0, OrderSide.BUY, 20.0) == math.inf


@pytest.mark.parametrize(
    "levels", [((0.0, 10.0),), ((60_000.0, -1.0),), ((60_000.0, math.nan),)], ids=repr
)
def test_depth_within_usd_when_level_invalid_then_value_error(
    levels: tuple[tuple[float, float], ...],
) -> None:
    """Non-positive prices and negative or NaN sizes are refused."""
    with pytest.raises(ValueError, match="level"):
        depth_within_usd(levels, 60_000.0, OrderSide.BUY, 20.0)


@pytest.mark.parametrize(
    ("side", "best_bid", "best_ask", "expected"),
    [
        # 60,000.5 x 1.002 = 60,120.501 -> down to the tick 60,120.5
        (OrderSide.BUY, 59_999.5, 60_000.5, 60_120.5),
        # 60,000 x 1.002 = 60,120 exactly: stays, even with float noise
        (OrderSide.BUY, 59_999.5, 60_000.0, 60_120.0),
        # 59,999.5 x 0.998 = 59,879.501 -> up to the tick 59,880.0
        (OrderSide.SELL, 59_999.5, 60_000.0, 59_880.0),
        # 60,000 x 0.998 = 59,880 exactly
        (OrderSide.SELL, 60_000.0, 60_000.5, 59_880.0),
        # 41,234.5 x 1.002 = 41,316.969 -> 41,316.5
        (OrderSide.BUY, 41_234.0, 41_234.5, 41_316.5),
        # 41,234.0 x 0.998 = 41,151.532 -> 41,152.0
        (OrderSide.SELL, 41_234.0, 41_234.5, 41_152.0),
    ],
)
def test_protection_price_when_tick_half_dollar_then_rounded_inside_bound(
    side: OrderSide, best_bid: float, best_ask: float, expected: float
) -> None:
    """Buy rounds down and sell rounds up to the 0.5 tick: never worse than the bound."""
    market = _market(best_bid=best_bid, best_ask=best_ask)
    assert protection_price(side, market, 20.0, 0.5) == expected


def test_protection_price_when_best_price_not_positive_then_value_error() -> None:
    """A snapshot without an ask cannot price a buy."""
    with pytest.raises(ValueError, match="best_ask"):
        protection_price(OrderSide.BUY, _market(best_ask=0.0), 20.0, 0.5)


# --- plan_orders: sizes ----------------------------------------------------------------------


def test_plan_orders_when_three_lots_short_then_one_marketable_buy() -> None:
    """Flat to 30 USD on Deribit: one buy of three 10 USD lots at the protection price."""
    plan = _plan(30.0, next_seq=7)
    assert plan == Plan(
        cancels=(),
        orders=(
            OrderRequest(
                key=KEY,
                client_order_id="scl-000000000007",
                side=OrderSide.BUY,
                amount_usd=30.0,
                order_type=OrderType.LIMIT,
                limit_price=BUY_PROTECTION,
                reduce_only=False,
                post_only=False,
                ts_created_ns=T0_NS,
            ),
        ),
        next_seq=8,
        pending_delta_usd=0.0,
        residual_usd=0.0,
    )


@pytest.mark.parametrize(
    ("target_usd", "side", "amount_usd", "residual_usd"),
    [(157.0, OrderSide.BUY, 150.0, 7.0), (-157.0, OrderSide.SELL, 150.0, -7.0)],
)
def test_plan_orders_when_delta_not_whole_lots_then_rounded_toward_zero(
    target_usd: float, side: OrderSide, amount_usd: float, residual_usd: float
) -> None:
    """A 157 USD delta with 10 USD lots orders 150; 7 USD stays as residual."""
    plan = _plan(target_usd)
    assert _summary(plan) == [(side, amount_usd, False)]
    assert plan.residual_usd == residual_usd


@pytest.mark.parametrize(
    ("lot_size_usd", "target_usd", "amount_usd"),
    [
        (0.1, 0.3, 0.1 * 3),  # 0.3 / 0.1 is 2.9999999999999996 in floats
        (10.0, 149_979.99999999997, 149_980.0),  # float noise a hair below a lot boundary
        (10.0, 149_979.99, 149_970.0),  # a real shortfall (1 cent) is still rounded down
    ],
)
def test_plan_orders_when_delta_a_hair_below_a_lot_then_lot_kept(
    lot_size_usd: float, target_usd: float, amount_usd: float
) -> None:
    """Lot rounding uses sizing's relative 1e-9 tolerance, so float noise does not drop a lot."""
    config = _config(lot_size_usd=lot_size_usd, max_slice_usd=1_000_000.0)
    (order,) = _plan(target_usd, config=config).orders
    assert order.amount_usd == amount_usd


def test_plan_orders_when_delta_below_one_lot_then_nothing() -> None:
    """A 9 USD delta is under one 10 USD lot: no order, no id consumed."""
    plan = _plan(1_009.0, current_usd=1_000.0, next_seq=3)
    assert plan.orders == ()
    assert plan.next_seq == 3
    assert plan.residual_usd == 9.0


def test_plan_orders_when_delta_above_max_slice_then_sliced() -> None:
    """2,500 USD with 1,000 USD slices: 1,000 + 1,000 + 500, consecutive ids."""
    config = _config(max_slice_usd=1_000.0, max_orders_per_plan=5)
    plan = _plan(2_500.0, config=config, next_seq=10)
    assert [o.amount_usd for o in plan.orders] == [1_000.0, 1_000.0, 500.0]
    assert [o.client_order_id for o in plan.orders] == [
        "scl-000000000010",
        "scl-000000000011",
        "scl-000000000012",
    ]
    assert plan.next_seq == 13
    assert plan.residual_usd == 0.0


def test_plan_orders_when_more_slices_than_max_orders_then_rest_is_residual() -> None:
    """Only max_orders_per_plan slices go out; the rest waits for later plans."""
    plan = _plan(2_500.0, config=_config(max_slice_usd=1_000.0))
    assert _summary(plan) == [(OrderSide.BUY, 1_000.0, False)]
    assert plan.residual_usd == 1_500.0


def test_plan_orders_when_book_thinner_than_delta_then_slice_bounded_by_depth() -> None:
    """Two of three ask levels lie within 20 bps: the buy takes their 50,000 USD only."""
    config = _config(max_slice_usd=100_000.0, max_orders_per_plan=3)
    plan = _plan(100_000.0, config=config, market=_market(asks=ASKS))
    assert _summary(plan) == [(OrderSide.BUY, 50_000.0, False)]
    assert plan.residual_usd == 50_000.0


def test_plan_orders_when_sell_side_depth_then_bids_bound_the_sell() -> None:
    """A sell is bounded by the bids within 20 bps of the best bid (15,000 USD)."""
    market = _market(best_bid=60_000.0, best_ask=60_000.5, bids=BIDS, asks=ASKS)
    plan = _plan(-40_000.0, market=market)
    assert _summary(plan) == [(OrderSide.SELL, 15_000.0, False)]


def test_plan_orders_when_depth_under_one_lot_then_no_order_and_residual() -> None:
    """5 USD of asks within the bound cannot take one 10 USD lot: nothing this time."""
    market = _market(asks=((60_000.0, 5.0), (60_500.0, 1_000_000.0)))
    plan = _plan(100.0, market=market, next_seq=4)
    assert plan.orders == ()
    assert plan.next_seq == 4
    assert plan.residual_usd == 100.0


def test_plan_orders_when_depth_not_whole_lots_then_rounded_down_to_lots() -> None:
    """25 USD of depth takes two lots."""
    plan = _plan(100.0, market=_market(asks=((60_000.0, 25.0),)))
    assert _summary(plan) == [(OrderSide.BUY, 20.0, False)]


# --- plan_orders: prices and style -----------------------------------------------------------


def test_plan_orders_when_selling_marketable_then_protection_below_best_bid() -> None:
    """A marketable sell is limited at best bid - 20 bps rounded up to the tick."""
    (order,) = _plan(-30.0).orders
    assert (order.order_type, order.limit_price, order.post_only) == (
        OrderType.LIMIT,
        SELL_PROTECTION,
        False,
    )


@pytest.mark.parametrize(
    ("target_usd", "side", "price"),
    [(30.0, OrderSide.BUY, 59_999.5), (-30.0, OrderSide.SELL, 60_000.0)],
)
def test_plan_orders_when_passive_then_post_only_at_own_touch(
    target_usd: float, side: OrderSide, price: float
) -> None:
    """Passive buys rest at the best bid and sells at the best ask, post-only."""
    (order,) = _plan(target_usd, config=_config(style=ExecutionStyle.PASSIVE)).orders
    assert (order.side, order.limit_price, order.post_only, order.order_type) == (
        side,
        price,
        True,
        OrderType.LIMIT,
    )


def test_plan_orders_when_passive_then_book_depth_does_not_bound() -> None:
    """A post-only order takes no liquidity, so the opposite book does not cap it."""
    config = _config(style=ExecutionStyle.PASSIVE, max_slice_usd=100_000.0)
    plan = _plan(100_000.0, config=config, market=_market(asks=ASKS))
    assert _summary(plan) == [(OrderSide.BUY, 100_000.0, False)]


# --- plan_orders: open orders ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("age_ns", "cancelled"),
    [
        (10 * NS_PER_S - 1, False),
        (10 * NS_PER_S, True),
        (10 * NS_PER_S + 1, True),
    ],
)
def test_plan_orders_when_open_order_age_around_ttl_then_cancelled_from_ttl_on(
    age_ns: int, cancelled: bool
) -> None:
    """An order is stale once its age (since creation) reaches order_ttl_s."""
    order = replace(_open(1, OrderSide.BUY, 30.0), ts_ns=T0_NS - age_ns)
    plan = _plan(30.0, open_orders=(order,))
    assert plan.cancels == ((order.client_order_id,) if cancelled else ())


def test_plan_orders_when_stale_order_cancelled_then_not_replaced_in_same_plan() -> None:
    """The stale order may still fill before the cancel lands, so its amount is held back."""
    stale = _open(1, OrderSide.BUY, 30.0, age_s=10.0)
    plan = _plan(50.0, open_orders=(stale,), next_seq=2)
    assert plan.cancels == (stale.client_order_id,)
    assert _summary(plan) == [(OrderSide.BUY, 20.0, False)]
    assert plan.pending_delta_usd == 0.0
    assert plan.residual_usd == 30.0


def test_plan_orders_when_open_order_opposes_delta_then_cancelled_and_delta_ordered() -> None:
    """An own sell while the target needs a buy is cancelled; the buy goes out in full."""
    sell = _open(1, OrderSide.SELL, 20.0)
    plan = _plan(30.0, open_orders=(sell,), next_seq=2)
    assert plan.cancels == (sell.client_order_id,)
    assert _summary(plan) == [(OrderSide.BUY, 30.0, False)]
    assert plan.pending_delta_usd == 0.0


def test_plan_orders_when_open_order_covers_part_then_only_the_rest_ordered() -> None:
    """An own open buy of 30 (10 filled, 20 left) counts toward a 50 USD target."""
    buy = _open(1, OrderSide.BUY, 30.0, filled_usd=10.0)
    plan = _plan(50.0, current_usd=10.0, open_orders=(buy,), next_seq=2)
    assert plan.cancels == ()
    assert _summary(plan) == [(OrderSide.BUY, 20.0, False)]
    assert plan.pending_delta_usd == 20.0
    assert plan.residual_usd == 0.0


def test_plan_orders_when_open_order_covers_all_then_no_duplicate() -> None:
    """An own open buy of the whole delta is kept and nothing new is ordered."""
    buy = _open(1, OrderSide.BUY, 30.0)
    plan = _plan(30.0, open_orders=(buy,), next_seq=2)
    assert (plan.cancels, plan.orders, plan.next_seq) == ((), (), 2)
    assert plan.pending_delta_usd == 30.0


def test_plan_orders_when_open_orders_exceed_gap_then_newest_cancelled() -> None:
    """Open buys of 30 + 30 against a 40 USD gap: the older stays, the newer is cancelled."""
    older = _open(1, OrderSide.BUY, 30.0, age_s=5.0)
    newer = _open(2, OrderSide.BUY, 30.0, age_s=1.0)
    plan = _plan(40.0, open_orders=(newer, older), next_seq=3)
    assert plan.cancels == (newer.client_order_id,)
    assert plan.pending_delta_usd == 30.0
    # The newer buy may still fill before its cancel: 30 + 30 already reach past 40.
    assert plan.orders == ()


@pytest.mark.parametrize(
    "order",
    [
        _open(1, OrderSide.BUY, 30.0, prefix="other"),
        _open(1, OrderSide.BUY, 30.0, key=OTHER_KEY),
        _open(1, OrderSide.BUY, 30.0, status=OrderStatus.CANCELLED),
        _open(1, OrderSide.SELL, 30.0, filled_usd=30.0, age_s=60.0),
        _open(1, OrderSide.SELL, 30.0, prefix="other", age_s=60.0),
    ],
    ids=["foreign", "other-instrument", "terminal", "fully-filled", "foreign-stale-opposite"],
)
def test_plan_orders_when_order_not_own_live_then_ignored(order: OrderUpdate) -> None:
    """Foreign, other-instrument and finished orders are neither counted nor cancelled."""
    plan = _plan(30.0, open_orders=(order,))
    assert plan.cancels == ()
    assert _summary(plan) == [(OrderSide.BUY, 30.0, False)]


def test_plan_orders_when_intended_order_then_counted_as_pending() -> None:
    """A journaled order whose outcome is unknown counts, so it is never sent twice."""
    intended = _open(1, OrderSide.BUY, 30.0, status=OrderStatus.INTENDED)
    plan = _plan(30.0, open_orders=(intended,))
    assert (plan.orders, plan.pending_delta_usd) == ((), 30.0)


# --- plan_orders: reduce-only ----------------------------------------------------------------


def test_plan_orders_when_reducing_long_then_reduce_only_sell() -> None:
    """Long 100 to 40: a reduce-only sell of 60."""
    plan = _plan(40.0, current_usd=100.0)
    assert _summary(plan) == [(OrderSide.SELL, 60.0, True)]


def test_plan_orders_when_increasing_then_not_reduce_only() -> None:
    """Long 100 to 150: a plain buy of 50."""
    assert _summary(_plan(150.0, current_usd=100.0)) == [(OrderSide.BUY, 50.0, False)]


def test_plan_orders_when_crossing_zero_then_reduce_only_close_and_separate_open() -> None:
    """Long 30 to short 50: a reduce-only sell of 30, then an opening sell of 50."""
    plan = _plan(-50.0, current_usd=30.0, config=_config(max_orders_per_plan=2), next_seq=5)
    assert _summary(plan) == [(OrderSide.SELL, 30.0, True), (OrderSide.SELL, 50.0, False)]
    assert [o.client_order_id for o in plan.orders] == ["scl-000000000005", "scl-000000000006"]
    assert plan.residual_usd == 0.0


def test_plan_orders_when_crossing_zero_with_one_order_then_close_first() -> None:
    """With one order per plan, the close goes first and the opening waits."""
    plan = _plan(-50.0, current_usd=30.0)
    assert _summary(plan) == [(OrderSide.SELL, 30.0, True)]
    assert plan.residual_usd == -50.0


def test_plan_orders_when_crossing_zero_with_slices_then_legs_sliced_separately() -> None:
    """Long 30 to short 50 in 20 USD slices: close 20 + 10, open 20 + 20 + 10."""
    config = _config(max_slice_usd=20.0, max_orders_per_plan=10)
    plan = _plan(-50.0, current_usd=30.0, config=config)
    assert _summary(plan) == [
        (OrderSide.SELL, 20.0, True),
        (OrderSide.SELL, 10.0, True),
        (OrderSide.SELL, 20.0, False),
        (OrderSide.SELL, 20.0, False),
        (OrderSide.SELL, 10.0, False),
    ]


def test_plan_orders_when_crossing_from_sub_lot_position_then_close_whole_lots_only() -> None:
    """Long 105 to short 100: close 100 reduce-only (never more than the position), open 100."""
    plan = _plan(-100.0, current_usd=105.0, config=_config(max_orders_per_plan=2))
    assert _summary(plan) == [(OrderSide.SELL, 100.0, True), (OrderSide.SELL, 100.0, False)]
    assert plan.residual_usd == -5.0


def test_plan_orders_when_pending_close_then_next_order_opens() -> None:
    """Long 100 with a kept sell of 100 pending, target short 50: the new sell opens."""
    close = _open(1, OrderSide.SELL, 100.0)
    plan = _plan(-50.0, current_usd=100.0, open_orders=(close,), next_seq=2)
    assert _summary(plan) == [(OrderSide.SELL, 50.0, False)]
    assert plan.pending_delta_usd == -100.0


@pytest.mark.parametrize(
    ("current_usd", "target_usd", "expected"),
    [
        (100.0, 200.0, []),  # increase refused
        (0.0, 50.0, []),  # opening refused
        (-50.0, -80.0, []),
        (100.0, -100.0, [(OrderSide.SELL, 100.0, True)]),  # close only, no opening
        (100.0, 40.0, [(OrderSide.SELL, 60.0, True)]),
        (-50.0, -20.0, [(OrderSide.BUY, 30.0, True)]),
    ],
)
def test_plan_orders_when_reduce_only_mode_then_never_increases_exposure(
    current_usd: float, target_usd: float, expected: list[tuple[OrderSide, float, bool]]
) -> None:
    """In reduce-only mode orders only move the position toward zero, never past it."""
    config = _config(max_orders_per_plan=3)
    plan = _plan(target_usd, current_usd=current_usd, config=config, reduce_only_mode=True)
    assert _summary(plan) == expected
    assert plan.residual_usd == target_usd - current_usd - sum(
        o.side.sign * o.amount_usd for o in plan.orders
    )


def test_plan_orders_when_reduce_only_mode_then_increasing_open_orders_cancelled() -> None:
    """Long 100, target 200 in reduce-only mode: an own open buy is cancelled."""
    buy = _open(1, OrderSide.BUY, 50.0)
    plan = _plan(200.0, current_usd=100.0, open_orders=(buy,), reduce_only_mode=True)
    assert plan.cancels == (buy.client_order_id,)
    assert plan.orders == ()
    assert plan.pending_delta_usd == 0.0


# --- plan_orders: arguments ------------------------------------------------------------------


@pytest.mark.parametrize(
    "overrides",
    [
        {"allowed_target_usd": math.nan},
        {"current_position_usd": math.inf},
        {"now_ns": -1},
        {"now_ns": 1.5},
        {"next_seq": -1},
        {"next_seq": MAX_CLIENT_ID_SEQ + 1},
    ],
    ids=repr,
)
def test_plan_orders_when_argument_invalid_then_value_error(overrides: dict[str, Any]) -> None:
    """Non-finite sizes, negative or non-integer times and exhausted ids are refused."""
    arguments: dict[str, Any] = {
        "market": _market(),
        "allowed_target_usd": 30.0,
        "current_position_usd": 0.0,
        "open_orders": (),
        "config": DERIBIT,
        "now_ns": T0_NS,
        "next_seq": 0,
        "reduce_only_mode": False,
        **overrides,
    }
    with pytest.raises(ValueError):  # noqa: PT011 - the message varies by argument
        plan_orders(**arguments)


# --- properties ------------------------------------------------------------------------------

TOL_USD = 1e-6


def _tol(*sizes_usd: float) -> float:
    """Lot rounding may exceed a bound by a relative 1e-9 (sizing.LOT_ROUNDING_REL_TOL)."""
    return TOL_USD + 2e-9 * max(abs(s) for s in sizes_usd)


@dataclass(frozen=True)
class Scenario:
    config: PlanningConfig
    market: MarketSnapshot
    target_usd: float
    current_usd: float
    open_orders: tuple[OrderUpdate, ...]
    next_seq: int
    reduce_only_mode: bool

    def plan(self) -> Plan:
        return plan_orders(
            self.market,
            self.target_usd,
            self.current_usd,
            self.open_orders,
            self.config,
            T0_NS,
            self.next_seq,
            self.reduce_only_mode,
        )


@st.composite
def _levels(draw: st.DrawFn, touch: float, direction: int) -> tuple[tuple[float, float], ...]:
    steps = draw(st.lists(st.integers(0, 400), max_size=5).map(sorted))
    sizes = draw(st.lists(st.integers(0, 5_000), min_size=len(steps), max_size=len(steps)))
    return tuple((touch + direction * 0.5 * s, float(z)) for s, z in zip(steps, sizes, strict=True))


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    lot = draw(st.sampled_from([1.0, 10.0, 100.0]))
    config = PlanningConfig(
        lot_size_usd=lot,
        tick_size=0.5,
        max_slice_usd=lot * draw(st.integers(1, 50)) + draw(st.sampled_from([0.0, lot / 2])),
        max_slippage_bps=draw(st.sampled_from([0.0, 5.0, 20.0, 100.0])),
        max_orders_per_plan=draw(st.integers(1, 5)),
        style=draw(st.sampled_from(ExecutionStyle)),
    )
    best_bid = 0.5 * draw(st.integers(20_000, 200_000))
    best_ask = best_bid + 0.5 * draw(st.integers(1, 20))
    with_book = draw(st.booleans())
    market = _market(
        best_bid=best_bid,
        best_ask=best_ask,
        bids=draw(_levels(best_bid, -1)) if with_book else (),
        asks=draw(_levels(best_ask, 1)) if with_book else (),
    )
    sizes = st.integers(-300, 300).map(lambda n: n * lot) | st.floats(-30_000, 30_000)
    orders = st.builds(
        _open,
        seq=st.integers(0, 10_000),
        side=st.sampled_from(OrderSide),
        amount_usd=st.integers(1, 100).map(lambda n: n * lot),
        age_s=st.floats(0.0, 20.0),
        prefix=st.sampled_from(["scl", "scl", "other"]),
    )
    return Scenario(
        config=config,
        market=market,
        target_usd=draw(sizes),
        current_usd=draw(sizes),
        open_orders=tuple(
            draw(st.lists(orders, max_size=4, unique_by=lambda o: o.client_order_id))
        ),
        next_seq=draw(st.integers(0, 1_000)),
        reduce_only_mode=draw(st.booleans()),
    )


def _planned_usd(plan: Plan) -> float:
    return math.fsum(o.side.sign * o.amount_usd for o in plan.orders)


@settings(max_examples=300)
@given(scenarios())
def test_plan_orders_amounts_are_whole_lots_within_max_slice(scenario: Scenario) -> None:
    """Every amount is a positive whole number of lots and at most max_slice_usd."""
    config = scenario.config
    for order in scenario.plan().orders:
        lots = order.amount_usd / config.lot_size_usd
        assert lots >= 1
        assert lots == round(lots)
        assert order.amount_usd <= config.max_slice_usd + _tol(config.max_slice_usd)


@settings(max_examples=300)
@given(scenarios())
def test_plan_orders_never_overshoots_target(scenario: Scenario) -> None:
    """Pending and planned amounts shrink the gap to the target and never flip its sign."""
    plan = scenario.plan()
    gap_usd = scenario.target_usd - scenario.current_usd
    after_usd = gap_usd - plan.pending_delta_usd - _planned_usd(plan)
    tol = _tol(gap_usd, scenario.current_usd)
    assert after_usd == pytest.approx(plan.residual_usd, abs=tol)
    assert abs(after_usd) <= abs(gap_usd) + tol
    assert after_usd * math.copysign(1.0, gap_usd) >= -tol
    assert plan.pending_delta_usd * gap_usd >= 0
    # New orders also leave room for every cancelled order toward the target to fill first.
    held_back_usd = math.fsum(
        o.remaining_usd
        for o in scenario.open_orders
        if o.client_order_id in plan.cancels and o.side.sign * gap_usd > 0
    )
    room_usd = max(0.0, abs(gap_usd) - abs(plan.pending_delta_usd) - held_back_usd)
    assert abs(_planned_usd(plan)) <= room_usd + tol


@settings(max_examples=300)
@given(scenarios())
def test_plan_orders_reduce_only_orders_never_exceed_position(scenario: Scenario) -> None:
    """Reduce-only orders oppose the projected position and sum to at most its size."""
    plan = scenario.plan()
    projected_usd = scenario.current_usd + plan.pending_delta_usd
    reducing = [o for o in plan.orders if o.reduce_only]
    assert all(o.side.sign * projected_usd < 0 for o in reducing)
    assert math.fsum(o.amount_usd for o in reducing) <= abs(projected_usd) + _tol(projected_usd)


@settings(max_examples=300)
@given(scenarios())
def test_plan_orders_in_reduce_only_mode_never_increases_exposure(scenario: Scenario) -> None:
    """In reduce-only mode every order is reduce-only and no fill path grows |position|."""
    scenario = replace(scenario, reduce_only_mode=True)
    plan = scenario.plan()
    current_usd = scenario.current_usd
    final_usd = current_usd + plan.pending_delta_usd + _planned_usd(plan)
    assert all(o.reduce_only for o in plan.orders)
    assert plan.pending_delta_usd * current_usd <= 0
    assert abs(final_usd) <= abs(current_usd) + _tol(current_usd)
    assert final_usd * math.copysign(1.0, current_usd) >= -_tol(current_usd)


@settings(max_examples=300)
@given(scenarios())
def test_plan_orders_ids_and_cancels_are_own(scenario: Scenario) -> None:
    """New ids run from next_seq upward; only own orders are ever cancelled."""
    plan = scenario.plan()
    prefix = scenario.config.client_id_prefix
    seqs = [parse_client_order_id(prefix, o.client_order_id) for o in plan.orders]
    assert seqs == list(range(scenario.next_seq, plan.next_seq))
    assert all(parse_client_order_id(prefix, cid) is not None for cid in plan.cancels)
    assert len(plan.orders) <= scenario.config.max_orders_per_plan


@given(
    side=st.sampled_from(OrderSide),
    touch_ticks=st.integers(2, 400_000),
    bps=st.floats(0.0, 500.0),
    tick=st.sampled_from([0.01, 0.1, 0.5, 1.0, 5.0]),
)
def test_protection_price_within_one_tick_inside_bound(
    side: OrderSide, touch_ticks: int, bps: float, tick: float
) -> None:
    """The protection price is on a tick, never past the bound, and less than a tick inside it."""
    touch = touch_ticks * tick
    market = _market(best_bid=touch, best_ask=touch)
    price = protection_price(side, market, bps, tick)
    bound = touch * (1 + side.sign * bps / 10_000)
    slack = 1e-9 * tick + 1e-12 * bound
    assert price / tick == pytest.approx(round(price / tick), abs=1e-6)
    if side is OrderSide.BUY:
        assert bound - tick - slack <= price <= bound + slack
    else:
        assert bound - slack <= price <= bound + tick + slack
