"""Where ticks enter the simulator: the configured feed, and ``POST /admin/market``.

Each tick goes to the paper exchange first (funding settlement, resting orders filling,
liquidation), then to the websocket subscribers, as on a real venue where the state moves before
the ticker goes out. While the feed is stalled or paused (:mod:`faults`) the feed's ticks are
read and thrown away, so the market freezes and, when it resumes, jumps to the feed's present.
A tick the paper exchange refuses (out of order, absurd values) is counted and skipped.

The state is saved after every tick that changed one of our orders, and otherwise at most every
:data:`SAVE_INTERVAL_S` of wall time.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import structlog

from scaler.adapters.paper.feeds import BookShape
from scaler.adapters.sim.dialect import Levels
from scaler.adapters.sim.faults import FaultInjector
from scaler.adapters.sim.publisher import Publisher
from scaler.adapters.sim.venue import SimVenue
from scaler.domain.funding import normalise_rate
from scaler.domain.types import NS_PER_S, MarketSnapshot
from scaler.errors import BadInputError
from scaler.ports import Clock, MarketFeed

log = structlog.get_logger("scaler.exchange_sim")

SAVE_INTERVAL_S: Final = 5.0
MANUAL_DEPTH_USD: Final = 1_000_000.0
"""Depth of each side of a manual tick given an explicit ``best_bid``/``best_ask``."""


@dataclass(slots=True)
class MarketCounters:
    ticks: int = 0
    held: int = 0
    refused: int = 0


class Market:
    """Applies ticks to the venue and publishes them."""

    def __init__(
        self,
        venue: SimVenue,
        publisher: Publisher,
        faults: FaultInjector,
        clock: Clock,
        save: Callable[[], None],
    ) -> None:
        self._venue = venue
        self._publisher = publisher
        self._faults = faults
        self._clock = clock
        self._save = save
        self._ts_saved_ns = clock.now_ns()
        self.counters = MarketCounters()

    async def run(self, feed: MarketFeed) -> None:
        """Consume ``feed`` until it ends or the task is cancelled."""
        async for snapshot in feed.stream():
            if self._faults.faults.market_held:
                self.counters.held += 1
                continue
            self.apply(snapshot)

    def apply(self, snapshot: MarketSnapshot) -> bool:
        """One tick into the exchange and out to subscribers; ``False`` if it was refused."""
        listing = self._venue.listing_by_key(snapshot.key)
        try:
            outcome = self._venue.on_market(snapshot)
        except BadInputError as exc:
            self.counters.refused += 1
            log.warning("tick_refused", instrument=listing.name, reason=exc.reason)
            return False
        self.counters.ticks += 1
        self._publisher.market(listing, snapshot, outcome)
        now_ns = self._clock.now_ns()
        if outcome.orders or now_ns - self._ts_saved_ns >= SAVE_INTERVAL_S * NS_PER_S:
            self._save()
            self._ts_saved_ns = now_ns
        return True

    def manual_tick(self, body: Mapping[str, Any]) -> MarketSnapshot:
        """Build and apply the tick ``POST /admin/market`` asks for; ``ValueError`` if it cannot."""
        snapshot = manual_snapshot(self._venue, body, self._clock.now_ns())
        if not self.apply(snapshot):
            raise ValueError("the paper exchange refused this tick (see the log for the reason)")
        return snapshot


def _positive(body: Mapping[str, Any], name: str, default: float | None = None) -> float:
    value = body.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name}: must be a number")
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name}: must be a finite positive number")
    return float(value)


def manual_snapshot(venue: SimVenue, body: Mapping[str, Any], now_ns: int) -> MarketSnapshot:
    """A tick at ``mark_price`` now; unspecified fields come from the previous tick or defaults.

    Fields: ``mark_price`` (required), ``index_price`` (default: the mark), ``funding_rate`` (per
    the instrument's funding interval; default: the previous tick's, else 0), ``best_bid`` and
    ``best_ask`` (together; one level of 1,000,000 USD each), else a ten-level book 1 bp wide
    around the mark, ``instrument_name`` (default: the first listed).
    """
    name = body.get("instrument_name", next(iter(venue.listings)))
    listing = venue.listings.get(name) if isinstance(name, str) else None
    if listing is None:
        raise ValueError(f"instrument_name: unknown instrument {name!r}")
    mark = _positive(body, "mark_price")
    index = _positive(body, "index_price", mark)
    previous = venue.snapshots.get(listing.name)
    interval_s = venue.instrument(listing).funding_interval_s
    rate = body.get("funding_rate", 0.0)
    if previous is not None and "funding_rate" not in body:
        rate = normalise_rate(previous.funding_rate, previous.funding_interval_s, interval_s)
    if isinstance(rate, bool) or not isinstance(rate, int | float) or not math.isfinite(rate):
        raise ValueError("funding_rate: must be a finite number")
    if ("best_bid" in body) != ("best_ask" in body):
        raise ValueError("best_bid and best_ask: give both or neither")
    if "best_bid" in body:
        bid, ask = _positive(body, "best_bid"), _positive(body, "best_ask")
        if bid > ask:
            raise ValueError("best_bid: must not be above best_ask")
        bids: Levels = ((bid, MANUAL_DEPTH_USD),)
        asks: Levels = ((ask, MANUAL_DEPTH_USD),)
    else:
        bids, asks = BookShape().around(mark)
    ts_ns = max(now_ns, previous.ts_event_ns + 1) if previous else now_ns
    return MarketSnapshot(
        key=listing.key,
        ts_event_ns=ts_ns,
        ts_recv_ns=ts_ns,
        mark_price=mark,
        index_price=index,
        best_bid=bids[0][0],
        best_ask=asks[0][0],
        funding_rate=float(rate),
        funding_interval_s=float(interval_s),
        ts_funding_ns=ts_ns,
        bids=bids,
        asks=asks,
    )
