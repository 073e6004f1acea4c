"""The admin API under ``/admin/``: faults, websocket drops, the account and order log, ticks.

==========  ====================  =====  ===========================================================
method      path                  auth   what it does
==========  ====================  =====  ===========================================================
GET         /admin/healthz        no     ``{"status": "ok"}``
GET         /admin/faults         yes    the current fault knobs
POST        /admin/faults         yes    partial update of the knobs (validated, all or nothing);
                                         answers the new knobs, or 400 ``{"error": ...}``
POST        /admin/ws/drop        yes    close every websocket now: ``{"dropped": n}``
GET         /admin/state          yes    account, positions, open and all orders, the order
                                         request log (``?requests_since=<seq>&requests_limit=<n>``),
                                         counts, the market, the faults
POST        /admin/market         yes    apply and push one tick now: ``{"mark_price": 50000}``
                                         (see :func:`scaler.adapters.sim.market.manual_snapshot`)
==========  ====================  =====  ===========================================================

Authentication is ``Authorization: Bearer <sim api_secret>``, compared in constant time; anything
else is 401. Faults never apply here.
"""

from __future__ import annotations

import hmac
import json
import math
from collections import Counter
from dataclasses import dataclass
from typing import Any, Final

import structlog
from aiohttp import web

from scaler.adapters.sim.auth import Credentials
from scaler.adapters.sim.faults import FaultInjector
from scaler.adapters.sim.market import Market
from scaler.adapters.sim.orders import OrderView
from scaler.adapters.sim.state import SimStore
from scaler.adapters.sim.stream import StreamHub
from scaler.adapters.sim.venue import SimVenue
from scaler.ports import Clock

log = structlog.get_logger("scaler.exchange_sim")

PREFIX: Final = "/admin"
MAX_REQUESTS_LIMIT: Final = 100_000


@dataclass(frozen=True, slots=True)
class AdminContext:
    """The parts of a running simulator the admin API reads and drives."""

    credentials: Credentials
    venue: SimVenue
    faults: FaultInjector
    hub: StreamHub
    market: Market
    store: SimStore
    clock: Clock


def _json(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=lambda d: json.dumps(d, allow_nan=False))


def authorised(request: web.Request, credentials: Credentials) -> bool:
    supplied = request.headers.get("Authorization", "")
    expected = f"Bearer {credentials.api_secret}"
    return hmac.compare_digest(supplied.encode(), expected.encode())


async def _body(request: web.Request) -> dict[str, Any]:
    try:
        data = await request.json() if request.can_read_body else {}
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ValueError("the body must be a JSON object") from None
    if not isinstance(data, dict):
        raise ValueError("the body must be a JSON object")
    return data


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def order_summary(view: OrderView) -> dict[str, Any]:
    meta, update = view.meta, view.update
    return {
        "order_id": meta.order_id,
        "label": meta.label,
        "instrument_name": meta.instrument_name,
        "side": meta.side.value,
        "order_type": meta.order_type.value,
        "status": update.status.value,
        "amount_usd": update.amount_usd,
        "filled_usd": update.filled_usd,
        "price": meta.price,
        "average_price": update.average_fill_price,
        "reduce_only": meta.reduce_only,
        "post_only": meta.post_only,
        "is_liquidation": meta.is_liquidation,
        "ts_created_ms": meta.ts_created_ms,
        "ts_updated_ms": meta.ts_updated_ms,
    }


