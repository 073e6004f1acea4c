"""The simulator's authentication: ccxt's own signatures are verified for real, and refused when
anything in them is wrong; the generated key pair file is private."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import stat
import time
from pathlib import Path
from typing import Any

import ccxt
import pytest

from scaler.adapters.sim import rpc
from scaler.adapters.sim.auth import (
    MAX_CLOCK_SKEW_MS,
    Authenticator,
    Credentials,
    load_or_create_credentials,
)
from scaler.adapters.sim.rpc import DeribitError

pytestmark = pytest.mark.unit

KEY = "unit-key"
SECRET = "unit-secret-0123456789abcdef"
BASE = "http://127.0.0.1:8900"
NOW_MS = 1_800_000_000_000


def signed(params: dict[str, Any], *, secret: str = SECRET, ts_ms: int = NOW_MS) -> tuple[str, str]:
    """The ``Authorization`` header and URI ccxt's deribit sends for ``private/buy``."""
    client = ccxt.deribit({"apiKey": KEY, "secret": secret})
    client.urls["api"] = {"rest": BASE}
    client.milliseconds = lambda: ts_ms  # type: ignore[method-assign]
    request = client.sign("buy", ["private"], "GET", params)
    return request["headers"]["Authorization"], request["url"].removeprefix(BASE)


def refused_code(call: Any) -> int:
    with pytest.raises(DeribitError) as caught:
        call()
    return caught.value.code


PARAMS = {"instrument_name": "BTC-PERPETUAL", "amount": "100", "type": "market", "label": "x y/z"}


def test_a_request_signed_by_ccxt_is_accepted() -> None:
    """The header ccxt builds verifies against the URI exactly as sent."""
    header, uri = signed(PARAMS)
    assert header.startswith("deri-hmac-sha256 id=unit-key,ts=")
    Authenticator(Credentials(KEY, SECRET)).check_header(header, "GET", uri, "", NOW_MS)


@pytest.mark.parametrize(
    ("name", "tamper"),
    [
        ("other query", lambda h, u: (h, u.replace("100", "1000"))),
        ("other method", lambda h, u: (h, u)),
        ("other key", lambda h, u: (h.replace("id=unit-key", "id=someone"), u)),
        ("garbled header", lambda h, u: ("deri-hmac-sha256 nonsense", u)),
        ("unknown scheme", lambda h, u: (h.replace("deri-hmac-sha256", "hmac"), u)),
    ],
)
def test_a_tampered_request_is_refused_with_invalid_credentials(name: str, tamper: Any) -> None:
    """Changing anything the signature covers is 13004."""
    header, uri = tamper(*signed(PARAMS))
    method = "POST" if name == "other method" else "GET"
    auth = Authenticator(Credentials(KEY, SECRET))
    assert refused_code(lambda: auth.check_header(header, method, uri, "", NOW_MS)) == 13004


def test_a_signature_with_the_wrong_secret_is_refused() -> None:
    """Signed with another secret: 13004."""
    header, uri = signed(PARAMS, secret="not-the-secret-at-all")
    auth = Authenticator(Credentials(KEY, SECRET))
    assert refused_code(lambda: auth.check_header(header, "GET", uri, "", NOW_MS)) == 13004


@pytest.mark.parametrize("skew_ms", [MAX_CLOCK_SKEW_MS + 1, -MAX_CLOCK_SKEW_MS - 1])
def test_a_timestamp_outside_the_window_is_refused(skew_ms: int) -> None:
    """A request signed more than a minute before (or after) now cannot be replayed."""
    header, uri = signed(PARAMS, ts_ms=NOW_MS - skew_ms)
    auth = Authenticator(Credentials(KEY, SECRET))
    assert refused_code(lambda: auth.check_header(header, "GET", uri, "", NOW_MS)) == 13004


def test_no_header_is_unauthorized() -> None:
    """A private call without credentials is 13009."""
    auth = Authenticator(Credentials(KEY, SECRET))
    assert (
        refused_code(lambda: auth.check_header(None, "GET", "/api/v2/private/buy", "", NOW_MS))
        == 13009
    )


def ws_signature(ts_ms: int, nonce: str, secret: str = SECRET) -> str:
    """What ccxt.pro's deribit ``authenticate`` sends."""
    return hmac.new(secret.encode(), f"{ts_ms}\n{nonce}\n".encode(), hashlib.sha256).hexdigest()


