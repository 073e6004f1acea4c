"""One connected ccxt venue: the client, its broker and its market feeds, opened and closed
together."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scaler.adapters.ccxt_venue.broker import CcxtBroker
from scaler.adapters.ccxt_venue.calls import Caller
from scaler.adapters.ccxt_venue.client import ClientOptions, build_client, markets_snapshot
from scaler.adapters.ccxt_venue.feed import CcxtFeed, FeedOptions
from scaler.adapters.ccxt_venue.profiles import VenueProfile
from scaler.domain.inverse import MarginSchedule
from scaler.domain.types import InstrumentKey
from scaler.ports import Clock


@dataclass
class CcxtVenue:
    """The parts of one venue connection; ``close`` releases the client's sessions."""

    profile: VenueProfile
    client: Any
    broker: CcxtBroker
    caller: Caller
    clock: Clock
    feeds: dict[InstrumentKey, CcxtFeed] = field(default_factory=dict)

    def feed(
        self,
        key: InstrumentKey,
        options: FeedOptions,
        on_bad_input: Callable[[InstrumentKey, str], None] = lambda key, reason: None,
        on_error: Callable[[str, str], None] = lambda kind, detail: None,
    ) -> CcxtFeed:
        feed = CcxtFeed(
            self.client, self.profile, key, self.clock, self.caller, options, on_error, on_bad_input
        )
        self.feeds[key] = feed
        return feed

    def save_markets(self, path: Path) -> None:
        """Write the loaded markets for an offline start (``exchange.markets_path``)."""
        path.write_text(json.dumps(markets_snapshot(self.client), sort_keys=True))

    async def close(self) -> None:
        for feed in self.feeds.values():
            await feed.close()
        await self.broker.close()
        await self.client.close()


async def open_venue(
    profile: VenueProfile,
    options: ClientOptions,
    clock: Clock,
    caller: Caller,
    account_interval_s: float = 2.0,
    fallback_schedule: MarginSchedule | None = None,
    on_bad_input: Callable[[InstrumentKey, str, str], None] = lambda key, feed, reason: None,
    on_error: Callable[[str, str], None] = lambda kind, detail: None,
) -> CcxtVenue:
    """Build the client and load its markets (from the snapshot when one is configured)."""
    client = build_client(profile, options)
    broker = CcxtBroker(
        client,
        profile,
        clock,
        caller,
        account_interval_s,
        fallback_schedule,
        on_bad_input,
        on_error,
    )
    try:
        await broker.load()
    except BaseException:
        await client.close()
        raise
    return CcxtVenue(profile, client, broker, caller, clock)
