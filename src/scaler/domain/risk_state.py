"""The values the risk-control layer reads and remembers: :class:`RiskInputs` and
:class:`RiskState` with its persistence (``to_dict`` / ``from_dict``, an exact round trip).

:mod:`scaler.domain.risk` documents what each field means to the rules.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TypeVar

from scaler.domain.inverse import MarginSchedule
from scaler.domain.risk_rules import Reason
from scaler.domain.types import AccountSnapshot, MarketSnapshot, TradingState


@dataclass(frozen=True, slots=True)
class RiskInputs:
    """What one evaluation looks at; ``now_ns`` is the caller's clock reading.

    Nothing is checked at construction: every field, ``lot_size_usd`` included, is data that
    :func:`evaluate` validates and fails closed on. ``rejected_market`` is the feed's latest
    snapshot when input validation rejected it as implausible (``None`` once a later one is
    accepted): the venue's account is valued at the venue's mark, so while its price is not
    believable neither is the equity.
    """

    proposed_target_usd: float
    current_position_usd: float
    market: MarketSnapshot | None
    account: AccountSnapshot | None
    now_ns: int
    schedule: MarginSchedule
    lot_size_usd: float
    rejected_market: MarketSnapshot | None = None


@dataclass(frozen=True, slots=True)
class RiskState:
    """What the layer remembers between evaluations; persisted with ``to_dict`` / ``from_dict``.

    Prices are USD per coin, timestamps integer ns. ``halt_reason`` is set exactly when
    ``halted``; the mark, anchor and day fields come in pairs. The four ``jump`` fields are set
    together, exactly while a jump is unconfirmed: ``jump_reference_price`` is the last
    confirmed price before it (seen at ``ts_jump_reference_ns``), ``jump_level_price`` the new
    level under confirmation and ``ts_jump_level_ns`` since when the mark has held near it.
    The constructor does not check (``evaluate`` rebuilds the state on every tick);
    ``from_dict``, the persistence door, does.
    """

    halted: bool = False
    halt_reason: Reason | None = None
    breaker_until_ns: int | None = None
    breaker_trips: int = 0
    last_mark_price: float | None = None
    ts_last_mark_ns: int | None = None
    gap_anchor_price: float | None = None
    ts_gap_anchor_ns: int | None = None
    jump_reference_price: float | None = None
    ts_jump_reference_ns: int | None = None
    jump_level_price: float | None = None
    ts_jump_level_ns: int | None = None
    override_until_ns: int | None = None
    day_index: int | None = None
    day_start_equity_coin: float | None = None
    trading_state: TradingState = TradingState.FROZEN

    @classmethod
    def initial(cls) -> RiskState:
        """Nothing seen yet: not halted, no breaker, no baseline, ``FROZEN`` until evaluated."""
        return cls()

    @property
    def jump_unconfirmed(self) -> bool:
        """A jump tripped the breaker and the market has neither held nor come back yet."""
        return self.jump_reference_price is not None

    def to_dict(self) -> dict[str, bool | int | float | str | None]:
        """A JSON-ready mapping; ``RiskState.from_dict(state.to_dict()) == state``."""
        return {
            "halted": self.halted,
            "halt_reason": None if self.halt_reason is None else self.halt_reason.value,
            "breaker_until_ns": self.breaker_until_ns,
            "breaker_trips": self.breaker_trips,
            "last_mark_price": self.last_mark_price,
            "ts_last_mark_ns": self.ts_last_mark_ns,
            "gap_anchor_price": self.gap_anchor_price,
            "ts_gap_anchor_ns": self.ts_gap_anchor_ns,
            "jump_reference_price": self.jump_reference_price,
            "ts_jump_reference_ns": self.ts_jump_reference_ns,
            "jump_level_price": self.jump_level_price,
            "ts_jump_level_ns": self.ts_jump_level_ns,
            "override_until_ns": self.override_until_ns,
            "day_index": self.day_index,
            "day_start_equity_coin": self.day_start_equity_coin,
            "trading_state": self.trading_state.value,
        }

    @classmethod
    def from_dict(cls, data: object) -> RiskState:
        """Rebuild a state from ``to_dict`` output; ``ValueError`` on anything else.

        A row written before the jump fields existed has none of them: no jump is pending.
        """
        if not isinstance(data, Mapping):
            raise ValueError(f"risk state must be a mapping, got {type(data).__name__}")
        keys = set(data)
        if keys != _STATE_KEYS and keys != _STATE_KEYS - _JUMP_KEYS:
            missing = sorted(_STATE_KEYS - keys)
            extra = sorted(map(repr, keys - _STATE_KEYS))
            raise ValueError(f"risk state keys: missing {missing}, unexpected {extra}")
        halted = data["halted"]
        if not isinstance(halted, bool):
            raise ValueError(f"halted must be a boolean, got {halted!r}")
        state = cls(
            halted=halted,
            halt_reason=_opt_enum(Reason, "halt_reason", data["halt_reason"]),
            breaker_until_ns=_opt_int("breaker_until_ns", data["breaker_until_ns"]),
            breaker_trips=require_int("breaker_trips", data["breaker_trips"], minimum=0),
            last_mark_price=_opt_price("last_mark_price", data["last_mark_price"]),
            ts_last_mark_ns=_opt_int("ts_last_mark_ns", data["ts_last_mark_ns"]),
            gap_anchor_price=_opt_price("gap_anchor_price", data["gap_anchor_price"]),
            ts_gap_anchor_ns=_opt_int("ts_gap_anchor_ns", data["ts_gap_anchor_ns"]),
            jump_reference_price=_opt_price(
                "jump_reference_price", data.get("jump_reference_price")
            ),
            ts_jump_reference_ns=_opt_int("ts_jump_reference_ns", data.get("ts_jump_reference_ns")),
            jump_level_price=_opt_price("jump_level_price", data.get("jump_level_price")),
            ts_jump_level_ns=_opt_int("ts_jump_level_ns", data.get("ts_jump_level_ns")),
            override_until_ns=_opt_int("override_until_ns", data["override_until_ns"]),
            day_index=_opt_int("day_index", data["day_index"]),
            day_start_equity_coin=_opt_float(
                "day_start_equity_coin", data["day_start_equity_coin"]
            ),
            trading_state=_enum(TradingState, "trading_state", data["trading_state"]),
        )
        _check_pairs(state)
        return state


_STATE_KEYS = frozenset(RiskState.__dataclass_fields__)
_JUMP_KEYS = frozenset(
    ("jump_reference_price", "ts_jump_reference_ns", "jump_level_price", "ts_jump_level_ns")
)
_E = TypeVar("_E", Reason, TradingState)


def require_int(name: str, value: object, minimum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}")
    return value


def _opt_int(name: str, value: object) -> int | None:
    return None if value is None else require_int(name, value)


def _opt_float(name: str, value: object) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number or null, got {value!r}")
    return float(value)


def _opt_price(name: str, value: object) -> float | None:
    price = _opt_float(name, value)
    if price is not None and price <= 0.0:
        raise ValueError(f"{name} must be a positive price, got {value!r}")
    return price


def _enum(kind: type[_E], name: str, value: object) -> _E:
    if not isinstance(value, str):
        raise ValueError(f"{name} must be a string, got {value!r}")
    try:
        return kind(value)
    except ValueError:
        raise ValueError(f"{name}: unknown value {value!r}") from None


def _opt_enum(kind: type[_E], name: str, value: object) -> _E | None:
    return None if value is None else _enum(kind, name, value)


def _check_pairs(state: RiskState) -> None:
    pairs = (
        ("halted", state.halted or None, "halt_reason", state.halt_reason),
        ("last_mark_price", state.last_mark_price, "ts_last_mark_ns", state.ts_last_mark_ns),
        ("gap_anchor_price", state.gap_anchor_price, "ts_gap_anchor_ns", state.ts_gap_anchor_ns),
        ("day_index", state.day_index, "day_start_equity_coin", state.day_start_equity_coin),
    )
    for name_a, a, name_b, b in pairs:
        if (a is None) != (b is None):
            raise ValueError(f"{name_a} and {name_b} must be set together")
    jump = (
        state.jump_reference_price,
        state.ts_jump_reference_ns,
        state.jump_level_price,
        state.ts_jump_level_ns,
    )
    if any(value is None for value in jump) and any(value is not None for value in jump):
        raise ValueError(f"{', '.join(sorted(_JUMP_KEYS))} must be set together")
