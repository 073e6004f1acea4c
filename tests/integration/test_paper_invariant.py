"""Integration tests: the paper ledger adds up exactly over long random sequences of everything."""

from __future__ import annotations

import json
import math
import random
from dataclasses import dataclass
from fractions import Fraction

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scaler.adapters.paper import PaperExchange, PaperInstrument
from scaler.domain.inverse import average_entry_price, pnl_coin
from scaler.domain.orders import OrderRequest, OrderSide, OrderStatus, OrderType
from scaler.domain.types import NS_PER_S, InstrumentKey, MarketSnapshot
from scaler.errors import RejectedError

pytestmark = pytest.mark.integration

KEY = InstrumentKey("paper", "BTC-PERPETUAL")
LOT_USD = 10
TICK = 0.5
START_NS = 1_700_006_400 * NS_PER_S - 3_600 * NS_PER_S  # 2023-11-14 23:00 UTC
START_MARK = 37_000.0


# ---- actions -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Move:
    """A market update ``dt_s`` later with the mark moved by ``log_return``."""

    dt_s: int
    log_return: float
    rate: float
    spread_ticks: int
    depth_lots: tuple[int, ...]
    """Lots per book level, best first; empty for a snapshot without levels."""


@dataclass(frozen=True)
class Place:
    """An order sized at ``leverage`` × equity, priced ``offset_ticks`` away from its touch."""

    market: bool
    buy: bool
    leverage: float
    offset_ticks: int
    post_only: bool
    reduce_only: bool
    flaw: str
    """"" for a well-formed order, else which rule it breaks."""


@dataclass(frozen=True)
class Cancel:
    pick: int
    """Index into the ids sent so far (wrapped); -1 for an id never sent."""


@dataclass(frozen=True)
class Reuse:
    pick: int
    """Resend with an id already used (wrapped index)."""


Action = Move | Place | Cancel | Reuse
FLAWS = ("fraction", "zero", "negative", "off_tick", "post_only_market")


def random_action(rng: random.Random) -> Action:
    roll = rng.random()
    if roll < 0.40:
        jump = rng.random() < 0.03
        return Move(
            dt_s=rng.choice((rng.randint(1, 3_600), rng.randint(3_600, 30_000))),
            log_return=rng.gauss(0.0, 0.004) + (rng.choice((-1, 1)) * 0.08 if jump else 0.0),
            rate=rng.gauss(0.0, 0.0003),
            spread_ticks=rng.randint(1, 6),
            depth_lots=() if rng.random() < 0.3 else tuple(rng.randint(0, 400) for _ in range(5)),
        )
    if roll < 0.88:
        return Place(
            market=rng.random() < 0.4,
            buy=rng.random() < 0.5,
            leverage=rng.uniform(0.0, 70.0),
            offset_ticks=rng.randint(-20, 40),
            post_only=rng.random() < 0.25,
            reduce_only=rng.random() < 0.2,
            flaw=rng.choice(FLAWS) if rng.random() < 0.05 else "",
        )
    if roll < 0.96:
        return Cancel(rng.randint(-1, 10_000))
    return Reuse(rng.randint(0, 10_000))


actions_st: st.SearchStrategy[Action] = st.one_of(
    st.builds(
        Move,
        dt_s=st.integers(1, 30_000),
        log_return=st.floats(-0.12, 0.12),
        rate=st.floats(-0.003, 0.003),
        spread_ticks=st.integers(1, 6),
        depth_lots=st.lists(st.integers(0, 400), max_size=5).map(tuple),
    ),
    st.builds(
        Place,
        market=st.booleans(),
        buy=st.booleans(),
        leverage=st.floats(0.0, 70.0),
        offset_ticks=st.integers(-20, 40),
        post_only=st.booleans(),
        reduce_only=st.booleans(),
        flaw=st.sampled_from(("", "", "", *FLAWS)),
    ),
    st.builds(Cancel, st.integers(-1, 1_000)),
    st.builds(Reuse, st.integers(0, 1_000)),
)


# ---- the driver ----------------------------------------------------------------------------


def _new_exchange() -> PaperExchange:
    return PaperExchange(PaperInstrument(KEY, lot_size_usd=LOT_USD, tick_size=TICK))


