"""A stateful venue behind recorded raw payloads, served to UNMODIFIED ccxt classes.

``RecordedVenue("okx").install(exchange)`` replaces ``exchange.fetch`` (ccxt's one HTTP entry
point, called by ``fetch2`` after ``sign``) with a coroutine that routes by HTTP method and path,
answers from the raw venue envelopes in ``payloads/<venue>.json`` and keeps the state a venue
keeps: orders, fills, one inverse position in contracts, and a BTC wallet. Every answer is the
recorded template with only dynamic fields substituted (ids, client ids, sizes, prices, status,
timestamps). The tail of ccxt's own ``fetch`` is reproduced (``on_rest_response``,
``parse_json``, ``handle_errors`` then ``handle_http_status_code``), so venue error payloads go
through the venue's own error mapping exactly as they would on the wire.

Inverse accounting, in each venue's own units: ``amount`` is contracts of ``contract_size_usd``
USD; a fill of ``q`` contracts at ``p`` is worth ``q·cs/p`` BTC; the entry price is the harmonic
mean of fills; realised and unrealised PnL are ``±q·cs·(1/entry − 1/price)`` BTC; fees are
charged in BTC. Marketable orders (market, or a limit crossing the touch) fill at once at the
touch (best ask for buys, best bid for sells) or at :meth:`RecordedVenue.set_fill_price`; other
limits rest and fill at their own price (as maker) when :meth:`RecordedVenue.set_mark` moves the
touch through them.

Failure injection (:meth:`RecordedVenue.fail_next`) answers with the recorded error payload of the
kind, or raises ``ccxt.RequestTimeout`` as ccxt's aiohttp transport does on a timeout.
"""

from __future__ import annotations

import copy
import json
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_CEILING, ROUND_HALF_EVEN, Decimal
from http import HTTPStatus
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import parse_qsl, urlsplit

import ccxt.async_support as ccxt

PAYLOADS_DIR = Path(__file__).parent / "payloads"
VENUES = ("bybit", "okx", "binancecoinm", "krakenfutures")
FAILURE_KINDS = (
    "rate_limit",
    "server_error",
    "bad_gateway",
    "timeout",
    "insufficient_funds",
    "auth",
    "order_not_found",
)

Json = Any
ZERO = Decimal(0)
ONE = Decimal(1)


# ----------------------------------------------------------------------------------------------
# small helpers


def _dec(value: object) -> Decimal:
    return value if isinstance(value, Decimal) else Decimal(str(value))


def _fixed(value: Decimal, places: int) -> str:
    """``value`` with exactly ``places`` decimals, the way venues print prices and BTC."""
    return str(value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_EVEN))


def _plain(value: Decimal, places: int = 8) -> str:
    """``value`` rounded to ``places`` decimals without trailing zeros or an exponent."""
    rounded = value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_EVEN)
    text = format(rounded.normalize(), "f")
    return "0" if text in ("-0", "") else text


def _btc(value: Decimal) -> str:
    return _fixed(value, 8)


def _number(value: Decimal) -> int | float:
    """A JSON number as Kraken sends it."""
    return int(value) if value == value.to_integral_value() else float(value)


