"""Who may trade: the simulator's one key pair, and the ways Deribit lets a client prove it.

- REST, as ccxt's ``deribit.sign`` does it: every private call carries ``Authorization:
  deri-hmac-sha256 id=<key>,ts=<ms>,sig=<hex>,nonce=<nonce>`` with ``sig`` the HMAC-SHA256, keyed
  by the secret, of ``ts \\n nonce \\n METHOD \\n uri \\n body \\n`` where ``uri`` is the path and
  query exactly as sent. A timestamp more than :data:`MAX_CLOCK_SKEW_MS` from ours is refused, so
  a captured request cannot be replayed later. Also accepted: ``Authorization: bearer <token>``
  with a token from ``public/auth``, and HTTP Basic ``client_id:client_secret``.
- ``public/auth`` (websocket or REST), as ccxt.pro's ``deribit.authenticate`` does it:
  ``grant_type=client_signature`` with ``signature`` the HMAC of ``timestamp \\n nonce \\n data``;
  also ``client_credentials`` (the secret itself) and ``refresh_token``.

Every refusal is Deribit's ``13004 invalid_credentials`` (no header at all: ``13009
unauthorized``); neither ever says which part was wrong, nor echoes what was sent. Keys and
secrets are compared in constant time. The secret never leaves this module except through
:attr:`Credentials.api_secret`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from scaler.adapters.sim import rpc
from scaler.adapters.sim.rpc import DeribitError

MAX_CLOCK_SKEW_MS: Final = 60_000
TOKEN_LIFETIME_S: Final = 31_536_000
"""What Deribit answers as ``expires_in`` (a year); the simulator never expires a token."""
MIN_SECRET_LENGTH: Final = 16
SIGNATURE_SCHEME: Final = "deri-hmac-sha256"


@dataclass(frozen=True, slots=True)
class Credentials:
    """The one accepted key pair."""

    api_key: str
    api_secret: str = field(repr=False)

    def __post_init__(self) -> None:
        if not self.api_key or len(self.api_secret) < MIN_SECRET_LENGTH:
            raise ValueError(
                f"the exchange-sim key must be non-empty and its secret at least "
                f"{MIN_SECRET_LENGTH} characters"
            )

    def key_matches(self, candidate: str) -> bool:
        return hmac.compare_digest(candidate.encode(), self.api_key.encode())

    def secret_matches(self, candidate: str) -> bool:
        return hmac.compare_digest(candidate.encode(), self.api_secret.encode())

    def signature(self, message: str) -> str:
        """Hex HMAC-SHA256 of ``message`` keyed by the secret, as ccxt's ``hmac`` computes it."""
        return hmac.new(self.api_secret.encode(), message.encode(), hashlib.sha256).hexdigest()

    def signature_matches(self, message: str, candidate: str) -> bool:
        return hmac.compare_digest(candidate.lower().encode(), self.signature(message).encode())


def load_or_create_credentials(path: Path) -> tuple[Credentials, bool]:
    """The key pair stored at ``path``, or a new random one written there (mode 0600).

    Returns the pair and whether it was just created. A file that cannot be read as a pair is
    replaced, like the control token: nobody can have configured a client from it.
    """
    if path.is_file():
        try:
            data = json.loads(path.read_text())
            return Credentials(str(data["api_key"]), str(data["api_secret"])), False
        except (ValueError, KeyError, TypeError):
            path.unlink()
    credentials = Credentials(f"sim-{secrets.token_hex(6)}", secrets.token_urlsafe(32))
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump({"api_key": credentials.api_key, "api_secret": credentials.api_secret}, handle)
        handle.write("\n")
    return credentials, True


def _refused(reason: str = "") -> DeribitError:
    return DeribitError(rpc.INVALID_CREDENTIALS, reason)


def _fresh(timestamp_ms: str, now_ms: int) -> bool:
    try:
        return abs(int(timestamp_ms) - now_ms) <= MAX_CLOCK_SKEW_MS
    except ValueError:
        return False


