"""JSON-RPC as Deribit v2 speaks it: the envelope every answer travels in, and the error codes.

Every answer, over HTTP and over the websocket alike, is one JSON object::

    {"jsonrpc": "2.0", "id": 7, "result": {...}, "usIn": 1700000000000123,
     "usOut": 1700000000000456, "usDiff": 333, "testnet": true}

An error replaces ``result`` with ``{"code": 10004, "message": "order_not_found", "data":
{"reason": ...}}``. ccxt's deribit ``handle_errors`` looks at the code, not at the HTTP status,
so each code below was picked for the ccxt exception it produces (``ccxt/deribit.py``,
``exceptions``):

=======  ====================  =====  =================  ===================================
code     message               HTTP   ccxt raises        the simulator sends it when
=======  ====================  =====  =================  ===================================
10001    error                 500    ExchangeError      a 5xx fault with a JSON body
10004    order_not_found       400    OrderNotFound      no order has that id
10009    not_enough_funds      400    InsufficientFunds  the margin check refuses an order
10010    already_closed        400    OrderNotFound      cancelling a filled/cancelled order
10012    book_closed           400    InvalidOrder       no market data yet; injected refusal
10028    too_many_requests     429    DDoSProtection     a rate-limit fault
10033    not_implemented       400    NotSupported       an order type the simulator lacks
11030    other_reject          400    ExchangeError      a reduce-only order with nothing
                                                         to reduce
11050    bad_request           400    BadRequest         a request that is not JSON-RPC
11054    post_only_reject      400    InvalidOrder       a post-only order would take
13004    invalid_credentials   400    AuthenticationErr  wrong key, signature or timestamp
13009    unauthorized          400    AuthenticationErr  a private call without credentials
-32601   Method not found      400    BadRequest         an unknown method
-32602   Invalid params        400    BadRequest         a missing or malformed parameter
-32700   Parse error           400    BadRequest         a websocket frame that is not JSON
=======  ====================  =====  =================  ===================================
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Final

JSONRPC: Final = "2.0"


@dataclass(frozen=True, slots=True)
class ErrorSpec:
    """One Deribit error: its code, its message and the HTTP status it is sent with."""

    code: int
    message: str
    http_status: int = 400


GENERAL_ERROR: Final = ErrorSpec(10001, "error", 500)
ORDER_NOT_FOUND: Final = ErrorSpec(10004, "order_not_found")
NOT_ENOUGH_FUNDS: Final = ErrorSpec(10009, "not_enough_funds")
ALREADY_CLOSED: Final = ErrorSpec(10010, "already_closed")
BOOK_CLOSED: Final = ErrorSpec(10012, "book_closed")
TOO_MANY_REQUESTS: Final = ErrorSpec(10028, "too_many_requests", 429)
NOT_IMPLEMENTED: Final = ErrorSpec(10033, "not_implemented")
OTHER_REJECT: Final = ErrorSpec(11030, "other_reject")
BAD_REQUEST: Final = ErrorSpec(11050, "bad_request")
POST_ONLY_REJECT: Final = ErrorSpec(11054, "post_only_reject")
INVALID_CREDENTIALS: Final = ErrorSpec(13004, "invalid_credentials")
UNAUTHORIZED: Final = ErrorSpec(13009, "unauthorized")
METHOD_NOT_FOUND: Final = ErrorSpec(-32601, "Method not found")
INVALID_PARAMS: Final = ErrorSpec(-32602, "Invalid params")
PARSE_ERROR: Final = ErrorSpec(-32700, "Parse error")


class DeribitError(Exception):
    """A request the simulator answers with a Deribit error instead of a result.

    ``injected`` marks a refusal made by a fault knob rather than by the venue's rules, so the
    order log can tell the two apart; the client sees the same error either way.
    """

    def __init__(
        self,
        spec: ErrorSpec,
        reason: str = "",
        *,
        param: str | None = None,
        injected: bool = False,
    ) -> None:
        super().__init__(f"{spec.code} {spec.message}: {reason}" if reason else spec.message)
        self.spec = spec
        self.reason = reason
        self.param = param
        self.injected = injected

    @property
    def code(self) -> int:
        return self.spec.code

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.spec.code, "message": self.spec.message}
        data = {"reason": self.reason} if self.reason else {}
        if self.param is not None:
            data["param"] = self.param
        if data:
            body["data"] = data
        return body


def invalid_param(param: str, reason: str) -> DeribitError:
    """Deribit's answer to a missing or malformed parameter."""
    return DeribitError(INVALID_PARAMS, reason, param=param)


def _envelope(request_id: Any, us_in: int, us_out: int) -> dict[str, Any]:
    body: dict[str, Any] = {"jsonrpc": JSONRPC}
    if request_id is not None:
        body["id"] = request_id
    return body | {"usIn": us_in, "usOut": us_out, "usDiff": us_out - us_in, "testnet": True}


def result_envelope(result: Any, request_id: Any, us_in: int, us_out: int) -> dict[str, Any]:
    """A successful answer; ``request_id`` is left out when the request had none (REST)."""
    return _envelope(request_id, us_in, us_out) | {"result": result}


def error_envelope(error: DeribitError, request_id: Any, us_in: int, us_out: int) -> dict[str, Any]:
    return _envelope(request_id, us_in, us_out) | {"error": error.to_json()}


def notification(channel: str, data: Any) -> dict[str, Any]:
    """A subscription push, as Deribit sends it on ``public/subscribe`` channels."""
    return {
        "jsonrpc": JSONRPC,
        "method": "subscription",
        "params": {"channel": channel, "data": data},
    }


def encode(message: Any) -> str:
    """Compact JSON; a NaN or infinity is a bug upstream and raises ``ValueError`` here."""
    return json.dumps(message, separators=(",", ":"), allow_nan=False)