def _iso(ts_ms: int) -> str:
    return datetime.fromtimestamp(ts_ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _flag(value: object) -> bool:
    return value is True or str(value).lower() == "true"


def _decode_request(url: str, body: str | None) -> Json:
    """Query string merged with the decoded body (JSON object/list or form encoding)."""
    query: dict[str, Any] = {}
    for key, value in parse_qsl(urlsplit(url).query, keep_blank_values=True):
        if key in query:
            previous = query[key]
            query[key] = [*previous, value] if isinstance(previous, list) else [previous, value]
        else:
            query[key] = value
    if not body:
        return query
    stripped = body.lstrip()
    if stripped.startswith(("{", "[")):
        decoded = json.loads(stripped)
        return decoded if isinstance(decoded, list) else {**query, **decoded}
    return {**query, **dict(parse_qsl(body, keep_blank_values=True))}


# ----------------------------------------------------------------------------------------------
# public records


class RecordedRequest(NamedTuple):
    """One request as ccxt sent it: method, full URL, and query merged with the decoded body."""

    method: str
    url: str
    params: Json

    @property
    def path(self) -> str:
        return urlsplit(self.url).path


@dataclass
class VenueOrder:
    """An order as the venue keeps it; ``amount``/``filled`` in contracts, fee in BTC."""

    id: str
    client_id: str
    symbol: str
    side: str  # "buy" | "sell"
    type: str  # "limit" | "market"
    amount: Decimal
    price: Decimal | None
    reduce_only: bool
    post_only: bool
    time_in_force: str  # "GTC" | "IOC" | "PO"
    created_ms: int
    updated_ms: int
    filled: Decimal = ZERO
    average: Decimal | None = None
    fee_btc: Decimal = ZERO
    status: str = "open"  # "open" | "filled" | "canceled" | "rejected"
    reject_reason: str = ""  # "post_only" | "reduce_only" when rejected
    canceled_by_user: bool = False
    last_fill_qty: Decimal = ZERO
    last_fill_price: Decimal | None = None

    @property
    def remaining(self) -> Decimal:
        return self.amount - self.filled if self.status == "open" else ZERO

    @property
    def is_open(self) -> bool:
        return self.status == "open"


@dataclass(frozen=True)
class VenueFill:
    """One execution; ``qty`` in contracts, ``value_btc``/``fee_btc``/``realized_btc`` in BTC."""

    id: str
    order_id: str
    client_id: str
    side: str
    qty: Decimal
    price: Decimal
    value_btc: Decimal
    fee_btc: Decimal
    fee_rate: Decimal
    maker: bool
    realized_btc: Decimal
    ts_ms: int


@dataclass(frozen=True)
class _Intent:
    side: str
    type: str
    amount: Decimal
    price: Decimal | None
    reduce_only: bool
    post_only: bool
    time_in_force: str
    client_id: str


class _Reply(NamedTuple):
    status: int
    body: Json
    is_text: bool = False


class _Rejection(Exception):  # noqa: N818 - an answer, not a failure of the emulator
    """Raised inside a handler: answer with the recorded error payload of ``kind``."""

    def __init__(self, kind: str, order: VenueOrder | None = None) -> None:
        super().__init__(kind)
        self.kind = kind
        self.order = order


@dataclass
class _Failure:
    kind: str
    remaining: int
    path: str | None


# ----------------------------------------------------------------------------------------------
# market and account state


@dataclass
class _Market:
    mark: Decimal
    index_basis: Decimal
    tick: Decimal
    price_places: int
    recorded_best_bid: Decimal
    funding_rate: Decimal
    funding_interval_ms: int
    fill_price: Decimal | None = None
    last_price: Decimal | None = None

    @property
    def index(self) -> Decimal:
        return self.mark + self.index_basis

    @property
    def best_ask(self) -> Decimal:
        steps = ((self.mark + self.tick / 2) / self.tick).to_integral_value(ROUND_CEILING)
        return steps * self.tick

    @property
    def best_bid(self) -> Decimal:
        return self.best_ask - self.tick

    @property
    def last(self) -> Decimal:
        return self.last_price if self.last_price is not None else self.best_ask

    def taker_price(self, side: str) -> Decimal:
        if self.fill_price is not None:
            return self.fill_price
        return self.best_ask if side == "buy" else self.best_bid

    def crosses(self, side: str, price: Decimal) -> bool:
        return price >= self.best_ask if side == "buy" else price <= self.best_bid

    def shifted(self, recorded_price: object) -> Decimal:
        """A recorded book price moved with the touch."""
        return _dec(recorded_price) + (self.best_bid - self.recorded_best_bid)

    def price(self, value: Decimal) -> str:
        return _fixed(value, self.price_places)

    def next_funding_ms(self, now_ms: int) -> int:
        return (now_ms // self.funding_interval_ms + 1) * self.funding_interval_ms


@dataclass
class _Account:
    contract_size: Decimal
    wallet: Decimal
    leverage: Decimal
    taker_fee: Decimal
    maker_fee: Decimal
    mmr: Decimal
    contracts: Decimal = ZERO  # signed: long > 0
    entry: Decimal | None = None
    realized: Decimal = ZERO
    fees: Decimal = ZERO

    @property
    def notional_usd(self) -> Decimal:
        return abs(self.contracts) * self.contract_size

    @property
    def sign(self) -> int:
        return (self.contracts > 0) - (self.contracts < 0)

    def value_btc(self, price: Decimal) -> Decimal:
        return self.notional_usd / price

    def unrealized(self, mark: Decimal) -> Decimal:
        if self.entry is None or self.contracts == 0:
            return ZERO
        return self.sign * self.notional_usd * (ONE / self.entry - ONE / mark)

    def position_im(self, mark: Decimal) -> Decimal:
        return self.value_btc(mark) / self.leverage

    def position_mm(self, mark: Decimal) -> Decimal:
        return self.value_btc(mark) * self.mmr

    def liquidation_price(self) -> Decimal | None:
        """Cross margin on the whole wallet: equity equals maintenance margin."""
        if self.entry is None or self.contracts == 0:
            return None
        n, w = self.notional_usd, self.wallet
        if self.contracts > 0:
            return n * (ONE + self.mmr) / (w + n / self.entry)
        denominator = n / self.entry - w
        return None if denominator <= 0 else n * (ONE - self.mmr) / denominator

    def reducible(self, side: str) -> Decimal:
        if side == "sell" and self.contracts > 0:
            return self.contracts
        if side == "buy" and self.contracts < 0:
            return -self.contracts
        return ZERO

    def apply_fill(
        self, side: str, qty: Decimal, price: Decimal, *, maker: bool
    ) -> tuple[Decimal, Decimal]:
        """Book a fill; returns ``(fee_btc, realized_btc)``."""
        rate = self.maker_fee if maker else self.taker_fee
        fee = qty * self.contract_size / price * rate
        self.wallet -= fee
        self.fees += fee
        signed = qty if side == "buy" else -qty
        realized = ZERO
        held, entry = abs(self.contracts), self.entry
        if held == 0 or entry is None:
            self.entry = price
        elif (self.contracts > 0) == (signed > 0):
            self.entry = (held + qty) / (held / entry + qty / price)  # harmonic mean
        else:
            closing = min(qty, held)
            realized = self.sign * closing * self.contract_size * (ONE / entry - ONE / price)
            self.wallet += realized
            self.realized += realized
            if qty > closing:
                self.entry = price
            elif closing == held:
                self.entry = None
        self.contracts += signed
        return fee, realized


class _Clock:
    """Deterministic venue time: starts at the recording time, 1 ms per request."""

    def __init__(self, start_ms: int) -> None:
        self.now_ms = start_ms

    def tick(self) -> int:
        self.now_ms += 1
        return self.now_ms


# ----------------------------------------------------------------------------------------------
# the responder


class RecordedVenue:
    """A stateful responder for one venue, built from ``payloads/<venue_id>.json``.

    Controls: :meth:`set_mark`, :meth:`set_fill_price`, :meth:`set_funding_rate`,
    :meth:`set_wallet`, :meth:`advance`, :meth:`fail_next`. Records: ``requests`` (every
    :class:`RecordedRequest`), ``orders`` (by venue order id), ``fills``.
    """

    def __init__(self, venue_id: str, *, payload_dir: Path = PAYLOADS_DIR) -> None:
        if venue_id not in _DIALECTS:
            raise ValueError(f"no recorded payloads for {venue_id!r}; have {VENUES}")
        self.venue_id = venue_id
        self.payload: dict[str, Any] = json.loads((payload_dir / f"{venue_id}.json").read_text())
        state = self.payload["state"]
        self.symbol: str = state["symbol"]
        self.contract_size_usd = _dec(state["contract_size_usd"])
        self.requests: list[RecordedRequest] = []
        self.orders: dict[str, VenueOrder] = {}
        self.fills: list[VenueFill] = []
        self._failures: list[_Failure] = []
        self._clock = _Clock(int(state["recorded_at_ms"]))
        self._market = _Market(
            mark=_dec(state["recorded_mark"]),
            index_basis=_dec(state["recorded_index"]) - _dec(state["recorded_mark"]),
            tick=_dec(state["tick"]),
            price_places=int(state["price_places"]),
            recorded_best_bid=_dec(state["recorded_best_bid"]),
            funding_rate=_dec(state["funding_rate"]),
            funding_interval_ms=int(state["funding_interval_s"]) * 1000,
        )
        self._account = _Account(
            contract_size=self.contract_size_usd,
            wallet=_dec(state["wallet_btc"]),
            leverage=_dec(state["leverage"]),
            taker_fee=_dec(state["taker_fee"]),
            maker_fee=_dec(state["maker_fee"]),
            mmr=_dec(state["mmr"]),
        )
        self._sequence = 0
        self._exchange: Any = None
        self._dialect: _Dialect = _DIALECTS[venue_id](self)

    # -- wiring --------------------------------------------------------------------------------

    def install(self, exchange: Any) -> Any:
        """Replace ``exchange.fetch`` with this responder; returns the exchange."""
        exchange.fetch = self.fetch
        self._exchange = exchange
        return exchange

    # -- controls ------------------------------------------------------------------------------

    def set_mark(self, price: object) -> None:
        """Move mark (index keeps its recorded basis, the book follows); resting orders that
        the new touch crosses fill at their limit price as maker."""
        self._market.mark = _dec(price)
        for order in sorted(self.orders.values(), key=lambda o: o.created_ms):
            if (
                order.is_open
                and order.price is not None
                and self._market.crosses(order.side, order.price)
            ):
                self._execute(order, order.price, maker=True)

    def set_fill_price(self, price: object | None) -> None:
        """Fill marketable orders at ``price`` instead of the touch (``None``: the touch)."""
        self._market.fill_price = None if price is None else _dec(price)

    def set_funding_rate(self, rate: object) -> None:
        """The current funding rate per interval, relative (Kraken's payload shows it absolute)."""
        self._market.funding_rate = _dec(rate)

    def set_wallet(self, btc: object) -> None:
        self._account.wallet = _dec(btc)

    def advance(self, seconds: float) -> None:
        """Move venue time forward (funding times, Kraken's 5 s order-status window)."""
        self._clock.now_ms += int(seconds * 1000)

    def fail_next(self, kind: str, n: int = 1, *, path: str | None = None) -> None:
        """The next ``n`` requests (whose ``"METHOD /path"`` contains ``path``, if given) fail
        with ``kind``: one of :data:`FAILURE_KINDS`."""
        if kind not in FAILURE_KINDS:
            raise ValueError(f"unknown failure kind {kind!r}; one of {FAILURE_KINDS}")
        self._failures.append(_Failure(kind, n, path))

    # -- read-outs for assertions --------------------------------------------------------------

    @property
    def mark(self) -> Decimal:
        return self._market.mark

    @property
    def index(self) -> Decimal:
        return self._market.index

    @property
    def best_bid(self) -> Decimal:
        return self._market.best_bid

    @property
    def best_ask(self) -> Decimal:
        return self._market.best_ask

    @property
    def position_contracts(self) -> Decimal:
        """Signed position in contracts (long > 0)."""
        return self._account.contracts

    @property
    def entry_price(self) -> Decimal | None:
        return self._account.entry

    @property
    def wallet_btc(self) -> Decimal:
        return self._account.wallet

    @property
    def unrealized_pnl_btc(self) -> Decimal:
        return self._account.unrealized(self._market.mark)

    @property
    def now_ms(self) -> int:
        return self._clock.now_ms

    def last_request(self, fragment: str = "") -> RecordedRequest:
        """The most recent request whose ``"METHOD url"`` contains ``fragment``."""
        for request in reversed(self.requests):
            if fragment in f"{request.method} {request.url}":
                return request
        raise LookupError(f"no request matching {fragment!r}")

    def order_by_client_id(self, client_id: str) -> VenueOrder:
        found = self._find(client_id=client_id)
        if found is None:
            raise LookupError(client_id)
        return found

    # -- the replaced ccxt fetch ---------------------------------------------------------------

    async def fetch(
        self,
        url: str,
        method: str = "GET",
        headers: dict[str, str] | None = None,
        body: str | None = None,
    ) -> Json:
        """Answer one request the way ccxt's ``Exchange.fetch`` would, without a network."""
        exchange = self._exchange
        if exchange is None:
            raise RuntimeError("RecordedVenue.install(exchange) first")
        request_headers = exchange.prepare_request_headers(headers)
        exchange.last_request_headers = request_headers
        params = _decode_request(url, body)
        self.requests.append(RecordedRequest(method, url, params))
        self._clock.tick()
        path = urlsplit(url).path
        failure = self._take_failure(f"{method} {path}")
        if failure == "timeout":
            raise ccxt.RequestTimeout(" ".join([exchange.id, method, url]))
        if failure is not None:
            reply = self._error_reply(failure, method, path, params)
        else:
            reply = self._route(method, path, params)
        return self._deliver(reply, url, method, request_headers, body)

    def _route(self, method: str, path: str, params: Json) -> _Reply:
        try:
            return _Reply(200, self._dialect.handle(method, path, params))
        except _Rejection as rejection:
            return self._error_reply(rejection.kind, method, path, params, rejection.order)

    def _deliver(
        self, reply: _Reply, url: str, method: str, request_headers: Json, request_body: Json
    ) -> Json:
        """The tail of ccxt's ``async_support.base.exchange.Exchange.fetch``."""
        exchange = self._exchange
        if reply.is_text:
            headers = {"Content-Type": "text/html"}
            http_response = reply.body
        else:
            headers = {"Content-Type": "application/json"}
            http_response = json.dumps(reply.body)
        reason = HTTPStatus(reply.status).phrase
        http_response = exchange.on_rest_response(
            reply.status, reason, url, method, headers, http_response, request_headers, request_body
        )
        json_response = exchange.parse_json(http_response)
        if exchange.enableLastHttpResponse:
            exchange.last_http_response = http_response
        if exchange.enableLastResponseHeaders:
            exchange.last_response_headers = headers
        if exchange.enableLastJsonResponse:
            exchange.last_json_response = json_response
        if json_response and not isinstance(json_response, list) and exchange.returnResponseHeaders:
            json_response["responseHeaders"] = headers
        exchange.handle_errors(
            reply.status,
            reason,
            url,
            method,
            headers,
            http_response,
            json_response,
            request_headers,
            request_body,
        )
        exchange.handle_http_status_code(reply.status, reason, url, method, http_response)
        if json_response is not None:
            return json_response
        return http_response

    def _take_failure(self, route: str) -> str | None:
        for failure in self._failures:
            if failure.path is None or failure.path in route:
                failure.remaining -= 1
                if failure.remaining <= 0:
                    self._failures.remove(failure)
                return failure.kind
        return None

    def _error_reply(
        self,
        kind: str,
        method: str,
        path: str,
        params: Json,
        order: VenueOrder | None = None,
    ) -> _Reply:
        entries = self.payload["errors"][kind]
        route = f"{method} {path}"
        entry = next((e for e in entries if e.get("path") == route), None)
        entry = entry or next(e for e in entries if "path" not in e)
        if "text" in entry:
            return _Reply(int(entry["status"]), entry["text"], is_text=True)
        body = copy.deepcopy(entry["body"])
        self._dialect.adjust_error(kind, body, params, order)
        return _Reply(int(entry["status"]), body)

    # -- the matching engine -------------------------------------------------------------------

    def _next_id(self) -> int:
        self._sequence += 1
        return self._sequence

    def _uuid(self) -> str:
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{self.venue_id}/{self._next_id()}"))

    def _find(self, order_id: str | None = None, client_id: str | None = None) -> VenueOrder | None:
        if order_id:
            return self.orders.get(str(order_id))
        if client_id:
            return next((o for o in self.orders.values() if o.client_id == client_id), None)
        return None

    def _open_orders(self) -> list[VenueOrder]:
        return [o for o in self.orders.values() if o.is_open]

    def _available_btc(self) -> Decimal:
        mark, account = self._market.mark, self._account
        return (
            account.wallet
            + account.unrealized(mark)
            - account.position_im(mark)
            - self._orders_im()
        )

    def _orders_im(self) -> Decimal:
        account = self._account
        return sum(
            (
                o.remaining * account.contract_size / o.price / account.leverage
                for o in self._open_orders()
                if o.price is not None
            ),
            ZERO,
        )

    def _check_margin(self, intent: _Intent) -> None:
        reference = intent.price or self._market.taker_price(intent.side)
        account = self._account
        opening = intent.amount - min(intent.amount, account.reducible(intent.side))
        value = account.contract_size / reference
        needed = opening * value / account.leverage + intent.amount * value * account.taker_fee
        if needed > self._available_btc():
            raise _Rejection("insufficient_funds")

    def _place(self, intent: _Intent, order_id: str) -> VenueOrder:
        if not intent.reduce_only:
            self._check_margin(intent)
        now = self._clock.now_ms
        order = VenueOrder(
            id=order_id,
            client_id=intent.client_id,
            symbol=self.symbol,
            side=intent.side,
            type=intent.type,
            amount=intent.amount,
            price=intent.price,
            reduce_only=intent.reduce_only,
            post_only=intent.post_only,
            time_in_force=intent.time_in_force,
            created_ms=now,
            updated_ms=now,
        )
        self.orders[order.id] = order
        crossing = order.price is not None and self._market.crosses(order.side, order.price)
        if order.post_only and crossing:
            order.status, order.reject_reason = "rejected", "post_only"
        elif order.type == "market" or crossing:
            self._execute(order, self._taker_fill_price(order), maker=False)
        elif order.time_in_force == "IOC":
            order.status = "canceled"
        return order

    def _taker_fill_price(self, order: VenueOrder) -> Decimal:
        """The touch (or the set fill price), never worse than a limit."""
        price = self._market.taker_price(order.side)
        if order.price is None:
            return price
        return min(price, order.price) if order.side == "buy" else max(price, order.price)

    def _execute(self, order: VenueOrder, price: Decimal, *, maker: bool) -> None:
        qty = order.remaining
        if order.reduce_only:
            qty = min(qty, self._account.reducible(order.side))
            if qty <= 0:
                order.status, order.reject_reason = "rejected", "reduce_only"
                return
        fee, realized = self._account.apply_fill(order.side, qty, price, maker=maker)
        previous = order.filled * (order.average or ZERO)
        order.filled += qty
        order.average = (previous + qty * price) / order.filled
        order.fee_btc += fee
        order.last_fill_qty, order.last_fill_price = qty, price
        order.updated_ms = self._clock.now_ms
        order.status = "filled" if order.filled == order.amount else "canceled"
        self._market.last_price = price
        account = self._account
        self.fills.append(
            VenueFill(
                id=self._uuid(),
                order_id=order.id,
                client_id=order.client_id,
                side=order.side,
                qty=qty,
                price=price,
                value_btc=qty * account.contract_size / price,
                fee_btc=fee,
                fee_rate=account.maker_fee if maker else account.taker_fee,
                maker=maker,
                realized_btc=realized,
                ts_ms=self._clock.now_ms,
            )
        )

    def _cancel(self, order: VenueOrder | None) -> VenueOrder:
        if order is None or not order.is_open:
            raise _Rejection("order_not_found", order)
        order.status = "canceled"
        order.canceled_by_user = True
        order.updated_ms = self._clock.now_ms
        return order


# ----------------------------------------------------------------------------------------------
# dialects: one per venue, mapping requests to the engine and state to raw payloads


Handler = Callable[[Json, str], Json]


class _Dialect:
    """Routes ``(method, path)`` to handlers; renders venue rows from the recorded samples."""

    routes: tuple[tuple[str, str, str], ...] = ()

    def __init__(self, venue: RecordedVenue) -> None:
        self.venue = venue
        self.market = venue._market
        self.account = venue._account

    @property
    def now(self) -> int:
        return self.venue.now_ms

    def template(self, key: str) -> Json:
        return copy.deepcopy(self.venue.payload["responses"][key])

    def handle(self, method: str, path: str, params: Json) -> Json:
        for route_method, pattern, name in self.routes:
            if route_method == method and re.fullmatch(pattern, path):
                handler: Handler = getattr(self, name)
                return handler(params, f"{method} {path}")
        raise NotImplementedError(f"{self.venue.venue_id}: no recorded payload for {method} {path}")

    def static(self, params: Json, key: str) -> Json:
        return self.template(key)

    def adjust_error(self, kind: str, body: Json, params: Json, order: VenueOrder | None) -> None:
        """Fill dynamic fields of an error payload (default: none)."""

    def shift_levels(self, levels: list[list[Any]]) -> list[list[Any]]:
        return [[self.market.price(self.market.shifted(lvl[0])), *lvl[1:]] for lvl in levels]

    def place(self, intent: _Intent, order_id: str) -> VenueOrder:
        return self.venue._place(intent, order_id)

    def find(self, order_id: str | None = None, client_id: str | None = None) -> VenueOrder | None:
        return self.venue._find(order_id, client_id)

    def cancel(self, order: VenueOrder | None) -> VenueOrder:
        return self.venue._cancel(order)

    def open_orders(self) -> list[VenueOrder]:
        return self.venue._open_orders()

    def available(self) -> Decimal:
        return self.venue._available_btc()

    def orders_im(self) -> Decimal:
        return self.venue._orders_im()

    def fills_for(self, order_id: str | None = None) -> list[VenueFill]:
        return [f for f in self.venue.fills if order_id in (None, f.order_id)]


class _Bybit(_Dialect):
    """Bybit v5, category=inverse, unified account."""

    routes = (
        ("GET", r"/v5/market/instruments-info", "instruments"),
        ("GET", r"/v5/market/tickers", "tickers"),
        ("GET", r"/v5/market/orderbook", "orderbook"),
        ("GET", r"/v5/market/risk-limit", "static"),
        ("GET", r"/v5/user/query-api", "static"),
        ("GET", r"/v5/account/info", "static"),
        ("GET", r"/v5/account/wallet-balance", "wallet"),
        ("GET", r"/v5/position/list", "positions"),
        ("POST", r"/v5/order/create", "create"),
        ("POST", r"/v5/order/cancel", "cancel_order"),
        ("GET", r"/v5/order/realtime", "realtime"),
        ("GET", r"/v5/execution/list", "executions"),
    )

    def stamp(self, envelope: Json) -> Json:
        envelope["time"] = self.now
        return envelope

    def instruments(self, params: Json, key: str) -> Json:
        envelope = self.template(key)
        if params.get("status") == "PreLaunch":
            envelope["result"]["list"] = []
        return self.stamp(envelope)

    def tickers(self, params: Json, key: str) -> Json:
        envelope = self.template(key)
        row = envelope["result"]["list"][0]
        m = self.market
        row.update(
            lastPrice=m.price(m.last),
            markPrice=_fixed(m.mark, 2),
            indexPrice=_fixed(m.index, 2),
            bid1Price=m.price(m.best_bid),
            ask1Price=m.price(m.best_ask),
            fundingRate=_plain(m.funding_rate),
            nextFundingTime=str(m.next_funding_ms(self.now)),
        )
        if params.get("symbol") not in (None, row["symbol"]):
            envelope["result"]["list"] = []
        return self.stamp(envelope)

    def orderbook(self, params: Json, key: str) -> Json:
        envelope = self.template(key)
        book = envelope["result"]
        book["b"], book["a"] = self.shift_levels(book["b"]), self.shift_levels(book["a"])
        book["ts"] = book["cts"] = self.now
        return self.stamp(envelope)

    def wallet(self, params: Json, key: str) -> Json:
        envelope = self.template(key)
        entry = envelope["result"]["list"][0]
        coin = entry["coin"][0]
        a, mark = self.account, self.market.mark
        upnl, pos_im, orders_im = a.unrealized(mark), a.position_im(mark), self.orders_im()
        equity, usd = a.wallet + upnl, mark
        coin.update(
            walletBalance=_btc(a.wallet),
            equity=_btc(equity),
            unrealisedPnl=_btc(upnl),
            totalPositionIM=_btc(pos_im),
            totalPositionMM=_btc(a.position_mm(mark)),
            totalOrderIM=_btc(orders_im),
            cumRealisedPnl=_btc(_dec(coin["cumRealisedPnl"]) + a.realized - a.fees),
            usdValue=_fixed(equity * usd, 2),
        )
        initial = (pos_im + orders_im) * usd
        entry.update(
            totalEquity=_fixed(equity * usd, 2),
            totalMarginBalance=_fixed(equity * usd, 2),
            totalWalletBalance=_fixed(a.wallet * usd, 2),
            totalPerpUPL=_fixed(upnl * usd, 2),
            totalInitialMargin=_fixed(initial, 2),
            totalInitialMarginByMp=_fixed(initial, 2),
            totalMaintenanceMargin=_fixed(a.position_mm(mark) * usd, 2),
            totalMaintenanceMarginByMp=_fixed(a.position_mm(mark) * usd, 2),
            totalAvailableBalance=_fixed(self.available() * usd, 2),
        )
        return self.stamp(envelope)

    def positions(self, params: Json, key: str) -> Json:
        envelope = self.template(key)
        row = envelope["result"]["list"][0]
        a, mark = self.account, self.market.mark
        open_ = a.contracts != 0 and a.entry is not None
        liquidation = a.liquidation_price()
        row.update(
            size=_plain(abs(a.contracts)),
            side=("Buy" if a.contracts > 0 else "Sell") if open_ else "",
            avgPrice=_plain(a.entry) if open_ and a.entry else "0",
            positionValue=_btc(a.value_btc(a.entry)) if open_ and a.entry else "0",
            markPrice=_fixed(mark, 2),
            liqPrice=self.market.price(liquidation) if open_ and liquidation else "",
            positionIM=_btc(a.position_im(mark)) if open_ else "0",
            positionMM=_btc(a.position_mm(mark)) if open_ else "0",
            unrealisedPnl=_btc(a.unrealized(mark)),
            curRealisedPnl=_btc(a.realized - a.fees),
            leverage=_plain(a.leverage),
            updatedTime=str(self.now),
        )
        return self.stamp(envelope)

    def intent(self, body: Json) -> _Intent:
        tif = str(body.get("timeInForce", "GTC"))
        order_type = str(body["orderType"]).lower()
        return _Intent(
            side=str(body["side"]).lower(),
            type=order_type,
            amount=_dec(body["qty"]),
            price=_dec(body["price"]) if order_type == "limit" else None,
            reduce_only=_flag(body.get("reduceOnly")),
            post_only=tif == "PostOnly",
            time_in_force={"PostOnly": "PO", "IOC": "IOC"}.get(tif, "GTC"),
            client_id=str(body.get("orderLinkId", "")),
        )

    def create(self, params: Json, key: str) -> Json:
        order = self.place(self.intent(params), self.venue._uuid())
        envelope = self.template(key)
        envelope["result"] = {"orderId": order.id, "orderLinkId": order.client_id}
        return self.stamp(envelope)

    def cancel_order(self, params: Json, key: str) -> Json:
        order = self.cancel(self.find(params.get("orderId"), params.get("orderLinkId")))
        envelope = self.template(key)
        envelope["result"] = {"orderId": order.id, "orderLinkId": order.client_id}
        return self.stamp(envelope)

    def status(self, order: VenueOrder) -> str:
        if order.status == "open":
            return "PartiallyFilled" if order.filled else "New"
        if order.status == "filled":
            return "Filled"
        return "PartiallyFilledCanceled" if order.filled else "Cancelled"

    def order_row(self, sample: Json, order: VenueOrder) -> Json:
        row = copy.deepcopy(sample)
        m = self.market
        price = order.price if order.price is not None else (order.average or m.last)
        filled_value = order.filled / order.average if order.average else ZERO
        remaining_value = order.remaining / price if order.remaining else ZERO
        reject = {"post_only": "EC_PostOnlyWillTakeLiquidity", "reduce_only": "EC_ReduceOnlyRule"}
        row.update(
            orderId=order.id,
            orderLinkId=order.client_id,
            symbol=order.symbol,
            price=m.price(price),
            qty=_plain(order.amount),
            side=order.side.capitalize(),
            orderStatus=self.status(order),
            cancelType="CancelByUser" if order.canceled_by_user else "UNKNOWN",
            rejectReason=reject.get(order.reject_reason, "EC_NoError"),
            avgPrice=_plain(order.average) if order.average else "",
            leavesQty=_plain(order.remaining),
            leavesValue=_btc(remaining_value),
            cumExecQty=_plain(order.filled),
            cumExecValue=_btc(filled_value),
            cumExecFee=_btc(order.fee_btc),
            cumFeeDetail={"BTC": _btc(order.fee_btc)} if order.fee_btc else {},
            timeInForce={"PO": "PostOnly", "IOC": "IOC"}.get(order.time_in_force, "GTC"),
            orderType=order.type.capitalize(),
            reduceOnly=order.reduce_only,
            lastPriceOnCreated=m.price(m.last),
            createdTime=str(order.created_ms),
            updatedTime=str(order.updated_ms),
        )
        if order.type == "market":
            row["timeInForce"] = "IOC"
        return row

    def realtime(self, params: Json, key: str) -> Json:
        envelope = self.template(key)
        sample = envelope["result"]["list"][0]
        if params.get("orderId") or params.get("orderLinkId"):
            found = self.find(params.get("orderId"), params.get("orderLinkId"))
            orders = [found] if found is not None else []
        else:
            orders = sorted(self.open_orders(), key=lambda o: -o.created_ms)
        envelope["result"]["list"] = [self.order_row(sample, o) for o in orders]
        return self.stamp(envelope)

    def executions(self, params: Json, key: str) -> Json:
        envelope = self.template(key)
        sample = envelope["result"]["list"][0]
        rows: list[Json] = []
        for fill in reversed(self.fills_for(params.get("orderId"))):
            order = self.venue.orders[fill.order_id]
            if params.get("orderLinkId") not in (None, order.client_id):
                continue
            row = copy.deepcopy(sample)
            row.update(
                symbol=order.symbol,
                orderType=order.type.capitalize(),
                orderLinkId=order.client_id,
                side=fill.side.capitalize(),
                orderId=order.id,
                leavesQty=_plain(order.remaining),
                execTime=str(fill.ts_ms),
                isMaker=fill.maker,
                execFee=_btc(fill.fee_btc),
                feeRate=_plain(fill.fee_rate),
                execId=fill.id,
                markPrice=_fixed(self.market.mark, 2),
                orderQty=_plain(order.amount),
                orderPrice=self.market.price(order.price or fill.price),
                execValue=_btc(fill.value_btc),
                execQty=_plain(fill.qty),
                closedSize=_plain(fill.qty) if fill.realized_btc else "0",
                execPnl=_btc(fill.realized_btc),
                execPrice=self.market.price(fill.price),
            )
            rows.append(row)
        envelope["result"]["list"] = rows
        return self.stamp(envelope)


class _Okx(_Dialect):
    """OKX v5, BTC-USD-SWAP, cross margin, net position mode."""

    routes = (
        ("GET", r"/api/v5/public/instruments", "instruments"),
        ("GET", r"/api/v5/market/ticker", "ticker"),
        ("GET", r"/api/v5/market/books", "books"),
        ("GET", r"/api/v5/public/mark-price", "mark_price"),
        ("GET", r"/api/v5/market/index-tickers", "index_tickers"),
        ("GET", r"/api/v5/public/funding-rate", "funding_rate"),
        ("GET", r"/api/v5/public/position-tiers", "static"),
        ("GET", r"/api/v5/account/balance", "balance"),
        ("GET", r"/api/v5/account/positions", "positions"),
        ("POST", r"/api/v5/trade/batch-orders", "create"),
        ("POST", r"/api/v5/trade/order", "create"),
        ("POST", r"/api/v5/trade/cancel-order", "cancel_order"),
        ("GET", r"/api/v5/trade/order", "order"),
        ("GET", r"/api/v5/trade/orders-pending", "pending"),
        ("GET", r"/api/v5/trade/fills-history", "fills"),
    )

    def instruments(self, params: Json, key: str) -> Json:
        envelope = self.template(key)
        envelope["data"] = [
            row
            for row in envelope["data"]
            if row["instType"] == params.get("instType", row["instType"])
            and row["instId"] == params.get("instId", row["instId"])
        ]
        return envelope

    def first_row(self, key: str) -> tuple[Json, Json]:
        envelope = self.template(key)
        return envelope, envelope["data"][0]

    def ticker(self, params: Json, key: str) -> Json:
        envelope, row = self.first_row(key)
        m = self.market
        row.update(
            last=m.price(m.last),
            askPx=m.price(m.best_ask),
            bidPx=m.price(m.best_bid),
            ts=str(self.now),
        )
        return envelope

    def books(self, params: Json, key: str) -> Json:
        envelope, book = self.first_row(key)
        book["asks"], book["bids"] = (
            self.shift_levels(book["asks"]),
            self.shift_levels(book["bids"]),
        )
        book["ts"] = str(self.now)
        return envelope

    def mark_price(self, params: Json, key: str) -> Json:
        envelope, row = self.first_row(key)
        row.update(markPx=self.market.price(self.market.mark), ts=str(self.now))
        return envelope

    def index_tickers(self, params: Json, key: str) -> Json:
        envelope, row = self.first_row(key)
        row.update(idxPx=self.market.price(self.market.index), ts=str(self.now))
        return envelope

    def funding_rate(self, params: Json, key: str) -> Json:
        envelope, row = self.first_row(key)
        funding_time = self.market.next_funding_ms(self.now)
        row.update(
            fundingRate=_plain(self.market.funding_rate, 16),
            fundingTime=str(funding_time),
            nextFundingTime=str(funding_time + self.market.funding_interval_ms),
            ts=str(self.now),
        )
        return envelope

    def balance(self, params: Json, key: str) -> Json:
        envelope, account_row = self.first_row(key)
        details = account_row["details"][0]
        a, mark = self.account, self.market.mark
        upnl, pos_im, orders_im = a.unrealized(mark), a.position_im(mark), self.orders_im()
        equity = a.wallet + upnl
        details.update(
            availBal=_btc(a.wallet - orders_im),
            availEq=_btc(self.available()),
            cashBal=_btc(a.wallet),
            eq=_btc(equity),
            eqUsd=_fixed(equity * self.market.index, 2),
            disEq=_fixed(equity * self.market.index, 2),
            frozenBal=_btc(pos_im + orders_im),
            ordFrozen=_btc(orders_im),
            imr=_btc(pos_im),
            mmr=_btc(a.position_mm(mark)),
            upl=_btc(upnl),
            notionalLever=_plain(a.value_btc(mark) / equity, 4) if equity else "0",
            uTime=str(self.now),
        )
        account_row.update(totalEq=_fixed(equity * self.market.index, 2), uTime=str(self.now))
        return envelope

    def positions(self, params: Json, key: str) -> Json:
        envelope, row = self.first_row(key)
        a, m = self.account, self.market
        if a.contracts == 0 or a.entry is None:
            envelope["data"] = []
            return envelope
        upnl, im = a.unrealized(m.mark), a.position_im(m.mark)
        liquidation = a.liquidation_price()
        row.update(
            avgPx=_plain(a.entry),
            bePx=_plain(a.entry),
            idxPx=m.price(m.index),
            last=m.price(m.last),
            markPx=m.price(m.mark),
            imr=_btc(im),
            mmr=_btc(a.position_mm(m.mark)),
            liqPx=m.price(liquidation) if liquidation else "",
            lever=_plain(a.leverage),
            notionalUsd=_plain(a.notional_usd),
            pos=_plain(a.contracts),
            upl=_btc(upnl),
            uplLastPx=_btc(a.sign * a.notional_usd * (ONE / a.entry - ONE / m.last)),
            uplRatio=_plain(upnl / im, 4) if im else "0",
            realizedPnl=_btc(a.realized - a.fees),
            pnl=_btc(a.realized),
            fee=_btc(-a.fees),
            uTime=str(self.now),
        )
        return envelope

    def intent(self, body: Json) -> _Intent:
        ord_type = str(body["ordType"])
        return _Intent(
            side=str(body["side"]),
            type="market" if ord_type == "market" else "limit",
            amount=_dec(body["sz"]),
            price=_dec(body["px"]) if body.get("px") not in (None, "") else None,
            reduce_only=_flag(body.get("reduceOnly")),
            post_only=ord_type == "post_only",
            time_in_force={"post_only": "PO", "ioc": "IOC"}.get(ord_type, "GTC"),
            client_id=str(body.get("clOrdId", "")),
        )

    def create(self, params: Json, key: str) -> Json:
        requests = params if isinstance(params, list) else [params]
        envelope = self.template(key)
        sample = envelope["data"][0]
        rows: list[Json] = []
        for body in requests:
            order_id = str(2510789768709120000 + self.venue._next_id())
            order = self.place(self.intent(body), order_id)
            row = copy.deepcopy(sample)
            row.update(clOrdId=order.client_id, ordId=order.id, ts=str(self.now))
            rows.append(row)
        envelope["data"] = rows
        return envelope

    def adjust_error(self, kind: str, body: Json, params: Json, order: VenueOrder | None) -> None:
        for row in body.get("data", []):
            if isinstance(row, dict) and "sCode" in row:
                row["ts"] = str(self.now)
                request = params[0] if isinstance(params, list) and params else params
                if order is not None:
                    row["clOrdId"], row["ordId"] = order.client_id, order.id
                elif isinstance(request, dict):
                    row["clOrdId"] = request.get("clOrdId", "")
                    row["ordId"] = request.get("ordId", "")

    def cancel_order(self, params: Json, key: str) -> Json:
        order = self.cancel(self.find(params.get("ordId"), params.get("clOrdId")))
        envelope, row = self.first_row(key)
        row.update(clOrdId=order.client_id, ordId=order.id, ts=str(self.now))
        return envelope

    def state(self, order: VenueOrder) -> str:
        if order.status == "open":
            return "partially_filled" if order.filled else "live"
        return "filled" if order.status == "filled" else "canceled"

    def order_row(self, sample: Json, order: VenueOrder) -> Json:
        row = copy.deepcopy(sample)
        m = self.market
        ord_type = {"PO": "post_only", "IOC": "ioc"}.get(order.time_in_force, "limit")
        row.update(
            accFillSz=_plain(order.filled),
            avgPx=m.price(order.average) if order.average else "",
            cTime=str(order.created_ms),
            clOrdId=order.client_id,
            fee=_btc(-order.fee_btc),
            fillPx=m.price(order.last_fill_price) if order.last_fill_price else "",
            fillSz=_plain(order.last_fill_qty),
            fillTime=str(order.updated_ms) if order.filled else "",
            instId=order.symbol,
            lever=_plain(self.account.leverage),
            ordId=order.id,
            ordType="market" if order.type == "market" else ord_type,
            px=m.price(order.price) if order.price is not None else "",
            reduceOnly="true" if order.reduce_only else "false",
            side=order.side,
            state=self.state(order),
            cancelSource="1" if order.canceled_by_user else "",
            sz=_plain(order.amount),
            uTime=str(order.updated_ms),
        )
        return row

    def order(self, params: Json, key: str) -> Json:
        found = self.find(params.get("ordId"), params.get("clOrdId"))
        if found is None:
            raise _Rejection("order_not_found")
        envelope, sample = self.first_row(key)
        envelope["data"] = [self.order_row(sample, found)]
        return envelope

    def pending(self, params: Json, key: str) -> Json:
        envelope, sample = self.first_row(key)
        orders = sorted(self.open_orders(), key=lambda o: -o.created_ms)
        envelope["data"] = [self.order_row(sample, o) for o in orders]
        return envelope

    def fills(self, params: Json, key: str) -> Json:
        envelope, sample = self.first_row(key)
        rows: list[Json] = []
        for fill in reversed(self.fills_for(params.get("ordId"))):
            row = copy.deepcopy(sample)
            row.update(
                side=fill.side,
                fillSz=_plain(fill.qty),
                fillPx=self.market.price(fill.price),
                fee=_btc(-fill.fee_btc),
                fillPnl=_btc(fill.realized_btc),
                ordId=fill.order_id,
                feeRate=_plain(-fill.fee_rate),
                clOrdId=fill.client_id,
                billId=str(2510789768763645952 + len(rows)),
                fillTime=str(fill.ts_ms),
                execType="M" if fill.maker else "T",
                fillIdxPx=self.market.price(self.market.index),
                fillMarkPx=self.market.price(self.market.mark),
                tradeId=str(743212934 + self.venue.fills.index(fill)),
                ts=str(fill.ts_ms),
            )
            rows.append(row)
        envelope["data"] = rows
        return envelope


class _BinanceCoinM(_Dialect):
    """Binance COIN-M (dapi), BTCUSD_PERP, one-way mode, cross margin."""

    routes = (
        ("GET", r"/dapi/v1/exchangeInfo", "exchange_info"),
        ("GET", r"/dapi/v1/ticker/24hr", "ticker"),
        ("GET", r"/dapi/v1/depth", "depth"),
        ("GET", r"/dapi/v1/premiumIndex", "premium_index"),
        ("GET", r"/dapi/v1/fundingInfo", "static"),
        ("GET", r"/dapi/v2/leverageBracket", "brackets"),
        ("GET", r"/dapi/v1/account", "account_info"),
        ("GET", r"/dapi/v1/positionRisk", "position_risk"),
        ("POST", r"/dapi/v1/order", "create"),
        ("DELETE", r"/dapi/v1/order", "cancel_order"),
        ("GET", r"/dapi/v1/order", "query_order"),
        ("GET", r"/dapi/v1/openOrders", "open_orders_list"),
        ("GET", r"/dapi/v1/userTrades", "user_trades"),
    )

    def exchange_info(self, params: Json, key: str) -> Json:
        envelope = self.template(key)
        envelope["serverTime"] = self.now
        return envelope

    def ticker(self, params: Json, key: str) -> Json:
        rows = self.template(key)
        rows[0].update(lastPrice=self.market.price(self.market.last), closeTime=self.now)
        return rows

    def depth(self, params: Json, key: str) -> Json:
        book = self.template(key)
        book["bids"], book["asks"] = (
            self.shift_levels(book["bids"]),
            self.shift_levels(book["asks"]),
        )
        book["E"] = book["T"] = self.now
        return book

    def premium_index(self, params: Json, key: str) -> Json:
        rows = self.template(key)
        m = self.market
        rows[0].update(
            markPrice=_fixed(m.mark, 8),
            indexPrice=_fixed(m.index, 8),
            lastFundingRate=_fixed(m.funding_rate, 8),
            nextFundingTime=m.next_funding_ms(self.now),
            time=self.now,
        )
        return rows

    def brackets(self, params: Json, key: str) -> Json:
        rows = self.template(key)
        pair = params.get("symbol")
        return [r for r in rows if pair in (None, r["symbol"])]

    def position_row(self, row: Json) -> None:
        a, m = self.account, self.market
        liquidation = a.liquidation_price()
        row.update(
            positionAmt=_plain(a.contracts),
            entryPrice=_fixed(a.entry, 8) if a.entry else "0.0",
            breakEvenPrice=_fixed(a.entry, 8) if a.entry else "0.0",
            markPrice=_fixed(m.mark, 8),
            unRealizedProfit=_btc(a.unrealized(m.mark)),
            liquidationPrice=m.price(liquidation) if liquidation else "0",
            leverage=_plain(a.leverage),
            notionalValue=_btc(a.sign * a.value_btc(m.mark)) if a.contracts else "0",
            updateTime=self.now if a.contracts else 0,
        )

    def position_risk(self, params: Json, key: str) -> Json:
        rows = self.template(key)
        self.position_row(rows[0])
        return rows

    def account_info(self, params: Json, key: str) -> Json:
        envelope = self.template(key)
        asset = envelope["assets"][0]
        a, mark = self.account, self.market.mark
        upnl, pos_im, orders_im = a.unrealized(mark), a.position_im(mark), self.orders_im()
        available = self.available()
        asset.update(
            walletBalance=_btc(a.wallet),
            unrealizedProfit=_btc(upnl),
            marginBalance=_btc(a.wallet + upnl),
            maintMargin=_btc(a.position_mm(mark)),
            initialMargin=_btc(pos_im + orders_im),
            positionInitialMargin=_btc(pos_im),
            openOrderInitialMargin=_btc(orders_im),
            maxWithdrawAmount=_btc(available),
            crossWalletBalance=_btc(a.wallet),
            crossUnPnl=_btc(upnl),
            availableBalance=_btc(available),
            updateTime=self.now,
        )
        position = envelope["positions"][0]
        position.update(
            unrealizedProfit=_btc(upnl),
            initialMargin=_btc(pos_im),
            positionInitialMargin=_btc(pos_im),
            maintMargin=_btc(a.position_mm(mark)),
            openOrderInitialMargin=_btc(orders_im),
            entryPrice=_fixed(a.entry, 8) if a.entry else "0.0",
            notionalValue=_btc(a.sign * a.value_btc(mark)) if a.contracts else "0",
            updateTime=self.now if a.contracts else 0,
        )
        return envelope

    def intent(self, form: Json) -> _Intent:
        order_type = str(form["type"]).lower()
        tif = str(form.get("timeInForce", "GTC"))
        return _Intent(
            side=str(form["side"]).lower(),
            type=order_type,
            amount=_dec(form["quantity"]),
            price=_dec(form["price"]) if order_type == "limit" else None,
            reduce_only=_flag(form.get("reduceOnly")),
            post_only=tif == "GTX",
            time_in_force={"GTX": "PO", "IOC": "IOC"}.get(tif, "GTC"),
            client_id=str(form.get("newClientOrderId", "")),
        )

    def status(self, order: VenueOrder) -> str:
        if order.status == "open":
            return "PARTIALLY_FILLED" if order.filled else "NEW"
        if order.status == "filled":
            return "FILLED"
        return "EXPIRED" if order.status == "rejected" or not order.canceled_by_user else "CANCELED"

    def order_row(self, row: Json, order: VenueOrder) -> Json:
        m = self.market
        filled_base = (
            order.filled * self.account.contract_size / order.average if order.average else ZERO
        )
        row.update(
            orderId=int(order.id),
            clientOrderId=order.client_id,
            price=m.price(order.price) if order.price is not None else "0",
            avgPrice=m.price(order.average) if order.average else "0.0",
            origQty=_plain(order.amount),
            executedQty=_plain(order.filled),
            cumBase=_btc(filled_base) if order.filled else "0",
            status=self.status(order),
            timeInForce={"PO": "GTX", "IOC": "IOC"}.get(order.time_in_force, "GTC"),
            type=order.type.upper(),
            origType=order.type.upper(),
            reduceOnly=order.reduce_only,
            side=order.side.upper(),
            updateTime=order.updated_ms,
        )
        if "cumQty" in row:
            row["cumQty"] = _plain(order.filled)
        if "time" in row:
            row["time"] = order.created_ms
        return row

    def create(self, params: Json, key: str) -> Json:
        order_id = str(31645132110 + self.venue._next_id())
        order = self.place(self.intent(params), order_id)
        return self.order_row(self.template(key), order)

    def lookup(self, params: Json) -> VenueOrder | None:
        return self.find(params.get("orderId"), params.get("origClientOrderId"))

    def cancel_order(self, params: Json, key: str) -> Json:
        return self.order_row(self.template(key), self.cancel(self.lookup(params)))

    def query_order(self, params: Json, key: str) -> Json:
        found = self.lookup(params)
        if found is None:
            raise _Rejection("order_not_found")
        return self.order_row(self.template(key), found)

    def open_orders_list(self, params: Json, key: str) -> Json:
        sample = self.template(key)[0]
        orders = sorted(self.open_orders(), key=lambda o: o.created_ms)
        return [self.order_row(copy.deepcopy(sample), o) for o in orders]

    def user_trades(self, params: Json, key: str) -> Json:
        sample = self.template(key)[0]
        rows: list[Json] = []
        for fill in self.fills_for(params.get("orderId")):
            row = copy.deepcopy(sample)
            row.update(
                id=1154812990 + self.venue.fills.index(fill),
                orderId=int(fill.order_id),
                side=fill.side.upper(),
                price=self.market.price(fill.price),
                qty=_plain(fill.qty),
                realizedPnl=_btc(fill.realized_btc) if fill.realized_btc else "0",
                baseQty=_btc(fill.value_btc),
                commission=_btc(fill.fee_btc),
                time=fill.ts_ms,
                buyer=fill.side == "buy",
                maker=fill.maker,
            )
            rows.append(row)
        return rows


class _KrakenFutures(_Dialect):
    """Kraken Futures v3, PI_XBTUSD, the inverse margin account fi_xbtusd."""

    routes = (
        ("GET", r"/derivatives/api/v3/instruments", "stamped"),
        ("GET", r"/derivatives/api/v3/tickers/[^/]+", "ticker"),
        ("GET", r"/derivatives/api/v3/tickers", "tickers"),
        ("GET", r"/derivatives/api/v3/orderbook", "orderbook"),
        ("GET", r"/derivatives/api/v3/accounts", "accounts"),
        ("GET", r"/derivatives/api/v3/openpositions", "open_positions"),
        ("POST", r"/derivatives/api/v3/sendorder", "send_order"),
        ("POST", r"/derivatives/api/v3/cancelorder", "cancel_order"),
        ("GET", r"/derivatives/api/v3/openorders", "open_orders_list"),
        ("GET", r"/derivatives/api/v3/orders/status", "orders_status"),
        ("GET", r"/derivatives/api/v3/fills", "fills"),
    )
    status_window_ms = 5_000  # orders/status shows closed orders for 5 s after their last event

    def stamped(self, params: Json, key: str) -> Json:
        envelope = self.template(key)
        envelope["serverTime"] = _iso(self.now)
        return envelope

    def ticker_row(self, row: Json) -> None:
        m = self.market
        absolute = m.funding_rate / m.mark  # BTC per 1-USD contract per hour
        row.update(
            markPrice=_number(m.mark),
            bid=_number(m.best_bid),
            ask=_number(m.best_ask),
            last=_number(m.last),
            indexPrice=_number(m.index),
            lastTime=_iso(self.now),
            fundingRate=float(absolute),
            fundingRatePrediction=float(absolute),
        )

    def ticker(self, params: Json, key: str) -> Json:
        envelope = self.stamped(params, f"GET /derivatives/api/v3/tickers/{self.venue.symbol}")
        self.ticker_row(envelope["ticker"])
        return envelope

    def tickers(self, params: Json, key: str) -> Json:
        envelope = self.stamped(params, key)
        for row in envelope["tickers"]:
            if row["symbol"] == self.venue.symbol:
                self.ticker_row(row)
        return envelope

    def orderbook(self, params: Json, key: str) -> Json:
        envelope = self.stamped(params, key)
        book = envelope["orderBook"]
        for side in ("bids", "asks"):
            book[side] = [[_number(self.market.shifted(p)), s] for p, s in book[side]]
        return envelope

    def accounts(self, params: Json, key: str) -> Json:
        envelope = self.stamped(params, key)
        margin = envelope["accounts"]["fi_xbtusd"]
        a, mark = self.account, self.market.mark
        upnl = a.unrealized(mark)
        margin["balances"]["xbt"] = _number(a.wallet)
        margin["auxiliary"].update(
            pv=_number(a.wallet + upnl), pnl=_number(upnl), af=_number(self.available())
        )
        margin["marginRequirements"].update(
            im=_number(a.position_im(mark) + self.orders_im()), mm=_number(a.position_mm(mark))
        )
        return envelope

    def open_positions(self, params: Json, key: str) -> Json:
        envelope = self.stamped(params, key)
        a = self.account
        if a.contracts == 0 or a.entry is None:
            envelope["openPositions"] = []
            return envelope
        row = envelope["openPositions"][0]
        opened = next((f.ts_ms for f in reversed(self.venue.fills)), self.now)
        row.update(
            side="long" if a.contracts > 0 else "short",
            symbol=self.venue.symbol,
            price=_number(a.entry),
            fillTime=_iso(opened),
            size=_number(abs(a.contracts)),
            unrealizedFunding=0.0,
            unrealizedPnl=_number(a.unrealized(self.market.mark)),
        )
        return envelope

    def order_dict(self, sample: Json, order: VenueOrder, *, filled: Decimal | None = None) -> Json:
        row = copy.deepcopy(sample)
        kind = {"PO": "post", "IOC": "ioc"}.get(order.time_in_force, "lmt")
        price = order.price if order.price is not None else (order.average or self.market.last)
        row.update(
            orderId=order.id,
            cliOrdId=order.client_id or None,
            type="ioc" if order.type == "market" else kind,
            symbol=order.symbol,
            side=order.side,
            quantity=_number(order.amount),
            filled=_number(order.filled if filled is None else filled),
            limitPrice=_number(price),
            reduceOnly=order.reduce_only,
            timestamp=_iso(order.created_ms),
        )
        if "lastUpdateTimestamp" in row:
            row["lastUpdateTimestamp"] = _iso(order.updated_ms)
        return row

    def intent(self, query: Json) -> _Intent:
        kind = str(query["orderType"])
        return _Intent(
            side=str(query["side"]),
            type="market" if kind == "mkt" else "limit",
            amount=_dec(query["size"]),
            price=_dec(query["limitPrice"]) if query.get("limitPrice") else None,
            reduce_only=_flag(query.get("reduceOnly")),
            post_only=kind == "post",
            time_in_force={"post": "PO", "ioc": "IOC"}.get(kind, "GTC"),
            client_id=str(query.get("cliOrdId", "")),
        )

    def send_order(self, params: Json, key: str) -> Json:
        envelope = self.stamped(params, key)
        status = envelope["sendStatus"]
        place_event = status["orderEvents"][0]
        order = self.place(self.intent(params), self.venue._uuid())
        status.update(order_id=order.id, receivedTime=_iso(order.created_ms))
        if order.status == "rejected":
            reasons = {"post_only": "postWouldExecute", "reduce_only": "wouldNotReducePosition"}
            status["status"] = reasons[order.reject_reason]
            reject = {"uid": order.id, "order": self.order_dict(place_event["order"], order)}
            status["orderEvents"] = [{**reject, "reason": status["status"], "type": "REJECT"}]
            return envelope
        fills = self.fills_for(order.id)
        if not fills:
            place_event.update(
                uid=self.venue._uuid(), order=self.order_dict(place_event["order"], order)
            )
            return envelope
        prior = self.order_dict(place_event["order"], order, filled=ZERO)
        status["orderEvents"] = [
            {
                "type": "EXECUTION",
                "executionId": f.id,
                "price": _number(f.price),
                "amount": _number(f.qty),
                "orderPriorEdit": None,
                "orderPriorExecution": prior,
                "takerReducedQuantity": None,
            }
            for f in fills
        ]
        return envelope

    def cancel_order(self, params: Json, key: str) -> Json:
        found = self.find(params.get("order_id"), params.get("cliOrdId"))
        order = self.cancel(found)
        envelope = self.stamped(params, key)
        status = envelope["cancelStatus"]
        event = status["orderEvents"][0]
        event.update(uid=order.id, order=self.order_dict(event["order"], order))
        status.update(order_id=order.id, receivedTime=_iso(self.now))
        return envelope

    def adjust_error(self, kind: str, body: Json, params: Json, order: VenueOrder | None) -> None:
        if "serverTime" in body:
            body["serverTime"] = _iso(self.now)
        cancel_status = body.get("cancelStatus")
        if cancel_status is not None:
            cancel_status["receivedTime"] = _iso(self.now)
            if order is not None and order.status == "filled":
                cancel_status["status"] = "filled"

    def open_orders_list(self, params: Json, key: str) -> Json:
        envelope = self.stamped(params, key)
        sample = envelope["openOrders"][0]
        rows: list[Json] = []
        for order in sorted(self.open_orders(), key=lambda o: o.created_ms):
            row = copy.deepcopy(sample)
            row.update(
                order_id=order.id,
                cliOrdId=order.client_id or None,
                symbol=order.symbol,
                side=order.side,
                orderType="post" if order.post_only else "lmt",
                limitPrice=_number(order.price or ZERO),
                unfilledSize=_number(order.remaining),
                receivedTime=_iso(order.created_ms),
                status="partiallyFilled" if order.filled else "untouched",
                filledSize=_number(order.filled),
                reduceOnly=order.reduce_only,
                lastUpdateTime=_iso(order.updated_ms),
            )
            rows.append(row)
        envelope["openOrders"] = rows
        return envelope

    def lifecycle(self, order: VenueOrder) -> str:
        if order.status == "open":
            return "PARTIALLY_FILLED" if order.filled else "ENTERED_BOOK"
        return "FULLY_EXECUTED" if order.status == "filled" else "CANCELLED"

    def orders_status(self, params: Json, key: str) -> Json:
        def as_list(value: Any) -> list[str]:
            return [] if value is None else value if isinstance(value, list) else [value]

        envelope = self.stamped(params, key)
        sample = envelope["orders"][0]
        wanted = [self.find(order_id=i) for i in as_list(params.get("orderIds"))]
        wanted += [self.find(client_id=c) for c in as_list(params.get("cliOrdIds"))]
        rows: list[Json] = []
        for order in wanted:
            if order is None:
                continue
            if not order.is_open and self.now - order.updated_ms > self.status_window_ms:
                continue
            row = copy.deepcopy(sample)
            row["order"] = self.order_dict(sample["order"], order)
            row["status"] = self.lifecycle(order)
            rows.append(row)
        envelope["orders"] = rows
        return envelope

    def fills(self, params: Json, key: str) -> Json:
        envelope = self.stamped(params, key)
        sample = envelope["fills"][0]
        rows: list[Json] = []
        for fill in reversed(self.venue.fills):
            row = copy.deepcopy(sample)
            row.update(
                fill_id=fill.id,
                symbol=self.venue.symbol,
                side=fill.side,
                order_id=fill.order_id,
                cliOrdId=fill.client_id or None,
                size=_number(fill.qty),
                price=_number(fill.price),
                fillTime=_iso(fill.ts_ms),
                fillType="maker" if fill.maker else "taker",
            )
            rows.append(row)
        envelope["fills"] = rows
        return envelope


_DIALECTS: dict[str, Callable[[RecordedVenue], _Dialect]] = {
    "bybit": _Bybit,
    "okx": _Okx,
    "binancecoinm": _BinanceCoinM,
    "krakenfutures": _KrakenFutures,
}
