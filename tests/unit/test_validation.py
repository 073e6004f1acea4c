"""Unit tests for market and account snapshot validation (scaler.domain.validation)."""

from __future__ import annotations

import dataclasses
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scaler.domain.types import NS_PER_S, AccountSnapshot, InstrumentKey, MarketSnapshot
from scaler.domain.validation import BadInput, validate_account, validate_market

pytestmark = pytest.mark.unit

T0_NS = 1_584_057_600 * NS_PER_S  # 2020-03-13 00:00:00 UTC
KEY = InstrumentKey("deribit", "BTC-PERPETUAL")
CAP = 0.05
NAN, INF = math.nan, math.inf


def _market(**changes: object) -> MarketSnapshot:
    base = MarketSnapshot(
        key=KEY,
        ts_event_ns=T0_NS,
        ts_recv_ns=T0_NS + 1_000_000,
        mark_price=50_000.0,
        index_price=49_990.0,
        best_bid=49_999.5,
        best_ask=50_000.0,
        funding_rate=0.0001,
        funding_interval_s=28_800.0,
        ts_funding_ns=T0_NS,
        predicted_funding_rate=0.0002,
        bids=((49_999.5, 20_000.0), (49_999.0, 50_000.0)),
        asks=((50_000.0, 10_000.0), (50_000.5, 40_000.0)),
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def _account(**changes: object) -> AccountSnapshot:
    base = AccountSnapshot(
        ts_ns=T0_NS,
        wallet_balance_coin=1.0,
        unrealised_pnl_coin=0.01,
        position_usd=10_000.0,
        entry_price=49_000.0,
        maintenance_margin_coin=0.001,
        liquidation_price=30_000.0,
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


# --- market: values ----------------------------------------------------------------------------


def test_validate_market_when_snapshot_is_sane_then_none() -> None:
    assert validate_market(_market(), None, CAP) is None


def test_validate_market_when_sane_and_newer_than_previous_then_none() -> None:
    later = _market(ts_event_ns=T0_NS + 1, mark_price=50_001.0)
    assert validate_market(later, _market(), CAP) is None


@pytest.mark.parametrize(
    "field",
    ["mark_price", "index_price", "best_bid", "best_ask", "funding_rate", "funding_interval_s"],
)
@pytest.mark.parametrize("value", [NAN, INF, -INF])
def test_validate_market_when_a_number_is_not_finite_then_non_finite(
    field: str, value: float
) -> None:
    assert validate_market(_market(**{field: value}), None, CAP) is BadInput.NON_FINITE


def test_validate_market_when_predicted_rate_is_nan_then_non_finite() -> None:
    assert validate_market(_market(predicted_funding_rate=NAN), None, CAP) is BadInput.NON_FINITE


def test_validate_market_when_predicted_rate_is_absent_then_accepted() -> None:
    assert validate_market(_market(predicted_funding_rate=None), None, CAP) is None


@pytest.mark.parametrize("field", ["mark_price", "index_price", "best_bid", "best_ask"])
@pytest.mark.parametrize("value", [0.0, -1.0])
def test_validate_market_when_a_price_is_not_positive_then_non_positive_price(
    field: str, value: float
) -> None:
    snapshot = _market(**{field: value})
    assert validate_market(snapshot, None, CAP) is BadInput.NON_POSITIVE_PRICE


@pytest.mark.parametrize(
    ("side", "levels", "expected"),
    [
        ("bids", ((NAN, 1.0),), BadInput.NON_FINITE),
        ("asks", ((50_000.0, INF),), BadInput.NON_FINITE),
        ("bids", ((0.0, 1.0),), BadInput.NON_POSITIVE_PRICE),
        ("asks", ((50_000.0, -1.0),), BadInput.NEGATIVE_AMOUNT),
    ],
)
def test_validate_market_when_a_book_level_is_bad_then_rejected(
    side: str, levels: tuple[tuple[float, float], ...], expected: BadInput
) -> None:
    assert validate_market(_market(**{side: levels}), None, CAP) is expected


def test_validate_market_when_book_levels_are_empty_then_accepted() -> None:
    """A feed without a book carries empty level tuples; that is not bad input."""
    assert validate_market(_market(bids=(), asks=()), None, CAP) is None


def test_validate_market_when_bid_above_ask_then_crossed_book() -> None:
    snapshot = _market(best_bid=50_001.0, best_ask=50_000.0)
    assert validate_market(snapshot, None, CAP) is BadInput.CROSSED_BOOK


def test_validate_market_when_bid_equals_ask_then_locked_book_accepted() -> None:
    assert validate_market(_market(best_bid=50_000.0, best_ask=50_000.0), None, CAP) is None


@pytest.mark.parametrize(
    ("rate", "predicted", "expected"),
    [
        (0.05, None, None),  # exactly at the cap is allowed
        (-0.05, 0.05, None),
        (0.0501, None, BadInput.ABSURD_FUNDING),
        (-0.06, None, BadInput.ABSURD_FUNDING),
        (0.0001, 0.051, BadInput.ABSURD_FUNDING),
        (0.0001, -0.2, BadInput.ABSURD_FUNDING),
    ],
)
def test_validate_market_when_funding_beyond_cap_then_absurd_funding(
    rate: float, predicted: float | None, expected: BadInput | None
) -> None:
    snapshot = _market(funding_rate=rate, predicted_funding_rate=predicted)
    assert validate_market(snapshot, None, CAP) is expected


@pytest.mark.parametrize("interval_s", [0.0, -3_600.0])
def test_validate_market_when_interval_not_positive_then_bad_interval(interval_s: float) -> None:
    snapshot = _market(funding_interval_s=interval_s)
    assert validate_market(snapshot, None, CAP) is BadInput.BAD_INTERVAL


def test_validate_market_when_several_faults_then_first_in_documented_order() -> None:
    """NaN beats a crossed book, which beats absurd funding."""
    snapshot = _market(mark_price=NAN, best_bid=60_000.0, funding_rate=1.0)
    assert validate_market(snapshot, None, CAP) is BadInput.NON_FINITE
    snapshot = _market(best_bid=60_000.0, funding_rate=1.0)
    assert validate_market(snapshot, None, CAP) is BadInput.CROSSED_BOOK


@pytest.mark.parametrize("cap", [0.0, -0.01, NAN])
def test_validate_market_when_cap_is_not_positive_then_value_error(cap: float) -> None:
    with pytest.raises(ValueError, match="max_abs_funding_rate"):
        validate_market(_market(), None, cap)


def test_validate_market_when_cap_is_infinite_then_no_funding_check() -> None:
    assert validate_market(_market(funding_rate=0.9), None, INF) is None


# --- market: sequence --------------------------------------------------------------------------


def test_validate_market_when_key_differs_then_wrong_instrument() -> None:
    previous = _market(key=InstrumentKey("deribit", "ETH-PERPETUAL"))
    later = _market(ts_event_ns=T0_NS + 1)
    assert validate_market(later, previous, CAP) is BadInput.WRONG_INSTRUMENT


def test_validate_market_when_event_older_than_previous_then_out_of_order() -> None:
    previous = _market(ts_event_ns=T0_NS + 1)
    assert validate_market(_market(), previous, CAP) is BadInput.OUT_OF_ORDER


def test_validate_market_when_same_timestamp_and_values_then_duplicate() -> None:
    """A re-delivered message (same event time, same prices and funding) is a duplicate."""
    again = _market(ts_recv_ns=T0_NS + 5_000_000)  # received later, same content
    assert validate_market(again, _market(), CAP) is BadInput.DUPLICATE


@pytest.mark.parametrize(
    "changes",
    [
        {"mark_price": 50_000.5},
        {"index_price": 49_991.0},
        {"best_bid": 49_999.0},
        {"best_ask": 50_000.5},
        {"funding_rate": 0.00011},
        {"predicted_funding_rate": None},
        {"ts_funding_ns": T0_NS + 1},
    ],
)
def test_validate_market_when_same_timestamp_but_new_values_then_accepted(
    changes: dict[str, object],
) -> None:
    """Two updates in one venue millisecond are not duplicates when any value moved."""
    assert validate_market(_market(**changes), _market(), CAP) is None


def test_validate_market_when_values_bad_and_out_of_order_then_value_reason_first() -> None:
    previous = _market(ts_event_ns=T0_NS + 10)
    assert validate_market(_market(mark_price=-1.0), previous, CAP) is BadInput.NON_POSITIVE_PRICE


finite_or_not = st.floats(allow_nan=True, allow_infinity=True)


@given(
    mark=finite_or_not,
    index=finite_or_not,
    bid=finite_or_not,
    ask=finite_or_not,
    rate=finite_or_not,
    interval=finite_or_not,
)
def test_validate_market_when_any_floats_then_never_raises_and_accepts_only_sane(
    mark: float, index: float, bid: float, ask: float, rate: float, interval: float
) -> None:
    """Any float input gives a reason code or None, and None only for sane values."""
    snapshot = _market(
        mark_price=mark,
        index_price=index,
        best_bid=bid,
        best_ask=ask,
        funding_rate=rate,
        funding_interval_s=interval,
    )
    result = validate_market(snapshot, None, CAP)
    if result is None:
        values = (mark, index, bid, ask, rate, interval)
        assert all(math.isfinite(v) for v in values)
        assert min(mark, index, bid, ask, interval) > 0.0
        assert bid <= ask
        assert abs(rate) <= CAP
    else:
        assert isinstance(result, BadInput)


# --- market: plausibility bounds ---------------------------------------------------------------

BOUNDS = {"max_mark_index_ratio": 1.5, "max_mark_move_ratio": 3.0, "mark_move_window_s": 300.0}


@pytest.mark.parametrize(
    ("mark", "index", "expected"),
    [
        (75_000.0, 50_000.0, None),  # exactly 1.5x: accepted
        (75_001.0, 50_000.0, BadInput.IMPLAUSIBLE_INDEX),
        (33_334.0, 50_000.0, None),  # 50,000 / 33,334 = 1.49997
        (33_333.0, 50_000.0, BadInput.IMPLAUSIBLE_INDEX),  # 1.500015
        (500_000.0, 50_000.0, BadInput.IMPLAUSIBLE_INDEX),  # the mark alone pushed to 10x
    ],
)
def test_validate_market_when_mark_far_from_index_then_implausible_index(
    mark: float, index: float, expected: BadInput | None
) -> None:
    snapshot = _market(mark_price=mark, index_price=index, best_bid=mark - 1, best_ask=mark)
    assert validate_market(snapshot, None, CAP, **BOUNDS) is expected
    assert validate_market(snapshot, None, CAP) is None  # off unless given


def _moved(factor: float, after_s: float) -> MarketSnapshot:
    """Mark and index both at ``factor`` x the default snapshot, received ``after_s`` later."""
    mark = 50_000.0 * factor
    return _market(
        ts_event_ns=T0_NS + round(after_s * NS_PER_S),
        ts_recv_ns=T0_NS + 1_000_000 + round(after_s * NS_PER_S),
        mark_price=mark,
        index_price=mark,
        best_bid=mark - 0.5,
        best_ask=mark,
        bids=(),
        asks=(),
    )


@pytest.mark.parametrize(
    ("factor", "after_s", "expected"),
    [
        (10.0, 1.0, BadInput.IMPLAUSIBLE_MOVE),  # mark and index pushed to 10x together
        (100.0, 60.0, BadInput.IMPLAUSIBLE_MOVE),
        (0.1, 1.0, BadInput.IMPLAUSIBLE_MOVE),
        (3.0, 1.0, None),  # exactly the ratio
        (0.334, 1.0, None),  # 1 / 0.334 = 2.994
        (3.001, 299.999, BadInput.IMPLAUSIBLE_MOVE),
        (10.0, 300.0, None),  # the last accepted mark is no longer recent
        (2.0, 1.0, None),  # left to the breaker and its confirmation
        (0.6, 1.0, None),  # 12 March 2020 at its worst moved 1.36x in 300 s
    ],
)
def test_validate_market_when_mark_far_from_recent_mark_then_implausible_move(
    factor: float, after_s: float, expected: BadInput | None
) -> None:
    assert validate_market(_moved(factor, after_s), _moved(1.0, 0.0), CAP, **BOUNDS) is expected


def test_validate_market_when_move_implausible_and_out_of_order_then_out_of_order_first() -> None:
    older = _moved(10.0, -1.0)
    assert validate_market(older, _moved(1.0, 0.0), CAP, **BOUNDS) is BadInput.OUT_OF_ORDER


@pytest.mark.parametrize(
    "bounds",
    [
        {"max_mark_index_ratio": 1.0},
        {"max_mark_move_ratio": 0.5},
        {"max_mark_move_ratio": NAN},
        {"mark_move_window_s": -1.0},
        {"mark_move_window_s": NAN},
    ],
)
def test_validate_market_when_bounds_are_impossible_then_value_error(
    bounds: dict[str, float],
) -> None:
    with pytest.raises(ValueError, match="plausibility bounds"):
        validate_market(_market(), None, CAP, **bounds)


# --- account -----------------------------------------------------------------------------------


def test_validate_account_when_snapshot_is_sane_then_none() -> None:
    assert validate_account(_account(), None) is None
    assert validate_account(_account(ts_ns=T0_NS + 1), _account()) is None


@pytest.mark.parametrize(
    "field",
    [
        "wallet_balance_coin",
        "unrealised_pnl_coin",
        "position_usd",
        "entry_price",
        "maintenance_margin_coin",
        "liquidation_price",
    ],
)
@pytest.mark.parametrize("value", [NAN, INF, -INF])
def test_validate_account_when_a_number_is_not_finite_then_non_finite(
    field: str, value: float
) -> None:
    assert validate_account(_account(**{field: value}), None) is BadInput.NON_FINITE


def test_validate_account_when_equity_overflows_then_non_finite() -> None:
    """Both parts finite, their sum is not: equity must be usable too."""
    snapshot = _account(wallet_balance_coin=1.5e308, unrealised_pnl_coin=1.5e308)
    assert validate_account(snapshot, None) is BadInput.NON_FINITE


def test_validate_account_when_wallet_and_equity_negative_then_accepted() -> None:
    """Losses beyond the collateral are a real state the risk layer must see (documented)."""
    snapshot = _account(wallet_balance_coin=-0.2, unrealised_pnl_coin=-0.1)
    assert validate_account(snapshot, None) is None


def test_validate_account_when_optional_fields_absent_then_accepted() -> None:
    snapshot = _account(entry_price=None, maintenance_margin_coin=None, liquidation_price=None)
    assert validate_account(snapshot, None) is None


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"entry_price": -1.0}, BadInput.NON_POSITIVE_PRICE),
        ({"entry_price": 0.0}, BadInput.NON_POSITIVE_PRICE),  # open position, entry 0
        ({"entry_price": 0.0, "position_usd": 0.0}, None),  # flat: venues send 0
        ({"liquidation_price": -5.0}, BadInput.NON_POSITIVE_PRICE),
        ({"liquidation_price": 0.0}, None),  # 0 reads as "no liquidation price"
        ({"maintenance_margin_coin": -0.001}, BadInput.NEGATIVE_AMOUNT),
        ({"maintenance_margin_coin": 0.0}, None),
    ],
)
def test_validate_account_when_price_or_margin_impossible_then_rejected(
    changes: dict[str, object], expected: BadInput | None
) -> None:
    assert validate_account(_account(**changes), None) is expected


def test_validate_account_when_older_than_previous_then_out_of_order() -> None:
    assert validate_account(_account(), _account(ts_ns=T0_NS + 1)) is BadInput.OUT_OF_ORDER


def test_validate_account_when_same_timestamp_as_previous_then_accepted() -> None:
    """An account snapshot is a level: a repeated poll is not a duplicate."""
    assert validate_account(_account(), _account()) is None
    assert validate_account(_account(unrealised_pnl_coin=0.02), _account()) is None


def test_bad_input_when_listed_then_values_are_bounded_snake_case() -> None:
    """Reason codes are metric label values: a fixed, lower-case set."""
    values = [code.value for code in BadInput]
    assert len(values) == len(set(values)) == 11
    assert all(v == v.lower() and " " not in v for v in values)
