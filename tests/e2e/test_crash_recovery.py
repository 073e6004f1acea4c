"""e2e: SIGKILL the daemon at random moments; the journal and the paper venue stay consistent."""

from __future__ import annotations

import random
import sqlite3
import time
from collections.abc import Callable

import pytest

from scaler.adapters.journal import SqliteJournal
from scaler.adapters.paper.exchange import PaperExchange
from scaler.domain.orders import OrderStatus
from scaler.domain.types import InstrumentKey
from tests.e2e.conftest import KEY_LABELS, Daemon, converged, eventually, sample_value

pytestmark = pytest.mark.e2e

MakeDaemon = Callable[..., Daemon]
KEY = InstrumentKey(KEY_LABELS["venue"], KEY_LABELS["symbol"])
SEED = 20240611
KILLS = 5
# No dead band while crashing: the target follows the mark, so orders are in flight all the time
# and a kill is likely to land between an intent and its outcome.
BUSY_ENV = {"SCALER_RISK__DEAD_BAND_FRACTION": "0", "SCALER_RISK__DEAD_BAND_MIN_USD": "0"}


def _trading(daemon: Daemon) -> bool:
    """The daemon decides, is active, and has sent at least one order in this run."""
    daemon.assert_alive()
    if daemon.get("/readyz")[0] != 200:
        return False
    item = daemon.instrument()
    intended = sample_value(daemon.metrics(), "scaler_orders_total", outcome="intended")
    return item.get("trading_state") == "active" and intended > 0


def test_sigkill_at_random_moments_leaves_a_consistent_journal_and_venue(
    make_daemon: MakeDaemon,
) -> None:
    """Five SIGKILLs mid-loop, then a clean stop: intents resolved, ids unique, venue matches."""
    rng = random.Random(SEED)
    daemon = make_daemon()
    for _ in range(KILLS):
        daemon.start(**BUSY_ENV)
        eventually(lambda: _trading(daemon), 20.0, "the daemon to trade")
        time.sleep(rng.uniform(0.5, 3.0))  # the random kill moment is the point of the test
        daemon.assert_alive()
        assert daemon.kill() == -9

    daemon.start().wait_ready()
    eventually(lambda: converged(daemon.instrument()), 25.0, "convergence after the last restart")
    last_actual = daemon.instrument()["actual_usd"]
    assert daemon.terminate() == 0, daemon.stderr_text()[-2000:]
    logs = daemon.stdout_text()
    assert "engine_failed" not in logs
    assert "InvariantViolation" not in logs + daemon.stderr_text()

    db = daemon.cwd / "var" / "scaler.sqlite3"
    with SqliteJournal(db) as journal:
        assert journal.unresolved_intents() == []
        counts = journal.orders_by_status()
        assert counts[OrderStatus.INTENDED.value] == 0
        assert counts[OrderStatus.OPEN.value] == 0
        saved = journal.load_state("paper_exchange")
        assert saved is not None
        exchange = PaperExchange.from_dict(saved)

    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        intent_ids = [row[0] for row in conn.execute("SELECT client_order_id FROM order_intents")]
        latest = dict(conn.execute("SELECT client_order_id, status FROM order_latest"))
        fill_rows = conn.execute("SELECT client_order_id, side, size_usd FROM fills").fetchall()
    conn.close()

    assert len(intent_ids) >= KILLS, "too few orders for the kills to mean anything"
    assert len(intent_ids) == len(set(intent_ids)), "a client order id was journaled twice"
    assert set(latest) <= set(intent_ids), "an order update for an id never intended"
    for cid in intent_ids:
        assert OrderStatus(latest[cid]).is_terminal, f"{cid} ended {latest.get(cid)}"

    counters = exchange.counters()
    assert counters.duplicate_client_order_ids == 0, "the venue saw a client order id twice"
    for cid in intent_ids:
        update = exchange.lookup(KEY, cid)
        if update is not None:
            assert update.status.value == latest[cid], f"{cid}: venue and journal disagree"

    position_usd = exchange.position(KEY).size_usd
    assert position_usd == last_actual
    journaled_usd = sum(size if side == "buy" else -size for _, side, size in fill_rows)
    assert journaled_usd == pytest.approx(position_usd), "journaled fills do not sum to the venue"
