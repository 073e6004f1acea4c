"""Unit tests of the ccxt adapter's pure parts: profiles, error translation, retries, clients."""

from __future__ import annotations

import ccxt.async_support as ccxt
import pytest

from scaler.adapters.ccxt_venue import Caller, ClientOptions, build_client, profile_for
from scaler.adapters.ccxt_venue.errors import translate
from scaler.adapters.ccxt_venue.profiles import PROFILES
from scaler.errors import (
    ConfigError,
    FatalVenueError,
    OutcomeUnknownError,
    RateLimitedError,
    RejectedError,
    TransientError,
)

pytestmark = pytest.mark.unit


class RecordingClock:
    """Time stands still; sleeps are recorded and return at once."""

    def __init__(self) -> None:
        self.sleeps: list[float] = []

    def now_ns(self) -> int:
        return 1_700_000_000_000_000_000

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)


# ---- profiles


def test_every_configured_venue_has_a_profile() -> None:
    assert set(PROFILES) == {"deribit", "bybit", "okx", "binancecoinm", "krakenfutures"}


def test_only_deribit_takes_usd_amounts_and_labels() -> None:
    deribit = profile_for("deribit")
    assert deribit.amount_in_usd
    assert deribit.client_id_param == "label"
    for venue in ("bybit", "okx", "binancecoinm", "krakenfutures"):
        assert not profile_for(venue).amount_in_usd
        assert profile_for(venue).client_id_param == "clientOrderId"


def test_okx_client_ids_are_packed_to_alphanumerics_and_back() -> None:
    okx = profile_for("okx")
    packed = okx.encode_client_id("scl-000000000042")
    assert packed == "scl000000000042"
    assert packed.isalnum()
    assert okx.decode_client_id(packed) == "scl-000000000042"
    assert okx.decode_client_id("foreign") == "foreign"
    assert okx.decode_client_id(None) == ""


def test_other_venues_keep_client_ids_as_they_are() -> None:
    bybit = profile_for("bybit")
    assert bybit.encode_client_id("scl-000000000042") == "scl-000000000042"
    assert bybit.decode_client_id("scl-000000000042") == "scl-000000000042"


def test_unknown_venue_is_named() -> None:
    with pytest.raises(KeyError, match="bitmex"):
        profile_for("bitmex")


# ---- error translation


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (ccxt.RateLimitExceeded("429"), RateLimitedError),
        (ccxt.DDoSProtection("10028"), RateLimitedError),
        (ccxt.RequestTimeout("timeout"), TransientError),
        (ccxt.ExchangeNotAvailable("503"), TransientError),
        (ccxt.OnMaintenance("maintenance"), TransientError),
        (ccxt.AuthenticationError("13004 invalid_credentials"), FatalVenueError),
        (ccxt.PermissionDenied("no trading"), FatalVenueError),
        (ccxt.NotSupported("no"), FatalVenueError),
        (ccxt.InsufficientFunds("10009"), RejectedError),
        (ccxt.OrderNotFound("10004"), RejectedError),
        (ccxt.InvalidOrder("bad price"), RejectedError),
        (ccxt.ExchangeError("something the venue refused"), RejectedError),
    ],
)
def test_reads_translate_by_what_the_caller_should_do(
    error: Exception, expected: type[Exception]
) -> None:
    translated = translate(error, "fetch_balance")
    assert type(translated) is expected
    assert "fetch_balance" in str(translated)


@pytest.mark.parametrize(
    "error",
    [
        ccxt.RequestTimeout("timeout"),
        ccxt.ExchangeNotAvailable("502 bad gateway"),
        ccxt.RateLimitExceeded("429"),
        ccxt.NetworkError("connection reset"),
        RuntimeError("aiohttp internals"),
    ],
)
def test_an_order_that_failed_without_a_refusal_has_an_unknown_outcome(error: Exception) -> None:
    assert type(translate(error, "create_order", mutating=True)) is OutcomeUnknownError


def test_an_explicit_refusal_of_an_order_is_a_rejection() -> None:
    error = translate(ccxt.InsufficientFunds("not_enough_funds"), "create_order", mutating=True)
    assert type(error) is RejectedError


def test_long_venue_messages_are_bounded() -> None:
    error = translate(ccxt.ExchangeError("x" * 5_000 + "\nsecond line"), "fetch_ticker")
    assert len(str(error)) < 400


# ---- retries


