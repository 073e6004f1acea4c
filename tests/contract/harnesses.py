"""The transports the venue contract suite runs over: one harness per venue and transport.

Every harness exposes the same thing: a ``Broker`` (and ``InstrumentSource`` where the venue
has one) for ``key``, a way to move the market, and, for network transports, a way to make the
next request fail. The paper exchange is the reference; the ccxt harnesses run the project's
adapter over the unmodified ccxt classes, with only ccxt's request function replaced by
recorded venue payloads (:mod:`tests.venues.recorded`), or over real HTTP against
``scaler exchange-sim``.
"""

from __future__ import annotations

import asyncio
import base64
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from scaler.adapters.ccxt_venue import Caller, ClientOptions, build_client, profile_for
from scaler.adapters.ccxt_venue.broker import CcxtBroker
from scaler.adapters.paper import PaperExchange, PaperInstrument
from scaler.adapters.sim import Credentials, ExchangeSim, SimStore
from scaler.domain.types import NS_PER_S, InstrumentKey, MarketSnapshot
from tests.support import PushFeed
from tests.venues.recorded import RecordedVenue

SYMBOL = "BTC/USD:BTC"
T0_NS = 1_700_006_400 * NS_PER_S


class InstantClock:
    """Wall time that never sleeps: retries and backoffs run at once in tests."""

    def __init__(self) -> None:
        self.sleeps: list[float] = []
        self._now_ns = T0_NS

    def now_ns(self) -> int:
        self._now_ns += 1_000_000
        return self._now_ns

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self._now_ns += int(seconds * NS_PER_S)
        await asyncio.sleep(0)  # let other tasks run, as a real sleep would


def deep_tick(key: InstrumentKey, ts_ns: int, price: float) -> MarketSnapshot:
    """A tick at ``price`` with a one-tick spread and 5M USD a side: orders fill at the touch."""
    return MarketSnapshot(
        key=key,
        ts_event_ns=ts_ns,
        ts_recv_ns=ts_ns,
        mark_price=price,
        index_price=price,
        best_bid=price - 0.5,
        best_ask=price + 0.5,
        funding_rate=0.0001,
        funding_interval_s=28_800.0,
        ts_funding_ns=ts_ns,
        bids=((price - 0.5, 5_000_000.0),),
        asks=((price + 0.5, 5_000_000.0),),
    )


class Harness(Protocol):
    name: str
    key: InstrumentKey
    broker: Any
    lot_usd: float
    """The venue's order increment in USD, as published (not read from the adapter)."""
    faults: bool
    """Whether the transport can be made to fail (false for the in-process exchange)."""

    async def set_price(self, price: float) -> None: ...

    def fail_next(self, kind: str) -> None: ...

    def order_requests(self) -> int: ...

    async def close(self) -> None: ...


@dataclass
class PaperHarness:
    """The in-process paper exchange: the reference behaviour."""

    name: str = "paper"
    faults: bool = False
    lot_usd: float = 10.0

    def __post_init__(self) -> None:
        self.key = InstrumentKey("paper", SYMBOL)
        self.exchange = PaperExchange(
            PaperInstrument(self.key, lot_size_usd=10), initial_balance_coin=0.5
        )
        self.broker = self.exchange
        self._ts_ns = T0_NS

    async def set_price(self, price: float) -> None:
        self._ts_ns += NS_PER_S
        snapshot = deep_tick(self.key, self._ts_ns, price)
        self.exchange.on_market(snapshot)

    def fail_next(self, kind: str) -> None:
        raise NotImplementedError("the in-process exchange has no transport to fail")

    def order_requests(self) -> int:
        return sum(self.exchange.counters().orders_by_status.values())

    async def close(self) -> None:
        return None


PUBLISHED_LOT_USD = {"bybit": 1.0, "okx": 100.0, "binancecoinm": 100.0, "krakenfutures": 1.0}
"""One contract of each venue's BTC inverse perpetual, from the venues' contract specs."""