def grant(ts_ms: int = NOW_MS, secret: str = SECRET) -> dict[str, Any]:
    nonce = str(ts_ms)
    return {
        "grant_type": "client_signature",
        "client_id": KEY,
        "timestamp": ts_ms,
        "nonce": nonce,
        "signature": ws_signature(ts_ms, nonce, secret),
        "data": "",
    }


def test_client_signature_grant_issues_tokens_usable_as_bearer() -> None:
    """public/auth as ccxt.pro sends it: tokens, and the access token works over REST."""
    auth = Authenticator(Credentials(KEY, SECRET))
    tokens = auth.grant(grant(), NOW_MS)
    assert tokens["token_type"] == "bearer"
    auth.check_header(f"Bearer {tokens['access_token']}", "GET", "/x", "", NOW_MS)
    assert (
        refused_code(lambda: auth.check_header("Bearer forged", "GET", "/x", "", NOW_MS)) == 13004
    )
    renewed = auth.grant(
        {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}, NOW_MS
    )
    assert renewed["access_token"] != tokens["access_token"]
    reused = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    assert refused_code(lambda: auth.grant(reused, NOW_MS)) == 13004


@pytest.mark.parametrize(
    "params",
    [
        grant(secret="wrong-secret-0123456789"),
        grant(ts_ms=NOW_MS - MAX_CLOCK_SKEW_MS - 1),
        grant() | {"client_id": "someone"},
        {"grant_type": "client_credentials", "client_id": KEY, "client_secret": "nope"},
    ],
)
def test_bad_grants_are_refused(params: dict[str, Any]) -> None:
    """Wrong secret, stale timestamp, wrong key, wrong plain secret: 13004."""
    auth = Authenticator(Credentials(KEY, SECRET))
    assert refused_code(lambda: auth.grant(params, NOW_MS)) == 13004


def test_client_credentials_and_basic_auth_take_the_plain_secret() -> None:
    """Deribit's two plain-secret forms are accepted with the right pair only."""
    auth = Authenticator(Credentials(KEY, SECRET))
    auth.grant(
        {"grant_type": "client_credentials", "client_id": KEY, "client_secret": SECRET}, NOW_MS
    )
    good = base64.b64encode(f"{KEY}:{SECRET}".encode()).decode()
    auth.check_header(f"Basic {good}", "GET", "/x", "", NOW_MS)
    bad = base64.b64encode(f"{KEY}:nope".encode()).decode()
    assert refused_code(lambda: auth.check_header(f"Basic {bad}", "GET", "/x", "", NOW_MS)) == 13004


def test_an_unknown_grant_type_is_invalid_params() -> None:
    auth = Authenticator(Credentials(KEY, SECRET))
    assert (
        refused_code(lambda: auth.grant({"grant_type": "password"}, NOW_MS))
        == rpc.INVALID_PARAMS.code
    )


def test_credentials_hide_the_secret_and_refuse_a_short_one() -> None:
    """The secret is not in the repr; fewer than 16 characters is refused."""
    assert SECRET not in repr(Credentials(KEY, SECRET))
    with pytest.raises(ValueError, match="16"):
        Credentials(KEY, "short")


def test_generated_credentials_are_private_and_reused(tmp_path: Path) -> None:
    """Created once with mode 0600, then read back unchanged."""
    path = tmp_path / "exchange-sim-credentials.json"
    first, created = load_or_create_credentials(path)
    assert created
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_text()) == {
        "api_key": first.api_key,
        "api_secret": first.api_secret,
    }
    again, created_again = load_or_create_credentials(path)
    assert (again, created_again) == (first, False)


def test_an_unreadable_credentials_file_is_replaced(tmp_path: Path) -> None:
    """A truncated file cannot have configured any client: a new pair replaces it."""
    path = tmp_path / "exchange-sim-credentials.json"
    path.write_text('{"api_key": "k"')
    credentials, created = load_or_create_credentials(path)
    assert created
    assert len(credentials.api_secret) >= 16


def test_the_clock_window_is_real_time_sized() -> None:
    """A signature from a client whose clock is a few seconds off still verifies."""
    now_ms = int(time.time() * 1_000)
    header, uri = signed(PARAMS, ts_ms=now_ms - 5_000)
    Authenticator(Credentials(KEY, SECRET)).check_header(header, "GET", uri, "", now_ms)
