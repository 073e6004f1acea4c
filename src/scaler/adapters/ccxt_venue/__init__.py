"""The ccxt venue adapter: the only place in the project that imports ccxt.

venue = await open_venue(profile_for("deribit"), ClientOptions(url=...), clock, Caller(clock))
feed = venue.feed(key, FeedOptions())        # MarketFeed
broker = venue.broker                        # Broker and InstrumentSource
...
await venue.close()
"""

from scaler.adapters.ccxt_venue.broker import CcxtBroker
from scaler.adapters.ccxt_venue.calls import Caller
from scaler.adapters.ccxt_venue.client import ClientOptions, build_client
from scaler.adapters.ccxt_venue.feed import CcxtFeed, FeedOptions
from scaler.adapters.ccxt_venue.profiles import PROFILES, VenueProfile, profile_for
from scaler.adapters.ccxt_venue.venue import CcxtVenue, open_venue

__all__ = [
    "PROFILES",
    "Caller",
    "CcxtBroker",
    "CcxtFeed",
    "CcxtVenue",
    "ClientOptions",
    "FeedOptions",
    "VenueProfile",
    "build_client",
    "open_venue",
    "profile_for",
]