async def test_reads_are_retried_with_doubling_backoff_then_succeed() -> None:
    clock, errors = RecordingClock(), []
    caller = Caller(
        clock, read_retries=3, retry_backoff_s=0.25, on_error=lambda k, d: errors.append(k)
    )
    attempts = iter([ccxt.RequestTimeout("t"), ccxt.ExchangeNotAvailable("503"), None])

    async def flaky() -> str:
        failure = next(attempts)
        if failure is not None:
            raise failure
        return "ok"

    assert await caller.read("fetch_ticker", flaky) == "ok"
    assert clock.sleeps == [0.25, 0.5]
    assert errors == ["venue_transient", "venue_transient"]


async def test_a_rate_limited_read_waits_at_least_the_venue_pause() -> None:
    clock = RecordingClock()
    caller = Caller(clock, read_retries=1, retry_backoff_s=0.01)
    calls = []

    async def limited() -> str:
        calls.append(1)
        if len(calls) == 1:
            raise ccxt.RateLimitExceeded("429")
        return "ok"

    assert await caller.read("fetch_balance", limited) == "ok"
    assert clock.sleeps == [1.0]


async def test_reads_give_up_after_the_configured_retries() -> None:
    clock = RecordingClock()
    caller = Caller(clock, read_retries=2, retry_backoff_s=0.1)
    calls = []

    async def down() -> None:
        calls.append(1)
        raise ccxt.ExchangeNotAvailable("503")

    with pytest.raises(TransientError):
        await caller.read("fetch_positions", down)
    assert len(calls) == 3


async def test_a_refused_read_is_not_retried() -> None:
    clock = RecordingClock()
    caller = Caller(clock, read_retries=5)
    calls = []

    async def refused() -> None:
        calls.append(1)
        raise ccxt.AuthenticationError("13004")

    with pytest.raises(FatalVenueError):
        await caller.read("fetch_balance", refused)
    assert calls == [1]


async def test_writes_are_never_retried() -> None:
    clock = RecordingClock()
    caller = Caller(clock, read_retries=5)
    calls = []

    async def create() -> None:
        calls.append(1)
        raise ccxt.RequestTimeout("timed out")

    with pytest.raises(OutcomeUnknownError):
        await caller.write("create_order", create)
    assert calls == [1]
    assert clock.sleeps == []


# ---- clients


async def test_testnet_is_the_default() -> None:
    client = build_client(profile_for("deribit"), ClientOptions())
    try:
        assert "test.deribit.com" in str(client.urls["api"])
    finally:
        await client.close()


async def test_binance_coinm_uses_demo_trading() -> None:
    client = build_client(profile_for("binancecoinm"), ClientOptions())
    try:
        assert "demo-dapi.binance.com" in str(client.urls["api"])
        assert client.options["enableDemoTrading"] is True
    finally:
        await client.close()


async def test_mainnet_only_when_asked() -> None:
    client = build_client(profile_for("bybit"), ClientOptions(testnet=False))
    try:
        assert "testnet" not in str(client.urls["api"])
    finally:
        await client.close()


async def test_a_local_url_replaces_every_rest_host() -> None:
    client = build_client(profile_for("krakenfutures"), ClientOptions(url="http://127.0.0.1:9999"))
    try:
        hosts = [url for url in _strings(client.urls["api"]) if url.startswith("http")]
        assert hosts
        assert all(url.startswith("http://127.0.0.1:9999/") for url in hosts)
    finally:
        await client.close()


async def test_deribit_websocket_url_is_derived_from_the_rest_url() -> None:
    client = build_client(profile_for("deribit"), ClientOptions(url="http://127.0.0.1:8900"))
    try:
        assert client.urls["api"] == {
            "rest": "http://127.0.0.1:8900",
            "ws": "ws://127.0.0.1:8900/ws/api/v2",
        }
    finally:
        await client.close()


async def test_a_venue_without_a_testnet_is_refused_not_crashed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """ccxt's set_sandbox_mode raises TypeError where urls['test'] is None; we check first."""
    import ccxt.pro as ccxtpro

    original = ccxtpro.okx.describe

    def no_test(self: object) -> dict[str, object]:
        described = original(self)  # type: ignore[arg-type]
        described["urls"]["test"] = None
        return described

    monkeypatch.setattr(ccxtpro.okx, "describe", no_test)
    with pytest.raises(ConfigError, match=r"exchange\.testnet"):
        build_client(profile_for("okx"), ClientOptions())


def _strings(value: object) -> list[str]:
    if isinstance(value, dict):
        return [s for item in value.values() for s in _strings(item)]
    return [value] if isinstance(value, str) else []
