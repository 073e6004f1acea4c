"""The Deribit dialect: instrument names, channel names, book deltas, and that every error code
the simulator sends makes ccxt's deribit raise the exception class it was chosen for."""

from __future__ import annotations

import json
from typing import Any

import ccxt
import pytest

from scaler.adapters.sim import rpc
from scaler.adapters.sim.channels import Topic, parse_channel
from scaler.adapters.sim.dialect import instrument_name, level_changes
from scaler.adapters.sim.rpc import DeribitError, ErrorSpec

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("symbol", "name"), [("BTC/USD:BTC", "BTC-PERPETUAL"), ("ETH/USD:ETH", "ETH-PERPETUAL")]
)
def test_an_inverse_symbol_is_listed_as_a_perpetual(symbol: str, name: str) -> None:
    assert instrument_name(symbol) == name


@pytest.mark.parametrize("symbol", ["BTC/USDT:USDT", "BTC/USD", "BTCUSD", "BTC/USD:ETH", "/USD:"])
def test_anything_but_an_inverse_perp_symbol_is_refused(symbol: str) -> None:
    with pytest.raises(ValueError, match="inverse perpetual"):
        instrument_name(symbol)


def test_level_changes_delete_add_and_change() -> None:
    """Gone levels are deleted with amount 0, new ones added, moved amounts changed."""
    previous = {100.0: 5.0, 99.5: 7.0, 99.0: 1.0}
    current = ((100.0, 5.0), (99.5, 8.0), (98.5, 2.0))
    assert level_changes(previous, current) == [
        ["delete", 99.0, 0.0],
        ["change", 99.5, 8.0],
        ["new", 98.5, 2.0],
    ]
    assert level_changes({}, current) == [["new", p, a] for p, a in current]


NAMES = ["BTC-PERPETUAL"]


@pytest.mark.parametrize(
    ("channel", "topic", "instrument"),
    [
        ("ticker.BTC-PERPETUAL.100ms", Topic.TICKER, "BTC-PERPETUAL"),
        ("ticker.BTC-PERPETUAL.raw", Topic.TICKER, "BTC-PERPETUAL"),
        ("book.BTC-PERPETUAL.100ms", Topic.BOOK, "BTC-PERPETUAL"),
        ("quote.BTC-PERPETUAL", Topic.QUOTE, "BTC-PERPETUAL"),
        ("user.orders.any.any.raw", Topic.ORDERS, None),
        ("user.orders.future.BTC.100ms", Topic.ORDERS, None),
        ("user.orders.BTC-PERPETUAL.raw", Topic.ORDERS, "BTC-PERPETUAL"),
        ("user.trades.any.any.raw", Topic.TRADES, None),
        ("user.portfolio.BTC", Topic.PORTFOLIO, None),
        ("user.portfolio.btc", Topic.PORTFOLIO, None),
    ],
)
def test_served_channels_parse(channel: str, topic: Topic, instrument: str | None) -> None:
    """The channels ccxt.pro's deribit subscribes to, and Deribit's other spellings."""
    parsed = parse_channel(channel, NAMES, "BTC")
    assert parsed is not None
    assert (parsed.topic, parsed.instrument) == (topic, instrument)


@pytest.mark.parametrize(
    "channel",
    [
        "ticker.ETH-PERPETUAL.100ms",
        "ticker.BTC-PERPETUAL.1s",
        "book.BTC-PERPETUAL.none.20.100ms",
        "trades.BTC-PERPETUAL.100ms",
        "user.portfolio.ETH",
        "user.orders.option.any.raw",
        "user.changes.any.any.raw",
        "",
    ],
)
def test_unserved_channels_do_not_parse(channel: str) -> None:
    assert parse_channel(channel, NAMES, "BTC") is None


CCXT_CLASSES: list[tuple[ErrorSpec, type[Exception]]] = [
    (rpc.GENERAL_ERROR, ccxt.ExchangeError),
    (rpc.ORDER_NOT_FOUND, ccxt.OrderNotFound),
    (rpc.NOT_ENOUGH_FUNDS, ccxt.InsufficientFunds),
    (rpc.ALREADY_CLOSED, ccxt.OrderNotFound),
    (rpc.BOOK_CLOSED, ccxt.InvalidOrder),
    (rpc.TOO_MANY_REQUESTS, ccxt.DDoSProtection),
    (rpc.NOT_IMPLEMENTED, ccxt.NotSupported),
    (rpc.OTHER_REJECT, ccxt.ExchangeError),
    (rpc.BAD_REQUEST, ccxt.BadRequest),
    (rpc.POST_ONLY_REJECT, ccxt.InvalidOrder),
    (rpc.INVALID_CREDENTIALS, ccxt.AuthenticationError),
    (rpc.UNAUTHORIZED, ccxt.AuthenticationError),
    (rpc.METHOD_NOT_FOUND, ccxt.BadRequest),
    (rpc.INVALID_PARAMS, ccxt.BadRequest),
    (rpc.PARSE_ERROR, ccxt.BadRequest),
]


@pytest.mark.parametrize(
    ("spec", "expected"), CCXT_CLASSES, ids=lambda x: getattr(x, "message", "")
)
def test_each_error_code_maps_to_its_ccxt_exception(
    spec: ErrorSpec, expected: type[Exception]
) -> None:
    """ccxt's deribit ``handle_errors`` on the simulator's error body raises exactly this class."""
    body: dict[str, Any] = rpc.error_envelope(DeribitError(spec, "why"), None, 1, 2)
    text = rpc.encode(body)
    client = ccxt.deribit()
    with pytest.raises(expected) as caught:
        client.handle_errors(
            spec.http_status, "", "url", "GET", {}, text, json.loads(text), {}, None
        )
    assert type(caught.value) is expected


def test_envelopes_carry_deribits_fields() -> None:
    ok = rpc.result_envelope({"a": 1}, 7, 100, 130)
    assert ok == {
        "jsonrpc": "2.0",
        "id": 7,
        "usIn": 100,
        "usOut": 130,
        "usDiff": 30,
        "testnet": True,
        "result": {"a": 1},
    }
    error = rpc.error_envelope(rpc.invalid_param("amount", "must be a number"), None, 1, 1)
    assert "id" not in error
    assert error["error"] == {
        "code": -32602,
        "message": "Invalid params",
        "data": {"reason": "must be a number", "param": "amount"},
    }
    with pytest.raises(ValueError, match="JSON"):
        rpc.encode({"x": float("nan")})
