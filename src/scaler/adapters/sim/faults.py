"""Fault injection: the knobs (``sim.faults``, ``POST /admin/faults`` at runtime) and the draws.

========================  ===================================================================
knob                      effect
========================  ===================================================================
``latency_ms``            added to every REST answer (before the request is executed)
``error_rate``            fraction of REST requests that fail, by kind (below)
``timeout_s``             how long a request chosen to time out is held before the simulator
                          drops its connection without an answer
``reject_order_rate``     fraction of new orders refused with ``10009 not_enough_funds`` or
                          ``10012 book_closed``, alternately (ccxt: InsufficientFunds,
                          InvalidOrder)
``drop_ws_after_s``       every websocket is closed this long after it opened
``stall_feed``            the market stops: no ticks reach the exchange or the websockets;
                          REST tickers keep answering the last, ageing values
``paused``                runtime only: the automatic feed is held like ``stall_feed``, for a
                          benchmark that pushes its own ticks through ``POST /admin/market``
``error_kinds``           runtime only: which kinds ``error_rate`` draws from (default all)
========================  ===================================================================

Error kinds, drawn round-robin from :data:`ERROR_CYCLE` (restricted to ``error_kinds``) so that a
third are 429s, a third 5xx and a third timeouts:

- ``rate_limit``: HTTP 429 with Deribit ``10028 too_many_requests`` (ccxt: DDoSProtection);
- ``unavailable``: HTTP 503 with a plain-text body, as a proxy sends it (ExchangeNotAvailable);
- ``server_error``: HTTP 500 with Deribit ``10001 error`` (ExchangeError);
- ``timeout_unexecuted``: held ``timeout_s`` without executing, then the connection is dropped;
- ``timeout_executed``: executed, then held ``timeout_s`` and dropped: an order placed this way
  exists at the venue although the client never heard so, which is what proves a client never
  resends an order blind.

Whether a request fails is a random draw (``random.Random``, seedable for tests); which kind it
gets is deterministic, so a test that allows one kind knows what it will see.
"""

from __future__ import annotations

import enum
import random
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from itertools import cycle
from typing import Any, Final

from pydantic import ValidationError

from scaler.adapters.sim import rpc
from scaler.adapters.sim.rpc import ErrorSpec
from scaler.config import SimFaultSettings


class ErrorKind(enum.StrEnum):
    RATE_LIMIT = "rate_limit"
    UNAVAILABLE = "unavailable"
    SERVER_ERROR = "server_error"
    TIMEOUT_UNEXECUTED = "timeout_unexecuted"
    TIMEOUT_EXECUTED = "timeout_executed"


ERROR_CYCLE: Final = (
    ErrorKind.RATE_LIMIT,
    ErrorKind.UNAVAILABLE,
    ErrorKind.TIMEOUT_UNEXECUTED,
    ErrorKind.RATE_LIMIT,
    ErrorKind.SERVER_ERROR,
    ErrorKind.TIMEOUT_EXECUTED,
)
ORDER_REJECTIONS: Final = (rpc.NOT_ENOUGH_FUNDS, rpc.BOOK_CLOSED)
RUNTIME_ONLY: Final = frozenset({"paused", "error_kinds"})


@dataclass(frozen=True, slots=True)
class Faults:
    """The current value of every knob (see the module docstring)."""

    latency_ms: float = 0.0
    error_rate: float = 0.0
    timeout_s: float = 15.0
    reject_order_rate: float = 0.0
    drop_ws_after_s: float | None = None
    stall_feed: bool = False
    paused: bool = False
    error_kinds: tuple[ErrorKind, ...] = tuple(ErrorKind)

    @classmethod
    def from_settings(cls, settings: SimFaultSettings) -> Faults:
        return cls(**settings.model_dump())

    @property
    def market_held(self) -> bool:
        """Whether automatic ticks are held back (stalled feed or paused)."""
        return self.stall_feed or self.paused

    def to_dict(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["error_kinds"] = [kind.value for kind in self.error_kinds]
        return data

    def updated(self, changes: Mapping[str, Any]) -> Faults:
        """These faults with ``changes`` applied; ``ValueError`` naming the field if invalid."""
        runtime = {name: value for name, value in changes.items() if name in RUNTIME_ONLY}
        configured = {name: value for name, value in changes.items() if name not in RUNTIME_ONLY}
        current = {f: getattr(self, f) for f in SimFaultSettings.model_fields}
        try:
            checked = SimFaultSettings.model_validate(current | configured)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first["loc"]) or "faults"
            raise ValueError(f"{where}: {first['msg']}") from None
        result = replace(self, **checked.model_dump())
        if "paused" in runtime:
            if not isinstance(runtime["paused"], bool):
                raise ValueError("paused: must be true or false")
            result = replace(result, paused=runtime["paused"])
        if "error_kinds" in runtime:
            result = replace(result, error_kinds=_error_kinds(runtime["error_kinds"]))
        return result


def _error_kinds(value: Any) -> tuple[ErrorKind, ...]:
    names = ", ".join(kind.value for kind in ErrorKind)
    if not isinstance(value, list) or not value:
        raise ValueError(f"error_kinds: must be a non-empty list of {names}")
    try:
        return tuple(dict.fromkeys(ErrorKind(item) for item in value))
    except ValueError:
        raise ValueError(f"error_kinds: each must be one of {names}") from None


class FaultInjector:
    """The current :class:`Faults` and the draws made from them."""

    def __init__(self, faults: Faults, rng: random.Random | None = None) -> None:
        self._faults = faults
        self._rng = rng or random.Random()  # noqa: S311 - fault draws, not cryptography
        self._kinds = cycle(ERROR_CYCLE)
        self._rejections = cycle(ORDER_REJECTIONS)

    @property
    def faults(self) -> Faults:
        return self._faults

    def update(self, changes: Mapping[str, Any]) -> Faults:
        """Apply a partial update (validated, all or nothing) and return the new faults."""
        self._faults = self._faults.updated(changes)
        return self._faults

    def draw_error(self) -> ErrorKind | None:
        """The failure to inflict on one REST request, or ``None``."""
        faults = self._faults
        if faults.error_rate <= 0.0 or self._rng.random() >= faults.error_rate:
            return None
        for kind in self._kinds:  # ERROR_CYCLE holds every kind, so this always returns
            if kind in faults.error_kinds:
                return kind
        return None  # pragma: no cover - unreachable, error_kinds is never empty

    def draw_rejection(self) -> ErrorSpec | None:
        """The Deribit error to refuse one new order with, or ``None``."""
        rate = self._faults.reject_order_rate
        if rate <= 0.0 or self._rng.random() >= rate:
            return None
        return next(self._rejections)