class Driver:
    """Turns actions into calls on one exchange; the outcome of each call is returned."""

    def __init__(self, exchange: PaperExchange) -> None:
        self.exchange = exchange
        self.ts_ns = START_NS
        self.mark = START_MARK
        self.sent: list[str] = []

    def apply(self, action: Action) -> object:
        match action:
            case Move():
                return self.exchange.on_market(self._snapshot(action))
            case Place():
                return self._place(self._request(action))
            case Cancel(pick=pick):
                cid = self.sent[pick % len(self.sent)] if self.sent and pick >= 0 else "never-sent"
                try:
                    return self.exchange.cancel(KEY, cid)
                except RejectedError as error:
                    return ("rejected", str(error))
            case Reuse(pick=pick):
                if not self.sent:
                    return None
                cid = self.sent[pick % len(self.sent)]
                return self._place(OrderRequest(KEY, cid, OrderSide.BUY, 10.0, OrderType.MARKET,
                                                None, False, False, 0))  # fmt: skip
        raise AssertionError(action)

    def _place(self, request: OrderRequest) -> object:
        try:
            return self.exchange.place(request)
        except RejectedError as error:
            return ("rejected", str(error))

    def _snapshot(self, move: Move) -> MarketSnapshot:
        self.ts_ns += move.dt_s * NS_PER_S
        self.mark = min(max(self.mark * math.exp(move.log_return), 1_000.0), 1_000_000.0)
        half = move.spread_ticks * TICK / 2
        bid = math.floor((self.mark - half) / TICK) * TICK
        ask = math.ceil((self.mark + half) / TICK) * TICK
        if ask <= bid:
            ask = bid + TICK
        bids = tuple(
            (bid - i * TICK, lots * LOT_USD * 1.0) for i, lots in enumerate(move.depth_lots)
        )
        asks = tuple(
            (ask + i * TICK, lots * LOT_USD * 1.0) for i, lots in enumerate(move.depth_lots)
        )
        return MarketSnapshot(KEY, self.ts_ns, self.ts_ns, self.mark, self.mark, bid, ask,
                              move.rate, 28_800.0, 0, bids=bids, asks=asks)  # fmt: skip

    def _request(self, place: Place) -> OrderRequest:
        cid = f"c-{len(self.sent)}"
        self.sent.append(cid)
        equity = max(self.exchange.equity_coin(), 0.0)
        amount = float(max(1, int(place.leverage * equity * self.mark / LOT_USD)) * LOT_USD)
        side = OrderSide.BUY if place.buy else OrderSide.SELL
        touch = self.mark
        limit: float | None = None
        if not place.market:
            touch = (
                math.ceil(self.mark / TICK) * TICK
                if place.buy
                else math.floor(self.mark / TICK) * TICK
            )
            limit = max(TICK, touch - side.sign * place.offset_ticks * TICK)
        post_only, market = place.post_only, place.market
        match place.flaw:
            case "fraction":
                amount += LOT_USD / 2
            case "zero":
                amount = 0.0
            case "negative":
                amount = -amount
            case "off_tick":
                limit = (limit or touch) + TICK / 4
                market = False
            case "post_only_market":
                post_only, market, limit = True, True, None
        order_type = OrderType.MARKET if market else OrderType.LIMIT
        return OrderRequest(KEY, cid, side, amount, order_type, None if market else limit,
                            place.reduce_only, post_only, 0)  # fmt: skip


# ---- an independent replay of the public record ------------------------------------------


def _units(amount_coin: float) -> int:
    """Half-even rounding to 1e-10 coin from the exact float, written out independently."""
    return round(Fraction(amount_coin) * 10**10)


