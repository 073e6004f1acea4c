"""Websocket channel names, as Deribit spells them, and which pushes each one receives.

=========================================  ======================================================
channel                                    pushes
=========================================  ======================================================
``ticker.<name>.<interval>``               the ``public/ticker`` result, on every tick
``book.<name>.<interval>``                 a ``snapshot`` on subscribing, then a ``change`` per
                                           tick (``change_id``, ``prev_change_id``, levels
                                           ``[new|change|delete, price, amount]``)
``quote.<name>``                           the touch, on every tick
``user.orders.<name>.<interval>``          private: each of our orders when it changes (one
``user.orders.<kind>.<currency>.<int.>``   order per message for ``raw``, a list otherwise)
``user.trades.<name>.<interval>``          private: our fills, as a list
``user.trades.<kind>.<currency>.<int.>``
``user.portfolio.<currency>``              private: the account summary, on every tick and
                                           after every order change
=========================================  ======================================================

``<name>`` is e.g. ``BTC-PERPETUAL``, ``<interval>`` one of ``100ms``, ``agg2``, ``raw`` (the
simulator pushes every tick whatever the interval), ``<kind>`` ``future`` or ``any``,
``<currency>`` the wallet's coin or ``any``.
"""

from __future__ import annotations

import enum
from collections.abc import Collection
from dataclasses import dataclass
from typing import Final

INTERVALS: Final = frozenset({"100ms", "agg2", "raw"})
KINDS: Final = frozenset({"future", "any"})


class Topic(enum.StrEnum):
    TICKER = "ticker"
    BOOK = "book"
    QUOTE = "quote"
    ORDERS = "orders"
    TRADES = "trades"
    PORTFOLIO = "portfolio"

    @property
    def private(self) -> bool:
        return self in {Topic.ORDERS, Topic.TRADES, Topic.PORTFOLIO}


@dataclass(frozen=True, slots=True)
class Channel:
    """A parsed channel: its topic, the instrument (``None``: any of ``currency``) and interval."""

    name: str
    topic: Topic
    instrument: str | None
    interval: str

    def covers(self, instrument: str) -> bool:
        return self.instrument is None or self.instrument == instrument


def parse_channel(name: str, instruments: Collection[str], currency: str) -> Channel | None:
    """The channel ``name`` denotes, or ``None`` if the simulator does not serve it."""
    parts = name.split(".")
    head = parts[0]
    if head in {"ticker", "book"} and len(parts) == 3:
        if parts[1] in instruments and parts[2] in INTERVALS:
            return Channel(name, Topic(head), parts[1], parts[2])
    elif head == "quote" and len(parts) == 2 and parts[1] in instruments:
        return Channel(name, Topic.QUOTE, parts[1], "raw")
    elif head == "user" and len(parts) >= 3:
        return _user_channel(name, parts[1:], instruments, currency)
    return None


def _user_channel(
    name: str, parts: list[str], instruments: Collection[str], currency: str
) -> Channel | None:
    topic, rest = parts[0], parts[1:]
    if topic == "portfolio" and len(rest) == 1 and rest[0].upper() == currency:
        return Channel(name, Topic.PORTFOLIO, None, "raw")
    if topic not in {"orders", "trades"} or not rest or rest[-1] not in INTERVALS:
        return None
    if len(rest) == 2 and rest[0] in instruments:
        return Channel(name, Topic(topic), rest[0], rest[1])
    if len(rest) == 3 and rest[0] in KINDS and rest[1].upper() in {currency, "ANY"}:
        return Channel(name, Topic(topic), None, rest[2])
    return None