class Authenticator:
    """Checks REST ``Authorization`` headers and ``public/auth`` grants; issues access tokens."""

    def __init__(self, credentials: Credentials) -> None:
        self.credentials = credentials
        self._access_tokens: set[str] = set()
        self._refresh_tokens: set[str] = set()

    # ---- REST

    def check_header(
        self, header: str | None, method: str, uri: str, body: str, now_ms: int
    ) -> None:
        """Accept a private REST call or raise :class:`DeribitError`."""
        if not header:
            raise DeribitError(rpc.UNAUTHORIZED, "this method needs authentication")
        scheme, _, value = header.strip().partition(" ")
        scheme = scheme.lower()
        if scheme == SIGNATURE_SCHEME:
            self._check_signed(value, method, uri, body, now_ms)
        elif scheme == "bearer":
            if value.strip() not in self._access_tokens:
                raise _refused("unknown or expired access token")
        elif scheme == "basic":
            self._check_basic(value)
        else:
            raise _refused("unsupported authorization scheme")

    def _check_signed(self, value: str, method: str, uri: str, body: str, now_ms: int) -> None:
        fields = dict(part.strip().partition("=")[::2] for part in value.split(","))
        key, ts, sig, nonce = (fields.get(name, "") for name in ("id", "ts", "sig", "nonce"))
        if not self.credentials.key_matches(key):
            raise _refused()
        if not _fresh(ts, now_ms):
            raise _refused("the request timestamp is too far from the server time")
        message = f"{ts}\n{nonce}\n{method.upper()}\n{uri}\n{body}\n"
        if not self.credentials.signature_matches(message, sig):
            raise _refused()

    def _check_basic(self, value: str) -> None:
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise _refused() from None
        key, _, secret = decoded.partition(":")
        if not (self.credentials.key_matches(key) and self.credentials.secret_matches(secret)):
            raise _refused()

    # ---- public/auth

    def grant(self, params: Mapping[str, Any], now_ms: int) -> dict[str, Any]:
        """``public/auth``: check the grant, answer with fresh tokens or raise."""
        grant_type = str(params.get("grant_type", ""))
        if grant_type == "client_signature":
            self._check_client_signature(params, now_ms)
        elif grant_type == "client_credentials":
            key, secret = str(params.get("client_id", "")), str(params.get("client_secret", ""))
            if not (self.credentials.key_matches(key) and self.credentials.secret_matches(secret)):
                raise _refused()
        elif grant_type == "refresh_token":
            token = str(params.get("refresh_token", ""))
            if token not in self._refresh_tokens:
                raise _refused("unknown refresh token")
            self._refresh_tokens.discard(token)
        else:
            raise rpc.invalid_param(
                "grant_type", "must be client_signature, client_credentials or refresh_token"
            )
        return self._issue()

    def _check_client_signature(self, params: Mapping[str, Any], now_ms: int) -> None:
        key = str(params.get("client_id", ""))
        timestamp, nonce = str(params.get("timestamp", "")), str(params.get("nonce", ""))
        data, signature = str(params.get("data", "")), str(params.get("signature", ""))
        if not self.credentials.key_matches(key):
            raise _refused()
        if not _fresh(timestamp, now_ms):
            raise _refused("the auth timestamp is too far from the server time")
        if not self.credentials.signature_matches(f"{timestamp}\n{nonce}\n{data}", signature):
            raise _refused()

    def _issue(self) -> dict[str, Any]:
        access, refresh = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
        self._access_tokens.add(access)
        self._refresh_tokens.add(refresh)
        return {
            "access_token": access,
            "refresh_token": refresh,
            "expires_in": TOKEN_LIFETIME_S,
            "token_type": "bearer",
            "scope": "connection mainaccount trade:read_write wallet:read account:read",
            "enabled_features": [],
        }
