"""The simulator's durable state: its own SQLite file (``state_dir/exchange-sim.sqlite3``).

Two tables:

- ``state``: named JSON documents saved together in one transaction, ``paper_exchange`` (the
  wallet, positions, orders and fills, :meth:`PaperExchange.to_dict`) and ``sim`` (the order id
  counter and every order's label and metadata, :meth:`SimVenue.to_dict`), so a restarted
  simulator resumes the same account with the same order ids;
- ``order_requests``: one row per order request received, whatever became of it (accepted,
  refused, failed by a fault), in arrival order: the record a test reads to count duplicates or
  to measure tick-to-order latency.

WAL with ``synchronous=NORMAL``: a committed save survives the process being killed (not a
power cut, which a simulator need not survive). The connection belongs to the thread that opened
it; the simulator calls it from its event loop only.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Final

EXCHANGE_STATE: Final = "paper_exchange"
SIM_STATE: Final = "sim"

_SCHEMA: Final = (
    """CREATE TABLE IF NOT EXISTS state (
        name TEXT PRIMARY KEY,
        value_json TEXT NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS order_requests (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        ts_recv_ns INTEGER NOT NULL,
        ts_last_ticker_push_ns INTEGER,
        transport TEXT NOT NULL,
        side TEXT NOT NULL,
        label TEXT,
        amount REAL,
        order_type TEXT,
        price REAL,
        order_id TEXT,
        outcome TEXT NOT NULL,
        error_code INTEGER,
        response TEXT NOT NULL
    )""",
)
_COLUMNS: Final = (
    "ts_recv_ns, ts_last_ticker_push_ns, transport, side, label, amount, order_type, price,"
    " order_id, outcome, error_code, response"
)


@dataclass(frozen=True, slots=True)
class OrderRequestRecord:
    """One ``private/buy`` or ``private/sell`` as received, and what became of it.

    ``outcome``: ``accepted``, ``rejected`` (by the venue's rules), ``fault_rejected``
    (``reject_order_rate``), or the error kind of a REST fault (``rate_limit``, ``unavailable``,
    ``server_error``, ``timeout_unexecuted``). ``response``: ``sent``, or ``dropped`` when the
    request was executed and its answer then withheld (``timeout_executed``).
    ``ts_last_ticker_push_ns`` is when the last websocket ticker push before it was sent.
    """

    ts_recv_ns: int
    ts_last_ticker_push_ns: int | None
    transport: str
    side: str
    label: str | None
    amount: float | None
    order_type: str | None
    price: float | None
    order_id: str | None
    outcome: str
    error_code: int | None
    response: str = "sent"


class SimStore:
    """The SQLite file behind the simulator (``":memory:"`` keeps it in memory, for tests)."""

    def __init__(self, path: Path | str) -> None:
        self.path = path
        self._conn = sqlite3.connect(str(path), isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        for statement in _SCHEMA:
            self._conn.execute(statement)

    def close(self) -> None:
        self._conn.close()

    def load(self) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        """The saved paper exchange and simulator documents (``None`` when never saved)."""
        return self._load(EXCHANGE_STATE), self._load(SIM_STATE)

    def _load(self, name: str) -> dict[str, Any] | None:
        row = self._conn.execute("SELECT value_json FROM state WHERE name = ?", (name,)).fetchone()
        if row is None:
            return None
        value: dict[str, Any] = json.loads(row[0])
        return value

    def save(self, exchange: Mapping[str, Any], sim: Mapping[str, Any]) -> None:
        """Replace both documents in one transaction."""
        rows = [(EXCHANGE_STATE, json.dumps(exchange)), (SIM_STATE, json.dumps(sim))]
        with self._conn:
            self._conn.execute("BEGIN IMMEDIATE")
            self._conn.executemany(
                "INSERT INTO state (name, value_json) VALUES (?, ?)"
                " ON CONFLICT (name) DO UPDATE SET value_json = excluded.value_json",
                rows,
            )

    def append_request(self, record: OrderRequestRecord) -> int:
        """Log one order request; its sequence number (1, 2, ...)."""
        values = tuple(asdict(record).values())
        cursor = self._conn.execute(
            f"INSERT INTO order_requests ({_COLUMNS}) VALUES ({', '.join('?' * len(values))})",  # noqa: S608 - fixed column list
            values,
        )
        assert cursor.lastrowid is not None  # an INSERT into a rowid table always sets it
        return cursor.lastrowid

    def mark_dropped(self, seq: int) -> None:
        """Record that the answer to request ``seq`` was withheld (a ``timeout_executed`` fault)."""
        self._conn.execute("UPDATE order_requests SET response = 'dropped' WHERE seq = ?", (seq,))

    def requests(self, since_seq: int = 0, limit: int = 1_000) -> list[dict[str, Any]]:
        """Logged requests after ``since_seq``, oldest first, at most ``limit``."""
        rows = self._conn.execute(
            f"SELECT seq, {_COLUMNS} FROM order_requests WHERE seq > ? ORDER BY seq LIMIT ?",  # noqa: S608 - fixed column list
            (since_seq, limit),
        )
        names = ["seq", *(column.strip() for column in _COLUMNS.split(","))]
        return [dict(zip(names, row, strict=True)) for row in rows]

    def request_counts(self) -> dict[str, int]:
        """Logged requests by outcome."""
        rows = self._conn.execute("SELECT outcome, COUNT(*) FROM order_requests GROUP BY outcome")
        return {str(outcome): int(count) for outcome, count in rows}