class Reference:
    """Rebuilds position and money from the exchange's fills and funding records alone."""

    def __init__(self, exchange: PaperExchange) -> None:
        self.initial_units = exchange.ledger.initial_units
        self.size_usd = 0
        self.entry: float | None = None
        self.realised_units = 0
        self.fees_units = 0
        self.fills_seen = 0

    def catch_up(self, exchange: PaperExchange) -> None:
        for fill in exchange.fills[self.fills_seen :]:
            self._apply(fill.side.sign * int(fill.size_usd), fill.price)
            self.fees_units += _units(fill.fee_coin)
        self.fills_seen = len(exchange.fills)

    def _apply(self, size_usd: int, price: float) -> None:
        held = self.size_usd
        if held == 0 or self.entry is None or (held > 0) == (size_usd > 0):
            fills = (
                [(size_usd, price)]
                if held == 0
                else [(held, self.entry or price), (size_usd, price)]
            )
            self.entry = average_entry_price(fills)
        else:
            closed = min(abs(size_usd), abs(held))
            self.realised_units += _units(pnl_coin(math.copysign(closed, held), self.entry, price))
            remaining = held + size_usd
            if remaining == 0:
                self.entry = None
            elif (remaining > 0) != (held > 0):
                self.entry = price
        self.size_usd = held + size_usd

    def check(self, exchange: PaperExchange) -> None:
        """balance == initial + Σrealised − Σfees − Σfunding, each Σ rebuilt from the records."""
        self.catch_up(exchange)
        ledger = exchange.ledger
        funding_units = sum(p.amount_units for p in exchange.funding_payments)
        insurance_units = sum(liq.shortfall_units for liq in exchange.liquidations)
        realised_units = self.realised_units + insurance_units
        assert ledger.balance_units == (
            self.initial_units + realised_units - self.fees_units - funding_units
        )
        assert (ledger.realised_units, ledger.fees_units, ledger.funding_units) == (
            realised_units, self.fees_units, funding_units,
        )  # fmt: skip
        position = exchange.position(KEY)
        assert position.size_usd == self.size_usd
        assert position.size_usd % LOT_USD == 0
        if self.entry is not None:
            assert position.entry_price == pytest.approx(self.entry, rel=1e-9)
        for update in exchange.list_open(KEY):
            assert update.status is OrderStatus.OPEN
            assert 0 < update.remaining_usd <= update.amount_usd


# ---- the tests -----------------------------------------------------------------------------


def test_long_random_sequence_keeps_the_ledger_exact_after_every_step() -> None:
    """Thousands of seeded steps of every kind; the balance adds up exactly after each one."""
    rng = random.Random(20231115)
    totals = {"liquidations": 0, "funding": 0, "maker": 0, "partial": 0, "rejected": 0,
              "duplicates": 0, "cancelled": 0, "episodes": 1}  # fmt: skip
    driver = Driver(_new_exchange())
    reference = Reference(driver.exchange)
    for _ in range(6_000):
        driver.apply(random_action(rng))
        reference.check(driver.exchange)
        if (
            driver.exchange.ledger.balance_units <= 0
            and not driver.exchange.ledger.open_positions()
        ):
            _tally(totals, driver.exchange)
            driver = Driver(_new_exchange())  # wiped out: a fresh wallet for the next episode
            reference = Reference(driver.exchange)
            totals["episodes"] += 1
    _tally(totals, driver.exchange)
    # The sequence must have exercised every path it claims to test.
    for name, count in totals.items():
        assert count > 0, name


def _tally(totals: dict[str, int], exchange: PaperExchange) -> None:
    counters = exchange.counters()
    totals["liquidations"] += counters.liquidations
    totals["funding"] += counters.funding_settlements
    totals["maker"] += sum(1 for f in exchange.fills if f.liquidity.value == "maker")
    totals["rejected"] += counters.orders_by_status[OrderStatus.REJECTED]
    totals["duplicates"] += counters.duplicate_client_order_ids
    totals["cancelled"] += counters.orders_by_status[OrderStatus.CANCELLED]
    state_orders = exchange.to_dict()["orders"]
    totals["partial"] += sum(1 for o in state_orders if 0 < o["filled_usd"] < o["amount_usd"])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(actions_st, min_size=1, max_size=80))
def test_any_action_sequence_keeps_the_ledger_exact(actions: list[Action]) -> None:
    """For any sequence of market moves, orders and cancels the balance adds up exactly."""
    driver = Driver(_new_exchange())
    reference = Reference(driver.exchange)
    for action in actions:
        driver.apply(action)
        reference.check(driver.exchange)


def test_state_round_trip_mid_sequence_gives_identical_behaviour() -> None:
    """An exchange rebuilt from JSON halfway through answers every later step identically."""
    rng = random.Random(7)
    actions = [random_action(rng) for _ in range(3_000)]
    original = Driver(_new_exchange())
    for action in actions[:1_500]:
        original.apply(action)
    saved = json.dumps(original.exchange.to_dict())
    restored = Driver(PaperExchange.from_dict(json.loads(saved)))
    restored.ts_ns, restored.mark, restored.sent = (
        original.ts_ns,
        original.mark,
        list(original.sent),
    )
    assert restored.exchange.to_dict() == original.exchange.to_dict()
    for action in actions[1_500:]:
        assert restored.apply(action) == original.apply(action)
        assert restored.exchange.to_dict() == original.exchange.to_dict()
    assert original.exchange.counters().fills > 0
