"""The in-memory journal keeps the SQLite journal's contract, without a file."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest

from scaler.adapters.journal import SqliteJournal
from scaler.adapters.memory_journal import MemoryJournal
from scaler.domain.orders import (
    Fill,
    Liquidity,
    OrderRequest,
    OrderSide,
    OrderStatus,
    OrderType,
    OrderUpdate,
)
from scaler.domain.types import NS_PER_S, InstrumentKey
from scaler.errors import InvariantViolation
from scaler.ports import Journal

pytestmark = pytest.mark.unit

KEY = InstrumentKey("paper", "BTC/USD:BTC")
T0_NS = 1_700_000_000 * NS_PER_S


def _request(cid: str = "scl-000000000001", ts_ns: int = T0_NS) -> OrderRequest:
    return OrderRequest(
        key=KEY,
        client_order_id=cid,
        side=OrderSide.BUY,
        amount_usd=100.0,
        order_type=OrderType.LIMIT,
        limit_price=50_000.0,
        reduce_only=False,
        post_only=False,
        ts_created_ns=ts_ns,
    )


def _update(cid: str, status: OrderStatus, ts_ns: int = T0_NS + NS_PER_S) -> OrderUpdate:
    return OrderUpdate(
        key=KEY,
        client_order_id=cid,
        venue_order_id="v1",
        status=status,
        side=OrderSide.BUY,
        amount_usd=100.0,
        filled_usd=100.0 if status is OrderStatus.FILLED else 0.0,
        average_fill_price=50_000.0 if status is OrderStatus.FILLED else None,
        ts_ns=ts_ns,
    )


def _fill(fill_id: str = "f1", key: InstrumentKey = KEY) -> Fill:
    return Fill(
        key=key,
        client_order_id="scl-000000000001",
        fill_id=fill_id,
        side=OrderSide.BUY,
        size_usd=100.0,
        price=50_000.0,
        fee_coin=1e-6,
        liquidity=Liquidity.TAKER,
        ts_ns=T0_NS,
    )


def test_memory_journal_when_used_as_the_port_then_type_checks() -> None:
    """MemoryJournal is a Journal (the engine takes it as one)."""
    journal: Journal = MemoryJournal()
    assert journal.load_state("missing") is None


def test_record_intent_when_id_repeats_then_invariant_violation() -> None:
    """A second intent under one client id is a bug, as in SQLite."""
    journal = MemoryJournal()
    journal.record_intent(_request())
    with pytest.raises(InvariantViolation, match="already journaled"):
        journal.record_intent(_request())


def test_order_status_when_intent_only_then_intended_and_unknown_is_none() -> None:
    """An intent with no report is INTENDED; an id never seen is None."""
    journal = MemoryJournal()
    journal.record_intent(_request())
    assert journal.order_status("scl-000000000001") is OrderStatus.INTENDED
    assert journal.order_status("scl-000000000999") is None


def test_record_update_when_late_open_after_fill_then_fill_stays_latest() -> None:
    """A report further back in the lifecycle never supersedes a terminal one."""
    journal = MemoryJournal()
    journal.record_intent(_request())
    journal.record_update(_update("scl-000000000001", OrderStatus.FILLED, T0_NS + 2 * NS_PER_S))
    journal.record_update(_update("scl-000000000001", OrderStatus.OPEN, T0_NS + 3 * NS_PER_S))
    assert journal.order_status("scl-000000000001") is OrderStatus.FILLED
    assert journal.unresolved_intents() == []


def test_record_update_when_same_rank_and_older_then_ignored() -> None:
    """As far along but older: the newer report stays the latest."""
    journal = MemoryJournal()
    journal.record_update(_update("x-1", OrderStatus.CANCELLED, T0_NS + 5))
    journal.record_update(_update("x-1", OrderStatus.FILLED, T0_NS + 4))
    assert journal.order_status("x-1") is OrderStatus.CANCELLED
    journal.record_update(_update("x-1", OrderStatus.FILLED, T0_NS + 5))
    assert journal.order_status("x-1") is OrderStatus.FILLED


def test_unresolved_intents_when_mixed_then_open_and_intended_oldest_first() -> None:
    """Intended and open intents come back oldest first; terminal ones do not."""
    journal = MemoryJournal()
    journal.record_intent(_request("scl-000000000003", T0_NS + 3))
    journal.record_intent(_request("scl-000000000001", T0_NS + 1))
    journal.record_intent(_request("scl-000000000002", T0_NS + 2))
    journal.record_update(_update("scl-000000000002", OrderStatus.REJECTED))
    journal.record_update(_update("scl-000000000003", OrderStatus.OPEN))
    ids = [r.client_order_id for r in journal.unresolved_intents()]
    assert ids == ["scl-000000000001", "scl-000000000003"]
    assert journal.orders_by_status() == {
        "intended": 1,
        "open": 1,
        "filled": 0,
        "cancelled": 0,
        "rejected": 1,
    }


def test_record_fill_when_repeated_then_counted_once_per_market() -> None:
    """A fill id is unique per (venue, symbol): the same id twice is one fill, on two markets 2."""
    journal = MemoryJournal()
    journal.record_fill(_fill())
    journal.record_fill(_fill())
    journal.record_fill(_fill(key=InstrumentKey("paper", "ETH/USD:ETH")))
    assert journal.fills_recorded == 2


def test_save_state_when_loaded_then_fresh_exact_copy() -> None:
    """load_state returns an equal, independent copy; floats survive exactly."""
    journal = MemoryJournal()
    value = {"rate": 0.1 + 0.2, "nested": {"n": [1, 2]}, "none": None}
    journal.save_state("s", value)
    loaded = journal.load_state("s")
    assert loaded == value
    assert loaded is not None
    loaded["nested"]["n"].append(3)
    assert journal.load_state("s") == value


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_save_state_when_not_finite_then_value_error(bad: float) -> None:
    """NaN and infinities are refused, as the SQLite journal refuses them."""
    with pytest.raises(ValueError, match="JSON"):
        MemoryJournal().save_state("s", {"x": bad})


def _exercise(journal: Journal) -> list[object]:
    """One script of journal calls; the answers it collects."""
    journal.record_intent(_request("scl-000000000001", T0_NS + 1))
    journal.record_intent(_request("scl-000000000002", T0_NS + 2))
    journal.record_update(_update("scl-000000000001", OrderStatus.OPEN, T0_NS + 3))
    journal.record_update(_update("scl-000000000002", OrderStatus.FILLED, T0_NS + 4))
    journal.record_update(_update("scl-000000000002", OrderStatus.OPEN, T0_NS + 5))
    journal.record_update(_update("foreign-1", OrderStatus.OPEN, T0_NS + 6))
    journal.record_fill(_fill())
    journal.record_fill(_fill())
    journal.save_state("risk", {"halted": False, "trips": 3})
    return [
        [dataclasses.astuple(r) for r in journal.unresolved_intents()],
        journal.order_status("scl-000000000001"),
        journal.order_status("scl-000000000002"),
        journal.order_status("foreign-1"),
        journal.order_status("never"),
        journal.load_state("risk"),
        journal.load_state("nothing"),
    ]


def test_memory_journal_when_same_calls_as_sqlite_then_same_answers(tmp_path: Path) -> None:
    """A contract check: every port answer matches the SQLite journal's for the same calls."""
    with SqliteJournal(tmp_path / "j.sqlite3") as sqlite:
        expected = _exercise(sqlite)
    assert _exercise(MemoryJournal()) == expected