class RecordedHarness:
    """The ccxt adapter over an unmodified ccxt class whose requests are answered from
    recorded venue payloads."""

    faults = True

    def __init__(self, venue: str) -> None:
        self.name = f"{venue}-recorded"
        self.key = InstrumentKey(venue, SYMBOL)
        self.lot_usd = PUBLISHED_LOT_USD[venue]
        options = ClientOptions(
            api_key="recorded-api-key",
            api_secret=base64.b64encode(b"recorded-venue-dummy-secret").decode(),
            password="recorded-passphrase",
        )
        profile = profile_for(venue)
        self.client = build_client(profile, options)
        self.client.enableRateLimit = False  # krakenfutures would wait 600 ms per call
        self.client.timeout_on_exit = 0
        self.venue = RecordedVenue(venue)
        self.venue.install(self.client)
        self.clock = InstantClock()
        self.broker = CcxtBroker(
            self.client, profile, self.clock, Caller(self.clock), account_interval_s=0.0
        )

    async def start(self) -> RecordedHarness:
        await self.broker.load()
        return self

    async def set_price(self, price: float) -> None:
        self.venue.set_mark(price)
        self.venue.set_fill_price(price)

    def fail_next(self, kind: str) -> None:
        self.venue.fail_next(kind)

    def order_requests(self) -> int:
        creates = ("order/create", "batch-orders", "dapi/v1/order", "sendorder")
        return sum(
            1
            for r in self.venue.requests
            if r.method == "POST" and any(c in r.url for c in creates)
        )

    async def close(self) -> None:
        await self.broker.close()
        await self.client.close()


DERIBIT_KEY, DERIBIT_SECRET = "contract-key", "contract-secret-0b9e4d1c"


class SimHarness:
    """The ccxt adapter on deribit, over real HTTP, against ``scaler exchange-sim`` in process.
    Its injected faults are rates, not one-shots: they are exercised in
    ``tests/integration/test_ccxt_sim_adapter.py`` and the e2e tier instead."""

    faults = False
    lot_usd = 10.0  # Deribit BTC-PERPETUAL: amounts in USD, multiples of 10

    def __init__(self, state_path: Path) -> None:
        self.name = "deribit-sim"
        self.key = InstrumentKey("deribit", SYMBOL)
        self._sim_key = InstrumentKey("exchange-sim", SYMBOL)
        exchange = PaperExchange(
            PaperInstrument(self._sim_key, lot_size_usd=10, tick_size=0.5),
            initial_balance_coin=0.5,
        )
        self.sim = ExchangeSim(
            exchange,
            PushFeed(),
            credentials=Credentials(DERIBIT_KEY, DERIBIT_SECRET),
            store=SimStore(state_path),
            rng=random.Random(7),
        )
        self.clock = InstantClock()
        self._ts_ns = time.time_ns()

    async def start(self) -> SimHarness:
        await self.sim.start()
        await self.set_price(50_000.0)
        options = ClientOptions(
            api_key=DERIBIT_KEY, api_secret=DERIBIT_SECRET, url=self.sim.url, timeout_s=2.0
        )
        self.client = build_client(profile_for("deribit"), options)
        self.client.timeout_on_exit = 0
        self.broker = CcxtBroker(
            self.client, profile_for("deribit"), self.clock, Caller(self.clock), 0.0
        )
        await self.broker.load()
        return self

    async def set_price(self, price: float) -> None:
        self._ts_ns += NS_PER_S
        tick = deep_tick(self._sim_key, self._ts_ns, price)
        assert self.sim.market.apply(tick)

    def fail_next(self, kind: str) -> None:
        raise NotImplementedError("the sim's faults are rates; see tests/integration")

    def order_requests(self) -> int:
        return sum(self.sim.store.request_counts().values())

    async def close(self) -> None:
        await self.broker.close()
        await self.client.close()
        await self.sim.stop()
