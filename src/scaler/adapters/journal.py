"""The SQLite journal: the durable record a restart resumes from (DESIGN.md sections 5 and 6).

``SqliteJournal`` implements :class:`scaler.ports.Journal` with the standard library ``sqlite3``.
It is synchronous on purpose: the engine calls it from the event loop and every call is one
short transaction (a few inserts or one query). The database runs in WAL mode with
``synchronous=FULL``, so when ``record_intent`` returns the intent is on disk and the order may
be sent; a crash at any moment afterwards cannot lose it.

Tables (schema version 1):

- ``order_intents``: one row per order we meant to send, written before sending; never twice.
- ``order_updates``: every venue report, in the order recorded (the history).
- ``order_latest``: the status that counts per client order id (see ``record_update``).
- ``fills``: executions, keyed by ``(venue, symbol, fill_id)``; recording one twice is a no-op,
  so replays after a reconnect are idempotent. The venue and symbol are part of the key because
  several venues number trades per instrument, and one id on two markets is two fills.
- ``state``: named JSON documents (funding predictor, risk/breaker/halt state, mode, paper
  exchange) with the time they were saved.
- ``sequences``: persistent counters, so client order ids are never reused across restarts.
- ``schema_version``: one row per migration applied; ``PRAGMA user_version`` holds the current
  version and ``PRAGMA application_id`` marks the file as a scaler journal.

Opening a file that is not a scaler journal, or one written by a newer scaler, raises
:class:`scaler.errors.ConfigError` for the field ``journal_path`` and leaves the file untouched.
The connection belongs to the thread that opened it (``sqlite3``'s default check).
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Self

from scaler.clock import WallClock
from scaler.domain.orders import (
    Fill,
    Liquidity,
    OrderRequest,
    OrderSide,
    OrderStatus,
    OrderType,
    OrderUpdate,
)
from scaler.domain.types import InstrumentKey
from scaler.errors import ConfigError, InvariantViolation
from scaler.ports import Clock

FIELD: Final = "journal_path"
APPLICATION_ID: Final = 0x53434C52  # "SCLR": marks an SQLite file as a scaler journal

_SCHEMA_V1: Final[tuple[str, ...]] = (
    """CREATE TABLE schema_version (
        version INTEGER PRIMARY KEY,
        description TEXT NOT NULL,
        ts_applied_ns INTEGER NOT NULL
    )""",
    """CREATE TABLE order_intents (
        client_order_id TEXT PRIMARY KEY,
        venue TEXT NOT NULL,
        symbol TEXT NOT NULL,
        side TEXT NOT NULL,
        amount_usd REAL NOT NULL,
        order_type TEXT NOT NULL,
        limit_price REAL,
        reduce_only INTEGER NOT NULL CHECK (reduce_only IN (0, 1)),
        post_only INTEGER NOT NULL CHECK (post_only IN (0, 1)),
        ts_created_ns INTEGER NOT NULL
    )""",
    """CREATE TABLE order_updates (
        update_id INTEGER PRIMARY KEY,
        client_order_id TEXT NOT NULL,
        venue TEXT NOT NULL,
        symbol TEXT NOT NULL,
        venue_order_id TEXT,
        status TEXT NOT NULL,
        side TEXT NOT NULL,
        amount_usd REAL NOT NULL,
        filled_usd REAL NOT NULL,
        average_fill_price REAL,
        ts_ns INTEGER NOT NULL,
        reason TEXT NOT NULL
    )""",
    "CREATE INDEX order_updates_by_client_id ON order_updates (client_order_id, update_id)",
    """CREATE TABLE order_latest (
        client_order_id TEXT PRIMARY KEY,
        update_id INTEGER NOT NULL REFERENCES order_updates (update_id),
        status TEXT NOT NULL,
        ts_ns INTEGER NOT NULL
    )""",
    """CREATE TABLE fills (
        venue TEXT NOT NULL,
        symbol TEXT NOT NULL,
        fill_id TEXT NOT NULL,
        client_order_id TEXT NOT NULL,
        side TEXT NOT NULL,
        size_usd REAL NOT NULL,
        price REAL NOT NULL,
        fee_coin REAL NOT NULL,
        liquidity TEXT NOT NULL,
        ts_ns INTEGER NOT NULL,
        PRIMARY KEY (venue, symbol, fill_id)
    )""",
    "CREATE INDEX fills_by_client_id ON fills (client_order_id, ts_ns)",
    """CREATE TABLE state (
        name TEXT PRIMARY KEY,
        value_json TEXT NOT NULL,
        ts_ns INTEGER NOT NULL
    )""",
    """CREATE TABLE sequences (
        name TEXT PRIMARY KEY,
        value INTEGER NOT NULL
    )""",
)

MIGRATIONS: Final[tuple[tuple[str, tuple[str, ...]], ...]] = (("initial schema", _SCHEMA_V1),)
"""``MIGRATIONS[n]`` takes the schema from version ``n`` to ``n + 1``. Append, never edit."""

SCHEMA_VERSION: Final = len(MIGRATIONS)

_UNRESOLVED: Final = (OrderStatus.INTENDED.value, OrderStatus.OPEN.value)
_INSERT_INTENT: Final = (
    "INSERT INTO order_intents (client_order_id, venue, symbol, side, amount_usd, order_type,"
    " limit_price, reduce_only, post_only, ts_created_ns) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_SELECT_INTENT: Final = (
    "SELECT client_order_id, venue, symbol, side, amount_usd, order_type, limit_price,"
    " reduce_only, post_only, ts_created_ns FROM order_intents WHERE client_order_id = ?"
)
_SELECT_UNRESOLVED_INTENTS: Final = (
    "SELECT i.client_order_id, i.venue, i.symbol, i.side, i.amount_usd, i.order_type,"
    " i.limit_price, i.reduce_only, i.post_only, i.ts_created_ns FROM order_intents AS i"
    " LEFT JOIN order_latest AS l USING (client_order_id)"
    " WHERE l.status IS NULL OR l.status IN (?, ?)"
    " ORDER BY i.ts_created_ns, i.client_order_id"
)
_INSERT_UPDATE: Final = (
    "INSERT INTO order_updates (client_order_id, venue, symbol, venue_order_id, status, side,"
    " amount_usd, filled_usd, average_fill_price, ts_ns, reason)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_SELECT_UPDATES: Final = (
    "SELECT client_order_id, venue, symbol, venue_order_id, status, side, amount_usd,"
    " filled_usd, average_fill_price, ts_ns, reason FROM order_updates"
    " WHERE client_order_id = ? ORDER BY update_id"
)
_INSERT_FILL: Final = (
    "INSERT INTO fills (venue, symbol, fill_id, client_order_id, side, size_usd, price,"
    " fee_coin, liquidity, ts_ns) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (venue, symbol, fill_id) DO NOTHING"
)
_SELECT_FILLS: Final = (
    "SELECT venue, symbol, fill_id, client_order_id, side, size_usd, price, fee_coin,"
    " liquidity, ts_ns FROM fills WHERE client_order_id = ?"
    " ORDER BY ts_ns, venue, symbol, fill_id"
)


class SqliteJournal:
    """The journal in one SQLite file; see the module docstring. Use as a context manager."""

    def __init__(self, path: Path | str, *, clock: Clock | None = None) -> None:
        self._path = Path(path)
        self._clock: Clock = clock if clock is not None else WallClock()
        self._conn = _open(self._path, self._clock)

    @property
    def path(self) -> Path:
        return self._path

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection (idempotent); the last connection out checkpoints the WAL."""
        self._conn.close()

    # -- orders -------------------------------------------------------------------------------

    def record_intent(self, request: OrderRequest) -> None:
        """Durably record an order before it is sent; a second intent with the same id is a bug."""
        row = (
            request.client_order_id,
            request.key.venue,
            request.key.symbol,
            request.side.value,
            request.amount_usd,
            request.order_type.value,
            request.limit_price,
            int(request.reduce_only),
            int(request.post_only),
            request.ts_created_ns,
        )
        try:
            with self._transaction() as conn:
                conn.execute(_INSERT_INTENT, row)
        except sqlite3.IntegrityError as exc:
            raise InvariantViolation(
                f"order intent {request.client_order_id!r} is already journaled"
            ) from exc

    def record_update(self, update: OrderUpdate) -> None:
        """Append a venue report to the history and let it become the latest if it supersedes.

        A report supersedes the latest one when it is further along the lifecycle (intended,
        then open, then terminal), or as far along and not older (``ts_ns``). So a late "open"
        never resurrects a filled order, and clock skew between our intent timestamp and the
        venue's cannot hide the venue's first acknowledgement.
        """
        row = (
            update.client_order_id,
            update.key.venue,
            update.key.symbol,
            update.venue_order_id,
            update.status.value,
            update.side.value,
            update.amount_usd,
            update.filled_usd,
            update.average_fill_price,
            update.ts_ns,
            update.reason,
        )
        with self._transaction() as conn:
            cursor = conn.execute(_INSERT_UPDATE, row)
            latest = conn.execute(
                "SELECT status, ts_ns FROM order_latest WHERE client_order_id = ?",
                (update.client_order_id,),
            ).fetchone()
            if latest is None or _supersedes(update, OrderStatus(latest[0]), int(latest[1])):
                conn.execute(
                    "INSERT INTO order_latest (client_order_id, update_id, status, ts_ns)"
                    " VALUES (?, ?, ?, ?) ON CONFLICT (client_order_id) DO UPDATE SET"
                    " update_id = excluded.update_id, status = excluded.status,"
                    " ts_ns = excluded.ts_ns",
                    (update.client_order_id, cursor.lastrowid, update.status.value, update.ts_ns),
                )

    def record_fill(self, fill: Fill) -> None:
        """Record an execution; the same ``(venue, symbol, fill_id)`` again is a no-op."""
        row = (
            fill.key.venue,
            fill.key.symbol,
            fill.fill_id,
            fill.client_order_id,
            fill.side.value,
            fill.size_usd,
            fill.price,
            fill.fee_coin,
            fill.liquidity.value,
            fill.ts_ns,
        )
        with self._transaction() as conn:
            conn.execute(_INSERT_FILL, row)

    def unresolved_intents(self) -> list[OrderRequest]:
        """Intents with no update yet or whose latest status is intended or open, oldest first.

        A restart reconciles these with the venue by client order id before sending anything new.
        """
        rows = self._conn.execute(_SELECT_UNRESOLVED_INTENTS, _UNRESOLVED).fetchall()
        return [_request_from_row(row) for row in rows]

    def intent(self, client_order_id: str) -> OrderRequest | None:
        """The journaled intent for ``client_order_id``, if any."""
        row = self._conn.execute(_SELECT_INTENT, (client_order_id,)).fetchone()
        return None if row is None else _request_from_row(row)

    def updates(self, client_order_id: str) -> list[OrderUpdate]:
        """Every venue report recorded for ``client_order_id``, in the order recorded."""
        rows = self._conn.execute(_SELECT_UPDATES, (client_order_id,)).fetchall()
        return [_update_from_row(row) for row in rows]

    def fills(self, client_order_id: str) -> list[Fill]:
        """The executions recorded for ``client_order_id``, oldest first."""
        rows = self._conn.execute(_SELECT_FILLS, (client_order_id,)).fetchall()
        return [_fill_from_row(row) for row in rows]

    def order_status(self, client_order_id: str) -> OrderStatus | None:
        """The latest status; ``INTENDED`` for an intent with no update; ``None`` if unknown."""
        (status,) = self._conn.execute(
            "SELECT COALESCE("
            " (SELECT status FROM order_latest WHERE client_order_id = ?),"
            " (SELECT ? FROM order_intents WHERE client_order_id = ?))",
            (client_order_id, OrderStatus.INTENDED.value, client_order_id),
        ).fetchone()
        return None if status is None else OrderStatus(status)

    def orders_by_status(self) -> dict[str, int]:
        """How many orders have each latest status; every status is present, zero included.

        Counts journaled intents (with no update: intended) and orders known only from venue
        reports.
        """
        counts = dict.fromkeys((status.value for status in OrderStatus), 0)
        rows = self._conn.execute(
            "SELECT status, COUNT(*) FROM ("
            " SELECT COALESCE(l.status, ?) AS status FROM order_intents AS i"
            " LEFT JOIN order_latest AS l USING (client_order_id)"
            " UNION ALL SELECT l.status FROM order_latest AS l"
            " WHERE l.client_order_id NOT IN (SELECT client_order_id FROM order_intents)"
            ") GROUP BY status",
            (OrderStatus.INTENDED.value,),
        ).fetchall()
        for status, count in rows:
            counts[str(status)] = int(count)
        return counts

    # -- state and sequences --------------------------------------------------------------------

    def save_state(self, name: str, value: Mapping[str, Any]) -> None:
        """Replace the state named ``name``; floats round-trip exactly; NaN or inf is ValueError."""
        text = json.dumps(dict(value), allow_nan=False, separators=(",", ":"))
        with self._transaction() as conn:
            conn.execute(
                "INSERT INTO state (name, value_json, ts_ns) VALUES (?, ?, ?)"
                " ON CONFLICT (name) DO UPDATE SET"
                " value_json = excluded.value_json, ts_ns = excluded.ts_ns",
                (name, text, self._clock.now_ns()),
            )

    def load_state(self, name: str) -> dict[str, Any] | None:
        """The state last saved under ``name``, or ``None`` if none was."""
        row = self._conn.execute("SELECT value_json FROM state WHERE name = ?", (name,)).fetchone()
        if row is None:
            return None
        value = json.loads(str(row[0]), parse_constant=_reject_constant)
        if not isinstance(value, dict):
            raise InvariantViolation(f"journal state {name!r} is not a JSON object")
        return value

    def next_sequence(self, name: str) -> int:
        """Increment the counter ``name`` and return it (1 first); never repeats across restarts."""
        with self._transaction() as conn:
            conn.execute(
                "INSERT INTO sequences (name, value) VALUES (?, 1)"
                " ON CONFLICT (name) DO UPDATE SET value = value + 1",
                (name,),
            )
            row = conn.execute("SELECT value FROM sequences WHERE name = ?", (name,)).fetchone()
        return int(row[0])

    def peek_sequence(self, name: str) -> int:
        """The value ``next_sequence(name)`` last returned; 0 if it was never called."""
        row = self._conn.execute("SELECT value FROM sequences WHERE name = ?", (name,)).fetchone()
        return 0 if row is None else int(row[0])

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with _immediate_transaction(self._conn):
            yield self._conn


