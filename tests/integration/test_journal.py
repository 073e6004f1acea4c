"""Integration tests for the SQLite journal (scaler.adapters.journal) on real files."""

from __future__ import annotations

import contextlib
import dataclasses
import random
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from scaler.adapters.journal import SCHEMA_VERSION, SqliteJournal
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
from scaler.errors import ConfigError, InvariantViolation
from scaler.ports import Journal

pytestmark = pytest.mark.integration

SRC_DIR = Path(__file__).resolve().parents[2] / "src"
KEY = InstrumentKey("deribit", "BTC-PERPETUAL")
T0_NS = 1_700_000_000 * NS_PER_S


def _request(client_order_id: str = "sc-1", **changes: object) -> OrderRequest:
    base = OrderRequest(
        key=KEY,
        client_order_id=client_order_id,
        side=OrderSide.BUY,
        amount_usd=1_000.0,
        order_type=OrderType.LIMIT,
        limit_price=37_123.5,
        reduce_only=False,
        post_only=True,
        ts_created_ns=T0_NS,
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def _update(
    client_order_id: str, status: OrderStatus, ts_ns: int = T0_NS + NS_PER_S, **changes: object
) -> OrderUpdate:
    base = OrderUpdate(
        key=KEY,
        client_order_id=client_order_id,
        venue_order_id="v-" + client_order_id,
        status=status,
        side=OrderSide.BUY,
        amount_usd=1_000.0,
        filled_usd=0.0,
        average_fill_price=None,
        ts_ns=ts_ns,
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def _fill(fill_id: str = "t-1", **changes: object) -> Fill:
    base = Fill(
        key=KEY,
        client_order_id="sc-1",
        fill_id=fill_id,
        side=OrderSide.SELL,
        size_usd=300.0,
        price=37_120.0,
        fee_coin=-2.0208e-06,
        liquidity=Liquidity.MAKER,
        ts_ns=T0_NS + 2 * NS_PER_S,
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


@pytest.fixture
def path(tmp_path: Path) -> Path:
    """A journal file that does not exist yet."""
    return tmp_path / "journal.sqlite"


@pytest.fixture
def journal(path: Path) -> Iterator[SqliteJournal]:
    """A freshly created journal, closed after the test."""
    with SqliteJournal(path) as opened:
        yield opened


def _pragma(path: Path, name: str) -> object:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        return conn.execute(f"PRAGMA {name}").fetchone()[0]


def test_journal_satisfies_the_journal_port(journal: SqliteJournal) -> None:
    """SqliteJournal is usable wherever the engine expects a Journal."""
    port: Journal = journal
    port.record_intent(_request())
    assert port.unresolved_intents() == [_request()]


def test_record_intent_when_reopened_then_intents_round_trip(path: Path) -> None:
    """Intents, including a market order without a price, read back equal after reopening."""
    limit = _request("sc-1", reduce_only=True, post_only=False)
    market = _request(
        "sc-2",
        key=InstrumentKey("bybit", "BTC/USD:BTC"),
        side=OrderSide.SELL,
        order_type=OrderType.MARKET,
        limit_price=None,
        amount_usd=0.1 + 0.2,
        ts_created_ns=T0_NS + 1,
    )
    with SqliteJournal(path) as journal:
        journal.record_intent(market)
        journal.record_intent(limit)
    with SqliteJournal(path) as journal:
        assert journal.intent("sc-1") == limit
        assert journal.intent("sc-2") == market
        assert journal.unresolved_intents() == [limit, market]
        assert journal.order_status("sc-2") is OrderStatus.INTENDED


def test_record_intent_when_client_id_repeats_then_invariant_violation(
    journal: SqliteJournal,
) -> None:
    """A second intent with the same client order id raises and leaves the first untouched."""
    first = _request("sc-1")
    journal.record_intent(first)
    with pytest.raises(InvariantViolation, match="sc-1"):
        journal.record_intent(_request("sc-1", amount_usd=5_000.0))
    assert journal.intent("sc-1") == first
    journal.record_intent(_request("sc-2"))  # the failed insert left no transaction open


def test_record_update_when_reopened_then_history_round_trips(path: Path) -> None:
    """Every update is kept in order and the latest one sets the status."""
    opened = _update("sc-1", OrderStatus.OPEN, filled_usd=300.0, average_fill_price=37_120.0)
    filled = _update(
        "sc-1",
        OrderStatus.FILLED,
        ts_ns=T0_NS + 3 * NS_PER_S,
        filled_usd=1_000.0,
        average_fill_price=37_121.123456789,
        reason="done",
    )
    with SqliteJournal(path) as journal:
        journal.record_intent(_request("sc-1"))
        journal.record_update(opened)
        journal.record_update(filled)
    with SqliteJournal(path) as journal:
        assert journal.updates("sc-1") == [opened, filled]
        assert journal.order_status("sc-1") is OrderStatus.FILLED
        assert journal.unresolved_intents() == []


def test_record_fill_when_reopened_then_fill_round_trips(path: Path) -> None:
    """A fill reads back equal after reopening."""
    fill = _fill()
    with SqliteJournal(path) as journal:
        journal.record_fill(fill)
    with SqliteJournal(path) as journal:
        assert journal.fills("sc-1") == [fill]
        assert journal.fills("sc-2") == []


def test_record_fill_when_recorded_twice_then_stored_once(journal: SqliteJournal) -> None:
    """Replaying a fill after a reconnect is a no-op; the same id on another market is not."""
    fill = _fill("t-1")
    other_market = _fill(
        "t-1", key=InstrumentKey("deribit", "ETH-PERPETUAL"), ts_ns=T0_NS + 3 * NS_PER_S
    )
    journal.record_fill(fill)
    journal.record_fill(fill)
    journal.record_fill(dataclasses.replace(fill, size_usd=999.0))
    journal.record_fill(other_market)
    assert journal.fills("sc-1") == [fill, other_market]


@pytest.mark.parametrize("status", list(OrderStatus))
def test_unresolved_intents_when_latest_status_given_then_only_non_terminal_remain(
    journal: SqliteJournal, status: OrderStatus
) -> None:
    """An intent stays unresolved while its latest status is intended or open."""
    request = _request("sc-1")
    untouched = _request("sc-2", ts_created_ns=T0_NS + 1)
    journal.record_intent(request)
    journal.record_intent(untouched)
    journal.record_update(_update("sc-1", status))
    expected = [untouched] if status.is_terminal else [request, untouched]
    assert journal.unresolved_intents() == expected
    assert journal.order_status("sc-1") is status


@pytest.mark.parametrize(
    ("first", "late"),
    [
        (OrderStatus.FILLED, OrderStatus.OPEN),
        (OrderStatus.CANCELLED, OrderStatus.INTENDED),
        (OrderStatus.OPEN, OrderStatus.INTENDED),
    ],
)
def test_record_update_when_stale_report_arrives_late_then_status_does_not_go_back(
    journal: SqliteJournal, first: OrderStatus, late: OrderStatus
) -> None:
    """A report from earlier in the lifecycle, even with a newer timestamp, is history only."""
    journal.record_intent(_request("sc-1"))
    journal.record_update(_update("sc-1", first, ts_ns=T0_NS + 5))
    journal.record_update(_update("sc-1", late, ts_ns=T0_NS + 9))
    assert journal.order_status("sc-1") is first
    assert [update.status for update in journal.updates("sc-1")] == [first, late]


def test_record_update_when_terminal_reports_disagree_then_newest_wins(
    journal: SqliteJournal,
) -> None:
    """Between two reports equally far along, the one with the later timestamp counts."""
    journal.record_update(_update("sc-1", OrderStatus.CANCELLED, ts_ns=T0_NS + 9))
    journal.record_update(_update("sc-1", OrderStatus.FILLED, ts_ns=T0_NS + 5))
    assert journal.order_status("sc-1") is OrderStatus.CANCELLED


def test_orders_by_status_counts_each_order_once_by_latest_status(
    journal: SqliteJournal,
) -> None:
    """Counts cover intents without updates and orders known only from venue reports."""
    for index, client_order_id in enumerate(("a", "b", "c", "d")):
        journal.record_intent(_request(client_order_id, ts_created_ns=T0_NS + index))
    journal.record_update(_update("b", OrderStatus.OPEN))
    journal.record_update(_update("b", OrderStatus.OPEN, ts_ns=T0_NS + 2 * NS_PER_S))
    journal.record_update(_update("c", OrderStatus.OPEN))
    journal.record_update(_update("c", OrderStatus.FILLED, ts_ns=T0_NS + 2 * NS_PER_S))
    journal.record_update(_update("d", OrderStatus.REJECTED))
    journal.record_update(_update("venue-only", OrderStatus.CANCELLED))
    assert journal.orders_by_status() == {
        "intended": 1,
        "open": 1,
        "filled": 1,
        "cancelled": 1,
        "rejected": 1,
    }
    assert journal.order_status("venue-only") is OrderStatus.CANCELLED


def test_orders_by_status_when_empty_then_every_status_is_zero(journal: SqliteJournal) -> None:
    """An empty journal reports zero for every status, so gauges always have all labels."""
    assert journal.orders_by_status() == {status.value: 0 for status in OrderStatus}


def test_order_status_when_client_id_unknown_then_none(journal: SqliteJournal) -> None:
    """An id the journal never saw has no status."""
    assert journal.order_status("nope") is None
    assert journal.intent("nope") is None


def test_next_sequence_when_reopened_then_continues_without_repeating(path: Path) -> None:
    """Counters persist across restarts, are independent by name and never repeat."""
    with SqliteJournal(path) as journal:
        assert journal.peek_sequence("client_order_id") == 0
        issued = [journal.next_sequence("client_order_id") for _ in range(3)]
        assert journal.next_sequence("other") == 1
        assert journal.peek_sequence("client_order_id") == 3
    with SqliteJournal(path) as journal:
        assert journal.peek_sequence("client_order_id") == 3
        issued += [journal.next_sequence("client_order_id") for _ in range(3)]
        assert journal.peek_sequence("other") == 1
    assert issued == [1, 2, 3, 4, 5, 6]


def test_save_state_when_reopened_then_awkward_floats_round_trip_exactly(path: Path) -> None:
    """Floats come back bit for bit, the sign of zero included."""
    value = {
        "tiny": 1e-300,
        "sum": 0.1 + 0.2,
        "negative_zero": -0.0,
        "subnormal": 5e-324,
        "largest": 1.7976931348623157e308,
        "ts_ns": 2**62 + 1,
        "nested": {"rates": [-0.00375, 1e-300, -0.0], "mode": "auto", "halted": False},
        "nothing": None,
    }
    with SqliteJournal(path) as journal:
        journal.save_state("funding", value)
    with SqliteJournal(path) as journal:
        loaded = journal.load_state("funding")
    assert loaded == value
    assert repr(loaded) == repr(value)  # repr tells -0.0 from 0.0 and 1 from 1.0


def test_save_state_when_saved_again_then_replaced(journal: SqliteJournal) -> None:
    """The latest save under a name wins; other names and unknown names are unaffected."""
    journal.save_state("mode", {"mode": "auto"})
    journal.save_state("risk", {"state": "active"})
    journal.save_state("mode", {"mode": "recommend"})
    assert journal.load_state("mode") == {"mode": "recommend"}
    assert journal.load_state("risk") == {"state": "active"}
    assert journal.load_state("paper") is None


@pytest.mark.parametrize(
    "bad", [float("nan"), float("inf"), float("-inf")], ids=["nan", "inf", "-inf"]
)
def test_save_state_when_value_not_finite_then_value_error_and_previous_kept(
    journal: SqliteJournal, bad: float
) -> None:
    """NaN and infinities are refused and the state saved before stays."""
    journal.save_state("funding", {"ema": 0.0001})
    with pytest.raises(ValueError, match="JSON compliant"):
        journal.save_state("funding", {"ema": 0.0002, "nested": {"rates": [bad]}})
    assert journal.load_state("funding") == {"ema": 0.0001}


def test_journal_when_created_then_wal_mode_and_schema_version_are_set(path: Path) -> None:
    """A new journal is in WAL mode and records its schema version in both places."""
    with SqliteJournal(path):
        assert _pragma(path, "journal_mode") == "wal"
    assert _pragma(path, "user_version") == SCHEMA_VERSION
    with contextlib.closing(sqlite3.connect(path)) as conn:
        versions = [row[0] for row in conn.execute("SELECT version FROM schema_version")]
    assert versions == list(range(1, SCHEMA_VERSION + 1))


def test_open_when_file_is_another_sqlite_database_then_config_error_and_file_untouched(
    path: Path,
) -> None:
    """An SQLite file that is not a scaler journal is refused without being converted to WAL."""
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.execute("CREATE TABLE trades (id INTEGER PRIMARY KEY)")
        conn.commit()
    with pytest.raises(ConfigError, match="not a scaler journal") as raised:
        SqliteJournal(path)
    assert raised.value.field == "journal_path"
    assert _pragma(path, "journal_mode") == "delete"


def test_open_when_file_is_text_then_config_error(path: Path) -> None:
    """A text file is refused with a clear error and left as it was."""
    text = "client_order_id,amount_usd\nsc-1,1000\n" * 20
    path.write_text(text)
    with pytest.raises(ConfigError, match="not an SQLite database") as raised:
        SqliteJournal(path)
    assert raised.value.field == "journal_path"
    assert path.read_text() == text


def test_open_when_schema_is_newer_then_config_error(path: Path) -> None:
    """A journal written by a newer scaler is refused rather than misread."""
    SqliteJournal(path).close()
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(ConfigError, match="upgrade scaler") as raised:
        SqliteJournal(path)
    assert raised.value.field == "journal_path"


def test_open_when_directory_missing_then_config_error(tmp_path: Path) -> None:
    """A journal path in a directory that does not exist is a configuration error."""
    with pytest.raises(ConfigError) as raised:
        SqliteJournal(tmp_path / "missing" / "journal.sqlite")
    assert raised.value.field == "journal_path"


def test_journal_when_context_exits_then_connection_is_closed(path: Path) -> None:
    """Leaving the with-block closes the journal; close is idempotent."""
    with SqliteJournal(path) as journal:
        journal.save_state("mode", {"mode": "auto"})
    journal.close()
    with pytest.raises(sqlite3.ProgrammingError):
        journal.load_state("mode")


_CRASH_CHILD = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, sys.argv[1])
    from scaler.adapters.journal import SqliteJournal
    from scaler.domain.orders import OrderRequest, OrderSide, OrderType
    from scaler.domain.types import InstrumentKey

    key = InstrumentKey("deribit", "BTC-PERPETUAL")
    journal = SqliteJournal(sys.argv[2])
    while True:
        n = journal.next_sequence("crash")
        journal.record_intent(
            OrderRequest(key, f"crash-{n}", OrderSide.BUY, 10.0 * n, OrderType.LIMIT,
                         60_000.5 + n, n % 2 == 0, False, n)
        )
        print(f"crash-{n}", flush=True)
    """
)


def _crash_request(n: int) -> OrderRequest:
    return OrderRequest(
        KEY,
        f"crash-{n}",
        OrderSide.BUY,
        10.0 * n,
        OrderType.LIMIT,
        60_000.5 + n,
        n % 2 == 0,
        False,
        n,
    )


def _run_child_and_kill(path: Path, delay_s: float) -> list[str]:
    """Start a writer, SIGKILL it ``delay_s`` after its first intent; return the ids it reported."""
    command = [sys.executable, "-c", _CRASH_CHILD, str(SRC_DIR), str(path)]
    lines: list[str] = []
    started = threading.Event()
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as child:
        assert child.stdout is not None
        assert child.stderr is not None
        stdout = child.stdout

        def drain() -> None:
            for line in stdout:
                if line.endswith("\n"):  # a torn last line was never reported
                    lines.append(line.strip())
                started.set()
            started.set()

        reader = threading.Thread(target=drain, daemon=True)
        reader.start()
        try:
            assert started.wait(timeout=5.0), "writer produced nothing within 5 s"
            assert child.poll() is None, child.stderr.read()
            with pytest.raises(subprocess.TimeoutExpired):  # still writing when killed
                child.wait(timeout=delay_s)
        finally:
            child.kill()
            child.wait(timeout=5.0)
            reader.join(timeout=5.0)
    assert child.returncode == -signal.SIGKILL
    return lines


@pytest.mark.parametrize("seed", range(5))
def test_record_intent_when_writer_is_killed_then_every_reported_intent_survives(
    path: Path, seed: int
) -> None:
    """Every intent the killed writer reported as written is on disk, and the file is intact."""
    delay_s = random.Random(seed).uniform(0.01, 0.4)
    reported = _run_child_and_kill(path, delay_s)

    assert reported == [f"crash-{n}" for n in range(1, len(reported) + 1)]
    with contextlib.closing(sqlite3.connect(path)) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    with SqliteJournal(path) as journal:
        for n in range(1, len(reported) + 1):
            assert journal.intent(f"crash-{n}") == _crash_request(n)
        survivors = {request.client_order_id for request in journal.unresolved_intents()}
        assert set(reported) <= survivors
        assert journal.next_sequence("crash") > len(reported)
