"""Reading JSON-RPC parameters: query strings (REST, all text) and JSON objects (websocket) alike.

Over REST every value is a string (``amount=1000``, ``reduce_only=true``); over the websocket
they are JSON numbers and booleans. Each reader accepts both and raises Deribit's ``Invalid
params`` (-32602) naming the parameter when a value is missing or malformed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from scaler.adapters.sim import rpc
from scaler.adapters.sim.orders import GOOD_TIL_CANCELLED, IMMEDIATE_OR_CANCEL, NewOrder
from scaler.domain.orders import OrderSide, OrderType

Params = Mapping[str, Any]
MAX_LABEL_LENGTH = 64
"""Deribit's limit on a label."""
UNSUPPORTED_ORDER_TYPES = frozenset(
    {"stop_limit", "stop_market", "take_limit", "take_market", "market_limit", "trailing_stop"}
)
UNSUPPORTED_TIME_IN_FORCE = frozenset({"fill_or_kill", "good_til_day"})


def text(params: Params, name: str, default: str | None = None) -> str:
    value = params.get(name, default)
    if value is None:
        raise rpc.invalid_param(name, "value required")
    if not isinstance(value, str):
        raise rpc.invalid_param(name, "must be a string")
    return value


def number(params: Params, name: str, default: float | None = None) -> float:
    value = params.get(name, default)
    if value is None:
        raise rpc.invalid_param(name, "value required")
    if isinstance(value, bool):
        raise rpc.invalid_param(name, "must be a number")
    try:
        result = float(value)
    except (TypeError, ValueError):
        raise rpc.invalid_param(name, "must be a number") from None
    if not math.isfinite(result):
        raise rpc.invalid_param(name, "must be a finite number")
    return result


def integer(params: Params, name: str, default: int, low: int = 0, high: int = 10**15) -> int:
    value = number(params, name, default)
    if not value.is_integer() or not low <= value <= high:
        raise rpc.invalid_param(name, f"must be an integer in [{low}, {high}]")
    return int(value)


def flag(params: Params, name: str, default: bool = False) -> bool:
    value = params.get(name, default)
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in {"true", "false"}:
        return value.lower() == "true"
    raise rpc.invalid_param(name, "must be true or false")


def optional_text(params: Params, name: str) -> str | None:
    return None if params.get(name) is None else text(params, name)


def new_order(side: OrderSide, params: Params, contract_size_usd: float) -> NewOrder:
    """A ``private/buy`` or ``private/sell`` request; ``contracts`` may stand in for ``amount``."""
    order_type = text(params, "type", "limit")
    if order_type in UNSUPPORTED_ORDER_TYPES:
        raise rpc.DeribitError(rpc.NOT_IMPLEMENTED, f"order type {order_type!r}", param="type")
    if order_type not in {"limit", "market"}:
        raise rpc.invalid_param("type", f"unknown order type {order_type!r}")
    if params.get("amount") is None and params.get("contracts") is not None:
        amount = number(params, "contracts") * contract_size_usd
    else:
        amount = number(params, "amount")
    price = number(params, "price") if order_type == "limit" else None
    label = text(params, "label", "")
    if len(label) > MAX_LABEL_LENGTH:
        raise rpc.invalid_param("label", f"at most {MAX_LABEL_LENGTH} characters")
    time_in_force = text(params, "time_in_force", GOOD_TIL_CANCELLED)
    if time_in_force in UNSUPPORTED_TIME_IN_FORCE:
        raise rpc.DeribitError(rpc.NOT_IMPLEMENTED, f"time_in_force {time_in_force!r}")
    if time_in_force not in {GOOD_TIL_CANCELLED, IMMEDIATE_OR_CANCEL}:
        raise rpc.invalid_param("time_in_force", f"unknown value {time_in_force!r}")
    return NewOrder(
        instrument_name=text(params, "instrument_name"),
        side=side,
        amount_usd=amount,
        order_type=OrderType(order_type),
        price=price,
        label=label,
        post_only=flag(params, "post_only"),
        reduce_only=flag(params, "reduce_only"),
        time_in_force=time_in_force,
    )


def loose_number(value: Any) -> float | None:
    """A number for the request log, or ``None``: the log records even malformed requests."""
    try:
        result = float(value)
    except (TypeError, ValueError):
        return None
    return result if math.isfinite(result) else None