def account_state(venue: SimVenue) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The wallet (as seen from the first instrument) and every non-flat position."""
    exchange = venue.exchange
    positions = []
    for listing in venue.listings.values():
        position = exchange.position(listing.key)
        mark, _ = venue.mark_and_index(listing)
        if position.size_usd != 0:
            positions.append(
                {
                    "instrument_name": listing.name,
                    "position_usd": float(position.size_usd),
                    "entry_price": position.entry_price,
                    "mark_price": mark,
                    "unrealised_pnl_coin": position.unrealised_coin(mark) if mark else 0.0,
                }
            )
    first = next(iter(venue.listings.values()))
    snapshot = exchange.account_snapshot(first.key)
    account = {
        "currency": venue.currency,
        "wallet_balance_coin": snapshot.wallet_balance_coin,
        "equity_coin": snapshot.equity_coin,
        "unrealised_pnl_coin": snapshot.unrealised_pnl_coin,
        "position_usd": snapshot.position_usd,
        "entry_price": snapshot.entry_price,
        "liquidation_price": _finite(snapshot.liquidation_price),
        "maintenance_margin_coin": snapshot.maintenance_margin_coin,
        "mark_price": venue.mark_and_index(first)[0],
    }
    return account, positions


def _counts(ctx: AdminContext, orders: list[OrderView]) -> dict[str, Any]:
    by_label = Counter(view.meta.label for view in orders if view.meta.label)
    requests = ctx.store.request_counts()
    market = ctx.market.counters
    return {
        "orders": len(orders),
        "orders_by_status": dict(Counter(view.update.status.value for view in orders)),
        "open_orders": sum(not view.update.status.is_terminal for view in orders),
        "duplicate_labels": sum(1 for n in by_label.values() if n > 1),
        "fills": len(ctx.venue.trades()),
        "requests": sum(requests.values()),
        "requests_by_outcome": requests,
        "ws_connections": len(ctx.hub.sessions),
        "ticks": market.ticks,
        "ticks_held": market.held,
        "ticks_refused": market.refused,
        "ticker_pushes": ctx.hub.ticker_pushes,
        "ts_last_ticker_push_ns": ctx.hub.ts_last_ticker_push_ns,
    }


def _market(venue: SimVenue) -> list[dict[str, Any]]:
    return [
        {
            "instrument_name": name,
            "ts_event_ns": snap.ts_event_ns,
            "mark_price": snap.mark_price,
            "index_price": snap.index_price,
            "best_bid": snap.best_bid,
            "best_ask": snap.best_ask,
            "funding_rate": snap.funding_rate,
            "change_id": venue.change_ids.get(name, 0),
        }
        for name, snap in venue.snapshots.items()
    ]


def _query_int(request: web.Request, name: str, default: int, high: int) -> int:
    try:
        value = int(request.query.get(name, default))
    except ValueError:
        raise ValueError(f"{name}: must be an integer") from None
    if not 0 <= value <= high:
        raise ValueError(f"{name}: must be in [0, {high}]")
    return value


def admin_routes(ctx: AdminContext) -> list[web.RouteDef]:
    """The admin routes over ``ctx``; each but healthz checks the bearer token."""

    def guarded(handler: Any) -> Any:
        async def wrapper(request: web.Request) -> web.Response:
            if not authorised(request, ctx.credentials):
                return _json({"error": "unauthorized"}, status=401)
            try:
                response: web.Response = await handler(request)
            except ValueError as exc:
                return _json({"error": str(exc)}, status=400)
            return response

        return wrapper

    async def healthz(_: web.Request) -> web.Response:
        return _json({"status": "ok"})

    async def get_faults(_: web.Request) -> web.Response:
        return _json(ctx.faults.faults.to_dict())

    async def post_faults(request: web.Request) -> web.Response:
        changes = await _body(request)
        faults = ctx.faults.update(changes)
        ctx.hub.reschedule_drops()
        log.info("faults_updated", changed=sorted(changes))
        return _json(faults.to_dict())

    async def drop_websockets(_: web.Request) -> web.Response:
        dropped = await ctx.hub.drop_all()
        log.info("ws_dropped", reason="admin", connections=dropped)
        return _json({"dropped": dropped})

    async def state(request: web.Request) -> web.Response:
        since = _query_int(request, "requests_since", 0, 2**62)
        limit = _query_int(request, "requests_limit", 1_000, MAX_REQUESTS_LIMIT)
        orders = ctx.venue.orders()
        account, positions = account_state(ctx.venue)
        return _json(
            {
                "ts_ns": ctx.clock.now_ns(),
                "account": account,
                "positions": positions,
                "open_orders": [
                    order_summary(v) for v in orders if not v.update.status.is_terminal
                ],
                "orders": [order_summary(view) for view in orders],
                "requests": ctx.store.requests(since, limit),
                "counts": _counts(ctx, orders),
                "market": _market(ctx.venue),
                "faults": ctx.faults.faults.to_dict(),
            }
        )

    async def market(request: web.Request) -> web.Response:
        snapshot = ctx.market.manual_tick(await _body(request))
        name = ctx.venue.listing_by_key(snapshot.key).name
        return _json(
            {
                "instrument_name": name,
                "mark_price": snapshot.mark_price,
                "ts_event_ns": snapshot.ts_event_ns,
                "change_id": ctx.venue.change_ids.get(name, 0),
            }
        )

    return [
        web.get(f"{PREFIX}/healthz", healthz),
        web.get(f"{PREFIX}/faults", guarded(get_faults)),
        web.post(f"{PREFIX}/faults", guarded(post_faults)),
        web.post(f"{PREFIX}/ws/drop", guarded(drop_websockets)),
        web.get(f"{PREFIX}/state", guarded(state)),
        web.post(f"{PREFIX}/market", guarded(market)),
    ]
