"""Market snapshots from a ccxt venue: ccxt.pro websockets first, REST polling as fallback.

Ticker (bid/ask, and mark/index/funding where the venue puts them there) and order book are
streamed; whatever the ticker lacks (OKX mark and index, Binance and Kraken funding) is polled.
When the stream has been silent for ``stream_silence_s`` the ticker and book are polled over
REST until it speaks again. A venue that goes quiet on both paths yields nothing new, so the
engine sees the mark age grow and freezes: a silent feed is a stale feed.

Snapshots are conflated: the engine always gets the latest one, never a backlog.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from scaler.adapters.ccxt_venue.calls import Caller
from scaler.adapters.ccxt_venue.parsing import finite, positive
from scaler.adapters.ccxt_venue.profiles import HOUR_S, MarketSource, VenueProfile
from scaler.domain.types import NS_PER_S, InstrumentKey, MarketSnapshot
from scaler.errors import VenueError
from scaler.ports import Clock

NS_PER_MS = 1_000_000
WS_RETRY_S = (0.5, 1.0, 2.0, 5.0)


@dataclass(frozen=True, slots=True)
class FeedOptions:
    websocket: bool = True
    poll_interval_s: float = 1.0
    stream_silence_s: float = 3.0
    book_depth: int = 10


@dataclass(slots=True)
class _View:
    """The latest value of every part of a snapshot, as the sources report them."""

    ts_event_ns: int | None = None
    ts_emitted_ns: int | None = None
    bid: float | None = None
    ask: float | None = None
    mark: float | None = None
    index: float | None = None
    funding: float | None = None
    predicted: float | None = None
    interval_s: float | None = None
    ts_funding_ns: int | None = None
    bids: tuple[tuple[float, float], ...] = ()
    asks: tuple[tuple[float, float], ...] = ()


class CcxtFeed:
    """A :class:`scaler.ports.MarketFeed` for one instrument at one ccxt venue."""

    def __init__(
        self,
        client: Any,
        profile: VenueProfile,
        key: InstrumentKey,
        clock: Clock,
        caller: Caller,
        options: FeedOptions,
        on_error: Callable[[str, str], None] = lambda kind, detail: None,
        on_bad_input: Callable[[InstrumentKey, str], None] = lambda key, reason: None,
    ) -> None:
        self._client = client
        self._profile = profile
        self._key = key
        self._clock = clock
        self._call = caller
        self._options = options
        self._on_error = on_error
        self._on_bad_input = on_bad_input
        self._view = _View()
        self._latest: MarketSnapshot | None = None
        self._ready = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._ts_stream_ns = 0
        self._closed = False

    # ---- MarketFeed

    async def stream(self) -> AsyncIterator[MarketSnapshot]:
        self._start()
        while not self._closed:
            await self._ready.wait()
            self._ready.clear()
            snapshot = self._latest
            if snapshot is not None and not self._closed:
                yield snapshot

    async def close(self) -> None:
        self._closed = True
        self._ready.set()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()

    def _start(self) -> None:
        if self._tasks:
            return
        self._closed = False
        loops = [self._poll()]
        if self._options.websocket:
            loops += [
                self._watch(self._watch_ticker, "ticker"),
                self._watch(self._watch_book, "book"),
            ]
        self._tasks = [asyncio.create_task(loop) for loop in loops]

    # ---- websocket

    async def _watch(self, once: Callable[[], Any], name: str) -> None:
        attempt = 0
        while not self._closed:
            try:
                await once()
                attempt = 0
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - a dropped stream is counted, then reopened
                self._on_error("feed_ws", f"{name}: {type(exc).__name__}: {str(exc)[:200]}")
                await self._clock.sleep(WS_RETRY_S[min(attempt, len(WS_RETRY_S) - 1)])
                attempt += 1

    async def _watch_ticker(self) -> None:
        ticker = await self._client.watch_ticker(self._key.symbol)
        self._ts_stream_ns = self._clock.now_ns()
        self._apply_ticker(ticker)

    async def _watch_book(self) -> None:
        book = await self._client.watch_order_book(self._key.symbol, self._options.book_depth)
        self._ts_stream_ns = self._clock.now_ns()
        self._apply_book(book)

    # ---- REST

    async def _poll(self) -> None:
        silence_ns = int(self._options.stream_silence_s * NS_PER_S)
        while not self._closed:
            streaming = (
                self._options.websocket and self._clock.now_ns() - self._ts_stream_ns < silence_ns
            )
            try:
                await self._poll_once(streaming)
            except asyncio.CancelledError:
                raise
            except VenueError as exc:
                self._on_error("feed_rest", str(exc))
            await self._clock.sleep(self._options.poll_interval_s)

    async def _poll_once(self, streaming: bool) -> None:
        client, symbol = self._client, self._key.symbol
        sources = self._profile.rest_sources
        if MarketSource.FUNDING in sources:
            self._apply_funding(
                await self._call.read("fetch_funding_rate", client.fetch_funding_rate, symbol)
            )
        if MarketSource.MARK in sources:
            mark = await self._call.read("fetch_mark_price", client.fetch_mark_price, symbol)
            self._view.mark = positive(mark.get("markPrice")) or self._view.mark
        if MarketSource.INDEX in sources:
            self._view.index = await self._okx_index() or self._view.index
        if streaming:
            return
        book = await self._call.read(
            "fetch_order_book", client.fetch_order_book, symbol, self._options.book_depth
        )
        self._apply_book(book)
        self._apply_ticker(await self._call.read("fetch_ticker", client.fetch_ticker, symbol))

    async def _okx_index(self) -> float | None:
        market = self._client.market(self._key.symbol)
        underlying = f"{market['base']}-{market['quote']}"
        response = await self._call.read(
            "fetch_index", self._client.publicGetMarketIndexTickers, {"instId": underlying}
        )
        rows = response.get("data") or [{}]
        return positive(rows[0].get("idxPx"))

    # ---- assembling

    def _apply_ticker(self, ticker: dict[str, Any]) -> None:
        view = self._view
        info = ticker.get("info") or {}
        bid = positive(ticker.get("bid")) or view.bid  # Binance's ticker has none: the book's
        ask = positive(ticker.get("ask")) or view.ask
        if bid is None or ask is None:
            self._on_bad_input(self._key, "missing_bid_ask")
            return
        view.bid, view.ask = bid, ask
        view.mark = positive(ticker.get("markPrice")) or view.mark
        view.index = positive(ticker.get("indexPrice")) or view.index
        ts_ns = _ts_ns(ticker.get("timestamp")) or self._clock.now_ns()
        if self._profile.funding_in_ticker:
            self._funding_from_ticker(info, ts_ns, view.mark)
        if view.ts_event_ns is not None and ts_ns <= view.ts_event_ns:
            return  # nothing new (a frozen REST ticker): no repeated snapshot
        view.ts_event_ns = ts_ns
        self._emit()

    def _funding_from_ticker(self, info: dict[str, Any], ts_ns: int, mark: float | None) -> None:
        view = self._view
        venue = self._profile.venue
        predicted = None
        if venue == "deribit":
            rate = finite(info.get("funding_8h"))
            interval_s = 8 * HOUR_S
        elif venue == "krakenfutures":
            # PI_ contracts quote funding as USD per contract per hour divided by the price,
            # so the relative hourly rate is the quote times the mark (ccxt divides instead).
            absolute = finite(info.get("fundingRate"))
            rate = absolute * mark if absolute is not None and mark else None
            upcoming = finite(info.get("fundingRatePrediction"))
            predicted = upcoming * mark if upcoming is not None and mark else None
            interval_s = HOUR_S
        else:  # bybit: fundingRate per the instrument's interval
            rate = finite(info.get("fundingRate"))
            interval_s = self._market_interval_s()
        if rate is None:
            return
        view.funding, view.interval_s, view.ts_funding_ns = rate, interval_s, ts_ns
        view.predicted = predicted

    def _apply_funding(self, data: dict[str, Any]) -> None:
        view = self._view
        rate = finite(data.get("fundingRate"))
        if rate is None:
            self._on_bad_input(self._key, "missing_funding_rate")
            return
        view.funding = rate
        view.interval_s = _interval_s(data.get("interval")) or self._market_interval_s()
        view.ts_funding_ns = _ts_ns(data.get("timestamp")) or self._clock.now_ns()
        view.mark = positive(data.get("markPrice")) or view.mark
        view.index = positive(data.get("indexPrice")) or view.index

    def _market_interval_s(self) -> float:
        market = self._client.market(self._key.symbol)
        minutes = finite((market.get("info") or {}).get("fundingInterval"))
        return minutes * 60.0 if minutes else self._profile.default_funding_interval_s

    def _apply_book(self, book: dict[str, Any]) -> None:
        """Book levels ride on the next ticker's snapshot (a book update alone emits nothing:
        its top of book may equal the last snapshot's, which the engine counts as a duplicate)."""
        try:
            bids = tuple(self._level(level) for level in book.get("bids") or ())
            asks = tuple(self._level(level) for level in book.get("asks") or ())
        except (TypeError, ValueError, IndexError):
            self._on_bad_input(self._key, "malformed_book")
            return
        view = self._view
        view.bids, view.asks = bids, asks
        if bids and asks:
            view.bid, view.ask = bids[0][0], asks[0][0]

    def _level(self, level: Any) -> tuple[float, float]:
        price, amount = float(level[0]), float(level[1])
        if self._profile.amount_in_usd:
            return price, amount
        market = self._client.market(self._key.symbol)
        return price, amount * float(market.get("contractSize") or 1.0)

    def _emit(self) -> None:
        view = self._view
        bid, ask, mark, index = view.bid, view.ask, view.mark, view.index
        rate, interval_s, ts_ns = view.funding, view.interval_s, view.ts_event_ns
        if (
            bid is None
            or ask is None
            or mark is None
            or index is None
            or rate is None
            or interval_s is None
            or ts_ns is None
        ):
            return  # not every part has arrived yet
        ts_event_ns = max(ts_ns, view.ts_emitted_ns or 0)
        self._latest = MarketSnapshot(
            key=self._key,
            ts_event_ns=ts_event_ns,
            ts_recv_ns=self._clock.now_ns(),
            mark_price=mark,
            index_price=index,
            best_bid=bid,
            best_ask=ask,
            funding_rate=rate,
            funding_interval_s=interval_s,
            ts_funding_ns=view.ts_funding_ns or ts_event_ns,
            predicted_funding_rate=view.predicted,
            bids=view.bids,
            asks=view.asks,
        )
        view.ts_emitted_ns = ts_event_ns
        self._ready.set()


def _ts_ns(value: Any) -> int | None:
    ms = finite(value)
    return int(ms) * NS_PER_MS if ms is not None and ms > 0 else None


def _interval_s(value: Any) -> float | None:
    """ccxt's funding ``interval`` ('8h', '1h', '4h') in seconds."""
    if not isinstance(value, str) or not value.endswith("h"):
        return None
    hours = finite(value[:-1])
    return hours * HOUR_S if hours else None
