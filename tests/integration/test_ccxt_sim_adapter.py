"""The ccxt adapter on deribit against ``scaler exchange-sim`` over real HTTP: an order whose
answer is lost is never sent twice, and is found afterwards by its label."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from scaler.domain.orders import OrderRequest, OrderSide, OrderStatus, OrderType
from scaler.errors import OutcomeUnknownError
from tests.contract.harnesses import SimHarness

pytestmark = pytest.mark.integration


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[SimHarness]:
    opened = await SimHarness(tmp_path / "exchange-sim.sqlite3").start()
    try:
        yield opened
    finally:
        await opened.close()


def buy(harness: SimHarness, cid: str, amount_usd: float) -> OrderRequest:
    return OrderRequest(
        harness.key, cid, OrderSide.BUY, amount_usd, OrderType.MARKET, None, False, False, 0
    )


@pytest.mark.parametrize("kind", ["timeout_executed", "timeout_unexecuted"])
async def test_a_dropped_answer_is_one_order_at_most_then_found_by_label(
    harness: SimHarness, kind: str
) -> None:
    """The sim holds the answer 0.5 s and drops the connection, before the client's 2 s
    timeout: aiohttp would resend the GET on its own (a second order); the adapter must not."""
    harness.sim.faults.update({"error_rate": 1.0, "error_kinds": [kind], "timeout_s": 0.5})
    with pytest.raises(OutcomeUnknownError):
        await harness.broker.place_order(buy(harness, "scl-000000000001", 1_000))
    harness.sim.faults.update({"error_rate": 0.0})
    logged = harness.sim.store.requests()
    labels = [row["label"] for row in logged]
    accepted = [row["label"] for row in logged if row["outcome"] == "accepted"]
    found = await harness.broker.fetch_order(harness.key, "scl-000000000001")
    account = await harness.broker.account(harness.key)
    if kind == "timeout_executed":
        assert labels == ["scl-000000000001"]
        assert accepted == labels
        assert found is not None
        assert found.status is OrderStatus.FILLED
        assert account.position_usd == 1_000
    else:
        assert labels == ["scl-000000000001"]  # received once, never executed
        assert accepted == []
        assert found is None
        assert account.position_usd == 0


async def test_deribit_amounts_are_usd_and_positions_read_back_in_usd(
    harness: SimHarness,
) -> None:
    """1,000 USD at 50,000 is 1,000 USD of position (ccxt's contracts x contractSize would
    say 10,000: its deribit position carries contractSize 10 with contracts already in USD)."""
    await harness.broker.place_order(buy(harness, "scl-000000000002", 1_000))
    account = await harness.broker.account(harness.key)
    assert account.position_usd == 1_000
    assert account.entry_price == pytest.approx(50_000.5)
    (row,) = harness.sim.store.requests()
    assert row["amount"] == 1_000
