"""Orders, account and instrument facts at a ccxt venue, behind the Broker and InstrumentSource
ports.

Amounts cross this edge in both directions: the loop speaks USD notionals, Deribit takes USD and
the other venues contracts of ``contractSize`` USD. ccxt's ``amount_to_precision`` truncates
silently, so an amount that is not a whole number of venue lots is refused here instead.

Account, positions and open orders are read together and cached for ``account_interval_s``; an
order or cancel invalidates the cache, so the next decision sees the venue's answer, while quiet
ticks cost no request.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from scaler.adapters.ccxt_venue.calls import Caller
from scaler.adapters.ccxt_venue.errors import is_not_found
from scaler.adapters.ccxt_venue.parsing import finite, positive
from scaler.adapters.ccxt_venue.profiles import VenueProfile
from scaler.domain.inverse import MarginSchedule, TierBasis, TierTable
from scaler.domain.orders import (
    Fill,
    Liquidity,
    OrderRequest,
    OrderSide,
    OrderStatus,
    OrderType,
    OrderUpdate,
)
from scaler.domain.types import NS_PER_S, AccountSnapshot, InstrumentKey
from scaler.errors import (
    BadInputError,
    OutcomeUnknownError,
    RejectedError,
    TransientError,
    VenueError,
)
from scaler.ports import Clock

NS_PER_MS = 1_000_000
LOT_TOLERANCE = 1e-9
KNOWN_ORDERS = 10_000

_STATUS = {
    "open": OrderStatus.OPEN,
    "closed": OrderStatus.FILLED,
    "filled": OrderStatus.FILLED,
    "canceled": OrderStatus.CANCELLED,
    "cancelled": OrderStatus.CANCELLED,
    "expired": OrderStatus.CANCELLED,
    "rejected": OrderStatus.REJECTED,
}


@dataclass(slots=True)
class _Cache:
    account: AccountSnapshot | None = None
    open_orders: list[OrderUpdate] = field(default_factory=list)
    ts_read_ns: int = 0
    wanted: int = 0
    """Bumped after each of our orders and cancels has been answered."""
    seen: int = -1
    """The ``wanted`` value when the last complete read began: the read reflects our actions
    up to that one."""
    fills: list[Fill] = field(default_factory=list)
    ts_fills_read_ns: int = 0
    fill_ids: set[str] = field(default_factory=set)
    refreshing: asyncio.Task[None] | None = None
    poller: asyncio.Task[None] | None = None


class CcxtBroker:
    """A :class:`scaler.ports.Broker` and :class:`scaler.ports.InstrumentSource` for one venue."""

    def __init__(
        self,
        client: Any,
        profile: VenueProfile,
        clock: Clock,
        caller: Caller,
        account_interval_s: float = 2.0,
        fallback_schedule: MarginSchedule | None = None,
        on_bad_input: Callable[[InstrumentKey, str, str], None] = lambda key, feed, reason: None,
        on_error: Callable[[str, str], None] = lambda kind, detail: None,
    ) -> None:
        self._client = client
        self._on_error = on_error
        self._profile = profile
        self._clock = clock
        self._call = caller
        self._interval_ns = int(account_interval_s * NS_PER_S)
        self._fallback = fallback_schedule or profile.margin_fallback
        self._on_bad_input = on_bad_input
        self._cache: dict[InstrumentKey, _Cache] = {}
        self._client_ids: dict[str, str] = {}
        """The venue's order id -> our client order id, for fills (kept with ``_known``)."""
        self._known: dict[str, OrderUpdate] = {}
        """The last state seen of each of our orders (bounded), for terse venue answers."""

    # ---- setup and instrument facts

    async def load(self) -> None:
        """Load (or reuse the preloaded snapshot of) the venue's markets."""
        await self._call.read("load_markets", self._client.load_markets)

    def market(self, key: InstrumentKey) -> dict[str, Any]:
        try:
            market: dict[str, Any] = self._client.market(key.symbol)
        except Exception as exc:
            raise RejectedError(f"{self._profile.venue} lists no {key.symbol}: {exc}") from exc
        return market

    def contract_usd(self, key: InstrumentKey) -> float:
        """USD per unit of the venue's ``amount`` (1 on Deribit, ``contractSize`` elsewhere)."""
        if self._profile.amount_in_usd:
            return 1.0
        return float(self.market(key).get("contractSize") or 1.0)

    async def lot_size_usd(self, key: InstrumentKey) -> float:
        step = float(self.market(key)["precision"]["amount"] or 1.0)
        return step * self.contract_usd(key)

    def tick_size(self, key: InstrumentKey) -> float:
        return float(self.market(key)["precision"]["price"])

    async def margin_schedule(self, key: InstrumentKey) -> MarginSchedule:
        """The venue's maintenance tiers where ccxt reads them, else the fallback schedule."""
        has = self._client.has
        if has.get("fetchMarketLeverageTiers") or has.get("fetchLeverageTiers"):
            tiers = await self._call.read(
                "fetch_market_leverage_tiers",
                self._client.fetch_market_leverage_tiers,
                key.symbol,
            )
            table = self._tier_table(key, tiers)
            if table is not None:
                return table
        if self._fallback is None:
            raise RejectedError(f"{self._profile.venue}: no maintenance-margin schedule")
        return self._fallback

    def _tier_table(self, key: InstrumentKey, tiers: list[dict[str, Any]]) -> TierTable | None:
        rows = sorted(
            (float(t.get("minNotional") or 0.0), float(t["maintenanceMarginRate"]), t)
            for t in tiers
            if t.get("maintenanceMarginRate") is not None
        )
        if not rows:
            return None
        scale = self.contract_usd(key) if self._profile.tiers_in_contracts else 1.0
        basis = TierBasis.USD if self._profile.tiers_in_contracts else TierBasis.COIN
        levs = [positive(t.get("maxLeverage")) for _, _, t in rows]
        return TierTable.from_rates(
            [floor * scale for floor, _, _ in rows], [mmr for _, mmr, _ in rows], basis, levs
        )

    # ---- orders

    async def place_order(self, request: OrderRequest) -> OrderUpdate:
        key = request.key
        amount = self._venue_amount(key, request.amount_usd)
        params: dict[str, Any] = {
            self._profile.client_id_param: self._profile.encode_client_id(request.client_order_id)
        }
        if request.reduce_only:
            params["reduceOnly"] = True
        if request.post_only:
            params["postOnly"] = True
        price = None
        if request.order_type is OrderType.LIMIT and request.limit_price is not None:
            price = float(self._client.price_to_precision(key.symbol, request.limit_price))
        try:
            order = await self._call.write(
                "create_order",
                self._client.create_order,
                key.symbol,
                request.order_type.value,
                request.side.value,
                amount,
                price,
                params,
            )
        finally:
            self._refresh_soon(key)
        if order.get("status") is None:  # Bybit answers a create with ids only
            return await self._acknowledged(request, order)
        try:
            return self._update(key, order, request)
        except BadInputError as exc:  # it was accepted, but its answer is unreadable
            self._on_bad_input(key, "order", exc.reason)
            raise OutcomeUnknownError(f"create_order: unreadable answer: {exc}") from exc

    async def _acknowledged(self, request: OrderRequest, order: dict[str, Any]) -> OrderUpdate:
        """The state of an order whose creation was acknowledged without one: looked up, or
        reported open until the next account refresh shows what happened to it."""
        acknowledged = OrderUpdate(
            key=request.key,
            client_order_id=request.client_order_id,
            venue_order_id=str(order["id"]) if order.get("id") is not None else None,
            status=OrderStatus.OPEN,
            side=request.side,
            amount_usd=request.amount_usd,
            filled_usd=0.0,
            average_fill_price=None,
            ts_ns=self._clock.now_ns(),
        )
        self._remember(acknowledged)
        try:
            found = await self.fetch_order(request.key, request.client_order_id)
        except VenueError:
            found = None
        return found if found is not None else acknowledged

    def _venue_amount(self, key: InstrumentKey, amount_usd: float) -> float:
        amount = amount_usd / self.contract_usd(key)
        step = float(self.market(key)["precision"]["amount"] or 1.0)
        lots = amount / step
        if lots < 1.0 - LOT_TOLERANCE or abs(lots - round(lots)) > LOT_TOLERANCE * max(1.0, lots):
            lot_usd = step * self.contract_usd(key)
            raise RejectedError(f"{amount_usd} USD is not a whole number of {lot_usd} USD lots")
        return round(lots) * step

    async def cancel_order(self, key: InstrumentKey, client_order_id: str) -> OrderUpdate:
        known = self._known.get(client_order_id)
        venue_id = known.venue_order_id if known is not None else None
        if venue_id is None:
            found = await self.fetch_order(key, client_order_id)
            if found is None or found.venue_order_id is None:
                raise RejectedError(f"cancel: no order {client_order_id} at the venue")
            if found.status.is_terminal:
                return found
            venue_id = found.venue_order_id
        try:
            order = await self._call.read(
                "cancel_order", self._client.cancel_order, venue_id, key.symbol
            )
        except RejectedError as exc:
            if not is_not_found(exc.__cause__):
                raise
            found = await self.fetch_order(key, client_order_id)  # filled meanwhile?
            if found is None:
                raise
            return found
        finally:
            self._refresh_soon(key)
        if order.get("status") is None:  # acknowledged with ids only (Bybit)
            found = await self.fetch_order(key, client_order_id)
            if found is not None and found.status.is_terminal:
                return found
            known = found or self._known.get(client_order_id)
            if known is None:
                raise OutcomeUnknownError(f"cancel: {client_order_id} acknowledged, state unknown")
            return replace(known, status=OrderStatus.CANCELLED, ts_ns=self._clock.now_ns())
        update = self._update(key, order)
        if update.status is OrderStatus.OPEN:  # a venue that acknowledges without the state
            return _with_status(update, OrderStatus.CANCELLED)
        return update

    async def fetch_order(self, key: InstrumentKey, client_order_id: str) -> OrderUpdate | None:
        if self._profile.by_label:
            return await self._fetch_by_label(key, client_order_id)
        venue_cid = self._profile.encode_client_id(client_order_id)
        params = {self._profile.lookup_param: venue_cid, **dict(self._profile.lookup_extra)}
        try:
            order = await self._call.read(
                "fetch_order",
                self._client.fetch_order,
                self._profile.lookup_order_id,
                key.symbol,
                params,
            )
        except RejectedError as exc:
            if is_not_found(exc.__cause__):
                return await self._open_order_with(key, venue_cid)
            raise
        if not order or self._venue_client_id(order) not in (venue_cid, None):
            return await self._open_order_with(key, venue_cid)
        return self._update(key, order)

    async def _open_order_with(self, key: InstrumentKey, venue_cid: str) -> OrderUpdate | None:
        """Kraken forgets closed orders after seconds: a live order is still listed as open."""
        orders = await self._call.read(
            "fetch_open_orders", self._client.fetch_open_orders, key.symbol
        )
        return self._pick(key, [o for o in orders if self._venue_client_id(o) == venue_cid])

    async def _fetch_by_label(self, key: InstrumentKey, client_order_id: str) -> OrderUpdate | None:
        market = self.market(key)
        response = await self._call.read(
            "fetch_order_by_label",
            self._client.privateGetGetOrderStateByLabel,
            {"currency": market["base"], "label": client_order_id},
        )
        rows = response.get("result") if isinstance(response, dict) else None
        if not isinstance(rows, list):
            raise TransientError("fetch_order_by_label: malformed response")
        orders = self._client.parse_orders(rows, market)
        return self._pick(key, [o for o in orders if self._venue_client_id(o) == client_order_id])

    def _pick(self, key: InstrumentKey, orders: list[dict[str, Any]]) -> OrderUpdate | None:
        """The order under one client id; with several (a venue that allows duplicates), the
        live one, else the latest."""
        if not orders:
            return None
        updates = [self._update(key, order) for order in orders]
        live = [u for u in updates if not u.status.is_terminal]
        return live[0] if live else max(updates, key=lambda u: u.ts_ns)

    async def open_orders(self, key: InstrumentKey) -> list[OrderUpdate]:
        await self._refresh_if_due(key)
        return list(self._cache_for(key).open_orders)

    # ---- account and fills

    async def account(self, key: InstrumentKey) -> AccountSnapshot:
        await self._refresh_if_due(key)
        account = self._cache_for(key).account
        if account is None:
            raise TransientError("account: not read yet")
        return account

    async def _refresh_if_due(self, key: InstrumentKey) -> None:
        """Make the cache current enough for a decision.

        After our own order or cancel, the next decision waits for a read that *began after*
        the venue answered (it must see its own fill and its own resting order, or it would
        order twice or leave one behind). Otherwise the cache is refreshed in the background
        every ``account_interval_s`` and read for free: the snapshot carries its read time, so
        the risk layer sees how old it is.
        """
        cache = self._cache_for(key)
        self._ensure_poller(key)
        if not _stale(cache):
            return
        if cache.refreshing is not None and not cache.refreshing.done():
            with contextlib.suppress(Exception):  # a failed read leaves the cache stale
                await asyncio.shield(cache.refreshing)
        if _stale(cache):
            await self.refresh(key)

    def _ensure_poller(self, key: InstrumentKey) -> None:
        cache = self._cache_for(key)
        if self._interval_ns > 0 and (cache.poller is None or cache.poller.done()):
            cache.poller = asyncio.create_task(self._poll_account(key))

    async def _poll_account(self, key: InstrumentKey) -> None:
        cache = self._cache_for(key)
        while True:
            await self._clock.sleep(self._interval_ns / NS_PER_S)
            if cache.refreshing is None or cache.refreshing.done():
                cache.refreshing = asyncio.create_task(self._background_refresh(key))

    def _refresh_soon(self, key: InstrumentKey) -> None:
        """After an order or cancel: re-read the account in the background, so the next tick
        finds it fresh instead of paying for the reads before its own order."""
        cache = self._cache_for(key)
        cache.wanted += 1
        if cache.refreshing is None or cache.refreshing.done():
            cache.refreshing = asyncio.create_task(self._background_refresh(key))

    async def _background_refresh(self, key: InstrumentKey) -> None:
        try:
            await self.refresh(key)
        except VenueError as exc:  # counted; the cache ages and the risk layer sees it
            self._on_error("account_refresh", str(exc))

    async def close(self) -> None:
        """Stop background reads."""
        for cache in self._cache.values():
            for task in (cache.poller, cache.refreshing):
                if task is not None:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await task

    async def refresh(self, key: InstrumentKey) -> None:
        """Read balance, position and open orders now."""
        cache = self._cache_for(key)
        started = cache.wanted
        client, symbol = self._client, key.symbol
        try:
            params = self._profile.balance_params(str(self.market(key)["id"]))
            balance = await self._call.read("fetch_balance", client.fetch_balance, params)
            positions = await self._call.read("fetch_positions", client.fetch_positions, [symbol])
            orders = await self._call.read("fetch_open_orders", client.fetch_open_orders, symbol)
            account = self._account(key, balance, positions)
            updates = [self._update(key, order) for order in orders]
        except BadInputError as exc:
            self._on_bad_input(key, "account", exc.reason)
            raise TransientError(f"refresh: unreadable payload: {exc}") from exc
        cache.seen = max(cache.seen, started)
        cache.account = account
        cache.open_orders = [u for u in updates if u.status is OrderStatus.OPEN]
        cache.ts_read_ns = self._clock.now_ns()

    def _account(
        self, key: InstrumentKey, balance: dict[str, Any], positions: list[dict[str, Any]]
    ) -> AccountSnapshot:
        settle = str(self.market(key).get("settle") or "BTC")
        total = finite((balance.get("total") or {}).get(settle))
        if total is None:
            self._on_bad_input(key, "account", "missing_balance")
            raise TransientError(f"fetch_balance: no total for {settle}")
        position = next((p for p in positions if p.get("symbol") == key.symbol), None)
        size_usd, entry, upnl, liq, mm = 0.0, None, 0.0, None, None
        if position is not None:
            contracts = finite(position.get("contracts")) or 0.0
            sign = -1.0 if position.get("side") == "short" else 1.0
            size_usd = sign * abs(contracts) * self.contract_usd(key)
            entry = positive(position.get("entryPrice")) if size_usd else None
            upnl = finite(position.get("unrealizedPnl")) or 0.0
            liq = positive(position.get("liquidationPrice")) if size_usd else None
            mm = finite(position.get("maintenanceMargin")) if size_usd else None
        wallet = total - upnl if self._profile.balance_is_equity else total
        return AccountSnapshot(
            ts_ns=self._clock.now_ns(),
            wallet_balance_coin=wallet,
            unrealised_pnl_coin=upnl,
            position_usd=size_usd,
            entry_price=entry,
            maintenance_margin_coin=mm,
            liquidation_price=liq,
        )

    async def fills_since(self, key: InstrumentKey, ts_ns: int) -> list[Fill]:
        """Our fills after ``ts_ns``, read at most every ``account_interval_s``."""
        cache = self._cache_for(key)
        now_ns = self._clock.now_ns()
        if now_ns - cache.ts_fills_read_ns >= self._interval_ns:
            since_ms = ts_ns // NS_PER_MS if ts_ns > 0 else None
            trades = await self._call.read(
                "fetch_my_trades", self._client.fetch_my_trades, key.symbol, since_ms
            )
            cache.ts_fills_read_ns = now_ns
            for trade in trades:
                fill = self._fill(key, trade)
                if fill is not None and fill.fill_id not in cache.fill_ids:
                    cache.fill_ids.add(fill.fill_id)
                    cache.fills.append(fill)
            cache.fills = cache.fills[-1000:]
        return [fill for fill in cache.fills if fill.ts_ns > ts_ns]

    def _fill(self, key: InstrumentKey, trade: dict[str, Any]) -> Fill | None:
        info = trade.get("info") or {}
        venue_cid = info.get("label") if self._profile.by_label else trade.get("clientOrderId")
        cid = self._profile.decode_client_id(venue_cid) or self._client_ids.get(
            str(trade.get("order")), ""
        )
        amount, price = positive(trade.get("amount")), positive(trade.get("price"))
        if amount is None or price is None or trade.get("side") not in ("buy", "sell"):
            self._on_bad_input(key, "fills", "malformed_trade")
            return None
        fee = (trade.get("fee") or {}).get("cost")
        return Fill(
            key=key,
            client_order_id=cid,
            fill_id=str(trade.get("id")),
            side=OrderSide(trade["side"]),
            size_usd=amount * self.contract_usd(key),
            price=price,
            fee_coin=finite(fee) or 0.0,
            liquidity=Liquidity.MAKER if trade.get("takerOrMaker") == "maker" else Liquidity.TAKER,
            ts_ns=int(trade.get("timestamp") or 0) * NS_PER_MS,
        )

    # ---- parsing

    def _venue_client_id(self, order: dict[str, Any]) -> str | None:
        if self._profile.by_label:
            label = (order.get("info") or {}).get("label")
            return str(label) if label else None
        cid = order.get("clientOrderId")
        return str(cid) if cid else None

    def _update(
        self, key: InstrumentKey, order: dict[str, Any], request: OrderRequest | None = None
    ) -> OrderUpdate:
        cid = self._profile.decode_client_id(self._venue_client_id(order))
        if request is not None:
            cid = cid or request.client_order_id
        venue_id = str(order["id"]) if order.get("id") is not None else None
        status = _STATUS.get(str(order.get("status")))
        if status is None:
            raise BadInputError("order_status", f"unknown order status {order.get('status')!r}")
        usd = self.contract_usd(key)
        amount = finite(order.get("amount"))
        filled = finite(order.get("filled")) or 0.0
        side = order.get("side")
        if side is None:  # terse answers omit it: the request's, or the order's last known
            source = request or self._known.get(cid)
            side = source.side.value if source is not None else None
        if side not in ("buy", "sell"):
            raise BadInputError("order_side", f"unknown order side {side!r}")
        ts_ms = order.get("lastUpdateTimestamp") or order.get("timestamp")
        update = OrderUpdate(
            key=key,
            client_order_id=cid,
            venue_order_id=venue_id,
            status=status,
            side=OrderSide(side),
            amount_usd=self._amount_usd(amount, usd, request, cid),
            filled_usd=filled * usd,
            average_fill_price=positive(order.get("average")),
            ts_ns=int(ts_ms) * NS_PER_MS if ts_ms else self._clock.now_ns(),
        )
        if cid:
            self._remember(update)
        return update

    def _amount_usd(
        self, amount: float | None, usd: float, request: OrderRequest | None, cid: str
    ) -> float:
        if amount is not None:
            return amount * usd
        source = request or self._known.get(cid)
        return source.amount_usd if source is not None else 0.0

    def _remember(self, update: OrderUpdate) -> None:
        """Keep the latest state of our order, and its venue id both ways (bounded)."""
        known = self._known
        known.pop(update.client_order_id, None)
        known[update.client_order_id] = update
        if update.venue_order_id is not None:
            self._client_ids[update.venue_order_id] = update.client_order_id
        if len(known) > KNOWN_ORDERS:
            oldest = known.pop(next(iter(known)))
            if oldest.venue_order_id is not None:
                self._client_ids.pop(oldest.venue_order_id, None)

    def _cache_for(self, key: InstrumentKey) -> _Cache:
        cache = self._cache.get(key)
        if cache is None:
            cache = self._cache[key] = _Cache()
        return cache


def _stale(cache: _Cache) -> bool:
    return cache.account is None or cache.seen < cache.wanted


def _with_status(update: OrderUpdate, status: OrderStatus) -> OrderUpdate:
    return replace(update, status=status)