def migrate(conn: sqlite3.Connection, clock: Clock) -> int:
    """Bring the schema up to ``SCHEMA_VERSION``, one transaction per step; return the version.

    Each step re-reads ``user_version`` inside its write transaction, so two processes opening
    a new file at once apply every migration exactly once.
    """
    for target in range(1, SCHEMA_VERSION + 1):
        with _immediate_transaction(conn):
            if _pragma_int(conn, "user_version") >= target:
                continue
            description, statements = MIGRATIONS[target - 1]
            for statement in statements:
                conn.execute(statement)
            conn.execute(
                "INSERT INTO schema_version (version, description, ts_applied_ns) VALUES (?, ?, ?)",
                (target, description, clock.now_ns()),
            )
            # PRAGMA takes no parameters; both values are integers we control.
            conn.execute(f"PRAGMA application_id = {APPLICATION_ID:d}")
            conn.execute(f"PRAGMA user_version = {target:d}")
    return _pragma_int(conn, "user_version")


def _open(path: Path, clock: Clock) -> sqlite3.Connection:
    try:
        conn = sqlite3.connect(path, isolation_level=None)
    except sqlite3.Error as exc:
        raise ConfigError(FIELD, f"cannot open {path}: {exc}") from exc
    try:
        _check_identity(conn, path)
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise ConfigError(FIELD, f"{path}: SQLite refused WAL mode (got {mode!r})")
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA foreign_keys = ON")
        version = migrate(conn, clock)
        recorded = conn.execute("SELECT MAX(version) FROM schema_version").fetchone()[0]
        if recorded != version:
            raise ConfigError(
                FIELD, f"{path}: schema_version table says {recorded}, user_version {version}"
            )
    except BaseException:
        conn.close()
        raise
    return conn


