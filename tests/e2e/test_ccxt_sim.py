"""The real ccxt path end to end: ``scaler run`` on venue deribit trading at ``scaler
exchange-sim`` through the unmodified ccxt client, both as real processes on 127.0.0.1.

Proves: convergence with every order labelled with the instance prefix; recommend mode sends
nothing; ``scaler status`` agrees with the sim's own account; 20 % injected 429/5xx/timeouts for
a minute leave no duplicate order and the position still converges; a stalled feed freezes the
daemon and it resumes by itself; ten SIGKILLs at random points leave no duplicate and no
orphaned order.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import Daemon, eventually
from tests.e2e.stack import (
    PREFIX,
    Sim,
    converged_at_sim,
    daemon_env,
    labels,
    open_labels,
    position_usd,
)

pytestmark = pytest.mark.e2e

CONVERGE_S = 45.0


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[Sim]:
    simulator = Sim(tmp_path).start()
    try:
        yield simulator
    finally:
        simulator.stop()


@pytest.fixture
def trader(sim: Sim, make_daemon: Callable[..., Daemon]) -> Callable[..., Daemon]:
    def make(**extra: str) -> Daemon:
        return make_daemon(**daemon_env(sim, **extra))

    return make


def no_duplicates(sim: Sim) -> None:
    state = sim.state()
    repeated = [label for label, n in Counter(labels(state)).items() if n > 1]
    assert repeated == [], f"duplicate orders at the sim: {repeated}"
    assert state["counts"]["duplicate_labels"] == 0


def test_converges_through_ccxt_recommend_stops_orders_status_agrees(
    sim: Sim, trader: Callable[..., Daemon]
) -> None:
    daemon = trader().start()
    daemon.wait_ready(timeout_s=30)
    eventually(lambda: converged_at_sim(daemon, sim), CONVERGE_S, "convergence at the sim")

    state = sim.state()
    assert state["orders"], "the daemon sent no order"
    assert all(label.startswith(f"{PREFIX}-") for label in labels(state))
    no_duplicates(sim)

    # scaler status agrees with the sim's own account view (same position, same wallet).
    def agree() -> bool:
        item, account = daemon.instrument(), sim.state()["account"]
        return (
            item["actual_usd"] == account["position_usd"]
            and abs(item["equity_coin"] - account["equity_coin"]) <= 0.001 * account["equity_coin"]
        )

    eventually(agree, 10, "scaler status to agree with the sim")

    # Recommend mode: the market moves the target, but nothing is sent.
    assert daemon.cli("mode", "recommend").returncode == 0
    sim.faults(paused=True)
    before = sim.order_requests()
    mark = sim.state()["market"][0]["mark_price"]
    for step in range(6):
        sim.push(mark * (1.012 if step % 2 == 0 else 1.0))
        time.sleep(0.5)
    item = daemon.instrument()
    assert item["mode"] == "recommend"
    assert sim.order_requests() == before

    # Back to auto: it trades again, and converges.
    assert daemon.cli("mode", "auto").returncode == 0
    sim.push(mark * 1.012)
    eventually(lambda: sim.order_requests() > before, 15, "orders after mode auto")
    sim.faults(paused=False)
    eventually(lambda: converged_at_sim(daemon, sim), CONVERGE_S, "convergence after auto")
    assert daemon.terminate() == 0


def test_a_minute_of_injected_errors_leaves_no_duplicates_and_converges(
    sim: Sim, trader: Callable[..., Daemon]
) -> None:
    daemon = trader().start()
    daemon.wait_ready(timeout_s=30)
    eventually(lambda: converged_at_sim(daemon, sim), CONVERGE_S, "first convergence")
    sim.faults(paused=True, error_rate=0.2, timeout_s=3.0)
    mark = sim.state()["market"][0]["mark_price"]
    end = time.monotonic() + 60
    step = 0
    while time.monotonic() < end:
        sim.push(mark * (1.012 if step % 2 == 0 else 1.0))  # the target moves every 2 s
        step += 1
        time.sleep(2)
        daemon.assert_alive()
    sim.faults(error_rate=0.0, paused=False)
    outcomes = sim.state()["counts"]["requests_by_outcome"]
    eventually(lambda: converged_at_sim(daemon, sim), CONVERGE_S, "convergence after the faults")
    no_duplicates(sim)
    errors = [line for line in daemon.stdout_text().splitlines() if '"event": "error"' in line]
    assert errors, "injected failures were not counted"
    assert len(outcomes) > 1, f"no fault reached an order request: {outcomes}"
    assert daemon.terminate() == 0


def test_a_stalled_feed_freezes_then_resumes_by_itself(
    sim: Sim, trader: Callable[..., Daemon]
) -> None:
    daemon = trader().start()
    daemon.wait_ready(timeout_s=30)
    eventually(lambda: converged_at_sim(daemon, sim), CONVERGE_S, "convergence")
    sim.faults(stall_feed=True)
    stalled_at = time.monotonic()
    eventually(lambda: daemon.instrument()["trading_state"] == "frozen", 10, "the daemon to freeze")
    frozen_after = time.monotonic() - stalled_at
    assert frozen_after < 5.0 + 0.5 + 2.0  # stale_mark_after_s + one tick + polling slack
    before = sim.order_requests()
    time.sleep(2)
    assert sim.order_requests() == before
    sim.faults(stall_feed=False)
    eventually(lambda: daemon.instrument()["trading_state"] == "active", 15, "the daemon to resume")
    assert daemon.terminate() == 0


def test_ten_sigkills_leave_no_duplicate_or_orphaned_order(
    sim: Sim, trader: Callable[..., Daemon]
) -> None:
    rng = random.Random(20261121)
    # Passive orders rest at the sim, so a kill often lands with an order open or in flight.
    daemon = trader(SCALER_EXECUTION__STYLE="passive", SCALER_EXECUTION__ORDER_TTL_S="2")
    sim.faults(paused=True)
    mark = sim.state()["market"][0]["mark_price"]
    step = 0
    for _ in range(10):
        daemon.start()
        deadline = time.monotonic() + rng.uniform(0.5, 4.0)
        while time.monotonic() < deadline:
            sim.push(mark * (1.0 + 0.002 * (step % 5)))  # bids get crossed, orders fill
            step += 1
            time.sleep(0.2)
        daemon.kill()
    sim.faults(paused=False)
    daemon.start()
    daemon.wait_ready(timeout_s=30)
    eventually(lambda: converged_at_sim(daemon, sim, 0.03), 90, "convergence after the kills")
    no_duplicates(sim)
    assert daemon.terminate() == 0
    state = sim.state()
    assert open_labels(state) == [], "orders left resting after a graceful stop"
    assert position_usd(state) != 0


@pytest.mark.parametrize(
    ("factor", "reason"), [(10.0, "implausible_mark"), (2.0, "unconfirmed_price")]
)
def test_a_price_outlier_held_past_the_cooldown_is_never_traded_into(
    sim: Sim, trader: Callable[..., Daemon], factor: float, reason: str
) -> None:
    """At its 3x target, mark and index pushed to 10x (rejected as implausible) or 2x (a jump
    the breaker has not confirmed) for 5 s, 2.5 cooldowns, then back: no order adds exposure
    at the outlier, the position is never liquidated, and the status says why it held."""
    daemon = trader().start()
    daemon.wait_ready(timeout_s=30)
    sim.faults(paused=True)
    mark = sim.state()["market"][0]["mark_price"]

    def settled() -> bool:
        sim.push(mark)
        item = daemon.instrument()
        return item.get("trading_state") == "active" and converged_at_sim(daemon, sim, 0.01)

    eventually(settled, CONVERGE_S, "convergence at the 3x target", interval_s=0.5)
    position, seen = position_usd(sim.state()), len(sim.state()["orders"])
    outlier = mark * factor
    reasons: set[str] = set()
    end = time.monotonic() + 5.0
    while time.monotonic() < end:
        sim.admin("market", {"mark_price": outlier, "index_price": outlier})
        time.sleep(0.25)
        item = daemon.instrument()
        if item.get("mark_price") is not None and item["trading_state"] != "active":
            reasons.update(item["reasons"])
    item = daemon.instrument()
    assert item["trading_state"] == "frozen", item
    assert reason in item["reasons"], item
    assert reason in reasons
    new_orders = sim.state()["orders"][seen:]
    assert [o for o in new_orders if o["side"] == "buy"] == [], new_orders
    assert position_usd(sim.state()) == position

    eventually(
        lambda: sim.push(mark) is None and daemon.instrument()["trading_state"] == "active",
        15,
        "trading again at the old level",
        interval_s=0.25,
    )
    state = sim.state()
    assert position_usd(state) == position  # back where it was: nothing to trade
    assert not any(o["is_liquidation"] for o in state["orders"])
    assert state["account"]["equity_coin"] > 0.9
    assert daemon.terminate() == 0
