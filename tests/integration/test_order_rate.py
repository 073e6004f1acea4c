"""The order-rate cap on the fake clock: fractional rates honoured, integer rates as before."""

from __future__ import annotations

import asyncio

import pytest

from scaler.adapters.memory_journal import MemoryJournal
from scaler.clock import ManualClock
from scaler.domain.orders import OrderRequest, OrderSide, OrderStatus, OrderType, OrderUpdate
from scaler.domain.types import NS_PER_S
from scaler.observability.metrics import Metrics
from scaler.observability.telemetry import Observer
from scaler.service.execution import Executor
from scaler.service.order_rate import OrderRateLimit
from tests.support import KEY

pytestmark = pytest.mark.integration


class RecordingBroker:
    """Fills every order at once and remembers the fake-clock time it arrived."""

    def __init__(self, clock: ManualClock) -> None:
        self.clock = clock
        self.arrivals_ns: list[int] = []

    async def place_order(self, request: OrderRequest) -> OrderUpdate:
        self.arrivals_ns.append(self.clock.now_ns())
        return OrderUpdate(
            key=request.key,
            client_order_id=request.client_order_id,
            venue_order_id=f"v{len(self.arrivals_ns)}",
            status=OrderStatus.FILLED,
            side=request.side,
            amount_usd=request.amount_usd,
            filled_usd=request.amount_usd,
            average_fill_price=50_000.0,
            ts_ns=self.clock.now_ns(),
        )


def order(number: int) -> OrderRequest:
    return OrderRequest(
        key=KEY,
        client_order_id=f"scl-{number:012d}",
        side=OrderSide.BUY,
        amount_usd=10.0,
        order_type=OrderType.MARKET,
        limit_price=None,
        reduce_only=False,
        post_only=False,
        ts_created_ns=0,
    )


def slots_s(rate_per_s: float, orders: int) -> list[float]:
    """When each of ``orders`` back-to-back orders may go, in seconds from the first."""
    clock = ManualClock(start_ns=0)
    limit = OrderRateLimit(rate_per_s, clock)
    return [limit.reserve() / NS_PER_S for _ in range(orders)]


@pytest.mark.parametrize(
    ("rate_per_s", "expected_s"),
    [
        (0.5, [0.0, 2.0, 4.0, 6.0]),  # one every 2 s (was truncated to 1/s)
        (0.25, [0.0, 4.0, 8.0]),
        (1.9, [0.0, 0.526315789, 1.052631578, 1.578947367]),  # one every 1/1.9 s (was 1/s)
        (2.5, [0.0, 0.0, 0.8, 0.8, 1.6, 1.6]),  # two in any 0.8 s (was 2/s)
        (1.0, [0.0, 1.0, 2.0]),
        (5.0, [0.0] * 5 + [1.0] * 5 + [2.0]),  # integer rates: N in any second, as before
    ],
)
def test_order_rate_limit_when_orders_come_back_to_back_then_slots_follow_the_rate(
    rate_per_s: float, expected_s: list[float]
) -> None:
    """Each rate's slots, derived by hand: ``floor(rate)`` (at least 1) orders per
    ``floor(rate) / rate`` seconds."""
    assert slots_s(rate_per_s, len(expected_s)) == pytest.approx(expected_s, abs=1e-9)


def test_order_rate_limit_when_orders_are_sparse_then_none_waits() -> None:
    """Orders further apart than the window go at once, however low the rate."""
    clock = ManualClock(start_ns=0)
    limit = OrderRateLimit(0.5, clock)
    for step in range(4):
        assert limit.reserve() == clock.now_ns() == step * 3 * NS_PER_S
        clock.advance(3.0)


@pytest.mark.parametrize("rate_per_s", [0.0, -1.0, float("nan"), float("inf")])
def test_order_rate_limit_when_rate_not_positive_and_finite_then_refused(
    rate_per_s: float,
) -> None:
    """A rate that is not a positive finite number is a programming error, not "no limit"."""
    with pytest.raises(ValueError, match="order rate"):
        OrderRateLimit(rate_per_s, ManualClock())


async def settle() -> None:
    """Let every ready task run: a few loop iterations, no wall-clock wait."""
    for _ in range(50):
        await asyncio.sleep(0)


@pytest.mark.parametrize(("rate_per_s", "gap_s"), [(0.5, 2.0), (1.9, 1 / 1.9)])
async def test_executor_when_rate_is_fractional_then_the_next_order_waits_for_the_fake_clock(
    rate_per_s: float, gap_s: float
) -> None:
    """With a fractional cap, the second order reaches the venue exactly when the injected clock
    has moved on by ``1 / rate``, not before and with no wall time spent (the old throttle
    truncated the rate to 1/s and waited out wall-clock seconds)."""
    clock = ManualClock(start_ns=0)
    broker = RecordingBroker(clock)
    executor = Executor(
        broker,  # type: ignore[arg-type]  # a Broker in the part the executor reaches here
        MemoryJournal(),
        Observer(Metrics()),
        clock,
        "scl",
        rate_per_s,
    )
    await executor.send(order(1))
    second = asyncio.create_task(executor.send(order(2)))
    await settle()

    clock.advance(gap_s - 0.01)
    await settle()
    assert broker.arrivals_ns == [0]

    clock.advance(0.01)
    await settle()
    assert second.done()
    assert broker.arrivals_ns == [0, round(gap_s * NS_PER_S)]
