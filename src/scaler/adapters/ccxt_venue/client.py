"""Building the ccxt client for a venue: testnet or demo by default, local URLs, cached markets.

One ccxt.pro instance serves both REST and websockets, so ccxt's own rate limiter sees every
request the daemon makes to the venue (it is per instance, see the ccxt-venues reference).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import ccxt.pro as ccxtpro

from scaler.adapters.ccxt_venue.profiles import TestnetSwitch, VenueProfile
from scaler.errors import ConfigError

RATE_WINDOW_MS = 1_000


@dataclass(frozen=True, slots=True)
class ClientOptions:
    """The connection settings one venue client needs (secrets as plain strings, never logged)."""

    api_key: str | None = None
    api_secret: str | None = None
    password: str | None = None
    testnet: bool = True
    url: str | None = None
    ws_url: str | None = None
    markets_path: Path | None = None
    timeout_s: float = 10.0


def build_client(profile: VenueProfile, options: ClientOptions) -> Any:
    """An unmodified ``ccxt.pro`` instance for the venue, pointed where the options say."""
    config: dict[str, Any] = {
        "enableRateLimit": True,
        # The venue's per-second budget as a rolling window rather than ccxt's default leaky
        # bucket of capacity one: an order after a quiet spell goes out at once instead of
        # waiting out the cost of the reads before it (Deribit's create costs 4 x 50 ms).
        "rateLimiterAlgorithm": "rollingWindow",
        "rollingWindowSize": RATE_WINDOW_MS,
        "timeout": int(options.timeout_s * 1000),
        "options": {"defaultType": "swap", **dict(profile.client_options)},
    }
    if options.api_key is not None:
        config["apiKey"] = options.api_key
        config["secret"] = options.api_secret
    if options.password is not None:
        config["password"] = options.password
    if options.markets_path is not None:
        snapshot = load_markets_snapshot(options.markets_path)
        config["markets"] = snapshot["markets"]
        if snapshot.get("currencies"):
            config["currencies"] = snapshot["currencies"]
    client = getattr(ccxtpro, profile.venue)(config)
    if profile.skip_currencies:
        client.has["fetchCurrencies"] = False
    if options.url is not None:
        _point_at(client, profile, options.url, options.ws_url)
    elif options.testnet:
        _use_testnet(client, profile)  # may refuse: before any session is opened
    _never_resend(client)
    return client


def _never_resend(client: Any) -> None:
    """Turn off aiohttp's silent second try of an idempotent request whose kept-alive
    connection the server closed before answering: Deribit places orders with GET, so that
    second try is a second order. A dropped answer must surface as an unknown outcome, which
    the executor resolves by looking the order up by its label."""
    client.open()  # ccxt would create the session lazily on the first request
    client.session._retry_connection = False


def _use_testnet(client: Any, profile: VenueProfile) -> None:
    if profile.testnet is TestnetSwitch.DEMO:
        client.enable_demo_trading(True)
        return
    # set_sandbox_mode raises TypeError, not NotSupported, where urls['test'] is None.
    if not client.urls.get("test"):
        raise ConfigError("exchange.testnet", f"{profile.venue} has no testnet in ccxt")
    client.set_sandbox_mode(True)


def _point_at(client: Any, profile: VenueProfile, url: str, ws_url: str | None) -> None:
    """Replace the venue's hosts with ``url`` (REST) and ``ws_url`` (websocket)."""
    if profile.venue == "deribit":
        parts = urlsplit(url)
        scheme = "wss" if parts.scheme == "https" else "ws"
        derived = urlunsplit((scheme, parts.netloc, "/ws/api/v2", "", ""))
        client.urls["api"] = {"rest": url.rstrip("/"), "ws": ws_url or derived}
        return
    client.urls["api"] = _rehost(client.urls["api"], url, ws_url)


def _rehost(value: Any, url: str, ws_url: str | None) -> Any:
    if isinstance(value, dict):
        return {name: _rehost(item, url, ws_url) for name, item in value.items()}
    if not isinstance(value, str) or "://" not in value:
        return value
    old = urlsplit(value)
    base = urlsplit(ws_url if old.scheme.startswith("ws") and ws_url else url)
    if old.scheme.startswith("ws") and not ws_url:
        return value
    return urlunsplit((base.scheme, base.netloc, old.path, old.query, old.fragment))


def load_markets_snapshot(path: Path) -> dict[str, Any]:
    """A snapshot written by :func:`markets_snapshot`; ``ConfigError`` when unusable."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError("exchange.markets_path", f"cannot read {path}: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("markets"), dict):
        raise ConfigError("exchange.markets_path", f"{path} has no 'markets' object")
    return data


def markets_snapshot(client: Any) -> dict[str, Any]:
    """The loaded markets of ``client`` as JSON-safe data, for offline loading later."""
    return {"markets": client.markets, "currencies": client.currencies or {}}