def _check_identity(conn: sqlite3.Connection, path: Path) -> None:
    """Refuse, without writing to it, a file that is not a scaler journal or is too new."""
    try:
        application_id = _pragma_int(conn, "application_id")
        version = _pragma_int(conn, "user_version")
        objects = int(conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()[0])
    except sqlite3.DatabaseError as exc:
        raise ConfigError(FIELD, f"{path} is not an SQLite database ({exc})") from exc
    is_new_file = application_id == 0 and version == 0 and objects == 0
    if application_id != APPLICATION_ID and not is_new_file:
        raise ConfigError(FIELD, f"{path} is an SQLite database but not a scaler journal")
    if version > SCHEMA_VERSION:
        raise ConfigError(
            FIELD,
            f"{path} has journal schema version {version}; this scaler reads up to"
            f" {SCHEMA_VERSION}: upgrade scaler or point journal_path elsewhere",
        )


@contextlib.contextmanager
def _immediate_transaction(conn: sqlite3.Connection) -> Iterator[None]:
    """One write transaction: takes the write lock up front, commits or rolls back."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:  # SQLite may already have rolled back (disk full, I/O error)
            conn.execute("ROLLBACK")
        raise


def _pragma_int(conn: sqlite3.Connection, name: str) -> int:
    return int(conn.execute(f"PRAGMA {name}").fetchone()[0])


def _supersedes(update: OrderUpdate, latest_status: OrderStatus, latest_ts_ns: int) -> bool:
    new_rank, old_rank = _lifecycle_rank(update.status), _lifecycle_rank(latest_status)
    if new_rank != old_rank:
        return new_rank > old_rank
    return update.ts_ns >= latest_ts_ns


def _lifecycle_rank(status: OrderStatus) -> int:
    if status.is_terminal:
        return 2
    return 1 if status is OrderStatus.OPEN else 0


def _reject_constant(name: str) -> float:
    raise ValueError(f"journal state holds {name}, which save_state never writes")


def _request_from_row(row: tuple[Any, ...]) -> OrderRequest:
    return OrderRequest(
        key=InstrumentKey(venue=str(row[1]), symbol=str(row[2])),
        client_order_id=str(row[0]),
        side=OrderSide(row[3]),
        amount_usd=float(row[4]),
        order_type=OrderType(row[5]),
        limit_price=None if row[6] is None else float(row[6]),
        reduce_only=bool(row[7]),
        post_only=bool(row[8]),
        ts_created_ns=int(row[9]),
    )


def _update_from_row(row: tuple[Any, ...]) -> OrderUpdate:
    return OrderUpdate(
        key=InstrumentKey(venue=str(row[1]), symbol=str(row[2])),
        client_order_id=str(row[0]),
        venue_order_id=None if row[3] is None else str(row[3]),
        status=OrderStatus(row[4]),
        side=OrderSide(row[5]),
        amount_usd=float(row[6]),
        filled_usd=float(row[7]),
        average_fill_price=None if row[8] is None else float(row[8]),
        ts_ns=int(row[9]),
        reason=str(row[10]),
    )


def _fill_from_row(row: tuple[Any, ...]) -> Fill:
    return Fill(
        key=InstrumentKey(venue=str(row[0]), symbol=str(row[1])),
        fill_id=str(row[2]),
        client_order_id=str(row[3]),
        side=OrderSide(row[4]),
        size_usd=float(row[5]),
        price=float(row[6]),
        fee_coin=float(row[7]),
        liquidity=Liquidity(row[8]),
        ts_ns=int(row[9]),
    )
