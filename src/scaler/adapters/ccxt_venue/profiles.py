"""What differs between the inverse venues, as data: one :class:`VenueProfile` per ccxt id.

Everything venue-specific the adapter needs lives here, taken from ccxt 4.5.x's behaviour
(see the project's ccxt-venues reference): the amount unit of ``create_order`` (Deribit: USD,
everyone else: contracts of ``contractSize`` USD), the field that carries our client order id
(Deribit: ``label``, which ccxt does not map), where mark, index and funding come from, the
funding interval when the venue does not report it, and how the testnet is reached.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from scaler.domain.inverse import LinearMargin, MarginSchedule

HOUR_S = 3_600.0


class TestnetSwitch(enum.StrEnum):
    """How a ccxt class is moved off mainnet."""

    SANDBOX = "sandbox"  # set_sandbox_mode(True), guarded on urls['test']
    DEMO = "demo"  # enable_demo_trading(True): Binance futures testnet is closed to ccxt


class MarketSource(enum.StrEnum):
    """A REST call that supplies part of a market snapshot."""

    TICKER = "ticker"  # fetch_ticker: bid/ask, and mark/index where the venue puts them there
    FUNDING = "funding"  # fetch_funding_rate: rate, interval, next time (mark/index on some)
    MARK = "mark"  # fetch_mark_price (OKX: the ticker has no mark)
    INDEX = "index"  # OKX index ticker of the underlying


@dataclass(frozen=True, slots=True)
class VenueProfile:
    venue: str
    """The ccxt id."""
    amount_in_usd: bool
    """``create_order`` amounts are USD (Deribit) instead of contracts."""
    client_id_param: str
    """The ``create_order`` param that carries our client order id."""
    client_id_alphanumeric: bool
    """The venue accepts only letters and digits in client ids (OKX ``clOrdId``)."""
    rest_sources: tuple[MarketSource, ...]
    """REST calls that together give mark, index, bid/ask and funding."""
    funding_in_ticker: bool
    """The ticker payload carries the funding rate (no separate funding call needed)."""
    default_funding_interval_s: float
    testnet: TestnetSwitch
    margin_fallback: MarginSchedule | None = None
    """Used when ccxt has no leverage tiers for the venue."""
    by_label: bool = False
    """Orders are looked up by ``label`` through Deribit's ``get_order_state_by_label``."""
    balance_is_equity: bool = True
    """ccxt's ``total`` balance of the settlement coin includes unrealised PnL."""
    tiers_in_contracts: bool = False
    """ccxt's leverage-tier notionals are contracts (OKX, Kraken), not coin (Binance, Bybit)."""
    lookup_param: str = ""
    """The ``fetch_order`` param that finds an order by the venue-side client id."""
    lookup_order_id: str | None = None
    """The order id passed with ``lookup_param`` (Kraken's ccxt needs a string, not ``None``)."""
    lookup_extra: tuple[tuple[str, object], ...] = ()
    """Further ``fetch_order`` params (Bybit's unified account insists on ``acknowledged``)."""
    client_options: tuple[tuple[str, object], ...] = ()
    """ccxt ``options`` that keep market loading to the inverse swaps."""
    skip_currencies: bool = False
    """Skip ``fetch_currencies`` on ``load_markets`` (a private call on Bybit)."""
    balance_account_prefix: str = ""
    """Kraken keeps each inverse contract's margin in its own account, ``fi_<pair>``."""

    def balance_params(self, market_id: str) -> dict[str, str]:
        """The ``fetch_balance`` params for the account that margins ``market_id``."""
        if not self.balance_account_prefix:
            return {}
        pair = market_id.split("_", 1)[-1].lower()
        return {"type": f"{self.balance_account_prefix}{pair}"}

    def encode_client_id(self, client_order_id: str) -> str:
        """Our client id as the venue accepts it (reversible for our own ids)."""
        if self.client_id_alphanumeric:
            return client_order_id.replace("-", "")
        return client_order_id

    def decode_client_id(self, venue_client_id: str | None) -> str:
        """The venue's client id back in our form; foreign ids pass through unchanged."""
        if not venue_client_id:
            return ""
        if self.client_id_alphanumeric:
            match = _PACKED_ID.fullmatch(venue_client_id)
            if match is not None:
                return f"{match.group(1)}-{match.group(2)}"
        return venue_client_id


_PACKED_ID = re.compile(r"([A-Za-z0-9]{1,16})(\d{12})")

DERIBIT_MAINTENANCE = LinearMargin(base_mmr=0.01, mmr_per_coin=0.00005)
"""Deribit BTC: 1 % + 0.005 % per BTC of position (since January 2022)."""

PROFILES: dict[str, VenueProfile] = {
    "deribit": VenueProfile(
        venue="deribit",
        amount_in_usd=True,
        client_id_param="label",
        client_id_alphanumeric=False,
        rest_sources=(MarketSource.TICKER,),
        funding_in_ticker=True,
        default_funding_interval_s=8 * HOUR_S,  # funding_8h: continuous, quoted per 8 h
        testnet=TestnetSwitch.SANDBOX,
        margin_fallback=DERIBIT_MAINTENANCE,
        by_label=True,
    ),
    "bybit": VenueProfile(
        venue="bybit",
        amount_in_usd=False,
        client_id_param="clientOrderId",
        client_id_alphanumeric=False,
        rest_sources=(MarketSource.TICKER,),
        funding_in_ticker=True,
        default_funding_interval_s=8 * HOUR_S,
        testnet=TestnetSwitch.SANDBOX,
        balance_is_equity=False,  # total is walletBalance
        lookup_param="orderLinkId",
        lookup_extra=(("acknowledged", True),),
        client_options=(("fetchMarkets", {"types": ["inverse"]}),),
        skip_currencies=True,
    ),
    "okx": VenueProfile(
        venue="okx",
        amount_in_usd=False,
        client_id_param="clientOrderId",
        client_id_alphanumeric=True,
        rest_sources=(
            MarketSource.TICKER,
            MarketSource.MARK,
            MarketSource.INDEX,
            MarketSource.FUNDING,
        ),
        funding_in_ticker=False,
        default_funding_interval_s=8 * HOUR_S,
        testnet=TestnetSwitch.SANDBOX,
        tiers_in_contracts=True,
        lookup_param="clOrdId",
        client_options=(("fetchMarkets", {"types": ["swap"]}),),
    ),
    "binancecoinm": VenueProfile(
        venue="binancecoinm",
        amount_in_usd=False,
        client_id_param="clientOrderId",
        client_id_alphanumeric=False,
        rest_sources=(MarketSource.TICKER, MarketSource.FUNDING),
        funding_in_ticker=False,
        default_funding_interval_s=8 * HOUR_S,
        testnet=TestnetSwitch.DEMO,
        lookup_param="origClientOrderId",
    ),
    "krakenfutures": VenueProfile(
        venue="krakenfutures",
        amount_in_usd=False,
        client_id_param="clientOrderId",
        client_id_alphanumeric=False,
        rest_sources=(MarketSource.TICKER,),
        funding_in_ticker=True,  # ccxt's fetch_funding_rate mis-scales the inverse rate
        default_funding_interval_s=HOUR_S,
        testnet=TestnetSwitch.SANDBOX,
        tiers_in_contracts=True,
        lookup_param="cliOrdId",
        lookup_order_id="",
        balance_account_prefix="fi_",
    ),
}


def profile_for(venue: str) -> VenueProfile:
    """The profile of a supported venue; ``KeyError`` names the unsupported one."""
    try:
        return PROFILES[venue]
    except KeyError:
        raise KeyError(f"no ccxt venue profile for {venue!r}") from None
